//! A CPU model of the sm_90 kernel (kernels/mixed_sm90.cu) on the very
//! buffers the host uploads ([`Layout`]): block by block, each entry's
//! chunks staged as the kernel stages them (shifted fp16 copies of the
//! data less the tile's offset, times a power of two; the template rows'
//! chunk), the B operand read through the matrix descriptor's byte
//! offsets, the A operand gathered from the threads' fragment registers,
//! each thread's accumulators by the `m64n64` register layout, and the
//! epilogue's sums in the `[value][thread]` shared-memory layout. A wrong
//! offset, fragment or accumulator mapping puts a value at the wrong lag
//! or member, and the oracle tests of the parent module see it.

use half::f16;

use super::{Output, Rounding};
use crate::correlate::cuda::recompute::data_offset;
use crate::correlate::mixed::sm90::{CHUNK, COLUMNS, COPY, GROUP, SHIFTS, THREADS, TILE, VALUES};
use crate::correlate::mixed::{scale_for, Layout};

/// The descriptor's leading (along K) and stride (along N) byte offsets.
const LEADING: usize = 16;
const STRIDE: usize = 128;
/// Shifts per warpgroup, and accumulators per shift per thread.
const PER_WARPGROUP: usize = SHIFTS / (THREADS / 128);
const PER_SHIFT: usize = GROUP * COLUMNS / 128;

/// The day as the kernel reads it.
pub struct Day<'a> {
    pub x: &'a [f32],
    pub inv: &'a [f32],
    pub mean: &'a [f32],
    pub n: usize,
    pub n_lags: usize,
}

/// Thread `tid`'s warpgroup, warp within it, and lane's row group `g` and
/// column pair `c`.
fn thread(tid: usize) -> (usize, usize, usize, usize) {
    let lane = tid % 32;
    (tid / 128, (tid / 32) % 4, lane / 4, lane % 4)
}

/// Where the kernel's epilogue takes accumulator `v` of thread `tid` to
/// be (mixed_sm90.cu): (member row, stack lag offset in the tile).
/// Register r of shift h: row 16 warp + g + 8 (r / 2 % 2), column
/// 8 (r / 4) + 2c + r % 2, lag q + 8 column with q = 4 warpgroup + h.
fn value_at(tid: usize, v: usize) -> (usize, usize) {
    let (wg, warp, g, c) = thread(tid);
    let (h, r) = (v / PER_SHIFT, v % PER_SHIFT);
    let row = 16 * warp + g + 8 * ((r / 2) % 2);
    let col = 8 * (r / 4) + 2 * c + r % 2;
    (row, PER_WARPGROUP * wg + h + SHIFTS * col)
}

/// Which element of its m64n64 product the tensor cores leave in register
/// `r` of thread `tid` (the PTX ISA's `wgmma` f32 accumulator layout: warp
/// w rows 16w + g and + 8; register pairs along the columns, 8 apart):
/// (row, column).
fn held(tid: usize, r: usize) -> (usize, usize) {
    let (_, warp, g, c) = thread(tid);
    (
        16 * warp + g + 8 * ((r >> 1) & 1),
        8 * (r >> 2) + 2 * c + (r & 1),
    )
}

/// What the kernel loads into fragment register `i` of thread `tid` (the
/// `a[s][i]` loads of mixed_sm90.cu): (row, first of two samples) of the
/// staged chunk, from the step's first sample.
fn loaded(tid: usize, i: usize) -> (usize, usize) {
    let (_, warp, g, c) = thread(tid);
    let row = 16 * warp + g;
    match i {
        0 => (row, 2 * c),
        1 => (row + 8, 2 * c),
        2 => (row, 2 * c + 8),
        _ => (row + 8, 2 * c + 8),
    }
}

/// Where the tensor cores take fragment register `i` of thread `tid` to
/// be in the 64 × 16 A operand (the PTX ISA's register fragment layout
/// for `wgmma` `.f16` A: warp w of the warpgroup rows 16w .. 16w + 15;
/// registers 0–3: rows g, g + 8, g, g + 8 and samples 2c, 2c, 2c + 8,
/// 2c + 8, each with the next sample in its upper half).
fn taken(tid: usize, i: usize) -> (usize, usize) {
    let (_, warp, g, c) = thread(tid);
    (16 * warp + g + 8 * (i % 2), 2 * c + 8 * (i / 2))
}

