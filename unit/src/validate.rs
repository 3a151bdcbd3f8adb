//! Loading a set of unit files and checking them against each other:
//! missing dependencies, `healthy` on units without a health check,
//! dependency cycles, duplicate names, host ports published twice, and
//! `network = "unit:NAME"` naming a unit that owns no namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diagnostic::{self, Diagnostic};
use crate::limits::{MAX_DIAGNOSTICS, MAX_FILE_BYTES, MAX_UNIT_FILES};
use crate::parse::{
    check_unit_name, closest, every_address, is_valid_unit_name, parse_detailed, too_big,
    LoadOptions, NetInfo, PRIVILEGED_NOTE,
};
use crate::schema::{
    Condition, Dependency, Exec, Kind, Network, PortSpec, Protocol, RunMode, Unit,
};

/// A validated set of units: every dependency exists, there is no cycle, and
/// every `healthy` dependency has a health check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitSet {
    pub units: BTreeMap<String, Unit>,
    /// See [`UnitSet::notes`].
    notes: Vec<Diagnostic>,
}

impl UnitSet {
    /// Checks units built in code (no files) against each other.
    /// Diagnostics name the file `NAME.toml` and carry no position.
    pub fn from_units(units: impl IntoIterator<Item = Unit>) -> Result<UnitSet, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let mut loaded = BTreeMap::new();
        let mut known = BTreeMap::new();
        for mut unit in units {
            let file = PathBuf::from(format!("{}.toml", unit.name));
            let net = net_info(&mut unit);
            if loaded.contains_key(&unit.name) {
                diags.push(Diagnostic::whole_file(
                    &file,
                    format!("duplicate unit name {:?}", unit.name),
                ));
                continue;
            }
            if let Err(why) = check_unit_name(&unit.name) {
                diags.push(Diagnostic::whole_file(
                    &file,
                    format!("invalid unit name {:?}: {why}", unit.name),
                ));
            }
            for dep in &unit.depends_on {
                if dep.unit == unit.name {
                    diags.push(Diagnostic::whole_file(
                        &file,
                        format!(
                            "depends_on: unit {:?} depends on itself; remove this entry",
                            unit.name
                        ),
                    ));
                }
            }
            known.insert(
                unit.name.clone(),
                Info {
                    file,
                    deps: unit
                        .depends_on
                        .iter()
                        .filter(|d| d.unit != unit.name)
                        .map(|d| (d.clone(), (0, 0)))
                        .collect(),
                    has_health: Some(unit.health.is_some()),
                    net,
                },
            );
            loaded.insert(unit.name.clone(), unit);
        }
        diags.extend(cross_check(&known));
        let notes = loaded
            .values()
            .filter(|u| u.container.as_ref().is_some_and(|c| c.privileged))
            .map(|u| {
                Diagnostic::whole_file(
                    format!("{}.toml", u.name),
                    format!("note: {}", PRIVILEGED_NOTE),
                )
            })
            .collect();
        finish(diags, loaded, notes, &BTreeMap::new())
    }

    /// What is valid but worth saying, sorted by file and position, each
    /// message starting "note: ": today, each `privileged = true`.
    /// `jarvisctl validate` prints them after its "ok" line.
    pub fn notes(&self) -> &[Diagnostic] {
        &self.notes
    }

    pub fn get(&self, name: &str) -> Option<&Unit> {
        self.units.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.units.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Unit names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.units.keys().map(String::as_str)
    }

    /// Units, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// Every unit after all of its dependencies; among units that are ready
    /// at the same time, alphabetical. Dependencies on names outside the set
    /// are ignored (a validated set has none), and should a cycle have been
    /// introduced by hand, its units come last, alphabetically.
    pub fn start_order(&self) -> Vec<&str> {
        self.order_of(self.units.keys().map(String::as_str))
    }

    /// The reverse of [`UnitSet::start_order`]: dependents before their
    /// dependencies.
    pub fn stop_order(&self) -> Vec<&str> {
        let mut order = self.start_order();
        order.reverse();
        order
    }

    /// The units that `name` depends on directly, in file order.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.units
            .get(name)
            .map(|u| {
                u.depends_on
                    .iter()
                    .filter(|d| self.units.contains_key(&d.unit))
                    .map(|d| d.unit.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The units that depend directly on `name`, sorted.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        self.units
            .values()
            .filter(|u| u.depends_on.iter().any(|d| d.unit == name))
            .map(|u| u.name.as_str())
            .collect()
    }

    /// `name` and everything it depends on, transitively, in start order.
    /// Empty if `name` is not in the set.
    pub fn with_dependencies(&self, name: &str) -> Vec<&str> {
        let closure = self.closure(name, |n| self.dependencies(n));
        self.order_of(closure)
    }

    /// `name` and everything that depends on it, transitively, in stop order
    /// (dependents first). Empty if `name` is not in the set.
    pub fn with_dependents(&self, name: &str) -> Vec<&str> {
        let closure = self.closure(name, |n| self.dependents(n));
        let mut order = self.order_of(closure);
        order.reverse();
        order
    }

    fn closure<'a>(&'a self, name: &str, next: impl Fn(&str) -> Vec<&'a str>) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let Some((start, _)) = self.units.get_key_value(name) else {
            return seen;
        };
        let mut queue = vec![start.as_str()];
        while let Some(n) = queue.pop() {
            if seen.insert(n) {
                queue.extend(next(n));
            }
        }
        seen
    }

    /// Topological order (Kahn, alphabetical ties) of a subset of units.
    fn order_of<'a>(&'a self, subset: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let subset: BTreeSet<&str> = subset.into_iter().collect();
        // Each unit's dependencies in the subset, each once, and the other
        // way round.
        let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for &n in &subset {
            let deps: BTreeSet<&str> = self
                .dependencies(n)
                .into_iter()
                .filter(|d| subset.contains(d))
                .collect();
            pending.insert(n, deps.len());
            for d in deps {
                dependents.entry(d).or_default().push(n);
            }
        }
        let mut ready: BTreeSet<&str> = pending
            .iter()
            .filter(|(_, &c)| c == 0)
            .map(|(&n, _)| n)
            .collect();
        let mut order = Vec::with_capacity(subset.len());
        while let Some(n) = ready.pop_first() {
            pending.remove(n);
            order.push(n);
            for &d in dependents.get(n).into_iter().flatten() {
                if let Some(c) = pending.get_mut(d) {
                    *c -= 1;
                    if *c == 0 {
                        ready.insert(d);
                    }
                }
            }
        }
        // Only reachable with a cycle.
        order.extend(pending.keys());
        order
    }
}

