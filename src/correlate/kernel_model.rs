//! A CPU model of the `correlate_stack` kernel (kernels/stack.cu), for tests
//! where there is no GPU: it runs the kernel's grid block by block and thread
//! by thread, with the kernel's shared-memory staging chunk by chunk, each
//! thread's window of float4 registers, the per-tile data offset, and the
//! same f32 operations (`fmaf` as [`f32::mul_add`]) in the same order. Its
//! geometry is the launch code's ([`super::cuda::kernels`]); a test checks that the
//! `#define`s of kernels/*.cu agree with it.
//!
//! The tests compare the model with the direct f64 oracle
//! ([`super::naive`]) over shapes that reach every edge of the kernel, and
//! show what the offset subtraction is for.

use super::cuda::kernels::{
    RADIX_BINS, STACK_CHUNK as CHUNK, STACK_LAGS as LAGS, STACK_PROBES as PROBES,
    STACK_STEP as STEP, STACK_TILE as TILE, THREADS,
};
use super::cuda::recompute::data_offset;

const THREADS_USIZE: usize = THREADS as usize;

/// The kernel's arguments, device buffers as slices.
struct Args<'a> {
    x: &'a [f32],
    inv: &'a [f32],
    n: usize,
    n_lags: usize,
    m: usize,
    waves: &'a [f32],
    chan: &'a [i32],
    pad: &'a [i32],
    weight: &'a [f32],
    first: &'a [i32],
    max_pad: &'a [i32],
    zero_tail: bool,
}

/// The kernel over the grid `launch_stack` launches: `n_lags / TILE` blocks
/// (rounded up) for each template. `subtract_offset: false` runs it as if
/// the per-tile offset were 0 (the kernel before the offset).
fn correlate_stack(a: &Args, subtract_offset: bool) -> Vec<f32> {
    let templates = a.first.len() - 1;
    // NaN where nothing was written: every lag must be.
    let mut stacks = vec![f32::NAN; templates * a.n_lags];
    for (t, st) in stacks.chunks_mut(a.n_lags.max(1)).enumerate() {
        for bx in 0..a.n_lags.div_ceil(TILE) {
            block(a, bx, t, subtract_offset, st);
        }
    }
    stacks
}

/// `min(max(v, 0), LAGS)`: how many of a thread's LAGS lags lie before a
/// bound `v` lags away.
fn clamp_lags(v: i64) -> usize {
    v.clamp(0, LAGS as i64) as usize
}

/// One block: TILE lags of template `t`'s stack `st`.
fn block(a: &Args, bx: usize, t: usize, subtract_offset: bool, st: &mut [f32]) {
    let (n, m) = (a.n, a.m);
    let k0 = bx * TILE;
    // Shared memory, as declared in the kernel.
    let mut xs = vec![f32::NAN; TILE + CHUNK];
    let mut ts = vec![f32::NAN; CHUNK];
    // Every thread's registers.
    let mut sum = vec![[0f32; LAGS]; THREADS_USIZE];
    let mut acc = vec![[0f32; LAGS]; THREADS_USIZE];
    for c in a.first[t] as usize..a.first[t + 1] as usize {
        let ch = a.chan[c] as usize;
        let xc = &a.x[ch * n..(ch + 1) * n];
        let ic = &a.inv[ch * a.n_lags..(ch + 1) * a.n_lags];
        let tc = &a.waves[c * m..(c + 1) * m];
        let j0 = k0 + a.pad[c] as usize;
        let offset = if subtract_offset {
            data_offset(xc, j0, (j0 + TILE + m - 1).min(n))
        } else {
            0.0
        };
        acc.iter_mut().for_each(|r| *r = [0.0; LAGS]);
        for i0 in (0..m).step_by(CHUNK) {
            let len = CHUNK.min(m - i0);
            let padded = len.div_ceil(STEP) * STEP;
            // What was not staged for this chunk reads as NaN (the kernel
            // would read a stale or undefined value there).
            xs.fill(f32::NAN);
            ts.fill(f32::NAN);
            for (s, v) in xs[..TILE + padded].iter_mut().enumerate() {
                let g = j0 + i0 + s;
                *v = if g < n { xc[g] - offset } else { 0.0 };
            }
            for (s, v) in ts[..padded].iter_mut().enumerate() {
                *v = if s < len { tc[i0 + s] } else { 0.0 };
            }
            for (tid, acc) in acc.iter_mut().enumerate() {
                thread_chunk(&xs, &ts, tid * LAGS, padded, acc);
            }
        }
        let wc = a.weight[c];
        for (tid, (sum, acc)) in sum.iter_mut().zip(&acc).enumerate() {
            let j = j0 + tid * LAGS;
            let keep = clamp_lags(a.n_lags as i64 - j as i64);
            for r in 0..keep {
                // fmaxf, fminf: not clamp, which differs on NaN.
                #[allow(clippy::manual_clamp)]
                let cc = (acc[r] * ic[j + r]).max(-1.0).min(1.0);
                sum[r] = wc.mul_add(cc, sum[r]);
            }
        }
    }
    let max_pad = a.max_pad[t] as i64;
    for (tid, sum) in sum.iter().enumerate() {
        let k = k0 + tid * LAGS;
        let keep = clamp_lags(a.n_lags as i64 - k as i64);
        let live = if a.zero_tail {
            clamp_lags(a.n_lags as i64 - max_pad - k as i64)
        } else {
            LAGS
        };
        for r in 0..keep {
            st[k + r] = if r < live { sum[r] } else { 0.0 };
        }
    }
}

