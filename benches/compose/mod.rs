//! compose: bringing a whole set of services up and down, jarvis vs
//! docker-compose.
//!
//! jarvis: 20 units in jarvisd's units dir, 10 native (`sleep 100000`) and
//! 10 containers (`sleep 100000` on the busybox image imported with
//! `jarvisctl image import`, `network = "none"`); timed: `jarvisctl up --wait`
//! (returns once all 20 run), then `jarvisctl down` (returns once nothing of
//! them runs). docker-compose: 20 services of the same busybox rootfs
//! (`docker import`ed), `sleep 100000`, `network_mode: none` (docker has no
//! native, container-less form, so all 20 are containers); timed:
//! `docker-compose up -d`, then `docker-compose down -t 1`. Both sides stop
//! with SIGTERM and SIGKILL after at most 1 s. Rounds alternate which side
//! goes first; one untimed warm-up round per side first.
//!
//! The image and dockerd come from the container group (`container/mod.rs`).

use super::container::{
    docker_client_version, jarvisd_with_image, loadavg, mounts_under, run_tool, tool_version,
    BusyboxImage, Dockerd,
};
use super::*;

/// Native units, and as many container units, on the jarvis side.
const NATIVE: usize = 10;
const CONTAINERS: usize = 10;
/// Services on the compose side (all containers).
const SERVICES: usize = NATIVE + CONTAINERS;
/// `jarvisctl up --wait` median at most this fraction of `docker-compose up -d`'s.
const TARGET_UP_RATIO: f64 = 0.3;
/// The compose project name (container names, labels).
const PROJECT: &str = "jarvisbench";
/// Client starts timed per round and side (`--version`).
const CLIENT_STARTS: usize = 3;

fn native_unit() -> String {
    r#"description = "bench compose: native sleep"

[native]
command = ["sleep", "100000"]

[restart]
policy = "never"

[stop]
timeout = "1s"
"#
    .to_string()
}

fn container_unit() -> String {
    r#"description = "bench compose: busybox sleep in a container"

[container]
image = "busybox:local"
command = ["sleep", "100000"]
network = "none"

[restart]
policy = "never"

[stop]
timeout = "1s"
"#
    .to_string()
}

fn compose_file() -> String {
    let mut y = String::from("version: \"2.4\"\nservices:\n");
    for i in 1..=SERVICES {
        let _ = write!(
            y,
            "  svc-{i:02}:\n    image: busybox:local\n    command: [\"sleep\", \"100000\"]\n    network_mode: none\n"
        );
    }
    y
}

/// A ratio of medians, with more digits when it is small.
fn fine_ratio(a: u64, b: u64) -> String {
    let r = a as f64 / b.max(1) as f64;
    if r < 0.1 {
        format!("{r:.3}×")
    } else {
        format!("{r:.2}×")
    }
}

/// docker-compose against the bench's own dockerd.
struct Compose<'a> {
    dk: &'a Dockerd,
    file: PathBuf,
}

impl Compose<'_> {
    fn run(&self, args: &[&str]) -> Res<String> {
        run_tool(
            Command::new("docker-compose")
                .env("DOCKER_HOST", self.dk.host())
                .arg("-f")
                .arg(&self.file)
                .args(["-p", PROJECT])
                .args(args),
        )
    }

    /// Running containers of the project.
    fn running(&self) -> Res<usize> {
        let label = format!("label=com.docker.compose.project={PROJECT}");
        Ok(self
            .dk
            .cli(&["ps", "-q", "--filter", &label])?
            .split_whitespace()
            .count())
    }

    /// Containers of the project in any state, and networks it made.
    fn left(&self) -> Res<(usize, usize)> {
        let label = format!("label=com.docker.compose.project={PROJECT}");
        let containers = self
            .dk
            .cli(&["ps", "-aq", "--filter", &label])?
            .split_whitespace()
            .count();
        let networks = self
            .dk
            .cli(&["network", "ls", "-q", "--filter", &label])?
            .split_whitespace()
            .count();
        Ok((containers, networks))
    }
}

/// One side's up and down in one round.
#[derive(Clone, Copy)]
struct Round {
    up_ns: u64,
    down_ns: u64,
}

fn jarvis_round(d: &mut Daemon) -> Res<Round> {
    let t = Instant::now();
    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
    let up_ns = elapsed_ns(t);
    let states = jarvis_states(d)?;
    let running = states.iter().filter(|(_, s)| s == "running").count();
    if running != SERVICES {
        return Err(
            format!("{running} of {SERVICES} units running after up --wait: {states:?}").into(),
        );
    }
    let t = Instant::now();
    d.ctl(&["down"])?;
    let down_ns = elapsed_ns(t);
    let states = jarvis_states(d)?;
    let active: Vec<_> = states
        .iter()
        .filter(|(_, s)| !matches!(s.as_str(), "stopped" | "exited" | "failed"))
        .collect();
    let procs = Leftovers::find(&d.cgroup_parent).processes;
    if !active.is_empty() || procs > 0 {
        return Err(
            format!("after down: {active:?} still active, {procs} process(es) left").into(),
        );
    }
    d.check_alive()?;
    Ok(Round { up_ns, down_ns })
}

