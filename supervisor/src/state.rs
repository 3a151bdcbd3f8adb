//! What survives a daemon restart: which units the user stopped.
//!
//! Written to a temporary `.state.json.*.partial` beside it, fsynced,
//! renamed over `state.json`, and the directory fsynced
//! ([`jarvis_fsutil::write_atomic`]), so a crash leaves the old or the new file, never a
//! torn one. Unknown fields are ignored and missing ones default, so older
//! and newer daemons read each other's files.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jarvis_fsutil::{write_atomic, Durability};
use serde::{Deserialize, Serialize};

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub units: BTreeMap<String, PersistedUnit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedUnit {
    /// false once the user stopped the unit: it stays stopped across restarts.
    #[serde(default = "yes")]
    pub wanted: bool,
    /// Who stopped it ("stop", "down"), so `status` still says so after a
    /// restart of jarvisd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

fn yes() -> bool {
    true
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> StateFile {
        StateFile {
            path: state_dir.join("state.json"),
        }
    }

    /// The saved state; a missing file is an empty state.
    pub fn load(&self) -> io::Result<Persisted> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Persisted::default()),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            )),
        }
    }

    pub fn save(&self, state: &Persisted) -> io::Result<()> {
        let mut state = state.clone();
        state.version = STATE_VERSION;
        write_atomic(
            &self.path,
            &serde_json::to_vec_pretty(&state)?,
            Durability::Durable,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::new(dir.path());
        assert_eq!(sf.load().unwrap(), Persisted::default());
        let mut p = Persisted::default();
        p.units.insert(
            "web".into(),
            PersistedUnit {
                wanted: false,
                stopped_by: None,
            },
        );
        sf.save(&p).unwrap();
        let back = sf.load().unwrap();
        assert_eq!(back.units, p.units);
        assert_eq!(back.version, STATE_VERSION);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"], "only the state file is left");
    }

    #[test]
    fn version_one_files_keep_loading() {
        // The first format ever written; it must always load.
        let v1 = r#"{"version":1,"units":{"db":{"wanted":false},"web":{}},"future":"ignored"}"#;
        let p: Persisted = serde_json::from_str(v1).unwrap();
        assert!(!p.units["db"].wanted);
        assert!(p.units["web"].wanted);
    }
}
