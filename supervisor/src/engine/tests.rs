//! Table-driven tests of the core: each case is a unit set and a script of
//! inputs, each input with the outputs it must produce (in a short
//! notation, see [`brief`]; notes, saves and state-change records are left
//! out), then the states the units must end in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jarvis_proto::Response;
use jarvis_unit::{
    Condition, Dependency, Exec, Gpu, GpuWant, Health as HealthCheck, Native, OnUnhealthy, Probe,
    Unit,
};

use super::machine::{Event, ExitInfo, TimerKind};
use super::*;
use crate::placement::{GpuInfo, Vendor};

pub(super) fn native(name: &str) -> Unit {
    Unit::new(name, Exec::Native(Native::new(vec!["/bin/true".into()])))
}

pub(super) fn dep(u: &mut Unit, on: &str, condition: Condition) {
    u.depends_on.push(Dependency {
        unit: on.into(),
        condition,
    });
}

pub(super) fn checked(u: &mut Unit) {
    u.health = Some(HealthCheck {
        probe: Probe::Tcp("127.0.0.1:1".into()),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        retries: 1,
        start_period: Duration::ZERO,
        start_interval: Duration::from_secs(1),
        on_unhealthy: OnUnhealthy::Restart,
    });
}

pub(super) fn gpu_unit(name: &str, min_vram_gib: u64) -> Unit {
    let mut u = native(name);
    u.gpu = Some(Gpu {
        want: GpuWant::Nvidia,
        count: 1,
        min_vram: min_vram_gib << 30,
        ..Gpu::default()
    });
    u
}

pub(super) fn h200() -> GpuInfo {
    GpuInfo {
        id: "GPU-h200".into(),
        vendor: Vendor::Nvidia,
        index: 0,
        minor: Some(0),
        memory_total: 141 << 30,
    }
}

const CRASH: ExitInfo = ExitInfo {
    code: Some(1),
    signal: None,
    oom_killed: false,
};
const TERM: ExitInfo = ExitInfo {
    code: None,
    signal: Some(15),
    oom_killed: false,
};

/// An output in short: `spawn web`, `signal web`, `timer web restart 100ms`,
/// `reply 7 done: ...`; `None` for outputs the tables leave out.
fn brief(o: &Output) -> Option<String> {
    Some(match o {
        Output::Spawn { name, unit, .. } => format!("spawn {name} as {}", unit.kind().as_str()),
        Output::Watch { name, .. } => format!("watch {name}"),
        Output::Signal { name, signal, .. } => format!("signal {name} {signal}"),
        Output::KillAll { name } => format!("killall {name}"),
        Output::Sweep { name } => format!("sweep {name}"),
        // The GPU checks' timers of GPU units are left out of the tables:
        // `gpu_checks_*` below pin them.
        Output::Timer {
            kind: TimerKind::GpuCheck,
            ..
        } => return None,
        Output::Timer {
            name, kind, after, ..
        } => {
            let k = match kind {
                TimerKind::RestartDelay => "restart",
                TimerKind::StopTimeout => "stop-timeout",
                TimerKind::HealthProbe => "probe",
                TimerKind::GpuCheck => "gpu-check",
            };
            format!("timer {name} {k} {}", humantime::format_duration(*after))
        }
        Output::Probe { name, .. } => format!("probe {name}"),
        Output::GpuCheck {
            name, placement, ..
        } => format!("gpu-check {name} on {}", placement.ids().join(",")),
        Output::Remove { name } => format!("remove {name}"),
        Output::Reply { id, response } => format!(
            "reply {id} {}",
            match response {
                Response::Done { .. } => "done".to_string(),
                Response::Error { message } => format!("error: {message}"),
                Response::Up(r) => format!(
                    "up +{:?} ~{:?} -{:?} ={:?}",
                    r.started, r.restarted, r.stopped, r.unchanged
                ),
                Response::Wait(w) => format!("wait ok={}", w.ok),
                Response::BenchPlan(_) => "plan".to_string(),
                _ => "other".to_string(),
            }
        ),
        Output::Done => "done".into(),
        Output::Note { .. } | Output::Save(_) | Output::Changed { .. } | Output::Event { .. } => {
            return None
        }
    })
}

/// Drives a core by hand; the clock moves only when told.
pub(super) struct Rig {
    pub sv: Supervisor,
    pub now: Instant,
}

impl Rig {
    pub fn boot(units: Vec<Unit>, gpus: Vec<GpuInfo>) -> (Rig, Vec<Output>) {
        Rig::boot_with(units, gpus, Persisted::default())
    }

    pub fn boot_with(units: Vec<Unit>, gpus: Vec<GpuInfo>, saved: Persisted) -> (Rig, Vec<Output>) {
        let t0 = Instant::now();
        let mut rig = Rig {
            sv: Supervisor::new(saved, BTreeMap::new()),
            now: t0,
        };
        let boot = units
            .into_iter()
            .map(|unit| BootUnit {
                unit,
                found: Found::Nothing,
                devices: Devices::Present(vec![]),
            })
            .collect();
        let out = rig.sv.handle(Input::Boot(boot, gpus), t0);
        (rig, out)
    }

    pub fn gen(&self, name: &str) -> u64 {
        self.sv.slot(name).unwrap().st.gen
    }

    pub fn state(&self, name: &str) -> &'static str {
        self.sv.slot(name).unwrap().st.state.as_str()
    }

    pub fn reason(&self, name: &str) -> String {
        self.sv
            .slot(name)
            .unwrap()
            .st
            .reason
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }
}

