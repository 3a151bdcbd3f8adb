//! The event loop: a thin shell around the pure core ([`Supervisor`]).
//!
//! It turns what happens (a run reports, a timer fires, a probe answers, a
//! request or a uevent arrives) into the core's [`Input`]s, and carries out
//! the [`Output`]s the core returns: spawning runs through the runtime,
//! signals, timers, probes, replies. It sleeps on its channel until a task
//! reports something. Anything that blocks (cgroup files, sysfs, loading unit
//! files, the state file, log notes) runs on blocking threads or the writer
//! thread, never on the loop.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jarvis_proto::{Request, Response, StatusReport, UnitStatus};
use jarvis_unit::{Kind, Unit};
use tokio::sync::{mpsc, oneshot};

use jarvis_runtime::{blocking, hardware, Runtime as _, Runtimes, StartError, StartSpec};

use crate::bench;
use crate::engine::machine::{Event, ExitInfo, GpuVerdict, State};
use crate::engine::{Ask, BootUnit, Devices, Found, Input, Output, ReplyId, Supervisor};
use crate::logs::UnitLog;
use crate::msg::{Msg, Reply};
use crate::placement::Placement;
use crate::probe::probe;
use crate::state::{LastGood, LastGoodFile, Persisted, StateFile};

pub(crate) mod apply;
pub use apply::{boot_set, Source};

pub struct Config {
    /// Where the units come from: `up` reads them again there.
    pub source: Source,
    pub state_dir: PathBuf,
    pub runtime: Runtimes,
    /// The definition digest of each unit jarvisd boots with.
    pub definitions: jarvis_gitops::Definitions,
    /// The `--git` repository: `apply` without a repository takes it.
    pub git: Option<crate::trigger::GitSource>,
    /// What keeps jarvisd from running the declared units as written, from
    /// boot (see [`Boot::problems`]).
    pub problems: Vec<String>,
    /// Where events go (`jarvisctl events`, `/api/v1/events`,
    /// notifications).
    pub events: Arc<crate::events::EventLog>,
}

/// What jarvisd boots with: [`boot_units`].
pub struct Boot {
    pub set: jarvis_unit::UnitSet,
    pub source: Source,
    /// Each unit's definition digest.
    pub definitions: jarvis_gitops::Definitions,
    /// What keeps jarvisd from running the declared units as written: the
    /// units directory (or the active generation) did not load, and what
    /// runs instead. `status` shows them until an `up` loads cleanly.
    pub problems: Vec<String>,
    /// No set is known to be the one that ran: runs found at boot of units
    /// `set` lacks are left running, not stopped.
    pub leave_others: bool,
}

/// The most diagnostics a problem in `status` lists; the rest are counted.
const PROBLEM_LINES: usize = 20;

/// Diagnostics, one a line, at most [`PROBLEM_LINES`] of them.
fn diagnostic_lines<D: std::fmt::Display>(diags: &[D]) -> String {
    let mut lines: Vec<String> = diags
        .iter()
        .take(PROBLEM_LINES)
        .map(|d| d.to_string())
        .collect();
    if diags.len() > PROBLEM_LINES {
        lines.push(format!(
            "... and {} more (jarvisctl validate shows them all)",
            diags.len() - PROBLEM_LINES
        ));
    }
    lines.join("\n")
}

/// Loads the units jarvisd boots with (blocking: reads the unit files, the
/// files they name, and the state directory). A units directory that loads
/// is kept as the last good set. One that does not (a file broken while
/// jarvisd was away) never keeps jarvisd from coming up: the last good set
/// runs instead and the problem is reported; with no last good set, no
/// units run and what runs is left as it is. The same for a generation
/// that does not load.
pub fn boot_units(units: Option<&Path>, state_dir: &Path) -> Boot {
    let last_good = LastGoodFile::new(state_dir);
    let (set, source, root, problem) = match units {
        Some(dir) if dir.exists() => {
            let source = Source::Units(dir.to_path_buf());
            match jarvis_unit::load_dir(dir) {
                Ok(set) => {
                    if let Err(e) = last_good.save(&LastGood::new(dir, set.units.values().cloned()))
                    {
                        tracing::warn!(error = %e, "cannot keep the last good unit set");
                    }
                    (set, source, None, None)
                }
                Err(diags) => {
                    let details = diagnostic_lines(&diags);
                    tracing::error!(
                        dir = %dir.display(),
                        "the units directory has {} problem(s):\n{details}",
                        diags.len()
                    );
                    let head = format!(
                        "units directory {} has {} problem(s)",
                        dir.display(),
                        diags.len()
                    );
                    let kept = last_good
                        .load()
                        .map_err(|e| e.to_string())
                        .and_then(|l| match l {
                            Some(l) => l.set().map(|set| Some((l, set))),
                            None => Ok(None),
                        });
                    match kept {
                        Ok(Some((last, set))) => {
                            let from = if last.source == dir {
                                String::new()
                            } else {
                                format!(", loaded from {}", last.source.display())
                            };
                            let problem = format!(
                                "{head}; running the last good set of {} ({} units{from}); \
                                 fix the files and run jarvisctl up:\n{details}",
                                last.when(),
                                set.units.len(),
                            );
                            tracing::warn!("{}", problem.lines().next().unwrap_or_default());
                            (set, source, None, Some((problem, false)))
                        }
                        other => {
                            let why = match other {
                                Err(e) => format!("the last good set cannot be read ({e})"),
                                _ => "there is no last good set".to_string(),
                            };
                            let problem = format!(
                                "{head}; {why}: running no units, and runs found at boot are left \
                                 as they are, unsupervised; fix the files and run jarvisctl up:\n{details}"
                            );
                            tracing::warn!("{}", problem.lines().next().unwrap_or_default());
                            let set = jarvis_unit::UnitSet::default();
                            (set, source, None, Some((problem, true)))
                        }
                    }
                }
            }
        }
        Some(dir) => {
            tracing::warn!(dir = %dir.display(), "units directory does not exist; starting with no units");
            (
                jarvis_unit::UnitSet::default(),
                Source::Units(dir.to_path_buf()),
                None,
                None,
            )
        }
        None => match boot_set(state_dir) {
            Ok((set, root)) => (set, Source::Generations, root, None),
            Err(e) => {
                let problem = format!(
                    "the active generation does not load: running no units, and runs found at boot \
                     are left as they are, unsupervised; jarvisctl apply or rollback deploys one:\n{e:#}"
                );
                tracing::error!("{problem}");
                let set = jarvis_unit::UnitSet::default();
                (set, Source::Generations, None, Some((problem, true)))
            }
        },
    };
    let definitions = jarvis_gitops::definitions(&set, root.as_deref());
    let (problems, leave_others) = match problem {
        Some((p, leave)) => (vec![p], leave),
        None => (Vec::new(), false),
    };
    Boot {
        set,
        source,
        definitions,
        problems,
        leave_others,
    }
}