/// What the cross-unit checks know about one unit file, valid or not.
struct Info {
    file: PathBuf,
    /// Well-formed dependency entries with their `(line, col)`.
    deps: Vec<(Dependency, (usize, usize))>,
    /// Whether the unit has a `[health]` section; `None` when unknown (the
    /// file could not be read).
    has_health: Option<bool>,
    /// What its `[container]` says about networking; `None` without one
    /// (or when unknown: `has_health` is `None` then).
    net: Option<NetInfo>,
}

impl Info {
    /// Its dependencies with the one `network = "unit:NAME"` implies.
    fn all_deps(&self) -> impl Iterator<Item = &(Dependency, (usize, usize))> {
        self.deps
            .iter()
            .chain(self.net.as_ref().and_then(|n| n.implied.as_ref()))
    }
}

/// The networking of a unit built in code, with no positions; adds the
/// dependency `network = "unit:NAME"` implies to `unit` when it lacks one
/// on NAME, as a file gets it.
fn net_info(unit: &mut Unit) -> Option<NetInfo> {
    let c = match (&unit.exec, &unit.container) {
        (_, Some(c)) | (Exec::Container(c), None) => c.clone(),
        (Exec::Native(_), None) => return None,
    };
    let implied = c
        .network
        .unit()
        .filter(|owner| *owner != unit.name && !unit.depends_on.iter().any(|d| d.unit == *owner))
        .map(|owner| {
            let d = Dependency {
                unit: owner.to_string(),
                condition: Condition::Started,
            };
            unit.depends_on.push(d.clone());
            (d, (0, 0))
        });
    let may_run_native =
        (unit.has_form(Kind::Native) && unit.run != RunMode::Container).then_some(unit.run);
    Some(NetInfo {
        network: Some((c.network.clone(), (0, 0))),
        ports: c.ports.iter().map(|p| (*p, (0, 0))).collect(),
        may_run_native,
        implied,
    })
}

