//! The event loop: one task owns every unit's state and handles one
//! [`Msg`] at a time (a process event, a timer, a health result, a request),
//! feeds it to the state machine and carries out the effects.
//!
//! Nothing here polls: the loop sleeps on its channel until a task reports
//! something.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use jarvis_proto::{Request, Response, StatusReport, UnitStatus, UpReport, WaitReport};
use jarvis_unit::{Kind, RunMode, Unit};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::bench;
pub use crate::msg::{Msg, Reply};
use crate::hardware;
use crate::logs::UnitLog;
use crate::machine::{self, Effect, Event, ExitInfo, Machine, Readiness, State, UnitState};
use crate::placement::{self, Decision, GpuInfo, Ledger, Placement};
use crate::run::{blocking, Runtime};
use crate::state::{Persisted, PersistedUnit, StateFile};
use jarvis_shim::Adopted;

pub struct Config {
    pub units_dir: PathBuf,
    pub state_dir: PathBuf,
    pub runtime: Runtime,
}

struct Entry {
    unit: Unit,
    st: UnitState,
    log: Arc<UnitLog>,
    health: Option<AbortHandle>,
    /// `up` found the unit changed: once stopped, run this definition.
    replace_with: Option<Unit>,
    /// `up` found the unit gone: once stopped, forget it.
    remove: bool,
    /// Where its current run was placed (units with `[gpu]`).
    placement: Option<Placement>,
    /// A benchmark runs it in this form for now.
    form_override: Option<Kind>,
    /// While a benchmark runs: whether the unit was wanted before.
    bench_restore: Option<bool>,
    /// The form its current run has, and why (units with both forms).
    form: Option<(Kind, String)>,
    /// The device nodes its current run got.
    devices_in_use: Vec<PathBuf>,
}

enum Until {
    /// Every listed unit has no process.
    Quiet(Vec<String>),
    /// Every wanted unit is ready, or one failed.
    Ready,
    /// This unit runs and is healthy (or failed).
    Healthy(String),
}

struct Waiter {
    until: Until,
    reply: oneshot::Sender<Response>,
}

pub struct Daemon {
    cfg: Config,
    units: BTreeMap<String, Entry>,
    tx: mpsc::UnboundedSender<Msg>,
    waiters: Vec<Waiter>,
    state_file: StateFile,
    saved: Persisted,
    shutting_down: bool,
    /// The GPUs placement chooses from.
    gpus: Vec<GpuInfo>,
    /// VRAM promised to placed units.
    ledger: Ledger,
    /// Stored benchmark results: unit -> (recommended form, verdict).
    recommendations: BTreeMap<String, (Kind, String)>,
    /// Recent cgroup figures per unit (see `stats`).
    stats_cache: std::cell::RefCell<BTreeMap<String, (Instant, jarvis_native::CgroupStats)>>,
}

impl Daemon {
    pub fn new(cfg: Config, tx: mpsc::UnboundedSender<Msg>) -> anyhow::Result<Daemon> {
        let cfg_state_dir = cfg.state_dir.clone();
        let state_file = StateFile::new(&cfg.state_dir);
        let saved = state_file.load()?;
        Ok(Daemon {
            cfg,
            units: BTreeMap::new(),
            tx,
            waiters: Vec::new(),
            state_file,
            saved,
            shutting_down: false,
            gpus: Vec::new(),
            ledger: Ledger::default(),
            recommendations: bench::load_all(&bench::dir(&cfg_state_dir)),
            stats_cache: Default::default(),
        })
    }

