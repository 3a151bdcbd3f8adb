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
//!
//! Health checks are scheduled here, as Docker schedules them: the first
//! probe one `interval` after the start (or one `start_interval` when there
//! is a `start_period`), then every `interval` (every `start_interval` while
//! the start period lasts). Failures inside the start period do not count;
//! a success ends it. A restart for being unhealthy goes through the same
//! delay, doubling and burst window as a restart after a crash.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use jarvis_unit::{OnFallback, OnUnhealthy, RestartPolicy, Unit};

/// Why a start failed, and whether a later try may work (the runtime's
/// own type: it travels from the runtime to the machine as it is).
pub use jarvis_runtime::StartFailure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Wanted, but a dependency (or a device, or a GPU) is not ready yet.
    Waiting,
    /// About to run.
    Starting(Phase),
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

/// What a starting unit is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A spawn was issued; its answer has not come yet.
    Spawning,
    /// Waiting out a restart delay.
    Delay,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting(_) => "starting",
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
    /// No probe has succeeded yet.
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
    /// An end nothing is known about (a shim that died without a record).
    pub const UNKNOWN: ExitInfo = ExitInfo {
        code: None,
        signal: None,
        oom_killed: false,
    };

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
    /// Time for the next health probe.
    HealthProbe,
    /// Time to check again that a unit placed on a GPU runs there.
    GpuCheck,
}

/// Who asked a unit to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// `jarvisctl stop`.
    Stop,
    /// `jarvisctl down`.
    Down,
    /// jarvisd is shutting down (not saved: the unit comes back at boot).
    Shutdown,
    /// A benchmark is over and the unit was not running before it.
    Bench,
    /// `up` found the unit removed from the units directory.
    Removed,
    /// `up` found the unit changed: it starts again with its new definition.
    Replaced,
}

impl StopCause {
    pub fn as_str(self) -> &'static str {
        match self {
            StopCause::Stop => "stop",
            StopCause::Down => "down",
            StopCause::Shutdown => "shutdown",
            StopCause::Bench => "bench",
            StopCause::Removed => "removed",
            StopCause::Replaced => "replaced",
        }
    }

    pub fn parse(s: &str) -> Option<StopCause> {
        [
            StopCause::Stop,
            StopCause::Down,
            StopCause::Shutdown,
            StopCause::Bench,
            StopCause::Removed,
            StopCause::Replaced,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether the stop is remembered across restarts of jarvisd.
    pub fn is_saved(self) -> bool {
        matches!(self, StopCause::Stop | StopCause::Down | StopCause::Bench)
    }
}

/// Why a unit restarts automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Its process ended.
    Exit(ExitInfo),
    /// Its health check failed `failures` times in a row.
    Unhealthy { failures: u32, detail: String },
    /// Its start failed for want of something the system may have again
    /// soon (descriptors, memory, processes, disk space).
    StartFailed(String),
    /// Placed on a GPU, it was found running on the CPU (`[gpu]
    /// on_fallback = "restart"`); the reason says how it was told.
    GpuFallback(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Exit(e) => f.write_str(&e.describe()),
            Cause::StartFailed(reason) => write!(f, "cannot start: {reason}"),
            Cause::GpuFallback(reason) => write!(f, "GPU fallback: {reason}"),
            Cause::Unhealthy { failures, detail } => {
                write!(f, "unhealthy after {failures} failed checks ({detail})")
            }
        }
    }
}

