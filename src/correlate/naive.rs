//! Direct time-domain NCC and stack in f64: slow, simple, and independent of
//! the FFT path and of [`super::ChannelNorm`]. It is the oracle the fast
//! backends are tested against.

/// Pearson correlation of `template` with every window of `data`
/// (`data.len() − M + 1` lags); 0 where the window touches a masked sample,
/// or the window or the template is flat.
pub fn ncc(template: &[f32], data: &[f32], mask: &[bool]) -> Vec<f64> {
    let m = template.len();
    if data.len() < m || m == 0 {
        return Vec::new();
    }
    let t: Vec<f64> = template.iter().map(|&v| v as f64).collect();
    let tm = t.iter().sum::<f64>() / m as f64;
    let t: Vec<f64> = t.iter().map(|v| v - tm).collect();
    let tn = t.iter().map(|v| v * v).sum::<f64>().sqrt();
    (0..=data.len() - m)
        .map(|j| {
            let w = &data[j..j + m];
            if mask[j..j + m].iter().any(|&p| !p) || w.iter().all(|&v| v == w[0]) || tn == 0.0 {
                return 0.0;
            }
            let w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let wm = w.iter().sum::<f64>() / m as f64;
            let var = w.iter().map(|v| (v - wm).powi(2)).sum::<f64>() / m as f64;
            let mean_sq = w.iter().map(|v| v * v).sum::<f64>() / m as f64;
            if var <= 1e-12 * mean_sq {
                return 0.0;
            }
            let dot: f64 = t.iter().zip(&w).map(|(a, b)| a * (b - wm)).sum();
            (dot / (tn * (var * m as f64).sqrt())).clamp(-1.0, 1.0)
        })
        .collect()
}

/// One channel of a template for [`stack`]: raw waveform, data channel
/// index, moveout in samples and weight.
pub struct Channel<'a> {
    pub waveform: &'a [f32],
    pub channel: usize,
    pub pad: usize,
    pub weight: f64,
}

/// `stack[k] = Σ_c w_c · ncc_c[k + pad_c]` over `N − M + 1` lags.
pub fn stack(template: &[Channel], data: &[&[f32]], masks: &[&[bool]]) -> Vec<f64> {
    let Some(first) = template.first() else {
        return Vec::new();
    };
    let n_lags = (data[first.channel].len() + 1).saturating_sub(first.waveform.len());
    let mut out = vec![0.0; n_lags];
    for c in template {
        let cc = ncc(c.waveform, data[c.channel], masks[c.channel]);
        for (k, o) in out.iter_mut().enumerate() {
            if let Some(v) = cc.get(k + c.pad) {
                *o += c.weight * v;
            }
        }
    }
    out
}
