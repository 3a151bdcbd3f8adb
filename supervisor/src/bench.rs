//! Stored placement-benchmark results: `<state>/bench/<unit>.json`.
//!
//! jarvisd believes no verdict it is sent. `jarvisctl bench` sends its whole
//! report; of it jarvisd reads only the raw rounds and their settings (a
//! [`Submission`]), analyses them again with the same code the client uses
//! (`jarvis-benchstats`), refuses rounds with failed requests or missing
//! data, and stores its own [`Record`]. Stored files are analysed again when
//! they are loaded, so `run = "auto"` follows only results that pass the
//! checks of this version.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jarvis_benchstats::{Form, Record, Refusal, Submission};
use jarvis_unit::Kind;
use serde::Deserialize as _;

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("bench")
}

/// Why a result was not stored.
#[derive(Debug)]
pub enum StoreError {
    /// The result is not a benchmark report (no rounds, a field of the
    /// wrong type, ...).
    Malformed(serde_json::Error),
    /// The result is for another unit.
    OtherUnit { expected: String, got: String },
    /// Nothing may be concluded from the rounds.
    Refused(Refusal),
    /// Writing the file failed.
    Io { path: PathBuf, err: std::io::Error },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Malformed(e) => write!(f, "not a benchmark result: {e}"),
            StoreError::OtherUnit { expected, got } => {
                write!(f, "the result is for {got:?}, not {expected:?}")
            }
            StoreError::Refused(r) => write!(f, "refused: {r}"),
            StoreError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {}

fn kind(form: Form) -> Kind {
    match form {
        Form::Native => Kind::Native,
        Form::Container => Kind::Container,
    }
}

/// Reads the raw part of `result` and analyses it again.
fn recompute(unit: &str, result: &serde_json::Value) -> Result<Record, StoreError> {
    let sub = Submission::deserialize(result).map_err(StoreError::Malformed)?;
    if sub.unit != unit {
        return Err(StoreError::OtherUnit {
            expected: unit.to_string(),
            got: sub.unit,
        });
    }
    sub.analyze().map_err(StoreError::Refused)
}

/// Every stored recommendation that still passes the checks, each
/// analysed again from its rounds; a file that does not is left out (and
/// logged).
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
        let value = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable benchmark result, ignored");
                continue;
            }
        };
        match recompute(unit, &value) {
            Ok(rec) => {
                out.insert(
                    unit.to_string(),
                    (kind(rec.analysis.recommendation), rec.analysis.verdict),
                );
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "benchmark result not followed");
            }
        }
    }
    out
}

