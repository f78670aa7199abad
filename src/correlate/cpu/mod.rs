//! CPU backend: overlap-save FFT correlation, parallel with rayon, or for
//! short templates direct dot products (module `direct`); [`Method`] says
//! which, chosen per template length.
//!
//! The day is cut into blocks of `L` samples that overlap by `M − 1`, so each
//! block yields `S = L − M + 1` valid lags. Each channel's block spectra are
//! computed once per segment of blocks and reused by every template of the
//! batch; template spectra are computed once per batch. Each template owns its
//! stacked trace, so groups of templates run in parallel without locks, and
//! every buffer of the hot loop is allocated once per worker. The spectrum
//! product is folded into the inverse transform ([`inverse`]).

mod direct;
pub mod inverse;

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::{Backend, DayView, StackChannel, StackTemplate};
use crate::error::Result;
use crate::timing::{self, Stage};
use inverse::{InverseScratch, ProductInverse};

/// Templates correlated together, block by block, by one worker: the
/// block's data spectra and 1/σ, read by the first, are in cache for the
/// others. On the day workload, alternating runs: 4 took 44.8–46.5 s,
/// one at a time 49.4–50.6 s, 8 46.9–48.5 s (fewer, longer tasks).
const GROUP: usize = 4;

/// Spectra of one segment of blocks are kept under this many bytes: with
/// the segment's moving 1/σ (about as large again) within the last-level
/// cache, so that every template of a batch finds both there (6 MiB ran the
/// day workload in 47.4 s against 49.0 s for 16 MiB, back to back on a
/// 32 MiB L3).
const SEGMENT_BYTES: usize = 6 << 20;

/// FFT length for templates of `m` samples: the power of two at or above
/// 8 × M (at least 64). Longer blocks spread the per-block work (the real transforms'
/// pre- and post-processing, normalization and stacking) over more lags;
/// on the benchmark machine 8–10 × M beat 4–5 × M by 10–30 % (see
/// benches/RESULTS.md), and a block of 8192 still sits in L1/L2.
pub fn fft_len(m: usize) -> usize {
    (8 * m).next_power_of_two().max(64)
}

/// Where a channel with moveout `pad` lands in the stack for a block of
/// lags from `j0`: lag j of the channel goes to stack index j − pad, so its
/// first `skip` lags fall before the stack and the rest go from `k0` on.
fn landing(j0: usize, pad: usize) -> (usize, usize) {
    let skip = pad.saturating_sub(j0);
    (skip, j0 + skip - pad)
}

/// Templates of at most this many samples are correlated directly, longer
/// ones by FFT: where the two met on the benchmark machine (benches/RESULTS.md,
/// `cargo bench --bench stages -- method`).
pub const DIRECT_MAX_LEN: usize = 32;

/// How the CPU correlates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Overlap-save FFT with blocks of this length.
    Fft(usize),
    /// Dot products in the time domain.
    Direct,
}

