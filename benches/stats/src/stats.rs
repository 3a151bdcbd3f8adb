//! Pure statistics for comparing the container form of a service with its
//! native form: medians, nearest-rank percentiles, the container/native ratio
//! of medians with a percentile-bootstrap confidence interval over paired
//! rounds, verdicts, and the recommendation.
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

/// One pair of rounds run back to back: the values of a metric in a native
/// round and in the container round paired with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair<'a> {
    pub native: &'a [f64],
    pub container: &'a [f64],
}

/// `median(all container values) / median(all native values)` over every
/// pair; `None` when a side has no values or the native median is not
/// positive.
pub fn pooled_ratio(pairs: &[Pair<'_>]) -> Option<f64> {
    let (container, native) = pool(pairs, 0..pairs.len());
    ratio_of_medians(&container, &native)
}

/// The values of the pairs at `indices` (repeats allowed), pooled per side:
/// `(container, native)`.
fn pool(pairs: &[Pair<'_>], indices: impl Iterator<Item = usize>) -> (Vec<f64>, Vec<f64>) {
    let mut container = Vec::new();
    let mut native = Vec::new();
    for i in indices {
        container.extend_from_slice(pairs[i].container);
        native.extend_from_slice(pairs[i].native);
    }
    (container, native)
}

/// A percentile-bootstrap 95% confidence interval of the container/native
/// ratio of medians, resampling *rounds*, not requests.
///
/// Requests within a round share that round's conditions (the server's
/// warm state, what else the machine did at the time), so they are not
/// independent draws, and rounds run back to back (a native round and the
/// container round after it) share the slower drifts of the machine. So
/// the unit of resampling is the pair: each of `resamples` draws picks
/// `pairs.len()` pair indices with replacement, pools the native values and
/// the container values of the chosen pairs, and takes the ratio of the two
/// medians. The interval is the 2.5th and 97.5th nearest-rank percentiles
/// of those ratios. Draws whose ratio is not finite (a zero native median,
/// or a side with no values) are dropped. `None` with fewer than two pairs
/// (there is no spread between rounds to resample) or when no draw gave a
/// finite ratio.
pub fn paired_bootstrap_ratio_ci(
    pairs: &[Pair<'_>],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if pairs.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let picks: Vec<usize> = (0..pairs.len()).map(|_| rng.below(pairs.len())).collect();
        let (container, native) = pool(pairs, picks.into_iter());
        if let Some(r) = ratio_of_medians(&container, &native) {
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
    /// `median(container) / median(native)`, all rounds pooled.
    pub ratio: f64,
    /// The 95% paired-round bootstrap CI of `ratio`; `None` with fewer than
    /// two pairs of rounds.
    pub ci: Option<(f64, f64)>,
}

/// [`pooled_ratio`] and [`paired_bootstrap_ratio_ci`] (with
/// [`BOOTSTRAP_RESAMPLES`] and [`BOOTSTRAP_SEED`]) together; `None` when there
/// is no ratio.
pub fn compare(pairs: &[Pair<'_>]) -> Option<Comparison> {
    let ratio = pooled_ratio(pairs)?;
    let ci = paired_bootstrap_ratio_ci(pairs, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
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
/// sentence says there were too few rounds, and the difference is
/// [`Difference::Same`] (nothing was shown).
pub fn verdict_for(metric: &str, cmp: &Comparison) -> (String, Difference) {
    match cmp.ci {
        Some(ci) => verdict(metric, cmp.ratio, ci, higher_is_better(metric)),
        None => (
            format!(
                "{metric}: too few rounds for a confidence interval (container/native {:.3})",
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
                "too few rounds of {PRIMARY_METRIC} to show the container slower, so its isolation wins"
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

    /// Rounds of `per_round` values each, cut from `native` and `container`
    /// in order; the i-th native round is paired with the i-th container
    /// round.
    struct Rounds {
        native: Vec<Vec<f64>>,
        container: Vec<Vec<f64>>,
    }

    impl Rounds {
        fn cut(container: &[f64], native: &[f64], per_round: usize) -> Rounds {
            Rounds {
                native: native.chunks(per_round).map(<[f64]>::to_vec).collect(),
                container: container.chunks(per_round).map(<[f64]>::to_vec).collect(),
            }
        }

        fn pairs(&self) -> Vec<Pair<'_>> {
            self.native
                .iter()
                .zip(&self.container)
                .map(|(n, c)| Pair {
                    native: n,
                    container: c,
                })
                .collect()
        }
    }

    /// The bootstrap that treats every request as an independent draw:
    /// each side's values pooled and resampled on their own. Kept here only
    /// to show what resampling by round changes.
    fn pooled_bootstrap_ratio_ci(
        container: &[f64],
        native: &[f64],
        resamples: usize,
        seed: u64,
    ) -> (f64, f64) {
        let mut rng = SplitMix64::new(seed);
        let mut draw = |xs: &[f64]| -> f64 {
            let v: Vec<f64> = (0..xs.len()).map(|_| xs[rng.below(xs.len())]).collect();
            median(&v).unwrap()
        };
        let mut ratios: Vec<f64> = (0..resamples)
            .map(|_| {
                let c = draw(container);
                c / draw(native)
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        (
            nearest_rank_sorted(&ratios, 0.025),
            nearest_rank_sorted(&ratios, 0.975),
        )
    }

    fn clearly_slower() -> Rounds {
        // native ~100 ms, container ~110 ms, small spread; 4 rounds of 5.
        let native: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i % 5) - 2.0).collect();
        let container: Vec<f64> = (0..20).map(|i| 110.0 + f64::from(i % 5) - 2.0).collect();
        Rounds::cut(&container, &native, 5)
    }

    #[test]
    fn bootstrap_ci_clearly_different() {
        let rounds = clearly_slower();
        let pairs = rounds.pairs();
        assert_eq!(pooled_ratio(&pairs), Some(1.1));
        let (lo, hi) = paired_bootstrap_ratio_ci(&pairs, 2000, BOOTSTRAP_SEED).unwrap();
        // Every round holds the same five values, so every draw of rounds
        // has the same medians: the interval is the point.
        assert!(close(lo, 1.1, 1e-12) && close(hi, 1.1, 1e-12), "{lo} {hi}");
        // Reproducible.
        assert_eq!(
            paired_bootstrap_ratio_ci(&pairs, 2000, BOOTSTRAP_SEED),
            Some((lo, hi))
        );
    }

    #[test]
    fn bootstrap_ci_identical_and_small() {
        let xs = [50.0; 5];
        let two = [Pair {
            native: &xs,
            container: &xs,
        }; 2];
        assert_eq!(
            paired_bootstrap_ratio_ci(&two, 2000, BOOTSTRAP_SEED),
            Some((1.0, 1.0))
        );
        // One pair of rounds: no spread between rounds to resample, however
        // many requests it holds.
        let many = [50.0; 40];
        let one = [Pair {
            native: &many,
            container: &many,
        }];
        assert_eq!(paired_bootstrap_ratio_ci(&one, 2000, 1), None);
        assert_eq!(paired_bootstrap_ratio_ci(&two, 0, 1), None);
        // A pair with a side empty for the metric gives no finite draw when
        // it is the only values there are.
        let empty: [f64; 0] = [];
        let hollow = [Pair {
            native: &empty,
            container: &xs,
        }; 2];
        assert_eq!(paired_bootstrap_ratio_ci(&hollow, 100, 1), None);
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
        let rounds = Rounds::cut(&container, &native, 2);
        let cmp = compare(&rounds.pairs()).unwrap();
        // medians: native (95+105)/2 = 100, container (100+108)/2 = 104.
        assert!(close(cmp.ratio, 1.04, 1e-12), "{}", cmp.ratio);
        let (lo, hi) = cmp.ci.unwrap();
        assert!(lo < 1.0 && hi > 1.0, "{lo} {hi}");
        assert!(lo > 0.6 && hi < 1.6, "{lo} {hi}");
    }

    /// The machine drifts between pairs of rounds (a colder cache, a
    /// neighbour's load), while within each pair the container is exactly
    /// 10% slower. Resampling whole pairs keeps each container round with
    /// its native partner, so every draw sees the same 10%; resampling the
    /// pooled requests mixes the levels of different pairs and drowns the
    /// difference in the drift.
    #[test]
    fn paired_resampling_cancels_drift_between_rounds() {
        let levels = [50.0, 80.0, 100.0, 130.0, 200.0];
        let mut native = Vec::new();
        let mut container = Vec::new();
        for level in levels {
            for j in 0..10 {
                let x = level * (1.0 + 0.002 * (f64::from(j) - 4.5));
                native.push(x);
                container.push(x * 1.1);
            }
        }
        let rounds = Rounds::cut(&container, &native, 10);
        let cmp = compare(&rounds.pairs()).unwrap();
        assert!(close(cmp.ratio, 1.1, 1e-9), "{}", cmp.ratio);
        let (lo, hi) = cmp.ci.unwrap();
        assert!(
            close(lo, 1.1, 1e-9) && close(hi, 1.1, 1e-9),
            "paired {lo} {hi}"
        );

        let (plo, phi) = pooled_bootstrap_ratio_ci(&container, &native, 2000, BOOTSTRAP_SEED);
        assert!(plo < 1.0 && phi > 1.2, "pooled {plo} {phi}");
        // So only the paired interval shows the slowdown.
        let (_, d) = verdict("latency_ms", cmp.ratio, (lo, hi), false);
        assert!(matches!(d, Difference::Slower(_)), "{d:?}");
        let (_, d) = verdict("latency_ms", cmp.ratio, (plo, phi), false);
        assert_eq!(d, Difference::Same);
    }

    /// Each round has its own level, the same for both forms on average,
    /// and its requests sit tightly around it. Treating 60 requests a side
    /// as independent makes the interval far too narrow: it claims a
    /// difference that is only which rounds happened to be slow. There are
    /// six pairs of rounds, and the paired interval is as wide as six
    /// draws allow, and includes 1.
    #[test]
    fn paired_resampling_does_not_count_requests_as_independent() {
        let native_levels = [90.0, 112.0, 97.0, 104.0, 88.0, 109.0];
        let container_levels = [103.0, 95.0, 111.0, 92.0, 106.0, 99.0];
        let round = |level: f64| -> Vec<f64> {
            (0..10)
                .map(|j| level + 0.1 * (f64::from(j) - 4.5))
                .collect()
        };
        let native: Vec<f64> = native_levels.iter().flat_map(|&l| round(l)).collect();
        let container: Vec<f64> = container_levels.iter().flat_map(|&l| round(l)).collect();
        let rounds = Rounds::cut(&container, &native, 10);
        let (lo, hi) = compare(&rounds.pairs()).unwrap().ci.unwrap();
        let (plo, phi) = pooled_bootstrap_ratio_ci(&container, &native, 2000, BOOTSTRAP_SEED);
        assert!(lo < 1.0 && 1.0 < hi, "paired {lo} {hi}");
        assert!(
            (hi - lo) > 1.5 * (phi - plo),
            "paired {lo}..{hi} should be much wider than pooled {plo}..{phi}"
        );
    }

    /// The same rounds and seed always give the same interval, to the bit;
    /// another seed draws other resamples.
    #[test]
    fn paired_bootstrap_is_seeded() {
        let native: Vec<f64> = (0..40).map(|i| 100.0 + f64::from((i * 7) % 13)).collect();
        let container: Vec<f64> = (0..40).map(|i| 104.0 + f64::from((i * 5) % 11)).collect();
        let rounds = Rounds::cut(&container, &native, 8);
        let pairs = rounds.pairs();
        let a = paired_bootstrap_ratio_ci(&pairs, 2000, BOOTSTRAP_SEED).unwrap();
        for _ in 0..3 {
            let b = paired_bootstrap_ratio_ci(&pairs, 2000, BOOTSTRAP_SEED).unwrap();
            assert_eq!(a.0.to_bits(), b.0.to_bits());
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
        let other: Vec<(f64, f64)> = (1..=5)
            .map(|seed| paired_bootstrap_ratio_ci(&pairs, 50, seed).unwrap())
            .collect();
        assert!(other.windows(2).any(|w| w[0] != w[1]), "{other:?}");
        assert!(a.0 <= pooled_ratio(&pairs).unwrap() && pooled_ratio(&pairs).unwrap() <= a.1);
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
        let rounds = clearly_slower();
        let cmp = compare(&rounds.pairs()).unwrap();
        let (s, d) = verdict_for("latency_ms", &cmp);
        assert!(
            s.starts_with("latency_ms: container is 10.0% slower (95% CI "),
            "{s}"
        );
        assert!(matches!(d, Difference::Slower(p) if close(p, 10.0, 1e-9)));

        let same = [50.0, 51.0, 49.0, 50.0];
        let same = Rounds::cut(&same, &same, 2);
        let cmp = compare(&same.pairs()).unwrap();
        let (s, d) = verdict_for("latency_ms", &cmp);
        assert!(s.contains("no difference beyond noise"), "{s}");
        assert_eq!(d, Difference::Same);

        let one = Rounds::cut(&[50.0, 50.0], &[40.0, 40.0], 2);
        let cmp = compare(&one.pairs()).unwrap();
        assert_eq!(cmp.ci, None);
        let (s, d) = verdict_for("latency_ms", &cmp);
        assert_eq!(
            s,
            "latency_ms: too few rounds for a confidence interval (container/native 1.250)"
        );
        assert_eq!(d, Difference::Same);
    }

    fn one(metric: &str, ratio: f64, ci: Option<(f64, f64)>) -> BTreeMap<String, Comparison> {
        BTreeMap::from([(metric.to_string(), Comparison { ratio, ci })])
    }

    #[test]
    fn recommendation_both_ways() {
        // Clearly 10% slower with 5% allowed: native.
        let rounds = clearly_slower();
        let m = BTreeMap::from([("latency_ms".to_string(), compare(&rounds.pairs()).unwrap())]);
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
