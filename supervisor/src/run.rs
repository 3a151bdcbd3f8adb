//! Carrying out effects that involve processes: one task per run of a unit
//! (start its shim, wait for the shim, report the exit), and one task per
//! health-checked run.
//!
//! These tasks talk to the event loop only through [`Msg`]s; they never
//! touch a unit's state.

use std::path::PathBuf;
use std::sync::Arc;

use jarvis_native::{LaunchSpec, UnitCgroup};
use jarvis_shim::{ContainerRun, ExitRecord, Payload, ShimSpec, Started};
use jarvis_unit::{Exec, Probe, Unit};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::msg::Msg;
use crate::hardware::{self, RunHardware};
use crate::logs::UnitLog;
use crate::machine::{Event, ExitInfo};
use crate::placement::Placement;

/// The environment every unit starts from; `[env]` adds to it and wins.
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone)]
pub struct Runtime {
    /// The binary re-executed as the launcher (jarvisd itself).
    pub launcher: PathBuf,
    /// Units' cgroups are `/<cgroup_parent>/<unit>`.
    pub cgroup_parent: String,
    /// Where shims keep their run and exit records.
    pub run_dir: PathBuf,
    /// Where containers' bundles and libcontainer's state live.
    pub state_dir: PathBuf,
    /// Where /sys, /proc and /dev are (JARVIS_SYSFS_ROOT, ... for tests).
    pub roots: jarvis_hardware::Roots,
    /// Container images, and how to pull them.
    pub images: jarvis_image::ImageStore,
    pub pull: jarvis_image::PullOptions,
}

pub fn exit_info(rec: ExitRecord) -> ExitInfo {
    ExitInfo {
        code: rec.code,
        signal: rec.signal,
        oom_killed: rec.oom_killed,
    }
}

impl Runtime {
    pub fn cgroup(&self, unit: &str) -> UnitCgroup {
        UnitCgroup::open(&self.cgroup_parent, unit)
    }

    /// The launch spec for `argv` with the unit's identity and privileges.
    fn spec(&self, unit: &Unit, argv: Vec<String>, cgroup: &UnitCgroup) -> LaunchSpec {
        let (user, group, supplementary_groups, working_dir) = match &unit.exec {
            Exec::Native(n) => (
                n.user.clone(),
                n.group.clone(),
                n.supplementary_groups.clone(),
                n.working_dir.clone(),
            ),
            Exec::Container(_) => (None, None, vec![], None),
        };
        let mut env: Vec<(String, String)> = vec![("PATH".into(), BASE_PATH.into())];
        if let Some(account) = user.as_deref().and_then(lookup_user) {
            env.push(("HOME".into(), account.home));
            env.push(("USER".into(), account.name.clone()));
            env.push(("LOGNAME".into(), account.name));
        } else if user.is_none() {
            env.push(("HOME".into(), "/root".into()));
            env.push(("USER".into(), "root".into()));
            env.push(("LOGNAME".into(), "root".into()));
        }
        env.push(("JARVIS_UNIT".into(), unit.name.clone()));
        for (k, v) in &unit.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        LaunchSpec {
            argv,
            env,
            user,
            group,
            supplementary_groups,
            working_dir,
            capabilities: unit.security.capabilities.clone(),
            no_new_privileges: unit.security.no_new_privileges,
            cgroup_procs: cgroup.procs_files(),
        }
    }

