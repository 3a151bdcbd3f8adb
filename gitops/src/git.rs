//! Fetching a repository and checking one revision out.
//!
//! Every fetch goes through one bare cache repository (`<state>/git/cache`),
//! so later fetches bring only what is new. The remote is named by URL for
//! each fetch (no remote is stored), so `--repo` may differ between
//! applies. Blocking: call it on a blocking thread.

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, FetchOptions, Oid, Repository};

/// Why a fetch or a checkout failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open the git cache {path}: {err}")]
    Cache { path: PathBuf, err: git2::Error },
    #[error("cannot fetch {repo}: {err}")]
    Fetch { repo: String, err: git2::Error },
    #[error("{repo} has no revision {rev:?}")]
    NoRevision { repo: String, rev: String },
    #[error("{repo} has no default branch (its HEAD names none): pass --rev")]
    NoHead { repo: String },
    #[error("cannot check out {rev} into {path}: {err}")]
    Checkout {
        rev: String,
        path: PathBuf,
        err: git2::Error,
    },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

/// What [`checkout`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    /// The commit's full id (hex).
    pub commit: String,
}

/// The URL libgit2 is given for `repo`: a relative local path is made
/// absolute (the cache repository is elsewhere).
fn url_of(repo: &str) -> Result<String, GitError> {
    if repo.contains("://") || Path::new(repo).is_absolute() || looks_like_scp(repo) {
        return Ok(repo.to_string());
    }
    std::path::absolute(repo)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|err| GitError::Io {
            path: PathBuf::from(repo),
            err,
        })
}

/// `user@host:path`, git's short ssh form.
fn looks_like_scp(repo: &str) -> bool {
    match repo.split_once(':') {
        Some((host, _)) => host.contains('@') && !host.contains('/'),
        None => false,
    }
}

/// Fetches `repo` into the cache at `cache` and checks out `rev` (a branch,
/// a tag or a commit id; `None`: the head of the remote's default branch)
/// into `dest`, which must not exist: the tree is written to a sibling
/// `.NAME.partial` first and renamed into place, so `dest` appears whole or
/// not at all.
pub fn checkout(
    cache: &Path,
    repo: &str,
    rev: Option<&str>,
    dest: &Path,
) -> Result<CheckedOut, GitError> {
    let url = url_of(repo)?;
    let git = open_cache(cache)?;
    let fetch_err = |err| GitError::Fetch {
        repo: repo.to_string(),
        err,
    };
    let mut remote = git.remote_anonymous(&url).map_err(fetch_err)?;
    // Branches under a namespace of their own, tags as they are; every
    // fetch prunes what the remote no longer has.
    let refspecs = [
        "+refs/heads/*:refs/remotes/jarvis/*",
        "+refs/tags/*:refs/tags/*",
    ];
    let mut opts = FetchOptions::new();
    opts.prune(git2::FetchPrune::On)
        .download_tags(git2::AutotagOption::All);
    remote
        .fetch(&refspecs, Some(&mut opts), None)
        .map_err(fetch_err)?;
    let oid = match rev {
        Some(rev) => resolve(&git, rev).ok_or_else(|| GitError::NoRevision {
            repo: repo.to_string(),
            rev: rev.to_string(),
        })?,
        None => {
            remote.connect(git2::Direction::Fetch).map_err(fetch_err)?;
            let head = remote
                .default_branch()
                .ok()
                .and_then(|h| h.as_str().map(str::to_string));
            let _ = remote.disconnect();
            let branch = match head {
                Some(head) => head
                    .strip_prefix("refs/heads/")
                    .unwrap_or(&head)
                    .to_string(),
                // HEAD names a branch the repository does not have (a bare
                // repository made with another default branch than the one
                // pushed): its only branch, if it has one.
                None => only_branch(&git).ok_or_else(|| GitError::NoHead {
                    repo: repo.to_string(),
                })?,
            };
            resolve(&git, &branch).ok_or_else(|| GitError::NoHead {
                repo: repo.to_string(),
            })?
        }
    };
    write_tree(&git, oid, dest)?;
    Ok(CheckedOut {
        commit: oid.to_string(),
    })
}

fn open_cache(cache: &Path) -> Result<Repository, GitError> {
    let err = |err| GitError::Cache {
        path: cache.to_path_buf(),
        err,
    };
    if cache.join("HEAD").exists() {
        Repository::open_bare(cache).map_err(err)
    } else {
        std::fs::create_dir_all(cache).map_err(|err| GitError::Io {
            path: cache.to_path_buf(),
            err,
        })?;
        Repository::init_bare(cache).map_err(err)
    }
}

