//! The kernels of `kernels/*.cu`, loaded from the embedded PTX, with one
//! typed launcher each: the argument lists are written once, here, in the
//! kernels' order.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, DriverError, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::correlate::mixed::{
    self, MixedKernel, SHARED_BYTES as MIXED_SHARED_BYTES, TILE as MIXED_TILE,
};

const STACK_PTX: &str = include_str!("../../../kernels/ptx/stack.ptx");
const DETECT_PTX: &str = include_str!("../../../kernels/ptx/detect.ptx");
const MIXED_PTX: &str = include_str!("../../../kernels/ptx/mixed.ptx");
/// sm_90a only: loaded on a GPU of compute capability 9.0 alone.
const MIXED_SM90_PTX: &str = include_str!("../../../kernels/ptx/mixed_sm90.ptx");

/// Threads per block of every kernel but `radix_select` (THREADS in
/// stack.cu, `__launch_bounds__` in detect.cu).
pub const THREADS: u32 = 256;
/// Consecutive lags per thread of `correlate_stack` (LAGS in stack.cu).
pub const STACK_LAGS: usize = 12;
/// Lags per block of `correlate_stack` (TILE in stack.cu).
pub const STACK_TILE: usize = THREADS as usize * STACK_LAGS;
/// Template samples per pass of `correlate_stack`'s inner loop and per
/// staged chunk (STEP and CHUNK in stack.cu), and the data samples its
/// per-tile offset is chosen from (PROBES, in offset.cuh): read by the
/// kernel's CPU model and the host's recomputation.
#[cfg(test)]
pub const STACK_STEP: usize = 16;
#[cfg(test)]
pub const STACK_CHUNK: usize = 256;
pub const STACK_PROBES: usize = 32;
/// Bins of one radix pass (RADIX_BINS in detect.cu), and the passes as
/// (shift, bits): 11 + 11 + 10 bits of a float.
pub const RADIX_BINS: usize = 2048;
pub const RADIX_PASSES: [(i32, i32); 3] = [(21, 11), (10, 11), (0, 10)];
/// Elements per thread of the kernels that scan a stack.
const SCAN_PER_THREAD: usize = 32;

pub struct Kernels {
    correlate_stack: CudaFunction,
    correlate_stack_mixed: CudaFunction,
    /// On a GPU of compute capability 9.0.
    correlate_stack_wgmma: Option<CudaFunction>,
    radix_histogram: CudaFunction,
    radix_select: CudaFunction,
    candidates: CudaFunction,
}

/// The day in device memory as the stack kernels read it.
pub struct DayArgs<'a> {
    /// `channels × len` samples.
    pub x: CudaView<'a, f32>,
    /// `channels × n_lags` moving 1/σ.
    pub inv: CudaView<'a, f32>,
    /// `channels × n_lags` moving window means, where the day has them (the
    /// mixed kernel's error bound).
    pub mean: Option<CudaView<'a, f32>>,
    pub len: usize,
    pub n_lags: usize,
}

/// A template batch in groups, in the layout of the arguments of
/// `correlate_stack_mixed` or of `correlate_stack_wgmma` (see mixed.cu,
/// mixed_sm90.cu and [`crate::correlate::mixed`]).
pub struct MixedArgs {
    pub kernel: MixedKernel,
    pub groups: usize,
    pub m: usize,
    /// M rounded up to 16.
    pub mp: usize,
    /// fp16 bits: per entry `GROUP × mp` (wmma) or `sm90::GROUP ×
    /// entry_k[e]` from `entry_wave[e]` (wgmma).
    pub waves: CudaSlice<u16>,
    pub entry_wave: CudaSlice<i64>,
    pub entry_k: CudaSlice<i32>,
    pub entry_first: CudaSlice<i32>,
    pub entry_chan: CudaSlice<i32>,
    pub entry_min_pad: CudaSlice<i32>,
    pub entry_tscale: CudaSlice<f32>,
    pub slot_pad: CudaSlice<i32>,
    pub slot_weight: CudaSlice<f32>,
    pub member_row: CudaSlice<i32>,
    pub member_max_pad: CudaSlice<i32>,
    /// The error bound's coefficient for M.
    pub coefficient: f32,
}

