//! Choosing compute devices: `--device auto | cpu | cuda | cuda:0,1,...`.

use std::fmt;
use std::str::FromStr;

use cudarc::driver::{sys, CudaContext};

use super::cpu::CpuBackend;
use super::cuda::CudaBackend;
use super::mixed::Precision;
use super::Backend;
use crate::error::{Error, Result};

/// The backends opened, and the line to log when `auto` fell back to the
/// CPU.
pub type Opened = (Vec<Box<dyn Backend>>, Option<String>);

/// What `--device` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Every visible GPU, or the CPU when there is none or no driver.
    Auto,
    Cpu,
    /// Every visible GPU; an error without one.
    Cuda,
    /// These GPUs, by ordinal.
    CudaList(Vec<usize>),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        let refuse = |why: String| Error::Input(format!("--device {s}: {why}"));
        match s {
            "auto" => return Ok(DeviceSpec::Auto),
            "cpu" => return Ok(DeviceSpec::Cpu),
            "cuda" => return Ok(DeviceSpec::Cuda),
            _ => {}
        }
        let Some(list) = s.strip_prefix("cuda:") else {
            return Err(refuse("expected auto, cpu, cuda or cuda:0,1,...".into()));
        };
        let mut ordinals = Vec::new();
        for n in list.split(',') {
            let i: usize = n
                .trim()
                .parse()
                .map_err(|_| refuse(format!("'{n}' is not a device number (cuda:0,1,...)")))?;
            if ordinals.contains(&i) {
                return Err(refuse(format!("device {i} is named twice")));
            }
            ordinals.push(i);
        }
        Ok(DeviceSpec::CudaList(ordinals))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda => f.write_str("cuda"),
            DeviceSpec::CudaList(list) => {
                let list: Vec<String> = list.iter().map(usize::to_string).collect();
                write!(f, "cuda:{}", list.join(","))
            }
        }
    }
}

/// One backend per device named by `device`, each GPU's running the
/// stack kernel `precision` chooses, and the line to log when `auto` falls
/// back to the CPU. `--precision mixed` needs a GPU.
pub fn open_backends(device: &DeviceSpec, precision: Precision) -> Result<Opened> {
    let (backends, log) = open_devices(device, precision)?;
    // The CPU has no mixed kernel: asked for, it is refused, not ignored.
    if precision == Precision::Mixed && (log.is_some() || *device == DeviceSpec::Cpu) {
        return Err(Error::Device(format!(
            "--precision mixed needs a CUDA GPU (tensor cores, compute capability 7.0 or \
             later); --device {device}{}",
            log.map_or(String::new(), |l| format!(": {l}"))
        )));
    }
    Ok((backends, log))
}

fn open_devices(device: &DeviceSpec, precision: Precision) -> Result<Opened> {
    let cpu = || -> Vec<Box<dyn Backend>> { vec![Box::new(CpuBackend::new())] };
    let refuse = |why: String| Error::Device(format!("--device {device}: {why}"));
    let open_cuda = |ordinals: &[usize]| open_cuda(ordinals, precision);
    match device {
        DeviceSpec::Cpu => Ok((cpu(), None)),
        DeviceSpec::Auto => {
            let why = match cuda_devices() {
                Ok(0) => "no CUDA device visible".to_string(),
                Ok(n) => match open_cuda(&(0..n).collect::<Vec<_>>()) {
                    Ok(b) => return Ok((b, None)),
                    Err(e) => e.to_string(),
                },
                Err(why) => why,
            };
            Ok((cpu(), Some(format!("{why}; running on the CPU"))))
        }
        DeviceSpec::Cuda => match cuda_devices().map_err(refuse)? {
            0 => Err(refuse(no_device())),
            n => open_cuda(&(0..n).collect::<Vec<_>>()),
        }
        .map(|b| (b, None)),
        DeviceSpec::CudaList(ordinals) => {
            let n = cuda_devices().map_err(refuse)?;
            if n == 0 {
                return Err(refuse(no_device()));
            }
            if let Some(i) = ordinals.iter().find(|&&i| i >= n) {
                return Err(refuse(format!(
                    "CUDA device {i} does not exist ({n} visible: 0..{})",
                    n - 1
                )));
            }
            Ok((open_cuda(ordinals)?, None))
        }
    }
}

fn no_device() -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) => format!("no CUDA device visible (CUDA_VISIBLE_DEVICES={v})"),
        Err(_) => "no CUDA device visible".to_string(),
    }
}

fn open_cuda(ordinals: &[usize], precision: Precision) -> Result<Vec<Box<dyn Backend>>> {
    ordinals
        .iter()
        .map(|&i| {
            let b = CudaBackend::new(i)?.with_precision(precision)?;
            Ok(Box::new(b) as Box<dyn Backend>)
        })
        .collect()
}

/// The number of visible CUDA devices, or why CUDA cannot be used at all
/// (no driver library, or a driver that fails to start).
pub fn cuda_devices() -> std::result::Result<usize, String> {
    // cudarc panics on its first driver call when libcuda cannot be loaded,
    // so look for the library before touching the driver.
    // SAFETY: only tries to load the library.
    if !unsafe { sys::is_culib_present() } {
        return Err("no CUDA driver: libcuda.so (the NVIDIA driver library) was not found".into());
    }
    match CudaContext::device_count() {
        Ok(n) => Ok(n.max(0) as usize),
        Err(e) if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE => Ok(0),
        Err(e) => Err(format!("the CUDA driver failed to start ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_checked_before_any_driver_call() {
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:0,0", "cuda0"] {
            let Err(e) = bad.parse::<DeviceSpec>() else {
                panic!("--device {bad} accepted");
            };
            assert!(e.to_string().contains(bad), "{e}");
        }
        let (b, log) = open_backends(&DeviceSpec::Cpu, Precision::Auto).unwrap();
        assert_eq!(b.len(), 1);
        assert!(b[0].name().starts_with("cpu"));
        assert!(log.is_none());
    }

    /// Where CUDA cannot be used: `auto` runs on the CPU and says why in one
    /// line, `cuda` is an error naming what is missing.
    #[test]
    fn without_cuda_auto_falls_back_and_cuda_refuses() {
        let why = match cuda_devices() {
            Err(why) => why,
            Ok(0) => "no CUDA device visible".to_string(),
            Ok(_) => {
                return eprintln!(
                "SKIPPED without_cuda_auto_falls_back_and_cuda_refuses: a CUDA device is present"
            )
            }
        };
        let (b, log) = open_backends(&DeviceSpec::Auto, Precision::Auto).unwrap();
        assert!(b[0].name().starts_with("cpu"));
        let log = log.unwrap();
        assert!(log.contains(&why) && log.ends_with("running on the CPU") && !log.contains('\n'));
        for d in ["cuda", "cuda:0", "cuda:1,0"] {
            let Err(e) = open_backends(&d.parse().unwrap(), Precision::Auto) else {
                panic!("--device {d} accepted without CUDA");
            };
            assert!(e.to_string().contains(&why), "{e}");
        }
    }
}
