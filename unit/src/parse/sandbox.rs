//! `[container]`'s keys for the container's sandbox beyond its network:
//! `tmpfs`, `shm_size`, `group_add`, `privileged`, `device_cgroup_rules`,
//! `cap_add`, `cap_drop`, `sysctls`, `ulimits` and `init`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::de::DeValue;

use super::{
    a_type, boolean, capability_list, did_you_mean, entries, size, string, Cx, Section, Value,
};
use crate::container::{is_valid_id_name, normalize_path};
use crate::schema::{
    check_sysctl, Container, DeviceCgroupRule, Network, Rlimit, Tmpfs, Ulimit, Volume, Word,
};

/// What `validate` says of a unit with `privileged = true`.
pub(crate) const PRIVILEGED_NOTE: &str =
    "privileged = true: the container gets every capability and every host device, with no \
     seccomp filter and no masked or read-only kernel paths, so it can take over the host; if \
     it needs only some of that, use cap_add and [[device]] instead";

/// What the sandbox keys of one `[container]` parsed to. Values with
/// errors are left at their defaults (the errors are in `cx`).
pub(super) struct SandboxKeys {
    pub tmpfs: Vec<Tmpfs>,
    pub shm_size: Option<u64>,
    pub group_add: Vec<String>,
    pub privileged: bool,
    pub device_cgroup_rules: Vec<DeviceCgroupRule>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub ulimits: BTreeMap<Rlimit, Ulimit>,
    pub init: bool,
    /// The well-formed entries of `cap_drop` with their spans, for the
    /// check against `[security] capabilities`.
    pub cap_drop_spans: Vec<(String, Range<usize>)>,
}

/// Parses the sandbox keys of `s`, a `[container]` section with `volumes`
/// already parsed and `network` when its value is well-formed.
pub(super) fn parse_sandbox_keys(
    cx: &mut Cx<'_>,
    s: &Section<'_, '_>,
    volumes: &[Volume],
    network: Option<&Network>,
) -> SandboxKeys {
    let tmpfs = s
        .with(cx, "tmpfs", |cx, l, v| tmpfs(cx, l, v, volumes))
        .unwrap_or_default();
    let shm_size = s.with(cx, "shm_size", size);
    let group_add = s.with(cx, "group_add", group_add).unwrap_or_default();
    let privileged = s.with(cx, "privileged", boolean).unwrap_or(false);
    if privileged {
        if let Some(v) = s.get("privileged") {
            cx.note(v.span(), PRIVILEGED_NOTE);
        }
    }
    let device_cgroup_rules = s
        .with(cx, "device_cgroup_rules", device_cgroup_rules)
        .unwrap_or_default();
    if privileged {
        if let Some(k) = s.key("device_cgroup_rules") {
            cx.error(
                k.span(),
                format!(
                    "{}: privileged = true already allows every device; remove \
                     device_cgroup_rules, or set privileged = false and keep them",
                    s.label("device_cgroup_rules")
                ),
            );
        }
    }
    let cap_add = s
        .with(cx, "cap_add", |cx, l, v| {
            capability_list(cx, l, v, true, "[\"NET_ADMIN\"]")
        })
        .unwrap_or_default();
    let cap_drop = s
        .with(cx, "cap_drop", |cx, l, v| {
            capability_list(cx, l, v, true, "[\"ALL\"]")
        })
        .unwrap_or_default();
    check_capabilities(cx, s, privileged, &cap_add, &cap_drop);
    let sysctls = s
        .with(cx, "sysctls", |cx, l, v| sysctls(cx, l, v, network))
        .unwrap_or_default();
    let ulimits = s.with(cx, "ulimits", ulimits).unwrap_or_default();
    let init = s.with(cx, "init", boolean).unwrap_or(false);
    SandboxKeys {
        tmpfs,
        shm_size,
        group_add,
        privileged,
        device_cgroup_rules,
        cap_add: names(&cap_add),
        cap_drop: names(&cap_drop),
        sysctls,
        ulimits,
        init,
        cap_drop_spans: cap_drop,
    }
}

fn names(list: &[(String, Range<usize>)]) -> Vec<String> {
    list.iter().map(|(n, _)| n.clone()).collect()
}

