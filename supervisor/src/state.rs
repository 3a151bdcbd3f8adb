//! What survives a daemon restart: which units the user stopped.
//!
//! Written as `state.json.partial`, fsynced, renamed over `state.json`, and
//! the directory fsynced, so a crash leaves the old or the new file, never a
//! torn one. Unknown fields are ignored and missing ones default, so older
//! and newer daemons read each other's files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
        let tmp = self.path.with_extension("json.partial");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&state)?)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
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
        p.units
            .insert("web".into(), PersistedUnit { wanted: false });
        sf.save(&p).unwrap();
        let back = sf.load().unwrap();
        assert_eq!(back.units, p.units);
        assert_eq!(back.version, STATE_VERSION);
        assert!(!dir.path().join("state.json.partial").exists());
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
