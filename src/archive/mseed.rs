//! miniSEED files through libmseed (the `mseed` crate): miniSEED 2 and 3,
//! Steim1/2, integer and float encodings, CRC checks for version 3.

use std::fs;
use std::io::Write;
use std::path::Path;

use mseed::{MSControlFlags, MSDataEncoding, MSRecord, MSSampleType, PackInfo};

use crate::epoch::{self, Nanos};
use crate::error::{Error, Result, WithPath};

/// One decoded record.
#[derive(Debug, Clone)]
pub struct Record {
    /// SEED id `NET.STA.LOC.CHA`.
    pub id: String,
    pub start: Nanos,
    pub rate: f64,
    pub samples: Vec<f64>,
}

/// Where and when one record holds data, without its samples.
#[derive(Debug, Clone)]
pub struct Header {
    pub id: String,
    pub start: Nanos,
    pub end: Nanos,
}

/// `NET.STA.LOC.CHA` of a record from its FDSN source identifier
/// (`FDSN:NET_STA_LOC_B_S_SS`; a band, source and subsource of one
/// character each make a SEED channel `BSS`). Parsed here rather than by
/// the bindings' per-code accessors, which allocate without freeing and
/// let libmseed write codes of any length into fixed buffers: a damaged
/// record must not be able to do either.
fn seed_id(sid: &str) -> Option<String> {
    let parts: Vec<&str> = sid.strip_prefix("FDSN:")?.split('_').collect();
    let (net, sta, loc, cha) = match parts.as_slice() {
        [net, sta, loc, b, s, ss] if b.len() == 1 && s.len() == 1 && ss.len() == 1 => {
            (net, sta, loc, format!("{b}{s}{ss}"))
        }
        [net, sta, loc, rest @ ..] if !rest.is_empty() => (net, sta, loc, rest.join("_")),
        _ => return None,
    };
    let ok = |c: &str| c.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    (ok(net) && ok(sta) && ok(loc) && ok(&cha) && !net.is_empty() && !sta.is_empty())
        .then(|| format!("{net}.{sta}.{loc}.{cha}"))
}

fn record_id(path: &Path, rec: &MSRecord) -> Result<String> {
    let sid = rec.sid_lossy();
    seed_id(&sid).ok_or_else(|| {
        Error::file(
            path,
            format!("record with a source identifier that is not NET.STA.LOC.CHA: '{sid}'"),
        )
    })
}

/// libmseed's messages, kept instead of printed: an error gets libmseed's
/// words about it, and a warning (a Steim integrity check that failed, say)
/// goes into the day's problems with the file's name rather than to
/// standard error without it.
mod said {
    use std::cell::{Cell, RefCell};
    use std::ffi::{c_char, CStr};

    thread_local! {
        static MESSAGES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        static ROUTED: Cell<bool> = const { Cell::new(false) };
    }

    unsafe extern "C" fn keep(message: *const c_char) {
        if message.is_null() {
            return;
        }
        // SAFETY: libmseed passes a NUL-terminated message.
        let m = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        let m = m.trim().trim_start_matches("Error:").trim().to_string();
        MESSAGES.with(|v| v.borrow_mut().push(m));
    }

    /// How many messages libmseed has left on this thread so far.
    pub fn mark() -> usize {
        MESSAGES.with(|v| v.borrow().len())
    }

    /// The messages after `mark`.
    pub fn since(mark: usize) -> Vec<String> {
        MESSAGES.with(|v| v.borrow().get(mark..).unwrap_or_default().to_vec())
    }

    /// Run `f`, returning what libmseed said meanwhile on this thread
    /// (libmseed keeps its log settings per thread).
    pub fn during<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
        if !ROUTED.get() {
            // SAFETY: plain function pointers that live as long as the
            // program, and null prefixes, as libmseed documents.
            unsafe {
                libmseed_sys::ms_rloginit(
                    Some(keep),
                    std::ptr::null(),
                    Some(keep),
                    std::ptr::null(),
                    0,
                )
            };
            ROUTED.set(true);
        }
        MESSAGES.with(|v| v.borrow_mut().clear());
        let r = f();
        (r, MESSAGES.with(|v| std::mem::take(&mut *v.borrow_mut())))
    }
}

