//! status: what `jarvisctl status --json` costs with 100 running native
//! units next to the same call against a jarvisd with none, and what the
//! 100 units cost jarvisd in memory.
//!
//! Two jarvisd side by side (like the memory group at 50 units): A gets
//! [`UNITS`] native units (`sleep 100000`), B keeps 0. The calls alternate,
//! rotating through five variants per iteration: `jarvisctl status --json`
//! against A and against B (the whole command, as a user runs it), the same
//! request on each socket from this process (`Request::Status`, no client
//! process: what jarvisd itself takes), and `UnitCgroup::stats()` of A's 100
//! cgroups in this process (what jarvisd does per unit for a status).

use jarvis_proto::{Request, Response};

use super::container::request;
use super::*;

/// Running native units on A.
const UNITS: usize = 100;
/// `jarvisctl status --json` median at 100 units.
const TARGET_STATUS_NS: u64 = 5_000_000;
/// jarvisd idle (0 units).
const TARGET_IDLE_RSS_BYTES: u64 = 10_000_000;
/// jarvisd's RSS growth per running native unit.
const TARGET_PER_UNIT_BYTES: u64 = 1_000_000;

const VARIANTS: [(&str, &str); 5] = [
    (
        "`jarvisctl status --json`, A (100 units)",
        "a jarvisctl process: starts, connects, jarvisd answers, it prints the JSON",
    ),
    (
        "`jarvisctl status --json`, B (0 units)",
        "the same against the jarvisd without units: the fixed cost of a call",
    ),
    (
        "`Request::Status` on A's socket, in-process",
        "connect, hello, request, answer, from this process (no client process start)",
    ),
    (
        "`Request::Status` on B's socket, in-process",
        "the same against B",
    ),
    (
        "in-process: `UnitCgroup::stats()` × 100 of A's cgroups",
        "what jarvisd reads per status call for A, done here",
    ),
];

/// The files `UnitCgroup::stats()` reads: the v1 name, else its v2
/// equivalent (whichever the unit's cgroup has, as `stats()` picks them).
const STATS_FILES: [(&str, &str); 5] = [
    ("memory.usage_in_bytes", "memory.current"),
    ("memory.limit_in_bytes", "memory.max"),
    ("cpuacct.usage", "cpu.stat"),
    ("pids.current", "pids.current"),
    ("memory.oom_control", "memory.events"),
];

/// What reading one cgroup file costs, per unit.
struct FileCost {
    /// `HIERARCHY/FILE`, relative to /sys/fs/cgroup.
    path: String,
    read_ns: u64,
    exists_ns: u64,
}

/// Times reading (and stat'ing) each of [`STATS_FILES`] over all units,
/// `reps` times; medians per unit.
fn cgroup_file_costs(parent: &str, units: &[String], reps: usize) -> Vec<FileCost> {
    let mut out = Vec::new();
    let mounts = cgroup_mounts();
    let find = |file: &'static str| {
        mounts
            .iter()
            .find(|m| m.join(parent).join(&units[0]).join(file).exists())
            .map(|m| (m.clone(), file))
    };
    for (v1, v2) in STATS_FILES {
        let Some((mount, file)) = find(v1).or_else(|| find(v2)) else {
            continue;
        };
        let paths: Vec<PathBuf> = units
            .iter()
            .map(|u| mount.join(parent).join(u).join(file))
            .collect();
        let (mut reads, mut stats) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            for p in &paths {
                std::hint::black_box(fs::read_to_string(p).ok());
            }
            reads.push(elapsed_ns(t) / paths.len() as u64);
            let t = Instant::now();
            for p in &paths {
                std::hint::black_box(p.exists());
            }
            stats.push(elapsed_ns(t) / paths.len() as u64);
        }
        let rel = mount
            .strip_prefix("/sys/fs/cgroup")
            .unwrap_or(&mount)
            .join(file);
        out.push(FileCost {
            path: rel.display().to_string(),
            read_ns: summarize(&reads).p50,
            exists_ns: summarize(&stats).p50,
        });
    }
    out
}