/// One scripted input, named by what it does to which unit.
#[derive(Clone, Copy)]
enum Do {
    Spawned(&'static str),
    Exit(&'static str, ExitInfo),
    Healthy(&'static str),
    Sick(&'static str),
    Timer(&'static str, TimerKind),
    Ask(ReplyId, fn() -> Ask),
    Missing(&'static str),
    Present(&'static str),
    Moved(&'static str),
    After(Duration),
    Shutdown,
}

struct Case {
    name: &'static str,
    units: fn() -> Vec<Unit>,
    /// What boot must output.
    boot: &'static [&'static str],
    script: &'static [(Do, &'static [&'static str])],
    /// Final states: (unit, state, a piece of its reason).
    end: &'static [(&'static str, &'static str, &'static str)],
}

fn run_case(c: &Case) {
    let (mut rig, out) = Rig::boot((c.units)(), vec![h200()]);
    let got: Vec<String> = out.iter().filter_map(brief).collect();
    assert_eq!(got, c.boot, "{}: boot", c.name);
    for (i, (act, want)) in c.script.iter().enumerate() {
        let input = match *act {
            Do::Spawned(n) => Input::Started {
                name: n.into(),
                gen: rig.gen(n),
                pid: 100 + i as i32,
                devices: if n == "zigbee" {
                    vec!["/dev/ttyUSB0".into()]
                } else {
                    vec![]
                },
            },
            Do::Exit(n, exit) => Input::Unit {
                name: n.into(),
                event: Event::Exited {
                    gen: rig.gen(n),
                    exit,
                },
            },
            Do::Healthy(n) | Do::Sick(n) => Input::Unit {
                name: n.into(),
                event: Event::HealthResult {
                    gen: rig.gen(n),
                    ok: matches!(act, Do::Healthy(_)),
                    detail: "probe".into(),
                },
            },
            Do::Timer(n, kind) => Input::Unit {
                name: n.into(),
                event: Event::Timer {
                    gen: rig.gen(n),
                    kind,
                },
            },
            Do::Ask(id, ask) => Input::Ask { id, ask: ask() },
            Do::Missing(n) => Input::Hardware {
                devices: [(n.to_string(), Devices::Missing("dongle unplugged".into()))].into(),
                gpus: None,
            },
            Do::Present(n) => Input::Hardware {
                devices: [(n.to_string(), Devices::Present(vec!["/dev/ttyUSB0".into()]))].into(),
                gpus: None,
            },
            Do::Moved(n) => Input::Hardware {
                devices: [(n.to_string(), Devices::Present(vec!["/dev/ttyUSB1".into()]))].into(),
                gpus: None,
            },
            Do::After(d) => {
                rig.now += d;
                continue;
            }
            Do::Shutdown => Input::Shutdown,
        };
        let out = rig.sv.handle(input, rig.now);
        let got: Vec<String> = out.iter().filter_map(brief).collect();
        assert_eq!(got, *want, "{}: step {i}", c.name);
    }
    for (unit, state, reason) in c.end {
        assert_eq!(rig.state(unit), *state, "{}: state of {unit}", c.name);
        assert!(
            rig.reason(unit).contains(reason),
            "{}: reason of {unit}: {:?} lacks {reason:?}",
            c.name,
            rig.reason(unit)
        );
    }
}

fn db_web() -> Vec<Unit> {
    let mut db = native("db");
    checked(&mut db);
    let mut web = native("web");
    dep(&mut web, "db", Condition::Healthy);
    vec![db, web]
}

fn two_gpu_units() -> Vec<Unit> {
    vec![gpu_unit("a", 100), gpu_unit("b", 100)]
}

fn one() -> Vec<Unit> {
    vec![native("svc")]
}

fn never_restarted() -> Vec<Unit> {
    let mut u = native("svc");
    u.restart.policy = jarvis_unit::RestartPolicy::Never;
    checked(&mut u);
    vec![u]
}

fn dongle() -> Vec<Unit> {
    vec![native("zigbee")]
}

fn both_forms() -> Vec<Unit> {
    let mut u = native("llm");
    u.container =
        Some(jarvis_unit::Container::new("busybox").with_network(jarvis_unit::Network::Host));
    u.bench = Some(jarvis_unit::Bench::new(
        jarvis_unit::BenchApi::Ollama,
        "http://127.0.0.1:1",
    ));
    vec![u]
}

/// `vpn` owns a network namespace that `app` joins (`network = "unit:vpn"`,
/// which implies `depends_on vpn started`).
fn sidecar() -> Vec<Unit> {
    let vpn = Unit::new(
        "vpn",
        Exec::Container(jarvis_unit::Container::new("busybox")),
    );
    let c = jarvis_unit::Container::new("busybox")
        .with_network(jarvis_unit::Network::Unit("vpn".into()));
    let mut app = Unit::new("app", Exec::Container(c.clone()));
    app.container = Some(c);
    dep(&mut app, "vpn", Condition::Started);
    vec![vpn, app]
}

fn auto_forms() -> Vec<Unit> {
    let mut units = both_forms();
    units[0].run = jarvis_unit::RunMode::Auto;
    units
}

fn changed_svc() -> Ask {
    let mut u = native("svc");
    u.description = Some("new".into());
    Ask::Up(Ok(vec![(u, Devices::Present(vec![]))]))
}

const CASES: &[Case] = &[
    Case {
        name: "a unit in another's network namespace restarts after it",
        units: sidecar,
        boot: &["spawn vpn as container"],
        script: &[
            (Do::Spawned("vpn"), &["spawn app as container"]),
            (Do::Spawned("app"), &[]),
            (
                Do::Exit("vpn", CRASH),
                &[
                    "timer vpn restart 100ms",
                    "signal app 15",
                    "timer app stop-timeout 10s",
                ],
            ),
            (Do::Exit("app", TERM), &[]),
            (
                Do::Timer("vpn", TimerKind::RestartDelay),
                &["spawn vpn as container"],
            ),
            (Do::Spawned("vpn"), &["spawn app as container"]),
            (Do::Spawned("app"), &[]),
        ],
        end: &[("vpn", "running", ""), ("app", "running", "")],
    },
    Case {
        name: "a dependent waits for its dependency to be healthy",
        units: db_web,
        boot: &["spawn db as native"],
        script: &[
            (Do::Spawned("db"), &["timer db probe 1s"]),
            (Do::Timer("db", TimerKind::HealthProbe), &["probe db"]),
            (
                Do::Sick("db"),
                &["signal db 15", "timer db stop-timeout 10s"],
            ),
        ],
        end: &[
            ("db", "stopping", "unhealthy"),
            ("web", "waiting", "db (healthy)"),
        ],
    },
    Case {
        name: "a healthy dependency releases its dependent",
        units: db_web,
        boot: &["spawn db as native"],
        script: &[
            (Do::Spawned("db"), &["timer db probe 1s"]),
            (
                Do::Healthy("db"),
                &["timer db probe 1s", "spawn web as native"],
            ),
            (Do::Spawned("web"), &[]),
        ],
        end: &[("db", "running", ""), ("web", "running", "")],
    },
    Case {
        name: "an unhealthy restart waits out the restart delay",
        units: db_web,
        boot: &["spawn db as native"],
        script: &[
            (Do::Spawned("db"), &["timer db probe 1s"]),
            (
                Do::Sick("db"),
                &["signal db 15", "timer db stop-timeout 10s"],
            ),
            (Do::Exit("db", TERM), &["timer db restart 100ms"]),
            (
                Do::Timer("db", TimerKind::RestartDelay),
                &["spawn db as native"],
            ),
        ],
        end: &[(
            "db",
            "starting",
            "restarted: unhealthy after 1 failed checks",
        )],
    },
    Case {
        name: "a dependency that fails blocks its dependent",
        units: db_web,
        boot: &["spawn db as native"],
        script: &[
            (Do::Ask(1, || Ask::Stop(vec!["db".into()])), &[]),
            (
                Do::Spawned("db"),
                &["signal db 15", "timer db stop-timeout 10s"],
            ),
            (Do::Exit("db", TERM), &["reply 1 done"]),
        ],
        end: &[
            ("db", "stopped", "stopped by stop"),
            ("web", "failed", "db is stopped"),
        ],
    },
    Case {
        name: "the ledger admits one unit per card; the second gets it when the first stops",
        units: two_gpu_units,
        boot: &["spawn a as native"],
        script: &[
            (Do::Spawned("a"), &[]),
            (
                Do::Ask(1, || Ask::Stop(vec!["a".into()])),
                &["signal a 15", "timer a stop-timeout 10s"],
            ),
            (Do::Exit("a", TERM), &["spawn b as native", "reply 1 done"]),
        ],
        end: &[("a", "stopped", "stopped by stop"), ("b", "starting", "")],
    },
    Case {
        name: "down stops everything and says so",
        units: db_web,
        boot: &["spawn db as native"],
        script: &[
            (Do::Spawned("db"), &["timer db probe 1s"]),
            (
                Do::Ask(9, || Ask::Down),
                &["signal db 15", "timer db stop-timeout 10s"],
            ),
            (Do::Timer("db", TimerKind::StopTimeout), &["killall db"]),
            (
                Do::Exit(
                    "db",
                    ExitInfo {
                        code: None,
                        signal: Some(9),
                        oom_killed: false,
                    },
                ),
                &["reply 9 done"],
            ),
        ],
        end: &[
            ("db", "stopped", "stopped by down"),
            ("web", "stopped", "stopped by down"),
        ],
    },
    Case {
        name: "up restarts a changed unit with its new definition, once stopped",
        units: one,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Spawned("svc"), &[]),
            (
                Do::Ask(2, changed_svc),
                &[
                    "signal svc 15",
                    "timer svc stop-timeout 10s",
                    "reply 2 up +[] ~[\"svc\"] -[] =[]",
                ],
            ),
            (Do::Exit("svc", TERM), &["spawn svc as native"]),
        ],
        end: &[("svc", "starting", "")],
    },
    Case {
        name: "up removes a unit once it has stopped",
        units: one,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Spawned("svc"), &[]),
            (
                Do::Ask(3, || Ask::Up(Ok(vec![]))),
                &[
                    "signal svc 15",
                    "timer svc stop-timeout 10s",
                    "reply 3 up +[] ~[] -[\"svc\"] =[]",
                ],
            ),
            (Do::Exit("svc", TERM), &["remove svc"]),
        ],
        end: &[],
    },
    Case {
        name: "a bad unit set changes nothing",
        units: one,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Spawned("svc"), &[]),
            (
                Do::Ask(4, || Ask::Up(Err("a.toml:1:1: bad".into()))),
                &["reply 4 error: a.toml:1:1: bad"],
            ),
        ],
        end: &[("svc", "running", "")],
    },
    Case {
        name: "a crash restarts after the delay, counted",
        units: one,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Spawned("svc"), &[]),
            (Do::Exit("svc", CRASH), &["timer svc restart 100ms"]),
            (Do::After(Duration::from_millis(100)), &[]),
            (
                Do::Timer("svc", TimerKind::RestartDelay),
                &["spawn svc as native"],
            ),
            (Do::Spawned("svc"), &[]),
        ],
        end: &[("svc", "running", "restarted: exited with code 1")],
    },
    Case {
        name: "an unplugged dongle puts its unit back to waiting, and the replug brings it back",
        units: dongle,
        boot: &["spawn zigbee as native"],
        script: &[
            (Do::Spawned("zigbee"), &[]),
            (
                Do::Missing("zigbee"),
                &["signal zigbee 15", "timer zigbee stop-timeout 10s"],
            ),
            (Do::Exit("zigbee", TERM), &[]),
            (Do::Present("zigbee"), &["spawn zigbee as native"]),
        ],
        end: &[("zigbee", "starting", "")],
    },
    Case {
        name: "a dongle that comes back under another node restarts its unit",
        units: dongle,
        boot: &["spawn zigbee as native"],
        script: &[
            (Do::Spawned("zigbee"), &[]),
            (Do::Present("zigbee"), &[]),
            (
                Do::Moved("zigbee"),
                &["signal zigbee 15", "timer zigbee stop-timeout 10s"],
            ),
            (Do::Exit("zigbee", TERM), &["spawn zigbee as native"]),
        ],
        end: &[("zigbee", "starting", "")],
    },
    Case {
        name: "a dongle unplugged while its unit spawns stops it as soon as it runs",
        units: dongle,
        boot: &["spawn zigbee as native"],
        script: &[
            (Do::Missing("zigbee"), &[]),
            (
                Do::Spawned("zigbee"),
                &["signal zigbee 15", "timer zigbee stop-timeout 10s"],
            ),
            (Do::Exit("zigbee", TERM), &[]),
        ],
        end: &[("zigbee", "waiting", "dongle unplugged")],
    },
    Case {
        name: "a benchmark runs the other form, then puts the unit back",
        units: both_forms,
        boot: &["spawn llm as native"],
        script: &[
            (Do::Spawned("llm"), &[]),
            (
                Do::Ask(5, || Ask::BenchBegin("llm".into())),
                &["reply 5 plan"],
            ),
            (
                Do::Ask(6, || Ask::BenchForm("llm".into(), Some(Kind::Container))),
                &["signal llm 15", "timer llm stop-timeout 10s"],
            ),
            (Do::Exit("llm", TERM), &["spawn llm as container"]),
            (Do::Spawned("llm"), &["reply 6 done"]),
            (
                Do::Ask(7, || Ask::BenchForm("llm".into(), None)),
                &[
                    "signal llm 15",
                    "timer llm stop-timeout 10s",
                    "reply 7 done",
                ],
            ),
            (Do::Exit("llm", TERM), &["spawn llm as native"]),
        ],
        end: &[("llm", "starting", "")],
    },
    Case {
        name: "a run = auto unit follows a new recommendation into the other form",
        units: auto_forms,
        boot: &["spawn llm as native"],
        script: &[
            (Do::Spawned("llm"), &[]),
            (
                Do::Ask(5, || Ask::Recommend {
                    unit: "llm".into(),
                    kind: Kind::Native,
                    verdict: "no difference".into(),
                }),
                &["reply 5 done"],
            ),
            (
                Do::Ask(6, || Ask::Recommend {
                    unit: "llm".into(),
                    kind: Kind::Container,
                    verdict: "as fast".into(),
                }),
                &[
                    "signal llm 15",
                    "timer llm stop-timeout 10s",
                    "reply 6 done",
                ],
            ),
            (Do::Exit("llm", TERM), &["spawn llm as container"]),
        ],
        end: &[("llm", "starting", "")],
    },
    Case {
        name: "wait answers when every wanted unit is ready",
        units: db_web,
        boot: &["spawn db as native"],
        script: &[
            (Do::Ask(8, || Ask::Wait), &[]),
            (Do::Spawned("db"), &["timer db probe 1s"]),
            (
                Do::Healthy("db"),
                &["timer db probe 1s", "spawn web as native"],
            ),
            (Do::Spawned("web"), &["reply 8 wait ok=true"]),
        ],
        end: &[],
    },
    Case {
        name: "a unit without a check is ready once it runs; a crash restarts it after the delay",
        units: one,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Ask(8, || Ask::Wait), &[]),
            (
                Do::Ask(9, || Ask::Stop(vec!["nope".into()])),
                &["reply 9 error: no unit named nope (known: svc)"],
            ),
            (Do::Spawned("svc"), &["reply 8 wait ok=true"]),
            (Do::Exit("svc", CRASH), &["timer svc restart 100ms"]),
        ],
        end: &[("svc", "starting", "exited with code 1; restarting in 100ms")],
    },
    Case {
        name: "a unit that fails blocks a wait",
        units: never_restarted,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Ask(8, || Ask::Wait), &[]),
            (Do::Spawned("svc"), &["timer svc probe 1s"]),
            (Do::Exit("svc", CRASH), &["reply 8 wait ok=false"]),
        ],
        end: &[("svc", "failed", "exited with code 1")],
    },
    Case {
        name: "shutdown stops every unit, then is done",
        units: one,
        boot: &["spawn svc as native"],
        script: &[
            (Do::Spawned("svc"), &[]),
            (
                Do::Shutdown,
                &["signal svc 15", "timer svc stop-timeout 10s"],
            ),
            (
                Do::Ask(1, || Ask::Start(vec!["svc".into()])),
                &["reply 1 error: jarvisd is shutting down"],
            ),
            (Do::Exit("svc", TERM), &["done"]),
        ],
        end: &[("svc", "stopped", "shutdown")],
    },
];