/// Why a unit is in its state; `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Waiting: what for (dependencies, a device, a GPU).
    Waiting(String),
    /// Failed: a dependency or the hardware makes it impossible.
    Blocked(String),
    /// Failed: the run could not be set up.
    CannotStart(String),
    /// Failed: it ended and its restart policy does not restart it.
    Ended(ExitInfo),
    /// Failed: it started too often within the burst window.
    Burst {
        starts: usize,
        interval: Duration,
        burst: u32,
        last: Option<ExitInfo>,
        /// The last start failed (for want of a resource), and why.
        start_failed: Option<String>,
    },
    /// About to restart once the delay is over (or once it has stopped).
    Restarting { cause: Cause, delay: Duration },
    /// Running again after an automatic restart.
    Restarted(Cause),
    /// Running, unhealthy, and `on_unhealthy = "ignore"`.
    Unhealthy(String),
    /// Stopped (or stopping) on purpose.
    StoppedBy(StopCause),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Waiting(s) | Reason::Blocked(s) => f.write_str(s),
            Reason::CannotStart(s) => write!(f, "cannot start: {s}"),
            Reason::Ended(e) => f.write_str(&e.describe()),
            Reason::Burst {
                starts,
                interval,
                burst,
                last,
                start_failed,
            } => {
                write!(
                    f,
                    "started {starts} times within {} (restart.burst = {burst}); not restarting",
                    humantime::format_duration(*interval)
                )?;
                match (start_failed, last) {
                    (Some(reason), _) => write!(f, "; last start failed: {reason}")?,
                    (None, Some(e)) => write!(f, "; last run {}", e.describe())?,
                    (None, None) => {}
                }
                Ok(())
            }
            Reason::Restarting { cause, delay } if delay.is_zero() => {
                write!(f, "{cause}; restarting")
            }
            Reason::Restarting { cause, delay } => {
                write!(
                    f,
                    "{cause}; restarting in {}",
                    humantime::format_duration(*delay)
                )
            }
            Reason::Restarted(cause) => write!(f, "restarted: {cause}"),
            Reason::Unhealthy(detail) => write!(f, "unhealthy: {detail}"),
            Reason::StoppedBy(StopCause::Shutdown) => f.write_str("stopped by jarvisd's shutdown"),
            Reason::StoppedBy(StopCause::Bench) => f.write_str("stopped after a benchmark"),
            Reason::StoppedBy(StopCause::Removed) => f.write_str("removed from the units"),
            Reason::StoppedBy(StopCause::Replaced) => f.write_str("changed: restarting"),
            Reason::StoppedBy(c) => write!(f, "stopped by {}", c.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request to run: `start`, `up`, or the daemon's boot.
    Start,
    /// A request to stop.
    Stop(StopCause),
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
    /// The spawn failed. A transient failure (a resource the system may
    /// have again soon) is retried as a crash is, under the restart
    /// policy; any other fails the unit.
    SpawnFailed {
        gen: u64,
        reason: StartFailure,
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
    /// What a check of the run's GPU use found (`None`: nothing could
    /// tell, e.g. no NVML and no other word).
    GpuChecked {
        gen: u64,
        verdict: Option<GpuVerdict>,
    },
}

/// Whether a unit placed on a GPU runs there, as its last check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuVerdict {
    Ok,
    /// It runs (partly) on the CPU: why it is thought so.
    Fallback(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a new process for generation `gen`.
    Spawn { gen: u64 },
    /// Send a signal to the unit's main process.
    Signal { signal: i32 },
    /// SIGKILL every process in the unit's cgroup.
    KillAll,
    /// SIGKILL whatever is in the unit's cgroup though nothing should run
    /// there (a stop of a failed unit: a start that failed half-way must
    /// leave nothing behind).
    Sweep,
    /// Deliver `Event::Timer { gen, kind }` after `after`.
    Timer {
        gen: u64,
        kind: TimerKind,
        after: Duration,
    },
    /// Run the health probe once (bounded by its timeout) and deliver
    /// `Event::HealthResult { gen, .. }`.
    Probe { gen: u64 },
    /// Check once whether the run uses its GPU, and deliver
    /// `Event::GpuChecked { gen, .. }`.
    GpuCheck { gen: u64 },
}

/// Why a unit that is being stopped starts again afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Again {
    /// A restart request: like a fresh start.
    Requested,
    /// An automatic restart (the health check failed): through the
    /// restart policy's delay and burst window.
    Auto(Cause),
    /// Something it needs went away (a device): wait for it to return.
    Withdrawn(String),
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
    /// Runs the kernel's OOM killer ended since jarvisd started.
    pub oom_kills: u32,
    pub health: Option<Health>,
    pub last_exit: Option<ExitInfo>,
    pub reason: Option<Reason>,
    pub started_at: Option<Instant>,
    /// What the last check of this run's GPU use found; `None` before the
    /// first (and without a GPU).
    pub gpu: Option<GpuVerdict>,
    /// Start times within the burst interval.
    starts: VecDeque<Instant>,
    /// Consecutive quick failures: the restart delay doubles with each.
    backoff: u32,
    health_failures: u32,
    /// Once stopped, start again, and why.
    again: Option<Again>,
    /// Waiting to be restarted automatically after this.
    restart: Option<Cause>,
}

impl Default for UnitState {
    fn default() -> Self {
        UnitState {
            state: State::Stopped,
            wanted: false,
            gen: 0,
            pid: None,
            restarts: 0,
            oom_kills: 0,
            health: None,
            last_exit: None,
            reason: None,
            started_at: None,
            gpu: None,
            starts: VecDeque::new(),
            backoff: 0,
            health_failures: 0,
            again: None,
            restart: None,
        }
    }
}

