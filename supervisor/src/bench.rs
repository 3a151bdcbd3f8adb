//! Stored placement-benchmark results: `<state>/bench/<unit>.json`, the
//! JSON `jarvisctl bench` computed, of which jarvisd reads only
//! `recommendation` and `verdict` (so `run = "auto"` can follow them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jarvis_unit::Kind;

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("bench")
}

fn parse(v: &serde_json::Value) -> Option<(Kind, String)> {
    let kind = match v.get("recommendation")?.as_str()? {
        "native" => Kind::Native,
        "container" => Kind::Container,
        _ => return None,
    };
    let verdict = v
        .get("verdict")
        .and_then(|s| s.as_str())
        .unwrap_or("measured")
        .to_string();
    Some((kind, verdict))
}

/// Every stored recommendation.
pub fn load_all(dir: &Path) -> BTreeMap<String, (Kind, String)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Some(unit) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let rec = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .as_ref()
            .and_then(parse);
        if let Some(rec) = rec {
            out.insert(unit.to_string(), rec);
        }
    }
    out
}

/// Stores `result` for `unit` (temp, fsync, rename); its recommendation.
pub fn store(
    dir: &Path,
    unit: &str,
    result: &serde_json::Value,
) -> std::io::Result<Option<(Kind, String)>> {
    use std::io::Write;
    let Some(rec) = parse(result) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{unit}.json"));
    let tmp = path.with_extension("json.partial");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(result)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(Some(rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_recommendations() {
        let dir = tempfile::tempdir().unwrap();
        let r = serde_json::json!({"recommendation": "container", "verdict": "no difference beyond noise"});
        let rec = store(dir.path(), "llm", &r).unwrap().unwrap();
        assert_eq!(rec.0, Kind::Container);
        let all = load_all(dir.path());
        assert_eq!(
            all["llm"],
            (Kind::Container, "no difference beyond noise".into())
        );
        assert!(store(dir.path(), "x", &serde_json::json!({}))
            .unwrap()
            .is_none());
    }
}
