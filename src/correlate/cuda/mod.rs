//! CUDA backend: one [`CudaBackend`] per GPU, kernels from `kernels/*.cu`
//! compiled ahead of time to PTX and embedded, so that at run time only the
//! NVIDIA driver is needed.
//!
//! Per day and device: the day's data and moving 1/σ (computed once per day
//! on the host, where the per-channel picks need them too) are copied in
//! through a page-locked buffer on a copy stream and stay in device memory
//! for every template of the day (module `day`). Templates go in batches sized
//! to the free device memory; each batch is correlated and stacked in one
//! kernel on a compute stream (per-channel CC stays in registers), then its
//! median |stack| is selected and its peak candidates are found on a
//! high-priority detection stream, so that they run as soon as the stacks
//! are made rather than behind the next batch's correlation; only medians
//! and candidates come back. Batches alternate between two such stream
//! pairs, so one batch computes while the host finishes the one before;
//! out of memory halves the batch.
//!
//! Ordering across streams is explicit: compute streams wait on the day's
//! `ready` event, detection streams on the batch's `stacked` event, and the
//! staging buffer is rewritten only after its `copied` event. (cudarc also
//! tracks the uses of each buffer with events of its own; the explicit
//! events are what this code relies on.)

mod day;
pub(super) mod kernels;
pub(super) mod recompute;

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use cudarc::driver::{sys, CudaContext, CudaSlice, CudaStream, DriverError};

use rayon::prelude::*;

use super::mixed::{self, MixedKernel, Precision};
use super::{
    peaks_from_candidates, screen, Backend, DayView, PeakSpec, StackTemplate, TemplatePeaks,
};
use crate::error::{Error, Result};
use day::{Days, DeviceDay};
use kernels::{BatchArgs, Kernels, MixedArgs, ScanArgs, Selection, RADIX_BINS};

pub use kernels::embedded as embedded_kernels;

/// Templates of one launch: they are the grid's y dimension.
const MAX_BATCH: usize = 65535;
/// Room for each template's candidates in the first scan; a template with
/// more is scanned again with room for exactly its count.
const FIRST_CANDIDATES: usize = 256;
/// Candidates one scan launch makes room for at first (8 bytes each); less
/// after an out-of-memory.
const SCAN_BUDGET: usize = 32 << 20;
/// Device memory left free for the driver and the kernels' own needs.
const RESERVE_BYTES: usize = 512 << 20;
/// Environment variable capping templates per batch, so that tests run
/// many batches, both stream pairs and the halving path on small inputs.
pub const MAX_BATCH_VAR: &str = "TMATCH_CUDA_MAX_BATCH";

pub struct CudaBackend {
    ordinal: usize,
    name: String,
    ctx: Arc<CudaContext>,
    /// Correlation and stacking of alternate batches.
    compute: [Arc<CudaStream>; 2],
    /// Median and candidates of the batch stacked on the compute stream of
    /// the same index, at high priority.
    detect: [Arc<CudaStream>; 2],
    kernels: Kernels,
    days: Days,
    /// Templates per batch at most (the grid's limit, or [`MAX_BATCH_VAR`]).
    max_batch: usize,
    /// The kernel whose stacks, screened on tensor cores, peaks are
    /// searched in (`--precision`); [`Backend::stack`] is always fp32.
    mixed: Option<MixedKernel>,
    /// The streams serve one call at a time.
    busy: Mutex<()>,
}

/// A batch whose stacks and medians are on its detection stream, not yet
/// brought back.
struct InFlight {
    stream: Arc<CudaStream>,
    templates: Range<usize>,
    stacks: CudaSlice<f32>,
    /// Bits of the two middle values of each template's |stack| over the
    /// day (the same value twice for an odd count); none for an empty day.
    middles: Option<CudaSlice<u32>>,
    /// Screened stacks: each template's error margin (bits of a float).
    margins: Option<CudaSlice<u32>>,
}

/// A scanned row: its true number of candidates, and those that fitted.
type Scanned = (usize, Vec<(usize, f32)>);

