//! The git trigger (`jarvisd --git URL`): jarvisd watches one branch of one
//! repository and applies each new revision of it as a generation.
//!
//! One task, the poller, does all of it. At start and then every
//! `--git-interval` (or at once when [`Trigger::kick`] is called: the
//! webhook's push), it fetches the branch into the cache `apply` uses and
//! reads which commit it points to (`jarvis_gitops::poll::branch_head`;
//! nothing is transferred when nothing is new). When that commit is new
//! it sends the loop the same `Apply` request `jarvisctl apply` sends, with
//! `--rev` that commit, so the fetch, validation, plan, health gate and
//! automatic rollback are the ones `apply` has, and waits for the answer.
//!
//! A commit is tried once: whatever its apply ends in (applied, rolled back
//! by its health gate, or invalid), the poller remembers it
//! (`<state>/git/trigger.json`, so a restart of jarvisd does not try it
//! again either) and applies nothing more until the branch points
//! elsewhere. `jarvisctl apply` without `--repo` retries by hand. An apply
//! that could not begin (the remote is unreachable, another apply is in
//! progress) is tried again after 5 s, then 10 s, ... up to the interval.
//! Failures are logged (once until the reason changes) and never stop the
//! poller or jarvisd.
//!
//! Kicks while a check or apply runs are folded into one more check after
//! it (a [`Notify`] holds at most one permit), so a burst of pushes costs
//! at most one more apply.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jarvis_proto::{ApplyResult, Request, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::msg::{Msg, Reply};

/// How long the health gate of an apply the trigger starts may take, as
/// `jarvisctl apply`'s default `--timeout`.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The first wait before an apply that could not begin is tried again; it
/// doubles up to the poll interval.
const RETRY_FIRST: Duration = Duration::from_secs(5);

/// The repository jarvisd deploys from (`--git`, `--git-branch`,
/// `--git-path`, `--git-interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// A URL, or an absolute path (a relative one is made absolute at
    /// start: jarvisd's fetches run elsewhere).
    pub url: String,
    pub branch: String,
    /// The units directory inside the repository; `None`: its root.
    pub path: Option<String>,
    pub interval: Duration,
}

impl GitSource {
    /// Checks the flags: a relative path is made absolute, `--git-path`
    /// stays inside the repository, the branch is a plain name.
    pub fn new(
        url: &str,
        branch: &str,
        path: Option<&str>,
        interval: Duration,
    ) -> Result<GitSource, String> {
        let scp = url
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
        let url = if url.contains("://") || scp || Path::new(url).is_absolute() {
            url.to_string()
        } else {
            std::path::absolute(url)
                .map_err(|e| format!("--git {url}: {e}"))?
                .to_string_lossy()
                .into_owned()
        };
        if branch.is_empty() || branch.starts_with('-') || branch.starts_with("refs/") {
            return Err(format!(
                "--git-branch {branch:?}: name a branch as it is (e.g. main), without refs/heads/"
            ));
        }
        if let Some(p) = path {
            let inside = Path::new(p)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if p.is_empty() || !inside {
                return Err(format!(
                    "--git-path {p:?}: name a directory inside the repository (relative, without \"..\")"
                ));
            }
        }
        if interval.is_zero() {
            return Err("--git-interval must be more than 0 (e.g. 5m)".into());
        }
        Ok(GitSource {
            url,
            branch: branch.to_string(),
            path: path.map(str::to_string),
            interval,
        })
    }

    /// `jarvisctl apply` without `--repo`: this repository, its units
    /// path unless `--path` says otherwise, and the branch's head unless
    /// `--rev` says otherwise. Other requests pass as they are.
    pub fn fill_apply(&self, req: Request) -> Request {
        match req {
            Request::Apply {
                repo: None,
                rev,
                path,
                dry_run,
                timeout_ms,
            } => Request::Apply {
                repo: Some(self.url.clone()),
                rev: rev.or_else(|| Some(self.branch.clone())),
                path: path.or_else(|| self.path.clone()),
                dry_run,
                timeout_ms,
            },
            other => other,
        }
    }
}

/// What may wake the poller: the only thing the HTTP listener holds of
/// jarvisd.
#[derive(Debug, Clone, Default)]
pub struct Trigger(Arc<Notify>);

impl Trigger {
    /// Asks for a check now (or once more after the one running).
    pub fn kick(&self) {
        self.0.notify_one();
    }

    /// Whether a kick comes within `within` (taking it).
    #[cfg(test)]
    pub(crate) async fn take_kick(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.0.notified())
            .await
            .is_ok()
    }
}

/// The last commit the poller tried, kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tried {
    url: String,
    branch: String,
    revision: String,
}

fn tried_file(state_dir: &Path) -> PathBuf {
    state_dir.join("git").join("trigger.json")
}

