//! CUDA backend: one [`CudaBackend`] per GPU, kernels from `kernels/*.cu`
//! compiled ahead of time to PTX and embedded, so that at run time only the
//! NVIDIA driver is needed.
//!
//! Per day and device: the day's data and moving 1/σ (computed once per day
//! on the host, where the per-channel picks need them too) are copied in
//! through a page-locked buffer on a copy stream and stay in device memory
//! for every template of the day. Templates go in batches sized to the free
//! device memory; each batch is correlated and stacked in one kernel
//! (per-channel CC stays in registers), its median |stack| is selected and
//! its peak candidates are found on the device, and only medians and
//! candidates come back. Batches alternate between two compute streams, so
//! one batch computes while the host finishes the one before; out of memory
//! halves the batch.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig,
    PinnedHostSlice, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::{peaks_from_candidates, Backend, DayView, PeakSpec, StackTemplate, TemplatePeaks};
use crate::detect;
use crate::error::{Error, Result};

const STACK_PTX: &str = include_str!("../../kernels/ptx/stack.ptx");
const DETECT_PTX: &str = include_str!("../../kernels/ptx/detect.ptx");

/// Threads per block of every kernel but `radix_select` (THREADS in
/// stack.cu, `__launch_bounds__` in detect.cu).
pub(super) const THREADS: u32 = 256;
/// Consecutive lags per thread of `correlate_stack` (LAGS in stack.cu).
pub(super) const STACK_LAGS: usize = 12;
/// Lags per block of `correlate_stack` (TILE in stack.cu).
pub(super) const STACK_TILE: usize = THREADS as usize * STACK_LAGS;
/// Template samples per pass of `correlate_stack`'s inner loop and per
/// staged chunk (STEP and CHUNK in stack.cu), and the data samples its
/// per-tile offset is chosen from (PROBES).
#[cfg_attr(not(test), allow(dead_code))]
pub(super) const STACK_STEP: usize = 16;
#[cfg_attr(not(test), allow(dead_code))]
pub(super) const STACK_CHUNK: usize = 256;
#[cfg_attr(not(test), allow(dead_code))]
pub(super) const STACK_PROBES: usize = 32;
/// Bins of one radix pass (RADIX_BINS in detect.cu), and the passes as
/// (shift, bits): 11 + 11 + 10 bits of a float.
pub(super) const RADIX_BINS: usize = 2048;
const RADIX_PASSES: [(i32, i32); 3] = [(21, 11), (10, 11), (0, 10)];
/// Elements per thread of the kernels that scan a stack.
const SCAN_PER_THREAD: usize = 32;
/// Templates of one launch: they are the grid's y dimension.
const MAX_BATCH: usize = 65535;
/// Room left for each template's candidates before the first pass; a
/// template with more is scanned again with room for all of them.
const FIRST_CANDIDATES: usize = 4096;
/// Device memory left free for the driver and the kernels' own needs.
const RESERVE_BYTES: usize = 512 << 20;

pub struct CudaBackend {
    ordinal: usize,
    name: String,
    ctx: Arc<CudaContext>,
    /// Days are copied in on their own stream, so the copy of the next day
    /// overlaps compute on the current one.
    copy: Arc<CudaStream>,
    compute: [Arc<CudaStream>; 2],
    kernels: Kernels,
    /// Days in device memory, latest last: the one being computed and the
    /// one copied in ahead ([`Backend::prefetch`]).
    days: Mutex<Vec<Arc<DeviceDay>>>,
    /// The page-locked buffer days are copied through; it grows to the
    /// largest day and is reused.
    staging: Mutex<Option<PinnedHostSlice<f32>>>,
    /// The compute streams serve one call at a time.
    busy: Mutex<()>,
}

struct Kernels {
    correlate_stack: CudaFunction,
    radix_histogram: CudaFunction,
    radix_select: CudaFunction,
    candidates: CudaFunction,
}

/// A day in device memory: `channels × len` samples, then `channels ×
/// n_lags` values of 1/σ, in one buffer (which may be longer: it has the
/// staging buffer's length).
struct DeviceDay {
    id: u64,
    channels: usize,
    len: usize,
    n_lags: usize,
    buf: CudaSlice<f32>,
}

