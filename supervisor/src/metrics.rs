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
//! `jarvis_unit_placement` (1, labelled `device` = cpu or gpu). jarvisd's
//! own: `jarvisd_resident_memory_bytes` and `jarvisd_open_fds`.

use std::sync::atomic::AtomicU64;

use jarvis_proto::{Health, StatusReport, UnitState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnitLabel {
    unit: String,
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

/// Whole numbers (states, counts, bytes).
type Gauges<L> = Family<L, Gauge>;
/// Seconds, with their fraction.
type Seconds<L> = Family<L, Gauge<f64, AtomicU64>>;

/// The exposition text for `report` and jarvisd's own figures.
pub fn render(report: &StatusReport) -> String {
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
    let placement = Gauges::<PlacementLabels>::default();
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
        if let Some(p) = &u.placement {
            placement
                .get_or_create(&PlacementLabels {
                    unit: u.name.clone(),
                    device: p.device.as_str().to_string(),
                })
                .set(1);
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
    reg.register(
        "jarvis_unit_placement",
        "Where a unit with [gpu] was placed: 1, labelled with the device (cpu or gpu)",
        placement,
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
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
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
}
