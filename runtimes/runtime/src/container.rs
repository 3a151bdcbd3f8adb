//! Container units: an OCI container from an image in the store (pulled
//! when missing), its bundle prepared by jarvis-container, started and
//! deleted by the shim through libcontainer.
//!
//! libcontainer owns the container's cgroup: it creates
//! `/<parent>/<unit>` and writes the spec's `linux.resources`, the one
//! translation of `[resources]` for a container, and deletes the cgroup
//! with the container. This runtime creates no cgroup for a container; it
//! only removes one an earlier run left (a native run's, say, whose
//! limits would otherwise stay), so each run starts from a fresh one.
//!
//! A bridged run's network (its namespace, addresses, ports and names) is
//! set up before the bundle and removed once the run is over, when its
//! shim is gone (see [`crate::net`]).

use std::sync::Arc;

use jarvis_container::seccomp::bpf::BpfCache;
use jarvis_shim::{ContainerRun, Payload, CEXEC_ARG};
use jarvis_unit::{Exec, Unit};

use crate::hardware::{resolve_devices, RunHardware};
use crate::net::Net;
use crate::{
    blocking, shim, BoxFuture, Config, Exit, Running, StartError, StartFailure, StartSpec,
};

/// Container units (see the module docs).
#[derive(Clone)]
pub struct ContainerRuntime {
    cfg: Arc<Config>,
    net: Arc<Net>,
    /// Seccomp profiles compiled to BPF, by profile.
    bpf: Arc<BpfCache>,
}

/// Distinct seccomp profiles kept compiled: a unit's profile depends on
/// its capabilities only, so a few cover every start.
const BPF_CACHE: usize = 8;

impl ContainerRuntime {
    pub(crate) fn new(cfg: Arc<Config>, net: Arc<Net>) -> ContainerRuntime {
        ContainerRuntime {
            cfg,
            net,
            bpf: Arc::new(BpfCache::new(BPF_CACHE)),
        }
    }

    /// `jarvisctl exec`: as an exec check (`__cexec` of the container shim, which joins
    /// the container with the init's capabilities and seccomp filter, and
    /// its user and groups unless `user` names another in the container's
    /// own `/etc/passwd`), with the caller's descriptors as its stdio. A
    /// terminal on stdin that no session has yet (`exec -t`'s pty) becomes
    /// the command's controlling terminal; the caller's own terminal (`exec
    /// -i` from a shell) stays the caller's. An unknown user is an error
    /// that names it and the unit, and the command does not run.
    pub(crate) fn exec(
        &self,
        unit: &Unit,
        argv: Vec<String>,
        user: Option<String>,
        stdio: crate::ExecStdio,
    ) -> BoxFuture<Result<i32, String>> {
        let mut cmd = tokio::process::Command::new(self.cfg.container_exe());
        cmd.arg(CEXEC_ARG);
        if let Some(user) = &user {
            cmd.args(["--user", user]);
        }
        if nix::unistd::isatty(std::os::fd::AsRawFd::as_raw_fd(&stdio.stdin)).unwrap_or(false) {
            cmd.arg("--tty");
        }
        cmd.arg(&unit.name)
            .arg(self.cfg.container_state_root())
            .args(&argv)
            .stdin(std::process::Stdio::from(stdio.stdin))
            .stdout(std::process::Stdio::from(stdio.stdout))
            .stderr(std::process::Stdio::from(stdio.stderr))
            .kill_on_drop(true);
        Box::pin(async move {
            let what = argv.join(" ");
            let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
            // The parent's copies of the caller's descriptors go now.
            drop(cmd);
            let guard = child.id().map(|pid| KillTree(pid as i32));
            let status = child.wait().await.map_err(|e| format!("{what}: {e}"))?;
            std::mem::forget(guard);
            Ok(crate::exit_code(status))
        })
    }
}

/// Kills the exec helper's children (the command in the container, a
/// child of the helper) and then the helper, when the caller gives up.
struct KillTree(i32);

