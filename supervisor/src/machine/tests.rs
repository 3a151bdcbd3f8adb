use std::time::{Duration, Instant};

use jarvis_unit::{Condition, Dependency, Exec, Native, OnUnhealthy, Probe, RestartPolicy, Unit};

use super::*;

fn unit(edit: impl FnOnce(&mut Unit)) -> Unit {
    let mut u = Unit::new(
        "svc",
        Exec::Native(Native {
            command: vec!["/bin/true".into()],
            user: None,
            group: None,
            supplementary_groups: vec![],
            working_dir: None,
        }),
    );
    edit(&mut u);
    u
}

fn health(
    retries: u32,
    start_period: Duration,
    on_unhealthy: OnUnhealthy,
) -> Option<jarvis_unit::Health> {
    Some(jarvis_unit::Health {
        probe: Probe::Tcp("127.0.0.1:1".into()),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries,
        start_period,
        on_unhealthy,
    })
}

const CRASH: ExitInfo = ExitInfo {
    code: Some(1),
    signal: None,
    oom_killed: false,
};
const CLEAN: ExitInfo = ExitInfo {
    code: Some(0),
    signal: None,
    oom_killed: false,
};
const KILLED: ExitInfo = ExitInfo {
    code: None,
    signal: Some(9),
    oom_killed: false,
};

/// Drives a unit through events at given times, checking what comes out.
struct Harness {
    unit: Unit,
    s: UnitState,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new(unit: Unit) -> Self {
        let t0 = Instant::now();
        Harness {
            unit,
            s: UnitState::default(),
            t0,
            now: t0,
        }
    }
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_millis(ms);
        self
    }
    fn ev(&mut self, e: Event) -> Vec<Effect> {
        Machine {
            unit: &self.unit,
            now: self.now,
        }
        .step(&mut self.s, e)
    }
    /// Start request, ready dependencies, spawned: running.
    fn run(&mut self, pid: i32) {
        self.ev(Event::Start);
        let fx = self.ev(Event::Deps(Readiness::Ready));
        let gen = self.s.gen;
        assert_eq!(fx, vec![Effect::Spawn { gen }]);
        self.ev(Event::Spawned { gen, pid });
        assert_eq!(self.s.state, State::Running);
    }
}

#[test]
fn start_waits_for_deps_then_spawns() {
    let mut h = Harness::new(unit(|_| {}));
    assert_eq!(h.ev(Event::Start), vec![]);
    assert_eq!(h.s.state, State::Waiting);
    assert_eq!(
        h.ev(Event::Deps(Readiness::Pending(
            "waiting for db (healthy)".into()
        ))),
        vec![]
    );
    assert_eq!(h.s.reason.as_deref(), Some("waiting for db (healthy)"));
    assert_eq!(
        h.ev(Event::Deps(Readiness::Ready)),
        vec![Effect::Spawn { gen: 1 }]
    );
    assert_eq!(h.s.state, State::Starting);
    assert_eq!(h.ev(Event::Spawned { gen: 1, pid: 42 }), vec![]);
    assert_eq!((h.s.state, h.s.pid), (State::Running, Some(42)));
}

#[test]
fn blocked_dependency_fails_the_unit_with_the_reason() {
    let mut h = Harness::new(unit(|_| {}));
    h.ev(Event::Start);
    h.ev(Event::Deps(Readiness::Blocked(
        "dependency db failed: exited with code 2".into(),
    )));
    assert_eq!(h.s.state, State::Failed);
    assert!(h.s.reason.as_deref().unwrap().contains("db failed"));
}

#[test]
fn restart_delay_doubles_up_to_the_cap() {
    let mut h = Harness::new(unit(|u| {
        u.restart.delay = Duration::from_millis(100);
        u.restart.max_delay = Duration::from_millis(300);
        u.restart.burst = 100;
    }));
    h.run(1);
    let mut delays = vec![];
    for i in 0..4 {
        let gen = h.s.gen;
        let fx = h.ev(Event::Exited { gen, exit: CRASH });
        let after = fx
            .iter()
            .find_map(|e| match e {
                Effect::Timer {
                    kind: TimerKind::RestartDelay,
                    after,
                    ..
                } => Some(*after),
                _ => None,
            })
            .expect("a restart timer");
        assert!(fx.contains(&Effect::StopHealth));
        delays.push(after.as_millis());
        assert_eq!(h.s.state, State::Starting);
        let fx = h.ev(Event::Timer {
            gen,
            kind: TimerKind::RestartDelay,
        });
        assert_eq!(fx, vec![Effect::Spawn { gen: gen + 1 }]);
        h.ev(Event::Spawned {
            gen: gen + 1,
            pid: 10 + i,
        });
    }
    assert_eq!(delays, vec![100, 200, 300, 300]);
    assert_eq!(h.s.restarts, 4);
}