fn is_oom(e: &DriverError) -> bool {
    e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY
}

/// Errors after which the context is unusable (every later call fails
/// too) or the hardware is suspect: the device takes no more days. Other
/// errors are the day's (recorded as failed; `--resume` redoes it), so a
/// day that trips one cannot take every GPU down in turn.
fn is_sticky(e: &DriverError) -> bool {
    use sys::CUresult::*;
    matches!(
        e.0,
        CUDA_ERROR_ILLEGAL_ADDRESS
            | CUDA_ERROR_LAUNCH_FAILED
            | CUDA_ERROR_LAUNCH_TIMEOUT
            | CUDA_ERROR_HARDWARE_STACK_ERROR
            | CUDA_ERROR_ILLEGAL_INSTRUCTION
            | CUDA_ERROR_MISALIGNED_ADDRESS
            | CUDA_ERROR_INVALID_ADDRESS_SPACE
            | CUDA_ERROR_INVALID_PC
            | CUDA_ERROR_ECC_UNCORRECTABLE
            | CUDA_ERROR_NVLINK_UNCORRECTABLE
            | CUDA_ERROR_CONTEXT_IS_DESTROYED
            | CUDA_ERROR_DEVICE_UNAVAILABLE
    )
}

/// The rows of a candidate scan that one launch takes: from the start of
/// `caps` while their room adds up to at most `budget` candidates, and
/// always at least one.
fn scan_group(caps: &[usize], budget: usize) -> usize {
    let mut total = 0;
    let n = caps
        .iter()
        .take_while(|&&c| {
            total += c;
            total <= budget
        })
        .count();
    n.max(1).min(caps.len())
}

/// Exclusive prefix sums: where each row's candidates start.
fn offsets(caps: &[usize]) -> Vec<u64> {
    caps.iter()
        .scan(0u64, |at, &c| {
            let o = *at;
            *at += c as u64;
            Some(o)
        })
        .collect()
}