/// Analyses the rounds of `result` (the report `jarvisctl bench` sent for
/// `unit`) again, and stores that analysis (`jarvis_fsutil::write_atomic`, durably); returns
/// the recommended form and the verdict. A result with failed or missing
/// data, or that is not a report of `unit`, is refused and nothing is
/// written. `Ok(None)` is never returned.
pub fn store(
    dir: &Path,
    unit: &str,
    result: &serde_json::Value,
) -> Result<Option<(Kind, String)>, StoreError> {
    let rec = recompute(unit, result)?;
    let path = dir.join(format!("{unit}.json"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| StoreError::Io { path, err }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = serde_json::to_vec_pretty(&rec).map_err(StoreError::Malformed)?;
    jarvis_fsutil::write_atomic(&path, &bytes, jarvis_fsutil::Durability::Durable)
        .map_err(io(&path))?;
    Ok(Some((
        kind(rec.analysis.recommendation),
        rec.analysis.verdict,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_benchstats::{Round, Sample};
    use serde_json::json;

    /// `pairs` native/container pairs of five requests each; the container
    /// takes `slowdown` times as long.
    fn rounds(pairs: usize, slowdown: f64) -> Vec<Round> {
        (0..2 * pairs)
            .map(|i| {
                let form = if i % 2 == 0 {
                    Form::Native
                } else {
                    Form::Container
                };
                let mut r = Round::new(form, i, 0);
                for j in 0..5 {
                    let base = 100.0 + f64::from(j) + (i / 2) as f64;
                    let latency = if form == Form::Container {
                        base * slowdown
                    } else {
                        base
                    };
                    r.samples.push(Sample {
                        ttft_ms: Some(latency / 10.0),
                        latency_ms: latency,
                        prompt_tokens: None,
                        gen_tokens: None,
                        prompt_tokens_per_s: None,
                        gen_tokens_per_s: None,
                    });
                }
                r
            })
            .collect()
    }

    fn sent(rounds: Vec<Round>, claims: serde_json::Value) -> serde_json::Value {
        let mut v = json!({
            "unit": "llm", "api": "llamacpp", "created": "2026-01-02T03:04:05Z",
            "max_slowdown": 0.05, "rounds": rounds,
        });
        for (k, x) in claims.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn stores_its_own_analysis_not_the_clients() {
        let dir = tempfile::tempdir().unwrap();
        // The client claims "container"; the rounds say 20% slower.
        let r = sent(
            rounds(3, 1.2),
            json!({"recommendation": "container", "verdict": "no difference beyond noise"}),
        );
        let (k, verdict) = store(dir.path(), "llm", &r).unwrap().unwrap();
        assert_eq!(k, Kind::Native);
        assert!(
            verdict.starts_with("latency_ms: container is 20.0% slower"),
            "{verdict}"
        );
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("llm.json")).unwrap()).unwrap();
        assert_eq!(stored["recommendation"], "native");
        assert_eq!(stored["verdict"], verdict.as_str());
        assert_eq!(stored["rounds"].as_array().unwrap().len(), 6);
        assert_eq!(stored["metrics"]["latency_ms"]["native"]["n"], 15);
        let all = load_all(dir.path());
        assert_eq!(all["llm"], (Kind::Native, verdict));
    }

    #[test]
    fn refuses_failed_missing_and_malformed_results() {
        let dir = tempfile::tempdir().unwrap();
        let mut failed = rounds(3, 1.0);
        failed[4].errors.push("HTTP 500".into());
        let err = store(
            dir.path(),
            "llm",
            &sent(failed, json!({"recommendation": "container"})),
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::Refused(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "refused: round 5 (native) had 1 failed request(s), the first: HTTP 500"
        );

        let mut missing = rounds(3, 1.0);
        for s in &mut missing[3].samples {
            s.ttft_ms = None;
        }
        let err = store(dir.path(), "llm", &sent(missing, json!({}))).unwrap_err();
        assert!(err.to_string().contains("no ttft_ms values"), "{err}");

        let err = store(
            dir.path(),
            "llm",
            &sent(rounds(3, 1.0)[..3].to_vec(), json!({})),
        )
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Refused(Refusal::Unpaired { .. })),
            "{err}"
        );

        // A verdict with no rounds behind it is not a result.
        let err = store(
            dir.path(),
            "llm",
            &json!({"recommendation": "container", "verdict": "no difference beyond noise"}),
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::Malformed(_)), "{err}");

        let err = store(dir.path(), "web", &sent(rounds(3, 1.0), json!({}))).unwrap_err();
        assert!(matches!(err, StoreError::OtherUnit { .. }), "{err}");

        // Nothing was written by any of them.
        assert_eq!(
            std::fs::read_dir(dir.path())
                .map(|d| d.count())
                .unwrap_or(0),
            0
        );
        assert!(load_all(dir.path()).is_empty());
    }

    #[test]
    fn loading_checks_stored_files_again() {
        let dir = tempfile::tempdir().unwrap();
        // A file in the old form, a client's verdict and no rounds; and one
        // whose rounds had failures.
        std::fs::write(
            dir.path().join("old.json"),
            json!({"recommendation": "native", "verdict": "measured"}).to_string(),
        )
        .unwrap();
        let mut failed = rounds(2, 1.3);
        failed[1].errors.push("timeout".into());
        let mut v = sent(failed, json!({"recommendation": "native"}));
        v["unit"] = "bad".into();
        std::fs::write(dir.path().join("bad.json"), v.to_string()).unwrap();
        std::fs::write(dir.path().join("junk.json"), "{").unwrap();
        store(dir.path(), "llm", &sent(rounds(2, 1.0), json!({}))).unwrap();
        let all = load_all(dir.path());
        assert_eq!(all.keys().collect::<Vec<_>>(), ["llm"]);
        assert_eq!(all["llm"].0, Kind::Container);
    }
}
