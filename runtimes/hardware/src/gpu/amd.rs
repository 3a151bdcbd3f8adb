//! AMD GPUs from sysfs: `<sys>/class/drm/card*` whose PCI device is vendor
//! 0x1002.

use std::path::Path;

use super::{Gpu, GpuSource, Vendor};
use crate::roots::Roots;
use crate::util::{list_dir, read_hex, read_trim, read_u64, uevent_var};

/// One AMD DRM card as sysfs shows it.
#[derive(Debug, Clone)]
pub(crate) struct AmdCard {
    /// `/dev/dri/card0`.
    pub card: String,
    /// `/dev/dri/renderD128`.
    pub render_node: Option<String>,
    /// `0000:03:00.0`.
    pub pci_bus_id: String,
    /// `<sys>/class/drm/card0/device`.
    pub device_dir: std::path::PathBuf,
}

/// The PCI address a DRM entry's `device` link points at.
fn pci_address_of(drm_entry: &Path) -> Option<String> {
    let target = std::fs::canonicalize(drm_entry.join("device")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// `/dev/<DEVNAME>` of a DRM entry, else `/dev/dri/<name>`.
fn drm_dev_path(entry: &Path, name: &str) -> String {
    match uevent_var(entry, "DEVNAME") {
        Some(d) => format!("/dev/{d}"),
        None => format!("/dev/dri/{name}"),
    }
}

fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn cards(roots: &Roots) -> Vec<AmdCard> {
    let drm = list_dir(roots.sys_path("class/drm"));
    let renders: Vec<(String, String)> = drm
        .iter()
        .filter(|(n, _)| numbered(n, "renderD"))
        .filter_map(|(n, p)| Some((pci_address_of(p)?, drm_dev_path(p, n))))
        .collect();
    drm.iter()
        .filter(|(n, _)| numbered(n, "card"))
        .filter(|(_, p)| read_hex(p.join("device/vendor")) == Some(0x1002))
        .filter_map(|(n, p)| {
            let pci_bus_id = pci_address_of(p)?;
            Some(AmdCard {
                card: drm_dev_path(p, n),
                render_node: renders
                    .iter()
                    .find(|(a, _)| *a == pci_bus_id)
                    .map(|(_, r)| r.clone()),
                pci_bus_id,
                device_dir: p.join("device"),
            })
        })
        .collect()
}

pub(crate) fn probe(roots: &Roots) -> Vec<Gpu> {
    let kfd = roots.sys_path("class/kfd").is_dir();
    cards(roots)
        .into_iter()
        .map(|c| {
            let d = &c.device_dir;
            let mut g = Gpu::empty(Vendor::Amd, GpuSource::Sysfs);
            g.name = read_trim(d.join("product_name"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| {
                    let dev = read_hex(d.join("device")).unwrap_or(0);
                    format!("1002:{dev:04x}")
                });
            g.memory_total_bytes = read_u64(d.join("mem_info_vram_total"));
            g.memory_used_bytes = read_u64(d.join("mem_info_vram_used"));
            g.memory_free_bytes = match (g.memory_total_bytes, g.memory_used_bytes) {
                (Some(t), Some(u)) => Some(t.saturating_sub(u)),
                _ => None,
            };
            g.busy_percent = read_u64(d.join("gpu_busy_percent")).map(|v| v as u32);
            g.pci_bus_id = c.pci_bus_id;
            g.render_node = c.render_node;
            g.card = Some(c.card);
            g.kfd = Some(kfd);
            g
        })
        .collect()
}
