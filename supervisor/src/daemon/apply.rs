//! `apply`, `rollback` and `generations`: switching the unit set to a
//! generation through the health gate.
//!
//! An apply goes through these steps, one at a time (a second apply is
//! refused meanwhile):
//! 1. off the loop: fetch and check out the revision as generation N (or,
//!    for a rollback, take generation N as it is), load and validate its
//!    units, digest their definitions, resolve their devices, and record
//!    the switch to N as in progress (durably);
//! 2. on the loop: the plan from the definitions running now to N's; the
//!    set goes to the core as `up`'s does (units whose definition is the
//!    same keep the `Unit` the core has, so they are left alone);
//! 3. the gate, checked after every input: every started or restarted unit
//!    running (healthy where it has a check) or exited 0, before the
//!    timeout. A unit that fails or is declared unhealthy fails it at once;
//! 4. passed: N is recorded active (durably), then the answer. Failed: N is
//!    recorded rolled back, the set before goes back to the core the same
//!    way, and the answer comes once what it restarted is up again (or the
//!    timeout passed once more).
//!
//! A jarvisd that stops anywhere in between comes back on the generation
//! that was active before (see `jarvis_gitops::record`): runs started from
//! N's definitions are then restarted from the active one's, since their
//! run records carry another definition digest.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use jarvis_gitops::{record, Definitions, Generation, Plan, Record, State as GenState};
use jarvis_proto::{ApplyPlan, ApplyReport, ApplyResult, GenerationInfo, Response};
use jarvis_runtime::{blocking, Runtimes};
use jarvis_unit::{Unit, UnitSet};
use tokio::sync::oneshot;

use super::{devices_of, Daemon};
use crate::engine::machine::{Health, State};
use crate::engine::{Ask, Devices, Input};
use crate::msg::{Msg, Reply};

/// Where jarvisd's units come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A plain units directory (`--units`): `up` reads it again; `apply`
    /// and `rollback` are refused.
    Units(PathBuf),
    /// The active generation under the state directory.
    Generations,
}

/// What the blocking steps and timers tell the loop.
pub enum ApplyMsg {
    /// Step 1 is done.
    Prepared { serial: u64, outcome: Outcome },
    /// The set before, with its devices resolved again, to put back.
    Restore {
        serial: u64,
        set: Vec<(Unit, Devices)>,
    },
    /// The time of the gate armed `timer`-th is up.
    Timeout { serial: u64, timer: u64 },
    /// The answer has gone: the next apply may begin.
    Finished { serial: u64 },
}

pub enum Outcome {
    Ready(Prepared),
    /// A unit of the revision is invalid: nothing changed.
    Invalid {
        number: u64,
        revision: String,
        reason: String,
    },
    Error(String),
}

/// A generation ready to switch to.
pub struct Prepared {
    number: u64,
    revision: String,
    dry_run: bool,
    set: Vec<(Unit, Devices)>,
    defs: Definitions,
}

/// The apply in progress.
pub struct InFlight {
    serial: u64,
    /// The caller's answer.
    reply: oneshot::Sender<Response>,
    timeout: Duration,
    /// Which gate's timer counts (the restore's gate arms its own).
    timer: u64,
    number: u64,
    revision: String,
    phase: Phase,
}

enum Phase {
    Preparing,
    /// The new set is with the core; waiting for these units.
    Gate {
        plan: Plan,
        before: Vec<Unit>,
        before_defs: Definitions,
        waiting: Vec<String>,
    },
    /// Failed: the set before is being put back.
    Restoring {
        plan: Plan,
        reason: String,
        waiting: Vec<String>,
        /// Set once the set before is with the core.
        restored: bool,
        /// The set before's definitions.
        defs: Definitions,
    },
    /// The answer is being sent (after the record is saved).
    Finishing,
}

/// How the units a gate waits for stand.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    Passed,
    /// The first unit not ready yet, and how it stands.
    Pending(String),
    Failed(String),
}

