//! A compose project loaded as `docker compose` (compose v2, through
//! compose-go) loads it: the files found or named, `.env` and `--env-file`s,
//! the project name, interpolation, `extends`, the merge of several files,
//! profiles. The result is one positioned tree per service, ready for the
//! converter.
//!
//! What the loader changes in the services' trees, and nothing else (short
//! and long forms otherwise stay as written):
//! - relative paths made absolute (see [`paths`] for the keys): against the
//!   project directory, or the extended file's own directory for what a
//!   service takes from another file by `extends: {file}`;
//! - where two definitions of a service are merged (`-f` files, `extends`),
//!   the forms the merge needs (see [`merge`]): `environment`, `labels`,
//!   `sysctls`, `annotations`, `build.args`, ... lists become mappings
//!   (`KEY=VALUE` → `KEY: VALUE`, bare `KEY` → `KEY: null`); `depends_on`
//!   lists become mappings of `{condition: service_started, required: true}`;
//!   `networks` lists become mappings of nulls; `build: PATH` becomes
//!   `{context: PATH}`; `dns*`, `tmpfs`, `env_file` strings become lists;
//!   `extra_hosts` mappings become `HOST=IP` lists;
//! - `environment` entries without a value (`- FOO`, `FOO:`) take FOO's
//!   value from the project environment when it is set there (as compose
//!   does); otherwise they stay without one;
//! - strings at the keys compose types (`privileged`, `init`, `read_only`,
//!   `cpus`, `pids_limit`, `healthcheck.retries`, `ports[].target`, ...)
//!   become booleans and numbers (`"true"`, `yes` → true; `"2"` → 2);
//! - `x-` keys are removed from services and resource definitions;
//! - `extends` is resolved and removed; values tagged `!reset` are removed;
//!   `include`d projects' services and resources are added.
//!
//! Positions: a scalar is positioned where its value starts; a mapping, a
//! list or an empty value at its key (`healthcheck:`, `web:`); a service at
//! its name. After a merge, each value keeps the position (and file) where
//! the winning value was written; merged mappings and appended lists keep
//! the first definition's.
//!
//! Where this differs from compose, and why:
//! - timestamps (`2024-01-01`) stay strings (go-yaml makes them a time that
//!   no compose key takes);
//! - errors are collected over every file rather than stopping at the first;
//! - no JSON-schema validation beyond the top-level keys and the shape of
//!   `services`: the converter reports what it cannot take, with positions;
//! - `networks.*.ipam.config` lists are appended rather than merged by
//!   subnet, and the top-level `secrets`/`configs` `environment:` source is
//!   left for the converter;
//! - `x-` keys inside user-named mappings (`environment`, `labels`, ...)
//!   are kept as data (compose-go moves them out and then fails on them);
//! - a bare name on the last line of a `.env` without a line break is taken
//!   as inherited, like the same name on any other line;
//! - bounds of their own: files over [`yaml::MAX_FILE_BYTES`], documents of
//!   more than [`yaml::MAX_NODES`] values once aliases are expanded, and
//!   nesting deeper than [`yaml::MAX_DEPTH`] are refused.

pub mod dotenv;
pub mod interp;
pub mod merge;
pub mod paths;
pub mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::node::{Node, Pos};
use yaml::{V, Y};

/// What to load, as `docker compose` takes it from its command line and
/// environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f`, in order; empty: `COMPOSE_FILE` from [`Self::environment`],
    /// else the first of compose.yaml, compose.yml, docker-compose.yml,
    /// docker-compose.yaml in the project directory (or the current one, or
    /// their parents), plus its override file (compose.override.yml, ...)
    /// when present.
    pub files: Vec<PathBuf>,
    /// `--env-file`, in order (later files win); empty: `.env` in the
    /// project directory, if present.
    pub env_files: Vec<PathBuf>,
    /// `--project-directory`; default: the first file's directory.
    pub project_dir: Option<PathBuf>,
    /// `--profile`; empty: `COMPOSE_PROFILES` (comma-separated).
    pub profiles: Vec<String>,
    /// The process environment; it wins over env files.
    pub environment: BTreeMap<String, String>,
}

