//! The mixed-precision correlation: its geometry, how templates are
//! grouped for it, and the bound on its error that makes screening exact
//! ([`super::screen`]).
//!
//! Per data channel, the correlations of a group of up to [`GROUP`]
//! templates at a tile of lags are a matrix product: the Hankel view of
//! the data (lags × template samples, `H[j][i] = x[j + i]`) times the
//! templates (template samples × templates). On tensor cores (`wmma`, fp16
//! inputs, fp32 accumulation, from sm_70) a 16 × 16 fragment of `H` is
//! read from shared memory with a leading dimension of 16, which a Hankel
//! matrix does not have (its rows are one sample apart); but rows 16 lags
//! apart are: `x[q + 16r + i]` is row-major with leading dimension 16 in
//! the copy of the data shifted by `q`. So a block stages [`SHIFTS`] = 16
//! shifted copies of its data in fp16 and fragment `(q, r)` holds lags
//! `q + 16r` — every lag once over `q = 0..16`. See kernels/README.md
//! for the kernel, its traffic and its expected speed.
//!
//! A template needs its channel's lags `k + pad`, and the pads of a group's
//! templates on one channel differ: a block computes the data lags
//! `[k0 + min pad, k0 + min pad + TILE + SPREAD)` of the channel for its
//! [`TILE`] stack lags from `k0`, so every member's pad on every channel
//! must lie within [`SPREAD`] of the group's smallest: [`group_templates`]
//! forms the groups so.

use std::fmt;
use std::str::FromStr;

use super::StackTemplate;
use crate::error::{Error, Result};

/// Which stack kernel a GPU runs (`--precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The fastest kernel measured correct on the hardware at hand: fp32
    /// until a GPU run has shown the mixed kernel correct and faster.
    #[default]
    Auto,
    Fp32,
    /// Tensor cores (fp16 inputs, fp32 sums) screen; lags near the
    /// threshold are recomputed in fp32, so detections are fp32's.
    Mixed,
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Precision> {
        match s {
            "auto" => Ok(Precision::Auto),
            "fp32" => Ok(Precision::Fp32),
            "mixed" => Ok(Precision::Mixed),
            _ => Err(Error::Input(format!(
                "--precision {s}: expected auto, fp32 or mixed"
            ))),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Mixed => "mixed",
        })
    }
}

impl Precision {
    /// Whether a GPU of compute capability `major`.x runs the mixed kernel:
    /// when asked (it needs tensor cores, sm_70 and later); `auto` does not
    /// yet, no GPU run having measured it.
    pub fn uses_mixed(self, major: i32) -> bool {
        self == Precision::Mixed && major >= 7
    }
}

/// Templates per block: the `n` of a 16 × 16 × 16 fragment.
pub const GROUP: usize = 16;
/// Stack lags per block.
pub const TILE: usize = 1024;
/// The most a group's pads on one channel may differ (lags).
pub const SPREAD: usize = 256;
/// Data lags a block computes per channel.
pub const DATA_LAGS: usize = TILE + SPREAD;
/// Shifted copies of the data: lags `q + 16r` for `q < 16`.
pub const SHIFTS: usize = 16;
/// Template samples staged at a time (a multiple of 16).
pub const CHUNK: usize = 128;
/// Rows of a fragment (lags), columns (templates) and depth (samples).
pub const FRAG: usize = 16;
/// Dynamic shared memory of a block (MIXED_SHARED_BYTES in mixed.cu): the
/// shifted fp16 copies, whose room the fp32 products take over, and the
/// templates' fp16 chunk.
pub const SHARED_BYTES: usize = {
    let copies = SHIFTS * (DATA_LAGS - FRAG + CHUNK) * 2;
    let products = SHIFTS * GROUP * (DATA_LAGS / SHIFTS) * 4;
    let union = if copies > products { copies } else { products };
    union + GROUP * CHUNK * 2
};

/// The power of two `2^(14 − ⌈log2 max⌉)` that brings a block's largest
/// magnitude `max` into (2^13, 2^14], where fp16 keeps 11 significant bits
/// (mixed.cu's `scale_for`, which takes `⌈log2⌉` from the float's bits the
/// same way); 1 for 0 or a non-finite maximum.
pub fn scale_for(max: f32) -> f32 {
    if !(max > 0.0 && max.is_finite()) {
        return 1.0;
    }
    let bits = max.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let ceil_log2 = if bits & 0x7f_ffff != 0 { e + 1 } else { e };
    2f32.powi(14 - ceil_log2)
}

