//! EQcorrscan's detection file, so that EQcorrscan (and scripts built on
//! it) can take over our detections.
//!
//! The format is the one `Detection.write` and `write_detections` (in
//! `eqcorrscan/core/match_filter/detection.py`, 0.5.2) write and
//! `read_detections` reads: a header line, then one line per detection,
//! fields joined by `"; "`:
//!
//! ```text
//! Template name; Detection time (UTC); Number of channels; Channel list; Detection value; Threshold; Threshold type; Input threshold; Detection type
//! 20120902032225.53; 2012-09-02T03:20:05.860000Z; 2; [('ATKH', 'EHE'), ('INWH', 'EHN')]; 1.2161409854888916; 0.6262400150299072; MAD; 12.0; corr
//! ```
//!
//! The time is `str(UTCDateTime)` (microseconds), the channel list Python's
//! text of a list of (station, channel) tuples (read back by
//! `ast.literal_eval`), detection value and threshold the text of a NumPy
//! float32 as EQcorrscan formats it (the Python float of the same value:
//! `1.2161409854888916`), the input threshold a Python float, and the detection type
//! `corr`. EQcorrscan's own template names cannot hold dots; its reader
//! does not check, so ids are written as they are (none may contain
//! `"; "` or a line break: those would break the line format).

use std::io::{self, Write};

use super::{eqc_f32, iso_time, py_f64, py_pair, CatalogEvent};

/// The header line, as EQcorrscan writes it.
pub const HEADER: &str = "Template name; Detection time (UTC); Number of channels; Channel list; \
Detection value; Threshold; Threshold type; Input threshold; Detection type";

/// Writes an EQcorrscan detection file: the header at
/// [`DetectionsWriter::new`], one line per [`DetectionsWriter::write`].
pub struct DetectionsWriter<W: Write> {
    w: W,
}

impl<W: Write> DetectionsWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        writeln!(w, "{HEADER}")?;
        Ok(DetectionsWriter { w })
    }

    pub fn write(&mut self, e: &CatalogEvent) -> io::Result<()> {
        self.write_rendered(&detection_line(e))
    }

    /// Writes a line rendered by [`detection_line`] and its line break.
    pub fn write_rendered(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.w, "{line}")
    }

    /// Flushes and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// One line of the file (without its line break): `Detection._print_str`.
pub fn detection_line(e: &CatalogEvent) -> String {
    let chans: Vec<String> = e.channels.iter().map(py_pair).collect();
    format!(
        "{}; {}; {}; [{}]; {}; {}; {}; {}; corr",
        e.template,
        iso_time(e.detect_time),
        e.n_channels,
        chans.join(", "),
        eqc_f32(e.detect_val),
        eqc_f32(e.threshold),
        e.threshold_type,
        py_f64(e.threshold_input)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::quakeml::tests::sample_event;

    #[test]
    fn golden_detection_file() {
        let mut w = DetectionsWriter::new(Vec::new()).unwrap();
        w.write(&sample_event()).unwrap();
        let mut e = sample_event();
        e.channels.clear();
        e.detect_val = -1.75;
        e.threshold_type = "av_chan_corr".into();
        e.threshold_input = 0.3;
        w.write(&e).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let want = "Template name; Detection time (UTC); Number of channels; Channel list; \
Detection value; Threshold; Threshold type; Input threshold; Detection type\n\
20120902032225.53; 2012-09-02T03:20:05.860000Z; 2; [('ATKH', 'EHE'), ('INWH', 'EHN')]; \
1.2161409854888916; 0.6262400150299072; MAD; 12.0; corr\n\
20120902032225.53; 2012-09-02T03:20:05.860000Z; 2; []; -1.75; 0.6262400150299072; av_chan_corr; 0.3; corr\n";
        assert_eq!(out, want);
    }
}