#[test]
fn tables() {
    for c in CASES {
        run_case(c);
    }
}

#[test]
fn replugs_do_not_count_against_the_burst_window() {
    let (mut rig, _) = Rig::boot(dongle(), vec![]);
    let burst = native("zigbee").restart.burst as usize;
    for round in 0..burst * 2 {
        let gen = rig.gen("zigbee");
        rig.sv.handle(
            Input::Started {
                name: "zigbee".into(),
                gen,
                pid: 100 + round as i32,
                devices: vec!["/dev/ttyUSB0".into()],
            },
            rig.now,
        );
        assert_eq!(
            rig.state("zigbee"),
            "running",
            "round {round}: {}",
            rig.reason("zigbee")
        );
        for input in [
            Input::Hardware {
                devices: [("zigbee".into(), Devices::Missing("unplugged".into()))].into(),
                gpus: None,
            },
            Input::Unit {
                name: "zigbee".into(),
                event: Event::Exited {
                    gen: rig.gen("zigbee"),
                    exit: TERM,
                },
            },
            Input::Hardware {
                devices: [(
                    "zigbee".into(),
                    Devices::Present(vec!["/dev/ttyUSB0".into()]),
                )]
                .into(),
                gpus: None,
            },
        ] {
            rig.sv.handle(input, rig.now);
        }
        assert_eq!(
            rig.state("zigbee"),
            "starting",
            "round {round}: {}",
            rig.reason("zigbee")
        );
    }
}