/// A float4 load from shared memory: aligned, and only of staged values.
fn ld4(shared: &[f32], i: usize) -> [f32; 4] {
    assert_eq!(i % 4, 0, "misaligned float4 load");
    let v: [f32; 4] = shared[i..i + 4].try_into().unwrap();
    assert!(
        v.iter().all(|x| !x.is_nan()),
        "load of unstaged shared memory"
    );
    v
}

/// One thread's inner loop over a staged chunk: lags `l0 .. l0 + LAGS` of
/// the tile, `padded` template samples, the window in four float4
/// registers `a, b, d, e` that take turns being reloaded.
fn thread_chunk(xs: &[f32], ts: &[f32], l0: usize, padded: usize, acc: &mut [f32; LAGS]) {
    let xp = |q: usize| ld4(xs, l0 + 4 * q);
    let tp = |q: usize| ld4(ts, 4 * q);
    let (mut a, mut b, mut d) = (xp(0), xp(1), xp(2));
    let mut q = 0;
    while q < padded / 4 {
        let e = xp(q + 3);
        fma_group(acc, tp(q), [a, b, d, e]);
        a = xp(q + 4);
        fma_group(acc, tp(q + 1), [b, d, e, a]);
        b = xp(q + 5);
        fma_group(acc, tp(q + 2), [d, e, a, b]);
        d = xp(q + 6);
        fma_group(acc, tp(q + 3), [e, a, b, d]);
        q += STEP / 4;
    }
}

/// `acc[r] = fmaf(w[s], x[r + s], acc[r])` for s = 0..3, r = 0..LAGS, with x
/// the 16 samples of the window.
fn fma_group(acc: &mut [f32; LAGS], w: [f32; 4], window: [[f32; 4]; 4]) {
    let x: [f32; 16] = std::array::from_fn(|i| window[i / 4][i % 4]);
    for (s, &w) in w.iter().enumerate() {
        for (r, acc) in acc.iter_mut().enumerate() {
            *acc = w.mul_add(x[r + s], *acc);
        }
    }
}

mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::correlate::test_support::{noise, TemplateChannel};
    use crate::correlate::{mixed, naive, normalize_template, ChannelNorm};

    /// Standard deviation of [`noise`].
    const SIGMA: f32 = 1.154_700_5; // sqrt(4 / 3)

    /// A day and templates, with the kernel's arguments made from them as
    /// `launch_stack` makes them.
    struct Case {
        data: Vec<Vec<f32>>,
        masks: Vec<Vec<bool>>,
        inv: Vec<f32>,
        m: usize,
        /// Per template: its channels.
        templates: Vec<Vec<TemplateChannel>>,
    }

    /// `channels` channels of `n` samples of noise on `offset`; channels 1
    /// and 3 with a gap (zeros, masked) and a flat stretch. Two templates:
    /// all channels with moveouts `pads`, and a subset in another order with
    /// other weights and moveouts up to about half the lags (so that with
    /// `zero_tail` part of its stack is zeroed and the rest is not).
    fn case(seed: u64, n: usize, m: usize, offset: f32, pads: &[usize]) -> Case {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let channels = pads.len();
        let mut data = Vec::new();
        let mut masks = Vec::new();
        for c in 0..channels {
            let mut x: Vec<f32> = noise(&mut r, n).iter().map(|v| v + offset).collect();
            let mut mask = vec![true; n];
            if c % 2 == 1 && n > 3 * m {
                let g = r.gen_range(0..n - m);
                for i in g..(g + m / 2 + 3).min(n) {
                    x[i] = 0.0;
                    mask[i] = false;
                }
                let f = r.gen_range(0..n - 2 * m);
                x[f..f + m + 5].fill(offset + 3.0);
            }
            data.push(x);
            masks.push(mask);
        }
        let mut inv = Vec::new();
        for (x, k) in data.iter().zip(&masks) {
            inv.extend(ChannelNorm::new(x, k, m).inv_std);
        }
        let wave = |r: &mut ChaCha8Rng| -> Vec<f32> {
            noise(r, m).iter().map(|v| v * 3.0 - 50.0).collect()
        };
        let all = (0..channels)
            .map(|c| (c, pads[c], if c == 2 { 0.5 } else { 1.0 }, wave(&mut r)))
            .collect();
        let n_lags = n + 1 - m;
        let some = [(2, 3), (0, 0), (channels - 1, (TILE + 100).min(n_lags / 2))]
            .iter()
            .map(|&(c, pad)| (c, pad, 0.75, wave(&mut r)))
            .collect();
        Case {
            data,
            masks,
            inv,
            m,
            templates: vec![all, some],
        }
    }

    impl Case {
        fn n(&self) -> usize {
            self.data[0].len()
        }

        fn n_lags(&self) -> usize {
            self.n() + 1 - self.m
        }

        /// The model's stacks, one per template.
        fn model(&self, zero_tail: bool, subtract_offset: bool) -> Vec<Vec<f32>> {
            let x: Vec<f32> = self.data.concat();
            let (mut waves, mut chan, mut pad, mut weight) = (vec![], vec![], vec![], vec![]);
            let (mut first, mut max_pad) = (vec![0], vec![]);
            for t in &self.templates {
                for (c, p, w, raw) in t {
                    waves.extend(normalize_template(raw).unwrap());
                    chan.push(*c as i32);
                    pad.push(*p as i32);
                    weight.push(*w);
                }
                first.push(chan.len() as i32);
                max_pad.push(t.iter().map(|c| c.1).max().unwrap() as i32);
            }
            let args = Args {
                x: &x,
                inv: &self.inv,
                n: self.n(),
                n_lags: self.n_lags(),
                m: self.m,
                waves: &waves,
                chan: &chan,
                pad: &pad,
                weight: &weight,
                first: &first,
                max_pad: &max_pad,
                zero_tail,
            };
            let stacks = correlate_stack(&args, subtract_offset);
            assert!(stacks.iter().all(|v| !v.is_nan()), "a lag was not written");
            stacks.chunks(self.n_lags()).map(|s| s.to_vec()).collect()
        }

        /// The direct f64 stacks; with `zero_tail`, the lags some channel
        /// cannot reach are 0.
        fn oracle(&self, zero_tail: bool) -> Vec<Vec<f64>> {
            let data: Vec<&[f32]> = self.data.iter().map(|x| x.as_slice()).collect();
            let masks: Vec<&[bool]> = self.masks.iter().map(|x| x.as_slice()).collect();
            self.templates
                .iter()
                .map(|t| {
                    let chans: Vec<naive::Channel> = t
                        .iter()
                        .map(|(c, p, w, raw)| naive::Channel {
                            waveform: raw,
                            channel: *c,
                            pad: *p,
                            weight: *w as f64,
                        })
                        .collect();
                    let mut s = naive::stack(&chans, &data, &masks);
                    if zero_tail {
                        let max_pad = t.iter().map(|c| c.1).max().unwrap();
                        let from = s.len().saturating_sub(max_pad);
                        s[from..].fill(0.0);
                    }
                    s
                })
                .collect()
        }

        /// Largest |model − oracle| over every lag of every template.
        fn max_error(&self, zero_tail: bool, subtract_offset: bool) -> f64 {
            let got = self.model(zero_tail, subtract_offset);
            let want = self.oracle(zero_tail);
            let mut worst = 0.0f64;
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.len(), w.len());
                for (a, b) in g.iter().zip(w) {
                    worst = worst.max((*a as f64 - b).abs());
                }
            }
            worst
        }
    }

    /// The host's recomputation of single lags (the mixed path's) is the
    /// kernel's value bit for bit, tail and tiles' offsets included.
    #[test]
    fn the_host_recomputation_is_the_kernel_bit_for_bit() {
        use crate::correlate::cuda::recompute::stack_at;
        use crate::correlate::test_support::{day_view, norms, stack_template};
        for (seed, n, m) in [
            (40, 2 * TILE + 300, 128),
            (41, TILE + 77, 200),
            (42, 500, 31),
        ] {
            let n_lags = n + 1 - m;
            let c = case(seed, n, m, -100.0, &[0, 7, TILE + 13, n_lags - 1]);
            let model = c.model(true, true);
            let norms = norms(&c.data, &c.masks, m);
            let day = day_view(&c.data, &norms, m);
            for (t, want) in c.templates.iter().zip(&model) {
                let t = stack_template(t);
                for (k, w) in want.iter().enumerate() {
                    assert_eq!(
                        stack_at(&day, &t, k).to_bits(),
                        w.to_bits(),
                        "seed {seed} lag {k}"
                    );
                }
            }
        }
    }

    /// Every template length of interest (one pass, a partial pass, whole
    /// and partial chunks, several chunks) with a day shorter than a tile
    /// and one whose last tile is partial; moveouts that differ per channel
    /// (one past a tile, one reaching past the data); gaps; the zeroed tail
    /// on and off.
    #[test]
    fn model_matches_the_f64_oracle() {
        let mut seed = 10;
        for m in [16, 31, 128, 129, 200, 400, 800] {
            for n in [m + 5, m + TILE / 3, m - 1 + 2 * TILE + 517] {
                let n_lags = n + 1 - m;
                let pads = [0, 7, TILE + 13, n_lags - 1];
                let c = case(seed, n, m, -100.0, &pads);
                seed += 1;
                for zero_tail in [false, true] {
                    let err = c.max_error(zero_tail, true);
                    eprintln!("M={m} N={n} zero_tail={zero_tail}: max error {err:.2e}");
                    assert!(
                        err < 2e-5,
                        "M={m} N={n} zero_tail={zero_tail}: off by {err}"
                    );
                }
            }
        }
    }

    /// Data on an offset of 870 σ and 8700 σ: with the per-tile offset
    /// subtracted the stack is as accurate as on centred data; without it
    /// (the kernel as it was) fp32 sums lose two to three digits more.
    #[test]
    fn offset_subtraction_keeps_large_offsets_accurate() {
        let (m, n) = (200, 2 * TILE + 811);
        for (seed, sigmas) in [(98, 870.0), (99, 8700.0)] {
            let c = case(seed, n, m, sigmas * SIGMA, &[0, 31, 450, 1200]);
            let with = c.max_error(false, true);
            let without = c.max_error(false, false);
            eprintln!(
                "offset {sigmas} sigma: max error {with:.2e} with the offset subtracted, \
                 {without:.2e} without"
            );
            assert!(
                with < 1e-4,
                "{sigmas} sigma, offset subtracted: off by {with}"
            );
            assert!(
                without > 10.0 * with && without > 1e-4,
                "{sigmas} sigma, without the offset subtracted: off by {without} (with: {with})"
            );
        }
    }

    /// The probes skip a gap's zeros and take the median of the rest.
    #[test]
    fn data_offset_is_the_median_of_nonzero_probes() {
        let mut x: Vec<f32> = (0..640).map(|i| 1000.0 + (i % 7) as f32).collect();
        // The first half is a gap, and one probe lands on a large arrival.
        x[..320].fill(0.0);
        x[330] = 1e6;
        // Probes at 10, 30, .. 630: 16 of them nonzero, the lower median of
        // those.
        let mut probes: Vec<f32> = (0..32)
            .map(|l| x[(2 * l + 1) * 640 / 64])
            .filter(|&v| v != 0.0)
            .collect();
        assert_eq!(probes.len(), 16);
        probes.sort_by(f32::total_cmp);
        assert_eq!(data_offset(&x, 0, 640), probes[7]);
        assert_eq!(data_offset(&x, 0, 320), 0.0, "all in the gap");
        assert_eq!(data_offset(&x, 700, 640), 0.0, "nothing to probe");
        assert_eq!(data_offset(&x, 400, 401), x[400], "one sample");
    }

    /// The value of `#define` `expr` given the ones before it: an integer, a
    /// name, or a product of those in parentheses.
    fn eval(expr: &str, defined: &[(String, usize)]) -> usize {
        expr.trim_matches(|c| c == '(' || c == ')')
            .split('*')
            .map(|f| {
                let f = f.trim();
                f.parse().unwrap_or_else(|_| {
                    defined
                        .iter()
                        .find(|(k, _)| k == f)
                        .unwrap_or_else(|| panic!("#define of unknown value {f:?}"))
                        .1
                })
            })
            .product()
    }

    /// The kernels' geometry is the launch code's (and so the model's):
    /// every `#define` of kernels/*.cu equals its Rust constant, and every
    /// kernel's `__launch_bounds__` is the block size launched.
    #[test]
    fn kernel_defines_match_the_rust_constants() {
        let want = [
            ("THREADS", THREADS_USIZE),
            ("LAGS", LAGS),
            ("TILE", TILE),
            ("STEP", STEP),
            ("CHUNK", CHUNK),
            ("PROBES", PROBES),
            ("RADIX_BINS", RADIX_BINS),
            ("MIXED_THREADS", THREADS_USIZE),
            ("MIXED_GROUP", mixed::GROUP),
            ("MIXED_TILE", mixed::TILE),
            ("MIXED_SPREAD", mixed::SPREAD),
            ("MIXED_DATA_LAGS", mixed::DATA_LAGS),
            ("MIXED_SHIFTS", mixed::SHIFTS),
            ("MIXED_CHUNK", mixed::CHUNK),
            ("FRAG", mixed::FRAG),
            ("WG_THREADS", mixed::sm90::THREADS),
            ("WG_GROUP", mixed::sm90::GROUP),
            ("WG_SHIFTS", mixed::sm90::SHIFTS),
            ("WG_COLUMNS", mixed::sm90::COLUMNS),
            ("WG_TILE", mixed::sm90::TILE),
            ("WG_SPREAD", mixed::sm90::SPREAD),
            ("WG_CHUNK", mixed::sm90::CHUNK),
            ("WG_A_STRIDE", mixed::sm90::A_STRIDE),
        ];
        let sources = [
            ("offset.cuh", include_str!("../../kernels/offset.cuh")),
            ("stack.cu", include_str!("../../kernels/stack.cu")),
            ("detect.cu", include_str!("../../kernels/detect.cu")),
            ("mixed.cu", include_str!("../../kernels/mixed.cu")),
            ("mixed_sm90.cu", include_str!("../../kernels/mixed_sm90.cu")),
        ];
        let mut seen = Vec::new();
        for (file, src) in sources {
            let mut defined: Vec<(String, usize)> = Vec::new();
            for line in src.lines() {
                if let Some(rest) = line.trim().strip_prefix("#define") {
                    let (name, expr) = rest.trim().split_once(char::is_whitespace).unwrap();
                    let value = eval(expr.trim(), &defined);
                    let (_, rust) = want
                        .iter()
                        .find(|(k, _)| *k == name)
                        .unwrap_or_else(|| panic!("{file}: #define {name} has no Rust constant"));
                    assert_eq!(value, *rust, "{file}: #define {name}");
                    defined.push((name.to_string(), value));
                    seen.push(name.to_string());
                }
            }
            for (i, _) in src.match_indices("__launch_bounds__(") {
                let args = &src[i + "__launch_bounds__(".len()..];
                let first = args[..args.find(')').unwrap()].split(',').next().unwrap();
                assert_eq!(eval(first, &defined), THREADS_USIZE, "{file}: {first}");
            }
        }
        for (name, _) in want {
            assert!(seen.iter().any(|s| s == name), "no #define {name}");
        }
        assert_eq!(TILE, THREADS_USIZE * LAGS);
        assert_eq!(STEP, LAGS + 4, "one turn of the window");
        assert_eq!(CHUNK % STEP, 0);
    }
}
