//! Pure statistics for comparing the container form of a service with its
//! native form: medians, nearest-rank percentiles, the container/native ratio
//! of medians with a percentile-bootstrap confidence interval, verdicts, and
//! the recommendation.
//!
//! Everything here is deterministic: the bootstrap draws from a fixed-seed
//! [`SplitMix64`], so the same samples always give the same interval.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How many resamples the bootstrap draws.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The seed of the bootstrap's generator (any constant would do; fixed so
/// that reports are reproducible).
pub const BOOTSTRAP_SEED: u64 = 0x6a61_7276_6973_2d62; // "jarvis-b"

/// The metric the recommendation rests on.
pub const PRIMARY_METRIC: &str = "latency_ms";

/// A form the service can run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    Native,
    Container,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Native => "native",
            Form::Container => "container",
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the container compares with native on one metric, in percent
/// (always positive; 4.1 means 4.1%).
///
/// For lower-is-better metrics (times) the percentage is `|ratio - 1|`: a
/// ratio of 1.041 is 4.1% slower, 0.9 is 10% faster. For higher-is-better
/// metrics (tokens/s) a ratio of 0.95 is 5% slower (5% less throughput) and
/// 1.2 is 20% faster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "pct", rename_all = "lowercase")]
pub enum Difference {
    Slower(f64),
    Faster(f64),
    Same,
}

/// Whether a larger value of this metric is better (throughputs, named
/// `*_per_s`) or worse (times).
pub fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("_per_s")
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median: the middle value, or the mean of the two middle values when
/// there is an even number. `None` for no values.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(median_sorted(&sorted(xs)))
}

fn nearest_rank_sorted(v: &[f64], p: f64) -> f64 {
    let n = v.len();
    let rank = (p * n as f64).ceil() as usize;
    v[rank.clamp(1, n) - 1]
}

/// The `p`-th percentile (`p` in 0..=1) by the nearest-rank method: the
/// smallest value such that at least `p` of the values are at or below it,
/// i.e. the value of 1-based rank `ceil(p * n)` in ascending order (rank 1
/// for `p = 0`). Always one of the values, no interpolation. `None` for no
/// values.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(nearest_rank_sorted(&sorted(xs), p.clamp(0.0, 1.0)))
}

/// The 95th percentile, nearest-rank (see [`percentile`]): with 20 values it
/// is the 19th smallest, with 10 or fewer it is the largest.
pub fn p95(xs: &[f64]) -> Option<f64> {
    percentile(xs, 0.95)
}

/// `median(container) / median(native)`; `None` when a side is empty or the
/// native median is not positive.
pub fn ratio_of_medians(container: &[f64], native: &[f64]) -> Option<f64> {
    let c = median(container)?;
    let n = median(native)?;
    let r = c / n;
    (n > 0.0 && r.is_finite()).then_some(r)
}

/// A small, fast, seedable generator (SplitMix64, Steele et al. 2014):
/// good enough for resampling, and identical on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift; the
    /// bias is below 2^-32 for any sample count this sees.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

fn resample_median(xs: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..xs.len()).map(|_| xs[rng.below(xs.len())]));
    buf.sort_by(f64::total_cmp);
    median_sorted(buf)
}

/// A percentile-bootstrap 95% confidence interval of
/// `median(container) / median(native)`.
///
/// Each of `resamples` rounds draws `container.len()` values from the
/// container side and `native.len()` values from the native side, each with
/// replacement and independently, and takes the ratio of their medians; the
/// interval is the 2.5th and 97.5th nearest-rank percentiles of those
/// ratios. Resamples whose ratio is not finite (a zero native median) are
/// dropped. `None` when a side has fewer than two values (there is no spread
/// to resample) or no resample gave a finite ratio.
pub fn bootstrap_ratio_ci(
    container: &[f64],
    native: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if container.len() < 2 || native.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut buf = Vec::with_capacity(container.len().max(native.len()));
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let c = resample_median(container, &mut rng, &mut buf);
        let n = resample_median(native, &mut rng, &mut buf);
        let r = c / n;
        if r.is_finite() && n > 0.0 {
            ratios.push(r);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some((
        nearest_rank_sorted(&ratios, 0.025),
        nearest_rank_sorted(&ratios, 0.975),
    ))
}

/// The container/native comparison of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// `median(container) / median(native)`.
    pub ratio: f64,
    /// The 95% bootstrap CI of `ratio`; `None` with fewer than two samples
    /// on a side.
    pub ci: Option<(f64, f64)>,
}