fn plan_wire(p: &Plan) -> ApplyPlan {
    ApplyPlan {
        start: p.start.clone(),
        restart: p.restart.clone(),
        stop: p.stop.clone(),
        unchanged: p.unchanged.clone(),
    }
}

fn report(
    plan: &Plan,
    number: u64,
    revision: &str,
    result: ApplyResult,
    reason: Option<String>,
) -> Response {
    Response::Applied(ApplyReport {
        plan: plan_wire(plan),
        generation: number,
        result,
        reason,
        revision: Some(revision.to_string()),
    })
}

/// A `--path` inside the repository: relative, without `..`.
fn units_path(path: Option<&str>) -> Result<String, String> {
    let p = path.unwrap_or(".");
    let ok = Path::new(p)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(p.to_string())
    } else {
        Err(format!(
            "--path {p:?}: name a directory inside the repository (relative, without \"..\")"
        ))
    }
}

/// Loads generation `root`'s units from `root/path`, relative env files and
/// secret sources resolved against `root`; problems come with their
/// FILE:LINE:COL, files named relative to the repository's root.
pub fn load_generation(root: &Path, path: &str) -> Result<UnitSet, String> {
    let dir = root.join(path);
    if !dir.is_dir() {
        return Err(format!("{path}: no such directory in the revision"));
    }
    // Relative env files and secret sources are the repository's.
    let opts = jarvis_unit::LoadOptions {
        base: Some(root.to_path_buf()),
    };
    jarvis_unit::load_dir_with(&dir, &opts).map_err(|diags| {
        let prefix = format!("{}/", root.display());
        let lines: Vec<String> = diags
            .iter()
            .map(|d| d.to_string().replace(&prefix, ""))
            .collect();
        format!(
            "{} problem(s) in {path}; nothing was changed:\n{}",
            diags.len(),
            lines.join("\n")
        )
    })
}

/// At boot: the record, with a switch that was in progress given up, and
/// the active generation's units and directory (none at first).
pub fn boot_set(state_dir: &Path) -> anyhow::Result<(UnitSet, Option<PathBuf>)> {
    let mut rec = Record::load(state_dir)?;
    if rec.recover() {
        tracing::warn!("jarvisd stopped during an apply: back on the generation active before it");
        rec.save(state_dir)?;
    }
    let Some(active) = rec.active() else {
        tracing::info!("no generation yet: starting with no units (jarvisctl apply deploys one)");
        return Ok((UnitSet::default(), None));
    };
    let root = record::dir(state_dir, active.number);
    let set = load_generation(&root, &active.path)
        .map_err(|e| anyhow::anyhow!("generation {} ({}): {e}", active.number, root.display()))?;
    tracing::info!(
        generation = active.number,
        revision = %active.revision,
        units = set.units.len(),
        "running the active generation"
    );
    Ok((set, Some(root)))
}

fn with_devices(rt: &Runtimes, set: UnitSet) -> Vec<(Unit, Devices)> {
    set.units
        .into_values()
        .map(|u| {
            let d = devices_of(rt, &u);
            (u, d)
        })
        .collect()
}

