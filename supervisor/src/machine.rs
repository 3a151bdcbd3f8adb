//! The per-unit supervision state machine.
//!
//! Invariant: this module is pure. [`Machine::step`] takes the unit's
//! definition, the current time and one [`Event`], updates the unit's
//! [`UnitState`] and returns the [`Effect`]s the event loop must carry out.
//! It never touches the kernel, the clock or a socket, so every rule here is
//! unit-tested with plain values.
//!
//! Incarnations: every spawn gets a new generation number. Events that belong
//! to a process (exit, health result, timers) carry the generation they were
//! issued for; an event for an older generation is stale and ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use jarvis_unit::{OnUnhealthy, RestartPolicy, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Wanted, but a dependency is not ready yet.
    Waiting,
    /// About to run: spawning, or waiting out a restart delay.
    Starting,
    Running,
    /// The stop signal was sent; waiting for the process to go.
    Stopping,
    /// Not running, and not meant to.
    Stopped,
    /// Ran to completion (exit 0) and is not restarted.
    Exited,
    /// Will not run again without a request: see `reason`.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it (the cgroup's oom_kill count rose).
    pub oom_killed: bool,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The code as a shell reports it: 128 + signal when killed.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    pub fn describe(&self) -> String {
        let base = match (self.code, self.signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by {}", signal_name(s)),
            (None, None) => "ended".to_string(),
        };
        if self.oom_killed {
            format!("{base}: out of memory (OOM-killed at the unit's memory_max)")
        } else {
            base
        }
    }
}

pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Whether dependencies allow a waiting unit to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; the reason names what is awaited.
    Pending(String),
    /// Never, until something changes by request; the reason says why.
    Blocked(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// The restart delay is over: spawn again.
    RestartDelay,
    /// The stop timeout is over: kill everything in the cgroup.
    StopTimeout,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request to run: `start`, `up`, or the daemon's boot.
    Start,
    /// A request to stop.
    Stop,
    /// A request to stop if running, then start again.
    Restart,
    /// The dependencies' readiness, fed while the unit is waiting.
    Deps(Readiness),
    Spawned {
        gen: u64,
        pid: i32,
    },
    /// After a daemon restart: the unit's process still runs (its shim kept
    /// it), as `pid`. Starts a new generation.
    Adopted {
        pid: i32,
    },
    /// Something the unit needs is gone (a required device was unplugged):
    /// stop it if it runs and wait, saying why, until it can start again.
    Withdraw {
        reason: String,
    },
    SpawnFailed {
        gen: u64,
        reason: String,
    },
    /// The spawn did not happen after all: something the unit needs (a
    /// device) went away in between. Back to waiting.
    SpawnDeferred {
        gen: u64,
        reason: String,
    },
    Exited {
        gen: u64,
        exit: ExitInfo,
    },
    Timer {
        gen: u64,
        kind: TimerKind,
    },
    HealthResult {
        gen: u64,
        ok: bool,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a new process for generation `gen`.
    Spawn {
        gen: u64,
    },
    /// Send a signal to the unit's main process.
    Signal {
        signal: i32,
    },
    /// SIGKILL every process in the unit's cgroup.
    KillAll,
    /// Deliver `Event::Timer { gen, kind }` after `after`.
    Timer {
        gen: u64,
        kind: TimerKind,
        after: Duration,
    },
    StartHealth {
        gen: u64,
    },
    StopHealth,
}

/// Why a unit that is being stopped starts again afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    /// A restart request: like a fresh start.
    Requested,
    /// The health check failed: an automatic restart.
    Unhealthy,
    /// Something it needs went away (a device): wait for it to return.
    Withdrawn,
}

/// Everything the supervisor knows about one unit besides its definition.
#[derive(Debug, Clone)]
pub struct UnitState {
    pub state: State,
    /// Whether the unit is meant to run.
    pub wanted: bool,
    pub gen: u64,
    pub pid: Option<i32>,
    /// Automatic restarts (after an exit or an unhealthy verdict) since the
    /// last request to start.
    pub restarts: u32,
    pub health: Option<Health>,
    pub last_exit: Option<ExitInfo>,
    pub reason: Option<String>,
    pub started_at: Option<Instant>,
    /// Start times within the burst interval.
    starts: VecDeque<Instant>,
    /// Consecutive quick failures: the restart delay doubles with each.
    backoff: u32,
    health_failures: u32,
    /// A spawn effect was issued and its answer has not come yet.
    spawning: bool,
    /// Once stopped, start again, and why.
    start_after_stop: Option<Again>,
}

