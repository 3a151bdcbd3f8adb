//! Where the host's `/sys`, `/proc`, `/dev` and the rest of its filesystem are.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The default name NVML is loaded by, through the dynamic loader (so
/// `LD_LIBRARY_PATH` and the `ld.so` cache apply).
pub const NVML_LIB: &str = "libnvidia-ml.so.1";

/// The filesystem roots every probe and every device resolution reads from.
///
/// Real hosts use [`Roots::default`] (`/sys`, `/proc`, `/dev`, `/`); tests
/// point them at a fixture tree ([`crate::fixture`]). [`Roots::from_env`]
/// reads:
///
/// | variable | replaces | default |
/// | --- | --- | --- |
/// | `JARVIS_SYSFS_ROOT` | `/sys` | `/sys` |
/// | `JARVIS_PROC_ROOT` | `/proc` | `/proc` |
/// | `JARVIS_DEV_ROOT` | `/dev` | `/dev` |
/// | `JARVIS_HOST_ROOT` | `/` for `/etc/group`, `/etc/cdi`, `/var/run/cdi`, `/etc/ld.so.cache`, `/usr/...` | `/` |
/// | `JARVIS_NVML_LIB` | the library NVML is loaded from; empty or `none` disables NVML | `libnvidia-ml.so.1` |
///
/// Device paths that this crate reports to the daemon are always *logical*
/// (`/dev/ttyUSB0`), whatever the dev root; the host path under the dev root
/// is given beside them where it matters ([`crate::ResolvedDevice::node`],
/// [`crate::DeviceNode::host_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// Stands for `/sys`.
    pub sys: PathBuf,
    /// Stands for `/proc`.
    pub proc: PathBuf,
    /// Stands for `/dev`.
    pub dev: PathBuf,
    /// Stands for `/` when reading `/etc`, `/usr` and `/var/run` files.
    pub host: PathBuf,
    /// The name or path NVML is loaded from (`dlopen`), or `None` to skip
    /// NVML and use the procfs/sysfs fallback only.
    pub nvml_lib: Option<OsString>,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: "/sys".into(),
            proc: "/proc".into(),
            dev: "/dev".into(),
            host: "/".into(),
            nvml_lib: Some(NVML_LIB.into()),
        }
    }
}

impl Roots {
    /// The real host's roots, each replaced by its environment variable where
    /// that is set and not empty (see the table above).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`Roots::from_env`], with the variables looked up through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<OsString>) -> Self {
        let dflt = Roots::default();
        let pick = |name: &str, d: PathBuf| match get(name) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => d,
        };
        let nvml_lib = match get("JARVIS_NVML_LIB") {
            None => dflt.nvml_lib.clone(),
            Some(v) if v.is_empty() || v == "none" => None,
            Some(v) => Some(v),
        };
        Roots {
            sys: pick("JARVIS_SYSFS_ROOT", dflt.sys),
            proc: pick("JARVIS_PROC_ROOT", dflt.proc),
            dev: pick("JARVIS_DEV_ROOT", dflt.dev),
            host: pick("JARVIS_HOST_ROOT", dflt.host),
            nvml_lib,
        }
    }

    /// Roots for a fake root filesystem at `dir`: `dir/sys`, `dir/proc`,
    /// `dir/dev`, and `dir` itself as the host root. NVML stays enabled.
    pub fn under(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Roots {
            sys: dir.join("sys"),
            proc: dir.join("proc"),
            dev: dir.join("dev"),
            host: dir.to_path_buf(),
            nvml_lib: Some(NVML_LIB.into()),
        }
    }

    /// `<sys>/rel`.
    pub fn sys_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sys.join(rel)
    }

    /// `<proc>/rel`.
    pub fn proc_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.proc.join(rel)
    }

    /// The host path of a file under the host root: `host_path("/etc/group")`.
    pub fn host_path(&self, abs: impl AsRef<Path>) -> PathBuf {
        join_abs(&self.host, abs.as_ref())
    }

    /// The host path of a logical device path: `/dev/ttyUSB0` ->
    /// `<dev>/ttyUSB0`. A path outside `/dev` is taken as relative to the dev
    /// root.
    pub fn dev_host_path(&self, logical: impl AsRef<Path>) -> PathBuf {
        let p = logical.as_ref();
        let rel = p.strip_prefix("/dev").unwrap_or(p);
        join_abs(&self.dev, rel)
    }

    /// The logical `/dev/...` path of a host path under the dev root, or
    /// `None` when it is not under it.
    pub fn dev_logical_path(&self, host: impl AsRef<Path>) -> Option<PathBuf> {
        let rel = normalize(host.as_ref())
            .strip_prefix(normalize(&self.dev))
            .ok()?
            .to_path_buf();
        Some(Path::new("/dev").join(rel))
    }
}

/// `base` joined with `p`, `p`'s root and `..` components dropped so the
/// result stays under `base`.
pub(crate) fn join_abs(base: &Path, p: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in p.components() {
        if let Component::Normal(n) = c {
            out.push(n)
        }
    }
    out
}

/// Lexical normalization: `.` dropped, `..` pops (never above the root).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_replaces_each_root() {
        let r = Roots::from_lookup(|n| match n {
            "JARVIS_SYSFS_ROOT" => Some("/t/sys".into()),
            "JARVIS_PROC_ROOT" => Some("".into()),
            "JARVIS_DEV_ROOT" => Some("/t/dev".into()),
            "JARVIS_NVML_LIB" => Some("none".into()),
            _ => None,
        });
        assert_eq!(r.sys, Path::new("/t/sys"));
        assert_eq!(r.proc, Path::new("/proc"));
        assert_eq!(r.dev, Path::new("/t/dev"));
        assert_eq!(r.host, Path::new("/"));
        assert_eq!(r.nvml_lib, None);
        assert_eq!(Roots::from_lookup(|_| None), Roots::default());
    }

    #[test]
    fn dev_paths_map_both_ways() {
        let r = Roots::under("/t");
        assert_eq!(r.dev_host_path("/dev/ttyUSB0"), Path::new("/t/dev/ttyUSB0"));
        assert_eq!(r.dev_host_path("/dev/../etc/x"), Path::new("/t/dev/etc/x"));
        assert_eq!(
            r.dev_logical_path("/t/dev/serial/by-id/../../ttyUSB0")
                .unwrap(),
            Path::new("/dev/ttyUSB0")
        );
        assert_eq!(r.dev_logical_path("/elsewhere/x"), None);
        assert_eq!(r.host_path("/etc/group"), Path::new("/t/etc/group"));
    }
}
