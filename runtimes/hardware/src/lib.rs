//! jarvis-hardware: what hardware the host has, and how to hand it to a unit.
//!
//! Every function takes [`Roots`], the host's `/sys`, `/proc`, `/dev` and
//! `/` (each replaceable through `JARVIS_SYSFS_ROOT`, `JARVIS_PROC_ROOT`,
//! `JARVIS_DEV_ROOT`, `JARVIS_HOST_ROOT`; see [`Roots::from_env`]), so that
//! all of it runs against fixture trees ([`fixture`], feature `fixture`).
//!
//! # Probing
//!
//! [`probe`] returns a [`Probe`] (serde `Serialize`; `jarvisctl probe --json`
//! prints it):
//!
//! ```json
//! {
//!   "gpus": [{
//!     "vendor": "nvidia", "index": 0, "name": "NVIDIA H200",
//!     "uuid": "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25",
//!     "pci_bus_id": "00000000:00:06.0", "minor": 0,
//!     "memory_total_bytes": 150754820096, "memory_used_bytes": 0,
//!     "memory_free_bytes": 150109880320, "utilization_percent": 0,
//!     "busy_percent": null, "compute_capability": "9.0",
//!     "driver_version": "580.159.04", "cuda_version": "13.0",
//!     "processes": [{"pid": 4242, "used_memory_bytes": 2147483648}],
//!     "source": "nvml", "render_node": null, "card": null, "kfd": null
//!   }, {
//!     "vendor": "amd", "index": null, "name": "AMD Radeon RX 7900 XTX",
//!     "uuid": null, "pci_bus_id": "0000:03:00.0", "minor": null,
//!     "memory_total_bytes": 25753026560, "memory_used_bytes": 1073741824,
//!     "memory_free_bytes": 24679284736, "utilization_percent": null,
//!     "busy_percent": 3, "compute_capability": null, "driver_version": null,
//!     "cuda_version": null, "processes": null, "source": "sysfs",
//!     "render_node": "/dev/dri/renderD128", "card": "/dev/dri/card0", "kfd": true
//!   }],
//!   "cpu": {
//!     "model": "Intel(R) Xeon(R) Platinum 8480+", "vendor": "GenuineIntel",
//!     "sockets": 1, "cores": 2, "threads": 4, "flags": ["fpu", "...", "amx_tile"],
//!     "avx2": true, "avx512f": true, "avx512_vnni": true, "amx": true,
//!     "memory_total_bytes": 135057309696
//!   },
//!   "usb": [{
//!     "bus_path": "1-1", "vendor_id": "10c4", "product_id": "ea60",
//!     "manufacturer": "ITead", "product": "Sonoff Zigbee 3.0 USB Dongle Plus",
//!     "serial": "9e4a1c6b2f57ed11a5e7c2d1a0b1c2d3", "busnum": 1, "devnum": 2,
//!     "drivers": ["cp210x"], "nodes": ["/dev/ttyUSB0"],
//!     "by_id": ["/dev/serial/by-id/usb-ITead_Sonoff_Zigbee_3.0_USB_Dongle_Plus_9e4a1c6b2f57ed11a5e7c2d1a0b1c2d3-if00-port0"]
//!   }],
//!   "warnings": []
//! }
//! ```
//!
//! Every key of a GPU entry is always there; what the source cannot know is
//! `null` ([`Gpu`] says which source knows what).
//!
//! - **NVIDIA**: NVML through `nvml-wrapper`, the library loaded at run time
//!   by its standard name `libnvidia-ml.so.1` through the dynamic loader (so
//!   `LD_LIBRARY_PATH` and the loader's cache apply; `JARVIS_NVML_LIB` names
//!   another, or `none`). No library: the fallback. NVML failing to start
//!   (the library is there, the driver not): the fallback, and a warning
//!   when the fallback finds GPUs. The fallback reads
//!   `<proc>/driver/nvidia/gpus/*/information` (Model, GPU UUID, Bus
//!   Location, Device Minor), `<proc>/driver/nvidia/version`, and the PCI
//!   display controllers of vendor 0x10de in `<sys>/bus/pci/devices`;
//!   it cannot know memory, utilization or processes: those are `null`
//!   (`memory_total_bytes` is `null`, not 0 and not the BAR size).
//! - **AMD**: `<sys>/class/drm/card*/device` of vendor 0x1002:
//!   `mem_info_vram_total`, `mem_info_vram_used`, `gpu_busy_percent`,
//!   `product_name` (else the PCI id `1002:744c`), the `renderD*` entry
//!   with the same PCI device, `<sys>/class/kfd`.
//!   What each process holds on an AMD GPU: its DRM fdinfo
//!   ([`drm_vram_bytes`]).
//! - **CPU**: `<proc>/cpuinfo`, `<proc>/meminfo` ([`Cpu`]).
//! - **USB**: `<sys>/bus/usb/devices/*` without root hubs and interfaces;
//!   the nodes under the interfaces (any class device with a `dev` file:
//!   `ttyUSB*`, `tty/ttyACM*`, `hidraw/hidraw*`, ...) as `/dev/...` paths,
//!   and the `/dev/serial/by-id` links to them ([`UsbDevice`]).
//!
//! Probing blocks (file reads, NVML): from async code, use
//! `spawn_blocking`.
//!
//! # Giving devices to a container
//!
//! - [`nvidia_device_nodes`]: `/dev/nvidiactl`, `/dev/nvidia-uvm`,
//!   `/dev/nvidia-uvm-tools`, `/dev/nvidia-modeset` (if present),
//!   `/dev/nvidiaN`, with the host's majors (stat, else `<proc>/devices`).
//! - [`amd_device_nodes`]: `/dev/kfd`, `/dev/dri/renderD*`, `/dev/dri/cardN`
//!   and the host's numeric `video`/`render` gids.
//! - [`nvidia_driver_files`]: the driver's user-space libraries (`ldconfig
//!   -p`, `/usr/local/nvidia/lib64`) and `nvidia-smi`.
//! - [`cdi_spec`]: a CDI spec's edits, when the host has a spec for the
//!   vendor; the daemon then uses it instead of its own lists.
//! - [`resolve()`]: a unit's device [`Matcher`] (USB vendor/product/serial, or
//!   a `/dev` path) to [`ResolvedDevice`]s with major/minor and group.
//!
//! On the real H200 host of the shared capture (NVML 580.159.04), the
//! NVML probe gives the very fields the stand-in gives (its own UUID aside),
//! the procfs fallback the fields above, and `/proc/devices` names the
//! frontend major `nvidia` and `nvidiactl`.
//!
//! # Hotplug
//!
//! [`UeventListener`] yields the kernel's uevents; on one whose
//! [`Uevent::wants_rescan`] is true (tty, usb, hidraw, drm, ...), the daemon
//! resolves its matchers again.