impl Drop for KillTree {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.0))
            .unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// Gets the image (pulling it if the store lacks it), clears what an
/// earlier run left, mounts the rootfs and writes the bundle, its seccomp
/// profile compiled to BPF (once per distinct profile: `bpf`) so the
/// container's init loads a ready program.
async fn prepare(
    cfg: &Config,
    unit: &Unit,
    hw: &RunHardware,
    net: jarvis_container::NetSetup,
    notes: &crate::Notes,
    bpf: Arc<BpfCache>,
) -> Result<ContainerRun, String> {
    let Exec::Container(c) = &unit.exec else {
        return Err(format!("unit {} is not a container unit", unit.name));
    };
    let image = {
        let (store, reference) = (cfg.images.clone(), c.image.clone());
        blocking(move || store.get(&reference)).await
    }
    .map_err(|e| format!("image {}: {e}", c.image))?;
    let image = match image {
        Some(img) => img,
        None => {
            notes(&format!("pulling image {}", c.image));
            let img = cfg
                .images
                .pull(&c.image, &cfg.pull, |_| {})
                .await
                .map_err(|e| format!("cannot pull image {}: {e}", c.image))?;
            notes(&format!(
                "pulled {} ({})",
                img.reference, img.manifest_digest
            ));
            img
        }
    };
    let mut unit = unit.clone();
    let (roots, hw2) = (cfg.roots.clone(), hw.clone());
    let extras = blocking(move || hw2.container_extras(&roots)).await?;
    for (k, v) in hw.env() {
        unit.env.insert(k, v);
    }
    if let Some(lib) = hw.library_path(&extras) {
        unit.env.entry("LD_LIBRARY_PATH".into()).or_insert(lib);
    }
    let (cfg, id) = (cfg.clone(), unit.name.clone());
    blocking(move || {
        // A cgroup an earlier run left goes first: libcontainer would
        // reuse it with whatever limits it has.
        shim::remove_cgroup(&cfg, &unit.name)
            .map_err(|e| format!("cannot clear the cgroup an earlier run left: {e}"))?;
        let dir = cfg.container_dir(&unit.name);
        let state_root = cfg.container_state_root();
        let cgroups_path = cfg.cgroup(&unit.name).path().to_string();
        let secrets_dir = cfg.secrets_dir(&unit.name);
        if !unit.secrets.is_empty() {
            crate::inputs::secrets_parent(&cfg, &unit.name).map_err(|e| e.to_string())?;
        }
        // Values from an encrypted env file are in the spec's environment:
        // it stays in memory.
        let spec_dir = crate::inputs::holds_secret_env(&unit).then(|| cfg.spec_dir(&unit.name));
        if spec_dir.is_some() {
            crate::inputs::spec_parent(&cfg, &unit.name).map_err(|e| e.to_string())?;
        }
        // Encrypted sources are held in memory until the tmpfs has them.
        let decrypted =
            crate::inputs::decrypt_secrets(&cfg, &unit.secrets).map_err(|e| e.to_string())?;
        unit.secrets = decrypted.secrets.clone();
        let input = jarvis_container::PrepareInput {
            unit: &unit,
            image: &image.config,
            layers: &image.layers,
            dir: &dir,
            state_root: &state_root,
            cgroups_path: &cgroups_path,
            extras: &extras,
            net: &net,
            volume_dir: &cfg.volume_dir,
            secrets_dir: &secrets_dir,
        };
        let prepared =
            jarvis_container::prepare::prepare_bundle_cached(&input, spec_dir.as_deref(), &bpf)
                .map_err(|e| e.to_string())?;
        Ok(ContainerRun {
            id,
            bundle: prepared.bundle,
            state_root,
            argv: prepared.argv,
        })
    })
    .await
}

