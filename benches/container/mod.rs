//! container: container units next to their peers, on one busybox rootfs.
//!
//! - start: a container unit (`true`) from a start request to running or
//!   completed, through jarvisd's socket in-process (`Request::Start`, then
//!   `Request::Wait`) and through `jarvisctl`, vs `runc run` of a bundle from
//!   `runc spec` and `docker run --rm --network none`; alternating.
//! - memory: 10 running container units (`sleep 100000`): each shim's VmRSS
//!   and Pss and jarvisd's growth, vs 10 `docker run -d` containers: each
//!   containerd-shim-runc-v2 and dockerd + containerd; alternating rounds.
//!
//! dockerd runs here with its own data root, exec root and socket in a
//! temporary directory, without a bridge or iptables, and is stopped and
//! removed at the end. Without dockerd (or runc) the section says why and
//! keeps the rest.

use std::os::unix::net::UnixStream;

use jarvis_proto::{read_frame, write_frame, Hello, Request, Response, PROTOCOL_VERSION};

use super::*;

/// Containers per side in the memory benchmark.
const MEM_CONTAINERS: usize = 10;
/// The jarvis start target: its median at most this fraction of runc's.
const TARGET_START_RATIO: f64 = 0.7;
/// Memory a running container may add (Pss of its shim).
const TARGET_PER_CONTAINER_BYTES: u64 = 2_000_000;
/// How often the bench asks jarvisd whether the unit has exited.
const EXIT_POLL: Duration = Duration::from_micros(500);

const START_VARIANTS: [(&str, &str); 6] = [
    (
        "jarvis (socket, in-process)",
        "`Request::Start` + `Request::Wait` on jarvisd's socket from this process: answered once the unit is running or completed",
    ),
    (
        "jarvis to exited (socket, in-process)",
        "the same run, until `status` says `exited (0)` (polled every 0.5 ms): includes the exit, libcontainer delete, unmount and jarvisd noticing",
    ),
    (
        "jarvisctl start + up --wait",
        "two `jarvisctl` processes: `start box`, then `up --wait` (reconcile, then Wait)",
    ),
    (
        "runc run",
        "`runc run --bundle B ID` (a `runc` process: create, start, wait, delete)",
    ),
    (
        "docker run --rm",
        "`docker run --rm --network none busybox:local true` (a `docker` client process; dockerd + containerd + shim + runc)",
    ),
    (
        "runc run, jarvis's spec",
        "`runc run` of the `config.json` jarvisd wrote for `box` (the same seccomp profile, capabilities, mounts and namespaces), root.path = the unpacked rootfs, no cgroupsPath, no hooks",
    ),
];

pub(crate) fn bench_container(quick: bool) -> Res<Section> {
    let (iters, warmup, rounds) = if quick { (20, 2, 1) } else { (100, 5, 2) };
    let load_before = loadavg();
    let tmp = tempfile::Builder::new()
        .prefix("jarvis-bench-ctr-")
        .tempdir()?;
    progress!("container: building the busybox OCI image with umoci");
    let image = match BusyboxImage::build(tmp.path()) {
        Ok(img) => img,
        Err(e) => {
            progress!("container: skipped: {e}");
            return Ok(Section {
                markdown: format!(
                    "## container: skipped\n\nCould not build the busybox image: {e}\n"
                ),
                json: json!({ "skipped": e.to_string() }),
                targets: vec![],
            });
        }
    };

    let runc = Runc::prepare(tmp.path(), &image.rootfs);
    if let Err(e) = &runc {
        progress!("container: runc unavailable: {e}");
    }
    let runc = runc.ok();
    let docker = Dockerd::start();
    let docker = match docker {
        Ok(d) => match d.import(&image.rootfs) {
            Ok(()) => Ok(d),
            Err(e) => Err(format!("docker import: {e}")),
        },
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &docker {
        progress!("container: docker unavailable: {e}");
    }

    let start = bench_start(&image, runc.as_ref(), docker.as_ref().ok(), iters, warmup);
    let memory = match &start {
        Ok(_) => Some(bench_ctr_memory(&image, docker.as_ref().ok(), rounds)),
        Err(_) => None,
    };
    // Tear the peers down before reporting, whatever happened.
    let docker_left = match docker {
        Ok(d) => Some(d.stop()),
        Err(_) => None,
    };
    let runc_left = runc.as_ref().map(|r| r.leftovers());
    let start = start?;
    let memory = memory.expect("ran when start did")?;

    let load_after = loadavg();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## container: container units vs runc and docker, same busybox rootfs\n"
    );
    let _ = writeln!(
        md,
        "Load average (1/5/15 min) when the section began: {load_before}; when it ended: {load_after} \
         (other work on the machine shows here; the sides alternate so it hits them alike).\n"
    );
    let _ = writeln!(
        md,
        "Image: one layer, busybox-static (`/bin/busybox`) with applet links, /etc/passwd and /etc/group \
         ({} files, {} MB), an OCI layout made with umoci; jarvisd imports it (`jarvisctl image import`), runc runs \
         the same unpacked rootfs directory, docker gets the same files through `docker import`. \
         Versions: {}; {}; {}.\n",
        image.files,
        mb(image.bytes),
        tool_version(&["runc", "--version"]),
        docker_client_version(),
        tool_version(&["dockerd", "--version"]),
    );
    if let Some(r) = &runc {
        let _ = writeln!(md, "runc bundle: {}.\n", r.describe);
    }
    match &docker_left {
        Some(Ok(note)) => {
            let _ = writeln!(
                md,
                "dockerd: `dockerd --bridge=none --iptables=false --ip-masq=false` with its own data root, exec root \
                 and socket in a temporary directory (cgroupfs driver, overlay2); stopped and removed at the end: {note}.\n"
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(md, "dockerd: stopped with a problem: {e}.\n");
        }
        None => {}
    }
    md.push_str(&start.markdown);
    md.push('\n');
    md.push_str(&memory.markdown);
    if let Some(l) = &runc_left {
        let _ = writeln!(md, "\nrunc afterwards: {l}.");
    }
    let mut targets = start.targets;
    targets.extend(memory.targets);
    Ok(Section {
        markdown: md,
        json: json!({
            "image": { "files": image.files, "bytes": image.bytes },
            "loadavg_before": load_before, "loadavg_after": load_after,
            "runc": runc.as_ref().map(|r| r.describe.clone()),
            "docker": docker_left.map(|r| match r { Ok(s) => json!({ "stopped": s }), Err(e) => json!({ "error": e.to_string() }) }),
            "start": start.json,
            "memory": memory.json,
        }),
        targets,
    })
}

// ---------------------------------------------------------------------------
// The image

/// A one-layer busybox OCI layout (for jarvisd) and its unpacked rootfs
/// (for runc and docker). Shared with the compose group.
pub(crate) struct BusyboxImage {
    pub(crate) layout: PathBuf,
    pub(crate) rootfs: PathBuf,
    pub(crate) files: usize,
    pub(crate) bytes: u64,
}

impl BusyboxImage {
    pub(crate) fn build(dir: &Path) -> Res<BusyboxImage> {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return Err("/bin/busybox is missing: apt-get install busybox-static".into());
        }
        let layout = dir.join("layout");
        let bundle = dir.join("unpacked");
        let image = format!("{}:latest", layout.display());
        run_tool(
            Command::new("umoci")
                .args(["init", "--layout"])
                .arg(&layout),
        )?;
        run_tool(Command::new("umoci").args(["new", "--image", &image]))?;
        run_tool(
            Command::new("umoci")
                .args(["unpack", "--image", &image])
                .arg(&bundle),
        )?;
        let root = bundle.join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
            fs::create_dir_all(root.join(d))?;
        }
        fs::copy(busybox, root.join("bin/busybox"))?;
        for applet in ["sh", "true", "sleep", "cat", "echo", "ls", "ps", "id"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )?;
        fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
        run_tool(
            Command::new("umoci")
                .args(["repack", "--image", &image])
                .arg(&bundle),
        )?;
        run_tool(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "sh"]))?;
        let (mut files, mut bytes) = (0, 0);
        count_tree(&root, &mut files, &mut bytes);
        Ok(BusyboxImage {
            layout,
            rootfs: root,
            files,
            bytes,
        })
    }
}