impl CudaBackend {
    /// Open GPU `ordinal` and load the kernels. The caller has checked that
    /// the driver library is present ([`super::cuda_devices`]).
    pub fn new(ordinal: usize) -> Result<CudaBackend> {
        let fail = |what: &str, source: DriverError| Error::Cuda {
            ordinal,
            what: Some(what.to_string()),
            source,
        };
        let ctx = CudaContext::new(ordinal).map_err(|e| fail("cannot open", e))?;
        let gpu = ctx.name().map_err(|e| fail("cannot query", e))?;
        let kernels = Kernels::load(&ctx).map_err(|(what, e)| fail(&what, e))?;
        let stream = || {
            ctx.new_stream()
                .map_err(|e| fail("cannot create a stream", e))
        };
        // The numerically lowest priority is the highest.
        let (_, highest) = cudarc::driver::result::stream::get_priority_range()
            .map_err(|e| fail("cannot query stream priorities", e))?;
        let urgent = || {
            ctx.new_stream_with_priority(highest)
                .map_err(|e| fail("cannot create a stream", e))
        };
        let max_batch = match std::env::var(MAX_BATCH_VAR) {
            Ok(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::Input(format!("{MAX_BATCH_VAR}={v}: expected a positive number"))
                })?
                .min(MAX_BATCH),
            Err(_) => MAX_BATCH,
        };
        Ok(CudaBackend {
            ordinal,
            name: format!("cuda:{ordinal} ({gpu})"),
            days: Days::new(ctx.clone(), stream()?),
            compute: [stream()?, stream()?],
            detect: [urgent()?, urgent()?],
            ctx,
            kernels,
            max_batch,
            mixed: None,
            busy: Mutex::new(()),
        })
    }

    /// Search peaks with the stack kernel `precision` chooses for this GPU;
    /// `mixed` on a GPU without tensor cores is refused.
    pub fn with_precision(self, precision: Precision) -> Result<CudaBackend> {
        let (major, minor) = self.ctx.compute_capability().map_err(|e| self.error(e))?;
        match precision.mixed_kernel(major, minor) {
            Some(kernel) => self.with_mixed_kernel(kernel),
            None if precision == Precision::Mixed => Err(Error::Device(format!(
                "--precision mixed: {} has compute capability {major}.{minor}; tensor cores \
                 need 7.0 or later",
                self.name
            ))),
            None => Ok(self),
        }
    }

    /// Screen with `kernel` (the GPU tests run both on an sm_90 GPU);
    /// refused where the GPU cannot run it.
    pub fn with_mixed_kernel(mut self, kernel: MixedKernel) -> Result<CudaBackend> {
        let (major, minor) = self.ctx.compute_capability().map_err(|e| self.error(e))?;
        let runs = match kernel {
            MixedKernel::Wmma => major >= 7,
            MixedKernel::Wgmma => (major, minor) == (9, 0),
        };
        if !runs {
            return Err(Error::Device(format!(
                "{}: compute capability {major}.{minor} cannot run the {kernel:?} kernel",
                self.name
            )));
        }
        self.mixed = Some(kernel);
        self.name.push_str(match kernel {
            MixedKernel::Wmma => ", mixed precision",
            MixedKernel::Wgmma => ", mixed precision (wgmma)",
        });
        Ok(self)
    }

    /// The GPU's fp32 peak in FLOP/s (an FMA counted as two): its
    /// multiprocessors × fp32 lanes per multiprocessor × 2 × its highest
    /// clock. `None` for an architecture this does not know.
    pub fn fp32_peak(&self) -> Option<f64> {
        use sys::CUdevice_attribute::*;
        let at = |a| self.ctx.attribute(a).ok();
        let (major, minor) = self.ctx.compute_capability().ok()?;
        let lanes = match (major, minor) {
            (7, _) | (8, 0) => 64.0,
            (8, _) | (9, _) | (10, _) | (12, _) => 128.0,
            _ => return None,
        };
        let sms = at(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as f64;
        let khz = at(CU_DEVICE_ATTRIBUTE_CLOCK_RATE)? as f64;
        Some(sms * lanes * 2.0 * khz * 1e3)
    }

    /// The GPU's dense fp16 tensor-core peak with fp32 accumulation in
    /// FLOP/s: multiprocessors × FMA per clock per multiprocessor × 2 × its
    /// highest clock, with 512 FMA per clock for sm_70 (V100: 125 TFLOP/s),
    /// 1,024 for sm_80 (A100: 312) and 2,048 for sm_90 (H100/H200: 989), as
    /// NVIDIA's data-centre whitepapers give them. `None` for other
    /// architectures (consumer parts accumulate fp32 at other rates).
    pub fn tensor_peak(&self) -> Option<f64> {
        use sys::CUdevice_attribute::*;
        let at = |a| self.ctx.attribute(a).ok();
        let fma = match self.ctx.compute_capability().ok()? {
            (7, 0) => 512.0,
            (8, 0) => 1024.0,
            (9, 0) => 2048.0,
            _ => return None,
        };
        let sms = at(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as f64;
        let khz = at(CU_DEVICE_ATTRIBUTE_CLOCK_RATE)? as f64;
        Some(sms * fma * 2.0 * khz * 1e3)
    }

    /// At most `n` templates per batch (at least one): tests run many
    /// batches, both stream pairs and the halving path on small inputs.
    pub fn with_max_batch(mut self, n: usize) -> CudaBackend {
        self.max_batch = n.clamp(1, MAX_BATCH);
        self
    }

    /// A driver error as this crate's: a sticky error leaves the device in
    /// a state that cannot be trusted (a fault: it takes no more days); any
    /// other, out of memory among them, is a problem of the day (recorded,
    /// the run goes on).
    fn error(&self, source: DriverError) -> Error {
        let sticky = is_sticky(&source);
        let e = Error::Cuda {
            ordinal: self.ordinal,
            what: None,
            source,
        };
        if sticky {
            Error::DeviceFault(Box::new(e))
        } else {
            e
        }
    }

    fn device_day(&self, day: &DayView) -> Result<Arc<DeviceDay>> {
        self.days.get(day).map_err(|e| self.error(e))
    }

    /// Templates per batch: two batches (one per stream pair) of stacks,
    /// selection state, first candidates and template data in the free
    /// memory, less room for the next day when it is not here yet (it is
    /// copied in while this one is computed: about this day's size).
    fn batch_size(&self, day: &DeviceDay, templates: &[StackTemplate], m: usize) -> Result<usize> {
        let free = self.free_memory().map_err(|e| self.error(e))?;
        let next_day = if self.days.has_other_than(day.id) {
            0
        } else {
            day.bytes()
        };
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
        let per_batch = free.saturating_sub(RESERVE_BYTES + next_day) / 2;
        Ok((per_batch / per_template).clamp(1, self.max_batch))
    }

    /// Free device memory once what earlier batches freed is back: the
    /// compute and detection streams are synchronized (freed blocks return
    /// to the pool; not the copy stream, which may be copying the next day
    /// in) and the pool gives its unused memory back to the device.
    fn free_memory(&self) -> std::result::Result<usize, DriverError> {
        for s in self.compute.iter().chain(&self.detect) {
            s.synchronize()?;
        }
        // SAFETY: plain driver calls on this context's device; the pool
        // keeps the blocks in use.
        unsafe {
            let mut pool = std::mem::MaybeUninit::uninit();
            sys::cuDeviceGetDefaultMemPool(pool.as_mut_ptr(), self.ctx.cu_device()).result()?;
            sys::cuMemPoolTrimTo(pool.assume_init(), 0).result()?;
        }
        Ok(self.ctx.mem_get_info()?.0)
    }

    /// The template batch in device memory, on `stream`.
    fn upload_batch(
        stream: &Arc<CudaStream>,
        templates: &[StackTemplate],
        m: usize,
    ) -> std::result::Result<BatchArgs, DriverError> {
        let n_ch: usize = templates.iter().map(|t| t.channels.len()).sum();
        let mut waves = Vec::with_capacity(n_ch * m);
        let (mut chan, mut pad, mut weight) = (Vec::new(), Vec::new(), Vec::new());
        let mut first = vec![0i32];
        let mut max_pad = Vec::with_capacity(templates.len());
        for t in templates {
            for c in &t.channels {
                assert_eq!(c.waveform.len(), m, "template channel of another length");
                waves.extend_from_slice(&c.waveform);
                chan.push(c.channel as i32);
                pad.push(c.pad as i32);
                weight.push(c.weight);
            }
            first.push(chan.len() as i32);
            max_pad.push(t.max_pad() as i32);
        }
        Ok(BatchArgs {
            templates: templates.len(),
            m,
            waves: stream.clone_htod(&waves)?,
            chan: stream.clone_htod(&chan)?,
            pad: stream.clone_htod(&pad)?,
            weight: stream.clone_htod(&weight)?,
            first: stream.clone_htod(&first)?,
            max_pad: stream.clone_htod(&max_pad)?,
        })
    }

    /// The template batch in groups for `kernel`, on `stream`
    /// ([`mixed::Layout`]).
    fn upload_mixed(
        stream: &Arc<CudaStream>,
        templates: &[StackTemplate],
        m: usize,
        kernel: MixedKernel,
    ) -> std::result::Result<MixedArgs, DriverError> {
        let l = mixed::Layout::new(templates, m, kernel);
        Ok(MixedArgs {
            kernel,
            groups: l.groups,
            m,
            mp: l.mp,
            waves: stream.clone_htod(&l.fp16_bits())?,
            entry_wave: stream.clone_htod(&l.entry_wave)?,
            entry_k: stream.clone_htod(&l.entry_k)?,
            entry_first: stream.clone_htod(&l.entry_first)?,
            entry_chan: stream.clone_htod(&l.entry_chan)?,
            entry_min_pad: stream.clone_htod(&l.entry_min_pad)?,
            entry_tscale: stream.clone_htod(&l.entry_tscale)?,
            slot_pad: stream.clone_htod(&l.slot_pad)?,
            slot_weight: stream.clone_htod(&l.slot_weight)?,
            member_row: stream.clone_htod(&l.member_row)?,
            member_max_pad: stream.clone_htod(&l.member_max_pad)?,
            coefficient: mixed::channel_error_coefficient(m) as f32,
        })
    }

    /// Enqueue the screened stacks of `templates` and their error margins on
    /// `stream`, after the day's copy.
    fn launch_stack_mixed(
        &self,
        day: &DeviceDay,
        templates: &[StackTemplate],
        m: usize,
        stream: &Arc<CudaStream>,
    ) -> std::result::Result<(CudaSlice<f32>, CudaSlice<u32>), DriverError> {
        let kernel = self.mixed.expect("a backend with a mixed kernel");
        let batch = Self::upload_mixed(stream, templates, m, kernel)?;
        // SAFETY: every template is a member of one group, and the kernel
        // writes every lag of every member.
        let mut stacks = unsafe { stream.alloc::<f32>(templates.len() * day.n_lags) }?;
        let mut margins = stream.alloc_zeros::<u32>(templates.len())?;
        stream.wait(&day.ready)?;
        self.kernels.correlate_stack_mixed(
            stream,
            &day.args(),
            &batch,
            true,
            &mut stacks,
            &mut margins,
        )?;
        Ok((stacks, margins))
    }

    /// Enqueue the stacks of `templates` on `stream`, after the day's copy.
    fn launch_stack(
        &self,
        day: &DeviceDay,
        templates: &[StackTemplate],
        m: usize,
        stream: &Arc<CudaStream>,
        zero_tail: bool,
    ) -> std::result::Result<CudaSlice<f32>, DriverError> {
        let batch = Self::upload_batch(stream, templates, m)?;
        // SAFETY: the kernel writes every lag of every template.
        let mut stacks = unsafe { stream.alloc::<f32>(templates.len() * day.n_lags) }?;
        stream.wait(&day.ready)?;
        self.kernels
            .correlate_stack(stream, &day.args(), &batch, zero_tail, &mut stacks)?;
        Ok(stacks)
    }

    /// Enqueue a batch: stacks on compute stream `turn`, then on detection
    /// stream `turn` the two middle values of each template's |stack| over
    /// the day by radix selection.
    fn launch_batch(
        &self,
        day: &DeviceDay,
        templates: &[StackTemplate],
        range: Range<usize>,
        m: usize,
        spec: &PeakSpec,
        turn: usize,
    ) -> std::result::Result<InFlight, DriverError> {
        let (compute, stream) = (&self.compute[turn], &self.detect[turn]);
        let batch = &templates[range.clone()];
        // A day loaded without window means (not through `load_day` with
        // this backend's needs) is stacked in fp32: slower, as exact.
        let (stacks, margins) = if self.mixed.is_some() && day.has_mean() {
            let (s, margins) = self.launch_stack_mixed(day, batch, m, compute)?;
            (s, Some(margins))
        } else {
            (self.launch_stack(day, batch, m, compute, true)?, None)
        };
        // The detection stream reads the stacks once they are made.
        stream.wait(&compute.record_event(None)?)?;
        let middles = if spec.day.start < spec.day.end {
            let nt = batch.len();
            let n = spec.day.len();
            // Ranks of the two middle values, 0-based (equal for odd n).
            let ranks: Vec<u32> = (0..nt)
                .flat_map(|_| [((n - 1) / 2) as u32, (n / 2) as u32])
                .collect();
            let mut sel = Selection {
                rank: stream.clone_htod(&ranks)?,
                prefix: stream.alloc_zeros::<u32>(2 * nt)?,
                mask: stream.alloc_zeros::<u32>(2 * nt)?,
                hist: stream.alloc_zeros::<u32>(2 * nt * RADIX_BINS)?,
            };
            self.kernels.radix_select(
                stream,
                &stacks,
                day.n_lags,
                spec.day.clone(),
                nt,
                &mut sel,
            )?;
            Some(sel.prefix)
        } else {
            None
        };
        Ok(InFlight {
            stream: stream.clone(),
            templates: range,
            stacks,
            middles,
            margins,
        })
    }

    /// The candidates of the batch's `rows` (templates of the batch), each
    /// with room for `caps[r]`: per row its true count and the candidates
    /// that fitted. Rows go in launches sized to the memory (out of memory
    /// makes them smaller).
    fn scan(
        &self,
        b: &InFlight,
        n_lags: usize,
        thr: &CudaSlice<f32>,
        all: bool,
        rows: &[u32],
        caps: &[usize],
    ) -> std::result::Result<Vec<Scanned>, DriverError> {
        let s = &b.stream;
        let mut out = Vec::with_capacity(rows.len());
        let mut budget = SCAN_BUDGET;
        let mut at = 0;
        while at < rows.len() {
            let n = scan_group(&caps[at..], budget);
            let group = at..at + n;
            match self.scan_once(b, n_lags, thr, all, &rows[group.clone()], &caps[group]) {
                Ok(found) => {
                    out.extend(found);
                    at += n;
                }
                Err(e) if is_oom(&e) && n > 1 => {
                    // Freed memory returns once the stream is idle.
                    s.synchronize()?;
                    budget = caps[at..at + n].iter().sum::<usize>() / 2;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn scan_once(
        &self,
        b: &InFlight,
        n_lags: usize,
        thr: &CudaSlice<f32>,
        all: bool,
        rows: &[u32],
        caps: &[usize],
    ) -> std::result::Result<Vec<Scanned>, DriverError> {
        let s = &b.stream;
        let starts = offsets(caps);
        let total: usize = caps.iter().sum();
        let caps32: Vec<u32> = caps.iter().map(|&c| c as u32).collect();
        let mut scan = ScanArgs {
            rows: s.clone_htod(rows)?,
            offset: s.clone_htod(&starts)?,
            cap: s.clone_htod(&caps32)?,
            count: s.alloc_zeros::<u32>(rows.len())?,
            // SAFETY: the kernel writes the first min(count, cap) entries
            // of each row's room; only those are read.
            lag: unsafe { s.alloc::<u32>(total.max(1)) }?,
            value: unsafe { s.alloc::<f32>(total.max(1)) }?,
        };
        self.kernels
            .candidates(s, &b.stacks, n_lags, thr, all, &mut scan)?;
        let counts = s.clone_dtoh(&scan.count)?;
        let (lags, values) = (s.clone_dtoh(&scan.lag)?, s.clone_dtoh(&scan.value)?);
        s.synchronize()?;
        Ok((0..rows.len())
            .map(|r| {
                let at = starts[r] as usize;
                let kept = at..at + (counts[r] as usize).min(caps[r]);
                let cand = lags[kept.clone()]
                    .iter()
                    .zip(&values[kept])
                    .map(|(&k, &v)| (k as usize, v))
                    .collect();
                (counts[r] as usize, cand)
            })
            .collect())
    }

    /// Bring a batch back: medians and thresholds, then the candidates above
    /// them (a second scan, with exact room, for the templates that had
    /// more than the first one's), declustered on the host.
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
                    .map(|p| match p {
                        [a, b] if a == b => f32::from_bits(*a),
                        _ => (f32::from_bits(p[0]) + f32::from_bits(p[1])) / 2.0,
                    })
                    .collect()
            }
            None => vec![0.0; nt],
        };
        let thresholds: Vec<f32> = batch
            .iter()
            .zip(&mads)
            .map(|(t, &mad)| spec.threshold_for(mad, t.channels.len()))
            .collect();
        // Screened stacks: every lag whose fp32 value may pass, whatever
        // its neighbours.
        let margins: Option<Vec<f32>> = match &b.margins {
            Some(d) => {
                let bits = s.clone_dtoh(d)?;
                s.synchronize()?;
                Some(bits.into_iter().map(f32::from_bits).collect())
            }
            None => None,
        };
        let scan_at: Vec<f32> = match &margins {
            Some(margins) => thresholds
                .iter()
                .zip(margins)
                .map(|(&t, &m)| screen::lowered_threshold(t, m))
                .collect(),
            None => thresholds.clone(),
        };
        let all = margins.is_some();
        let thr = s.clone_htod(&scan_at)?;
        let rows: Vec<u32> = (0..nt as u32).collect();
        let mut found = self.scan(&b, n_lags, &thr, all, &rows, &vec![FIRST_CANDIDATES; nt])?;
        let (over, counts): (Vec<u32>, Vec<usize>) = found
            .iter()
            .enumerate()
            .filter(|(_, f)| f.0 > FIRST_CANDIDATES)
            .map(|(r, f)| (r as u32, f.0))
            .unzip();
        if !over.is_empty() {
            let again = self.scan(&b, n_lags, &thr, all, &over, &counts)?;
            for (&r, f) in over.iter().zip(again) {
                found[r as usize] = f;
            }
        }
        Ok(batch
            .par_iter()
            .zip(found)
            .enumerate()
            .map(|(i, (t, (_, cand)))| {
                let cand = if all {
                    exact_candidates(day, t, &cand, thresholds[i])
                } else {
                    cand
                };
                TemplatePeaks {
                    mad: mads[i],
                    threshold: thresholds[i],
                    peaks: peaks_from_candidates(day, t, spec, cand),
                }
            })
            .collect())
    }

    /// Templates `0..n` through the device in batches of at most `size`,
    /// at most `depth` of them in flight: `launch` starts one (its range
    /// and its turn), `finish` waits for the oldest and takes its results.
    /// When the device is out of memory the oldest batch in flight is
    /// finished first, then the size halved; one template that does not
    /// fit is an error.
    fn in_batches<B>(
        &self,
        n: usize,
        mut size: usize,
        depth: usize,
        n_lags: usize,
        mut launch: impl FnMut(Range<usize>, usize) -> Result<B, DriverError>,
        mut finish: impl FnMut(B) -> Result<()>,
    ) -> Result<()> {
        let mut in_flight = VecDeque::new();
        let (mut next, mut turn) = (0, 0);
        while next < n {
            let end = (next + size).min(n);
            match launch(next..end, turn) {
                Ok(b) => {
                    in_flight.push_back(b);
                    (next, turn) = (end, turn + 1);
                }
                Err(e) if is_oom(&e) => {
                    if let Some(b) = in_flight.pop_front() {
                        finish(b)?;
                    } else if size > 1 {
                        size /= 2;
                    } else {
                        return Err(Error::Device(format!(
                            "CUDA device {}: out of memory for one template's stacked trace \
                             ({} MiB); free the GPU or use --device cpu",
                            self.ordinal,
                            (4 * n_lags) >> 20
                        )));
                    }
                    // Memory freed on other streams returns to the device
                    // once they are done.
                    self.ctx.synchronize().map_err(|e| self.error(e))?;
                    continue;
                }
                Err(e) => return Err(self.error(e)),
            }
            if in_flight.len() == depth {
                finish(in_flight.pop_front().expect("a batch in flight"))?;
            }
        }
        in_flight.into_iter().try_for_each(finish)
    }
}

/// The peak candidates of `t`'s fp32 stack from the lags its screened stack
/// left (`screened`, with their screened values): those lags and their
/// neighbours recomputed in fp32 on the host, as the fp32 kernel computes
/// them, and the peak rule applied to them (`screen`).
fn exact_candidates(
    day: &DayView,
    t: &StackTemplate,
    screened: &[(usize, f32)],
    threshold: f32,
) -> Vec<(usize, f32)> {
    let n_lags = day.n_lags();
    let lags = screen::with_neighbours(screened.iter().map(|c| c.0).collect(), n_lags);
    let values: Vec<f32> = lags
        .iter()
        .map(|&k| recompute::stack_at(day, t, k))
        .collect();
    screen::exact_candidates(&lags, &values, n_lags, threshold, |_| true)
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
        if !super::sized_stacks(day, templates, stacks) {
            return Ok(());
        }
        let _busy = self.busy.lock().unwrap();
        let n_lags = day.n_lags();
        let dd = self.device_day(day)?;
        let m = day.template_len;
        let size = self.batch_size(&dd, templates, m)?;
        let stream = &self.compute[0];
        let launch = |r: Range<usize>, _turn| {
            let d = self.launch_stack(&dd, &templates[r.clone()], m, stream, false)?;
            Ok((r, d))
        };
        let finish = |(r, d): (Range<usize>, CudaSlice<f32>)| {
            for (i, s) in stacks[r].iter_mut().enumerate() {
                stream
                    .memcpy_dtoh(&d.slice(i * n_lags..(i + 1) * n_lags), s)
                    .map_err(|e| self.error(e))?;
            }
            stream.synchronize().map_err(|e| self.error(e))
        };
        self.in_batches(templates.len(), size, 1, n_lags, launch, finish)
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
                    threshold: spec.threshold_for(0.0, t.channels.len()),
                    peaks: Vec::new(),
                })
                .collect());
        }
        // Lags and ranks are 32-bit on the device (a day at 1 kHz is 8.6e7).
        assert!(n_lags <= u32::MAX as usize, "{n_lags} lags");
        let dd = self.device_day(day)?;
        let m = day.template_len;
        let size = self.batch_size(&dd, templates, m)?;
        let mut out = Vec::with_capacity(templates.len());
        // At most two batches in flight, one per stream pair: the host
        // finishes the older while the device computes the newer.
        let launch = |r, turn: usize| self.launch_batch(&dd, templates, r, m, spec, turn % 2);
        let finish = |b: InFlight| {
            out.extend(
                self.finish(b, day, templates, spec)
                    .map_err(|e| self.error(e))?,
            );
            Ok(())
        };
        self.in_batches(templates.len(), size, 2, n_lags, launch, finish)?;
        Ok(out)
    }

    fn prefetch(&self, day: &DayView) -> Result<()> {
        self.device_day(day).map(|_| ())
    }

    fn needs_window_means(&self) -> bool {
        self.mixed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::kernels::RADIX_PASSES;
    use super::*;
    use crate::detect;

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

    /// The candidate kernel's rows, run on the host: each row's room starts
    /// at its offset and ends where the next row's starts, and every row is
    /// scanned exactly once whatever the budget.
    #[test]
    fn scan_groups_and_offsets_give_every_row_its_own_room() {
        let caps = [256, 256, 9000, 1, 256, 70_000, 3];
        for budget in [1, 256, 600, 9000, 10_000, 1 << 30] {
            let mut at = 0;
            let mut groups = Vec::new();
            while at < caps.len() {
                let n = scan_group(&caps[at..], budget);
                assert!(n >= 1);
                let room: usize = caps[at..at + n].iter().sum();
                assert!(
                    n == 1 || room <= budget,
                    "budget {budget}: {n} rows, {room}"
                );
                groups.push(at..at + n);
                at += n;
            }
            assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), caps.len());
            for g in groups {
                let starts = offsets(&caps[g.clone()]);
                // Write each row's room as the kernel would; no two rows
                // share an entry and none is outside the buffer.
                let total: usize = caps[g.clone()].iter().sum();
                let mut owner = vec![usize::MAX; total];
                for (r, (&o, &c)) in starts.iter().zip(&caps[g.clone()]).enumerate() {
                    for slot in &mut owner[o as usize..o as usize + c] {
                        assert_eq!(*slot, usize::MAX);
                        *slot = r;
                    }
                }
                assert!(owner.iter().all(|&o| o != usize::MAX));
            }
        }
        assert_eq!(offsets(&[3, 0, 5]), [0, 3, 3]);
    }
}
