//! Unit file text -> [`Unit`], reporting every problem with its position.
//!
//! The document is parsed with `toml`'s recoverable parser, which keeps the
//! byte span of every key and value. The tree is then walked by hand, section
//! by section, so that one bad value never hides another: an unknown key in
//! `[resources]`, a bad duration in `[restart]` and a TOML syntax error further
//! down are all reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use crate::container::{
    check_container_user, is_valid_id_name, normalize_path, parse_image_reference, parse_volume,
    IMAGE_EXAMPLES,
};
use crate::diagnostic::{self, bounded_message, Diagnostic, LineIndex};
use crate::limits::{MAX_DIAGNOSTICS_PER_FILE, MAX_FILE_BYTES, MAX_NESTING, MAX_UNIT_NAME};
use crate::schema::*;

mod files;
mod network;
mod sandbox;

pub(crate) use network::every_address;
pub(crate) use sandbox::PRIVILEGED_NOTE;

type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<DeString<'i>>;

const DURATION_HINT: &str =
    "write a number with a unit, e.g. \"100ms\", \"10s\", \"5m\" or \"1h 30m\"";
const SIZE_HINT: &str = "write a number with an optional binary suffix, e.g. \"512K\", \"64M\", \"8G\" (1M = 1024K), or \"1048576\" for plain bytes";

/// Parses one unit file. The unit's name is the file stem. On failure, every
/// problem found in the file is returned, sorted by position.
pub fn parse_unit(path: &Path, text: &str) -> Result<Unit, Vec<Diagnostic>> {
    parse_unit_with(path, text, &LoadOptions::default())
}

/// [`parse_unit`] with options: with a base, relative `env_file` entries
/// and `[[secret]]` sources are resolved against it.
pub fn parse_unit_with(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
) -> Result<Unit, Vec<Diagnostic>> {
    let parsed = parse_detailed(path, text, opts);
    match parsed.unit {
        Some(unit) if parsed.diagnostics.is_empty() => Ok(unit),
        _ => {
            let omitted = BTreeMap::from([(path.to_path_buf(), parsed.omitted)]);
            Err(diagnostic::cap(parsed.diagnostics, &omitted))
        }
    }
}

/// How unit files are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The directory relative host paths are resolved against: a
    /// repository's root, for the units of a generation. With it, an
    /// `env_file` entry or a `[[secret]]` source may be relative (it must
    /// not leave the base through `..`) and the [`Unit`] holds the joined,
    /// absolute path; without it (`None`, a plain units directory) they
    /// must be absolute. A volume's host path is absolute either way. A
    /// relative base is taken from the current directory.
    pub base: Option<std::path::PathBuf>,
}

/// The result of parsing one file, with what the cross-unit checks need.
pub(crate) struct Parsed {
    /// `Some` only when `diagnostics` is empty.
    pub unit: Option<Unit>,
    pub diagnostics: Vec<Diagnostic>,
    /// Problems past the first [`MAX_DIAGNOSTICS_PER_FILE`], counted, not
    /// in `diagnostics`.
    pub omitted: usize,
    /// The well-formed entries of depends_on with the `(line, col)` of each,
    /// in file order; filled even when the file has other problems (but not
    /// when it has a TOML syntax error).
    pub deps: Vec<(Dependency, (usize, usize))>,
    /// Whether the file has a `[health]` section (valid or not).
    pub has_health: bool,
    /// What its `[container]` says about networking; `None` without a
    /// `[container]` (or with a TOML syntax error in the file).
    pub net: Option<NetInfo>,
    /// What is valid but worth saying (`privileged = true`), each message
    /// starting "note: "; empty unless the file has no problem.
    pub notes: Vec<Diagnostic>,
}

/// What the cross-unit checks need to know of a unit's networking.
#[derive(Debug, Clone)]
pub(crate) struct NetInfo {
    /// `network` with the `(line, col)` of its value (of `[container]` when
    /// absent); `None` when the value is bad.
    pub network: Option<(Network, (usize, usize))>,
    /// The well-formed published ports with the `(line, col)` of each.
    pub ports: Vec<(PortSpec, (usize, usize))>,
    /// `run` when the unit also declares `[native]` and `run` may pick it
    /// (`native` or `auto`).
    pub may_run_native: Option<RunMode>,
    /// The dependency `network = "unit:NAME"` adds (unless the unit depends
    /// on NAME already), at the `network` value.
    pub implied: Option<(Dependency, (usize, usize))>,
}

pub(crate) fn parse_detailed(path: &Path, text: &str, opts: &LoadOptions) -> Parsed {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Parsed::refused(path, too_big(text.len() as u64));
    }
    let base = opts
        .base
        .as_deref()
        .map(|b| std::path::absolute(b).unwrap_or_else(|_| b.to_path_buf()));
    let index = LineIndex::new(text);
    let (doc, errors) = DeTable::parse_recoverable(text);

    // What the syntax errors hide: with one in the file, "missing"
    // complaints may just be the broken line, and a value that overlaps it
    // was only partially recovered.
    let mut nesting = None;
    let mut syntax: Vec<(Option<Range<usize>>, String)> = Vec::with_capacity(errors.len());
    for e in &errors {
        let message = syntax_message(text, e);
        let mut span = e.span();
        if span.is_none() && e.message().trim() == "recursion limit" {
            // A dotted key of too many parts; toml gives no position.
            let found = nesting.get_or_insert_with(|| long_dotted_keys(text).into_iter());
            span = found.next().map(|at| at..at);
        }
        syntax.push((span, message));
    }
    let spans: Vec<Range<usize>> = syntax.iter().filter_map(|(s, _)| s.clone()).collect();
    // A broken [header] moves the keys below it to the wrong table; ignore
    // what is reported about them until the next header.
    let mut tainted: Vec<Range<usize>> = Vec::new();
    let mut headers = BTreeSet::new();
    for e in &spans {
        let line_start = index.line_start(e.start);
        let is_header = |at: usize| text[at..].trim_start_matches([' ', '\t']).starts_with('[');
        if !headers.insert(line_start) || !is_header(line_start) {
            continue;
        }
        let mut pos = index.next_line_start(line_start);
        while pos < text.len() && !is_header(pos) {
            pos = index.next_line_start(pos);
        }
        tainted.push(line_start..pos.min(text.len()));
    }
    let mut cx = Cx {
        text,
        index,
        base: base.as_deref(),
        issues: Vec::new(),
        omitted: 0,
        has_syntax: !syntax.is_empty(),
        syntax: Reach::new(spans),
        tainted: Reach::new(tainted),
        too_long: Reach::new(Vec::new()),
        notes: Vec::new(),
    };
    for (span, message) in syntax {
        cx.push(Issue {
            span,
            kind: IssueKind::Syntax,
            message,
        });
    }
    let name = match unit_name(path) {
        Ok(name) => Some(name),
        Err(message) => {
            cx.error(0..0, message);
            None
        }
    };

    crate::limits::check(&mut cx, doc.get_ref());
    let built = build(&mut cx, name, doc.get_ref());

    let notes: Vec<Diagnostic> = cx
        .notes
        .iter()
        .map(|(span, message)| {
            let (line, col) = cx.index.line_col(span.start);
            Diagnostic::new(path, line, col, format!("note: {message}"))
        })
        .collect();
    let mut diagnostics: Vec<Diagnostic> = cx
        .issues
        .drain(..)
        .map(|i| {
            let message = bounded_message(i.message);
            match i.span {
                Some(span) => {
                    let (line, col) = cx.index.line_col(span.start);
                    Diagnostic::new(path, line, col, message)
                }
                None => Diagnostic::whole_file(path, message),
            }
        })
        .collect();
    diagnostic::sort(&mut diagnostics);
    let mut omitted = cx.omitted;
    if diagnostics.len() > MAX_DIAGNOSTICS_PER_FILE {
        omitted += diagnostics.len() - MAX_DIAGNOSTICS_PER_FILE;
        diagnostics.truncate(MAX_DIAGNOSTICS_PER_FILE);
    }

    let at = |span: Range<usize>| cx.index.line_col(span.start);
    let (deps, net) = if cx.has_syntax {
        (Vec::new(), None)
    } else {
        let deps = built
            .deps
            .into_iter()
            .map(|(d, span)| (d, at(span)))
            .collect();
        let net = built.net.map(|n| NetInfo {
            network: n.network.map(|(net, span)| (net, at(span))),
            ports: n.ports.into_iter().map(|(p, span)| (p, at(span))).collect(),
            may_run_native: n.may_run_native,
            implied: n.implied.map(|(d, span)| (d, at(span))),
        });
        (deps, net)
    };
    let clean = diagnostics.is_empty() && omitted == 0;
    Parsed {
        unit: built.unit.filter(|_| clean),
        diagnostics,
        omitted,
        deps,
        has_health: built.has_health,
        net,
        notes: if clean { notes } else { Vec::new() },
    }
}

impl Parsed {
    /// A file refused whole (too big to parse).
    pub(crate) fn refused(path: &Path, message: String) -> Parsed {
        Parsed {
            unit: None,
            diagnostics: vec![Diagnostic::whole_file(path, message)],
            omitted: 0,
            deps: Vec::new(),
            has_health: false,
            net: None,
            notes: Vec::new(),
        }
    }
}

/// Why a file of `size` bytes is refused.
pub(crate) fn too_big(size: u64) -> String {
    format!(
        "the file is {size} bytes; a unit file is at most {MAX_FILE_BYTES} bytes (1 MiB): \
         move what makes it so big (a long value, a list of thousands) out of the unit"
    )
}