/// `privileged` against `cap_add` and `cap_drop`, and the two lists
/// against each other.
fn check_capabilities(
    cx: &mut Cx<'_>,
    s: &Section<'_, '_>,
    privileged: bool,
    add: &[(String, Range<usize>)],
    drop: &[(String, Range<usize>)],
) {
    const ALL: &str = Container::ALL_CAPABILITIES;
    if privileged {
        for key in ["cap_add", "cap_drop"] {
            if let Some(k) = s.key(key) {
                cx.error(
                    k.span(),
                    format!(
                        "{}: privileged = true already gives every capability; remove {key}, or \
                         set privileged = false and keep {key}",
                        s.label(key)
                    ),
                );
            }
        }
        return;
    }
    for (key, list) in [("cap_add", add), ("cap_drop", drop)] {
        if list.iter().any(|(n, _)| n == ALL) {
            for (name, span) in list.iter().filter(|(n, _)| n != ALL) {
                cx.error(
                    span.clone(),
                    format!(
                        "{}: {name} is already part of \"ALL\"; remove it, or list the \
                         capabilities one by one without \"ALL\"",
                        s.label(key)
                    ),
                );
            }
        }
    }
    let add_all = add.iter().any(|(n, _)| n == ALL);
    let drop_all = drop.iter().any(|(n, _)| n == ALL);
    if add_all && drop_all {
        if let Some((_, span)) = add.iter().find(|(n, _)| n == ALL) {
            cx.error(
                span.clone(),
                format!(
                    "{}: with cap_drop = [\"ALL\"] too this gives every capability back; keep \
                     cap_add = [\"ALL\"] alone (every capability but those cap_drop names), or \
                     list in cap_add only the capabilities the container needs",
                    s.label("cap_add")
                ),
            );
        }
        return;
    }
    for (name, span) in add.iter().filter(|(n, _)| n != ALL) {
        if drop.iter().any(|(d, _)| d == name) {
            cx.error(
                span.clone(),
                format!(
                    "{}: {name} is in cap_drop too; keep it in one of the two lists",
                    s.label("cap_add")
                ),
            );
        }
    }
}

/// `tmpfs`: one line or a list of lines, each mount path once and not a
/// path `volumes` mounts.
fn tmpfs(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, volumes: &[Volume]) -> Option<Vec<Tmpfs>> {
    let items: Vec<&Value<'_>> = match v.get_ref() {
        DeValue::String(_) => vec![v],
        DeValue::Array(a) => a.iter().collect(),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a list of tmpfs mounts, {}, found {}",
                    Tmpfs::EXAMPLES,
                    a_type(other)
                ),
            );
            return None;
        }
    };
    let mounted: BTreeSet<String> = volumes
        .iter()
        .map(|v| normalize_path(&v.container))
        .collect();
    let mut out = Vec::new();
    // Normalised path -> the line that first mounts it.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for item in items {
        let Some(text) = string(cx, label, item) else {
            continue;
        };
        let t = match text.parse::<Tmpfs>() {
            Ok(t) => t,
            Err(e) => {
                cx.error(item.span(), format!("{label}: invalid tmpfs {text:?}: {e}"));
                continue;
            }
        };
        let key = normalize_path(&t.path);
        if mounted.contains(&key) {
            cx.error(
                item.span(),
                format!(
                    "{label}: {:?} is already mounted by volumes; each container path may be \
                     mounted only once",
                    t.path
                ),
            );
            continue;
        }
        if let Some(line) = seen.get(&key) {
            cx.error(
                item.span(),
                format!(
                    "{label}: {:?} is already a tmpfs on line {line}; each container path may \
                     be mounted only once",
                    t.path
                ),
            );
            continue;
        }
        seen.insert(key, cx.line_col(item.span().start).0);
        out.push(t);
    }
    Some(out)
}

