//! Loading a compose project (placeholder while the loader is written).
