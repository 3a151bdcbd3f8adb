//! The bounds of a unit file and of a set of them, in one place.
//!
//! Every bound is checked while the files are read, before anything runs:
//! a file, string, list or table past its bound is a problem `validate`
//! reports at its `FILE:LINE:COL`, so that one oversized unit cannot reach
//! jarvisd's memory or its answers. Strings are measured in bytes of
//! UTF-8.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::parse::{Cx, Reach};

/// The largest unit file, in bytes (1 MiB). A larger file is refused
/// before it is read in full.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most unit files a load takes (a units directory, or the files and
/// directories given together).
pub const MAX_UNIT_FILES: usize = 1000;

/// The longest unit name (the file name without `.toml`), in characters: a
/// DNS label, as the name is the container's host name and its name on its
/// networks; a cgroup and a few files are named after it too.
pub const MAX_UNIT_NAME: usize = 63;

/// The longest file name the kernel takes (`NAME_MAX`): the bound of a
/// `[[secret]]` target (a file in the run's secrets directory).
pub const MAX_FILE_NAME: usize = 255;

/// The longest named volume's name (a directory under the volume
/// directory).
pub const MAX_VOLUME_NAME: usize = MAX_FILE_NAME;

/// The longest network name in `networks`.
pub const MAX_NETWORK_NAME: usize = 64;

/// The longest key of any table (an `[env]` variable's name, a sysctl,
/// a dependency's name...).
pub const MAX_KEY_BYTES: usize = 256;

/// The longest string value where no tighter bound applies (an argument,
/// an environment variable's value, a bench prompt...).
pub const MAX_STRING_BYTES: usize = 64 << 10;

/// The longest `description`.
pub const MAX_DESCRIPTION_BYTES: usize = 1 << 10;

/// The longest path (`PATH_MAX`): `working_dir`, `env_file` entries,
/// `[[secret]]` sources and targets, `[[device]]` paths, and the
/// container's `image`.
pub const MAX_PATH_BYTES: usize = 4096;

/// The longest mount: an entry of `volumes` or `tmpfs` (two paths and
/// options).
pub const MAX_MOUNT_BYTES: usize = 2 * MAX_PATH_BYTES + 1024;

/// The most arguments of a command: `[native] command`, `[container]`
/// `entrypoint` and `command`, `[health] exec`.
pub const MAX_ARGS: usize = 1024;

/// The most bytes of one such command, each argument counted with its
/// terminating NUL (the kernel takes at most 128 KiB for one argument, and
/// 2 MiB for all of them with the environment on a default stack).
pub const MAX_ARGV_BYTES: usize = 128 << 10;

/// The most variables in `[env]`.
pub const MAX_ENV_VARS: usize = 1024;

/// The most bytes of `[env]`, each variable counted as `NAME=VALUE` and a
/// NUL.
pub const MAX_ENV_BYTES: usize = 128 << 10;

/// The most entries of any other list or table (`ports`, `volumes`,
/// `[[device]]`, `[[secret]]`, `env_file`, `sysctls`...); `depends_on`
/// takes up to [`MAX_UNIT_FILES`].
pub const MAX_ITEMS: usize = 256;

/// How deep the TOML parser lets arrays, inline tables and dotted keys
/// nest (the `toml` crate's own limit); deeper is a problem at the first
/// level past it. No unit file needs more than four.
pub const MAX_NESTING: usize = 80;

/// The most problems reported for one file; the rest are counted in one
/// last problem, `... and N more problems in FILE (fix these first)`.
pub const MAX_DIAGNOSTICS_PER_FILE: usize = 100;

/// The most problems reported for one load, all files together; the rest
/// are counted as for one file.
pub const MAX_DIAGNOSTICS: usize = 200;

/// The longest message of one problem: a message that quotes a long value
/// is cut, and ends with "…".
pub const MAX_MESSAGE_BYTES: usize = 2048;

// A unit's longest file is `.NAME.exit.json.XXXXXX.partial` (a run's exit
// record, written through a temporary file): it must be a file name.
const _: () =
    assert!(1 + MAX_UNIT_NAME + ".exit.json".len() + ".XXXXXX.partial".len() <= MAX_FILE_NAME);

/// What bounds the values at one key path.
struct Bound {
    /// The longest string, in bytes.
    string: usize,
    /// The most entries of a list, or of a table whose keys are the
    /// user's (`[env]`, `depends_on`, `sysctls`, `ulimits`); in any other
    /// table, a key past those the format has is a problem already.
    items: usize,
    /// Whether a table here has keys of the user's.
    free_keys: bool,
    /// A bound on the whole list or table.
    total: Option<Total>,
}

#[derive(Clone, Copy)]
enum Total {
    /// A command's arguments, each with a NUL: [`MAX_ARGV_BYTES`].
    Argv,
    /// `[env]`'s `NAME=VALUE`s, each with a NUL: [`MAX_ENV_BYTES`].
    Env,
}