/// [`ratio_of_medians`] and [`bootstrap_ratio_ci`] (with
/// [`BOOTSTRAP_RESAMPLES`] and [`BOOTSTRAP_SEED`]) together; `None` when there
/// is no ratio.
pub fn compare(container: &[f64], native: &[f64]) -> Option<Comparison> {
    let ratio = ratio_of_medians(container, native)?;
    let ci = bootstrap_ratio_ci(container, native, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    Some(Comparison { ratio, ci })
}

/// A sentence about one metric, and the difference it states.
///
/// If the CI includes 1.0: `"latency_ms: no difference beyond noise
/// (container/native 1.012, 95% CI 0.980 to 1.040)"` and
/// [`Difference::Same`]. Otherwise `"latency_ms: container is 4.1% slower
/// (95% CI 2.0% to 6.3%)"` (or `faster`), where the direction is read from
/// the CI's side of 1.0 and from `higher_is_better`, and the percentages are
/// `|x - 1|` of the ratio and of the CI bounds (see [`Difference`]).
pub fn verdict(
    metric: &str,
    ratio: f64,
    ci: (f64, f64),
    higher_is_better: bool,
) -> (String, Difference) {
    let (lo, hi) = if ci.0 <= ci.1 { ci } else { (ci.1, ci.0) };
    if lo <= 1.0 && 1.0 <= hi {
        return (
            format!(
                "{metric}: no difference beyond noise (container/native {ratio:.3}, 95% CI {lo:.3} to {hi:.3})"
            ),
            Difference::Same,
        );
    }
    let container_larger = lo > 1.0;
    let slower = container_larger != higher_is_better;
    let pct = (ratio - 1.0).abs() * 100.0;
    let (a, b) = ((lo - 1.0).abs() * 100.0, (hi - 1.0).abs() * 100.0);
    let (pct_lo, pct_hi) = if a <= b { (a, b) } else { (b, a) };
    let word = if slower { "slower" } else { "faster" };
    let sentence =
        format!("{metric}: container is {pct:.1}% {word} (95% CI {pct_lo:.1}% to {pct_hi:.1}%)");
    let diff = if slower {
        Difference::Slower(pct)
    } else {
        Difference::Faster(pct)
    };
    (sentence, diff)
}

/// [`verdict`] for a [`Comparison`] that may lack a CI: without one, the
/// sentence says there were too few samples, and the difference is
/// [`Difference::Same`] (nothing was shown).
pub fn verdict_for(metric: &str, cmp: &Comparison) -> (String, Difference) {
    match cmp.ci {
        Some(ci) => verdict(metric, cmp.ratio, ci, higher_is_better(metric)),
        None => (
            format!(
                "{metric}: too few samples for a confidence interval (container/native {:.3})",
                cmp.ratio
            ),
            Difference::Same,
        ),
    }
}

/// Which form to run, and why.
///
/// The container is preferred (it isolates the service) unless it is
/// measurably slower than `max_slowdown` (a fraction: 0.05 is 5%) on
/// [`PRIMARY_METRIC`]: native is recommended only when the lower bound of
/// the container's slowdown CI exceeds `max_slowdown`, i.e. even the most
/// favourable reading of the data has the container too slow. The slowdown
/// of a lower-is-better metric is `ratio - 1`; of a higher-is-better one,
/// `1 - ratio`. Without the primary metric, or without its CI, the container
/// stays recommended and the reason says so.
pub fn recommend(metrics: &BTreeMap<String, Comparison>, max_slowdown: f64) -> (Form, String) {
    let allowed = max_slowdown * 100.0;
    let Some(cmp) = metrics.get(PRIMARY_METRIC) else {
        return (
            Form::Container,
            format!("no {PRIMARY_METRIC} data from both forms, so the container's isolation wins"),
        );
    };
    let Some((lo, hi)) = cmp.ci else {
        return (
            Form::Container,
            format!(
                "too few {PRIMARY_METRIC} samples to show the container slower, so its isolation wins"
            ),
        );
    };
    let (s_lo, s_hi) = if higher_is_better(PRIMARY_METRIC) {
        (1.0 - hi, 1.0 - lo)
    } else {
        (lo - 1.0, hi - 1.0)
    };
    if s_lo > max_slowdown {
        (
            Form::Native,
            format!(
                "the container is measurably slower than the {allowed:.1}% allowed on {PRIMARY_METRIC} (slowdown 95% CI {:.1}% to {:.1}%)",
                s_lo * 100.0,
                s_hi * 100.0
            ),
        )
    } else {
        (
            Form::Container,
            format!(
                "the container isolates at no measurable cost beyond the {allowed:.1}% allowed on {PRIMARY_METRIC} (slowdown 95% CI {:.1}% to {:.1}%)",
                s_lo * 100.0,
                s_hi * 100.0
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn p95_nearest_rank() {
        let xs: Vec<f64> = (1..=20).map(f64::from).rev().collect();
        // ceil(0.95 * 20) = 19th smallest.
        assert_eq!(p95(&xs), Some(19.0));
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&xs), Some(95.0));
        // ceil(0.95 * 10) = 10: the largest.
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p95(&xs), Some(10.0));
        assert_eq!(p95(&[42.0]), Some(42.0));
        assert_eq!(p95(&[]), None);
        assert_eq!(percentile(&[5.0, 1.0, 3.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[5.0, 1.0, 3.0], 0.5), Some(3.0));
        assert_eq!(percentile(&[5.0, 1.0, 3.0], 1.0), Some(5.0));
    }

    #[test]
    fn ratio_of_medians_exact() {
        let native = [100.0, 102.0, 98.0, 101.0, 99.0];
        let container = [110.0, 112.0, 108.0, 111.0, 109.0];
        assert_eq!(ratio_of_medians(&container, &native), Some(1.1));
        assert_eq!(ratio_of_medians(&[], &native), None);
        assert_eq!(ratio_of_medians(&container, &[0.0]), None);
    }

    #[test]
    fn splitmix_is_deterministic_and_uniformish() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // The reference first output for seed 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut rng = SplitMix64::new(7);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[rng.below(4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    fn clearly_slower() -> (Vec<f64>, Vec<f64>) {
        // native ~100 ms, container ~110 ms, small spread.
        let native: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i % 5) - 2.0).collect();
        let container: Vec<f64> = (0..20).map(|i| 110.0 + f64::from(i % 5) - 2.0).collect();
        (container, native)
    }

    #[test]
    fn bootstrap_ci_clearly_different() {
        let (container, native) = clearly_slower();
        assert_eq!(ratio_of_medians(&container, &native), Some(1.1));
        let (lo, hi) = bootstrap_ratio_ci(&container, &native, 2000, BOOTSTRAP_SEED).unwrap();
        // Medians move by at most ±1 of the ±2 spread: 109/101 .. 111/99.
        assert!((1.07..=1.1).contains(&lo), "{lo}");
        assert!((1.1..1.13).contains(&hi), "{hi}");
        // About 109.5/101 to 110.5/99 with this seed.
        assert!(
            close(lo, 1.084, 0.01) && close(hi, 1.116, 0.01),
            "{lo} {hi}"
        );
        // Reproducible.
        assert_eq!(
            bootstrap_ratio_ci(&container, &native, 2000, BOOTSTRAP_SEED),
            Some((lo, hi))
        );
    }

    #[test]
    fn bootstrap_ci_identical_and_small() {
        let xs = [50.0; 10];
        assert_eq!(
            bootstrap_ratio_ci(&xs, &xs, 2000, BOOTSTRAP_SEED),
            Some((1.0, 1.0))
        );
        assert_eq!(bootstrap_ratio_ci(&[1.0], &xs, 2000, 1), None);
        assert_eq!(bootstrap_ratio_ci(&xs, &[1.0], 2000, 1), None);
    }

    #[test]
    fn bootstrap_ci_noisy_includes_one() {
        // Same distribution, shuffled differently, wide spread.
        let native = [
            80.0, 120.0, 95.0, 140.0, 70.0, 105.0, 130.0, 90.0, 110.0, 60.0,
        ];
        let container = [
            125.0, 75.0, 100.0, 65.0, 135.0, 85.0, 115.0, 145.0, 92.0, 108.0,
        ];
        let cmp = compare(&container, &native).unwrap();
        // medians: native (95+105)/2 = 100, container (100+108)/2 = 104.
        assert!(close(cmp.ratio, 1.04, 1e-12), "{}", cmp.ratio);
        let (lo, hi) = cmp.ci.unwrap();
        assert!(lo < 1.0 && hi > 1.0, "{lo} {hi}");
        assert!(lo > 0.6 && hi < 1.6, "{lo} {hi}");
    }

    #[test]
    fn verdict_texts() {
        let (s, d) = verdict("latency_ms", 1.012, (0.98, 1.04), false);
        assert_eq!(
            s,
            "latency_ms: no difference beyond noise (container/native 1.012, 95% CI 0.980 to 1.040)"
        );
        assert_eq!(d, Difference::Same);

        let (s, d) = verdict("latency_ms", 1.041, (1.02, 1.063), false);
        assert_eq!(
            s,
            "latency_ms: container is 4.1% slower (95% CI 2.0% to 6.3%)"
        );
        assert!(matches!(d, Difference::Slower(p) if close(p, 4.1, 1e-9)));

        let (s, d) = verdict("ttft_ms", 0.9, (0.85, 0.95), false);
        assert_eq!(
            s,
            "ttft_ms: container is 10.0% faster (95% CI 5.0% to 15.0%)"
        );
        assert!(matches!(d, Difference::Faster(p) if close(p, 10.0, 1e-9)));

        // Higher is better: fewer tokens/s in the container is slower.
        let (s, d) = verdict("gen_tokens_per_s", 0.95, (0.93, 0.97), true);
        assert_eq!(
            s,
            "gen_tokens_per_s: container is 5.0% slower (95% CI 3.0% to 7.0%)"
        );
        assert!(matches!(d, Difference::Slower(p) if close(p, 5.0, 1e-9)));
        let (s, d) = verdict("gen_tokens_per_s", 1.2, (1.1, 1.3), true);
        assert_eq!(
            s,
            "gen_tokens_per_s: container is 20.0% faster (95% CI 10.0% to 30.0%)"
        );
        assert!(matches!(d, Difference::Faster(_)));
    }

    #[test]
    fn verdicts_from_samples() {
        let (container, native) = clearly_slower();
        let cmp = compare(&container, &native).unwrap();
        let (s, d) = verdict_for("latency_ms", &cmp);
        assert!(
            s.starts_with("latency_ms: container is 10.0% slower (95% CI "),
            "{s}"
        );
        assert!(matches!(d, Difference::Slower(p) if close(p, 10.0, 1e-9)));

        let same = [50.0, 51.0, 49.0, 50.0];
        let cmp = compare(&same, &same).unwrap();
        let (s, d) = verdict_for("latency_ms", &cmp);
        assert!(s.contains("no difference beyond noise"), "{s}");
        assert_eq!(d, Difference::Same);

        let cmp = compare(&[50.0], &[40.0]).unwrap();
        assert_eq!(cmp.ci, None);
        let (s, d) = verdict_for("latency_ms", &cmp);
        assert_eq!(
            s,
            "latency_ms: too few samples for a confidence interval (container/native 1.250)"
        );
        assert_eq!(d, Difference::Same);
    }

    fn one(metric: &str, ratio: f64, ci: Option<(f64, f64)>) -> BTreeMap<String, Comparison> {
        BTreeMap::from([(metric.to_string(), Comparison { ratio, ci })])
    }

    #[test]
    fn recommendation_both_ways() {
        // Clearly 10% slower with 5% allowed: native.
        let (container, native) = clearly_slower();
        let m = BTreeMap::from([(
            "latency_ms".to_string(),
            compare(&container, &native).unwrap(),
        )]);
        let (form, why) = recommend(&m, 0.05);
        assert_eq!(form, Form::Native, "{why}");
        assert!(
            why.starts_with("the container is measurably slower"),
            "{why}"
        );
        // The same data with 15% allowed: container.
        let (form, why) = recommend(&m, 0.15);
        assert_eq!(form, Form::Container, "{why}");

        // Slower, but the CI's lower bound is within the allowance.
        let (form, why) = recommend(&one("latency_ms", 1.06, Some((1.03, 1.09))), 0.05);
        assert_eq!(form, Form::Container);
        assert_eq!(
            why,
            "the container isolates at no measurable cost beyond the 5.0% allowed on latency_ms (slowdown 95% CI 3.0% to 9.0%)"
        );
        let (form, why) = recommend(&one("latency_ms", 1.08, Some((1.06, 1.10))), 0.05);
        assert_eq!(form, Form::Native);
        assert_eq!(
            why,
            "the container is measurably slower than the 5.0% allowed on latency_ms (slowdown 95% CI 6.0% to 10.0%)"
        );
        // Noise and missing data keep the container.
        assert_eq!(
            recommend(&one("latency_ms", 1.0, Some((0.97, 1.03))), 0.05).0,
            Form::Container
        );
        assert_eq!(
            recommend(&one("latency_ms", 2.0, None), 0.05).0,
            Form::Container
        );
        assert_eq!(
            recommend(&one("ttft_ms", 2.0, Some((1.9, 2.1))), 0.05).0,
            Form::Container
        );
    }

    #[test]
    fn difference_json() {
        assert_eq!(
            serde_json::to_value(Difference::Slower(4.5)).unwrap(),
            serde_json::json!({"kind": "slower", "pct": 4.5})
        );
        assert_eq!(
            serde_json::to_value(Difference::Same).unwrap(),
            serde_json::json!({"kind": "same"})
        );
        assert_eq!(serde_json::to_value(Form::Native).unwrap(), "native");
    }
}