/// The A operand of step `s` (64 members × 16 samples) as the tensor cores
/// receive it: each thread's registers as loaded from the staged rows `ts`
/// (64 × CHUNK), placed where the hardware takes them; every element once.
fn a_operand(ts: &[f32], s: usize) -> Vec<[f32; 16]> {
    let mut a = vec![[f32::NAN; 16]; GROUP];
    for tid in 0..128 {
        for i in 0..4 {
            let (row, col) = loaded(tid, i);
            let (at_row, at_col) = taken(tid, i);
            for half in 0..2 {
                assert!(
                    a[at_row][at_col + half].is_nan(),
                    "fragment element loaded twice"
                );
                a[at_row][at_col + half] = ts[row * CHUNK + 16 * s + col + half];
            }
        }
    }
    assert!(
        a.iter().flatten().all(|v| !v.is_nan()),
        "fragment element never loaded"
    );
    a
}

/// Element (k, n) of the B operand through a descriptor at `start` (a
/// byte offset into the staged copies): core matrices of 8 columns × 16
/// bytes, `LEADING` bytes apart along K and `STRIDE` bytes apart along N.
fn b_element(copies: &[f32], start: usize, k: usize, n: usize) -> f32 {
    let byte = start + (n % 8) * 16 + (n / 8) * STRIDE + (k % 8) * 2 + (k / 8) * LEADING;
    copies[byte / 2]
}

/// Runs the kernel over every group and tile.
pub fn correlate_stack_wgmma(
    day: &Day,
    l: &Layout,
    rounding: Rounding,
    coefficient: f32,
) -> Output {
    let rows = l.member_row.iter().filter(|&&r| r >= 0).count();
    let mut out = Output {
        stacks: vec![vec![f32::NAN; day.n_lags]; rows],
        bounds: vec![vec![0.0; day.n_lags]; rows],
    };
    for grp in 0..l.groups {
        for bx in 0..day.n_lags.div_ceil(TILE) {
            block(day, l, grp, bx * TILE, rounding, coefficient, &mut out);
        }
    }
    out
}

fn round(v: f32, r: Rounding) -> f32 {
    match r {
        Rounding::Fp16 => f16::from_f32(v).to_f32(),
        Rounding::None => v,
    }
}

/// One block: stack lags `k0 ..` of group `grp`.
fn block(
    day: &Day,
    l: &Layout,
    grp: usize,
    k0: usize,
    rounding: Rounding,
    coefficient: f32,
    out: &mut Output,
) {
    let (n, n_lags) = (day.n, day.n_lags);
    let mut sums = vec![0f32; VALUES * THREADS];
    let mut bound = [0f32; GROUP];
    let entries = l.entry_first[grp] as usize..l.entry_first[grp + 1] as usize;
    for e in entries {
        let ch = l.entry_chan[e] as usize;
        let xc = &day.x[ch * n..(ch + 1) * n];
        let j0 = k0 + l.entry_min_pad[e] as usize;
        let k = l.entry_k[e] as usize;
        let end = (j0 + TILE + k - 1).min(n);
        let o = data_offset(xc, j0, end);
        let max = (j0.min(end)..end)
            .map(|i| (xc[i] - o).abs())
            .fold(0f32, f32::max);
        let sd = scale_for(max);
        let live: Vec<bool> = (0..GROUP)
            .map(|t| l.member_row[grp * GROUP + t] >= 0)
            .collect();
        let acc = products(xc, (j0, o, sd), l, e, &live, rounding);
        let unscale = 1.0 / (sd * l.entry_tscale[e]);
        let pads = &l.slot_pad[e * GROUP..(e + 1) * GROUP];
        let weights = &l.slot_weight[e * GROUP..(e + 1) * GROUP];
        let mut ratio = [0f32; GROUP];
        for (tid, acc) in acc.iter().enumerate() {
            for (v, &a) in acc.iter().enumerate() {
                let (t, j) = value_at(tid, v);
                let (kk, pad) = (k0 + j, pads[t]);
                if pad < 0 || kk >= n_lags || kk + pad as usize >= n_lags {
                    continue;
                }
                let jj = ch * n_lags + kk + pad as usize;
                let is = day.inv[jj];
                // fmaxf, fminf: not clamp, which differs on NaN.
                #[allow(clippy::manual_clamp)]
                let cc = (a * unscale * is).max(-1.0).min(1.0);
                let s = &mut sums[v * THREADS + tid];
                *s = weights[t].mul_add(cc, *s);
                if is > 0.0 {
                    let d = (day.mean[jj] - o) * is;
                    ratio[t] = ratio[t].max((1.0 + d * d).sqrt());
                }
            }
        }
        for t in 0..GROUP {
            bound[t] += weights[t].abs() * coefficient * ratio[t];
        }
    }
    for tid in 0..THREADS {
        for v in 0..VALUES {
            let (t, j) = value_at(tid, v);
            let (row, kk) = (l.member_row[grp * GROUP + t], k0 + j);
            if row < 0 || kk >= n_lags {
                continue;
            }
            let max_pad = l.member_max_pad[grp * GROUP + t] as usize;
            let zero = kk + max_pad >= n_lags;
            out.stacks[row as usize][kk] = if zero { 0.0 } else { sums[v * THREADS + tid] };
            out.bounds[row as usize][kk] = bound[t];
        }
    }
}

