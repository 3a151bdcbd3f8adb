//! The result of `jarvisctl bench`: the rounds as run, per-metric
//! comparisons, the verdict and the recommendation. Its JSON is what
//! `--json` prints, and what is sent to jarvisd (which reads only `unit`,
//! `api`, `created`, `max_slowdown` and `rounds`, and computes the rest
//! again):
//!
//! ```json
//! {
//!   "unit": "llm", "api": "ollama", "created": "2026-01-02T03:04:05Z",
//!   "max_slowdown": 0.05, "requests": 40, "errors": 0,
//!   "rounds": [
//!     {"form": "native", "index": 0, "start_ms": 0, "duration_ms": 5120.5,
//!      "samples": [{"ttft_ms": 80.1, "latency_ms": 512.3, "prompt_tokens": 12,
//!                   "gen_tokens": 64, "prompt_tokens_per_s": 950.0,
//!                   "gen_tokens_per_s": 130.2}],
//!      "errors": []},
//!     {"form": "container", "index": 1, ...}
//!   ],
//!   "metrics": {
//!     "latency_ms": {"native": {"median": 512.3, "p95": 530.0, "n": 20},
//!                    "container": {"median": 515.0, "p95": 533.1, "n": 20},
//!                    "ratio": 1.005, "ci_low": 0.99, "ci_high": 1.02,
//!                    "higher_is_better": false,
//!                    "difference": {"kind": "same"},
//!                    "verdict": "latency_ms: no difference beyond noise (...)"},
//!     "ttft_ms": {...}, "gen_tokens_per_s": {...}, "prompt_tokens_per_s": {...}
//!   },
//!   "verdict": "latency_ms: no difference beyond noise (...)",
//!   "recommendation": "container",
//!   "reason": "the container isolates at no measurable cost ..."
//! }
//! ```
//!
//! A metric no round measured is left out of `metrics` (one that some
//! rounds measured and others did not is a [`Refusal`]). The CI resamples
//! paired rounds; `ci_low`/`ci_high` are `null` with a single pair.
//! `difference` is `{"kind": "slower"|"faster", "pct": 4.1}` or
//! `{"kind": "same"}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use serde::{Deserialize, Serialize};

pub use jarvis_benchstats::{Analysis, MetricReport, Refusal, Round, SideStats, METRICS};

use super::client::Api;
use super::stats::{Difference, Form};

/// Everything one `jarvisctl bench` run found. Its JSON is also what is sent
/// to jarvisd, which reads only the raw part (`unit`, `api`, `created`,
/// `max_slowdown`, `rounds`: a [`jarvis_benchstats::Submission`]) and
/// computes the rest again itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub unit: String,
    pub api: Api,
    /// When the report was made, RFC 3339 (UTC, seconds).
    pub created: String,
    /// The slowdown of the primary metric the container may have and still
    /// be recommended, as a fraction (0.05 = 5%).
    pub max_slowdown: f64,
    /// Successful requests, all rounds together.
    pub requests: usize,
    /// Failed requests, all rounds together.
    pub errors: usize,
    pub rounds: Vec<Round>,
    /// By metric name; see [`METRICS`].
    pub metrics: BTreeMap<String, MetricReport>,
    /// The primary metric's verdict.
    pub verdict: String,
    pub recommendation: Form,
    /// Why [`recommendation`](Self::recommendation).
    pub reason: String,
}

impl BenchReport {
    /// Checks the rounds and analyses them (see
    /// [`jarvis_benchstats::analyze`]): the i-th native round is paired
    /// with the i-th container round, every metric the rounds measured is
    /// compared, and a form is recommended. A failed request, an empty
    /// round, unpaired rounds or a metric missing from a round is a
    /// [`Refusal`]: no report, and so no recommendation. `created` is now.
    pub fn new(
        unit: impl Into<String>,
        api: Api,
        rounds: Vec<Round>,
        max_slowdown: f64,
    ) -> Result<Self, Refusal> {
        let a = jarvis_benchstats::analyze(&rounds, max_slowdown)?;
        Ok(Self::assemble(unit.into(), api, rounds, max_slowdown, a))
    }

    fn assemble(
        unit: String,
        api: Api,
        rounds: Vec<Round>,
        max_slowdown: f64,
        a: Analysis,
    ) -> Self {
        BenchReport {
            unit,
            api,
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            max_slowdown,
            requests: a.requests,
            errors: a.errors,
            rounds,
            metrics: a.metrics,
            verdict: a.verdict,
            recommendation: a.recommendation,
            reason: a.reason,
        }
    }

