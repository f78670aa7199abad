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
//!
//! On Hopper (compute capability 9.0) the [`MixedKernel::Wgmma`] kernel
//! runs instead ([`sm90`]): groups of 64, the data as `wgmma`'s B operand
//! through a matrix descriptor over 8 shifted copies, and the pads taken
//! up by the template rows ([`Layout`]) rather than by the data lags.

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
    /// The mixed kernel a GPU of compute capability `major`.`minor` runs:
    /// when asked, and where it has tensor cores (sm_70 and later); `auto`
    /// does not yet, no GPU run having measured it.
    pub fn mixed_kernel(self, major: i32, minor: i32) -> Option<MixedKernel> {
        (self == Precision::Mixed).then(|| MixedKernel::for_gpu(major, minor))?
    }
}

/// The two mixed-precision kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixedKernel {
    /// `wmma` (mixed.cu), from sm_70.
    Wmma,
    /// `wgmma` (mixed_sm90.cu), sm_90 only: Hopper's full tensor rate.
    Wgmma,
}

impl MixedKernel {
    /// The kernel for compute capability `major`.`minor`, if it has tensor
    /// cores. `wgmma` is sm_90a's alone: later GPUs do not run its PTX.
    pub fn for_gpu(major: i32, minor: i32) -> Option<MixedKernel> {
        match (major, minor) {
            (9, 0) => Some(MixedKernel::Wgmma),
            (m, _) if m >= 7 => Some(MixedKernel::Wmma),
            _ => None,
        }
    }

    /// How the kernel's groups are formed.
    pub fn shape(self) -> Shape {
        match self {
            MixedKernel::Wmma => Shape {
                group: GROUP,
                spread: SPREAD,
            },
            MixedKernel::Wgmma => Shape {
                group: sm90::GROUP,
                spread: sm90::SPREAD,
            },
        }
    }
}

/// The most members of a group, and how far their pads on one channel
/// may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub group: usize,
    pub spread: usize,
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

/// The geometry of the sm_90 kernel (mixed_sm90.cu; kernels/README.md,
/// "The sm_90 kernel"). A block stacks [`TILE`](sm90::TILE) lags of a
/// group of [`GROUP`](sm90::GROUP) templates: `wgmma.m64n64k16` with the
/// members as A (from registers) and the data as B, read through a matrix
/// descriptor from [`SHIFTS`](sm90::SHIFTS) shifted fp16 copies (columns =
/// lags `q + 8n`). Each member's window sits in a template row of
/// [`k_len`](sm90::k_len) samples at its pad less the entry's smallest,
/// so that every member's product at a column is its correlation at that
/// stack lag.
pub mod sm90 {
    /// Templates per block: wgmma's `m`.
    pub const GROUP: usize = 64;
    /// Shifted copies of the data.
    pub const SHIFTS: usize = 8;
    /// Columns (lags `q + 8n`) of each shift's product: wgmma's `n`.
    pub const COLUMNS: usize = 64;
    /// Stack lags per block.
    pub const TILE: usize = SHIFTS * COLUMNS;
    /// The most a group's pads on one channel may differ: they widen every
    /// template row of that channel, at a cost of spread / (M + spread).
    pub const SPREAD: usize = 256;
    /// Template samples staged at a time.
    pub const CHUNK: usize = 64;
    /// fp16 samples between the staged rows of the templates (conflict-free
    /// fragment loads).
    pub const A_STRIDE: usize = 72;
    /// Threads per block: two warpgroups.
    pub const THREADS: usize = 256;
    /// Accumulators per thread: four m64n64 products.
    pub const VALUES: usize = SHIFTS / (THREADS / 128) * GROUP * COLUMNS / 128;
    /// fp16 samples of a shifted copy that one chunk's products read.
    pub const COPY: usize = 8 * (COLUMNS - 1) + CHUNK;
    /// Dynamic shared memory (WG_SHARED_BYTES in mixed_sm90.cu): the
    /// threads' stack sums, then two staging buffers (shifted copies and
    /// the templates' chunk).
    pub const SHARED_BYTES: usize =
        VALUES * THREADS * 4 + 2 * (SHIFTS * COPY * 2 + GROUP * A_STRIDE * 2);

    /// Samples of a template row for templates of `m` samples whose pads
    /// on the channel span `spread`: rounded up to whole k16 steps.
    pub fn k_len(m: usize, spread: usize) -> usize {
        (m + spread).next_multiple_of(16)
    }
}