/// The offset of the first part past [`MAX_NESTING`] of each dotted key
/// (or table header) that has more parts than that, in file order: a cheap
/// scan of the text that skips strings and comments.
fn long_dotted_keys(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let bare = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut out = Vec::new();
    // The parts of the run so far, and whether a '.' came last.
    let (mut parts, mut dot) = (0usize, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let end = if bare(c) {
            i + b[i..].iter().take_while(|c| bare(**c)).count()
        } else if c == b'"' || c == b'\'' {
            let quote = [c; 3];
            let triple = b[i..].starts_with(&quote);
            let mut j = i + if triple { 3 } else { 1 };
            while j < b.len() {
                if c == b'"' && b[j] == b'\\' {
                    j += 2;
                } else if triple && b[j..].starts_with(&quote) {
                    j += 3;
                    break;
                } else if !triple && (b[j] == c || b[j] == b'\n') {
                    j += 1;
                    break;
                } else {
                    j += 1;
                }
            }
            j.min(b.len())
        } else {
            match c {
                b'.' => dot = true,
                b' ' | b'\t' => {}
                b'#' => {
                    i += b[i..].iter().take_while(|c| **c != b'\n').count();
                    continue;
                }
                _ => (parts, dot) = (0, false),
            }
            i += 1;
            continue;
        };
        // A part: it continues the run after a '.', else starts one.
        parts = if dot { parts + 1 } else { 1 };
        dot = false;
        if parts == MAX_NESTING + 1 {
            out.push(i);
        }
        i = end;
    }
    out
}

/// Whether `name` is a valid unit name: `[a-z0-9][a-z0-9-]*`, at most
/// [`MAX_UNIT_NAME`] characters.
pub fn is_valid_unit_name(name: &str) -> bool {
    check_unit_name(name).is_ok()
}

/// Why `name` is not a unit name, if it is not (see
/// [`is_valid_unit_name`]).
pub(crate) fn check_unit_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let charset = match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }
        _ => false,
    };
    let n = name.chars().count();
    let length = (n > MAX_UNIT_NAME).then(|| {
        format!(
            "it is {n} characters long, and a unit name has at most {MAX_UNIT_NAME} (it is \
             the container's host name, a DNS label, and names the unit's files)"
        )
    });
    match (charset, length) {
        (true, None) => Ok(()),
        (true, Some(length)) => Err(length),
        (false, None) => Err(UNIT_NAME_RULE.to_string()),
        (false, Some(length)) => Err(format!("{UNIT_NAME_RULE}; and {length}")),
    }
}

const UNIT_NAME_RULE: &str =
    "use lowercase letters, digits and '-', starting with a letter or digit";

fn unit_name(path: &Path) -> Result<String, String> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    match stem {
        Some(stem) => match check_unit_name(&stem) {
            Ok(()) => Ok(stem),
            Err(why) => Err(format!(
                "invalid unit name {stem:?} (the file name without .toml): {why}; rename the \
                 file, e.g. to \"{}.toml\"",
                suggest_name(&stem)
            )),
        },
        None => Err("cannot take a unit name from this path; name the file NAME.toml".into()),
    }
}

fn suggest_name(stem: &str) -> String {
    let s: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s: String = s.trim_matches('-').chars().take(MAX_UNIT_NAME).collect();
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "my-unit".into()
    } else {
        s
    }
}

fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', "; ");
    if msg == "recursion limit" || msg.contains("max recursion depth") {
        return format!(
            "nested more than {MAX_NESTING} levels deep (arrays, inline tables and the parts of \
             dotted keys and table headers count); a unit file needs a few at most"
        );
    }
    if msg == "duplicate key" {
        if let Some(span) = e.span() {
            if let Some(key) = text.get(span) {
                return format!(
                    "duplicate key {:?}: each key and each [table] may appear only once",
                    key.trim()
                );
            }
        }
    }
    format!("TOML syntax error: {msg}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IssueKind {
    /// A TOML syntax error.
    Syntax,
    /// A bad value or key.
    Semantic,
    /// A value or key past its bound ([`crate::limits`]).
    Bound,
    /// Something required is absent.
    Missing,
}

pub(crate) struct Issue {
    span: Option<Range<usize>>,
    kind: IssueKind,
    message: String,
}

/// Spans, sorted, to ask quickly how far those that start at or before a
/// point reach.
pub(crate) struct Reach {
    starts: Vec<usize>,
    /// The furthest end of the spans up to each.
    furthest: Vec<usize>,
}

impl Reach {
    pub(crate) fn new(mut spans: Vec<Range<usize>>) -> Reach {
        spans.sort_by_key(|s| s.start);
        let mut furthest = Vec::with_capacity(spans.len());
        let mut max = 0;
        for s in &spans {
            max = max.max(s.end);
            furthest.push(max);
        }
        Reach {
            starts: spans.iter().map(|s| s.start).collect(),
            furthest,
        }
    }

    /// The furthest end of the spans that start at or before `at`.
    fn furthest(&self, at: usize) -> Option<usize> {
        let n = self.starts.partition_point(|s| *s <= at);
        n.checked_sub(1).map(|i| self.furthest[i])
    }

    /// Whether a span touches `s` (both ends included).
    fn overlaps(&self, s: &Range<usize>) -> bool {
        self.furthest(s.end).is_some_and(|end| end >= s.start)
    }

    /// Whether a span holds the offset `at`.
    fn holds(&self, at: usize) -> bool {
        self.furthest(at).is_some_and(|end| end > at)
    }

    /// Whether a span holds all of `s`.
    fn covers(&self, s: &Range<usize>) -> bool {
        self.furthest(s.start).is_some_and(|end| end >= s.end)
    }
}

pub(crate) struct Cx<'t> {
    pub(crate) text: &'t str,
    index: LineIndex<'t>,
    /// Where relative host paths resolve ([`LoadOptions::base`]), absolute.
    base: Option<&'t Path>,
    /// The problems kept: those a syntax error or a value past its bound
    /// does not explain, and at most a few times the most a file reports.
    issues: Vec<Issue>,
    /// Problems found and not kept in `issues`, to be counted.
    omitted: usize,
    /// Whether the file has a syntax error.
    has_syntax: bool,
    /// The syntax errors' spans.
    syntax: Reach,
    /// What follows a broken table header, up to the next header.
    tainted: Reach,
    /// The strings and keys past their bound.
    pub(crate) too_long: Reach,
    /// What is valid but worth saying, at its span.
    notes: Vec<(Range<usize>, String)>,
}

impl Cx<'_> {
    fn note(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.notes.push((span, message.into()));
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(Issue {
            span: Some(span),
            kind: IssueKind::Semantic,
            message: message.into(),
        });
    }

    /// A value or key past its bound, at its span.
    pub(crate) fn bound(&mut self, span: Range<usize>, message: String) {
        self.push(Issue {
            span: Some(span),
            kind: IssueKind::Bound,
            message,
        });
    }

    fn missing(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(Issue {
            span: Some(span),
            kind: IssueKind::Missing,
            message: message.into(),
        });
    }

    /// Keeps `issue` unless what the file has already explains it, and
    /// keeps the issues few: past a few times the most a file reports, only
    /// the first (by position) stay, the rest are counted.
    fn push(&mut self, issue: Issue) {
        let keep = match (issue.kind, &issue.span) {
            (IssueKind::Syntax, _) | (_, None) => true,
            (IssueKind::Missing, _) => !self.has_syntax,
            (IssueKind::Semantic | IssueKind::Bound, Some(s)) => {
                !self.syntax.overlaps(s)
                    && !self.tainted.holds(s.start)
                    && (issue.kind == IssueKind::Bound || !self.too_long.covers(s))
            }
        };
        if !keep {
            return;
        }
        self.issues.push(issue);
        if self.issues.len() >= 4 * MAX_DIAGNOSTICS_PER_FILE {
            fn key(i: &Issue) -> (Option<usize>, &str) {
                (i.span.as_ref().map(|s| s.start), i.message.as_str())
            }
            self.issues.sort_by(|a, b| key(a).cmp(&key(b)));
            self.issues.dedup_by(|a, b| key(a) == key(b));
            if self.issues.len() > MAX_DIAGNOSTICS_PER_FILE {
                self.omitted += self.issues.len() - MAX_DIAGNOSTICS_PER_FILE;
                self.issues.truncate(MAX_DIAGNOSTICS_PER_FILE);
            }
        }
    }

    fn source(&self, span: Range<usize>) -> &str {
        self.text.get(span).unwrap_or("").trim()
    }

    /// The 1-based line and column of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        self.index.line_col(offset)
    }
}

/// "a string", "an integer", ...
fn a_type(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// The entries of a table in file order.
fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Value<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| (k.span().start, k.span().end));
    v
}

/// Edit distance counting a swap of two neighbours as one edit ("modle"
/// for "model"), for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the table.
    let mut prev2: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 0..a.len() {
        let mut cur = vec![i + 1; b.len() + 1];
        for j in 0..b.len() {
            let sub = prev[j] + usize::from(a[i] != b[j]);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                cur[j + 1] = cur[j + 1].min(prev2[j - 1] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    // A word that is the start of a candidate ("cap_net_bind") is most
    // likely that candidate, however many characters are missing.
    if word.chars().count() >= 4 {
        if let Some(c) = candidates
            .iter()
            .filter(|c| c.to_ascii_lowercase().starts_with(&word))
            .min_by_key(|c| c.len())
        {
            return Some(c);
        }
    }
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!(" (did you mean {c:?}?)"),
        None => String::new(),
    }
}

/// Advice for a key that belongs elsewhere: a key of the other kind of unit,
/// or a `docker run` habit.
fn key_hint(section: &str, key: &str) -> Option<&'static str> {
    Some(match (section, key) {
        ("container", "group" | "supplementary_groups") => {
            "in a container, give the group with user = \"uid:gid\" or \"name:group\""
        }
        ("container", "publish" | "expose") => {
            "published ports go in ports = [\"8080:80\"] ([HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp])"
        }
        ("container", "network_mode" | "net") => {
            "the network is network = \"bridge\", \"host\", \"none\" or \"unit:NAME\""
        }
        ("container", "add_host" | "add_hosts" | "extra_host" | "hosts") => {
            "lines for /etc/hosts go in extra_hosts = [\"NAME:IP\"] or [\"NAME:host-gateway\"]"
        }
        ("container", "environment") => "set environment variables in an [env] section",
        ("container", "secrets" | "secret") => {
            "secrets are [[secret]] sections at the top level, e.g. [[secret]] with \
             source = \"/srv/secrets/db_password\""
        }
        ("container", "capabilities") => {
            "capabilities added to the default set are cap_add = [\"NET_ADMIN\"] (or \
             [security] capabilities); those removed are cap_drop"
        }
        ("container", "mounts" | "binds") => {
            "bind mounts go in volumes = [\"/host/dir:/container/dir\"]"
        }
        ("native", "image") => "an image runs in a [container] section, not [native]",
        ("container" | "native", "devices" | "device") => {
            "devices go in [[device]] sections at the top level, e.g. [[device]] with \
             path = \"/dev/net/tun\""
        }
        ("container" | "native", "gpus" | "gpu") => {
            "a GPU is asked for in a [gpu] section at the top level, e.g. [gpu] with want = \"auto\""
        }
        ("device", "vendor" | "product" | "id") => {
            "give the USB ids together as usb = \"vendor:product\", e.g. usb = \"10c4:ea60\""
        }
        ("device", "target" | "container" | "to" | "path_in_container") => {
            "the path the service sees is as = \"/dev/NAME\""
        }
        ("bench", "endpoint" | "host" | "base_url" | "address" | "server") => {
            "give the server's base URL as url = \"http://127.0.0.1:PORT\""
        }
        ("bench", "num_predict" | "n_predict" | "max_new_tokens" | "tokens" | "length") => {
            "the number of tokens to generate per request is max_tokens"
        }
        ("bench", "iterations" | "runs" | "repeat" | "repeats" | "warmup" | "warm_up") => {
            "requests = N measured requests per round (after one warm-up request) and \
             rounds = N rounds, alternating native and container"
        }
        ("bench", "threshold" | "tolerance" | "max_overhead" | "slowdown") => {
            "the container's allowed slowdown is max_slowdown, a fraction such as 0.05"
        }
        _ => return None,
    })
}