#[test]
fn zero_delay_restarts_at_once() {
    let mut h = Harness::new(unit(|u| u.restart.delay = Duration::ZERO));
    h.run(1);
    let fx = h.ev(Event::Exited {
        gen: 1,
        exit: KILLED,
    });
    assert_eq!(fx, vec![Effect::StopHealth, Effect::Spawn { gen: 2 }]);
    assert_eq!(h.s.restarts, 1);
    assert_eq!(h.s.reason.as_deref(), Some("restarted: killed by SIGKILL"));
}

#[test]
fn crash_loop_fails_after_burst_starts() {
    let mut h = Harness::new(unit(|u| {
        u.restart.delay = Duration::ZERO;
        u.restart.burst = 3;
        u.restart.interval = Duration::from_secs(10);
    }));
    h.run(1);
    let mut spawns = 1;
    for t in 1..10u64 {
        h.at(t * 10);
        let gen = h.s.gen;
        let fx = h.ev(Event::Exited { gen, exit: CRASH });
        if let Some(Effect::Spawn { gen }) = fx.last() {
            spawns += 1;
            h.ev(Event::Spawned {
                gen: *gen,
                pid: 100 + t as i32,
            });
        } else {
            break;
        }
    }
    assert_eq!(spawns, 3);
    assert_eq!(h.s.state, State::Failed);
    assert!(
        h.s.reason.as_deref().unwrap().contains("burst"),
        "{:?}",
        h.s.reason
    );
    assert_eq!(
        h.s.restarts, 2,
        "two restarts happened; the third was refused"
    );
}

#[test]
fn starts_outside_the_interval_do_not_count() {
    let mut h = Harness::new(unit(|u| {
        u.restart.delay = Duration::ZERO;
        u.restart.burst = 2;
        u.restart.interval = Duration::from_millis(100);
    }));
    h.run(1);
    for t in 1..6u64 {
        h.at(t * 100);
        let gen = h.s.gen;
        let fx = h.ev(Event::Exited { gen, exit: CRASH });
        let Some(Effect::Spawn { gen }) = fx.last() else {
            panic!("stopped restarting at {t}: {:?}", h.s.reason)
        };
        h.ev(Event::Spawned { gen: *gen, pid: 1 });
    }
    assert_eq!(h.s.state, State::Running);
}

#[test]
fn policies_decide_on_exit() {
    for (policy, exit, state) in [
        (RestartPolicy::Never, CRASH, State::Failed),
        (RestartPolicy::Never, CLEAN, State::Exited),
        (RestartPolicy::OnFailure, CLEAN, State::Exited),
        (RestartPolicy::OnFailure, CRASH, State::Starting),
        (RestartPolicy::OnFailure, KILLED, State::Starting),
        (RestartPolicy::Always, CLEAN, State::Starting),
    ] {
        let mut h = Harness::new(unit(|u| u.restart.policy = policy));
        h.run(1);
        h.ev(Event::Exited { gen: 1, exit });
        assert_eq!(h.s.state, state, "{policy:?} {exit:?}");
        assert_eq!(h.s.last_exit, Some(exit));
    }
}

#[test]
fn oom_is_reported_in_the_reason() {
    let mut h = Harness::new(unit(|u| u.restart.policy = RestartPolicy::Never));
    h.run(1);
    let oom = ExitInfo {
        oom_killed: true,
        ..KILLED
    };
    h.ev(Event::Exited { gen: 1, exit: oom });
    assert_eq!(h.s.state, State::Failed);
    let reason = h.s.reason.clone().unwrap();
    assert!(
        reason.contains("SIGKILL") && reason.contains("OOM"),
        "{reason}"
    );
    assert_eq!(oom.shell_code(), 137);
}

#[test]
fn stop_signals_then_kills_after_the_timeout() {
    let mut h = Harness::new(unit(|u| u.stop.timeout = Duration::from_secs(3)));
    h.run(7);
    let fx = h.ev(Event::Stop);
    assert_eq!(
        fx,
        vec![
            Effect::StopHealth,
            Effect::Signal { signal: 15 },
            Effect::Timer {
                gen: 1,
                kind: TimerKind::StopTimeout,
                after: Duration::from_secs(3)
            }
        ]
    );
    assert_eq!(h.s.state, State::Stopping);
    assert_eq!(
        h.ev(Event::Timer {
            gen: 1,
            kind: TimerKind::StopTimeout
        }),
        vec![Effect::KillAll]
    );
    let fx = h.ev(Event::Exited {
        gen: 1,
        exit: KILLED,
    });
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Spawn { .. })),
        "a requested stop is final: {fx:?}"
    );
    assert_eq!(h.s.state, State::Stopped);
    assert_eq!(h.s.restarts, 0, "a requested stop is not a restart");
}

