//! Detections files as CSV.

use super::reader::Detections;
use crate::epoch;

/// Detections as CSV, one line each, in file order.
pub fn to_csv(d: &Detections) -> String {
    let mut out =
        String::from("template,detect_time,origin_time,cc_sum,mean_cc,threshold,mad,n_channels\n");
    for r in &d.rows {
        let t = r.template as usize;
        out.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6},{:.6},{}\n",
            d.templates.ids[t],
            epoch::format_time(r.time_ns),
            epoch::format_time(r.time_ns - d.templates.origin_offsets[t]),
            r.cc_sum,
            r.mean_cc,
            r.threshold,
            r.mad,
            r.n_channels
        ));
    }
    out
}