/// `group_add`: group names or numeric gids, each once, stored as text.
fn group_add(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<Vec<String>> {
    const EXAMPLE: &str = "[\"video\", \"44\"]";
    let DeValue::Array(a) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a list of group names or gids, e.g. {EXAMPLE}, found {}",
                a_type(v.get_ref())
            ),
        );
        return None;
    };
    let mut out: Vec<String> = Vec::new();
    for item in a.iter() {
        let group = match item.get_ref() {
            DeValue::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => {
                match s.parse::<u32>() {
                    Ok(gid) => gid.to_string(),
                    Err(_) => {
                        cx.error(
                            item.span(),
                            format!("{label}: the gid {s} is too large (at most {})", u32::MAX),
                        );
                        continue;
                    }
                }
            }
            DeValue::String(s) if is_valid_id_name(s) => s.to_string(),
            DeValue::String(s) => {
                cx.error(
                    item.span(),
                    format!(
                        "{label}: {:?} is not a group name or a gid; e.g. {EXAMPLE}",
                        s.as_ref()
                    ),
                );
                continue;
            }
            DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
                Ok(gid) => gid.to_string(),
                Err(_) => {
                    cx.error(
                        item.span(),
                        format!(
                            "{label}: a gid is between 0 and {}, got {}",
                            u32::MAX,
                            cx.source(item.span())
                        ),
                    );
                    continue;
                }
            },
            other => {
                cx.error(
                    item.span(),
                    format!(
                        "{label}: expected a group name or a gid, found {}",
                        a_type(other)
                    ),
                );
                continue;
            }
        };
        if out.contains(&group) {
            cx.error(
                item.span(),
                format!("{label}: {group:?} is listed twice; list each group once"),
            );
            continue;
        }
        out.push(group);
    }
    Some(out)
}

/// `device_cgroup_rules`: a list of Docker's device cgroup rules, each
/// once.
fn device_cgroup_rules(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
) -> Option<Vec<DeviceCgroupRule>> {
    let DeValue::Array(a) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a list of rules, {}, found {}",
                DeviceCgroupRule::EXAMPLES,
                a_type(v.get_ref())
            ),
        );
        return None;
    };
    let mut out: Vec<DeviceCgroupRule> = Vec::new();
    for item in a.iter() {
        let Some(text) = string(cx, label, item) else {
            continue;
        };
        let rule = match text.parse::<DeviceCgroupRule>() {
            Ok(r) => r,
            Err(e) => {
                cx.error(item.span(), format!("{label}: invalid rule {text:?}: {e}"));
                continue;
            }
        };
        if out.contains(&rule) {
            cx.error(
                item.span(),
                format!("{label}: \"{rule}\" is listed twice; list each rule once"),
            );
            continue;
        }
        out.push(rule);
    }
    Some(out)
}

/// `sysctls`: a table of namespaced sysctls; values strings, integers or
/// booleans (`1` / `0`), stored as strings.
fn sysctls(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    network: Option<&Network>,
) -> Option<BTreeMap<String, String>> {
    const EXAMPLE: &str = "sysctls = { \"net.ipv4.ip_unprivileged_port_start\" = \"0\" }";
    let DeValue::Table(t) = v.get_ref() else {
        let hint = if matches!(v.get_ref(), DeValue::Array(_)) {
            " (compose's list of NAME=VALUE is written as a table here)"
        } else {
            ""
        };
        cx.error(
            v.span(),
            format!(
                "{label}: expected a table of sysctl names and values, e.g. {EXAMPLE}, found \
                 {}{hint}",
                a_type(v.get_ref())
            ),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, val) in entries(t) {
        let name: &str = k.get_ref();
        let net = network.unwrap_or(&Network::Bridge);
        if let Err(e) = check_sysctl(name, net) {
            cx.error(k.span(), format!("{label}: {e}"));
            continue;
        }
        let value = match val.get_ref() {
            DeValue::String(s) => {
                let s: &str = s;
                if s.trim().is_empty() {
                    cx.error(
                        val.span(),
                        format!("{label}.{name}: the value is empty; give the value to set"),
                    );
                    continue;
                }
                if s.chars().any(|c| c.is_control() && c != '\t') {
                    cx.error(
                        val.span(),
                        format!("{label}.{name}: the value must be one line, without control characters"),
                    );
                    continue;
                }
                s.to_string()
            }
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => n.to_string(),
                Err(_) => {
                    cx.error(
                        val.span(),
                        format!("{label}.{name}: the number is too large"),
                    );
                    continue;
                }
            },
            DeValue::Boolean(b) => if *b { "1" } else { "0" }.to_string(),
            other => {
                cx.error(
                    val.span(),
                    format!(
                        "{label}.{name}: expected a string, an integer or a boolean, found {}",
                        a_type(other)
                    ),
                );
                continue;
            }
        };
        out.insert(name.to_string(), value);
    }
    Some(out)
}