pub struct Daemon {
    cfg: Config,
    core: Supervisor,
    tx: mpsc::UnboundedSender<Msg>,
    logs: BTreeMap<String, Arc<UnitLog>>,
    replies: HashMap<ReplyId, oneshot::Sender<Response>>,
    next_id: ReplyId,
    /// Runs found at boot, until the core says to watch them.
    adopted: HashMap<String, jarvis_runtime::Running>,
    writer: Writer,
    stats: Arc<Mutex<StatsCache>>,
    rescan: Rescan,
    /// Whether this jarvisd made the cgroup parent (it was not there at
    /// boot): only then is it removed at the end.
    made_parent: bool,
    /// The definition digest of each unit the core has (see
    /// `jarvis_gitops::plan`): what a plan compares, and what each run's
    /// record carries.
    defs: jarvis_gitops::Definitions,
    /// The apply or rollback in progress.
    apply: Option<apply::InFlight>,
    apply_serial: u64,
    /// What keeps jarvisd from running the declared units as written
    /// (`status` shows it): set at boot, cleared by an `up` that loads.
    problems: Vec<String>,
    /// The one inotify instance every `logs -f` shares.
    watcher: crate::logs::Watcher,
    /// Counts what the loop handled that may change an answer (everything
    /// but queries): a shared `status` is reused only at the same count.
    version: u64,
    /// `status` of all units, shared by the callers that ask at once.
    shared_status: Arc<Mutex<SharedStatus>>,
    /// Each running unit's process start time, by pid and run (reading
    /// /proc/PID/stat for every unit at every status call was most of its
    /// cost).
    start_times: Arc<Mutex<StartTimes>>,
    /// Booted with no unit set known to be the one that ran (see
    /// [`Boot::leave_others`]): runs found were left alone, and the first
    /// set that loads is booted as at a start, re-adopting them.
    unsupervised: bool,
    /// The GPU facts `status` shows, probed at most every few seconds.
    gpu_cache: Arc<Mutex<crate::gpucheck::GpuCache>>,
}

/// Hardware rescans: one at a time; uevents that come meanwhile are
/// folded into one more.
#[derive(Default)]
struct Rescan {
    running: bool,
    again: bool,
    gpus: bool,
}

impl Daemon {
    pub fn new(cfg: Config, tx: mpsc::UnboundedSender<Msg>) -> anyhow::Result<Daemon> {
        let state_file = StateFile::new(&cfg.state_dir);
        let saved = state_file.load()?;
        let recommendations = bench::load_all(&bench::dir(&cfg.state_dir));
        let last_good = LastGoodFile::new(&cfg.state_dir);
        Ok(Daemon {
            core: Supervisor::new(saved, recommendations),
            defs: cfg.definitions.clone(),
            apply: None,
            apply_serial: 0,
            problems: cfg.problems.clone(),
            watcher: Default::default(),
            unsupervised: false,
            cfg,
            tx,
            logs: BTreeMap::new(),
            replies: HashMap::new(),
            next_id: 0,
            adopted: HashMap::new(),
            writer: Writer::start(state_file, last_good),
            stats: Default::default(),
            version: 0,
            shared_status: Default::default(),
            start_times: Default::default(),
            gpu_cache: Default::default(),
            rescan: Rescan::default(),
            made_parent: false,
        })
    }

