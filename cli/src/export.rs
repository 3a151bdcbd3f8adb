//! `jarvisctl export kubernetes|nomad`: the units directory as another
//! engine's files, for when one box is not enough. No daemon needed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use jarvis_export::{kubernetes, nomad, Export};

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Kubernetes manifests (k3s and the rest): per container unit a
    /// Deployment (a StatefulSet with named volumes and --storage pvc), a
    /// Service for its ports and its name, probes from [health], resources,
    /// a securityContext, env as a ConfigMap (secrets as Secret
    /// references), volumes, GPU and device requests.
    ///
    /// A native unit with a [container] form is exported as that; one
    /// without is listed as not exportable, with why, and the exit status
    /// is 1.
    Kubernetes {
        /// The units directory.
        #[arg(long, default_value = crate::DEFAULT_UNITS)]
        units: PathBuf,
        /// The namespace of every object [default: none written: kubectl's
        /// current one].
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Where to write: a file (all manifests, as YAML documents), or a
        /// directory (an existing one, or a path ending in '/': one file
        /// per unit) [default: stdout].
        #[arg(short = 'o', long = "output", value_name = "FILE-or-DIR")]
        output: Option<PathBuf>,
        /// Named volumes as hostPath volumes on the node, or as
        /// PersistentVolumeClaims (the unit becomes a StatefulSet).
        #[arg(long, value_enum, default_value = "hostpath")]
        storage: StorageArg,
    },
    /// A Nomad job (the JSON `nomad job run -json` reads): one group per
    /// unit; native units with the exec driver, containers with docker.
    Nomad {
        /// The units directory.
        #[arg(long, default_value = crate::DEFAULT_UNITS)]
        units: PathBuf,
        /// The job's name.
        #[arg(long, default_value = "jarvis")]
        job: String,
        /// The job's datacenters; repeat for more [default: "*"].
        #[arg(long = "datacenter", value_name = "DC")]
        datacenters: Vec<String>,
        /// Where to write the job [default: stdout].
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StorageArg {
    Hostpath,
    Pvc,
}

pub fn run(cmd: ExportCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ExportCommand::Kubernetes {
            units,
            namespace,
            output,
            storage,
        } => {
            let set = load(&units)?;
            let opts = kubernetes::Options {
                namespace,
                storage: match storage {
                    StorageArg::Hostpath => kubernetes::Storage::HostPath,
                    StorageArg::Pvc => kubernetes::Storage::Pvc,
                },
            };
            write(kubernetes::export(&set, &opts), output.as_deref(), "---\n")
        }
        ExportCommand::Nomad {
            units,
            job,
            datacenters,
            output,
        } => {
            let set = load(&units)?;
            let mut opts = nomad::Options {
                job,
                ..Default::default()
            };
            if !datacenters.is_empty() {
                opts.datacenters = datacenters;
            }
            write(nomad::export(&set, &opts), output.as_deref(), "")
        }
    }
}

/// The units of `dir`, every problem as FILE:LINE:COL.
fn load(dir: &Path) -> anyhow::Result<Vec<jarvis_unit::Unit>> {
    let set = jarvis_unit::load_dir(dir).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("{}", text.join("\n"))
    })?;
    Ok(set.units.into_values().collect())
}

/// Writes the documents to stdout, a file, or a directory (one file
/// each); says what was left out and why; exit 1 if anything was.
fn write(export: Export, output: Option<&Path>, separator: &str) -> anyhow::Result<ExitCode> {
    let joined = || {
        let mut all = String::new();
        for (i, d) in export.documents.iter().enumerate() {
            if i > 0 {
                all.push_str(separator);
            }
            all.push_str(&d.text);
        }
        all
    };
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(joined().as_bytes())?;
            out.flush()?;
        }
        Some(path) if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') => {
            std::fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
            for d in &export.documents {
                let file = path.join(&d.name);
                std::fs::write(&file, &d.text)
                    .with_context(|| format!("write {}", file.display()))?;
                eprintln!("wrote {}", file.display());
            }
        }
        Some(file) => {
            std::fs::write(file, joined()).with_context(|| format!("write {}", file.display()))?;
            eprintln!(
                "wrote {} ({} document(s))",
                file.display(),
                export.documents.len()
            );
        }
    }
    for s in &export.skipped {
        eprintln!("not exported: {}: {}", s.unit, s.why);
    }
    Ok(if export.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
