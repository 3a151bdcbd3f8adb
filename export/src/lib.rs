//! jarvis units to other engines' formats, for when one box is not enough:
//! [`kubernetes`] (Deployments or StatefulSets, Services, ConfigMaps, probes,
//! resources, security contexts, GPU and device requests) and [`nomad`]
//! (one job, a group per unit). Pure: units in, documents out, no IO.
//!
//! A unit that the engine cannot run as it is (a native unit with no
//! `[container]` form) is not exported: it is listed in
//! [`Export::skipped`] with why, and the CLI exits non-zero.

pub mod kubernetes;
pub mod nomad;

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// A file name for it when the output is a directory (`ollama.yaml`,
    /// `jarvis.nomad.json`).
    pub name: String,
    /// The unit it came from; `None` for one shared by several units.
    pub unit: Option<String>,
    /// Its text (YAML or JSON), ending in a newline.
    pub text: String,
}

/// A unit left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub unit: String,
    pub why: String,
}

/// What an export made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Export {
    pub documents: Vec<Document>,
    pub skipped: Vec<Skipped>,
}
