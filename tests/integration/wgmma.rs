//! The layouts the sm_90 tensor-core kernel (`kernels/mixed_sm90.cu`)
//! rests on (kernels/README.md, "The sm_90 kernel"), and the probe that
//! checks them on an H200 (`kernels/wgmma_probe.cu`).
//!
//! A wgmma operand in shared memory without swizzling is read in core
//! matrices of 8 rows × 16 bytes (8 fp16 samples), rows 16 bytes apart; the
//! descriptor gives the byte offset between core matrices along K (the
//! leading offset) and along the rows (the stride offset). The Hankel view
//! of the data, `B(k, n) = x[q + 8n + k]` (16 samples by 64 lags 8 apart),
//! is such an operand as it lies in memory: the copy of the data shifted by
//! `q`, with leading offset 16 and stride offset 128, its core matrices
//! overlapping. The templates `A(m, k)` (64 rows) are laid out plainly,
//! rows of a core matrix together, leading offset 1024, stride 128.
//!
//! The model here reads the images as the hardware is assumed to and maps
//! the accumulators by the assumed fragment layout; the probe runs the real
//! instruction on the same images and says which layout, if any, matches.

use half::f16;

/// Rows (templates) and columns (lags) of one wgmma.m64n64k16; its depth.
pub const ROWS: usize = 64;
pub const COLS: usize = 64;
pub const DEPTH: usize = 16;
/// Bytes of the images (wgmma_probe.cu's `A_BYTES`, `B_BYTES`).
pub const A_BYTES: usize = ROWS * DEPTH * 2;
pub const B_BYTES: usize = (8 * (COLS - 1) + DEPTH) * 2;

/// Leading (along K) and stride (along rows) byte offsets of a descriptor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offsets {
    pub leading: usize,
    pub stride: usize,
}

/// The templates' image: core matrices of 8 rows, 128 bytes each, the 8 of
/// one K half after another.
pub const A_OFFSETS: Offsets = Offsets {
    leading: 1024,
    stride: 128,
};
/// The Hankel view of a shifted copy of the data.
pub const B_OFFSETS: Offsets = Offsets {
    leading: 16,
    stride: 128,
};

/// Byte of element (`row`, `k`) of an operand read through `o`.
pub fn byte(row: usize, k: usize, o: Offsets) -> usize {
    (row / 8) * o.stride + (k / 8) * o.leading + (row % 8) * 16 + (k % 8) * 2
}

/// The templates' image: `t[m][k]` (fp16 bits) where [`A_OFFSETS`] reads it.
pub fn a_image(t: &[[f16; DEPTH]; ROWS]) -> Vec<u8> {
    let mut img = vec![0u8; A_BYTES];
    for (m, row) in t.iter().enumerate() {
        for (k, v) in row.iter().enumerate() {
            let b = byte(m, k, A_OFFSETS);
            img[b..b + 2].copy_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    img
}

/// The data's image: the copy shifted by `q`, `x[q ..]`, as it lies.
pub fn b_image(x: &[f16], q: usize) -> Vec<u8> {
    x[q..q + B_BYTES / 2]
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect()
}

/// Element (`row`, `k`) of an image read through `o`, as the hardware is
/// assumed to read it.
fn read(img: &[u8], row: usize, k: usize, o: Offsets) -> f32 {
    let b = byte(row, k, o);
    f16::from_bits(u16::from_le_bytes([img[b], img[b + 1]])).to_f32()
}

/// (row, column) of accumulator `r` of thread `t` of the warpgroup, as
/// assumed: warp `w` holds rows `16w ..`, lane `l` rows `l / 4` and `+ 8`,
/// columns `8j + 2 (l % 4)` and `+ 1` for `j < 8`.
pub fn accumulator(t: usize, r: usize) -> (usize, usize) {
    let (w, l) = (t / 32, t % 32);
    let (j, i) = (r / 4, r % 4);
    (16 * w + l / 4 + 8 * (i / 2), 8 * j + 2 * (l % 4) + i % 2)
}

/// What the probe writes (`out[32 t + r]`) if the hardware reads and lays
/// out as assumed, from the images.
pub fn model(a: &[u8], b: &[u8]) -> Vec<f32> {
    (0..128 * 32)
        .map(|e| {
            let (m, n) = accumulator(e / 32, e % 32);
            (0..DEPTH)
                .map(|k| read(a, m, k, A_OFFSETS) * read(b, n, k, B_OFFSETS))
                .sum()
        })
        .collect()
}

/// The correlations themselves: `C[m][n] = Σ_k t[m][k] · x[q + 8n + k]`.
pub fn hankel_product(t: &[[f16; DEPTH]; ROWS], x: &[f16], q: usize) -> Vec<Vec<f32>> {
    (0..ROWS)
        .map(|m| {
            (0..COLS)
                .map(|n| {
                    (0..DEPTH)
                        .map(|k| t[m][k].to_f32() * x[q + 8 * n + k].to_f32())
                        .sum()
                })
                .collect()
        })
        .collect()
}

/// Templates and data of small integers, so every product and sum is exact
/// in fp32 and a misplaced element cannot hide in rounding.
pub fn inputs() -> ([[f16; DEPTH]; ROWS], Vec<f16>) {
    let mut t = [[f16::ZERO; DEPTH]; ROWS];
    for (m, row) in t.iter_mut().enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = f16::from_f32(((m * 7 + k * 3) % 11) as f32 - 5.0);
        }
    }
    let x = (0..B_BYTES / 2 + 8)
        .map(|i| f16::from_f32(((i * 13) % 17) as f32 - 8.0))
        .collect();
    (t, x)
}