    fn log_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("logs")
    }

    /// The log of a unit the core knows.
    fn log_named(&mut self, name: &str) -> Option<Arc<UnitLog>> {
        let unit = self.core.unit(name)?.clone();
        Some(self.log(&unit))
    }

    /// Starts one run through the runtime and reports it: `Started` (or
    /// `SpawnFailed`, or `SpawnDeferred` when a device went away), then
    /// `Exited` once its cgroup is empty.
    fn start(&self, unit: Unit, gen: u64, placement: Option<Placement>, log: Arc<UnitLog>) {
        let rt = self.cfg.runtime.clone();
        // The run record carries the definition this run starts from.
        let definition = self.defs.get(&unit.name).cloned().unwrap_or_default();
        let tx = self.tx.clone();
        let notes_tx = self.writer.sender();
        let name = unit.name.clone();
        let spec = StartSpec {
            unit,
            gen,
            placement,
            log: log.config().clone(),
            notes: {
                let log = log.clone();
                Arc::new(move |note: &str| {
                    if let Some(w) = &notes_tx {
                        let _ = w.send(Write::Note(log.clone(), note.to_string()));
                    }
                })
            },
        };
        let writer = self.writer.sender();
        tokio::spawn(async move {
            let send = |event| {
                let _ = tx.send(Msg::Unit {
                    name: name.clone(),
                    event,
                });
            };
            let running = match jarvis_shim::DEFINITION
                .scope(definition, rt.start(spec))
                .await
            {
                Ok(r) => r,
                Err(StartError::Deferred(reason)) => {
                    return send(Event::SpawnDeferred { gen, reason })
                }
                Err(StartError::Failed(reason)) => {
                    if let Some(w) = &writer {
                        let _ = w.send(Write::Note(log, format!("cannot start: {reason}")));
                    }
                    return send(Event::SpawnFailed { gen, reason });
                }
            };
            let _ = tx.send(Msg::Started {
                name: name.clone(),
                gen,
                pid: running.pid,
                devices: running.devices.clone(),
            });
            let exit = exit_info(rt.wait(&name, running).await);
            send(Event::Exited { gen, exit });
        });
    }

    /// The unit's log, made on first use; its limits follow the unit.
    fn log(&mut self, unit: &Unit) -> Arc<UnitLog> {
        let dir = self.log_dir();
        let log = self.logs.entry(unit.name.clone()).or_insert_with(|| {
            Arc::new(UnitLog::new(
                &dir,
                &unit.name,
                &unit.logs,
                self.watcher.clone(),
            ))
        });
        log.set_limits(&unit.logs);
        log.clone()
    }

    /// Takes the GPU inventory, finds what earlier runs left (their shims
    /// kept them running), resolves devices, and hands it all to the core.
    /// Runs of units the set lacks are stopped, unless `leave_others` (no
    /// set is known to be the one that ran them). Returns the units whose
    /// runs were re-adopted.
    pub async fn boot(&mut self, units: Vec<Unit>, leave_others: bool) -> Vec<String> {
        self.unsupervised = leave_others;
        let rt = self.cfg.runtime.clone();
        self.made_parent = !rt.parent_exists().await;
        // adopt() registers the shims' pidfds with tokio: run it in this
        // runtime's context (block_in_place is not available on the
        // current-thread runtime; this is boot, before the loop serves).
        let gpus = {
            let rt = rt.clone();
            blocking(move || hardware::inventory(&rt.config().roots)).await
        };
        let run_dir = rt.config().run_dir.clone();
        let orphans = {
            let set = units.iter().map(|u| u.name.clone()).collect();
            let dir = run_dir.clone();
            blocking(move || apply::orphans(&dir, &set)).await
        };
        if leave_others {
            if !orphans.is_empty() {
                tracing::warn!(units = ?orphans, "runs of units no set names are left as they are, unsupervised");
                self.problems.push(format!(
                    "left running, unsupervised (no unit set names them): {}",
                    orphans.join(", ")
                ));
            }
        } else {
            self.stop_orphans(orphans);
        }
        let mut found = Vec::new();
        for unit in units {
            let recorded = jarvis_shim::run_definition(&run_dir, &unit.name);
            let stale = recorded.is_some() && recorded.as_ref() != self.defs.get(&unit.name);
            let adopted = rt.adopt(&unit.name);
            let devices = {
                let (rt, unit) = (rt.clone(), unit.clone());
                blocking(move || devices_of(&rt, &unit)).await
            };
            found.push((unit, adopted, devices, stale));
        }
        tracing::info!(
            gpus = ?gpus.iter().map(|g| format!("{} {} {}B", g.vendor.as_str(), g.id, g.memory_total)).collect::<Vec<_>>(),
            "GPU inventory"
        );
        // Networks first: re-adopted containers keep theirs, the rest of
        // the record goes, before any new run attaches.
        let alive = found
            .iter()
            .filter(|(_, a, _, _)| matches!(a, jarvis_runtime::Found::Running(_)))
            .map(|(u, _, _, _)| u.clone())
            .collect();
        // With runs left unsupervised, their networks stay as recorded.
        if !leave_others {
            rt.restore_networks(alive).await;
        }
        let mut boot = Vec::new();
        let mut readopted = Vec::new();
        for (unit, adopted, devices, stale) in found {
            let found = match adopted {
                jarvis_runtime::Found::Running(running) => {
                    let pid = running.pid;
                    tracing::info!(unit = %unit.name, pid, stale, "re-adopted a running unit");
                    readopted.push(unit.name.clone());
                    self.adopted.insert(unit.name.clone(), running);
                    if stale {
                        Found::Stale { pid }
                    } else {
                        Found::Running { pid }
                    }
                }
                jarvis_runtime::Found::Ended { pid, exit } => {
                    let exit = exit.map(exit_info).unwrap_or(ExitInfo::UNKNOWN);
                    tracing::info!(unit = %unit.name, pid, "{} while jarvisd was away", exit.describe());
                    Found::Ended { pid, exit }
                }
                jarvis_runtime::Found::Nothing => Found::Nothing,
            };
            self.log(&unit);
            boot.push(BootUnit {
                unit,
                found,
                devices,
            });
        }
        self.feed(Input::Boot(boot, gpus));
        readopted
    }

    /// Runs until shutdown.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            if !matches!(&msg, Msg::Request { req, .. } if !req.is_mutating()) {
                self.version += 1;
            }
            let input = match msg {
                Msg::Unit { name, event } => Some(Input::Unit { name, event }),
                Msg::Started {
                    name,
                    gen,
                    pid,
                    devices,
                } => Some(Input::Started {
                    name,
                    gen,
                    pid,
                    devices,
                }),
                Msg::Hardware(ev) => {
                    self.uevent(ev);
                    None
                }
                Msg::Rescanned { devices, gpus } => {
                    self.rescan.running = false;
                    if std::mem::take(&mut self.rescan.again) {
                        self.start_rescan();
                    }
                    Some(Input::Hardware { devices, gpus })
                }
                Msg::Request { req, reply } => self.request(req, reply),
                // An apply that began meanwhile holds the set.
                Msg::Loaded { id, .. } if self.applying() => {
                    self.reply(
                        id,
                        Response::Error {
                            message: "an apply began meanwhile; nothing was changed".into(),
                        },
                    );
                    None
                }
                // The first set that loads after a boot that left runs
                // alone: booted as at a start, so they are re-adopted, not
                // started twice.
                Msg::Loaded {
                    id,
                    set: Ok(set),
                    defs,
                } if self.unsupervised && self.core.names().is_empty() => {
                    self.loaded_cleanly(&set);
                    self.defs = defs;
                    let units: Vec<Unit> = set.into_iter().map(|(u, _)| u).collect();
                    let names: Vec<String> = units.iter().map(|u| u.name.clone()).collect();
                    let readopted = self.boot(units, false).await;
                    let (unchanged, started) =
                        names.into_iter().partition(|n| readopted.contains(n));
                    self.reply(
                        id,
                        Response::Up(jarvis_proto::UpReport {
                            started,
                            unchanged,
                            ..Default::default()
                        }),
                    );
                    None
                }
                Msg::Loaded { id, set, defs } => {
                    let set = set.map(|set| {
                        self.loaded_cleanly(&set);
                        let set = self.converge(set, &defs);
                        self.defs = defs;
                        set
                    });
                    Some(Input::Ask {
                        id,
                        ask: Ask::Up(set),
                    })
                }
                Msg::Apply(m) => {
                    if let Some((set, defs)) = self.readopting(&m) {
                        // Booted with the generation's definitions, so a
                        // run of the same one is re-adopted and one of
                        // another is restarted; then the plan starts from
                        // nothing, and the gate waits for every unit.
                        self.loaded_cleanly(&set);
                        let before = std::mem::replace(&mut self.defs, defs);
                        let units = set.into_iter().map(|(u, _)| u).collect();
                        let readopted = self.boot(units, false).await;
                        tracing::info!(units = ?readopted, "apply: re-adopted the runs left alone at boot");
                        self.defs = before;
                    }
                    self.apply_msg(m);
                    None
                }
                Msg::Recommended { id, unit, result } => match result {
                    Ok((kind, verdict)) => Some(Input::Ask {
                        id,
                        ask: Ask::Recommend {
                            unit,
                            kind,
                            verdict,
                        },
                    }),
                    Err(message) => {
                        self.reply(id, Response::Error { message });
                        None
                    }
                },
                Msg::Shutdown => {
                    if !self.core.is_shutting_down() {
                        tracing::info!("shutting down: stopping every unit");
                    }
                    Some(Input::Shutdown)
                }
            };
            if let Some(input) = input {
                if self.feed(input) {
                    break;
                }
            }
            self.check_gate();
        }
        for name in self.core.names() {
            self.cfg.runtime.remove(&name).await;
        }
        if self.made_parent {
            self.cfg.runtime.remove_parent().await;
        }
        self.writer.finish();
    }

    /// Hands one input to the core and carries out what it says. True once
    /// a shutdown is complete.
    fn feed(&mut self, input: Input) -> bool {
        let ended = match &input {
            Input::Unit {
                name,
                event: Event::Exited { .. },
            } => Some(name.clone()),
            _ => None,
        };
        let outputs = self.core.handle(input, Instant::now());
        let mut done = false;
        for o in outputs {
            done |= self.carry(o);
        }
        // A run ended and no restart follows: its shim, kept for one, goes.
        if let Some(name) = ended {
            let restarting = self
                .core
                .slot(&name)
                .is_some_and(|s| matches!(s.st.state, State::Starting(_) | State::Running));
            if !restarting {
                self.cfg.runtime.release(&name);
            }
        }
        done
    }

    fn carry(&mut self, output: Output) -> bool {
        let tx = self.tx.clone();
        match output {
            Output::Spawn {
                name,
                gen,
                unit,
                placement,
            } => {
                let log = self.log(&unit);
                if let Some(p) = &placement {
                    tracing::info!(unit = %name, placement = ?p.ids(), "placed");
                }
                self.start(*unit, gen, placement, log);
            }
            Output::Watch { name, gen } => {
                if let Some(running) = self.adopted.remove(&name) {
                    let rt = self.cfg.runtime.clone();
                    tokio::spawn(async move {
                        let exit = exit_info(rt.wait(&name, running).await);
                        let _ = tx.send(Msg::Unit {
                            name,
                            event: Event::Exited { gen, exit },
                        });
                    });
                }
            }
            Output::Signal { name, pid, signal } => {
                let sig = nix::sys::signal::Signal::try_from(signal)
                    .unwrap_or(nix::sys::signal::Signal::SIGTERM);
                if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
                    tracing::debug!(unit = %name, pid, error = %e, "signal");
                }
            }
            Output::KillAll { name } => {
                let kill = self.cfg.runtime.kill_all(&name);
                tokio::spawn(async move {
                    if let Err(err) = kill.await {
                        tracing::error!(unit = %name, error = %err, "cannot kill cgroup");
                    }
                });
            }
            Output::Sweep { name } => {
                let rt = self.cfg.runtime.clone();
                tokio::spawn(async move {
                    let left = rt.pids(&name).await;
                    if left.is_empty() {
                        return;
                    }
                    tracing::warn!(unit = %name, pids = ?left, "killing processes no shim watches");
                    if let Err(e) = rt.kill_all(&name).await {
                        tracing::error!(unit = %name, error = %e, "cannot empty cgroup");
                    }
                });
            }
            Output::Timer {
                name,
                gen,
                kind,
                after,
            } => {
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Msg::Unit {
                        name,
                        event: Event::Timer { gen, kind },
                    });
                });
            }
            Output::Probe { name, gen } => {
                let Some(unit) = self.core.unit(&name).cloned() else {
                    return false;
                };
                let rt = self.cfg.runtime.clone();
                tokio::spawn(async move {
                    let Some(h) = &unit.health else { return };
                    let (ok, detail) =
                        match tokio::time::timeout(h.timeout, probe(&rt, &unit, &h.probe)).await {
                            Ok(Ok(detail)) => (true, detail),
                            Ok(Err(detail)) => (false, detail),
                            Err(_) => (
                                false,
                                format!(
                                    "no answer within {}",
                                    humantime::format_duration(h.timeout)
                                ),
                            ),
                        };
                    let _ = tx.send(Msg::Unit {
                        name,
                        event: Event::HealthResult { gen, ok, detail },
                    });
                });
            }
            Output::GpuCheck {
                name,
                gen,
                placement,
            } => {
                let Some(unit) = self.core.unit(&name).cloned() else {
                    return false;
                };
                let rt = self.cfg.runtime.clone();
                tokio::spawn(async move {
                    let verdict = crate::gpucheck::check(&rt, &unit, &placement).await;
                    let _ = tx.send(Msg::Unit {
                        name,
                        event: Event::GpuChecked { gen, verdict },
                    });
                });
            }
            Output::Remove { name } => {
                self.logs.remove(&name);
                self.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .0
                    .remove(&name);
                tokio::spawn(self.cfg.runtime.remove(&name));
            }
            Output::Note { name, text } => {
                if let Some(log) = self.log_named(&name) {
                    self.writer.send(Write::Note(log, text));
                }
            }
            Output::Event {
                unit,
                kind,
                message,
            } => {
                match kind {
                    jarvis_proto::EventKind::GpuFallback => {
                        tracing::warn!(unit = unit.as_deref(), reason = %message, "runs on the CPU, not its GPU")
                    }
                    jarvis_proto::EventKind::GpuOk => {
                        tracing::info!(unit = unit.as_deref(), "runs on its GPU again")
                    }
                    _ => {}
                }
                self.cfg.events.push(unit, kind, message);
            }
            Output::Changed {
                name,
                state,
                pid,
                reason,
            } => {
                tracing::info!(
                    unit = %name,
                    state = state.as_str(),
                    pid,
                    reason = reason.as_deref(),
                    "unit changed"
                );
            }
            Output::Reply { id, response } => self.reply(id, response),
            Output::Save(p) => self.writer.send(Write::Save(p)),
            Output::Done => return true,
        }
        false
    }

    fn reply(&mut self, id: ReplyId, response: Response) {
        if let Some(tx) = self.replies.remove(&id) {
            let _ = tx.send(response);
        }
    }

    /// A request: queries are answered here, the rest goes to the core.
    fn request(&mut self, req: Request, reply: oneshot::Sender<Reply>) -> Option<Input> {
        let ask = match req {
            Request::Status { units } => {
                if let Some(err) = self.core.unknown(&units) {
                    return answer(reply, err);
                }
                let _ = reply.send(if units.is_empty() {
                    self.status_shared()
                } else {
                    Reply::Later(self.status(&units))
                });
                return None;
            }
            Request::Logs { unit, .. } => {
                return match self.log_named(&unit) {
                    Some(log) => {
                        let _ = reply.send(Reply::Log(log));
                        None
                    }
                    None => answer(
                        reply,
                        self.core.unknown(&[unit]).unwrap_or(Response::Error {
                            message: "no such unit".into(),
                        }),
                    ),
                };
            }
            Request::Events { .. } => {
                // Served beside the loop, from the event log.
                return answer(
                    reply,
                    Response::Error {
                        message: "events are read from the event log, not the loop".into(),
                    },
                );
            }
            Request::ImageRemove { reference } => {
                let _ = reply.send(self.remove_image(reference));
                return None;
            }
            Request::NetworkList => {
                let networks = self
                    .cfg
                    .runtime
                    .networks()
                    .into_iter()
                    .map(|n| jarvis_proto::NetworkInfo {
                        name: n.name,
                        subnet: n.subnet.to_string(),
                        gateway: n.gateway.to_string(),
                        bridge: n.bridge,
                        units: n.units,
                    })
                    .collect();
                return answer(reply, Response::Networks { networks });
            }
            Request::VolumeList => {
                let _ = reply.send(Reply::Later(self.list_volumes()));
                return None;
            }
            Request::VolumeRemove { name } => {
                let _ = reply.send(self.remove_volume(name));
                return None;
            }
            // The control task runs the command (it holds the caller's
            // descriptors); the loop only says which unit, as it runs now.
            Request::Exec { unit, .. } => {
                if let Some(err) = self.core.unknown(std::slice::from_ref(&unit)) {
                    return answer(reply, err);
                }
                let views = self.core.views(std::slice::from_ref(&unit));
                let resp = match views.first() {
                    Some(v) if v.st.state == State::Running && v.st.pid.is_some() => {
                        match serde_json::to_value(running_form(v)) {
                            Ok(u) => Response::Config { units: vec![u] },
                            Err(e) => Response::Error {
                                message: format!("internal: unit {unit}: {e}"),
                            },
                        }
                    }
                    _ => Response::Error {
                        message: format!("unit {unit} is not running"),
                    },
                };
                return answer(reply, resp);
            }
            Request::Config { units } => {
                if let Some(err) = self.core.unknown(&units) {
                    return answer(reply, err);
                }
                let _ = reply.send(Reply::Later(self.config(&units)));
                return None;
            }
            Request::ImagePull { .. } | Request::ImageImport { .. } | Request::ImageList => {
                return answer(
                    reply,
                    Response::Error {
                        message: "internal: image request reached the event loop".into(),
                    },
                );
            }
            Request::Apply { .. } | Request::Rollback { .. } | Request::Generations => {
                let req = match &self.cfg.git {
                    Some(git) => git.fill_apply(req),
                    None => req,
                };
                self.apply_request(req, reply);
                return None;
            }
            Request::Up if self.applying() => {
                return answer(
                    reply,
                    Response::Error {
                        message: "an apply is in progress; try again when it is over".into(),
                    },
                );
            }
            Request::Up => {
                let (id, rx) = self.pending();
                let _ = reply.send(Reply::Later(rx));
                self.load(id);
                return None;
            }
            Request::BenchResult { unit, result } => {
                if let Some(err) = self.core.unknown(std::slice::from_ref(&unit)) {
                    return answer(reply, err);
                }
                let (id, rx) = self.pending();
                let _ = reply.send(Reply::Later(rx));
                let dir = bench::dir(&self.cfg.state_dir);
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let u = unit.clone();
                    let result = blocking(move || match bench::store(&dir, &u, &result) {
                        Ok(Some(rec)) => Ok(rec),
                        Ok(None) => Err(
                            "the result has no recommendation (\"native\" or \"container\")".into(),
                        ),
                        Err(e) => Err(format!("cannot store the result: {e}")),
                    })
                    .await;
                    let _ = tx.send(Msg::Recommended { id, unit, result });
                });
                return None;
            }
            Request::Wait { .. } => Ask::Wait,
            Request::Down => Ask::Down,
            Request::Start { units } => Ask::Start(units),
            Request::Stop { units } => Ask::Stop(units),
            Request::Restart { units } => Ask::Restart(units),
            Request::BenchBegin { unit } => Ask::BenchBegin(unit),
            Request::BenchForm { unit, form, .. } => Ask::BenchForm(
                unit,
                form.map(|f| match f {
                    jarvis_proto::UnitKind::Native => Kind::Native,
                    jarvis_proto::UnitKind::Container => Kind::Container,
                }),
            ),
        };
        let (id, rx) = self.pending();
        let _ = reply.send(Reply::Later(rx));
        Some(Input::Ask { id, ask })
    }

    /// A reply id and the receiver its answer will come on.
    fn pending(&mut self) -> (ReplyId, oneshot::Receiver<Response>) {
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.replies.insert(self.next_id, tx);
        (self.next_id, rx)
    }

    /// Loads and validates the units directory off the loop, and resolves
    /// each unit's devices; the core gets the result.
    /// In generations mode, the active generation is read again.
    fn load(&self, id: ReplyId) {
        let source = self.cfg.source.clone();
        let state_dir = self.cfg.state_dir.clone();
        let rt = self.cfg.runtime.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let (set, defs) = blocking(move || {
                let loaded = match &source {
                    Source::Units(dir) => jarvis_unit::load_dir(dir)
                        .map(|set| (set, None))
                        .map_err(|diags| {
                            format!(
                                "{} problem(s) in {}; nothing was changed:\n{}",
                                diags.len(),
                                dir.display(),
                                diags
                                    .iter()
                                    .map(|d| d.to_string())
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            )
                        }),
                    Source::Generations => boot_set(&state_dir).map_err(|e| format!("{e:#}")),
                };
                match loaded {
                    Ok((set, root)) => {
                        let defs = jarvis_gitops::definitions(&set, root.as_deref());
                        let set = set
                            .units
                            .into_values()
                            .map(|u| {
                                let d = devices_of(&rt, &u);
                                (u, d)
                            })
                            .collect();
                        (Ok(set), defs)
                    }
                    Err(e) => (Err(e), Default::default()),
                }
            })
            .await;
            let _ = tx.send(Msg::Loaded { id, set, defs });
        });
    }

    /// The units directory loaded cleanly for `up`: what was wrong at boot
    /// is over, and the set is the last good one now.
    fn loaded_cleanly(&mut self, set: &[(Unit, Devices)]) {
        if !self.problems.is_empty() {
            tracing::info!("the units load cleanly again");
            self.problems.clear();
        }
        if let Source::Units(dir) = &self.cfg.source {
            let last = LastGood::new(dir, set.iter().map(|(u, _)| u.clone()));
            self.writer.send(Write::LastGood(last));
        }
    }

    /// Runs found at boot of units the set does not have are stopped and
    /// their remains removed: the box runs the set, nothing else.
    fn stop_orphans(&self, names: Vec<String>) {
        for name in names {
            let rt = self.cfg.runtime.clone();
            tokio::spawn(async move {
                if let jarvis_runtime::Found::Running(running) = rt.adopt(&name) {
                    tracing::info!(unit = %name, pid = running.pid, "stopping a run of a unit the set does not have");
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(running.pid),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                    let wait = rt.wait(&name, running);
                    tokio::pin!(wait);
                    if tokio::time::timeout(Duration::from_secs(10), &mut wait)
                        .await
                        .is_err()
                    {
                        let _ = rt.kill_all(&name).await;
                        wait.await;
                    }
                }
                rt.remove(&name).await;
            });
        }
    }

    /// A uevent: resolve the units' devices again (and the GPUs, when they
    /// changed), off the loop.
    fn uevent(&mut self, ev: jarvis_hardware::Uevent) {
        if !ev.wants_rescan() {
            return;
        }
        tracing::debug!(action = %ev.action, devpath = %ev.devpath, subsystem = ?ev.subsystem, "hardware changed");
        self.rescan.gpus |= matches!(ev.subsystem.as_deref(), Some("drm" | "pci" | "kfd"))
            || ev.action == jarvis_hardware::Uevent::OVERFLOW;
        if self.rescan.running {
            self.rescan.again = true;
        } else {
            self.start_rescan();
        }
    }

    fn start_rescan(&mut self) {
        self.rescan.running = true;
        let gpus = std::mem::take(&mut self.rescan.gpus);
        let units = self.core.device_units();
        let rt = self.cfg.runtime.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let (devices, gpus) = blocking(move || {
                let devices = units
                    .iter()
                    .map(|u| (u.name.clone(), devices_of(&rt, u)))
                    .collect();
                let gpus = gpus.then(|| hardware::inventory(&rt.config().roots));
                (devices, gpus)
            })
            .await;
            let _ = tx.send(Msg::Rescanned { devices, gpus });
        });
    }

    /// `status` of all units, answered as one encoded frame shared by
    /// every caller that asks meanwhile: the last one when nothing changed
    /// since and it is younger than [`SHARED_STATUS_FRESH`], else the one
    /// being made, else a new one. A thousand clients asking at once cost
    /// one status, not a thousand.
    fn status_shared(&mut self) -> Reply {
        let (tx, rx) = oneshot::channel();
        let version = self.version;
        {
            let mut share = self.shared_status.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((v, at, frame)) = &share.last {
                if *v == version && at.elapsed() < SHARED_STATUS_FRESH {
                    let _ = tx.send(frame.clone());
                    return Reply::Frame(rx);
                }
            }
            if let Some(waiting) = share.making.get_mut(&version) {
                waiting.push(tx);
                return Reply::Frame(rx);
            }
            share.making.insert(version, vec![tx]);
        }
        let report = self.status(&[]);
        let share = self.shared_status.clone();
        tokio::spawn(async move {
            let resp = report.await.unwrap_or(Response::Error {
                message: "jarvisd is shutting down".into(),
            });
            let frame = blocking(move || {
                jarvis_proto::encode_frame(&resp).unwrap_or_else(|e| {
                    let message = format!("the status answer cannot be sent: {e}");
                    jarvis_proto::encode_frame(&Response::Error { message })
                        .expect("a short error encodes")
                })
            })
            .await;
            let frame = Arc::new(frame);
            let waiting = {
                let mut share = share.lock().unwrap_or_else(|e| e.into_inner());
                if share.last.as_ref().is_none_or(|(v, ..)| *v <= version) {
                    share.last = Some((version, Instant::now(), frame.clone()));
                }
                share.making.remove(&version).unwrap_or_default()
            };
            for w in waiting {
                let _ = w.send(frame.clone());
            }
        });
        Reply::Frame(rx)
    }

    /// `status`: the core's view, with each running unit's cgroup figures
    /// and its process's start time read off the loop.
    fn status(&self, names: &[String]) -> oneshot::Receiver<Response> {
        let mut rows = Vec::new();
        let mut started = Vec::new();
        for v in self.core.views(names) {
            started.push(v.st.started_at);
            let s = v.st;
            let multi = v.unit.forms().len() > 1;
            let net = if v.kind == Kind::Container && s.pid.is_some() {
                self.cfg
                    .runtime
                    .unit_network(&effective_unit(v.unit, v.kind))
            } else {
                Default::default()
            };
            rows.push(UnitStatus {
                name: v.name.to_string(),
                kind: kind_wire(v.kind),
                form: multi.then(|| kind_wire(v.kind)),
                form_reason: v.form_reason.clone(),
                state: state_wire(s.state),
                pid: s.pid,
                restarts: s.restarts,
                health: s.health.map(health_wire),
                exit_code: s.last_exit.map(|x| x.shell_code()),
                cgroup: self.cfg.runtime.cgroup_path(v.name),
                reason: s.reason.as_ref().map(|r| r.to_string()),
                description: v.unit.description.clone(),
                exit_signal: s
                    .last_exit
                    .and_then(|x| x.signal)
                    .map(crate::engine::machine::signal_name),
                oom_killed: s.last_exit.is_some_and(|x| x.oom_killed),
                oom_kills: s.oom_kills,
                uptime_ms: None,
                memory_bytes: None,
                memory_max_bytes: v.unit.resources.memory_max,
                cpu_usage_ns: None,
                tasks: None,
                wanted: s.wanted,
                placement: v.placement.map(placement_wire),
                networks: net
                    .addresses
                    .into_iter()
                    .map(|(name, ip)| jarvis_proto::NetworkAddress {
                        name,
                        ip: ip.to_string(),
                    })
                    .collect(),
                ports: net.ports,
                privileged: v.kind == Kind::Container
                    && container_form(v.unit).is_some_and(|c| c.privileged),
                gpu: s.gpu.as_ref().map(|g| match g {
                    GpuVerdict::Ok => jarvis_proto::GpuCheck::Ok,
                    GpuVerdict::Fallback(_) => jarvis_proto::GpuCheck::Fallback,
                }),
                gpu_reason: match &s.gpu {
                    Some(GpuVerdict::Fallback(r)) => Some(r.clone()),
                    _ => None,
                },
                vram_bytes: None,
                vram_given_bytes: match (v.placement, &v.unit.gpu) {
                    (Some(Placement::Gpus { .. }), Some(g)) => Some(g.min_vram),
                    _ => None,
                },
            });
        }
        // The GPUs (when the host has any): each with the units placed on
        // it now, from a probe a few seconds old at most.
        let gpu_units = if self.core.gpus().is_empty() {
            None
        } else {
            let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut running = Vec::new();
            for v in self.core.views(&[]) {
                let Some(p @ Placement::Gpus { .. }) = v.placement else {
                    continue;
                };
                if !v.st.is_active() {
                    continue;
                }
                for id in p.ids() {
                    placed.entry(id).or_default().push(v.name.to_string());
                }
                if v.st.pid.is_some() {
                    running.push((v.name.to_string(), self.cfg.runtime.config().cgroup(v.name)));
                }
            }
            Some((placed, running))
        };
        let gpu_cache = self.gpu_cache.clone();
        let rt = self.cfg.runtime.clone();
        let cache = self.stats.clone();
        let problems = self.problems.clone();
        let start_times = self.start_times.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            // The cgroup figures older than a second, of every running
            // unit at once, and the start times of new runs (from /proc,
            // once per run): one trip off the loop.
            let stale: Vec<(String, jarvis_runtime::UnitCgroup)> = {
                let c = cache.lock().unwrap_or_else(|e| e.into_inner());
                rows.iter()
                    .filter(|r| r.pid.is_some() && !c.fresh(&r.name))
                    .map(|r| (r.name.clone(), rt.config().cgroup(&r.name)))
                    .collect()
            };
            let units = blocking(move || {
                let read: Vec<(String, jarvis_runtime::Stats)> =
                    stale.into_iter().map(|(n, cg)| (n, cg.stats())).collect();
                {
                    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                    let at = Instant::now();
                    for (name, st) in read {
                        c.0.insert(name, (at, st));
                    }
                    for row in rows.iter_mut().filter(|r| r.pid.is_some()) {
                        if let Some((_, st)) = c.0.get(&row.name) {
                            row.memory_bytes = st.memory_current;
                            row.memory_max_bytes = st.memory_max;
                            row.cpu_usage_ns = st.cpu_usage_ns;
                            row.tasks = st.pids_current;
                        }
                    }
                }
                let mut known = start_times.lock().unwrap_or_else(|e| e.into_inner());
                let now = std::time::SystemTime::now();
                let mut seen = Vec::new();
                for (row, started) in rows.iter_mut().zip(started) {
                    let Some(pid) = row.pid else { continue };
                    seen.push((pid, started));
                    let at = match known.get(&(pid, started)) {
                        Some(at) => Some(*at),
                        None => {
                            let at = jarvis_runtime::process_started_at(pid).ok();
                            if let Some(at) = at {
                                known.insert((pid, started), at);
                            }
                            at
                        }
                    };
                    row.uptime_ms = match at {
                        Some(at) => {
                            Some(now.duration_since(at).unwrap_or_default().as_millis() as u64)
                        }
                        None => started.map(|t| t.elapsed().as_millis() as u64),
                    };
                }
                // Runs that are over go (a call for some units keeps the rest).
                if known.len() > 2 * seen.len() + 64 {
                    let seen: std::collections::HashSet<_> = seen.into_iter().collect();
                    known.retain(|k, _| seen.contains(k));
                }
                drop(known);
                let mut gpus = Vec::new();
                if let Some((mut placed, running)) = gpu_units {
                    let roots = &rt.config().roots;
                    if let Some(snap) = crate::gpucheck::snapshot(&gpu_cache, roots, &running) {
                        for row in rows.iter_mut() {
                            row.vram_bytes = snap.unit_vram.get(&row.name).copied();
                        }
                        gpus = snap
                            .gpus
                            .iter()
                            .map(|g| jarvis_proto::GpuStatus {
                                id: g.id.clone(),
                                vendor: g.vendor.as_str().to_string(),
                                name: g.name.clone(),
                                memory_total_bytes: g.memory_total,
                                memory_used_bytes: g.memory_used,
                                utilization_percent: g.utilization,
                                units: placed.remove(&g.id).unwrap_or_default(),
                            })
                            .collect();
                    }
                }
                (rows, gpus)
            })
            .await;
            let (units, gpus) = units;
            let _ = tx.send(Response::Status(StatusReport {
                units,
                gpus,
                problems,
            }));
        });
        rx
    }

    /// `volume ls`: the volumes on disk, each with the units that name it.
    /// `config`: the units as they run (the form chosen), their env files
    /// read in under `[env]` off the loop, and secret-looking values
    /// redacted. Secrets show their source and target, never content.
    fn config(&self, names: &[String]) -> oneshot::Receiver<Response> {
        let units: Vec<Unit> = self.core.views(names).iter().map(running_form).collect();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let resp = blocking(move || {
                let mut out = Vec::new();
                for mut unit in units {
                    let env_error = match jarvis_runtime::envfile::merged(&unit.env_file, &unit.env)
                    {
                        Ok(env) => {
                            unit.env = env;
                            None
                        }
                        Err(e) => Some(e.to_string()),
                    };
                    for (k, v) in unit.env.iter_mut() {
                        if jarvis_proto::is_secret_key(k) {
                            *v = jarvis_proto::REDACTED.to_string();
                        }
                    }
                    let mut value = serde_json::to_value(&unit).map_err(|e| e.to_string())?;
                    if let (Some(e), Some(obj)) = (env_error, value.as_object_mut()) {
                        obj.insert("env_file_error".into(), e.into());
                    }
                    out.push(value);
                }
                Ok::<_, String>(out)
            })
            .await;
            let _ = tx.send(match resp {
                Ok(units) => Response::Config { units },
                Err(message) => Response::Error { message },
            });
        });
        rx
    }

    fn list_volumes(&self) -> oneshot::Receiver<Response> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in self.core.views(&[]) {
            for name in volume_names(v.unit) {
                let units = users.entry(name).or_default();
                if !units.iter().any(|u| u == v.name) {
                    units.push(v.name.to_string());
                }
            }
        }
        let rt = self.cfg.runtime.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(match rt.volumes().await {
                Ok(volumes) => Response::Volumes {
                    volumes: volumes
                        .into_iter()
                        .map(|v| jarvis_proto::VolumeInfo {
                            units: users.remove(&v.name).unwrap_or_default(),
                            name: v.name,
                            path: v.path.display().to_string(),
                            size: v.size,
                        })
                        .collect(),
                },
                Err(message) => Response::Error { message },
            });
        });
        rx
    }

    /// `volume rm`: refused while a unit that uses the volume runs or
    /// starts.
    fn remove_volume(&mut self, name: String) -> Reply {
        let users = self
            .core
            .active_users(|u| volume_names(u).any(|n| n == name));
        if !users.is_empty() {
            return Reply::Now(Response::Error {
                message: format!(
                    "volume {name} is in use by {}; stop {} first",
                    users.join(", "),
                    if users.len() == 1 { "it" } else { "them" }
                ),
            });
        }
        let rt = self.cfg.runtime.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(match rt.remove_volume(&name).await {
                Ok(()) => Response::Done {
                    message: format!("removed volume {name}"),
                },
                Err(message) => Response::Error { message },
            });
        });
        Reply::Later(rx)
    }

    /// Removes an image unless a unit that runs uses it.
    fn remove_image(&mut self, reference: String) -> Reply {
        let Ok(wanted) = jarvis_image::parse_reference(&reference).map(|r| r.to_string()) else {
            return Reply::Now(Response::Error {
                message: format!("{reference:?} is not an image reference"),
            });
        };
        let users = self.core.active_users(|u| match &u.exec {
            jarvis_unit::Exec::Container(c) => {
                jarvis_image::parse_reference(&c.image).is_ok_and(|r| r.to_string() == wanted)
            }
            jarvis_unit::Exec::Native(_) => false,
        });
        if !users.is_empty() {
            return Reply::Now(Response::Error {
                message: format!(
                    "{wanted} is in use by {}; stop them first",
                    users.join(", ")
                ),
            });
        }
        let store = self.cfg.runtime.config().images.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let r = blocking(move || store.remove(&wanted).map(|_| wanted)).await;
            let _ = tx.send(match r {
                Ok(name) => Response::Done {
                    message: format!("removed {name}"),
                },
                Err(e) => Response::Error {
                    message: e.to_string(),
                },
            });
        });
        Reply::Later(rx)
    }
}

