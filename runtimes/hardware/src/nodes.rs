//! Device nodes: what they are on the host (type, major, minor, owner, mode),
//! and the node lists a GPU container needs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::amd;
use crate::roots::Roots;

/// Character or block device. Serialized as `"char"` / `"block"`;
/// [`DeviceKind::oci_type`] gives the OCI spec's `"c"` / `"b"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A character device (ttys, hidraw, GPUs).
    Char,
    /// A block device.
    Block,
}

impl DeviceKind {
    /// `"c"` or `"b"`, as `linux.devices[].type` in an OCI runtime spec.
    pub fn oci_type(self) -> &'static str {
        match self {
            DeviceKind::Char => "c",
            DeviceKind::Block => "b",
        }
    }
}

/// A device node to give a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// The logical path, `/dev/nvidia0`: where it goes in the container.
    pub path: PathBuf,
    /// Where it is on the host (under the dev root).
    pub host_path: PathBuf,
    /// Character or block.
    pub kind: DeviceKind,
    /// Major number, read from the host (never assumed).
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits of the host node (`0o666`), `None` when the node is
    /// not on the host (its numbers then come from `<proc>/devices`).
    pub file_mode: Option<u32>,
    /// Owner of the host node.
    pub uid: Option<u32>,
    /// Group of the host node.
    pub gid: Option<u32>,
}

impl DeviceNode {
    /// Whether the node exists on the host.
    pub fn on_host(&self) -> bool {
        self.file_mode.is_some()
    }
}

/// What `stat` says about a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStat {
    /// Character or block.
    pub kind: DeviceKind,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// `stat` of a device node, following symlinks. `Ok(None)` when nothing is
/// there; [`Error::NotADevice`] when something other than a device is.
pub fn stat_node(path: &Path) -> Result<Option<NodeStat>> {
    let md = match fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let kind = if md.file_type().is_char_device() {
        DeviceKind::Char
    } else if md.file_type().is_block_device() {
        DeviceKind::Block
    } else {
        return Err(Error::NotADevice {
            path: path.to_path_buf(),
        });
    };
    let rdev = md.rdev();
    Ok(Some(NodeStat {
        kind,
        major: nix::sys::stat::major(rdev) as u32,
        minor: nix::sys::stat::minor(rdev) as u32,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    }))
}