/// The unit files in `dir`: its `*.toml` files that are files (not
/// recursive; hidden files skipped), sorted.
pub fn unit_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(".toml")
        })
        .map(|e| dir.join(e.file_name()))
        .collect();
    found.sort();
    Ok(found)
}

/// Why `file` cannot be a unit file (it is not a regular file, or a link
/// to one), or `None` when it can.
fn not_a_unit_file(file: &Path) -> Option<String> {
    let link = fs::symlink_metadata(file).ok()?;
    match fs::metadata(file) {
        Ok(m) if m.is_file() => None,
        Ok(m) => {
            let t = m.file_type();
            let what = if t.is_dir() {
                "a directory"
            } else if std::os::unix::fs::FileTypeExt::is_fifo(&t) {
                "a FIFO"
            } else if std::os::unix::fs::FileTypeExt::is_socket(&t) {
                "a socket"
            } else {
                "a device or other special file"
            };
            Some(format!(
                "not a regular file ({what}); a unit file is a regular TOML file: rename it or move it out of the units directory"
            ))
        }
        Err(e) if link.file_type().is_symlink() => {
            let target = fs::read_link(file)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            Some(format!(
                "a symbolic link to {target}, which does not exist ({e}); fix or remove the link"
            ))
        }
        Err(e) => Some(format!("cannot read unit file: {e}")),
    }
}

/// Loads every unit file in `dir` (its `*.toml` files, not recursive).
pub fn load_dir(dir: &Path) -> Result<UnitSet, Vec<Diagnostic>> {
    load_dir_with(dir, &LoadOptions::default())
}

/// [`load_dir`] with options (a base for relative host paths).
pub fn load_dir_with(dir: &Path, opts: &LoadOptions) -> Result<UnitSet, Vec<Diagnostic>> {
    load_paths_with(&[dir.to_path_buf()], opts)
}

/// Loads unit files and directories of unit files (a directory contributes
/// its `*.toml` files, not recursively; hidden files are skipped), then checks
/// the units against each other. Returns every problem found, sorted by file,
/// line and column.
pub fn load_paths(paths: &[PathBuf]) -> Result<UnitSet, Vec<Diagnostic>> {
    load_paths_with(paths, &LoadOptions::default())
}

