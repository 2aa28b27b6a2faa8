//! Where the engine computes.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// What the user asked for with `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU when this build has one and one is present, else the CPU.
    #[default]
    Auto,
    /// The CPU, every core.
    Cpu,
    /// An NVIDIA GPU.
    Cuda,
}

/// The device the engine runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU, every core (rayon's pool).
    Cpu,
}

/// Why a device cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is not a device.
    #[error("unknown device {0:?}: choose auto, cpu or cuda")]
    Unknown(String),
    /// This build has no GPU kernels.
    #[error("this build of tread has no GPU support: use --device cpu (or auto)")]
    NoGpuSupport,
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(DeviceError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu ({} threads)", rayon::current_num_threads()),
        }
    }
}

impl DeviceChoice {
    /// The device to run on. The engine's kernels are CPU-only today, so
    /// `cuda` is refused rather than silently run on the CPU.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        match self {
            Self::Auto | Self::Cpu => Ok(Device::Cpu),
            Self::Cuda => Err(DeviceError::NoGpuSupport),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_is_refused_without_gpu_support() {
        assert_eq!(
            "cuda"
                .parse::<DeviceChoice>()
                .and_then(DeviceChoice::resolve),
            Err(DeviceError::NoGpuSupport)
        );
        assert_eq!(
            "auto"
                .parse::<DeviceChoice>()
                .and_then(DeviceChoice::resolve),
            Ok(Device::Cpu)
        );
        assert!(matches!(
            "tpu".parse::<DeviceChoice>(),
            Err(DeviceError::Unknown(_))
        ));
    }
}