/// The commit last tried for `src`'s branch, if the file is about it.
fn load_tried(state_dir: &Path, src: &GitSource) -> Option<String> {
    let text = std::fs::read(tried_file(state_dir)).ok()?;
    let t: Tried = serde_json::from_slice(&text).ok()?;
    (t.url == src.url && t.branch == src.branch).then_some(t.revision)
}

fn save_tried(state_dir: &Path, src: &GitSource, revision: &str) -> std::io::Result<()> {
    let file = tried_file(state_dir);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let t = Tried {
        url: src.url.clone(),
        branch: src.branch.clone(),
        revision: revision.to_string(),
    };
    let text = serde_json::to_vec_pretty(&t).map_err(std::io::Error::other)?;
    jarvis_fsutil::write_atomic(&file, &text, jarvis_fsutil::Durability::Durable)
}

/// Runs `f` on a blocking thread; a panic there is an error, not the end
/// of the poller.
async fn off_loop<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(format!("internal: {e}")),
    }
}

/// What one check came to.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// The branch points where it did (or to the active generation).
    Unchanged,
    /// A new commit was applied, rolled back or found invalid: tried.
    Tried,
    /// Nothing could be done now: try again soon.
    Retry(String),
}

/// The poller: the state it keeps between checks.
struct Poller {
    src: GitSource,
    state_dir: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
    last: Option<String>,
    /// The failure last logged, so a lasting one is logged once.
    failing: Option<String>,
}

impl Poller {
    async fn check(&mut self) -> Checked {
        let (url, branch) = (self.src.url.clone(), self.src.branch.clone());
        // The cache `apply` fetches into.
        let cache = self.state_dir.join("git").join("cache");
        let head = match off_loop(move || {
            jarvis_gitops::poll::branch_head(&cache, &url, &branch).map_err(|e| e.to_string())
        })
        .await
        {
            Ok(h) => h,
            Err(e) => return Checked::Retry(e),
        };
        if self.last.as_deref() == Some(head.as_str()) {
            return Checked::Unchanged;
        }
        if self.last.is_none() {
            // First look: a branch whose head already runs needs nothing.
            let state_dir = self.state_dir.clone();
            let active = off_loop(move || {
                jarvis_gitops::Record::load(&state_dir)
                    .map(|r| r.active().map(|g| g.revision.clone()))
                    .map_err(|e| e.to_string())
            })
            .await;
            if active.as_ref().ok().and_then(|a| a.as_deref()) == Some(head.as_str()) {
                tracing::info!(branch = %self.src.branch, revision = %head, "git: the branch's head is the active generation");
                self.remember(head).await;
                return Checked::Unchanged;
            }
        }
        tracing::info!(repo = %self.src.url, branch = %self.src.branch, revision = %head, "git: a new revision: applying it");
        let req = Request::Apply {
            repo: Some(self.src.url.clone()),
            rev: Some(head.clone()),
            path: self.src.path.clone(),
            dry_run: false,
            timeout_ms: GATE_TIMEOUT.as_millis() as u64,
        };
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Request { req, reply }).is_err() {
            return Checked::Retry("jarvisd is stopping".into());
        }
        let response = match rx.await {
            Ok(Reply::Now(r)) => r,
            Ok(Reply::Later(rx)) => match rx.await {
                Ok(r) => r,
                Err(_) => return Checked::Retry("the apply was dropped".into()),
            },
            Ok(Reply::Log(_)) => return Checked::Retry("internal: a log for an apply".into()),
            Ok(Reply::Frame(_)) => return Checked::Retry("internal: a frame for an apply".into()),
            Err(_) => return Checked::Retry("jarvisd is stopping".into()),
        };
        match response {
            Response::Applied(r) => {
                let reason = r.reason.as_deref().unwrap_or("");
                match r.result {
                    ApplyResult::Applied => tracing::info!(
                        generation = r.generation,
                        revision = %head,
                        "git: applied: the generation is active"
                    ),
                    ApplyResult::RolledBack => tracing::warn!(
                        generation = r.generation,
                        revision = %head,
                        reason,
                        "git: the revision failed its health gate and was rolled back; it is not tried again until the branch moves"
                    ),
                    ApplyResult::Invalid => tracing::warn!(
                        revision = %head,
                        reason,
                        "git: the revision is invalid; nothing changed; it is not tried again until the branch moves"
                    ),
                    ApplyResult::Planned => {}
                }
                self.remember(head).await;
                Checked::Tried
            }
            Response::Error { message } => Checked::Retry(message),
            other => Checked::Retry(format!("internal: unexpected answer {other:?}")),
        }
    }

    async fn remember(&mut self, head: String) {
        self.last = Some(head.clone());
        let (state_dir, src) = (self.state_dir.clone(), self.src.clone());
        let saved =
            off_loop(move || save_tried(&state_dir, &src, &head).map_err(|e| e.to_string()));
        if let Err(e) = saved.await {
            tracing::warn!(error = %e, "git: cannot save the revision last tried");
        }
    }

    /// Logs a failure the first time it is seen, and the recovery.
    fn note(&mut self, checked: &Checked) {
        match checked {
            Checked::Retry(why) => {
                if self.failing.as_deref() != Some(why.as_str()) {
                    tracing::warn!(repo = %self.src.url, branch = %self.src.branch, error = %why, "git: cannot apply now; trying again later");
                    self.failing = Some(why.clone());
                } else {
                    tracing::debug!(error = %why, "git: still failing");
                }
            }
            _ => {
                if self.failing.take().is_some() {
                    tracing::info!(repo = %self.src.url, "git: the repository answers again");
                }
            }
        }
    }
}

