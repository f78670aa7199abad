//! The fp32 kernel's value at single lags, on the host: what
//! `correlate_stack` (kernels/stack.cu) computes for a lag, operation for
//! operation — the tile's offset, `fmaf` in template order, × 1/σ, clip,
//! `fmaf` into the stack in channel order — so bit for bit the same value.
//! The mixed-precision path recomputes the lags its screen leaves with it
//! (a few per template and day), so that its detections are the fp32
//! path's; the kernel's CPU model checks that the two agree bit for bit.

use super::kernels::{STACK_PROBES, STACK_TILE};
use crate::correlate::{DayView, StackTemplate};

/// Stack lag `k` of `t` as `correlate_stack` computes it with `zero_tail`:
/// 0 where some channel's window does not fit before the data end.
pub fn stack_at(day: &DayView, t: &StackTemplate, k: usize) -> f32 {
    let (n, n_lags, m) = (day.len, day.n_lags(), day.template_len);
    if k + t.max_pad() >= n_lags {
        return 0.0;
    }
    let k0 = k / STACK_TILE * STACK_TILE;
    let mut sum = 0f32;
    for c in &t.channels {
        let ch = &day.channels[c.channel];
        let (j0, j) = (k0 + c.pad, k + c.pad);
        let o = data_offset(ch.data, j0, (j0 + STACK_TILE + m - 1).min(n));
        let mut acc = 0f32;
        for (i, &w) in c.waveform.iter().enumerate() {
            let x = ch.data.get(j + i).map_or(0.0, |&v| v - o);
            acc = w.mul_add(x, acc);
        }
        if j < n_lags {
            // fmaxf, fminf: not clamp, which differs on NaN.
            #[allow(clippy::manual_clamp)]
            let cc = (acc * ch.norm.inv_std[j]).max(-1.0).min(1.0);
            sum = c.weight.mul_add(cc, sum);
        }
    }
    sum
}

/// `data_offset` of offset.cuh: the lanes of a warp probe PROBES samples
/// evenly spread over `[j0, e)`, and the lane whose value has rank
/// `(count − 1) / 2` among the nonzero ones (ties by lane) gives it.
pub fn data_offset(xc: &[f32], j0: usize, e: usize) -> f32 {
    assert_eq!(STACK_PROBES, 32, "one probe per lane");
    let v: [f32; 32] = std::array::from_fn(|lane| {
        if j0 < e {
            xc[j0 + (2 * lane + 1) * (e - j0) / (2 * STACK_PROBES)]
        } else {
            0.0
        }
    });
    let ok = |l: usize| v[l] != 0.0;
    let valid: u32 = (0..32).filter(|&l| ok(l)).map(|l| 1u32 << l).sum();
    let count = valid.count_ones() as i32;
    let rank = |lane: usize| {
        (0..32)
            .filter(|&l| (valid >> l) & 1 == 1 && (v[l] < v[lane] || (v[l] == v[lane] && l < lane)))
            .count() as i32
    };
    let median: u32 = (0..32)
        .filter(|&l| ok(l) && rank(l) == (count - 1) / 2)
        .map(|l| 1u32 << l)
        .sum();
    if median != 0 {
        v[median.trailing_zeros() as usize]
    } else {
        0.0
    }
}
