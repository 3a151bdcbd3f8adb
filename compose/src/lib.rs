//! jarvis-compose: a compose project (one or more compose files, `.env`,
//! `--env-file`s, profiles) turned into jarvis unit files, with a report of
//! every compose key that could not be expressed and where it was.
//!
//! - [`node`]: the YAML tree with a position on every value.
//! - `load`: files to one merged, interpolated [`node::Node`] per service.
//! - `convert`: services to unit TOML text and the report.

pub mod convert;
pub mod load;
pub mod node;