/// The power of two `2^(14 − ⌈log2 max⌉)` that brings a block's largest
/// magnitude `max` into (2^13, 2^14], where fp16 keeps 11 significant bits
/// (`scale_for` in kernels/fp16.cuh, which takes `⌈log2⌉` from the float's bits the
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
    /// the spread of the members' windows in the same entry.
    fn admits(&self, t: &StackTemplate, shape: Shape) -> bool {
        self.members.len() < shape.group
            && windows(t).iter().all(|&(_, ch, ord, pad)| {
                self.entry(ch, ord).map_or(true, |e| {
                    let pads = self.channels[e].slots.iter().flatten().map(|s| s.1);
                    let (lo, hi) = pads.fold((pad, pad), |(lo, hi), p| (lo.min(p), hi.max(p)));
                    hi - lo <= shape.spread
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

/// Groups of templates for a mixed kernel of `shape`, every template in
/// one: each joins the first of the last few open groups that admits it
/// (templates of neighbouring events, which catalogues list together,
/// share channels and have close moveouts), else opens a new one.
pub fn group_templates(templates: &[StackTemplate], shape: Shape) -> Vec<Group> {
    // How many of the latest groups a template tries before opening one.
    const LOOK_BACK: usize = 8;
    let mut groups: Vec<Group> = Vec::new();
    for (i, t) in templates.iter().enumerate() {
        let from = groups.len().saturating_sub(LOOK_BACK);
        match groups[from..].iter_mut().find(|g| g.admits(t, shape)) {
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

/// A template batch in groups, laid out as a mixed kernel's arguments
/// (mixed.cu, mixed_sm90.cu): per channel entry of each group, the
/// members' windows scaled by a power of two and rounded to fp16 in rows
/// of `entry_k[e]` samples from `entry_wave[e]` (zeros elsewhere and for
/// empty slots). The wmma kernel's rows are M rounded up to 16, each window
/// at 0; the wgmma kernel's cover the entry's pads, each window at its pad
/// less the entry's smallest.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub kernel: MixedKernel,
    pub groups: usize,
    /// M rounded up to 16.
    pub mp: usize,
    /// The rows' samples, each an fp16 value (see [`Layout::fp16_bits`]).
    pub waves: Vec<f32>,
    pub entry_wave: Vec<i64>,
    pub entry_k: Vec<i32>,
    /// Group g's entries are `entry_first[g] .. entry_first[g + 1]`.
    pub entry_first: Vec<i32>,
    pub entry_chan: Vec<i32>,
    pub entry_min_pad: Vec<i32>,
    pub entry_tscale: Vec<f32>,
    /// Per entry and member slot (pad −1: no window there).
    pub slot_pad: Vec<i32>,
    pub slot_weight: Vec<f32>,
    /// Per group and member slot: the template's index in the batch (−1:
    /// empty slot) and its largest pad.
    pub member_row: Vec<i32>,
    pub member_max_pad: Vec<i32>,
}

impl Layout {
    /// `templates` of `m` samples in groups for `kernel`.
    pub fn new(templates: &[StackTemplate], m: usize, kernel: MixedKernel) -> Layout {
        Layout::with_rounding(templates, m, kernel, true)
    }

    /// The rows' samples as fp16 bits, as the kernels read them.
    pub fn fp16_bits(&self) -> Vec<u16> {
        self.waves
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect()
    }

    /// Without `round` the rows keep f32 samples: for the CPU model's check
    /// of the index arithmetic alone.
    pub(crate) fn with_rounding(
        templates: &[StackTemplate],
        m: usize,
        kernel: MixedKernel,
        round: bool,
    ) -> Layout {
        let shape = kernel.shape();
        let groups = group_templates(templates, shape);
        let mp = m.div_ceil(FRAG) * FRAG;
        let mut l = Layout {
            kernel,
            groups: groups.len(),
            mp,
            waves: Vec::new(),
            entry_wave: Vec::new(),
            entry_k: Vec::new(),
            entry_first: vec![0],
            entry_chan: Vec::new(),
            entry_min_pad: Vec::new(),
            entry_tscale: Vec::new(),
            slot_pad: Vec::new(),
            slot_weight: Vec::new(),
            member_row: Vec::new(),
            member_max_pad: Vec::new(),
        };
        for g in &groups {
            for e in &g.channels {
                l.add_entry(templates, (g, e), m, shape.group, round);
            }
            l.entry_first.push(l.entry_chan.len() as i32);
            for s in 0..shape.group {
                let t = g.members.get(s);
                l.member_row.push(t.map_or(-1, |&t| t as i32));
                l.member_max_pad
                    .push(t.map_or(0, |&t| templates[t].max_pad() as i32));
            }
        }
        l
    }

    fn add_entry(
        &mut self,
        templates: &[StackTemplate],
        (g, e): (&Group, &GroupChannel),
        m: usize,
        slots: usize,
        round: bool,
    ) {
        let window = |s: usize| {
            let slot = e.slots.get(s).copied().flatten();
            slot.map(|(ci, pad, w)| (&*templates[g.members[s]].channels[ci].waveform, pad, w))
        };
        let max = (0..slots)
            .filter_map(window)
            .flat_map(|(w, _, _)| w.iter())
            .fold(0f32, |a, v| a.max(v.abs()));
        let scale = scale_for(max);
        let spread = (0..slots)
            .filter_map(window)
            .map(|(_, pad, _)| pad - e.min_pad)
            .max()
            .unwrap_or(0);
        let k = match self.kernel {
            MixedKernel::Wmma => self.mp,
            MixedKernel::Wgmma => sm90::k_len(m, spread),
        };
        self.entry_wave.push(self.waves.len() as i64);
        self.entry_k.push(k as i32);
        for s in 0..slots {
            let w = window(s);
            let at = match (self.kernel, w) {
                (MixedKernel::Wgmma, Some((_, pad, _))) => pad - e.min_pad,
                _ => 0,
            };
            self.waves.extend((0..k).map(|i| match w {
                Some((w, _, _)) if (at..at + m).contains(&i) => {
                    let v = w[i - at] * scale;
                    if round {
                        half::f16::from_f32(v).to_f32()
                    } else {
                        v
                    }
                }
                _ => 0.0,
            }));
            self.slot_pad.push(w.map_or(-1, |(_, p, _)| p as i32));
            self.slot_weight.push(w.map_or(0.0, |(_, _, w)| w));
        }
        self.entry_chan.push(e.channel as i32);
        self.entry_min_pad.push(e.min_pad as i32);
        self.entry_tscale.push(scale);
    }
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
        let groups = group_templates(&ts, MixedKernel::Wmma.shape());
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

    /// The sm_90 kernel's groups hold 64, and its layout places each
    /// window at its pad less the entry's smallest, in rows that cover the
    /// entry's spread.
    #[test]
    fn sm90_groups_and_rows() {
        let mut ts: Vec<StackTemplate> =
            (0..70).map(|i| template(&[(0, i), (1, 300 + i)])).collect();
        ts.push(template(&[(1, 0), (2, 5)]));
        let groups = group_templates(&ts, MixedKernel::Wgmma.shape());
        let members: Vec<Vec<usize>> = groups.iter().map(|g| g.members.clone()).collect();
        assert_eq!(
            members,
            vec![(0..64).collect(), (64..70).collect(), vec![70]]
        );
        let l = Layout::with_rounding(&ts, 4, MixedKernel::Wgmma, false);
        assert_eq!(l.groups, 3);
        assert_eq!(l.entry_first, vec![0, 2, 4, 6]);
        // Group 0, channel 1: pads 300 .. 363, rows of 4 + 63 → 80 samples.
        assert_eq!(
            (l.entry_chan[1], l.entry_min_pad[1], l.entry_k[1]),
            (1, 300, 80)
        );
        let row = |e: usize, slot: usize| {
            let k = l.entry_k[e] as usize;
            &l.waves[l.entry_wave[e] as usize + slot * k..][..k]
        };
        // The waveforms are zeros: mark member 5's window to find it.
        let mut marked = ts.clone();
        marked[5].channels[1].waveform = Arc::from(vec![1.0f32; 4]);
        let lm = Layout::with_rounding(&marked, 4, MixedKernel::Wgmma, false);
        let k = lm.entry_k[1] as usize;
        let r = &lm.waves[lm.entry_wave[1] as usize + 5 * k..][..k];
        let at: Vec<usize> = (0..k).filter(|&i| r[i] != 0.0).collect();
        assert_eq!(at, vec![5, 6, 7, 8]);
        assert!(row(1, 5).iter().all(|&v| v == 0.0));
        assert_eq!(l.slot_pad[64 + 5], 305);
        // Group 1 has 6 members: slots 6 .. 63 empty.
        assert_eq!(l.member_row[64..70], [64, 65, 66, 67, 68, 69]);
        assert!(l.member_row[70..128].iter().all(|&r| r == -1));
        assert_eq!(
            l.waves.len(),
            l.entry_wave[5] as usize + 64 * l.entry_k[5] as usize
        );
    }

    #[test]
    fn the_launch_asks_for_the_shared_memory_the_kernel_lays_out() {
        // static_assert(MIXED_SHARED_BYTES == 86016) in mixed.cu.
        assert_eq!(SHARED_BYTES, 86016);
        // static_assert(WG_SHARED_BYTES == 167680) in mixed_sm90.cu.
        assert_eq!(sm90::SHARED_BYTES, 167680);
        assert_eq!(sm90::VALUES, 128);
    }

    #[test]
    fn the_bound_is_dominated_by_fp16_rounding() {
        let c = channel_error_coefficient(800);
        assert!(c > 2.0 / 2048.0 && c < 1.2 * 2.0 / 2048.0, "{c}");
    }
}
