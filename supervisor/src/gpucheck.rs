//! Whether a unit placed on a GPU runs there: the worst failure of an AI
//! box is silent, a model server given a GPU that runs every model on the
//! CPU.
//!
//! The core asks for a check of a run (`Output::GpuCheck`) one
//! `[gpu] verify_interval` after it runs (and is healthy, with a health
//! check), then every interval; [`check`] runs off the loop and its verdict
//! comes back as `Event::GpuChecked` for the run's generation, so a check
//! of a run that ended is dropped.
//!
//! What is asked:
//! - the GPU driver, about the unit's processes (its cgroup's pids): NVIDIA
//!   through NVML's per-process list of each GPU, AMD through each
//!   process's DRM fdinfo. No process
//!   of the unit holding memory on a GPU it was given is a fallback.
//! - with `[gpu] verify = "ollama"`, Ollama's `/api/ps` at the unit's
//!   `OLLAMA_HOST`: a loaded model with less of its size in VRAM than its
//!   size runs (partly) on the CPU. With no model loaded (or Ollama not
//!   answering), holding nothing on the GPU is an idle Ollama, not a
//!   fallback; a process on another GPU still is.
//!
//! What the GPUs hold is read by `jarvis_runtime::gpu_usage` (NVML and
//! /proc stay behind the runtime seam).
//!
//! [`verdict`] is the pure part. The same probe (at most
//! [`STATUS_FRESH`] old, [`GpuCache`]) gives `status` its GPUs and each
//! unit's VRAM.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jarvis_hardware::Roots;
use jarvis_runtime::{blocking, Runtime as _, Runtimes};
use jarvis_unit::{GpuVerify, Unit};

pub use jarvis_runtime::gpu_usage::{holders, host_gpus, Holder, HostGpu};

use crate::engine::machine::GpuVerdict;
use crate::placement::Placement;

/// How long Ollama has to answer `/api/ps`.
pub const OLLAMA_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest `/api/ps` answer read.
pub const OLLAMA_MAX_BODY: usize = 1 << 20;
/// Where Ollama listens when `OLLAMA_HOST` does not say (its default).
pub const OLLAMA_DEFAULT: &str = "127.0.0.1:11434";
/// How old the GPU facts `status` shows may be.
pub const STATUS_FRESH: Duration = Duration::from_secs(3);

/// A model Ollama has loaded (`/api/ps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub size: u64,
    pub size_vram: u64,
}

/// What Ollama said, if it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ollama {
    NotAsked,
    /// The models it has loaded (maybe none).
    Models(Vec<Model>),
    /// No answer, or not one that reads: why.
    Unreachable(String),
}

