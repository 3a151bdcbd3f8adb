//! The raw result of an inference benchmark (rounds of requests against
//! each form), the checks it must pass before anything is concluded from
//! it, and the [`Analysis`] computed from it: per-metric statistics, the
//! verdict and the recommendation.
//!
//! `jarvisctl bench` sends jarvisd the whole report (see
//! [`Submission`] for the part jarvisd reads); jarvisd runs [`analyze`]
//! again on the rounds it was sent and stores only what it computed itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::stats::{self, Comparison, Difference, Form, Pair};

/// The metrics compared, in the order they are shown; the first is the
/// primary one ([`stats::PRIMARY_METRIC`]).
pub const METRICS: [&str; 4] = [
    "latency_ms",
    "ttft_ms",
    "gen_tokens_per_s",
    "prompt_tokens_per_s",
];

/// The measurements of one request. Times are milliseconds, rates are
/// tokens per second; `None` where neither the server nor the client could
/// say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// From sending the request to receiving the first streamed chunk that
    /// carries generated text. `None` if none did.
    pub ttft_ms: Option<f64>,
    /// From sending the request to the end of the response.
    pub latency_ms: f64,
    /// Prompt tokens, as the server counted them.
    pub prompt_tokens: Option<u64>,
    /// Generated tokens: the server's count where it gives one, else the
    /// number of streamed chunks with text.
    pub gen_tokens: Option<u64>,
    /// Prompt processing rate: the server's timings where given, else
    /// `prompt_tokens / ttft`.
    pub prompt_tokens_per_s: Option<f64>,
    /// Generation rate: the server's timings where given, else
    /// `(gen_tokens - 1) / (last token - first token)` as the client saw it.
    pub gen_tokens_per_s: Option<f64>,
}

impl Sample {
    /// The value of a metric by its report name (`ttft_ms`, `latency_ms`,
    /// `gen_tokens_per_s`, `prompt_tokens_per_s`); `None` for a value that
    /// is missing or not finite.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "ttft_ms" => self.ttft_ms,
            "latency_ms" => Some(self.latency_ms),
            "gen_tokens_per_s" => self.gen_tokens_per_s,
            "prompt_tokens_per_s" => self.prompt_tokens_per_s,
            _ => None,
        }
        .filter(|v| v.is_finite())
    }
}