/// How a section is written: `[name]`, or `[[device]]` and `[[secret]]`
/// for the arrays of tables.
fn header(name: &str) -> String {
    if name == "device" || name == "secret" {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    }
}

/// A table of the unit file, with its unknown keys already reported.
struct Section<'a, 'i> {
    name: &'static str,
    span: Range<usize>,
    entries: Vec<(&'a Key<'i>, &'a Value<'i>)>,
}

impl<'a, 'i> Section<'a, 'i> {
    fn open(
        cx: &mut Cx<'_>,
        name: &'static str,
        v: &'a Value<'i>,
        allowed: &[&str],
    ) -> Option<Self> {
        let DeValue::Table(t) = v.get_ref() else {
            cx.error(
                v.span(),
                format!(
                    "{name}: expected a table (a [{name}] section), found {}",
                    a_type(v.get_ref())
                ),
            );
            return None;
        };
        let entries = entries(t);
        for (k, _) in &entries {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let hint = if let Some(hint) = key_hint(name, key) {
                    format!("; {hint}")
                } else if Unit::KEYS.contains(&key) {
                    format!(
                        "; if you meant the top-level {key:?}, move it above the first [section] header \
                         (keys below a header belong to that table)"
                    )
                } else {
                    did_you_mean(key, allowed.iter().copied())
                };
                cx.error(
                    k.span(),
                    format!(
                        "unknown key {key:?} in {}; expected one of: {}{hint}",
                        header(name),
                        allowed.join(", "),
                    ),
                );
            }
        }
        Some(Section {
            name,
            span: v.span(),
            entries,
        })
    }

    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| *v)
    }

    fn key(&self, key: &str) -> Option<&'a Key<'i>> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(k, _)| *k)
    }

    fn label(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    /// Runs `f` on the value of `key`, if present, with its label.
    fn with<T>(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        f: impl FnOnce(&mut Cx<'_>, &str, &Value<'_>) -> Option<T>,
    ) -> Option<T> {
        let v = self.get(key)?;
        f(cx, &self.label(key), v)
    }
}

// ---------------------------------------------------------------------------
// Scalar readers. Each reports its own error at the value's span and returns
// None on failure.

fn string(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<String> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        other => {
            cx.error(
                v.span(),
                format!("{label}: expected a string, found {}", a_type(other)),
            );
            None
        }
    }
}

fn boolean(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => {
            cx.error(
                v.span(),
                format!("{label}: expected true or false, found {}", a_type(other)),
            );
            None
        }
    }
}

/// An integer in `min..=max`.
fn integer(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, min: i128, max: i128) -> Option<i128> {
    let range = if max >= i128::from(u32::MAX) {
        format!("at least {min}")
    } else {
        format!("between {min} and {max}")
    };
    let n = match v.get_ref() {
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected an integer ({range}), found {}",
                    a_type(other)
                ),
            );
            return None;
        }
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            cx.error(
                v.span(),
                format!("{label}: must be {range}, got {}", cx.source(v.span())),
            );
            None
        }
    }
}

fn u32_at_least(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, min: u32) -> Option<u32> {
    integer(cx, label, v, min.into(), u32::MAX.into()).map(|n| n as u32)
}

fn u64_in(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, min: u64, max: u64) -> Option<u64> {
    let max = if max == u64::MAX {
        i128::MAX
    } else {
        max.into()
    };
    integer(cx, label, v, min.into(), max).and_then(|n| u64::try_from(n).ok())
}

fn duration(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<Duration> {
    match v.get_ref() {
        DeValue::String(s) => match humantime::parse_duration(s.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.error(
                    v.span(),
                    format!(
                        "{label}: invalid duration {:?} ({e}); {DURATION_HINT}",
                        s.as_ref()
                    ),
                );
                None
            }
        },
        DeValue::Integer(i) => {
            cx.error(
                v.span(),
                format!(
                    "{label}: a duration must be a string with a unit: write \"{n}s\" for {n} seconds \
                     (or e.g. \"100ms\", \"5m\")",
                    n = i.as_str()
                ),
            );
            None
        }
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a duration string, found {}; {DURATION_HINT}",
                    a_type(other)
                ),
            );
            None
        }
    }
}

/// A duration of at least `min`: what sets how often something runs (a
/// probe, a restart window) gets a floor, so that "1ns" cannot make jarvisd
/// spin.
fn duration_at_least(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    min: Duration,
) -> Option<Duration> {
    let d = duration(cx, label, v)?;
    if d < min {
        cx.error(
            v.span(),
            format!(
                "{label}: {} is too short; the least is {} (e.g. \"5s\")",
                humantime::format_duration(d),
                humantime::format_duration(min)
            ),
        );
        return None;
    }
    Some(d)
}

/// The least `[health]` interval and start_interval: probes run no more
/// often than this.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// The least `[gpu] verify_interval`: a unit's GPU use is checked no more
/// often than this.
pub const MIN_GPU_VERIFY_INTERVAL: Duration = Duration::from_millis(100);
/// The least `[health] timeout`.
pub const MIN_PROBE_TIMEOUT: Duration = Duration::from_millis(10);
/// The least `[restart] interval`, the window `burst` counts starts in.
pub const MIN_RESTART_INTERVAL: Duration = Duration::from_millis(100);

/// Parses a size string with binary suffixes ("64M" = 64 MiB).
pub fn parse_size(s: &str) -> Option<u64> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s.trim())
        .ok()
}

/// A size in bytes, > 0. Strings use binary suffixes; a plain integer is bytes.
fn size(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<u64> {
    let n = size_or_zero(cx, label, v)?;
    if n == 0 {
        cx.error(
            v.span(),
            format!("{label}: must be greater than 0; {SIZE_HINT}"),
        );
        return None;
    }
    Some(n)
}

/// A size in bytes, 0 allowed.
fn size_or_zero(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<u64> {
    let n = match v.get_ref() {
        DeValue::String(s) => match parse_size(s) {
            Some(n) => n,
            None => {
                cx.error(
                    v.span(),
                    format!("{label}: invalid size {:?}; {SIZE_HINT}", s.as_ref()),
                );
                return None;
            }
        },
        DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => n,
            Err(_) => {
                cx.error(
                    v.span(),
                    format!("{label}: a size cannot be negative; {SIZE_HINT}"),
                );
                return None;
            }
        },
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a size string, found {}; {SIZE_HINT}",
                    a_type(other)
                ),
            );
            return None;
        }
    };
    Some(n)
}

/// One of a [`Word`] enum's spellings.
fn choice<T: Word>(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<T> {
    let names = || T::ALL.iter().map(|w| w.as_str());
    let list = names().collect::<Vec<_>>().join(", ");
    match v.get_ref() {
        DeValue::String(s) => match T::from_word(s) {
            Some(t) => Some(t),
            None => {
                cx.error(
                    v.span(),
                    format!(
                        "{label}: unknown value {:?}; expected one of: {list}{}",
                        s.as_ref(),
                        did_you_mean(s, names())
                    ),
                );
                None
            }
        },
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a string, one of: {list}; found {}",
                    a_type(other)
                ),
            );
            None
        }
    }
}