/// Answers a request at once.
fn answer(reply: oneshot::Sender<Reply>, r: Response) -> Option<Input> {
    let _ = reply.send(Reply::Now(r));
    None
}

/// Whether a unit's devices are there now (blocking: reads sysfs).
fn devices_of(rt: &Runtimes, unit: &Unit) -> Devices {
    if unit.devices.is_empty() {
        return Devices::Present(vec![]);
    }
    match hardware::resolve_devices(&rt.config().roots, unit) {
        Ok(found) => Devices::Present(found.iter().map(|(_, d)| d.dev_path.clone()).collect()),
        Err(reason) => Devices::Missing(reason),
    }
}

/// Each run's process start time, by its pid and when jarvisd saw it start
/// (so a reused pid is a new entry).
type StartTimes = HashMap<(i32, Option<Instant>), std::time::SystemTime>;

/// How long a shared `status` of all units is reused when nothing changed:
/// its uptimes may be this much behind (its cgroup figures are up to a
/// second old anyway, see [`StatsCache`]).
const SHARED_STATUS_FRESH: Duration = Duration::from_millis(200);

/// `status` of all units as one encoded frame, shared (see
/// [`Daemon::status_shared`]).
#[derive(Default)]
struct SharedStatus {
    /// The last one made: the loop's version then, when, the frame.
    last: Option<(u64, Instant, Arc<Vec<u8>>)>,
    /// Those being made, by version, with the callers waiting for each.
    making: BTreeMap<u64, Vec<oneshot::Sender<Arc<Vec<u8>>>>>,
}