/// A template batch in device memory, in the layout of `correlate_stack`'s
/// arguments (see stack.cu).
pub struct BatchArgs {
    pub templates: usize,
    pub m: usize,
    pub waves: CudaSlice<f32>,
    pub chan: CudaSlice<i32>,
    pub pad: CudaSlice<i32>,
    pub weight: CudaSlice<f32>,
    pub first: CudaSlice<i32>,
    pub max_pad: CudaSlice<i32>,
}

/// The state of the radix selection of `2 × templates` order statistics.
pub struct Selection {
    pub prefix: CudaSlice<u32>,
    pub mask: CudaSlice<u32>,
    pub rank: CudaSlice<u32>,
    pub hist: CudaSlice<u32>,
}

/// One launch of `candidates`: rows (templates of the batch) to scan, each
/// with room for `cap[r]` candidates from `offset[r]` of `lag` and `value`.
pub struct ScanArgs {
    pub rows: CudaSlice<u32>,
    pub offset: CudaSlice<u64>,
    pub cap: CudaSlice<u32>,
    pub count: CudaSlice<u32>,
    pub lag: CudaSlice<u32>,
    pub value: CudaSlice<f32>,
}

fn grid(blocks_x: usize, y: usize, z: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            blocks_x.clamp(1, i32::MAX as usize) as u32,
            y as u32,
            z as u32,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks of a kernel that scans `n` elements of a stack.
fn scan_blocks(n: usize) -> usize {
    n.div_ceil(THREADS as usize * SCAN_PER_THREAD)
}

/// What the embedded kernels are: the PTX ISA version and the oldest GPU
/// architecture they target, as their PTX says (`8.2`, `sm_70`).
pub fn embedded() -> (String, String) {
    let directive = |name: &str| {
        STACK_PTX
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map_or_else(|| "?".into(), |v| v.trim().to_string())
    };
    (directive(".version"), directive(".target"))
}

impl Kernels {
    /// Load the embedded PTX; an error says which step failed.
    pub fn load(ctx: &Arc<CudaContext>) -> Result<Kernels, (String, DriverError)> {
        let load = |ptx: &str| {
            ctx.load_module(Ptx::from_src(ptx)).map_err(|e| {
                (
                    "cannot load the kernels (PTX ISA 8.2 needs driver r535 or later)".to_string(),
                    e,
                )
            })
        };
        let (stack, det, mixed) = (load(STACK_PTX)?, load(DETECT_PTX)?, load(MIXED_PTX)?);
        let f = |m: &Arc<cudarc::driver::CudaModule>, name: &str| {
            m.load_function(name).map_err(|e| (name.to_string(), e))
        };
        let correlate_stack_mixed = f(&mixed, "correlate_stack_mixed")?;
        // Above 48 KiB of dynamic shared memory a kernel must opt in.
        correlate_stack_mixed
            .set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                MIXED_SHARED_BYTES as i32,
            )
            .map_err(|e| ("correlate_stack_mixed: shared memory".to_string(), e))?;
        let correlate_stack_wgmma = if ctx
            .compute_capability()
            .map_err(|e| ("compute capability".to_string(), e))?
            == (9, 0)
        {
            let f = f(&load(MIXED_SM90_PTX)?, "correlate_stack_wgmma")?;
            f.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                mixed::sm90::SHARED_BYTES as i32,
            )
            .map_err(|e| ("correlate_stack_wgmma: shared memory".to_string(), e))?;
            Some(f)
        } else {
            None
        };
        Ok(Kernels {
            correlate_stack: f(&stack, "correlate_stack")?,
            correlate_stack_mixed,
            correlate_stack_wgmma,
            radix_histogram: f(&det, "radix_histogram")?,
            radix_select: f(&det, "radix_select")?,
            candidates: f(&det, "candidates")?,
        })
    }

    /// `correlate_stack`: every lag of every template of `b` into `stacks`
    /// (`templates × n_lags`); with `zero_tail` the lags some channel
    /// cannot reach are 0.
    pub fn correlate_stack(
        &self,
        stream: &CudaStream,
        day: &DayArgs,
        b: &BatchArgs,
        zero_tail: bool,
        stacks: &mut CudaSlice<f32>,
    ) -> Result<(), DriverError> {
        assert!(stacks.len() >= b.templates * day.n_lags);
        let (n, n_lags, m) = (day.len as i64, day.n_lags as i64, b.m as i32);
        let zero_tail = i32::from(zero_tail);
        let cfg = grid(day.n_lags.div_ceil(STACK_TILE), b.templates, 1);
        // SAFETY: the argument list is the kernel's signature (stack.cu);
        // the grid covers every lag and template, and every index the
        // kernel forms stays inside the buffers (checked there).
        unsafe {
            stream
                .launch_builder(&self.correlate_stack)
                .arg(&day.x)
                .arg(&day.inv)
                .arg(&n)
                .arg(&n_lags)
                .arg(&m)
                .arg(&b.waves)
                .arg(&b.chan)
                .arg(&b.pad)
                .arg(&b.weight)
                .arg(&b.first)
                .arg(&b.max_pad)
                .arg(&zero_tail)
                .arg(stacks)
                .launch(cfg)?;
        }
        Ok(())
    }

    /// The screened stacks of the members of every group of `b` into their
    /// rows of `stacks` (`rows × n_lags`) and each row's error margin (bits
    /// of a float, raised with atomicMax: zeroed by the caller) into
    /// `margin`, by the kernel `b` was laid out for.
    pub fn correlate_stack_mixed(
        &self,
        stream: &CudaStream,
        day: &DayArgs,
        b: &MixedArgs,
        zero_tail: bool,
        stacks: &mut CudaSlice<f32>,
        margin: &mut CudaSlice<u32>,
    ) -> Result<(), DriverError> {
        match b.kernel {
            MixedKernel::Wmma => self.wmma(stream, day, b, zero_tail, stacks, margin),
            MixedKernel::Wgmma => self.wgmma(stream, day, b, zero_tail, stacks, margin),
        }
    }

    /// `correlate_stack_mixed` (mixed.cu).
    fn wmma(
        &self,
        stream: &CudaStream,
        day: &DayArgs,
        b: &MixedArgs,
        zero_tail: bool,
        stacks: &mut CudaSlice<f32>,
        margin: &mut CudaSlice<u32>,
    ) -> Result<(), DriverError> {
        let mean = day.mean.as_ref().expect("a day loaded with window means");
        let (n, n_lags) = (day.len as i64, day.n_lags as i64);
        let (m, mp) = (b.m as i32, b.mp as i32);
        let zero_tail = i32::from(zero_tail);
        let mut cfg = grid(day.n_lags.div_ceil(MIXED_TILE), b.groups, 1);
        cfg.shared_mem_bytes = MIXED_SHARED_BYTES as u32;
        // SAFETY: the argument list is the kernel's signature (mixed.cu); the
        // grid covers every lag and group, member rows index `stacks` and
        // `margin` (rows × n_lags and rows), and the shared memory is what
        // the kernel lays out (MIXED_SHARED_BYTES, opted in at load).
        unsafe {
            stream
                .launch_builder(&self.correlate_stack_mixed)
                .arg(&day.x)
                .arg(&day.inv)
                .arg(mean)
                .arg(&n)
                .arg(&n_lags)
                .arg(&m)
                .arg(&mp)
                .arg(&b.waves)
                .arg(&b.entry_first)
                .arg(&b.entry_chan)
                .arg(&b.entry_min_pad)
                .arg(&b.entry_tscale)
                .arg(&b.slot_pad)
                .arg(&b.slot_weight)
                .arg(&b.member_row)
                .arg(&b.member_max_pad)
                .arg(&b.coefficient)
                .arg(&zero_tail)
                .arg(stacks)
                .arg(margin)
                .launch(cfg)?;
        }
        Ok(())
    }

    /// `correlate_stack_wgmma` (mixed_sm90.cu), on a GPU of compute
    /// capability 9.0 (the backend chooses it there alone).
    fn wgmma(
        &self,
        stream: &CudaStream,
        day: &DayArgs,
        b: &MixedArgs,
        zero_tail: bool,
        stacks: &mut CudaSlice<f32>,
        margin: &mut CudaSlice<u32>,
    ) -> Result<(), DriverError> {
        let kernel = self
            .correlate_stack_wgmma
            .as_ref()
            .expect("the wgmma kernel, loaded on compute capability 9.0");
        let mean = day.mean.as_ref().expect("a day loaded with window means");
        let (n, n_lags) = (day.len as i64, day.n_lags as i64);
        let zero_tail = i32::from(zero_tail);
        let mut cfg = grid(day.n_lags.div_ceil(mixed::sm90::TILE), b.groups, 1);
        cfg.shared_mem_bytes = mixed::sm90::SHARED_BYTES as u32;
        // SAFETY: the argument list is the kernel's signature
        // (mixed_sm90.cu); the grid covers every lag and group, each entry's
        // rows lie inside `waves` (from `entry_wave`, `entry_k` long), member
        // rows index `stacks` and `margin`, and the shared memory is what the
        // kernel lays out (opted in at load).
        unsafe {
            stream
                .launch_builder(kernel)
                .arg(&day.x)
                .arg(&day.inv)
                .arg(mean)
                .arg(&n)
                .arg(&n_lags)
                .arg(&b.waves)
                .arg(&b.entry_wave)
                .arg(&b.entry_k)
                .arg(&b.entry_first)
                .arg(&b.entry_chan)
                .arg(&b.entry_min_pad)
                .arg(&b.entry_tscale)
                .arg(&b.slot_pad)
                .arg(&b.slot_weight)
                .arg(&b.member_row)
                .arg(&b.member_max_pad)
                .arg(&b.coefficient)
                .arg(&zero_tail)
                .arg(stacks)
                .arg(margin)
                .launch(cfg)?;
        }
        Ok(())
    }

    /// The three radix passes that select, for each of `templates` stacks,
    /// the order statistics `sel.rank` of |stack[a..b)| into `sel.prefix`.
    pub fn radix_select(
        &self,
        stream: &Arc<CudaStream>,
        stacks: &CudaSlice<f32>,
        n_lags: usize,
        day: std::ops::Range<usize>,
        templates: usize,
        sel: &mut Selection,
    ) -> Result<(), DriverError> {
        assert!(day.start <= day.end && day.end <= n_lags);
        assert!(stacks.len() >= templates * n_lags && sel.hist.len() >= 2 * templates * RADIX_BINS);
        let (n_lags, a, b, n_sel) = (n_lags as i64, day.start as i64, day.end as i64, 2i32);
        let count = (2 * templates) as i32;
        let hist_cfg = grid(scan_blocks(day.len()), templates, 2);
        let select_cfg = LaunchConfig {
            grid_dim: ((2 * templates).div_ceil(THREADS as usize) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        for (pass, (shift, bits)) in RADIX_PASSES.into_iter().enumerate() {
            // SAFETY: argument lists as in detect.cu; the histogram grid
            // has one (template, selection) per (y, z), the selection grid
            // one thread per selection (extra threads return).
            unsafe {
                stream
                    .launch_builder(&self.radix_histogram)
                    .arg(stacks)
                    .arg(&n_lags)
                    .arg(&a)
                    .arg(&b)
                    .arg(&n_sel)
                    .arg(&sel.prefix)
                    .arg(&sel.mask)
                    .arg(&shift)
                    .arg(&bits)
                    .arg(&mut sel.hist)
                    .launch(hist_cfg)?;
                stream
                    .launch_builder(&self.radix_select)
                    .arg(&mut sel.hist)
                    .arg(&mut sel.prefix)
                    .arg(&mut sel.mask)
                    .arg(&mut sel.rank)
                    .arg(&shift)
                    .arg(&bits)
                    .arg(&count)
                    .launch(select_cfg)?;
            }
            if pass + 1 < RADIX_PASSES.len() {
                stream.memset_zeros(&mut sel.hist)?;
            }
        }
        Ok(())
    }

    /// `candidates` over the rows of `scan` (`scan.count` zero on entry).
    pub fn candidates(
        &self,
        stream: &CudaStream,
        stacks: &CudaSlice<f32>,
        n_lags: usize,
        thr: &CudaSlice<f32>,
        all: bool,
        scan: &mut ScanArgs,
    ) -> Result<(), DriverError> {
        let all = i32::from(all);
        assert!(scan.count.len() == scan.rows.len() && scan.cap.len() == scan.rows.len());
        assert!(scan.lag.len() == scan.value.len());
        let n_lags64 = n_lags as i64;
        let cfg = grid(scan_blocks(n_lags), scan.rows.len(), 1);
        // SAFETY: argument list as in detect.cu; one grid row per scanned
        // row, which writes at most cap[r] entries from offset[r] (the
        // offsets are prefix sums of the caps, within lag and value).
        unsafe {
            stream
                .launch_builder(&self.candidates)
                .arg(stacks)
                .arg(&n_lags64)
                .arg(thr)
                .arg(&all)
                .arg(&scan.rows)
                .arg(&scan.offset)
                .arg(&scan.cap)
                .arg(&mut scan.count)
                .arg(&mut scan.lag)
                .arg(&mut scan.value)
                .launch(cfg)?;
        }
        Ok(())
    }
}
