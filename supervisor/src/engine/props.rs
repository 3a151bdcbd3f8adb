//! Property tests of the core's invariants, over random interleavings of
//! what the world does (processes start, crash, answer probes; devices come
//! and go) and what the user asks (start, stop, restart, down, up):
//!
//! - a unit never starts before each dependency meets its condition;
//! - the ledger never promises a GPU more VRAM than it has;
//! - every stop ends in `stopped`, `exited` or `failed` once the world has
//!   answered;
//! - a bad unit set changes nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jarvis_unit::{Condition, RestartPolicy, Unit};
use proptest::prelude::*;

use super::machine::{Event, ExitInfo, State};
use super::tests::{checked, dep, gpu_unit, h200, native};
use super::*;

/// A homelab-shaped set: a database with a health check, a migration that
/// must complete, a web front end on both, two GPU units that cannot share
/// the card, and a dongle unit.
fn units() -> Vec<Unit> {
    let mut db = native("db");
    checked(&mut db);
    let mut migrate = native("migrate");
    migrate.restart.policy = RestartPolicy::Never;
    dep(&mut migrate, "db", Condition::Healthy);
    let mut web = native("web");
    dep(&mut web, "db", Condition::Healthy);
    dep(&mut web, "migrate", Condition::Completed);
    let mut llm = gpu_unit("llm", 100);
    dep(&mut llm, "db", Condition::Started);
    let img = gpu_unit("img", 80);
    let zigbee = native("zigbee");
    vec![db, migrate, web, llm, img, zigbee]
}

/// What happens next: `pick` chooses among what is pending (or which unit
/// an action is about), the rest says what.
#[derive(Debug, Clone)]
enum Step {
    /// The world delivers one pending thing (a spawn, an exit, a timer,
    /// a probe answer).
    Deliver(usize),
    /// A running unit crashes or exits cleanly.
    Exit(usize, bool),
    /// A probe answers, ok or not.
    Probe(usize, bool),
    Start(usize),
    Stop(usize),
    Restart(usize),
    Down,
    Up,
    BadUp,
    Unplug,
    Replug,
    Wait,
    Tick(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..64usize).prop_map(Step::Deliver),
        2 => (0..6usize, any::<bool>()).prop_map(|(u, ok)| Step::Exit(u, ok)),
        2 => (0..64usize, any::<bool>()).prop_map(|(i, ok)| Step::Probe(i, ok)),
        1 => (0..6usize).prop_map(Step::Start),
        1 => (0..6usize).prop_map(Step::Stop),
        1 => (0..6usize).prop_map(Step::Restart),
        1 => Just(Step::Down),
        1 => Just(Step::Up),
        1 => Just(Step::BadUp),
        1 => Just(Step::Unplug),
        1 => Just(Step::Replug),
        1 => Just(Step::Wait),
        1 => (1..3000u64).prop_map(Step::Tick),
    ]
}

/// The world around the core: what it was told to do and has not answered.
struct World {
    sv: Supervisor,
    now: Instant,
    pending: Vec<Input>,
    probes: Vec<(String, u64)>,
    next_pid: i32,
    next_id: ReplyId,
    names: Vec<String>,
}

const KILLED: ExitInfo = ExitInfo {
    code: None,
    signal: Some(15),
    oom_killed: false,
};

impl World {
    fn new() -> World {
        let now = Instant::now();
        let mut w = World {
            sv: Supervisor::new(Persisted::default(), BTreeMap::new()),
            now,
            pending: vec![],
            probes: vec![],
            next_pid: 100,
            next_id: 1,
            names: units().iter().map(|u| u.name.clone()).collect(),
        };
        let boot = units()
            .into_iter()
            .map(|unit| BootUnit {
                unit,
                found: Found::Nothing,
                devices: Devices::Present(vec![]),
            })
            .collect();
        w.feed(Input::Boot(boot, vec![h200()]));
        w
    }

    /// Feeds one input, records what the world owes in return, and checks
    /// the invariants that hold after every input.
    fn feed(&mut self, input: Input) -> Vec<Output> {
        let before = self.snapshot();
        let bad_up = matches!(
            input,
            Input::Ask {
                ask: Ask::Up(Err(_)),
                ..
            }
        );
        let out = self.sv.handle(input, self.now);
        if bad_up {
            assert_eq!(self.snapshot(), before, "a bad unit set changed something");
            assert!(
                out.iter().all(|o| matches!(o, Output::Reply { .. })),
                "a bad unit set did something: {out:?}"
            );
        }
        for o in &out {
            match o {
                Output::Spawn {
                    name, gen, unit, ..
                } => {
                    // Never before each dependency meets its condition.
                    for d in &unit.depends_on {
                        let ds = &self.sv.slot(&d.unit).expect("dependency exists").st;
                        assert!(
                            ds.satisfies(d.condition),
                            "{name} spawned while {} is {:?} (needs {:?})",
                            d.unit,
                            ds.state,
                            d.condition
                        );
                    }
                    self.next_pid += 1;
                    self.pending.push(Input::Started {
                        name: name.clone(),
                        gen: *gen,
                        pid: self.next_pid,
                        devices: vec![],
                    });
                }
                Output::Signal { name, .. } | Output::KillAll { name } => {
                    let gen = self.sv.slot(name).map(|s| s.st.gen).unwrap_or(0);
                    self.pending.push(Input::Unit {
                        name: name.clone(),
                        event: Event::Exited { gen, exit: KILLED },
                    });
                }
                Output::Timer {
                    name, gen, kind, ..
                } => self.pending.push(Input::Unit {
                    name: name.clone(),
                    event: Event::Timer {
                        gen: *gen,
                        kind: *kind,
                    },
                }),
                Output::Probe { name, gen } => self.probes.push((name.clone(), *gen)),
                _ => {}
            }
        }
        // The ledger never promises a card more than it has.
        for g in self.sv.gpus() {
            assert!(
                self.sv.ledger().promised(&g.id) <= g.memory_total,
                "{} promised {} of {}",
                g.id,
                self.sv.ledger().promised(&g.id),
                g.memory_total
            );
        }
        out
    }

