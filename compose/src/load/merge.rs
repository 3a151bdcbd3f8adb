//! Merging one compose tree over another, as compose-go's `override`
//! package does (for `-f` files and for `extends`): mappings merge key by
//! key, sequences append, scalars are replaced, with these exceptions:
//!
//! - `command`, `entrypoint`, `healthcheck.test`, `ulimits.NAME`: replaced;
//! - `environment`, `labels`, `annotations`, `sysctls`, `build.args`,
//!   `build.labels`, `build.additional_contexts`, `deploy.labels`, and the
//!   `labels` of top-level networks and volumes: both sides normalized to a
//!   mapping (`KEY=VALUE` → `KEY: VALUE`, a bare `KEY` → `KEY: null`), then
//!   merged key by key, the later value winning;
//! - `depends_on`: a list becomes a mapping of `{condition: service_started,
//!   required: true}`, then merged; `networks` (and `models`): a list becomes
//!   a mapping of nulls, then merged;
//! - `build`: a string becomes `{context: STRING}`, then merged;
//! - `dns`, `dns_opt`, `dns_search`, `env_file`, `label_file`, `tmpfs`: a
//!   single string becomes a list, then appended;
//! - `extra_hosts`: both sides to a list (a mapping's entries as sorted
//!   `HOST=IP`), the later side's entries that are new appended;
//! - `logging`: merged when both name the same driver (or either none),
//!   else replaced;
//! - a value tagged `!reset` removes the key, one tagged `!override`
//!   replaces it whole.
//!
//! After each file, lists whose entries compose keeps unique are made so
//! (a later entry takes an earlier one's place): `ports` (by spelling),
//! `volumes` (by target), `secrets` and `configs` (by target), `devices`,
//! `expose`, `env_file` (by path), `cap_add`, `cap_drop`, `dns*`, `tmpfs`,
//! `profiles`, `links`, and the list forms of `environment`, `labels`,
//! `sysctls`, `annotations` (by key).
//!
//! Positions: a replaced value is the later file's, with its own position;
//! a merged mapping or appended list keeps the position of the first one.

use super::yaml::{Tag, V, Y};
use super::LoadError;

fn matches(path: &[String], pattern: &str) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    pat.len() == path.len() && pat.iter().zip(path).all(|(p, s)| *p == "*" || p == s)
}

fn any_match(path: &[String], patterns: &[&str]) -> bool {
    patterns.iter().any(|p| matches(path, p))
}

const KEY_VALUE_MAPS: &[&str] = &[
    "networks.*.labels",
    "volumes.*.labels",
    "services.*.annotations",
    "services.*.build.args",
    "services.*.build.additional_contexts",
    "services.*.build.labels",
    "services.*.deploy.labels",
    "services.*.environment",
    "services.*.labels",
    "services.*.sysctls",
];

const REPLACED: &[&str] = &[
    "services.*.command",
    "services.*.entrypoint",
    "services.*.healthcheck.test",
    "services.*.ulimits.*",
];

const TO_SEQUENCE: &[&str] = &[
    "services.*.dns",
    "services.*.dns_opt",
    "services.*.dns_search",
    "services.*.env_file",
    "services.*.label_file",
    "services.*.tmpfs",
];