#[test]
fn a_down_is_remembered_and_said_after_a_restart_of_jarvisd() {
    let (mut rig, _) = Rig::boot(one(), vec![]);
    let gen = rig.gen("svc");
    rig.sv.handle(
        Input::Unit {
            name: "svc".into(),
            event: Event::Spawned { gen, pid: 5 },
        },
        rig.now,
    );
    let out = rig.sv.handle(
        Input::Ask {
            id: 1,
            ask: Ask::Down,
        },
        rig.now,
    );
    let gen = rig.gen("svc");
    let out2 = rig.sv.handle(
        Input::Unit {
            name: "svc".into(),
            event: Event::Exited { gen, exit: TERM },
        },
        rig.now,
    );
    let saved = out
        .iter()
        .chain(&out2)
        .rev()
        .filter_map(|o| match o {
            Output::Save(p) => Some(p.clone()),
            _ => None,
        })
        .next()
        .expect("saved");
    assert_eq!(saved.units["svc"].stopped_by.as_deref(), Some("down"));
    let (rig, out) = Rig::boot_with(one(), vec![], saved);
    assert!(!out.iter().any(|o| matches!(o, Output::Spawn { .. })));
    assert_eq!(rig.state("svc"), "stopped");
    assert_eq!(rig.reason("svc"), "stopped by down");
}

