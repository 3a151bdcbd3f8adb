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
//!   medians with a seeded 95% bootstrap CI over paired rounds, verdicts,
//!   and the native-or-container recommendation (all from
//!   `jarvis-benchstats`, the code jarvisd recomputes results with).
//! * [`report`]: the [`BenchReport`] (its JSON is the `--json` output) and its
//!   text rendering.
//! * [`chart`]: an SVG chart of the comparison.
//! * [`run`]: the command itself: the rounds, the checks, and the result
//!   sent to jarvisd only when nothing failed.

pub mod chart;
pub mod client;
pub mod report;
pub mod run;
pub mod stats;

pub use client::{Api, BenchClient, Sample};
pub use report::{BenchReport, MetricReport, Refusal, Round, SideStats};
pub use stats::{Comparison, Difference, Form};