    /// Runs one incarnation of `unit` to its end: creates or refreshes the
    /// cgroup, starts a shim that starts the process, reports `Spawned` (or
    /// `SpawnFailed`), then `Exited` once the shim has emptied the cgroup.
    pub fn start(
        &self,
        unit: &Unit,
        gen: u64,
        placement: Option<Placement>,
        log: Arc<UnitLog>,
        tx: UnboundedSender<Msg>,
    ) {
        let rt = self.clone();
        let unit = unit.clone();
        tokio::spawn(async move {
            let send = |event| {
                let _ = tx.send(Msg::Unit {
                    name: unit.name.clone(),
                    event,
                });
            };
            let cgroup = match blocking({
                let (parent, name, res) = (
                    rt.cgroup_parent.clone(),
                    unit.name.clone(),
                    unit.resources.clone(),
                );
                move || UnitCgroup::create(&parent, &name, &res)
            })
            .await
            {
                Ok(cg) => cg,
                Err(e) => {
                    log.note(&format!("cannot start: {e}"));
                    return send(Event::SpawnFailed {
                        gen,
                        reason: e.to_string(),
                    });
                }
            };
            // The devices as they are now: one may have gone (or moved)
            // since the unit was found ready.
            let devices = blocking({
                let (roots, unit) = (rt.roots.clone(), unit.clone());
                move || hardware::resolve_devices(&roots, &unit)
            })
            .await;
            let hw = match devices {
                Ok(devices) => RunHardware { placement, devices },
                Err(reason) => return send(Event::SpawnDeferred { gen, reason }),
            };
            let payload = match &unit.exec {
                Exec::Native(native) => {
                    let mut spec = rt.spec(&unit, native.command.clone(), &cgroup);
                    for (k, v) in hw.env() {
                        spec.env.retain(|(ek, _)| *ek != k);
                        spec.env.push((k, v));
                    }
                    if spec.user.is_some() {
                        spec.supplementary_groups
                            .extend(hw.groups().into_iter().map(|g| g.to_string()));
                    }
                    let linked = blocking({
                        let (roots, hw) = (rt.roots.clone(), hw.clone());
                        move || hw.link_native(&roots)
                    })
                    .await;
                    if let Err(reason) = linked {
                        log.note(&format!("cannot start: {reason}"));
                        return send(Event::SpawnFailed { gen, reason });
                    }
                    Payload::Native(spec)
                }
                Exec::Container(c) => {
                    match rt.prepare_container(&unit, c, &cgroup, &hw, &log).await {
                        Ok(run) => Payload::Container(run),
                        Err(reason) => {
                            log.note(&format!("cannot start: {reason}"));
                            return send(Event::SpawnFailed { gen, reason });
                        }
                    }
                }
            };
            let spec = ShimSpec {
                unit: unit.name.clone(),
                launcher: rt.launcher.clone(),
                payload,
                log: log.config().clone(),
                run_dir: rt.run_dir.clone(),
                cgroup_parent: rt.cgroup_parent.clone(),
                cgroup_name: unit.name.clone(),
            };
            let started = match jarvis_shim::spawn(&rt.launcher, &spec).await {
                Ok(s) => s,
                Err(e) => {
                    log.note(&format!("cannot start: {e}"));
                    return send(Event::SpawnFailed {
                        gen,
                        reason: e.to_string(),
                    });
                }
            };
            send(Event::Spawned {
                gen,
                pid: started.pid(),
            });
            let _ = tx.send(Msg::DevicesInUse {
                name: unit.name.clone(),
                gen,
                paths: hw.devices.iter().map(|(_, d)| d.dev_path.clone()).collect(),
            });
            let exit = rt.wait(&unit.name, started).await;
            send(Event::Exited { gen, exit });
        });
    }

    /// The directory of a container unit's bundle: `config.json`, and the
    /// rootfs overlay mount with its upper and work dirs.
    pub fn container_dir(&self, unit: &str) -> PathBuf {
        self.state_dir.join("containers").join(unit)
    }

    /// libcontainer's state root.
    pub fn container_state_root(&self) -> PathBuf {
        self.state_dir.join("libcontainer")
    }

