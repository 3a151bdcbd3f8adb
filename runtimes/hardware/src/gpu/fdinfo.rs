//! GPU memory per process from the kernel's DRM fdinfo
//! (`<proc>/PID/fdinfo/N`, Documentation/gpu/drm-usage-stats.rst): what an
//! AMD GPU's processes hold, which no NVML-like list tells.
//!
//! Each open DRM file of a process has, among others:
//!
//! ```text
//! drm-driver:     amdgpu
//! drm-pdev:       0000:03:00.0
//! drm-client-id:  5
//! drm-memory-vram:        4194304 KiB
//! ```
//!
//! (newer kernels write `drm-total-vram` as well, or instead). Several
//! descriptors may be one client (a `dup`, a file passed on): each client
//! id is counted once.

use std::collections::BTreeSet;
use std::fs;

use super::normalize_pci_bus_id;
use crate::roots::Roots;
use crate::util::list_dir;

/// The most descriptors of one process read: a process with more open
/// files is judged on the first ones.
const MAX_FDS: usize = 4096;

/// Bytes of VRAM the process `pid` holds on the GPU at PCI address
/// `pci_bus_id` (any form [`normalize_pci_bus_id`] takes), summed over its
/// DRM clients on that GPU: `drm-memory-vram`, else `drm-total-vram`.
/// `None`: the process has no DRM client on that GPU (or is gone, or its
/// fdinfo cannot be read). Blocking: reads procfs.
pub fn drm_vram_bytes(roots: &Roots, pid: u32, pci_bus_id: &str) -> Option<u64> {
    let want = normalize_pci_bus_id(pci_bus_id);
    let mut seen = BTreeSet::new();
    let mut total: Option<u64> = None;
    for (_, path) in list_dir(roots.proc_path(format!("{pid}/fdinfo")))
        .into_iter()
        .take(MAX_FDS)
    {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let Some(client) = parse_fdinfo(&text) else {
            continue;
        };
        if normalize_pci_bus_id(&client.pdev) != want {
            continue;
        }
        if let Some(id) = client.client_id {
            if !seen.insert(id) {
                continue;
            }
        }
        *total.get_or_insert(0) += client.vram.unwrap_or(0);
    }
    total
}

/// One DRM client as an fdinfo file tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DrmClient {
    pub pdev: String,
    pub client_id: Option<u64>,
    /// VRAM in bytes, when the driver says.
    pub vram: Option<u64>,
}

/// The DRM fields of one fdinfo file; `None` for a descriptor that is not
/// a DRM client (no `drm-pdev`).
pub(crate) fn parse_fdinfo(text: &str) -> Option<DrmClient> {
    let (mut pdev, mut client_id, mut memory, mut total) = (None, None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "drm-pdev" => pdev = Some(value.to_string()),
            "drm-client-id" => client_id = value.parse().ok(),
            "drm-memory-vram" => memory = parse_amount(value),
            "drm-total-vram" => total = parse_amount(value),
            _ => {}
        }
    }
    Some(DrmClient {
        pdev: pdev?,
        client_id,
        vram: memory.or(total),
    })
}

/// `4096 KiB`, `12 MiB`, `512` (bytes) as bytes.
fn parse_amount(s: &str) -> Option<u64> {
    let mut parts = s.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        None => 1,
        Some("KiB") => 1 << 10,
        Some("MiB") => 1 << 20,
        Some("GiB") => 1 << 30,
        Some(_) => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn fdinfo_fields() {
        let c = parse_fdinfo(
            "pos:\t0\nflags:\t02100002\nmnt_id:\t24\ndrm-driver:\tamdgpu\ndrm-client-id:\t7\n\
             drm-pdev:\t0000:03:00.0\npasid:\t32789\ndrm-memory-vram:\t4096 KiB\n\
             drm-memory-gtt:\t2048 KiB\n",
        )
        .unwrap();
        assert_eq!(
            c,
            DrmClient {
                pdev: "0000:03:00.0".into(),
                client_id: Some(7),
                vram: Some(4 << 20),
            }
        );
        // Newer kernels: drm-total-vram.
        let c = parse_fdinfo("drm-pdev: 0000:03:00.0\ndrm-total-vram: 3 MiB\n").unwrap();
        assert_eq!((c.client_id, c.vram), (None, Some(3 << 20)));
        // Not a DRM file.
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t24\n"), None);
        assert_eq!(parse_amount("12"), Some(12));
        assert_eq!(parse_amount("1 GiB"), Some(1 << 30));
        assert_eq!(parse_amount("1 furlong"), None);
    }

    #[test]
    fn vram_of_a_process_on_a_fixture_tree() {
        let f = Fixture::new().unwrap();
        let roots = f.roots();
        let pci = "0000:03:00.0";
        // Process 100: two clients on the card, one of them behind two
        // descriptors, one client on another card, and a plain file.
        f.add_drm_client(100, 3, pci, 1, 4096).unwrap();
        f.add_drm_client(100, 4, pci, 1, 4096).unwrap();
        f.add_drm_client(100, 5, pci, 2, 1024).unwrap();
        f.add_drm_client(100, 6, "0000:04:00.0", 3, 8192).unwrap();
        f.write("proc/100/fdinfo/0", "pos:\t0\nflags:\t02\n")
            .unwrap();
        assert_eq!(drm_vram_bytes(&roots, 100, pci), Some(5 << 30));
        // NVML's form of the address names the same card.
        assert_eq!(
            drm_vram_bytes(&roots, 100, "00000000:03:00.0"),
            Some(5 << 30)
        );
        assert_eq!(drm_vram_bytes(&roots, 100, "0000:04:00.0"), Some(8 << 30));
        // A client holding nothing yet is there, with 0 bytes.
        f.add_drm_client(200, 3, pci, 9, 0).unwrap();
        assert_eq!(drm_vram_bytes(&roots, 200, pci), Some(0));
        // No client on the card, no such process.
        assert_eq!(drm_vram_bytes(&roots, 100, "0000:05:00.0"), None);
        assert_eq!(drm_vram_bytes(&roots, 300, pci), None);
    }
}