/// Visit every record of a file, samples not yet decoded. A file that is
/// empty, truncated or not miniSEED is an error that names it, with what
/// libmseed said of it; otherwise libmseed's warnings are returned.
fn for_each_record(path: &Path, f: impl FnMut(&mut MSRecord) -> Result<()>) -> Result<Vec<String>> {
    let (result, mut messages) = said::during(|| visit_records(path, f));
    messages.dedup();
    // What libmseed said that its error does not already say.
    let news = |text: &str, messages: Vec<String>| -> Vec<String> {
        messages
            .into_iter()
            .filter(|m| !text.contains(m.as_str()))
            .collect()
    };
    match result {
        Ok(()) => Ok(messages),
        Err(Error::File { path, msg }) => {
            let said = news(&msg, messages);
            let msg = if said.is_empty() {
                msg
            } else {
                format!("{msg} (libmseed: {})", said.join("; "))
            };
            Err(Error::File { path, msg })
        }
        Err(Error::Mseed {
            path, what, source, ..
        }) => {
            let said = news(&format!("{what}: {source}"), messages);
            Err(Error::Mseed {
                path,
                what,
                source,
                said,
            })
        }
        Err(e) => Err(e),
    }
}

fn visit_records(path: &Path, mut f: impl FnMut(&mut MSRecord) -> Result<()>) -> Result<()> {
    let meta = fs::metadata(path).at(path)?;
    if meta.len() == 0 {
        return Err(Error::file(path, "empty file (0 bytes), not miniSEED"));
    }
    // libmseed opens the path itself: check readability first so that a
    // permission problem reads as one.
    fs::File::open(path).at(path)?;
    // libmseed takes its argument for a URL when it can: give it an
    // absolute path (a relative `../x` loses its first dot there).
    let abs = fs::canonicalize(path).at(path)?;
    let reader = mseed::MSFileParam::new_with_flags(abs, MSControlFlags::MSF_VALIDATECRC)
        .map_err(|e| Error::mseed(path, "cannot open as miniSEED", e))?;
    let (mut n, mut bytes) = (0usize, 0u64);
    for rec in reader {
        let mut rec =
            rec.map_err(|e| Error::mseed(path, format!("bad miniSEED after {n} good records"), e))?;
        f(&mut rec)?;
        n += 1;
        bytes += rec.raw().map_or(0, |r| r.len() as u64);
    }
    if n == 0 {
        return Err(Error::file(path, "no miniSEED records found"));
    }
    // libmseed stops quietly at a short last record: say the file is cut.
    if bytes < meta.len() {
        return Err(Error::file(
            path,
            format!(
                "truncated: {} bytes after the last of {n} complete records are not a record",
                meta.len() - bytes
            ),
        ));
    }
    Ok(())
}

fn check_rate(path: &Path, id: &str, rate: f64) -> Result<()> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(Error::file(
            path,
            format!("{id}: record with sampling rate {rate} Hz"),
        ));
    }
    Ok(())
}

/// Read and decode every record of a file; any damage is an error.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    match read_good_records(path) {
        (records, None, _) => Ok(records),
        (_, Some(e), _) => Err(e),
    }
}

/// Read and decode the records of a file up to the first damaged one, and
/// say what was wrong there, if anything: a file cut short by a failed copy
/// still gives the data before the cut. Last: libmseed's warnings about
/// records it decoded.
pub fn read_good_records(path: &Path) -> (Vec<Record>, Option<Error>, Vec<String>) {
    let mut out = Vec::new();
    let result = for_each_record(path, |rec| {
        let id = record_id(path, rec)?;
        let rate = rec.sample_rate_hz();
        let claimed = rec.sample_cnt();
        if claimed <= 0 {
            return Ok(()); // log or empty records carry no samples
        }
        check_rate(path, &id, rate)?;
        // No encoding packs more than two samples per byte (Steim2: 7 in 4
        // bytes): a larger count is a damaged header, which would otherwise
        // make the decoder allocate for it.
        let payload = rec.data_length() as i64;
        // A payload longer than its record is a damaged header that the
        // decoder would read past the record for.
        let record_len = rec.raw().map_or(0, |r| r.len()) as i64;
        if claimed > 2 * payload + 64 || payload > record_len {
            return Err(Error::file(
                path,
                format!(
                    "{id}: damaged record at {}: {claimed} samples in {payload} bytes of data \
                     in a record of {record_len} bytes",
                    rec.start_time()
                        .map(|t| epoch::format_time(epoch::from_offset_datetime(t)))
                        .unwrap_or_default()
                ),
            ));
        }
        let mark = said::mark();
        rec.unpack_data()
            .map_err(|e| Error::mseed(path, format!("{id}: cannot decode a record"), e))?;
        // A record whose samples fail the decoder's integrity check holds
        // garbage: it ends the file's good records.
        let warned = said::since(mark);
        if !warned.is_empty() {
            return Err(Error::file(
                path,
                format!("{id}: damaged record: {}", warned.join("; ")),
            ));
        }
        let samples = decoded_samples(path, &id, rec, claimed)?;
        let start = epoch::from_offset_datetime(rec.start_time().at(path)?);
        out.push(Record {
            id,
            start,
            rate,
            samples,
        });
        Ok(())
    });
    match result {
        Ok(warnings) => (out, None, warnings),
        Err(e) => (out, Some(e), Vec::new()),
    }
}

