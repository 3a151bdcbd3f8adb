//! The Kubernetes export, key by key.