/// fp16's unit roundoff (round to nearest).
const U16: f64 = 1.0 / 2048.0;
/// fp32's unit roundoff doubled: tensor cores may truncate where IEEE
/// arithmetic rounds when they add products (Fasi, Higham, Mikaitis and
/// Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021).
const U32_TRUNCATED: f64 = 1.0 / 8_388_608.0;

/// `γ_n = n u / (1 − n u)`: the relative error bound of a sum of `n`
/// terms in any order.
fn gamma(n: usize, u: f64) -> f64 {
    let nu = n as f64 * u;
    nu / (1.0 - nu)
}

/// A bound on `|cc_mixed − cc_fp32|` for one channel's correlation at a
/// lag, as a multiple of `‖x − o‖ / ‖x − x̄‖` for that lag's window `x`
/// of M samples, its mean `x̄` and the offset `o` the block subtracted.
///
/// With `t̂` the normalized template (`‖t̂‖ = 1/√M`, `Σ t̂ = 0`) and `y =
/// x − o`, both paths compute `Σ t̂ y · √M / ‖x − x̄‖`. The mixed path
/// rounds `t̂` and `y` (scaled by powers of two, exactly, so that their
/// largest magnitude is at least 2^13) to fp16: relative error `u` each
/// where normal, an absolute `2^-25` (scaled) where subnormal; their
/// products are exact in fp32, and the M products are summed with error
/// `γ_M` (truncating additions). The fp32 path sums M `fmaf`s: `γ_M`
/// again. By Cauchy–Schwarz `Σ |t̂||y| ≤ ‖t̂‖ ‖y‖`, so
/// `|Δcc| ≤ (2u + u² + 2 γ_M (1 + u)² + 2 √M 2^-38) · ‖y‖ / ‖x − x̄‖`.
pub fn channel_error_coefficient(m: usize) -> f64 {
    let g = gamma(m, U32_TRUNCATED);
    2.0 * U16 + U16 * U16 + 2.0 * g * (1.0 + U16).powi(2) + 2.0 * (m as f64).sqrt() * 2f64.powi(-38)
}

/// One data channel of a group as a block of the mixed kernel sees it:
/// each member's window there (none where the member has none). A
/// template with two windows on one data channel (a P and an S window of
/// one SEED id) has them in two entries, its first window by pad in
/// `ordinal` 0, the second in 1.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupChannel {
    /// Index into the day's channels.
    pub channel: usize,
    /// Which of a member's windows on that channel, by pad.
    pub ordinal: usize,
    /// The smallest pad among the members' windows here.
    pub min_pad: usize,
    /// Per member slot: (template channel index, pad, weight).
    pub slots: Vec<Option<(usize, usize, f32)>>,
}

/// Up to [`GROUP`] templates computed by the same blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Indices of the member templates.
    pub members: Vec<usize>,
    pub channels: Vec<GroupChannel>,
}

/// A template's windows as (template channel index, data channel,
/// ordinal among its windows on that channel by pad, pad).
fn windows(t: &StackTemplate) -> Vec<(usize, usize, usize, usize)> {
    let mut order: Vec<usize> = (0..t.channels.len()).collect();
    order.sort_by_key(|&i| (t.channels[i].channel, t.channels[i].pad, i));
    let mut out: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(order.len());
    for i in order {
        let c = &t.channels[i];
        let ordinal = out
            .last()
            .filter(|w| w.1 == c.channel)
            .map_or(0, |w| w.2 + 1);
        out.push((i, c.channel, ordinal, c.pad));
    }
    out
}

impl Group {
    fn entry(&self, channel: usize, ordinal: usize) -> Option<usize> {
        self.channels
            .iter()
            .position(|g| g.channel == channel && g.ordinal == ordinal)
    }

    /// Whether template `t` can join: room, and each of its windows within
    /// [`SPREAD`] of the members' windows in the same entry.
    fn admits(&self, t: &StackTemplate) -> bool {
        self.members.len() < GROUP
            && windows(t).iter().all(|&(_, ch, ord, pad)| {
                self.entry(ch, ord).map_or(true, |e| {
                    let pads = self.channels[e].slots.iter().flatten().map(|s| s.1);
                    let (lo, hi) = pads.fold((pad, pad), |(lo, hi), p| (lo.min(p), hi.max(p)));
                    hi - lo <= SPREAD
                })
            })
    }