fn status_on(socket: &Path) -> Res<usize> {
    match request(socket, &Request::Status { units: vec![] })? {
        Response::Status(r) => Ok(r.units.len()),
        other => Err(format!("status: {other:?}").into()),
    }
}

pub(crate) fn bench_status(quick: bool) -> Res<Section> {
    let calls = if quick { 20 } else { 100 };
    let load_before = super::container::loadavg();
    progress!("status: two jarvisd, A brought to {UNITS} native units, B left with 0 units");
    let mut empty = Daemon::start("status-0", &[])?;
    let mut full = Daemon::start("status-100", &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let idle_empty = ProcMem::of(empty.pid())?;
    let idle_full = ProcMem::of(full.pid())?;
    progress!(
        "status: idle RSS A {} MB, B {} MB",
        mb(idle_full.rss),
        mb(idle_empty.rss)
    );

    let names: Vec<String> = (0..UNITS).map(|i| format!("svc-{i:03}")).collect();
    let up_ns = bring_up(&full, &names, &sleep_unit())?;
    let json_bytes = full.ctl(&["status", "--json"])?.len();
    progress!("status: {UNITS} units up in {} ms; settling", ms(up_ns));
    std::thread::sleep(Duration::from_millis(500));
    let up_full = ProcMem::of(full.pid())?;
    let units_mem = UnitsMem::of(&full, &names)?;
    progress!(
        "status: RSS with {UNITS} units {} MB ({} threads); per unit, its shim and service: Pss median {} MB",
        mb(up_full.rss),
        up_full.threads,
        mb(median_of(&units_mem.per_unit_pss()))
    );

    let cgroups: Vec<UnitCgroup> = names
        .iter()
        .map(|n| UnitCgroup::open(&full.cgroup_parent, n))
        .collect();
    // One untimed call of each first (page cache, first connection).
    drop(full.ctl(&["status", "--json"])?);
    drop(empty.ctl(&["status", "--json"])?);
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); VARIANTS.len()];
    let started = Instant::now();
    for i in 0..calls {
        for k in 0..VARIANTS.len() {
            let v = (i + k) % VARIANTS.len();
            let t = Instant::now();
            match v {
                0 => drop(full.ctl(&["status", "--json"])?),
                1 => drop(empty.ctl(&["status", "--json"])?),
                2 => {
                    let n = status_on(&full.socket)?;
                    if n != UNITS {
                        return Err(format!("A reported {n} units").into());
                    }
                }
                3 => drop(status_on(&empty.socket)?),
                _ => {
                    for cg in &cgroups {
                        std::hint::black_box(cg.stats());
                    }
                }
            }
            lat[v].push(elapsed_ns(t));
        }
    }
    progress!(
        "status: {calls} calls per variant in {:.1} s; medians: A {} ms, B {} ms (jarvisctl), A {} ms, B {} ms (socket), stats×{UNITS} {} ms",
        started.elapsed().as_secs_f64(),
        ms(summarize(&lat[0]).p50),
        ms(summarize(&lat[1]).p50),
        ms(summarize(&lat[2]).p50),
        ms(summarize(&lat[3]).p50),
        ms(summarize(&lat[4]).p50)
    );
    let files = cgroup_file_costs(&full.cgroup_parent, &names, if quick { 5 } else { 20 });
    std::thread::sleep(Duration::from_millis(200));
    let calls_full = ProcMem::of(full.pid())?;
    let calls_empty = ProcMem::of(empty.pid())?;
    let settled = if quick {
        None
    } else {
        Some(settle("status", full.pid(), idle_full.threads)?)
    };
    let left_full = full.stop()?;
    let left_empty = empty.stop()?;
    progress!("status: both jarvisd stopped; A: {}", left_full.describe());
    let load_after = super::container::loadavg();

    let sums: Vec<Summary> = lat.iter().map(|v| summarize(v)).collect();
    let base = sums[1].p50;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## status: `jarvisctl status --json` at {UNITS} native units, and jarvisd's memory per unit\n"
    );
    let _ = writeln!(
        md,
        "Load average (1/5/15 min) when the section began: {load_before}; when it ended: {load_after}.\n"
    );
    let _ = writeln!(
        md,
        "Two jarvisd side by side: A gets {UNITS} native units (`sleep 100000`, memory_max 32M, pids_max 16, \
         restart always; written to its units dir, then `jarvisctl up --wait`, which took {} ms), B keeps 0. \
         {calls} calls per variant, the five variants rotating within each iteration (after one untimed call per daemon); \
         A's `status --json` output is {json_bytes} bytes. Times in ms; ratio = median / B's `jarvisctl` median.\n",
        ms(up_ns)
    );
    let _ = writeln!(
        md,
        "| variant | what is timed | median | p95 | p99 | max | ratio vs B |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for ((name, what), s) in VARIANTS.iter().zip(&sums) {
        let _ = writeln!(
            md,
            "| {name} | {what} | {} | {} | {} | {} | {} |",
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            ratio(s.p50, base)
        );
    }
    let per_unit_ns = sums[2].p50.saturating_sub(sums[3].p50) / UNITS as u64;
    let _ = writeln!(
        md,
        "\njarvisd's own time per unit in a status call (socket A − socket B, / {UNITS}): {:.1} µs; \
         `UnitCgroup::stats()` alone: {:.1} µs per unit.\n",
        per_unit_ns as f64 / 1e3,
        sums[4].p50 as f64 / UNITS as f64 / 1e3
    );

    if !files.is_empty() {
        let _ = writeln!(
            md,
            "Where `stats()` spends it: each file it reads, read (open + read + close) and stat'ed (`Path::exists`, \
             which `stats()` does first to pick the hierarchy) for all {UNITS} units in this process, median of the repetitions, \
             µs per unit:\n"
        );
        let _ = writeln!(md, "| cgroup file | read µs | exists µs |");
        let _ = writeln!(md, "| --- | ---: | ---: |");
        for f in &files {
            let _ = writeln!(
                md,
                "| `{}` | {:.1} | {:.1} |",
                f.path,
                f.read_ns as f64 / 1e3,
                f.exists_ns as f64 / 1e3
            );
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "jarvisd's memory (the jarvisd process; each unit's shim and service are below). VmRSS, VmHWM from /proc/PID/status, \
         Pss from /proc/PID/smaps_rollup; MB = 10^6 bytes.\n"
    );
    let _ = writeln!(
        md,
        "| jarvisd | units | VmRSS MB | RssAnon | RssFile | RssShmem | Pss MB | VmHWM MB | threads |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut rows = vec![
        ("A, idle after start".to_string(), 0, idle_full),
        ("B, idle after start".to_string(), 0, idle_empty),
        (
            "A, 0.5 s after `up --wait` (all running)".to_string(),
            UNITS,
            up_full,
        ),
        ("A, after the status calls".to_string(), UNITS, calls_full),
        ("B, after the status calls".to_string(), 0, calls_empty),
    ];
    if let Some((m, d)) = settled {
        rows.push((
            format!(
                "A, once idle blocking threads exited ({:.1} s later)",
                d.as_secs_f64()
            ),
            UNITS,
            m,
        ));
    }
    for (what, n, m) in &rows {
        let _ = writeln!(
            md,
            "| {what} | {n} | {} | {} | {} | {} | {} | {} | {} |",
            mb(m.rss),
            mb(m.anon),
            mb(m.file),
            mb(m.shmem),
            mb(m.pss),
            mb(m.hwm),
            m.threads
        );
    }
    let idle = idle_full.rss.max(idle_empty.rss);
    let loaded = [Some(up_full), Some(calls_full), settled.map(|s| s.0)]
        .iter()
        .flatten()
        .map(|m| m.rss)
        .max()
        .unwrap_or(0);
    let per_unit = loaded.saturating_sub(idle_full.rss) / UNITS as u64;
    let per_unit_settled = settled.map(|(m, _)| m.rss.saturating_sub(idle_full.rss) / UNITS as u64);
    // What each running unit costs in all: jarvisd's growth per unit, and
    // the unit's run outside jarvisd, its shim and its process (Pss, so
    // the pages they share are split among them).
    let unit_pss = median_of(&units_mem.per_unit_pss());
    let shim_pss = median_of(&units_mem.shims.iter().map(|m| m.pss).collect::<Vec<_>>());
    let service_pss = median_of(&units_mem.services.iter().map(|m| m.pss).collect::<Vec<_>>());
    let per_unit_all = per_unit + unit_pss;
    let _ = writeln!(
        md,
        "\nPer running unit: {:.1} kB of jarvisd VmRSS (highest reading with {UNITS} units − A idle, / {UNITS}){}. \
         After SIGTERM: A: {}; B: {}.",
        per_unit as f64 / 1e3,
        per_unit_settled
            .map(|b| format!("; {:.1} kB once the blocking threads exited", b as f64 / 1e3))
            .unwrap_or_default(),
        left_full.describe(),
        left_empty.describe()
    );
    let _ = writeln!(
        md,
        "\nOutside jarvisd, every run of a native unit is its process and its shim (`jarvisd __shim`, the process's parent). \
         Pss per unit, median of the {UNITS}: shim {} MB + service {} MB = {} MB; with jarvisd's {:.1} kB per unit, \
         {} MB per running native unit in all.",
        mb(shim_pss),
        mb(service_pss),
        mb(unit_pss),
        per_unit as f64 / 1e3,
        mb(per_unit_all)
    );

    let mut variants = serde_json::Map::new();
    for (((name, what), s), v) in VARIANTS.iter().zip(&sums).zip(&lat) {
        variants.insert(
            name.to_string(),
            json!({ "what": what, "summary": s.json(), "ratio_p50_vs_b": s.p50 as f64 / base.max(1) as f64, "samples_ns": v }),
        );
    }
    Ok(Section {
        markdown: md,
        json: json!({
            "units": UNITS,
            "calls": calls,
            "up_wait_ns": up_ns,
            "status_json_bytes": json_bytes,
            "loadavg_before": load_before, "loadavg_after": load_after,
            "variants": variants,
            "memory": {
                "idle": { "a": idle_full.json(), "b": idle_empty.json() },
                "units_running": up_full.json(),
                "after_calls": { "a": calls_full.json(), "b": calls_empty.json() },
                "settled": settled.map(|(m, d)| json!({ "mem": m.json(), "after_s": d.as_secs_f64() })),
                "per_unit_rss_bytes": per_unit,
                "per_unit_rss_bytes_settled": per_unit_settled,
                "units": units_mem.json(),
                "per_unit_shim_and_service_pss_bytes_median": unit_pss,
                "per_unit_all_bytes": per_unit_all,
            },
            "stats_files": files.iter().map(|f| json!({ "file": f.path, "read_ns_per_unit": f.read_ns, "exists_ns_per_unit": f.exists_ns })).collect::<Vec<_>>(),
            "leftovers": { "a": left_full.json(), "b": left_empty.json() },
        }),
        targets: vec![
            Target {
                what: "`jarvisctl status --json` median at 100 native units",
                limit: format!("< {} ms", ms(TARGET_STATUS_NS)),
                measured: format!(
                    "{} ms (0 units: {} ms; in jarvisd: {} ms)",
                    ms(sums[0].p50),
                    ms(sums[1].p50),
                    ms(sums[2].p50)
                ),
                pass: sums[0].p50 < TARGET_STATUS_NS,
            },
            Target {
                what: "jarvisd RSS idle (0 units), status group",
                limit: format!("< {} MB", mb(TARGET_IDLE_RSS_BYTES)),
                measured: format!("{} MB", mb(idle)),
                pass: idle < TARGET_IDLE_RSS_BYTES,
            },
            Target {
                what: "memory per running native unit (at 100): jarvisd's RSS growth per unit + the unit's shim and service Pss (median)",
                limit: format!("< {} MB", mb(TARGET_PER_UNIT_BYTES)),
                measured: format!(
                    "{:.0} kB ({:.1} kB jarvisd + {:.0} kB shim + {:.0} kB service)",
                    per_unit_all as f64 / 1e3,
                    per_unit as f64 / 1e3,
                    shim_pss as f64 / 1e3,
                    service_pss as f64 / 1e3
                ),
                pass: per_unit_all < TARGET_PER_UNIT_BYTES,
            },
        ],
    })
}
