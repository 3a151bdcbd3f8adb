//! The status table people read.

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use jarvis_proto::{
    Health, ImageInfo, NetworkInfo, StatusReport, UnitState, UnitStatus, VolumeInfo,
};

pub fn status(report: &StatusReport) -> String {
    let mut out = problems(&report.problems);
    if report.units.is_empty() {
        out.push_str("no units\n");
        return out;
    }
    out.push_str(&units_table(report));
    out
}

/// What keeps jarvisd from running the units as declared, above the table:
/// each problem's first line after `PROBLEM:`, its details indented under
/// it, then a blank line. Nothing when there is none.
fn problems(problems: &[String]) -> String {
    let mut out = String::new();
    for p in problems {
        let mut lines = p.lines();
        out.push_str("PROBLEM: ");
        out.push_str(lines.next().unwrap_or_default());
        out.push('\n');
        for l in lines {
            out.push_str("  ");
            out.push_str(l);
            out.push('\n');
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn units_table(report: &StatusReport) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    let with_reason = report.units.iter().any(|u| reason(u).is_some());
    let with_ports = report.units.iter().any(|u| !u.ports.is_empty());
    let mut header = vec![
        "UNIT", "KIND", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "MEMORY", "CPU",
    ];
    if with_ports {
        header.push("PORTS");
    }
    if with_reason {
        header.push("REASON");
    }
    const RIGHT: [&str; 5] = ["PID", "UPTIME", "RESTARTS", "MEMORY", "CPU"];
    table.set_header(header.into_iter().map(|h| {
        let cell = Cell::new(h);
        if RIGHT.contains(&h) {
            cell.set_alignment(CellAlignment::Right)
        } else {
            cell
        }
    }));
    for u in &report.units {
        let mut row = vec![
            Cell::new(&u.name),
            Cell::new(if u.privileged {
                format!("{} (privileged)", u.kind)
            } else {
                u.kind.to_string()
            }),
            Cell::new(state(u)),
            Cell::new(u.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()))
                .set_alignment(CellAlignment::Right),
            Cell::new(u.uptime_ms.map(uptime).unwrap_or_else(|| "-".into()))
                .set_alignment(CellAlignment::Right),
            Cell::new(u.restarts).set_alignment(CellAlignment::Right),
            Cell::new(u.health.map_or("-", Health::as_str)),
            Cell::new(memory(u)).set_alignment(CellAlignment::Right),
            Cell::new(
                u.cpu_usage_ns
                    .filter(|_| u.pid.is_some())
                    .map(|ns| format!("{:.2}s", ns as f64 / 1e9))
                    .unwrap_or_else(|| "-".into()),
            )
            .set_alignment(CellAlignment::Right),
        ];
        if with_ports {
            row.push(Cell::new(u.ports.join(", ")));
        }
        if with_reason {
            row.push(Cell::new(reason(u).unwrap_or_default()));
        }
        table.add_row(row);
    }
    render(table)
}

/// The REASON column: a GPU fallback first (the silent failure of a unit
/// that runs on the CPU though placed on a GPU), then the state's reason.
fn reason(u: &UnitStatus) -> Option<String> {
    let gpu = (u.gpu == Some(jarvis_proto::GpuCheck::Fallback)).then(|| {
        format!(
            "GPU FALLBACK: {}",
            u.gpu_reason.as_deref().unwrap_or("runs on the CPU")
        )
    });
    match (gpu, &u.reason) {
        (Some(g), Some(r)) => Some(format!("{g}; {r}")),
        (Some(g), None) => Some(g),
        (None, r) => r.clone(),
    }
}

pub fn images(images: &[ImageInfo]) -> String {
    if images.is_empty() {
        return "no images\n".to_string();
    }
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec![
        Cell::new("IMAGE"),
        Cell::new("DIGEST"),
        Cell::new("SIZE").set_alignment(CellAlignment::Right),
        Cell::new("CREATED"),
    ]);
    for i in images {
        let digest = i.digest.strip_prefix("sha256:").unwrap_or(&i.digest);
        table.add_row(vec![
            Cell::new(&i.reference),
            Cell::new(&digest[..digest.len().min(12)]),
            Cell::new(bytes(i.size)).set_alignment(CellAlignment::Right),
            Cell::new(i.created.as_deref().unwrap_or("-")),
        ]);
    }
    render(table)
}