impl Default for UnitState {
    fn default() -> Self {
        UnitState {
            state: State::Stopped,
            wanted: false,
            gen: 0,
            pid: None,
            restarts: 0,
            health: None,
            last_exit: None,
            reason: None,
            started_at: None,
            starts: VecDeque::new(),
            backoff: 0,
            health_failures: 0,
            spawning: false,
            start_after_stop: None,
        }
    }
}

impl UnitState {
    /// Whether the process may be running (so it must be stopped before the
    /// unit is replaced or removed).
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Running | State::Stopping) || self.spawning
    }

    /// Whether a dependent waiting on `condition` may start.
    pub fn satisfies(&self, condition: jarvis_unit::Condition) -> bool {
        use jarvis_unit::Condition::*;
        match condition {
            Started => {
                self.state == State::Running
                    || (self.state == State::Exited && self.last_exit.is_some())
            }
            Healthy => self.state == State::Running && self.health == Some(Health::Healthy),
            Completed => self.state == State::Exited && self.last_exit.is_some_and(|e| e.success()),
        }
    }
}

/// Drives one unit's state. Stateless itself: all state is in [`UnitState`].
pub struct Machine<'a> {
    pub unit: &'a Unit,
    pub now: Instant,
}

impl Machine<'_> {
    pub fn step(&self, s: &mut UnitState, event: Event) -> Vec<Effect> {
        match event {
            Event::Start => self.on_start(s),
            Event::Stop => self.on_stop(s),
            Event::Restart => {
                if s.is_active() {
                    s.start_after_stop = Some(Again::Requested);
                    s.wanted = true;
                    self.begin_stop(s, None)
                } else {
                    self.on_start(s)
                }
            }
            Event::Deps(readiness) => self.on_deps(s, readiness),
            Event::Withdraw { reason } => self.on_withdraw(s, reason),
            Event::Spawned { gen, pid } => self.on_spawned(s, gen, pid),
            Event::Adopted { pid } => {
                s.wanted = true;
                s.gen += 1;
                s.starts.push_back(self.now);
                s.spawning = true;
                s.state = State::Starting;
                self.on_spawned(s, s.gen, pid)
            }
            Event::SpawnFailed { gen, reason } => {
                if gen != s.gen || !s.spawning {
                    return vec![];
                }
                s.spawning = false;
                s.pid = None;
                s.state = State::Failed;
                s.reason = Some(format!("cannot start: {reason}"));
                s.start_after_stop = None;
                vec![]
            }
            Event::SpawnDeferred { gen, reason } => {
                if gen != s.gen || !s.spawning {
                    return vec![];
                }
                s.spawning = false;
                s.starts.pop_back();
                s.state = if s.wanted {
                    State::Waiting
                } else {
                    State::Stopped
                };
                s.reason = Some(reason);
                s.start_after_stop = None;
                vec![]
            }
            Event::Exited { gen, exit } => self.on_exit(s, gen, exit),
            Event::Timer { gen, kind } => self.on_timer(s, gen, kind),
            Event::HealthResult { gen, ok, detail } => self.on_health(s, gen, ok, detail),
        }
    }

    fn on_start(&self, s: &mut UnitState) -> Vec<Effect> {
        s.wanted = true;
        match s.state {
            State::Running | State::Starting | State::Waiting => vec![],
            State::Stopping => {
                s.start_after_stop = Some(Again::Requested);
                vec![]
            }
            State::Stopped | State::Exited | State::Failed => {
                // A request to start forgives earlier failures.
                s.restarts = 0;
                s.backoff = 0;
                s.starts.clear();
                s.state = State::Waiting;
                s.reason = Some("checking dependencies".into());
                vec![]
            }
        }
    }

    fn on_stop(&self, s: &mut UnitState) -> Vec<Effect> {
        s.wanted = false;
        s.start_after_stop = None;
        match s.state {
            State::Running => self.begin_stop(s, None),
            State::Starting if s.spawning => {
                // The process is on its way; stop it once it is there.
                vec![]
            }
            State::Waiting | State::Starting => {
                // Invalidate a pending restart timer.
                s.gen += 1;
                s.state = State::Stopped;
                s.reason = None;
                vec![]
            }
            State::Stopping | State::Stopped | State::Exited | State::Failed => vec![],
        }
    }

    fn begin_stop(&self, s: &mut UnitState, reason: Option<String>) -> Vec<Effect> {
        if s.state == State::Stopping {
            return vec![];
        }
        if s.state != State::Running {
            // Nothing runs (e.g. waiting out a restart delay): done at once.
            s.gen += 1;
            s.state = State::Stopped;
            return match s.start_after_stop.take() {
                Some(_) => self.on_start(s),
                None => vec![],
            };
        }
        s.state = State::Stopping;
        s.reason = reason;
        vec![
            Effect::StopHealth,
            Effect::Signal {
                signal: self.unit.stop.signal,
            },
            Effect::Timer {
                gen: s.gen,
                kind: TimerKind::StopTimeout,
                after: self.unit.stop.timeout,
            },
        ]
    }

    fn on_withdraw(&self, s: &mut UnitState, reason: String) -> Vec<Effect> {
        if !s.wanted {
            return vec![];
        }
        match s.state {
            State::Running => {
                s.start_after_stop = Some(Again::Withdrawn);
                self.begin_stop(s, Some(reason))
            }
            State::Stopping => {
                s.start_after_stop = Some(Again::Withdrawn);
                s.reason = Some(reason);
                vec![]
            }
            // On its way: it is stopped as soon as it runs (see on_spawned).
            State::Starting if s.spawning => {
                s.start_after_stop = Some(Again::Withdrawn);
                s.reason = Some(reason);
                vec![]
            }
            State::Starting | State::Waiting => {
                s.gen += 1;
                s.state = State::Waiting;
                s.reason = Some(reason);
                vec![]
            }
            State::Stopped | State::Exited | State::Failed => vec![],
        }
    }

    fn on_deps(&self, s: &mut UnitState, readiness: Readiness) -> Vec<Effect> {
        if s.state != State::Waiting {
            return vec![];
        }
        match readiness {
            Readiness::Ready => self.spawn(s),
            Readiness::Pending(why) => {
                s.reason = Some(why);
                vec![]
            }
            Readiness::Blocked(why) => {
                s.state = State::Failed;
                s.reason = Some(why);
                vec![]
            }
        }
    }

    /// Issues a spawn, unless the burst limit forbids it.
    fn spawn(&self, s: &mut UnitState) -> Vec<Effect> {
        let r = &self.unit.restart;
        while s
            .starts
            .front()
            .is_some_and(|t| self.now.duration_since(*t) >= r.interval)
        {
            s.starts.pop_front();
        }
        if s.starts.len() >= r.burst as usize {
            s.state = State::Failed;
            s.reason = Some(format!(
                "started {} times within {} (restart.burst = {}); not restarting{}",
                s.starts.len(),
                humantime::format_duration(r.interval),
                r.burst,
                s.last_exit
                    .map(|e| format!("; last run {}", e.describe()))
                    .unwrap_or_default()
            ));
            return vec![];
        }
        s.starts.push_back(self.now);
        s.gen += 1;
        s.state = State::Starting;
        s.spawning = true;
        s.reason = None;
        vec![Effect::Spawn { gen: s.gen }]
    }

    fn on_spawned(&self, s: &mut UnitState, gen: u64, pid: i32) -> Vec<Effect> {
        if gen != s.gen || !s.spawning {
            return vec![];
        }
        s.spawning = false;
        s.pid = Some(pid);
        s.started_at = Some(self.now);
        s.state = State::Running;
        s.health_failures = 0;
        s.health = self.unit.health.as_ref().map(|_| Health::Starting);
        if !s.wanted {
            // A stop came while it was spawning.
            return self.begin_stop(s, None);
        }
        if s.start_after_stop == Some(Again::Withdrawn) {
            let reason = s.reason.clone();
            return self.begin_stop(s, reason);
        }
        let mut effects = vec![];
        if self.unit.health.is_some() {
            effects.push(Effect::StartHealth { gen });
        }
        effects
    }

    fn on_exit(&self, s: &mut UnitState, gen: u64, exit: ExitInfo) -> Vec<Effect> {
        if gen != s.gen || !matches!(s.state, State::Running | State::Stopping) {
            return vec![];
        }
        let ran_for = s
            .started_at
            .map(|t| self.now.duration_since(t))
            .unwrap_or_default();
        let was_stopping = s.state == State::Stopping;
        s.pid = None;
        s.started_at = None;
        s.last_exit = Some(exit);
        s.health = None;
        // The shim has emptied the cgroup before an exit is reported.
        let mut effects = vec![Effect::StopHealth];

        if was_stopping {
            s.state = State::Stopped;
            match s.start_after_stop.take() {
                Some(Again::Unhealthy) if s.wanted => {
                    s.state = State::Waiting;
                    effects.extend(self.respawn(s));
                }
                Some(Again::Requested) if s.wanted => effects.extend(self.on_start(s)),
                Some(Again::Withdrawn) if s.wanted => s.state = State::Waiting,
                _ => s.reason = None,
            }
            return effects;
        }

        let policy = self.unit.restart.policy;
        let restart = s.wanted
            && match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !exit.success(),
                RestartPolicy::Never => false,
            };
        if !restart {
            if exit.success() {
                s.state = State::Exited;
                s.reason = None;
            } else {
                s.state = State::Failed;
                s.reason = Some(exit.describe());
            }
            return effects;
        }

        // A run that lasted a whole burst interval was not a crash loop.
        if ran_for >= self.unit.restart.interval {
            s.backoff = 0;
        }
        let delay = backoff_delay(
            self.unit.restart.delay,
            self.unit.restart.max_delay,
            s.backoff,
        );
        s.backoff = s.backoff.saturating_add(1);
        s.state = State::Starting;
        s.reason = Some(format!(
            "{}{RESTARTING} in {}",
            exit.describe(),
            humantime::format_duration(delay)
        ));
        if delay.is_zero() {
            s.state = State::Waiting;
            effects.extend(self.respawn(s));
        } else {
            effects.push(Effect::Timer {
                gen: s.gen,
                kind: TimerKind::RestartDelay,
                after: delay,
            });
        }
        effects
    }

    /// An automatic restart: spawns (burst permitting), counts it, and turns
    /// "X; restarting ..." into "restarted: X".
    fn respawn(&self, s: &mut UnitState) -> Vec<Effect> {
        let cause = s
            .reason
            .as_deref()
            .map(|r| r.split_once(RESTARTING).map_or(r, |(cause, _)| cause))
            .map(|cause| format!("restarted: {cause}"));
        let effects = self.spawn(s);
        if s.state == State::Starting {
            s.restarts += 1;
            s.reason = cause;
        }
        effects
    }

    fn on_timer(&self, s: &mut UnitState, gen: u64, kind: TimerKind) -> Vec<Effect> {
        if gen != s.gen {
            return vec![];
        }
        match kind {
            TimerKind::RestartDelay if s.state == State::Starting && !s.spawning => {
                s.state = State::Waiting;
                self.respawn(s)
            }
            TimerKind::StopTimeout if s.state == State::Stopping => vec![Effect::KillAll],
            _ => vec![],
        }
    }

    fn on_health(&self, s: &mut UnitState, gen: u64, ok: bool, detail: String) -> Vec<Effect> {
        let Some(health) = &self.unit.health else {
            return vec![];
        };
        if gen != s.gen || s.state != State::Running {
            return vec![];
        }
        if ok {
            s.health_failures = 0;
            s.health = Some(Health::Healthy);
            return vec![];
        }
        let in_start_period = s.health == Some(Health::Starting)
            && s.started_at
                .is_some_and(|t| self.now.duration_since(t) < health.start_period);
        if in_start_period {
            return vec![];
        }
        s.health_failures += 1;
        if s.health_failures < health.retries {
            return vec![];
        }
        s.health = Some(Health::Unhealthy);
        match health.on_unhealthy {
            OnUnhealthy::Ignore => {
                s.reason = Some(format!("unhealthy: {detail}"));
                vec![]
            }
            OnUnhealthy::Restart => {
                s.start_after_stop = Some(Again::Unhealthy);
                self.begin_stop(
                    s,
                    Some(format!(
                        "unhealthy after {} failed checks ({detail}){RESTARTING}",
                        s.health_failures
                    )),
                )
            }
        }
    }
}