/// `"a", "b" or "c"`: a [`Word`] enum's spellings for a message.
fn or_list<T: Word>(all: &[T]) -> String {
    let quoted: Vec<String> = all.iter().map(|w| format!("{:?}", w.as_str())).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

/// A list of strings, each with its span.
fn string_list(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    example: &str,
) -> Option<Vec<(String, Range<usize>)>> {
    let DeValue::Array(a) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a list of strings, e.g. {example}, found {}",
                a_type(v.get_ref())
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in a.iter() {
        match item.get_ref() {
            DeValue::String(s) => out.push((s.to_string(), item.span())),
            other => {
                ok = false;
                cx.error(
                    item.span(),
                    format!(
                        "{label}: expected every element to be a string, found {}",
                        a_type(other)
                    ),
                );
            }
        }
    }
    ok.then_some(out)
}

/// A user or group: a name, or a numeric id. Stored as text.
fn id(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, what: &str) -> Option<String> {
    match v.get_ref() {
        DeValue::String(s) => {
            let s = s.as_ref();
            if is_valid_id_name(s) {
                Some(s.to_string())
            } else {
                cx.error(
                    v.span(),
                    format!("{label}: invalid {what} {s:?}; give a {what} name such as \"nobody\" or a numeric id"),
                );
                None
            }
        }
        DeValue::Integer(_) => u64_in(cx, label, v, 0, u32::MAX.into()).map(|n| n.to_string()),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a {what} name or a numeric id, found {}",
                    a_type(other)
                ),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Sections.

struct Built {
    /// Meaningful only when no issue was recorded.
    unit: Option<Unit>,
    deps: Vec<(Dependency, Range<usize>)>,
    has_health: bool,
    net: Option<BuiltNet>,
}

/// [`NetInfo`] with spans.
struct BuiltNet {
    network: Option<(Network, Range<usize>)>,
    ports: Vec<(PortSpec, Range<usize>)>,
    may_run_native: Option<RunMode>,
    implied: Option<(Dependency, Range<usize>)>,
}

/// Walks the whole document.
fn build(cx: &mut Cx<'_>, name: Option<String>, doc: &DeTable<'_>) -> Built {
    let mut description = None;
    let mut deps = Vec::new();
    let mut native: Option<ExecSection<Native>> = None;
    let mut container: Option<ExecSection<Container>> = None;
    let mut env = BTreeMap::new();
    let mut resources = Resources::default();
    let mut restart = Restart::default();
    let mut health = None;
    let mut has_health = false;
    let mut stop = Stop::default();
    let mut security = Security::default();
    let mut logs = Logs::default();
    let mut gpu = None;
    let mut has_gpu = false;
    let mut devices = Vec::new();
    let mut run: Option<RunKey> = None;
    let mut bench = None;
    // The span of [bench], and its url when that is well-formed.
    let mut bench_section: Option<(Range<usize>, Option<String>)> = None;
    // What [container] says about networking: its network and its ports.
    let mut net: Option<ContainerNet> = None;
    let mut env_file = Vec::new();
    let mut secrets = Vec::new();
    let mut secret_span: Option<Range<usize>> = None;
    // The capabilities [security] lists, for the check against cap_drop.
    let mut security_caps: Vec<String> = Vec::new();

    for (k, v) in entries(doc) {
        let key: &str = k.get_ref();
        match key {
            "description" => description = string(cx, "description", v),
            "depends_on" => deps = depends_on(cx, name.as_deref(), v),
            "native" => {
                native = Some(ExecSection {
                    parsed: parse_native(cx, v),
                })
            }
            "container" => {
                let (parsed, keys) = parse_container(cx, v, name.as_deref());
                container = Some(ExecSection { parsed });
                net = Some(keys);
            }
            "env" => env = parse_env(cx, v),
            "resources" => resources = parse_resources(cx, v),
            "restart" => restart = parse_restart(cx, v),
            "health" => {
                has_health = true;
                health = parse_health(cx, v);
            }
            "stop" => stop = parse_stop(cx, v),
            "security" => {
                security = parse_security(cx, v);
                security_caps = security.capabilities.clone();
            }
            "logs" => logs = parse_logs(cx, v),
            "gpu" => {
                has_gpu = true;
                gpu = parse_gpu(cx, v);
            }
            "device" => devices = parse_devices(cx, v),
            "env_file" => env_file = files::env_file(cx, v, name.as_deref()),
            "secret" => {
                secrets = files::secrets(cx, v, name.as_deref());
                secret_span = Some(v.span());
            }
            "run" => {
                run = Some(RunKey {
                    span: v.span(),
                    mode: choice(cx, "run", v),
                })
            }
            "bench" => {
                let (parsed, url) = parse_bench(cx, v);
                bench = parsed;
                bench_section = Some((v.span(), url));
            }
            other => cx.error(
                k.span(),
                format!(
                    "unknown key {other:?} at the top level; expected one of: {}{}",
                    Unit::KEYS.join(", "),
                    did_you_mean(other, Unit::KEYS.iter().copied())
                ),
            ),
        }
    }

    // cap_drop removes from the default set; [security] capabilities adds
    // back, so naming one capability in both says two things.
    for (cap, span) in net.iter().flat_map(|n| &n.cap_drop) {
        if security_caps.contains(cap) {
            cx.error(
                span.clone(),
                format!(
                    "container.cap_drop: {cap} is in [security] capabilities too, which adds it \
                     to the container's set; keep it in one of the two"
                ),
            );
        }
    }

    // A container finds its secrets in /run/secrets: nothing else may be
    // mounted there.
    if let (Some(c), Some(span), false) = (
        container.as_ref().and_then(|c| c.parsed.as_ref()),
        &secret_span,
        secrets.is_empty(),
    ) {
        let dir = Secret::CONTAINER_DIR;
        let under = |p: &str| {
            let p = normalize_path(p);
            p == dir || p.starts_with(&format!("{dir}/"))
        };
        let mut mounts = c
            .volumes
            .iter()
            .map(|v| ("volumes", v.container.as_str()))
            .chain(c.tmpfs.iter().map(|t| ("tmpfs", t.path.as_str())));
        if let Some((key, path)) = mounts.find(|(_, p)| under(p)) {
            cx.error(
                span.clone(),
                format!(
                    "secret: a container finds its secrets in {dir}, and container.{key} \
                     mounts {path:?} there too; mount it elsewhere"
                ),
            );
        }
    }

    if let (Some((span, url)), false) = (&bench_section, has_health) {
        let example = match url {
            Some(url) => format!("http = \"{url}/\""),
            None => "http = \"http://127.0.0.1:PORT/\"".into(),
        };
        cx.missing(
            span.clone(),
            format!(
                "[bench] needs a [health] check: each round waits until the service is healthy \
                 before its first request; add a [health] section, e.g. with {example} or \
                 tcp = \"127.0.0.1:PORT\""
            ),
        );
    }

    let net = net.map(|n| {
        let may_run_native = match &run {
            _ if native.is_none() => None,
            None => Some(RunMode::Auto),
            Some(RunKey { mode, .. }) => mode.filter(|m| *m != RunMode::Container),
        };
        let implied = match &n.network {
            Some((Network::Unit(owner), span)) if !deps.iter().any(|(d, _)| d.unit == *owner) => {
                Some((
                    Dependency {
                        unit: owner.clone(),
                        condition: Condition::Started,
                    },
                    span.clone(),
                ))
            }
            _ => None,
        };
        BuiltNet {
            network: n.network,
            ports: n.ports,
            may_run_native,
            implied,
        }
    });

    let forms = choose_exec(
        cx,
        native,
        container,
        run,
        has_gpu || bench_section.is_some(),
    );

    let unit = match (name, forms) {
        (Some(name), Some(forms)) => Some(Unit {
            name,
            description,
            depends_on: deps
                .iter()
                .chain(net.as_ref().and_then(|n| n.implied.as_ref()))
                .map(|(d, _)| d.clone())
                .collect(),
            exec: forms.exec,
            native: forms.native,
            container: forms.container,
            run: forms.run,
            env,
            resources,
            restart,
            health,
            stop,
            security,
            logs,
            gpu,
            devices,
            bench,
            env_file,
            secrets,
        }),
        _ => None,
    };
    Built {
        unit,
        deps,
        has_health,
        net,
    }
}

/// A `[native]` or `[container]` table: what it parsed to (`None` when it
/// has an error).
struct ExecSection<T> {
    parsed: Option<T>,
}

/// The top-level `run` key: where its value is, and what it parsed to.
struct RunKey {
    span: Range<usize>,
    mode: Option<RunMode>,
}

/// The declared forms, `run`, and the form `run` picks.
struct Forms {
    exec: Exec,
    native: Option<Native>,
    container: Option<Container>,
    run: RunMode,
}

/// Picks how the unit runs from its `[native]` and `[container]` sections
/// and the `run` key. `gpu_or_bench`: whether `[gpu]` or `[bench]` is
/// present, which makes `auto` pick native.
fn choose_exec(
    cx: &mut Cx<'_>,
    native: Option<ExecSection<Native>>,
    container: Option<ExecSection<Container>>,
    run: Option<RunKey>,
    gpu_or_bench: bool,
) -> Option<Forms> {
    if native.is_none() && container.is_none() {
        cx.missing(
            0..0,
            "missing [native] or [container] section: every unit needs one (or both), either \
             [native] with command = [\"/path/to/program\", \"arg\", ...] or [container] with \
             image = \"registry/name:tag\"",
        );
        return None;
    }
    // `run` names a form the unit does not declare.
    let mut run_ok = true;
    if let Some(RunKey {
        span,
        mode: Some(mode @ (RunMode::Native | RunMode::Container)),
    }) = &run
    {
        let (missing, present, example) = match mode {
            RunMode::Native => (
                native.is_none(),
                "container",
                "[native] with command = [\"/path/to/program\", \"arg\", ...]",
            ),
            _ => (
                container.is_none(),
                "native",
                "[container] with image = \"registry/name:tag\"",
            ),
        };
        if missing {
            run_ok = false;
            cx.missing(
                span.clone(),
                format!(
                    "run = \"{m}\" but the unit has no [{m}] section; add {example}, or write \
                     run = \"{present}\" (or leave run out to run the only form declared)",
                    m = mode.as_str()
                ),
            );
        }
    }
    let declared_native = native.is_some();
    let declared_container = container.is_some();
    let native = match native {
        Some(n) => Some(n.parsed?),
        None => None,
    };
    let container = match container {
        Some(c) => Some(c.parsed?),
        None => None,
    };
    let run = match run {
        None if declared_native && declared_container => RunMode::Auto,
        None if declared_native => RunMode::Native,
        None => RunMode::Container,
        Some(RunKey { mode, .. }) => mode?,
    };
    if !run_ok {
        return None;
    }
    let form = match run {
        RunMode::Native => Kind::Native,
        RunMode::Container => Kind::Container,
        RunMode::Auto => auto_form(declared_native, declared_container, gpu_or_bench)?,
    };
    let exec = match form {
        Kind::Native => Exec::Native(native.clone()?),
        Kind::Container => Exec::Container(container.clone()?),
    };
    Some(Forms {
        exec,
        native,
        container,
        run,
    })
}

fn depends_on(
    cx: &mut Cx<'_>,
    self_name: Option<&str>,
    v: &Value<'_>,
) -> Vec<(Dependency, Range<usize>)> {
    let mut out = Vec::new();
    let check_name = |cx: &mut Cx<'_>, dep: &str, span: Range<usize>| -> bool {
        if let Err(why) = check_unit_name(dep) {
            cx.error(
                span,
                format!(
                    "depends_on: {dep:?} is not a valid unit name: {why} (a unit's name is its \
                     file name without .toml)"
                ),
            );
            false
        } else if Some(dep) == self_name {
            cx.error(
                span,
                format!("depends_on: unit {dep:?} depends on itself; remove this entry"),
            );
            false
        } else {
            true
        }
    };
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, cv) in entries(t) {
                let dep: &str = k.get_ref();
                let name_ok = check_name(cx, dep, k.span());
                let condition = choice(cx, &format!("depends_on.{dep}"), cv);
                if let (true, Some(condition)) = (name_ok, condition) {
                    out.push((
                        Dependency {
                            unit: dep.to_string(),
                            condition,
                        },
                        k.span(),
                    ));
                }
            }
        }
        DeValue::Array(a) => {
            let mut seen = BTreeSet::new();
            for item in a.iter() {
                let DeValue::String(dep) = item.get_ref() else {
                    cx.error(
                        item.span(),
                        format!(
                            "depends_on: expected unit names (strings) in the list, found {}",
                            a_type(item.get_ref())
                        ),
                    );
                    continue;
                };
                let dep: &str = dep;
                if !check_name(cx, dep, item.span()) {
                    continue;
                }
                if !seen.insert(dep.to_string()) {
                    cx.error(item.span(), format!("depends_on: {dep:?} is listed twice; remove one"));
                    continue;
                }
                out.push((
                    Dependency {
                        unit: dep.to_string(),
                        condition: Condition::Started,
                    },
                    item.span(),
                ));
            }
        }
        other => cx.error(
            v.span(),
            format!(
                "depends_on: expected a table such as {{ db = \"healthy\" }} or a list such as [\"db\"], found {}",
                a_type(other)
            ),
        ),
    }
    out
}