/// Merges `over` onto `base`; `path` names where they are (`services`,
/// `web`, `environment`, ...).
pub fn merge(base: Y, over: Y, path: &mut Vec<String>) -> Result<Y, LoadError> {
    if over.tag == Tag::Override {
        return Ok(over);
    }
    if any_match(path, REPLACED) {
        return Ok(over);
    }
    if any_match(path, KEY_VALUE_MAPS) {
        let base = to_key_value_map(base);
        let over = to_key_value_map(over);
        return merge_maps(base, over, path);
    }
    if matches(path, "services.*.depends_on") {
        return merge_maps(depends_on_map(base), depends_on_map(over), path);
    }
    if any_match(path, &["services.*.networks", "services.*.models"]) {
        return merge_maps(list_to_null_map(base), list_to_null_map(over), path);
    }
    if matches(path, "services.*.build") {
        return merge_maps(build_map(base), build_map(over), path);
    }
    if any_match(path, TO_SEQUENCE) {
        let mut base = to_sequence(base);
        let over = to_sequence(over);
        if let (V::Seq(a), V::Seq(b)) = (&mut base.v, over.v) {
            a.extend(b);
        }
        return Ok(base);
    }
    if any_match(
        path,
        &["services.*.extra_hosts", "services.*.build.extra_hosts"],
    ) {
        let mut base = to_sequence(base);
        let over = to_sequence(over);
        if let (V::Seq(a), V::Seq(b)) = (&mut base.v, over.v) {
            for item in b {
                if !a
                    .iter()
                    .any(|x| x.scalar().is_some() && x.scalar() == item.scalar())
                {
                    a.push(item);
                }
            }
        }
        return Ok(base);
    }
    if matches(path, "services.*.logging") {
        let (bd, od) = (
            base.get("driver").and_then(Y::scalar),
            over.get("driver").and_then(Y::scalar),
        );
        if bd.is_none() || od.is_none() || bd == od {
            return merge_maps(base, over, path);
        }
        return Ok(over);
    }
    if matches!(over.v, V::Null) {
        return Ok(base);
    }
    match (&base.v, &over.v) {
        (V::Map(_), V::Map(_)) => merge_maps(base, over, path),
        (V::Seq(_), V::Seq(_)) => {
            let mut base = base;
            if let (V::Seq(a), V::Seq(b)) = (&mut base.v, over.v) {
                a.extend(b);
            }
            Ok(base)
        }
        (V::Map(_), _) | (V::Seq(_), _) => Err(LoadError::at(
            over.pos.clone(),
            format!(
                "cannot override {}: a {} cannot replace a {}",
                path.join("."),
                kind(&over),
                kind(&base)
            ),
        )),
        _ => Ok(over),
    }
}

fn kind(y: &Y) -> &'static str {
    match y.v {
        V::Map(_) => "mapping",
        V::Seq(_) => "list",
        _ => "scalar",
    }
}

/// Merges two mappings key by key (a non-mapping on either side: the later
/// side wins).
pub fn merge_maps(base: Y, over: Y, path: &mut Vec<String>) -> Result<Y, LoadError> {
    let (mut base, over) = match (base, over) {
        (b @ Y { v: V::Map(_), .. }, o @ Y { v: V::Map(_), .. }) => (b, o),
        (b, Y { v: V::Null, .. }) => return Ok(b),
        (_, o) => return Ok(o),
    };
    let V::Map(entries) = over.v else {
        unreachable!()
    };
    for (k, v) in entries {
        if v.tag == Tag::Reset {
            base.remove(&k);
            continue;
        }
        let existing = base.remove_keep_slot(&k);
        match existing {
            Some((slot, old)) => {
                path.push(k.clone());
                let merged = merge(old, v, path);
                path.pop();
                base.put_slot(slot, k, merged?);
            }
            None => base.set(&k, v),
        }
    }
    Ok(base)
}

impl Y {
    /// Takes the value of `key` out, keeping its place (a `Null` stands in).
    fn remove_keep_slot(&mut self, key: &str) -> Option<(usize, Y)> {
        let V::Map(m) = &mut self.v else { return None };
        let i = m.iter().position(|(k, _)| k == key)?;
        let placeholder = Y::new(V::Null, m[i].1.pos.clone());
        Some((i, std::mem::replace(&mut m[i].1, placeholder)))
    }

    fn put_slot(&mut self, slot: usize, key: String, value: Y) {
        if let V::Map(m) = &mut self.v {
            m[slot] = (key, value);
        }
    }
}

/// `[A=1, B]` → `{A: "1", B: null}`; a mapping stays; null → empty mapping.
pub fn to_key_value_map(y: Y) -> Y {
    match y.v {
        V::Seq(items) => {
            let mut entries: Vec<(String, Y)> = Vec::new();
            for item in items {
                let Some(text) = item.scalar() else { continue };
                let (k, v) = match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), V::Str(v.to_string())),
                    None => (text, V::Null),
                };
                let value = Y::new(v, item.pos);
                match entries.iter_mut().find(|(e, _)| *e == k) {
                    Some((_, slot)) => *slot = value,
                    None => entries.push((k, value)),
                }
            }
            Y {
                v: V::Map(entries),
                pos: y.pos,
                tag: y.tag,
            }
        }
        V::Null => Y {
            v: V::Map(Vec::new()),
            pos: y.pos,
            tag: y.tag,
        },
        _ => y,
    }
}