/// [`load_paths`] with options (a base for relative host paths).
pub fn load_paths_with(paths: &[PathBuf], opts: &LoadOptions) -> Result<UnitSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.is_dir() {
            match scan_dir(p) {
                Ok((_, n)) if n > MAX_UNIT_FILES => diags.push(Diagnostic::whole_file(
                    p,
                    format!(
                        "{n} unit files here; a units directory holds at most {MAX_UNIT_FILES}: \
                         split the units between hosts, or move those not in use out of it"
                    ),
                )),
                Ok((found, _)) => files.extend(found),
                Err(e) => diags.push(Diagnostic::whole_file(
                    p,
                    format!("cannot read directory: {e}"),
                )),
            }
        } else if fs::symlink_metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            diags.push(Diagnostic::whole_file(
                p,
                "no such file or directory; give the units directory or unit files",
            ));
        } else {
            files.push(p.clone());
        }
    }
    let mut seen = HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    if files.len() > MAX_UNIT_FILES {
        let first = files[0].clone();
        diags.push(Diagnostic::whole_file(
            first,
            format!(
                "{} unit files given together; a set holds at most {MAX_UNIT_FILES}",
                files.len()
            ),
        ));
        files.clear();
    }

    let mut known: BTreeMap<String, Info> = BTreeMap::new();
    let mut loaded: BTreeMap<String, Unit> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut omitted = BTreeMap::new();
    for file in files {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| is_valid_unit_name(s));
        if let Some(name) = &name {
            if let Some(first) = known.get(name).map(|i| &i.file) {
                diags.push(Diagnostic::new(
                    &file,
                    1,
                    1,
                    format!(
                        "duplicate unit name {name:?}: {} defines it too; unit names (file names) must be unique, \
                         so rename or remove one of them",
                        first.display()
                    ),
                ));
                continue;
            }
        }
        // Only a regular file is read: a FIFO would block the reader, and a
        // link that leads nowhere or a directory named `*.toml` is said, not
        // skipped (the unit would otherwise vanish from the set).
        if let Some(why) = not_a_unit_file(&file) {
            diags.push(Diagnostic::whole_file(&file, why));
            if let Some(name) = name {
                let info = Info {
                    file,
                    deps: Vec::new(),
                    has_health: None,
                    net: None,
                };
                known.insert(name, info);
            }
            continue;
        }
        let text = match read_unit_file(&file) {
            Ok(Ok(text)) => Some(text),
            Ok(Err(e)) => {
                diags.push(not_utf8(&file, e));
                None
            }
            Err(message) => {
                diags.push(Diagnostic::whole_file(&file, message));
                None
            }
        };
        let text = match text {
            Some(text) => text,
            None => {
                if let Some(name) = name {
                    let info = Info {
                        file,
                        deps: Vec::new(),
                        has_health: None,
                        net: None,
                    };
                    known.insert(name, info);
                }
                continue;
            }
        };
        let parsed = parse_detailed(&file, &text, opts);
        diags.extend(parsed.diagnostics);
        if parsed.omitted > 0 {
            omitted.insert(file.clone(), parsed.omitted);
        }
        notes.extend(parsed.notes);
        if let Some(name) = name {
            if let Some(unit) = parsed.unit {
                loaded.insert(name.clone(), unit);
            }
            let info = Info {
                file,
                deps: parsed.deps,
                has_health: Some(parsed.has_health),
                net: parsed.net,
            };
            known.insert(name, info);
        }
    }

    diags.extend(cross_check(&known));
    finish(diags, loaded, notes, &omitted)
}

/// The unit files in `dir` as [`unit_files`] finds them, at most one more
/// than [`MAX_UNIT_FILES`] of them, and how many there are.
fn scan_dir(dir: &Path) -> std::io::Result<(Vec<PathBuf>, usize)> {
    let mut found = Vec::new();
    let mut n = 0;
    for e in fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".toml") {
            n += 1;
            if n <= MAX_UNIT_FILES + 1 {
                found.push(dir.join(e.file_name()));
            }
        }
    }
    found.sort();
    Ok((found, n))
}

/// Reads a unit file (a regular file) of at most [`MAX_FILE_BYTES`]: a
/// larger one is refused from its size, and never read past the limit
/// (should it grow while it is read). The error is the message to report.
fn read_unit_file(file: &Path) -> Result<Result<String, std::string::FromUtf8Error>, String> {
    let cannot = |e: std::io::Error| format!("cannot read unit file: {e}");
    let f = fs::File::open(file).map_err(cannot)?;
    let size = f.metadata().map_err(cannot)?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(String::from_utf8(bytes))
}

/// A file that is not UTF-8, at the `LINE:COL` of its first bad byte.
fn not_utf8(file: &Path, e: std::string::FromUtf8Error) -> Diagnostic {
    let valid = e.utf8_error().valid_up_to();
    let bytes = e.as_bytes();
    let line = 1 + bytes[..valid].iter().filter(|b| **b == b'\n').count();
    let line_start = bytes[..valid]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let col = 1 + String::from_utf8_lossy(&bytes[line_start..valid])
        .chars()
        .count();
    Diagnostic::new(
        file,
        line,
        col,
        format!(
            "not valid UTF-8 (byte 0x{:02x}); unit files are UTF-8 text",
            bytes[valid]
        ),
    )
}

