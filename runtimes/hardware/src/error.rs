//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in this crate. Each variant names the path
/// (or the program) it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, listing or stat-ing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A path that should be a device node is something else.
    #[error("{path}: not a character or block device")]
    NotADevice {
        /// The host path.
        path: PathBuf,
    },
    /// An NVIDIA device node that every GPU container needs is neither on the
    /// host nor named in `<proc>/devices`.
    #[error("{path}: no such NVIDIA device node, and no major number for it in {proc_devices}")]
    NvidiaNodeMissing {
        /// The host path of the node.
        path: PathBuf,
        /// The `<proc>/devices` file that was consulted.
        proc_devices: PathBuf,
    },
    /// A file had content this crate cannot make sense of.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A CDI spec of the asked kind exists but names none of a requested device.
    #[error("{path}: CDI spec for {kind} has no device {device:?}")]
    CdiDeviceNotFound {
        /// The spec file (the one with the highest priority).
        path: PathBuf,
        /// The CDI kind, e.g. `nvidia.com/gpu`.
        kind: String,
        /// The device name asked for.
        device: String,
    },
    /// No GPU of that vendor at that PCI address.
    #[error("no {vendor} GPU at PCI address {pci_bus_id} under {sys}")]
    GpuNotFound {
        /// `amd` or `nvidia`.
        vendor: &'static str,
        /// The address asked for.
        pci_bus_id: String,
        /// The sysfs root searched.
        sys: PathBuf,
    },
    /// Running a helper program (`ldconfig`, the C compiler for the NVML
    /// stand-in) failed.
    #[error("running {program}: {message}")]
    Command {
        /// The program.
        program: String,
        /// Why it failed (its stderr, or the spawn error).
        message: String,
    },
    /// The kernel uevent socket could not be opened or read.
    #[error("uevent netlink socket: {0}")]
    Netlink(#[source] io::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
