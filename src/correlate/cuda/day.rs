//! The days in a GPU's memory: copied in through one page-locked buffer on
//! the copy stream, each with the event that marks its copy complete.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DriverError, PinnedHostSlice};

use super::kernels::DayArgs;
use crate::correlate::DayView;

/// A day in device memory: `channels × len` samples, then `channels ×
/// n_lags` values of 1/σ, then as many window means where the day has them,
/// in one buffer.
pub struct DeviceDay {
    pub id: u64,
    channels: usize,
    len: usize,
    pub n_lags: usize,
    has_mean: bool,
    buf: CudaSlice<f32>,
    /// Recorded on the copy stream after the copy: a compute stream waits
    /// on it before its first kernel reads the day.
    pub ready: CudaEvent,
}

impl DeviceDay {
    /// Bytes the day takes in device memory.
    pub fn bytes(&self) -> usize {
        self.buf.len() * 4
    }

    /// Whether the day carries its window means (the mixed kernel needs
    /// them).
    pub fn has_mean(&self) -> bool {
        self.has_mean
    }

    pub fn args(&self) -> DayArgs<'_> {
        let data = self.channels * self.len;
        let lags = self.channels * self.n_lags;
        DayArgs {
            x: self.buf.slice(..data),
            inv: self.buf.slice(data..data + lags),
            mean: self
                .has_mean
                .then(|| self.buf.slice(data + lags..data + 2 * lags)),
            len: self.len,
            n_lags: self.n_lags,
        }
    }
}

/// The page-locked buffer days are copied through; it grows to the largest
/// day and is reused.
struct Staging {
    buf: PinnedHostSlice<f32>,
    /// Recorded after the last copy out of `buf`: the host waits on it
    /// before writing the next day into `buf`.
    copied: CudaEvent,
}

/// The days a GPU holds: the one being computed and the one copied in
/// ahead of it.
pub struct Days {
    ctx: Arc<CudaContext>,
    copy: Arc<CudaStream>,
    resident: Mutex<Vec<Arc<DeviceDay>>>,
    staging: Mutex<Option<Staging>>,
}

impl Days {
    pub fn new(ctx: Arc<CudaContext>, copy: Arc<CudaStream>) -> Days {
        Days {
            ctx,
            copy,
            resident: Mutex::new(Vec::new()),
            staging: Mutex::new(None),
        }
    }

    /// Whether a day other than `id` is in device memory (or being
    /// copied): the next day, copied in ahead.
    pub fn has_other_than(&self, id: u64) -> bool {
        self.resident.lock().unwrap().iter().any(|d| d.id != id)
    }

    /// The day in device memory, copied in now unless it was already.
    pub fn get(&self, day: &DayView) -> Result<Arc<DeviceDay>, DriverError> {
        let mut resident = self.resident.lock().unwrap();
        if let Some(d) = resident.iter().find(|d| d.id == day.id) {
            return Ok(d.clone());
        }
        // Keep the latest day (it may be in use) and make room for this
        // one; an older day is no longer used (its computation has been
        // synchronized), and its memory is freed once its last user drops
        // it.
        let keep = resident.len().saturating_sub(1);
        resident.drain(..keep);
        let d = Arc::new(self.upload(day)?);
        resident.push(d.clone());
        Ok(d)
    }

    /// Copy the day's samples and 1/σ through the page-locked buffer into
    /// device memory, on the copy stream.
    fn upload(&self, day: &DayView) -> Result<DeviceDay, DriverError> {
        let (c, len, n_lags) = (day.channels.len(), day.len, day.n_lags());
        let has_mean = day.channels.iter().all(|ch| ch.norm.mean.len() == n_lags) && c > 0;
        let need = (c * (len + n_lags * (1 + usize::from(has_mean)))).max(1);
        let mut staging = self.staging.lock().unwrap();
        if let Some(s) = staging.as_ref() {
            // The previous day's copy out of the buffer is complete before
            // the buffer is written again (or freed).
            s.copied.synchronize()?;
        }
        if staging.as_ref().map_or(true, |s| s.buf.len() < need) {
            *staging = None;
            // SAFETY: filled below before it is copied.
            let buf = unsafe { self.ctx.alloc_pinned::<f32>(need) }?;
            *staging = Some(Staging {
                buf,
                copied: self.ctx.new_event(None)?,
            });
        }
        let s = staging.as_mut().expect("allocated above");
        let host = s.buf.as_mut_slice()?;
        for (i, ch) in day.channels.iter().enumerate() {
            host[i * len..(i + 1) * len].copy_from_slice(ch.data);
            let inv = &ch.norm.inv_std;
            assert_eq!(
                inv.len(),
                n_lags,
                "normalization of another template length"
            );
            host[c * len + i * n_lags..c * len + (i + 1) * n_lags].copy_from_slice(inv);
            if has_mean {
                let at = c * (len + n_lags) + i * n_lags;
                host[at..at + n_lags].copy_from_slice(&ch.norm.mean);
            }
        }
        // The day's part of the buffer (it has the largest day's length).
        // The copy is from page-locked memory, so it runs at full speed;
        // through a plain slice it returns once it is done.
        // SAFETY: every element is written by the copy below.
        let mut buf = unsafe { self.copy.alloc::<f32>(need) }?;
        self.copy
            .memcpy_htod(&s.buf.as_slice()?[..need], &mut buf)?;
        s.copied.record(&self.copy)?;
        Ok(DeviceDay {
            id: day.id,
            channels: c,
            len,
            n_lags,
            has_mean,
            buf,
            ready: self.copy.record_event(None)?,
        })
    }
}