/// Recent cgroup figures per unit, read at most once a second: `status` of
/// a hundred units would otherwise read hundreds of files on every call.
#[derive(Default)]
struct StatsCache(BTreeMap<String, (Instant, jarvis_runtime::Stats)>);

impl StatsCache {
    /// Whether a unit's figures were read less than a second ago.
    fn fresh(&self, name: &str) -> bool {
        const FRESH: Duration = Duration::from_secs(1);
        self.0.get(name).is_some_and(|(at, _)| at.elapsed() < FRESH)
    }
}

/// What the writer thread writes, in order.
enum Write {
    Note(Arc<UnitLog>, String),
    Save(Persisted),
    /// The units directory loaded cleanly: keep the set.
    LastGood(LastGood),
}

/// One thread for jarvisd's own writes (notes in unit logs, the state
/// file), so the loop never waits on a disk.
struct Writer {
    tx: Option<std::sync::mpsc::Sender<Write>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(state: StateFile, last_good: LastGoodFile) -> Writer {
        let (tx, rx) = std::sync::mpsc::channel::<Write>();
        let thread = std::thread::Builder::new()
            .name("jarvisd-writer".into())
            .spawn(move || {
                for w in rx {
                    match w {
                        Write::Note(log, text) => log.note(&text),
                        Write::Save(p) => {
                            if let Err(err) = state.save(&p) {
                                tracing::error!(error = %err, "cannot save state");
                            }
                        }
                        Write::LastGood(set) => {
                            if let Err(err) = last_good.save(&set) {
                                tracing::warn!(error = %err, "cannot keep the last good unit set");
                            }
                        }
                    }
                }
            })
            .ok();
        Writer {
            tx: Some(tx),
            thread,
        }
    }

