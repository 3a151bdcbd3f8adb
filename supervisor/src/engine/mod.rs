//! The supervisor's pure core: every unit's state and every policy that
//! spans units.
//!
//! [`Supervisor::handle`] takes one [`Input`] and the current time, updates
//! the state and returns the [`Output`]s the daemon must carry out. It covers
//! dependency readiness, GPU placement and the VRAM ledger, reconciliation
//! with a new unit set (`up`), benchmark form overrides, devices coming and
//! going, shutdown, and the requests that are answered later (`stop`,
//! `down`, `up --wait`). Each unit's own life is [`machine::Machine`].
//!
//! Invariant: this module is pure. It never touches the clock, the kernel, a
//! file or a socket: hardware arrives as values (the GPU inventory, which
//! device nodes a unit's matchers resolve to), and every change to the world
//! leaves as an [`Output`].

pub mod machine;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jarvis_proto::{Response, UpReport, WaitReport};
use jarvis_unit::{Kind, RunMode, Unit};

use crate::placement::{self, Decision, GpuInfo, Ledger, Placement};
use crate::state::{Persisted, PersistedUnit};
use jarvis_proto::EventKind;
use machine::{
    Effect, Event, ExitInfo, GpuVerdict, Health, Machine, Phase, Readiness, Reason, State,
    StopCause, TimerKind, UnitState,
};

/// Identifies a request whose answer may come later.
pub type ReplyId = u64;

/// Whether a unit's devices are there, as last resolved by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// Every required device resolved to these nodes (none for a unit
    /// without `[[device]]`).
    Present(Vec<PathBuf>),
    /// A required device is missing; the reason says which.
    Missing(String),
}

/// What a boot found of a unit's earlier run (its shim kept it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Still running as `pid`: re-adopted.
    Running { pid: i32 },
    /// Still running as `pid`, but started from another definition than
    /// the unit's now (a restart of jarvisd in the middle of an apply, or a
    /// unit file changed while it was away): re-adopted, then restarted
    /// with the unit's definition.
    Stale { pid: i32 },
    /// Ended while no jarvisd watched.
    Ended { pid: i32, exit: ExitInfo },
    /// Nothing.
    Nothing,
}

/// A unit as the daemon found it at boot.
#[derive(Debug, Clone)]
pub struct BootUnit {
    pub unit: Unit,
    pub found: Found,
    pub devices: Devices,
}

/// A request the core answers.
#[derive(Debug, Clone)]
pub enum Ask {
    /// Reconcile with this unit set, each unit with its devices as
    /// resolved now; or, when the directory had problems, change nothing
    /// and answer with them.
    Up(Result<Vec<(Unit, Devices)>, String>),
    Down,
    Start(Vec<String>),
    Stop(Vec<String>),
    Restart(Vec<String>),
    /// Answer once every wanted unit is ready, or one failed.
    Wait,
    BenchBegin(String),
    /// Run the unit as `form` for a benchmark (answered once it is up), or
    /// put it back as it was (`None`).
    BenchForm(String, Option<Kind>),
    /// A benchmark result was stored: `run = "auto"` follows it.
    Recommend {
        unit: String,
        kind: Kind,
        verdict: String,
    },
}

#[derive(Debug, Clone)]
pub enum Input {
    Boot(Vec<BootUnit>, Vec<GpuInfo>),
    /// An event for one unit's machine.
    Unit {
        name: String,
        event: Event,
    },
    /// A run is up: its main process and the device nodes it got.
    Started {
        name: String,
        gen: u64,
        pid: i32,
        devices: Vec<PathBuf>,
    },
    /// The hardware as it is now, after a uevent: devices per unit (units
    /// with `[[device]]`), and the GPUs when they were probed again.
    Hardware {
        devices: BTreeMap<String, Devices>,
        gpus: Option<Vec<GpuInfo>>,
    },
    Ask {
        id: ReplyId,
        ask: Ask,
    },
    /// SIGTERM/SIGINT: stop every unit.
    Shutdown,
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Start a run of `unit` (its effective form) as generation `gen`.
    Spawn {
        name: String,
        gen: u64,
        unit: Box<Unit>,
        placement: Option<Placement>,
    },
    /// Watch a run re-adopted at boot as generation `gen`.
    Watch {
        name: String,
        gen: u64,
    },
    Signal {
        name: String,
        pid: i32,
        signal: i32,
    },
    /// SIGKILL everything in the unit's cgroup.
    KillAll {
        name: String,
    },
    /// Kill whatever is left in the unit's cgroup with no shim watching
    /// it: at boot, and when a failed unit is stopped.
    Sweep {
        name: String,
    },
    Timer {
        name: String,
        gen: u64,
        kind: TimerKind,
        after: Duration,
    },
    /// Run the unit's health probe once.
    Probe {
        name: String,
        gen: u64,
    },
    /// Check once whether the run `gen` uses the GPUs it was placed on, and
    /// deliver `Event::GpuChecked`.
    GpuCheck {
        name: String,
        gen: u64,
        placement: Placement,
    },
    /// The unit left the set: remove what is left of it (its cgroup).
    Remove {
        name: String,
    },
    /// A line of jarvisd's own in the unit's log.
    Note {
        name: String,
        text: String,
    },
    /// Something happened that `jarvisctl events` shows (and notifications
    /// tell): `unit` is `None` for jarvisd's own.
    Event {
        unit: Option<String>,
        kind: EventKind,
        message: String,
    },
    /// The state or pid of a unit changed (for jarvisd's own log).
    Changed {
        name: String,
        state: State,
        pid: Option<i32>,
        reason: Option<String>,
    },
    Reply {
        id: ReplyId,
        response: Response,
    },
    /// Persist which units are wanted.
    Save(Persisted),
    /// Shutdown is complete: nothing runs.
    Done,
}