#[test]
fn stop_during_restart_delay_cancels_it() {
    let mut h = Harness::new(unit(|_| {}));
    h.run(1);
    h.ev(Event::Exited {
        gen: 1,
        exit: CRASH,
    });
    assert_eq!(h.s.state, State::Starting);
    h.ev(Event::Stop);
    assert_eq!(h.s.state, State::Stopped);
    assert_eq!(
        h.ev(Event::Timer {
            gen: 1,
            kind: TimerKind::RestartDelay
        }),
        vec![]
    );
}

#[test]
fn stop_while_spawning_stops_once_spawned() {
    let mut h = Harness::new(unit(|_| {}));
    h.ev(Event::Start);
    h.ev(Event::Deps(Readiness::Ready));
    assert_eq!(h.ev(Event::Stop), vec![]);
    let fx = h.ev(Event::Spawned { gen: 1, pid: 5 });
    assert!(fx.contains(&Effect::Signal { signal: 15 }));
    assert_eq!(h.s.state, State::Stopping);
}

#[test]
fn restart_request_stops_then_starts_fresh() {
    let mut h = Harness::new(unit(|_| {}));
    h.run(1);
    h.ev(Event::Restart);
    assert_eq!(h.s.state, State::Stopping);
    h.ev(Event::Exited {
        gen: 1,
        exit: KILLED,
    });
    assert_eq!(h.s.state, State::Waiting, "goes through dependencies again");
    assert_eq!(
        h.ev(Event::Deps(Readiness::Ready)),
        vec![Effect::Spawn { gen: 2 }]
    );
}

#[test]
fn stale_events_are_ignored() {
    let mut h = Harness::new(unit(|_| {}));
    h.run(1);
    assert_eq!(
        h.ev(Event::Exited {
            gen: 0,
            exit: CRASH
        }),
        vec![]
    );
    assert_eq!(
        h.ev(Event::HealthResult {
            gen: 0,
            ok: false,
            detail: String::new()
        }),
        vec![]
    );
    assert_eq!(h.s.state, State::Running);
}

#[test]
fn spawn_failure_fails_without_restart() {
    let mut h = Harness::new(unit(|u| u.restart.policy = RestartPolicy::Always));
    h.ev(Event::Start);
    h.ev(Event::Deps(Readiness::Ready));
    h.ev(Event::SpawnFailed {
        gen: 1,
        reason: "user \"nope\" does not exist".into(),
    });
    assert_eq!(h.s.state, State::Failed);
    assert!(h.s.reason.as_deref().unwrap().contains("nope"));
}

#[test]
fn health_becomes_healthy_and_failures_restart() {
    let mut h = Harness::new(unit(|u| {
        u.health = health(2, Duration::ZERO, OnUnhealthy::Restart)
    }));
    h.ev(Event::Start);
    h.ev(Event::Deps(Readiness::Ready));
    assert_eq!(
        h.ev(Event::Spawned { gen: 1, pid: 3 }),
        vec![Effect::StartHealth { gen: 1 }]
    );
    assert_eq!(h.s.health, Some(Health::Starting));
    h.ev(Event::HealthResult {
        gen: 1,
        ok: true,
        detail: "200".into(),
    });
    assert_eq!(h.s.health, Some(Health::Healthy));
    assert_eq!(
        h.ev(Event::HealthResult {
            gen: 1,
            ok: false,
            detail: "refused".into()
        }),
        vec![]
    );
    let fx = h.ev(Event::HealthResult {
        gen: 1,
        ok: false,
        detail: "refused".into(),
    });
    assert!(fx.contains(&Effect::Signal { signal: 15 }), "{fx:?}");
    assert_eq!(h.s.health, Some(Health::Unhealthy));
    let fx = h.ev(Event::Exited {
        gen: 1,
        exit: KILLED,
    });
    assert!(fx.contains(&Effect::Spawn { gen: 2 }), "{fx:?}");
    assert_eq!(h.s.restarts, 1);
    assert!(h.s.reason.as_deref().unwrap().contains("unhealthy"));
}

#[test]
fn failures_in_the_start_period_do_not_count() {
    let mut h = Harness::new(unit(|u| {
        u.health = health(1, Duration::from_secs(5), OnUnhealthy::Restart)
    }));
    h.run(1);
    h.at(1000);
    assert_eq!(
        h.ev(Event::HealthResult {
            gen: 1,
            ok: false,
            detail: String::new()
        }),
        vec![]
    );
    assert_eq!(h.s.health, Some(Health::Starting));
    h.at(6000);
    let fx = h.ev(Event::HealthResult {
        gen: 1,
        ok: false,
        detail: String::new(),
    });
    assert!(fx.contains(&Effect::Signal { signal: 15 }));
}