impl DeviceDay {
    fn data_len(&self) -> usize {
        self.channels * self.len
    }
}

/// A batch whose stacks, medians and launch are on a stream, not yet
/// brought back.
struct InFlight {
    stream: Arc<CudaStream>,
    templates: Range<usize>,
    stacks: CudaSlice<f32>,
    /// Bits of the two middle values of each template's |stack| over the
    /// day (the same value twice for an odd count); none for an empty day.
    middles: Option<CudaSlice<u32>>,
}

fn is_oom(e: &DriverError) -> bool {
    e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY
}

/// Template batch in the layout of the kernels' arguments.
struct FlatBatch {
    waves: Vec<f32>,
    chan: Vec<i32>,
    pad: Vec<i32>,
    weight: Vec<f32>,
    first: Vec<i32>,
    max_pad: Vec<i32>,
}

impl FlatBatch {
    fn new(templates: &[StackTemplate], m: usize) -> FlatBatch {
        let n_ch: usize = templates.iter().map(|t| t.channels.len()).sum();
        let mut f = FlatBatch {
            waves: Vec::with_capacity(n_ch * m),
            chan: Vec::with_capacity(n_ch),
            pad: Vec::with_capacity(n_ch),
            weight: Vec::with_capacity(n_ch),
            first: Vec::with_capacity(templates.len() + 1),
            max_pad: Vec::with_capacity(templates.len()),
        };
        f.first.push(0);
        for t in templates {
            for c in &t.channels {
                assert_eq!(c.waveform.len(), m, "template channel of another length");
                f.waves.extend_from_slice(&c.waveform);
                f.chan.push(c.channel as i32);
                f.pad.push(c.pad as i32);
                f.weight.push(c.weight);
            }
            f.first.push(f.chan.len() as i32);
            f.max_pad.push(t.max_pad() as i32);
        }
        f
    }
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

impl CudaBackend {
    /// Open GPU `ordinal` and load the kernels. The caller has checked that
    /// the driver library is present ([`super::cuda_devices`]).
    pub fn new(ordinal: usize) -> Result<CudaBackend> {
        let fail = |what: &str, e: DriverError| {
            Error::Device(format!("CUDA device {ordinal}: {what}: {e}"))
        };
        let ctx = CudaContext::new(ordinal).map_err(|e| fail("cannot open", e))?;
        let gpu = ctx.name().map_err(|e| fail("cannot query", e))?;
        let load = |ptx: &str| {
            ctx.load_module(Ptx::from_src(ptx)).map_err(|e| {
                fail(
                    "cannot load the kernels (PTX ISA 8.2 needs driver r535 or later)",
                    e,
                )
            })
        };
        let (stack, det) = (load(STACK_PTX)?, load(DETECT_PTX)?);
        let f = |m: &Arc<cudarc::driver::CudaModule>, name: &str| {
            m.load_function(name).map_err(|e| fail(name, e))
        };
        let kernels = Kernels {
            correlate_stack: f(&stack, "correlate_stack")?,
            radix_histogram: f(&det, "radix_histogram")?,
            radix_select: f(&det, "radix_select")?,
            candidates: f(&det, "candidates")?,
        };
        let stream = || {
            ctx.new_stream()
                .map_err(|e| fail("cannot create a stream", e))
        };
        Ok(CudaBackend {
            ordinal,
            name: format!("cuda:{ordinal} ({gpu})"),
            copy: stream()?,
            compute: [stream()?, stream()?],
            ctx,
            kernels,
            days: Mutex::new(Vec::new()),
            staging: Mutex::new(None),
            busy: Mutex::new(()),
        })
    }

    fn error(&self, e: DriverError) -> Error {
        Error::Device(format!("CUDA device {}: {e}", self.ordinal))
    }