    /// The metrics present, in [`METRICS`] order.
    pub fn ordered_metrics(&self) -> impl Iterator<Item = (&'static str, &MetricReport)> {
        METRICS
            .iter()
            .filter_map(|&m| self.metrics.get(m).map(|r| (m, r)))
    }
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn short_verdict(m: &MetricReport) -> String {
    match (m.difference, m.ci_low) {
        (_, None) => "too few samples".to_string(),
        (Difference::Same, _) => "same (noise)".to_string(),
        (Difference::Slower(p), _) => format!("{p:.1}% slower"),
        (Difference::Faster(p), _) => format!("{p:.1}% faster"),
    }
}

/// The report for people: a header line, a table (metric, native
/// median/p95, container median/p95, n, ratio, 95% CI, verdict), the
/// verdict sentence and the recommendation.
pub fn render_text(report: &BenchReport) -> String {
    let mut out = String::new();
    let rounds = |f: Form| report.rounds.iter().filter(|r| r.form == f).count();
    let _ = writeln!(
        out,
        "bench {} ({}): {} requests in {} native + {} container rounds{}",
        report.unit,
        report.api,
        report.requests,
        rounds(Form::Native),
        rounds(Form::Container),
        if report.errors > 0 {
            format!(", {} failed", report.errors)
        } else {
            String::new()
        }
    );
    out.push('\n');
    if report.metrics.is_empty() {
        out.push_str("no metric has values from both forms\n");
    } else {
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
        let header = [
            "METRIC",
            "NATIVE MED/P95",
            "CONTAINER MED/P95",
            "N",
            "RATIO",
            "95% CI",
            "VERDICT",
        ];
        const RIGHT: [&str; 5] = [
            "NATIVE MED/P95",
            "CONTAINER MED/P95",
            "N",
            "RATIO",
            "95% CI",
        ];
        table.set_header(header.into_iter().map(|h| {
            let cell = Cell::new(h);
            if RIGHT.contains(&h) {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
        for (name, m) in report.ordered_metrics() {
            let ci = match m.ci_low.zip(m.ci_high) {
                Some((lo, hi)) => format!("{lo:.3}-{hi:.3}"),
                None => "-".to_string(),
            };
            let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
            table.add_row(vec![
                Cell::new(name),
                right(format!("{} / {}", num(m.native.median), num(m.native.p95))),
                right(format!(
                    "{} / {}",
                    num(m.container.median),
                    num(m.container.p95)
                )),
                right(format!("{}/{}", m.native.n, m.container.n)),
                right(format!("{:.3}", m.ratio)),
                right(ci),
                Cell::new(short_verdict(m)),
            ]);
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        for line in table.to_string().lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push('\n');
    let _ = writeln!(out, "verdict: {}", report.verdict);
    let _ = writeln!(
        out,
        "recommendation: {} (max slowdown {:.1}%)",
        report.recommendation,
        report.max_slowdown * 100.0
    );
    let _ = writeln!(out, "  {}", report.reason);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::Sample;

    fn sample(latency: f64, ttft: f64, tps: Option<f64>) -> Sample {
        Sample {
            ttft_ms: Some(ttft),
            latency_ms: latency,
            prompt_tokens: Some(10),
            gen_tokens: Some(32),
            prompt_tokens_per_s: None,
            gen_tokens_per_s: tps,
        }
    }

    /// Four alternating rounds of five requests; the container is ~10%
    /// slower on latency, the same on ttft and tokens/s; no prompt rate.
    pub(crate) fn fixture() -> Vec<Round> {
        let mut rounds = Vec::new();
        for i in 0..4 {
            let form = if i % 2 == 0 {
                Form::Native
            } else {
                Form::Container
            };
            let mut r = Round::new(form, i, i as u64 * 1000);
            for j in 0..5 {
                let jitter = f64::from(j) - 2.0;
                let lat = match form {
                    Form::Native => 100.0 + jitter,
                    Form::Container => 110.0 + jitter,
                };
                r.samples
                    .push(sample(lat, 20.0 + jitter, Some(50.0 + jitter)));
            }
            r.duration_ms = 500.0;
            rounds.push(r);
        }
        rounds
    }

    #[test]
    fn new_fills_metrics_and_recommendation() {
        let report = BenchReport::new("llm", Api::Ollama, fixture(), 0.05).unwrap();
        assert_eq!(report.requests, 20);
        assert_eq!(report.errors, 0);
        assert_eq!(
            report.metrics.keys().collect::<Vec<_>>(),
            ["gen_tokens_per_s", "latency_ms", "ttft_ms"]
        );
        let lat = &report.metrics["latency_ms"];
        assert_eq!(
            lat.native,
            SideStats {
                median: 100.0,
                p95: 102.0,
                n: 10
            }
        );
        assert_eq!(lat.container.median, 110.0);
        assert_eq!(lat.ratio, 1.1);
        assert!(lat.ci_low.unwrap() > 1.05 && lat.ci_high.unwrap() < 1.15);
        assert!(matches!(lat.difference, Difference::Slower(_)));
        assert_eq!(report.verdict, lat.verdict);
        assert!(report
            .verdict
            .starts_with("latency_ms: container is 10.0% slower"));
        assert_eq!(report.metrics["ttft_ms"].difference, Difference::Same);
        assert_eq!(report.recommendation, Form::Native);
        assert!(report
            .reason
            .starts_with("the container is measurably slower"));
        // RFC 3339, UTC.
        assert!(humantime::parse_rfc3339(&report.created).is_ok());

        let lenient = BenchReport::new("llm", Api::Ollama, fixture(), 0.2).unwrap();
        assert_eq!(lenient.recommendation, Form::Container);
    }

    #[test]
    fn failed_rounds_give_no_recommendation() {
        let mut rounds = fixture();
        rounds[3].errors.push("HTTP 500".into());
        let refusal = BenchReport::new("llm", Api::Ollama, rounds.clone(), 0.05).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "round 4 (container) had 1 failed request(s), the first: HTTP 500"
        );
        // jarvisd, analysing the same rounds if it were sent them, refuses
        // them too.
        let sent = jarvis_benchstats::Submission {
            unit: "llm".into(),
            api: "ollama".into(),
            created: String::new(),
            max_slowdown: 0.05,
            rounds,
        };
        assert_eq!(sent.analyze().unwrap_err(), refusal);
    }

    #[test]
    fn json_shape() {
        let report = BenchReport::new("llm", Api::Llamacpp, fixture(), 0.05).unwrap();
        let v = serde_json::to_value(&report).unwrap();
        for key in [
            "unit",
            "api",
            "requests",
            "created",
            "max_slowdown",
            "rounds",
            "metrics",
            "verdict",
            "recommendation",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["api"], "llamacpp");
        assert_eq!(v["recommendation"], "native");
        assert_eq!(v["rounds"][0]["form"], "native");
        assert_eq!(v["rounds"][1]["form"], "container");
        assert_eq!(v["rounds"][1]["index"], 1);
        assert_eq!(v["rounds"][0]["samples"][0]["latency_ms"], 98.0);
        assert_eq!(v["rounds"][1]["samples"][0]["gen_tokens_per_s"], 48.0);
        assert_eq!(
            v["rounds"][1]["samples"][0]["prompt_tokens_per_s"],
            serde_json::Value::Null
        );
        let lat = &v["metrics"]["latency_ms"];
        for key in ["ratio", "ci_low", "ci_high", "verdict"] {
            assert!(lat.get(key).is_some(), "missing metrics.latency_ms.{key}");
        }
        assert_eq!(lat["native"]["median"], 100.0);
        assert_eq!(lat["native"]["p95"], 102.0);
        assert_eq!(lat["native"]["n"], 10);
        assert_eq!(lat["difference"]["kind"], "slower");
        assert!(v["metrics"].get("prompt_tokens_per_s").is_none());
        // What jarvisd reads from it, and what it computes again, agree.
        let sent: jarvis_benchstats::Submission = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(sent.unit, "llm");
        assert_eq!(sent.api, "llamacpp");
        let again = sent.analyze().unwrap();
        assert_eq!(again.analysis.metrics, report.metrics);
        assert_eq!(again.analysis.recommendation, report.recommendation);
        // Round-trips.
        let back: BenchReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn no_data_on_a_side() {
        let rounds = vec![fixture().remove(0)];
        assert_eq!(
            BenchReport::new("llm", Api::Openai, rounds, 0.05).unwrap_err(),
            Refusal::NoRounds {
                form: Form::Container
            }
        );
    }

    #[test]
    fn text_rendering() {
        let report = BenchReport::new("llm", Api::Ollama, fixture(), 0.05).unwrap();
        let text = render_text(&report);
        assert!(
            text.starts_with("bench llm (ollama): 20 requests in 2 native + 2 container rounds\n"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("METRIC"), "{text}");
        assert!(lines[2].contains("NATIVE MED/P95") && lines[2].contains("95% CI"));
        let lat = lines.iter().find(|l| l.starts_with("latency_ms")).unwrap();
        assert!(lat.contains("100 / 102"), "{lat}");
        assert!(lat.contains("110 / 112"), "{lat}");
        assert!(lat.contains("10/10") && lat.contains("1.100"), "{lat}");
        assert!(lat.contains("10.0% slower"), "{lat}");
        let ttft = lines.iter().find(|l| l.starts_with("ttft_ms")).unwrap();
        assert!(
            ttft.contains("20.0 / 22.0") && ttft.contains("same (noise)"),
            "{ttft}"
        );
        assert!(text.contains("\nverdict: latency_ms: container is 10.0% slower"));
        assert!(text.contains("\nrecommendation: native (max slowdown 5.0%)\n"));
        assert!(lines.iter().all(|l| l.len() == l.trim_end().len()));
    }
}
