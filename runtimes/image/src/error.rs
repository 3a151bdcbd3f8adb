//! The crate's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while parsing, pulling, importing, storing or
/// unpacking an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference string does not parse.
    #[error("invalid image reference {input:?}: {reason}")]
    Reference {
        /// What the caller passed.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// A filesystem operation failed; `path` is the file it was about.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "write", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Talking to a registry failed. `message` says what happened and, where it
    /// can tell, what to do about it.
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry host (`HOST[:PORT]`) as contacted.
        registry: String,
        /// What went wrong and a hint.
        message: String,
    },

    /// A registry refused a pull for want of credentials, or refused the
    /// ones it was given. `message` names the auth file and the key the
    /// credentials came from (never the credentials), or says there were
    /// none, with the HTTP status.
    #[error("registry {registry} {message}")]
    Auth {
        /// The registry host (`HOST[:PORT]`) as contacted.
        registry: String,
        /// What was refused, and where the credentials came from.
        message: String,
    },

    /// The auth file (registry credentials) is missing, malformed or readable
    /// by everyone. `message` never quotes a credential.
    #[error("auth file {}: {message}", path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// Content did not hash to (or was not the size of) its descriptor.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which blob ("layer sha256:...", "manifest of ...").
        what: String,
        /// The digest (or size) the descriptor promised.
        expected: String,
        /// What the content actually hashed to (or its size).
        actual: String,
    },

    /// A layer archive holds an entry that would escape the layer directory or
    /// is otherwise unsafe to extract. Nothing of the layer is kept.
    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The layer (its digest, or the archive's path).
        layer: String,
        /// The entry's path as written in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// A layer archive could not be read (bad compression, broken tar, ...).
    #[error("layer {layer}: {message}")]
    Layer {
        /// The layer (its digest, or the archive's path).
        layer: String,
        /// What is wrong.
        message: String,
    },

    /// A manifest, index, config or layout is malformed or not a container
    /// image this crate can run.
    #[error("{what}: {message}")]
    Invalid {
        /// The document concerned.
        what: String,
        /// What is wrong with it.
        message: String,
    },

    /// The image is not in the store.
    #[error("image {0} is not in the store")]
    NotFound(String),

    /// The store's own files are inconsistent (a referenced layer is gone,
    /// `refs.json` does not parse, ...).
    #[error("image store {}: {message}", root.display())]
    Store {
        /// The store's root directory.
        root: PathBuf,
        /// What is wrong; pulling the image again usually repairs it.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// Attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

impl<T> IoContext<T> for Result<T, rustix::io::Errno> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e.into()))
    }
}
