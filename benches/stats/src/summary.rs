//! Order statistics of integer samples (nanoseconds, bytes), nearest-rank,
//! for the supervisor benchmarks.

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
}
