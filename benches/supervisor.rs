//! Supervisor benchmarks: what jarvisd costs next to doing without it.
//!
//! `cargo bench --bench supervisor [-- spawn|restart|memory|container|compose|status|network|load|metrics|all] [--quick]`
//! (must run as root: it creates cgroups). Every comparison is measured side
//! by side with its peer in the same run, alternating, so machine noise hits
//! both sides alike. Progress goes to stderr, a markdown report to stdout,
//! the raw samples to `target/bench/supervisor.json` and each group's target
//! rows (pass/miss, decided here from the samples) to
//! `benches/results/targets-<group>.md`. The groups share `support/mod.rs`
//! and the statistics of `jarvis-benchstats`. See BENCHMARKS.md.
//!
//! - spawn: a native unit into a limited cgroup (`UnitCgroup::create` +
//!   `jarvis_native::spawn` through the jarvisd launcher + wait) vs a bare
//!   fork+exec of the same `/bin/true`;
//! - restart: crash-to-restart latency of a real jarvisd with `delay = "0s"`
//!   vs a bare respawn loop in this process;
//! - memory: jarvisd's RSS/Pss idle, with 50 running units and after 100
//!   `jarvisctl status --json` calls, and the latency of those calls next to
//!   the same calls against a jarvisd with no units;
//! - container: a container unit's start vs `runc run` and `docker run`,
//!   and the memory each running container adds (jarvis's shim vs docker's
//!   containerd-shim), on one busybox rootfs (`container/mod.rs`);
//! - compose: `jarvisctl up --wait` / `down` of 20 units (10 native, 10
//!   container) vs `docker-compose up -d` / `down -t 1` of 20 services, on the
//!   same rootfs (`compose/mod.rs`);
//! - status: `jarvisctl status --json` latency with 100 native units vs 0,
//!   and jarvisd's RSS idle and per unit at 100 units (`status/mod.rs`);
//! - network: bridged container start, published-port round trips and 20
//!   bridged services on 3 networks vs docker on its default bridge, in a
//!   network namespace made for the group (`network/mod.rs`);
//! - load: `status` latency and jarvisd's RSS with 200 units, 1,000
//!   concurrent status clients and `logs -f` on 100 units (`load/mod.rs`);
//! - metrics: `GET /metrics` latency at 100 units and jarvisd's RSS with
//!   the `--http` listener open vs without it (`metrics/mod.rs`).
//!
//! This binary is also the "crasher" the restart benchmark supervises: run
//! with [`CRASHER_ARG`] first, it records its start and exit times
//! (CLOCK_MONOTONIC) and exits 1.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use jarvis_native::{LaunchSpec, UnitCgroup};
use jarvis_unit::Resources;
use serde_json::{json, Value};

const JARVISD: &str = env!("CARGO_BIN_EXE_jarvisd");
const JARVISCTL: &str = env!("CARGO_BIN_EXE_jarvisctl");

/// First argument that turns this binary into the crasher.
const CRASHER_ARG: &str = "__jarvis_bench_crasher";
/// The file the crasher appends `start_ns exit_ns` to.
const CRASH_LOG_ENV: &str = "JARVIS_BENCH_CRASH_LOG";
/// How long the crasher lives before it exits 1.
const CRASHER_RUN: Duration = Duration::from_millis(2);
/// The environment both sides give the crasher (jarvisd's base environment).
const UNIT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Targets, reported as pass/miss, never asserted.
const TARGET_RESTART_P50_NS: u64 = 2_000_000;
/// A native unit's spawn into a new cgroup, over a bare fork+exec (medians).
const TARGET_SPAWN_OVER_BARE_NS: u64 = 1_000_000;
const TARGET_IDLE_RSS_BYTES: u64 = 10_000_000;
const TARGET_50_UNITS_RSS_BYTES: u64 = 20_000_000;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

macro_rules! progress {
    ($($arg:tt)*) => {{
        eprintln!("[bench] {}", format_args!($($arg)*));
    }};
}

mod compose;
mod container;
mod load;
mod metrics;
mod network;
mod status;
mod support;