#[test]
fn re_adopted_units_are_watched_and_ended_ones_follow_their_policy() {
    let t0 = Instant::now();
    let mut sv = Supervisor::new(Persisted::default(), BTreeMap::new());
    let mut gone = native("gone");
    gone.restart.policy = jarvis_unit::RestartPolicy::OnFailure;
    let out = sv.handle(
        Input::Boot(
            vec![
                BootUnit {
                    unit: native("alive"),
                    found: Found::Running { pid: 42 },
                    devices: Devices::Present(vec![]),
                },
                BootUnit {
                    unit: gone,
                    found: Found::Ended {
                        pid: 43,
                        exit: CRASH,
                    },
                    devices: Devices::Present(vec![]),
                },
            ],
            vec![],
        ),
        t0,
    );
    let got: Vec<String> = out.iter().filter_map(brief).collect();
    assert_eq!(got, ["watch alive", "timer gone restart 100ms"]);
    assert_eq!(sv.slot("alive").unwrap().st.pid, Some(42));
    assert_eq!(sv.slot("alive").unwrap().st.state, State::Running);
}

#[test]
fn a_run_of_another_definition_is_re_adopted_then_restarted() {
    let t0 = Instant::now();
    let mut sv = Supervisor::new(Persisted::default(), BTreeMap::new());
    let out = sv.handle(
        Input::Boot(
            vec![
                BootUnit {
                    unit: native("old"),
                    found: Found::Stale { pid: 42 },
                    devices: Devices::Present(vec![]),
                },
                BootUnit {
                    unit: native("same"),
                    found: Found::Running { pid: 44 },
                    devices: Devices::Present(vec![]),
                },
            ],
            vec![],
        ),
        t0,
    );
    let got: Vec<String> = out.iter().filter_map(brief).collect();
    assert_eq!(
        got,
        [
            "watch old",
            "signal old 15",
            "timer old stop-timeout 10s",
            "watch same"
        ]
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Note { name, text } if name == "old" && text.contains("another definition"))));
    // Once the old run is over, the unit's own definition starts.
    let gen = sv.slot("old").unwrap().st.gen;
    let out = sv.handle(
        Input::Unit {
            name: "old".into(),
            event: Event::Exited { gen, exit: CRASH },
        },
        t0,
    );
    let got: Vec<String> = out.iter().filter_map(brief).collect();
    assert_eq!(got, ["spawn old as native"]);
    assert_eq!(sv.slot("same").unwrap().st.pid, Some(44));
}

impl Rig {
    /// Feeds one input now and returns its outputs in short.
    fn feed(&mut self, input: Input) -> Vec<String> {
        let out = self.sv.handle(input, self.now);
        out.iter().filter_map(brief).collect()
    }

    /// The current spawn of `name` failed.
    fn spawn_failed(&mut self, name: &str, failure: machine::StartFailure) -> Vec<String> {
        let gen = self.gen(name);
        self.feed(Input::Unit {
            name: name.into(),
            event: Event::SpawnFailed {
                gen,
                reason: failure,
            },
        })
    }

    fn timer(&mut self, name: &str, kind: TimerKind) -> Vec<String> {
        let gen = self.gen(name);
        self.feed(Input::Unit {
            name: name.into(),
            event: Event::Timer { gen, kind },
        })
    }
}

const EMFILE: &str = "output pipe: Too many open files (os error 24)";