/// The set, or every problem (sorted, at most
/// [`crate::limits::MAX_DIAGNOSTICS`] of them and
/// [`crate::limits::MAX_DIAGNOSTICS_PER_FILE`] a file, with what is left out
/// counted); `omitted` counts the problems the parser left out of a file.
fn finish(
    mut diags: Vec<Diagnostic>,
    units: BTreeMap<String, Unit>,
    mut notes: Vec<Diagnostic>,
    omitted: &BTreeMap<PathBuf, usize>,
) -> Result<UnitSet, Vec<Diagnostic>> {
    if diags.is_empty() && omitted.is_empty() {
        diagnostic::sort(&mut notes);
        Ok(UnitSet { units, notes })
    } else {
        diagnostic::sort(&mut diags);
        Err(diagnostic::cap(diags, omitted))
    }
}

/// The names of `known` for a message: the first few, and how many there
/// are.
fn known_list(known: &BTreeMap<String, Info>) -> String {
    const SHOWN: usize = 20;
    let mut list = known
        .keys()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOWN {
        list.push_str(&format!(", ... ({} units)", known.len()));
    }
    list
}

/// "Did you mean" for names no unit has: the closest known name, found for
/// the first [`MAX_DIAGNOSTICS`] names asked about (each a comparison with
/// every unit), so that a set of many bad names is still checked quickly.
#[derive(Default)]
struct Hints<'a> {
    found: HashMap<&'a str, Option<&'a str>>,
}

impl<'a> Hints<'a> {
    fn closest(&mut self, name: &'a str, known: &'a BTreeMap<String, Info>) -> Option<&'a str> {
        if let Some(c) = self.found.get(name) {
            return *c;
        }
        if self.found.len() >= MAX_DIAGNOSTICS {
            return None;
        }
        let c = closest(name, known.keys().map(String::as_str));
        self.found.insert(name, c);
        c
    }
}

/// Checks between units: every unit file seen is in `known`, including files
/// with errors of their own (their well-formed dependencies are still
/// checked, and they still count as existing).
fn cross_check(known: &BTreeMap<String, Info>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let known_list = known_list(known);
    let mut hints = Hints::default();
    for info in known.values() {
        for (dep, (line, col)) in &info.deps {
            let at = |message: String| Diagnostic::new(&info.file, *line, *col, message);
            let Some(target) = known.get(&dep.unit) else {
                let hint = match hints.closest(&dep.unit, known) {
                    Some(c) => format!("did you mean {c:?}? "),
                    None => String::new(),
                };
                diags.push(at(format!(
                    "depends_on: no unit named {:?} (known: {known_list}); {hint}each unit is a file NAME.toml \
                     next to this one",
                    dep.unit
                )));
                continue;
            };
            if dep.condition == Condition::Healthy && target.has_health == Some(false) {
                diags.push(at(format!(
                    "depends_on: {:?} = \"healthy\" but unit {:?} has no health check; add a [health] \
                     section to {} or use \"started\"",
                    dep.unit,
                    dep.unit,
                    target.file.display()
                )));
            }
        }
    }
    let (net_diags, in_net_cycles) = network_owners(known);
    diags.extend(net_diags);
    diags.extend(port_clashes(known));
    diags.extend(cycles(known, &in_net_cycles));
    diags
}