use support::*;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(CRASHER_ARG.as_ref()) {
        crasher();
    }
    let Some(opts) = Opts::parse(std::env::args().skip(1)) else {
        // `cargo test --benches` runs this without `--bench`: nothing to do.
        eprintln!(
            "supervisor bench: run it with `cargo bench --bench supervisor [-- spawn|restart|memory|container|compose|status|network|load|metrics|all] [--quick]`"
        );
        return ExitCode::SUCCESS;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("supervisor bench: must run as root (it creates cgroups and starts jarvisd)");
        return ExitCode::FAILURE;
    }
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisor bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which benchmarks to run.
struct Opts {
    quick: bool,
    spawn: bool,
    restart: bool,
    memory: bool,
    container: bool,
    compose: bool,
    status: bool,
    network: bool,
    load: bool,
    metrics: bool,
}

impl Opts {
    /// `None` when there is nothing to do (run by `cargo test`: no
    /// `--bench`, no selection). Unknown flags are ignored.
    fn parse(args: impl Iterator<Item = String>) -> Option<Opts> {
        let mut o = Opts {
            quick: false,
            spawn: false,
            restart: false,
            memory: false,
            container: false,
            compose: false,
            status: false,
            network: false,
            load: false,
            metrics: false,
        };
        let mut bench_mode = false;
        for a in args {
            match a.as_str() {
                "--bench" => bench_mode = true,
                "--quick" => o.quick = true,
                "spawn" => o.spawn = true,
                "restart" => o.restart = true,
                "memory" => o.memory = true,
                "container" => o.container = true,
                "compose" => o.compose = true,
                "status" => o.status = true,
                "network" => o.network = true,
                "load" => o.load = true,
                "metrics" => o.metrics = true,
                "all" => o.select_all(),
                other => progress!("ignoring argument {other:?}"),
            }
        }
        let selected = o.spawn
            || o.restart
            || o.memory
            || o.container
            || o.compose
            || o.status
            || o.network
            || o.load
            || o.metrics;
        if !bench_mode && !selected && !o.quick {
            return None;
        }
        if !selected {
            o.select_all();
        }
        Some(o)
    }

    fn select_all(&mut self) {
        self.spawn = true;
        self.restart = true;
        self.memory = true;
        self.container = true;
        self.compose = true;
        self.status = true;
        self.network = true;
        self.load = true;
        self.metrics = true;
    }
}

/// One benchmark's results: markdown for the report, raw data for the JSON.
struct Section {
    markdown: String,
    json: Value,
    targets: Vec<Target>,
}

struct Target {
    what: &'static str,
    limit: String,
    measured: String,
    pass: bool,
}