impl Method {
    /// The planner's choice for templates of `m` samples.
    pub fn for_len(m: usize) -> Method {
        if m <= DIRECT_MAX_LEN {
            Method::Direct
        } else {
            Method::Fft(fft_len(m))
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct CpuBackend {
    /// `None` lets [`Method::for_len`] choose from the template length.
    method: Option<Method>,
}

impl CpuBackend {
    pub fn new() -> CpuBackend {
        CpuBackend::default()
    }

    /// A backend that always correlates by `method`; an FFT length is at
    /// least the template length, rounded up to a multiple of 4.
    pub fn with_method(method: Method) -> CpuBackend {
        CpuBackend {
            method: Some(method),
        }
    }
}

struct Plan {
    l: usize,
    s: usize,
    simd: Simd,
    r2c: Arc<dyn RealToComplex<f32>>,
    inverse: ProductInverse,
}

/// The elementwise loops of the hot path — spectrum products with the
/// inverse's preprocessing ([`inverse`]), and normalize-clip-stack —
/// compiled for the baseline CPU and, chosen at run time where the CPU has
/// them, with AVX2 and FMA (as RustFFT chooses its kernels), so one binary
/// runs everywhere and uses wide vectors where it can.
#[derive(Debug, Clone, Copy)]
struct Simd {
    avx2: bool,
}

/// `stack += w · clip(y · inv_std, ±1)`: one channel's CC, normalized,
/// added at its moveout.
#[inline(always)]
fn accumulate_loop(dst: &mut [f32], y: &[f32], inv_std: &[f32], w: f32) {
    for ((d, &y), &is) in dst.iter_mut().zip(y).zip(inv_std) {
        *d += w * (y * is).clamp(-1.0, 1.0);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(dst: &mut [f32], y: &[f32], inv_std: &[f32], w: f32) {
    accumulate_loop(dst, y, inv_std, w)
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        Simd { avx2 }
    }

    fn accumulate(self, dst: &mut [f32], y: &[f32], inv_std: &[f32], w: f32) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked in `detect`).
            return unsafe { accumulate_avx2(dst, y, inv_std, w) };
        }
        accumulate_loop(dst, y, inv_std, w)
    }
}

impl Plan {
    /// The plan for templates of `m` samples and blocks of `l`, rounded up
    /// to a multiple of 4 (as [`ProductInverse`] needs).
    fn new(m: usize, l: usize) -> Plan {
        assert!(l >= m, "FFT length {l} is shorter than the template ({m})");
        let l = l.next_multiple_of(4);
        let simd = Simd::detect();
        Plan {
            l,
            s: l - m + 1,
            simd,
            r2c: RealFftPlanner::<f32>::new().plan_fft_forward(l),
            inverse: ProductInverse::with_avx2(l, simd.avx2),
        }
    }

    fn bins(&self) -> usize {
        self.l / 2 + 1
    }

    /// Conjugated spectrum of a template channel, scaled by 1/L so that the
    /// unnormalized inverse transform yields the correlation directly.
    fn template_spectrum(&self, waveform: &[f32]) -> Vec<Complex<f32>> {
        let mut input = self.r2c.make_input_vec();
        input[..waveform.len()].copy_from_slice(waveform);
        let mut spec = self.r2c.make_output_vec();
        self.r2c
            .process(&mut input, &mut spec)
            .expect("buffer sizes from the plan");
        let scale = 1.0 / self.l as f32;
        spec.iter().map(|c| c.conj() * scale).collect()
    }