/// The one branch fetched, if there is exactly one.
fn only_branch(git: &Repository) -> Option<String> {
    let refs = git.references_glob("refs/remotes/jarvis/*").ok()?;
    let names: Vec<String> = refs
        .flatten()
        .filter_map(|r| r.name().map(str::to_string))
        .filter_map(|n| n.strip_prefix("refs/remotes/jarvis/").map(str::to_string))
        .collect();
    match names.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// A fetched branch first (`main` is the remote's main, not a tag of that
/// name), then anything `git rev-parse` takes (a tag, a commit id, a short
/// id), peeled to its commit.
fn resolve(git: &Repository, rev: &str) -> Option<Oid> {
    let branch = format!("refs/remotes/jarvis/{rev}");
    if let Ok(r) = git.find_reference(&branch) {
        if let Ok(c) = r.peel_to_commit() {
            return Some(c.id());
        }
    }
    let obj = git.revparse_single(rev).ok()?;
    obj.peel_to_commit().ok().map(|c| c.id())
}

/// Writes commit `oid`'s whole tree to `dest` through `.NAME.partial`.
fn write_tree(git: &Repository, oid: Oid, dest: &Path) -> Result<(), GitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| GitError::Io { path, err }
    };
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
    let partial = dest.with_file_name(format!(".{}.partial", name.unwrap_or_default()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let checkout_err = |err| GitError::Checkout {
        rev: oid.to_string(),
        path: dest.to_path_buf(),
        err,
    };
    let commit = git.find_commit(oid).map_err(checkout_err)?;
    let mut co = CheckoutBuilder::new();
    co.target_dir(&partial).force().recreate_missing(true);
    git.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(checkout_err)?;
    // The tree is complete on disk before it gets its name.
    sync_tree(&partial).map_err(io(&partial))?;
    std::fs::rename(&partial, dest).map_err(io(dest))?;
    if let Some(parent) = dest.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    Ok(())
}

/// fsyncs every file and directory under `dir`.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            sync_tree(&entry.path())?;
        } else if ty.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    /// A work repository with two commits on main and a tag on the first.
    fn repo(dir: &Path) -> PathBuf {
        let work = dir.join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "-q"]);
        std::fs::create_dir(work.join("units")).unwrap();
        std::fs::write(work.join("units/a.toml"), "one").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "one"]);
        git(&work, &["tag", "v1"]);
        std::fs::write(work.join("units/a.toml"), "two").unwrap();
        git(&work, &["commit", "-qam", "two"]);
        work
    }

    #[test]
    fn checks_out_the_head_a_tag_and_refuses_an_unknown_revision() {
        let dir = tempfile::tempdir().unwrap();
        let work = repo(dir.path());
        let cache = dir.path().join("cache");
        let head = checkout(&cache, work.to_str().unwrap(), None, &dir.path().join("1")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("1/units/a.toml")).unwrap(),
            "two"
        );
        assert_eq!(head.commit.len(), 40);
        let url = format!("file://{}", work.display());
        let v1 = checkout(&cache, &url, Some("v1"), &dir.path().join("2")).unwrap();
        assert_ne!(v1.commit, head.commit);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("2/units/a.toml")).unwrap(),
            "one"
        );
        // By id, short or long.
        let again = checkout(&cache, &url, Some(&v1.commit[..10]), &dir.path().join("3")).unwrap();
        assert_eq!(again, v1);
        let err = checkout(&cache, &url, Some("nope"), &dir.path().join("4")).unwrap_err();
        assert!(matches!(err, GitError::NoRevision { .. }), "{err}");
        assert!(!dir.path().join("4").exists());
        let err = checkout(&cache, "/nonexistent/repo", None, &dir.path().join("5")).unwrap_err();
        assert!(matches!(err, GitError::Fetch { .. }), "{err}");
    }

    #[test]
    fn a_head_that_names_no_branch_falls_back_to_the_only_one() {
        let dir = tempfile::tempdir().unwrap();
        let work = repo(dir.path());
        // A bare repository whose HEAD is refs/heads/master, with only
        // main pushed.
        let bare = dir.path().join("bare.git");
        let b = bare.to_str().unwrap();
        git(
            dir.path(),
            &["-c", "init.defaultBranch=master", "init", "-q", "--bare", b],
        );
        git(&work, &["push", "-q", b, "main"]);
        let got = checkout(&dir.path().join("cache"), b, None, &dir.path().join("1")).unwrap();
        assert_eq!(got.commit.len(), 40);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("1/units/a.toml")).unwrap(),
            "two"
        );
        // Two branches and no HEAD to choose by: say so.
        git(&work, &["push", "-q", b, "main:other"]);
        let err = checkout(&dir.path().join("cache2"), b, None, &dir.path().join("2")).unwrap_err();
        assert!(matches!(err, GitError::NoHead { .. }), "{err}");
    }

    #[test]
    fn scp_urls_are_left_alone() {
        assert!(looks_like_scp("git@example.org:me/homelab.git"));
        assert!(!looks_like_scp("./repo"));
        assert!(!looks_like_scp("/srv/a:b"));
    }
}