fn run(opts: &Opts) -> Res<()> {
    let started = Instant::now();
    let machine = machine_info();
    progress!(
        "machine: {} cores, kernel {}, cgroups {}{}",
        machine["cores"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["cgroup_mode"].as_str().unwrap_or("?"),
        if opts.quick { " (--quick)" } else { "" }
    );
    let mut sections: Vec<(&str, Section)> = Vec::new();
    if opts.spawn {
        sections.push(("spawn", bench_spawn(opts.quick)?));
    }
    if opts.restart {
        sections.push(("restart", bench_restart(opts.quick)?));
    }
    if opts.memory {
        sections.push(("memory", bench_memory(opts.quick)?));
    }
    if opts.container {
        sections.push(("container", container::bench_container(opts.quick)?));
    }
    if opts.compose {
        sections.push(("compose", compose::bench_compose(opts.quick)?));
    }
    if opts.status {
        sections.push(("status", status::bench_status(opts.quick)?));
    }
    if opts.network {
        sections.push(("network", network::bench_network(opts.quick)?));
    }
    if opts.load {
        sections.push(("load", load::bench_load(opts.quick)?));
    }
    if opts.metrics {
        sections.push(("metrics", metrics::bench_metrics(opts.quick)?));
    }

    let mut md = String::new();
    let _ = writeln!(md, "# jarvis supervisor benchmarks\n");
    let _ = writeln!(
        md,
        "Machine: {} cores ({}), kernel {}, cgroups {}, {}{}.\n",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["cgroup_mode"].as_str().unwrap_or("?"),
        machine["date"].as_str().unwrap_or("?"),
        if opts.quick { "; --quick run" } else { "" }
    );
    let mut targets = Vec::new();
    let mut json_sections = serde_json::Map::new();
    let results = results_dir(opts.quick);
    fs::create_dir_all(&results)?;
    for (name, s) in sections {
        md.push_str(&s.markdown);
        md.push('\n');
        json_sections.insert(name.to_string(), s.json);
        if !s.targets.is_empty() {
            let file = results.join(format!("targets-{name}.md"));
            fs::write(&file, targets_file(name, &machine, opts.quick, &s.targets))?;
            progress!("{name}: target rows in {}", file.display());
        }
        targets.extend(s.targets);
    }
    if !targets.is_empty() {
        let _ = writeln!(md, "## Targets\n");
        md.push_str(&targets_table(&targets));
    }
    print!("{md}");

    let report = json!({
        "machine": machine,
        "quick": opts.quick,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "benchmarks": json_sections,
        "targets": targets.iter().map(|t| json!({
            "target": t.what, "limit": t.limit, "measured": t.measured, "pass": t.pass,
        })).collect::<Vec<_>>(),
    });
    let out = target_dir().join("bench").join("supervisor.json");
    fs::create_dir_all(out.parent().expect("has a parent"))?;
    fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    progress!(
        "done in {:.1} s; raw results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

impl Target {
    /// Its row of the targets table: computed here from the samples, the
    /// only place a pass or a miss is decided.
    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.what,
            self.limit,
            self.measured,
            if self.pass { "pass" } else { "**miss**" }
        )
    }
}

fn targets_table(targets: &[Target]) -> String {
    let mut t = String::from("| target | limit | measured | result |\n| --- | --- | --- | --- |\n");
    for target in targets {
        t.push_str(&target.row());
        t.push('\n');
    }
    t
}

/// Where the target rows of each group go: `benches/results/`, which
/// BENCHMARKS.md quotes, for a full run; the target directory for a
/// `--quick` one, which must not replace them.
fn results_dir(quick: bool) -> PathBuf {
    if quick {
        target_dir().join("bench")
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results"))
    }
}

/// `benches/results/targets-<group>.md`: the group's target rows as this
/// run computed them, with the machine and the date.
fn targets_file(group: &str, machine: &Value, quick: bool, targets: &[Target]) -> String {
    format!(
        "<!-- Written by `cargo bench --bench supervisor -- {group}`{}; not edited by hand. -->\n\
         Run {} on {} cores ({}), kernel {}, cgroups {}.\n\n{}",
        if quick { " --quick" } else { "" },
        machine["date"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["cgroup_mode"].as_str().unwrap_or("?"),
        targets_table(targets)
    )
}

/// The cargo target directory: this binary is `<target>/<profile>/deps/supervisor-<hash>`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|t| t.join("CACHEDIR.TAG").exists())
        .unwrap_or_else(|| PathBuf::from("target"))
}

// ---------------------------------------------------------------------------
// Formatting

/// Nanoseconds as milliseconds with microsecond precision.
fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}×", a as f64 / b as f64)
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn elapsed_ns(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------
// 1. spawn

const SPAWN_VARIANTS: [(&str, &str); 4] = [
    (
        "bare",
        "`Command::new(\"/bin/true\").status()` (fork+exec+wait)",
    ),
    (
        "launcher",
        "`jarvis_native::spawn` (a vfork-style clone; the launcher's work in the child, then exec), no cgroup",
    ),
    (
        "cgroup-new",
        "`UnitCgroup::create` (new, 64M/64 pids) + `jarvis_native::spawn` + wait",
    ),
    (
        "cgroup-reuse",
        "`UnitCgroup::create` on an existing cgroup (restart path) + `jarvis_native::spawn` + wait",
    ),
];

fn true_spec(cgroup_procs: Vec<PathBuf>) -> LaunchSpec {
    LaunchSpec {
        argv: vec!["/bin/true".into()],
        env: vec![("PATH".into(), UNIT_PATH.into())],
        user: None,
        group: None,
        supplementary_groups: vec![],
        working_dir: None,
        capabilities: vec![],
        no_new_privileges: true,
        cgroup_procs,
    }
}

async fn launch_and_wait(spec: &LaunchSpec) -> Res<()> {
    let mut s = jarvis_native::spawn(Path::new(JARVISD), spec).await?;
    let st = s.wait().await?;
    if !st.success() {
        return Err(format!("/bin/true through the launcher: {st}").into());
    }
    Ok(())
}

fn bench_spawn(quick: bool) -> Res<Section> {
    let (iters, warmup) = if quick { (30, 3) } else { (300, 20) };
    progress!(
        "spawn: {iters} alternating iterations of {} variants (+{warmup} warm-up)",
        SPAWN_VARIANTS.len()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let parent = format!("jarvis-bench-{}-spawn", std::process::id());
    let _guard = CgroupParentGuard(parent.clone());
    let limits = Resources {
        memory_max: Some(64 << 20),
        pids_max: Some(64),
        ..Resources::default()
    };
    UnitCgroup::create(&parent, "reuse", &limits)?;

    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); SPAWN_VARIANTS.len()];
    let mut cleanup = Vec::new();
    let started = Instant::now();
    for i in 0..warmup + iters {
        // Rotate the order so no variant always runs first.
        for k in 0..SPAWN_VARIANTS.len() {
            let v = (i + k) % SPAWN_VARIANTS.len();
            let ns = match v {
                0 => {
                    let t = Instant::now();
                    let st = Command::new("/bin/true")
                        .env_clear()
                        .env("PATH", UNIT_PATH)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()?;
                    let ns = elapsed_ns(t);
                    if !st.success() {
                        return Err(format!("/bin/true: {st}").into());
                    }
                    ns
                }
                1 => {
                    let t = Instant::now();
                    rt.block_on(launch_and_wait(&true_spec(vec![])))?;
                    elapsed_ns(t)
                }
                2 => {
                    let t = Instant::now();
                    let cg = UnitCgroup::create(&parent, &format!("new-{i}"), &limits)?;
                    rt.block_on(launch_and_wait(&true_spec(cg.procs_files())))?;
                    let ns = elapsed_ns(t);
                    let t = Instant::now();
                    cg.kill_all()?;
                    cg.remove()?;
                    if i >= warmup {
                        cleanup.push(elapsed_ns(t));
                    }
                    ns
                }
                _ => {
                    let t = Instant::now();
                    let cg = UnitCgroup::create(&parent, "reuse", &limits)?;
                    rt.block_on(launch_and_wait(&true_spec(cg.procs_files())))?;
                    elapsed_ns(t)
                }
            };
            if i >= warmup {
                samples[v].push(ns);
            }
        }
        let done = i + 1;
        if done > warmup && ((done - warmup) % 50 == 0 || done == warmup + iters) {
            let s: Vec<String> = SPAWN_VARIANTS
                .iter()
                .zip(&samples)
                .map(|((name, _), v)| format!("{name} {} ms", ms(summarize(v).p50)))
                .collect();
            progress!(
                "spawn: {}/{iters} ({:.1} s) medians so far: {}",
                done.saturating_sub(warmup),
                started.elapsed().as_secs_f64(),
                s.join(", ")
            );
        }
    }
    let reuse = UnitCgroup::open(&parent, "reuse");
    reuse.kill_all()?;
    reuse.remove()?;

    let sums: Vec<Summary> = samples.iter().map(|v| summarize(v)).collect();
    let bare = sums[0];
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## spawn: a native unit vs a bare fork+exec of `/bin/true`\n"
    );
    let _ = writeln!(
        md,
        "{iters} iterations (after {warmup} warm-up), the four variants alternating in rotating order; times in ms.\n"
    );
    let _ = writeln!(
        md,
        "| variant | what is timed | median | p95 | p99 | max | median ratio vs bare |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for ((name, what), s) in SPAWN_VARIANTS.iter().zip(&sums) {
        let _ = writeln!(
            md,
            "| {name} | {what} | {} | {} | {} | {} | {} |",
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            ratio(s.p50, bare.p50)
        );
    }
    let c = summarize(&cleanup);
    let _ = writeln!(
        md,
        "| (cleanup) | `kill_all` + `remove` of each new cgroup, after the cgroup-new run (not in its time) | {} | {} | {} | {} | - |",
        ms(c.p50),
        ms(c.p95),
        ms(c.p99),
        ms(c.max)
    );

    let mut variants = serde_json::Map::new();
    for (((name, what), s), v) in SPAWN_VARIANTS.iter().zip(&sums).zip(&samples) {
        variants.insert(
            name.to_string(),
            json!({ "what": what, "summary": s.json(), "ratio_p50_vs_bare": s.p50 as f64 / bare.p50.max(1) as f64, "samples_ns": v }),
        );
    }
    variants.insert(
        "cleanup".into(),
        json!({ "what": "kill_all + remove of each cgroup-new cgroup", "summary": c.json(), "samples_ns": cleanup }),
    );
    let over = sums[2].p50.saturating_sub(bare.p50);
    Ok(Section {
        markdown: md,
        json: json!({ "iterations": iters, "warmup": warmup, "program": "/bin/true", "variants": variants }),
        targets: vec![Target {
            what: "native spawn into a new cgroup over a bare fork+exec (medians)",
            limit: format!("≤ {} ms", ms(TARGET_SPAWN_OVER_BARE_NS)),
            measured: format!(
                "{} ms ({} vs {} ms)",
                ms(over),
                ms(sums[2].p50),
                ms(bare.p50)
            ),
            pass: over <= TARGET_SPAWN_OVER_BARE_NS,
        }],
    })
}

