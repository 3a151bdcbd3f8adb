//! The plan between two unit sets, and the digest of a unit's definition
//! it compares.
//!
//! A unit's *definition* is what jarvis would run: the parsed unit (so a
//! comment or the order of keys changes nothing), with the paths inside its
//! repository made relative to the repository's root, and the contents of
//! the repository's files it names (env files, secrets). The same unit in
//! two generations has the same definition, although each generation is
//! checked out in a directory of its own; changing a secret file in the
//! repository changes it. The digest is also written into each run's record,
//! so a restarted jarvisd can tell a run of another definition.

use std::collections::BTreeMap;
use std::path::Path;

use jarvis_unit::{Unit, UnitSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Each unit's definition digest, by name.
pub type Definitions = BTreeMap<String, String>;

/// What carrying a new set out does, unit by unit (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// In the new set only.
    pub start: Vec<String>,
    /// In both, with another definition.
    pub restart: Vec<String>,
    /// In the current set only.
    pub stop: Vec<String>,
    /// In both, the same.
    pub unchanged: Vec<String>,
}

impl Plan {
    /// The units the health gate waits for: started and restarted.
    pub fn changed(&self) -> impl Iterator<Item = &String> {
        self.start.iter().chain(&self.restart)
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.restart.is_empty() && self.stop.is_empty()
    }
}

/// The plan from `current` to `next`. Pure.
pub fn plan(current: &Definitions, next: &Definitions) -> Plan {
    let mut p = Plan::default();
    for (name, def) in next {
        match current.get(name) {
            None => p.start.push(name.clone()),
            Some(d) if d != def => p.restart.push(name.clone()),
            Some(_) => p.unchanged.push(name.clone()),
        }
    }
    p.stop = current
        .keys()
        .filter(|n| !next.contains_key(*n))
        .cloned()
        .collect();
    p
}

/// Every unit's definition digest ([`definition`]).
pub fn definitions(set: &UnitSet, root: Option<&Path>) -> Definitions {
    set.units
        .iter()
        .map(|(name, u)| (name.clone(), definition(u, root)))
        .collect()
}

/// The digest of `unit`'s definition (sha256, hex). `root` is the
/// repository the unit came from (its generation's directory), `None` for
/// a plain units directory. Reads the repository's files the unit names:
/// call it off an event loop.
///
/// The unit is hashed as canonical JSON: object keys sorted, and nulls,
/// `false`, empty lists and empty tables left out, so a later jarvis that
/// adds a key with such a default sees the same definition (and does not
/// restart every unit after an upgrade).
pub fn definition(unit: &Unit, root: Option<&Path>) -> String {
    let value = serde_json::to_value(unit).expect("a unit serializes");
    let mut h = Sha256::new();
    let mut files = BTreeMap::new();
    canonical(&value, root, &mut h, &mut files);
    for (rel, content) in files {
        h.update(b"\0file\0");
        h.update(rel.as_bytes());
        h.update(b"\0");
        h.update(content.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_default(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Feeds `v` to `h` canonically; strings that are paths under `root` go in
/// relative to it, and the digest of each such file's content is noted in
/// `files`.
fn canonical(
    v: &serde_json::Value,
    root: Option<&Path>,
    h: &mut Sha256,
    files: &mut BTreeMap<String, String>,
) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().filter(|k| !is_default(&o[*k])).collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                h.update(serde_json::to_string(k).expect("a string").as_bytes());
                h.update(b":");
                canonical(&o[k], root, h, files);
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(a) => {
            h.update(b"[");
            for x in a {
                canonical(x, root, h, files);
                h.update(b",");
            }
            h.update(b"]");
        }
        Value::String(s) => {
            let rel = root.and_then(|r| Path::new(s).strip_prefix(r).ok());
            match rel {
                Some(rel) => {
                    let rel = rel.to_string_lossy().into_owned();
                    h.update(b"@repo/");
                    h.update(serde_json::to_string(&rel).expect("a string").as_bytes());
                    let path = Path::new(s);
                    if path.is_file() {
                        let content = match std::fs::read(path) {
                            Ok(bytes) => hex(&Sha256::digest(&bytes)),
                            Err(e) => format!("unreadable: {e}"),
                        };
                        files.insert(rel, content);
                    }
                }
                None => h.update(serde_json::to_string(s).expect("a string").as_bytes()),
            }
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(pairs: &[(&str, &str)]) -> Definitions {
        pairs
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_starts_restarts_stops_and_leaves_the_rest() {
        let cur = defs(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let next = defs(&[("a", "1"), ("b", "2"), ("d", "1")]);
        let p = plan(&cur, &next);
        assert_eq!(p.start, names(&["d"]));
        assert_eq!(p.restart, names(&["b"]));
        assert_eq!(p.stop, names(&["c"]));
        assert_eq!(p.unchanged, names(&["a"]));
        assert_eq!(p.changed().cloned().collect::<Vec<_>>(), names(&["d", "b"]));
        assert!(!p.is_empty());
        // The same set: nothing to do; from nothing: all start; to nothing:
        // all stop.
        assert!(plan(&next, &next).is_empty());
        assert_eq!(plan(&next, &next).unchanged, names(&["a", "b", "d"]));
        assert_eq!(
            plan(&Definitions::new(), &next).start,
            names(&["a", "b", "d"])
        );
        assert_eq!(
            plan(&next, &Definitions::new()).stop,
            names(&["a", "b", "d"])
        );
    }

    fn load(dir: &Path, text: &str) -> Unit {
        std::fs::create_dir_all(dir.join("units")).unwrap();
        std::fs::write(dir.join("units/web.toml"), text).unwrap();
        jarvis_unit::load_dir(&dir.join("units"))
            .unwrap()
            .units
            .remove("web")
            .unwrap()
    }

    #[test]
    fn a_definition_ignores_comments_and_key_order_but_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(dir.path(), "[native]\ncommand = [\"/bin/sleep\", \"60\"]\n");
        let b = load(
            dir.path(),
            "# the web server\n[native]\n\ncommand = [\"/bin/sleep\", \"60\"] # really\n",
        );
        let c = load(dir.path(), "[native]\ncommand = [\"/bin/sleep\", \"61\"]\n");
        assert_eq!(definition(&a, None), definition(&b, None));
        assert_ne!(definition(&a, None), definition(&c, None));
        assert_eq!(definition(&a, None).len(), 64);
    }

    #[test]
    fn paths_in_the_repository_count_by_content_not_by_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let (g1, g2, g3) = (
            dir.path().join("1"),
            dir.path().join("2"),
            dir.path().join("3"),
        );
        let unit = |root: &Path, env: &str| {
            std::fs::create_dir_all(root).unwrap();
            std::fs::write(root.join("web.env"), env).unwrap();
            let text = format!(
                "env_file = [\"{}\"]\n[native]\ncommand = [\"/bin/true\"]\n",
                root.join("web.env").display()
            );
            load(root, &text)
        };
        let (u1, u2, u3) = (unit(&g1, "A=1\n"), unit(&g2, "A=1\n"), unit(&g3, "A=2\n"));
        assert_ne!(u1, u2, "the paths differ");
        assert_eq!(definition(&u1, Some(&g1)), definition(&u2, Some(&g2)));
        assert_ne!(definition(&u1, Some(&g1)), definition(&u3, Some(&g3)));
        // Without a root an absolute path is only a string.
        assert_ne!(definition(&u1, None), definition(&u2, None));
    }
}