/// A loaded project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// `COMPOSE_PROJECT_NAME`, else the last top-level `name:`, else the
    /// project directory's name; normalized as compose does.
    pub name: String,
    /// The project directory, absolute.
    pub dir: PathBuf,
    /// Each enabled service's merged, interpolated, extends-resolved map,
    /// in file order.
    pub services: Vec<(String, Node)>,
    pub volumes: Vec<(String, Node)>,
    pub networks: Vec<(String, Node)>,
    pub secrets: Vec<(String, Node)>,
    pub configs: Vec<(String, Node)>,
    /// Services left out by profiles, with where they are defined.
    pub skipped: Vec<(String, Pos)>,
}

/// A problem with the project, where it was found when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub pos: Option<Pos>,
    pub message: String,
}

impl LoadError {
    pub fn at(pos: Pos, message: String) -> LoadError {
        LoadError {
            pos: Some(pos),
            message,
        }
    }

    pub fn new(message: String) -> LoadError {
        LoadError { pos: None, message }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(pos) => write!(f, "{pos}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for LoadError {}

/// compose-go's file names, in its order of preference.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
pub const DEFAULT_OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

const TOP_LEVEL_KEYS: [&str; 9] = [
    "include", "version", "name", "services", "networks", "volumes", "secrets", "configs", "models",
];

type Errors = Vec<LoadError>;

/// Loads a project.
pub fn load(opts: &LoadOptions) -> Result<Project, Vec<LoadError>> {
    let cwd = std::env::current_dir()
        .map_err(|e| vec![LoadError::new(format!("current directory: {e}"))])?;
    let absolute = |p: &Path| paths::clean(&cwd.join(p));
    let project_dir = opts.project_dir.as_deref().map(absolute);

    let files = compose_files(opts, project_dir.as_deref().unwrap_or(&cwd), &absolute)?;
    let dir = match project_dir {
        Some(d) => d,
        None => files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone()),
    };

    let mut vars = project_environment(opts, &dir, &absolute)?;

    // Every file parsed first: the project name may come from any of them.
    let mut errors = Errors::new();
    let mut docs: Vec<(Arc<PathBuf>, Vec<Y>)> = Vec::new();
    for f in &files {
        let file = Arc::new(f.clone());
        match read_yaml(&file) {
            Ok(d) => docs.push((file, d)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let name = project_name(&docs, &vars, &dir)?;
    vars.insert("COMPOSE_PROJECT_NAME".into(), name.clone());

    let home = vars.get("HOME").cloned();
    let mut ctx = Ctx {
        home: home.as_deref(),
        extended: HashMap::new(),
    };
    let project = ctx.load_model(docs, &dir, &vars, &mut Vec::new())?;
    let Some(mut root) = project else {
        return Err(vec![LoadError::new(format!(
            "{}: empty compose file",
            files[0].display()
        ))]);
    };
    merge::strip_resets(&mut root);

    let profiles: Vec<String> = if opts.profiles.is_empty() {
        vars.get("COMPOSE_PROFILES")
            .map(|p| {
                p.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        opts.profiles.clone()
    };

    let section = |root: &mut Y, key: &str| -> Vec<(String, Y)> {
        match root.remove(key) {
            Some(Y {
                v: V::Map(entries), ..
            }) => entries,
            _ => Vec::new(),
        }
    };
    let mut services = Vec::new();
    let mut skipped = Vec::new();
    for (svc_name, mut svc) in section(&mut root, "services") {
        if matches!(svc.v, V::Null) {
            svc.v = V::Map(Vec::new());
        }
        strip_extensions(&mut svc);
        resolve_environment(&mut svc, &vars);
        if has_profile(&svc, &profiles) {
            services.push((svc_name, svc));
        } else {
            skipped.push((svc_name, svc.pos.clone()));
        }
    }
    errors.extend(check_dependencies(&services, &skipped));
    if !errors.is_empty() {
        return Err(errors);
    }

    let resources = |root: &mut Y, key: &str| -> Vec<(String, Node)> {
        section(root, key)
            .into_iter()
            .map(|(k, mut v)| {
                strip_extensions_in(&mut v);
                (k, v.into_node())
            })
            .collect()
    };
    Ok(Project {
        name,
        dir,
        volumes: resources(&mut root, "volumes"),
        networks: resources(&mut root, "networks"),
        secrets: resources(&mut root, "secrets"),
        configs: resources(&mut root, "configs"),
        services: services
            .into_iter()
            .map(|(k, v)| (k, v.into_node()))
            .collect(),
        skipped,
    })
}

/// The compose files to read, absolute.
fn compose_files(
    opts: &LoadOptions,
    start: &Path,
    absolute: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<PathBuf>, Errors> {
    let named: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.clone()
    } else if let Some(list) = opts
        .environment
        .get("COMPOSE_FILE")
        .filter(|s| !s.is_empty())
    {
        let sep = opts
            .environment
            .get("COMPOSE_PATH_SEPARATOR")
            .filter(|s| !s.is_empty());
        list.split(sep.map_or(":", String::as_str))
            .map(PathBuf::from)
            .collect()
    } else {
        Vec::new()
    };
    if !named.is_empty() {
        let files: Vec<PathBuf> = named.iter().map(|f| absolute(f)).collect();
        let missing: Errors = files
            .iter()
            .filter(|f| !f.is_file())
            .map(|f| LoadError::new(format!("{}: no such compose file", f.display())))
            .collect();
        return if missing.is_empty() {
            Ok(files)
        } else {
            Err(missing)
        };
    }
    let mut dir = start.to_path_buf();
    loop {
        if let Some(main) = DEFAULT_FILES
            .iter()
            .map(|n| dir.join(n))
            .find(|f| f.is_file())
        {
            let mut files = vec![main];
            if let Some(o) = DEFAULT_OVERRIDE_FILES
                .iter()
                .map(|n| dir.join(n))
                .find(|f| f.is_file())
            {
                files.push(o);
            }
            return Ok(files);
        }
        if !dir.pop() {
            return Err(vec![LoadError::new(format!(
                "no compose file in {} or its parents (looked for {})",
                start.display(),
                DEFAULT_FILES.join(", ")
            ))]);
        }
    }
}

/// The process environment over the env files' variables.
fn project_environment(
    opts: &LoadOptions,
    dir: &Path,
    absolute: &dyn Fn(&Path) -> PathBuf,
) -> Result<BTreeMap<String, String>, Errors> {
    let env_files: Vec<PathBuf> = if !opts.env_files.is_empty() {
        opts.env_files.iter().map(|f| absolute(f)).collect()
    } else {
        let disabled = opts
            .environment
            .get("COMPOSE_DISABLE_ENV_FILE")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true"));
        let dot = dir.join(".env");
        if !disabled && dot.is_file() {
            vec![dot]
        } else {
            Vec::new()
        }
    };
    let mut vars = read_env_files(&env_files, &opts.environment)?;
    vars.extend(opts.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(vars)
}

/// The variables of env files read in order (later files win), their
/// expansions looking in `environment` first (compose-go's
/// `GetEnvFromFile`).
fn read_env_files(files: &[PathBuf], environment: &Vars) -> Result<Vars, Errors> {
    let mut from_files = BTreeMap::new();
    for f in files {
        let file = Arc::new(f.clone());
        let text = read_text(&file).map_err(|e| vec![e])?;
        let lookup = |k: &str| environment.get(k).cloned();
        if let Err(e) = dotenv::parse(&text, &mut from_files, &lookup) {
            let pos = Pos {
                file,
                line: e.line,
                col: e.col,
            };
            return Err(vec![LoadError::at(pos, e.message)]);
        }
    }
    Ok(from_files)
}

fn read_text(file: &Arc<PathBuf>) -> Result<String, LoadError> {
    let shown = file.display();
    let meta =
        std::fs::metadata(file.as_path()).map_err(|e| LoadError::new(format!("{shown}: {e}")))?;
    if meta.is_dir() {
        return Err(LoadError::new(format!("{shown}: is a directory")));
    }
    if meta.len() > yaml::MAX_FILE_BYTES {
        return Err(LoadError::new(format!(
            "{shown}: {} bytes; refusing a file over {} bytes",
            meta.len(),
            yaml::MAX_FILE_BYTES
        )));
    }
    let bytes =
        std::fs::read(file.as_path()).map_err(|e| LoadError::new(format!("{shown}: {e}")))?;
    if bytes.len() as u64 > yaml::MAX_FILE_BYTES {
        return Err(LoadError::new(format!(
            "{shown}: refusing a file over {} bytes",
            yaml::MAX_FILE_BYTES
        )));
    }
    String::from_utf8(bytes).map_err(|_| LoadError::new(format!("{shown}: not UTF-8 text")))
}

fn read_yaml(file: &Arc<PathBuf>) -> Result<Vec<Y>, LoadError> {
    let text = read_text(file)?;
    yaml::parse(&text, file)
}

/// compose-go's `NormalizeProjectName`: lowercase, only `[a-z0-9_-]`, no
/// leading `_` or `-`.
pub fn normalize_project_name(s: &str) -> String {
    let kept: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

fn project_name(
    docs: &[(Arc<PathBuf>, Vec<Y>)],
    vars: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<String, Errors> {
    if let Some(name) = vars.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        if normalize_project_name(name) != *name {
            return Err(vec![LoadError::new(format!(
                "invalid project name {name:?} (COMPOSE_PROJECT_NAME): must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
            ))]);
        }
        return Ok(name.clone());
    }
    let named = docs
        .iter()
        .flat_map(|(_, d)| d.iter())
        .filter_map(|d| d.get("name"))
        .rfind(|n| n.scalar().is_some_and(|s| !s.is_empty()));
    let (name, pos) = match named {
        Some(n) => {
            let raw = n.scalar().unwrap_or_default();
            let text = interp::substitute(&raw, &|k: &str| vars.get(k).cloned()).map_err(|e| {
                vec![LoadError::at(
                    n.pos.clone(),
                    format!("error while interpolating name: {e}"),
                )]
            })?;
            (normalize_project_name(&text), Some(n.pos.clone()))
        }
        None => {
            let base = dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (normalize_project_name(&base), None)
        }
    };
    if name.is_empty() {
        let message =
            "project name must not be empty: set `name:`, or COMPOSE_PROJECT_NAME".to_string();
        return Err(vec![LoadError { pos, message }]);
    }
    Ok(name)
}

/// The state shared while files are prepared and `extends` followed.
struct Ctx<'a> {
    home: Option<&'a str>,
    /// Files read for `extends: {file}`, prepared.
    extended: HashMap<PathBuf, Y>,
}

type Vars = BTreeMap<String, String>;

impl Ctx<'_> {
    /// compose-go's `loadYamlModel`: each document of each file prepared
    /// (interpolated with `vars`, paths resolved against `dir`), its
    /// `include`s imported and its `extends` followed, then merged over the
    /// previous ones. `included` is the chain of files being included.
    fn load_model(
        &mut self,
        docs: Vec<(Arc<PathBuf>, Vec<Y>)>,
        dir: &Path,
        vars: &Vars,
        included: &mut Vec<PathBuf>,
    ) -> Result<Option<Y>, Errors> {
        let mut errors = Errors::new();
        let mut project: Option<Y> = None;
        for (file, file_docs) in docs {
            for doc in file_docs {
                let mut root = match self.prepare(doc, vars, dir, true) {
                    Ok(root) => root,
                    Err(mut e) => {
                        errors.append(&mut e);
                        continue;
                    }
                };
                included.push(file.to_path_buf());
                let imported = self.apply_include(&mut root, dir, vars, included);
                included.pop();
                if let Err(mut e) = imported {
                    errors.append(&mut e);
                    continue;
                }
                if let Err(e) = self.apply_extends(&mut root, &file, vars) {
                    errors.push(e);
                    continue;
                }
                let merged = match project.take() {
                    None => Ok(root),
                    Some(base) => merge::merge(base, root, &mut Vec::new()),
                };
                match merged {
                    Ok(mut m) => {
                        merge::enforce_unicity(&mut m);
                        project = Some(m);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(project)
        } else {
            Err(errors)
        }
    }

    /// compose-go's `ApplyInclude`: each `include` entry loaded as a project
    /// of its own (its directory, its `.env` under the including project's
    /// environment), and its services, networks, volumes, secrets and
    /// configs added; a name defined on both sides is the included
    /// definition with the including one merged over it.
    fn apply_include(
        &mut self,
        root: &mut Y,
        working_dir: &Path,
        vars: &Vars,
        included: &mut Vec<PathBuf>,
    ) -> Result<(), Errors> {
        let Some(include) = root.remove("include") else {
            return Ok(());
        };
        let entries = match include.v {
            V::Null => Vec::new(),
            V::Seq(items) => items,
            _ => {
                return Err(vec![LoadError::at(
                    include.pos,
                    "`include` must be a list".into(),
                )])
            }
        };
        let one = |pos: &Pos, m: String| vec![LoadError::at(pos.clone(), m)];
        for entry in entries {
            let strings = |y: Option<&Y>| -> Vec<String> {
                match y.map(|y| &y.v) {
                    Some(V::Str(s)) => vec![s.clone()],
                    Some(V::Seq(items)) => items.iter().filter_map(Y::scalar).collect(),
                    _ => Vec::new(),
                }
            };
            let (paths_, project_dir, env_files) = match &entry.v {
                V::Str(s) => (vec![s.clone()], None, Vec::new()),
                V::Map(_) => (
                    strings(entry.get("path")),
                    entry.get("project_directory").and_then(Y::scalar),
                    strings(entry.get("env_file")),
                ),
                _ => {
                    return Err(one(
                        &entry.pos,
                        "an include entry is a path or a mapping with `path`".into(),
                    ))
                }
            };
            if paths_.is_empty() {
                return Err(one(&entry.pos, "an include entry needs a `path`".into()));
            }
            let files: Vec<PathBuf> = paths_
                .iter()
                .map(|p| paths::clean(&working_dir.join(p)))
                .collect();
            for f in &files {
                if !f.is_file() {
                    return Err(one(
                        &entry.pos,
                        format!("include: {}: no such file", f.display()),
                    ));
                }
            }
            if included.contains(&files[0]) {
                let mut chain: Vec<String> =
                    included.iter().map(|f| f.display().to_string()).collect();
                chain.push(files[0].display().to_string());
                return Err(one(
                    &entry.pos,
                    format!("include cycle detected:\n{}", chain.join("\n include ")),
                ));
            }
            let dir = match project_dir {
                Some(d) => paths::clean(&working_dir.join(d)),
                None => files[0].parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            let env_files: Vec<PathBuf> = if env_files.is_empty() {
                Some(dir.join(".env"))
                    .filter(|f| f.is_file())
                    .into_iter()
                    .collect()
            } else {
                env_files
                    .iter()
                    .filter(|f| *f != "/dev/null")
                    .map(|f| paths::clean(&working_dir.join(f)))
                    .collect()
            };
            let mut sub_vars = vars.clone();
            for (k, v) in read_env_files(&env_files, vars)? {
                sub_vars.entry(k).or_insert(v);
            }
            let mut docs = Vec::new();
            for f in files {
                let file = Arc::new(f);
                let d = read_yaml(&file).map_err(|e| vec![e])?;
                docs.push((file, d));
            }
            let Some(mut imported) = self.load_model(docs, &dir, &sub_vars, included)? else {
                continue;
            };
            for key in [
                "services", "volumes", "networks", "secrets", "configs", "models",
            ] {
                let Some(Y {
                    v: V::Map(from), ..
                }) = imported.remove(key)
                else {
                    continue;
                };
                if root.get(key).is_none_or(|t| !t.is_map()) {
                    root.set(key, Y::new(V::Map(Vec::new()), include.pos.clone()));
                }
                let target = root.get_mut(key).expect("set above");
                for (name, a) in from {
                    match target.remove(&name) {
                        None => target.set(&name, a),
                        Some(own) => {
                            let merged =
                                merge::merge(a, own, &mut vec![key.to_string(), name.clone()])
                                    .map_err(|e| vec![e])?;
                            target.set(&name, merged);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a document's top level, interpolates it, types the values
    /// compose types, and makes its paths absolute against `base`.
    fn prepare(&self, doc: Y, vars: &Vars, base: &Path, main: bool) -> Result<Y, Errors> {
        let mut root = match doc.v {
            V::Map(_) => doc,
            V::Null => Y::new(V::Map(Vec::new()), doc.pos),
            _ => {
                return Err(vec![LoadError::at(
                    doc.pos,
                    "top-level object must be a mapping".into(),
                )]);
            }
        };
        let mut errors = Errors::new();
        if let V::Map(entries) = &root.v {
            for (k, v) in entries {
                if !TOP_LEVEL_KEYS.contains(&k.as_str()) && !k.starts_with("x-") {
                    errors.push(LoadError::at(
                        v.pos.clone(),
                        format!("additional property {k:?} is not allowed at the top level"),
                    ));
                } else if k == "services" {
                    match &v.v {
                        V::Map(services) => {
                            for (name, svc) in services {
                                if !matches!(svc.v, V::Map(_) | V::Null) {
                                    errors.push(LoadError::at(
                                        svc.pos.clone(),
                                        format!("services.{name} must be a mapping"),
                                    ));
                                }
                            }
                        }
                        V::Null => {}
                        _ => errors.push(LoadError::at(
                            v.pos.clone(),
                            "services must be a mapping".into(),
                        )),
                    }
                }
            }
        }
        if !main {
            // An extended file is read for its services only.
            if let V::Map(entries) = &mut root.v {
                entries.retain(|(k, _)| k == "services");
            }
        }
        interpolate(&mut root, &mut Vec::new(), vars, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        paths::Resolver {
            base,
            home: self.home,
        }
        .resolve(&mut root);
        Ok(root)
    }

    /// Resolves `extends` in every service of a file's tree.
    fn apply_extends(
        &mut self,
        root: &mut Y,
        file: &Arc<PathBuf>,
        vars: &Vars,
    ) -> Result<(), LoadError> {
        let Some(services) = root.get_mut("services") else {
            return Ok(());
        };
        let names: Vec<String> = match &services.v {
            V::Map(m) => m.iter().map(|(k, _)| k.clone()).collect(),
            _ => return Ok(()),
        };
        for name in names {
            self.extend_service(&name, services, file, vars, &mut Vec::new())?;
        }
        Ok(())
    }

    /// compose-go's `applyServiceExtends`: the service `name` of
    /// `services` (from `file`) with its `extends` chain merged in.
    fn extend_service(
        &mut self,
        name: &str,
        services: &mut Y,
        file: &Arc<PathBuf>,
        vars: &Vars,
        chain: &mut Vec<(Arc<PathBuf>, String, Pos)>,
    ) -> Result<Option<Y>, LoadError> {
        let Some(service) = services.get(name).cloned() else {
            return Ok(None);
        };
        let Some(ext) = service.get("extends").cloned() else {
            return Ok(Some(service));
        };
        let (reference, other) = match &ext.v {
            V::Str(s) => (s.clone(), None),
            V::Map(_) => {
                let Some(r) = ext.get("service").and_then(Y::as_str) else {
                    return Err(LoadError::at(
                        ext.pos.clone(),
                        format!("extends of service {name:?} needs `service`"),
                    ));
                };
                let f = match ext.get("file") {
                    None | Some(Y { v: V::Null, .. }) => None,
                    Some(f) => match f.as_str() {
                        Some(s) => Some(paths::clean(
                            &file.parent().unwrap_or(Path::new("/")).join(s),
                        )),
                        None => {
                            return Err(LoadError::at(
                                f.pos.clone(),
                                "extends.file must be a path".into(),
                            ))
                        }
                    },
                };
                (r.to_string(), f)
            }
            _ => {
                return Err(LoadError::at(
                    ext.pos.clone(),
                    "extends must be a service name or a mapping with `service` (and `file`)"
                        .into(),
                ))
            }
        };
        if let Some(first) = chain
            .iter()
            .position(|(f, n, _)| **f == **file && n == name)
        {
            let mut lines = vec!["circular extends:".to_string()];
            for (i, (f, n, _)) in chain[first..].iter().enumerate() {
                let verb = if i == 0 { "" } else { "extends " };
                lines.push(format!("  {verb}{n} in {}", f.display()));
            }
            lines.push(format!("  extends {name} in {}", file.display()));
            return Err(LoadError::at(ext.pos.clone(), lines.join("\n")));
        }
        chain.push((file.clone(), name.to_string(), ext.pos.clone()));

        let base = match other {
            Some(path) => {
                let base_file = Arc::new(path);
                let mut base_root = self.extended_file(&base_file, &ext.pos, vars)?;
                let Some(base_services) = base_root.get_mut("services") else {
                    return Err(LoadError::at(
                        ext.pos.clone(),
                        format!(
                            "cannot extend service {name:?}: {} has no services",
                            base_file.display()
                        ),
                    ));
                };
                if base_services.get(&reference).is_none() {
                    return Err(LoadError::at(
                        ext.pos.clone(),
                        format!(
                            "cannot extend service {name:?}: service {reference:?} not found in {}",
                            base_file.display()
                        ),
                    ));
                }
                self.extend_service(&reference, base_services, &base_file, vars, chain)?
            }
            None => {
                if services.get(&reference).is_none() {
                    return Err(LoadError::at(
                        ext.pos.clone(),
                        format!(
                            "cannot extend service {name:?}: service {reference:?} not found in {}",
                            file.display()
                        ),
                    ));
                }
                self.extend_service(&reference, services, file, vars, chain)?
            }
        };
        chain.pop();

        let mut merged = match base {
            Some(base) if !matches!(base.v, V::Null) => {
                let base = Y {
                    pos: service.pos.clone(),
                    ..base
                };
                merge::merge(base, service, &mut vec!["services".into(), name.into()])?
            }
            _ => service,
        };
        merged.remove("extends");
        services.set(name, merged.clone());
        Ok(Some(merged))
    }

    /// A file named by `extends: {file}`, read and prepared once, its
    /// relative paths resolved against its own directory.
    fn extended_file(
        &mut self,
        file: &Arc<PathBuf>,
        at: &Pos,
        vars: &Vars,
    ) -> Result<Y, LoadError> {
        if let Some(y) = self.extended.get(file.as_path()) {
            return Ok(y.clone());
        }
        let docs = read_yaml(file).map_err(|e| match e.pos {
            Some(_) => e,
            None => LoadError::at(at.clone(), format!("extends: {}", e.message)),
        })?;
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut root: Option<Y> = None;
        for doc in docs {
            let prepared = self
                .prepare(doc, vars, &base, false)
                .map_err(|mut e| e.remove(0))?;
            root = Some(match root.take() {
                None => prepared,
                Some(r) => merge::merge(r, prepared, &mut Vec::new())?,
            });
        }
        let root = root.unwrap_or_else(|| Y::new(V::Map(Vec::new()), at.clone()));
        self.extended.insert(file.to_path_buf(), root.clone());
        Ok(root)
    }
}

/// The keys whose strings compose turns into other types after
/// interpolation (compose-go's `interpolateTypeCastMapping`).
#[derive(Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

const CASTS: &[(&str, Cast)] = &[
    ("services.*.cpu_count", Cast::Int),
    ("services.*.cpu_percent", Cast::Float),
    ("services.*.cpu_period", Cast::Int),
    ("services.*.cpu_quota", Cast::Int),
    ("services.*.cpu_rt_period", Cast::Int),
    ("services.*.cpu_rt_runtime", Cast::Int),
    ("services.*.cpus", Cast::Float),
    ("services.*.cpu_shares", Cast::Int),
    ("services.*.init", Cast::Bool),
    ("services.*.depends_on.*.required", Cast::Bool),
    ("services.*.depends_on.*.restart", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    (
        "services.*.deploy.update_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    (
        "services.*.deploy.rollback_config.max_failure_ratio",
        Cast::Float,
    ),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    (
        "services.*.deploy.placement.max_replicas_per_node",
        Cast::Int,
    ),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.oom_kill_disable", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.pids_limit", Cast::Int),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.read_only", Cast::Bool),
    ("services.*.scale", Cast::Int),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("networks.*.enable_ipv4", Cast::Bool),
    ("networks.*.enable_ipv6", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn cast_for(path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        let pat: Vec<&str> = pattern.split('.').collect();
        let hit = pat.len() == path.len() && pat.iter().zip(path).all(|(p, s)| *p == "*" || p == s);
        hit.then_some(*cast)
    })
}

fn cast(text: &str, cast: Cast) -> Result<V, String> {
    match cast {
        Cast::Int => text
            .parse::<i64>()
            .map(V::Int)
            .map_err(|_| format!("invalid integer: {text:?}")),
        Cast::Float => text
            .parse::<f64>()
            .map(V::Float)
            .map_err(|_| format!("invalid number: {text:?}")),
        Cast::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "y" | "yes" | "on" => Ok(V::Bool(true)),
            "false" | "n" | "no" | "off" => Ok(V::Bool(false)),
            _ => Err(format!("invalid boolean: {text:?}")),
        },
    }
}

/// Interpolates every string value (not keys) of a tree in place.
fn interpolate(
    y: &mut Y,
    path: &mut Vec<String>,
    vars: &BTreeMap<String, String>,
    errors: &mut Errors,
) {
    match &mut y.v {
        V::Str(s) => {
            let lookup = |k: &str| vars.get(k).cloned();
            match interp::substitute(s, &lookup) {
                Ok(text) => match cast_for(path) {
                    Some(c) => match cast(&text, c) {
                        Ok(v) => y.v = v,
                        Err(m) => errors.push(LoadError::at(
                            y.pos.clone(),
                            format!("{}: failed to cast to expected type: {m}", path.join(".")),
                        )),
                    },
                    None => *s = text,
                },
                Err(e) => errors.push(LoadError::at(
                    y.pos.clone(),
                    format!("error while interpolating {}: {e}", path.join(".")),
                )),
            }
        }
        V::Seq(items) => {
            for item in items.iter_mut() {
                path.push("[]".into());
                interpolate(item, path, vars, errors);
                path.pop();
            }
        }
        V::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                path.push(k.clone());
                interpolate(v, path, vars, errors);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Mappings whose keys are names the user chose, where an `x-` key is data.
const USER_KEYED: &[&str] = &[
    "environment",
    "labels",
    "annotations",
    "sysctls",
    "extra_hosts",
    "args",
    "depends_on",
    "networks",
    "ulimits",
    "driver_opts",
    "options",
    "additional_contexts",
    "models",
    "storage_opt",
];

/// Removes `x-` keys from a service (or resource) and the structures in it.
fn strip_extensions(y: &mut Y) {
    if let V::Map(entries) = &mut y.v {
        entries.retain(|(k, _)| !k.starts_with("x-"));
        for (k, v) in entries.iter_mut() {
            if USER_KEYED.contains(&k.as_str()) {
                if let V::Map(inner) = &mut v.v {
                    inner.iter_mut().for_each(|(_, v)| strip_extensions_in(v));
                }
            } else {
                strip_extensions_in(v);
            }
        }
    }
}

fn strip_extensions_in(y: &mut Y) {
    match &mut y.v {
        V::Map(_) => strip_extensions(y),
        V::Seq(items) => items.iter_mut().for_each(strip_extensions_in),
        _ => {}
    }
}

/// `environment: [FOO]` and `FOO:` take FOO from the project environment.
fn resolve_environment(service: &mut Y, vars: &BTreeMap<String, String>) {
    let Some(env) = service.get_mut("environment") else {
        return;
    };
    match &mut env.v {
        V::Seq(items) => {
            for item in items.iter_mut() {
                if let V::Str(s) = &mut item.v {
                    if !s.contains('=') {
                        if let Some(v) = vars.get(s.as_str()) {
                            *s = format!("{s}={v}");
                        }
                    }
                }
            }
        }
        V::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                if matches!(v.v, V::Null) {
                    if let Some(val) = vars.get(k) {
                        v.v = V::Str(val.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

fn service_profiles(service: &Y) -> Vec<String> {
    match service.get("profiles").map(|p| &p.v) {
        Some(V::Seq(items)) => items.iter().filter_map(Y::scalar).collect(),
        Some(V::Str(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// compose-go's `HasProfile`: no `profiles`, or one of them active, or `*`.
fn has_profile(service: &Y, active: &[String]) -> bool {
    let own = service_profiles(service);
    own.is_empty() || active.iter().any(|a| a == "*" || own.contains(a))
}

/// An enabled service may not depend on one that is left out or missing,
/// unless the dependency says `required: false` (compose's consistency
/// check).
fn check_dependencies(services: &[(String, Y)], skipped: &[(String, Pos)]) -> Errors {
    let mut errors = Errors::new();
    let all: Vec<&(String, Y)> = services.iter().collect();
    for (name, svc) in services {
        let Some(deps) = svc.get("depends_on") else {
            continue;
        };
        let entries: Vec<(String, Pos, bool)> = match &deps.v {
            V::Seq(items) => items
                .iter()
                .filter_map(|i| Some((i.scalar()?, i.pos.clone(), true)))
                .collect(),
            V::Map(m) => m
                .iter()
                .map(|(k, v)| {
                    let required = !matches!(v.get("required").map(|r| &r.v), Some(V::Bool(false)));
                    (k.clone(), v.pos.clone(), required)
                })
                .collect(),
            _ => Vec::new(),
        };
        for (dep, pos, required) in entries {
            if all.iter().any(|(n, _)| *n == dep) || !required {
                continue;
            }
            let message = if skipped.iter().any(|(n, _)| *n == dep) {
                format!(
                    "service {name:?} depends on service {dep:?}, which is not enabled by the active profiles"
                )
            } else {
                format!("service {name:?} depends on undefined service {dep:?}")
            };
            errors.push(LoadError::at(pos, message));
        }
    }
    errors
}