/// One unit and what the core knows about it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub unit: Unit,
    pub st: UnitState,
    /// `up` found the unit changed: once stopped, run this definition.
    replace_with: Option<(Unit, Devices)>,
    /// `up` found the unit gone: once stopped, forget it.
    remove: bool,
    /// Where its current run was placed (units with `[gpu]`).
    pub placement: Option<Placement>,
    /// A benchmark runs it in this form for now.
    form_override: Option<Kind>,
    /// While a benchmark runs: whether the unit was wanted before.
    bench_restore: Option<bool>,
    /// The form its current run has, and why (units with both forms).
    form: Option<(Kind, String)>,
    /// Its devices as last resolved.
    devices: Devices,
    /// The device nodes its current run got.
    devices_in_use: Vec<PathBuf>,
    /// For a container in another unit's network namespace
    /// (`network = "unit:NAME"`): that unit and the generation of its run
    /// whose namespace the current run joined. When that run ends, this
    /// unit restarts after it.
    ns_owner: Option<(String, u64)>,
}

impl Slot {
    fn new(unit: Unit, devices: Devices) -> Slot {
        Slot {
            unit,
            st: UnitState::default(),
            replace_with: None,
            remove: false,
            placement: None,
            form_override: None,
            bench_restore: None,
            form: None,
            devices,
            devices_in_use: Vec::new(),
            ns_owner: None,
        }
    }
}

/// The unit whose network namespace `unit`'s container joins, if any.
fn ns_owner_of(unit: &Unit) -> Option<&str> {
    match &unit.exec {
        jarvis_unit::Exec::Container(c) => c.network.unit(),
        jarvis_unit::Exec::Native(_) => None,
    }
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
    id: ReplyId,
    until: Until,
}

/// A read-only view of one unit for `status`.
#[derive(Debug, Clone)]
pub struct View<'a> {
    pub name: &'a str,
    pub unit: &'a Unit,
    pub st: &'a UnitState,
    /// The form it runs (or would run) as, and why (units with both).
    pub kind: Kind,
    pub form_reason: Option<String>,
    pub placement: Option<&'a Placement>,
}

#[derive(Default)]
pub struct Supervisor {
    units: BTreeMap<String, Slot>,
    gpus: Vec<GpuInfo>,
    ledger: Ledger,
    /// Stored benchmark results: unit -> (recommended form, verdict).
    recommendations: BTreeMap<String, (Kind, String)>,
    waiters: Vec<Waiter>,
    saved: Persisted,
    shutting_down: bool,
}

impl Supervisor {
    /// A core that remembers `saved` (who stopped what) and the stored
    /// benchmark recommendations.
    pub fn new(saved: Persisted, recommendations: BTreeMap<String, (Kind, String)>) -> Self {
        Supervisor {
            saved,
            recommendations,
            ..Default::default()
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let mut cx = Cx { now, out: &mut out };
        match input {
            Input::Boot(units, gpus) => self.boot(&mut cx, units, gpus),
            Input::Unit { name, event } => {
                if let Event::SpawnDeferred { gen, reason } = &event {
                    if let Some(s) = self.units.get_mut(&name) {
                        if s.st.gen == *gen {
                            s.devices = Devices::Missing(reason.clone());
                        }
                    }
                }
                self.step(&mut cx, &name, event)
            }
            Input::Started {
                name,
                gen,
                pid,
                devices,
            } => {
                if let Some(s) = self.units.get_mut(&name) {
                    if s.st.gen == gen {
                        s.devices_in_use = devices;
                    }
                }
                self.step(&mut cx, &name, Event::Spawned { gen, pid });
            }
            Input::Hardware { devices, gpus } => self.hardware(&mut cx, devices, gpus),
            Input::Ask { id, ask } => self.ask(&mut cx, id, ask),
            Input::Shutdown => {
                if !self.shutting_down {
                    self.shutting_down = true;
                    for n in self.names() {
                        self.step(&mut cx, &n, Event::Stop(StopCause::Shutdown));
                    }
                }
            }
        }
        self.settle(&mut cx);
        if self.shutting_down && self.units.values().all(|s| !s.st.is_active()) {
            cx.out.push(Output::Done);
        }
        out
    }

    // ---- queries -------------------------------------------------------

    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.get(name).map(|s| &s.unit)
    }

    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.units.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.units.keys().cloned().collect()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Units with `[[device]]`: what the daemon resolves on a uevent.
    pub fn device_units(&self) -> Vec<Unit> {
        self.units
            .values()
            .filter(|s| !s.unit.devices.is_empty())
            .map(|s| s.unit.clone())
            .collect()
    }

