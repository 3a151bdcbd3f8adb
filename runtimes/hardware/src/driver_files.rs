//! The NVIDIA driver's user-space files a GPU container needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::roots::Roots;
use crate::util::list_dir;

/// Where the driver keeps its libraries on hosts that install it outside the
/// loader's default directories (the H200 capture: `/usr/local/nvidia/lib64`,
/// reached through `LD_LIBRARY_PATH`).
pub const NVIDIA_LIB_DIRS: &[&str] = &["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"];

/// Where `nvidia-smi` is looked for (besides `PATH` on the real host).
pub const NVIDIA_SMI_PATHS: &[&str] = &[
    "/usr/bin/nvidia-smi",
    "/usr/local/nvidia/bin/nvidia-smi",
    "/usr/local/bin/nvidia-smi",
    "/bin/nvidia-smi",
    "/usr/sbin/nvidia-smi",
];

/// Whether a library file name belongs to the NVIDIA driver (not to the CUDA
/// toolkit, whose `libcudart`/`libnvrtc` ship with the application):
/// `libcuda`, `libcudadebugger`, `libnvcuvid`, `libnvoptix`, `libnvidia-*`
/// (but `libnvidia-container*`) and `*_nvidia` (`libGLX_nvidia`,
/// `libEGL_nvidia`, ...).
pub fn is_nvidia_driver_lib(file_name: &str) -> bool {
    let Some(pos) = file_name.find(".so") else {
        return false;
    };
    let base = &file_name[..pos];
    matches!(
        base,
        "libcuda" | "libcudadebugger" | "libnvcuvid" | "libnvoptix"
    ) || (base.starts_with("libnvidia-") && !base.starts_with("libnvidia-container"))
        || base.ends_with("_nvidia")
}

/// One line of `ldconfig -p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdconfigEntry {
    /// `libcuda.so.1`.
    pub name: String,
    /// `libc6,x86-64`.
    pub flags: String,
    /// `/usr/local/nvidia/lib64/libcuda.so.1`, as the cache names it (a host
    /// path).
    pub path: PathBuf,
}

/// Parses `ldconfig -p` output
/// (`\tlibcuda.so.1 (libc6,x86-64) => /usr/local/nvidia/lib64/libcuda.so.1`).
pub fn parse_ldconfig(out: &str) -> Vec<LdconfigEntry> {
    out.lines()
        .filter_map(|l| {
            let (left, path) = l.split_once(" => ")?;
            let left = left.trim();
            let (name, flags) = left.split_once(' ')?;
            let flags = flags.trim().trim_start_matches('(').trim_end_matches(')');
            Some(LdconfigEntry {
                name: name.to_string(),
                flags: flags.to_string(),
                path: PathBuf::from(path.trim()),
            })
        })
        .collect()
}

/// Whether an `ldconfig -p` entry is for this machine's word size and
/// architecture (the 32-bit compatibility copies are left out).
fn native_flags(flags: &str) -> bool {
    if cfg!(target_arch = "x86_64") {
        flags.contains("x86-64")
    } else if cfg!(target_arch = "aarch64") {
        flags.contains("AArch64")
    } else if cfg!(target_pointer_width = "64") {
        flags.contains("64")
    } else {
        true
    }
}

/// `ldconfig -p` on the host: the real cache when the host root is `/`,
/// else `<host>/etc/ld.so.cache` when there is one (`ldconfig -p -C`).
fn ldconfig_output(roots: &Roots) -> Option<String> {
    let mut cmd = Command::new("ldconfig");
    cmd.arg("-p");
    if roots.host != Path::new("/") {
        let cache = roots.host_path("/etc/ld.so.cache");
        if !cache.is_file() {
            return None;
        }
        cmd.arg("-C").arg(cache);
    }
    // ldconfig is in /sbin, which a service's PATH may lack.
    let out = cmd
        .output()
        .or_else(|_| {
            let mut c = Command::new("/sbin/ldconfig");
            c.args(cmd.get_args());
            c.output()
        })
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The NVIDIA driver's user-space files on the host, as host paths (under
/// the host root), without repeats, in this order:
///
/// 1. the driver libraries `ldconfig -p` lists for this architecture
///    ([`is_nvidia_driver_lib`]),
/// 2. the driver libraries in [`NVIDIA_LIB_DIRS`],
/// 3. `nvidia-smi`: every one of [`NVIDIA_SMI_PATHS`] there (else the
///    first on `PATH` of the real host).
///
/// A listed path that is a symlink (`libcuda.so.1`) is followed by the file
/// it resolves to (`libcuda.so.580.159.04`), so binding every entry gives the
/// container working links. No driver: an empty list.
pub fn nvidia_driver_files(roots: &Roots) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    if let Some(out) = ldconfig_output(roots) {
        for e in parse_ldconfig(&out) {
            if is_nvidia_driver_lib(&e.name) && native_flags(&e.flags) {
                let p = roots.host_path(&e.path);
                if p.exists() {
                    found.push(p);
                }
            }
        }
    }
    for dir in NVIDIA_LIB_DIRS {
        for (name, p) in list_dir(roots.host_path(dir)) {
            if is_nvidia_driver_lib(&name) && p.exists() {
                found.push(p);
            }
        }
    }
    // Every one there: a distribution's `/usr/bin/nvidia-smi` may be a
    // wrapper that execs the driver's own (seen on a GPU host here).
    let mut smi: Vec<PathBuf> = NVIDIA_SMI_PATHS
        .iter()
        .map(|p| roots.host_path(p))
        .filter(|p| p.is_file())
        .collect();
    if smi.is_empty() && roots.host == Path::new("/") {
        smi.extend(std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nvidia-smi"))
                .find(|p| p.is_file())
        }));
    }
    found.extend(smi);
    let mut out: Vec<PathBuf> = Vec::new();
    for p in found {
        let real = p.canonicalize().ok().filter(|r| r.starts_with(&roots.host));
        for q in std::iter::once(p).chain(real) {
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_lib_names() {
        for yes in [
            "libcuda.so.1",
            "libcuda.so",
            "libcuda.so.580.159.04",
            "libnvidia-ml.so.1",
            "libnvidia-ptxjitcompiler.so.1",
            "libcudadebugger.so.1",
            "libGLX_nvidia.so.0",
            "libnvcuvid.so.1",
        ] {
            assert!(is_nvidia_driver_lib(yes), "{yes}");
        }
        for no in [
            "libcudart.so.13",
            "libnvrtc.so.12",
            "libnvidia-container.so.1",
            "libc.so.6",
        ] {
            assert!(!is_nvidia_driver_lib(no), "{no}");
        }
    }
}
