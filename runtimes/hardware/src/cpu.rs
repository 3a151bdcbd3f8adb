//! The CPU, from `<proc>/cpuinfo`, and memory, from `<proc>/meminfo`.

use std::collections::BTreeSet;
use std::fs;

use serde::{Deserialize, Serialize};

use crate::roots::Roots;

/// The host's CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// `model name` (x86), else `Model`/`Hardware`/`cpu model`; empty when
    /// cpuinfo says none.
    pub model: String,
    /// `vendor_id` (`GenuineIntel`, `AuthenticAMD`), when present.
    pub vendor: Option<String>,
    /// Physical packages (distinct `physical id`; 1 when not given).
    pub sockets: u32,
    /// Physical cores: distinct (`physical id`, `core id`) pairs, else
    /// `cpu cores` x sockets, else `threads`.
    pub cores: u32,
    /// Logical CPUs (`processor` entries).
    pub threads: u32,
    /// The first CPU's `flags` (x86) or `Features` (arm), in cpuinfo order.
    pub flags: Vec<String>,
    /// `avx2` is in `flags`.
    pub avx2: bool,
    /// `avx512f` is in `flags`.
    pub avx512f: bool,
    /// `avx512_vnni` is in `flags`.
    pub avx512_vnni: bool,
    /// Any of `amx_tile`, `amx_bf16`, `amx_int8` is in `flags`.
    pub amx: bool,
    /// `MemTotal` of `<proc>/meminfo`, in bytes.
    pub memory_total_bytes: Option<u64>,
}

/// Parses cpuinfo text (and meminfo text, for the memory total).
pub fn parse_cpu(cpuinfo: &str, meminfo: Option<&str>) -> Cpu {
    let mut threads = 0u32;
    let mut pairs = BTreeSet::new();
    let mut packages = BTreeSet::new();
    let mut cpu_cores: Option<u32> = None;
    let mut model: Option<String> = None;
    let mut fallback_model: Option<String> = None;
    let mut vendor = None;
    let mut flags: Option<Vec<String>> = None;
    let (mut phys, mut core): (Option<String>, Option<String>) = (None, None);
    let flush = |phys: &mut Option<String>,
                 core: &mut Option<String>,
                 pairs: &mut BTreeSet<(String, String)>| {
        if let (Some(p), Some(c)) = (phys.take(), core.take()) {
            pairs.insert((p, c));
        }
    };
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                flush(&mut phys, &mut core, &mut pairs);
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                flush(&mut phys, &mut core, &mut pairs);
                threads += 1;
            }
            "model name" if model.is_none() => model = Some(v.to_string()),
            "Model" | "Hardware" | "cpu model" | "cpu" if fallback_model.is_none() => {
                fallback_model = Some(v.to_string())
            }
            "vendor_id" if vendor.is_none() => vendor = Some(v.to_string()),
            "physical id" => {
                packages.insert(v.to_string());
                phys = Some(v.to_string());
            }
            "core id" => core = Some(v.to_string()),
            "cpu cores" if cpu_cores.is_none() => cpu_cores = v.parse().ok(),
            "flags" | "Features" if flags.is_none() => {
                flags = Some(v.split_whitespace().map(str::to_string).collect())
            }
            _ => {}
        }
    }
    flush(&mut phys, &mut core, &mut pairs);
    let flags = flags.unwrap_or_default();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let sockets = (packages.len() as u32).max(1);
    let cores = if !pairs.is_empty() {
        pairs.len() as u32
    } else if let Some(c) = cpu_cores {
        c * sockets
    } else {
        threads
    };
    Cpu {
        model: model.or(fallback_model).unwrap_or_default(),
        vendor,
        sockets,
        cores,
        threads,
        avx2: has("avx2"),
        avx512f: has("avx512f"),
        avx512_vnni: has("avx512_vnni"),
        amx: has("amx_tile") || has("amx_bf16") || has("amx_int8"),
        flags,
        memory_total_bytes: meminfo.and_then(parse_mem_total),
    }
}

/// `MemTotal:  131891904 kB` -> bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut it = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    Some(match it.next() {
        Some("kB") | Some("KB") | Some("kb") => n * 1024,
        _ => n,
    })
}

/// The CPU of `<proc>/cpuinfo` and `<proc>/meminfo`; an empty [`Cpu`] when
/// cpuinfo cannot be read.
pub fn probe_cpu(roots: &Roots) -> Cpu {
    let cpuinfo = fs::read_to_string(roots.proc_path("cpuinfo")).unwrap_or_default();
    let meminfo = fs::read_to_string(roots.proc_path("meminfo")).ok();
    parse_cpu(&cpuinfo, meminfo.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_cpuinfo_without_topology() {
        let s = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\nCPU part\t: 0xd0c\n\nprocessor\t: 1\nFeatures\t: fp asimd evtstrm\n\nHardware\t: Raspberry\n";
        let c = parse_cpu(s, Some("MemTotal:        8000 kB\n"));
        assert_eq!(c.threads, 2);
        assert_eq!(c.cores, 2);
        assert_eq!(c.flags, ["fp", "asimd", "evtstrm"]);
        assert_eq!(c.model, "Raspberry");
        assert!(!c.avx2 && !c.amx);
        assert_eq!(c.memory_total_bytes, Some(8000 * 1024));
    }

    #[test]
    fn this_machine() {
        let c = probe_cpu(&Roots::default());
        assert!(c.threads >= 1 && c.cores >= 1 && c.cores <= c.threads);
        assert!(c.memory_total_bytes.unwrap() > 0);
    }
}
