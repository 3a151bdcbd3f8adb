//! Fault injection: `kill -9` of jarvisd and of shims at random points
//! while `up`, `down`, `restart` and `stop` are under way, many rounds. After
//! every round a fresh jarvisd converges (`up --wait`), and then each unit in
//! the directory runs exactly once (one process with its marker, the pid
//! status shows, in its own cgroup), removed units run nowhere, and nothing
//! is left behind: no orphan process, no stray cgroup, no stale run record.
//!
//! The rounds are random; the seed is printed, and `JARVIS_CHAOS_SEED=N`
//! replays a run (`JARVIS_CHAOS_ROUNDS=N` for more rounds).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const UNITS: usize = 8;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A native unit whose process is `sleep MARKER`: the marker is unique to
/// the test and the unit, so its processes can be counted system-wide.
fn unit_text(marker: u64) -> String {
    format!(
        "[native]\ncommand = [\"sleep\", \"{marker}\"]\n\n[restart]\npolicy = \"always\"\ndelay = \"0s\"\n"
    )
}

/// Every process whose command line is `sleep MARKER`.
fn processes_with(marker: u64) -> Vec<i32> {
    let want = format!("sleep\0{marker}\0");
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c == want.as_bytes())
                // A zombie's cmdline is empty; an exiting one may still match.
                && !proc_status(*pid, "State").starts_with('Z')
        })
        .collect()
}

/// The unit directories under the test's cgroup parent, in the pids
/// hierarchy (every unit gets one there).
fn unit_cgroups(j: &Jarvis) -> BTreeSet<String> {
    let parent = cgroup_root("pids").join(&j.cgroup_parent);
    fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Run records left in the state directory, by unit.
fn run_records(state: &Path) -> BTreeSet<String> {
    fs::read_dir(state.join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".run.json").map(str::to_string)
        })
        .collect()
}

/// jarvisctl in the background, as a user's command cut short by the kill.
fn ctl_in_background(j: &Jarvis, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_jarvisctl"))
        .arg("--socket")
        .arg(&j.socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("jarvisctl")
}

/// The shims of the test's units: the parents of their processes.
fn shims_of(markers: &[u64]) -> Vec<i32> {
    markers
        .iter()
        .flat_map(|m| processes_with(*m))
        .filter_map(|pid| {
            proc_status(pid, "PPid")
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 1)
        })
        .collect()
}