/// `jarvisctl network ls` for people.
pub fn networks(networks: &[NetworkInfo]) -> String {
    if networks.is_empty() {
        return "no networks (one is made when a bridged container starts)\n".to_string();
    }
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec!["NETWORK", "SUBNET", "GATEWAY", "BRIDGE", "UNITS"]);
    for n in networks {
        table.add_row(vec![
            Cell::new(&n.name),
            Cell::new(&n.subnet),
            Cell::new(&n.gateway),
            Cell::new(&n.bridge),
            Cell::new(n.units.join(", ")),
        ]);
    }
    render(table)
}

/// `jarvisctl volume ls` for people.
pub fn volumes(volumes: &[VolumeInfo]) -> String {
    if volumes.is_empty() {
        return "no volumes (one is made when a container that names it first starts)\n"
            .to_string();
    }
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec![
        Cell::new("VOLUME"),
        Cell::new("SIZE").set_alignment(CellAlignment::Right),
        Cell::new("UNITS"),
        Cell::new("PATH"),
    ]);
    for v in volumes {
        table.add_row(vec![
            Cell::new(&v.name),
            Cell::new(v.size.map(bytes).unwrap_or_else(|| "?".into()))
                .set_alignment(CellAlignment::Right),
            Cell::new(if v.units.is_empty() {
                "-".to_string()
            } else {
                v.units.join(", ")
            }),
            Cell::new(&v.path),
        ]);
    }
    render(table)
}

/// `jarvisctl probe` for people.
pub fn probe(p: &jarvis_hardware::Probe) -> String {
    let mut out = String::new();
    let c = &p.cpu;
    let mut inference: Vec<&str> = Vec::new();
    for (on, name) in [
        (c.avx2, "avx2"),
        (c.avx512f, "avx512f"),
        (c.avx512_vnni, "avx512_vnni"),
        (c.amx, "amx"),
    ] {
        if on {
            inference.push(name);
        }
    }
    out.push_str(&format!(
        "CPU     {} ({} cores, {} threads{}){}\n",
        if c.model.is_empty() {
            "unknown"
        } else {
            &c.model
        },
        c.cores,
        c.threads,
        c.memory_total_bytes
            .map(|m| format!(", {} memory", bytes(m)))
            .unwrap_or_default(),
        if inference.is_empty() {
            String::new()
        } else {
            format!(" [{}]", inference.join(" "))
        }
    ));
    if p.gpus.is_empty() {
        out.push_str("GPUs    none\n");
    }
    for g in &p.gpus {
        let mem = match (g.memory_used_bytes, g.memory_total_bytes) {
            (Some(u), Some(t)) => format!("{} / {}", bytes(u), bytes(t)),
            (None, Some(t)) => bytes(t),
            _ => "memory unknown".into(),
        };
        out.push_str(&format!(
            "GPU     {} {} {}  {}  {}{}\n",
            match g.vendor {
                jarvis_hardware::Vendor::Nvidia => "nvidia",
                jarvis_hardware::Vendor::Amd => "amd",
            },
            g.name,
            g.uuid.as_deref().unwrap_or(&g.pci_bus_id),
            mem,
            g.pci_bus_id,
            g.driver_version
                .as_deref()
                .map(|d| format!("  driver {d}"))
                .unwrap_or_default()
        ));
    }
    if p.usb.is_empty() {
        out.push_str("USB     none\n");
    }
    for u in &p.usb {
        out.push_str(&format!(
            "USB     {}:{} {} {}{}{}\n",
            u.vendor_id,
            u.product_id,
            u.manufacturer.as_deref().unwrap_or("-"),
            u.product.as_deref().unwrap_or("-"),
            u.serial
                .as_deref()
                .map(|s| format!(" serial {s}"))
                .unwrap_or_default(),
            if u.nodes.is_empty() {
                String::new()
            } else {
                format!("  {}", u.nodes.join(" "))
            }
        ));
    }
    for w in &p.warnings {
        out.push_str(&format!("note    {w}\n"));
    }
    out
}

