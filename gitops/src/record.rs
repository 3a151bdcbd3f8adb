//! `<state>/generations.json`: every generation and the switch in progress.
//!
//! The record decides which generation is active. It is replaced whole,
//! atomically and fsynced ([`jarvis_fsutil::Durability::Durable`]), at each
//! step of an apply: before the switch (the new generation `applying`, and
//! `applying` naming it), at the switch (it becomes `active`, the one before
//! `previous`), or when the switch is given up (`rolled-back`). A jarvisd
//! that stops in between finds `applying` set at boot: [`Record::recover`]
//! gives that switch up, so the box comes back on the generation that was
//! active before it, never on a mix.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A generation's state, as `jarvisctl generations` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// What jarvisd runs.
    Active,
    /// Was active before; `rollback` can make it active again.
    Previous,
    /// Never became active: jarvisd stopped during its apply.
    Failed,
    /// Failed its health gate; the generation before it was put back.
    RolledBack,
    /// Being applied (internal: the switch is not decided yet).
    Applying,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Previous => "previous",
            State::Failed => "failed",
            State::RolledBack => "rolled-back",
            State::Applying => "applying",
        }
    }
}

/// One generation: a revision checked out under `<state>/generations/N/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub number: u64,
    /// The commit's full id.
    pub revision: String,
    /// When it was made, RFC 3339 in UTC.
    pub date: String,
    pub state: State,
    /// The units directory inside the checkout ("." for its root).
    pub path: String,
    /// The repository it came from.
    #[serde(default)]
    pub repo: String,
    /// The order generations became active in (1, 2, ...; 0: never), so
    /// a rollback without a number goes to the one active last before.
    #[serde(default)]
    pub activated: u64,
    /// Why it failed or was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `generations.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub generations: Vec<Generation>,
    /// The generation a switch in progress goes to.
    #[serde(default)]
    pub applying: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: not a generations record: {err}")]
    Parse {
        path: PathBuf,
        err: serde_json::Error,
    },
}

/// The record's file in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("generations.json")
}

/// Where generation `number` is checked out.
pub fn dir(state_dir: &Path, number: u64) -> PathBuf {
    state_dir.join("generations").join(number.to_string())
}