fn parse_native(cx: &mut Cx<'_>, v: &Value<'_>) -> Option<Native> {
    let s = Section::open(cx, "native", v, Native::KEYS)?;
    let mut native = Native {
        command: Vec::new(),
        user: None,
        group: None,
        supplementary_groups: Vec::new(),
        working_dir: None,
    };
    const EXAMPLE: &str = "[\"/usr/bin/program\", \"--flag\"]";
    match s.get("command") {
        None => cx.missing(
            s.span.clone(),
            "[native] needs command = [\"/path/to/program\", \"arg\", ...] (argv, no shell)",
        ),
        Some(cv) if cv.get_ref().is_str() => cx.error(
            cv.span(),
            format!(
                "native.command: expected a list of strings (argv, no shell), e.g. {EXAMPLE}; \
                 split {} into its words",
                cx.source(cv.span())
            ),
        ),
        Some(cv) => {
            if let Some(list) = string_list(cx, "native.command", cv, EXAMPLE) {
                match list.first() {
                    None => cx.error(
                        cv.span(),
                        format!("native.command: must not be empty; give the program and its arguments, e.g. {EXAMPLE}"),
                    ),
                    Some((prog, span)) if prog.trim().is_empty() => cx.error(
                        span.clone(),
                        "native.command: the program (first element) must not be empty",
                    ),
                    Some(_) => {}
                }
                native.command = list.into_iter().map(|(s, _)| s).collect();
            }
        }
    }
    native.user = s.with(cx, "user", |cx, l, v| id(cx, l, v, "user"));
    native.group = s.with(cx, "group", |cx, l, v| id(cx, l, v, "group"));
    if let Some(gv) = s.get("supplementary_groups") {
        let label = s.label("supplementary_groups");
        match gv.get_ref() {
            DeValue::Array(a) => {
                for item in a.iter() {
                    if let Some(g) = id(cx, &label, item, "group") {
                        native.supplementary_groups.push(g);
                    }
                }
            }
            other => cx.error(
                gv.span(),
                format!(
                    "{label}: expected a list of group names, e.g. [\"dialout\"], found {}",
                    a_type(other)
                ),
            ),
        }
    }
    native.working_dir = s.with(cx, "working_dir", absolute_path);
    Some(native)
}

fn absolute_path(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<String> {
    let dir = string(cx, label, v)?;
    if !dir.starts_with('/') {
        cx.error(
            v.span(),
            format!("{label}: must be an absolute path (starting with /), got {dir:?}"),
        );
        return None;
    }
    Some(dir)
}

/// What a `[container]` says that other sections and units are checked
/// against, with spans: its network (`None` when the value is bad), its
/// well-formed ports and the well-formed entries of `cap_drop`.
struct ContainerNet {
    network: Option<(Network, Range<usize>)>,
    ports: Vec<(PortSpec, Range<usize>)>,
    cap_drop: Vec<(String, Range<usize>)>,
}

/// `[container]` of the unit `unit` (`None` when the file name is not a
/// unit name): the section, `None` when anything in it is wrong, and what
/// it says about networking.
fn parse_container(
    cx: &mut Cx<'_>,
    v: &Value<'_>,
    unit: Option<&str>,
) -> (Option<Container>, ContainerNet) {
    let Some(s) = Section::open(cx, "container", v, Container::KEYS) else {
        let net = ContainerNet {
            network: None,
            ports: Vec::new(),
            cap_drop: Vec::new(),
        };
        return (None, net);
    };
    let image = match s.get("image") {
        None => {
            cx.missing(
                s.span.clone(),
                format!("[container] needs image = \"...\", {IMAGE_EXAMPLES}"),
            );
            None
        }
        Some(iv) => {
            let label = s.label("image");
            string(cx, &label, iv).and_then(|image| match parse_image_reference(&image) {
                Ok(_) => Some(image),
                Err(e) => {
                    cx.error(
                        iv.span(),
                        format!(
                            "{label}: invalid image reference {image:?}: {e}; {IMAGE_EXAMPLES}"
                        ),
                    );
                    None
                }
            })
        }
    };
    let entrypoint = s.with(cx, "entrypoint", |cx, l, v| {
        container_argv(cx, l, v, "Entrypoint", "[\"/usr/bin/program\"]")
    });
    let command = s.with(cx, "command", |cx, l, v| {
        container_argv(cx, l, v, "Cmd", "[\"serve\", \"--port\", \"8080\"]")
    });
    let user = s.with(cx, "user", container_user);
    let working_dir = s.with(cx, "working_dir", absolute_path);
    let keys = network::parse_network_keys(cx, &s, unit);
    let volumes = s.with(cx, "volumes", volumes).unwrap_or_default();
    let read_only = s.with(cx, "read_only", boolean).unwrap_or(false);
    let sb = sandbox::parse_sandbox_keys(cx, &s, &volumes, keys.network.as_ref().map(|(n, _)| n));
    let net = ContainerNet {
        network: keys.network,
        ports: keys.ports,
        cap_drop: sb.cap_drop_spans,
    };
    let container = (|| {
        let n = keys.fields?;
        Some(Container {
            image: image?,
            entrypoint,
            command,
            user,
            working_dir,
            network: n.network,
            networks: n.networks,
            ports: n.ports,
            hostname: n.hostname,
            aliases: n.aliases,
            extra_hosts: n.extra_hosts,
            dns: n.dns,
            volumes,
            read_only,
            tmpfs: sb.tmpfs,
            shm_size: sb.shm_size,
            group_add: sb.group_add,
            device_cgroup_rules: sb.device_cgroup_rules,
            privileged: sb.privileged,
            cap_add: sb.cap_add,
            cap_drop: sb.cap_drop,
            sysctls: sb.sysctls,
            ulimits: sb.ulimits,
            init: sb.init,
        })
    })();
    (container, net)
}

/// `entrypoint` or `command`: a non-empty argv that replaces the image's
/// `image_field`.
fn container_argv(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    image_field: &str,
    example: &str,
) -> Option<Vec<String>> {
    if v.get_ref().is_str() {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a list of strings (argv, no shell), e.g. {example}; split {} \
                 into its words",
                cx.source(v.span())
            ),
        );
        return None;
    }
    let list = string_list(cx, label, v, example)?;
    if list.is_empty() {
        cx.error(
            v.span(),
            format!(
                "{label}: must not be empty; leave it out to keep the image's {image_field}, or \
                 give the words, e.g. {example}"
            ),
        );
        return None;
    }
    Some(list.into_iter().map(|(a, _)| a).collect())
}

/// `user` in `[container]`: "uid", "uid:gid", "name" or "name:group", or a
/// plain integer uid.
fn container_user(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<String> {
    const FORMS: &str =
        "write \"uid\", \"uid:gid\", \"name\" or \"name:group\", e.g. \"1000:1000\"";
    match v.get_ref() {
        DeValue::String(s) => match check_container_user(s) {
            Ok(()) => Some(s.to_string()),
            Err(e) => {
                cx.error(
                    v.span(),
                    format!("{label}: invalid user {:?}: {e}; {FORMS}", s.as_ref()),
                );
                None
            }
        },
        DeValue::Integer(_) => u64_in(cx, label, v, 0, u32::MAX.into()).map(|n| n.to_string()),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a string, found {}; {FORMS}",
                    a_type(other)
                ),
            );
            None
        }
    }
}