    fn add(&mut self, index: usize, t: &StackTemplate) {
        let slot = self.members.len();
        self.members.push(index);
        for g in &mut self.channels {
            g.slots.push(None);
        }
        for (ci, ch, ord, pad) in windows(t) {
            let e = self.entry(ch, ord).unwrap_or_else(|| {
                self.channels.push(GroupChannel {
                    channel: ch,
                    ordinal: ord,
                    min_pad: pad,
                    slots: vec![None; slot + 1],
                });
                self.channels.len() - 1
            });
            let g = &mut self.channels[e];
            g.min_pad = g.min_pad.min(pad);
            g.slots[slot] = Some((ci, pad, t.channels[ci].weight));
        }
    }
}

/// Groups of templates for the mixed kernel, every template in one: each
/// joins the first of the last few open groups that admits it (templates
/// of neighbouring events, which catalogues list together, share channels
/// and have close moveouts), else opens a new one.
pub fn group_templates(templates: &[StackTemplate]) -> Vec<Group> {
    // How many of the latest groups a template tries before opening one.
    const LOOK_BACK: usize = 8;
    let mut groups: Vec<Group> = Vec::new();
    for (i, t) in templates.iter().enumerate() {
        let from = groups.len().saturating_sub(LOOK_BACK);
        match groups[from..].iter_mut().find(|g| g.admits(t)) {
            Some(g) => g.add(i, t),
            None => {
                let mut g = Group {
                    members: Vec::new(),
                    channels: Vec::new(),
                };
                g.add(i, t);
                groups.push(g);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::correlate::StackChannel;

    fn template(chans: &[(usize, usize)]) -> StackTemplate {
        StackTemplate {
            channels: chans
                .iter()
                .map(|&(channel, pad)| StackChannel {
                    channel,
                    pad,
                    weight: 1.0,
                    waveform: Arc::from(vec![0.0f32; 4]),
                })
                .collect(),
        }
    }

    #[test]
    fn groups_hold_close_moveouts_and_sixteen_members() {
        let mut ts: Vec<StackTemplate> =
            (0..20).map(|i| template(&[(0, i), (1, 300 + i)])).collect();
        // Far moveout on channel 1: not with the others.
        ts.push(template(&[(1, 0), (2, 5)]));
        // Two windows on one channel (P and S of one SEED id), twice.
        ts.push(template(&[(3, 400), (3, 0)]));
        ts.push(template(&[(3, 10), (3, 420)]));
        let groups = group_templates(&ts);
        let members: Vec<Vec<usize>> = groups.iter().map(|g| g.members.clone()).collect();
        assert_eq!(members[0], (0..16).collect::<Vec<_>>());
        assert_eq!(members[1], vec![16, 17, 18, 19, 21, 22]);
        assert_eq!(members[2], vec![20]);
        assert_eq!(groups.len(), 3);
        // Channel 3's P windows in one entry, its S windows in another.
        let ch3: Vec<&GroupChannel> = groups[1]
            .channels
            .iter()
            .filter(|c| c.channel == 3)
            .collect();
        assert_eq!(ch3.len(), 2);
        assert_eq!((ch3[0].ordinal, ch3[0].min_pad), (0, 0));
        assert_eq!((ch3[1].ordinal, ch3[1].min_pad), (1, 400));
        assert_eq!(ch3[1].slots[4], Some((0, 400, 1.0)));
        for g in &groups {
            for c in &g.channels {
                assert_eq!(c.slots.len(), g.members.len());
                let pads: Vec<usize> = c.slots.iter().flatten().map(|s| s.1).collect();
                assert_eq!(c.min_pad, *pads.iter().min().unwrap());
                assert!(pads.iter().max().unwrap() - c.min_pad <= SPREAD);
            }
            // Every window of every member once.
            for (slot, &t) in g.members.iter().enumerate() {
                let mut used: Vec<usize> = g
                    .channels
                    .iter()
                    .filter_map(|c| c.slots[slot].map(|s| s.0))
                    .collect();
                used.sort_unstable();
                assert_eq!(used, (0..ts[t].channels.len()).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn the_launch_asks_for_the_shared_memory_the_kernel_lays_out() {
        // static_assert(MIXED_SHARED_BYTES == 86016) in mixed.cu.
        assert_eq!(SHARED_BYTES, 86016);
    }

    #[test]
    fn the_bound_is_dominated_by_fp16_rounding() {
        let c = channel_error_coefficient(800);
        assert!(c > 2.0 / 2048.0 && c < 1.2 * 2.0 / 2048.0, "{c}");
    }
}
