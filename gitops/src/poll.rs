//! What a branch's head is now, without fetching anything: the git
//! protocol's reference advertisement (`git ls-remote`). jarvisd's poller
//! asks this at each interval and applies only when the answer is new, so
//! an idle poll costs one round trip and writes nothing. Blocking: call it
//! on a blocking thread.

use git2::{Direction, Remote};

use crate::GitError;

/// The commit (full hex id) `refs/heads/<branch>` of `url` points to.
/// `url` is a URL or an absolute path; a relative path would be taken
/// relative to jarvisd's working directory, so callers make it absolute.
pub fn branch_head(url: &str, branch: &str) -> Result<String, GitError> {
    let fetch_err = |err| GitError::Fetch {
        repo: url.to_string(),
        err,
    };
    let mut remote = Remote::create_detached(url).map_err(fetch_err)?;
    remote.connect(Direction::Fetch).map_err(fetch_err)?;
    let wanted = format!("refs/heads/{branch}");
    let head = remote
        .list()
        .map_err(fetch_err)?
        .iter()
        .find(|h| h.name() == wanted)
        .map(|h| h.oid().to_string());
    let _ = remote.disconnect();
    head.ok_or_else(|| GitError::NoRevision {
        repo: url.to_string(),
        rev: branch.to_string(),
    })
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
        assert_eq!(branch_head(path, "main").unwrap(), main);
        let url = format!("file://{path}");
        assert_eq!(branch_head(&url, "other").unwrap(), other);
        let err = branch_head(&url, "nope").unwrap_err();
        assert!(matches!(err, GitError::NoRevision { .. }), "{err}");
        let err = branch_head("/nonexistent/repo", "main").unwrap_err();
        assert!(matches!(err, GitError::Fetch { .. }), "{err}");
    }
}