/// Starts the poller; the [`Trigger`] wakes it.
pub fn spawn(
    src: GitSource,
    state_dir: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
) -> (Trigger, tokio::task::JoinHandle<()>) {
    let trigger = Trigger::default();
    let wake = trigger.0.clone();
    let task = tokio::spawn(async move {
        let last = {
            let (d, s) = (state_dir.clone(), src.clone());
            off_loop(move || Ok(load_tried(&d, &s)))
                .await
                .ok()
                .flatten()
        };
        let mut poller = Poller {
            src,
            state_dir,
            tx,
            last,
            failing: None,
        };
        let mut retry = RETRY_FIRST;
        loop {
            let checked = poller.check().await;
            poller.note(&checked);
            let wait = if let Checked::Retry(_) = checked {
                let w = retry.min(poller.src.interval);
                retry = (retry * 2).min(poller.src.interval);
                w
            } else {
                retry = RETRY_FIRST;
                poller.src.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {
                    tracing::debug!("git: woken (a push)");
                }
            }
        }
    });
    (trigger, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> GitSource {
        GitSource::new(
            "https://git.example.org/lab.git",
            "main",
            Some("units"),
            Duration::from_secs(300),
        )
        .unwrap()
    }

    #[test]
    fn flags_are_checked_and_local_paths_made_absolute() {
        let s = GitSource::new("repo", "main", None, Duration::from_secs(1)).unwrap();
        assert!(Path::new(&s.url).is_absolute() && s.url.ends_with("/repo"));
        for url in [
            "file:///srv/lab",
            "git@host:me/lab.git",
            "/srv/lab.git",
            "https://h/x",
        ] {
            let s = GitSource::new(url, "main", None, Duration::from_secs(1)).unwrap();
            assert_eq!(s.url, url);
        }
        let bad = |b: &str, p: Option<&str>, i: u64| {
            GitSource::new("/srv/lab", b, p, Duration::from_secs(i)).unwrap_err()
        };
        assert!(bad("refs/heads/main", None, 1).contains("--git-branch"));
        assert!(bad("", None, 1).contains("--git-branch"));
        assert!(bad("main", Some("../x"), 1).contains("--git-path"));
        assert!(bad("main", Some("/etc"), 1).contains("--git-path"));
        assert!(bad("main", None, 0).contains("--git-interval"));
    }

    #[test]
    fn apply_without_a_repository_takes_the_git_one() {
        let s = src();
        let apply = |repo: Option<&str>, rev: Option<&str>, path: Option<&str>| Request::Apply {
            repo: repo.map(Into::into),
            rev: rev.map(Into::into),
            path: path.map(Into::into),
            dry_run: true,
            timeout_ms: 7,
        };
        assert_eq!(
            s.fill_apply(apply(None, None, None)),
            apply(Some(&s.url), Some("main"), Some("units"))
        );
        assert_eq!(
            s.fill_apply(apply(None, Some("v1"), Some("other"))),
            apply(Some(&s.url), Some("v1"), Some("other"))
        );
        // An explicit repository is the caller's, whole.
        let explicit = apply(Some("/elsewhere"), None, None);
        assert_eq!(s.fill_apply(explicit.clone()), explicit);
        assert_eq!(s.fill_apply(Request::Generations), Request::Generations);
    }

    #[test]
    fn the_revision_tried_is_kept_for_its_repository_and_branch_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = src();
        assert_eq!(load_tried(dir.path(), &s), None);
        save_tried(dir.path(), &s, "abc").unwrap();
        assert_eq!(load_tried(dir.path(), &s).as_deref(), Some("abc"));
        let other = GitSource {
            branch: "dev".into(),
            ..s.clone()
        };
        assert_eq!(load_tried(dir.path(), &other), None);
        let moved = GitSource {
            url: "https://elsewhere/lab.git".into(),
            ..s
        };
        assert_eq!(load_tried(dir.path(), &moved), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn kicks_during_a_check_fold_into_one() {
        let t = Trigger::default();
        t.kick();
        t.kick();
        t.kick();
        // One stored wake-up, and no second one.
        assert!(t.take_kick(Duration::from_millis(100)).await);
        assert!(!t.take_kick(Duration::from_millis(50)).await);
    }
}