pub mod cdi;
pub mod cpu;
pub mod driver_files;
mod error;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod gpu;
pub mod nodes;
pub mod resolve;
mod roots;
pub mod uevent;
pub mod usb;
mod util;

use serde::{Deserialize, Serialize};

pub use cdi::{cdi_spec, CdiSpec};
pub use cpu::Cpu;
pub use driver_files::nvidia_driver_files;
pub use error::{Error, Result};
pub use gpu::fdinfo::drm_vram_bytes;
pub use gpu::{normalize_pci_bus_id, Gpu, GpuProcess, GpuSource, Vendor};
pub use nodes::{amd_device_nodes, nvidia_device_nodes, AmdDevices, DeviceKind, DeviceNode};
pub use resolve::{resolve, Matcher, ResolvedDevice};
pub use roots::{Roots, NVML_LIB};
pub use uevent::{Uevent, UeventListener};
pub use usb::UsbDevice;

/// Everything [`probe`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// NVIDIA GPUs (NVML order), then AMD GPUs (card order).
    pub gpus: Vec<Gpu>,
    /// The CPU and memory.
    pub cpu: Cpu,
    /// USB devices, by bus path.
    pub usb: Vec<UsbDevice>,
    /// What went wrong on the way but did not stop the probe (NVML present
    /// but failing, ...).
    pub warnings: Vec<String>,
}

/// Probes GPUs, CPU and USB devices under `roots`. Never fails: what cannot
/// be read is absent (and said in `warnings` where it matters).
pub fn probe(roots: &Roots) -> Probe {
    let mut warnings = Vec::new();
    let gpus = gpu::probe_gpus(roots, &mut warnings);
    Probe {
        gpus,
        cpu: cpu::probe_cpu(roots),
        usb: usb::probe_usb(roots),
        warnings,
    }
}
