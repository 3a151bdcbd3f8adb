//! NVIDIA GPUs: NVML first, the driver's procfs and PCI sysfs as fallback.

use std::collections::BTreeMap;
use std::fs;

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use super::{normalize_pci_bus_id, Gpu, GpuProcess, GpuSource, Vendor};
use crate::roots::Roots;
use crate::util::{list_dir, read_hex, read_trim};

/// NVIDIA GPUs: through NVML when it loads and initializes, otherwise from
/// procfs and PCI sysfs. No driver and no library: an empty list.
pub(crate) fn probe(roots: &Roots, warnings: &mut Vec<String>) -> Vec<Gpu> {
    match probe_nvml(roots) {
        Ok(Some(gpus)) => return gpus,
        Ok(None) => {}
        Err(e) => {
            // The library is there but NVML will not start: say so when the
            // kernel side shows GPUs, since the fallback then lacks memory.
            let fallback = probe_procfs(roots);
            if !fallback.is_empty() {
                warnings.push(format!("nvml: {e}; using the driver's procfs"));
            }
            return fallback;
        }
    }
    probe_procfs(roots)
}

/// `Ok(None)`: no NVML library (or NVML disabled in `roots`).
fn probe_nvml(roots: &Roots) -> Result<Option<Vec<Gpu>>, NvmlError> {
    let Some(lib) = &roots.nvml_lib else {
        return Ok(None);
    };
    let nvml = match Nvml::builder().lib_path(lib.as_os_str()).init() {
        Ok(n) => n,
        Err(NvmlError::LibloadingError(e)) => {
            tracing::debug!("nvml: {lib:?} not loadable: {e}");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let driver_version = nvml.sys_driver_version().ok();
    let cuda_version = nvml
        .sys_cuda_driver_version()
        .ok()
        .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
    let count = nvml.device_count()?;
    let mut gpus = Vec::new();
    for i in 0..count {
        let dev = match nvml.device_by_index(i) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("nvml: GPU {i}: {e}");
                continue;
            }
        };
        let mut g = Gpu::empty(Vendor::Nvidia, GpuSource::Nvml);
        g.index = Some(dev.index().unwrap_or(i));
        g.name = dev.name().unwrap_or_default();
        g.uuid = dev.uuid().ok();
        g.pci_bus_id = dev.pci_info().map(|p| p.bus_id).unwrap_or_default();
        g.minor = dev.minor_number().ok();
        if let Ok(m) = dev.memory_info() {
            g.memory_total_bytes = Some(m.total);
            g.memory_used_bytes = Some(m.used);
            g.memory_free_bytes = Some(m.free);
        }
        g.utilization_percent = dev.utilization_rates().ok().map(|u| u.gpu);
        g.compute_capability = dev
            .cuda_compute_capability()
            .ok()
            .map(|c| format!("{}.{}", c.major, c.minor));
        g.driver_version = driver_version.clone();
        g.cuda_version = cuda_version.clone();
        g.processes = dev.running_compute_processes().ok().map(|ps| {
            ps.into_iter()
                .map(|p| GpuProcess {
                    pid: p.pid,
                    used_memory_bytes: match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => Some(b),
                        UsedGpuMemory::Unavailable => None,
                    },
                })
                .collect()
        });
        gpus.push(g);
    }
    Ok(Some(gpus))
}

/// The `key: value` fields of a `<proc>/driver/nvidia/gpus/*/information`
/// file.
pub(crate) fn parse_information(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The driver version in `<proc>/driver/nvidia/version`'s first line
/// (`NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ...`).
pub(crate) fn parse_driver_version(s: &str) -> Option<String> {
    let line = s.lines().find(|l| l.starts_with("NVRM version"))?;
    line.split_whitespace()
        .find(|t| {
            t.contains('.')
                && t.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// NVIDIA GPUs from `<proc>/driver/nvidia/gpus/*/information` and the PCI
/// display controllers (class 0x03xxxx) of vendor 0x10de in
/// `<sys>/bus/pci/devices`, ordered by PCI address, indexed in that order.
pub(crate) fn probe_procfs(roots: &Roots) -> Vec<Gpu> {
    let driver_version = fs::read_to_string(roots.proc_path("driver/nvidia/version"))
        .ok()
        .and_then(|s| parse_driver_version(&s));
    let mut by_addr: BTreeMap<String, Gpu> = BTreeMap::new();
    for (_, dir) in list_dir(roots.proc_path("driver/nvidia/gpus")) {
        let Ok(s) = fs::read_to_string(dir.join("information")) else {
            continue;
        };
        let f = parse_information(&s);
        let addr = f
            .get("Bus Location")
            .cloned()
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let mut g = Gpu::empty(Vendor::Nvidia, GpuSource::Procfs);
        g.name = f.get("Model").cloned().unwrap_or_default();
        g.uuid = f.get("GPU UUID").cloned();
        g.minor = f.get("Device Minor").and_then(|m| m.parse().ok());
        g.pci_bus_id = addr.clone();
        g.driver_version = driver_version.clone();
        by_addr.insert(normalize_pci_bus_id(&addr), g);
    }
    for (name, dir) in list_dir(roots.sys_path("bus/pci/devices")) {
        if read_hex(dir.join("vendor")) != Some(0x10de) {
            continue;
        }
        if read_hex(dir.join("class")).map(|c| c >> 16) != Some(0x03) {
            continue;
        }
        by_addr
            .entry(normalize_pci_bus_id(&name))
            .or_insert_with(|| {
                let mut g = Gpu::empty(Vendor::Nvidia, GpuSource::Sysfs);
                let device = read_trim(dir.join("device")).unwrap_or_default();
                g.name = format!("10de:{}", device.trim_start_matches("0x"));
                g.pci_bus_id = name.clone();
                g.driver_version = driver_version.clone();
                g
            });
    }
    by_addr
        .into_values()
        .enumerate()
        .map(|(i, mut g)| {
            g.index = Some(i as u32);
            g
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_version_from_the_capture() {
        let s = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)  \nGCC version:  gcc version 15.3.0 (GCC) \n";
        assert_eq!(parse_driver_version(s).as_deref(), Some("580.159.04"));
        let s = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.54.03  Tue Jun  6 22:20:39 UTC 2023\n";
        assert_eq!(parse_driver_version(s).as_deref(), Some("535.54.03"));
    }

    #[test]
    fn information_fields() {
        let f = parse_information(
            "Model: \t\t NVIDIA H200\nGPU UUID: \t GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25\nBus Location: \t 0000:00:06.0\nDevice Minor: \t 0\n",
        );
        assert_eq!(f["Model"], "NVIDIA H200");
        assert_eq!(f["GPU UUID"], "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25");
        assert_eq!(f["Bus Location"], "0000:00:06.0");
        assert_eq!(f["Device Minor"], "0");
    }
}
