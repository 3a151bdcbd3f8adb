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
//! - [`plan`](mod@plan): the pure plan between two unit sets (start, restart, stop,
//!   unchanged) over their definition digests ([`plan::definition`]).
//! - [`poll`]: a branch's head now, that one branch fetched into the cache
//!   (what jarvisd's `--git` poller asks at each interval).
//!
//! A generation is `<state>/generations/<N>/`: the repository's tree at one
//! revision, checked out once into `.<N>.partial` and renamed into place,
//! so it exists whole or not at all, and never written again.
//!
//! ## Why git2 (libgit2, vendored)
//!
//! Both candidates build offline from crates.io here; measured as fresh
//! debug builds of a crate that only depends on each, `cargo build -j 2` on
//! this 2-core machine (`/usr/bin/time -v`):
//!
//! | | crates compiled | wall | CPU (user) |
//! |---|---|---|---|
//! | `git2` 0.20, `vendored-libgit2` + `https` | 48 | 46 s | 34 s |
//! | `gix` 0.90, blocking reqwest + rustls http, worktree, revision | 158 | 3 min 14 s | 120 s |
//!
//! `git2` compiles libgit2's C sources with the C compiler the build already
//! needs (for the stand-in NVML library and libseccomp) and does https
//! through the system OpenSSL (`libssl-dev`, which the build already has
//! for other crates). `gix` is pure Rust but three to four times the build.
//! Fetching and checking out a tree is all jarvis needs, which libgit2 has
//! done for a long time. ssh URLs are not built in (no libssh2): a homelab
//! box pulls over https, or from a local path or `file://` URL.

pub mod git;
pub mod plan;
pub mod poll;
pub mod record;

pub use git::{checkout, GitError};
pub use plan::{definition, definitions, plan, Definitions, Plan};
pub use record::{Generation, Record, RecordError, State};