/// The verdict on a run placed on `placed` (GPU ids) from what its
/// processes hold (`holders`: the unit's processes only), the GPUs whose
/// processes cannot be known, and Ollama's answer. `None`: nothing tells
/// (no process list and no Ollama answer).
pub fn verdict(
    placed: &[String],
    gpus: &[HostGpu],
    holders: &[Holder],
    unknown: &BTreeSet<String>,
    ollama: &Ollama,
) -> Option<GpuVerdict> {
    let named = |id: &str| match gpus.iter().find(|g| g.id == id) {
        Some(g) if !g.name.is_empty() => format!("{id} ({})", g.name),
        _ => id.to_string(),
    };
    let mut why = Vec::new();
    // Ollama's own word on each loaded model.
    if let Ollama::Models(models) = ollama {
        for m in models {
            if m.size_vram < m.size || m.size_vram == 0 {
                why.push(format!(
                    "model {} has {} of {} in VRAM",
                    m.name,
                    human_bytes(m.size_vram.min(m.size)),
                    human_bytes(m.size)
                ));
            }
        }
    }
    // The driver's word on the processes. Holding nothing on the GPU is a
    // fallback only where the unit should hold something: any unit without
    // `verify = "ollama"`, and Ollama with a model loaded. An idle Ollama
    // (no model loaded, or not answering) holds no VRAM by design; a
    // process on another GPU is wrong either way.
    let expect_memory = match ollama {
        Ollama::NotAsked => true,
        Ollama::Models(m) => !m.is_empty(),
        Ollama::Unreachable(_) => false,
    };
    let knowable: Vec<&String> = placed.iter().filter(|id| !unknown.contains(*id)).collect();
    let mut judged_by_processes = !knowable.is_empty();
    if judged_by_processes {
        let on_placed = holders.iter().any(|h| placed.contains(&h.gpu));
        let elsewhere_at_all = holders.iter().any(|h| !placed.contains(&h.gpu));
        if !on_placed && !expect_memory && !elsewhere_at_all {
            // Idle: nothing to judge by.
            judged_by_processes = false;
        } else if !on_placed {
            let elsewhere: BTreeSet<&str> = holders
                .iter()
                .filter(|h| !placed.contains(&h.gpu))
                .map(|h| h.gpu.as_str())
                .collect();
            let given = knowable
                .iter()
                .map(|id| named(id))
                .collect::<Vec<_>>()
                .join(", ");
            if elsewhere.is_empty() {
                why.push(format!("no process of the unit holds memory on {given}"));
            } else {
                why.push(format!(
                    "no process of the unit holds memory on {given}; it uses {} instead",
                    elsewhere
                        .iter()
                        .map(|id| named(id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if !why.is_empty() {
        let mut reason = why.join("; ");
        if let Ollama::Unreachable(e) = ollama {
            reason.push_str(&format!(" (Ollama's /api/ps did not tell: {e})"));
        }
        return Some(GpuVerdict::Fallback(reason));
    }
    let ollama_told = matches!(ollama, Ollama::Models(m) if !m.is_empty());
    (judged_by_processes || ollama_told).then_some(GpuVerdict::Ok)
}

/// Bytes as Ollama shows them: decimal units, one decimal (`4.7 GB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The base URL of Ollama's API from `OLLAMA_HOST` as Ollama reads it
/// (`host`, `host:port`, `:port`, with or without `http://` or
/// `https://`, maybe with a path); an address that listens everywhere
/// (`0.0.0.0`, `::`) is asked on loopback, `inside` (a container's
/// address) stands for loopback.
pub fn ollama_base(host: Option<&str>, inside: Option<std::net::Ipv4Addr>) -> String {
    let raw = host.map(str::trim).filter(|h| !h.is_empty());
    let raw = raw.unwrap_or(OLLAMA_DEFAULT);
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), raw),
    };
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" if host.is_some_and(|h| h.contains("://")) => "80",
        _ => "11434",
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (h, port) = split_host_port(hostport);
    let port = port.unwrap_or(default_port);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let loopback = h.is_empty()
        || h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    let h = match (loopback, inside) {
        (true, Some(ip)) => ip.to_string(),
        (true, None) => "127.0.0.1".to_string(),
        (false, _) if h.contains(':') => format!("[{h}]"),
        (false, _) => h.to_string(),
    };
    format!("{scheme}://{h}:{port}{path}")
}

/// `host:port`, `[v6]:port`, `host`, `:port`.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').filter(|p| !p.is_empty())),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address has more than one ':'.
        Some((h, _)) if h.contains(':') => (s, None),
        Some((h, p)) => (h, (!p.is_empty()).then_some(p)),
        None => (s, None),
    }
}

/// Models in an `/api/ps` answer.
pub fn parse_ps(body: &[u8]) -> Result<Vec<Model>, String> {
    #[derive(serde::Deserialize)]
    struct Ps {
        #[serde(default)]
        models: Vec<PsModel>,
    }
    #[derive(serde::Deserialize)]
    struct PsModel {
        #[serde(default)]
        name: String,
        #[serde(default)]
        model: String,
        #[serde(default)]
        size: u64,
        #[serde(default)]
        size_vram: u64,
    }
    let ps: Ps = serde_json::from_slice(body).map_err(|e| format!("not an /api/ps answer: {e}"))?;
    Ok(ps
        .models
        .into_iter()
        .map(|m| Model {
            name: if m.name.is_empty() { m.model } else { m.name },
            size: m.size,
            size_vram: m.size_vram,
        })
        .collect())
}

/// GET `<base>/api/ps`, bounded in time and size.
pub async fn ollama_ps(base: &str) -> Ollama {
    let url = format!("{base}/api/ps");
    let ask = async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let mut resp = client
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > OLLAMA_MAX_BODY {
                return Err(format!(
                    "GET {url}: the answer is larger than {OLLAMA_MAX_BODY} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        parse_ps(&body)
    };
    match tokio::time::timeout(OLLAMA_TIMEOUT, ask).await {
        Ok(Ok(models)) => Ollama::Models(models),
        Ok(Err(e)) => Ollama::Unreachable(e),
        Err(_) => Ollama::Unreachable(format!(
            "GET {url}: no answer within {}",
            humantime::format_duration(OLLAMA_TIMEOUT)
        )),
    }
}

/// One check of `unit`'s run placed on `placement`: its processes, the
/// GPUs' process lists, and Ollama's when the unit asks for it. `None`:
/// nothing could tell.
pub async fn check(rt: &Runtimes, unit: &Unit, placement: &Placement) -> Option<GpuVerdict> {
    let placed = placement.ids();
    if placed.is_empty() {
        return None;
    }
    let pids: Vec<u32> = rt
        .pids(&unit.name)
        .await
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect();
    let ollama = match unit.gpu.as_ref().and_then(|g| g.verify) {
        Some(GpuVerify::Ollama) => {
            let inside = rt.unit_network(unit).addresses.first().map(|(_, ip)| *ip);
            let base = ollama_base(unit.env.get("OLLAMA_HOST").map(String::as_str), inside);
            ollama_ps(&base).await
        }
        None => Ollama::NotAsked,
    };
    if let Ollama::Unreachable(e) = &ollama {
        tracing::debug!(unit = %unit.name, error = %e, "GPU check: Ollama did not tell; judging by the processes");
    }
    let roots = rt.config().roots.clone();
    let (gpus, holders, unknown) = blocking(move || {
        let gpus = host_gpus(&roots);
        let (holders, unknown) = holders(&roots, &gpus, &pids);
        (gpus, holders, unknown)
    })
    .await;
    let v = verdict(&placed, &gpus, &holders, &unknown, &ollama);
    tracing::debug!(unit = %unit.name, verdict = ?v, holders = ?holders, "GPU check");
    v
}

/// The GPU facts `status` shows: the host's GPUs and the VRAM each unit's
/// processes hold, from one probe at most [`STATUS_FRESH`] old.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub gpus: Vec<HostGpu>,
    /// Bytes held by each unit's processes, summed over the GPUs, for the
    /// units running on a GPU placement when the probe ran (absent where
    /// no GPU can tell its processes).
    pub unit_vram: BTreeMap<String, u64>,
}

/// The last [`Snapshot`], and whether one is being made (one at a time:
/// callers meanwhile take the last).
#[derive(Default)]
pub struct GpuCache {
    last: Option<(Instant, Arc<Snapshot>)>,
    making: bool,
}

/// A snapshot at most [`STATUS_FRESH`] old, made here when there is none
/// that fresh and none is being made; else the last one (maybe none).
/// `units`: the running units placed on a GPU, with their pids' source.
/// Blocking (NVML, procfs, cgroup files).
pub fn snapshot(
    cache: &Mutex<GpuCache>,
    roots: &Roots,
    units: &[(String, jarvis_runtime::UnitCgroup)],
) -> Option<Arc<Snapshot>> {
    {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = c
            .last
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < STATUS_FRESH);
        if fresh || c.making {
            return c.last.as_ref().map(|(_, s)| s.clone());
        }
        c.making = true;
    }
    let gpus = host_gpus(roots);
    let mut unit_vram = BTreeMap::new();
    for (name, cg) in units {
        let pids: Vec<u32> = cg
            .pids()
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect();
        let (held, unknown) = holders(roots, &gpus, &pids);
        // Known as 0 when some GPU's processes are known and none is the
        // unit's; unknown when no GPU tells.
        if !held.is_empty() || unknown.len() < gpus.len() {
            unit_vram.insert(
                name.clone(),
                held.iter().filter_map(|h| h.bytes).sum::<u64>(),
            );
        }
    }
    let snap = Arc::new(Snapshot { gpus, unit_vram });
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.last = Some((Instant::now(), snap.clone()));
    c.making = false;
    Some(snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Vendor;

    const H200: &str = "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25";
    const OTHER: &str = "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f26";

    fn nvidia(id: &str, processes: Option<Vec<(u32, Option<u64>)>>) -> HostGpu {
        HostGpu {
            id: id.into(),
            vendor: Vendor::Nvidia,
            name: "NVIDIA H200".into(),
            pci_bus_id: "00000000:00:06.0".into(),
            memory_total: Some(150 << 30),
            memory_used: Some(0),
            utilization: Some(0),
            processes,
        }
    }

    fn held(gpu: &str, pid: u32) -> Holder {
        Holder {
            gpu: gpu.into(),
            pid,
            bytes: Some(1 << 30),
        }
    }

    fn model(name: &str, size: u64, size_vram: u64) -> Model {
        Model {
            name: name.into(),
            size,
            size_vram,
        }
    }

    fn fallback(v: Option<GpuVerdict>) -> String {
        match v {
            Some(GpuVerdict::Fallback(r)) => r,
            other => panic!("expected a fallback, got {other:?}"),
        }
    }

    #[test]
    fn processes_decide_without_ollama() {
        let gpus = [nvidia(H200, Some(vec![])), nvidia(OTHER, Some(vec![]))];
        let placed = [H200.to_string()];
        let none = BTreeSet::new();
        // On the GPU it was given.
        assert_eq!(
            verdict(&placed, &gpus, &[held(H200, 42)], &none, &Ollama::NotAsked),
            Some(GpuVerdict::Ok)
        );
        // On another GPU only.
        let r = fallback(verdict(
            &placed,
            &gpus,
            &[held(OTHER, 42)],
            &none,
            &Ollama::NotAsked,
        ));
        assert_eq!(
            r,
            format!(
                "no process of the unit holds memory on {H200} (NVIDIA H200); \
                 it uses {OTHER} (NVIDIA H200) instead"
            )
        );
        // Nowhere.
        let r = fallback(verdict(&placed, &gpus, &[], &none, &Ollama::NotAsked));
        assert_eq!(
            r,
            format!("no process of the unit holds memory on {H200} (NVIDIA H200)")
        );
        // The driver cannot tell (no NVML), and nothing else does.
        let unknown = BTreeSet::from([H200.to_string()]);
        assert_eq!(
            verdict(&placed, &gpus, &[], &unknown, &Ollama::NotAsked),
            None
        );
    }

    #[test]
    fn ollama_models_in_vram_or_not() {
        let gpus = [nvidia(H200, Some(vec![]))];
        let placed = [H200.to_string()];
        let none = BTreeSet::new();
        let on = [held(H200, 42)];
        let gb = 1_000_000_000;
        // Every model wholly in VRAM.
        let all = Ollama::Models(vec![model("llama3:8b", 4_700_000_000, 4_700_000_000)]);
        assert_eq!(
            verdict(&placed, &gpus, &on, &none, &all),
            Some(GpuVerdict::Ok)
        );
        // A model partly on the CPU.
        let part = Ollama::Models(vec![
            model("llama3:8b", 4_700_000_000, 4_700_000_000),
            model("llama3:70b", 40 * gb, 30 * gb),
        ]);
        assert_eq!(
            fallback(verdict(&placed, &gpus, &on, &none, &part)),
            "model llama3:70b has 30.0 GB of 40.0 GB in VRAM"
        );
        // All on the CPU, though the process holds a little memory there
        // (the CUDA context).
        let zero = Ollama::Models(vec![model("llama3:8b", 4_700_000_000, 0)]);
        assert_eq!(
            fallback(verdict(&placed, &gpus, &on, &none, &zero)),
            "model llama3:8b has 0 B of 4.7 GB in VRAM"
        );
        // ... and with no process on the GPU either, both are said.
        assert_eq!(
            fallback(verdict(&placed, &gpus, &[], &none, &zero)),
            format!(
                "model llama3:8b has 0 B of 4.7 GB in VRAM; \
                 no process of the unit holds memory on {H200} (NVIDIA H200)"
            )
        );
        // No model loaded: a process on the GPU is fine, one on another GPU
        // is not, and none at all is an idle Ollama (it holds no VRAM until
        // a model loads): nothing to judge, not a fallback.
        let empty = Ollama::Models(vec![]);
        assert_eq!(
            verdict(&placed, &gpus, &on, &none, &empty),
            Some(GpuVerdict::Ok)
        );
        assert_eq!(verdict(&placed, &gpus, &[], &none, &empty), None);
        assert!(fallback(verdict(
            &placed,
            &gpus,
            &[held("GPU-other", 42)],
            &none,
            &empty
        ))
        .contains("it uses GPU-other instead"));
        // Without a process list, Ollama alone tells.
        let unknown = BTreeSet::from([H200.to_string()]);
        assert_eq!(
            verdict(&placed, &gpus, &[], &unknown, &all),
            Some(GpuVerdict::Ok)
        );
        assert_eq!(verdict(&placed, &gpus, &[], &unknown, &empty), None);
    }

    #[test]
    fn ollama_unreachable_is_judged_by_the_processes() {
        let gpus = [nvidia(H200, Some(vec![]))];
        let placed = [H200.to_string()];
        let none = BTreeSet::new();
        let down = Ollama::Unreachable("GET http://127.0.0.1:1/api/ps: connection refused".into());
        assert_eq!(
            verdict(&placed, &gpus, &[held(H200, 42)], &none, &down),
            Some(GpuVerdict::Ok)
        );
        // Nothing held and Ollama not telling whether a model is loaded:
        // nothing to judge (an idle Ollama holds no VRAM).
        assert_eq!(verdict(&placed, &gpus, &[], &none, &down), None);
        assert_eq!(
            fallback(verdict(&placed, &gpus, &[held("GPU-other", 42)], &none, &down)),
            format!(
                "no process of the unit holds memory on {H200} (NVIDIA H200); it uses GPU-other instead \
                 (Ollama's /api/ps did not tell: GET http://127.0.0.1:1/api/ps: connection refused)"
            )
        );
    }

    #[test]
    fn holders_of_nvidia_and_amd_gpus() {
        // A proc tree with two DRM clients of the AMD card: pid 7 holding
        // 512 MiB, pid 8 none.
        let dir = tempfile::tempdir().unwrap();
        for (pid, client, kib) in [(7, 1, 512 * 1024), (8, 2, 0)] {
            let fdinfo = dir.path().join(format!("proc/{pid}/fdinfo"));
            std::fs::create_dir_all(&fdinfo).unwrap();
            std::fs::write(
                fdinfo.join("3"),
                format!(
                    "pos:\t0\ndrm-driver:\tamdgpu\ndrm-client-id:\t{client}\n\
                     drm-pdev:\t0000:03:00.0\ndrm-memory-vram:\t{kib} KiB\n"
                ),
            )
            .unwrap();
        }
        let roots = Roots::under(dir.path());
        let amd = HostGpu {
            id: "0000:03:00.0".into(),
            vendor: Vendor::Amd,
            name: "1002:744c".into(),
            pci_bus_id: "0000:03:00.0".into(),
            memory_total: None,
            memory_used: None,
            utilization: None,
            processes: None,
        };
        let gpus = [
            nvidia(H200, Some(vec![(42, Some(1 << 30)), (43, None)])),
            nvidia(OTHER, None),
            amd,
        ];
        let (h, unknown) = holders(&roots, &gpus, &[42, 7, 8, 99]);
        assert_eq!(
            h,
            [
                held(H200, 42),
                Holder {
                    gpu: "0000:03:00.0".into(),
                    pid: 7,
                    bytes: Some(512 << 20)
                }
            ]
        );
        assert_eq!(unknown, BTreeSet::from([OTHER.to_string()]));
    }

    #[test]
    fn ollama_host_as_ollama_reads_it() {
        let ip = "10.88.0.5".parse().unwrap();
        for (host, inside, url) in [
            (None, None, "http://127.0.0.1:11434"),
            (Some(""), None, "http://127.0.0.1:11434"),
            (Some("127.0.0.1:11500"), None, "http://127.0.0.1:11500"),
            (Some("0.0.0.0"), None, "http://127.0.0.1:11434"),
            (Some("0.0.0.0:8080"), None, "http://127.0.0.1:8080"),
            (Some(":8080"), None, "http://127.0.0.1:8080"),
            (Some("http://127.0.0.1:9000"), None, "http://127.0.0.1:9000"),
            (Some("http://ollama.lan"), None, "http://ollama.lan:80"),
            (Some("https://ollama.lan"), None, "https://ollama.lan:443"),
            (
                Some("http://10.0.0.2:11434/"),
                None,
                "http://10.0.0.2:11434",
            ),
            (
                Some("http://10.0.0.2:11434/ollama"),
                None,
                "http://10.0.0.2:11434/ollama",
            ),
            (Some("[::1]:9000"), None, "http://127.0.0.1:9000"),
            (Some("[fd00::2]:9000"), None, "http://[fd00::2]:9000"),
            (Some("localhost"), None, "http://127.0.0.1:11434"),
            (Some("0.0.0.0"), Some(ip), "http://10.88.0.5:11434"),
            (Some("10.0.0.2"), Some(ip), "http://10.0.0.2:11434"),
        ] {
            assert_eq!(ollama_base(host, inside), url, "{host:?}");
        }
    }

    #[test]
    fn ps_answers() {
        let body = br#"{"models":[{"name":"llama3:8b","model":"llama3:8b","size":4700000000,
            "size_vram":0,"digest":"x","details":{},"expires_at":"2026-01-01T00:00:00Z"}]}"#;
        assert_eq!(
            parse_ps(body).unwrap(),
            [model("llama3:8b", 4_700_000_000, 0)]
        );
        assert_eq!(parse_ps(br#"{"models":[]}"#).unwrap(), []);
        assert_eq!(parse_ps(b"{}").unwrap(), []);
        assert!(parse_ps(b"<html>").is_err());
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(4_700_000_000), "4.7 GB");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
