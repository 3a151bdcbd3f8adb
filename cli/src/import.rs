//! `jarvisctl import compose`: a compose project to unit files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use jarvis_compose::convert::{self, Compose, Conversion};
use jarvis_compose::load::{self, LoadOptions};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Turn a compose project (docker-compose.yml, its .env, several -f
    /// files, profiles) into one unit file per service.
    ///
    /// The files are found and loaded as `docker compose` does: merged,
    /// interpolated from the environment and .env, `extends` followed,
    /// profiles applied. Each service becomes DIR/NAME.toml (the service's
    /// name, lower-cased with other characters as '-' where jarvis needs
    /// it); where a conversion was a choice, a comment in the file says
    /// which and why. Named volumes and networks keep the names compose
    /// gives them (PROJECT_NAME, and PROJECT_default for the default
    /// network). Where jarvis's defaults differ from compose's, compose's
    /// are written out: restart policy "never" for a service without
    /// `restart`, Docker's health-check timings, Docker's default
    /// capabilities; no_new_privileges stays jarvis's stricter true, with a
    /// comment.
    ///
    /// Every compose key that cannot be expressed is listed as
    /// FILE:LINE:COL, the service, the key and why; the units for the
    /// other keys are still written. Host directories of bind mounts that
    /// do not exist are created, as `docker compose up` creates them.
    ///
    /// Files in DIR are overwritten only when an earlier import wrote them
    /// (their first line is "# Imported by `jarvisctl import compose`");
    /// remove that line to keep an edited file: the import then refuses to
    /// write it, and writes nothing at all. Files of services no longer in
    /// the project are left alone.
    ///
    /// Exit status: 0 when every service converted fully, 1 when a key
    /// could not be expressed (listed), the project does not load, or a
    /// file is in the way.
    Compose {
        /// A compose file; repeat to merge several, in order [default:
        /// COMPOSE_FILE, else compose.yaml, compose.yml,
        /// docker-compose.yml or docker-compose.yaml (and its override
        /// file) in the project directory or above].
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
        /// A file of KEY=VALUE lines to interpolate from; repeat for more,
        /// later ones win [default: .env in the project directory].
        #[arg(long = "env-file", value_name = "FILE")]
        env_files: Vec<PathBuf>,
        /// The directory relative paths start from [default: the first
        /// compose file's directory].
        #[arg(long, value_name = "DIR")]
        project_dir: Option<PathBuf>,
        /// Enable a profile; repeat for more [default: COMPOSE_PROFILES].
        #[arg(long = "profile", value_name = "NAME")]
        profiles: Vec<String>,
        /// Write the unit files here (made if missing), e.g. the units
        /// directory jarvisd reads.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
        /// Print {"project", "ok", "units": [{"service", "unit", "file"}],
        /// "problems": [{"service", "key", "file", "line", "col",
        /// "message"}], "created_dirs": [PATH...], "skipped": [{"service",
        /// "file", "line", "col"}]} for scripts (a problem's service is null
        /// for a top-level definition or a load error, its key null for a
        /// load error; file, line and col are null where not known; skipped
        /// lists the services no enabled profile includes).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Compose {
        files,
        env_files,
        project_dir,
        profiles,
        output,
        json,
    } = cmd;
    let environment: BTreeMap<String, String> = std::env::vars().collect();
    let opts = LoadOptions {
        files,
        env_files,
        project_dir,
        profiles,
        environment: environment.clone(),
    };
    let project = match load::load(&opts) {
        Ok(p) => p,
        Err(errors) => {
            if json {
                let problems: Vec<serde_json::Value> = errors
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "service": null,
                            "key": null,
                            "file": e.pos.as_ref().map(|p| p.file.display().to_string()),
                            "line": e.pos.as_ref().map(|p| p.line),
                            "col": e.pos.as_ref().map(|p| p.col),
                            "message": e.message,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "project": null, "ok": false, "units": [], "problems": problems,
                        "created_dirs": [], "skipped": [],
                    })
                );
            } else {
                eprintln!("jarvisctl: the compose project does not load:");
                for e in &errors {
                    eprintln!("  {e}");
                }
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let conversion = convert::convert(&Compose::new(&project, &environment));
    convert::write(&conversion, &output)?;
    if json {
        let mut j = conversion.to_json();
        j["skipped"] = project
            .skipped
            .iter()
            .map(|(s, pos)| {
                serde_json::json!({
                    "service": s,
                    "file": pos.file.display().to_string(),
                    "line": pos.line,
                    "col": pos.col,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{}", summary(&conversion, &output, &project.skipped));
    }
    Ok(if conversion.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The report for people.
fn summary(
    c: &Conversion,
    output: &Path,
    skipped: &[(String, jarvis_compose::node::Pos)],
) -> String {
    let mut out = format!(
        "project {}: {} unit file{} written to {}\n",
        c.project,
        c.units.len(),
        if c.units.len() == 1 { "" } else { "s" },
        output.display()
    );
    for u in &c.units {
        let fully = !c
            .problems
            .iter()
            .any(|p| p.service.as_deref() == Some(&u.service));
        out.push_str(&format!(
            "  {} -> {}{}\n",
            u.service,
            u.file_name(),
            if fully { "" } else { " (partly: see below)" }
        ));
    }
    for (s, pos) in skipped {
        out.push_str(&format!("  {s}: not enabled by a profile ({pos})\n"));
    }
    for d in &c.create_dirs {
        out.push_str(&format!(
            "created {} (a bind-mount source; compose creates it too)\n",
            d.display()
        ));
    }
    if c.problems.is_empty() {
        out.push_str("every service converted fully\n");
    } else {
        out.push_str(&format!(
            "{} compose key{} could not be expressed:\n",
            c.problems.len(),
            if c.problems.len() == 1 { "" } else { "s" }
        ));
        for p in &c.problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::{Args, Command};

    fn stack(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../compose/tests/fixtures/stacks")
            .join(name)
    }

    fn import(args: &[&str]) -> std::process::ExitCode {
        let mut argv = vec!["jarvisctl", "import", "compose"];
        argv.extend_from_slice(args);
        let Command::Import(cmd) = Args::try_parse_from(argv).unwrap().command else {
            panic!("not an import")
        };
        super::run(cmd).unwrap()
    }

    #[test]
    fn the_help_says_what_is_overwritten_and_the_exit_status() {
        let mut cmd = Args::command();
        let help = cmd
            .find_subcommand_mut("import")
            .unwrap()
            .find_subcommand_mut("compose")
            .unwrap()
            .render_long_help()
            .to_string();
        for words in [
            "--env-file",
            "--profile",
            "--project-dir",
            "--output",
            "--json",
            "overwritten only when an earlier import wrote them",
            "Exit status",
        ] {
            assert!(help.contains(words), "{words:?} not in\n{help}");
        }
    }

    #[test]
    fn imports_a_stack_and_refuses_to_overwrite_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        // A copy of the stack, since the import creates bind-mount dirs.
        let dir = tmp.path().join("paperless");
        std::fs::create_dir(&dir).unwrap();
        for f in ["docker-compose.yml", "docker-compose.env"] {
            std::fs::copy(stack("paperless-ngx").join(f), dir.join(f)).unwrap();
        }
        let out = tmp.path().join("units");
        let file = dir.join("docker-compose.yml");
        let code = import(&[
            "-f",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["broker.toml", "db.toml", "webserver.toml"]);
        // ./export and ./consume are made, as compose makes them.
        assert!(dir.join("export").is_dir() && dir.join("consume").is_dir());
        assert_eq!(code, std::process::ExitCode::SUCCESS);
        jarvis_unit::load_dir(&out).unwrap();
        std::fs::write(out.join("db.toml"), "# mine\n").unwrap();
        let file_arg = file.to_str().unwrap();
        let mut argv = vec!["jarvisctl", "import", "compose", "-f", file_arg];
        let out_arg = out.to_str().unwrap();
        argv.extend(["-o", out_arg]);
        let Command::Import(cmd) = Args::try_parse_from(argv).unwrap().command else {
            panic!()
        };
        let err = super::run(cmd).unwrap_err();
        assert!(err.to_string().contains("db.toml"), "{err}");
        assert_eq!(
            std::fs::read_to_string(out.join("db.toml")).unwrap(),
            "# mine\n"
        );
    }
}