#[test]
fn a_start_that_failed_for_want_of_a_resource_is_retried_like_a_crash() {
    let (mut rig, out) = Rig::boot(one(), vec![]);
    assert_eq!(
        out.iter().filter_map(brief).collect::<Vec<_>>(),
        ["spawn svc as native"]
    );
    // The delay doubles with each failed start, as after quick crashes.
    for (i, delay) in ["100ms", "200ms", "400ms"].iter().enumerate() {
        let got = rig.spawn_failed("svc", machine::StartFailure::transient(EMFILE));
        assert_eq!(got, [format!("timer svc restart {delay}")], "try {i}");
        assert_eq!(rig.state("svc"), "starting");
        assert_eq!(
            rig.reason("svc"),
            format!("cannot start: {EMFILE}; restarting in {delay}")
        );
        rig.now += Duration::from_millis(500);
        assert_eq!(
            rig.timer("svc", TimerKind::RestartDelay),
            ["spawn svc as native"],
            "try {i}"
        );
    }
    // Once the descriptors are back, it runs, and says what it came back from.
    let gen = rig.gen("svc");
    rig.feed(Input::Started {
        name: "svc".into(),
        gen,
        pid: 77,
        devices: vec![],
    });
    assert_eq!(rig.state("svc"), "running");
    assert_eq!(
        rig.reason("svc"),
        format!("restarted: cannot start: {EMFILE}")
    );
    assert_eq!(rig.sv.slot("svc").unwrap().st.restarts, 3);
}

#[test]
fn transient_start_failures_still_end_at_the_burst_limit() {
    let (mut rig, _) = Rig::boot(one(), vec![]);
    let burst = native("svc").restart.burst;
    for i in 1..burst {
        let got = rig.spawn_failed("svc", machine::StartFailure::transient(EMFILE));
        assert_eq!(got.len(), 1, "try {i}: {got:?}");
        rig.now += Duration::from_millis(10);
        assert_eq!(
            rig.timer("svc", TimerKind::RestartDelay),
            ["spawn svc as native"]
        );
    }
    assert!(
        rig.spawn_failed("svc", machine::StartFailure::transient(EMFILE))
            .len()
            == 1
    );
    rig.now += Duration::from_millis(10);
    assert!(rig.timer("svc", TimerKind::RestartDelay).is_empty());
    assert_eq!(rig.state("svc"), "failed");
    assert_eq!(
        rig.reason("svc"),
        format!(
            "started {burst} times within 10s (restart.burst = {burst}); not restarting; \
             last start failed: {EMFILE}"
        )
    );
}

#[test]
fn a_start_that_cannot_work_fails_at_once() {
    let (mut rig, _) = Rig::boot(one(), vec![]);
    let got = rig.spawn_failed(
        "svc",
        machine::StartFailure::permanent("exec /no/such: No such file or directory (os error 2)"),
    );
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(rig.state("svc"), "failed");
    assert_eq!(
        rig.reason("svc"),
        "cannot start: exec /no/such: No such file or directory (os error 2)"
    );
    // `restart = never` retries nothing, transient or not.
    let mut u = native("svc");
    u.restart.policy = jarvis_unit::RestartPolicy::Never;
    let (mut rig, _) = Rig::boot(vec![u], vec![]);
    assert!(rig
        .spawn_failed("svc", machine::StartFailure::transient(EMFILE))
        .is_empty());
    assert_eq!(rig.state("svc"), "failed");
    assert_eq!(rig.reason("svc"), format!("cannot start: {EMFILE}"));
}

#[test]
fn a_transient_failure_of_a_start_that_was_stopped_meanwhile_is_not_retried() {
    let (mut rig, _) = Rig::boot(one(), vec![]);
    rig.feed(Input::Ask {
        id: 1,
        ask: Ask::Stop(vec!["svc".into()]),
    });
    let got = rig.spawn_failed("svc", machine::StartFailure::transient(EMFILE));
    assert!(
        !got.iter()
            .any(|o| o.starts_with("timer") || o.starts_with("spawn")),
        "{got:?}"
    );
    assert_eq!(rig.state("svc"), "failed");
}

#[test]
fn stopping_a_failed_unit_kills_whatever_its_cgroup_holds() {
    let (mut rig, _) = Rig::boot(one(), vec![]);
    rig.spawn_failed("svc", "the shim ended without starting the process".into());
    assert_eq!(rig.state("svc"), "failed");
    let got = rig.feed(Input::Ask {
        id: 1,
        ask: Ask::Stop(vec!["svc".into()]),
    });
    assert!(got.contains(&"sweep svc".to_string()), "{got:?}");
    // A unit that exited left nothing: its shim emptied the cgroup.
    let (mut rig, _) = Rig::boot(one(), vec![]);
    let gen = rig.gen("svc");
    rig.feed(Input::Started {
        name: "svc".into(),
        gen,
        pid: 5,
        devices: vec![],
    });
    rig.feed(Input::Unit {
        name: "svc".into(),
        event: Event::Exited {
            gen,
            exit: ExitInfo {
                code: Some(0),
                signal: None,
                oom_killed: false,
            },
        },
    });
    assert_eq!(rig.state("svc"), "exited");
    let got = rig.feed(Input::Ask {
        id: 2,
        ask: Ask::Stop(vec!["svc".into()]),
    });
    assert!(!got.contains(&"sweep svc".to_string()), "{got:?}");
}