    /// The day in device memory, copied in now unless prefetched.
    fn device_day(&self, day: &DayView) -> Result<Arc<DeviceDay>> {
        let mut days = self.days.lock().unwrap();
        if let Some(d) = days.iter().find(|d| d.id == day.id) {
            return Ok(d.clone());
        }
        // Keep the latest day (it may be in use) and make room for this one.
        let keep = days.len().saturating_sub(1);
        days.drain(..keep);
        let d = Arc::new(self.upload(day).map_err(|e| self.error(e))?);
        days.push(d.clone());
        Ok(d)
    }

    /// Copy the day's samples and 1/σ through the page-locked buffer into
    /// device memory, on the copy stream.
    fn upload(&self, day: &DayView) -> std::result::Result<DeviceDay, DriverError> {
        let (c, len, n_lags) = (day.channels.len(), day.len, day.n_lags());
        let need = c * (len + n_lags);
        let mut staging = self.staging.lock().unwrap();
        if staging.as_ref().map_or(true, |s| s.len() < need) {
            // Drop the old buffer first (it waits for its last copy).
            *staging = None;
            // SAFETY: filled below before it is copied.
            *staging = Some(unsafe { self.ctx.alloc_pinned::<f32>(need.max(1)) }?);
        }
        let pinned = staging.as_mut().expect("allocated above");
        // Waits until the previous day's copy out of it is done.
        let host = pinned.as_mut_slice()?;
        for (i, ch) in day.channels.iter().enumerate() {
            host[i * len..(i + 1) * len].copy_from_slice(ch.data);
            let inv = &ch.norm.inv_std;
            assert_eq!(
                inv.len(),
                n_lags,
                "normalization of another template length"
            );
            host[c * len + i * n_lags..c * len + (i + 1) * n_lags].copy_from_slice(inv);
        }
        // SAFETY: every element is written by the copy below.
        let mut buf = unsafe { self.copy.alloc::<f32>(pinned.len()) }?;
        self.copy.memcpy_htod(&*pinned, &mut buf)?;
        Ok(DeviceDay {
            id: day.id,
            channels: c,
            len,
            n_lags,
            buf,
        })
    }

    /// Templates per batch: two batches (one per compute stream) of stacks,
    /// selection state, candidates and template data in the free memory.
    fn batch_size(&self, day: &DeviceDay, templates: &[StackTemplate], m: usize) -> Result<usize> {
        let (free, _) = self.ctx.mem_get_info().map_err(|e| self.error(e))?;
        let most_channels = templates
            .iter()
            .map(|t| t.channels.len())
            .max()
            .unwrap_or(1);
        let per_template = 4 * day.n_lags
            + 2 * RADIX_BINS * 4
            + FIRST_CANDIDATES * 8
            + most_channels * (4 * m + 12)
            + 64;
        let per_batch = free.saturating_sub(RESERVE_BYTES) / 2;
        Ok((per_batch / per_template).clamp(1, MAX_BATCH))
    }

