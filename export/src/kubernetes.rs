//! Units to Kubernetes manifests.

use jarvis_unit::Unit;

use crate::Export;

/// Where named volumes go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// hostPath volumes on the node (the unit runs where its data is).
    #[default]
    HostPath,
    /// PersistentVolumeClaims (a StatefulSet for a unit with named
    /// volumes).
    Pvc,
}

/// How to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `metadata.namespace` of every object; `None`: left out (kubectl's
    /// current namespace).
    pub namespace: Option<String>,
    pub storage: Storage,
}

/// The manifests of `units`: one document per unit (its objects, as YAML
/// documents separated by `---`).
pub fn export(units: &[Unit], opts: &Options) -> Export {
    let _ = (units, opts);
    Export::default()
}