/// The events an input produced, as `kind unit: message`.
fn events(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event {
                unit,
                kind,
                message,
            } => Some(format!(
                "{kind} {}: {message}",
                unit.as_deref().unwrap_or("jarvisd")
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn what_happens_to_a_unit_is_told_as_events() {
    let (mut rig, out) = Rig::boot(
        vec![
            {
                let mut u = native("web");
                checked(&mut u);
                u
            },
            gpu_unit("llm", 8),
        ],
        vec![h200()],
    );
    assert_eq!(events(&out), ["placed llm: on GPU 0 (GPU-h200)"]);
    let start = |rig: &mut Rig, name: &str, pid: i32| {
        let gen = rig.gen(name);
        rig.sv.handle(
            Input::Started {
                name: name.into(),
                gen,
                pid,
                devices: vec![],
            },
            rig.now,
        )
    };
    assert_eq!(events(&start(&mut rig, "web", 41)), ["started web: pid 41"]);
    let probe = |rig: &mut Rig, ok: bool| {
        let gen = rig.gen("web");
        rig.sv.handle(
            Input::Unit {
                name: "web".into(),
                event: Event::HealthResult {
                    gen,
                    ok,
                    detail: if ok { "ok".into() } else { "refused".into() },
                },
            },
            rig.now,
        )
    };
    assert_eq!(
        events(&probe(&mut rig, true)),
        ["healthy web: health check passes"]
    );
    assert!(
        events(&probe(&mut rig, true)).is_empty(),
        "no change, no event"
    );
    let sick = events(&probe(&mut rig, false));
    assert!(
        sick.iter().any(|e| e.starts_with("unhealthy web:")),
        "{sick:?}"
    );
    // An OOM kill: told as such, then the restart with its cause.
    start(&mut rig, "llm", 50);
    let gen = rig.gen("llm");
    let out = rig.sv.handle(
        Input::Unit {
            name: "llm".into(),
            event: Event::Exited {
                gen,
                exit: ExitInfo {
                    code: None,
                    signal: Some(9),
                    oom_killed: true,
                },
            },
        },
        rig.now,
    );
    let got = events(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(rig.sv.slot("llm").unwrap().st.oom_kills, 1, "counted");
    assert!(
        got[0].starts_with("oom-killed llm: killed by SIGKILL: out of memory"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("restarted llm: killed by SIGKILL: out of memory")
            && got[1].contains("restarting"),
        "{got:?}"
    );
    // A device that goes and comes back.
    let (mut rig, _) = Rig::boot(dongle(), vec![]);
    let out = rig.sv.handle(
        Input::Hardware {
            devices: [("zigbee".into(), Devices::Missing("unplugged".into()))].into(),
            gpus: None,
        },
        rig.now,
    );
    assert_eq!(events(&out), ["device-gone zigbee: unplugged"]);
    let out = rig.sv.handle(
        Input::Hardware {
            devices: [(
                "zigbee".into(),
                Devices::Present(vec!["/dev/ttyUSB0".into()]),
            )]
            .into(),
            gpus: None,
        },
        rig.now,
    );
    assert_eq!(events(&out), ["device-back zigbee: back at /dev/ttyUSB0"]);
}

// ---------------------------------------------------------------------------
// GPU checks.

/// A GPU unit checked every second, `on_fallback` as given.
fn checked_gpu_unit(on_fallback: jarvis_unit::OnFallback) -> Unit {
    let mut u = gpu_unit("llm", 8);
    let g = u.gpu.as_mut().unwrap();
    g.verify_interval = Duration::from_secs(1);
    g.on_fallback = on_fallback;
    u
}

/// The GPU-check timers among `out`, as `after`.
fn gpu_timers(out: &[Output]) -> Vec<Duration> {
    out.iter()
        .filter_map(|o| match o {
            Output::Timer {
                kind: TimerKind::GpuCheck,
                after,
                ..
            } => Some(*after),
            _ => None,
        })
        .collect()
}

impl Rig {
    fn started(&mut self, name: &str, pid: i32) -> Vec<Output> {
        let gen = self.gen(name);
        self.sv.handle(
            Input::Started {
                name: name.into(),
                gen,
                pid,
                devices: vec![],
            },
            self.now,
        )
    }

    fn gpu_checked(&mut self, name: &str, gen: u64, verdict: Option<GpuVerdict>) -> Vec<Output> {
        self.sv.handle(
            Input::Unit {
                name: name.into(),
                event: Event::GpuChecked { gen, verdict },
            },
            self.now,
        )
    }

    fn gpu(&self, name: &str) -> Option<GpuVerdict> {
        self.sv.slot(name).unwrap().st.gpu.clone()
    }
}

const CPU_ONLY: &str = "model llama3:8b has 0 B of 4.7 GB in VRAM";

#[test]
fn gpu_checks_follow_the_interval_and_tell_verdict_changes() {
    let (mut rig, _) = Rig::boot(vec![checked_gpu_unit(Default::default())], vec![h200()]);
    // The first check is armed when the run is up.
    let out = rig.started("llm", 50);
    assert_eq!(gpu_timers(&out), [Duration::from_secs(1)]);
    assert_eq!(rig.gpu("llm"), None, "not checked yet");
    // The timer asks for a check of the GPU it was placed on.
    assert_eq!(
        rig.timer("llm", TimerKind::GpuCheck),
        ["gpu-check llm on GPU-h200"]
    );
    // A fallback: told once, kept for status, the unit left running.
    let gen = rig.gen("llm");
    let fell = Some(GpuVerdict::Fallback(CPU_ONLY.into()));
    let out = rig.gpu_checked("llm", gen, fell.clone());
    assert_eq!(events(&out), [format!("gpu-fallback llm: {CPU_ONLY}")]);
    assert_eq!(gpu_timers(&out), [Duration::from_secs(1)]);
    assert!(out.iter().any(|o| matches!(o,
        Output::Note { name, text } if name == "llm" && text == &format!("gpu-fallback: {CPU_ONLY}"))));
    assert_eq!(rig.gpu("llm"), fell);
    assert_eq!(rig.state("llm"), "running");
    // The same again: no new event.
    assert!(events(&rig.gpu_checked("llm", gen, fell.clone())).is_empty());
    // Nothing could tell: the verdict stands, the checks go on.
    let out = rig.gpu_checked("llm", gen, None);
    assert!(events(&out).is_empty());
    assert_eq!(gpu_timers(&out), [Duration::from_secs(1)]);
    assert_eq!(rig.gpu("llm"), fell);
    // On the GPU again.
    let out = rig.gpu_checked("llm", gen, Some(GpuVerdict::Ok));
    assert_eq!(events(&out), ["gpu-ok llm: runs on its GPU again"]);
    assert_eq!(rig.gpu("llm"), Some(GpuVerdict::Ok));
    // A verdict on an earlier run is dropped.
    let out = rig.gpu_checked("llm", gen - 1, fell.clone());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(rig.gpu("llm"), Some(GpuVerdict::Ok));
    // A run that ends forgets its verdict, and its checks end with it.
    let out = rig.sv.handle(
        Input::Unit {
            name: "llm".into(),
            event: Event::Exited { gen, exit: CRASH },
        },
        rig.now,
    );
    assert!(gpu_timers(&out).is_empty());
    assert_eq!(rig.gpu("llm"), None);
    let late = rig.sv.handle(
        Input::Unit {
            name: "llm".into(),
            event: Event::Timer {
                gen,
                kind: TimerKind::GpuCheck,
            },
        },
        rig.now,
    );
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn a_gpu_fallback_restarts_under_the_restart_policy() {
    let (mut rig, _) = Rig::boot(
        vec![checked_gpu_unit(jarvis_unit::OnFallback::Restart)],
        vec![h200()],
    );
    let burst = rig.sv.unit("llm").unwrap().restart.burst;
    for round in 1..burst {
        rig.started("llm", 50);
        let gen = rig.gen("llm");
        let out = rig.gpu_checked("llm", gen, Some(GpuVerdict::Fallback(CPU_ONLY.into())));
        let got: Vec<String> = out.iter().filter_map(brief).collect();
        assert_eq!(
            got,
            ["signal llm 15", "timer llm stop-timeout 10s"],
            "round {round}"
        );
        assert_eq!(events(&out), [format!("gpu-fallback llm: {CPU_ONLY}")]);
        assert_eq!(
            rig.reason("llm"),
            format!("GPU fallback: {CPU_ONLY}; restarting")
        );
        let out = rig.sv.handle(
            Input::Unit {
                name: "llm".into(),
                event: Event::Exited { gen, exit: TERM },
            },
            rig.now,
        );
        // Told as a restart with its cause, through the restart delay.
        let ev = events(&out);
        assert!(
            ev.iter().any(|e| e.starts_with(&format!(
                "restarted llm: GPU fallback: {CPU_ONLY}; restarting in"
            ))),
            "round {round}: {ev:?}"
        );
        rig.now += Duration::from_secs(1);
        assert_eq!(
            rig.timer("llm", TimerKind::RestartDelay),
            ["spawn llm as native"],
            "round {round}"
        );
        assert_eq!(rig.sv.slot("llm").unwrap().st.restarts, round);
        assert_eq!(
            rig.reason("llm"),
            format!("restarted: GPU fallback: {CPU_ONLY}")
        );
    }
    // The burst limit holds: the unit fails instead of looping.
    rig.started("llm", 50);
    let gen = rig.gen("llm");
    rig.gpu_checked("llm", gen, Some(GpuVerdict::Fallback(CPU_ONLY.into())));
    rig.sv.handle(
        Input::Unit {
            name: "llm".into(),
            event: Event::Exited { gen, exit: TERM },
        },
        rig.now,
    );
    rig.now += Duration::from_secs(1);
    assert!(rig.timer("llm", TimerKind::RestartDelay).is_empty());
    assert_eq!(rig.state("llm"), "failed");
    assert!(
        rig.reason("llm").contains("restart.burst"),
        "{}",
        rig.reason("llm")
    );
}

#[test]
fn gpu_checks_wait_for_health_and_skip_the_cpu() {
    // With a health check, the GPU is checked once healthy.
    let mut u = checked_gpu_unit(Default::default());
    checked(&mut u);
    let (mut rig, _) = Rig::boot(vec![u], vec![h200()]);
    rig.started("llm", 50);
    let gen = rig.gen("llm");
    let out = rig.sv.handle(
        Input::Unit {
            name: "llm".into(),
            event: Event::Timer {
                gen,
                kind: TimerKind::GpuCheck,
            },
        },
        rig.now,
    );
    assert_eq!(gpu_timers(&out), [Duration::from_secs(1)]);
    assert!(!out.iter().any(|o| matches!(o, Output::GpuCheck { .. })));
    rig.sv.handle(
        Input::Unit {
            name: "llm".into(),
            event: Event::HealthResult {
                gen,
                ok: true,
                detail: "ok".into(),
            },
        },
        rig.now,
    );
    assert_eq!(
        rig.timer("llm", TimerKind::GpuCheck),
        ["gpu-check llm on GPU-h200"]
    );
    // A unit placed on the CPU (no GPU on the host) is not checked.
    let mut u = checked_gpu_unit(Default::default());
    u.gpu.as_mut().unwrap().want = GpuWant::Auto;
    let (mut rig, _) = Rig::boot(vec![u], vec![]);
    assert_eq!(rig.state("llm"), "starting");
    rig.started("llm", 50);
    assert!(rig.timer("llm", TimerKind::GpuCheck).is_empty());
    assert_eq!(rig.gpu("llm"), None);
}