    /// The error for names that are not units, if any.
    pub fn unknown(&self, names: &[String]) -> Option<Response> {
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

    /// Views for `status` (every unit when `names` is empty).
    pub fn views(&self, names: &[String]) -> Vec<View<'_>> {
        self.units
            .iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .map(|(name, s)| {
                let (kind, form_reason) = self.form_of(s);
                View {
                    name,
                    unit: &s.unit,
                    st: &s.st,
                    kind,
                    form_reason: (s.unit.forms().len() > 1).then_some(form_reason).flatten(),
                    placement: s.unit.gpu.as_ref().and(s.placement.as_ref()),
                }
            })
            .collect()
    }

    /// Units that may be running `image` (compared by the canonical
    /// reference `same` decides on).
    pub fn active_users(&self, uses: impl Fn(&Unit) -> bool) -> Vec<String> {
        self.units
            .values()
            .filter(|s| s.st.is_active() && uses(&s.unit))
            .map(|s| s.unit.name.clone())
            .collect()
    }

    /// The form a unit runs (or would run) as, and why.
    fn form_of(&self, s: &Slot) -> (Kind, Option<String>) {
        // The form of the run there is; else the one a start would take.
        if let Some((k, why)) = s.form.as_ref().filter(|_| s.st.is_active()) {
            return (*k, Some(why.clone()));
        }
        let (unit, why) = effective(s, &self.recommendations);
        (unit.kind(), why)
    }

    // ---- inputs --------------------------------------------------------

    fn boot(&mut self, cx: &mut Cx, units: Vec<BootUnit>, gpus: Vec<GpuInfo>) {
        self.gpus = gpus;
        for BootUnit {
            unit,
            found,
            devices,
        } in units
        {
            let name = unit.name.clone();
            let saved = self.saved.units.get(&name);
            let wanted = saved.is_none_or(|u| u.wanted);
            let stopped_by = saved
                .and_then(|u| u.stopped_by.as_deref())
                .and_then(StopCause::parse)
                .unwrap_or(StopCause::Stop);
            self.units.insert(name.clone(), Slot::new(unit, devices));
            match found {
                Found::Running { pid } | Found::Stale { pid } => {
                    let stale = matches!(found, Found::Stale { .. });
                    self.step(cx, &name, Event::Adopted { pid });
                    let gen = self.units[&name].st.gen;
                    cx.out.push(Output::Watch {
                        name: name.clone(),
                        gen,
                    });
                    cx.note(
                        &name,
                        format!("re-adopted pid {pid} after a jarvisd restart"),
                    );
                    if !wanted {
                        self.step(cx, &name, Event::Stop(stopped_by));
                    } else if stale {
                        cx.note(
                            &name,
                            "it runs another definition than its unit's now: restarting".into(),
                        );
                        self.step(cx, &name, Event::Restart);
                    }
                }
                Found::Ended { pid, exit } => {
                    // It ended while no daemon watched: let the restart
                    // policy decide, as if we had seen it. Its shim emptied
                    // the cgroup; anything left without one is killed: by
                    // the next start, which sweeps the cgroup before it
                    // launches (a sweep of its own could kill that start's
                    // process), else now.
                    if wanted {
                        self.step(cx, &name, Event::Adopted { pid });
                        let gen = self.units[&name].st.gen;
                        self.step(cx, &name, Event::Exited { gen, exit });
                    } else {
                        cx.out.push(Output::Sweep { name: name.clone() });
                        self.step(cx, &name, Event::Stop(stopped_by));
                    }
                }
                Found::Nothing => {
                    let ev = if wanted {
                        Event::Start
                    } else {
                        cx.out.push(Output::Sweep { name: name.clone() });
                        Event::Stop(stopped_by)
                    };
                    self.step(cx, &name, ev);
                }
            }
        }
    }