/// One round: a run of requests against one form of the unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub form: Form,
    /// Position in the order run, from 0.
    pub index: usize,
    /// When the round's first request was sent, in milliseconds since the
    /// bench started.
    #[serde(default)]
    pub start_ms: u64,
    /// From the first request sent to the last reply read.
    #[serde(default)]
    pub duration_ms: f64,
    /// The successful requests, in order.
    pub samples: Vec<Sample>,
    /// The failed requests' errors, in order.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl Round {
    /// An empty round.
    pub fn new(form: Form, index: usize, start_ms: u64) -> Self {
        Round {
            form,
            index,
            start_ms,
            duration_ms: 0.0,
            samples: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// This round's values of one metric (see [`Sample::metric`]).
    pub fn values(&self, metric: &str) -> Vec<f64> {
        self.samples
            .iter()
            .filter_map(|s| s.metric(metric))
            .collect()
    }
}

/// Why a result cannot be concluded from: nothing may be recommended from
/// failed or missing data.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No rounds of one form (or none at all).
    NoRounds { form: Form },
    /// A round had failed requests.
    FailedRequests {
        round: usize,
        form: Form,
        failed: usize,
        first: String,
    },
    /// A round has no successful request.
    EmptyRound { round: usize, form: Form },
    /// Rounds are compared in native/container pairs, run back to back.
    Unpaired { native: usize, container: usize },
    /// A metric some rounds have has no value in this one.
    MissingMetric {
        metric: String,
        round: usize,
        form: Form,
    },
    /// `max_slowdown` is not a fraction in `0..1`.
    BadMaxSlowdown(f64),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoRounds { form } => write!(f, "no {form} round was measured"),
            Refusal::FailedRequests {
                round,
                form,
                failed,
                first,
            } => write!(
                f,
                "round {} ({form}) had {failed} failed request(s), the first: {first}",
                round + 1
            ),
            Refusal::EmptyRound { round, form } => {
                write!(f, "round {} ({form}) has no successful request", round + 1)
            }
            Refusal::Unpaired { native, container } => write!(
                f,
                "{native} native and {container} container rounds: rounds are compared in native/container pairs"
            ),
            Refusal::MissingMetric {
                metric,
                round,
                form,
            } => write!(
                f,
                "round {} ({form}) has no {metric} values while other rounds have them",
                round + 1
            ),
            Refusal::BadMaxSlowdown(x) => {
                write!(f, "max_slowdown {x} is not a fraction between 0 and 1")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// The rounds of each form, in the order run: `(native, container)`.
fn by_form(rounds: &[Round]) -> (Vec<&Round>, Vec<&Round>) {
    let mut v: Vec<&Round> = rounds.iter().collect();
    v.sort_by_key(|r| r.index);
    v.into_iter().partition(|r| r.form == Form::Native)
}

/// Whether conclusions may be drawn from `rounds`: both forms measured, in
/// as many native as container rounds (paired in the order run), every
/// round with at least one successful request and no failed one, and every
/// metric either measured in every round or in none (a server that never
/// reports a figure is fine; a form or a round that stopped reporting it is
/// not). The first problem found is returned.
pub fn check(rounds: &[Round], max_slowdown: f64) -> Result<(), Refusal> {
    if !(max_slowdown.is_finite() && (0.0..1.0).contains(&max_slowdown)) {
        return Err(Refusal::BadMaxSlowdown(max_slowdown));
    }
    let (native, container) = by_form(rounds);
    for (form, side) in [(Form::Native, &native), (Form::Container, &container)] {
        if side.is_empty() {
            return Err(Refusal::NoRounds { form });
        }
    }
    let mut ordered: Vec<&Round> = rounds.iter().collect();
    ordered.sort_by_key(|r| r.index);
    for r in &ordered {
        if let Some(first) = r.errors.first() {
            return Err(Refusal::FailedRequests {
                round: r.index,
                form: r.form,
                failed: r.errors.len(),
                first: first.clone(),
            });
        }
        if r.samples.is_empty() {
            return Err(Refusal::EmptyRound {
                round: r.index,
                form: r.form,
            });
        }
    }
    if native.len() != container.len() {
        return Err(Refusal::Unpaired {
            native: native.len(),
            container: container.len(),
        });
    }
    for metric in METRICS {
        if ordered.iter().all(|r| r.values(metric).is_empty()) {
            continue;
        }
        if let Some(r) = ordered.iter().find(|r| r.values(metric).is_empty()) {
            return Err(Refusal::MissingMetric {
                metric: metric.to_string(),
                round: r.index,
                form: r.form,
            });
        }
    }
    Ok(())
}

/// Median, nearest-rank p95 and count of one metric on one side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SideStats {
    pub median: f64,
    pub p95: f64,
    pub n: usize,
}

impl SideStats {
    /// `None` for no values.
    pub fn of(xs: &[f64]) -> Option<Self> {
        Some(SideStats {
            median: stats::median(xs)?,
            p95: stats::p95(xs)?,
            n: xs.len(),
        })
    }
}

/// One metric, native against container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReport {
    pub native: SideStats,
    pub container: SideStats,
    /// `container.median / native.median`.
    pub ratio: f64,
    /// The 95% paired-round bootstrap CI of `ratio`; `None` (null) with
    /// fewer than two pairs of rounds.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Throughputs: a larger value is better. Times: a smaller one.
    pub higher_is_better: bool,
    pub difference: Difference,
    /// The sentence of [`stats::verdict`].
    pub verdict: String,
}