    fn snapshot(&self) -> Vec<(String, State, bool, u64, Option<i32>)> {
        self.sv
            .names()
            .into_iter()
            .map(|n| {
                let s = &self.sv.slot(&n).unwrap().st;
                (n, s.state, s.wanted, s.gen, s.pid)
            })
            .collect()
    }

    fn ask(&mut self, ask: Ask) {
        self.next_id += 1;
        let id = self.next_id;
        self.feed(Input::Ask { id, ask });
    }

    fn act(&mut self, step: Step) {
        let name = |i: usize| self.names[i % self.names.len()].clone();
        match step {
            Step::Deliver(i) if !self.pending.is_empty() => {
                let input = self.pending.remove(i % self.pending.len());
                self.feed(input);
            }
            Step::Deliver(_) => {}
            Step::Exit(i, clean) => {
                let n = name(i);
                let s = &self.sv.slot(&n).unwrap().st;
                if s.pid.is_some() {
                    let gen = s.gen;
                    let exit = ExitInfo {
                        code: Some(if clean { 0 } else { 1 }),
                        signal: None,
                        oom_killed: false,
                    };
                    self.feed(Input::Unit {
                        name: n,
                        event: Event::Exited { gen, exit },
                    });
                }
            }
            Step::Probe(i, ok) if !self.probes.is_empty() => {
                let (n, gen) = self.probes.remove(i % self.probes.len());
                self.feed(Input::Unit {
                    name: n,
                    event: Event::HealthResult {
                        gen,
                        ok,
                        detail: "probe".into(),
                    },
                });
            }
            Step::Probe(..) => {}
            Step::Start(i) => self.ask(Ask::Start(vec![name(i)])),
            Step::Stop(i) => self.ask(Ask::Stop(vec![name(i)])),
            Step::Restart(i) => self.ask(Ask::Restart(vec![name(i)])),
            Step::Down => self.ask(Ask::Down),
            Step::Up => {
                let set = units()
                    .into_iter()
                    .map(|u| (u, Devices::Present(vec![])))
                    .collect();
                self.ask(Ask::Up(Ok(set)))
            }
            Step::BadUp => self.ask(Ask::Up(Err("web.toml:3:1: unknown key".into()))),
            Step::Unplug | Step::Replug => {
                let devices = if matches!(step, Step::Unplug) {
                    Devices::Missing("dongle 10c4:ea60 is not plugged in".into())
                } else {
                    Devices::Present(vec!["/dev/ttyUSB0".into()])
                };
                self.feed(Input::Hardware {
                    devices: [("zigbee".to_string(), devices)].into(),
                    gpus: None,
                });
            }
            Step::Wait => self.ask(Ask::Wait),
            Step::Tick(ms) => self.now += Duration::from_millis(ms),
        }
    }

    /// Lets the world answer everything it owes (no new crashes, probes
    /// time out), until nothing is pending.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            if let Some(input) = self.pending.pop() {
                self.now += Duration::from_millis(50);
                self.feed(input);
            } else if let Some((name, gen)) = self.probes.pop() {
                self.feed(Input::Unit {
                    name,
                    event: Event::HealthResult {
                        gen,
                        ok: false,
                        detail: "timed out".into(),
                    },
                });
            } else {
                return;
            }
        }
        panic!("the world never settled");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn invariants_hold_under_any_interleaving(steps in proptest::collection::vec(step(), 1..120)) {
        let mut w = World::new();
        for s in steps {
            w.act(s);
        }
        // Every stop ends in stopped, exited or failed.
        let mut stop = w.names.clone();
        stop.sort();
        w.ask(Ask::Stop(stop));
        w.drain();
        for n in w.sv.names() {
            let st = w.sv.slot(&n).unwrap().st.state;
            prop_assert!(
                matches!(st, State::Stopped | State::Exited | State::Failed),
                "{n} ended {st:?} after a stop"
            );
            prop_assert!(w.sv.ledger().promised("GPU-h200") == 0, "a stopped unit holds VRAM");
        }
    }
}