/// The character-device majors in `<proc>/devices`, as (major, name).
pub fn proc_char_majors(roots: &Roots) -> Vec<(u32, String)> {
    let Ok(s) = fs::read_to_string(roots.proc_path("devices")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in s.lines() {
        let line = line.trim();
        if line.starts_with("Block devices") {
            break;
        }
        let mut it = line.split_whitespace();
        if let (Some(num), Some(name)) = (it.next(), it.next()) {
            if let Ok(n) = num.parse() {
                out.push((n, name.to_string()));
            }
        }
    }
    out
}

/// The numeric gid of a group in `<host>/etc/group`.
pub fn group_gid(roots: &Roots, name: &str) -> Option<u32> {
    let s = fs::read_to_string(roots.host_path("/etc/group")).ok()?;
    s.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

fn node_from_stat(roots: &Roots, logical: &str, st: NodeStat) -> DeviceNode {
    DeviceNode {
        path: logical.into(),
        host_path: roots.dev_host_path(logical),
        kind: st.kind,
        major: st.major,
        minor: st.minor,
        file_mode: Some(st.mode),
        uid: Some(st.uid),
        gid: Some(st.gid),
    }
}

/// A host node by logical path: `Ok(None)` when absent.
pub fn host_node(roots: &Roots, logical: &str) -> Result<Option<DeviceNode>> {
    Ok(stat_node(&roots.dev_host_path(logical))?.map(|st| node_from_stat(roots, logical, st)))
}

/// The nodes an NVIDIA GPU container needs, for the GPUs with these device
/// minors (`/dev/nvidia<minor>`), in this order:
///
/// - `/dev/nvidiactl` (required),
/// - `/dev/nvidia-uvm` (required: CUDA needs it),
/// - `/dev/nvidia-uvm-tools` (when the host has it or `<proc>/devices` names
///   `nvidia-uvm`),
/// - `/dev/nvidia-modeset` (only when the host has it),
/// - `/dev/nvidia<minor>` for each minor (required).
///
/// Numbers come from `stat` of the host node. A node missing on the host
/// (`nvidia-uvm` is created on first use by `nvidia-modprobe`) gets its major
/// from `<proc>/devices` (`nvidia-frontend`/`nvidia`/`nvidiactl` for 195-style
/// nodes, `nvidia-uvm` for the uvm pair) and the driver's fixed minors
/// (ctl 255, modeset 254, uvm 0, uvm-tools 1), with `file_mode: None`; the
/// container runtime can `mknod` it. A required node with neither is
/// [`Error::NvidiaNodeMissing`]. `/dev/nvidia-caps/*` (MIG) is not included.
pub fn nvidia_device_nodes(roots: &Roots, minors: &[u32]) -> Result<Vec<DeviceNode>> {
    let majors = proc_char_majors(roots);
    let major_of = |names: &[&str]| {
        majors
            .iter()
            .find(|(_, n)| names.contains(&n.as_str()))
            .map(|(m, _)| *m)
    };
    let frontend = ["nvidia-frontend", "nvidia", "nvidiactl"];
    let uvm = ["nvidia-uvm"];
    // (logical path, proc names, conventional minor, required)
    let mut wanted: Vec<(String, &[&str], u32, bool)> = vec![
        ("/dev/nvidiactl".into(), &frontend, 255, true),
        ("/dev/nvidia-uvm".into(), &uvm, 0, true),
        ("/dev/nvidia-uvm-tools".into(), &uvm, 1, false),
        ("/dev/nvidia-modeset".into(), &[], 254, false),
    ];
    for m in minors {
        wanted.push((format!("/dev/nvidia{m}"), &frontend, *m, true));
    }
    let mut out = Vec::new();
    for (logical, names, minor, required) in wanted {
        if let Some(n) = host_node(roots, &logical)? {
            out.push(n);
            continue;
        }
        match major_of(names) {
            Some(major) => out.push(DeviceNode {
                host_path: roots.dev_host_path(&logical),
                path: logical.into(),
                kind: DeviceKind::Char,
                major,
                minor,
                file_mode: None,
                uid: None,
                gid: None,
            }),
            None if required => {
                return Err(Error::NvidiaNodeMissing {
                    path: roots.dev_host_path(&logical),
                    proc_devices: roots.proc_path("devices"),
                })
            }
            None => {}
        }
    }
    Ok(out)
}

/// The nodes and groups an AMD GPU container needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmdDevices {
    /// `/dev/kfd` (when the host has it), then for each GPU its
    /// `/dev/dri/renderD*` and `/dev/dri/cardN`.
    pub nodes: Vec<DeviceNode>,
    /// The host's `video` gid: the group of the `card` nodes, else `video` in
    /// `/etc/group`.
    pub video_gid: Option<u32>,
    /// The host's `render` gid: the group of the render nodes, else `render`
    /// in `/etc/group`.
    pub render_gid: Option<u32>,
}

/// The nodes for the AMD GPUs at these PCI addresses (`0000:03:00.0`, as
/// [`crate::Gpu::pci_bus_id`] reports them), plus `/dev/kfd` and the
/// numeric `video`/`render` gids the container's process should hold.
/// Nodes the host lacks are left out. An address with no AMD GPU is
/// [`Error::GpuNotFound`].
pub fn amd_device_nodes(roots: &Roots, pci_bus_ids: &[&str]) -> Result<AmdDevices> {
    let cards = amd::cards(roots);
    let mut nodes = Vec::new();
    if let Some(n) = host_node(roots, "/dev/kfd")? {
        nodes.push(n);
    }
    let mut video_gid = None;
    let mut render_gid = None;
    for id in pci_bus_ids {
        let card = cards
            .iter()
            .find(|c| c.pci_bus_id.eq_ignore_ascii_case(id))
            .ok_or_else(|| Error::GpuNotFound {
                vendor: "amd",
                pci_bus_id: id.to_string(),
                sys: roots.sys.clone(),
            })?;
        if let Some(r) = &card.render_node {
            if let Some(n) = host_node(roots, r)? {
                render_gid = render_gid.or(n.gid);
                nodes.push(n);
            }
        }
        if let Some(n) = host_node(roots, &card.card)? {
            video_gid = video_gid.or(n.gid);
            nodes.push(n);
        }
    }
    Ok(AmdDevices {
        nodes,
        video_gid: video_gid.or_else(|| group_gid(roots, "video")),
        render_gid: render_gid.or_else(|| group_gid(roots, "render")),
    })
}