/// `depends_on: [db]` → `{db: {condition: service_started, required: true}}`.
pub fn depends_on_map(y: Y) -> Y {
    match y.v {
        V::Seq(items) => {
            let entries = items
                .into_iter()
                .filter_map(|item| {
                    let name = item.scalar()?;
                    let pos = item.pos;
                    let long = Y::new(
                        V::Map(vec![
                            (
                                "condition".to_string(),
                                Y::new(V::Str("service_started".into()), pos.clone()),
                            ),
                            ("required".to_string(), Y::new(V::Bool(true), pos.clone())),
                        ]),
                        pos,
                    );
                    Some((name, long))
                })
                .collect();
            Y {
                v: V::Map(entries),
                pos: y.pos,
                tag: y.tag,
            }
        }
        V::Null => Y {
            v: V::Map(Vec::new()),
            pos: y.pos,
            tag: y.tag,
        },
        _ => y,
    }
}

/// `networks: [front]` → `{front: null}`.
pub fn list_to_null_map(y: Y) -> Y {
    match y.v {
        V::Seq(items) => {
            let entries = items
                .into_iter()
                .filter_map(|item| Some((item.scalar()?, Y::new(V::Null, item.pos))))
                .collect();
            Y {
                v: V::Map(entries),
                pos: y.pos,
                tag: y.tag,
            }
        }
        V::Null => Y {
            v: V::Map(Vec::new()),
            pos: y.pos,
            tag: y.tag,
        },
        _ => y,
    }
}

fn build_map(y: Y) -> Y {
    match y.v {
        V::Str(s) => {
            let ctx = Y::new(V::Str(s), y.pos.clone());
            Y {
                v: V::Map(vec![("context".into(), ctx)]),
                pos: y.pos,
                tag: y.tag,
            }
        }
        _ => y,
    }
}

/// A string → a one-item list; a mapping → sorted `KEY=VALUE` items (as
/// compose-go's `convertIntoSequence`); null → empty list.
fn to_sequence(y: Y) -> Y {
    let pos = y.pos.clone();
    let items = match y.v {
        V::Seq(items) => items,
        V::Null => Vec::new(),
        V::Map(entries) => {
            let mut items = Vec::new();
            for (k, v) in entries {
                match v.v {
                    V::Null => items.push(Y::new(V::Str(k), v.pos)),
                    V::Seq(vals) => {
                        for val in vals {
                            let text = format!("{k}={}", val.scalar().unwrap_or_default());
                            items.push(Y::new(V::Str(text), val.pos));
                        }
                    }
                    _ => {
                        let text = format!("{k}={}", v.scalar().unwrap_or_default());
                        items.push(Y::new(V::Str(text), v.pos));
                    }
                }
            }
            items.sort_by_key(Y::scalar);
            items
        }
        v => vec![Y::new(v, pos.clone())],
    };
    Y {
        v: V::Seq(items),
        pos,
        tag: y.tag,
    }
}