impl MetricReport {
    /// The comparison of `metric` over paired rounds (`(native, container)`
    /// values per pair); `None` if a side has no values (or the native
    /// median is zero).
    pub fn compute(metric: &str, pairs: &[(Vec<f64>, Vec<f64>)]) -> Option<Self> {
        let native: Vec<f64> = pairs.iter().flat_map(|p| p.0.iter().copied()).collect();
        let container: Vec<f64> = pairs.iter().flat_map(|p| p.1.iter().copied()).collect();
        let n = SideStats::of(&native)?;
        let c = SideStats::of(&container)?;
        let pairs: Vec<Pair<'_>> = pairs
            .iter()
            .map(|(n, c)| Pair {
                native: n,
                container: c,
            })
            .collect();
        let cmp = stats::compare(&pairs)?;
        let (verdict, difference) = stats::verdict_for(metric, &cmp);
        Some(MetricReport {
            native: n,
            container: c,
            ratio: cmp.ratio,
            ci_low: cmp.ci.map(|c| c.0),
            ci_high: cmp.ci.map(|c| c.1),
            higher_is_better: stats::higher_is_better(metric),
            difference,
            verdict,
        })
    }

    pub fn comparison(&self) -> Comparison {
        Comparison {
            ratio: self.ratio,
            ci: self.ci_low.zip(self.ci_high),
        }
    }
}

/// What the rounds show: the per-metric comparisons, the verdict and the
/// recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Successful requests, all rounds together.
    pub requests: usize,
    /// Failed requests, all rounds together.
    pub errors: usize,
    /// By metric name; see [`METRICS`]. A metric no round measured is left
    /// out.
    pub metrics: BTreeMap<String, MetricReport>,
    /// The primary metric's verdict.
    pub verdict: String,
    pub recommendation: Form,
    /// Why [`recommendation`](Self::recommendation).
    pub reason: String,
}

/// [`check`]s the rounds, then pairs the i-th native round with the i-th
/// container round (in the order run), compares every metric the rounds
/// measured (pooled ratio of medians, paired-round bootstrap CI) and
/// recommends a form (see [`stats::recommend`]).
pub fn analyze(rounds: &[Round], max_slowdown: f64) -> Result<Analysis, Refusal> {
    check(rounds, max_slowdown)?;
    let (native, container) = by_form(rounds);
    let metrics: BTreeMap<String, MetricReport> = METRICS
        .iter()
        .filter_map(|&m| {
            let pairs: Vec<(Vec<f64>, Vec<f64>)> = native
                .iter()
                .zip(&container)
                .map(|(n, c)| (n.values(m), c.values(m)))
                .collect();
            MetricReport::compute(m, &pairs).map(|r| (m.to_string(), r))
        })
        .collect();
    let comparisons = metrics
        .iter()
        .map(|(k, m)| (k.clone(), m.comparison()))
        .collect();
    let (recommendation, reason) = stats::recommend(&comparisons, max_slowdown);
    let verdict = match metrics.get(stats::PRIMARY_METRIC) {
        Some(m) => m.verdict.clone(),
        None => format!(
            "{}: no data from both forms to compare",
            stats::PRIMARY_METRIC
        ),
    };
    Ok(Analysis {
        requests: rounds.iter().map(|r| r.samples.len()).sum(),
        errors: rounds.iter().map(|r| r.errors.len()).sum(),
        metrics,
        verdict,
        recommendation,
        reason,
    })
}

/// The raw part of a benchmark result: what jarvisd reads from the report
/// `jarvisctl bench` sends (`BenchResult`), ignoring every computed field.
/// The stored result is this plus the [`Analysis`] jarvisd computes from
/// it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub unit: String,
    /// The inference API measured (`ollama`, `openai`, `llamacpp`).
    pub api: String,
    /// When the measurement ended, RFC 3339.
    #[serde(default)]
    pub created: String,
    /// The slowdown of the primary metric the container may have and still
    /// be recommended, as a fraction (0.05 = 5%).
    pub max_slowdown: f64,
    pub rounds: Vec<Round>,
}

/// A [`Submission`] and the [`Analysis`] of it: the JSON jarvisd stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub submission: Submission,
    #[serde(flatten)]
    pub analysis: Analysis,
}

