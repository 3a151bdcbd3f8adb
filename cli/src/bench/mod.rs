//! `jarvisctl bench UNIT`: the measurement and statistics building blocks.
//!
//! The orchestration (stopping and starting the unit natively and as a
//! container, in alternating rounds) lives with the command; this module
//! gives it:
//!
//! * [`client`]: a blocking HTTP client that sends one streamed completion
//!   request to an inference server (ollama, OpenAI-compatible, llama.cpp)
//!   and returns a [`Sample`] (time to first token, latency, token counts,
//!   tokens/s).
//! * [`stats`]: medians, nearest-rank p95, the container/native ratio of
//!   medians with a seeded percentile-bootstrap 95% CI, verdicts, and the
//!   native-or-container recommendation.
//! * [`report`]: the [`BenchReport`] (its JSON is the `--json` output) and its
//!   text rendering.
//! * [`chart`]: an SVG chart of the comparison.

pub mod chart;
pub mod client;
pub mod report;
pub mod stats;

pub use client::{Api, BenchClient, Sample};
pub use report::{BenchReport, MetricReport, Round, SideStats};
pub use stats::{Comparison, Difference, Form};
