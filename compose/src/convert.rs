//! Compose services to jarvis unit files, with a located report.
//!
//! [`convert`] turns each service of a loaded project into the text of one
//! unit file (`NAME.toml`) and lists every compose key it could not express
//! as a [`Problem`] with the FILE:LINE:COL it was written at. Its rule: a
//! unit never behaves differently from the compose service without saying
//! so, either as a problem or as a comment in the unit above the key where
//! the conversion was a choice. Every unit written is checked with
//! jarvis-unit's own parser and cross-unit checks; what they refuse is a
//! problem too.
//!
//! [`write`] puts the files in a directory: it overwrites only files an
//! earlier import wrote (their first line is [`HEADER`]) and creates the
//! missing host directories of bind mounts, as `docker compose up` does.

mod out;
mod service;
mod syntax;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::node::{Node, Pos};

/// The first words of every file the importer writes; a file that starts
/// with them may be overwritten by the next import.
pub const HEADER: &str = "# Imported by `jarvisctl import compose`";

/// What a conversion reads: a loaded compose project, and the environment
/// its values were interpolated from (for `environment` entries without a
/// value, which take the value of the variable of the same name).
#[derive(Debug, Clone, Copy)]
pub struct Compose<'a> {
    /// The project name (`name:`, `--project-name`, or the directory's).
    pub name: &'a str,
    /// The project directory: relative paths left in the tree resolve
    /// against it.
    pub dir: &'a Path,
    /// Services in file order, merged, interpolated, `extends` resolved.
    pub services: &'a [(String, Node)],
    /// The top-level `volumes`, `networks`, `secrets` and `configs`.
    pub volumes: &'a [(String, Node)],
    pub networks: &'a [(String, Node)],
    pub secrets: &'a [(String, Node)],
    pub configs: &'a [(String, Node)],
    /// The interpolation environment (the process environment over `.env`
    /// and `--env-file`s).
    pub environment: &'a BTreeMap<String, String>,
}

impl<'a> Compose<'a> {
    /// What [`crate::load::load`] gave, with the environment it was given.
    pub fn new(
        project: &'a crate::load::Project,
        environment: &'a BTreeMap<String, String>,
    ) -> Compose<'a> {
        Compose {
            name: &project.name,
            dir: &project.dir,
            services: &project.services,
            volumes: &project.volumes,
            networks: &project.networks,
            secrets: &project.secrets,
            configs: &project.configs,
            environment,
        }
    }
}

/// A unit file to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitFile {
    /// The compose service.
    pub service: String,
    /// The unit's name (the file is `NAME.toml`); the service's name when
    /// it is a valid unit name.
    pub unit: String,
    /// The file's text.
    #[serde(skip)]
    pub text: String,
}

impl UnitFile {
    /// `NAME.toml`.
    pub fn file_name(&self) -> String {
        format!("{}.toml", self.unit)
    }
}

/// A compose key that could not be expressed, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The service it belongs to; `None` for a top-level definition.
    pub service: Option<String>,
    /// The compose key, dotted from the service (`deploy.resources.
    /// reservations.devices`, `ports`), or from the top level.
    pub key: String,
    /// Where it was written; `None` where no position is known.
    pub pos: Option<Pos>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = &self.pos {
            write!(f, "{}:{}:{}: ", pos.file.display(), pos.line, pos.col)?;
        }
        match &self.service {
            Some(s) => write!(f, "service {s:?}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// The result of a conversion.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    pub project: String,
    /// One per service that could be converted, in file order.
    pub units: Vec<UnitFile>,
    /// Every key not expressed, sorted by file and position.
    pub problems: Vec<Problem>,
    /// Host directories bind-mounted with compose's short syntax (or
    /// `create_host_path`) that do not exist: compose creates them at `up`,
    /// and so does [`write`].
    pub create_dirs: Vec<PathBuf>,
}

impl Conversion {
    /// Whether every service converted fully.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as data: `{"project", "ok", "units": [{"service", "unit",
    /// "file"}], "problems": [{"service", "key", "file", "line", "col",
    /// "message"}], "created_dirs": [...]}`; `file` in `units` is the file
    /// name in the output directory; `file`, `line` and `col` of a problem
    /// are null when its position is not known, `service` is null for a
    /// top-level definition.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "project": self.project,
            "ok": self.ok(),
            "units": self.units.iter().map(|u| serde_json::json!({
                "service": u.service,
                "unit": u.unit,
                "file": u.file_name(),
            })).collect::<Vec<_>>(),
            "problems": self.problems.iter().map(|p| serde_json::json!({
                "service": p.service,
                "key": p.key,
                "file": p.pos.as_ref().map(|p| p.file.display().to_string()),
                "line": p.pos.as_ref().map(|p| p.line),
                "col": p.pos.as_ref().map(|p| p.col),
                "message": p.message,
            })).collect::<Vec<_>>(),
            "created_dirs": self.create_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        })
    }
}