    /// The hardware changed: GPUs may have come or gone, and units whose
    /// devices went away (or moved to another node) go back to waiting.
    /// Waiting units are looked at again by `settle`.
    fn hardware(
        &mut self,
        cx: &mut Cx,
        devices: BTreeMap<String, Devices>,
        gpus: Option<Vec<GpuInfo>>,
    ) {
        if let Some(g) = gpus {
            self.gpus = g;
        }
        for (name, now) in devices {
            let Some(s) = self.units.get_mut(&name) else {
                continue;
            };
            match (&s.devices, &now) {
                (Devices::Present(_), Devices::Missing(reason)) => {
                    cx.event(&name, EventKind::DeviceGone, reason.clone())
                }
                (Devices::Missing(_), Devices::Present(paths)) => cx.event(
                    &name,
                    EventKind::DeviceBack,
                    if paths.is_empty() {
                        "its devices are back".to_string()
                    } else {
                        format!("back at {}", join_paths(paths))
                    },
                ),
                _ => {}
            }
            s.devices = now.clone();
            if !s.st.is_active() {
                continue;
            }
            let withdraw = match &now {
                Devices::Missing(reason) => Some(reason.clone()),
                Devices::Present(paths) => {
                    (!s.devices_in_use.is_empty() && *paths != s.devices_in_use).then(|| {
                        format!(
                            "device moved from {} to {}; restarting",
                            join_paths(&s.devices_in_use),
                            join_paths(paths)
                        )
                    })
                }
            };
            if let Some(reason) = withdraw {
                cx.note(&name, reason.clone());
                self.step(cx, &name, Event::Withdraw { reason });
            }
        }
    }

    fn ask(&mut self, cx: &mut Cx, id: ReplyId, ask: Ask) {
        let now = |cx: &mut Cx, response| cx.out.push(Output::Reply { id, response });
        if self.shutting_down && !matches!(ask, Ask::Wait) {
            return now(
                cx,
                Response::Error {
                    message: "jarvisd is shutting down".into(),
                },
            );
        }
        match ask {
            Ask::Up(Ok(set)) => {
                let r = self.up(cx, set);
                now(cx, r)
            }
            Ask::Up(Err(problems)) => now(cx, Response::Error { message: problems }),
            Ask::Wait => self.later(id, Until::Ready),
            Ask::Down => {
                let names = self.names();
                for n in &names {
                    self.step(cx, n, Event::Stop(StopCause::Down));
                }
                self.later(id, Until::Quiet(names))
            }
            Ask::Start(units) | Ask::Restart(units) | Ask::Stop(units) if units.is_empty() => now(
                cx,
                Response::Error {
                    message: "name at least one unit".into(),
                },
            ),
            Ask::Start(units) => {
                if let Some(err) = self.unknown(&units) {
                    return now(cx, err);
                }
                // Like `compose up web`: what a unit depends on starts too.
                let all = self.with_dependencies(&units);
                for n in &all {
                    self.step(cx, n, Event::Start);
                }
                now(
                    cx,
                    Response::Done {
                        message: format!("starting {}", all.join(", ")),
                    },
                )
            }
            Ask::Restart(units) => {
                if let Some(err) = self.unknown(&units) {
                    return now(cx, err);
                }
                for n in &units {
                    self.step(cx, n, Event::Restart);
                }
                now(
                    cx,
                    Response::Done {
                        message: format!("restarting {}", units.join(", ")),
                    },
                )
            }
            Ask::Stop(units) => {
                if let Some(err) = self.unknown(&units) {
                    return now(cx, err);
                }
                for n in &units {
                    self.step(cx, n, Event::Stop(StopCause::Stop));
                }
                self.later(id, Until::Quiet(units))
            }
            Ask::BenchBegin(name) => {
                let r = self.bench_begin(&name);
                now(cx, r)
            }
            Ask::BenchForm(name, form) => self.bench_form(cx, id, &name, form),
            Ask::Recommend {
                unit,
                kind,
                verdict,
            } => {
                if let Some(err) = self.unknown(std::slice::from_ref(&unit)) {
                    return now(cx, err);
                }
                let message = format!(
                    "stored; run = \"auto\" now runs {unit} as {} ({verdict})",
                    kind.as_str()
                );
                self.recommendations.insert(unit.clone(), (kind, verdict));
                self.follow_recommendation(cx, &unit);
                now(cx, Response::Done { message })
            }
        }
    }