    fn log_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("logs")
    }

    /// Loads the units, re-adopts runs an earlier daemon left (their shims
    /// kept them running), and starts every other unit the user has not
    /// stopped.
    pub async fn boot(&mut self, units: Vec<Unit>) {
        self.take_inventory().await;
        let run_dir = self.cfg.runtime.run_dir.clone();
        for unit in units {
            let name = unit.name.clone();
            let wanted = self.saved.units.get(&name).is_none_or(|u| u.wanted);
            self.insert(unit);
            match jarvis_shim::adopt(&run_dir, &name) {
                Some(Adopted::Running(started)) => {
                    let pid = started.pid();
                    tracing::info!(unit = %name, pid, "re-adopted a running unit");
                    self.step(&name, Event::Adopted { pid });
                    let e = &self.units[&name];
                    e.log
                        .note(&format!("re-adopted pid {pid} after a jarvisd restart"));
                    self.cfg
                        .runtime
                        .watch(&name, e.st.gen, started, self.tx.clone());
                    if !wanted {
                        self.step(&name, Event::Stop);
                    }
                    continue;
                }
                Some(Adopted::Ended(record, exit)) => {
                    // It ended while no daemon watched: let the restart
                    // policy decide, as if we had seen it.
                    let exit = exit.map(crate::run::exit_info).unwrap_or(ExitInfo {
                        code: None,
                        signal: None,
                        oom_killed: false,
                    });
                    tracing::info!(unit = %name, pid = record.pid, "{} while jarvisd was away", exit.describe());
                    self.empty_cgroup(&name).await;
                    if wanted {
                        self.step(&name, Event::Adopted { pid: record.pid });
                        let gen = self.units[&name].st.gen;
                        self.step(&name, Event::Exited { gen, exit });
                    }
                    continue;
                }
                None => self.empty_cgroup(&name).await,
            }
            if wanted {
                self.step(&name, Event::Start);
            }
        }
        self.settle();
    }

    /// Probes the GPUs again (at boot, and when the kernel says they
    /// changed).
    async fn take_inventory(&mut self) {
        let roots = self.cfg.runtime.roots.clone();
        self.gpus = blocking(move || hardware::inventory(&roots)).await;
        tracing::info!(
            gpus = ?self.gpus.iter().map(|g| format!("{} {} {}B", g.vendor.as_str(), g.id, g.memory_total)).collect::<Vec<_>>(),
            "GPU inventory"
        );
    }

    /// Kills whatever is left in a unit's cgroup with no shim watching it.
    async fn empty_cgroup(&self, name: &str) {
        let cg = self.cfg.runtime.cgroup(name);
        let left = blocking({
            let cg = cg.clone();
            move || cg.pids()
        })
        .await;
        if !left.is_empty() {
            tracing::warn!(unit = name, pids = ?left, "killing processes no shim watches");
            if let Err(e) = blocking(move || cg.kill_all()).await {
                tracing::error!(unit = name, error = %e, "cannot empty cgroup");
            }
        }
    }

    fn insert(&mut self, unit: Unit) {
        let log = Arc::new(UnitLog::new(&self.log_dir(), &unit.name, &unit.logs));
        self.units.insert(
            unit.name.clone(),
            Entry {
                unit,
                st: UnitState::default(),
                log,
                health: None,
                replace_with: None,
                remove: false,
                placement: None,
                devices_in_use: Vec::new(),
                form_override: None,
                bench_restore: None,
                form: None,
            },
        );
    }

    /// Runs until shutdown.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Unit { name, event } => self.step(&name, event),
                Msg::DevicesInUse { name, gen, paths } => {
                    if let Some(e) = self.units.get_mut(&name) {
                        if e.st.gen == gen {
                            e.devices_in_use = paths;
                        }
                    }
                }
                Msg::Hardware(ev) => self.hardware_changed(ev).await,
                Msg::Request { req, reply } => {
                    let r = self.request(req);
                    let _ = reply.send(r);
                }
                Msg::Shutdown => {
                    if !self.shutting_down {
                        tracing::info!("shutting down: stopping every unit");
                        self.shutting_down = true;
                        let names: Vec<String> = self.units.keys().cloned().collect();
                        for n in &names {
                            self.step(n, Event::Stop);
                        }
                    }
                }
            }
            self.settle();
            if self.shutting_down && self.units.values().all(|e| !e.st.is_active()) {
                break;
            }
        }
        for (name, _) in std::mem::take(&mut self.units) {
            let cg = self.cfg.runtime.cgroup(&name);
            let _ = blocking(move || cg.remove()).await;
        }
        // The parent goes too, when nothing else is in it.
        let parent = jarvis_native::UnitCgroup::open("", &self.cfg.runtime.cgroup_parent);
        let _ = blocking(move || parent.remove()).await;
    }

    /// Feeds one event to a unit's machine and carries out the effects.
    fn step(&mut self, name: &str, event: Event) {
        let Some(e) = self.units.get_mut(name) else {
            return;
        };
        let before = (e.st.state, e.st.pid);
        let effects = Machine {
            unit: &e.unit,
            now: Instant::now(),
        }
        .step(&mut e.st, event);
        let after = (e.st.state, e.st.pid);
        if before != after {
            tracing::info!(
                unit = name,
                state = e.st.state.as_str(),
                pid = e.st.pid,
                reason = e.st.reason.as_deref(),
                "unit changed"
            );
            if e.st.state == State::Failed {
                if let Some(r) = &e.st.reason {
                    e.log.note(&format!("failed: {r}"));
                }
            }
        }
        for effect in effects {
            self.effect(name, effect);
        }
    }

    fn effect(&mut self, name: &str, effect: Effect) {
        let Some(e) = self.units.get_mut(name) else {
            return;
        };
        let tx = self.tx.clone();
        match effect {
            Effect::Spawn { gen } => {
                let (unit, why) = effective(e, &self.recommendations);
                let e = self.units.get_mut(name).expect("looked up above");
                e.devices_in_use.clear();
                e.form = why.map(|w| (unit.kind(), w));
                self.cfg
                    .runtime
                    .start(&unit, gen, e.placement.clone(), e.log.clone(), tx);
            }
            Effect::Signal { signal } => {
                if let Some(pid) = e.st.pid {
                    let sig = nix::sys::signal::Signal::try_from(signal)
                        .unwrap_or(nix::sys::signal::Signal::SIGTERM);
                    e.log
                        .note(&format!("stopping: {} to pid {pid}", sig.as_str()));
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
                }
            }
            Effect::KillAll => {
                e.log
                    .note("stop timeout passed: killing every process in the cgroup");
                let cg = self.cfg.runtime.cgroup(name);
                let unit = name.to_string();
                tokio::spawn(async move {
                    if let Err(err) = blocking(move || cg.kill_all()).await {
                        tracing::error!(unit, error = %err, "cannot kill cgroup");
                    }
                });
            }
            Effect::Timer { gen, kind, after } => {
                let name = name.to_string();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send(Msg::Unit {
                        name,
                        event: Event::Timer { gen, kind },
                    });
                });
            }
            Effect::StartHealth { gen } => {
                if let Some(h) = e.health.take() {
                    h.abort();
                }
                e.health = Some(self.cfg.runtime.health(&e.unit, gen, tx));
            }
            Effect::StopHealth => {
                if let Some(h) = e.health.take() {
                    h.abort();
                }
            }
        }
    }

    /// After every message: start waiting units whose dependencies are ready,
    /// swap or drop units `up` changed or removed, answer waiters, save.
    fn settle(&mut self) {
        loop {
            let mut changed = false;
            let names: Vec<String> = self.units.keys().cloned().collect();
            for name in &names {
                // A unit that is not running holds no GPU promise.
                let e = self.units.get_mut(name).expect("listed");
                if matches!(
                    e.st.state,
                    State::Waiting | State::Stopped | State::Exited | State::Failed
                ) && e.placement.take().is_some()
                {
                    self.ledger.release(name);
                }
                if self.units[name].st.state == State::Waiting {
                    let before = {
                        let e = &self.units[name];
                        (e.st.state, e.st.reason.clone())
                    };
                    let readiness = self.readiness(name);
                    self.step(name, Event::Deps(readiness));
                    let e = &self.units[name];
                    changed |= before != (e.st.state, e.st.reason.clone());
                }
                let e = self.units.get_mut(name).expect("listed");
                if e.st.is_active() {
                    continue;
                }
                if e.remove {
                    if let Some(h) = e.health.take() {
                        h.abort();
                    }
                    self.units.remove(name);
                    let cg = self.cfg.runtime.cgroup(name);
                    tokio::spawn(async move {
                        let _ = blocking(move || cg.remove()).await;
                    });
                    changed = true;
                } else if let Some(unit) = e.replace_with.take() {
                    e.log.set_limits(&unit.logs);
                    e.unit = unit;
                    self.step(name, Event::Start);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.answer_waiters();
        if !self.shutting_down {
            self.save();
        }
    }

    /// Whether a waiting unit may start: its dependencies, then its
    /// devices, then a GPU placement (promised here, when it may).
    fn readiness(&mut self, name: &str) -> Readiness {
        let e = &self.units[name];
        let deps = machine::readiness(&e.unit, |n| self.units.get(n).map(|d| &d.st));
        if deps != Readiness::Ready {
            return deps;
        }
        if !e.unit.devices.is_empty() {
            if let Err(reason) = hardware::resolve_devices(&self.cfg.runtime.roots, &e.unit) {
                return Readiness::Pending(reason);
            }
        }
        let Some(want) = e.unit.gpu.clone() else {
            return Readiness::Ready;
        };
        match placement::place(name, &want, &self.gpus, &self.ledger) {
            Decision::Wait(reason) => Readiness::Pending(reason),
            Decision::Place(p) => {
                self.ledger.promise(name, &p, want.min_vram);
                tracing::info!(unit = name, placement = ?p.ids(), "placed");
                self.units.get_mut(name).expect("listed").placement = Some(p);
                Readiness::Ready
            }
        }
    }

    /// A uevent: take the GPU inventory again if GPUs changed, and move
    /// units whose devices went away (or moved to another node) back to
    /// waiting. Waiting units are looked at again by `settle`.
    async fn hardware_changed(&mut self, ev: jarvis_hardware::Uevent) {
        if !ev.wants_rescan() {
            return;
        }
        tracing::debug!(action = %ev.action, devpath = %ev.devpath, subsystem = ?ev.subsystem, "hardware changed");
        if matches!(ev.subsystem.as_deref(), Some("drm" | "pci" | "kfd"))
            || ev.action == jarvis_hardware::Uevent::OVERFLOW
        {
            self.take_inventory().await;
        }
        let names: Vec<String> = self
            .units
            .iter()
            .filter(|(_, e)| !e.unit.devices.is_empty() && e.st.is_active())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let e = &self.units[&name];
            let withdraw = match hardware::resolve_devices(&self.cfg.runtime.roots, &e.unit) {
                Err(reason) => Some(reason),
                Ok(now) => {
                    let paths: Vec<PathBuf> = now.iter().map(|(_, d)| d.dev_path.clone()).collect();
                    (!e.devices_in_use.is_empty() && paths != e.devices_in_use).then(|| {
                        format!(
                            "device moved from {} to {}; restarting",
                            join_paths(&e.devices_in_use),
                            join_paths(&paths)
                        )
                    })
                }
            };
            if let Some(reason) = withdraw {
                e.log.note(&reason);
                self.step(&name, Event::Withdraw { reason });
            }
        }
    }

    fn save(&mut self) {
        let mut p = Persisted::default();
        for (name, e) in &self.units {
            p.units.insert(
                name.clone(),
                PersistedUnit {
                    wanted: e.st.wanted || e.replace_with.is_some(),
                },
            );
        }
        if p.units != self.saved.units {
            if let Err(err) = self.state_file.save(&p) {
                tracing::error!(error = %err, "cannot save state");
            }
            self.saved = p;
        }
    }

    fn answer_waiters(&mut self) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            match self.check(&w.until) {
                Some(resp) => {
                    let _ = w.reply.send(resp);
                }
                None => self.waiters.push(w),
            }
        }
    }

    fn check(&self, until: &Until) -> Option<Response> {
        match until {
            Until::Healthy(name) => {
                let e = self.units.get(name)?;
                match e.st.state {
                    State::Running
                        if e.unit.health.is_none()
                            || e.st.health == Some(machine::Health::Healthy) =>
                    {
                        Some(Response::Done {
                            message: format!(
                                "{name} runs as {} (pid {})",
                                self.form_of(e).0.as_str(),
                                e.st.pid.unwrap_or(0)
                            ),
                        })
                    }
                    State::Failed | State::Stopped | State::Exited => Some(Response::Error {
                        message: format!(
                            "{name} is {}: {}",
                            e.st.state.as_str(),
                            e.st.reason.as_deref().unwrap_or("no reason given")
                        ),
                    }),
                    _ => None,
                }
            }
            Until::Quiet(names) => names
                .iter()
                .all(|n| self.units.get(n).is_none_or(|e| !e.st.is_active()))
                .then(|| Response::Done {
                    message: format!("stopped {}", names.join(", ")),
                }),
            Until::Ready => {
                let mut pending = vec![];
                for (name, e) in &self.units {
                    if !e.st.wanted && e.replace_with.is_none() {
                        continue;
                    }
                    let s = &e.st;
                    if s.state == State::Failed {
                        return Some(Response::Wait(WaitReport {
                            ok: false,
                            message: format!(
                                "{name} failed: {}",
                                s.reason.as_deref().unwrap_or("unknown reason")
                            ),
                        }));
                    }
                    let ready = e.replace_with.is_none()
                        && match s.state {
                            State::Running => {
                                e.unit.health.is_none()
                                    || s.health == Some(machine::Health::Healthy)
                            }
                            State::Exited => s.last_exit.is_some_and(|x| x.success()),
                            _ => false,
                        };
                    if !ready {
                        pending.push(name.clone());
                    }
                }
                pending.is_empty().then(|| {
                    Response::Wait(WaitReport {
                        ok: true,
                        message: format!("{} units ready", self.units.len()),
                    })
                })
            }
        }
    }

    fn later(&mut self, until: Until) -> Reply {
        let (tx, rx) = oneshot::channel();
        match self.check(&until) {
            Some(resp) => {
                let _ = tx.send(resp);
            }
            None => self.waiters.push(Waiter { until, reply: tx }),
        }
        Reply::Later(rx)
    }

    fn unknown(&self, names: &[String]) -> Option<Response> {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !self.units.contains_key(*n))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| Response::Error {
            message: format!(
                "no unit named {} (known: {})",
                missing.join(", "),
                self.units.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    fn request(&mut self, req: Request) -> Reply {
        if self.shutting_down && req.is_mutating() {
            return Reply::Now(Response::Error {
                message: "jarvisd is shutting down".into(),
            });
        }
        match req {
            Request::Status { units } => {
                if let Some(err) = self.unknown(&units) {
                    return Reply::Now(err);
                }
                Reply::Now(Response::Status(self.status(&units)))
            }
            Request::Up => Reply::Now(self.up()),
            Request::Wait { .. } => self.later(Until::Ready),
            Request::Down => {
                let names: Vec<String> = self.units.keys().cloned().collect();
                for n in &names {
                    self.step(n, Event::Stop);
                }
                self.settle();
                self.later(Until::Quiet(names))
            }
            Request::Start { units } | Request::Restart { units } | Request::Stop { units }
                if units.is_empty() =>
            {
                let _ = units;
                Reply::Now(Response::Error {
                    message: "name at least one unit".into(),
                })
            }
            Request::Start { units } => {
                if let Some(err) = self.unknown(&units) {
                    return Reply::Now(err);
                }
                // Like `compose up web`: what a unit depends on starts too.
                let all = self.with_dependencies(&units);
                self.each(all, Event::Start, "starting")
            }
            Request::Restart { units } => self.each(units, Event::Restart, "restarting"),
            Request::Stop { units } => {
                if let Some(err) = self.unknown(&units) {
                    return Reply::Now(err);
                }
                for n in &units {
                    self.step(n, Event::Stop);
                }
                self.settle();
                self.later(Until::Quiet(units))
            }
            Request::ImageRemove { reference } => self.remove_image(reference),
            // Answered by the connection itself.
            Request::ImagePull { .. } | Request::ImageImport { .. } | Request::ImageList => {
                Reply::Now(Response::Error {
                    message: "internal: image request reached the event loop".into(),
                })
            }
            Request::BenchBegin { unit } => Reply::Now(self.bench_begin(&unit)),
            Request::BenchForm { unit, form, .. } => self.bench_form(&unit, form),
            Request::BenchResult { unit, result } => Reply::Now(self.bench_result(&unit, result)),
            Request::Logs { unit, .. } => match self.units.get(&unit) {
                Some(e) => Reply::Log(e.log.clone()),
                None => Reply::Now(self.unknown(&[unit]).expect("unknown")),
            },
        }
    }

    /// The form a unit runs (or would run) as, and why.
    fn form_of(&self, e: &Entry) -> (Kind, Option<String>) {
        if let Some((k, why)) = &e.form {
            return (*k, Some(why.clone()));
        }
        let (unit, why) = effective(e, &self.recommendations);
        (unit.kind(), why)
    }

    fn bench_begin(&mut self, name: &str) -> Response {
        let Some(e) = self.units.get_mut(name) else {
            return self.unknown(&[name.to_string()]).expect("unknown");
        };
        let Some(b) = e.unit.bench.clone() else {
            return Response::Error {
                message: format!(
                    "{name} has no [bench] section: add one (api, url, ...) to benchmark it"
                ),
            };
        };
        let forms: Vec<String> = e
            .unit
            .forms()
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        if forms.len() < 2 {
            return Response::Error {
                message: format!(
                    "{name} declares only [{}]: declare both [native] and [container] to compare them",
                    forms.join("")
                ),
            };
        }
        if e.bench_restore.is_none() {
            e.bench_restore = Some(e.st.wanted);
        }
        Response::BenchPlan(jarvis_proto::BenchPlan {
            unit: name.to_string(),
            api: b.api.as_str().to_string(),
            url: b.url.clone(),
            model: b.model.clone(),
            prompt: b.prompt.clone(),
            max_tokens: b.max_tokens,
            requests: b.requests,
            rounds: b.rounds,
            max_slowdown: b.max_slowdown,
            forms,
        })
    }

    fn bench_form(&mut self, name: &str, form: Option<String>) -> Reply {
        let Some(e) = self.units.get_mut(name) else {
            return Reply::Now(self.unknown(&[name.to_string()]).expect("unknown"));
        };
        match form {
            Some(f) => {
                let kind = match f.as_str() {
                    "native" => Kind::Native,
                    "container" => Kind::Container,
                    other => {
                        return Reply::Now(Response::Error {
                            message: format!("no form {other:?}: native or container"),
                        })
                    }
                };
                if e.unit.with_form(kind).is_none() {
                    return Reply::Now(Response::Error {
                        message: format!("{name} has no [{f}] section"),
                    });
                }
                e.form_override = Some(kind);
                let runs_as = e.form.as_ref().map(|(k, _)| *k);
                let event = if e.st.is_active() && runs_as != Some(kind) {
                    Event::Restart
                } else {
                    Event::Start
                };
                self.step(name, event);
                self.settle();
                self.later(Until::Healthy(name.to_string()))
            }
            None => {
                let restore = e.bench_restore.take();
                e.form_override = None;
                let event = match restore {
                    Some(true) => Event::Restart,
                    _ => Event::Stop,
                };
                self.step(name, event);
                self.settle();
                Reply::Now(Response::Done {
                    message: format!("{name} is back as it was"),
                })
            }
        }
    }

    fn bench_result(&mut self, name: &str, result: serde_json::Value) -> Response {
        if !self.units.contains_key(name) {
            return self.unknown(&[name.to_string()]).expect("unknown");
        }
        let dir = bench::dir(&self.cfg.state_dir);
        match bench::store(&dir, name, &result) {
            Ok(Some((kind, verdict))) => {
                let msg = format!(
                    "stored; run = \"auto\" now runs {name} as {} ({verdict})",
                    kind.as_str()
                );
                self.recommendations
                    .insert(name.to_string(), (kind, verdict));
                Response::Done { message: msg }
            }
            Ok(None) => Response::Error {
                message: "the result has no recommendation (\"native\" or \"container\")".into(),
            },
            Err(e) => Response::Error {
                message: format!("cannot store the result: {e}"),
            },
        }
    }

    /// Removes an image unless a unit that runs uses it.
    fn remove_image(&mut self, reference: String) -> Reply {
        let Ok(wanted) = jarvis_image::parse_reference(&reference).map(|r| r.to_string()) else {
            return Reply::Now(Response::Error {
                message: format!("{reference:?} is not an image reference"),
            });
        };
        let users: Vec<&str> =
            self.units
                .values()
                .filter(|e| e.st.is_active())
                .filter(|e| match &e.unit.exec {
                    jarvis_unit::Exec::Container(c) => jarvis_image::parse_reference(&c.image)
                        .is_ok_and(|r| r.to_string() == wanted),
                    jarvis_unit::Exec::Native(_) => false,
                })
                .map(|e| e.unit.name.as_str())
                .collect();
        if !users.is_empty() {
            return Reply::Now(Response::Error {
                message: format!(
                    "{wanted} is in use by {}; stop them first",
                    users.join(", ")
                ),
            });
        }
        let store = self.cfg.runtime.images.clone();
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

    /// `names` and, transitively, every unit they depend on; dependencies
    /// first.
    fn with_dependencies(&self, names: &[String]) -> Vec<String> {
        // Unit sets are validated acyclic; `seen` guards anyway.
        fn visit(d: &Daemon, name: &str, seen: &mut Vec<String>, out: &mut Vec<String>) {
            if seen.iter().any(|n| n == name) {
                return;
            }
            seen.push(name.to_string());
            if let Some(e) = d.units.get(name) {
                for dep in &e.unit.depends_on {
                    visit(d, &dep.unit, seen, out);
                }
            }
            out.push(name.to_string());
        }
        let (mut seen, mut out) = (Vec::new(), Vec::new());
        for n in names {
            visit(self, n, &mut seen, &mut out);
        }
        out
    }

    fn each(&mut self, units: Vec<String>, event: Event, verb: &str) -> Reply {
        if let Some(err) = self.unknown(&units) {
            return Reply::Now(err);
        }
        for n in &units {
            self.step(n, event.clone());
        }
        self.settle();
        Reply::Now(Response::Done {
            message: format!("{verb} {}", units.join(", ")),
        })
    }

    /// Reads the units directory again and reconciles. A directory with any
    /// problem changes nothing.
    fn up(&mut self) -> Response {
        let set = match jarvis_unit::load_dir(&self.cfg.units_dir) {
            Ok(set) => set,
            Err(diags) => {
                return Response::Error {
                    message: format!(
                        "{} problem(s) in {}; nothing was changed:\n{}",
                        diags.len(),
                        self.cfg.units_dir.display(),
                        diags
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                }
            }
        };
        let mut report = UpReport::default();
        let removed: Vec<String> = self
            .units
            .keys()
            .filter(|n| !set.units.contains_key(*n))
            .cloned()
            .collect();
        for name in removed {
            self.units.get_mut(&name).expect("listed").remove = true;
            self.step(&name, Event::Stop);
            report.stopped.push(name);
        }
        for (name, unit) in set.units {
            match self.units.get_mut(&name) {
                None => {
                    self.insert(unit);
                    self.step(&name, Event::Start);
                    report.started.push(name);
                }
                Some(e) if e.unit != unit => {
                    e.remove = false;
                    if e.st.is_active() {
                        e.replace_with = Some(unit);
                        self.step(&name, Event::Stop);
                    } else {
                        e.log.set_limits(&unit.logs);
                        e.unit = unit;
                        self.step(&name, Event::Start);
                    }
                    report.restarted.push(name);
                }
                Some(e) => {
                    e.remove = false;
                    if matches!(e.st.state, State::Stopped | State::Failed) {
                        self.step(&name, Event::Start);
                        report.started.push(name);
                    } else {
                        report.unchanged.push(name);
                    }
                }
            }
        }
        self.settle();
        Response::Up(report)
    }

    /// A unit's cgroup figures, read at most once a second: `status` of a
    /// hundred units would otherwise read hundreds of files on every call.
    fn stats(&self, name: &str) -> jarvis_native::CgroupStats {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(1);
        let mut cache = self.stats_cache.borrow_mut();
        if let Some((at, st)) = cache.get(name) {
            if at.elapsed() < FRESH {
                return st.clone();
            }
        }
        let st = self.cfg.runtime.cgroup(name).stats();
        cache.insert(name.to_string(), (Instant::now(), st.clone()));
        st
    }

    fn status(&self, names: &[String]) -> StatusReport {
        fn wire_kind(k: Kind) -> jarvis_proto::UnitKind {
            match k {
                Kind::Native => jarvis_proto::UnitKind::Native,
                Kind::Container => jarvis_proto::UnitKind::Container,
            }
        }
        fn wire_state(s: State) -> jarvis_proto::UnitState {
            use jarvis_proto::UnitState as W;
            match s {
                State::Waiting => W::Waiting,
                State::Starting => W::Starting,
                State::Running => W::Running,
                State::Stopping => W::Stopping,
                State::Stopped => W::Stopped,
                State::Exited => W::Exited,
                State::Failed => W::Failed,
            }
        }
        fn wire_health(h: machine::Health) -> jarvis_proto::Health {
            match h {
                machine::Health::Starting => jarvis_proto::Health::Starting,
                machine::Health::Healthy => jarvis_proto::Health::Healthy,
                machine::Health::Unhealthy => jarvis_proto::Health::Unhealthy,
            }
        }
        let mut units = vec![];
        for (name, e) in &self.units {
            if !names.is_empty() && !names.contains(name) {
                continue;
            }
            let s = &e.st;
            let cg = self.cfg.runtime.cgroup(name);
            let stats = if s.pid.is_some() {
                self.stats(name)
            } else {
                // Nothing runs: only the limit is of interest.
                jarvis_native::CgroupStats {
                    memory_max: e.unit.resources.memory_max,
                    ..Default::default()
                }
            };
            units.push(UnitStatus {
                name: name.clone(),
                kind: wire_kind(self.form_of(e).0),
                form: (e.unit.forms().len() > 1).then(|| wire_kind(self.form_of(e).0)),
                form_reason: (e.unit.forms().len() > 1)
                    .then(|| self.form_of(e).1)
                    .flatten(),
                state: wire_state(s.state),
                pid: s.pid,
                restarts: s.restarts,
                health: s.health.map(wire_health),
                exit_code: s.last_exit.map(|x| x.shell_code()),
                cgroup: cg.path().to_string(),
                reason: s.reason.clone(),
                description: e.unit.description.clone(),
                exit_signal: s.last_exit.and_then(|x| x.signal).map(machine::signal_name),
                oom_killed: s.last_exit.is_some_and(|x| x.oom_killed),
                uptime_ms: s
                    .started_at
                    .filter(|_| s.pid.is_some())
                    .map(|t| t.elapsed().as_millis() as u64),
                memory_bytes: stats.memory_current,
                memory_max_bytes: stats.memory_max,
                cpu_usage_ns: stats.cpu_usage_ns,
                tasks: stats.pids_current,
                wanted: s.wanted,
                placement: e
                    .unit
                    .gpu
                    .as_ref()
                    .and(e.placement.as_ref())
                    .map(|p| match p {
                        Placement::Cpu => jarvis_proto::Placement {
                            device: jarvis_proto::Device::Cpu,
                            gpus: None,
                        },
                        Placement::Gpus { .. } => jarvis_proto::Placement {
                            device: jarvis_proto::Device::Gpu,
                            gpus: Some(p.ids()),
                        },
                    }),
            });
        }
        StatusReport { units }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unit as it runs now: for a unit with both forms, the form a
/// benchmark asks for, else `run`, else (`auto`) the stored recommendation,
/// else the default rule. The reason says which, for `status`.
fn effective(e: &Entry, recs: &BTreeMap<String, (Kind, String)>) -> (Unit, Option<String>) {
    let u = &e.unit;
    if u.forms().len() < 2 {
        return (u.clone(), None);
    }
    let pick = |k: Kind, why: String| (u.with_form(k).unwrap_or_else(|| u.clone()), Some(why));
    if let Some(k) = e.form_override {
        return pick(k, format!("a benchmark runs it as {}", k.as_str()));
    }
    // The rule itself is the unit format's (`Unit::resolve_form`); here
    // only the reason `status` shows is added.
    let rec = recs.get(&u.name);
    let kind = u.resolve_form(rec.map(|(k, _)| *k));
    let why = match (u.run, rec) {
        (RunMode::Native, _) => "run = \"native\"".to_string(),
        (RunMode::Container, _) => "run = \"container\"".to_string(),
        (RunMode::Auto, Some((_, verdict))) => format!("run = \"auto\", measured: {verdict}"),
        (RunMode::Auto, None) if kind == Kind::Native => {
            "run = \"auto\", not measured yet: native for GPU/inference units".to_string()
        }
        (RunMode::Auto, None) => {
            "run = \"auto\", not measured yet: a container for isolation".to_string()
        }
    };
    pick(kind, why)
}
