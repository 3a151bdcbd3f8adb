//! Carrying out effects that involve processes, over the [`jarvis_runtime`]
//! seam: one task per run of a unit (start it, report `Spawned`, wait for
//! its end, report `Exited`), one task per health-checked run, and the
//! one-shot [`Runtime::probe`].
//!
//! These tasks talk to the event loop only through [`Msg`]s; they never
//! touch a unit's state. Everything that touches the kernel (cgroups,
//! mounts, libcontainer, the shim) is behind [`jarvis_runtime::Runtime`].

use std::path::PathBuf;
use std::sync::Arc;

use jarvis_runtime::{Runtime as _, Runtimes, StartError, StartSpec};
use jarvis_unit::{Probe, Unit};
use tokio::sync::mpsc::UnboundedSender;

pub use jarvis_runtime::blocking;

use crate::logs::UnitLog;
use crate::machine::{Event, ExitInfo};
use crate::msg::Msg;
use crate::placement::Placement;

/// Where runs keep their things; each call builds the [`Runtimes`] over
/// it.
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

/// The machine's view of an exit, from the runtime's [`jarvis_runtime::Exit`]
/// or a shim's exit record.
pub fn exit_info(exit: impl Into<jarvis_runtime::Exit>) -> ExitInfo {
    to_exit_info(exit.into())
}

fn to_exit_info(e: jarvis_runtime::Exit) -> ExitInfo {
    ExitInfo {
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
    }
}

impl Runtime {
    /// The runtimes over this configuration.
    pub fn runtimes(&self) -> Runtimes {
        Runtimes::new(jarvis_runtime::Config {
            launcher: self.launcher.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
            run_dir: self.run_dir.clone(),
            state_dir: self.state_dir.clone(),
            roots: self.roots.clone(),
            images: self.images.clone(),
            pull: self.pull.clone(),
        })
    }

    pub fn cgroup(&self, unit: &str) -> jarvis_runtime::UnitCgroup {
        jarvis_runtime::UnitCgroup::open(&self.cgroup_parent, unit)
    }

    /// The unit's last run as an earlier jarvisd left it (running, ended,
    /// or nothing on record). Blocking: call it off the event loop.
    pub fn adopt(&self, unit: &str) -> jarvis_runtime::Found {
        self.runtimes().adopt(unit)
    }

    /// Runs one incarnation of `unit` to its end: starts it, reports
    /// `Spawned` (or `SpawnFailed`, or `SpawnDeferred` when a device went
    /// away), then `Exited` once its cgroup is empty.
    pub fn start(
        &self,
        unit: &Unit,
        gen: u64,
        placement: Option<Placement>,
        log: Arc<UnitLog>,
        tx: UnboundedSender<Msg>,
    ) {
        let rts = self.runtimes();
        let name = unit.name.clone();
        let spec = StartSpec {
            unit: unit.clone(),
            gen,
            placement,
            log: log.config().clone(),
            notes: {
                let log = log.clone();
                Arc::new(move |note: &str| log.note(note))
            },
        };
        tokio::spawn(async move {
            let send = |event| {
                let _ = tx.send(Msg::Unit {
                    name: name.clone(),
                    event,
                });
            };
            let running = match rts.start(spec).await {
                Ok(r) => r,
                Err(StartError::Deferred(reason)) => {
                    return send(Event::SpawnDeferred { gen, reason })
                }
                Err(StartError::Failed(reason)) => {
                    log.note(&format!("cannot start: {reason}"));
                    return send(Event::SpawnFailed { gen, reason });
                }
            };
            send(Event::Spawned {
                gen,
                pid: running.pid,
            });
            let _ = tx.send(Msg::DevicesInUse {
                name: name.clone(),
                gen,
                paths: running.devices.clone(),
            });
            let exit = rts.wait(&name, running).await;
            send(Event::Exited {
                gen,
                exit: to_exit_info(exit),
            });
        });
    }

    /// The directory of a container unit's bundle: `config.json`, and the
    /// rootfs overlay mount with its upper and work dirs.
    pub fn container_dir(&self, unit: &str) -> PathBuf {
        self.runtimes().config().container_dir(unit)
    }

    /// libcontainer's state root.
    pub fn container_state_root(&self) -> PathBuf {
        self.runtimes().config().container_state_root()
    }

    /// Watches a run found again after a daemon restart
    /// ([`jarvis_runtime::Found::Running`], or a shim's `Started`),
    /// reporting its exit as generation `gen`.
    pub fn watch(
        &self,
        unit: &str,
        gen: u64,
        run: impl Into<jarvis_runtime::Running>,
        tx: UnboundedSender<Msg>,
    ) {
        let rts = self.runtimes();
        let unit = unit.to_string();
        let run = run.into();
        tokio::spawn(async move {
            let exit = rts.wait(&unit, run).await;
            let _ = tx.send(Msg::Unit {
                name: unit,
                event: Event::Exited {
                    gen,
                    exit: to_exit_info(exit),
                },
            });
        });
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

    /// Runs one health check of `unit` and says how it went: `Ok` with a
    /// detail when it passed. Unbounded: the caller applies the unit's
    /// timeout (dropping the future ends an exec check's process).
    pub async fn probe(&self, unit: &Unit, probe: &Probe) -> Result<String, String> {
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
            Probe::Exec(argv) => {
                // Through the runtime of the form the unit runs as: in its
                // cgroup with its identity, or inside its container.
                self.runtimes().exec_probe(unit, argv.clone()).await
            }
        }
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