fn count_tree(dir: &Path, files: &mut usize, bytes: &mut u64) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(md) = e.path().symlink_metadata() else {
            continue;
        };
        *files += 1;
        if md.is_dir() {
            count_tree(&e.path(), files, bytes);
        } else if md.is_file() {
            *bytes += md.len();
        }
    }
}

/// Runs a tool to success; its output on failure.
pub(crate) fn run_tool(cmd: &mut Command) -> Res<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn tool_version(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("{} missing", argv[0]))
}

// ---------------------------------------------------------------------------
// jarvisd through its socket, in-process

/// One request on a fresh connection (as jarvisctl does it), one answer.
pub(crate) fn request(socket: &Path, req: &Request) -> Res<Response> {
    let mut s = UnixStream::connect(socket)?;
    write_frame(
        &mut s,
        &Hello {
            version: PROTOCOL_VERSION,
            agent: "jarvis-bench".into(),
        },
    )?;
    let hello: Hello = read_frame(&mut s)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(format!("jarvisd speaks protocol {}", hello.version).into());
    }
    write_frame(&mut s, req)?;
    Ok(read_frame(&mut s)?)
}

pub(crate) fn start_units(socket: &Path, units: &[String]) -> Res<()> {
    match request(
        socket,
        &Request::Start {
            units: units.to_vec(),
        },
    )? {
        Response::Done { .. } => Ok(()),
        other => Err(format!("start {units:?}: {other:?}").into()),
    }
}

pub(crate) fn wait_ready(socket: &Path) -> Res<()> {
    match request(socket, &Request::Wait { timeout_ms: 60_000 })? {
        Response::Wait(w) if w.ok => Ok(()),
        other => Err(format!("wait: {other:?}").into()),
    }
}

/// `(state, pid, exit_code)` of a unit.
type UnitState = (String, Option<i32>, Option<i32>);

/// The state of each named unit.
fn unit_states(socket: &Path, units: &[String]) -> Res<Vec<UnitState>> {
    match request(
        socket,
        &Request::Status {
            units: units.to_vec(),
        },
    )? {
        Response::Status(r) => Ok(r
            .units
            .into_iter()
            .map(|u| (u.state.as_str().to_string(), u.pid, u.exit_code))
            .collect()),
        other => Err(format!("status: {other:?}").into()),
    }
}

/// Polls `status` until the unit has exited; insists on code 0.
pub(crate) fn wait_exited(d: &Daemon, unit: &str) -> Res<()> {
    let units = [unit.to_string()];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = unit_states(&d.socket, &units)?;
        let (state, _, code) = st.first().ok_or("no such unit")?;
        match state.as_str() {
            "exited" if *code == Some(0) => return Ok(()),
            "exited" | "failed" => {
                return Err(format!(
                    "{unit} {state} (code {code:?}); log:\n{}\njarvisd log:\n{}",
                    fs::read_to_string(d.dir.path().join("state/logs").join(format!("{unit}.log")))
                        .unwrap_or_default(),
                    d.log_tail()
                )
                .into())
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(format!("{unit} still {state} after 30 s").into());
        }
        std::thread::sleep(EXIT_POLL);
    }
}