    /// Gets the image (pulling it if the store lacks it), mounts the rootfs,
    /// writes the bundle. Whatever an earlier run left is cleared first.
    async fn prepare_container(
        &self,
        unit: &Unit,
        c: &jarvis_unit::Container,
        cgroup: &UnitCgroup,
        hw: &RunHardware,
        log: &UnitLog,
    ) -> Result<ContainerRun, String> {
        let store = self.images.clone();
        let image = {
            let reference = c.image.clone();
            blocking(move || store.get(&reference)).await
        }
        .map_err(|e| format!("image {}: {e}", c.image))?;
        let image = match image {
            Some(img) => img,
            None => {
                log.note(&format!("pulling image {}", c.image));
                let img = self
                    .images
                    .pull(&c.image, &self.pull, |_| {})
                    .await
                    .map_err(|e| format!("cannot pull image {}: {e}", c.image))?;
                log.note(&format!(
                    "pulled {} ({})",
                    img.reference, img.manifest_digest
                ));
                img
            }
        };
        let id = unit.name.clone();
        let dir = self.container_dir(&unit.name);
        let state_root = self.container_state_root();
        let cgroups_path = cgroup.path().to_string();
        let mut unit = unit.clone();
        let c = c.clone();
        let extras = {
            let (roots, hw) = (self.roots.clone(), hw.clone());
            blocking(move || hw.container_extras(&roots)).await?
        };
        for (k, v) in hw.env() {
            unit.env.insert(k, v);
        }
        if let Some(lib) = hw.library_path(&extras) {
            unit.env.entry("LD_LIBRARY_PATH".into()).or_insert(lib);
        }
        let argv = blocking({
            let (dir, state_root, id) = (dir.clone(), state_root.clone(), id.clone());
            move || -> Result<Vec<String>, String> {
                // Bundles hold the containers' root filesystems: root only.
                if let Some(parent) = dir.parent() {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|e| format!("create {}: {e}", parent.display()))?;
                }
                // A run that ended badly may have left state or a mount.
                let _ = jarvis_container::delete(&id, &state_root, true);
                jarvis_container::unmount_rootfs(&dir).map_err(|e| e.to_string())?;
                let rootfs = jarvis_container::mount_rootfs(&image.layers, &dir)
                    .map_err(|e| format!("mount the rootfs: {e}"))?;
                let users = jarvis_container::UserDb::load(&rootfs)
                    .map_err(|e| format!("read the image's users: {e}"))?;
                let etc = jarvis_container::write_etc_files(&dir, &unit.name, c.network)
                    .map_err(|e| e.to_string())?;
                let spec = jarvis_container::build_spec(&jarvis_container::SpecInput {
                    unit: &unit,
                    image: &image.config,
                    users: &users,
                    rootfs: &rootfs,
                    cgroups_path: &cgroups_path,
                    etc: Some(&etc),
                    extras: &extras,
                })
                .map_err(|e| e.to_string());
                let spec = match spec {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = jarvis_container::unmount_rootfs(&dir);
                        return Err(e);
                    }
                };
                jarvis_container::write_bundle(&dir, &spec).map_err(|e| e.to_string())?;
                Ok(spec
                    .process()
                    .as_ref()
                    .and_then(|p| p.args().clone())
                    .unwrap_or_default())
            }
        })
        .await?;
        Ok(ContainerRun {
            id,
            bundle: dir,
            state_root,
            argv,
        })
    }

    /// Watches a run found again after a daemon restart, reporting its exit
    /// as generation `gen`.
    pub fn watch(&self, unit: &str, gen: u64, started: Started, tx: UnboundedSender<Msg>) {
        let rt = self.clone();
        let unit = unit.to_string();
        tokio::spawn(async move {
            let exit = rt.wait(&unit, started).await;
            let _ = tx.send(Msg::Unit {
                name: unit,
                event: Event::Exited { gen, exit },
            });
        });
    }

    /// Waits for a run's shim; a shim that died without an exit record
    /// leaves the cgroup to us.
    async fn wait(&self, unit: &str, started: Started) -> ExitInfo {
        match jarvis_shim::wait(started, &self.run_dir).await {
            Some(rec) => exit_info(rec),
            None => {
                tracing::warn!(
                    unit,
                    "the shim died without an exit record; emptying the cgroup"
                );
                let cg = self.cgroup(unit);
                let _ = blocking(move || cg.kill_all()).await;
                ExitInfo {
                    code: None,
                    signal: None,
                    oom_killed: false,
                }
            }
        }
    }

    /// Runs the unit's health check on its interval until aborted, sending
    /// each result.
    pub fn health(
        &self,
        unit: &Unit,
        gen: u64,
        tx: UnboundedSender<Msg>,
    ) -> tokio::task::AbortHandle {
        let rt = self.clone();
        let unit = unit.clone();
        tokio::spawn(async move {
            let Some(h) = &unit.health else { return };
            loop {
                let result = tokio::time::timeout(h.timeout, rt.probe(&unit, &h.probe)).await;
                let (ok, detail) = match result {
                    Ok(Ok(detail)) => (true, detail),
                    Ok(Err(detail)) => (false, detail),
                    Err(_) => (
                        false,
                        format!("no answer within {}", humantime::format_duration(h.timeout)),
                    ),
                };
                let event = Event::HealthResult { gen, ok, detail };
                if tx
                    .send(Msg::Unit {
                        name: unit.name.clone(),
                        event,
                    })
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(h.interval).await;
            }
        })
        .abort_handle()
    }

    async fn probe(&self, unit: &Unit, probe: &Probe) -> Result<String, String> {
        match probe {
            Probe::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map(|_| format!("connected to {addr}"))
                .map_err(|e| format!("tcp {addr}: {e}")),
            Probe::Http(url) => {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())?;
                match client.get(url.as_str()).send().await {
                    Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => {
                        Ok(format!("GET {url}: {}", resp.status()))
                    }
                    Ok(resp) => Err(format!("GET {url}: {}", resp.status())),
                    Err(e) => Err(format!("GET {url}: {}", error_chain(&e))),
                }
            }
            Probe::Exec(argv) if matches!(unit.exec, Exec::Container(_)) => {
                // Inside the container, through a re-exec of jarvisd that
                // joins it (libcontainer forks; jarvisd stays out of that).
                let out = tokio::process::Command::new(&self.launcher)
                    .arg(jarvis_shim::CEXEC_ARG)
                    .arg(&unit.name)
                    .arg(self.container_state_root())
                    .args(argv)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if out.status.success() {
                    Ok(text)
                } else {
                    Err(format!("{} {}: {text}{err}", argv.join(" "), out.status))
                }
            }
            Probe::Exec(argv) => {
                let cgroup = self.cgroup(&unit.name);
                let spec = self.spec(unit, argv.clone(), &cgroup);
                let mut spawned = jarvis_native::spawn(&self.launcher, &spec)
                    .await
                    .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
                // The check is bounded by the caller's timeout; the process
                // must not outlive it.
                let guard = KillOnDrop(spawned.pid);
                let mut out = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = spawned.output.read(&mut buf).await {
                    if out.len() < 4096 {
                        out.extend_from_slice(&buf[..n.min(4096 - out.len())]);
                    }
                }
                let status = spawned.child.wait().await.map_err(|e| e.to_string())?;
                std::mem::forget(guard);
                let text = String::from_utf8_lossy(&out).trim().to_string();
                if status.success() {
                    Ok(text)
                } else {
                    Err(format!("{} {status}: {text}", argv.join(" ")))
                }
            }
        }
    }
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

struct Account {
    name: String,
    home: String,
}

fn lookup_user(user: &str) -> Option<Account> {
    let u = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    u.ok().flatten().map(|u| Account {
        name: u.name,
        home: u.dir.to_string_lossy().into_owned(),
    })
}

/// Runs blocking kernel work (cgroup files) off the event loop.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}
