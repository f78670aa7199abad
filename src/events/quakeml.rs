//! QuakeML 1.2 catalogues, streamed one event at a time.
//!
//! QuakeML is what ObsPy, SeisComP and most location tools read; the events
//! follow the conventions of EQcorrscan 0.5.2 (`Detection._calculate_event`
//! and `lag_calc`), so that scripts written for EQcorrscan catalogues read
//! ours unchanged:
//! - event `smi:local/<template>_<detect time %Y%m%dT%H%M%S.%f>` with the
//!   comments `Template: <template>`, `threshold=<f32>`,
//!   `detect_val=<f32>` and `channels used: ('STA', 'CHA') …` (the text
//!   EQcorrscan writes: a float32 as the Python float of its value,
//!   `1.2161409854888916`, see [`super::eqc_f32`]);
//! - one origin, `smi:local/EQcorrscan/<event id>`: the template's
//!   hypocentre at the detection's origin time, automatic, preliminary,
//!   with EQcorrscan's "use with caution" comment;
//! - picks `smi:local/<event id>/pick/<k>`: waveform id, phase hint,
//!   method `smi:local/EQcorrscan`, automatic, comment `cc_max=<f32>`;
//! - a relative magnitude, when there is one,
//!   `smi:local/<event id>/magnitude`: value, uncertainty = the spread of
//!   the channel Δm, type = the template magnitude's type (none when
//!   unknown), method `smi:local/relative` (EQcorrscan's commented-out
//!   relative magnitudes use that method id), station count = channels
//!   with a Δm, automatic; it is the preferred magnitude.
//!
//! Differences from EQcorrscan: creation info says author `tmatch` and has
//! no creation time (the same input gives the same bytes), and no element
//! carries a random UUID. Characters a QuakeML resource id does not allow
//! (e.g. spaces) become `_` in ids; text is XML-escaped.

use std::io::{self, Write};

use super::{eqc_f32, iso_time, py_f64, py_pair, CatalogEvent, EventPick, RelMag};

const HEADER: &str = "<?xml version='1.0' encoding='utf-8'?>\n\
<q:quakeml xmlns=\"http://quakeml.org/xmlns/bed/1.2\" xmlns:q=\"http://quakeml.org/xmlns/quakeml/1.2\">\n  \
<eventParameters publicID=\"smi:local/tmatch/catalog\">\n";

const FOOTER: &str = "  </eventParameters>\n</q:quakeml>\n";

const ORIGIN_COMMENT: &str =
    "Origin automatically assigned based on template origin: use with caution.";

/// Writes a QuakeML 1.2 catalogue: the header at [`QuakeMlWriter::new`],
/// one `<event>` per [`QuakeMlWriter::write`], the footer at
/// [`QuakeMlWriter::finish`].
pub struct QuakeMlWriter<W: Write> {
    w: W,
}

impl<W: Write> QuakeMlWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        w.write_all(HEADER.as_bytes())?;
        Ok(QuakeMlWriter { w })
    }

    pub fn write(&mut self, e: &CatalogEvent) -> io::Result<()> {
        self.write_rendered(&event_xml(e))
    }

    /// Writes an event rendered by [`event_xml`] (events can be rendered
    /// in parallel and written in order).
    pub fn write_rendered(&mut self, xml: &str) -> io::Result<()> {
        self.w.write_all(xml.as_bytes())
    }

    /// Writes the footer, flushes, and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(FOOTER.as_bytes())?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// One `<event>` element, indented for its place in the catalogue.
pub fn event_xml(e: &CatalogEvent) -> String {
    let id = resource_id(&e.id());
    let origin_id = format!("smi:local/EQcorrscan/{}", resource_id(&e.id()));
    let mag_id = format!("smi:local/{id}/magnitude");
    let mut x = format!("    <event publicID=\"smi:local/{id}\">\n");
    x += &leaf(6, "preferredOriginID", &origin_id);
    if e.magnitude.is_some() {
        x += &leaf(6, "preferredMagnitudeID", &mag_id);
    }
    for text in event_comments(e) {
        x += &comment(6, &text);
    }
    x += &creation_info(6);
    x += &origin_xml(e, &origin_id);
    if let Some(m) = &e.magnitude {
        x += &magnitude_xml(m, e.magnitude_type.as_deref(), &mag_id, &origin_id);
    }
    for (k, p) in e.picks.iter().enumerate() {
        x += &pick_xml(p, &format!("smi:local/{id}/pick/{k}"));
    }
    x + "    </event>\n"
}

/// EQcorrscan's four event comments, in its order and text.
fn event_comments(e: &CatalogEvent) -> Vec<String> {
    let chans: Vec<String> = e.channels.iter().map(py_pair).collect();
    vec![
        format!("Template: {}", e.template),
        format!("threshold={}", eqc_f32(e.threshold)),
        format!("detect_val={}", eqc_f32(e.detect_val)),
        format!("channels used: {}", chans.join(" ")),
    ]
}

fn origin_xml(e: &CatalogEvent, origin_id: &str) -> String {
    let mut x = format!("      <origin publicID=\"{}\">\n", escape(origin_id));
    x += &value(8, "time", &iso_time(e.origin_time));
    x += &value(8, "latitude", &py_f64(e.latitude));
    x += &value(8, "longitude", &py_f64(e.longitude));
    x += &value(8, "depth", &py_f64(e.depth_km * 1000.0));
    x += &leaf(8, "timeFixed", "false");
    x += &leaf(8, "evaluationMode", "automatic");
    x += &leaf(8, "evaluationStatus", "preliminary");
    x += &comment(8, ORIGIN_COMMENT);
    x += &creation_info(8);
    x + "      </origin>\n"
}