    /// Reconciles with a new unit set: new units start, changed ones
    /// restart with their new definition, removed ones stop and go, the rest
    /// is left alone.
    fn up(&mut self, cx: &mut Cx, set: Vec<(Unit, Devices)>) -> Response {
        let mut report = UpReport::default();
        let removed: Vec<String> = self
            .units
            .keys()
            .filter(|n| !set.iter().any(|(u, _)| &u.name == *n))
            .cloned()
            .collect();
        for name in removed {
            self.units.get_mut(&name).expect("listed").remove = true;
            self.step(cx, &name, Event::Stop(StopCause::Removed));
            report.stopped.push(name);
        }
        for (unit, devices) in set {
            let name = unit.name.clone();
            match self.units.get_mut(&name) {
                None => {
                    self.units.insert(name.clone(), Slot::new(unit, devices));
                    self.step(cx, &name, Event::Start);
                    report.started.push(name);
                }
                Some(s) if s.unit != unit => {
                    s.remove = false;
                    if s.st.is_active() {
                        s.replace_with = Some((unit, devices));
                        self.step(cx, &name, Event::Stop(StopCause::Replaced));
                    } else {
                        s.unit = unit;
                        s.devices = devices;
                        self.step(cx, &name, Event::Start);
                    }
                    report.restarted.push(name);
                }
                Some(s) => {
                    s.remove = false;
                    s.devices = devices;
                    if matches!(s.st.state, State::Stopped | State::Failed) {
                        self.step(cx, &name, Event::Start);
                        report.started.push(name);
                    } else {
                        report.unchanged.push(name);
                    }
                }
            }
        }
        Response::Up(report)
    }