/// Waits until `check` holds, up to 20 s; then returns its last answer.
fn settle(check: impl Fn() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = check();
        if r.is_ok() || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The invariants once jarvisd converged on `present` (unit index → in the
/// directory or not).
fn check_converged(j: &Jarvis, markers: &[u64], present: &[bool]) -> Result<(), String> {
    let status = j.status();
    let units = status["units"].as_array().cloned().unwrap_or_default();
    for (i, m) in markers.iter().enumerate() {
        let name = format!("u{i}");
        let procs = processes_with(*m);
        if present[i] {
            let u = units
                .iter()
                .find(|u| u["name"] == name.as_str())
                .ok_or(format!("{name} is missing from status"))?;
            if u["state"] != "running" || procs.len() != 1 {
                return Err(format!(
                    "{name}: state {}, {} process(es) {procs:?} (want running, exactly one)",
                    u["state"],
                    procs.len()
                ));
            }
            if u["pid"] != procs[0] {
                return Err(format!(
                    "{name}: status says pid {}, the process is {}",
                    u["pid"], procs[0]
                ));
            }
            let cg = fs::read_to_string(j.cgroup_dir("pids", &name).join("cgroup.procs"))
                .unwrap_or_default();
            if !cg.lines().any(|l| l.trim() == procs[0].to_string()) {
                return Err(format!(
                    "{name}: pid {} is not in its cgroup ({cg:?})",
                    procs[0]
                ));
            }
        } else if !procs.is_empty() {
            return Err(format!("{name} was removed but runs: {procs:?}"));
        }
    }
    let want: BTreeSet<String> = (0..markers.len())
        .filter(|i| present[*i])
        .map(|i| format!("u{i}"))
        .collect();
    let cgroups = unit_cgroups(j);
    if !cgroups.is_subset(&want) {
        return Err(format!(
            "stray cgroups: {:?}",
            cgroups.difference(&want).collect::<Vec<_>>()
        ));
    }
    let records = run_records(&j.state);
    if !records.is_subset(&want) {
        return Err(format!(
            "stale run records: {:?}",
            records.difference(&want).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

#[test]
fn kill_9_of_jarvisd_and_shims_at_random_points_leaves_each_unit_once_or_stopped() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let seed = std::env::var("JARVIS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let rounds: usize = std::env::var("JARVIS_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!("chaos: seed {seed} (JARVIS_CHAOS_SEED={seed} replays it), {rounds} rounds");
    let mut rng = Rng(seed);
    let base = 700_000_000 + (std::process::id() as u64 % 10_000) * 1_000 + unique() as u64 * 100;
    let markers: Vec<u64> = (0..UNITS as u64).map(|i| base + i).collect();
    let texts: Vec<String> = markers.iter().map(|m| unit_text(*m)).collect();
    let initial: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("u{i}"), t.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = initial
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut j = Jarvis::start(&refs);
    let mut present = vec![true; UNITS];
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    settle(|| check_converged(&j, &markers, &present)).unwrap_or_else(|e| panic!("at start: {e}"));

    let ops = [
        "up (units added and removed)",
        "down",
        "restart all",
        "stop some",
        "up (unit changed)",
    ];
    for round in 0..rounds {
        let op = rng.below(ops.len() as u64) as usize;
        let mut args: Vec<String> = Vec::new();
        match op {
            0 => {
                // Flip one or two units in or out of the directory.
                for _ in 0..1 + rng.below(2) {
                    let i = rng.below(UNITS as u64) as usize;
                    present[i] = !present[i];
                    let path = j.units.join(format!("u{i}.toml"));
                    if present[i] {
                        fs::write(&path, &texts[i]).unwrap();
                    } else {
                        fs::remove_file(&path).unwrap();
                    }
                }
                args.extend(["up".into(), "--wait".into()]);
            }
            1 => args.push("down".into()),
            2 => {
                args.push("restart".into());
                args.extend((0..UNITS).filter(|i| present[*i]).map(|i| format!("u{i}")));
            }
            3 => {
                args.push("stop".into());
                args.extend(
                    (0..UNITS)
                        .filter(|i| present[*i] && rng.below(2) == 0)
                        .map(|i| format!("u{i}")),
                );
                if args.len() == 1 {
                    args.push("u0".into());
                }
            }
            _ => {
                // A changed definition: the unit is restarted by `up`.
                let i = rng.below(UNITS as u64) as usize;
                if present[i] {
                    let text = format!("description = \"round {round}\"\n{}", texts[i]);
                    fs::write(j.units.join(format!("u{i}.toml")), text).unwrap();
                }
                args.extend(["up".into(), "--wait".into()]);
            }
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut client = ctl_in_background(&j, &argv);
        let delay = rng.below(400);
        std::thread::sleep(Duration::from_millis(delay));
        let kill_shim = rng.below(3) == 0;
        let mut killed_shim = None;
        if kill_shim {
            let shims = shims_of(&markers);
            if !shims.is_empty() {
                let pid = shims[rng.below(shims.len() as u64) as usize];
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed_shim = Some(pid);
            }
        }
        eprintln!(
            "chaos round {round}: `{}`, kill -9 of jarvisd after {delay} ms{}",
            args.join(" "),
            killed_shim
                .map(|p| format!(", and of shim {p}"))
                .unwrap_or_default()
        );
        j.kill_daemon();
        let _ = client.kill();
        let _ = client.wait();
        j.spawn_daemon();
        // The user's next step after any interruption: converge again
        // (`up` leaves units a `stop` or `down` stopped as they are; `start`
        // brings them back).
        j.ok(&["up", "--wait", "--timeout", "30s"]);
        let wanted: Vec<String> = (0..UNITS)
            .filter(|i| present[*i])
            .map(|i| format!("u{i}"))
            .collect();
        if !wanted.is_empty() {
            let mut start = vec!["start"];
            start.extend(wanted.iter().map(String::as_str));
            j.ok(&start);
        }
        if let Err(e) = settle(|| check_converged(&j, &markers, &present)) {
            panic!(
                "round {round} (seed {seed}, `{}`): {e}\nstatus: {:#}\njarvisd log (tail):\n{}",
                args.join(" "),
                j.status(),
                tail(&j.daemon_log(), 60)
            );
        }
    }

    // The end: down stops everything, and a clean exit leaves nothing.
    j.ok(&["down"]);
    settle(|| {
        let left: Vec<i32> = markers.iter().flat_map(|m| processes_with(*m)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("processes after down: {left:?}"))
        }
    })
    .unwrap();
    let st = j.stop_daemon();
    assert!(st.success(), "jarvisd exited {st}");
    assert!(shims_of(&markers).is_empty());
    let cgroups = unit_cgroups(&j);
    assert!(
        cgroups.is_empty(),
        "cgroups left after down and exit: {cgroups:?}"
    );
    let records = run_records(&j.state);
    assert!(records.is_empty(), "run records left: {records:?}");
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `kill -9` of jarvisd in the middle of image pulls, many times: the store
/// is never left half-written in a way that matters. After every round the
/// same pull succeeds, and at the end a container runs from the image.
#[test]
fn kill_9_during_image_pulls_leaves_a_store_that_pulls_and_runs() {
    use crate::containers::{busybox_layout, need, run, Registry};
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    need("skopeo", "skopeo");
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    busybox_layout(&layout);
    let registry = Registry::start_with(work.path(), "");
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{}/chaos/busybox:1", registry.addr)));
    let image = format!("{}/chaos/busybox:1", registry.addr);
    let mut j = Jarvis::start_with(&[], &["--insecure-registry", &registry.addr]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    eprintln!("chaos pulls: seed {seed}");
    for round in 0..8 {
        // From nothing, or over what an earlier round left.
        if rng.below(2) == 0 {
            let _ = j.ctl(&["image", "rm", &image]);
        }
        let mut pull = ctl_in_background(&j, &["image", "pull", &image]);
        let delay = rng.below(60);
        std::thread::sleep(Duration::from_millis(delay));
        eprintln!("chaos pull round {round}: kill -9 of jarvisd after {delay} ms");
        j.kill_daemon();
        let _ = pull.kill();
        let _ = pull.wait();
        j.spawn_daemon();
        let out = j.ctl(&["image", "pull", &image]);
        assert!(
            out.status.success(),
            "round {round} (seed {seed}): the pull after a kill failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&j.daemon_log(), 40)
        );
        let ls = j.ok(&["image", "ls", "--json"]);
        assert!(ls.contains("chaos/busybox"), "round {round}: {ls}");
    }
    j.write_unit(
        "box",
        &format!(
            "[container]\nimage = \"{image}\"\nnetwork = \"none\"\ncommand = [\"sh\", \"-c\", \"echo up; sleep 1000\"]\n"
        ),
    );
    j.ok(&["up", "--wait", "--timeout", "60s"]);
    crate::containers::wait_log(&j, "box", "up");
}

/// A unit file rewritten in place (truncated, then written in pieces) while
/// `up` reads it, again and again: each `up` either loads a whole version or
/// reports the file's problem and changes nothing; jarvisd never stops, and
/// once the file is still, one `up` runs exactly the last version, once.
#[test]
fn a_unit_file_rewritten_while_up_reads_it_never_leaves_a_torn_unit() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let base = 710_000_000 + (std::process::id() as u64 % 10_000) * 1_000 + unique() as u64 * 100;
    let text = |marker: u64| {
        format!(
            "description = \"version {marker}\"\n\n[native]\ncommand = [\"sleep\", \"{marker}\"]\n\n[restart]\npolicy = \"always\"\n"
        )
    };
    let first = text(base);
    let mut j = Jarvis::start(&[("torn", &first)]);
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    let path = j.units.join("torn.toml");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let t = text(base + n % 50);
                let (a, b) = t.split_at(t.len() / 2);
                let mut f = fs::File::create(&path).unwrap();
                std::io::Write::write_all(&mut f, a.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_micros(200));
                std::io::Write::write_all(&mut f, b.as_bytes()).unwrap();
                drop(f);
                std::thread::sleep(Duration::from_micros(300));
            }
            n
        })
    };
    let (mut loaded, mut refused) = (0, 0);
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        let out = j.ctl(&["up"]);
        if out.status.success() {
            loaded += 1;
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("torn.toml"),
                "a refused up names the file: {err}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    eprintln!("torn unit: {writes} rewrites, {loaded} ups loaded, {refused} refused");
    // Still: the last version, once.
    let last = base + writes % 50;
    fs::write(&path, text(last)).unwrap();
    j.ok(&["up", "--wait", "--timeout", "30s"]);
    settle(|| {
        let u = j.unit("torn");
        let mut running = Vec::new();
        for m in base..base + 50 {
            for pid in processes_with(m) {
                running.push((m, pid));
            }
        }
        if u["state"] == "running" && running.len() == 1 && running[0].0 == last && u["pid"] == running[0].1 {
            Ok(())
        } else {
            Err(format!("want only `sleep {last}` running as the unit's pid; running {running:?}, status {u}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&j.daemon_log(), 40)));
    j.stop_daemon();
}
