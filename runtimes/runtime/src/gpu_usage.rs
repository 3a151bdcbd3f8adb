//! What the host's GPUs hold, and for whom: each GPU as placements name
//! it, with its memory and utilisation, and which of a unit's processes
//! hold memory on it (NVIDIA: NVML's per-process list; AMD: each process's
//! DRM fdinfo). Blocking; jarvisd's GPU check and `status` ask it off the
//! event loop.

use std::collections::BTreeSet;

use jarvis_hardware::Roots;

use crate::gpu::Vendor;

/// One host GPU as a probe found it, named as placements name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGpu {
    /// NVIDIA: the UUID; AMD: the PCI address.
    pub id: String,
    pub vendor: Vendor,
    pub name: String,
    /// The PCI address (what AMD's fdinfo names).
    pub pci_bus_id: String,
    pub memory_total: Option<u64>,
    pub memory_used: Option<u64>,
    pub utilization: Option<u32>,
    /// NVIDIA: the processes holding memory on it (pid, bytes); `None`
    /// where the driver does not say (no NVML; AMD: see fdinfo).
    pub processes: Option<Vec<(u32, Option<u64>)>>,
}

/// One of the unit's processes holding memory on a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The GPU's id (as [`HostGpu::id`]).
    pub gpu: String,
    pub pid: u32,
    pub bytes: Option<u64>,
}

/// The host's GPUs (blocking: NVML, sysfs).
pub fn host_gpus(roots: &Roots) -> Vec<HostGpu> {
    let mut warnings = Vec::new();
    let gpus = jarvis_hardware::gpu::probe_gpus(roots, &mut warnings);
    for w in warnings {
        tracing::debug!("GPU probe: {w}");
    }
    gpus.into_iter()
        .filter_map(|g| {
            let (vendor, id) = match g.vendor {
                jarvis_hardware::Vendor::Nvidia => (Vendor::Nvidia, g.uuid.clone()?),
                jarvis_hardware::Vendor::Amd => (Vendor::Amd, g.pci_bus_id.clone()),
            };
            Some(HostGpu {
                id,
                vendor,
                name: g.name,
                pci_bus_id: g.pci_bus_id,
                memory_total: g.memory_total_bytes,
                memory_used: g.memory_used_bytes,
                utilization: g.utilization_percent.or(g.busy_percent),
                processes: g.processes.map(|ps| {
                    ps.into_iter()
                        .map(|p| (p.pid, p.used_memory_bytes))
                        .collect()
                }),
            })
        })
        .collect()
}

/// Which of `pids` hold memory on which of `gpus` (blocking: AMD reads
/// each pid's fdinfo). The second value: the ids of the GPUs whose
/// processes cannot be known (NVIDIA without NVML).
pub fn holders(roots: &Roots, gpus: &[HostGpu], pids: &[u32]) -> (Vec<Holder>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut unknown = BTreeSet::new();
    let wanted: BTreeSet<u32> = pids.iter().copied().collect();
    for g in gpus {
        match (g.vendor, &g.processes) {
            (Vendor::Nvidia, Some(ps)) => {
                out.extend(ps.iter().filter(|(pid, _)| wanted.contains(pid)).map(
                    |(pid, bytes)| Holder {
                        gpu: g.id.clone(),
                        pid: *pid,
                        bytes: *bytes,
                    },
                ));
            }
            (Vendor::Nvidia, None) => {
                unknown.insert(g.id.clone());
            }
            (Vendor::Amd, _) => {
                for &pid in &wanted {
                    if let Some(bytes) = jarvis_hardware::drm_vram_bytes(roots, pid, &g.pci_bus_id)
                    {
                        // A DRM client holding no VRAM does not run there.
                        if bytes > 0 {
                            out.push(Holder {
                                gpu: g.id.clone(),
                                pid,
                                bytes: Some(bytes),
                            });
                        }
                    }
                }
            }
        }
    }
    (out, unknown)
}
