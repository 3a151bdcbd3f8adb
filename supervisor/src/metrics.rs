//! `GET /metrics`: the units and jarvisd itself in Prometheus' text
//! exposition format (the `prometheus-client` crate), made from the same
//! status report `jarvisctl status --json` prints, so the two never differ.
//!
//! Per unit, labelled `unit` (and `kind`, the form that runs, on the state):
//! `jarvis_unit_state` (one-hot over every state), `jarvis_unit_restarts`,
//! `jarvis_unit_healthy` (1 or 0; absent without a check),
//! `jarvis_unit_uptime_seconds`, `jarvis_unit_memory_bytes`,
//! `jarvis_unit_memory_limit_bytes`, `jarvis_unit_cpu_seconds`,
//! `jarvis_unit_tasks`, `jarvis_unit_last_exit_oom` and
//! `jarvis_unit_placement` (1, labelled `device` = cpu or gpu),
//! `jarvis_unit_vram_bytes`, `jarvis_unit_vram_given_bytes` and
//! `jarvis_unit_gpu_fallback` (1 on the CPU instead of its GPU, 0 on it;
//! absent for units not placed on a GPU). Per GPU, labelled `gpu` (its id)
//! and `name`: `jarvis_gpu_memory_total_bytes`, `jarvis_gpu_memory_used_bytes`
//! and `jarvis_gpu_utilization_ratio` (0 to 1). jarvisd's own:
//! `jarvisd_resident_memory_bytes`, `jarvisd_open_fds` and
//! `jarvisd_event_loop_lag_seconds` (see [`LagProbe`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jarvis_proto::{GpuCheck, Health, StatusReport, UnitState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnitLabel {
    unit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    unit: String,
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlacementLabels {
    unit: String,
    device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    gpu: String,
    name: String,
}

/// Whole numbers (states, counts, bytes).
type Gauges<L> = Family<L, Gauge>;
/// Seconds, with their fraction.
type Seconds<L> = Family<L, Gauge<f64, AtomicU64>>;

/// The exposition text for `report` and jarvisd's own figures (the event
/// loop's lag from the probe [`spawn_lag_probe`] started, if it did).
pub fn render(report: &StatusReport) -> String {
    render_full(report, PROBE.get(), NOTIFIED.get().map(|c| &**c))
}

/// [`render`] with the lag of `lag`.
pub fn render_with(report: &StatusReport, lag: Option<&LagProbe>) -> String {
    render_full(report, lag, None)
}

/// The notifier's counts `/metrics` reports (see [`report_notifications`]).
static NOTIFIED: OnceLock<Arc<crate::notify::Counts>> = OnceLock::new();

/// Makes `counts` (the notifier's) part of `/metrics`, as
/// `jarvisd_notifications{result}`: a webhook that fails is seen there, not
/// only in jarvisd's log.
pub fn report_notifications(counts: Arc<crate::notify::Counts>) {
    let _ = NOTIFIED.set(counts);
}