impl Submission {
    /// [`analyze`]s the rounds.
    pub fn analyze(self) -> Result<Record, Refusal> {
        let analysis = analyze(&self.rounds, self.max_slowdown)?;
        Ok(Record {
            submission: self,
            analysis,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
    /// slower on latency, the same on ttft and on tokens/s.
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
    fn analysis_of_clean_rounds() {
        let a = analyze(&fixture(), 0.05).unwrap();
        assert_eq!((a.requests, a.errors), (20, 0));
        assert_eq!(
            a.metrics.keys().collect::<Vec<_>>(),
            ["gen_tokens_per_s", "latency_ms", "ttft_ms"]
        );
        let lat = &a.metrics["latency_ms"];
        assert_eq!(
            lat.native,
            SideStats {
                median: 100.0,
                p95: 102.0,
                n: 10
            }
        );
        assert_eq!(lat.ratio, 1.1);
        assert!(matches!(lat.difference, Difference::Slower(_)));
        assert_eq!(a.verdict, lat.verdict);
        assert_eq!(a.recommendation, Form::Native);
        assert_eq!(a.metrics["ttft_ms"].difference, Difference::Same);
        assert_eq!(
            analyze(&fixture(), 0.2).unwrap().recommendation,
            Form::Container
        );
    }

    #[test]
    fn refuses_failed_and_missing_data() {
        let mut failed = fixture();
        failed[3].errors.push("HTTP 500".into());
        assert_eq!(
            analyze(&failed, 0.05).unwrap_err(),
            Refusal::FailedRequests {
                round: 3,
                form: Form::Container,
                failed: 1,
                first: "HTTP 500".into()
            }
        );
        assert_eq!(
            analyze(&failed, 0.05).unwrap_err().to_string(),
            "round 4 (container) had 1 failed request(s), the first: HTTP 500"
        );

        let mut empty = fixture();
        empty[2].samples.clear();
        assert_eq!(
            check(&empty, 0.05),
            Err(Refusal::EmptyRound {
                round: 2,
                form: Form::Native
            })
        );

        // The container stopped reporting tokens/s: not a comparison.
        let mut missing = fixture();
        for s in &mut missing[1].samples {
            s.gen_tokens_per_s = None;
        }
        assert_eq!(
            check(&missing, 0.05),
            Err(Refusal::MissingMetric {
                metric: "gen_tokens_per_s".into(),
                round: 1,
                form: Form::Container
            })
        );
        // A figure no round has (the server never gives it) is left out.
        let mut never = fixture();
        for r in &mut never {
            for s in &mut r.samples {
                s.gen_tokens_per_s = None;
            }
        }
        let a = analyze(&never, 0.05).unwrap();
        assert!(!a.metrics.contains_key("gen_tokens_per_s"));

        let native_only = vec![fixture().remove(0)];
        assert_eq!(
            check(&native_only, 0.05),
            Err(Refusal::NoRounds {
                form: Form::Container
            })
        );
        assert_eq!(
            check(&[], 0.05),
            Err(Refusal::NoRounds { form: Form::Native })
        );
        let mut odd = fixture();
        odd.pop();
        assert_eq!(
            check(&odd, 0.05),
            Err(Refusal::Unpaired {
                native: 2,
                container: 1
            })
        );
        assert_eq!(
            check(&fixture(), f64::NAN).map_err(|e| matches!(e, Refusal::BadMaxSlowdown(_))),
            Err(true)
        );
        assert!(check(&fixture(), 1.0).is_err());
        assert!(check(&fixture(), -0.1).is_err());
    }

    #[test]
    fn submission_reads_only_raw_fields_and_recomputes() {
        let a = analyze(&fixture(), 0.05).unwrap();
        let mut sent = serde_json::to_value(Record {
            submission: Submission {
                unit: "llm".into(),
                api: "llamacpp".into(),
                created: "2026-01-02T03:04:05Z".into(),
                max_slowdown: 0.05,
                rounds: fixture(),
            },
            analysis: a.clone(),
        })
        .unwrap();
        // A client that claims another verdict is not believed.
        sent["recommendation"] = "container".into();
        sent["verdict"] = "latency_ms: no difference beyond noise".into();
        let sub: Submission = serde_json::from_value(sent).unwrap();
        let rec = sub.analyze().unwrap();
        assert_eq!(rec.analysis, a);
        assert_eq!(rec.analysis.recommendation, Form::Native);
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(v["recommendation"], "native");
        assert_eq!(v["unit"], "llm");
        assert_eq!(v["rounds"][1]["form"], "container");
        assert_eq!(v["metrics"]["latency_ms"]["native"]["n"], 10);
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, rec);
    }
}
