//! jarvis-gitops: a unit set deployed from a git repository, as
//! generations.
//!
//! - [`git`]: fetch a repository (a local path, a `file://` URL, or any URL
//!   the host can reach over https or the git protocol) into a cache
//!   repository under the state directory, resolve a revision, and check
//!   its whole tree out into a new directory.
//! - [`record`]: `<state>/generations.json`, the list of generations (number,
//!   revision, date, state, units path) and the apply in progress, written
//!   atomically and fsynced.
//! - [`plan`]: the pure plan between two unit sets (start, restart, stop,
//!   unchanged) over their definition digests ([`plan::definition`]).
//!
//! A generation is `<state>/generations/<N>/`: the repository's tree at one
//! revision, checked out once into `.<N>.partial` and renamed into place,
//! so it exists whole or not at all, and never written again.
//!
//! ## Why git2 (libgit2, vendored)
//!
//! Both candidates build offline from crates.io here. `git2` with
//! `vendored-libgit2` compiles libgit2's C sources with the C compiler the
//! build already needs (for the stand-in NVML library and libseccomp): a few
//! crates, about 45 s of CPU for a debug build on this 2-core machine, and
//! https through the system OpenSSL that other crates of the workspace
//! link already. `gix` is pure Rust but pulls in about 276 crates for fetch
//! and checkout over http; its debug build measured several times longer
//! (see the crate's report in the repository history). Fetching and
//! checking out a tree is all jarvis needs, which libgit2 has done for a
//! long time; ssh URLs are not built in (no libssh2): a homelab box pulls
//! over https or from a local path.

pub mod git;
pub mod plan;
pub mod record;

pub use git::{checkout, GitError};
pub use plan::{definition, definitions, plan, Definitions, Plan};
pub use record::{Generation, Record, RecordError, State};