/// Converts every service of `compose`.
pub fn convert(compose: &Compose) -> Conversion {
    let names = unit_names(compose.services);
    let mut problems = Vec::new();
    let mut create_dirs = BTreeSet::new();
    let mut units = Vec::new();
    let mut top = service::TopLevel::default();
    for (service, node) in compose.services {
        let unit = names[service].clone();
        let converted = service::convert_service(
            compose,
            &names,
            &mut top,
            service,
            &unit,
            node,
            &mut problems,
            &mut create_dirs,
        );
        if let Some(text) = converted {
            units.push(UnitFile {
                service: service.clone(),
                unit,
                text,
            });
        }
    }
    check_units(compose, &units, &mut problems);
    problems.sort_by(|a, b| {
        let key = |p: &Problem| {
            (
                p.pos.as_ref().map(|p| (p.file.clone(), p.line, p.col)),
                p.service.clone(),
                p.key.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    problems.dedup();
    Conversion {
        project: compose.name.to_string(),
        units,
        problems,
        create_dirs: create_dirs.into_iter().collect(),
    }
}

/// Each service's unit name: the service's own when jarvis takes it, else
/// its name in lower case with other characters as '-', made unique.
fn unit_names(services: &[(String, Node)]) -> BTreeMap<String, String> {
    let mut taken: BTreeSet<String> = services
        .iter()
        .filter(|(s, _)| jarvis_unit::is_valid_unit_name(s))
        .map(|(s, _)| s.clone())
        .collect();
    let mut out = BTreeMap::new();
    for (s, _) in services {
        if jarvis_unit::is_valid_unit_name(s) {
            out.insert(s.clone(), s.clone());
            continue;
        }
        let mut base: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        base = base.trim_start_matches('-').to_string();
        // Room for a "-N" suffix within a unit name's 63 characters.
        base.truncate(jarvis_unit::limits::MAX_UNIT_NAME - 4);
        base = base.trim_end_matches('-').to_string();
        if base.is_empty() {
            base = "service".into();
        }
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(name.clone());
        out.insert(s.clone(), name);
    }
    out
}

/// Parses every unit written and checks them against each other with
/// jarvis-unit; each diagnostic is a problem of its service.
fn check_units(compose: &Compose, units: &[UnitFile], problems: &mut Vec<Problem>) {
    let mut parsed = Vec::new();
    let service_of = |unit: &str| -> (String, Option<Pos>) {
        let u = units.iter().find(|u| u.unit == unit);
        let service = u
            .map(|u| u.service.clone())
            .unwrap_or_else(|| unit.to_string());
        let pos = compose
            .services
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, n)| n.pos.clone());
        (service, pos)
    };
    for u in units {
        match jarvis_unit::parse_unit(Path::new(&u.file_name()), &u.text) {
            Ok(unit) => parsed.push(unit),
            Err(diags) => {
                let (service, pos) = service_of(&u.unit);
                for d in diags {
                    problems.push(Problem {
                        service: Some(service.clone()),
                        key: "(unit)".into(),
                        pos: pos.clone(),
                        message: format!("the unit written for it does not validate: {d}"),
                    });
                }
            }
        }
    }
    if let Err(diags) = jarvis_unit::UnitSet::from_units(parsed) {
        for d in diags {
            let unit = d
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (service, pos) = service_of(&unit);
            problems.push(Problem {
                service: Some(service),
                key: "(unit)".into(),
                pos,
                message: format!("the units written do not validate together: {d}"),
            });
        }
    }
}

/// Why [`write`] wrote nothing.
#[derive(Debug)]
pub enum WriteError {
    /// Files in the way that an import did not write.
    Exists(Vec<PathBuf>),
    Io(PathBuf, std::io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Exists(paths) => {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "not overwriting {} (not written by an import: its first line is not \
                     {HEADER:?}); move it away or choose another -o directory",
                    list.join(", ")
                )
            }
            WriteError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for WriteError {}

/// Writes the units into `dir` (made if missing) and creates the missing
/// bind-mount directories. Refuses, before writing anything, when a file to
/// write exists and an import did not write it. Returns the paths written.
pub fn write(conversion: &Conversion, dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let mut in_the_way = Vec::new();
    for u in &conversion.units {
        let path = dir.join(u.file_name());
        match std::fs::read_to_string(&path) {
            Ok(text) if text.starts_with(HEADER) => {}
            Ok(_) => in_the_way.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => in_the_way.push(path),
        }
    }
    if !in_the_way.is_empty() {
        return Err(WriteError::Exists(in_the_way));
    }
    std::fs::create_dir_all(dir).map_err(|e| WriteError::Io(dir.to_path_buf(), e))?;
    let mut written = Vec::new();
    for u in &conversion.units {
        let path = dir.join(u.file_name());
        let tmp = dir.join(format!(".{}.tmp", u.file_name()));
        std::fs::write(&tmp, &u.text).map_err(|e| WriteError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| WriteError::Io(path.clone(), e))?;
        written.push(path);
    }
    for d in &conversion.create_dirs {
        std::fs::create_dir_all(d).map_err(|e| WriteError::Io(d.clone(), e))?;
    }
    Ok(written)
}
