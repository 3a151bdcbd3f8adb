//! One compose service to one unit file: each key's conversion, report or
//! comment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jarvis_unit::envfile;
use toml_edit::{Array, InlineTable, Value};

use super::out::{strings, Doc, Section};
use super::syntax::{self, Port};
use super::{Compose, Problem, HEADER};
use crate::node::{Node, Value as Y};

/// Top-level definitions already reported, so that one used by several
/// services is reported once.
#[derive(Debug, Default)]
pub(crate) struct TopLevel {
    reported: BTreeSet<(String, String)>,
}

/// Docker's health-check defaults, written out because jarvis's differ.
const HEALTH_INTERVAL: &str = "30s";
const HEALTH_TIMEOUT: &str = "30s";
const HEALTH_RETRIES: i64 = 3;
const HEALTH_START_PERIOD: &str = "0s";
const HEALTH_START_INTERVAL: &str = "5s";

/// Bind sources that are the Docker daemon's API socket.
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

struct Cx<'a> {
    compose: &'a Compose<'a>,
    names: &'a BTreeMap<String, String>,
    top: &'a mut TopLevel,
    service: &'a str,
    unit: &'a str,
    node: &'a Node,
    doc: Doc,
    problems: &'a mut Vec<Problem>,
    create_dirs: &'a mut BTreeSet<PathBuf>,
    /// `[container] volumes` lines, in order.
    volumes: Vec<String>,
    /// `cap_add` as written (upper case, no `CAP_`).
    cap_add: Vec<String>,
    aliases: Vec<String>,
    has_health: bool,
    restart_set: bool,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn convert_service(
    compose: &Compose,
    names: &BTreeMap<String, String>,
    top: &mut TopLevel,
    service: &str,
    unit: &str,
    node: &Node,
    problems: &mut Vec<Problem>,
    create_dirs: &mut BTreeSet<PathBuf>,
) -> Option<String> {
    let mut cx = Cx {
        compose,
        names,
        top,
        service,
        unit,
        node,
        doc: Doc::default(),
        problems,
        create_dirs,
        volumes: Vec::new(),
        cap_add: Vec::new(),
        aliases: Vec::new(),
        has_health: false,
        restart_set: false,
    };
    cx.doc.header = vec![
        format!(
            "{} from {} (project {:?}, service {:?}).",
            &HEADER[2..],
            node.pos.file.display(),
            compose.name,
            service
        ),
        "A later import overwrites this file: remove this first line to keep your edits.".into(),
    ];
    cx.doc.top.set(
        "description",
        format!("compose service {service} of project {}", compose.name),
    );
    if unit != service {
        cx.doc.top.comment(
            "description",
            format!(
                "The unit is named {unit:?}: jarvis's unit names are lower-case letters, digits \
                 and '-', and the service is {service:?}."
            ),
        );
    }
    let Some(image) = node.get("image").and_then(Node::scalar) else {
        match node.get("build") {
            Some(b) => cx.report(
                "build",
                b,
                "the service has no image and jarvis cannot build one: build it (docker \
                 build, buildah) and set image, or import the image with `jarvisctl image \
                 import`; no unit was written",
            ),
            None => cx.report(
                "image",
                node,
                "the service has no image; no unit was written",
            ),
        }
        return None;
    };
    cx.c().set("image", image);
    cx.network();
    for (key, value) in node.entries() {
        cx.key(key, value);
    }
    cx.finish();
    Some(cx.doc.render())
}

