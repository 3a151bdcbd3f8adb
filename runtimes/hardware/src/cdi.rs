//! Container Device Interface specs (`/etc/cdi`, `/var/run/cdi`): when the
//! host has one for a GPU vendor (`nvidia-ctk cdi generate` writes
//! `/etc/cdi/nvidia.yaml`), the daemon uses its edits instead of its own
//! node and library lists.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::Vendor;
use crate::roots::Roots;
use crate::util::list_dir;

/// The directories searched, lowest priority first (the CDI default).
pub const CDI_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// A device node edit (`containerEdits.deviceNodes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiDeviceNode {
    /// Path in the container.
    pub path: PathBuf,
    /// Path on the host, when it differs.
    #[serde(default)]
    pub host_path: Option<PathBuf>,
    /// `c`, `b`, ...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Major number, when the spec fixes it.
    #[serde(default)]
    pub major: Option<i64>,
    /// Minor number.
    #[serde(default)]
    pub minor: Option<i64>,
    /// File mode.
    #[serde(default)]
    pub file_mode: Option<u32>,
    /// Cgroup permissions, `rwm`.
    #[serde(default)]
    pub permissions: Option<String>,
    /// Owner in the container.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group in the container.
    #[serde(default)]
    pub gid: Option<u32>,
}

/// A mount edit (`containerEdits.mounts[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiMount {
    /// Source on the host.
    pub host_path: PathBuf,
    /// Destination in the container.
    pub container_path: PathBuf,
    /// Mount options (`ro`, `nosuid`, `nodev`, `bind`).
    #[serde(default)]
    pub options: Vec<String>,
    /// Filesystem type, when given.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A hook edit (`containerEdits.hooks[]`), e.g. `nvidia-cdi-hook
/// update-ldcache`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiHook {
    /// `createContainer`, `startContainer`, ...
    pub hook_name: String,
    /// Program.
    pub path: PathBuf,
    /// Its argv.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Timeout in seconds.
    #[serde(default)]
    pub timeout: Option<i64>,
}

/// `containerEdits`, as in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiEdits {
    /// `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Device nodes.
    #[serde(default)]
    pub device_nodes: Vec<CdiDeviceNode>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<CdiMount>,
    /// Hooks.
    #[serde(default)]
    pub hooks: Vec<CdiHook>,
}

impl CdiEdits {
    fn merge(&mut self, other: &CdiEdits) {
        fn add<T: PartialEq + Clone>(to: &mut Vec<T>, from: &[T]) {
            for x in from {
                if !to.contains(x) {
                    to.push(x.clone());
                }
            }
        }
        add(&mut self.env, &other.env);
        add(&mut self.device_nodes, &other.device_nodes);
        add(&mut self.mounts, &other.mounts);
        add(&mut self.hooks, &other.hooks);
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDevice {
    name: String,
    #[serde(default)]
    container_edits: CdiEdits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    kind: String,
    #[serde(default)]
    devices: Vec<RawDevice>,
    #[serde(default)]
    container_edits: CdiEdits,
}

/// The edits for some devices of one CDI kind: the spec's common edits plus
/// each chosen device's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdiSpec {
    /// The spec files used, highest priority first.
    pub files: Vec<PathBuf>,
    /// `nvidia.com/gpu`.
    pub kind: String,
    /// The device names chosen.
    pub devices: Vec<String>,
    /// Device nodes to create.
    pub device_nodes: Vec<CdiDeviceNode>,
    /// Mounts to add.
    pub mounts: Vec<CdiMount>,
    /// Environment to add, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Hooks to run.
    pub hooks: Vec<CdiHook>,
}

fn parse_spec(path: &Path) -> Result<RawSpec> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_yaml::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|message| Error::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// The specs of `kind` on the host, highest priority first.
fn specs_of_kind(roots: &Roots, kind: &str) -> Vec<(PathBuf, RawSpec)> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for dir in CDI_DIRS.iter().rev() {
        let dir = roots.host_path(dir);
        let canon = dir.canonicalize().unwrap_or(dir.clone());
        if seen.contains(&canon) {
            continue;
        }
        seen.push(canon);
        let mut files = list_dir(&dir);
        files.reverse();
        for (name, path) in files {
            if !(name.ends_with(".json") || name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            match parse_spec(&path) {
                Ok(s) if s.kind == kind => out.push((path, s)),
                Ok(_) => {}
                Err(e) => tracing::warn!("cdi: skipping {e}"),
            }
        }
    }
    out
}

/// The CDI edits for `devices` (device names in the spec: `"0"`, a UUID,
/// `"all"`) of the vendor's kind (`nvidia.com/gpu`, `amd.com/gpu`), from
/// `<host>/etc/cdi` and `<host>/var/run/cdi` (`.json`, `.yaml`, `.yml`; the
/// latter directory wins, then later file names). `Ok(None)` when no spec
/// of that kind exists; [`Error::CdiDeviceNotFound`] when one does but
/// lacks a device. Specs that do not parse are skipped with a warning.
pub fn cdi_spec(roots: &Roots, vendor: Vendor, devices: &[&str]) -> Result<Option<CdiSpec>> {
    cdi_spec_of_kind(roots, vendor.cdi_kind(), devices)
}

/// [`cdi_spec`] for any CDI kind.
pub fn cdi_spec_of_kind(roots: &Roots, kind: &str, devices: &[&str]) -> Result<Option<CdiSpec>> {
    let specs = specs_of_kind(roots, kind);
    if specs.is_empty() {
        return Ok(None);
    }
    let mut used: Vec<usize> = Vec::new();
    let mut device_edits = CdiEdits::default();
    for want in devices {
        let hit = specs
            .iter()
            .enumerate()
            .find_map(|(i, (_, s))| s.devices.iter().find(|d| d.name == *want).map(|d| (i, d)));
        let Some((i, d)) = hit else {
            return Err(Error::CdiDeviceNotFound {
                path: specs[0].0.clone(),
                kind: kind.to_string(),
                device: want.to_string(),
            });
        };
        if !used.contains(&i) {
            used.push(i);
        }
        device_edits.merge(&d.container_edits);
    }
    if used.is_empty() {
        used.push(0);
    }
    used.sort();
    let mut edits = CdiEdits::default();
    for i in &used {
        edits.merge(&specs[*i].1.container_edits);
    }
    edits.merge(&device_edits);
    Ok(Some(CdiSpec {
        files: used.iter().map(|i| specs[*i].0.clone()).collect(),
        kind: kind.to_string(),
        devices: devices.iter().map(|d| d.to_string()).collect(),
        device_nodes: edits.device_nodes,
        mounts: edits.mounts,
        env: edits.env,
        hooks: edits.hooks,
    }))
}
