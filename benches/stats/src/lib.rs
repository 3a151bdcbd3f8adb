//! The statistics every jarvis measurement goes through, shared by
//! `jarvisctl bench` (which measures), jarvisd (which recomputes the verdict
//! from the raw samples it is sent before `run = "auto"` may follow it) and
//! the supervisor benchmarks in `benches/`.
//!
//! * [`stats`]: medians, nearest-rank percentiles, the seeded bootstrap CI
//!   of a container/native ratio that resamples paired rounds, verdicts and
//!   the recommendation.
//! * [`result`]: the raw rounds of an inference benchmark ([`Round`],
//!   [`Sample`]), the checks a result must pass ([`check`], [`Refusal`]) and
//!   the [`Analysis`] computed from them.
//! * [`summary`]: order statistics of integer samples (nanoseconds, bytes)
//!   for the supervisor benchmarks.
//!
//! Everything here is pure and deterministic: no IO, no clock, and the
//! bootstrap draws from a fixed-seed generator.

pub mod result;
pub mod stats;
pub mod summary;

pub use result::{
    analyze, check, Analysis, MetricReport, Record, Refusal, Round, Sample, SideStats, Submission,
    METRICS,
};
pub use stats::{Comparison, Difference, Form};
pub use summary::Summary;
