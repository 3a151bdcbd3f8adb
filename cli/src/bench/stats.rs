//! The statistics live in `jarvis-benchstats`, shared with jarvisd (which
//! recomputes every verdict it stores) and the supervisor benchmarks.

pub use jarvis_benchstats::stats::*;