    fn bench_begin(&mut self, name: &str) -> Response {
        if let Some(err) = self.unknown(&[name.to_string()]) {
            return err;
        }
        let s = self.units.get_mut(name).expect("known");
        let Some(b) = s.unit.bench.clone() else {
            return Response::Error {
                message: format!(
                    "{name} has no [bench] section: add one (api, url, ...) to benchmark it"
                ),
            };
        };
        let forms: Vec<jarvis_proto::UnitKind> = s
            .unit
            .forms()
            .iter()
            .map(|k| match k {
                Kind::Native => jarvis_proto::UnitKind::Native,
                Kind::Container => jarvis_proto::UnitKind::Container,
            })
            .collect();
        if forms.len() < 2 {
            return Response::Error {
                message: format!(
                    "{name} declares only [{}]: declare both [native] and [container] to compare them",
                    forms.iter().map(|k| k.as_str()).collect::<Vec<_>>().join("")
                ),
            };
        }
        if s.bench_restore.is_none() {
            s.bench_restore = Some(s.st.wanted);
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

    fn bench_form(&mut self, cx: &mut Cx, id: ReplyId, name: &str, form: Option<Kind>) {
        if let Some(err) = self.unknown(&[name.to_string()]) {
            return cx.out.push(Output::Reply { id, response: err });
        }
        let s = self.units.get_mut(name).expect("known");
        match form {
            Some(kind) => {
                if s.unit.with_form(kind).is_none() {
                    return cx.out.push(Output::Reply {
                        id,
                        response: Response::Error {
                            message: format!("{name} has no [{}] section", kind.as_str()),
                        },
                    });
                }
                s.form_override = Some(kind);
                let runs_as = s.form.as_ref().map(|(k, _)| *k);
                let event = if s.st.is_active() && runs_as != Some(kind) {
                    Event::Restart
                } else {
                    Event::Start
                };
                self.step(cx, name, event);
                self.later(id, Until::Healthy(name.to_string()))
            }
            None => {
                let restore = s.bench_restore.take();
                s.form_override = None;
                let event = match restore {
                    Some(true) => Event::Restart,
                    _ => Event::Stop(StopCause::Bench),
                };
                self.step(cx, name, event);
                cx.out.push(Output::Reply {
                    id,
                    response: Response::Done {
                        message: format!("{name} is back as it was"),
                    },
                })
            }
        }
    }

    /// A new recommendation for a `run = "auto"` unit that runs: if it
    /// runs in the other form, it restarts in the recommended one; else
    /// only the reason `status` gives changes.
    fn follow_recommendation(&mut self, cx: &mut Cx, name: &str) {
        let Some(s) = self.units.get(name) else {
            return;
        };
        if s.unit.run != RunMode::Auto || s.form_override.is_some() || !s.st.is_active() {
            return;
        }
        let (unit, why) = effective(s, &self.recommendations);
        let runs_as = s.form.as_ref().map(|(k, _)| *k);
        if runs_as == Some(unit.kind()) {
            let s = self.units.get_mut(name).expect("looked up above");
            s.form = why.map(|w| (unit.kind(), w));
        } else {
            self.step(cx, name, Event::Restart);
        }
    }

    // ---- the machinery -------------------------------------------------

    /// Feeds one event to a unit's machine and turns its effects into
    /// outputs.
    fn step(&mut self, cx: &mut Cx, name: &str, event: Event) {
        let Some(s) = self.units.get_mut(name) else {
            return;
        };
        let before = (s.st.state, s.st.pid);
        let health_before = s.st.health;
        let gpu_before = s.st.gpu.clone();
        let exited = matches!(event, Event::Exited { .. });
        let effects = Machine {
            unit: &s.unit,
            now: cx.now,
        }
        .step(&mut s.st, event);
        for (kind, message) in events_of(before.0, health_before, exited, &s.st) {
            if kind == EventKind::OomKilled {
                s.st.oom_kills += 1;
            }
            cx.event(name, kind, message);
        }
        if let Some((kind, message)) = gpu_event(gpu_before.as_ref(), s.st.gpu.as_ref()) {
            cx.note(name, format!("{}: {message}", kind.as_str()));
            cx.event(name, kind, message);
        }
        if before != (s.st.state, s.st.pid) {
            let reason = s.st.reason.as_ref().map(|r| r.to_string());
            if s.st.state == State::Failed {
                if let Some(r) = &reason {
                    cx.note(name, format!("failed: {r}"));
                }
            }
            cx.out.push(Output::Changed {
                name: name.to_string(),
                state: s.st.state,
                pid: s.st.pid,
                reason,
            });
        }
        for effect in effects {
            self.effect(cx, name, effect);
        }
    }

    fn effect(&mut self, cx: &mut Cx, name: &str, effect: Effect) {
        let Some(s) = self.units.get_mut(name) else {
            return;
        };
        let name = name.to_string();
        match effect {
            Effect::Spawn { gen } => {
                let (unit, why) = effective(s, &self.recommendations);
                let owner = ns_owner_of(&unit)
                    .and_then(|o| self.units.get(o).map(|os| (o.to_string(), os.st.gen)));
                let s = self.units.get_mut(&name).expect("looked up above");
                s.ns_owner = owner;
                s.devices_in_use.clear();
                s.form = why.map(|w| (unit.kind(), w));
                cx.out.push(Output::Spawn {
                    name,
                    gen,
                    unit: Box::new(unit),
                    placement: s.placement.clone(),
                });
            }
            Effect::Signal { signal } => {
                if let Some(pid) = s.st.pid {
                    let why =
                        s.st.reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default();
                    cx.note(
                        &name,
                        format!(
                            "stopping{why}: {} to pid {pid}",
                            machine::signal_name(signal)
                        ),
                    );
                    cx.out.push(Output::Signal { name, pid, signal });
                }
            }
            Effect::KillAll => {
                cx.note(
                    &name,
                    "stop timeout passed: killing every process in the cgroup".into(),
                );
                cx.out.push(Output::KillAll { name });
            }
            Effect::Sweep => cx.out.push(Output::Sweep { name }),
            Effect::Timer { gen, kind, after } => cx.out.push(Output::Timer {
                name,
                gen,
                kind,
                after,
            }),
            Effect::Probe { gen } => cx.out.push(Output::Probe { name, gen }),
            // Only a run placed on a GPU is checked; for one on the CPU
            // the checks end here.
            Effect::GpuCheck { gen } => {
                if let Some(p @ Placement::Gpus { .. }) = &s.placement {
                    cx.out.push(Output::GpuCheck {
                        name,
                        gen,
                        placement: p.clone(),
                    });
                }
            }
        }
    }

    /// After every input: release GPUs of units that stopped, start waiting
    /// units whose dependencies, devices and GPUs are ready, swap or drop
    /// units `up` changed or removed, answer waiters, save.
    fn settle(&mut self, cx: &mut Cx) {
        loop {
            let mut changed = false;
            // A unit that is not running holds no GPU promise: release them
            // all before any waiting unit asks for one.
            for (name, s) in self.units.iter_mut() {
                if matches!(
                    s.st.state,
                    State::Waiting | State::Stopped | State::Exited | State::Failed
                ) && s.placement.take().is_some()
                {
                    self.ledger.release(name);
                }
            }
            changed |= self.follow_namespace_owners(cx);
            for name in self.names() {
                if self.units[&name].st.state == State::Waiting {
                    let before = {
                        let s = &self.units[&name];
                        (s.st.state, s.st.reason.clone())
                    };
                    let readiness = self.readiness(cx, &name);
                    self.step(cx, &name, Event::Deps(readiness));
                    let s = &self.units[&name];
                    changed |= before != (s.st.state, s.st.reason.clone());
                }
                let s = self.units.get_mut(&name).expect("listed");
                if s.st.is_active() {
                    continue;
                }
                if s.remove {
                    self.units.remove(&name);
                    self.ledger.release(&name);
                    cx.out.push(Output::Remove { name });
                    changed = true;
                } else if let Some((unit, devices)) = s.replace_with.take() {
                    s.unit = unit;
                    s.devices = devices;
                    self.step(cx, &name, Event::Start);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.answer_waiters(cx);
        if !self.shutting_down {
            self.save(cx);
        }
    }

    /// Units in another unit's network namespace restart after it: when the
    /// run whose namespace they joined is over (the namespace goes with
    /// it), they are withdrawn and wait, through their implied
    /// `depends_on NAME started`, for its next run. True if one was.
    fn follow_namespace_owners(&mut self, cx: &mut Cx) -> bool {
        let mut gone = Vec::new();
        for (name, s) in &self.units {
            if !s.st.is_active() {
                continue;
            }
            let Some(owner) = ns_owner_of(&s.unit) else {
                continue;
            };
            let now = self
                .units
                .get(owner)
                .filter(|o| matches!(o.st.state, State::Running | State::Stopping))
                .map(|o| o.st.gen);
            match (&s.ns_owner, now) {
                // A run found at boot: it joined the owner's current run.
                (None, Some(g)) if s.st.state == State::Running => {
                    gone.push((name.clone(), Some((owner.to_string(), g))))
                }
                (Some((_, joined)), Some(g)) if *joined == g => {}
                (Some(_), _) => gone.push((name.clone(), None)),
                (None, _) => {}
            }
        }
        let mut changed = false;
        for (name, bind) in gone {
            let s = self.units.get_mut(&name).expect("listed");
            if bind.is_some() {
                s.ns_owner = bind;
                continue;
            }
            let (owner, _) = s.ns_owner.take().expect("bound");
            let reason = format!(
                "the network namespace of {owner} went away with its run; restarting after it"
            );
            cx.note(&name, reason.clone());
            self.step(cx, &name, Event::Withdraw { reason });
            changed = true;
        }
        changed
    }

    /// Whether a waiting unit may start: its dependencies, then its
    /// devices, then a GPU placement (promised here, when it may).
    fn readiness(&mut self, cx: &mut Cx, name: &str) -> Readiness {
        let s = &self.units[name];
        let deps = machine::readiness(&s.unit, |n| self.units.get(n).map(|d| &d.st));
        if deps != Readiness::Ready {
            return deps;
        }
        if let Devices::Missing(reason) = &s.devices {
            return Readiness::Pending(reason.clone());
        }
        let Some(want) = s.unit.gpu.clone() else {
            return Readiness::Ready;
        };
        match placement::place(name, &want, &self.gpus, &self.ledger) {
            Decision::Wait(reason) => Readiness::Pending(reason),
            Decision::Place(p) => {
                self.ledger.promise(name, &p, want.min_vram);
                let on = match &p {
                    Placement::Cpu => "on the CPU".to_string(),
                    Placement::Gpus { gpus, .. } => format!(
                        "on {} {}",
                        if gpus.len() == 1 { "GPU" } else { "GPUs" },
                        gpus.iter()
                            .map(|g| format!("{} ({})", g.index, g.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                cx.event(name, EventKind::Placed, on);
                self.units.get_mut(name).expect("listed").placement = Some(p);
                Readiness::Ready
            }
        }
    }

    fn save(&mut self, cx: &mut Cx) {
        let mut p = Persisted {
            version: crate::state::STATE_VERSION,
            ..Default::default()
        };
        for (name, s) in &self.units {
            let wanted = s.st.wanted || s.replace_with.is_some();
            p.units.insert(
                name.clone(),
                PersistedUnit {
                    wanted,
                    stopped_by: if wanted {
                        None
                    } else {
                        s.st.stopped_by()
                            .filter(|c| c.is_saved())
                            .map(|c| c.as_str().to_string())
                    },
                },
            );
        }
        if p.units != self.saved.units {
            self.saved = p.clone();
            cx.out.push(Output::Save(p));
        }
    }

    fn answer_waiters(&mut self, cx: &mut Cx) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            match self.check(&w.until) {
                Some(response) => cx.out.push(Output::Reply { id: w.id, response }),
                None => self.waiters.push(w),
            }
        }
    }

    fn check(&self, until: &Until) -> Option<Response> {
        match until {
            Until::Healthy(name) => {
                let s = self.units.get(name)?;
                match s.st.state {
                    State::Running
                        if s.unit.health.is_none() || s.st.health == Some(Health::Healthy) =>
                    {
                        Some(Response::Done {
                            message: format!(
                                "{name} runs as {} (pid {})",
                                self.form_of(s).0.as_str(),
                                s.st.pid.unwrap_or(0)
                            ),
                        })
                    }
                    State::Failed | State::Stopped | State::Exited => Some(Response::Error {
                        message: format!(
                            "{name} is {}: {}",
                            s.st.state.as_str(),
                            s.st.reason
                                .as_ref()
                                .map(|r| r.to_string())
                                .unwrap_or_else(|| "no reason given".into())
                        ),
                    }),
                    _ => None,
                }
            }
            Until::Quiet(names) => names
                .iter()
                .all(|n| self.units.get(n).is_none_or(|s| !s.st.is_active()))
                .then(|| Response::Done {
                    message: format!("stopped {}", names.join(", ")),
                }),
            Until::Ready => {
                let mut pending = 0;
                for (name, s) in &self.units {
                    if !s.st.wanted && s.replace_with.is_none() {
                        continue;
                    }
                    if s.st.state == State::Failed {
                        return Some(Response::Wait(WaitReport {
                            ok: false,
                            message: format!(
                                "{name} failed: {}",
                                s.st.reason
                                    .as_ref()
                                    .map(|r| r.to_string())
                                    .unwrap_or_else(|| "unknown reason".into())
                            ),
                        }));
                    }
                    let ready = s.replace_with.is_none()
                        && match s.st.state {
                            State::Running => {
                                s.unit.health.is_none() || s.st.health == Some(Health::Healthy)
                            }
                            State::Exited => s.st.last_exit.is_some_and(|x| x.success()),
                            _ => false,
                        };
                    if !ready {
                        pending += 1;
                    }
                }
                (pending == 0).then(|| {
                    Response::Wait(WaitReport {
                        ok: true,
                        message: format!("{} units ready", self.units.len()),
                    })
                })
            }
        }
    }

    /// Answered by `settle`, once the effects of this input are in.
    fn later(&mut self, id: ReplyId, until: Until) {
        self.waiters.push(Waiter { id, until });
    }

    /// `names` and, transitively, every unit they depend on; dependencies
    /// first.
    fn with_dependencies(&self, names: &[String]) -> Vec<String> {
        // Unit sets are validated acyclic; `seen` guards anyway.
        fn visit(sv: &Supervisor, name: &str, seen: &mut Vec<String>, out: &mut Vec<String>) {
            if seen.iter().any(|n| n == name) {
                return;
            }
            seen.push(name.to_string());
            if let Some(s) = sv.units.get(name) {
                for dep in &s.unit.depends_on {
                    visit(sv, &dep.unit, seen, out);
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
}

/// The time of the input being handled and the outputs collected so far.
struct Cx<'a> {
    now: Instant,
    out: &'a mut Vec<Output>,
}

impl Cx<'_> {
    fn event(&mut self, name: &str, kind: EventKind, message: String) {
        self.out.push(Output::Event {
            unit: Some(name.to_string()),
            kind,
            message,
        });
    }

    fn note(&mut self, name: &str, text: String) {
        self.out.push(Output::Note {
            name: name.to_string(),
            text,
        });
    }
}

/// The event of a change in a run's GPU verdict: a fallback found (not one
/// told already), or the GPU used again after one.
fn gpu_event(
    before: Option<&GpuVerdict>,
    after: Option<&GpuVerdict>,
) -> Option<(EventKind, String)> {
    match (before, after) {
        (Some(GpuVerdict::Fallback(_)), Some(GpuVerdict::Fallback(_))) => None,
        (_, Some(GpuVerdict::Fallback(reason))) => Some((EventKind::GpuFallback, reason.clone())),
        (Some(GpuVerdict::Fallback(_)), Some(GpuVerdict::Ok)) => {
            Some((EventKind::GpuOk, "runs on its GPU again".into()))
        }
        _ => None,
    }
}

/// What a step of a unit's machine shows in `jarvisctl events`: from its
/// state and health before, whether the step was a run's end, and its state
/// after.
fn events_of(
    before: State,
    health_before: Option<Health>,
    exited: bool,
    st: &UnitState,
) -> Vec<(EventKind, String)> {
    let mut out = Vec::new();
    let reason = || {
        st.reason
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default()
    };
    if exited && before != st.state && st.last_exit.is_some_and(|e| e.oom_killed) {
        let e = st.last_exit.expect("checked");
        out.push((EventKind::OomKilled, e.describe()));
    }
    if st.health != health_before {
        match st.health {
            Some(Health::Healthy) => out.push((EventKind::Healthy, "health check passes".into())),
            Some(Health::Unhealthy) => out.push((
                EventKind::Unhealthy,
                match &st.reason {
                    Some(r) => r.to_string(),
                    None => "health check fails".into(),
                },
            )),
            _ => {}
        }
    }
    if before != st.state {
        match st.state {
            State::Running => {
                let pid = st.pid.map(|p| format!("pid {p}")).unwrap_or_default();
                out.push((EventKind::Started, pid));
            }
            State::Starting(Phase::Delay) => {
                if let Some(Reason::Restarting { .. }) = &st.reason {
                    out.push((EventKind::Restarted, reason()));
                }
            }
            State::Failed => out.push((EventKind::Failed, reason())),
            State::Exited => out.push((
                EventKind::Exited,
                st.last_exit.map(|e| e.describe()).unwrap_or_else(reason),
            )),
            State::Stopped if before != State::Waiting => out.push((EventKind::Stopped, reason())),
            _ => {}
        }
    }
    out
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
fn effective(s: &Slot, recs: &BTreeMap<String, (Kind, String)>) -> (Unit, Option<String>) {
    let u = &s.unit;
    if u.forms().len() < 2 {
        return (u.clone(), None);
    }
    let pick = |k: Kind, why: String| (u.with_form(k).unwrap_or_else(|| u.clone()), Some(why));
    if let Some(k) = s.form_override {
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