/// `volumes`: bind mounts `HOST_PATH:PATH[:ro]` and named volumes
/// `NAME:PATH[:ro]`, each container path once.
fn volumes(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<Vec<Volume>> {
    const EXAMPLE: &str = "[\"/srv/app:/data\", \"pgdata:/var/lib/postgresql/data\", \
                           \"/etc/localtime:/etc/localtime:ro\"]";
    let DeValue::Array(a) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a list of volumes \"HOST_PATH:PATH[:ro]\" or \
                 \"NAME:PATH[:ro]\", e.g. {EXAMPLE}, found {}",
                a_type(v.get_ref())
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    // Normalised container path -> (the element that mounts it, its line).
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for item in a.iter() {
        let DeValue::String(text) = item.get_ref() else {
            cx.error(
                item.span(),
                format!(
                    "{label}: expected every element to be a string \"HOST_PATH:PATH[:ro]\" or \
                     \"NAME:PATH[:ro]\", found {}",
                    a_type(item.get_ref())
                ),
            );
            continue;
        };
        let text: &str = text;
        let volume = match parse_volume(text) {
            Ok(volume) => volume,
            Err(e) => {
                cx.error(
                    item.span(),
                    format!("{label}: invalid volume {text:?}: {e}"),
                );
                continue;
            }
        };
        let key = normalize_path(&volume.container);
        if let Some((first, line)) = seen.get(&key) {
            cx.error(
                item.span(),
                format!(
                    "{label}: the container path {:?} is already mounted by {first:?} (line {line}); \
                     each container path may be mounted only once",
                    volume.container
                ),
            );
            continue;
        }
        let (line, _) = cx.line_col(item.span().start);
        seen.insert(key, (text.to_string(), line));
        out.push(volume);
    }
    Some(out)
}

fn parse_env(cx: &mut Cx<'_>, v: &Value<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let DeValue::Table(t) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "env: expected a table (an [env] section of NAME = \"value\"), found {}",
                a_type(v.get_ref())
            ),
        );
        return env;
    };
    for (k, val) in entries(t) {
        let key: &str = k.get_ref();
        if key.is_empty() || key.contains(['=', '\0']) {
            cx.error(
                k.span(),
                format!("env: invalid variable name {key:?}; names must be non-empty and contain no '=' or NUL"),
            );
            continue;
        }
        match val.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                cx.error(
                    val.span(),
                    format!("env.{key}: the value must not contain NUL"),
                );
            }
            DeValue::String(s) => {
                env.insert(key.to_string(), s.to_string());
            }
            DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                let src = cx.source(val.span()).to_string();
                cx.error(
                    val.span(),
                    format!(
                        "env.{key}: values must be strings, found {}; quote it: {key} = \"{src}\"",
                        a_type(val.get_ref())
                    ),
                );
            }
            other => cx.error(
                val.span(),
                format!("env.{key}: values must be strings, found {}", a_type(other)),
            ),
        }
    }
    env
}

/// Checks a cpu list such as "0-3,6,8-9" and returns it without whitespace.
pub fn parse_cpuset(s: &str) -> Result<String, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Err("is empty".into());
    }
    for part in s.split(',') {
        let part = part.trim();
        let num = |n: &str| -> Result<u32, String> {
            let n = n.trim();
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("{n:?} is not a CPU number"));
            }
            n.parse::<u32>().map_err(|_| format!("{n:?} is too large"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {a}-{b} is backwards; write {b}-{a}"));
                }
                out.push(format!("{a}-{b}"));
            }
            None => out.push(num(part)?.to_string()),
        }
    }
    Ok(out.join(","))
}

fn parse_resources(cx: &mut Cx<'_>, v: &Value<'_>) -> Resources {
    let mut r = Resources::default();
    let Some(s) = Section::open(cx, "resources", v, Resources::KEYS) else {
        return r;
    };
    r.memory_max = s.with(cx, "memory_max", size);
    r.cpus = s.with(cx, "cpus", |cx, l, v| {
        let n = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            other => {
                cx.error(
                    v.span(),
                    format!(
                        "{l}: expected a number of CPUs such as 0.5 or 2, found {}",
                        a_type(other)
                    ),
                );
                return None;
            }
        };
        match n {
            Some(n) if n.is_finite() && n > 0.0 => Some(n),
            _ => {
                cx.error(
                    v.span(),
                    format!(
                        "{l}: must be a number of CPUs greater than 0, such as 0.5 or 2, got {}",
                        cx.source(v.span())
                    ),
                );
                None
            }
        }
    });
    r.cpu_weight = s.with(cx, "cpu_weight", |cx, l, v| u64_in(cx, l, v, 1, 10000));
    r.pids_max = s.with(cx, "pids_max", |cx, l, v| u64_in(cx, l, v, 1, u64::MAX));
    r.cpuset = s.with(cx, "cpuset", |cx, l, v| {
        let text = string(cx, l, v)?;
        match parse_cpuset(&text) {
            Ok(c) => Some(c),
            Err(e) => {
                cx.error(
                    v.span(),
                    format!("{l}: invalid cpu list {text:?}: {e} (write CPU numbers and ranges, e.g. \"0-3,6,8-9\")"),
                );
                None
            }
        }
    });
    r
}

fn parse_restart(cx: &mut Cx<'_>, v: &Value<'_>) -> Restart {
    let mut r = Restart::default();
    let Some(s) = Section::open(cx, "restart", v, Restart::KEYS) else {
        return r;
    };
    if let Some(p) = s.with(cx, "policy", choice) {
        r.policy = p;
    }
    let delay = s.with(cx, "delay", duration);
    let max_delay = s.with(cx, "max_delay", duration);
    if let Some(d) = delay {
        r.delay = d;
    }
    if let Some(d) = max_delay {
        r.max_delay = d;
    }
    if (delay.is_some() || max_delay.is_some()) && r.delay > r.max_delay {
        let (key, other) = if delay.is_some() {
            ("delay", "max_delay")
        } else {
            ("max_delay", "delay")
        };
        let span = s.get(key).map(|v| v.span()).unwrap_or(s.span.clone());
        cx.error(
            span,
            format!(
                "restart: delay ({}) is longer than max_delay ({}); raise max_delay or lower delay (check {other} too)",
                humantime::format_duration(r.delay),
                humantime::format_duration(r.max_delay)
            ),
        );
    }
    if let Some(b) = s.with(cx, "burst", |cx, l, v| u32_at_least(cx, l, v, 1)) {
        r.burst = b;
    }
    if let Some(d) = s.with(cx, "interval", |cx, l, v| {
        duration_at_least(cx, l, v, MIN_RESTART_INTERVAL)
    }) {
        r.interval = d;
    }
    r
}

fn check_http_url(url: &str) -> Result<(), String> {
    const EXAMPLE: &str = "e.g. \"http://127.0.0.1:8080/health\"";
    if url.len() > 8
        && url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Err(format!(
            "https is not supported by the health checker; probe the service's plain-http port on \
             localhost, {EXAMPLE}, or use tcp = \"host:port\""
        ));
    }
    let rest = match url.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("http://") => &url[7..],
        _ => return Err(format!("expected an http:// URL, {EXAMPLE}")),
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the URL must not contain spaces, {EXAMPLE}"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "user info (user@) is not supported in health URLs, {EXAMPLE}"
        ));
    }
    check_host_port(authority, false).map_err(|e| format!("{e}, {EXAMPLE}"))
}

/// `host[:port]` (`port` required when `need_port`). IPv6 hosts in brackets.
fn check_host_port(s: &str, need_port: bool) -> Result<(), String> {
    let (host, port) = if let Some(after) = s.strip_prefix('[') {
        let Some((h, rest)) = after.split_once(']') else {
            return Err("unclosed '[' in IPv6 address".into());
        };
        let port = match rest {
            "" => None,
            r => match r.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(format!("unexpected {r:?} after the IPv6 address")),
            },
        };
        (h, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if !s.starts_with('[') && host.contains(':') {
        return Err("put an IPv6 address in brackets, like [::1]:8080".into());
    }
    match port {
        None if need_port => Err("missing port; write host:port".into()),
        None => Ok(()),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => Ok(()),
            _ => Err(format!("port {p:?} is not a number between 1 and 65535")),
        },
    }
}

fn parse_health(cx: &mut Cx<'_>, v: &Value<'_>) -> Option<Health> {
    let s = Section::open(cx, "health", v, Health::KEYS)?;
    let probe_keys: Vec<(&Key<'_>, &Value<'_>)> = s
        .entries
        .iter()
        .filter(|(k, _)| Probe::KEYS.contains(&k.get_ref().as_ref()))
        .copied()
        .collect();
    let mut probe = None;
    match probe_keys.as_slice() {
        [] => cx.missing(
            s.span.clone(),
            "[health] needs exactly one probe: http = \"http://127.0.0.1:PORT/path\", \
             tcp = \"127.0.0.1:PORT\" or exec = [\"program\", \"arg\"]",
        ),
        [(k, pv), rest @ ..] => {
            let names: Vec<&str> = probe_keys
                .iter()
                .map(|(k, _)| k.get_ref().as_ref())
                .collect();
            for (extra, _) in rest {
                cx.error(
                    extra.span(),
                    format!(
                        "[health] has more than one probe ({}); keep exactly one of {}",
                        names.join(", "),
                        Probe::KEYS.join(", ")
                    ),
                );
            }
            let key: &str = k.get_ref();
            let label = s.label(key);
            probe = match key {
                "http" => string(cx, &label, pv).and_then(|url| match check_http_url(&url) {
                    Ok(()) => Some(Probe::Http(url)),
                    Err(e) => {
                        cx.error(pv.span(), format!("{label}: {e}"));
                        None
                    }
                }),
                "tcp" => string(cx, &label, pv).and_then(|addr| match check_host_port(&addr, true) {
                    Ok(()) => Some(Probe::Tcp(addr)),
                    Err(e) => {
                        cx.error(pv.span(), format!("{label}: {e}; write host:port, e.g. \"127.0.0.1:8123\""));
                        None
                    }
                }),
                _ => string_list(cx, &label, pv, "[\"/usr/bin/program\", \"--check\"]").and_then(|argv| {
                    match argv.first() {
                        None => {
                            cx.error(pv.span(), format!("{label}: must not be empty; give the program and its arguments"));
                            None
                        }
                        Some((p, span)) if p.trim().is_empty() => {
                            cx.error(span.clone(), format!("{label}: the program (first element) must not be empty"));
                            None
                        }
                        Some(_) => Some(Probe::Exec(argv.into_iter().map(|(a, _)| a).collect())),
                    }
                }),
            };
        }
    }
    let health = Health {
        probe: probe.unwrap_or(Probe::Exec(Vec::new())),
        interval: s
            .with(cx, "interval", |cx, l, v| {
                duration_at_least(cx, l, v, MIN_PROBE_INTERVAL)
            })
            .unwrap_or(Duration::from_secs(5)),
        timeout: s
            .with(cx, "timeout", |cx, l, v| {
                duration_at_least(cx, l, v, MIN_PROBE_TIMEOUT)
            })
            .unwrap_or(Duration::from_secs(2)),
        retries: s
            .with(cx, "retries", |cx, l, v| u32_at_least(cx, l, v, 1))
            .unwrap_or(3),
        start_period: s
            .with(cx, "start_period", duration)
            .unwrap_or(Duration::ZERO),
        start_interval: s
            .with(cx, "start_interval", |cx, l, v| {
                duration_at_least(cx, l, v, MIN_PROBE_INTERVAL)
            })
            .unwrap_or(Duration::from_secs(5)),
        on_unhealthy: s
            .with(cx, "on_unhealthy", choice)
            .unwrap_or(OnUnhealthy::Restart),
    };
    Some(health)
}