/// The bound of the values at `path` (the keys from the top; a list's
/// elements are at the list's path).
fn bound(path: &[&str]) -> Bound {
    let (mut string, mut items, mut total) = (MAX_STRING_BYTES, MAX_ITEMS, None);
    let free_keys = matches!(
        path,
        ["env"] | ["depends_on"] | ["container", "sysctls" | "ulimits"]
    );
    match path {
        ["description"] => string = MAX_DESCRIPTION_BYTES,
        ["depends_on"] => items = MAX_UNIT_FILES,
        ["env"] => (items, total) = (MAX_ENV_VARS, Some(Total::Env)),
        ["native", "command"] | ["container", "command" | "entrypoint"] | ["health", "exec"] => {
            (items, total) = (MAX_ARGS, Some(Total::Argv))
        }
        ["env_file"]
        | ["native" | "container", "working_dir"]
        | ["container", "image"]
        | ["secret", "source" | "target"]
        | ["device", "path" | "as"] => string = MAX_PATH_BYTES,
        ["container", "volumes" | "tmpfs"] => string = MAX_MOUNT_BYTES,
        _ => {}
    }
    Bound {
        string,
        items,
        free_keys,
        total,
    }
}

/// A problem the walk found: where, what, and whether it is a string or
/// key past its length (which then explains whatever else is said of it).
type Found = (Range<usize>, String, bool);

/// Checks every key, string, list and table of a parsed unit file against
/// its bound, and reports each one past it at its span.
pub(crate) fn check(cx: &mut Cx<'_>, doc: &DeTable<'_>) {
    let mut found = Vec::new();
    table(&mut Vec::new(), doc, None, &mut found);
    cx.too_long = Reach::new(
        found
            .iter()
            .filter(|(_, _, long)| *long)
            .map(|(span, _, _)| span.clone())
            .collect(),
    );
    for (span, message, _) in found {
        cx.bound(span, message);
    }
}

fn label(path: &[&str]) -> String {
    path.join(".")
}

/// A table at `path`; `span` is its own (`None` for the document).
fn table<'a>(
    path: &mut Vec<&'a str>,
    t: &'a DeTable<'_>,
    span: Option<Range<usize>>,
    found: &mut Vec<Found>,
) {
    let b = bound(path);
    if let (Some(span), true) = (&span, b.free_keys && t.len() > b.items) {
        found.push((
            span.clone(),
            format!("{}: {} entries; at most {}", label(path), t.len(), b.items),
            false,
        ));
    }
    let mut entries: Vec<_> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut sum = 0usize;
    let mut summed = false;
    for (k, v) in entries {
        let key: &str = k.get_ref();
        if key.len() > MAX_KEY_BYTES {
            let what = format!("a key of {} bytes; at most {MAX_KEY_BYTES}", key.len());
            let message = match path.is_empty() {
                true => what,
                false => format!("{}: {what}", label(path)),
            };
            found.push((k.span(), message, true));
            continue;
        }
        if let (Some(Total::Env), DeValue::String(s), false) = (b.total, v.get_ref(), summed) {
            sum += key.len() + s.len() + 2;
            if sum > MAX_ENV_BYTES {
                summed = true;
                found.push((
                    v.span(),
                    format!(
                        "{}: the variables add up to more than {MAX_ENV_BYTES} bytes \
                         (NAME=VALUE each, with a NUL); move the large values into a file \
                         the service reads",
                        label(path)
                    ),
                    false,
                ));
            }
        }
        path.push(key);
        value(path, v.get_ref(), v.span(), found);
        path.pop();
    }
}

fn value<'a>(
    path: &mut Vec<&'a str>,
    v: &'a DeValue<'_>,
    span: Range<usize>,
    found: &mut Vec<Found>,
) {
    let b = bound(path);
    match v {
        DeValue::String(s) if s.len() > b.string => found.push((
            span,
            format!(
                "{}: {} bytes long; at most {}",
                label(path),
                s.len(),
                b.string
            ),
            true,
        )),
        DeValue::Table(t) => table(path, t, Some(span), found),
        DeValue::Array(a) => {
            if a.len() > b.items {
                found.push((
                    span.clone(),
                    format!("{}: {} entries; at most {}", label(path), a.len(), b.items),
                    false,
                ));
            }
            let mut sum = 0usize;
            for item in a.iter() {
                if let (Some(Total::Argv), DeValue::String(s)) = (b.total, item.get_ref()) {
                    sum += s.len() + 1;
                    if sum > MAX_ARGV_BYTES && sum - s.len() - 1 <= MAX_ARGV_BYTES {
                        found.push((
                            item.span(),
                            format!(
                                "{}: the arguments add up to more than {MAX_ARGV_BYTES} bytes \
                                 (each with a NUL); pass large data in a file",
                                label(path)
                            ),
                            false,
                        ));
                    }
                }
                value(path, item.get_ref(), item.span(), found);
            }
        }
        _ => {}
    }
}