/// Step 1 of an apply (blocking).
fn prepare_new(
    state_dir: &Path,
    rt: &Runtimes,
    repo: Option<String>,
    rev: Option<String>,
    path: Option<String>,
    dry_run: bool,
) -> Outcome {
    let mut rec = match Record::load(state_dir) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    // Without --repo, the active generation's repository, and its units
    // path unless --path says otherwise.
    let (repo, path) = match (repo, rec.active()) {
        (Some(repo), _) => (repo, path),
        (None, Some(g)) => (g.repo.clone(), path.or_else(|| Some(g.path.clone()))),
        (None, None) => {
            return Outcome::Error(
                "no generation yet to take the repository from: pass --repo".into(),
            )
        }
    };
    let path = match units_path(path.as_deref()) {
        Ok(p) => p,
        Err(e) => return Outcome::Error(e),
    };
    let number = rec.next_number();
    let root = if dry_run {
        state_dir.join("generations").join(".dry-run")
    } else {
        record::dir(state_dir, number)
    };
    if root.exists() {
        // Left by a jarvisd that stopped before recording it.
        let _ = std::fs::remove_dir_all(&root);
    }
    let checked = match jarvis_gitops::checkout(
        &state_dir.join("git").join("cache"),
        &repo,
        rev.as_deref(),
        &root,
    ) {
        Ok(c) => c,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let drop_tree = || {
        let _ = std::fs::remove_dir_all(&root);
    };
    let set = match load_generation(&root, &path) {
        Ok(set) => set,
        Err(reason) => {
            drop_tree();
            return Outcome::Invalid {
                number,
                revision: checked.commit,
                reason,
            };
        }
    };
    let defs = jarvis_gitops::definitions(&set, Some(&root));
    let set = with_devices(rt, set);
    if dry_run {
        drop_tree();
    } else {
        rec.begin_new(Generation {
            number,
            revision: checked.commit.clone(),
            date: record::now(),
            state: GenState::Applying,
            path,
            repo,
            activated: 0,
            reason: None,
        });
        if let Err(e) = rec.save(state_dir) {
            drop_tree();
            return Outcome::Error(e.to_string());
        }
    }
    Outcome::Ready(Prepared {
        number,
        revision: checked.commit,
        dry_run,
        set,
        defs,
    })
}

/// Step 1 of a rollback (blocking).
fn prepare_rollback(state_dir: &Path, rt: &Runtimes, number: Option<u64>) -> Outcome {
    let mut rec = match Record::load(state_dir) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let target = match rec.rollback_target(number) {
        Ok(g) => g.clone(),
        Err(e) => return Outcome::Error(e),
    };
    let root = record::dir(state_dir, target.number);
    let set = match load_generation(&root, &target.path) {
        Ok(set) => set,
        Err(reason) => {
            return Outcome::Invalid {
                number: target.number,
                revision: target.revision,
                reason,
            }
        }
    };
    let defs = jarvis_gitops::definitions(&set, Some(&root));
    let set = with_devices(rt, set);
    rec.begin_existing(target.number);
    if let Err(e) = rec.save(state_dir) {
        return Outcome::Error(e.to_string());
    }
    Outcome::Ready(Prepared {
        number: target.number,
        revision: target.revision,
        dry_run: false,
        set,
        defs,
    })
}

/// Applies `f` to the record in `state_dir` and saves it (blocking).
fn update_record(state_dir: &Path, f: impl FnOnce(&mut Record)) -> Result<(), String> {
    let r = Record::load(state_dir).and_then(|mut rec| {
        f(&mut rec);
        rec.save(state_dir)
    });
    r.map_err(|e| {
        tracing::error!(error = %e, "cannot save the generations record");
        e.to_string()
    })
}

impl Daemon {
    /// `apply`, `rollback` and `generations`.
    pub(super) fn apply_request(
        &mut self,
        req: jarvis_proto::Request,
        reply: oneshot::Sender<Reply>,
    ) {
        use jarvis_proto::Request;
        let state_dir = self.cfg.state_dir.clone();
        if let Request::Generations = req {
            let (tx, rx) = oneshot::channel();
            let _ = reply.send(Reply::Later(rx));
            tokio::spawn(async move {
                let r = blocking(move || Record::load(&state_dir)).await;
                let _ = tx.send(match r {
                    Ok(rec) => Response::Generations {
                        generations: rec
                            .generations
                            .iter()
                            .map(|g| GenerationInfo {
                                number: g.number,
                                revision: g.revision.clone(),
                                date: g.date.clone(),
                                state: g.state.as_str().to_string(),
                                reason: g.reason.clone(),
                            })
                            .collect(),
                    },
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                });
            });
            return;
        }
        let refused = if let Source::Units(dir) = &self.cfg.source {
            Some(format!(
                "jarvisd runs the units directory {} (--units); start it without --units to deploy generations from git",
                dir.display()
            ))
        } else if let Some(a) = &self.apply {
            Some(format!(
                "an apply is in progress (generation {}); try again when it is over",
                a.number
            ))
        } else if self.core.is_shutting_down() {
            Some("jarvisd is shutting down".into())
        } else {
            None
        };
        if let Some(message) = refused {
            let _ = reply.send(Reply::Now(Response::Error { message }));
            return;
        }
        let (tx, rx) = oneshot::channel();
        let _ = reply.send(Reply::Later(rx));
        self.apply_serial += 1;
        let serial = self.apply_serial;
        let rt = self.cfg.runtime.clone();
        let (timeout_ms, work): (u64, Box<dyn FnOnce() -> Outcome + Send>) = match req {
            Request::Apply {
                repo,
                rev,
                path,
                dry_run,
                timeout_ms,
            } => (
                timeout_ms,
                Box::new(move || prepare_new(&state_dir, &rt, repo, rev, path, dry_run)),
            ),
            Request::Rollback { number, timeout_ms } => (
                timeout_ms,
                Box::new(move || prepare_rollback(&state_dir, &rt, number)),
            ),
            _ => unreachable!("only apply, rollback and generations come here"),
        };
        self.apply = Some(InFlight {
            serial,
            reply: tx,
            timeout: Duration::from_millis(timeout_ms),
            timer: 0,
            number: 0,
            revision: String::new(),
            phase: Phase::Preparing,
        });
        let msgs = self.tx.clone();
        tokio::spawn(async move {
            let outcome = blocking(work).await;
            let _ = msgs.send(Msg::Apply(ApplyMsg::Prepared { serial, outcome }));
        });
    }

    /// The set of a generation about to be switched to, when it is the
    /// first since a boot that left runs alone (the active generation did
    /// not load): the loop boots it first, as at a start, so those runs are
    /// re-adopted rather than started a second time.
    pub(super) fn readopting(&self, m: &ApplyMsg) -> Option<(Vec<(Unit, Devices)>, Definitions)> {
        if !self.unsupervised || !self.core.names().is_empty() {
            return None;
        }
        let current = self.apply.as_ref().map(|a| a.serial);
        match m {
            ApplyMsg::Prepared {
                serial,
                outcome: Outcome::Ready(p),
            } if current == Some(*serial) && !p.dry_run => Some((p.set.clone(), p.defs.clone())),
            _ => None,
        }
    }

    /// A step of the apply in progress has finished.
    pub(super) fn apply_msg(&mut self, m: ApplyMsg) {
        let current = self.apply.as_ref().map(|a| a.serial);
        match m {
            ApplyMsg::Prepared { serial, outcome } if current == Some(serial) => {
                self.prepared(outcome)
            }
            ApplyMsg::Restore { serial, set } if current == Some(serial) => {
                let Some(Phase::Restoring { defs, .. }) = self.apply.as_ref().map(|a| &a.phase)
                else {
                    return;
                };
                let defs = defs.clone();
                self.switch_set(set, defs);
                if let Some(InFlight {
                    phase: Phase::Restoring { restored, .. },
                    ..
                }) = self.apply.as_mut()
                {
                    *restored = true;
                }
                self.arm_timeout();
            }
            ApplyMsg::Timeout { serial, timer }
                if current == Some(serial)
                    && self.apply.as_ref().map(|a| a.timer) == Some(timer) =>
            {
                self.gate_timeout()
            }
            ApplyMsg::Finished { serial } if current == Some(serial) => self.apply = None,
            _ => {}
        }
    }

    fn prepared(&mut self, outcome: Outcome) {
        let Some(mut a) = self.apply.take() else {
            return;
        };
        let p = match outcome {
            Outcome::Error(message) => {
                let _ = a.reply.send(Response::Error { message });
                return;
            }
            Outcome::Invalid {
                number,
                revision,
                reason,
            } => {
                let _ = a.reply.send(report(
                    &Plan::default(),
                    number,
                    &revision,
                    ApplyResult::Invalid,
                    Some(reason),
                ));
                return;
            }
            Outcome::Ready(p) => p,
        };
        let plan = jarvis_gitops::plan(&self.defs, &p.defs);
        if p.dry_run {
            let _ = a.reply.send(report(
                &plan,
                p.number,
                &p.revision,
                ApplyResult::Planned,
                None,
            ));
            return;
        }
        tracing::info!(
            generation = p.number,
            revision = %p.revision,
            start = ?plan.start,
            restart = ?plan.restart,
            stop = ?plan.stop,
            unchanged = plan.unchanged.len(),
            "applying"
        );
        a.number = p.number;
        a.revision = p.revision;
        let before: Vec<Unit> = self
            .core
            .names()
            .iter()
            .filter_map(|n| self.core.unit(n).cloned())
            .collect();
        let before_defs = self.defs.clone();
        let waiting = plan.changed().cloned().collect();
        a.phase = Phase::Gate {
            plan,
            before,
            before_defs,
            waiting,
        };
        self.apply = Some(a);
        self.switch_set(p.set, p.defs);
        self.arm_timeout();
        self.check_gate();
    }

    /// Hands `set` to the core as `up` does, units of an unchanged
    /// definition with the `Unit` the core has.
    fn switch_set(&mut self, set: Vec<(Unit, Devices)>, defs: Definitions) {
        let set = self.converge(set, &defs);
        self.defs = defs;
        // The core answers as it answers `up`; the apply answers for it.
        let (id, _ignored) = self.pending();
        self.feed(Input::Ask {
            id,
            ask: Ask::Up(Ok(set)),
        });
    }

    fn arm_timeout(&mut self) {
        let Some(a) = &mut self.apply else { return };
        a.timer += 1;
        let (serial, timer, after, tx) = (a.serial, a.timer, a.timeout, self.tx.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Msg::Apply(ApplyMsg::Timeout { serial, timer }));
        });
    }

    /// How the units in `names` stand against the gate.
    fn gate(&self, names: &[String]) -> Gate {
        let mut pending = None;
        for name in names {
            let Some(s) = self.core.slot(name) else {
                return Gate::Failed(format!("{name} is gone"));
            };
            let why = || {
                s.st.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            };
            match s.st.state {
                State::Running
                    if s.unit.health.is_none() || s.st.health == Some(Health::Healthy) => {}
                State::Running if s.st.health == Some(Health::Unhealthy) => {
                    return Gate::Failed(format!("{name} is unhealthy{}", why()))
                }
                State::Exited if s.st.last_exit.is_some_and(|x| x.success()) => {}
                State::Exited => {
                    let how = s.st.last_exit.map(|x| x.describe()).unwrap_or_default();
                    return Gate::Failed(format!("{name} {how}{}", why()));
                }
                State::Failed | State::Stopped => {
                    return Gate::Failed(format!("{name} is {}{}", s.st.state.as_str(), why()))
                }
                st => {
                    if pending.is_none() {
                        let health = match (st, s.st.health) {
                            (State::Running, Some(h)) => format!(" (health: {})", health_word(h)),
                            _ => String::new(),
                        };
                        pending = Some(format!("{name} is {}{health}{}", st.as_str(), why()));
                    }
                }
            }
        }
        match pending {
            Some(p) => Gate::Pending(p),
            None => Gate::Passed,
        }
    }

    /// After every input: has the apply in progress passed or failed its
    /// gate?
    pub(super) fn check_gate(&mut self) {
        let verdict = match self.apply.as_ref().map(|a| &a.phase) {
            Some(Phase::Gate { waiting, .. }) => self.gate(waiting),
            Some(Phase::Restoring {
                waiting,
                restored: true,
                ..
            }) => self.gate(waiting),
            _ => return,
        };
        match verdict {
            Gate::Pending(_) => {}
            Gate::Passed => self.gate_passed(),
            Gate::Failed(reason) => self.gate_failed(reason),
        }
    }

    fn gate_timeout(&mut self) {
        let waiting = match self.apply.as_ref().map(|a| &a.phase) {
            Some(Phase::Gate { waiting, .. }) => waiting.clone(),
            Some(Phase::Restoring {
                waiting,
                restored: true,
                ..
            }) => waiting.clone(),
            _ => return,
        };
        let timeout = self.apply.as_ref().map(|a| a.timeout).unwrap_or_default();
        let reason = match self.gate(&waiting) {
            Gate::Passed => return self.gate_passed(),
            Gate::Failed(r) => r,
            Gate::Pending(p) => format!(
                "{p}, not ready within {}",
                humantime::format_duration(timeout)
            ),
        };
        self.gate_failed(reason);
    }

    fn gate_passed(&mut self) {
        let Some(a) = self.apply.as_mut() else { return };
        let phase = std::mem::replace(&mut a.phase, Phase::Finishing);
        let (number, revision, serial) = (a.number, a.revision.clone(), a.serial);
        let state_dir = self.cfg.state_dir.clone();
        let (response, save): (Response, Option<u64>) = match phase {
            Phase::Gate { plan, .. } => {
                tracing::info!(generation = number, "applied: the generation is active");
                (
                    report(&plan, number, &revision, ApplyResult::Applied, None),
                    Some(number),
                )
            }
            Phase::Restoring { plan, reason, .. } => (
                report(
                    &plan,
                    number,
                    &revision,
                    ApplyResult::RolledBack,
                    Some(reason),
                ),
                None,
            ),
            _ => return,
        };
        self.finish(serial, response, move || match save {
            Some(n) => update_record(&state_dir, |rec| rec.switch(n)).map_err(|e| {
                format!(
                    "generation {n} passed its health gate and runs, but could not be recorded active ({e}): \
                     a restart of jarvisd goes back to the generation before; apply it again"
                )
            }),
            None => Ok(()),
        });
    }

    fn gate_failed(&mut self, reason: String) {
        let Some(a) = self.apply.as_mut() else { return };
        let serial = a.serial;
        let number = a.number;
        let revision = a.revision.clone();
        match std::mem::replace(&mut a.phase, Phase::Finishing) {
            Phase::Gate {
                plan,
                before,
                before_defs,
                ..
            } => {
                tracing::warn!(generation = number, %reason, "the health gate failed: putting the generation before back");
                self.cfg.events.push(
                    None,
                    jarvis_proto::EventKind::Rollback,
                    format!(
                        "generation {number} ({}) failed its health gate: {reason}; putting the generation before back",
                        short_revision(&revision)
                    ),
                );
                let back = jarvis_gitops::plan(&self.defs, &before_defs);
                let waiting = back.changed().cloned().collect();
                a.phase = Phase::Restoring {
                    plan,
                    reason: reason.clone(),
                    waiting,
                    restored: false,
                    defs: before_defs,
                };
                let (state_dir, rt, tx) = (
                    self.cfg.state_dir.clone(),
                    self.cfg.runtime.clone(),
                    self.tx.clone(),
                );
                tokio::spawn(async move {
                    let set = blocking(move || {
                        // Logged if it fails: the generation before is
                        // active in the record either way.
                        let _ = update_record(&state_dir, |rec| {
                            rec.give_up(number, GenState::RolledBack, &reason)
                        });
                        before
                            .into_iter()
                            .map(|u| {
                                let d = devices_of(&rt, &u);
                                (u, d)
                            })
                            .collect()
                    })
                    .await;
                    let _ = tx.send(Msg::Apply(ApplyMsg::Restore { serial, set }));
                });
            }
            Phase::Restoring {
                plan,
                reason: first,
                ..
            } => {
                tracing::error!(%reason, "the generation before did not come back either");
                let response = report(
                    &plan,
                    number,
                    &revision,
                    ApplyResult::RolledBack,
                    Some(format!(
                        "{first}; the generation before is back, but not all of it runs: {reason}"
                    )),
                );
                self.finish(serial, response, || Ok(()));
            }
            other => a.phase = other,
        }
    }

    /// Runs `then` off the loop, answers (with `then`'s error, if it has
    /// one), and lets the next apply begin.
    fn finish(
        &mut self,
        serial: u64,
        response: Response,
        then: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) {
        let Some(a) = self.apply.as_mut() else { return };
        let (reply, _) = oneshot::channel();
        let reply = std::mem::replace(&mut a.reply, reply);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let response = match blocking(then).await {
                Ok(()) => response,
                Err(message) => Response::Error { message },
            };
            let _ = reply.send(response);
            let _ = tx.send(Msg::Apply(ApplyMsg::Finished { serial }));
        });
    }

    /// `set` with each unit whose definition is the one the core runs
    /// replaced by the core's `Unit`, so the core leaves it alone (a
    /// generation's paths differ from the one before's).
    pub(super) fn converge(
        &self,
        set: Vec<(Unit, Devices)>,
        defs: &Definitions,
    ) -> Vec<(Unit, Devices)> {
        set.into_iter()
            .map(|(u, d)| {
                match (
                    self.defs.get(&u.name),
                    defs.get(&u.name),
                    self.core.unit(&u.name),
                ) {
                    (Some(now), Some(next), Some(cur)) if now == next => (cur.clone(), d),
                    _ => (u, d),
                }
            })
            .collect()
    }

    /// Whether an apply holds the unit set (then `up` waits its turn).
    pub(super) fn applying(&self) -> bool {
        self.apply.is_some()
    }
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

