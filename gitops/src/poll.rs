//! What a branch's head is now: jarvisd's poller asks this at each
//! interval and applies only when the answer is new.
//!
//! It fetches that one branch into the cache repository `apply` fetches
//! into (`<state>/git/cache`, the same `refs/remotes/jarvis/` names), so a
//! poll that finds nothing new transfers no objects, and the apply that
//! follows a new head finds them there already. (The reference
//! advertisement alone, `git ls-remote`, would do without a cache, but
//! git2's `Remote::list` is unsound on a repository with no references
//! yet.) Blocking: call it on a blocking thread.

use std::path::Path;

use git2::{FetchOptions, Repository};

use crate::GitError;

/// Fetches `refs/heads/<branch>` of `url` into the bare repository at
/// `cache` (made if missing) and answers the commit it points to (full
/// hex id). `url` is a URL or an absolute path; a relative path would be
/// taken relative to jarvisd's working directory, so callers make it
/// absolute. A branch the remote no longer has is pruned from the cache,
/// so it is reported as missing rather than stale.
pub fn branch_head(cache: &Path, url: &str, branch: &str) -> Result<String, GitError> {
    let cache_err = |err| GitError::Cache {
        path: cache.to_path_buf(),
        err,
    };
    let git = if cache.join("HEAD").exists() {
        Repository::open_bare(cache).map_err(cache_err)?
    } else {
        std::fs::create_dir_all(cache).map_err(|err| GitError::Io {
            path: cache.to_path_buf(),
            err,
        })?;
        Repository::init_bare(cache).map_err(cache_err)?
    };
    let fetch_err = |err| GitError::Fetch {
        repo: url.to_string(),
        err,
    };
    let mut remote = git.remote_anonymous(url).map_err(fetch_err)?;
    let tracking = format!("refs/remotes/jarvis/{branch}");
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    let mut opts = FetchOptions::new();
    opts.prune(git2::FetchPrune::On)
        .download_tags(git2::AutotagOption::None);
    remote
        .fetch(&[refspec.as_str()], Some(&mut opts), None)
        .map_err(fetch_err)?;
    let missing = || GitError::NoRevision {
        repo: url.to_string(),
        rev: branch.to_string(),
    };
    let commit = git
        .find_reference(&tracking)
        .map_err(|_| missing())?
        .peel_to_commit()
        .map_err(|_| missing())?;
    Ok(commit.id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
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
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn reads_a_branch_head_by_path_and_by_file_url() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let empty = dir.path().join("empty.git");
        std::fs::create_dir(&empty).unwrap();
        git(&empty, &["init", "-q", "--bare"]);
        // A repository with no branch yet.
        let err = branch_head(&cache, empty.to_str().unwrap(), "main").unwrap_err();
        assert!(matches!(err, GitError::NoRevision { .. }), "{err}");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "-q"]);
        std::fs::write(work.join("a"), "one").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "one"]);
        git(&work, &["branch", "other"]);
        std::fs::write(work.join("a"), "two").unwrap();
        git(&work, &["commit", "-qam", "two"]);
        let main = git(&work, &["rev-parse", "main"]);
        let other = git(&work, &["rev-parse", "other"]);
        assert_ne!(main, other);

        let path = work.to_str().unwrap();
        assert_eq!(branch_head(&cache, path, "main").unwrap(), main);
        let url = format!("file://{path}");
        assert_eq!(branch_head(&cache, &url, "other").unwrap(), other);
        let err = branch_head(&cache, &url, "nope").unwrap_err();
        assert!(matches!(err, GitError::NoRevision { .. }), "{err}");
        let err = branch_head(&cache, "/nonexistent/repo", "main").unwrap_err();
        assert!(matches!(err, GitError::Fetch { .. }), "{err}");
        // The branch moves on; then it is deleted: gone, not stale.
        std::fs::write(work.join("a"), "three").unwrap();
        git(&work, &["commit", "-qam", "three"]);
        let three = git(&work, &["rev-parse", "main"]);
        assert_eq!(branch_head(&cache, path, "main").unwrap(), three);
        git(&work, &["branch", "-qD", "other"]);
        let err = branch_head(&cache, path, "other").unwrap_err();
        assert!(matches!(err, GitError::NoRevision { .. }), "{err}");
    }
}