/// `ulimits`: a table of Docker's limit names, each `N` (soft and hard),
/// `[SOFT, HARD]` or `{ soft = SOFT, hard = HARD }`; `-1` or `"unlimited"`
/// for no limit.
fn ulimits(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<BTreeMap<Rlimit, Ulimit>> {
    const EXAMPLE: &str = "ulimits = { nofile = [65536, 65536], core = 0 }";
    let DeValue::Table(t) = v.get_ref() else {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a table of limits, e.g. {EXAMPLE}, found {}",
                a_type(v.get_ref())
            ),
        );
        return None;
    };
    let names = || Rlimit::ALL.iter().map(|r| r.as_str());
    let mut out = BTreeMap::new();
    for (k, val) in entries(t) {
        let key: &str = k.get_ref();
        let Some(rlimit) = Rlimit::from_word(key) else {
            let lower = key.to_ascii_lowercase();
            let bare = lower.trim_start_matches("rlimit_");
            let hint = match Rlimit::from_word(bare) {
                Some(r) => format!(" (write {:?})", r.as_str()),
                None if bare == "as" => " (the address space limit, as, is not supported, as in \
                                          Docker; limit memory with [resources] memory_max)"
                    .to_string(),
                None => did_you_mean(bare, names()),
            };
            cx.error(
                k.span(),
                format!(
                    "{label}: unknown limit {key:?}{hint}; expected one of: {}",
                    names().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        };
        let l = format!("{label}.{key}");
        let limit = match val.get_ref() {
            DeValue::Array(a) => {
                let items: Vec<&Value<'_>> = a.iter().collect();
                let [soft, hard] = items.as_slice() else {
                    cx.error(
                        val.span(),
                        format!(
                            "{l}: expected [SOFT, HARD], two values, found {}; e.g. {EXAMPLE}",
                            items.len()
                        ),
                    );
                    continue;
                };
                let (Some(soft), Some(hard)) = (limit(cx, &l, soft), limit(cx, &l, hard)) else {
                    continue;
                };
                Ulimit { soft, hard }
            }
            DeValue::Table(t) => {
                // Each: None when absent, Some(None) when bad.
                let mut soft = None;
                let mut hard = None;
                let mut ok = true;
                for (k, v) in entries(t) {
                    match k.get_ref().as_ref() {
                        "soft" => soft = Some(limit(cx, &l, v)),
                        "hard" => hard = Some(limit(cx, &l, v)),
                        other => {
                            ok = false;
                            cx.error(
                                k.span(),
                                format!("{l}: unknown key {other:?}; expected soft and hard"),
                            );
                        }
                    }
                }
                if soft.is_none() || hard.is_none() {
                    cx.error(
                        val.span(),
                        format!(
                            "{l}: give both soft and hard, e.g. {{ soft = 1024, hard = 65536 }}"
                        ),
                    );
                    continue;
                }
                let (Some(Some(soft)), Some(Some(hard)), true) = (soft, hard, ok) else {
                    continue;
                };
                Ulimit { soft, hard }
            }
            _ => match limit(cx, &l, val) {
                Some(n) => Ulimit::both(n),
                None => continue,
            },
        };
        if limit.soft > limit.hard {
            cx.error(
                val.span(),
                format!(
                    "{l}: the soft limit {} is above the hard limit {}; the soft limit is at \
                     most the hard one",
                    show_limit(limit.soft),
                    show_limit(limit.hard)
                ),
            );
            continue;
        }
        out.insert(rlimit, limit);
    }
    Some(out)
}

fn show_limit(n: u64) -> String {
    if n == Ulimit::UNLIMITED {
        Ulimit::UNLIMITED_WORD.into()
    } else {
        n.to_string()
    }
}

/// One limit value: an integer >= 0, or `-1` or `"unlimited"`.
fn limit(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<u64> {
    let bad = |cx: &mut Cx<'_>, found: String| {
        cx.error(
            v.span(),
            format!(
                "{label}: expected a number, or -1 or \"{}\" for no limit, found {found}",
                Ulimit::UNLIMITED_WORD
            ),
        );
        None
    };
    match v.get_ref() {
        DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(-1) => Some(Ulimit::UNLIMITED),
            Ok(n) => match u64::try_from(n) {
                Ok(n) if n != Ulimit::UNLIMITED => Some(n),
                _ => bad(cx, cx.source(v.span()).to_string()),
            },
            Err(_) => bad(cx, cx.source(v.span()).to_string()),
        },
        DeValue::String(s) if s.as_ref() == Ulimit::UNLIMITED_WORD => Some(Ulimit::UNLIMITED),
        DeValue::String(s) => {
            let found = format!("{:?}", s.as_ref());
            bad(cx, found)
        }
        other => bad(cx, a_type(other)),
    }
}