fn container_unit(command: &str, stop: bool) -> String {
    let stop = if stop {
        "\n[stop]\nsignal = \"SIGKILL\"\ntimeout = \"2s\"\n"
    } else {
        ""
    };
    format!(
        r#"description = "bench: a busybox container"

[container]
image = "busybox:local"
command = {command}
network = "none"

[restart]
policy = "never"
{stop}"#
    )
}

/// A jarvisd with the busybox image imported.
pub(crate) fn jarvisd_with_image(tag: &str, image: &BusyboxImage) -> Res<Daemon> {
    let d = Daemon::start(tag, &[])?;
    d.ctl(&[
        "image",
        "import",
        image.layout.to_str().ok_or("layout path")?,
        "--tag",
        "busybox:local",
    ])?;
    Ok(d)
}

// ---------------------------------------------------------------------------
// runc

struct Runc {
    bundle: PathBuf,
    root: PathBuf,
    id: String,
    describe: String,
}

impl Runc {
    /// A bundle whose `config.json` is `spec` (jarvisd's own for a unit) on
    /// `rootfs`: the same profile, capabilities, mounts and namespaces, so
    /// the two runtimes do the same work. runc makes its own cgroup.
    fn with_spec(dir: &Path, rootfs: &Path, spec: &Path) -> Res<Runc> {
        let bundle = dir.join("runc-bundle-jarvis-spec");
        fs::create_dir_all(&bundle)?;
        let mut spec: Value = serde_json::from_str(&fs::read_to_string(spec)?)?;
        spec["root"] = json!({ "path": rootfs.display().to_string(), "readonly": false });
        // jarvisd compiles the profile ahead (seccomp.bpf beside the bundle,
        // named in an annotation): runc is given the profile itself.
        if spec["linux"]["seccomp"].is_null()
            && spec["annotations"]["org.jarvis.seccomp.bpf"].is_string()
        {
            let caps: std::collections::HashSet<jarvis_container::oci_spec::runtime::Capability> =
                serde_json::from_value(spec["process"]["capabilities"]["bounding"].clone())?;
            spec["linux"]["seccomp"] =
                serde_json::to_value(jarvis_container::seccomp::default_profile(&caps))?;
            if let Some(a) = spec["annotations"].as_object_mut() {
                a.remove("org.jarvis.seccomp.bpf");
                a.remove("org.jarvis.seccomp.flags");
            }
        }
        if let Some(linux) = spec["linux"].as_object_mut() {
            linux.remove("cgroupsPath");
        }
        if let Some(o) = spec.as_object_mut() {
            o.remove("hooks");
        }
        fs::write(
            bundle.join("config.json"),
            serde_json::to_string_pretty(&spec)?,
        )?;
        let r = Runc {
            bundle,
            root: dir.join("runc-state-jarvis-spec"),
            id: format!("jarvis-bench-spec-{}", std::process::id()),
            describe: format!(
                "jarvisd's own config.json for the unit (seccomp profile: {}), root.path = the unpacked rootfs, no cgroupsPath, no hooks",
                !spec["linux"]["seccomp"].is_null()
            ),
        };
        r.run()?;
        Ok(r)
    }

    /// A bundle from `runc spec` (terminal false, args `true`) on `rootfs`.
    fn prepare(dir: &Path, rootfs: &Path) -> Res<Runc> {
        let bundle = dir.join("runc-bundle");
        fs::create_dir_all(&bundle)?;
        run_tool(Command::new("runc").arg("spec").current_dir(&bundle))?;
        let path = bundle.join("config.json");
        let mut spec: Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["true"]);
        spec["root"]["path"] = json!(rootfs.display().to_string());
        fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
        let namespaces: Vec<String> = spec["linux"]["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["type"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let describe = format!(
            "`runc spec` as generated (root read-only: {}, namespaces {}, {} mounts, {} capabilities, no seccomp profile: {}, no cgroupsPath: runc makes `/<id>` in each hierarchy), \
             with terminal false, args [\"true\"], root.path = the unpacked rootfs",
            spec["root"]["readonly"],
            namespaces.join("+"),
            spec["mounts"].as_array().map_or(0, |m| m.len()),
            spec["process"]["capabilities"]["bounding"]
                .as_array()
                .map_or(0, |c| c.len()),
            spec["linux"]["seccomp"].is_null(),
        );
        let r = Runc {
            bundle,
            root: dir.join("runc-state"),
            id: format!("jarvis-bench-{}", std::process::id()),
            describe,
        };
        r.run()?;
        Ok(r)
    }

    fn run(&self) -> Res<()> {
        let st = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .arg("run")
            .arg("--bundle")
            .arg(&self.bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            return Err(format!("runc run: {st}").into());
        }
        Ok(())
    }

    /// What runc left: its state dir entries and its cgroup.
    fn leftovers(&self) -> String {
        let state = subdirs(&self.root).len();
        let cgroups = cgroup_mounts()
            .iter()
            .filter(|m| m.join(&self.id).exists())
            .count();
        for m in cgroup_mounts() {
            let _ = fs::remove_dir(m.join(&self.id));
        }
        format!("{state} container state dir(s) and {cgroups} cgroup dir(s) left")
    }
}

// ---------------------------------------------------------------------------
// dockerd

fn docker_client() -> &'static str {
    // Debian's client matches Debian's dockerd; a newer one may be first in PATH.
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

pub(crate) fn docker_client_version() -> String {
    tool_version(&[docker_client(), "--version"])
}

/// Paths dockerd creates outside its data and exec roots; removed at the end
/// when they were not there before.
const DOCKER_STRAYS: [&str; 3] = ["/etc/docker/key.json", "/run/docker", "/root/.docker"];

pub(crate) struct Dockerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// DOCKER_STRAYS that did not exist before, and cgroup hierarchies
    /// without a `docker` cgroup before.
    strays: Vec<PathBuf>,
}