/// `network = "unit:NAME"`: NAME must be a unit with a `[container]` that
/// always runs as a container and owns its namespace (`bridge`). Returns
/// the diagnostics and the units on a cycle of such references (each cycle
/// reported once, at its alphabetically first unit).
fn network_owners(known: &BTreeMap<String, Info>) -> (Vec<Diagnostic>, BTreeSet<String>) {
    let mut diags = Vec::new();
    let mut in_cycles = BTreeSet::new();
    let joins = |name: &str| -> Option<&str> {
        match &known.get(name)?.net.as_ref()?.network.as_ref()?.0 {
            Network::Unit(owner) => Some(owner),
            _ => None,
        }
    };
    let known_list = known_list(known);
    let mut hints = Hints::default();
    for (name, info) in known {
        let Some((Network::Unit(owner), (line, col))) =
            info.net.as_ref().and_then(|n| n.network.as_ref())
        else {
            continue;
        };
        let at = |message: String| {
            Diagnostic::new(
                &info.file,
                *line,
                *col,
                format!("container.network: \"unit:{owner}\": {message}"),
            )
        };
        if owner == name {
            diags.push(at(
                "names this unit itself, a cycle: a unit cannot join its own network \
                 namespace; use network = \"bridge\" for a namespace of its own"
                    .to_string(),
            ));
            in_cycles.insert(name.clone());
            continue;
        }
        let Some(target) = known.get(owner) else {
            let hint = match hints.closest(owner, known) {
                Some(c) => format!("did you mean \"unit:{c}\"? "),
                None => String::new(),
            };
            diags.push(at(format!(
                "no unit named {owner:?} (known: {known_list}); {hint}network = \"unit:NAME\" \
                 joins the network namespace of the unit NAME.toml next to this one"
            )));
            continue;
        };
        if target.has_health.is_none() {
            continue; // Unreadable: reported already.
        }
        let Some(tnet) = &target.net else {
            diags.push(at(format!(
                "unit {owner:?} has no [container], so it has no network namespace to join (a \
                 native unit uses the host's network); write network = \"host\" to share the \
                 host's network"
            )));
            continue;
        };
        if let Some(run) = tnet.may_run_native {
            let why = match run {
                RunMode::Native => "runs natively (run = \"native\")".to_string(),
                r => format!(
                    "may run natively (it declares [native] too and run = \"{}\")",
                    r.as_str()
                ),
            };
            diags.push(at(format!(
                "unit {owner:?} {why}, and then it has no network namespace to join; write \
                 run = \"container\" in {}",
                target.file.display()
            )));
            continue;
        }
        let Some((tnetwork, _)) = &tnet.network else {
            continue; // A bad value there: reported already.
        };
        match tnetwork {
            Network::Bridge => {}
            Network::Host => diags.push(at(format!(
                "unit {owner:?} uses the host's network (network = \"host\"), which is no \
                 namespace of its own; write network = \"host\" here to share it"
            ))),
            Network::None => diags.push(at(format!(
                "unit {owner:?} has network = \"none\", only a loopback of its own; give \
                 {owner:?} network = \"bridge\" to share its network, or write \
                 network = \"none\" here for a loopback of this unit's own"
            ))),
            Network::Unit(next) => {
                // Follow the chain to its end: an owner, or a cycle.
                let mut path = vec![name.as_str(), owner.as_str()];
                let mut on_path: HashSet<&str> = path.iter().copied().collect();
                let mut cur = next.as_str();
                while on_path.insert(cur) {
                    path.push(cur);
                    match joins(cur) {
                        Some(n) => cur = n,
                        None => break,
                    }
                }
                if cur == name.as_str() {
                    // `name` is on a cycle.
                    path.push(cur);
                    in_cycles.extend(path.iter().map(|n| n.to_string()));
                    let members = &path[..path.len() - 1];
                    if members.iter().min() == Some(&name.as_str()) {
                        diags.push(at(format!(
                            "network cycle: {} (each joins the network namespace of the next); \
                             one of them must own the namespace: give it network = \"bridge\"",
                            path.join(" -> ")
                        )));
                    }
                    continue;
                }
                let end = *path.last().expect("not empty");
                let owns = known
                    .get(end)
                    .and_then(|i| i.net.as_ref())
                    .and_then(|n| n.network.as_ref())
                    .is_some_and(|(n, _)| *n == Network::Bridge)
                    && joins(end).is_none();
                let advice = if owns && end != owner.as_str() {
                    format!(
                        "namespaces are not chained: write network = \"unit:{end}\" to join the \
                         one {owner:?} is in"
                    )
                } else {
                    "namespaces are not chained: name the unit that owns the namespace (one with \
                     network = \"bridge\")"
                        .to_string()
                };
                diags.push(at(format!(
                    "unit {owner:?} itself joins the network namespace of {next:?} \
                     (network = \"unit:{next}\"); {advice}"
                )));
            }
        }
    }
    (diags, in_cycles)
}