/// The units a boot finds running of which the set has none (a unit an
/// apply added before jarvisd was killed, or whose file went while it was
/// away): their names, from the run records (blocking).
pub fn orphans(run_dir: &Path, known: &std::collections::BTreeSet<String>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".run.json"))
                .filter(|n| !n.starts_with('.'))
                .map(str::to_string)
        })
        .filter(|n| !known.contains(n))
        .collect();
    names.sort();
    names
}

/// The first 12 characters of a commit id, as git shows it short.
fn short_revision(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_paths_stay_in_the_repository() {
        assert_eq!(units_path(None).unwrap(), ".");
        assert_eq!(units_path(Some("units")).unwrap(), "units");
        assert_eq!(units_path(Some("./a/b")).unwrap(), "./a/b");
        assert!(units_path(Some("../x")).is_err());
        assert!(units_path(Some("/etc")).is_err());
        assert!(units_path(Some("a/../../b")).is_err());
    }

    #[test]
    fn invalid_units_are_reported_relative_to_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("units")).unwrap();
        std::fs::write(
            dir.path().join("units/web.toml"),
            "[native]\ncommand = [\"/bin/true\"]\nbogus = 1\n",
        )
        .unwrap();
        let err = load_generation(dir.path(), "units").unwrap_err();
        assert!(err.contains("units/web.toml:3:1"), "{err}");
        assert!(!err.contains(&dir.path().display().to_string()), "{err}");
        assert!(load_generation(dir.path(), "nope").is_err());
    }

    #[test]
    fn orphans_are_runs_of_units_not_in_the_set() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a.run.json",
            "b.run.json",
            "b.exit.json",
            ".x.run.json.partial",
        ] {
            std::fs::write(dir.path().join(f), "{}").unwrap();
        }
        let set = ["a".to_string()].into();
        assert_eq!(orphans(dir.path(), &set), ["b"]);
        assert!(orphans(&dir.path().join("none"), &set).is_empty());
    }
}