    fn scratch(&self) -> InverseScratch {
        self.inverse.scratch()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn stack(
        &self,
        day: &DayView,
        templates: &[StackTemplate],
        stacks: &mut [Vec<f32>],
    ) -> Result<()> {
        if !super::sized_stacks(day, templates, stacks) {
            return Ok(());
        }
        let m = day.template_len;
        let l = match self.method.unwrap_or_else(|| Method::for_len(m)) {
            Method::Fft(l) => l,
            Method::Direct => {
                direct::stack(day, templates, stacks);
                return Ok(());
            }
        };
        let plan = Plan::new(m, l.max(m));
        // Template spectra, once per batch.
        let tspec: Vec<Vec<Vec<Complex<f32>>>> = templates
            .par_iter()
            .map(|t| {
                let _t = timing::start(Stage::TemplateSpectra);
                t.channels
                    .iter()
                    .map(|c| plan.template_spectrum(&c.waveform))
                    .collect()
            })
            .collect();
        let used = UsedChannels::of(templates, day.channels.len());
        let orders: Vec<Vec<Entry>> = templates.chunks(GROUP).map(|g| used.order(g)).collect();
        let n_blocks = day.n_lags().div_ceil(plan.s);
        let per_block = used.ids.len() * plan.bins() * std::mem::size_of::<Complex<f32>>();
        let seg_blocks = (SEGMENT_BYTES / per_block.max(1)).clamp(1, n_blocks);
        let mut spectra =
            vec![Complex::<f32>::default(); seg_blocks * used.ids.len() * plan.bins()];
        for first in (0..n_blocks).step_by(seg_blocks) {
            let blocks = first..(first + seg_blocks).min(n_blocks);
            let seg = Segment::transform(&plan, day, &used, blocks, &mut spectra);
            templates
                .par_chunks(GROUP)
                .zip(tspec.par_chunks(GROUP))
                .zip(stacks.par_chunks_mut(GROUP))
                .zip(&orders)
                .for_each_init(
                    || plan.scratch(),
                    |w, (((t, tspec), stack), order)| {
                        seg.correlate(&plan, w, t, tspec, order, stack)
                    },
                );
        }
        Ok(())
    }
}

/// The channels a batch uses, in order, and where each one's spectra sit
/// in a segment (`slot[channel]`).
struct UsedChannels {
    ids: Vec<usize>,
    slot: Vec<usize>,
}

impl UsedChannels {
    fn of(templates: &[StackTemplate], n_channels: usize) -> UsedChannels {
        let mut ids: Vec<usize> = templates
            .iter()
            .flat_map(|t| t.channels.iter().map(|c| c.channel))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut slot = vec![usize::MAX; n_channels];
        for (i, &c) in ids.iter().enumerate() {
            slot[c] = i;
        }
        UsedChannels { ids, slot }
    }

    /// The channels of a group of templates in slot order, so that a
    /// block's channel, once read, serves every template of the group that
    /// uses it.
    fn order(&self, group: &[StackTemplate]) -> Vec<Entry> {
        let mut order: Vec<Entry> = group
            .iter()
            .enumerate()
            .flat_map(|(ti, t)| {
                t.channels
                    .iter()
                    .enumerate()
                    .map(move |(ci, c)| (self.slot[c.channel], ti, ci))
            })
            .collect();
        order.sort_unstable();
        order
    }
}

/// A template channel of a group: `(slot, template, channel of the template)`.
type Entry = (usize, usize, usize);

/// A run of blocks whose spectra, for every used channel, are computed once
/// and then used by every template of the batch: `[block][slot][bin]`.
struct Segment<'a> {
    day: &'a DayView<'a>,
    used: &'a UsedChannels,
    blocks: Range<usize>,
    /// Whether a block of a channel holds at least one valid window: those
    /// without one (gaps, days with little data) are neither transformed
    /// nor correlated.
    active: Vec<bool>,
    spectra: &'a [Complex<f32>],
}

impl<'a> Segment<'a> {
    fn transform(
        plan: &Plan,
        day: &'a DayView<'a>,
        used: &'a UsedChannels,
        blocks: Range<usize>,
        spectra: &'a mut [Complex<f32>],
    ) -> Segment<'a> {
        let (s, n_used, n_lags) = (plan.s, used.ids.len(), day.n_lags());
        let at = |i: usize| (blocks.start + i / n_used, used.ids[i % n_used]);
        let active: Vec<bool> = (0..blocks.len() * n_used)
            .map(|i| {
                let (b, c) = at(i);
                day.channels[c].norm.inv_std[b * s..((b + 1) * s).min(n_lags)]
                    .iter()
                    .any(|&v| v > 0.0)
            })
            .collect();
        let spectra = &mut spectra[..blocks.len() * n_used * plan.bins()];
        spectra
            .par_chunks_mut(plan.bins())
            .enumerate()
            .filter(|(i, _)| active[*i])
            .for_each_init(
                || (plan.r2c.make_input_vec(), plan.r2c.make_scratch_vec()),
                |(input, scratch), (i, out)| {
                    let _t = timing::start(Stage::Forward);
                    let (b, c) = at(i);
                    let x = day.channels[c].data;
                    let (start, end) = (b * s, (b * s + plan.l).min(x.len()));
                    input[..end - start].copy_from_slice(&x[start..end]);
                    input[end - start..].fill(0.0);
                    plan.r2c
                        .process_with_scratch(input, out, scratch)
                        .expect("buffer sizes from the plan");
                },
            );
        Segment {
            day,
            used,
            blocks,
            active,
            spectra,
        }
    }