#[test]
fn ignore_keeps_running_when_unhealthy() {
    let mut h = Harness::new(unit(|u| {
        u.health = health(1, Duration::ZERO, OnUnhealthy::Ignore)
    }));
    h.run(1);
    assert_eq!(
        h.ev(Event::HealthResult {
            gen: 1,
            ok: false,
            detail: "x".into()
        }),
        vec![]
    );
    assert_eq!(
        (h.s.state, h.s.health),
        (State::Running, Some(Health::Unhealthy))
    );
}

#[test]
fn readiness_follows_conditions() {
    let web = unit(|u| {
        u.depends_on = vec![
            Dependency {
                unit: "db".into(),
                condition: Condition::Healthy,
            },
            Dependency {
                unit: "migrate".into(),
                condition: Condition::Completed,
            },
        ]
    });
    let mut db = UnitState {
        state: State::Running,
        wanted: true,
        health: Some(Health::Starting),
        ..Default::default()
    };
    let mut migrate = UnitState {
        state: State::Running,
        wanted: true,
        ..Default::default()
    };
    let check = |db: &UnitState, m: &UnitState| {
        readiness(&web, |n| match n {
            "db" => Some(db),
            "migrate" => Some(m),
            _ => None,
        })
    };
    assert_eq!(
        check(&db, &migrate),
        Readiness::Pending("waiting for db (healthy), migrate (completed)".into())
    );
    db.health = Some(Health::Healthy);
    migrate.state = State::Exited;
    migrate.last_exit = Some(CLEAN);
    assert_eq!(check(&db, &migrate), Readiness::Ready);
    migrate.state = State::Failed;
    migrate.last_exit = Some(CRASH);
    migrate.reason = Some("exited with code 1".into());
    assert_eq!(
        check(&db, &migrate),
        Readiness::Blocked("dependency migrate failed: exited with code 1".into())
    );
}

#[test]
fn backoff_is_capped_and_does_not_overflow() {
    let d = Duration::from_millis(100);
    let max = Duration::from_secs(30);
    assert_eq!(backoff_delay(d, max, 0), d);
    assert_eq!(backoff_delay(d, max, 3), Duration::from_millis(800));
    assert_eq!(backoff_delay(d, max, 200), max);
}

#[test]
fn a_withdrawn_unit_stops_and_waits() {
    let mut h = Harness::new(unit(|_| {}));
    h.run(1);
    let fx = h.ev(Event::Withdraw {
        reason: "waiting for device 10c4:ea60".into(),
    });
    assert!(fx.contains(&Effect::Signal { signal: 15 }), "{fx:?}");
    assert_eq!(h.s.state, State::Stopping);
    h.ev(Event::Exited {
        gen: 1,
        exit: KILLED,
    });
    assert_eq!(h.s.state, State::Waiting);
    assert_eq!(h.s.reason.as_deref(), Some("waiting for device 10c4:ea60"));
    assert_eq!(h.s.restarts, 0, "not a crash");
    // The device is back: dependencies and devices ready, it starts.
    assert_eq!(
        h.ev(Event::Deps(Readiness::Ready)),
        vec![Effect::Spawn { gen: 2 }]
    );
}

#[test]
fn a_withdraw_during_a_restart_delay_waits_at_once() {
    let mut h = Harness::new(unit(|_| {}));
    h.run(1);
    h.ev(Event::Exited {
        gen: 1,
        exit: CRASH,
    });
    assert_eq!(h.s.state, State::Starting);
    h.ev(Event::Withdraw {
        reason: "gone".into(),
    });
    assert_eq!(h.s.state, State::Waiting);
    assert_eq!(
        h.ev(Event::Timer {
            gen: 1,
            kind: TimerKind::RestartDelay
        }),
        vec![]
    );
}

#[test]
fn a_deferred_spawn_goes_back_to_waiting() {
    let mut h = Harness::new(unit(|_| {}));
    h.ev(Event::Start);
    h.ev(Event::Deps(Readiness::Ready));
    h.ev(Event::SpawnDeferred {
        gen: 1,
        reason: "waiting for device usb 10c4:ea60".into(),
    });
    assert_eq!(h.s.state, State::Waiting);
    assert_eq!(
        h.ev(Event::Deps(Readiness::Ready)),
        vec![Effect::Spawn { gen: 2 }]
    );
}