/// Parses a signal name ("SIGTERM", "TERM", "term") into its number.
pub fn parse_signal(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&full)
        .ok()
        .map(|s| s as i32)
}

fn parse_stop(cx: &mut Cx<'_>, v: &Value<'_>) -> Stop {
    let mut stop = Stop::default();
    let Some(s) = Section::open(cx, "stop", v, Stop::KEYS) else {
        return stop;
    };
    const HINT: &str =
        "use a signal name such as \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\" or \"SIGKILL\"";
    let signal = s.with(cx, "signal", |cx, l, v| match v.get_ref() {
        DeValue::String(name) => match parse_signal(name) {
            Some(n) => Some(n),
            None => {
                cx.error(
                    v.span(),
                    format!("{l}: unknown signal {:?}; {HINT}", name.as_ref()),
                );
                None
            }
        },
        DeValue::Integer(_) => {
            let n = integer(cx, l, v, 1, 64)?;
            match nix::sys::signal::Signal::try_from(n as i32) {
                Ok(sig) => Some(sig as i32),
                Err(_) => {
                    cx.error(v.span(), format!("{l}: {n} is not a signal number; {HINT}"));
                    None
                }
            }
        }
        other => {
            cx.error(
                v.span(),
                format!(
                    "{l}: expected a signal name, found {}; {HINT}",
                    a_type(other)
                ),
            );
            None
        }
    });
    if let Some(sig) = signal {
        stop.signal = sig;
    }
    if let Some(t) = s.with(cx, "timeout", duration) {
        stop.timeout = t;
    }
    stop
}

/// Canonicalises a capability name ("net_admin", "CAP_NET_ADMIN") to
/// "CAP_NET_ADMIN", if it names a capability.
pub fn parse_capability(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&full)
        .ok()
        .map(|c| c.to_string())
}