    /// A group of templates' normalized correlations over the segment,
    /// stacked, block by block: the stacks' lags of the segment's blocks
    /// are written, not added to. Within a block the group goes channel by
    /// channel, in `order` ([`UsedChannels::order`]), so that a channel's
    /// data spectrum and 1/σ, read from memory for the first template that
    /// uses it, are in cache for the others.
    fn correlate(
        &self,
        plan: &Plan,
        w: &mut InverseScratch,
        templates: &[StackTemplate],
        tspecs: &[Vec<Vec<Complex<f32>>>],
        order: &[Entry],
        stacks: &mut [Vec<f32>],
    ) {
        let (s, n_lags) = (plan.s, self.day.n_lags());
        for (bi, b) in self.blocks.clone().enumerate() {
            let j0 = b * s;
            let valid = s.min(n_lags - j0);
            // Blocks before this one add only below j0 (lag j lands on
            // j − pad ≤ j), so this block is the first to touch j0.. and
            // clears it, in cache, before adding (the first batch's page
            // faults fall here: counted as stacking).
            let clear = timing::start(Stage::Stack);
            for stack in stacks.iter_mut() {
                stack[j0..j0 + valid].fill(0.0);
            }
            drop(clear);
            for &(slot, ti, ci) in order {
                let block = bi * self.used.ids.len() + slot;
                let channel = &templates[ti].channels[ci];
                let spectrum = &tspecs[ti][ci];
                self.correlate_block(
                    plan,
                    w,
                    (block, j0, valid),
                    channel,
                    spectrum,
                    &mut stacks[ti],
                );
            }
        }
    }

    /// One template channel on one block (the `block`-th spectrum of the
    /// segment, starting at lag `j0`, `valid` lags), added to its stack.
    fn correlate_block(
        &self,
        plan: &Plan,
        w: &mut InverseScratch,
        (block, j0, valid): (usize, usize, usize),
        c: &StackChannel,
        ts: &[Complex<f32>],
        stack: &mut [f32],
    ) {
        if !self.active[block] {
            return;
        }
        let (skip, k0) = landing(j0, c.pad);
        if skip >= valid {
            return;
        }
        let bins = plan.bins();
        let xs = &self.spectra[block * bins..(block + 1) * bins];
        let cc = plan.inverse.process(xs, ts, w);
        let _t = timing::start(Stage::Stack);
        let inv = &self.day.channels[c.channel].norm.inv_std[j0..j0 + valid];
        let dst = &mut stack[k0..k0 + valid - skip];
        plan.simd
            .accumulate(dst, &cc[skip..valid], &inv[skip..], c.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The baseline loop and the one chosen at run time agree.
    #[test]
    fn simd_paths_agree() {
        let n = 1037;
        let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 3.0).collect();
        let inv: Vec<f32> = (0..n).map(|i| if i % 7 == 0 { 0.0 } else { 0.5 }).collect();
        let (base, best) = (Simd { avx2: false }, Simd::detect());
        let (mut d1, mut d2) = (vec![0.25f32; n], vec![0.25f32; n]);
        base.accumulate(&mut d1, &y, &inv, 0.5);
        best.accumulate(&mut d2, &y, &inv, 0.5);
        assert!(d1.iter().zip(&d2).all(|(a, b)| (a - b).abs() < 1e-6));
        // Clipped at ±1 before weighting.
        assert!(d1.iter().all(|v| (v - 0.25).abs() <= 0.5 + 1e-6));
        assert_eq!(d1[0], 0.25);
    }
}