impl Dockerd {
    /// dockerd with no networking of its own (no bridge, no iptables, no
    /// masquerade), as the container and compose groups run it.
    pub(crate) fn start() -> Res<Dockerd> {
        Self::start_with(&["--bridge=none", "--iptables=false", "--ip-masq=false"])
    }

    /// dockerd with `args` (none: docker's stock networking, for a network
    /// namespace made for the benchmark).
    pub(crate) fn start_with(args: &[&str]) -> Res<Dockerd> {
        let mut strays: Vec<PathBuf> = DOCKER_STRAYS
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        strays.extend(
            cgroup_mounts()
                .into_iter()
                .map(|m| m.join("docker"))
                .filter(|p| !p.exists()),
        );
        let dir = tempfile::Builder::new()
            .prefix("jarvis-bench-docker-")
            .tempdir()?;
        let socket = dir.path().join("docker.sock");
        let log = fs::File::create(dir.path().join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .args(args)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("dockerd: {e}"))?;
        let mut d = Dockerd {
            child: Some(child),
            dir,
            socket,
            strays,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = d.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    d.child = None;
                    return Err(format!("dockerd exited {st}:\n{}", d.log_tail()).into());
                }
            }
            if d.socket.exists() && d.cli(&["version"]).is_ok() {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(format!("dockerd did not answer in 30 s:\n{}", d.log_tail()).into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(docker_client());
        c.arg("-H").arg(self.host());
        c.stdin(Stdio::null());
        c
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Res<String> {
        run_tool(self.cmd().args(args))
    }

    /// `unix://SOCKET`, for `-H` or `DOCKER_HOST` (docker-compose).
    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `tar -C ROOTFS -c . | docker import - busybox:local`
    pub(crate) fn import(&self, rootfs: &Path) -> Res<()> {
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()?;
        let out = self
            .cmd()
            .args(["import", "-", "busybox:local"])
            .stdin(tar.stdout.take().ok_or("tar stdout")?)
            .output()?;
        let st = tar.wait()?;
        if !st.success() || !out.status.success() {
            return Err(format!(
                "tar {st}, docker import {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    fn run_true(&self) -> Res<()> {
        let st = self
            .cmd()
            .args(["run", "--rm", "--network", "none", "busybox:local", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            return Err(format!("docker run: {st}").into());
        }
        Ok(())
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// containerd, started by dockerd.
    fn containerd_pid(&self) -> Option<i32> {
        let me = self.pid()?;
        processes()
            .into_iter()
            .find(|p| p.ppid == me && p.comm == "containerd")
            .map(|p| p.pid)
    }

    /// The containerd-shim processes of this dockerd's containerd.
    fn shims(&self) -> Vec<Proc> {
        let address = self.dir.path().join("exec").display().to_string();
        processes()
            .into_iter()
            .filter(|p| p.comm.starts_with("containerd-shim") && p.cmdline.contains(&address))
            .collect()
    }

    /// Removes every container, stops dockerd, kills any shim it left,
    /// unmounts and removes its directories and the strays it made.
    pub(crate) fn stop(mut self) -> Res<String> {
        let mut notes = Vec::new();
        if let Ok(ids) = self.cli(&["ps", "-aq"]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(&ids);
                let _ = self.cli(&args);
                notes.push(format!("removed {} leftover container(s)", ids.len()));
            }
        }
        let shims_before = self.shims().len();
        self.terminate(&mut notes);
        let stray_shims = self.shims();
        for p in &stray_shims {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if !stray_shims.is_empty() {
            notes.push(format!("killed {} shim(s) left running", stray_shims.len()));
        }
        let mounts = self.unmount_all();
        if mounts > 0 {
            notes.push(format!("unmounted {mounts} mount(s) it left"));
        }
        for p in std::mem::take(&mut self.strays) {
            if p.starts_with("/sys/fs/cgroup") {
                if p.exists() {
                    remove_cgroup_tree(&p);
                }
            } else if p.is_dir() {
                let _ = fs::remove_dir_all(&p);
            } else if p.exists() {
                let _ = fs::remove_file(&p);
            }
        }
        if shims_before > 0 {
            notes.push(format!(
                "{shims_before} shim(s) were still up before it stopped"
            ));
        }
        if notes.is_empty() {
            notes.push("nothing left behind".into());
        }
        Ok(notes.join("; "))
    }

    fn terminate(&mut self, notes: &mut Vec<String>) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    notes.push("dockerd ignored SIGTERM for 30 s and was killed".into());
                    return;
                }
            }
        }
    }

    /// Unmounts whatever is still mounted under the temporary directory.
    fn unmount_all(&self) -> usize {
        let base = self.dir.path().display().to_string();
        let mut n = 0;
        for _ in 0..5 {
            let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut targets: Vec<String> = text
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(String::from))
                .filter(|t| t.starts_with(&base))
                .collect();
            if targets.is_empty() {
                break;
            }
            targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
            for t in targets {
                if nix::mount::umount2(t.as_str(), nix::mount::MntFlags::MNT_DETACH).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let mut notes = vec![];
            self.terminate(&mut notes);
            for p in self.shims() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            self.unmount_all();
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    for sub in subdirs(dir) {
        remove_cgroup_tree(&sub);
    }
    let _ = fs::remove_dir(dir);
}

// ---------------------------------------------------------------------------
// Processes and their memory

// ---------------------------------------------------------------------------
// start

fn bench_start(
    image: &BusyboxImage,
    runc: Option<&Runc>,
    docker: Option<&Dockerd>,
    iters: usize,
    warmup: usize,
) -> Res<Section> {
    let mut d = jarvisd_with_image("ctr-start", image)?;
    fs::write(
        d.units.join("box.toml"),
        container_unit("[\"true\"]", false),
    )?;
    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
    wait_exited(&d, "box")?;
    let unit = vec!["box".to_string()];
    // runc again, on the spec jarvisd wrote for `box`.
    let same_spec = match runc {
        Some(_) => {
            let spec = d.dir.path().join("state/containers/box/config.json");
            match Runc::with_spec(d.dir.path(), &image.rootfs, &spec) {
                Ok(r) => {
                    progress!("container start: runc with jarvis's spec: {}", r.describe);
                    Some(r)
                }
                Err(e) => {
                    progress!("container start: runc with jarvis's spec failed: {e}");
                    None
                }
            }
        }
        None => None,
    };

    // Variants 0 and 1 come from the same run.
    let sides: Vec<usize> = [0usize, 2, 3, 4, 5]
        .into_iter()
        .filter(|&v| match v {
            3 => runc.is_some(),
            4 => docker.is_some(),
            5 => same_spec.is_some(),
            _ => true,
        })
        .collect();
    progress!(
        "container start: {iters} alternating iterations of {} sides (+{warmup} warm-up)",
        sides.len()
    );
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); START_VARIANTS.len()];
    let mut ctl_exited = Vec::new();
    let mut next_report = 20;
    let started = Instant::now();
    for i in 0..warmup + iters {
        for k in 0..sides.len() {
            let v = sides[(i + k) % sides.len()];
            let keep = i >= warmup;
            match v {
                0 => {
                    let t = Instant::now();
                    start_units(&d.socket, &unit)?;
                    wait_ready(&d.socket)?;
                    let ready = elapsed_ns(t);
                    wait_exited(&d, "box")?;
                    let exited = elapsed_ns(t);
                    if keep {
                        samples[0].push(ready);
                        samples[1].push(exited);
                    }
                }
                2 => {
                    let t = Instant::now();
                    d.ctl(&["start", "box"])?;
                    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
                    let ready = elapsed_ns(t);
                    wait_exited(&d, "box")?;
                    if keep {
                        samples[2].push(ready);
                        ctl_exited.push(elapsed_ns(t));
                    }
                }
                3 => {
                    let r = runc.expect("only with runc");
                    let t = Instant::now();
                    r.run()?;
                    if keep {
                        samples[3].push(elapsed_ns(t));
                    }
                }
                5 => {
                    let r = same_spec.as_ref().expect("only with runc");
                    let t = Instant::now();
                    r.run()?;
                    if keep {
                        samples[5].push(elapsed_ns(t));
                    }
                }
                _ => {
                    let dk = docker.expect("only with docker");
                    let t = Instant::now();
                    dk.run_true()?;
                    if keep {
                        samples[4].push(elapsed_ns(t));
                    }
                }
            }
        }
        d.check_alive()?;
        let done = (i + 1).saturating_sub(warmup);
        if done > 0 && (done == next_report || done == iters) {
            next_report += 20;
            let s: Vec<String> = START_VARIANTS
                .iter()
                .zip(&samples)
                .filter(|(_, v)| !v.is_empty())
                .map(|((name, _), v)| format!("{name} {} ms", ms(median_of(v))))
                .collect();
            progress!(
                "container start: {done}/{iters} ({:.1} s) medians: {}",
                started.elapsed().as_secs_f64(),
                s.join(", ")
            );
        }
    }
    let log = fs::read_to_string(d.dir.path().join("state/logs/box.log")).unwrap_or_default();
    let runs = log
        .lines()
        .filter(|l| l.contains("exited with code 0"))
        .count();
    let same_spec_left = same_spec.as_ref().map(|r| r.leftovers());
    let left = d.stop()?;
    let mounts = mounts_under(d.dir.path());
    progress!("container start: jarvisd stopped; {}", left.describe());

    // A peer that is not installed (docker) was not run: its row says so.
    let not_run = Summary {
        n: 0,
        min: 0,
        p50: 0,
        p95: 0,
        p99: 0,
        max: 0,
        mean: 0.0,
    };
    let sums: Vec<Summary> = samples
        .iter()
        .map(|v| if v.is_empty() { not_run } else { summarize(v) })
        .collect();
    let base = if runc.is_some() { sums[3].p50 } else { 0 };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### start: `true` in a container, start to running/completed\n"
    );
    let _ = writeln!(
        md,
        "{iters} iterations per side (after {warmup} warm-up), the sides alternating in rotating order within each iteration; \
         times in ms; ratio = median / runc's median. The jarvis unit `box`: `[container] image = \"busybox:local\"`, \
         `command = [\"true\"]`, `network = \"none\"` (runc's spec and `--network none` also give a new network namespace), \
         restart policy `never`. Each jarvis iteration waits for `exited (0)` before the next side runs.\n"
    );
    let _ = writeln!(
        md,
        "| side | what is timed | median | p95 | p99 | max | ratio vs runc |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for ((name, what), s) in START_VARIANTS.iter().zip(&sums) {
        if s.n == 0 {
            let _ = writeln!(md, "| {name} | {what} | - | - | - | - | not run |");
            continue;
        }
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
    let ce = summarize(&ctl_exited);
    let _ = writeln!(
        md,
        "\nThe jarvisctl side to `exited (0)`: median {} ms, p95 {} ms. jarvisd logged {runs} runs of `box` that exited 0 \
         ({} expected). After SIGTERM: {}; mounts left under its state dir: {mounts}.",
        ms(ce.p50),
        ms(ce.p95),
        2 * (warmup + iters) + 1,
        left.describe()
    );

    let mut targets = Vec::new();
    if runc.is_some() {
        let r = sums[0].p50 as f64 / sums[3].p50.max(1) as f64;
        targets.push(Target {
            what: "container start, jarvis (socket Start+Wait) median vs `runc run` median",
            limit: format!("≤ {TARGET_START_RATIO}×"),
            measured: format!("{:.2}× ({} vs {} ms)", r, ms(sums[0].p50), ms(sums[3].p50)),
            pass: r <= TARGET_START_RATIO,
        });
        let r1 = sums[1].p50 as f64 / sums[3].p50.max(1) as f64;
        targets.push(Target {
            what: "container start, jarvis to exited (like `runc run`: incl. delete+unmount) vs `runc run`",
            limit: format!("≤ {TARGET_START_RATIO}×"),
            measured: format!(
                "{:.2}× ({} vs {} ms)",
                r1,
                ms(sums[1].p50),
                ms(sums[3].p50)
            ),
            pass: r1 <= TARGET_START_RATIO,
        });
    }
    if same_spec.is_some() && !samples[5].is_empty() {
        let r = sums[0].p50 as f64 / sums[5].p50.max(1) as f64;
        targets.push(Target {
            what: "container start, jarvis (socket Start+Wait) median vs `runc run` of jarvis's own config.json (same seccomp profile, capabilities, mounts)",
            limit: format!("≤ {TARGET_START_RATIO}×"),
            measured: format!("{:.2}× ({} vs {} ms)", r, ms(sums[0].p50), ms(sums[5].p50)),
            pass: r <= TARGET_START_RATIO,
        });
    }
    if let Some(l) = &same_spec_left {
        let _ = writeln!(
            md,
            "
runc with jarvis's spec: {l}."
        );
    }
    let mut variants = serde_json::Map::new();
    for (((name, what), s), v) in START_VARIANTS.iter().zip(&sums).zip(&samples) {
        variants.insert(
            name.to_string(),
            json!({ "what": what, "summary": s.json(), "ratio_p50_vs_runc": if base > 0 { json!(s.p50 as f64 / base as f64) } else { Value::Null }, "samples_ns": v }),
        );
    }
    variants.insert(
        "jarvisctl to exited".into(),
        json!({ "summary": ce.json(), "samples_ns": ctl_exited }),
    );
    Ok(Section {
        markdown: md,
        json: json!({ "iterations": iters, "warmup": warmup, "variants": variants, "jarvis_runs_logged": runs, "leftovers": left.json(), "mounts_left": mounts }),
        targets,
    })
}

pub(crate) fn mounts_under(dir: &Path) -> usize {
    let base = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|t| t.starts_with(&base)))
        .count()
}

// ---------------------------------------------------------------------------
// memory

/// One side's reading with N containers running.
struct MemRound {
    side: &'static str,
    round: usize,
    /// The shim of the first container while it ran alone: its Pss then
    /// shares the binary's pages with fewer processes.
    single: ProcMem,
    /// The per-container processes (shims), with all N running.
    shims: Vec<ProcMem>,
    /// Other processes per container besides the workload, if any.
    extra_per_container: Vec<String>,
    /// The daemon(s) before and after (summed for docker).
    daemons_before: ProcMem,
    daemons_after: ProcMem,
    /// Time to bring up the N - 1 containers after the first.
    up_ns: u64,
    /// A breakdown of one shim by mapping.
    breakdown: Vec<(String, u64, u64, u64)>,
}

impl MemRound {
    fn json(&self) -> Value {
        json!({
            "side": self.side, "round": self.round, "up_rest_ns": self.up_ns, "single": self.single.json(),
            "shims": self.shims.iter().map(|m| m.json()).collect::<Vec<_>>(),
            "extra_per_container": self.extra_per_container,
            "daemons_before": self.daemons_before.json(), "daemons_after": self.daemons_after.json(),
            "breakdown": self.breakdown.iter().map(|(n, r, p, u)| json!({"mapping": n, "rss": r, "pss": p, "private": u})).collect::<Vec<_>>(),
        })
    }
}

fn jarvis_mem_round(d: &mut Daemon, names: &[String], round: usize) -> Res<MemRound> {
    let before = ProcMem::of(d.pid())?;
    // The first container alone, then the rest.
    start_units(&d.socket, &names[..1])?;
    wait_ready(&d.socket)?;
    std::thread::sleep(Duration::from_millis(500));
    let first = unit_states(&d.socket, &names[..1])?;
    let first_pid = first[0].1.ok_or("the first unit has no pid")?;
    let single = ProcMem::of(ppid_of(first_pid).ok_or("no shim")?)?;
    let t = Instant::now();
    start_units(&d.socket, &names[1..])?;
    wait_ready(&d.socket)?;
    let up_ns = elapsed_ns(t);
    std::thread::sleep(Duration::from_millis(1000));
    let states = unit_states(&d.socket, names)?;
    let procs = processes();
    let mut shims = Vec::new();
    let mut extra = Vec::new();
    let mut breakdown = Vec::new();
    for (name, (state, pid, _)) in names.iter().zip(&states) {
        let pid = pid.ok_or_else(|| format!("{name} is {state} without a pid"))?;
        if state != "running" {
            return Err(format!("{name} is {state}").into());
        }
        let shim = ppid_of(pid).ok_or("no parent")?;
        let sp = procs.iter().find(|p| p.pid == shim).ok_or("shim gone")?;
        if !sp.cmdline.contains(jarvis_shim::SHIM_ARG) || sp.ppid != d.pid() {
            return Err(format!(
                "{name}: the parent of {pid} is {shim} {:?}, not a shim of jarvisd",
                sp.cmdline
            )
            .into());
        }
        // Anything else the shim runs besides the container's init.
        for p in procs.iter().filter(|p| p.ppid == shim && p.pid != pid) {
            extra.push(format!("{name}: {} {}", p.pid, p.comm));
        }
        shims.push(ProcMem::of(shim)?);
        if breakdown.is_empty() {
            breakdown = smaps_by_mapping(shim);
        }
    }
    // Besides the shims, jarvisd's own children: none expected.
    for p in procs
        .iter()
        .filter(|p| p.ppid == d.pid() && !p.cmdline.contains(jarvis_shim::SHIM_ARG))
    {
        extra.push(format!("jarvisd child {} {}", p.pid, p.comm));
    }
    let after = ProcMem::of(d.pid())?;
    match request(
        &d.socket,
        &Request::Stop {
            units: names.to_vec(),
        },
    )? {
        Response::Done { .. } => {}
        other => return Err(format!("stop: {other:?}").into()),
    }
    Ok(MemRound {
        side: "jarvis",
        round,
        single,
        shims,
        extra_per_container: extra,
        daemons_before: before,
        daemons_after: after,
        up_ns,
        breakdown,
    })
}

fn docker_mem_round(dk: &Dockerd, n: usize, round: usize) -> Res<MemRound> {
    let daemons = |dk: &Dockerd| -> Res<ProcMem> {
        let mut m = ProcMem::of(dk.pid().ok_or("dockerd gone")?)?;
        m.add(&ProcMem::of(dk.containerd_pid().ok_or("no containerd")?)?);
        Ok(m)
    };
    let before = daemons(dk)?;
    let run = || -> Res<String> {
        Ok(dk
            .cli(&[
                "run",
                "-d",
                "--network",
                "none",
                "busybox:local",
                "sleep",
                "100000",
            ])?
            .trim()
            .to_string())
    };
    // The first container alone, then the rest.
    let mut ids = vec![run()?];
    std::thread::sleep(Duration::from_millis(500));
    let single = match dk.shims().as_slice() {
        [one] => ProcMem::of(one.pid)?,
        other => return Err(format!("{} containerd shims for 1 container", other.len()).into()),
    };
    let t = Instant::now();
    for _ in 1..n {
        ids.push(run()?);
    }
    let up_ns = elapsed_ns(t);
    std::thread::sleep(Duration::from_millis(1000));
    let shim_procs = dk.shims();
    if shim_procs.len() != n {
        return Err(format!("{} containerd shims for {n} containers", shim_procs.len()).into());
    }
    let procs = processes();
    let mut extra = Vec::new();
    for s in &shim_procs {
        let kids: Vec<&Proc> = procs.iter().filter(|p| p.ppid == s.pid).collect();
        // The container's init (sleep) is the workload; anything else is extra.
        for k in kids.iter().filter(|k| k.comm != "sleep") {
            extra.push(format!("shim {}: {} {}", s.pid, k.pid, k.comm));
        }
    }
    let shims: Vec<ProcMem> = shim_procs
        .iter()
        .map(|p| ProcMem::of(p.pid))
        .collect::<Res<_>>()?;
    let breakdown = smaps_by_mapping(shim_procs[0].pid);
    let after = daemons(dk)?;
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    dk.cli(&args)?;
    Ok(MemRound {
        side: "docker",
        round,
        single,
        shims,
        extra_per_container: extra,
        daemons_before: before,
        daemons_after: after,
        up_ns,
        breakdown,
    })
}

fn bench_ctr_memory(image: &BusyboxImage, docker: Option<&Dockerd>, rounds: usize) -> Res<Section> {
    let n = MEM_CONTAINERS;
    progress!("container memory: {n} running containers per side, {rounds} alternating round(s)");
    let mut d = Daemon::start("ctr-mem", &[])?;
    std::thread::sleep(Duration::from_millis(300));
    let fresh = ProcMem::of(d.pid())?;
    // The sealed copy of jarvisd that it runs from (container shims run from
    // a sealed copy of jarvis-cshim, or of jarvisd where that is not
    // installed): a memfd, all of it in RAM (shmem) once, whatever is mapped.
    let memfd_bytes = fs::metadata(format!("/proc/{}/exe", d.pid()))?.len();
    d.ctl(&[
        "image",
        "import",
        image.layout.to_str().ok_or("layout path")?,
        "--tag",
        "busybox:local",
    ])?;
    let names: Vec<String> = (0..n).map(|i| format!("box-{i:02}")).collect();
    for name in &names {
        fs::write(
            d.units.join(format!("{name}.toml")),
            container_unit("[\"sleep\", \"100000\"]", true),
        )?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle = ProcMem::of(d.pid())?;
    // A first `up` loads the units and runs them once (a warm-up); they are
    // stopped again and each round starts them by request.
    d.ctl(&["up", "--wait", "--timeout", "60s"])?;
    d.ctl(&{
        let mut a = vec!["stop"];
        a.extend(names.iter().map(String::as_str));
        a
    })?;
    let mut all: Vec<MemRound> = Vec::new();
    for r in 0..rounds {
        let order: [&str; 2] = if r % 2 == 0 {
            ["jarvis", "docker"]
        } else {
            ["docker", "jarvis"]
        };
        for side in order {
            let m = match side {
                "jarvis" => jarvis_mem_round(&mut d, &names, r + 1)?,
                _ => match docker {
                    Some(dk) => docker_mem_round(dk, n, r + 1)?,
                    None => continue,
                },
            };
            progress!(
                "container memory: round {} {}: shim RSS median {} MB, Pss median {} MB; daemon(s) {} → {} MB RSS",
                r + 1,
                m.side,
                mb(median_of(&m.shims.iter().map(|s| s.rss).collect::<Vec<_>>())),
                mb(median_of(&m.shims.iter().map(|s| s.pss).collect::<Vec<_>>())),
                mb(m.daemons_before.rss),
                mb(m.daemons_after.rss)
            );
            all.push(m);
        }
    }
    let left = d.stop()?;
    let mounts = mounts_under(d.dir.path());
    progress!("container memory: jarvisd stopped; {}", left.describe());

    let mut md = String::new();
    let _ = writeln!(
        md,
        "### memory: per running container\n\n{n} containers running `sleep 100000` per side, {rounds} round(s), the sides alternating \
         (round 1 jarvis first, round 2 docker first). Each side first starts one container alone and reads its shim (Pss shares \
         the binary's pages among fewer processes then), then starts the other {m}. jarvis: {n} container units (same image, \
         `network = \"none\"`) started with `Request::Start` + `Wait`; per container jarvis adds one process, the shim (`jarvis-cshim` run from the sealed copy jarvisd \
         holds, named `jarvis-shim UNIT`, the parent of the container's init). docker: {n} × `docker run -d --network none busybox:local sleep 100000`; per container containerd adds a \
         `containerd-shim-runc-v2`. Read 1 s after the last container was up: VmRSS (and its anon/file/shmem split) from /proc/PID/status, \
         Pss and private (USS) from /proc/PID/smaps_rollup. MB = 10^6 bytes; per-shim figures are medians over the {n} shims (all in the JSON).\n",
        m = n - 1
    );
    let _ = writeln!(
        md,
        "| side | round | shims | shim VmRSS | shim Pss | shim private | RssAnon | RssFile | RssShmem | Pss of all {n} shims | Pss of the first shim while alone | VmRSS of it | up of the other {} (ms) |",
        n - 1
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for m in &all {
        let col =
            |f: fn(&ProcMem) -> u64| mb(median_of(&m.shims.iter().map(f).collect::<Vec<_>>()));
        let total: u64 = m.shims.iter().map(|s| s.pss).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.side,
            m.round,
            m.shims.len(),
            col(|s| s.rss),
            col(|s| s.pss),
            col(|s| s.uss),
            col(|s| s.anon),
            col(|s| s.file),
            col(|s| s.shmem),
            mb(total),
            mb(m.single.pss),
            mb(m.single.rss),
            ms(m.up_ns)
        );
    }
    let _ = writeln!(
        md,
        "\nThe daemons, before the {n} containers and with them running (jarvis: jarvisd; docker: dockerd + containerd), MB:\n"
    );
    let _ = writeln!(
        md,
        "| side | round | VmRSS before | VmRSS with {n} | Pss before | Pss with {n} | VmRSS growth per container |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in &all {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.side,
            m.round,
            mb(m.daemons_before.rss),
            mb(m.daemons_after.rss),
            mb(m.daemons_before.pss),
            mb(m.daemons_after.pss),
            mb(m.daemons_after.rss.saturating_sub(m.daemons_before.rss) / n as u64)
        );
    }
    let _ = writeln!(
        md,
        "\njarvisd fresh (no image, no unit): VmRSS {} MB (RssAnon {} MB), Pss {} MB; right after `image import` of the 2 MB image: \
         VmRSS {} MB (RssAnon {} MB), Pss {} MB. Not in any RSS above: the sealed copy of jarvisd that jarvisd and every shim \
         run from is a memfd of {} MB, all of it in RAM (shmem) once per host whatever is mapped; only the pages a process \
         touched show in its RssShmem.",
        mb(fresh.rss),
        mb(fresh.anon),
        mb(fresh.pss),
        mb(idle.rss),
        mb(idle.anon),
        mb(idle.pss),
        mb(memfd_bytes)
    );
    for side in ["jarvis", "docker"] {
        if let Some(m) = all.iter().find(|m| m.side == side) {
            let _ = writeln!(
                md,
                "\nWhere one {side} shim's memory is (round {}; /proc/PID/smaps by mapping, top 6 by Rss; MB):\n",
                m.round
            );
            let _ = writeln!(md, "| mapping | Rss | Pss | private |");
            let _ = writeln!(md, "| --- | ---: | ---: | ---: |");
            for (name, r, p, u) in m.breakdown.iter().take(6) {
                let _ = writeln!(md, "| `{name}` | {} | {} | {} |", mb(*r), mb(*p), mb(*u));
            }
        }
    }
    let extras: Vec<&String> = all.iter().flat_map(|m| &m.extra_per_container).collect();
    let _ = writeln!(
        md,
        "\nProcesses per container besides the workload and its shim: {}. jarvisd after SIGTERM: {}; mounts left: {mounts}.",
        if extras.is_empty() {
            "none on either side".to_string()
        } else {
            extras
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        left.describe()
    );

    let jarvis: Vec<&MemRound> = all.iter().filter(|m| m.side == "jarvis").collect();
    let pss: Vec<u64> = jarvis
        .iter()
        .flat_map(|m| m.shims.iter().map(|s| s.pss))
        .collect();
    let rss: Vec<u64> = jarvis
        .iter()
        .flat_map(|m| m.shims.iter().map(|s| s.rss))
        .collect();
    let (pss, rss) = (median_of(&pss), median_of(&rss));
    let docker_pss: Vec<u64> = all
        .iter()
        .filter(|m| m.side == "docker")
        .flat_map(|m| m.shims.iter().map(|s| s.pss))
        .collect();
    let docker_note = if docker_pss.is_empty() {
        String::new()
    } else {
        format!("; docker's shim {} MB", mb(median_of(&docker_pss)))
    };
    Ok(Section {
        markdown: md,
        json: json!({
            "containers": n, "rounds": all.iter().map(|m| m.json()).collect::<Vec<_>>(),
            "jarvisd_fresh": fresh.json(), "jarvisd_idle_after_import": idle.json(), "memfd_bytes": memfd_bytes, "leftovers": left.json(), "mounts_left": mounts,
        }),
        targets: vec![
            Target {
                what: "memory per running container: jarvis shim Pss (median)",
                limit: format!("< {} MB", mb(TARGET_PER_CONTAINER_BYTES)),
                measured: format!("{} MB{docker_note}", mb(pss)),
                pass: pss < TARGET_PER_CONTAINER_BYTES,
            },
            Target {
                what: "memory per running container: jarvis shim VmRSS (median)",
                limit: format!("< {} MB", mb(TARGET_PER_CONTAINER_BYTES)),
                measured: format!("{} MB", mb(rss)),
                pass: rss < TARGET_PER_CONTAINER_BYTES,
            },
        ],
    })
}