    /// Enqueue correlation and stacking of `templates` on `stream`; with
    /// `zero_tail` the lags some channel cannot reach are written as 0.
    fn launch_stack(
        &self,
        day: &DeviceDay,
        templates: &[StackTemplate],
        m: usize,
        stream: &Arc<CudaStream>,
        zero_tail: bool,
    ) -> std::result::Result<CudaSlice<f32>, DriverError> {
        let f = FlatBatch::new(templates, m);
        let waves = stream.clone_htod(&f.waves)?;
        let chan = stream.clone_htod(&f.chan)?;
        let pad = stream.clone_htod(&f.pad)?;
        let weight = stream.clone_htod(&f.weight)?;
        let first = stream.clone_htod(&f.first)?;
        let max_pad = stream.clone_htod(&f.max_pad)?;
        // SAFETY: the kernel writes every lag of every template.
        let mut stacks = unsafe { stream.alloc::<f32>(templates.len() * day.n_lags) }?;
        let x = day.buf.slice(..day.data_len());
        let inv = day
            .buf
            .slice(day.data_len()..day.data_len() + day.channels * day.n_lags);
        let (n, n_lags, m_arg) = (day.len as i64, day.n_lags as i64, m as i32);
        let zero_tail = i32::from(zero_tail);
        let cfg = LaunchConfig {
            grid_dim: (
                day.n_lags.div_ceil(STACK_TILE) as u32,
                templates.len() as u32,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list is the kernel's signature (stack.cu);
        // the grid covers every lag and template, and every index the kernel
        // forms stays inside the buffers given (checked there).
        unsafe {
            stream
                .launch_builder(&self.kernels.correlate_stack)
                .arg(&x)
                .arg(&inv)
                .arg(&n)
                .arg(&n_lags)
                .arg(&m_arg)
                .arg(&waves)
                .arg(&chan)
                .arg(&pad)
                .arg(&weight)
                .arg(&first)
                .arg(&max_pad)
                .arg(&zero_tail)
                .arg(&mut stacks)
                .launch(cfg)?;
        }
        Ok(stacks)
    }

    /// Enqueue a batch: stacks, then the two middle values of each
    /// template's |stack| over the day by radix selection.
    fn launch_batch(
        &self,
        day: &DeviceDay,
        templates: &[StackTemplate],
        range: Range<usize>,
        m: usize,
        spec: &PeakSpec,
        stream: &Arc<CudaStream>,
    ) -> std::result::Result<InFlight, DriverError> {
        let batch = &templates[range.clone()];
        let stacks = self.launch_stack(day, batch, m, stream, true)?;
        let (a, b) = (spec.day.start, spec.day.end);
        let middles = if a < b {
            let nt = batch.len();
            let n = b - a;
            // Ranks of the two middle values, 0-based (equal for odd n).
            let ranks: Vec<u32> = (0..nt)
                .flat_map(|_| [((n - 1) / 2) as u32, (n / 2) as u32])
                .collect();
            let mut rank = stream.clone_htod(&ranks)?;
            let mut prefix = stream.alloc_zeros::<u32>(2 * nt)?;
            let mut mask = stream.alloc_zeros::<u32>(2 * nt)?;
            let mut hist = stream.alloc_zeros::<u32>(2 * nt * RADIX_BINS)?;
            let (n_lags, a64, b64, n_sel, count) =
                (day.n_lags as i64, a as i64, b as i64, 2i32, (2 * nt) as i32);
            let hist_cfg = grid(n.div_ceil(THREADS as usize * SCAN_PER_THREAD), nt, 2);
            let select_cfg = grid((2 * nt).div_ceil(THREADS as usize), 1, 1);
            for (shift, bits) in RADIX_PASSES {
                // SAFETY: argument lists as in detect.cu; the histogram grid
                // has one (template, selection) per (y, z), the selection
                // grid one thread per selection (extra threads return).
                unsafe {
                    stream
                        .launch_builder(&self.kernels.radix_histogram)
                        .arg(&stacks)
                        .arg(&n_lags)
                        .arg(&a64)
                        .arg(&b64)
                        .arg(&n_sel)
                        .arg(&prefix)
                        .arg(&mask)
                        .arg(&shift)
                        .arg(&bits)
                        .arg(&mut hist)
                        .launch(hist_cfg)?;
                    stream
                        .launch_builder(&self.kernels.radix_select)
                        .arg(&mut hist)
                        .arg(&mut prefix)
                        .arg(&mut mask)
                        .arg(&mut rank)
                        .arg(&shift)
                        .arg(&bits)
                        .arg(&count)
                        .launch(select_cfg)?;
                }
            }
            Some(prefix)
        } else {
            None
        };
        Ok(InFlight {
            stream: stream.clone(),
            templates: range,
            stacks,
            middles,
        })
    }

    /// Bring a batch back: medians and thresholds, then the candidates above
    /// them, declustered on the host.
    fn finish(
        &self,
        b: InFlight,
        day: &DayView,
        templates: &[StackTemplate],
        spec: &PeakSpec,
    ) -> std::result::Result<Vec<TemplatePeaks>, DriverError> {
        let s = &b.stream;
        let batch = &templates[b.templates.clone()];
        let nt = batch.len();
        let n_lags = day.n_lags();
        let mads: Vec<f32> = match &b.middles {
            Some(middles) => {
                let bits = s.clone_dtoh(middles)?;
                s.synchronize()?;
                // The mean of the two middle values, as the host's median.
                bits.chunks(2)
                    .map(|p| (f32::from_bits(p[0]) + f32::from_bits(p[1])) / 2.0)
                    .collect()
            }
            None => vec![0.0; nt],
        };
        let thresholds: Vec<f32> = batch
            .iter()
            .zip(&mads)
            .map(|(t, &mad)| {
                detect::threshold(spec.threshold_type, spec.threshold, mad, t.channels.len())
            })
            .collect();
        let thr = s.clone_htod(&thresholds)?;
        let n_lags64 = n_lags as i64;
        let cfg = grid(n_lags.div_ceil(THREADS as usize * SCAN_PER_THREAD), nt, 1);
        let mut cap = FIRST_CANDIDATES;
        loop {
            let mut count = s.alloc_zeros::<u32>(nt)?;
            // SAFETY: the kernel writes the first min(count, cap) entries of
            // each template's row; only those are read.
            let mut lag = unsafe { s.alloc::<u32>(nt * cap) }?;
            let mut value = unsafe { s.alloc::<f32>(nt * cap) }?;
            let cap32 = cap as u32;
            // SAFETY: argument list as in detect.cu; one grid row per
            // template, each thread scanning lags in steps of the grid.
            unsafe {
                s.launch_builder(&self.kernels.candidates)
                    .arg(&b.stacks)
                    .arg(&n_lags64)
                    .arg(&thr)
                    .arg(&cap32)
                    .arg(&mut count)
                    .arg(&mut lag)
                    .arg(&mut value)
                    .launch(cfg)?;
            }
            let counts = s.clone_dtoh(&count)?;
            s.synchronize()?;
            let most = counts.iter().copied().max().unwrap_or(0) as usize;
            if most > cap {
                // Some candidates did not fit: scan again with room for all.
                cap = most;
                continue;
            }
            let (lags, values) = (s.clone_dtoh(&lag)?, s.clone_dtoh(&value)?);
            s.synchronize()?;
            return Ok(batch
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let row = i * cap..i * cap + counts[i] as usize;
                    let cand = lags[row.clone()]
                        .iter()
                        .zip(&values[row])
                        .map(|(&k, &v)| (k as usize, v))
                        .collect();
                    TemplatePeaks {
                        mad: mads[i],
                        threshold: thresholds[i],
                        peaks: peaks_from_candidates(day, t, spec, cand),
                    }
                })
                .collect());
        }
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn stack(
        &self,
        day: &DayView,
        templates: &[StackTemplate],
        stacks: &mut [Vec<f32>],
    ) -> Result<()> {
        assert_eq!(templates.len(), stacks.len());
        let _busy = self.busy.lock().unwrap();
        let n_lags = day.n_lags();
        for s in stacks.iter_mut() {
            s.clear();
            s.resize(n_lags, 0.0);
        }
        if n_lags == 0 || templates.is_empty() {
            return Ok(());
        }
        let dd = self.device_day(day)?;
        let m = day.template_len;
        let mut size = self.batch_size(&dd, templates, m)?;
        let mut next = 0;
        while next < templates.len() {
            let end = (next + size).min(templates.len());
            let stream = &self.compute[0];
            let d = match self.launch_stack(&dd, &templates[next..end], m, stream, false) {
                Err(e) if is_oom(&e) && size > 1 => {
                    size /= 2;
                    continue;
                }
                r => r.map_err(|e| self.error(e))?,
            };
            for (i, s) in stacks[next..end].iter_mut().enumerate() {
                stream
                    .memcpy_dtoh(&d.slice(i * n_lags..(i + 1) * n_lags), s)
                    .map_err(|e| self.error(e))?;
            }
            stream.synchronize().map_err(|e| self.error(e))?;
            next = end;
        }
        Ok(())
    }

    fn peaks(
        &self,
        day: &DayView,
        templates: &[StackTemplate],
        spec: &PeakSpec,
    ) -> Result<Vec<TemplatePeaks>> {
        let _busy = self.busy.lock().unwrap();
        let n_lags = day.n_lags();
        if n_lags == 0 || templates.is_empty() {
            // No lag to search: what the host would find in empty stacks.
            return Ok(templates
                .iter()
                .map(|t| TemplatePeaks {
                    mad: 0.0,
                    threshold: detect::threshold(
                        spec.threshold_type,
                        spec.threshold,
                        0.0,
                        t.channels.len(),
                    ),
                    peaks: Vec::new(),
                })
                .collect());
        }
        // Lags and ranks are 32-bit on the device (a day at 1 kHz is 8.6e7).
        assert!(n_lags <= u32::MAX as usize, "{n_lags} lags");
        let dd = self.device_day(day)?;
        let m = day.template_len;
        let mut size = self.batch_size(&dd, templates, m)?;
        let mut out = Vec::with_capacity(templates.len());
        // At most two batches in flight, one per compute stream: the host
        // finishes the older while the device computes the newer.
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let (mut next, mut turn) = (0, 0);
        while next < templates.len() {
            let end = (next + size).min(templates.len());
            let stream = &self.compute[turn % 2];
            match self.launch_batch(&dd, templates, next..end, m, spec, stream) {
                Ok(b) => {
                    in_flight.push_back(b);
                    (next, turn) = (end, turn + 1);
                }
                Err(e) if is_oom(&e) => {
                    // Free the batch in flight, then try again smaller; a
                    // single template that does not fit is an error.
                    if let Some(b) = in_flight.pop_front() {
                        out.extend(
                            self.finish(b, day, templates, spec)
                                .map_err(|e| self.error(e))?,
                        );
                    } else if size > 1 {
                        // Memory freed on other streams returns to the
                        // device once they are done.
                        self.ctx.synchronize().map_err(|e| self.error(e))?;
                        size /= 2;
                    } else {
                        return Err(Error::Device(format!(
                            "CUDA device {}: out of memory for one template's stacked trace \
                             ({} MiB); free the GPU or use --device cpu",
                            self.ordinal,
                            (4 * n_lags) >> 20
                        )));
                    }
                    continue;
                }
                Err(e) => return Err(self.error(e)),
            }
            if in_flight.len() == 2 {
                let b = in_flight.pop_front().expect("two in flight");
                out.extend(
                    self.finish(b, day, templates, spec)
                        .map_err(|e| self.error(e))?,
                );
            }
        }
        while let Some(b) = in_flight.pop_front() {
            out.extend(
                self.finish(b, day, templates, spec)
                    .map_err(|e| self.error(e))?,
            );
        }
        Ok(out)
    }

    fn prefetch(&self, day: &DayView) -> Result<()> {
        self.device_day(day).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The selection detect.cu performs, pass for pass with the same digits
    /// and ranks as `launch_batch` gives it, finds the host's median.
    #[test]
    fn radix_passes_select_the_median() {
        let select = |x: &[f32], rank: u32| {
            let (mut prefix, mut mask, mut r) = (0u32, 0u32, rank);
            for (shift, bits) in RADIX_PASSES {
                let digit = (1u32 << bits) - 1;
                let mut h = vec![0u32; RADIX_BINS];
                for v in x.iter().map(|v| v.abs().to_bits()) {
                    if v & mask == prefix {
                        h[((v >> shift) & digit) as usize] += 1;
                    }
                }
                let mut d = 0;
                while d + 1 < (1 << bits) && r >= h[d as usize] {
                    r -= h[d as usize];
                    d += 1;
                }
                prefix |= d << shift;
                mask |= digit << shift;
            }
            assert_eq!(mask, u32::MAX, "the passes cover every bit once");
            f32::from_bits(prefix)
        };
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 7.0
        };
        for n in [1usize, 2, 3, 10, 1001, 4096] {
            let mut x: Vec<f32> = (0..n).map(|_| next()).collect();
            // Zeros (a zeroed tail), negative zero and ties.
            for i in (0..n).step_by(5) {
                x[i] = if i % 2 == 0 { 0.0 } else { -0.0 };
            }
            for i in (1..n).step_by(7) {
                x[i] = -x[i - 1];
            }
            let (lo, hi) = (select(&x, ((n - 1) / 2) as u32), select(&x, (n / 2) as u32));
            assert_eq!((lo + hi) / 2.0, detect::median_abs(&x), "n = {n}");
        }
    }
}