/// A list of capability names, each canonical (`CAP_NET_ADMIN`) and once,
/// with its span; with `allow_all`, `ALL` (any case) too. Unknown names are
/// errors with a suggestion.
fn capability_list(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    allow_all: bool,
    example: &str,
) -> Option<Vec<(String, Range<usize>)>> {
    let list = string_list(cx, label, v, example)?;
    let all: Vec<String> = {
        let mut v: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    let mut out: Vec<(String, Range<usize>)> = Vec::new();
    for (name, span) in list {
        let parsed = if allow_all
            && name
                .trim()
                .eq_ignore_ascii_case(Container::ALL_CAPABILITIES)
        {
            Some(Container::ALL_CAPABILITIES.to_string())
        } else {
            parse_capability(&name)
        };
        match parsed {
            Some(c) if !out.iter().any(|(o, _)| *o == c) => out.push((c, span)),
            Some(_) => {}
            None => {
                let full = format!(
                    "CAP_{}",
                    name.trim().to_ascii_uppercase().trim_start_matches("CAP_")
                );
                let all_word = if allow_all { ", or \"ALL\"" } else { "" };
                cx.error(
                    span,
                    format!(
                        "{label}: unknown capability {name:?}{}; names look like \
                         \"CAP_NET_BIND_SERVICE\" or \"NET_BIND_SERVICE\"{all_word} (see \
                         capabilities(7))",
                        did_you_mean(&full, all.iter().map(String::as_str))
                    ),
                );
            }
        }
    }
    Some(out)
}

fn parse_security(cx: &mut Cx<'_>, v: &Value<'_>) -> Security {
    let mut sec = Security::default();
    let Some(s) = Section::open(cx, "security", v, Security::KEYS) else {
        return sec;
    };
    if let Some(list) = s.with(cx, "capabilities", |cx, l, v| {
        capability_list(cx, l, v, false, "[\"CAP_NET_BIND_SERVICE\"]")
    }) {
        sec.capabilities = list.into_iter().map(|(c, _)| c).collect();
    }
    if let Some(b) = s.with(cx, "no_new_privileges", boolean) {
        sec.no_new_privileges = b;
    }
    sec
}

fn parse_logs(cx: &mut Cx<'_>, v: &Value<'_>) -> Logs {
    let mut logs = Logs::default();
    let Some(s) = Section::open(cx, "logs", v, Logs::KEYS) else {
        return logs;
    };
    if let Some(n) = s.with(cx, "max_size", size) {
        logs.max_size = n;
    }
    if let Some(n) = s.with(cx, "max_files", |cx, l, v| u32_at_least(cx, l, v, 1)) {
        logs.max_files = n;
    }
    logs
}

fn parse_gpu(cx: &mut Cx<'_>, v: &Value<'_>) -> Option<Gpu> {
    let s = Section::open(cx, "gpu", v, Gpu::KEYS)?;
    let mut gpu = Gpu::default();
    if let Some(w) = s.with(cx, "want", choice) {
        gpu.want = w;
    }
    if let Some(n) = s.with(cx, "count", |cx, l, v| integer(cx, l, v, 1, 16)) {
        gpu.count = n as u32;
    }
    if let Some(n) = s.with(cx, "min_vram", size_or_zero) {
        gpu.min_vram = n;
    }
    if let Some(w) = s.with(cx, "verify", choice) {
        gpu.verify = Some(w);
    }
    if let Some(w) = s.with(cx, "on_fallback", choice) {
        gpu.on_fallback = w;
    }
    if let Some(d) = s.with(cx, "verify_interval", |cx, l, v| {
        duration_at_least(cx, l, v, MIN_GPU_VERIFY_INTERVAL)
    }) {
        gpu.verify_interval = d;
    }
    Some(gpu)
}

/// The tables of an array of tables `[[key]]`, each checked to be one: a
/// table where the array belongs, or an element that is not a table, is an
/// error that says how to write it (`example`).
fn array_of_tables<'a, 'b>(
    cx: &mut Cx<'_>,
    v: &'b Value<'a>,
    key: &str,
    example: &str,
) -> Vec<&'b Value<'a>> {
    let DeValue::Array(a) = v.get_ref() else {
        let hint = if matches!(v.get_ref(), DeValue::Table(_)) {
            format!("; write the header with two brackets, [[{key}]], once per {key}")
        } else {
            String::new()
        };
        cx.error(
            v.span(),
            format!(
                "{key}: expected an array of tables ([[{key}]] sections), found {}{hint}",
                a_type(v.get_ref())
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in a.iter() {
        if matches!(item.get_ref(), DeValue::Table(_)) {
            out.push(item);
        } else {
            cx.error(
                item.span(),
                format!(
                    "{key}: expected every element to be a table, found {}; write {example}",
                    a_type(item.get_ref())
                ),
            );
        }
    }
    out
}

const DEVICE_EXAMPLE: &str = "[[device]] with usb = \"10c4:ea60\" and as = \"/dev/zigbee\", \
     or [[device]] with path = \"/dev/net/tun\"";

/// `[[device]]`: an array of tables. Each `as` path once per unit.
fn parse_devices(cx: &mut Cx<'_>, v: &Value<'_>) -> Vec<DeviceSpec> {
    let mut out = Vec::new();
    // Normalised `as` path -> the line of the device that first uses it.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for item in array_of_tables(cx, v, "device", DEVICE_EXAMPLE) {
        let Some((device, (what, as_span))) = parse_device(cx, item) else {
            continue;
        };
        if let Some(line) = seen.get(&device.as_path) {
            cx.error(
                as_span.clone(),
                format!(
                    "{what}: {} is already the path of the device on line {line}; each device \
                     needs its own path, so give this one another as = \"/dev/NAME\"",
                    cx.source(as_span)
                ),
            );
            continue;
        }
        let (line, _) = cx.line_col(item.span().start);
        seen.insert(device.as_path.clone(), line);
        out.push(device);
    }
    out
}

/// Which value gave a device its `as` path: its label and span (`as`, or the
/// `path` it defaults to).
type AsSource = (&'static str, Range<usize>);

/// One `[[device]]` table, with where its `as` path comes from.
fn parse_device(cx: &mut Cx<'_>, v: &Value<'_>) -> Option<(DeviceSpec, AsSource)> {
    let s = Section::open(cx, "device", v, DeviceSpec::KEYS)?;
    let matcher_keys: Vec<&Key<'_>> = s
        .entries
        .iter()
        .filter(|(k, _)| DeviceMatch::KEYS.contains(&k.get_ref().as_ref()))
        .map(|(k, _)| *k)
        .collect();
    if let [_, second, ..] = matcher_keys.as_slice() {
        cx.error(
            second.span(),
            "[[device]] has both usb and path; give exactly one of them (use one [[device]] per \
             device)",
        );
    }
    let usb = s.with(cx, "usb", usb_id);
    let path = s.with(cx, "path", |cx, l, v| device_path(cx, l, v, false));
    let is_usb = s.get("usb").is_some();
    let serial = match s
        .entries
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == "serial")
    {
        None => Ok(None),
        Some((k, _)) if !is_usb => {
            if s.get("path").is_some() {
                cx.error(
                    k.span(),
                    "device.serial: only a usb device has a serial number; remove it, or name \
                     the device by usb = \"vendor:product\" instead of path",
                );
            }
            Err(())
        }
        Some(_) => s
            .with(cx, "serial", |cx, l, v| {
                let serial = string(cx, l, v)?;
                if serial.trim().is_empty() || serial.chars().any(char::is_control) {
                    cx.error(
                        v.span(),
                        format!(
                            "{l}: must be the device's serial number as `lsusb -v` shows it \
                             (iSerial), got {serial:?}"
                        ),
                    );
                    return None;
                }
                Some(serial)
            })
            .map(Some)
            .ok_or(()),
    };
    let as_path = s.with(cx, "as", |cx, l, v| device_path(cx, l, v, true));
    let optional = s.with(cx, "optional", boolean).unwrap_or(false);

    if matcher_keys.is_empty() {
        cx.missing(
            s.span.clone(),
            format!(
                "[[device]] needs usb = \"vendor:product\" or path = \"/dev/...\"; e.g. \
                 {DEVICE_EXAMPLE}"
            ),
        );
        return None;
    }
    if matcher_keys.len() > 1 {
        return None;
    }
    let (matcher, as_path, as_span) = if is_usb {
        let Some(as_value) = s.get("as") else {
            cx.missing(
                s.span.clone(),
                "[[device]] with usb needs as = \"/dev/NAME\", the stable path the service sees \
                 (e.g. as = \"/dev/zigbee\"): a USB device's own node (/dev/ttyUSB0, ...) can \
                 change from boot to boot",
            );
            return None;
        };
        let (vendor, product) = usb?;
        let matcher = DeviceMatch::Usb {
            vendor,
            product,
            serial: serial.ok()?,
        };
        (matcher, as_path?, ("device.as", as_value.span()))
    } else {
        let path = path?;
        serial.ok()?;
        let path_value = s.get("path")?;
        match s.get("as") {
            Some(as_value) => (
                DeviceMatch::Path(path),
                as_path?,
                ("device.as", as_value.span()),
            ),
            None => {
                if !is_under_dev(&path) {
                    cx.error(
                        path_value.span(),
                        format!(
                            "device.path: {path:?} is not under /dev, so it cannot also be the \
                             path the service sees; add as = \"/dev/NAME\""
                        ),
                    );
                    return None;
                }
                (
                    DeviceMatch::Path(path.clone()),
                    path,
                    ("device.path", path_value.span()),
                )
            }
        }
    };
    Some((
        DeviceSpec {
            matcher,
            as_path,
            optional,
        },
        as_span,
    ))
}

/// `usb`: "vendor:product", 4 hex digits each (any case); returned in
/// lowercase.
fn usb_id(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<(String, String)> {
    let text = string(cx, label, v)?;
    let hex4 = |s: &str| s.len() == 4 && s.chars().all(|c| c.is_ascii_hexdigit());
    match text.split_once(':') {
        Some((vendor, product)) if hex4(vendor) && hex4(product) => {
            Some((vendor.to_ascii_lowercase(), product.to_ascii_lowercase()))
        }
        _ => {
            cx.error(
                v.span(),
                format!(
                    "{label}: invalid USB id {text:?}; write vendor:product as two 4-digit hex \
                     numbers, as lsusb shows them, e.g. \"10c4:ea60\""
                ),
            );
            None
        }
    }
}

/// Whether a normalised absolute path is below /dev (not /dev itself).
fn is_under_dev(path: &str) -> bool {
    path.strip_prefix("/dev/")
        .is_some_and(|rest| !rest.is_empty())
}

/// `path` or `as` in `[[device]]`: an absolute path without "..",
/// returned normalised; with `under_dev`, it must be below /dev.
fn device_path(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, under_dev: bool) -> Option<String> {
    let text = string(cx, label, v)?;
    let problem = if !text.starts_with('/') {
        Some(format!(
            "must be an absolute path (starting with /), got {text:?}"
        ))
    } else if text.chars().any(char::is_control) {
        Some(format!("{text:?} must not contain control characters"))
    } else if text.split('/').any(|c| c == "..") {
        Some(format!("{text:?} must not contain \"..\""))
    } else if under_dev && !is_under_dev(&normalize_path(&text)) {
        Some(format!(
            "{text:?} is not under /dev; the service sees its devices at paths such as \
             \"/dev/zigbee\""
        ))
    } else {
        None
    };
    match problem {
        Some(p) => {
            cx.error(v.span(), format!("{label}: {p}"));
            None
        }
        None => Some(normalize_path(&text)),
    }
}

const BENCH_EXAMPLE: &str =
    "e.g. api = \"ollama\" and url = \"http://127.0.0.1:11434\" with model = \"smollm2\"";

/// `[bench]`: `None` when anything in it is wrong or missing; and its
/// `url` when that is well-formed, whatever else is wrong.
fn parse_bench(cx: &mut Cx<'_>, v: &Value<'_>) -> (Option<Bench>, Option<String>) {
    let Some(s) = Section::open(cx, "bench", v, Bench::KEYS) else {
        return (None, None);
    };
    let api = s.with(cx, "api", choice);
    let url = s.with(cx, "url", |cx, l, v| {
        let url = string(cx, l, v)?;
        match check_bench_url(&url, api) {
            Ok(base) => Some(base),
            Err(e) => {
                cx.error(v.span(), format!("{l}: {e}"));
                None
            }
        }
    });
    let model = s.with(cx, "model", |cx, l, v| {
        let model = string(cx, l, v)?;
        if model.trim().is_empty() || model.chars().any(char::is_control) {
            cx.error(
                v.span(),
                format!(
                    "{l}: must be a model name the server knows, e.g. \"smollm2\", got {model:?}"
                ),
            );
            return None;
        }
        Some(model)
    });
    let prompt = s.with(cx, "prompt", |cx, l, v| {
        let prompt = string(cx, l, v)?;
        if prompt.trim().is_empty() {
            cx.error(
                v.span(),
                format!(
                    "{l}: must not be empty; leave it out for {:?}",
                    Bench::DEFAULT_PROMPT
                ),
            );
            return None;
        }
        Some(prompt)
    });
    let max_tokens = s.with(cx, "max_tokens", |cx, l, v| u32_at_least(cx, l, v, 1));
    let requests = s.with(cx, "requests", |cx, l, v| u32_at_least(cx, l, v, 1));
    let rounds = s.with(cx, "rounds", |cx, l, v| u32_at_least(cx, l, v, 2));
    let max_slowdown = s.with(cx, "max_slowdown", fraction);

    let mut complete = true;
    let needs_api = format!("api = {}, the server's HTTP API", or_list(BenchApi::ALL));
    const NEEDS_URL: &str = "url = \"http://HOST:PORT\", the server's base URL";
    let needs = match (s.get("api"), s.get("url")) {
        (None, None) => Some(format!("{needs_api}, and {NEEDS_URL}")),
        (None, Some(_)) => Some(needs_api),
        (Some(_), None) => Some(NEEDS_URL.to_string()),
        (Some(_), Some(_)) => None,
    };
    if let Some(needs) = needs {
        complete = false;
        cx.missing(
            s.span.clone(),
            format!("[bench] needs {needs}; {BENCH_EXAMPLE}"),
        );
    }
    if api == Some(BenchApi::Ollama) && s.get("model").is_none() {
        complete = false;
        cx.missing(
            s.span.clone(),
            format!(
                "[bench] with api = \"{}\" needs model = \"NAME\", a model the server has \
                 pulled, e.g. model = \"smollm2\"",
                BenchApi::Ollama.as_str()
            ),
        );
    }
    // Each key: absent gives its default, present but bad gives None.
    let key = |k: &str| s.get(k).is_some();
    let bench = || -> Option<Bench> {
        Some(Bench {
            api: api?,
            url: url.clone()?,
            model: if key("model") { Some(model?) } else { None },
            prompt: if key("prompt") {
                prompt?
            } else {
                Bench::DEFAULT_PROMPT.into()
            },
            max_tokens: if key("max_tokens") {
                max_tokens?
            } else {
                Bench::DEFAULT_MAX_TOKENS
            },
            requests: if key("requests") {
                requests?
            } else {
                Bench::DEFAULT_REQUESTS
            },
            rounds: if key("rounds") {
                rounds?
            } else {
                Bench::DEFAULT_ROUNDS
            },
            max_slowdown: if key("max_slowdown") {
                max_slowdown?
            } else {
                Bench::DEFAULT_MAX_SLOWDOWN
            },
        })
    };
    (complete.then(bench).flatten(), url)
}

/// A number in 0..=1: a float, or the integer 0 or 1.
fn fraction(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<f64> {
    const HINT: &str = "write a fraction such as 0.05 for 5%";
    let n = match v.get_ref() {
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a number between 0 and 1, found {}; {HINT}",
                    a_type(other)
                ),
            );
            return None;
        }
    };
    match n {
        Some(n) if (0.0..=1.0).contains(&n) => Some(n),
        _ => {
            cx.error(
                v.span(),
                format!(
                    "{label}: must be between 0 and 1, got {}; {HINT}",
                    cx.source(v.span())
                ),
            );
            None
        }
    }
}

/// `url` in `[bench]`: `http://host:port`, with at most a trailing '/'.
/// Returns it without the trailing '/'.
fn check_bench_url(url: &str, api: Option<BenchApi>) -> Result<String, String> {
    const EXAMPLE: &str = "e.g. \"http://127.0.0.1:11434\"";
    if url.len() > 8
        && url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Err(format!(
            "https is not supported by the bench; give the server's plain-http port on \
             localhost, {EXAMPLE}"
        ));
    }
    let rest = match url.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("http://") => &url[7..],
        _ => return Err(format!("expected an http:// URL, {EXAMPLE}")),
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the URL must not contain spaces, {EXAMPLE}"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(format!(
            "user info (user@) is not supported in the bench URL, {EXAMPLE}"
        ));
    }
    check_host_port(authority, true).map_err(|e| format!("{e}, {EXAMPLE}"))?;
    if !tail.is_empty() && tail != "/" {
        let appended = match api {
            Some(api) => format!(
                "the bench appends {} for api = {:?}",
                api.path(),
                api.as_str()
            ),
            None => "the bench appends the API's path itself".into(),
        };
        return Err(format!(
            "give the server's base URL without a path ({appended}), {EXAMPLE}"
        ));
    }
    Ok(format!("http://{authority}"))
}