impl Cx<'_> {
    fn c(&mut self) -> &mut Section {
        self.doc.section("container")
    }

    fn report(&mut self, key: &str, node: &Node, message: impl Into<String>) {
        self.problems.push(Problem {
            service: Some(self.service.to_string()),
            key: key.to_string(),
            pos: Some(node.pos.clone()),
            message: message.into(),
        });
    }

    /// A problem with a top-level definition, once for all services.
    fn report_top(&mut self, kind: &str, name: &str, key: &str, node: &Node, message: String) {
        let k = format!("{kind}.{name}.{key}");
        if self.top.reported.insert((k.clone(), message.clone())) {
            self.problems.push(Problem {
                service: None,
                key: k,
                pos: Some(node.pos.clone()),
                message,
            });
        }
    }

    /// Every key of the service, in file order.
    fn key(&mut self, key: &str, v: &Node) {
        match key {
            // Handled before the loop, or by the loader.
            "image" | "network_mode" | "networks" | "profiles" | "extends" => {}
            k if k.starts_with("x-") => {}
            "build" => self.report(
                "build",
                v,
                "ignored: jarvis runs the image and cannot build it; build and push (or \
                 `jarvisctl image import`) it under the image's name",
            ),
            "container_name" => self.container_name(v),
            "command" | "entrypoint" => self.argv(key, v),
            "environment" => self.environment(v),
            "env_file" => self.env_file(v),
            "ports" => self.ports(v),
            "expose" => {
                let list: Vec<String> = v.items().iter().filter_map(Node::scalar).collect();
                self.c().comment(
                    "image",
                    format!(
                        "expose {}: nothing to write, containers on a network reach every port \
                         of one another.",
                        list.join(", ")
                    ),
                );
            }
            "volumes" => self.volumes(v),
            "tmpfs" => self.tmpfs(v),
            "hostname" => self.string_key("hostname", v),
            "extra_hosts" => self.extra_hosts(v),
            "dns" => {
                let list = scalars(v);
                self.c().set("dns", strings(list));
            }
            "depends_on" => self.depends_on(v),
            "healthcheck" => self.healthcheck(v),
            "restart" => self.restart(v),
            "user" | "working_dir" => self.string_key(key, v),
            "read_only" | "init" => {
                if let Some(b) = boolean(v) {
                    self.c().set(key, b);
                }
            }
            "privileged" => {
                if boolean(v) == Some(true) {
                    self.c().set("privileged", true);
                }
            }
            "cap_add" | "cap_drop" => {} // with privileged, in finish()
            "security_opt" => self.security_opt(v),
            "devices" => self.devices(v),
            "group_add" => {
                let list = scalars(v);
                self.c().set("group_add", strings(list));
            }
            "shm_size" => match v.scalar().map(|s| syntax::parse_size(&s)) {
                Some(Ok(n)) => {
                    self.c().set("shm_size", syntax::show_size(n));
                }
                _ => self.report("shm_size", v, "not a size"),
            },
            "sysctls" => self.sysctls(v),
            "ulimits" => self.ulimits(v),
            "stop_signal" => self.string_in("stop", "signal", v),
            "stop_grace_period" => self.duration_in("stop", "timeout", "stop_grace_period", v),
            "deploy" => self.deploy(v),
            "mem_limit" => self.memory("mem_limit", v),
            "cpus" => self.cpus("cpus", v),
            "pids_limit" => match v.value {
                Y::Int(n) if n > 0 => self.doc.section("resources").set("pids_max", n),
                Y::Int(n) if n <= 0 => {} // unlimited, jarvis's default too
                _ => self.report("pids_limit", v, "not a number"),
            },
            "cpuset" => self.string_in("resources", "cpuset", v),
            "cpu_shares" => self.cpu_shares(v),
            "runtime" => self.runtime(v),
            "gpus" => self.gpus(v),
            "logging" => self.logging(v),
            "secrets" => self.secrets(v),
            "configs" => self.configs(v),
            "labels" => self.labels(v),
            "links" => self.links(v),
            "tty" | "stdin_open" => {
                if boolean(v) == Some(true) {
                    self.c().comment(
                        "image",
                        format!(
                            "{key}: true dropped: jarvis gives a service no terminal or stdin; \
                             its output goes to `jarvisctl logs`."
                        ),
                    );
                }
            }
            "attach" => {}
            "pull_policy" => self.pull_policy(v),
            "platform" => self.platform(v),
            "scale" => {
                if !matches!(v.value, Y::Int(1)) {
                    self.report("scale", v, "jarvis runs one instance of a unit");
                }
            }
            "device_cgroup_rules" => self.device_cgroup_rules(v),
            "dns_search" | "dns_opt" | "domainname" => self.report(
                key,
                v,
                "jarvis's name server answers unit names and forwards the rest: search \
                 domains, resolver options and a domain name cannot be set",
            ),
            "mem_reservation" | "memswap_limit" | "mem_swappiness" | "oom_score_adj"
            | "oom_kill_disable" | "cpu_count" | "cpu_percent" | "cpu_period" | "cpu_quota"
            | "cpu_rt_runtime" | "cpu_rt_period" | "blkio_config" | "storage_opt" => self.report(
                key,
                v,
                "jarvis's [resources] has memory_max, cpus, cpu_weight, pids_max and cpuset \
                 only",
            ),
            "userns_mode" | "pid" | "ipc" | "uts" | "cgroup" | "cgroup_parent" | "isolation" => {
                self.report(
                    key,
                    v,
                    "jarvis runs each container in namespaces and a cgroup of its own; this \
                     cannot be set",
                )
            }
            "mac_address" => self.report(key, v, "jarvis picks the container's address"),
            "volumes_from" => self.report(
                key,
                v,
                "write the other service's volumes into this one's volumes instead",
            ),
            "external_links" => self.report(key, v, "jarvis reaches only units it runs"),
            "use_api_socket" => self.report(key, v, "jarvis has no Docker API"),
            "post_start" | "pre_stop" => self.report(key, v, "jarvis has no lifecycle hooks"),
            _ => self.report(
                key,
                v,
                "not a compose key the importer knows; not converted",
            ),
        }
    }

    fn string_key(&mut self, key: &str, v: &Node) {
        match v.scalar() {
            Some(s) => self.c().set(key, s),
            None => self.report(key, v, "expected a string"),
        }
    }

    fn string_in(&mut self, section: &str, key: &str, v: &Node) {
        match v.scalar() {
            Some(s) => self.doc.section(section).set(key, s),
            None => self.report(key, v, "expected a string"),
        }
    }

    fn duration_in(&mut self, section: &str, key: &str, compose_key: &str, v: &Node) {
        match v.scalar().map(|s| syntax::parse_duration(&s)) {
            Some(Ok(d)) => self.doc.section(section).set(key, syntax::show_duration(d)),
            Some(Err(e)) => self.report(compose_key, v, e),
            None => self.report(compose_key, v, "expected a duration such as 10s"),
        }
    }

    fn container_name(&mut self, v: &Node) {
        let Some(name) = v.scalar() else { return };
        if name == self.service || name == self.unit {
            return;
        }
        let mode = self.node.get("network_mode").and_then(Node::scalar);
        if mode.is_some_and(|m| m != "bridge") {
            // No name on a network under compose either: only docker
            // commands use it.
            self.c().comment(
                "image",
                format!(
                    "container_name {name:?}: a name for docker commands only (a container \
                     without a network of its own has no name on one); jarvisctl takes the \
                     unit's name."
                ),
            );
            return;
        }
        if jarvis_unit::is_dns_label(&name) {
            self.aliases.push(name.clone());
            self.c().comment(
                "image",
                format!(
                    "container_name {name:?}: jarvis names the container after the unit; \
                     {name:?} is kept as an alias so that other units still reach it by that name."
                ),
            );
        } else {
            self.report(
                "container_name",
                v,
                format!(
                    "{name:?} is not a DNS name (letters, digits, '-'), so other units cannot \
                     reach the service by it: they reach it as {:?}",
                    self.unit
                ),
            );
        }
    }

    fn argv(&mut self, key: &str, v: &Node) {
        let argv = match &v.value {
            Y::Null => return,
            Y::Seq(items) => items.iter().filter_map(Node::scalar).collect::<Vec<_>>(),
            _ => match v.scalar().map(|s| shell_words::split(&s)) {
                Some(Ok(words)) => {
                    self.doc.section("container").set(key, strings(&words));
                    self.c().comment(
                        key,
                        format!("{key} was a string; split into words as compose splits it."),
                    );
                    return;
                }
                _ => {
                    self.report(key, v, "cannot be split into words (unbalanced quotes)");
                    return;
                }
            },
        };
        if argv.is_empty() {
            if key == "entrypoint" {
                self.report(
                    key,
                    v,
                    "an empty entrypoint (clearing the image's) cannot be written: jarvis's \
                     entrypoint needs a program; write the program to run as entrypoint",
                );
            }
            return;
        }
        self.c().set(key, strings(&argv));
    }

    fn environment(&mut self, v: &Node) {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut one = |cx: &mut Self, k: String, val: Option<String>, n: &Node| match val {
            Some(val) => pairs.push((k, val)),
            None => match cx.compose.environment.get(&k) {
                Some(val) => pairs.push((k, val.clone())),
                None => cx.report(
                    &format!("environment.{k}"),
                    n,
                    format!(
                        "{k} has no value and is not set in the environment the import ran \
                         in: compose leaves it unset; set it and import again, or write it in [env]"
                    ),
                ),
            },
        };
        match &v.value {
            Y::Map(entries) => {
                for (k, n) in entries {
                    one(self, k.clone(), n.scalar(), n);
                }
            }
            Y::Seq(items) => {
                for n in items {
                    let Some(s) = n.scalar() else { continue };
                    match s.split_once('=') {
                        Some((k, val)) => one(self, k.to_string(), Some(val.to_string()), n),
                        None => one(self, s, None, n),
                    }
                }
            }
            _ => {}
        }
        let env = self.doc.section("env");
        for (k, val) in pairs {
            env.set(&k, val);
        }
    }

    /// A path from the tree: absolute as the loader leaves it, else against
    /// the project directory (`~` against HOME).
    fn abs(&self, p: &str) -> PathBuf {
        if let Some(rest) = p.strip_prefix("~/") {
            if let Some(home) = self.compose.environment.get("HOME") {
                return Path::new(home).join(rest);
            }
        }
        let joined = self.compose.dir.join(p);
        normalize(&joined)
    }

    fn env_file(&mut self, v: &Node) {
        let items: Vec<&Node> = match &v.value {
            Y::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut files = Vec::new();
        // The variables of the env files read so far, as compose reads them.
        let mut compose_vars = BTreeMap::new();
        for n in items {
            let (path, required) = match &n.value {
                Y::Map(_) => {
                    if let Some(f) = n.get("format") {
                        self.report(
                            "env_file.format",
                            f,
                            "jarvis reads env files as KEY=VALUE lines only",
                        );
                    }
                    (
                        n.get("path").and_then(Node::scalar),
                        n.get("required").and_then(boolean).unwrap_or(true),
                    )
                }
                _ => (n.scalar(), true),
            };
            let Some(path) = path else { continue };
            let abs = self.abs(&path);
            let shown = abs.display().to_string();
            if !required && !abs.exists() {
                self.doc.top.set("env_file", strings(&files));
                self.doc.top.comment(
                    "env_file",
                    format!(
                        "{shown} (required: false) is left out: it does not exist now, and \
                         jarvis fails a unit whose env_file is missing."
                    ),
                );
                continue;
            }
            if !required {
                self.doc.top.set("env_file", strings(&files));
                self.doc.top.comment(
                    "env_file",
                    format!(
                        "{shown} was required: false; jarvis fails the start if it goes missing."
                    ),
                );
            }
            if abs.exists() {
                self.env_file_contents(n, &abs, &mut compose_vars);
            }
            files.push(shown);
        }
        if files.is_empty() && self.doc.top.get("env_file").is_none() {
            return;
        }
        self.doc.top.set("env_file", strings(&files));
        if files.is_empty() {
            self.doc.top.remove("env_file");
        }
    }

    /// `device_cgroup_rules` as they are (Docker's grammar is the unit's),
    /// each once; left out with `privileged` (see [`Cx::finish`]).
    fn device_cgroup_rules(&mut self, v: &Node) {
        let items: Vec<&Node> = match &v.value {
            Y::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut rules: Vec<String> = Vec::new();
        for n in items {
            let Some(text) = n.scalar() else {
                self.report("device_cgroup_rules", n, "not a rule");
                continue;
            };
            match text.parse::<jarvis_unit::DeviceCgroupRule>() {
                Ok(rule) => {
                    let rule = rule.to_string();
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
                Err(e) => self.report(
                    "device_cgroup_rules",
                    n,
                    format!("invalid rule {text:?}: {e}"),
                ),
            }
        }
        let privileged = self.node.get("privileged").and_then(boolean) == Some(true);
        if !rules.is_empty() && !privileged {
            self.c().set("device_cgroup_rules", strings(&rules));
        }
    }

    /// Compose interpolates an env file's values (from the env files above,
    /// then the project's environment, then the lines above) and gives a
    /// name alone the environment's value; jarvis reads a unit's env files
    /// with the same grammar but takes values as written and sets nothing
    /// for a name alone. Reports, by name and line and never by value,
    /// what the two readings of the file at `path` give differently, and
    /// what jarvis would refuse. `compose_vars` holds compose's reading of
    /// the files above and gets this one's.
    fn env_file_contents(
        &mut self,
        n: &Node,
        path: &Path,
        compose_vars: &mut BTreeMap<String, String>,
    ) {
        /// A unit's env file is at most this large (jarvis-runtime's limit).
        const MAX_ENV_FILE: u64 = 1 << 20;
        let shown = path.display();
        let text = match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_ENV_FILE => {
                self.report(
                    "env_file",
                    n,
                    format!("{shown}: jarvis reads env files of at most {MAX_ENV_FILE} bytes"),
                );
                return;
            }
            _ => match std::fs::read(path).map(String::from_utf8) {
                Ok(Ok(text)) => text,
                Ok(Err(_)) => {
                    self.report("env_file", n, format!("{shown}: not UTF-8 text"));
                    return;
                }
                Err(e) => {
                    self.report("env_file", n, format!("{shown}: {e}"));
                    return;
                }
            },
        };
        let jarvis = match envfile::parse(&text) {
            Ok(entries) => entries,
            Err(e) => {
                self.report(
                    "env_file",
                    n,
                    format!("{shown}:{e}; jarvis cannot read this env file"),
                );
                return;
            }
        };
        let earlier = compose_vars.clone();
        let environment = self.compose.environment;
        let lookup = |k: &str| {
            earlier
                .get(k)
                .cloned()
                .or_else(|| environment.get(k).cloned())
        };
        let interpolation = envfile::Interpolation {
            lookup: &lookup,
            expand: &crate::load::dotenv::expand,
        };
        let mut own = BTreeMap::new();
        let compose = match envfile::parse_with(&text, &mut own, Some(&interpolation)) {
            Ok(entries) => entries,
            Err(e) => {
                self.report(
                    "env_file",
                    n,
                    format!("{shown}:{e} (as compose interpolates it)"),
                );
                return;
            }
        };
        compose_vars.extend(own);
        // Both readings see the same statements in the same order, but for
        // names alone, which only compose's reading may set.
        let mut expanded = Vec::new();
        let mut inherited = Vec::new();
        let mut j = jarvis.iter().peekable();
        for c in &compose {
            match j.peek() {
                Some(e) if e.line == c.line && e.key == c.key => {
                    if e.value != c.value {
                        expanded.push(format!("{} (line {})", c.key, c.line));
                    }
                    j.next();
                }
                _ => inherited.push(format!("{} (line {})", c.key, c.line)),
            }
        }
        if !expanded.is_empty() {
            self.report(
                "env_file",
                n,
                format!(
                    "{shown}: compose expands the variables in {}; jarvis takes an env file's \
                     values as written: write the values out in the file",
                    expanded.join(", ")
                ),
            );
        }
        if !inherited.is_empty() {
            self.report(
                "env_file",
                n,
                format!(
                    "{shown}: compose gives {} the value of the variable of that name in its \
                     environment; jarvis sets nothing for a name alone: write NAME=VALUE in \
                     the file",
                    inherited.join(", ")
                ),
            );
        }
        if let Some(e) = jarvis.iter().find(|e| e.key.is_empty()) {
            self.report(
                "env_file",
                n,
                format!(
                    "{shown}: line {} has no name before '='; jarvis refuses the file",
                    e.line
                ),
            );
        }
    }

    /// `network_mode` and `networks` into `network`, `networks`, `aliases`.
    fn network(&mut self) {
        let node = self.node;
        if let Some(mode) = node.get("network_mode") {
            let m = mode.scalar().unwrap_or_default();
            let network = match m.as_str() {
                "host" => Some("host".to_string()),
                "none" => Some("none".to_string()),
                _ if m.starts_with("service:") => {
                    let other = &m["service:".len()..];
                    match self.names.get(other) {
                        Some(_) if !self.gets_unit(other) => {
                            self.report(
                                "network_mode",
                                mode,
                                format!(
                                    "{other:?} gets no unit (it has no image), so there is no \
                                     network to join; the unit joins the project's default network"
                                ),
                            );
                            None
                        }
                        Some(u) => Some(format!("unit:{u}")),
                        None => {
                            self.report(
                                "network_mode",
                                mode,
                                format!("names the service {other:?}, which is not in the project"),
                            );
                            None
                        }
                    }
                }
                _ if m.starts_with("container:") => {
                    self.report(
                        "network_mode",
                        mode,
                        "jarvis joins the network namespace of a unit it runs only: run that \
                         container as a unit and write service:NAME",
                    );
                    None
                }
                _ => {
                    self.report(
                        "network_mode",
                        mode,
                        format!(
                            "{m:?}: Docker's default bridge (no names between containers) is not \
                             a jarvis network; the unit joins the project's default network"
                        ),
                    );
                    None
                }
            };
            if let Some(net) = network {
                self.c().set("network", net);
                return;
            }
        }
        let default_name = format!("{}_default", self.compose.name);
        let mut nets = Vec::new();
        match node.get("networks") {
            None => nets.push(default_name),
            Some(n) => {
                let list: Vec<(String, Option<&Node>, &Node)> = match &n.value {
                    Y::Seq(items) => items
                        .iter()
                        .filter_map(|i| i.scalar().map(|s| (s, None, i)))
                        .collect(),
                    Y::Map(entries) => entries
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v), v))
                        .collect(),
                    _ => Vec::new(),
                };
                for (name, settings, at) in list {
                    if let Some(real) = self.network_name(&name, at) {
                        nets.push(real);
                    }
                    let Some(settings) = settings else { continue };
                    for (k, sv) in settings.entries() {
                        match k.as_str() {
                            "aliases" => {
                                for a in scalars(sv) {
                                    if a == self.unit {
                                        // Its name on every network already.
                                    } else if jarvis_unit::is_dns_label(&a) {
                                        if !self.aliases.contains(&a) {
                                            self.aliases.push(a);
                                        }
                                    } else {
                                        self.report(
                                            &format!("networks.{name}.aliases"),
                                            sv,
                                            format!("{a:?} is not a DNS name jarvis can serve"),
                                        );
                                    }
                                }
                            }
                            _ => self.report(
                                &format!("networks.{name}.{k}"),
                                sv,
                                "jarvis assigns addresses and settings on its networks itself",
                            ),
                        }
                    }
                }
            }
        }
        if nets.is_empty() {
            // Every network named was reported: the project's default
            // keeps the unit on a network.
            nets.push(format!("{}_default", self.compose.name));
        }
        let explicit_default =
            nets.len() == 1 && nets[0] == format!("{}_default", self.compose.name);
        self.c().set("networks", strings(&nets));
        if explicit_default {
            self.c().comment(
                "networks",
                "compose's default network of the project, named as compose names it.",
            );
        }
    }

    /// The jarvis name of the project's network `name`.
    fn network_name(&mut self, name: &str, at: &Node) -> Option<String> {
        let project = self.compose.name;
        let def = self
            .compose
            .networks
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| n);
        let real = match def {
            None if name == "default" => format!("{project}_default"),
            None => {
                self.report(
                    "networks",
                    at,
                    format!("the network {name:?} is not defined at the top level"),
                );
                return None;
            }
            Some(def) => {
                let external = def.get("external").and_then(boolean).unwrap_or(false);
                for (k, v) in def.entries() {
                    let bad = match k.as_str() {
                        "name" | "external" | "labels" | "attachable" => None,
                        "driver" => match v.scalar().as_deref() {
                            Some("bridge") | None => None,
                            Some(d) => Some(format!(
                                "the {d:?} driver: jarvis's networks are bridges it manages"
                            )),
                        },
                        "internal" if boolean(v) == Some(true) => Some(
                            "jarvis's networks always reach out (masqueraded); an internal \
                             network cannot be made"
                                .to_string(),
                        ),
                        "internal" => None,
                        _ => Some("jarvis picks its networks' subnets and options itself".into()),
                    };
                    if let Some(msg) = bad {
                        self.report_top("networks", name, k, v, msg);
                    }
                }
                match def.get("name").and_then(Node::scalar) {
                    Some(n) => n,
                    None if external => name.to_string(),
                    None => format!("{project}_{name}"),
                }
            }
        };
        if !syntax::is_network_name(&real) {
            self.report(
                "networks",
                at,
                format!(
                    "the network {real:?} cannot be named in jarvis (lower-case letters, \
                     digits, '_', '.', '-', at most 64 bytes)"
                ),
            );
            return None;
        }
        Some(real)
    }

    fn ports(&mut self, v: &Node) {
        let network = self
            .doc
            .find("container")
            .and_then(|c| c.get("network"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        if let Some(net) = network {
            if net == "none" {
                self.c().comment(
                    "image",
                    "ports left out: without a network (none) nothing can be published (Docker \
                     publishes nothing either).",
                );
            } else if net == "host" {
                self.c().comment(
                    "image",
                    "ports left out: with the host's network the service listens on the host \
                     directly (compose ignores them too).",
                );
            } else {
                self.report(
                    "ports",
                    v,
                    format!(
                        "a unit with network = {net:?} publishes no ports of its own: publish \
                         them on the unit whose network it uses"
                    ),
                );
            }
            return;
        }
        let mut out: Vec<String> = Vec::new();
        for item in v.items() {
            let ports: Result<Vec<Port>, String> = match &item.value {
                Y::Map(_) => {
                    let target = item
                        .get("target")
                        .and_then(Node::scalar)
                        .unwrap_or_default();
                    let published = item.get("published").and_then(Node::scalar);
                    let proto = item
                        .get("protocol")
                        .and_then(Node::scalar)
                        .unwrap_or_else(|| "tcp".into());
                    let ip = item.get("host_ip").and_then(Node::scalar);
                    syntax::expand_ports(ip.as_deref(), published.as_deref(), &target, &proto)
                }
                _ => match item.scalar() {
                    Some(s) => syntax::parse_short_port(&s),
                    None => Err("expected a port".into()),
                },
            };
            match ports {
                Err(e) => self.report("ports", item, e),
                Ok(ports) => {
                    for p in ports {
                        if p.protocol != "tcp" && p.protocol != "udp" {
                            self.report(
                                "ports",
                                item,
                                format!(
                                    "the protocol {:?}: jarvis publishes tcp and udp",
                                    p.protocol
                                ),
                            );
                            continue;
                        }
                        if p.host_port == Some(53) && p.host_ip.is_none() {
                            self.report(
                                "ports",
                                item,
                                format!(
                                    "host port 53/{} on every address: jarvis's name server holds \
                                     port 53 on each network's gateway, so it is refused at start; \
                                     publish it on one host address instead (e.g. \
                                     \"192.168.1.2:53:{}/{}\")",
                                    p.protocol, p.container_port, p.protocol
                                ),
                            );
                            continue;
                        }
                        match p.jarvis() {
                            Some(s) => out.push(s),
                            None => self.report(
                                "ports",
                                item,
                                format!(
                                    "container port {} without a host port: compose publishes \
                                     it on a free host port it picks, jarvis needs the host \
                                     port written (e.g. \"{}:{}\")",
                                    p.container_port, p.container_port, p.container_port
                                ),
                            ),
                        }
                    }
                }
            }
        }
        if !out.is_empty() {
            self.c().set("ports", strings(&out));
        }
    }

    /// The jarvis spelling of a named volume's source, from the top-level
    /// definition; `Err` when it is a bind (driver_opts) instead.
    fn volume_source(&mut self, name: &str, at: &Node) -> Option<VolumeSource> {
        let project = self.compose.name;
        let Some((_, def)) = self.compose.volumes.iter().find(|(k, _)| k == name) else {
            self.report(
                "volumes",
                at,
                format!("the volume {name:?} is not defined under the top-level volumes"),
            );
            return None;
        };
        let external = def.get("external").and_then(boolean).unwrap_or(false);
        let driver = def.get("driver").and_then(Node::scalar);
        if let Some(d) = driver.as_deref().filter(|d| *d != "local") {
            self.report_top(
                "volumes",
                name,
                "driver",
                def.get("driver").unwrap_or(def),
                format!("the {d:?} volume driver: jarvis's named volumes are directories"),
            );
            return None;
        }
        if let Some(opts) = def.get("driver_opts") {
            let get = |k: &str| opts.get(k).and_then(Node::scalar);
            let is_bind = get("type").as_deref() == Some("none")
                && get("o").is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind"));
            match (is_bind, get("device")) {
                (true, Some(dev)) => {
                    return Some(VolumeSource::Bind(self.abs(&dev), true));
                }
                _ => {
                    self.report_top(
                        "volumes",
                        name,
                        "driver_opts",
                        opts,
                        "only type: none, o: bind with a device (a bind mount) is understood"
                            .to_string(),
                    );
                    return None;
                }
            }
        }
        let real = match def.get("name").and_then(Node::scalar) {
            Some(n) => n,
            None if external => name.to_string(),
            None => format!("{project}_{name}"),
        };
        if !syntax::is_volume_name(&real) {
            self.report(
                "volumes",
                at,
                format!("{real:?} is not a volume name jarvis takes"),
            );
            return None;
        }
        Some(VolumeSource::Named(real))
    }

    fn volumes(&mut self, v: &Node) {
        for item in v.items() {
            match &item.value {
                Y::Map(_) => self.long_volume(item),
                _ => {
                    let Some(s) = item.scalar() else { continue };
                    match syntax::parse_short_volume(&s) {
                        Err(e) => self.report("volumes", item, e),
                        Ok(sv) => {
                            let mut read_only = false;
                            for o in &sv.options {
                                match o.as_str() {
                                    "ro" => read_only = true,
                                    "rw" | "" => {}
                                    "z" | "Z" => self.c().comment(
                                        "image",
                                        format!(
                                            "volume {s:?}: the SELinux relabel option {o:?} is \
                                             dropped (jarvis does not relabel)."
                                        ),
                                    ),
                                    "cached" | "delegated" | "consistent" => {}
                                    "nocopy" => self.report(
                                        "volumes",
                                        item,
                                        "nocopy: jarvis fills a new named volume from the \
                                         image's content at its path; it cannot be left empty",
                                    ),
                                    _ => self.report(
                                        "volumes",
                                        item,
                                        format!("the option {o:?}: jarvis mounts rw or ro only"),
                                    ),
                                }
                            }
                            self.mount(item, sv.source.as_deref(), &sv.target, read_only, true, "");
                        }
                    }
                }
            }
        }
        if !self.volumes.is_empty() {
            let list = self.volumes.clone();
            self.c().set("volumes", strings(&list));
        }
    }

    fn long_volume(&mut self, item: &Node) {
        let typ = item
            .get("type")
            .and_then(Node::scalar)
            .unwrap_or_else(|| "volume".into());
        let source = item.get("source").and_then(Node::scalar);
        let Some(target) = item.get("target").and_then(Node::scalar) else {
            self.report("volumes", item, "a volume without a target");
            return;
        };
        let read_only = item.get("read_only").and_then(boolean).unwrap_or(false);
        for (k, v) in item.entries() {
            match (k.as_str(), typ.as_str()) {
                ("type" | "source" | "target" | "read_only" | "consistency", _) => {}
                ("bind", "bind") => {
                    for (bk, bv) in v.entries() {
                        match bk.as_str() {
                            "create_host_path" => {}
                            "selinux" => self.c().comment(
                                "image",
                                format!(
                                    "volume {target:?}: the SELinux relabel option is dropped \
                                     (jarvis does not relabel)."
                                ),
                            ),
                            "propagation" if bv.scalar().as_deref() == Some("rprivate") => {}
                            _ => self.report(
                                &format!("volumes.bind.{bk}"),
                                bv,
                                "jarvis mounts binds rprivate, without further options",
                            ),
                        }
                    }
                }
                ("volume", "volume") => {
                    for (vk, vv) in v.entries() {
                        let msg = match vk.as_str() {
                            "nocopy" if boolean(vv) == Some(true) => {
                                "jarvis fills a new named volume from the image's content at \
                                 its path; it cannot be left empty"
                            }
                            "nocopy" => continue,
                            _ => "jarvis mounts a whole named volume, without further options",
                        };
                        self.report(&format!("volumes.volume.{vk}"), vv, msg);
                    }
                }
                ("tmpfs", "tmpfs") => {}
                _ => self.report(&format!("volumes.{k}"), v, "not understood for this type"),
            }
        }
        match typ.as_str() {
            "bind" => {
                let create = item
                    .get("bind")
                    .and_then(|b| b.get("create_host_path"))
                    .and_then(boolean)
                    .unwrap_or(false);
                if source.is_none() {
                    self.report("volumes", item, "a bind without a source");
                    return;
                }
                self.mount(item, source.as_deref(), &target, read_only, create, "bind");
            }
            "volume" => self.mount(item, source.as_deref(), &target, read_only, false, "volume"),
            "tmpfs" => {
                let t = item.get("tmpfs");
                let size = t.and_then(|t| t.get("size")).and_then(Node::scalar);
                let mode = t.and_then(|t| t.get("mode"));
                let mut opts = Vec::new();
                if let Some(size) = size {
                    match syntax::parse_size(&size) {
                        Ok(n) => opts.push(format!("size={}", syntax::show_size(n))),
                        Err(e) => self.report("volumes.tmpfs.size", item, e),
                    }
                }
                if let Some(mode) = mode {
                    match mode_of(mode) {
                        Some(m) => opts.push(format!("mode={m:o}")),
                        None => self.report("volumes.tmpfs.mode", mode, "not a file mode"),
                    }
                }
                for (k, v) in t.map(Node::entries).unwrap_or_default() {
                    if k != "size" && k != "mode" {
                        self.report(
                            &format!("volumes.tmpfs.{k}"),
                            v,
                            "jarvis's tmpfs takes size and mode",
                        );
                    }
                }
                self.push_tmpfs(&target, &opts);
            }
            other => self.report(
                "volumes",
                item,
                format!("the mount type {other:?}: jarvis mounts binds, named volumes and tmpfs"),
            ),
        }
    }

    /// One mount: `source` a path (bind) or a name (named volume), or none
    /// (an anonymous volume).
    fn mount(
        &mut self,
        at: &Node,
        source: Option<&str>,
        target: &str,
        read_only: bool,
        create: bool,
        typ: &str,
    ) {
        let ro = if read_only { ":ro" } else { "" };
        let source = match source.filter(|s| !s.is_empty()) {
            None => {
                let name = anonymous_name(self.compose.name, self.service, target);
                self.c().comment(
                    "image",
                    format!(
                        "volume {target:?} had no source (an anonymous volume): it is the named \
                         volume {name:?}, which outlives the unit as compose keeps an anonymous \
                         volume across recreations."
                    ),
                );
                VolumeSource::Named(name)
            }
            Some(s) if typ == "bind" || (typ.is_empty() && syntax::is_path(s)) => {
                VolumeSource::Bind(self.abs(s), create)
            }
            Some(s) => match self.volume_source(s, at) {
                Some(src) => src,
                None => return,
            },
        };
        match source {
            VolumeSource::Bind(path, create) => {
                let shown = path.display().to_string();
                if DOCKER_SOCKETS.contains(&shown.as_str()) {
                    self.report(
                        "volumes",
                        at,
                        "the Docker API socket: jarvis has no Docker API, so the service \
                         cannot manage containers through it; the mount is left out",
                    );
                    return;
                }
                if shown.contains(':') {
                    self.report(
                        "volumes",
                        at,
                        format!("{shown:?} has a ':', which jarvis cannot mount"),
                    );
                    return;
                }
                if create && !path.exists() {
                    self.create_dirs.insert(path.clone());
                }
                self.volumes.push(format!("{shown}:{target}{ro}"));
            }
            VolumeSource::Named(name) => {
                self.volumes.push(format!("{name}:{target}{ro}"));
            }
        }
    }

    fn push_tmpfs(&mut self, target: &str, opts: &[String]) {
        let line = if opts.is_empty() {
            target.to_string()
        } else {
            format!("{target}:{}", opts.join(","))
        };
        let mut list: Vec<String> = self
            .doc
            .find("container")
            .and_then(|c| c.get("tmpfs"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        list.push(line);
        self.c().set("tmpfs", strings(&list));
    }

    fn tmpfs(&mut self, v: &Node) {
        let items: Vec<&Node> = match &v.value {
            Y::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        for item in items {
            let Some(s) = item.scalar() else { continue };
            let (path, options) = s.split_once(':').unwrap_or((&s, ""));
            let mut opts = Vec::new();
            for o in options.split(',').filter(|o| !o.is_empty()) {
                let (k, val) = o.split_once('=').unwrap_or((o, ""));
                match k {
                    "size" => match syntax::parse_size(val) {
                        Ok(n) => opts.push(format!("size={}", syntax::show_size(n))),
                        Err(e) => self.report("tmpfs", item, e),
                    },
                    "mode" => match u32::from_str_radix(val, 8) {
                        Ok(m) => opts.push(format!("mode={m:o}")),
                        Err(_) => {
                            self.report("tmpfs", item, format!("{val:?} is not an octal mode"))
                        }
                    },
                    "rw" => {}
                    _ => self.report(
                        "tmpfs",
                        item,
                        format!("the option {o:?}: jarvis's tmpfs takes size and mode only"),
                    ),
                }
            }
            self.push_tmpfs(path, &opts);
        }
    }

    fn extra_hosts(&mut self, v: &Node) {
        let mut out = Vec::new();
        let mut one = |cx: &mut Self, name: &str, addr: &str, n: &Node| {
            let line = format!("{name}:{addr}");
            match line.parse::<jarvis_unit::ExtraHost>() {
                Ok(h) => out.push(h.to_string()),
                Err(e) => cx.report("extra_hosts", n, e),
            }
        };
        match &v.value {
            Y::Map(entries) => {
                for (k, n) in entries {
                    let addrs: Vec<String> = match &n.value {
                        Y::Seq(_) => scalars(n),
                        _ => n.scalar().into_iter().collect(),
                    };
                    for a in addrs {
                        one(self, k, &a, n);
                    }
                }
            }
            Y::Seq(items) => {
                for n in items {
                    let Some(s) = n.scalar() else { continue };
                    // NAME=ADDR (newer compose) or NAME:ADDR.
                    let (name, addr) = match s.split_once('=') {
                        Some(p) => p,
                        None => s.split_once(':').unwrap_or((&s, "")),
                    };
                    one(self, name, addr, n);
                }
            }
            _ => {}
        }
        if !out.is_empty() {
            self.c().set("extra_hosts", strings(&out));
        }
    }

    fn depends_on(&mut self, v: &Node) {
        let mut deps = InlineTable::new();
        let list: Vec<(String, Option<&Node>, &Node)> = match &v.value {
            Y::Seq(items) => items
                .iter()
                .filter_map(|i| i.scalar().map(|s| (s, None, i)))
                .collect(),
            Y::Map(entries) => entries
                .iter()
                .map(|(k, n)| (k.clone(), Some(n), n))
                .collect(),
            _ => Vec::new(),
        };
        for (name, settings, at) in list {
            let condition = settings
                .and_then(|s| s.get("condition"))
                .and_then(Node::scalar)
                .unwrap_or_else(|| "service_started".into());
            let required = settings
                .and_then(|s| s.get("required"))
                .and_then(boolean)
                .unwrap_or(true);
            let Some(unit) = self.names.get(&name).cloned() else {
                if required {
                    self.report(
                        "depends_on",
                        at,
                        format!("the service {name:?} is not in the project"),
                    );
                } else {
                    self.doc.top.comment(
                        "description",
                        format!("depends_on {name:?} (required: false) left out: no such service in the project."),
                    );
                }
                continue;
            };
            if !self.gets_unit(&name) {
                self.report(
                    "depends_on",
                    at,
                    format!("{name:?} gets no unit (it has no image); the dependency is left out"),
                );
                continue;
            }
            if let Some(r) = settings.and_then(|s| s.get("restart")) {
                if boolean(r) == Some(true) {
                    self.report(
                        &format!("depends_on.{name}.restart"),
                        r,
                        "jarvis does not restart a unit when a unit it depends on restarts",
                    );
                }
            }
            let word = match condition.as_str() {
                "service_started" => "started",
                "service_healthy" => "healthy",
                "service_completed_successfully" => "completed",
                other => {
                    self.report(
                        &format!("depends_on.{name}.condition"),
                        settings.and_then(|s| s.get("condition")).unwrap_or(at),
                        format!("unknown condition {other:?}"),
                    );
                    continue;
                }
            };
            if word == "healthy" && !self.service_has_health(&name) {
                self.report(
                    &format!("depends_on.{name}.condition"),
                    settings.and_then(|s| s.get("condition")).unwrap_or(at),
                    format!(
                        "{name:?} has no healthcheck in the compose file (compose would use its \
                         image's HEALTHCHECK, which jarvis does not read): waiting for it to be \
                         started instead; add a [health] to {unit}.toml and make this \"healthy\""
                    ),
                );
                deps.insert(&unit, Value::from("started"));
                continue;
            }
            if !required {
                self.doc
                    .top
                    .set("depends_on", Value::InlineTable(deps.clone()));
                self.doc.top.comment(
                    "depends_on",
                    format!("{name:?} was required: false; the service is in the project, so jarvis waits for it."),
                );
            }
            deps.insert(&unit, Value::from(word));
        }
        if !deps.is_empty() {
            self.doc.top.set("depends_on", Value::InlineTable(deps));
        }
    }

    /// Whether the service `name` is converted to a unit (it has an image).
    fn gets_unit(&self, name: &str) -> bool {
        self.compose
            .services
            .iter()
            .any(|(s, n)| s == name && n.get("image").and_then(Node::scalar).is_some())
    }

    /// Whether the service `name` has a health check jarvis writes.
    fn service_has_health(&self, name: &str) -> bool {
        let Some((_, node)) = self.compose.services.iter().find(|(s, _)| s == name) else {
            return false;
        };
        match node.get("healthcheck") {
            None => false,
            Some(h) => {
                h.get("disable").and_then(boolean) != Some(true)
                    && h.get("test")
                        .is_some_and(|t| health_argv(t).is_some_and(|a| a.is_some()))
            }
        }
    }

    fn healthcheck(&mut self, v: &Node) {
        if v.get("disable").and_then(boolean) == Some(true) {
            self.doc.top.comment(
                "description",
                "healthcheck disabled in compose: no [health].",
            );
            return;
        }
        let Some(test) = v.get("test") else {
            self.report(
                "healthcheck",
                v,
                "no test: compose runs the image's own HEALTHCHECK, which jarvis does not \
                 read; write a [health] check (exec, http or tcp)",
            );
            return;
        };
        let argv = match health_argv(test) {
            Some(Some(argv)) => argv,
            Some(None) => {
                self.doc.top.comment(
                    "description",
                    "healthcheck test NONE in compose: no [health].",
                );
                return;
            }
            None => {
                self.report(
                    "healthcheck.test",
                    test,
                    "expected CMD, CMD-SHELL, NONE or a string",
                );
                return;
            }
        };
        self.has_health = true;
        let h = self.doc.section("health");
        h.set("exec", strings(&argv));
        let mut durations = [
            ("interval", HEALTH_INTERVAL.to_string()),
            ("timeout", HEALTH_TIMEOUT.to_string()),
            ("start_period", HEALTH_START_PERIOD.to_string()),
            ("start_interval", HEALTH_START_INTERVAL.to_string()),
        ];
        let mut retries = HEALTH_RETRIES;
        for (k, n) in v.entries() {
            match k.as_str() {
                "test" | "disable" => {}
                "retries" => match n.value {
                    Y::Int(r) if r >= 1 => retries = r,
                    Y::Int(0) => {} // Docker's default, 3
                    _ => self.report("healthcheck.retries", n, "expected a number of at least 1"),
                },
                "interval" | "timeout" | "start_period" | "start_interval" => {
                    match n.scalar().map(|s| syntax::parse_duration(&s)) {
                        // Zero is Docker's "use the default" (start_period's is 0).
                        Some(Ok(d)) if d.is_zero() => {}
                        Some(Ok(d)) => {
                            if let Some(e) = durations.iter_mut().find(|(dk, _)| dk == k) {
                                e.1 = syntax::show_duration(d);
                            }
                        }
                        Some(Err(e)) => self.report(&format!("healthcheck.{k}"), n, e),
                        None => self.report(&format!("healthcheck.{k}"), n, "expected a duration"),
                    }
                }
                _ => self.report(&format!("healthcheck.{k}"), n, "not a healthcheck key"),
            }
        }
        let h = self.doc.section("health");
        let (first, rest) = durations.split_at(2);
        for (k, d) in first {
            h.set(k, d.clone());
        }
        h.set("retries", retries);
        for (k, d) in rest {
            h.set(k, d.clone());
        }
        h.comment(
            "interval",
            "Docker's defaults where compose gives none (jarvis's own are shorter).",
        );
        h.set("on_unhealthy", "ignore");
        h.comment(
            "on_unhealthy",
            "Docker only marks a container unhealthy; jarvis would restart it by default.",
        );
    }

    fn restart(&mut self, v: &Node) {
        let s = v.scalar().unwrap_or_default();
        let policy_node = self
            .node
            .get("deploy")
            .and_then(|d| d.get("restart_policy"));
        if policy_node.is_some() {
            self.doc.top.comment(
                "description",
                format!("restart {s:?} left out: deploy.restart_policy wins, as in compose."),
            );
            return;
        }
        let (policy, comment) = match s.as_str() {
            "no" | "false" => ("never", None),
            "always" => (
                "always",
                Some(
                    "restart: always; jarvis gives up (failed) after [restart] burst quick \
                      restarts where Docker keeps trying.",
                ),
            ),
            "unless-stopped" => (
                "always",
                Some(
                    "restart: unless-stopped; jarvis remembers a `jarvisctl stop` across \
                      restarts of jarvisd, as unless-stopped does.",
                ),
            ),
            "on-failure" => ("on-failure", None),
            _ if s.starts_with("on-failure:") => {
                self.report(
                    "restart",
                    v,
                    format!(
                        "{s:?}: jarvis restarts on failure without a count; it gives up after \
                         [restart] burst starts within interval instead"
                    ),
                );
                ("on-failure", None)
            }
            _ => {
                self.report("restart", v, format!("unknown restart policy {s:?}"));
                return;
            }
        };
        self.restart_set = true;
        let r = self.doc.section("restart");
        r.set("policy", policy);
        if let Some(c) = comment {
            r.comment("policy", c);
        }
    }

    fn security_opt(&mut self, v: &Node) {
        for item in v.items() {
            let Some(s) = item.scalar() else { continue };
            let (k, val) = match s.split_once([':', '=']) {
                Some((k, val)) => (k, val),
                None => (s.as_str(), "true"),
            };
            match (k, val) {
                ("no-new-privileges", "true") => {
                    self.doc.section("security").set("no_new_privileges", true)
                }
                ("no-new-privileges", "false") => {
                    self.doc.section("security").set("no_new_privileges", false)
                }
                _ => self.report(
                    "security_opt",
                    item,
                    format!(
                        "{s:?}: jarvis sets no seccomp, AppArmor or SELinux options (privileged \
                         turns them all off)"
                    ),
                ),
            }
        }
    }

    fn devices(&mut self, v: &Node) {
        for item in v.items() {
            let (source, target, perms) = match &item.value {
                Y::Map(_) => (
                    item.get("source").and_then(Node::scalar),
                    item.get("target").and_then(Node::scalar),
                    item.get("permissions").and_then(Node::scalar),
                ),
                _ => {
                    let s = item.scalar().unwrap_or_default();
                    let mut parts = s.splitn(3, ':');
                    (
                        parts.next().map(str::to_string),
                        parts.next().map(str::to_string),
                        parts.next().map(str::to_string),
                    )
                }
            };
            let Some(source) = source.filter(|s| s.starts_with('/')) else {
                self.report(
                    "devices",
                    item,
                    "a CDI device name: jarvis takes host device paths (and [gpu] for GPUs)",
                );
                continue;
            };
            if let Some(p) = perms.as_deref().filter(|p| *p != "rwm") {
                self.report(
                    "devices",
                    item,
                    format!("the permissions {p:?}: jarvis gives a device read, write and mknod"),
                );
            }
            let target = target.unwrap_or_else(|| source.clone());
            if !target.starts_with("/dev/") {
                self.report(
                    "devices",
                    item,
                    format!("{target:?}: jarvis puts devices under /dev"),
                );
                continue;
            }
            let d = self.doc.push_array("device");
            d.set("path", source.clone());
            if target != source {
                d.set("as", target);
            }
        }
    }

    fn sysctls(&mut self, v: &Node) {
        let mut pairs = Vec::new();
        match &v.value {
            Y::Map(entries) => {
                for (k, n) in entries {
                    pairs.push((k.clone(), n.scalar().unwrap_or_default()));
                }
            }
            Y::Seq(items) => {
                for n in items {
                    if let Some((k, val)) = n.scalar().as_deref().and_then(|s| s.split_once('=')) {
                        pairs.push((k.to_string(), val.to_string()));
                    }
                }
            }
            _ => {}
        }
        let mut t = InlineTable::new();
        for (k, val) in pairs {
            let val = match val.as_str() {
                "true" => "1".to_string(),
                "false" => "0".to_string(),
                _ => val,
            };
            t.insert(&k, Value::from(val));
        }
        if !t.is_empty() {
            self.c().set("sysctls", Value::InlineTable(t));
        }
    }

    fn ulimits(&mut self, v: &Node) {
        let mut t = InlineTable::new();
        for (k, n) in v.entries() {
            let (soft, hard) = match &n.value {
                Y::Int(x) => (*x, *x),
                Y::Map(_) => match (
                    n.get("soft").map(|s| &s.value),
                    n.get("hard").map(|h| &h.value),
                ) {
                    (Some(Y::Int(s)), Some(Y::Int(h))) => (*s, *h),
                    _ => {
                        self.report(&format!("ulimits.{k}"), n, "expected soft and hard numbers");
                        continue;
                    }
                },
                _ => {
                    self.report(
                        &format!("ulimits.{k}"),
                        n,
                        "expected a number or soft and hard",
                    );
                    continue;
                }
            };
            let mut a = Array::new();
            a.push(soft);
            a.push(hard);
            t.insert(k, Value::Array(a));
        }
        if !t.is_empty() {
            self.c().set("ulimits", Value::InlineTable(t));
        }
    }

    fn memory(&mut self, key: &str, v: &Node) {
        match v.scalar().map(|s| syntax::parse_size(&s)) {
            Some(Ok(0)) => {}
            Some(Ok(n)) => self
                .doc
                .section("resources")
                .set("memory_max", syntax::show_size(n)),
            _ => self.report(key, v, "not a size"),
        }
    }

    fn cpus(&mut self, key: &str, v: &Node) {
        match v.scalar().and_then(|s| s.parse::<f64>().ok()) {
            Some(c) if c > 0.0 => self.doc.section("resources").set("cpus", c),
            Some(_) => {}
            None => self.report(key, v, "not a number of CPUs"),
        }
    }

    fn cpu_shares(&mut self, v: &Node) {
        match v.value {
            Y::Int(shares) if shares >= 2 => {
                // The OCI runtimes' conversion of shares to cgroup v2 weight.
                let weight = 1 + ((shares - 2) * 9999) / 262142;
                let r = self.doc.section("resources");
                r.set("cpu_weight", weight.clamp(1, 10000));
                r.comment(
                    "cpu_weight",
                    format!("cpu_shares {shares}, as cgroup v2 weight."),
                );
            }
            _ => self.report("cpu_shares", v, "expected a number of at least 2"),
        }
    }

    fn gpu(&mut self, count: Option<i64>, at: &Node, key: &str, comment: Option<String>) {
        let g = self.doc.section("gpu");
        g.set("want", "nvidia");
        g.set("count", count.unwrap_or(1));
        if let Some(c) = comment {
            g.comment("want", c);
        }
        if count.is_none() {
            self.report(
                key,
                at,
                "all GPUs: jarvis gives a unit a number of GPUs; count = 1 was written, set \
                 it to the number this machine has",
            );
        }
    }

    fn runtime(&mut self, v: &Node) {
        match v.scalar().as_deref() {
            Some("nvidia") => {
                if !self.doc.has("gpu") {
                    let g = self.doc.section("gpu");
                    g.set("want", "nvidia");
                    g.set("count", 1);
                    g.comment(
                        "want",
                        "runtime: nvidia. jarvis gives the unit the GPU's device nodes and \
                         driver libraries; NVIDIA_VISIBLE_DEVICES no longer picks GPUs, count does.",
                    );
                }
            }
            Some("runc") | Some("io.containerd.runc.v2") => {}
            _ => self.report("runtime", v, "jarvis runs containers with its own runtime"),
        }
    }

    fn gpus(&mut self, v: &Node) {
        match &v.value {
            Y::Str(s) if s == "all" => self.gpu(None, v, "gpus", None),
            Y::Seq(items) => {
                for i in items {
                    self.gpu_request(i, "gpus");
                }
            }
            _ => self.report("gpus", v, "expected all or a list of GPU requests"),
        }
    }

    /// A device request (`deploy.resources.reservations.devices` or
    /// `gpus`) asking for GPUs.
    fn gpu_request(&mut self, d: &Node, key: &str) {
        let driver = d.get("driver").and_then(Node::scalar);
        let caps: Vec<String> = d
            .get("capabilities")
            .map(|c| {
                c.items()
                    .iter()
                    .flat_map(|i| match &i.value {
                        Y::Seq(_) => scalars(i),
                        _ => i.scalar().into_iter().collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let is_gpu = driver.as_deref() == Some("nvidia") || caps.iter().any(|c| c == "gpu");
        if !is_gpu {
            self.report(
                key,
                d,
                "jarvis reserves GPUs ([gpu]) and host devices ([[device]]) only",
            );
            return;
        }
        if let Some(dr) = driver.as_deref().filter(|d| *d != "nvidia") {
            self.report(
                &format!("{key}.driver"),
                d,
                format!("the driver {dr:?}: jarvis knows nvidia and amd GPUs ([gpu] want)"),
            );
            return;
        }
        if let Some(ids) = d.get("device_ids") {
            self.report(
                &format!("{key}.device_ids"),
                ids,
                "jarvis picks the GPU with the most room and cannot pin one by id; the unit \
                 gets count GPUs",
            );
        }
        let count = match d.get("count").map(|c| &c.value) {
            Some(Y::Int(n)) if *n >= 1 => Some(*n),
            Some(Y::Str(s)) if s == "all" => None,
            Some(Y::Str(s)) if s.parse::<i64>().is_ok_and(|n| n >= 1) => s.parse().ok(),
            Some(_) => {
                self.report(&format!("{key}.count"), d, "expected a number or all");
                return;
            }
            None if d.get("device_ids").is_some() => Some(
                d.get("device_ids")
                    .map(|i| i.items().len() as i64)
                    .unwrap_or(1)
                    .max(1),
            ),
            None => None,
        };
        let extra: Vec<&String> = caps
            .iter()
            .filter(|c| !matches!(c.as_str(), "gpu" | "compute" | "utility"))
            .collect();
        let comment = if extra.is_empty() {
            None
        } else {
            Some(format!(
                "capabilities {extra:?}: jarvis mounts the driver's libraries found on the host (or \
                 its CDI spec) whatever the capabilities."
            ))
        };
        self.gpu(
            count,
            d.get("count").unwrap_or(d),
            &format!("{key}.count"),
            comment,
        );
    }

    fn deploy(&mut self, v: &Node) {
        for (k, n) in v.entries() {
            match k.as_str() {
                "resources" => {
                    for (rk, rn) in n.entries() {
                        match rk.as_str() {
                            "limits" => {
                                for (lk, ln) in rn.entries() {
                                    match lk.as_str() {
                                        "cpus" => self.cpus("deploy.resources.limits.cpus", ln),
                                        "memory" => {
                                            self.memory("deploy.resources.limits.memory", ln)
                                        }
                                        "pids" => match ln.value {
                                            Y::Int(p) if p > 0 => {
                                                self.doc.section("resources").set("pids_max", p)
                                            }
                                            _ => {}
                                        },
                                        _ => self.report(
                                            &format!("deploy.resources.limits.{lk}"),
                                            ln,
                                            "jarvis limits cpus, memory and pids",
                                        ),
                                    }
                                }
                            }
                            "reservations" => {
                                for (lk, ln) in rn.entries() {
                                    match lk.as_str() {
                                        "devices" => {
                                            for d in ln.items() {
                                                self.gpu_request(d, "deploy.resources.reservations.devices");
                                            }
                                        }
                                        _ => self.report(
                                            &format!("deploy.resources.reservations.{lk}"),
                                            ln,
                                            "jarvis reserves no CPU or memory; it limits them ([resources])",
                                        ),
                                    }
                                }
                            }
                            _ => {
                                self.report(&format!("deploy.resources.{rk}"), rn, "not understood")
                            }
                        }
                    }
                }
                // compose's rule: deploy.restart_policy wins over restart.
                "restart_policy" => {
                    let cond = n
                        .get("condition")
                        .and_then(Node::scalar)
                        .unwrap_or_else(|| "any".into());
                    let policy = match cond.as_str() {
                        "none" => "never",
                        "on-failure" => "on-failure",
                        "any" => "always",
                        other => {
                            self.report(
                                "deploy.restart_policy.condition",
                                n,
                                format!("unknown condition {other:?}"),
                            );
                            continue;
                        }
                    };
                    self.restart_set = true;
                    self.doc.section("restart").set("policy", policy);
                    for (pk, pn) in n.entries() {
                        if pk != "condition" {
                            self.report(
                                &format!("deploy.restart_policy.{pk}"),
                                pn,
                                "jarvis's restarts back off from 100ms to 30s and give up after \
                                 [restart] burst starts within interval",
                            );
                        }
                    }
                }
                "replicas" => {
                    if !matches!(n.value, Y::Int(1)) {
                        self.report("deploy.replicas", n, "jarvis runs one instance of a unit");
                    }
                }
                "mode" if n.scalar().as_deref() == Some("replicated") => {}
                "labels" | "placement" | "update_config" | "rollback_config" | "endpoint_mode" => {
                    self.c().comment(
                        "image",
                        format!("deploy.{k} left out: it is for swarm, compose ignores it too."),
                    );
                }
                _ => self.report(&format!("deploy.{k}"), n, "not understood"),
            }
        }
    }

    fn logging(&mut self, v: &Node) {
        let driver = v.get("driver").and_then(Node::scalar);
        match driver.as_deref() {
            None | Some("json-file") | Some("local") => {}
            Some(d) => {
                self.report(
                    "logging.driver",
                    v.get("driver").unwrap_or(v),
                    format!(
                        "the {d:?} driver: jarvis keeps logs itself (`jarvisctl logs`, [logs])"
                    ),
                );
                return;
            }
        }
        for (k, n) in v.get("options").map(Node::entries).unwrap_or_default() {
            match k.as_str() {
                "max-size" => match n.scalar().map(|s| syntax::parse_size(&s)) {
                    Some(Ok(b)) => self
                        .doc
                        .section("logs")
                        .set("max_size", syntax::show_size(b)),
                    _ => self.report("logging.options.max-size", n, "not a size"),
                },
                "max-file" => match n.scalar().and_then(|s| s.parse::<i64>().ok()) {
                    Some(f) if f >= 1 => self.doc.section("logs").set("max_files", f),
                    _ => self.report("logging.options.max-file", n, "not a number"),
                },
                _ => self.doc.top.comment(
                    "description",
                    format!(
                        "logging option {k} left out: jarvis's [logs] has max_size and max_files."
                    ),
                ),
            }
        }
    }

    fn secrets(&mut self, v: &Node) {
        for item in v.items() {
            let (source, target, at) = match &item.value {
                Y::Map(_) => (
                    item.get("source").and_then(Node::scalar),
                    item.get("target").and_then(Node::scalar),
                    item,
                ),
                _ => (item.scalar(), None, item),
            };
            let Some(source) = source else { continue };
            let Some((_, def)) = self.compose.secrets.iter().find(|(k, _)| *k == source) else {
                self.report(
                    "secrets",
                    at,
                    format!("the secret {source:?} is not defined at the top level"),
                );
                continue;
            };
            let Some(file) = def.get("file").and_then(Node::scalar) else {
                let what = if def.get("environment").is_some() {
                    "comes from an environment variable; jarvis's secrets are files: write it \
                     to a file and give that file"
                } else {
                    "is not a file (external or a swarm secret); jarvis's secrets are host files"
                };
                self.report("secrets", at, format!("the secret {source:?} {what}"));
                continue;
            };
            let target = target.unwrap_or_else(|| source.clone());
            let name = match target.strip_prefix("/run/secrets/") {
                Some(t) => t.to_string(),
                None if target.starts_with('/') => {
                    self.report(
                        "secrets",
                        at,
                        format!(
                            "the target {target:?}: jarvis puts secrets under /run/secrets only"
                        ),
                    );
                    continue;
                }
                None => target,
            };
            for k in ["uid", "gid", "mode"] {
                if item.get(k).is_some() {
                    self.doc.top.comment(
                        "description",
                        format!("secret {source}: {k} left out; jarvis's secret files are the unit's user's, mode 0400."),
                    );
                }
            }
            let path = self.abs(&file).display().to_string();
            let s = self.doc.push_array("secret");
            s.set("source", path);
            s.set("target", name);
        }
    }

    fn configs(&mut self, v: &Node) {
        for item in v.items() {
            let (source, target) = match &item.value {
                Y::Map(_) => (
                    item.get("source").and_then(Node::scalar),
                    item.get("target").and_then(Node::scalar),
                ),
                _ => (item.scalar(), None),
            };
            let Some(source) = source else { continue };
            let Some((_, def)) = self.compose.configs.iter().find(|(k, _)| *k == source) else {
                self.report(
                    "configs",
                    item,
                    format!("the config {source:?} is not defined at the top level"),
                );
                continue;
            };
            let Some(file) = def.get("file").and_then(Node::scalar) else {
                self.report(
                    "configs",
                    item,
                    format!(
                        "the config {source:?} is not a file (content, environment or external): \
                         write it to a file and mount that read-only in volumes"
                    ),
                );
                continue;
            };
            let target = match target {
                Some(t) if t.starts_with('/') => t,
                Some(t) => format!("/{t}"),
                None => format!("/{source}"),
            };
            let path = self.abs(&file).display().to_string();
            self.volumes.push(format!("{path}:{target}:ro"));
            let list = self.volumes.clone();
            self.c().set("volumes", strings(&list));
            self.c().comment(
                "volumes",
                format!("config {source}: a read-only bind of {path} at {target}."),
            );
        }
    }

    fn labels(&mut self, v: &Node) {
        let mut lines = Vec::new();
        match &v.value {
            Y::Map(entries) => {
                for (k, n) in entries {
                    lines.push(format!("{k}={}", n.scalar().unwrap_or_default()));
                }
            }
            Y::Seq(_) => lines.extend(scalars(v)),
            _ => {}
        }
        for l in lines {
            self.c().comment("image", format!("label {l}"));
        }
    }

    fn links(&mut self, v: &Node) {
        for item in v.items() {
            let Some(s) = item.scalar() else { continue };
            match s.split_once(':') {
                Some((svc, alias)) if alias != svc => self.report(
                    "links",
                    item,
                    format!(
                        "the alias {alias:?} for {svc:?}: add it to {svc}'s aliases (jarvis's \
                         names are the same for every unit on a network)"
                    ),
                ),
                _ => self.c().comment(
                    "image",
                    format!(
                        "links {s}: nothing to write, units on a network reach each other by name."
                    ),
                ),
            }
        }
    }

    fn pull_policy(&mut self, v: &Node) {
        match v.scalar().as_deref() {
            Some("missing") | Some("if_not_present") => {}
            Some("build") => self.report("pull_policy", v, "jarvis cannot build images"),
            Some(p) => self.c().comment(
                "image",
                format!("pull_policy {p} left out: jarvis pulls an image when it does not have it (`jarvisctl image pull` fetches a newer one)."),
            ),
            None => {}
        }
    }

    fn platform(&mut self, v: &Node) {
        let p = v.scalar().unwrap_or_default();
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        if p == format!("linux/{arch}") {
            self.c().comment(
                "image",
                format!("platform {p}: this machine's, which jarvis pulls."),
            );
        } else {
            self.report(
                "platform",
                v,
                format!("jarvis pulls the image for this machine (linux/{arch}), not {p:?}"),
            );
        }
    }

    /// Keys that depend on others, and the defaults that differ.
    fn finish(&mut self) {
        let node = self.node;
        // Capabilities: Docker's default set has three more than jarvis's.
        let privileged = node.get("privileged").and_then(boolean) == Some(true);
        let cap_add: Vec<String> = node.get("cap_add").map(scalars).unwrap_or_default();
        let cap_drop: Vec<String> = node.get("cap_drop").map(scalars).unwrap_or_default();
        if privileged {
            if !cap_add.is_empty() || !cap_drop.is_empty() {
                self.c().comment(
                    "privileged",
                    "cap_add and cap_drop left out: a privileged container has every capability.",
                );
            }
            if node.get("device_cgroup_rules").is_some() {
                self.c().comment(
                    "privileged",
                    "device_cgroup_rules left out: a privileged container may use every device.",
                );
            }
        } else {
            let drop: Vec<String> = cap_drop.iter().map(|c| syntax::cap_name(c)).collect();
            let mut add: Vec<String> = cap_add.iter().map(|c| syntax::cap_name(c)).collect();
            let mut extra = Vec::new();
            if !drop.iter().any(|d| d == "ALL") && !add.iter().any(|a| a == "ALL") {
                for c in syntax::DOCKER_EXTRA_CAPS {
                    if !drop.iter().any(|d| d == c) && !add.iter().any(|a| a == c) {
                        extra.push(c.to_string());
                    }
                }
            }
            add.extend(extra.iter().cloned());
            // jarvis's default set lacks these, so dropping them is moot.
            let drop: Vec<String> = drop
                .into_iter()
                .filter(|d| !syntax::DOCKER_EXTRA_CAPS.contains(&d.as_str()))
                .collect();
            if !drop.is_empty() {
                self.c().set("cap_drop", strings(&drop));
            }
            if !add.is_empty() {
                self.cap_add = add.clone();
                self.c().set("cap_add", strings(&add));
            }
            if !extra.is_empty() {
                self.c().comment(
                    "cap_add",
                    format!(
                        "{} are in Docker's default capabilities and not in jarvis's; kept so \
                         the service has what it had under compose.",
                        extra.join(", ")
                    ),
                );
            }
        }
        if !self.aliases.is_empty() {
            let network = self
                .doc
                .find("container")
                .and_then(|c| c.get("network"))
                .and_then(|n| n.as_str())
                .map(str::to_string);
            match network {
                None => {
                    let list = self.aliases.clone();
                    self.c().set("aliases", strings(&list));
                    let nets = self
                        .doc
                        .find("container")
                        .and_then(|c| c.get("networks"))
                        .and_then(|n| n.as_array())
                        .map(|a| a.len())
                        .unwrap_or(0);
                    if nets > 1 {
                        self.c().comment(
                            "aliases",
                            "jarvis's aliases hold on every network the unit joins.",
                        );
                    }
                }
                Some(_) => {
                    if let Some(a) = node.get("networks") {
                        self.report(
                            "networks",
                            a,
                            "aliases on a unit without a network of its own: it has no name on one",
                        );
                    }
                }
            }
        }
        // Security: compose does not set no_new_privileges.
        let nnp = self
            .doc
            .find("security")
            .and_then(|s| s.get("no_new_privileges"))
            .and_then(|v| v.as_bool());
        if nnp.is_none() {
            let s = self.doc.section("security");
            s.set("no_new_privileges", true);
            s.comment(
                "no_new_privileges",
                "jarvis's default, stricter than compose's (false): setuid and setcap programs \
                 (su, sudo, a setuid ping) gain nothing. Set false if the image needs them.",
            );
        }
        if !self.restart_set {
            let r = self.doc.section("restart");
            r.set("policy", "never");
            r.comment(
                "policy",
                "No restart in compose, whose default is \"no\" (jarvis's default is on-failure).",
            );
        }
    }
}

/// The source of a mount.
enum VolumeSource {
    /// A host path, and whether to create it when missing.
    Bind(PathBuf, bool),
    /// A named volume's jarvis name.
    Named(String),
}

/// The name an anonymous volume gets: `<project>_<service>_<path>`.
fn anonymous_name(project: &str, service: &str, target: &str) -> String {
    let path: String = target
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{project}_{service}_{path}")
}

/// A healthcheck test as argv: `Some(None)` for NONE.
fn health_argv(test: &Node) -> Option<Option<Vec<String>>> {
    match &test.value {
        Y::Str(s) => Some(Some(vec!["/bin/sh".into(), "-c".into(), s.clone()])),
        Y::Seq(items) => {
            let words: Vec<String> = items.iter().filter_map(Node::scalar).collect();
            match words.split_first() {
                Some((first, rest)) => match first.as_str() {
                    "NONE" => Some(None),
                    "CMD" if !rest.is_empty() => Some(Some(rest.to_vec())),
                    "CMD-SHELL" if !rest.is_empty() => {
                        Some(Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]))
                    }
                    _ => None,
                },
                None => None,
            }
        }
        _ => None,
    }
}

/// A YAML boolean, or a string compose reads as one.
fn boolean(n: &Node) -> Option<bool> {
    match &n.value {
        Y::Bool(b) => Some(*b),
        Y::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The scalars of a sequence, or the one scalar.
fn scalars(n: &Node) -> Vec<String> {
    match &n.value {
        Y::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
        _ => n.scalar().into_iter().collect(),
    }
}

/// A file mode as compose writes it, in octal digits: `1777`, `"0755"`,
/// `0o755`.
fn mode_of(n: &Node) -> Option<u32> {
    match &n.value {
        // Compose reads the digits as octal: 1777 is 0o1777.
        Y::Int(i) => u32::from_str_radix(&i.to_string(), 8).ok(),
        Y::Str(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        _ => None,
    }
}

/// `path` without `.` components, `..` taken back, no repeated '/'.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