/// [`render`] with the lag of `lag` and the notifier's `notify` counts.
pub fn render_full(
    report: &StatusReport,
    lag: Option<&LagProbe>,
    notify: Option<&crate::notify::Counts>,
) -> String {
    let mut reg = Registry::default();
    let state = Gauges::<StateLabels>::default();
    let restarts = Gauges::<UnitLabel>::default();
    let healthy = Gauges::<UnitLabel>::default();
    let uptime = Seconds::<UnitLabel>::default();
    let memory = Gauges::<UnitLabel>::default();
    let limit = Gauges::<UnitLabel>::default();
    let cpu = Seconds::<UnitLabel>::default();
    let tasks = Gauges::<UnitLabel>::default();
    let oom = Gauges::<UnitLabel>::default();
    let oom_kills = Gauges::<UnitLabel>::default();
    let placement = Gauges::<PlacementLabels>::default();
    let vram = Gauges::<UnitLabel>::default();
    let vram_given = Gauges::<UnitLabel>::default();
    let fallback = Gauges::<UnitLabel>::default();
    for u in &report.units {
        let unit = UnitLabel {
            unit: u.name.clone(),
        };
        // One-hot over every state a unit can be in.
        for &s in UnitState::ALL {
            state
                .get_or_create(&StateLabels {
                    unit: u.name.clone(),
                    kind: u.kind.as_str().to_string(),
                    state: s.as_str().to_string(),
                })
                .set(i64::from(s == u.state));
        }
        restarts.get_or_create(&unit).set(u.restarts.into());
        match u.health {
            Some(Health::Healthy) => drop(healthy.get_or_create(&unit).set(1)),
            Some(Health::Unhealthy) => drop(healthy.get_or_create(&unit).set(0)),
            _ => {}
        }
        if let Some(ms) = u.uptime_ms {
            uptime.get_or_create(&unit).set(ms as f64 / 1e3);
        }
        if let Some(b) = u.memory_bytes {
            memory
                .get_or_create(&unit)
                .set(b.try_into().unwrap_or(i64::MAX));
        }
        if let Some(b) = u.memory_max_bytes {
            limit
                .get_or_create(&unit)
                .set(b.try_into().unwrap_or(i64::MAX));
        }
        if let Some(ns) = u.cpu_usage_ns {
            cpu.get_or_create(&unit).set(ns as f64 / 1e9);
        }
        if let Some(t) = u.tasks {
            tasks
                .get_or_create(&unit)
                .set(t.try_into().unwrap_or(i64::MAX));
        }
        oom.get_or_create(&unit).set(i64::from(u.oom_killed));
        oom_kills.get_or_create(&unit).set(i64::from(u.oom_kills));
        if let Some(p) = &u.placement {
            placement
                .get_or_create(&PlacementLabels {
                    unit: u.name.clone(),
                    device: p.device.as_str().to_string(),
                })
                .set(1);
        }
        if let Some(b) = u.vram_bytes {
            vram.get_or_create(&unit).set(clamp(b));
        }
        if let Some(b) = u.vram_given_bytes {
            vram_given.get_or_create(&unit).set(clamp(b));
        }
        match u.gpu {
            Some(GpuCheck::Fallback) => drop(fallback.get_or_create(&unit).set(1)),
            Some(GpuCheck::Ok) => drop(fallback.get_or_create(&unit).set(0)),
            None => {}
        }
    }
    let gpu_total = Gauges::<GpuLabels>::default();
    let gpu_used = Gauges::<GpuLabels>::default();
    let gpu_util = Family::<GpuLabels, Gauge<f64, AtomicU64>>::default();
    for g in &report.gpus {
        let labels = GpuLabels {
            gpu: g.id.clone(),
            name: g.name.clone(),
        };
        if let Some(b) = g.memory_total_bytes {
            gpu_total.get_or_create(&labels).set(clamp(b));
        }
        if let Some(b) = g.memory_used_bytes {
            gpu_used.get_or_create(&labels).set(clamp(b));
        }
        if let Some(p) = g.utilization_percent {
            gpu_util
                .get_or_create(&labels)
                .set(f64::from(p.min(100)) / 100.0);
        }
    }
    reg.register(
        "jarvis_unit_state",
        "The unit's state: 1 for the one it is in, 0 for the others",
        state,
    );
    reg.register(
        "jarvis_unit_restarts",
        "Automatic restarts since the last start request",
        restarts,
    );
    reg.register(
        "jarvis_unit_healthy",
        "1 when the unit's health check passes, 0 when it fails (absent without a check or while starting)",
        healthy,
    );
    reg.register_with_unit(
        "jarvis_unit_uptime",
        "How long the current run has been running",
        Unit::Seconds,
        uptime,
    );
    reg.register_with_unit(
        "jarvis_unit_memory",
        "Memory the unit's cgroup uses",
        Unit::Bytes,
        memory,
    );
    reg.register_with_unit(
        "jarvis_unit_memory_limit",
        "The unit's memory limit ([resources] memory_max)",
        Unit::Bytes,
        limit,
    );
    // A gauge, not a counter: promtool reads the classic text format, in
    // which a counter's samples and its help must share one name.
    reg.register_with_unit(
        "jarvis_unit_cpu",
        "CPU time the unit's cgroup has used in its current run (cumulative; it starts again at each run)",
        Unit::Seconds,
        cpu,
    );
    reg.register(
        "jarvis_unit_tasks",
        "Processes and threads in the unit's cgroup",
        tasks,
    );
    reg.register(
        "jarvis_unit_last_exit_oom",
        "1 when the kernel's OOM killer ended the unit's last run",
        oom,
    );
    // A gauge, not a counter, for promtool's classic format (see above).
    reg.register(
        "jarvis_unit_oom_kills",
        "Runs of the unit the kernel's OOM killer ended since jarvisd started",
        oom_kills,
    );
    reg.register(
        "jarvis_unit_placement",
        "Where a unit with [gpu] was placed: 1, labelled with the device (cpu or gpu)",
        placement,
    );
    reg.register_with_unit(
        "jarvis_unit_vram",
        "VRAM the unit's processes use on its GPUs",
        Unit::Bytes,
        vram,
    );
    reg.register_with_unit(
        "jarvis_unit_vram_given",
        "VRAM set aside for the unit on its GPUs ([gpu] min_vram)",
        Unit::Bytes,
        vram_given,
    );
    reg.register(
        "jarvis_unit_gpu_fallback",
        "1 when a unit placed on a GPU runs on the CPU instead, 0 when it runs on its GPU (absent for units not placed on a GPU)",
        fallback,
    );
    reg.register_with_unit(
        "jarvis_gpu_memory_total",
        "The GPU's memory",
        Unit::Bytes,
        gpu_total,
    );
    reg.register_with_unit(
        "jarvis_gpu_memory_used",
        "The GPU's memory in use, by every process on the host",
        Unit::Bytes,
        gpu_used,
    );
    reg.register_with_unit(
        "jarvis_gpu_utilization",
        "How busy the GPU is, 0 to 1 (NVML's utilisation; AMD's gpu_busy_percent)",
        Unit::Other("ratio".into()),
        gpu_util,
    );
    let own = |key: &str| -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    let rss = Gauge::<i64>::default();
    rss.set(own("VmRSS:").unwrap_or(0));
    reg.register_with_unit(
        "jarvisd_resident_memory",
        "jarvisd's resident memory (VmRSS)",
        Unit::Bytes,
        rss,
    );
    let fds = Gauge::<i64>::default();
    fds.set(std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64));
    reg.register("jarvisd_open_fds", "Descriptors jarvisd holds open", fds);
    if let Some(probe) = lag {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(probe.lag().as_secs_f64());
        reg.register_with_unit(
            "jarvisd_event_loop_lag",
            "How late jarvisd's event loop ran a timer, the most in the last 10 to 20 s",
            Unit::Seconds,
            g,
        );
    }
    if let Some(c) = notify {
        use std::sync::atomic::Ordering::Relaxed;
        let family = Gauges::<ResultLabel>::default();
        for (result, n) in [
            ("sent", c.sent.load(Relaxed)),
            ("failed", c.failed.load(Relaxed)),
            ("dropped", c.dropped.load(Relaxed)),
            ("held_back", c.held_back.load(Relaxed)),
        ] {
            family
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .set(clamp(n));
        }
        // A gauge, not a counter, for promtool's classic format (see
        // jarvis_unit_cpu_seconds).
        reg.register(
            "jarvisd_notifications",
            "Notifications since jarvisd started, by result: sent, failed (after its retry), dropped (a full queue or the rate limit), held_back (the same unit and kind within a minute)",
            family,
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

fn clamp(b: u64) -> i64 {
    b.try_into().unwrap_or(i64::MAX)
}

/// How often the lag probe wakes.
pub const LAG_TICK: Duration = Duration::from_millis(100);
/// Ticks in one window of the maximum kept.
const LAG_WINDOW_TICKS: u32 = 100;

/// The event loop's lag: a task on jarvisd's runtime wakes every
/// [`LAG_TICK`] and measures how late it woke (a loop busy with something
/// else, or a blocking call on it, shows here). It keeps the maximum of the
/// current window of [`LAG_WINDOW_TICKS`] ticks (10 s) and of the one
/// before, so a scrape sees the worst of the last 10 to 20 s whatever its
/// interval. Two atomics; one timer.
#[derive(Debug, Clone, Default)]
pub struct LagProbe {
    inner: Arc<LagInner>,
}

#[derive(Debug, Default)]
struct LagInner {
    current_ns: AtomicU64,
    previous_ns: AtomicU64,
}

impl LagProbe {
    /// The most the loop was late in the last 10 to 20 s.
    pub fn lag(&self) -> Duration {
        let cur = self.inner.current_ns.load(Ordering::Relaxed);
        let prev = self.inner.previous_ns.load(Ordering::Relaxed);
        Duration::from_nanos(cur.max(prev))
    }

    /// Records one tick `late`; `new_window` starts the next window first.
    fn record(&self, late: Duration, new_window: bool) {
        let ns = u64::try_from(late.as_nanos()).unwrap_or(u64::MAX);
        if new_window {
            let cur = self.inner.current_ns.swap(ns, Ordering::Relaxed);
            self.inner.previous_ns.store(cur, Ordering::Relaxed);
        } else {
            self.inner.current_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }
}

/// jarvisd's probe, once started: what [`render`] reports.
static PROBE: OnceLock<LagProbe> = OnceLock::new();

/// Starts the lag probe on the current runtime (once per process: a second
/// call returns the first probe) and makes it the one `/metrics` reports.
pub fn spawn_lag_probe() -> LagProbe {
    let mut started = false;
    let probe = PROBE
        .get_or_init(|| {
            started = true;
            LagProbe::default()
        })
        .clone();
    if started {
        tokio::spawn(run_probe(probe.clone(), LAG_TICK));
    }
    probe
}

async fn run_probe(probe: LagProbe, tick: Duration) {
    let mut timer = tokio::time::interval(tick);
    // A late tick is measured, not made up for with a burst of ticks.
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u32 = 0;
    loop {
        let due = timer.tick().await;
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        n = n.wrapping_add(1);
        probe.record(late, n.is_multiple_of(LAG_WINDOW_TICKS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        serde_json::from_value(serde_json::json!({"units": [{
            "name": "web", "kind": "container", "state": "running", "pid": 42,
            "restarts": 2, "health": "healthy", "exit_code": null,
            "cgroup": "/jarvis/web", "reason": null, "description": null,
            "exit_signal": null, "oom_killed": false, "uptime_ms": 1500,
            "memory_bytes": 1048576, "memory_max_bytes": 67108864,
            "cpu_usage_ns": 2500000000u64, "tasks": 3, "wanted": true,
            "placement": {"device": "cpu"}, "networks": [], "ports": [], "privileged": false
        }]}))
        .unwrap()
    }

    #[test]
    fn a_unit_is_described_by_its_metrics() {
        let text = render(&report());
        for want in [
            "jarvis_unit_state{unit=\"web\",kind=\"container\",state=\"running\"} 1",
            "jarvis_unit_state{unit=\"web\",kind=\"container\",state=\"failed\"} 0",
            "jarvis_unit_restarts{unit=\"web\"} 2",
            "jarvis_unit_healthy{unit=\"web\"} 1",
            "jarvis_unit_uptime_seconds{unit=\"web\"} 1.5",
            "jarvis_unit_memory_bytes{unit=\"web\"} 1048576",
            "jarvis_unit_memory_limit_bytes{unit=\"web\"} 67108864",
            "jarvis_unit_cpu_seconds{unit=\"web\"} 2.5",
            "jarvis_unit_tasks{unit=\"web\"} 3",
            "jarvis_unit_placement{unit=\"web\",device=\"cpu\"} 1",
            "# TYPE jarvisd_resident_memory_bytes gauge",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
    }

    fn gpu_report() -> StatusReport {
        let mut r = report();
        let base = serde_json::to_value(&r.units[0]).unwrap();
        let unit = |name: &str, extra: serde_json::Value| {
            let mut u = base.clone();
            u["name"] = name.into();
            for (k, v) in extra.as_object().unwrap() {
                u[k] = v.clone();
            }
            serde_json::from_value(u).unwrap()
        };
        r.units = vec![
            unit(
                "llm",
                serde_json::json!({"placement": {"device": "gpu", "gpus": ["GPU-1"]},
                    "gpu": "ok", "vram_bytes": 4294967296u64, "vram_given_bytes": 6442450944u64}),
            ),
            unit(
                "whisper",
                serde_json::json!({"placement": {"device": "gpu", "gpus": ["GPU-1"]},
                    "gpu": "fallback", "vram_bytes": 0, "vram_given_bytes": 2147483648u64}),
            ),
            unit("web", serde_json::json!({"placement": null, "gpu": null})),
        ];
        r.gpus = serde_json::from_value(serde_json::json!([{
            "id": "GPU-1", "vendor": "nvidia", "name": "NVIDIA GeForce RTX 3090",
            "memory_total_bytes": 25769803776u64, "memory_used_bytes": 5368709120u64,
            "utilization_percent": 37, "units": ["llm", "whisper"]
        }, {
            "id": "0000:03:00.0", "vendor": "amd", "name": "Radeon",
            "memory_total_bytes": null, "memory_used_bytes": null,
            "utilization_percent": null, "units": []
        }]))
        .unwrap();
        r
    }

    #[test]
    fn notifications_are_counted_by_result() {
        let counts = crate::notify::Counts::default();
        counts.sent.store(4, Ordering::Relaxed);
        counts.failed.store(1, Ordering::Relaxed);
        counts.dropped.store(3, Ordering::Relaxed);
        counts.held_back.store(9, Ordering::Relaxed);
        let text = render_full(&report(), None, Some(&counts));
        for want in [
            "jarvisd_notifications{result=\"sent\"} 4",
            "jarvisd_notifications{result=\"failed\"} 1",
            "jarvisd_notifications{result=\"dropped\"} 3",
            "jarvisd_notifications{result=\"held_back\"} 9",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        // Without --notify-url: no such family.
        assert!(!render_with(&report(), None).contains("jarvisd_notifications"));
    }

    #[test]
    fn gpus_and_their_units_are_described() {
        let text = render_with(&gpu_report(), None);
        let gpu = "gpu=\"GPU-1\",name=\"NVIDIA GeForce RTX 3090\"";
        for want in [
            format!("jarvis_gpu_memory_total_bytes{{{gpu}}} 25769803776"),
            format!("jarvis_gpu_memory_used_bytes{{{gpu}}} 5368709120"),
            format!("jarvis_gpu_utilization_ratio{{{gpu}}} 0.37"),
            "# TYPE jarvis_gpu_utilization_ratio gauge".into(),
            "# UNIT jarvis_gpu_utilization_ratio ratio".into(),
            "jarvis_unit_vram_bytes{unit=\"llm\"} 4294967296".into(),
            "jarvis_unit_vram_given_bytes{unit=\"llm\"} 6442450944".into(),
            "jarvis_unit_vram_bytes{unit=\"whisper\"} 0".into(),
            "jarvis_unit_vram_given_bytes{unit=\"whisper\"} 2147483648".into(),
            "jarvis_unit_gpu_fallback{unit=\"llm\"} 0".into(),
            "jarvis_unit_gpu_fallback{unit=\"whisper\"} 1".into(),
        ] {
            assert!(text.contains(&want), "{want} missing from:\n{text}");
        }
        // What is not known is absent, not 0.
        for absent in [
            "jarvis_unit_gpu_fallback{unit=\"web\"}",
            "jarvis_unit_vram_bytes{unit=\"web\"}",
            "gpu=\"0000:03:00.0\"",
            "jarvisd_event_loop_lag",
        ] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
    }

    /// The end-to-end test runs promtool on a host without GPUs; this one
    /// checks the GPU families, where promtool is installed.
    #[test]
    fn gpu_families_pass_promtool_where_it_is_installed() {
        use std::io::Write;
        let probe = LagProbe::default();
        let counts = crate::notify::Counts::default();
        let text = render_full(&gpu_report(), Some(&probe), Some(&counts));
        assert!(text.contains("jarvisd_notifications{result=\"sent\"} 0"));
        let Ok(mut check) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            // tests/run installs it (Debian's prometheus); under CI a
            // missing one is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed (apt-get install prometheus)"
            );
            eprintln!("SKIPPED: promtool is not installed: not checked");
            return;
        };
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_lag_is_the_worst_of_this_window_and_the_last() {
        let p = LagProbe::default();
        let ms = Duration::from_millis;
        p.record(ms(1), false);
        p.record(ms(30), false);
        p.record(ms(2), false);
        assert_eq!(p.lag(), ms(30));
        // A new window: the last one's worst still counts...
        p.record(ms(1), true);
        assert_eq!(p.lag(), ms(30));
        // ... until the one after.
        p.record(ms(3), true);
        assert_eq!(p.lag(), ms(3));
        let text = render_with(&report(), Some(&p));
        assert!(
            text.contains("jarvisd_event_loop_lag_seconds 0.003"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loop_blocked_for_a_while_shows_as_lag() {
        let p = LagProbe::default();
        let task = tokio::spawn(run_probe(p.clone(), Duration::from_millis(20)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(p.lag() < Duration::from_millis(150), "{:?}", p.lag());
        // Blocks the only thread of the runtime, as a slow call on the
        // loop would.
        std::thread::sleep(Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(50)).await;
        task.abort();
        assert!(p.lag() >= Duration::from_millis(250), "{:?}", p.lag());
    }
}