/// compose-go's `EnforceUnicity` over every service of a project tree.
pub fn enforce_unicity(root: &mut Y) {
    let Some(services) = root.get_mut("services") else {
        return;
    };
    let V::Map(services) = &mut services.v else {
        return;
    };
    for (_, service) in services.iter_mut() {
        let V::Map(keys) = &mut service.v else {
            continue;
        };
        for (key, value) in keys.iter_mut() {
            let indexer: Option<fn(&Y) -> Option<String>> = match key.as_str() {
                "cap_add" | "cap_drop" | "dns" | "dns_opt" | "dns_search" | "environment"
                | "labels" | "links" | "profiles" | "sysctls" | "tmpfs" | "annotations" => {
                    Some(key_value_index)
                }
                "devices" => Some(device_index),
                "configs" => Some(config_index),
                "secrets" => Some(secret_index),
                "env_file" | "label_file" => Some(env_file_index),
                "expose" => Some(|y: &Y| y.scalar()),
                "ports" => Some(port_index),
                "volumes" => Some(volume_index),
                _ => None,
            };
            if let Some(index) = indexer {
                unique(value, index);
            }
            match key.as_str() {
                "build" | "deploy" => {
                    for (sub, v) in value_entries_mut(value) {
                        if ["args", "additional_contexts", "tags", "labels"].contains(&sub.as_str())
                        {
                            unique(v, key_value_index);
                        }
                    }
                }
                "networks" => {
                    for (_, net) in value_entries_mut(value) {
                        for (sub, v) in value_entries_mut(net) {
                            if sub == "aliases" || sub == "link_local_ips" {
                                unique(v, key_value_index);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn value_entries_mut(y: &mut Y) -> impl Iterator<Item = &mut (String, Y)> {
    match &mut y.v {
        V::Map(m) => m.iter_mut(),
        _ => [].iter_mut(),
    }
}

fn unique(y: &mut Y, index: fn(&Y) -> Option<String>) {
    let V::Seq(items) = &mut y.v else { return };
    let mut out: Vec<Y> = Vec::with_capacity(items.len());
    let mut keys: Vec<Option<String>> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        let key = index(&item);
        match key
            .as_ref()
            .and_then(|k| keys.iter().position(|e| e.as_ref() == Some(k)))
        {
            Some(i) => out[i] = item,
            None => {
                keys.push(key);
                out.push(item);
            }
        }
    }
    *items = out;
}

fn key_value_index(y: &Y) -> Option<String> {
    let s = y.as_str()?;
    Some(s.split_once('=').map_or(s, |(k, _)| k).to_string())
}

fn device_index(y: &Y) -> Option<String> {
    match &y.v {
        V::Map(_) => y.get("target").and_then(Y::scalar),
        V::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(parts.get(1).unwrap_or(&parts[0]).to_string())
        }
        _ => None,
    }
}

fn mount_index(y: &Y, default_dir: &str) -> Option<String> {
    match &y.v {
        V::Str(s) => Some(format!("{default_dir}/{s}")),
        V::Map(_) => match y.get("target").and_then(Y::scalar) {
            Some(t) => Some(t),
            None => Some(format!(
                "{default_dir}/{}",
                y.get("source").and_then(Y::scalar).unwrap_or_default()
            )),
        },
        _ => None,
    }
}

fn secret_index(y: &Y) -> Option<String> {
    mount_index(y, "/run/secrets")
}

fn config_index(y: &Y) -> Option<String> {
    mount_index(y, "")
}

fn env_file_index(y: &Y) -> Option<String> {
    match &y.v {
        V::Str(s) => Some(s.clone()),
        V::Map(_) => y.get("path").and_then(Y::scalar),
        _ => None,
    }
}

fn port_index(y: &Y) -> Option<String> {
    match &y.v {
        V::Map(_) => {
            let get = |k: &str| y.get(k).and_then(Y::scalar);
            Some(format!(
                "{}:{}:{}/{}",
                get("host_ip").unwrap_or_else(|| "0.0.0.0".into()),
                get("published").unwrap_or_default(),
                get("target")?,
                get("protocol").unwrap_or_else(|| "tcp".into())
            ))
        }
        _ => y.scalar(),
    }
}

/// The target of a volume: a long form's `target`, a short form's second
/// field (its only one for an anonymous volume).
pub fn volume_index(y: &Y) -> Option<String> {
    match &y.v {
        V::Map(_) => y.get("target").and_then(Y::scalar),
        V::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(parts.get(1).unwrap_or(&parts[0]).to_string())
        }
        _ => None,
    }
}

/// Removes the keys tagged `!reset` that nothing was merged under.
pub fn strip_resets(y: &mut Y) {
    match &mut y.v {
        V::Map(m) => {
            m.retain(|(_, v)| v.tag != Tag::Reset);
            for (_, v) in m.iter_mut() {
                strip_resets(v);
            }
        }
        V::Seq(items) => {
            items.retain(|v| v.tag != Tag::Reset);
            items.iter_mut().for_each(strip_resets);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn doc(name: &str, text: &str) -> Y {
        super::super::yaml::parse(text, &Arc::new(PathBuf::from(name)))
            .unwrap()
            .remove(0)
    }

    fn merged(a: &str, b: &str) -> Y {
        let mut root = merge(doc("a.yaml", a), doc("b.yaml", b), &mut Vec::new()).unwrap();
        enforce_unicity(&mut root);
        strip_resets(&mut root);
        root
    }

    fn svc(root: &Y) -> &Y {
        root.get("services").unwrap().get("s").unwrap()
    }

    fn strings(y: &Y) -> Vec<String> {
        match &y.v {
            V::Seq(items) => items.iter().filter_map(Y::scalar).collect(),
            V::Map(m) => m
                .iter()
                .map(|(k, v)| match v.scalar() {
                    Some(s) => format!("{k}={s}"),
                    None => k.clone(),
                })
                .collect(),
            _ => vec![],
        }
    }

    // Cases after compose-go's override/merge_*_test.go.
    #[test]
    fn command_is_replaced_ports_appended_environment_merged() {
        let root = merged(
            "services:\n  s:\n    image: a\n    command: [a, b]\n    ports: ['80:80', '443:443']\n    environment: [A=1, B=2]\n",
            "services:\n  s:\n    image: b\n    command: c\n    ports: ['8080:80', '80:80']\n    environment: {B: 3, C: 4}\n",
        );
        let s = svc(&root);
        assert_eq!(s.get("image").unwrap().scalar().unwrap(), "b");
        assert_eq!(s.get("image").unwrap().pos.file.to_str(), Some("b.yaml"));
        assert_eq!(s.get("command").unwrap().scalar().unwrap(), "c");
        assert_eq!(
            strings(s.get("ports").unwrap()),
            ["80:80", "443:443", "8080:80"]
        );
        assert_eq!(
            strings(s.get("environment").unwrap()),
            ["A=1", "B=3", "C=4"]
        );
        assert_eq!(
            s.get("environment")
                .unwrap()
                .get("A")
                .unwrap()
                .pos
                .file
                .to_str(),
            Some("a.yaml")
        );
    }

    #[test]
    fn depends_on_networks_and_volumes() {
        let root = merged(
            "services:\n  s:\n    depends_on: [db]\n    networks: [front]\n    volumes: ['./a:/data', 'v:/cache']\n",
            "services:\n  s:\n    depends_on: {cache: {condition: service_healthy}}\n    networks: {back: {aliases: [x]}}\n    volumes: ['./b:/data']\n",
        );
        let s = svc(&root);
        let deps = s.get("depends_on").unwrap();
        assert_eq!(
            deps.get("db")
                .unwrap()
                .get("condition")
                .unwrap()
                .scalar()
                .unwrap(),
            "service_started"
        );
        assert_eq!(
            deps.get("cache")
                .unwrap()
                .get("condition")
                .unwrap()
                .scalar()
                .unwrap(),
            "service_healthy"
        );
        assert_eq!(strings(s.get("networks").unwrap()), ["front", "back"]);
        assert_eq!(
            strings(s.get("volumes").unwrap()),
            ["./b:/data", "v:/cache"]
        );
    }

    #[test]
    fn extra_hosts_dns_and_build() {
        let root = merged(
            "services:\n  s:\n    extra_hosts: ['a:1.1.1.1']\n    dns: 8.8.8.8\n    build: ./app\n",
            "services:\n  s:\n    extra_hosts: ['a:1.1.1.1', 'b:2.2.2.2']\n    dns: [1.1.1.1, 8.8.8.8]\n    build: {dockerfile: D}\n",
        );
        let s = svc(&root);
        assert_eq!(
            strings(s.get("extra_hosts").unwrap()),
            ["a:1.1.1.1", "b:2.2.2.2"]
        );
        assert_eq!(strings(s.get("dns").unwrap()), ["8.8.8.8", "1.1.1.1"]);
        assert_eq!(
            strings(s.get("build").unwrap()),
            ["context=./app", "dockerfile=D"]
        );
    }

    #[test]
    fn reset_and_override_tags() {
        let root = merged(
            "services:\n  s:\n    ports: ['80:80']\n    labels: {a: 1}\n",
            "services:\n  s:\n    ports: !reset []\n    labels: !override {b: 2}\n",
        );
        let s = svc(&root);
        assert!(s.get("ports").is_none());
        assert_eq!(strings(s.get("labels").unwrap()), ["b=2"]);
    }

    #[test]
    fn logging_options_merge_only_for_the_same_driver() {
        let root = merged(
            "services:\n  s:\n    logging: {driver: json-file, options: {max-size: 1m}}\n",
            "services:\n  s:\n    logging: {driver: syslog, options: {tag: x}}\n",
        );
        assert_eq!(
            strings(svc(&root).get("logging").unwrap().get("options").unwrap()),
            ["tag=x"]
        );
        let root = merged(
            "services:\n  s:\n    logging: {driver: json-file, options: {max-size: 1m}}\n",
            "services:\n  s:\n    logging: {options: {max-file: 3}}\n",
        );
        assert_eq!(
            strings(svc(&root).get("logging").unwrap().get("options").unwrap()),
            ["max-size=1m", "max-file=3"]
        );
    }

    #[test]
    fn a_list_cannot_replace_a_mapping() {
        let e = merge(
            doc("a.yaml", "services:\n  s:\n    deploy: {replicas: 1}\n"),
            doc("b.yaml", "services:\n  s:\n    deploy: [x]\n"),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("b.yaml:3:5: cannot override services.s.deploy"),
            "{e}"
        );
    }
}