impl UnitState {
    /// Whether the process may be running (so it must be stopped before the
    /// unit is replaced or removed).
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            State::Running | State::Stopping | State::Starting(Phase::Spawning)
        )
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

    /// Who stopped the unit on purpose, if that is why it is stopped.
    pub fn stopped_by(&self) -> Option<StopCause> {
        match self.reason {
            Some(Reason::StoppedBy(c)) if !self.wanted => Some(c),
            _ => None,
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
            Event::Stop(cause) => self.on_stop(s, cause),
            Event::Restart => {
                if s.is_active() {
                    s.again = Some(Again::Requested);
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
                s.state = State::Starting(Phase::Spawning);
                self.on_spawned(s, s.gen, pid)
            }
            Event::SpawnFailed { gen, reason } => self.on_spawn_failed(s, gen, reason),
            Event::SpawnDeferred { gen, reason } => {
                if gen != s.gen || s.state != State::Starting(Phase::Spawning) {
                    return vec![];
                }
                s.starts.pop_back();
                s.again = None;
                if s.wanted {
                    s.state = State::Waiting;
                    s.reason = Some(Reason::Waiting(reason));
                } else {
                    s.state = State::Stopped;
                }
                vec![]
            }
            Event::Exited { gen, exit } => self.on_exit(s, gen, exit),
            Event::Timer { gen, kind } => self.on_timer(s, gen, kind),
            Event::HealthResult { gen, ok, detail } => self.on_health(s, gen, ok, detail),
            Event::GpuChecked { gen, verdict } => self.on_gpu_checked(s, gen, verdict),
        }
    }

    fn on_start(&self, s: &mut UnitState) -> Vec<Effect> {
        s.wanted = true;
        s.restart = None;
        match s.state {
            State::Running | State::Starting(_) | State::Waiting => vec![],
            State::Stopping => {
                s.again = Some(Again::Requested);
                vec![]
            }
            State::Stopped | State::Exited | State::Failed => {
                // A request to start forgives earlier failures.
                s.restarts = 0;
                s.backoff = 0;
                s.starts.clear();
                s.state = State::Waiting;
                s.reason = Some(Reason::Waiting("checking dependencies".into()));
                vec![]
            }
        }
    }

    fn on_spawn_failed(&self, s: &mut UnitState, gen: u64, failure: StartFailure) -> Vec<Effect> {
        if gen != s.gen || s.state != State::Starting(Phase::Spawning) {
            return vec![];
        }
        s.pid = None;
        let again = s.again.take();
        // Descriptors, memory or disk space short a moment: tried again as
        // after a crash (the restart policy, its delay, doubling and burst
        // window), unless something else is to follow.
        let retry = failure.transient
            && s.wanted
            && again.is_none()
            && self.unit.restart.policy != RestartPolicy::Never;
        if retry {
            s.state = State::Stopped;
            return self.schedule_restart(s, Cause::StartFailed(failure.reason), Duration::ZERO);
        }
        s.state = State::Failed;
        s.reason = Some(Reason::CannotStart(failure.reason));
        vec![]
    }

    fn on_stop(&self, s: &mut UnitState, cause: StopCause) -> Vec<Effect> {
        s.wanted = false;
        s.again = None;
        s.restart = None;
        match s.state {
            State::Running => self.begin_stop(s, Some(Reason::StoppedBy(cause))),
            State::Starting(Phase::Spawning) => {
                // The process is on its way; stop it once it is there.
                s.reason = Some(Reason::StoppedBy(cause));
                vec![]
            }
            State::Waiting | State::Starting(Phase::Delay) => {
                // Invalidate a pending restart timer.
                s.gen += 1;
                s.state = State::Stopped;
                s.reason = Some(Reason::StoppedBy(cause));
                vec![]
            }
            State::Stopping => {
                s.reason = Some(Reason::StoppedBy(cause));
                vec![]
            }
            State::Failed => vec![Effect::Sweep],
            State::Stopped | State::Exited => {
                if s.state == State::Stopped {
                    s.reason = Some(Reason::StoppedBy(cause));
                }
                vec![]
            }
        }
    }

    fn begin_stop(&self, s: &mut UnitState, reason: Option<Reason>) -> Vec<Effect> {
        if s.state == State::Stopping {
            return vec![];
        }
        if s.state != State::Running {
            // Nothing runs (e.g. waiting out a restart delay): done at once.
            s.gen += 1;
            s.state = State::Stopped;
            return match s.again.take() {
                Some(_) => self.on_start(s),
                None => vec![],
            };
        }
        s.state = State::Stopping;
        if reason.is_some() {
            s.reason = reason;
        }
        vec![
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
        // A device leaving ends any crash loop: the start that follows its
        // return is not counted against the burst window.
        s.starts.clear();
        s.backoff = 0;
        match s.state {
            State::Running => {
                s.again = Some(Again::Withdrawn(reason.clone()));
                self.begin_stop(s, Some(Reason::Waiting(reason)))
            }
            // On its way out, or on its way in (stopped as soon as it runs,
            // see on_spawned).
            State::Stopping | State::Starting(Phase::Spawning) => {
                s.again = Some(Again::Withdrawn(reason.clone()));
                s.reason = Some(Reason::Waiting(reason));
                vec![]
            }
            State::Starting(Phase::Delay) | State::Waiting => {
                s.gen += 1;
                s.state = State::Waiting;
                s.reason = Some(Reason::Waiting(reason));
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
            Readiness::Ready => {
                let effects = self.spawn(s);
                if s.state == State::Starting(Phase::Spawning) {
                    if let Some(cause) = s.restart.take() {
                        s.restarts += 1;
                        s.reason = Some(Reason::Restarted(cause));
                    }
                }
                effects
            }
            Readiness::Pending(why) => {
                s.reason = Some(Reason::Waiting(why));
                vec![]
            }
            Readiness::Blocked(why) => {
                s.state = State::Failed;
                s.restart = None;
                s.reason = Some(Reason::Blocked(why));
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
            let start_failed = match s.restart.take() {
                Some(Cause::StartFailed(reason)) => Some(reason),
                _ => None,
            };
            s.reason = Some(Reason::Burst {
                starts: s.starts.len(),
                interval: r.interval,
                burst: r.burst,
                last: s.last_exit,
                start_failed,
            });
            return vec![];
        }
        s.starts.push_back(self.now);
        s.gen += 1;
        s.state = State::Starting(Phase::Spawning);
        s.reason = None;
        vec![Effect::Spawn { gen: s.gen }]
    }

    fn on_spawned(&self, s: &mut UnitState, gen: u64, pid: i32) -> Vec<Effect> {
        if gen != s.gen || s.state != State::Starting(Phase::Spawning) {
            return vec![];
        }
        s.pid = Some(pid);
        s.started_at = Some(self.now);
        s.state = State::Running;
        s.health_failures = 0;
        s.health = self.unit.health.as_ref().map(|_| Health::Starting);
        s.gpu = None;
        if !s.wanted {
            // A stop came while it was spawning.
            return self.begin_stop(s, None);
        }
        if let Some(Again::Withdrawn(reason)) = &s.again {
            let reason = Reason::Waiting(reason.clone());
            return self.begin_stop(s, Some(reason));
        }
        let mut effects: Vec<Effect> = self
            .next_probe(s)
            .map(|after| Effect::Timer {
                gen,
                kind: TimerKind::HealthProbe,
                after,
            })
            .into_iter()
            .collect();
        effects.extend(self.next_gpu_check(gen));
        effects
    }

    /// The timer of the next check of the run's GPU use (units with
    /// `[gpu]`; the core drops the check of a run placed on the CPU).
    fn next_gpu_check(&self, gen: u64) -> Option<Effect> {
        let gpu = self.unit.gpu.as_ref()?;
        Some(Effect::Timer {
            gen,
            kind: TimerKind::GpuCheck,
            after: gpu.verify_interval,
        })
    }

    /// A check of the run's GPU use answered: kept for `status`; a
    /// fallback with `on_fallback = "restart"` restarts the unit through
    /// the restart policy (delay, doubling, burst window), as an unhealthy
    /// verdict does. Otherwise the next check is armed.
    fn on_gpu_checked(
        &self,
        s: &mut UnitState,
        gen: u64,
        verdict: Option<GpuVerdict>,
    ) -> Vec<Effect> {
        let Some(gpu) = &self.unit.gpu else {
            return vec![];
        };
        if gen != s.gen || s.state != State::Running {
            return vec![];
        }
        if verdict.is_some() {
            s.gpu = verdict.clone();
        }
        match verdict {
            Some(GpuVerdict::Fallback(reason)) if gpu.on_fallback == OnFallback::Restart => {
                let cause = Cause::GpuFallback(reason);
                s.again = Some(Again::Auto(cause.clone()));
                self.begin_stop(
                    s,
                    Some(Reason::Restarting {
                        cause,
                        delay: Duration::ZERO,
                    }),
                )
            }
            _ => self.next_gpu_check(gen).into_iter().collect(),
        }
    }

    /// Whether a running unit is inside its health check's start period.
    fn in_start_period(&self, s: &UnitState) -> bool {
        let Some(h) = &self.unit.health else {
            return false;
        };
        s.health == Some(Health::Starting)
            && s.started_at
                .is_some_and(|t| self.now.duration_since(t) < h.start_period)
    }

    /// When the next probe is due, counted from now.
    fn next_probe(&self, s: &UnitState) -> Option<Duration> {
        let h = self.unit.health.as_ref()?;
        Some(if self.in_start_period(s) {
            h.start_interval
        } else {
            h.interval
        })
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
        s.gpu = None;

        if was_stopping {
            s.state = State::Stopped;
            return match s.again.take() {
                Some(Again::Auto(cause)) if s.wanted => self.schedule_restart(s, cause, ran_for),
                Some(Again::Requested) if s.wanted => self.on_start(s),
                Some(Again::Withdrawn(reason)) if s.wanted => {
                    s.state = State::Waiting;
                    s.reason = Some(Reason::Waiting(reason));
                    vec![]
                }
                _ => vec![],
            };
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
                s.reason = Some(Reason::Ended(exit));
            }
            return vec![];
        }
        self.schedule_restart(s, Cause::Exit(exit), ran_for)
    }

    /// An automatic restart after `cause`: waits out the restart delay
    /// (doubling with each quick failure), then spawns, burst permitting.
    fn schedule_restart(&self, s: &mut UnitState, cause: Cause, ran_for: Duration) -> Vec<Effect> {
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
        s.reason = Some(Reason::Restarting { cause, delay });
        if delay.is_zero() {
            return self.respawn(s);
        }
        s.state = State::Starting(Phase::Delay);
        vec![Effect::Timer {
            gen: s.gen,
            kind: TimerKind::RestartDelay,
            after: delay,
        }]
    }

    /// The restart delay is over: back to waiting, so the restart goes
    /// through the same readiness check (dependencies, devices, GPU) as any
    /// start; `on_deps` spawns it and counts it.
    fn respawn(&self, s: &mut UnitState) -> Vec<Effect> {
        let cause = match s.reason.take() {
            Some(Reason::Restarting { cause, .. }) => cause,
            other => {
                s.reason = other;
                Cause::Exit(s.last_exit.unwrap_or(ExitInfo::UNKNOWN))
            }
        };
        s.state = State::Waiting;
        s.reason = Some(Reason::Restarting {
            cause: cause.clone(),
            delay: Duration::ZERO,
        });
        s.restart = Some(cause);
        vec![]
    }

    fn on_timer(&self, s: &mut UnitState, gen: u64, kind: TimerKind) -> Vec<Effect> {
        if gen != s.gen {
            return vec![];
        }
        match kind {
            TimerKind::RestartDelay if s.state == State::Starting(Phase::Delay) => self.respawn(s),
            TimerKind::StopTimeout if s.state == State::Stopping => vec![Effect::KillAll],
            TimerKind::HealthProbe if s.state == State::Running && self.unit.health.is_some() => {
                vec![Effect::Probe { gen }]
            }
            // With a health check, the GPU is checked once the unit is
            // healthy: a model may still be loading before.
            TimerKind::GpuCheck if s.state == State::Running => {
                if self.unit.health.is_some() && s.health != Some(Health::Healthy) {
                    self.next_gpu_check(gen).into_iter().collect()
                } else {
                    vec![Effect::GpuCheck { gen }]
                }
            }
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
        let next = |m: &Self, s: &UnitState| {
            m.next_probe(s)
                .map(|after| Effect::Timer {
                    gen,
                    kind: TimerKind::HealthProbe,
                    after,
                })
                .into_iter()
                .collect::<Vec<_>>()
        };
        if ok {
            s.health_failures = 0;
            s.health = Some(Health::Healthy);
            if matches!(s.reason, Some(Reason::Unhealthy(_))) {
                s.reason = None;
            }
            return next(self, s);
        }
        if self.in_start_period(s) {
            return next(self, s);
        }
        s.health_failures += 1;
        if s.health_failures < health.retries {
            return next(self, s);
        }
        s.health = Some(Health::Unhealthy);
        match health.on_unhealthy {
            OnUnhealthy::Ignore => {
                s.reason = Some(Reason::Unhealthy(detail));
                next(self, s)
            }
            OnUnhealthy::Restart => {
                let cause = Cause::Unhealthy {
                    failures: s.health_failures,
                    detail,
                };
                s.again = Some(Again::Auto(cause.clone()));
                self.begin_stop(
                    s,
                    Some(Reason::Restarting {
                        cause,
                        delay: Duration::ZERO,
                    }),
                )
            }
        }
    }
}

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
