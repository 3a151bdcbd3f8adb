//! `apply`, `generations` and `rollback`: deploying a git repository of
//! units as generations.

use std::process::ExitCode;
use std::time::Duration;

use jarvis_proto::{ApplyReport, ApplyResult, Request, Response};

use crate::client::Client;
use crate::progress;

/// `--repo` as jarvisd must see it: a local path made absolute (jarvisd
/// runs elsewhere), a URL as it is.
fn repo_arg(repo: String) -> anyhow::Result<String> {
    let scp = repo
        .split_once(':')
        .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
    if repo.contains("://") || scp {
        return Ok(repo);
    }
    let path = std::path::absolute(&repo)?;
    anyhow::ensure!(
        path.exists(),
        "--repo {repo}: no such directory (give a path to a git repository or a URL)"
    );
    Ok(path.to_string_lossy().into_owned())
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

#[allow(clippy::too_many_arguments)]
pub fn apply(
    client: &Client,
    repo: Option<String>,
    rev: Option<String>,
    path: Option<String>,
    dry_run: bool,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let req = Request::Apply {
        repo: repo.map(repo_arg).transpose()?,
        rev,
        path,
        dry_run,
        timeout_ms: millis(timeout),
    };
    let what = if dry_run { "planning" } else { "applying" };
    report(client, req, what, json)
}

pub fn rollback(
    client: &Client,
    number: Option<u64>,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let req = Request::Rollback {
        number,
        timeout_ms: millis(timeout),
    };
    report(client, req, "rolling back", json)
}

/// Sends an apply or rollback, with a spinner on a terminal while it runs,
/// and prints its report: exit 0 when applied or planned, 1 otherwise.
fn report(client: &Client, req: Request, what: &str, json: bool) -> anyhow::Result<ExitCode> {
    let spinner = progress::spinner(!json, &format!("{what}: fetching, then the health gate"));
    let resp = client.expect(req);
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let Response::Applied(r) = resp? else {
        unreachable!("checked by expect")
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", human(&r));
    }
    Ok(match r.result {
        ApplyResult::Applied | ApplyResult::Planned => ExitCode::SUCCESS,
        ApplyResult::RolledBack | ApplyResult::Invalid => ExitCode::FAILURE,
    })
}

/// The plan as `terraform plan` shows one, then the result.
fn human(r: &ApplyReport) -> String {
    let mut out = String::new();
    let rev = r
        .revision
        .as_deref()
        .map(|c| format!(" (revision {})", &c[..c.len().min(12)]))
        .unwrap_or_default();
    out += &format!("generation {}{rev}\n", r.generation);
    if r.result != ApplyResult::Invalid {
        for (mark, verb, names) in [
            ("+", "start", &r.plan.start),
            ("~", "restart", &r.plan.restart),
            ("-", "stop", &r.plan.stop),
        ] {
            for n in names {
                out += &format!("  {mark} {n} ({verb})\n");
            }
        }
        out += &format!(
            "plan: {} to start, {} to restart, {} to stop, {} unchanged\n",
            r.plan.start.len(),
            r.plan.restart.len(),
            r.plan.stop.len(),
            r.plan.unchanged.len()
        );
    }
    let reason = r.reason.as_deref().unwrap_or("");
    out += &match r.result {
        ApplyResult::Applied => format!("applied: generation {} is active\n", r.generation),
        ApplyResult::Planned => "planned: nothing was changed (--dry-run)\n".to_string(),
        ApplyResult::RolledBack => format!(
            "rolled back: generation {} failed its health gate: {reason}\nthe generation before it is active again\n",
            r.generation
        ),
        ApplyResult::Invalid => format!("invalid: nothing was changed\n{reason}\n"),
    };
    out
}

pub fn generations(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let Response::Generations { generations } = client.expect(Request::Generations)? else {
        unreachable!("checked by expect")
    };
    if json {
        // The pinned fields only.
        let list: Vec<serde_json::Value> = generations
            .iter()
            .map(|g| {
                serde_json::json!({
                    "number": g.number,
                    "revision": g.revision,
                    "date": g.date,
                    "state": g.state,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "generations": list }));
        return Ok(ExitCode::SUCCESS);
    }
    if generations.is_empty() {
        println!("no generations yet: jarvisctl apply --repo PATH-or-URL deploys one");
        return Ok(ExitCode::SUCCESS);
    }
    // The reason column only when a generation has one.
    let reasons = generations.iter().any(|g| g.reason.is_some());
    let mut header = vec!["GENERATION", "REVISION", "DATE", "STATE"];
    if reasons {
        header.push("REASON");
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    for g in generations.iter().rev() {
        let mut row = vec![
            g.number.to_string(),
            g.revision[..g.revision.len().min(12)].to_string(),
            g.date.clone(),
            g.state.clone(),
        ];
        if reasons {
            row.push(g.reason.clone().unwrap_or_default());
        }
        table.add_row(row);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_proto::ApplyPlan;

    #[test]
    fn the_plan_reads_like_terraform_and_says_the_result() {
        let r = ApplyReport {
            plan: ApplyPlan {
                start: vec!["c".into()],
                restart: vec!["b".into()],
                stop: vec!["x".into()],
                unchanged: vec!["a".into()],
            },
            generation: 3,
            result: ApplyResult::RolledBack,
            reason: Some("b is unhealthy".into()),
            revision: Some("0123456789abcdef".into()),
        };
        assert_eq!(
            human(&r),
            "generation 3 (revision 0123456789ab)\n  + c (start)\n  ~ b (restart)\n  - x (stop)\n\
             plan: 1 to start, 1 to restart, 1 to stop, 1 unchanged\n\
             rolled back: generation 3 failed its health gate: b is unhealthy\n\
             the generation before it is active again\n"
        );
    }

    #[test]
    fn local_repositories_go_absolute_and_urls_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_str().unwrap().to_string();
        assert_eq!(repo_arg(p.clone()).unwrap(), p);
        assert!(repo_arg("/nonexistent/repo".into()).is_err());
        for url in [
            "https://git.example.org/me/lab.git",
            "git@host:me/lab.git",
            "file:///srv/lab",
        ] {
            assert_eq!(repo_arg(url.into()).unwrap(), url);
        }
    }
}