/// Entry `e`'s accumulators, per thread: chunk by chunk, the staged copies
/// and template rows, and per k16 step and shift one m64n64k16 product
/// (its 16 products per element summed exactly, rounded to fp32 once: the
/// hardware's order of adds is not specified, and the bound allows any).
/// (Rows of empty member slots, zeros whose sums nobody reads, are
/// skipped: `live`.)
fn products(
    xc: &[f32],
    (j0, o, sd): (usize, f32, f32),
    l: &Layout,
    e: usize,
    live: &[bool],
    rounding: Rounding,
) -> Vec<[f32; VALUES]> {
    let n = xc.len();
    let k = l.entry_k[e] as usize;
    let rows = &l.waves[l.entry_wave[e] as usize..][..GROUP * k];
    let mut acc = vec![[0f32; VALUES]; THREADS];
    for i0 in (0..k).step_by(CHUNK) {
        let copies: Vec<f32> = (0..SHIFTS * COPY)
            .map(|v| {
                let g = j0 + i0 + v / COPY + v % COPY;
                if g < n {
                    round((xc[g] - o) * sd, rounding)
                } else {
                    0.0
                }
            })
            .collect();
        let ts: Vec<f32> = (0..GROUP * CHUNK)
            .map(|v| {
                let (t, i) = (v / CHUNK, v % CHUNK);
                if i0 + i < k {
                    rows[t * k + i0 + i]
                } else {
                    0.0
                }
            })
            .collect();
        for s in 0..CHUNK.min(k - i0) / 16 {
            let a = a_operand(&ts, s);
            for (tid, acc) in acc.iter_mut().enumerate() {
                let (wg, ..) = thread(tid);
                for (v, d) in acc.iter_mut().enumerate() {
                    // Shift h's product is in registers 32h .. 32h + 31.
                    let (row, col) = held(tid, v % PER_SHIFT);
                    if !live[row] {
                        continue;
                    }
                    let q = PER_WARPGROUP * wg + v / PER_SHIFT;
                    let start = 2 * (q * COPY + 16 * s);
                    let step: f64 = (0..16)
                        .map(|kk| {
                            f64::from(a[row][kk]) * f64::from(b_element(&copies, start, kk, col))
                        })
                        .sum();
                    *d += step as f32;
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (member, lag) of the tile is one thread's accumulator once.
    #[test]
    fn the_accumulators_cover_the_tile_once() {
        let mut seen = vec![false; GROUP * TILE];
        for tid in 0..THREADS {
            for v in 0..VALUES {
                let (t, j) = value_at(tid, v);
                assert!(
                    !seen[t * TILE + j],
                    "thread {tid} value {v}: ({t}, {j}) twice"
                );
                seen[t * TILE + j] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    /// The descriptor's view of the copy shifted by q at step s is the
    /// Hankel matrix: B(k, n) = x[q + 8n + 16s + k].
    #[test]
    fn the_descriptor_reads_the_hankel_view() {
        let copies: Vec<f32> = (0..SHIFTS * COPY)
            .map(|v| (v / COPY + v % COPY) as f32)
            .collect();
        for q in 0..SHIFTS {
            for s in 0..CHUNK / 16 {
                for kk in 0..16 {
                    for col in 0..COLUMNS {
                        let got = b_element(&copies, 2 * (q * COPY + 16 * s), kk, col);
                        assert_eq!(got, (q + 8 * col + 16 * s + kk) as f32);
                    }
                }
            }
        }
    }
}