/// Now, RFC 3339 in UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Record {
    /// The record in `state_dir`; empty when there is none yet.
    pub fn load(state_dir: &Path) -> Result<Record, RecordError> {
        let path = path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|err| RecordError::Parse { path, err })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(err) => Err(RecordError::Io { path, err }),
        }
    }

    /// Replaces the record in `state_dir`, atomically and durably.
    pub fn save(&self, state_dir: &Path) -> Result<(), RecordError> {
        let path = path(state_dir);
        let bytes = serde_json::to_vec_pretty(self).expect("a record serializes");
        jarvis_fsutil::write_atomic(&path, &bytes, jarvis_fsutil::Durability::Durable)
            .map_err(|err| RecordError::Io { path, err })
    }

    /// The number the next generation gets: one more than any so far
    /// (numbers are never reused, even of generations whose directory was
    /// removed).
    pub fn next_number(&self) -> u64 {
        self.generations.iter().map(|g| g.number).max().unwrap_or(0) + 1
    }

    pub fn get(&self, number: u64) -> Option<&Generation> {
        self.generations.iter().find(|g| g.number == number)
    }

    fn get_mut(&mut self, number: u64) -> Option<&mut Generation> {
        self.generations.iter_mut().find(|g| g.number == number)
    }

    pub fn active(&self) -> Option<&Generation> {
        self.generations.iter().find(|g| g.state == State::Active)
    }

    /// Adds a new generation, `applying`, and marks the switch to it as in
    /// progress.
    pub fn begin_new(&mut self, generation: Generation) {
        self.applying = Some(generation.number);
        self.generations.push(Generation {
            state: State::Applying,
            ..generation
        });
    }

    /// Marks a switch to an existing generation (a rollback) as in
    /// progress; its state stays what it was until the switch is decided.
    pub fn begin_existing(&mut self, number: u64) {
        self.applying = Some(number);
    }

    /// The switch to `number` succeeded: it is active, the one active
    /// before is previous.
    pub fn switch(&mut self, number: u64) {
        let order = self
            .generations
            .iter()
            .map(|g| g.activated)
            .max()
            .unwrap_or(0)
            + 1;
        for g in &mut self.generations {
            if g.state == State::Active && g.number != number {
                g.state = State::Previous;
            }
        }
        if let Some(g) = self.get_mut(number) {
            g.state = State::Active;
            g.activated = order;
            g.reason = None;
        }
        self.applying = None;
    }

    /// The switch to `number` is given up: it is marked `state` (failed or
    /// rolled back) with `reason`; the active generation stays.
    pub fn give_up(&mut self, number: u64, state: State, reason: &str) {
        if let Some(g) = self.get_mut(number) {
            if g.state != State::Active {
                g.state = state;
                g.reason = Some(reason.to_string());
            }
        }
        self.applying = None;
    }

    /// At boot: a switch that was in progress when jarvisd stopped is
    /// given up (a new generation is marked failed; a rollback's target
    /// keeps its state), so jarvisd runs the generation active before it.
    /// True if the record changed.
    pub fn recover(&mut self) -> bool {
        let Some(n) = self.applying else {
            return false;
        };
        if self.get(n).is_some_and(|g| g.state == State::Applying) {
            self.give_up(n, State::Failed, "jarvisd stopped during its apply");
        }
        self.applying = None;
        true
    }

    /// The generation `rollback [N]` goes to: `N`, or the one that was
    /// active last before the active one.
    pub fn rollback_target(&self, number: Option<u64>) -> Result<&Generation, String> {
        match number {
            Some(n) => {
                let g = self
                    .get(n)
                    .ok_or_else(|| format!("there is no generation {n}"))?;
                match g.state {
                    State::Active => Err(format!("generation {n} is active already")),
                    State::Applying => Err(format!("generation {n} is being applied")),
                    _ => Ok(g),
                }
            }
            None => self
                .generations
                .iter()
                .filter(|g| g.state == State::Previous)
                .max_by_key(|g| (g.activated, g.number))
                .ok_or_else(|| "there is no previous generation to roll back to".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(number: u64) -> Generation {
        Generation {
            number,
            revision: format!("{number:040}"),
            date: "2026-01-01T00:00:00Z".into(),
            state: State::Applying,
            path: ".".into(),
            repo: "/srv/homelab".into(),
            activated: 0,
            reason: None,
        }
    }

    fn states(r: &Record) -> Vec<(u64, State)> {
        r.generations.iter().map(|g| (g.number, g.state)).collect()
    }

    #[test]
    fn a_switch_makes_the_new_one_active_and_the_old_one_previous() {
        let mut r = Record::default();
        assert_eq!(r.next_number(), 1);
        r.begin_new(generation(1));
        assert_eq!(r.applying, Some(1));
        assert!(r.active().is_none());
        r.switch(1);
        r.begin_new(generation(2));
        r.switch(2);
        assert_eq!(states(&r), [(1, State::Previous), (2, State::Active)]);
        assert_eq!(r.applying, None);
        assert_eq!(r.next_number(), 3);
        // A failed gate: marked, and the active one stays.
        r.begin_new(generation(3));
        r.give_up(3, State::RolledBack, "c: unhealthy");
        assert_eq!(
            states(&r),
            [
                (1, State::Previous),
                (2, State::Active),
                (3, State::RolledBack)
            ]
        );
        assert_eq!(r.get(3).unwrap().reason.as_deref(), Some("c: unhealthy"));
        // Rollback without a number: the one active last before.
        assert_eq!(r.rollback_target(None).unwrap().number, 1);
        r.begin_existing(1);
        r.switch(1);
        assert_eq!(r.active().unwrap().number, 1);
        assert_eq!(r.rollback_target(None).unwrap().number, 2);
        assert!(r.rollback_target(Some(1)).is_err());
        assert!(r.rollback_target(Some(9)).is_err());
        assert_eq!(r.rollback_target(Some(3)).unwrap().number, 3);
    }

    #[test]
    fn recovery_gives_up_the_switch_in_progress() {
        let mut r = Record::default();
        r.begin_new(generation(1));
        r.switch(1);
        r.begin_new(generation(2));
        assert!(r.recover());
        assert_eq!(states(&r), [(1, State::Active), (2, State::Failed)]);
        assert!(!r.recover());
        // A rollback in progress: its target keeps its state.
        r.begin_existing(2);
        assert!(r.recover());
        assert_eq!(states(&r), [(1, State::Active), (2, State::Failed)]);
    }

    #[test]
    fn saved_and_loaded_durably_with_unknown_fields_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), Record::default());
        let mut r = Record::default();
        r.begin_new(generation(1));
        r.switch(1);
        r.save(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), r);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains("\"state\": \"active\""), "{text}");
        let newer = r#"{"generations": [{"number": 4, "revision": "abc", "date": "d",
            "state": "rolled-back", "path": "units", "later": true}], "also": 1}"#;
        std::fs::write(path(dir.path()), newer).unwrap();
        let r = Record::load(dir.path()).unwrap();
        assert_eq!(r.generations[0].state, State::RolledBack);
        assert_eq!(r.generations[0].repo, "");
        std::fs::write(path(dir.path()), "[").unwrap();
        assert!(matches!(
            Record::load(dir.path()),
            Err(RecordError::Parse { .. })
        ));
    }
}