    fn send(&self, w: Write) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(w);
        }
    }

    /// A sender for tasks (a run's notes while it starts).
    fn sender(&self) -> Option<std::sync::mpsc::Sender<Write>> {
        self.tx.clone()
    }

    /// Waits until everything sent has been written.
    fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a run ended, as the state machine takes it.
fn exit_info(e: jarvis_runtime::Exit) -> ExitInfo {
    ExitInfo {
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
    }
}

/// `unit` in the form it runs as now.
/// The unit's container form: the one it runs as, or the one it declares.
fn container_form(unit: &Unit) -> Option<&jarvis_unit::Container> {
    match &unit.exec {
        jarvis_unit::Exec::Container(c) => Some(c),
        jarvis_unit::Exec::Native(_) => unit.container.as_ref(),
    }
}

/// The named volumes a unit's container form mounts.
fn volume_names(unit: &Unit) -> impl Iterator<Item = String> + '_ {
    container_form(unit)
        .into_iter()
        .flat_map(|c| &c.volumes)
        .filter_map(|v| match &v.source {
            jarvis_unit::VolumeSource::Named(n) => Some(n.clone()),
            jarvis_unit::VolumeSource::Bind(_) => None,
        })
}

fn effective_unit(unit: &Unit, kind: Kind) -> Unit {
    unit.with_form(kind).unwrap_or_else(|| unit.clone())
}