// ---------------------------------------------------------------------------
// 2. restart

/// The crasher: records when it started (first thing in main), lives
/// [`CRASHER_RUN`], records when it exits and exits 1.
fn crasher() -> ! {
    let start = monotonic_ns();
    let path = std::env::var_os(CRASH_LOG_ENV);
    std::thread::sleep(CRASHER_RUN);
    let file = path.and_then(|p| fs::OpenOptions::new().append(true).open(p).ok());
    let exit = monotonic_ns();
    if let Some(mut f) = file {
        // One write(2) of one short line: appends never interleave.
        let _ = f.write_all(format!("{start} {exit}\n").as_bytes());
    }
    std::process::exit(1)
}

/// `(start_ns, exit_ns)` per crasher run, in order.
fn crash_records(path: &Path) -> Res<Vec<(u64, u64)>> {
    let text = fs::read_to_string(path)?;
    text.lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').ok_or("bad crash record")?;
            Ok((a.parse()?, b.parse()?))
        })
        .collect()
}

/// Exit of run i to start of run i+1, for at most `max` consecutive pairs.
fn restart_latencies(records: &[(u64, u64)], max: usize) -> Vec<u64> {
    records
        .windows(2)
        .take(max)
        .map(|w| w[1].0.saturating_sub(w[0].1))
        .collect()
}

