//! jarvisctl: talks to jarvisd over its control socket, and validates unit
//! files on its own.

mod apply;
pub mod bench;
mod client;
mod config;
mod events;
mod exec;
mod export;
mod import;
mod logs;
mod progress;
mod secret;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jarvis_proto::{Request, Response};
use jarvis_unit::Diagnostic;

use client::Client;

/// jarvisctl: see and steer the services jarvisd supervises.
#[derive(Debug, Parser)]
#[command(name = "jarvisctl", version, about, long_about = None)]
pub struct Args {
    /// jarvisd's control socket.
    #[arg(long, global = true, env = jarvis_proto::SOCKET_ENV, default_value = jarvis_proto::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// How long to wait for jarvisd, e.g. "30s"; "0" waits forever.
    /// [default: 10s to connect and greet, and for the answer to status,
    /// config, generations and the lists; 5m for up, down, start, stop,
    /// restart and removals; a wait (up --wait, bench) gets 10s beyond its
    /// own --timeout; apply and rollback, logs -f, exec and image pull and
    /// import take as long as they take]. Given, it replaces 10s and 5m,
    /// and bounds apply and rollback at their own --timeout plus it.
    #[arg(
        long,
        global = true,
        env = client::TIMEOUT_ENV,
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    pub request_timeout: Option<Duration>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show units: state, pid, uptime, restarts, health, memory, cpu.
    Status {
        /// Only these units.
        units: Vec<String>,
        /// Print {"units": [...]} for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Read the units directory again: start new units, restart changed
    /// ones, stop removed ones, leave the rest alone.
    Up {
        /// Return once every unit is running (healthy where it has a check)
        /// or completed; exit 1 if one fails or time runs out.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, e.g. "90s", "5m".
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print {"started": [...], "restarted": [...], "stopped": [...],
        /// "unchanged": [...]} for scripts (with --wait, nothing more unless
        /// it fails).
        #[arg(long)]
        json: bool,
    },
    /// Deploy a revision of a git repository of units: fetch it, check it
    /// out as a new generation, validate every unit (nothing changes if one
    /// is invalid), print the plan (units to start, restart, stop,
    /// unchanged), carry it out, and wait for every started or restarted
    /// unit to be running (healthy where it has a check) or completed. If
    /// one is not within --timeout, the generation before comes back by
    /// itself and this exits 1.
    Apply {
        /// The repository: a path or a URL [default: jarvisd's --git
        /// repository when it has one, else the active generation's].
        #[arg(long, value_name = "PATH-or-URL")]
        repo: Option<String>,
        /// A branch, tag or commit [default: the head of the repository's
        /// default branch; of jarvisd's --git-branch for its --git
        /// repository].
        #[arg(long)]
        rev: Option<String>,
        /// The units directory inside the repository [default: jarvisd's
        /// --git-path for its --git repository, the active generation's
        /// with its repository, else the root].
        #[arg(long, value_name = "SUBDIR")]
        path: Option<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How long the health gate waits, e.g. "90s", "5m".
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print {"plan": {"start", "restart", "stop", "unchanged"},
        /// "generation", "result", "reason"} for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The generations `apply` made: number, revision, date, state
    /// (active, previous, failed, rolled-back).
    Generations {
        /// Print {"generations": [{"number", "revision", "date", "state"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Make an earlier generation active again [default: the one active
    /// before the active one], through the same health gate as `apply`.
    Rollback {
        /// The generation's number.
        number: Option<u64>,
        /// How long the health gate waits.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print the report as `apply --json` does.
        #[arg(long)]
        json: bool,
    },
    /// Stop every unit.
    Down,
    /// Start units (they wait for their dependencies).
    Start {
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Stop units: the stop signal, then SIGKILL to the whole cgroup after
    /// the stop timeout. Returns once nothing of them runs.
    Stop {
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Stop units if they run, then start them again.
    Restart {
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Print units' output (stdout and stderr, and jarvis's own notes): one
    /// unit's as it is; several (or, with none named, all) with each line
    /// after the unit's name, their tails merged by the time each line was
    /// written, and with -f lines as they arrive.
    Logs {
        /// The units [default: all].
        units: Vec<String>,
        /// Keep printing new output as it comes.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (of each unit).
        #[arg(short = 'n', long = "lines")]
        lines: Option<usize>,
        /// Only lines since WHEN: a time (2026-11-29T14:00:00Z,
        /// 2026-11-29T15:00:00+01:00, 2026-11-29) or a duration ago (10m,
        /// 1h30m).
        #[arg(long, value_name = "WHEN", value_parser = logs::parse_since)]
        since: Option<std::time::SystemTime>,
        /// Show each line's time (RFC 3339, UTC, nanoseconds), as docker
        /// does.
        #[arg(short = 't', long)]
        timestamps: bool,
    },
    /// Print what happens to units as it happens (started, healthy,
    /// unhealthy, restarted and why, OOM-killed, failed, placed, device
    /// gone/back, GPU fallback, rollback), like `docker events`, until
    /// interrupted.
    Events {
        /// Only these units' events [default: all, jarvisd's own too].
        units: Vec<String>,
        /// First print the events of the last DUR (10m, 1h) that jarvisd
        /// kept in memory (the last 1,000).
        #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Print the kept events (--since) and exit instead of following.
        #[arg(long)]
        no_follow: bool,
        /// One JSON object per line: {"seq", "time", "unit", "kind",
        /// "message"}.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a running unit (a container's namespaces,
    /// cgroup, user and capabilities; a native unit's cgroup and user) and
    /// exit with its exit code: `jarvisctl exec web -- id -u`.
    Exec(exec::ExecArgs),
    /// Pull every image the unit files name (the container form of each
    /// unit), one after another, with progress; exit 1 if any fails.
    Pull {
        /// The units directory (jarvisd's --units).
        #[arg(long, default_value = DEFAULT_UNITS)]
        units: PathBuf,
        /// Print one JSON object per pulled image ({"reference", "digest",
        /// "size", "created"}) instead of progress bars.
        #[arg(long)]
        json: bool,
    },
    /// Show the units as jarvisd runs them: the form it runs, defaults
    /// filled in, env files read in under [env]. Values of env keys with
    /// PASSWORD, SECRET, TOKEN or KEY in their name show as "<redacted>";
    /// secrets show their source file and target, never their content.
    Config {
        /// Only these units.
        units: Vec<String>,
        /// Print {"units": [...]} for scripts.
        #[arg(long)]
        json: bool,
    },
    /// What hardware this machine has: GPUs (NVML, procfs, sysfs), the CPU,
    /// USB devices and their nodes. Needs no daemon.
    Probe {
        /// Print everything found as JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Measure a unit natively and as a container in alternating rounds
    /// (inference latency, time to first token, tokens/s), say whether the
    /// difference is real, and let `run = "auto"` follow the result.
    Bench {
        unit: String,
        /// Rounds, alternating native and container (default: the unit's
        /// `[bench] rounds`).
        #[arg(long)]
        rounds: Option<u32>,
        /// Measured requests per round (default: `[bench] requests`).
        #[arg(long)]
        requests: Option<u32>,
        /// Also write the comparison as an SVG chart here.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// How long each form may take to become healthy.
        #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
        start_timeout: Duration,
        /// Print the report as JSON (what jarvisd stores) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Container images: pull, list, remove, import.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Bridge networks: the ones bridged container units use now.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Named volumes: the directories jarvisd keeps for containers.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Write unit files from another tool's files: `import compose -o DIR`.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Write the units as another engine's files, for when one box is not
    /// enough: `export kubernetes -o k8s/`, `export nomad -o jarvis.json`.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Encrypted files for a repository of units: `secret encrypt FILE
    /// --recipient KEY`.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Check unit files without a daemon: every problem, as FILE:LINE:COL.
    Validate {
        /// Unit files or directories of them [default: units, in the
        /// current directory; with --repo, the repository's units
        /// directory, else its root].
        paths: Vec<PathBuf>,
        /// The root of the repository the units come from (a checkout), as
        /// `apply` reads them: their relative env_file entries and
        /// [[secret]] sources are the repository's files.
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Print {"ok": ..., "units": [...], "problems": [{"file", "line",
        /// "col", "message"}], "notes": [...]} for scripts (line and col are
        /// 0 for a problem with a whole file or directory; notes, such as
        /// `privileged = true`, do not fail validation).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull an image from its registry (docker.io/library/ and :latest are
    /// the defaults), showing progress on a terminal.
    Pull {
        reference: String,
        /// Print the pulled image as JSON ({"reference", "digest", "size",
        /// "created"}) instead of progress bars.
        #[arg(long)]
        json: bool,
    },
    /// List the images in jarvisd's store.
    Ls {
        /// Print {"images": [...]} for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove an image (refused while a running unit uses it).
    Rm { reference: String },
    /// Import an OCI image layout, a directory or a tar of one.
    Import {
        path: PathBuf,
        /// The name to store it under, e.g. "busybox:local".
        #[arg(long)]
        tag: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List the named volumes: name, size, the units that name it, path.
    Ls {
        /// Print {"volumes": [{"name", "path", "size", "units"}]} for
        /// scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a named volume and everything in it (refused while a unit
    /// that uses it runs).
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List the networks in use: name, subnet, gateway, bridge, units.
    Ls {
        /// Print {"networks": [{"name", "subnet", "gateway", "bridge",
        /// "units"}]} for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// The whole of `jarvisctl`'s main.
pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jarvisctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::new(args.socket).with_timeout(args.request_timeout);
    match args.command {
        Command::Validate { paths, repo, json } => Ok(validate(&paths, repo.as_deref(), json)),
        Command::Import(cmd) => import::run(cmd),
        Command::Export(cmd) => export::run(cmd),
        Command::Secret(cmd) => secret::run(cmd),
        Command::Probe { json } => {
            let probe = jarvis_hardware::probe(&jarvis_hardware::Roots::from_env());
            if json {
                println!("{}", serde_json::to_string_pretty(&probe)?);
            } else {
                print!("{}", table::probe(&probe));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { units, json } => {
            let Response::Status(report) = client.expect(Request::Status { units })? else {
                unreachable!("checked by expect")
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", table::status(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            wait,
            timeout,
            json,
        } => {
            let Response::Up(report) = client.expect(Request::Up)? else {
                unreachable!("checked by expect")
            };
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for (verb, names) in [
                    ("started", &report.started),
                    ("restarted", &report.restarted),
                    ("stopped", &report.stopped),
                    ("unchanged", &report.unchanged),
                ] {
                    if !names.is_empty() {
                        println!("{verb}: {}", names.join(", "));
                    }
                }
            }
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let timeout_ms = timeout.as_millis().min(u64::MAX as u128) as u64;
            let Response::Wait(w) = client.expect(Request::Wait { timeout_ms })? else {
                unreachable!("checked by expect")
            };
            if w.ok {
                if !json {
                    println!("{}", w.message);
                }
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!("{}", w.message)
            }
        }
        Command::Apply {
            repo,
            rev,
            path,
            dry_run,
            timeout,
            json,
        } => apply::apply(&client, repo, rev, path, dry_run, timeout, json),
        Command::Generations { json } => apply::generations(&client, json),
        Command::Rollback {
            number,
            timeout,
            json,
        } => apply::rollback(&client, number, timeout, json),
        Command::Down => done(client.expect(Request::Down)?),
        Command::Start { units } => done(client.expect(Request::Start { units })?),
        Command::Stop { units } => done(client.expect(Request::Stop { units })?),
        Command::Restart { units } => done(client.expect(Request::Restart { units })?),
        Command::Image(cmd) => image(&client, cmd),
        Command::Exec(args) => exec::run(&client, args),
        Command::Pull { units, json } => pull_all(&client, &units, json),
        Command::Config { units, json } => {
            let Response::Config { units } = client.expect(Request::Config { units })? else {
                unreachable!("checked by expect")
            };
            if json {
                println!("{}", serde_json::json!({ "units": units }));
            } else {
                print!("{}", config::render(&units));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Volume(VolumeCommand::Ls { json }) => {
            let Response::Volumes { volumes } = client.expect(Request::VolumeList)? else {
                unreachable!("checked by expect")
            };
            if json {
                println!("{}", serde_json::json!({ "volumes": volumes }));
            } else {
                print!("{}", table::volumes(&volumes));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Volume(VolumeCommand::Rm { name }) => {
            done(client.expect(Request::VolumeRemove { name })?)
        }
        Command::Network(NetworkCommand::Ls { json }) => {
            let Response::Networks { networks } = client.expect(Request::NetworkList)? else {
                unreachable!("checked by expect")
            };
            if json {
                println!("{}", serde_json::json!({ "networks": networks }));
            } else {
                print!("{}", table::networks(&networks));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            unit,
            rounds,
            requests,
            chart,
            start_timeout,
            json,
        } => bench::run::run(&client, &unit, rounds, requests, chart, start_timeout, json),
        Command::Events {
            units,
            since,
            no_follow,
            json,
        } => events::run(
            &client,
            events::Opts {
                units,
                since,
                follow: !no_follow,
                json,
            },
        ),
        Command::Logs {
            units,
            follow,
            lines,
            since,
            timestamps,
        } => logs::run(
            &client,
            units,
            logs::Opts {
                follow,
                lines,
                since,
                timestamps,
            },
        ),
    }
}

/// `jarvisctl pull`: the images of the units in `dir`, each once.
fn pull_all(client: &Client, dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let set = jarvis_unit::load_dir(dir).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("{}", text.join("\n"))
    })?;
    let images: std::collections::BTreeSet<String> = set
        .units
        .values()
        .filter_map(|u| match (&u.container, &u.exec) {
            (Some(c), _) => Some(c.image.clone()),
            (None, jarvis_unit::Exec::Container(c)) => Some(c.image.clone()),
            _ => None,
        })
        .collect();
    if images.is_empty() && !json {
        println!("no unit in {} names an image", dir.display());
    }
    let mut failed = 0;
    for reference in images {
        let mut bar = progress::Bars::new(!json);
        let pulled = client.pull(
            Request::ImagePull {
                reference: reference.clone(),
            },
            |p| bar.update(p),
        );
        bar.finish();
        match pulled {
            Ok(info) if json => println!("{}", serde_json::to_string(&info)?),
            Ok(info) => println!("pulled {} ({})", info.reference, info.digest),
            Err(e) => {
                eprintln!("jarvisctl: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} image(s) could not be pulled");
    }
    Ok(ExitCode::SUCCESS)
}

fn image(client: &Client, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Pull { reference, json } => {
            let mut bar = progress::Bars::new(!json);
            let info = client.pull(Request::ImagePull { reference }, |p| bar.update(p))?;
            bar.finish();
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!("pulled {} ({})", info.reference, info.digest);
            }
        }
        ImageCommand::Import { path, tag } => {
            let path =
                std::fs::canonicalize(&path).with_context(|| format!("{}", path.display()))?;
            let info = client.pull(
                Request::ImageImport {
                    path: path.display().to_string(),
                    tag,
                },
                |_| {},
            )?;
            println!("imported {} ({})", info.reference, info.digest);
        }
        ImageCommand::Ls { json } => {
            let Response::Images { images } = client.expect(Request::ImageList)? else {
                unreachable!("checked by expect")
            };
            if json {
                println!("{}", serde_json::json!({ "images": images }));
            } else {
                print!("{}", table::images(&images));
            }
        }
        ImageCommand::Rm { reference } => {
            return done(client.expect(Request::ImageRemove { reference })?)
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn done(resp: Response) -> anyhow::Result<ExitCode> {
    if let Response::Done { message } = resp {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `validate` looks when given no path.
pub(crate) const DEFAULT_UNITS: &str = "units";

/// Loads `paths` as `validate` does: like jarvisd, but a path that holds no
/// unit file is a problem too, and one that is missing says what to pass
/// (`default`: no path was given, so `paths` is [`DEFAULT_UNITS`]). With a
/// `repo`, relative env files and secret sources are its files, as in a
/// generation.
fn check(
    paths: &[PathBuf],
    default: bool,
    repo: Option<&Path>,
) -> Result<jarvis_unit::UnitSet, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut load = Vec::new();
    if let Some(repo) = repo.filter(|r| !r.is_dir()) {
        problems.push(Diagnostic::whole_file(
            repo,
            "--repo: no such directory; name the root of a checkout of the repository",
        ));
    }
    for p in paths {
        if default && std::fs::symlink_metadata(p).is_err() {
            problems.push(Diagnostic::whole_file(
                p,
                format!(
                    "no units directory here (validate reads ./{DEFAULT_UNITS} when given no \
                     path); pass the units directory or unit files, e.g. jarvisctl validate \
                     /etc/jarvis/units"
                ),
            ));
        } else if p.is_dir() && jarvis_unit::unit_files(p).is_ok_and(|f| f.is_empty()) {
            problems.push(Diagnostic::whole_file(
                p,
                "no *.toml unit files here; pass the units directory or files",
            ));
        } else {
            load.push(p.clone());
        }
    }
    let opts = jarvis_unit::LoadOptions {
        base: repo.map(Path::to_path_buf),
    };
    let loaded = if load.is_empty() {
        Ok(Default::default())
    } else {
        jarvis_unit::load_paths_with(&load, &opts)
    };
    match loaded {
        Ok(set) if problems.is_empty() => Ok(set),
        Ok(_) => Err(problems),
        Err(diags) => {
            problems.extend(diags);
            Err(problems)
        }
    }
}

/// What `validate --repo DIR` reads without a path: `DIR/units` when there
/// is one, else `DIR`.
fn repo_units(repo: &Path) -> PathBuf {
    let units = repo.join(DEFAULT_UNITS);
    if units.is_dir() {
        units
    } else {
        repo.to_path_buf()
    }
}

fn validate(paths: &[PathBuf], repo: Option<&Path>, json: bool) -> ExitCode {
    let default = paths.is_empty() && repo.is_none();
    let paths = match (paths.is_empty(), repo) {
        (false, _) => paths.to_vec(),
        (true, Some(repo)) => vec![repo_units(repo)],
        (true, None) => vec![PathBuf::from(DEFAULT_UNITS)],
    };
    let paths = paths.as_slice();
    match check(paths, default, repo) {
        Ok(set) => {
            if json {
                let names: Vec<&String> = set.units.keys().collect();
                let notes: Vec<_> = set
                    .notes()
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "file": d.file, "line": d.line, "col": d.col, "message": d.message
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({ "ok": true, "units": names, "problems": [], "notes": notes })
                );
            } else {
                println!(
                    "ok: {} unit(s) valid in {}",
                    set.units.len(),
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for n in set.notes() {
                    println!("{n}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            if json {
                let problems: Vec<_> = diags
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "file": d.file, "line": d.line, "col": d.col, "message": d.message
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "problems": problems })
                );
            } else {
                for d in &diags {
                    println!("{d}");
                }
                eprintln!("{} problem(s) found", diags.len());
            }
            ExitCode::FAILURE
        }
    }
}

/// Reads a duration flag the way unit files do.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s).with_context(|| format!("bad duration {s:?} (e.g. \"90s\")"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(r: Result<jarvis_unit::UnitSet, Vec<Diagnostic>>) -> Vec<String> {
        r.expect_err("expected problems")
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn validate_says_what_is_wrong_with_a_path() {
        let dir = std::env::temp_dir().join(format!("jarvisctl-validate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let empty = dir.join("empty");
        let units = dir.join("units");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(empty.join("notes.txt"), "not a unit").unwrap();
        std::fs::write(
            units.join("web.toml"),
            "[native]\ncommand = [\"/bin/true\"]\n",
        )
        .unwrap();

        // A directory without unit files.
        assert_eq!(
            messages(check(std::slice::from_ref(&empty), false, None)),
            [format!(
                "{}: no *.toml unit files here; pass the units directory or files",
                empty.display()
            )]
        );
        // No path given, and no ./units.
        let missing = dir.join("nowhere");
        let m = messages(check(std::slice::from_ref(&missing), true, None));
        assert_eq!(m.len(), 1);
        assert!(
            m[0].contains("no units directory here (validate reads ./units when given no path)")
                && m[0].contains("pass the units directory or unit files"),
            "{m:?}"
        );
        // A path given that is not there.
        let m = messages(check(std::slice::from_ref(&missing), false, None));
        assert!(
            m[0].ends_with("no such file or directory; give the units directory or unit files"),
            "{m:?}"
        );
        // Good paths still load next to a bad one, and the bad one is named.
        let m = messages(check(&[units.clone(), empty.clone()], false, None));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].starts_with(&empty.display().to_string()), "{m:?}");
        let set = check(std::slice::from_ref(&units), false, None).unwrap();
        assert_eq!(set.names().collect::<Vec<_>>(), ["web"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validate_with_a_repository_takes_its_relative_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("lab");
        std::fs::create_dir_all(repo.join("units")).unwrap();
        std::fs::write(
            repo.join("units/web.toml"),
            "env_file = [\"env/web.env\"]\n[native]\ncommand = [\"/bin/true\"]\n",
        )
        .unwrap();
        let units = vec![repo.join("units")];
        // A plain units directory takes absolute paths only.
        assert!(check(&units, false, None).is_err());
        // The repository's: env/web.env is its file.
        let set = check(&units, false, Some(&repo)).unwrap();
        assert_eq!(
            set.units["web"].env_file[0],
            repo.join("env/web.env"),
            "resolved against the repository"
        );
        // Without a path, the repository's units directory.
        assert_eq!(repo_units(&repo), repo.join("units"));
        assert_eq!(repo_units(&repo.join("units")), repo.join("units"));
        // A repository that is not there is named.
        let m = messages(check(&units, false, Some(&dir.path().join("nope"))));
        assert!(m[0].contains("--repo: no such directory"), "{m:?}");
    }

    #[test]
    fn the_request_timeout_leaves_the_wait_timeouts_alone() {
        let parse = |args: &[&str]| {
            Args::try_parse_from(std::iter::once("jarvisctl").chain(args.iter().copied()))
        };
        let a = parse(&["up", "--wait", "--timeout", "2m"]).unwrap();
        assert_eq!(a.request_timeout, None);
        assert!(
            matches!(a.command, Command::Up { timeout, .. } if timeout == Duration::from_secs(120))
        );
        let a = parse(&["--request-timeout", "5s", "apply", "--timeout", "1m"]).unwrap();
        assert_eq!(a.request_timeout, Some(Duration::from_secs(5)));
        assert!(
            matches!(a.command, Command::Apply { timeout, .. } if timeout == Duration::from_secs(60))
        );
        let a = parse(&["rollback", "--request-timeout", "2s", "--timeout", "3m"]).unwrap();
        assert_eq!(a.request_timeout, Some(Duration::from_secs(2)));
        assert!(
            matches!(a.command, Command::Rollback { timeout, .. } if timeout == Duration::from_secs(180))
        );
        let a = parse(&["status", "--request-timeout", "1500ms"]).unwrap();
        assert_eq!(a.request_timeout, Some(Duration::from_millis(1500)));
        assert!(parse(&["--request-timeout", "soon", "status"]).is_err());
        // The help says what it bounds.
        use clap::CommandFactory;
        let help = Args::command().render_help().to_string();
        assert!(
            help.contains("--request-timeout") && help.contains("JARVISCTL_TIMEOUT"),
            "{help}"
        );
    }

    #[test]
    fn every_json_flag_says_what_it_prints() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_id() == "json" && arg.get_help().is_none() {
                    missing.push(path.to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Args::command(), "jarvisctl", &mut missing);
        assert!(missing.is_empty(), "--json without help: {missing:?}");
    }
}
