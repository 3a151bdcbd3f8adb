//! jarvisctl: talks to jarvisd over its control socket, and validates unit
//! files on its own.

pub mod bench;
mod client;
mod progress;
mod table;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jarvis_proto::{Request, Response};

use client::Client;

/// jarvisctl: see and steer the services jarvisd supervises.
#[derive(Debug, Parser)]
#[command(name = "jarvisctl", version, about, long_about = None)]
pub struct Args {
    /// jarvisd's control socket.
    #[arg(long, global = true, env = jarvis_proto::SOCKET_ENV, default_value = jarvis_proto::DEFAULT_SOCKET)]
    pub socket: PathBuf,
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
    /// Print a unit's output (stdout and stderr, and jarvis's own notes).
    Logs {
        unit: String,
        /// Keep printing new output as it comes.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(short = 'n', long = "lines")]
        lines: Option<usize>,
    },
    /// What hardware this machine has: GPUs (NVML, procfs, sysfs), the CPU,
    /// USB devices and their nodes. Needs no daemon.
    Probe {
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
        #[arg(long)]
        json: bool,
    },
    /// Container images: pull, list, remove, import.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Check unit files without a daemon: every problem, as FILE:LINE:COL.
    Validate {
        /// Unit files or directories of them.
        #[arg(default_value = "units")]
        paths: Vec<PathBuf>,
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
        #[arg(long)]
        json: bool,
    },
    /// List the images in jarvisd's store.
    Ls {
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
    let client = Client::new(args.socket);
    match args.command {
        Command::Validate { paths, json } => Ok(validate(&paths, json)),
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
        Command::Down => done(client.expect(Request::Down)?),
        Command::Start { units } => done(client.expect(Request::Start { units })?),
        Command::Stop { units } => done(client.expect(Request::Stop { units })?),
        Command::Restart { units } => done(client.expect(Request::Restart { units })?),
        Command::Image(cmd) => image(&client, cmd),
        Command::Bench {
            unit,
            rounds,
            requests,
            chart,
            start_timeout,
            json,
        } => run_bench(&client, &unit, rounds, requests, chart, start_timeout, json),
        Command::Logs {
            unit,
            follow,
            lines,
        } => {
            let mut stdout = std::io::stdout().lock();
            client.stream(
                Request::Logs {
                    unit,
                    lines,
                    follow,
                },
                |data| {
                    // A closed pipe (`| head`) ends the stream quietly.
                    stdout
                        .write_all(data.as_bytes())
                        .and_then(|_| stdout.flush())
                        .is_ok()
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// `jarvisctl bench`: jarvisd switches the unit between its forms; the
/// requests go from here, the same client for both.
fn run_bench(
    client: &Client,
    unit: &str,
    rounds: Option<u32>,
    requests: Option<u32>,
    chart: Option<PathBuf>,
    start_timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use bench::{Api, BenchClient, BenchReport, Form, Round};
    let Response::BenchPlan(plan) = client.expect(Request::BenchBegin {
        unit: unit.to_string(),
    })?
    else {
        unreachable!("checked by expect")
    };
    let api: Api = plan.api.parse()?;
    let rounds_n = rounds.unwrap_or(plan.rounds).max(2);
    let per_round = requests.unwrap_or(plan.requests).max(1);
    let http = BenchClient::new(api, &plan.url, plan.model.clone(), Duration::from_secs(120))?;
    let t0 = std::time::Instant::now();
    let mut done = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for i in 0..rounds_n {
            let form = if i % 2 == 0 {
                Form::Native
            } else {
                Form::Container
            };
            eprint!("round {}/{rounds_n} {form}: starting ", i + 1);
            client.expect(Request::BenchForm {
                unit: unit.to_string(),
                form: Some(form.as_str().to_string()),
                timeout_ms: start_timeout.as_millis() as u64,
            })?;
            // One warm-up request, not measured.
            http.measure(&plan.prompt, plan.max_tokens)?;
            let mut round = Round::new(form, i as usize, t0.elapsed().as_millis() as u64);
            let started = std::time::Instant::now();
            for k in 0..per_round {
                eprint!(
                    "\rround {}/{rounds_n} {form}: request {}/{per_round}   ",
                    i + 1,
                    k + 1
                );
                match http.measure(&plan.prompt, plan.max_tokens) {
                    Ok(s) => round.samples.push(s),
                    Err(e) => round.errors.push(format!("{e:#}")),
                }
            }
            round.duration_ms = started.elapsed().as_secs_f64() * 1e3;
            let lat: Vec<f64> = round.samples.iter().map(|s| s.latency_ms).collect();
            eprintln!(
                "\rround {}/{rounds_n} {form}: {} requests, median latency {:.1} ms",
                i + 1,
                round.samples.len(),
                bench::stats::median(&lat).unwrap_or(f64::NAN)
            );
            done.push(round);
        }
        Ok(())
    })();
    // Whatever happened, the unit goes back to how it was.
    let restored = client.expect(Request::BenchForm {
        unit: unit.to_string(),
        form: None,
        timeout_ms: 0,
    });
    result?;
    restored?;
    let report = BenchReport::compute(unit, api, done, plan.max_slowdown);
    let value = serde_json::to_value(&report)?;
    if let Response::Done { message } = client.expect(Request::BenchResult {
        unit: unit.to_string(),
        result: value.clone(),
    })? {
        eprintln!("{message}");
    }
    if let Some(path) = chart {
        bench::chart::write_svg(&report, &path)?;
        eprintln!("chart: {}", path.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", bench::report::render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn done(resp: Response) -> anyhow::Result<ExitCode> {
    if let Response::Done { message } = resp {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(paths: &[PathBuf], json: bool) -> ExitCode {
    match jarvis_unit::load_paths(paths) {
        Ok(set) => {
            if json {
                let names: Vec<&String> = set.units.keys().collect();
                println!(
                    "{}",
                    serde_json::json!({ "ok": true, "units": names, "problems": [] })
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
