//! GPUs: NVIDIA through NVML (or the driver's procfs and PCI sysfs when NVML
//! is not there), AMD through sysfs.

pub(crate) mod amd;
pub mod fdinfo;
pub(crate) mod nvidia;

use serde::{Deserialize, Serialize};

use crate::roots::Roots;

/// GPU vendor, serialized as `"nvidia"` / `"amd"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// PCI vendor 0x10de.
    Nvidia,
    /// PCI vendor 0x1002.
    Amd,
}

impl Vendor {
    /// The PCI vendor id.
    pub fn pci_vendor(self) -> u32 {
        match self {
            Vendor::Nvidia => 0x10de,
            Vendor::Amd => 0x1002,
        }
    }

    /// The CDI kind of its GPUs: `nvidia.com/gpu`, `amd.com/gpu`.
    pub fn cdi_kind(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia.com/gpu",
            Vendor::Amd => "amd.com/gpu",
        }
    }
}

/// Where a GPU entry's facts came from, serialized in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuSource {
    /// NVML (`libnvidia-ml.so.1`): every NVIDIA field.
    Nvml,
    /// `<proc>/driver/nvidia/gpus/*/information` (+ PCI sysfs): name, UUID,
    /// bus id, minor, driver version; no memory, utilization or processes.
    Procfs,
    /// Sysfs only: AMD GPUs; and NVIDIA GPUs that only PCI sysfs shows
    /// (the name is then the PCI id, `10de:2335`).
    Sysfs,
}

/// A process using a GPU (NVML's compute processes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Host pid.
    pub pid: u32,
    /// GPU memory it uses; `null` where the driver does not say.
    pub used_memory_bytes: Option<u64>,
}

/// One GPU. Every field is always serialized; what a source cannot know is
/// `null` (see each field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// `nvidia` or `amd`.
    pub vendor: Vendor,
    /// NVIDIA: NVML's index (procfs: the position by PCI address, which is
    /// NVML's default order). AMD: `null`.
    pub index: Option<u32>,
    /// Marketing name (`NVIDIA H200`); AMD: `product_name`, else the PCI id
    /// (`1002:744c`).
    pub name: String,
    /// NVIDIA UUID (`GPU-4aab...`); `null` for AMD.
    pub uuid: Option<String>,
    /// The PCI address as the source writes it: NVML `00000000:00:06.0`,
    /// procfs and sysfs `0000:00:06.0`. Compare with
    /// [`normalize_pci_bus_id`].
    pub pci_bus_id: String,
    /// NVIDIA: the device minor (`/dev/nvidia<minor>`); AMD: `null`.
    pub minor: Option<u32>,
    /// Total VRAM. NVML, or AMD `mem_info_vram_total`; `null` from procfs
    /// (the driver's procfs does not say, and a BAR size is not VRAM).
    pub memory_total_bytes: Option<u64>,
    /// Used VRAM (NVML, AMD `mem_info_vram_used`).
    pub memory_used_bytes: Option<u64>,
    /// Free VRAM (NVML; AMD: total - used).
    pub memory_free_bytes: Option<u64>,
    /// NVIDIA: NVML's GPU utilization, percent.
    pub utilization_percent: Option<u32>,
    /// AMD: `gpu_busy_percent`.
    pub busy_percent: Option<u32>,
    /// NVIDIA CUDA compute capability, `"9.0"`.
    pub compute_capability: Option<String>,
    /// NVIDIA driver version (`580.159.04`), from NVML or
    /// `<proc>/driver/nvidia/version`.
    pub driver_version: Option<String>,
    /// The highest CUDA version the NVIDIA driver supports, `"13.0"` (NVML only).
    pub cuda_version: Option<String>,
    /// NVIDIA compute processes (NVML only; `null` otherwise).
    pub processes: Option<Vec<GpuProcess>>,
    /// Where these facts came from.
    pub source: GpuSource,
    /// AMD: `/dev/dri/renderD128`.
    pub render_node: Option<String>,
    /// AMD: `/dev/dri/card0`.
    pub card: Option<String>,
    /// AMD: whether the host has the compute driver (`<sys>/class/kfd`).
    pub kfd: Option<bool>,
}

impl Gpu {
    pub(crate) fn empty(vendor: Vendor, source: GpuSource) -> Self {
        Gpu {
            vendor,
            index: None,
            name: String::new(),
            uuid: None,
            pci_bus_id: String::new(),
            minor: None,
            memory_total_bytes: None,
            memory_used_bytes: None,
            memory_free_bytes: None,
            utilization_percent: None,
            busy_percent: None,
            compute_capability: None,
            driver_version: None,
            cuda_version: None,
            processes: None,
            source,
            render_node: None,
            card: None,
            kfd: None,
        }
    }
}

/// A PCI address in the kernel's form: lowercase, 4-digit domain
/// (`00000000:3B:00.0` -> `0000:3b:00.0`), so NVML, procfs and sysfs
/// addresses compare equal.
pub fn normalize_pci_bus_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    match id.split_once(':') {
        Some((dom, rest)) if rest.contains(':') => {
            let dom = u32::from_str_radix(dom, 16).unwrap_or(0);
            format!("{dom:04x}:{rest}")
        }
        _ => format!("0000:{id}"),
    }
}

/// Every GPU: NVIDIA ones first (NVML, else procfs/sysfs), then AMD ones.
/// Problems worth telling (NVML present but failing) go to `warnings`.
pub fn probe_gpus(roots: &Roots, warnings: &mut Vec<String>) -> Vec<Gpu> {
    let mut gpus = nvidia::probe(roots, warnings);
    gpus.extend(amd::probe(roots));
    gpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_ids_normalize() {
        assert_eq!(normalize_pci_bus_id("00000000:00:06.0"), "0000:00:06.0");
        assert_eq!(normalize_pci_bus_id("0000:00:06.0"), "0000:00:06.0");
        assert_eq!(normalize_pci_bus_id("00000000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(normalize_pci_bus_id("3b:00.0"), "0000:3b:00.0");
    }
}
