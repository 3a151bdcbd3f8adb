//! jarvis-unit: the unit file format.
//!
//! Invariant: this crate does no IO beyond reading unit files' text. It turns
//! TOML into [`Unit`]s and reports every problem it finds at once, each with
//! `FILE:LINE:COL`.

pub mod envfile;
pub mod limits;
pub mod schema;
pub use schema::*;

mod container;
mod diagnostic;
mod parse;
mod validate;

pub use container::{
    check_volume_name, parse_image_reference, parse_volume, ImageReference, OCI_LAYOUT_PREFIX,
};
pub use diagnostic::Diagnostic;
pub use parse::{
    is_valid_unit_name, parse_capability, parse_cpuset, parse_signal, parse_size, parse_unit,
    parse_unit_with, LoadOptions,
};
pub use validate::{load_dir, load_dir_with, load_paths, load_paths_with, unit_files, UnitSet};

#[cfg(test)]
mod tests;