/// Host ports published by two units, or twice by one unit built in code:
/// each at the later one (by unit name, then position), naming the first.
fn port_clashes(known: &BTreeMap<String, Info>) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    // The ports taken, by host port and protocol (only those can clash),
    // each list in the order taken.
    type Taken<'a> = Vec<(&'a str, &'a Info, &'a PortSpec, (usize, usize))>;
    let mut taken: HashMap<(u16, Protocol), Taken<'_>> = HashMap::new();
    for (name, info) in known {
        let Some(net) = &info.net else { continue };
        for (port, pos) in &net.ports {
            let key = (port.host_port, port.protocol);
            let clash = taken
                .get(&key)
                .into_iter()
                .flatten()
                .find(|(other, _, p, _)| {
                    p.clashes_with(port) && (*other != name.as_str() || pos.0 == 0)
                });
            if let Some((other, first, p, (line, col))) = clash {
                let whose = if *other == name.as_str() {
                    "this unit".to_string()
                } else {
                    format!("unit {other:?}")
                };
                let place = if *line == 0 {
                    first.file.display().to_string()
                } else {
                    format!("{}:{line}:{col}", first.file.display())
                };
                diags.push(Diagnostic::new(
                    &info.file,
                    pos.0,
                    pos.1,
                    format!(
                        "container.ports: {port} takes host port {}, which {whose} publishes \
                         already ({p}, at {place}){}; a host address, port and protocol is \
                         published by one unit only: pick another host port",
                        port.host_side(),
                        every_address(p, port),
                    ),
                ));
                continue;
            }
            taken.entry(key).or_default().push((name, info, port, *pos));
        }
    }
    diags
}

/// One diagnostic per strongly connected component with more than one unit,
/// naming a shortest cycle through its alphabetically first unit, at that
/// unit's depends_on entry for the next unit of the cycle (or its
/// `network = "unit:NAME"`, which implies one). Components with a unit of
/// `net_cycles` (a cycle of network namespaces, reported as such) are left
/// out.
fn cycles(known: &BTreeMap<String, Info>, net_cycles: &BTreeSet<String>) -> Vec<Diagnostic> {
    let names: Vec<&str> = known.keys().map(String::as_str).collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let edges: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            known[*n]
                .all_deps()
                .filter(|(d, _)| d.unit != *n)
                .filter_map(|(d, _)| index.get(d.unit.as_str()).copied())
                .collect()
        })
        .collect();

    let mut diags = Vec::new();
    for scc in tarjan(&edges) {
        if scc.len() < 2 || scc.iter().any(|&i| net_cycles.contains(names[i])) {
            continue;
        }
        let members: BTreeSet<usize> = scc.iter().copied().collect();
        let start = *members.first().expect("non-empty");
        // BFS for the shortest path start -> ... -> start inside the SCC.
        let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'bfs: while let Some(n) = queue.pop_front() {
            for &m in &edges[n] {
                if !members.contains(&m) {
                    continue;
                }
                if m == start {
                    last = Some(n);
                    break 'bfs;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(m) {
                    e.insert(n);
                    queue.push_back(m);
                }
            }
        }
        let Some(mut n) = last else { continue };
        let mut back = vec![n];
        while let Some(&p) = prev.get(&n) {
            if p == start {
                break;
            }
            back.push(p);
            n = p;
        }
        back.reverse();
        let mut path = vec![start];
        path.extend(back);
        path.push(start);
        let cycle: Vec<&str> = path.iter().map(|&i| names[i]).collect();
        let first = &known[cycle[0]];
        let (line, col) = first
            .all_deps()
            .find(|(d, _)| d.unit == cycle[1])
            .map(|(_, pos)| *pos)
            .unwrap_or((0, 0));
        let implied = !first.deps.iter().any(|(d, _)| d.unit == cycle[1]);
        let why = if implied {
            format!(
                " (network = \"unit:{}\" makes {} depend on it)",
                cycle[1], cycle[0]
            )
        } else {
            String::new()
        };
        diags.push(Diagnostic::new(
            &first.file,
            line,
            col,
            format!(
                "dependency cycle: {}{why}; remove one of these dependencies",
                cycle.join(" -> ")
            ),
        ));
    }
    diags
}

/// Tarjan's strongly connected components.
fn tarjan(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.edges[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = edges.len();
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}