/// The model's output in (row, column) order.
pub fn as_matrix(out: &[f32]) -> Vec<Vec<f32>> {
    let mut c = vec![vec![f32::NAN; COLS]; ROWS];
    for (e, &v) in out.iter().enumerate() {
        let (m, n) = accumulator(e / 32, e % 32);
        c[m][n] = v;
    }
    c
}

/// (row, first of two samples) of A that thread `t` of the warpgroup loads
/// into fragment register `i` (mixed_sm90.cu and `wgmma_probe_registers`):
/// warp `w` rows `16w + l / 4` and `+ 8`, samples `2 (l % 4)` and `+ 8`.
pub fn fragment(t: usize, i: usize) -> (usize, usize) {
    let (w, l) = (t / 32, t % 32);
    (16 * w + l / 4 + 8 * (i % 2), 2 * (l % 4) + 8 * (i / 2))
}

/// The fragment loads of `wgmma_probe_registers` read every element of the
/// A image once, two samples per 32-bit load.
#[test]
fn the_fragments_load_a_once() {
    let (t, _) = inputs();
    let a = a_image(&t);
    let mut seen = vec![false; ROWS * DEPTH];
    for thread in 0..128 {
        for i in 0..4 {
            let (m, k) = fragment(thread, i);
            let b = byte(m, k, A_OFFSETS);
            assert_eq!(b % 4, 0, "a 32-bit load");
            for h in 0..2 {
                assert!(!std::mem::replace(&mut seen[m * DEPTH + k + h], true));
                assert_eq!(read(&a, m, k + h, A_OFFSETS), t[m][k + h].to_f32());
                assert_eq!(byte(m, k + h, A_OFFSETS), b + 2 * h);
            }
        }
    }
    assert!(seen.iter().all(|&s| s));
}

/// Every (row, column) is one accumulator of one thread.
#[test]
fn the_accumulators_cover_the_tile_once() {
    let mut seen = vec![false; ROWS * COLS];
    for e in 0..128 * 32 {
        let (m, n) = accumulator(e / 32, e % 32);
        assert!(!std::mem::replace(&mut seen[m * COLS + n], true));
    }
}

/// Read through the descriptors as assumed, the images of [`inputs`] give
/// the correlations at lags `q + 8n` for every shift `q` the kernel uses.
pub fn assert_the_model_reads_the_hankel_view() {
    let (t, x) = inputs();
    let a = a_image(&t);
    for q in 0..8 {
        let got = as_matrix(&model(&a, &b_image(&x, q)));
        assert_eq!(got, hankel_product(&t, &x, q), "shift {q}");
    }
}

/// The overlapping core matrices of the shifted copy are the Hankel view.
#[test]
fn the_descriptor_reads_the_hankel_view() {
    assert_the_model_reads_the_hankel_view();
    let (_, x) = inputs();
    // A stride of 16 bytes between row groups would read other lags.
    let b = b_image(&x, 0);
    let wrong = Offsets {
        leading: 16,
        stride: 16,
    };
    assert_ne!(read(&b, 8, 0, wrong), read(&b, 8, 0, B_OFFSETS));
}

/// The probe copies images of the sizes the host makes.
#[test]
fn the_probe_copies_the_images_the_host_makes() {
    let src = include_str!("../../kernels/wgmma_probe.cu");
    for (name, bytes) in [("A_BYTES", A_BYTES), ("B_BYTES", B_BYTES)] {
        let line = format!("constexpr int {name} = {bytes};");
        assert!(src.contains(&line), "wgmma_probe.cu lacks {line:?}");
    }
    assert_eq!(B_BYTES % 16, 0, "whole uint4s");
}