fn magnitude_xml(m: &RelMag, kind: Option<&str>, mag_id: &str, origin_id: &str) -> String {
    let mut x = format!("      <magnitude publicID=\"{}\">\n", escape(mag_id));
    x += &format!(
        "        <mag>\n          <value>{}</value>\n          <uncertainty>{}</uncertainty>\n        </mag>\n",
        py_f64(m.value),
        py_f64(m.spread)
    );
    if let Some(kind) = kind {
        x += &leaf(8, "type", kind);
    }
    x += &leaf(8, "originID", origin_id);
    x += &leaf(8, "methodID", "smi:local/relative");
    x += &leaf(8, "stationCount", &m.n_channels.to_string());
    x += &leaf(8, "evaluationMode", "automatic");
    x += &creation_info(8);
    x + "      </magnitude>\n"
}

fn pick_xml(p: &EventPick, pick_id: &str) -> String {
    let mut x = format!("      <pick publicID=\"{}\">\n", escape(pick_id));
    x += &value(8, "time", &iso_time(p.time));
    x += &waveform_id(&p.seed_id);
    x += &leaf(8, "methodID", "smi:local/EQcorrscan");
    if !p.phase.is_empty() {
        x += &leaf(8, "phaseHint", &p.phase);
    }
    x += &leaf(8, "evaluationMode", "automatic");
    x += &comment(8, &format!("cc_max={}", eqc_f32(p.cc)));
    x + "      </pick>\n"
}

/// `<waveformID …>` from `NET.STA.LOC.CHA` (missing parts are empty).
fn waveform_id(seed_id: &str) -> String {
    let mut parts = seed_id.splitn(4, '.');
    let mut next = || escape(parts.next().unwrap_or(""));
    let (n, s, l, c) = (next(), next(), next(), next());
    format!(
        "        <waveformID networkCode=\"{n}\" stationCode=\"{s}\" locationCode=\"{l}\" channelCode=\"{c}\"></waveformID>\n"
    )
}

fn creation_info(indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!("{pad}<creationInfo>\n{pad}  <author>tmatch</author>\n{pad}</creationInfo>\n")
}

fn comment(indent: usize, text: &str) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}<comment>\n{pad}  <text>{}</text>\n{pad}</comment>\n",
        escape(text)
    )
}

/// `<name><value>v</value></name>`, QuakeML's real quantity.
fn value(indent: usize, name: &str, v: &str) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}<{name}>\n{pad}  <value>{}</value>\n{pad}</{name}>\n",
        escape(v)
    )
}

fn leaf(indent: usize, name: &str, text: &str) -> String {
    format!("{}<{name}>{}</{name}>\n", " ".repeat(indent), escape(text))
}

/// Text and attribute values (in double quotes) with `& < > "` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The part of a resource id after `smi:local/`: characters QuakeML's
/// `ResourceReference` pattern does not allow there (and `&`, `'`) become
/// `_`.
fn resource_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-.*()_~+?=,;#/".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::epoch::parse_time;
    use crate::events::RelMag;

    /// A small event used by every writer's golden test.
    pub(crate) fn sample_event() -> CatalogEvent {
        let t = |s: &str| parse_time(s).unwrap();
        CatalogEvent {
            template: "20120902032225.53".into(),
            detect_time: t("2012-09-02T03:20:05.86Z"),
            detect_val: 1.216141,
            threshold: 0.62624,
            threshold_type: "MAD".into(),
            threshold_input: 12.0,
            n_channels: 2,
            channels: vec![("ATKH".into(), "EHE".into()), ("INWH".into(), "EHN".into())],
            origin_time: t("2012-09-02T03:20:02.62Z"),
            latitude: 37.8,
            longitude: 139.992,
            depth_km: 7.8,
            template_magnitude: Some(2.6),
            magnitude_type: Some("M".into()),
            magnitude: Some(RelMag {
                value: 1.95,
                n_channels: 2,
                spread: 0.125,
            }),
            picks: vec![
                EventPick {
                    seed_id: "N.ATKH..EHE".into(),
                    phase: "S".into(),
                    time: t("2012-09-02T03:20:06.86Z"),
                    cc: 0.75,
                },
                EventPick {
                    seed_id: "N.INWH..EHN".into(),
                    phase: "S".into(),
                    time: t("2012-09-02T03:20:10.035Z"),
                    cc: 0.5123,
                },
            ],
        }
    }

    const GOLDEN: &str = include_str!("testdata/sample.xml");

    #[test]
    fn golden_quakeml() {
        let mut q = QuakeMlWriter::new(Vec::new()).unwrap();
        q.write(&sample_event()).unwrap();
        let out = String::from_utf8(q.finish().unwrap()).unwrap();
        assert_eq!(out, GOLDEN);
    }

    #[test]
    fn escapes_and_ids() {
        assert_eq!(escape("a<b & \"c\" 'd'"), "a&lt;b &amp; &quot;c&quot; 'd'");
        assert_eq!(resource_id("my tmpl&1"), "my_tmpl_1");
        let mut e = sample_event();
        e.template = "a&b".into();
        e.magnitude = None;
        let x = event_xml(&e);
        assert!(x.contains("<event publicID=\"smi:local/a_b_20120902T032005.860000\">"));
        assert!(x.contains("<text>Template: a&amp;b</text>"));
        assert!(!x.contains("<magnitude") && !x.contains("preferredMagnitudeID"));
    }
}