/// `(kind, state)` of each unit.
fn jarvis_states(d: &Daemon) -> Res<Vec<(String, String)>> {
    let status: Value = serde_json::from_str(&d.ctl(&["status", "--json"])?)?;
    Ok(status["units"]
        .as_array()
        .ok_or("status without units")?
        .iter()
        .map(|u| {
            (
                u["kind"].as_str().unwrap_or("?").to_string(),
                u["state"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect())
}

fn compose_round(c: &Compose) -> Res<Round> {
    let t = Instant::now();
    c.run(&["up", "-d"])?;
    let up_ns = elapsed_ns(t);
    let running = c.running()?;
    if running != SERVICES {
        return Err(format!("{running} of {SERVICES} containers running after up -d").into());
    }
    let t = Instant::now();
    c.run(&["down", "-t", "1"])?;
    let down_ns = elapsed_ns(t);
    let (containers, networks) = c.left()?;
    if containers > 0 || networks > 0 {
        return Err(format!(
            "after down: {containers} container(s), {networks} network(s) of the project left"
        )
        .into());
    }
    Ok(Round { up_ns, down_ns })
}

/// Wall time of a client that only prints its version: its start cost.
fn client_start(cmd: &mut Command) -> Res<u64> {
    let t = Instant::now();
    run_tool(cmd)?;
    Ok(elapsed_ns(t))
}

pub(crate) fn bench_compose(quick: bool) -> Res<Section> {
    let rounds = if quick { 2 } else { 5 };
    let load_before = loadavg();
    let tmp = tempfile::Builder::new()
        .prefix("jarvis-bench-compose-")
        .tempdir()?;
    progress!("compose: building the busybox OCI image with umoci");
    let image = match BusyboxImage::build(tmp.path()) {
        Ok(img) => img,
        Err(e) => {
            progress!("compose: skipped: {e}");
            return Ok(Section {
                markdown: format!(
                    "## compose: skipped\n\nCould not build the busybox image: {e}\n"
                ),
                json: json!({ "skipped": e.to_string() }),
                targets: vec![],
            });
        }
    };
    let compose_version = tool_version(&["docker-compose", "--version"]);
    let docker = if compose_version.ends_with("missing") {
        Err("docker-compose is missing (apt-get install docker-compose)".to_string())
    } else {
        match Dockerd::start() {
            Ok(d) => match d.import(&image.rootfs) {
                Ok(()) => Ok(d),
                Err(e) => Err(format!("docker import: {e}")),
            },
            Err(e) => Err(e.to_string()),
        }
    };
    if let Err(e) = &docker {
        progress!("compose: docker-compose side unavailable: {e}");
    }
    let file = tmp.path().join("docker-compose.yml");
    fs::write(&file, compose_file())?;

    let measured = measure(&image, docker.as_ref().ok(), &file, rounds);
    // Tear dockerd down before reporting, whatever happened.
    let docker_note = match docker {
        Ok(d) => Some(d.stop()),
        Err(_) => None,
    };
    let m = measured?;
    let load_after = loadavg();

    let has_peer = !m.compose.is_empty();
    let col = |f: fn(&Round) -> u64, v: &[Round]| -> Summary {
        summarize(&v.iter().map(f).collect::<Vec<_>>())
    };
    let ju = col(|r| r.up_ns, &m.jarvis);
    let jd = col(|r| r.down_ns, &m.jarvis);
    let cu = col(|r| r.up_ns, &m.compose);
    let cd = col(|r| r.down_ns, &m.compose);
    let jc = summarize(&m.jarvisctl_start);
    let cc = summarize(&m.compose_start);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## compose: {SERVICES} services up and down, `jarvisctl up --wait`/`down` vs `docker-compose up -d`/`down -t 1`\n"
    );
    let _ = writeln!(
        md,
        "Load average (1/5/15 min) when the section began: {load_before}; when it ended: {load_after} \
         (the sides alternate so other work on the machine hits both).\n"
    );
    let _ = writeln!(
        md,
        "jarvis: {NATIVE} native units (`sleep 100000`) + {CONTAINERS} container units (`sleep 100000`, image `busybox:local` \
         imported with `jarvisctl image import`, `network = \"none\"`), all with restart policy `never` and `[stop] timeout = \"1s\"` \
         (signal SIGTERM). docker-compose: {SERVICES} services, `image: busybox:local` (`docker import` of the same rootfs), \
         `command: [\"sleep\", \"100000\"]`, `network_mode: none`; docker has no native (container-less) form, so all {SERVICES} are \
         containers. Versions: {compose_version}; {}; {}. \
         {rounds} timed rounds, the side that goes first alternating (round 1 jarvis first), after one untimed warm-up round per \
         side (jarvis first). Each round: up (timed), check that all {SERVICES} run, down (timed), check that nothing is left. \
         Times in ms, wall time of the client command.\n",
        docker_client_version(),
        tool_version(&["dockerd", "--version"]),
    );
    let _ = writeln!(
        md,
        "Stopping: the native `sleep` dies on SIGTERM at once; `sleep` as a container's pid 1 ignores SIGTERM (it has no handler), \
         so each container is SIGKILLed after the 1 s timeout, on both sides: jarvis `down` uses each unit's own stop timeout \
         (1 s here; 10 s by default), `docker-compose down -t 1` gives every container 1 s (10 s by default).\n"
    );
    let _ = writeln!(
        md,
        "| round | first | jarvis `up --wait` | `docker-compose up -d` | jarvis `down` | `docker-compose down -t 1` |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: |");
    let dash = |r: Option<&Round>, f: fn(&Round) -> u64| r.map_or("-".to_string(), |r| ms(f(r)));
    let _ = writeln!(
        md,
        "| warm-up (not counted) | jarvis | {} | {} | {} | {} |",
        ms(m.warm_jarvis.up_ns),
        dash(m.warm_compose.as_ref(), |r| r.up_ns),
        ms(m.warm_jarvis.down_ns),
        dash(m.warm_compose.as_ref(), |r| r.down_ns),
    );
    for r in 0..rounds {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r + 1,
            if r % 2 == 0 || !has_peer {
                "jarvis"
            } else {
                "docker-compose"
            },
            dash(m.jarvis.get(r), |r| r.up_ns),
            dash(m.compose.get(r), |r| r.up_ns),
            dash(m.jarvis.get(r), |r| r.down_ns),
            dash(m.compose.get(r), |r| r.down_ns),
        );
    }
    let _ = writeln!(
        md,
        "\n| command | median | min | max | median ratio jarvis / compose |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
    let row = |md: &mut String, name: &str, s: &Summary, r: String| {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {r} |",
            ms(s.p50),
            ms(s.min),
            ms(s.max)
        );
    };
    row(
        &mut md,
        "jarvis `up --wait`",
        &ju,
        if has_peer {
            fine_ratio(ju.p50, cu.p50)
        } else {
            "-".into()
        },
    );
    if has_peer {
        row(&mut md, "`docker-compose up -d`", &cu, "1.00×".into());
    }
    row(
        &mut md,
        "jarvis `down`",
        &jd,
        if has_peer {
            fine_ratio(jd.p50, cd.p50)
        } else {
            "-".into()
        },
    );
    if has_peer {
        row(&mut md, "`docker-compose down -t 1`", &cd, "1.00×".into());
    }
    row(
        &mut md,
        &format!("client start alone: `jarvisctl --version` ({} calls)", jc.n),
        &jc,
        if has_peer {
            fine_ratio(jc.p50, cc.p50)
        } else {
            "-".into()
        },
    );
    if has_peer {
        row(
            &mut md,
            &format!(
                "client start alone: `docker-compose --version` ({} calls)",
                cc.n
            ),
            &cc,
            "1.00×".into(),
        );
    }
    let _ = writeln!(
        md,
        "\nThe client-start rows ({CLIENT_STARTS} calls per side per round, alternating, after each round) are part of every \
         up/down above: docker-compose is a Python program. jarvisd after SIGTERM: {}; mounts left under its state dir: {}.{}",
        m.left.describe(),
        m.mounts_left,
        match &docker_note {
            Some(Ok(n)) => format!(" dockerd (own data root, exec root and socket; `--bridge=none --iptables=false --ip-masq=false`): stopped, {n}."),
            Some(Err(e)) => format!(" dockerd: stopped with a problem: {e}."),
            None => String::new(),
        }
    );
    if let Err(e) = &docker_note
        .as_ref()
        .map_or(Ok(()), |r| r.as_ref().map(|_| ()))
    {
        progress!("compose: dockerd stop: {e}");
    }

    let mut targets = Vec::new();
    if has_peer {
        let r = ju.p50 as f64 / cu.p50.max(1) as f64;
        targets.push(Target {
            what: "compose: `jarvisctl up --wait` (10 native + 10 container units) vs `docker-compose up -d` (20 services), median ratio",
            limit: format!("≤ {TARGET_UP_RATIO}×"),
            measured: format!("{} ({} vs {} ms)", fine_ratio(ju.p50, cu.p50), ms(ju.p50), ms(cu.p50)),
            pass: r <= TARGET_UP_RATIO,
        });
    }
    let rj = |v: &[Round]| {
        v.iter()
            .map(|r| json!({ "up_ns": r.up_ns, "down_ns": r.down_ns }))
            .collect::<Vec<_>>()
    };
    Ok(Section {
        markdown: md,
        json: json!({
            "native_units": NATIVE, "container_units": CONTAINERS, "services": SERVICES, "rounds": rounds,
            "loadavg_before": load_before, "loadavg_after": load_after,
            "docker_compose": compose_version,
            "docker": docker_note.map(|r| match r { Ok(s) => json!({ "stopped": s }), Err(e) => json!({ "error": e.to_string() }) }),
            "warmup": { "jarvis": rj(&[m.warm_jarvis]), "compose": rj(m.warm_compose.as_slice()) },
            "jarvis": { "rounds": rj(&m.jarvis), "up": ju.json(), "down": jd.json() },
            "compose": { "rounds": rj(&m.compose), "up": cu.json(), "down": cd.json() },
            "up_ratio_p50": if has_peer { json!(ju.p50 as f64 / cu.p50.max(1) as f64) } else { Value::Null },
            "client_start": {
                "jarvisctl": { "summary": jc.json(), "samples_ns": m.jarvisctl_start },
                "docker_compose": { "summary": cc.json(), "samples_ns": m.compose_start },
            },
            "leftovers": m.left.json(), "mounts_left": m.mounts_left,
        }),
        targets,
    })
}

struct Measured {
    warm_jarvis: Round,
    warm_compose: Option<Round>,
    jarvis: Vec<Round>,
    compose: Vec<Round>,
    jarvisctl_start: Vec<u64>,
    compose_start: Vec<u64>,
    left: Leftovers,
    mounts_left: usize,
}

fn measure(
    image: &BusyboxImage,
    docker: Option<&Dockerd>,
    file: &Path,
    rounds: usize,
) -> Res<Measured> {
    let mut d = jarvisd_with_image("compose", image)?;
    for i in 1..=NATIVE {
        fs::write(d.units.join(format!("native-{i:02}.toml")), native_unit())?;
    }
    for i in 1..=CONTAINERS {
        fs::write(d.units.join(format!("box-{i:02}.toml")), container_unit())?;
    }
    let compose = docker.map(|dk| Compose {
        dk,
        file: file.to_path_buf(),
    });

    progress!("compose: warm-up round (jarvis, then docker-compose)");
    let warm_jarvis = jarvis_round(&mut d)?;
    let warm_compose = compose.as_ref().map(compose_round).transpose()?;
    progress!(
        "compose: warm-up: jarvis up {} ms, down {} ms; docker-compose up {} ms, down {} ms",
        ms(warm_jarvis.up_ns),
        ms(warm_jarvis.down_ns),
        warm_compose.map_or("-".into(), |r| ms(r.up_ns)),
        warm_compose.map_or("-".into(), |r| ms(r.down_ns)),
    );
    let mut jarvis = Vec::new();
    let mut composed = Vec::new();
    let mut jarvisctl_start = Vec::new();
    let mut compose_start = Vec::new();
    for r in 0..rounds {
        let jarvis_first = r % 2 == 0;
        for side in 0..2 {
            if (side == 0) == jarvis_first {
                jarvis.push(jarvis_round(&mut d)?);
            } else if let Some(c) = &compose {
                composed.push(compose_round(c)?);
            }
        }
        for k in 0..2 * CLIENT_STARTS {
            if k % 2 == usize::from(!jarvis_first) {
                jarvisctl_start.push(client_start(Command::new(JARVISCTL).arg("--version"))?);
            } else if compose.is_some() {
                compose_start.push(client_start(
                    Command::new("docker-compose").arg("--version"),
                )?);
            }
        }
        progress!(
            "compose: round {}/{rounds}: jarvis up {} ms, down {} ms; docker-compose up {} ms, down {} ms",
            r + 1,
            ms(jarvis[r].up_ns),
            ms(jarvis[r].down_ns),
            composed.get(r).map_or("-".into(), |x| ms(x.up_ns)),
            composed.get(r).map_or("-".into(), |x| ms(x.down_ns)),
        );
    }
    let left = d.stop()?;
    let mounts_left = mounts_under(d.dir.path());
    progress!("compose: jarvisd stopped; {}", left.describe());
    Ok(Measured {
        warm_jarvis,
        warm_compose,
        jarvis,
        compose: composed,
        jarvisctl_start,
        compose_start,
        left,
        mounts_left,
    })
}
