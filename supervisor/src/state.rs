//! What survives a daemon restart: which units the user stopped, and the
//! last unit set that loaded cleanly.
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
use std::time::SystemTime;

use jarvis_fsutil::{write_atomic, write_atomic_mode, Durability};
use jarvis_unit::{Unit, UnitSet};
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

/// The last unit set that loaded cleanly from the units directory, kept so
/// that a jarvisd that boots on a directory that does not load (a unit file
/// broken while it was away) runs the set it ran before instead of stopping
/// or exiting. `last-good.json` beside `state.json`, written durably each
/// time the directory loads cleanly, private (unit files may hold secrets in
/// `[env]`).
///
/// The units are kept as jarvis's own `Unit` values, not as copies of their
/// files: what is kept is exactly what ran (a file changed between the load
/// and a copy could not slip in), and its definition digests are those of
/// the runs' records, so runs are re-adopted, not restarted. A file a later
/// jarvisd cannot read is reported, not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastGood {
    #[serde(default)]
    pub version: u32,
    /// The units directory the set was loaded from.
    pub source: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    pub units: Vec<Unit>,
}

pub const LAST_GOOD_VERSION: u32 = 1;

impl LastGood {
    pub fn new(source: &Path, units: impl IntoIterator<Item = Unit>) -> LastGood {
        LastGood {
            version: LAST_GOOD_VERSION,
            source: source.to_path_buf(),
            loaded_at: SystemTime::now(),
            units: units.into_iter().collect(),
        }
    }

    /// The units again as a checked set.
    pub fn set(&self) -> Result<UnitSet, String> {
        UnitSet::from_units(self.units.iter().cloned()).map_err(|diags| {
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// `loaded_at` for people: `2026-11-29 16:00 UTC`.
    pub fn when(&self) -> String {
        let t = humantime::format_rfc3339_seconds(self.loaded_at).to_string();
        // 2026-11-29T16:00:00Z
        match (t.get(..10), t.get(11..16)) {
            (Some(date), Some(hm)) => format!("{date} {hm} UTC"),
            _ => t,
        }
    }
}

/// `last-good.json` in the state directory (see [`LastGood`]).
pub struct LastGoodFile {
    path: PathBuf,
}

impl LastGoodFile {
    pub fn new(state_dir: &Path) -> LastGoodFile {
        LastGoodFile {
            path: state_dir.join("last-good.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The set kept; `None` when none was ever kept. Blocking.
    pub fn load(&self) -> io::Result<Option<LastGood>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            )),
        }
    }

    /// Replaces the set kept, durably. Blocking.
    pub fn save(&self, last: &LastGood) -> io::Result<()> {
        write_atomic_mode(
            &self.path,
            &serde_json::to_vec(last)?,
            Durability::Durable,
            0o600,
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
    #[test]
    fn the_last_good_set_round_trips_with_the_same_definitions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sets = [
            jarvis_unit::load_dir(&root.join("units")).expect("units/ loads"),
            jarvis_unit::load_dir_with(
                &root.join("examples/homelab/units"),
                &jarvis_unit::LoadOptions {
                    base: Some(root.join("examples/homelab")),
                },
            )
            .expect("the homelab loads"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = LastGoodFile::new(dir.path());
        assert_eq!(file.load().unwrap(), None);
        for set in sets {
            assert!(set.units.len() >= 3);
            let last = LastGood::new(Path::new("/etc/jarvis/units"), set.units.values().cloned());
            file.save(&last).unwrap();
            let back = file.load().unwrap().expect("saved");
            assert_eq!(back, last);
            let again = back.set().unwrap();
            assert_eq!(again.units, set.units);
            assert_eq!(
                jarvis_gitops::definitions(&again, None),
                jarvis_gitops::definitions(&set, None)
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private: {mode:o}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["last-good.json"]);
    }

    #[test]
    fn a_last_good_file_that_does_not_read_is_an_error_not_a_set() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("last-good.json"), "{\"units\": 3}").unwrap();
        let err = LastGoodFile::new(dir.path()).load().unwrap_err();
        assert!(err.to_string().contains("last-good.json"), "{err}");
        let last = LastGood {
            loaded_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_968_000),
            ..LastGood::new(Path::new("/u"), [])
        };
        assert_eq!(last.when(), "2026-11-29 16:00 UTC");
    }
}