fn kind_wire(k: Kind) -> jarvis_proto::UnitKind {
    match k {
        Kind::Native => jarvis_proto::UnitKind::Native,
        Kind::Container => jarvis_proto::UnitKind::Container,
    }
}

/// The unit in the form it runs (or would run) as.
fn running_form(v: &crate::engine::View<'_>) -> Unit {
    v.unit.with_form(v.kind).unwrap_or_else(|| v.unit.clone())
}

fn state_wire(s: crate::engine::machine::State) -> jarvis_proto::UnitState {
    use crate::engine::machine::State;
    use jarvis_proto::UnitState as W;
    match s {
        State::Waiting => W::Waiting,
        State::Starting(_) => W::Starting,
        State::Running => W::Running,
        State::Stopping => W::Stopping,
        State::Stopped => W::Stopped,
        State::Exited => W::Exited,
        State::Failed => W::Failed,
    }
}

fn health_wire(h: crate::engine::machine::Health) -> jarvis_proto::Health {
    use crate::engine::machine::Health;
    match h {
        Health::Starting => jarvis_proto::Health::Starting,
        Health::Healthy => jarvis_proto::Health::Healthy,
        Health::Unhealthy => jarvis_proto::Health::Unhealthy,
    }
}

fn placement_wire(p: &Placement) -> jarvis_proto::Placement {
    match p {
        Placement::Cpu => jarvis_proto::Placement {
            device: jarvis_proto::Device::Cpu,
            gpus: None,
        },
        Placement::Gpus { .. } => jarvis_proto::Placement {
            device: jarvis_proto::Device::Gpu,
            gpus: Some(p.ids()),
        },
    }
}
