//! Order statistics of integer samples (nanoseconds, bytes), nearest-rank,
//! for the supervisor benchmarks.

use crate::stats::SplitMix64;

/// The count, extremes, nearest-rank percentiles and mean of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: u64,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// The value of 1-based rank `ceil(p * n)` of the sorted `v` (rank 1 for
/// `p = 0`); `v` must not be empty.
fn nearest_rank(v: &[u64], p: f64) -> u64 {
    let n = v.len();
    v[((p.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n) - 1]
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[u64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let n = v.len();
        Some(Summary {
            n,
            min: v[0],
            p50: nearest_rank(&v, 0.50),
            p95: nearest_rank(&v, 0.95),
            p99: nearest_rank(&v, 0.99),
            max: v[n - 1],
            mean: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
        })
    }
}

/// The nearest-rank median (the lower middle value for an even count);
/// `None` for no samples. Always one of the samples.
pub fn median_u64(samples: &[u64]) -> Option<u64> {
    Summary::of(samples).map(|s| s.p50)
}

/// A seeded percentile-bootstrap 95% CI of the nearest-rank median of
/// `samples`, resampling *rounds*: `rounds` holds each round's samples, and
/// a draw picks `rounds.len()` rounds with replacement and takes the median
/// of their pooled samples. `None` with fewer than two non-empty rounds.
pub fn median_ci_by_round(rounds: &[Vec<u64>], resamples: usize, seed: u64) -> Option<(u64, u64)> {
    let rounds: Vec<&Vec<u64>> = rounds.iter().filter(|r| !r.is_empty()).collect();
    if rounds.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut medians = Vec::with_capacity(resamples);
    let mut pooled = Vec::new();
    for _ in 0..resamples {
        pooled.clear();
        for _ in 0..rounds.len() {
            pooled.extend_from_slice(rounds[rng.below(rounds.len())]);
        }
        pooled.sort_unstable();
        medians.push(nearest_rank(&pooled, 0.5));
    }
    medians.sort_unstable();
    Some((nearest_rank(&medians, 0.025), nearest_rank(&medians, 0.975)))
}

/// Whether a measured figure meets its target: the row a benchmark prints,
/// computed from the samples, never written by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was measured, e.g. "restart latency p50".
    pub what: String,
    /// The measured figure, as shown.
    pub measured: String,
    /// The target, as shown, e.g. "< 10 ms".
    pub target: String,
    pub pass: bool,
}

impl Check {
    /// `measured <= target` (or `<` when `strict`) for a lower-is-better
    /// figure.
    pub fn at_most(what: &str, measured: f64, target: f64, unit: &str, strict: bool) -> Check {
        let pass = if strict {
            measured < target
        } else {
            measured <= target
        };
        Check {
            what: what.to_string(),
            measured: format!("{} {unit}", show(measured)),
            target: format!("{} {} {unit}", if strict { "<" } else { "≤" }, show(target)),
            pass,
        }
    }

    /// "pass" or "MISS".
    pub fn word(&self) -> &'static str {
        if self.pass {
            "pass"
        } else {
            "MISS"
        }
    }

    /// `| what | measured | target | pass |`: a Markdown table row.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.what,
            self.measured,
            self.target,
            self.word()
        )
    }
}

fn show(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_nearest_rank() {
        let xs: Vec<u64> = (1..=100).rev().collect();
        let s = Summary::of(&xs).unwrap();
        assert_eq!(
            (s.n, s.min, s.p50, s.p95, s.p99, s.max),
            (100, 1, 50, 95, 99, 100)
        );
        assert_eq!(s.mean, 50.5);
        assert_eq!(Summary::of(&[]), None);
        let one = Summary::of(&[7]).unwrap();
        assert_eq!((one.p50, one.p95, one.p99), (7, 7, 7));
        assert_eq!(median_u64(&[4, 1, 3, 2]), Some(2));
        assert_eq!(median_u64(&[]), None);
    }

    #[test]
    fn median_ci_resamples_rounds() {
        // Rounds at different levels: the CI spans the round levels.
        let rounds: Vec<Vec<u64>> = [100u64, 110, 120, 130, 140]
            .iter()
            .map(|&l| (0..10).map(|j| l + j % 3).collect())
            .collect();
        let (lo, hi) = median_ci_by_round(&rounds, 2000, 1).unwrap();
        assert!(lo < 120 && hi > 120, "{lo} {hi}");
        assert!((100..=142).contains(&lo) && (100..=142).contains(&hi));
        assert_eq!(median_ci_by_round(&rounds, 2000, 1), Some((lo, hi)));
        assert_eq!(median_ci_by_round(&rounds[..1], 2000, 1), None);
        assert_eq!(median_ci_by_round(&[vec![1, 2], vec![]], 2000, 1), None);
    }

    #[test]
    fn checks_are_computed() {
        let c = Check::at_most("restart p50", 3.25, 10.0, "ms", true);
        assert!(c.pass);
        assert_eq!(c.row(), "| restart p50 | 3.250 ms | < 10.0 ms | pass |");
        let c = Check::at_most("idle Pss", 12.5, 10.0, "MB", false);
        assert!(!c.pass);
        assert_eq!(c.row(), "| idle Pss | 12.5 MB | ≤ 10.0 MB | MISS |");
        assert!(Check::at_most("x", 10.0, 10.0, "MB", false).pass);
        assert!(!Check::at_most("x", 10.0, 10.0, "MB", true).pass);
    }
}