/// A decoded record's samples as f64; exactly the `claimed` count.
fn decoded_samples(path: &Path, id: &str, rec: &MSRecord, claimed: i64) -> Result<Vec<f64>> {
    let n = rec.num_samples().max(0) as usize;
    let samples: Vec<f64> = match rec.sample_type() {
        MSSampleType::Integer32 => rec
            .data_samples::<i32>()
            .unwrap_or(&[])
            .iter()
            .map(|&v| v as f64)
            .collect(),
        MSSampleType::Float32 => rec
            .data_samples::<f32>()
            .unwrap_or(&[])
            .iter()
            .map(|&v| v as f64)
            .collect(),
        MSSampleType::Float64 => rec.data_samples::<f64>().unwrap_or(&[]).to_vec(),
        other => {
            return Err(Error::file(
                path,
                format!("{id}: records of sample type {other:?} are not waveform data"),
            ))
        }
    };
    if samples.len() != n || n as i64 != claimed {
        return Err(Error::file(
            path,
            format!("{id}: record decoded to too few samples"),
        ));
    }
    Ok(samples)
}

/// Read the headers of every record without decoding samples (for indexing).
pub fn read_headers(path: &Path) -> Result<Vec<Header>> {
    let mut out = Vec::new();
    for_each_record(path, |rec| {
        let id = record_id(path, rec)?;
        let rate = rec.sample_rate_hz();
        let n = rec.sample_cnt();
        if n <= 0 {
            return Ok(());
        }
        check_rate(path, &id, rate)?;
        let start = epoch::from_offset_datetime(rec.start_time().at(path)?);
        let end = start.saturating_add(((n as f64) * 1e9 / rate).round() as i64);
        out.push(Header { id, start, end });
        Ok(())
    })?;
    Ok(out)
}

/// Write integer samples as Steim2-compressed miniSEED 2 records (readable by
/// every common tool), appending to `path`.
pub fn write_steim2(path: &Path, id: &str, start: Nanos, rate: f64, samples: &[i32]) -> Result<()> {
    let parts: Vec<&str> = id.split('.').collect();
    let [net, sta, loc, cha] = parts.as_slice() else {
        return Err(Error::Input(format!(
            "'{id}' is not a SEED id NET.STA.LOC.CHA"
        )));
    };
    let sid = sid_from_nslc(net, sta, loc, cha);
    let mut info = PackInfo::with_sample_rate(sid.as_str(), rate).at(path)?;
    info.encoding = MSDataEncoding::Steim2;
    info.rec_len = 512;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at(path)?;
    let mut buf = Vec::new();
    let mut data = samples.to_vec();
    mseed::pack_raw(
        &mut data,
        &epoch::to_offset_datetime(start),
        |rec: &[u8]| buf.extend_from_slice(rec),
        &info,
        MSControlFlags::MSF_FLUSHDATA | MSControlFlags::MSF_PACKVER2,
    )
    .at(path)?;
    file.write_all(&buf).at(path)
}

/// FDSN source identifier `FDSN:NET_STA_LOC_B_S_s` for a SEED channel code.
fn sid_from_nslc(net: &str, sta: &str, loc: &str, cha: &str) -> String {
    let c: Vec<char> = cha.chars().collect();
    if c.len() == 3 {
        format!("FDSN:{net}_{sta}_{loc}_{}_{}_{}", c[0], c[1], c[2])
    } else {
        format!("FDSN:{net}_{sta}_{loc}_{cha}")
    }
}

#[cfg(test)]
mod tests {
    use super::seed_id;

    #[test]
    fn source_identifiers() {
        let id = |s: &str| seed_id(s);
        assert_eq!(id("FDSN:XX_ALFA__E_H_Z").as_deref(), Some("XX.ALFA..EHZ"));
        assert_eq!(
            id("FDSN:IU_ANMO_00_L_H_Z").as_deref(),
            Some("IU.ANMO.00.LHZ")
        );
        assert_eq!(id("FDSN:XX_ST__HZ").as_deref(), Some("XX.ST..HZ"));
        assert_eq!(id("FDSN:XX_ST__BB_H_Z").as_deref(), Some("XX.ST..BB_H_Z"));
        for bad in [
            "",
            "XX_ST__E_H_Z",
            "FDSN:XX_ST",
            "FDSN:XX_ST_",
            "FDSN:X.Y_ST__E_H_Z",
            "FDSN:_ST__E_H_Z",
        ] {
            assert_eq!(id(bad), None, "{bad}");
        }
    }
}