impl crate::Runtime for ContainerRuntime {
    fn start(&self, spec: StartSpec) -> BoxFuture<Result<Running, StartError>> {
        let (cfg, net, bpf) = (self.cfg.clone(), self.net.clone(), self.bpf.clone());
        Box::pin(async move {
            let StartSpec {
                unit,
                placement,
                log,
                notes,
                ..
            } = spec;
            // Env files are read at each start (a missing one fails it).
            let unit = if unit.env_file.is_empty() {
                unit
            } else {
                let cfg = cfg.clone();
                blocking(move || crate::inputs::with_env_files(&cfg, unit)).await?
            };
            // The devices as they are now: one may have gone (or moved)
            // since the unit was found ready.
            let devices = blocking({
                let (roots, unit) = (cfg.roots.clone(), unit.clone());
                move || resolve_devices(&roots, &unit)
            })
            .await
            .map_err(StartError::Deferred)?;
            // A run never shares its cgroup with processes no shim watches
            // (left by a run whose shim died): they go first.
            let cg = cfg.cgroup(&unit.name);
            blocking(move || cg.kill_all()).await.map_err(|e| {
                StartError::Failed(StartFailure {
                    reason: e.to_string(),
                    transient: e.is_transient(),
                })
            })?;
            let hw = RunHardware { placement, devices };
            let Exec::Container(c) = &unit.exec else {
                return Err(StartError::failed(format!(
                    "unit {} is not a container unit",
                    unit.name
                )));
            };
            let setup = net.attach(&unit, c).await?;
            let started = match prepare(&cfg, &unit, &hw, setup, &notes, bpf).await {
                Ok(run) => {
                    shim::start(
                        &cfg,
                        &unit.name,
                        Payload::Container(run),
                        None,
                        log,
                        hw.device_paths(),
                        // What goes when the run is over: its secrets, its
                        // spec in memory.
                        !unit.secrets.is_empty() || crate::inputs::holds_secret_env(&unit),
                    )
                    .await
                }
                Err(e) => Err(StartError::failed(e)),
            };
            if started.is_err() {
                net.detach(&unit.name).await;
                let (cfg, name) = (cfg.clone(), unit.name.clone());
                blocking(move || crate::inputs::clear(&cfg, &name)).await;
            }
            started
        })
    }

    /// The shim's end, then the run's network goes (its namespace died
    /// with the container; the links, ports, rules and names are removed).
    fn wait(&self, unit: &str, run: Running) -> BoxFuture<Exit> {
        let (net, name) = (self.net.clone(), unit.to_string());
        let ended = shim::wait(&self.cfg, unit, run);
        Box::pin(async move {
            let exit = ended.await;
            net.detach(&name).await;
            exit
        })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    /// Inside the container, through the container shim's exec helper
    /// (`__cexec`), which joins it (libcontainer forks; jarvisd stays out
    /// of that).
    fn exec_probe(&self, unit: &Unit, argv: Vec<String>) -> BoxFuture<Result<String, String>> {
        let mut cmd = tokio::process::Command::new(self.cfg.container_exe());
        cmd.arg(CEXEC_ARG)
            .arg(&unit.name)
            .arg(self.cfg.container_state_root())
            .args(&argv)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        Box::pin(async move {
            let what = argv.join(" ");
            let out = cmd.output().await.map_err(|e| format!("{what}: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if out.status.success() {
                Ok(text)
            } else {
                Err(format!("{what} {}: {text}{err}", out.status))
            }
        })
    }

    fn remove(&self, unit: &str) -> BoxFuture<()> {
        self.cfg.shims.dismiss(unit);
        let (cfg, net, unit) = (self.cfg.clone(), self.net.clone(), unit.to_string());
        Box::pin(async move {
            net.detach(&unit).await;
            let r = blocking({
                let unit = unit.clone();
                move || {
                    let left = jarvis_container::clear(
                        &unit,
                        &cfg.container_state_root(),
                        &cfg.container_dir(&unit),
                    )
                    .map_err(|e| e.to_string());
                    let cgroup = shim::remove_cgroup(&cfg, &unit);
                    crate::inputs::clear(&cfg, &unit);
                    left.and(cgroup)
                }
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(unit, error = %e, "cannot remove what the unit left");
            }
        })
    }
}