fn state(u: &UnitStatus) -> String {
    match (u.state, u.exit_code) {
        (UnitState::Exited | UnitState::Failed, Some(code)) => format!("{} ({code})", u.state),
        _ => u.state.to_string(),
    }
}

fn memory(u: &UnitStatus) -> String {
    if u.pid.is_none() {
        return match u.memory_max_bytes {
            Some(max) => format!("- / {}", bytes(max)),
            None => "-".into(),
        };
    }
    let used = u.memory_bytes.map(bytes).unwrap_or_else(|| "?".into());
    match u.memory_max_bytes {
        Some(max) => format!("{used} / {}", bytes(max)),
        None => used,
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else if v >= 10.0 {
        format!("{v:.0}{}", UNITS[i])
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

pub fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A table as jarvisctl prints them: two spaces between columns, no
/// trailing blanks.
fn render(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, state: UnitState) -> UnitStatus {
        UnitStatus {
            name: name.into(),
            kind: jarvis_proto::UnitKind::Native,
            state,
            pid: None,
            restarts: 0,
            health: None,
            exit_code: None,
            cgroup: format!("/jarvis/{name}"),
            reason: None,
            description: None,
            exit_signal: None,
            oom_killed: false,
            uptime_ms: None,
            memory_bytes: None,
            memory_max_bytes: None,
            cpu_usage_ns: None,
            tasks: None,
            wanted: true,
            placement: None,
            form: None,
            form_reason: None,
            networks: vec![],
            ports: vec![],
            privileged: false,
            gpu: None,
            oom_kills: 0,
            gpu_reason: None,
            vram_bytes: None,
            vram_given_bytes: None,
        }
    }

    #[test]
    fn volumes_table_and_privileged_units() {
        let out = volumes(&[
            VolumeInfo {
                name: "pgdata".into(),
                path: "/var/lib/jarvis/volumes/pgdata/_data".into(),
                size: Some(3 << 20),
                units: vec!["db".into(), "backup".into()],
            },
            VolumeInfo {
                name: "cache".into(),
                path: "/var/lib/jarvis/volumes/cache/_data".into(),
                size: None,
                units: vec![],
            },
        ]);
        assert_eq!(
            out,
            "VOLUME  SIZE  UNITS       PATH\n\
             pgdata  3.0M  db, backup  /var/lib/jarvis/volumes/pgdata/_data\n\
             cache      ?  -           /var/lib/jarvis/volumes/cache/_data\n"
        );
        assert!(volumes(&[]).starts_with("no volumes"));
        let mut u = unit("vpn", UnitState::Running);
        u.kind = jarvis_proto::UnitKind::Container;
        u.privileged = true;
        let out = status(&StatusReport {
            units: vec![u],
            ..Default::default()
        });
        assert!(out.contains("container (privileged)"), "{out}");
    }

    #[test]
    fn ports_show_like_docker_ps() {
        let mut web = unit("web", UnitState::Running);
        web.ports = vec![
            "0.0.0.0:8080->80/tcp".into(),
            "127.0.0.1:5353->53/udp".into(),
        ];
        let out = status(&StatusReport {
            units: vec![web, unit("db", UnitState::Running)],
            ..Default::default()
        });
        assert!(out.lines().next().unwrap().contains("PORTS"), "{out}");
        assert!(
            out.contains("0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"),
            "{out}"
        );
        let out = status(&StatusReport {
            units: vec![unit("db", UnitState::Running)],
            ..Default::default()
        });
        assert!(!out.contains("PORTS"), "{out}");
    }

    #[test]
    fn networks_table() {
        let out = networks(&[NetworkInfo {
            name: "default".into(),
            subnet: "10.89.0.0/24".into(),
            gateway: "10.89.0.1".into(),
            bridge: "jarvis0".into(),
            units: vec!["db".into(), "web".into()],
        }]);
        assert_eq!(
            out,
            "NETWORK  SUBNET        GATEWAY    BRIDGE   UNITS\n\
             default  10.89.0.0/24  10.89.0.1  jarvis0  db, web\n"
        );
        assert!(networks(&[]).starts_with("no networks"));
    }

    #[test]
    fn table_reads_at_a_glance() {
        let mut web = unit("web", UnitState::Running);
        web.pid = Some(4242);
        web.uptime_ms = Some(3_723_000);
        web.restarts = 2;
        web.health = Some(Health::Healthy);
        web.memory_bytes = Some(12 * 1024 * 1024);
        web.memory_max_bytes = Some(64 * 1024 * 1024);
        web.cpu_usage_ns = Some(1_500_000_000);
        let mut db = unit("db", UnitState::Failed);
        db.exit_code = Some(137);
        db.reason = Some("killed by SIGKILL: out of memory".into());
        let out = status(&StatusReport {
            units: vec![db, web],
            ..Default::default()
        });
        let expected = "\
UNIT  KIND    STATE          PID  UPTIME  RESTARTS  HEALTH      MEMORY    CPU  REASON
db    native  failed (137)     -       -         0  -                -      -  killed by SIGKILL: out of memory
web   native  running       4242   1h02m         2  healthy  12M / 64M  1.50s
";
        assert_eq!(out, expected, "\n{out}");
    }

    #[test]
    fn a_gpu_fallback_leads_the_reason() {
        let mut llm = unit("llm", UnitState::Running);
        llm.gpu = Some(jarvis_proto::GpuCheck::Fallback);
        llm.gpu_reason = Some("model llama3:8b has 0 B of 4.7 GB in VRAM".into());
        let mut again = unit("again", UnitState::Running);
        again.gpu = Some(jarvis_proto::GpuCheck::Fallback);
        again.gpu_reason = Some("no process of the unit holds memory on GPU-1".into());
        again.reason = Some("restarted: killed by SIGKILL".into());
        let mut fine = unit("fine", UnitState::Running);
        fine.gpu = Some(jarvis_proto::GpuCheck::Ok);
        let out = status(&StatusReport {
            units: vec![llm, again, fine.clone()],
            ..Default::default()
        });
        let rows: Vec<&str> = out.lines().collect();
        assert!(rows[0].ends_with("REASON"), "{out}");
        assert!(
            rows[1].ends_with("GPU FALLBACK: model llama3:8b has 0 B of 4.7 GB in VRAM"),
            "{out}"
        );
        assert!(
            rows[2].ends_with(
                "GPU FALLBACK: no process of the unit holds memory on GPU-1; \
                 restarted: killed by SIGKILL"
            ),
            "{out}"
        );
        assert!(!rows[3].contains("GPU"), "{out}");
        // A unit on its GPU adds no column.
        let out = status(&StatusReport {
            units: vec![fine],
            ..Default::default()
        });
        assert!(!out.contains("REASON"), "{out}");
    }

    #[test]
    fn the_reason_column_hides_when_empty() {
        let out = status(&StatusReport {
            units: vec![unit("a", UnitState::Stopped)],
            ..Default::default()
        });
        assert!(!out.contains("REASON"), "{out}");
    }

    #[test]
    fn problems_come_first_with_their_details_indented() {
        let report = StatusReport {
            units: vec![unit("a", UnitState::Running)],
            problems: vec![
                "units directory /u has 1 problem(s); running the last good set\n/u/b.toml:3:1: unknown key".into(),
            ],
            ..Default::default()
        };
        let out = status(&report);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "PROBLEM: units directory /u has 1 problem(s); running the last good set",
                "  /u/b.toml:3:1: unknown key",
                "",
            ],
            "\n{out}"
        );
        assert!(lines[3].starts_with("UNIT"), "\n{out}");
        // With no units too.
        let out = status(&StatusReport {
            units: vec![],
            problems: vec!["nothing loaded".into()],
            ..Default::default()
        });
        assert_eq!(out, "PROBLEM: nothing loaded\n\nno units\n");
        // None: the table alone.
        let out = status(&StatusReport {
            units: vec![unit("a", UnitState::Running)],
            ..Default::default()
        });
        assert!(out.starts_with("UNIT"), "{out}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(8 << 30), "8.0G");
        assert_eq!(uptime(59_000), "59s");
        assert_eq!(uptime(61_000), "1m01s");
        assert_eq!(uptime(90_000_000), "1d01h");
    }
}