fn bench_restart(quick: bool) -> Res<Section> {
    let (blocks, block) = if quick { (2, 50) } else { (10, 100) };
    let total = blocks * block;
    progress!(
        "restart: {total} crash-to-restart latencies per side, {blocks} alternating blocks of {block}"
    );
    let exe = std::env::current_exe()?;
    let tmp = tempfile::Builder::new()
        .prefix("jarvis-bench-restart-")
        .tempdir()?;
    let jd_log = tmp.path().join("jarvisd-crashes.log");
    let bare_log = tmp.path().join("bare-crashes.log");
    fs::write(&jd_log, "")?;
    fs::write(&bare_log, "")?;
    let unit = format!(
        r#"description = "bench: records its start and exit, crashes after {run_ms} ms"

[native]
command = [{exe:?}, {arg:?}]

[env]
{env} = {log:?}

[resources]
memory_max = "64M"
pids_max = 64

[restart]
policy = "always"
delay = "0s"
burst = 100000
interval = "1s"
"#,
        run_ms = CRASHER_RUN.as_millis(),
        exe = exe.display().to_string(),
        arg = CRASHER_ARG,
        env = CRASH_LOG_ENV,
        log = jd_log.display().to_string(),
    );
    let mut d = Daemon::start("restart", &[("crasher".into(), unit)])?;

    let mut jd_lat = Vec::new();
    let mut bare_lat = Vec::new();
    let mut restarts = 0;
    let started = Instant::now();
    for b in 0..blocks {
        // jarvisd: let it crash-loop until `block` restarts happened, then stop it.
        let base = crash_records(&jd_log)?.len();
        if b > 0 {
            d.ctl(&["start", "crasher"])?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while crash_records(&jd_log)?.len() < base + block + 1 {
            if Instant::now() > deadline {
                return Err(format!(
                    "jarvisd did not restart the crasher {block} times within 60 s; status:\n{}\njarvisd log:\n{}",
                    d.ctl(&["status"]).unwrap_or_default(),
                    d.log_tail()
                )
                .into());
            }
            d.check_alive()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        d.ctl(&["stop", "crasher"])?;
        // The counter starts again at each `start`: read it per block.
        let status: Value = serde_json::from_str(&d.ctl(&["status", "--json"])?)?;
        restarts += status["units"][0]["restarts"].as_u64().unwrap_or(0);
        let recs = crash_records(&jd_log)?;
        let jd_block = restart_latencies(&recs[base..], block);

        // The floor: the same crasher respawned by a bare loop right here.
        let base = crash_records(&bare_log)?.len();
        for _ in 0..=block {
            let st = Command::new(&exe)
                .arg(CRASHER_ARG)
                .env_clear()
                .env("PATH", UNIT_PATH)
                .env("HOME", "/root")
                .env("USER", "root")
                .env("LOGNAME", "root")
                .env("JARVIS_UNIT", "crasher")
                .env(CRASH_LOG_ENV, &bare_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if st.code() != Some(1) {
                return Err(format!("crasher: {st}").into());
            }
        }
        let recs = crash_records(&bare_log)?;
        let bare_block = restart_latencies(&recs[base..], block);
        progress!(
            "restart: block {}/{blocks} ({:.1} s): jarvisd p50 {} ms, bare p50 {} ms",
            b + 1,
            started.elapsed().as_secs_f64(),
            ms(summarize(&jd_block).p50),
            ms(summarize(&bare_block).p50)
        );
        jd_lat.extend(jd_block);
        bare_lat.extend(bare_block);
    }
    let left = d.stop()?;
    progress!("restart: jarvisd stopped; {}", left.describe());

    let j = summarize(&jd_lat);
    let bare = summarize(&bare_lat);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## restart: crash-to-restart latency, jarvisd (`delay = \"0s\"`) vs a bare respawn loop\n"
    );
    let _ = writeln!(
        md,
        "Latency = exit of run i → start of run i+1 (CLOCK_MONOTONIC, taken by the crasher itself; the crasher lives {} ms, exits 1). \
         {blocks} alternating blocks of {block} crashes per side; times in ms.\n",
        CRASHER_RUN.as_millis()
    );
    let _ = writeln!(
        md,
        "| side | crashes | p50 | p95 | p99 | max | p50 ratio vs bare |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, s) in [
        ("jarvisd (policy always, delay 0s, 64M/64 pids cgroup)", j),
        ("bare loop (`Command::status()`, repeat)", bare),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            s.n,
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            ratio(s.p50, bare.p50)
        );
    }
    let _ = writeln!(
        md,
        "\njarvisd counted {restarts} automatic restarts in all (a block runs a little past its {block} measured crashes \
         until `jarvisctl stop` lands); after SIGTERM: {}.",
        left.describe()
    );
    Ok(Section {
        markdown: md,
        json: json!({
            "blocks": blocks, "block": block, "crasher_run_ms": CRASHER_RUN.as_millis() as u64,
            "jarvisd": { "summary": j.json(), "samples_ns": jd_lat, "restarts_counted": restarts },
            "bare": { "summary": bare.json(), "samples_ns": bare_lat },
            "ratio_p50": j.p50 as f64 / bare.p50.max(1) as f64,
            "leftovers": left.json(),
        }),
        targets: vec![Target {
            what: "restart p50 (crash → restarted, delay 0s)",
            limit: format!("≤ {} ms", ms(TARGET_RESTART_P50_NS)),
            measured: format!("{} ms", ms(j.p50)),
            pass: j.p50 <= TARGET_RESTART_P50_NS,
        }],
    })
}

// ---------------------------------------------------------------------------
// 3. memory

fn bench_memory(quick: bool) -> Res<Section> {
    const UNITS: usize = 50;
    let calls = if quick { 20 } else { 100 };
    progress!("memory: two jarvisd, A brought to {UNITS} units, B left with 0 units");
    let mut empty = Daemon::start("mem-0", &[])?;
    let mut full = Daemon::start("mem-50", &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let idle_empty = ProcMem::of(empty.pid())?;
    let idle_full = ProcMem::of(full.pid())?;
    progress!(
        "memory: idle RSS A {} MB, B {} MB",
        mb(idle_full.rss),
        mb(idle_empty.rss)
    );

    let names: Vec<String> = (0..UNITS).map(|i| format!("svc-{i:02}")).collect();
    let up_ns = bring_up(&full, &names, &sleep_unit())?;
    progress!("memory: {UNITS} units up in {} ms; settling", ms(up_ns));
    std::thread::sleep(Duration::from_millis(500));
    let up_full = ProcMem::of(full.pid())?;
    let units_mem = UnitsMem::of(&full, &names)?;
    progress!(
        "memory: RSS with {UNITS} units {} MB ({} threads)",
        mb(up_full.rss),
        up_full.threads
    );

    // `status --json` against 50 units and against 0 units, plus what the
    // daemon does per call for 50 units (`UnitCgroup::stats()` each),
    // measured here in-process; rotating order.
    let cgroups: Vec<UnitCgroup> = names
        .iter()
        .map(|n| UnitCgroup::open(&full.cgroup_parent, n))
        .collect();
    let mut lat: [Vec<u64>; 3] = Default::default();
    for i in 0..calls {
        for k in 0..3 {
            let v = (i + k) % 3;
            let t = Instant::now();
            match v {
                0 => drop(full.ctl(&["status", "--json"])?),
                1 => drop(empty.ctl(&["status", "--json"])?),
                _ => {
                    for cg in &cgroups {
                        std::hint::black_box(cg.stats());
                    }
                }
            }
            lat[v].push(elapsed_ns(t));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let calls_full = ProcMem::of(full.pid())?;
    let calls_empty = ProcMem::of(empty.pid())?;
    progress!(
        "memory: after {calls} status calls RSS A {} MB, B {} MB",
        mb(calls_full.rss),
        mb(calls_empty.rss)
    );

    // tokio keeps idle blocking-pool threads (one per concurrent cgroup
    // setup during `up`) for 10 s: the steady state is after they are gone.
    let settled = if quick {
        None
    } else {
        Some(settle("memory", full.pid(), idle_full.threads)?.0)
    };
    let left_full = full.stop()?;
    let left_empty = empty.stop()?;
    progress!("memory: both jarvisd stopped; A: {}", left_full.describe());

    let [sf, se, ss] = [summarize(&lat[0]), summarize(&lat[1]), summarize(&lat[2])];
    let mut md = String::new();
    let _ = writeln!(md, "## memory: jarvisd's own footprint\n");
    let _ = writeln!(
        md,
        "Two jarvisd side by side: A gets {UNITS} native units (`sleep 100000`, memory_max 32M, pids_max 16), B keeps 0. \
         VmRSS and VmHWM from /proc/PID/status, Pss from /proc/PID/smaps_rollup, of the jarvisd process \
         (each unit's shim and process are counted after the table). MB = 10^6 bytes.\n"
    );
    let _ = writeln!(
        md,
        "| jarvisd | units | VmRSS MB | Pss MB | VmHWM MB | threads |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let mut rows = vec![
        ("A, idle after start", 0, idle_full),
        ("B, idle after start", 0, idle_empty),
        ("A, 0.5 s after `up --wait` (all running)", UNITS, up_full),
        ("A, after the status calls", UNITS, calls_full),
        ("B, after the status calls", 0, calls_empty),
    ];
    if let Some(m) = settled {
        rows.push(("A, once idle blocking threads exited", UNITS, m));
    }
    for (what, n, m) in rows {
        let _ = writeln!(
            md,
            "| {what} | {n} | {} | {} | {} | {} |",
            mb(m.rss),
            mb(m.pss),
            mb(m.hwm),
            m.threads
        );
    }
    let per_unit = up_full.rss.saturating_sub(idle_full.rss) / UNITS as u64;
    let shim_pss = median_of(&units_mem.shims.iter().map(|m| m.pss).collect::<Vec<_>>());
    let service_pss = median_of(&units_mem.services.iter().map(|m| m.pss).collect::<Vec<_>>());
    let _ = writeln!(
        md,
        "\nAbout {:.0} kB of jarvisd RSS per running unit (after `up`, threads included); `up --wait` brought the {UNITS} units up in {} ms. \
         Outside jarvisd each run is the unit's process and its shim (its parent): Pss per unit, median, shim {} MB + service {} MB = {} MB.\n",
        per_unit as f64 / 1e3,
        ms(up_ns),
        mb(shim_pss),
        mb(service_pss),
        mb(median_of(&units_mem.per_unit_pss()))
    );
    let _ = writeln!(
        md,
        "`jarvisctl status --json` latency (the whole command: jarvisctl starts, connects, jarvisd answers, jarvisctl prints), \
         {calls} calls per daemon, rotating with the in-process row; times in ms.\n"
    );
    let _ = writeln!(
        md,
        "| what | median | p95 | p99 | max | median ratio vs B |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for (what, s) in [
        ("`status --json`, A (50 units)", sf),
        ("`status --json`, B (0 units)", se),
        (
            "in-process: `UnitCgroup::stats()` × 50 (jarvisd's per-call work for A)",
            ss,
        ),
    ] {
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {} | {} | {} |",
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            ratio(s.p50, se.p50)
        );
    }
    let _ = writeln!(
        md,
        "\nAfter SIGTERM: A: {}; B: {}.",
        left_full.describe(),
        left_empty.describe()
    );

    let idle = idle_full.rss.max(idle_empty.rss);
    let loaded = [Some(up_full), Some(calls_full), settled]
        .iter()
        .flatten()
        .map(|m| m.rss)
        .max()
        .unwrap_or(0);
    Ok(Section {
        markdown: md,
        json: json!({
            "units": UNITS,
            "status_calls": calls,
            "up_wait_ns": up_ns,
            "idle": { "a": idle_full.json(), "b": idle_empty.json() },
            "units_running": up_full.json(),
            "units": units_mem.json(),
            "after_status_calls": { "a": calls_full.json(), "b": calls_empty.json() },
            "settled": settled.map(|m| m.json()),
            "status_latency": {
                "units_50": { "summary": sf.json(), "samples_ns": lat[0] },
                "units_0": { "summary": se.json(), "samples_ns": lat[1] },
                "ratio_p50": sf.p50 as f64 / se.p50.max(1) as f64,
            },
            "stats_50_in_process": { "summary": ss.json(), "samples_ns": lat[2] },
            "leftovers": { "a": left_full.json(), "b": left_empty.json() },
        }),
        targets: vec![
            Target {
                what: "jarvisd RSS idle (0 units)",
                limit: format!("< {} MB", mb(TARGET_IDLE_RSS_BYTES)),
                measured: format!("{} MB", mb(idle)),
                pass: idle < TARGET_IDLE_RSS_BYTES,
            },
            Target {
                what: "jarvisd RSS with 50 native units (highest reading)",
                limit: format!("< {} MB", mb(TARGET_50_UNITS_RSS_BYTES)),
                measured: format!("{} MB", mb(loaded)),
                pass: loaded < TARGET_50_UNITS_RSS_BYTES,
            },
        ],
    })
}

// ---------------------------------------------------------------------------
// The machine

fn machine_info() -> Value {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            Some(
                l.strip_prefix("model name")?
                    .split_once(':')?
                    .1
                    .trim()
                    .to_string(),
            )
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mountinfo = read("/proc/self/mountinfo");
    let fstypes: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split_once(" - ")?.1.split(' ').next())
        .collect();
    let (v1, v2) = (fstypes.contains(&"cgroup"), fstypes.contains(&"cgroup2"));
    let mode = match (v1, v2) {
        (true, true) => "v1/v2 hybrid",
        (true, false) => "v1",
        (false, true) => "v2",
        (false, false) => "none",
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cgroup_mode": mode,
        "date": date,
        "jarvisd": JARVISD,
    })
}