/// Ends the reason of a unit about to restart; `respawn` cuts it off.
const RESTARTING: &str = "; restarting";

/// `delay * 2^n`, capped at `max`.
pub fn backoff_delay(delay: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    delay.saturating_mul(factor).min(max)
}

/// Whether `unit`'s dependencies, as seen in `lookup`, let it start.
pub fn readiness<'a>(unit: &Unit, lookup: impl Fn(&str) -> Option<&'a UnitState>) -> Readiness {
    let mut pending = Vec::new();
    for dep in &unit.depends_on {
        let Some(ds) = lookup(&dep.unit) else {
            return Readiness::Blocked(format!("dependency {} does not exist", dep.unit));
        };
        if ds.satisfies(dep.condition) {
            continue;
        }
        let blocked = match ds.state {
            State::Failed => Some(format!(
                "dependency {} failed{}",
                dep.unit,
                ds.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
            State::Exited if dep.condition != jarvis_unit::Condition::Started => Some(format!(
                "dependency {} exited ({}) and cannot become {}",
                dep.unit,
                ds.last_exit.map(|e| e.describe()).unwrap_or_default(),
                dep.condition.as_str()
            )),
            State::Stopped if !ds.wanted => Some(format!("dependency {} is stopped", dep.unit)),
            _ => None,
        };
        if let Some(b) = blocked {
            return Readiness::Blocked(b);
        }
        pending.push(format!("{} ({})", dep.unit, dep.condition.as_str()));
    }
    if pending.is_empty() {
        Readiness::Ready
    } else {
        Readiness::Pending(format!("waiting for {}", pending.join(", ")))
    }
}

#[cfg(test)]
mod tests;
