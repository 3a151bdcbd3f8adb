//! Units to a Nomad job, in the JSON form `nomad job run -json` reads: the
//! API's job (`api.Job` of Nomad's Go package, field names as Go writes
//! them, durations as integer nanoseconds) wrapped as `{"Job": {...}}`.
//!
//! One job for the units, of type `service`, with one group per unit
//! (`Count` 1) named after it, holding one task of the same name:
//!
//! - the unit's default form ([`Unit::exec`], the one `run` picks) decides
//!   the driver: `exec` for a native unit (`command`/`args`, `work_dir`,
//!   `User`, every capability dropped but `[security] capabilities`, as
//!   jarvis does it), `docker` for a container (image, entrypoint, command,
//!   ports, volumes, mounts, capabilities, devices, ...). A container whose
//!   image is an OCI layout directory is exported in its native form when
//!   it has one, else left out (the docker driver pulls from registries).
//! - what Nomad cannot say as the unit says it is written down in the
//!   group's `Meta`, as `jarvis_note_<topic>` (values are strings), so the
//!   job says itself what an operator has to look at.
//!
//! Networking: every group uses Nomad's `host` network mode (no CNI plugins
//! needed). A native unit and a container with `network = "host"` bind the
//! client's ports themselves: the port of their health check is a reserved
//! (static) port. A bridged container keeps Docker's own bridge, and its
//! `ports` are reserved ports mapped to the container's (`Value` → `To`).
//!
//! Services use Nomad's own service discovery (`Provider` "nomad"), whose
//! checks are http and tcp; a unit with an `exec` health check gets a
//! Consul service instead, since only Consul runs script checks.
//!
//! `depends_on`: a prestart task per dependency (`wait-<dep>`) that waits
//! until the dependency's service is registered (`started`) or also answers
//! its own health check at its registered address (`healthy`); `completed`
//! has no cross-group equivalent and is a note.

use std::collections::BTreeMap;
use std::time::Duration;

use jarvis_unit::{
    Condition, Container, DeviceMatch, Exec, GpuWant, Kind, Native, Network, Probe, RestartPolicy,
    Secret, Unit, VolumeSource, OCI_LAYOUT_PREFIX,
};
use serde_json::{json, Map, Value};

use crate::{Document, Export, Skipped};

#[cfg(test)]
mod tests;

/// The MHz a task's `CPU` counts per CPU of `[resources] cpus` (Nomad
/// reserves CPU in MHz; jarvis limits it in CPUs).
pub const MHZ_PER_CPU: u64 = 1000;

/// The image of the dependency-waiting tasks of container units: a shell,
/// `wget` and `nc`.
pub const WAIT_IMAGE: &str = "busybox:1.36";

/// Nomad's smallest restart interval.
const MIN_RESTART_INTERVAL: Duration = Duration::from_secs(5);

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The job's ID and name.
    pub job: String,
    /// `Datacenters` of the job.
    pub datacenters: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            job: "jarvis".into(),
            datacenters: vec!["*".into()],
        }
    }
}

/// One job for all of `units`: a group per unit, in name order. No
/// document when no unit could be exported (a job needs a group).
pub fn export(units: &[Unit], opts: &Options) -> Export {
    let mut sorted: Vec<&Unit> = units.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));

    let mut skipped = Vec::new();
    let mut picked: Vec<(Unit, Option<String>)> = Vec::new();
    for u in sorted {
        match pick_form(u) {
            Ok(p) => picked.push(p),
            Err(why) => skipped.push(Skipped {
                unit: u.name.clone(),
                why,
            }),
        }
    }
    let services: BTreeMap<String, ServiceInfo> = picked
        .iter()
        .map(|(u, _)| (u.name.clone(), service_info(u)))
        .collect();
    let groups: Vec<Value> = picked
        .iter()
        .map(|(u, note)| group(u, note.as_deref(), &services))
        .collect();

    let mut documents = Vec::new();
    if !groups.is_empty() {
        let job = json!({
            "Job": {
                "ID": opts.job,
                "Name": opts.job,
                "Type": "service",
                "Datacenters": opts.datacenters,
                "Meta": {
                    "jarvis_exported_by": "jarvisctl export nomad",
                    "jarvis_cpu_mhz_per_cpu": MHZ_PER_CPU.to_string(),
                },
                "TaskGroups": groups,
            }
        });
        let mut text = serde_json::to_string_pretty(&job).expect("a JSON value serializes");
        text.push('\n');
        documents.push(Document {
            name: format!("{}.nomad.json", opts.job),
            unit: None,
            text,
        });
    }
    Export { documents, skipped }
}

/// The form exported and a note on the choice; `Err` with why when there
/// is none Nomad can run.
fn pick_form(u: &Unit) -> Result<(Unit, Option<String>), String> {
    let other = u.kind().other();
    let both = u.has_form(other);
    if let Exec::Container(c) = &u.exec {
        if c.image.starts_with(OCI_LAYOUT_PREFIX) {
            let why = format!(
                "its image {:?} is an OCI layout directory, which the docker driver cannot pull \
                 (push it to a registry)",
                c.image
            );
            return match u.with_form(Kind::Native) {
                Some(native) => Ok((
                    native,
                    Some(format!(
                        "native, the container form is not exportable: {why}"
                    )),
                )),
                None => Err(why),
            };
        }
    }
    let note = both.then(|| {
        format!(
            "{}, the form run = \"{}\" picks without a measurement; the unit has a {} form too",
            u.kind().as_str(),
            u.run.as_str(),
            other.as_str()
        )
    });
    Ok((u.clone(), note))
}

/// What dependents need to know of a unit's service.
#[derive(Debug, Clone)]
struct ServiceInfo {
    name: String,
    provider: &'static str,
    /// The health probe the dependents re-run at the registered address
    /// (`None` for exec probes: Consul only lists passing instances).
    probe: Option<RemoteProbe>,
}

#[derive(Debug, Clone)]
enum RemoteProbe {
    Http { https: bool, path: String },
    Tcp,
}

fn service_info(u: &Unit) -> ServiceInfo {
    let (provider, probe) = match u.health.as_ref().map(|h| &h.probe) {
        Some(Probe::Exec(_)) => ("consul", None),
        Some(Probe::Http(url)) => (
            "nomad",
            parse_http(url).map(|h| RemoteProbe::Http {
                https: h.https,
                path: h.path,
            }),
        ),
        Some(Probe::Tcp(_)) => ("nomad", Some(RemoteProbe::Tcp)),
        None => ("nomad", None),
    };
    // A service with no address Nomad reaches registers without a port.
    let probe = probe.filter(|_| net_of(u) != Net::Closed);
    ServiceInfo {
        name: service_name(&u.name),
        provider,
        probe,
    }
}

/// A Nomad service name (RFC 1123: letters, digits, '-') for a unit name.
fn service_name(unit: &str) -> String {
    let s: String = unit
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// A Nomad port label (letters, digits, '_').
fn label(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The notes of a group, as its `Meta`.
#[derive(Default)]
struct Notes(BTreeMap<String, String>);

impl Notes {
    fn add(&mut self, topic: &str, text: impl Into<String>) {
        let key = format!("jarvis_note_{}", label(topic));
        let text = text.into();
        match self.0.get_mut(&key) {
            Some(v) => {
                v.push_str("; ");
                v.push_str(&text);
            }
            None => {
                self.0.insert(key, text);
            }
        }
    }
}

/// The group's network: reserved and dynamic ports.
#[derive(Default)]
struct Ports {
    reserved: Vec<Value>,
    dynamic: Vec<Value>,
}

impl Ports {
    fn label_of_value(&self, value: u16) -> Option<String> {
        self.reserved
            .iter()
            .find(|p| p["Value"] == json!(value))
            .map(|p| p["Label"].as_str().unwrap_or_default().to_string())
    }

    fn label_of_to(&self, to: u16) -> Option<String> {
        self.reserved
            .iter()
            .chain(&self.dynamic)
            .find(|p| p["To"] == json!(to))
            .map(|p| p["Label"].as_str().unwrap_or_default().to_string())
    }

    fn labels(&self) -> Vec<String> {
        self.reserved
            .iter()
            .chain(&self.dynamic)
            .filter_map(|p| p["Label"].as_str().map(str::to_string))
            .collect()
    }
}

/// How the unit's processes reach the network, for ports and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// The client's own network: a native unit, `network = "host"`.
    Host,
    /// Docker's bridge: ports are mapped.
    Bridge,
    /// No reachable address: `none`, `unit:NAME`.
    Closed,
}

fn net_of(u: &Unit) -> Net {
    match &u.exec {
        Exec::Native(_) => Net::Host,
        Exec::Container(c) => match c.network {
            Network::Host => Net::Host,
            Network::Bridge => Net::Bridge,
            Network::None | Network::Unit(_) => Net::Closed,
        },
    }
}

fn group(u: &Unit, form_note: Option<&str>, services: &BTreeMap<String, ServiceInfo>) -> Value {
    let mut notes = Notes::default();
    if let Some(n) = form_note {
        notes.add("form", n);
    }
    if let Some(d) = &u.description {
        notes.0.insert("jarvis_description".into(), d.clone());
    }
    let net = net_of(u);
    let mut ports = Ports::default();
    if let Exec::Container(c) = &u.exec {
        published_ports(c, &mut ports, &mut notes);
    }

    let service = service(u, net, &mut ports, &mut notes);

    let mut task = match &u.exec {
        Exec::Native(n) => native_task(u, n, &mut notes),
        Exec::Container(c) => container_task(u, c, &ports, &mut notes),
    };
    common_task(u, &mut task, &mut notes);

    let mut tasks = Vec::new();
    for dep in &u.depends_on {
        if let Some(t) = wait_task(u, &dep.unit, dep.condition, services, &mut notes) {
            tasks.push(t);
        }
    }
    tasks.push(Value::Object(task));

    let mut g = Map::new();
    g.insert("Name".into(), json!(u.name));
    g.insert("Count".into(), json!(1));
    g.insert("RestartPolicy".into(), restart_policy(u, &mut notes));
    let mut network = Map::new();
    network.insert("Mode".into(), json!("host"));
    if !ports.reserved.is_empty() {
        network.insert("ReservedPorts".into(), json!(ports.reserved));
    }
    if !ports.dynamic.is_empty() {
        network.insert("DynamicPorts".into(), json!(ports.dynamic));
    }
    g.insert("Networks".into(), json!([network]));
    g.insert("Services".into(), json!([service]));
    g.insert("Tasks".into(), json!(tasks));
    g.insert("Meta".into(), json!(notes.0));
    Value::Object(g)
}

/// `ports` of a bridged container: reserved ports of the client, mapped to
/// the container's (Nomad's docker driver maps tcp and udp alike).
fn published_ports(c: &Container, ports: &mut Ports, notes: &mut Notes) {
    for p in &c.ports {
        if let Some(ip) = p.host_ip {
            notes.add(
                "ports",
                format!(
                    "{p}: published on the client's address, not only on {ip} (Nomad names host \
                     networks, not addresses)"
                ),
            );
        }
        if ports.label_of_value(p.host_port).is_some() {
            // The same host port for tcp and udp: one Nomad port maps both.
            continue;
        }
        ports.reserved.push(json!({
            "Label": format!("p{}", p.host_port),
            "Value": p.host_port,
            "To": p.container_port,
        }));
    }
    if !c.ports.is_empty() && c.network != Network::Bridge {
        notes.add(
            "ports",
            "published ports of a non-bridge network are not mapped",
        );
    }
}

/// A parsed `http` probe URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpTarget {
    https: bool,
    host: String,
    port: u16,
    /// The path and query, from '/'.
    path: String,
}

fn parse_http(url: &str) -> Option<HttpTarget> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default = if https { 443 } else { 80 };
    let (host, port) = split_host_port(authority, default)?;
    Some(HttpTarget {
        https,
        host,
        port,
        path,
    })
}

/// `host:port`, `[v6]:port` or `host` (with `default`).
fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if let Some(after) = s.strip_prefix('[') {
        let (host, rest) = after.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((s.to_string(), default)),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The port label a check of `port` uses, adding a port where none maps it.
fn check_port_label(net: Net, port: u16, ports: &mut Ports) -> Option<String> {
    match net {
        Net::Host => Some(ports.label_of_value(port).unwrap_or_else(|| {
            ports
                .reserved
                .push(json!({ "Label": "health", "Value": port }));
            "health".to_string()
        })),
        Net::Bridge => Some(ports.label_of_to(port).unwrap_or_else(|| {
            ports.dynamic.push(json!({ "Label": "health", "To": port }));
            "health".to_string()
        })),
        Net::Closed => None,
    }
}

/// The group's service, with its check from `[health]`.
fn service(u: &Unit, net: Net, ports: &mut Ports, notes: &mut Notes) -> Value {
    let info = service_info(u);
    let mut s = Map::new();
    s.insert("Name".into(), json!(info.name));
    s.insert("Provider".into(), json!(info.provider));
    let mut port_label = None;
    if let Some(h) = &u.health {
        let mut check = Map::new();
        check.insert("Name".into(), json!(format!("{}-health", info.name)));
        let target = match &h.probe {
            Probe::Http(url) => match parse_http(url) {
                Some(t) => {
                    check.insert("Type".into(), json!("http"));
                    check.insert("Path".into(), json!(t.path));
                    if t.https {
                        check.insert("Protocol".into(), json!("https"));
                    }
                    Some((t.host, t.port))
                }
                None => {
                    notes.add(
                        "health",
                        format!("the URL {url:?} is not http(s)://HOST[:PORT]"),
                    );
                    None
                }
            },
            Probe::Tcp(addr) => {
                check.insert("Type".into(), json!("tcp"));
                split_host_port(addr, 0).filter(|(_, p)| *p != 0)
            }
            Probe::Exec(argv) => {
                check.insert("Type".into(), json!("script"));
                check.insert("Command".into(), json!(argv[0]));
                check.insert("Args".into(), json!(argv[1..]));
                check.insert("TaskName".into(), json!(u.name));
                notes.add(
                    "health",
                    "the exec check is a script check, which only Consul runs: the service's \
                     provider is consul",
                );
                None
            }
        };
        let mut ok = matches!(h.probe, Probe::Exec(_));
        if let Some((host, port)) = target {
            match check_port_label(net, port, ports) {
                Some(l) => {
                    check.insert("PortLabel".into(), json!(l));
                    port_label = Some(l);
                    ok = true;
                    if !is_loopback(&host) {
                        notes.add(
                            "health",
                            format!("the check probes the task's own address, not {host}"),
                        );
                    } else if net == Net::Host {
                        notes.add(
                            "health",
                            format!(
                                "the check probes the client's address on port {port}, not \
                                 {host}: the service must listen on it"
                            ),
                        );
                    }
                }
                None => notes.add(
                    "health",
                    "the container has no address Nomad can probe (network none or unit:NAME): \
                     no check",
                ),
            }
        }
        if ok {
            check.insert("Interval".into(), json!(nanos(h.interval)));
            check.insert("Timeout".into(), json!(nanos(h.timeout)));
            match h.on_unhealthy {
                jarvis_unit::OnUnhealthy::Restart => {
                    check.insert(
                        "CheckRestart".into(),
                        json!({
                            "Limit": h.retries,
                            "Grace": nanos(h.start_period),
                            "IgnoreWarnings": false,
                        }),
                    );
                }
                jarvis_unit::OnUnhealthy::Ignore => notes.add(
                    "health",
                    format!(
                        "on_unhealthy = ignore: no check_restart (retries {} only counts with \
                         restart)",
                        h.retries
                    ),
                ),
            }
            if !h.start_period.is_zero() {
                notes.add(
                    "health",
                    format!(
                        "start_interval {:?} has no Nomad equivalent: the check runs every \
                         interval from the start",
                        h.start_interval
                    ),
                );
            }
            s.insert("Checks".into(), json!([check]));
        }
    }
    if port_label.is_none() {
        port_label = ports.labels().into_iter().next();
    }
    if let Some(l) = &port_label {
        s.insert("PortLabel".into(), json!(l));
    }
    Value::Object(s)
}

/// `[restart]` as the group's restart policy.
fn restart_policy(u: &Unit, notes: &mut Notes) -> Value {
    let r = &u.restart;
    if r.policy == RestartPolicy::Never || r.burst == 0 {
        if r.policy != RestartPolicy::Never {
            notes.add("restart", "burst 0: no restarts");
        }
        return json!({
            "Attempts": 0,
            "Interval": nanos(r.interval.max(MIN_RESTART_INTERVAL)),
            "Delay": nanos(r.delay),
            "Mode": "fail",
        });
    }
    let needed = r.delay.saturating_mul(r.burst);
    let interval = r.interval.max(MIN_RESTART_INTERVAL).max(needed);
    if interval != r.interval {
        notes.add(
            "restart",
            format!(
                "interval {:?} raised to {interval:?} (Nomad's least, and at least burst × delay)",
                r.interval
            ),
        );
    }
    if r.policy == RestartPolicy::OnFailure {
        notes.add(
            "restart",
            "on-failure: Nomad restarts a service task whatever its exit status",
        );
    }
    notes.add(
        "restart",
        format!(
            "the delay is fixed at {:?} (jarvis doubles it up to max_delay {:?})",
            r.delay, r.max_delay
        ),
    );
    json!({
        "Attempts": r.burst,
        "Interval": nanos(interval),
        "Delay": nanos(r.delay),
        "Mode": "delay",
    })
}

/// A capability as the drivers' `cap_add`/`cap_drop` write it: `net_admin`,
/// `all`.
fn cap(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    lower.strip_prefix("cap_").unwrap_or(&lower).to_string()
}

fn native_task(u: &Unit, n: &Native, notes: &mut Notes) -> Map<String, Value> {
    let mut config = Map::new();
    config.insert("command".into(), json!(n.command[0]));
    if n.command.len() > 1 {
        config.insert("args".into(), json!(n.command[1..]));
    }
    if let Some(wd) = &n.working_dir {
        config.insert("work_dir".into(), json!(wd));
    }
    // As jarvis runs a native unit: every capability dropped but those kept.
    config.insert("cap_drop".into(), json!(["all"]));
    if !u.security.capabilities.is_empty() {
        let caps: Vec<String> = u.security.capabilities.iter().map(|c| cap(c)).collect();
        config.insert("cap_add".into(), json!(caps));
        notes.add(
            "security",
            "cap_add needs the capabilities in the exec driver's allow_caps on the client",
        );
    }
    let user = n.user.clone().unwrap_or_else(|| {
        notes.add(
            "user",
            "runs as root, as jarvis does without user: the client's user.denylist must allow it",
        );
        "root".into()
    });
    if n.group.is_some() || !n.supplementary_groups.is_empty() {
        notes.add(
            "user",
            format!(
                "group {:?} and supplementary_groups {:?}: the exec driver runs with the user's \
                 own groups",
                n.group.as_deref().unwrap_or("-"),
                n.supplementary_groups
            ),
        );
    }
    for d in &u.devices {
        notes.add(
            "devices",
            format!(
                "{}: the exec driver sees the client's /dev; the node must be at that path \
                 (a udev rule){}",
                d.as_path,
                if d.optional {
                    ""
                } else {
                    ", and the task does not wait for it"
                }
            ),
        );
    }
    if let Some(cpuset) = &u.resources.cpuset {
        notes.add(
            "resources",
            format!("cpuset {cpuset:?}: the exec driver pins no CPUs"),
        );
    }
    if let Some(pids) = u.resources.pids_max {
        notes.add(
            "resources",
            format!("pids_max {pids}: no Nomad equivalent for the exec driver"),
        );
    }
    let mut t = Map::new();
    t.insert("Name".into(), json!(u.name));
    t.insert("Driver".into(), json!("exec"));
    t.insert("User".into(), json!(user));
    t.insert("Config".into(), Value::Object(config));
    t
}

fn container_task(u: &Unit, c: &Container, ports: &Ports, notes: &mut Notes) -> Map<String, Value> {
    let mut config = Map::new();
    config.insert("image".into(), json!(c.image));
    if let Some(e) = &c.entrypoint {
        config.insert("entrypoint".into(), json!(e));
    }
    if let Some(cmd) = &c.command {
        if let Some((first, rest)) = cmd.split_first() {
            config.insert("command".into(), json!(first));
            if !rest.is_empty() {
                config.insert("args".into(), json!(rest));
            }
        }
    }
    if let Some(wd) = &c.working_dir {
        config.insert("work_dir".into(), json!(wd));
    }
    match &c.network {
        Network::Bridge => {
            config.insert("hostname".into(), json!(c.hostname_or(&u.name)));
            let labels = ports.labels();
            if !labels.is_empty() {
                config.insert("ports".into(), json!(labels));
            }
            if c.networks.iter().any(|n| n != Container::DEFAULT_NETWORK) {
                notes.add(
                    "network",
                    format!(
                        "networks {:?}: Docker's default bridge; units find each other through \
                         Nomad's service discovery",
                        c.networks
                    ),
                );
            }
            if !c.aliases.is_empty() {
                notes.add(
                    "network",
                    format!(
                        "aliases {:?}: other units find this one by its service name",
                        c.aliases
                    ),
                );
            }
        }
        Network::Host => {
            config.insert("network_mode".into(), json!("host"));
        }
        Network::None => {
            config.insert("network_mode".into(), json!("none"));
        }
        Network::Unit(other) => notes.add(
            "network",
            format!(
                "unit:{other}: a group cannot join another group's network namespace; it runs \
                 on Docker's default bridge"
            ),
        ),
    }
    if !c.extra_hosts.is_empty() {
        let hosts: Vec<String> = c
            .extra_hosts
            .iter()
            .map(|h| match h.target {
                jarvis_unit::HostTarget::Gateway => {
                    format!("{}:{}", h.name, jarvis_unit::HostTarget::GATEWAY)
                }
                jarvis_unit::HostTarget::Addr(ip) => format!("{}:{ip}", h.name),
            })
            .collect();
        config.insert("extra_hosts".into(), json!(hosts));
    }
    if !c.dns.is_empty() {
        let dns: Vec<String> = c.dns.iter().map(|d| d.to_string()).collect();
        config.insert("dns_servers".into(), json!(dns));
    }
    let mut binds: Vec<String> = Vec::new();
    let mut mounts: Vec<Value> = Vec::new();
    for v in &c.volumes {
        match &v.source {
            VolumeSource::Bind(host) => {
                binds.push(format!(
                    "{host}:{}{}",
                    v.container,
                    if v.read_only { ":ro" } else { "" }
                ));
            }
            VolumeSource::Named(name) => mounts.push(json!({
                "type": "volume",
                "source": name,
                "target": v.container,
                "readonly": v.read_only,
            })),
        }
    }
    if !binds.is_empty() {
        notes.add(
            "volumes",
            "host paths: the docker plugin's volumes.enabled must be true on the client, and the \
             paths must exist there",
        );
    }
    if mounts.iter().any(|m| m["type"] == "volume") {
        notes.add(
            "volumes",
            "named volumes are Docker volumes on the client the group runs on",
        );
    }
    for s in &u.secrets {
        binds.push(format!(
            "secrets/{}:{}/{}:ro",
            s.target,
            Secret::CONTAINER_DIR,
            s.target
        ));
    }
    for t in &c.tmpfs {
        let mut m = Map::new();
        m.insert("type".into(), json!("tmpfs"));
        m.insert("target".into(), json!(t.path));
        let mut o = Map::new();
        if let Some(size) = t.size {
            o.insert("size".into(), json!(size));
        }
        if let Some(mode) = t.mode {
            o.insert("mode".into(), json!(mode));
        }
        if !o.is_empty() {
            m.insert("tmpfs_options".into(), Value::Object(o));
        }
        mounts.push(Value::Object(m));
    }
    if !binds.is_empty() {
        config.insert("volumes".into(), json!(binds));
    }
    if !mounts.is_empty() {
        config.insert("mount".into(), json!(mounts));
    }
    if c.read_only {
        config.insert("readonly_rootfs".into(), json!(true));
    }
    if let Some(shm) = c.shm_size {
        config.insert("shm_size".into(), json!(shm));
    }
    if !c.group_add.is_empty() {
        config.insert("group_add".into(), json!(c.group_add));
    }
    if c.privileged {
        config.insert("privileged".into(), json!(true));
        notes.add(
            "security",
            "privileged: the docker plugin's allow_privileged must be true on the client",
        );
    }
    let mut cap_add: Vec<String> = c.cap_add.iter().map(|c| cap(c)).collect();
    for k in &u.security.capabilities {
        let k = cap(k);
        if !cap_add.contains(&k) {
            cap_add.push(k);
        }
    }
    if !cap_add.is_empty() {
        config.insert("cap_add".into(), json!(cap_add));
        notes.add(
            "security",
            "cap_add needs the capabilities in the docker plugin's allow_caps on the client",
        );
    }
    if !c.cap_drop.is_empty() {
        let drop: Vec<String> = c.cap_drop.iter().map(|c| cap(c)).collect();
        config.insert("cap_drop".into(), json!(drop));
    }
    if u.security.no_new_privileges {
        config.insert("security_opt".into(), json!(["no-new-privileges"]));
    }
    if !c.device_cgroup_rules.is_empty() {
        let rules: Vec<String> = c
            .device_cgroup_rules
            .iter()
            .map(|r| r.to_string())
            .collect();
        notes.add(
            "devices",
            format!(
                "device_cgroup_rules {rules:?}: the docker driver has no such option \
                 (privileged, or devices)"
            ),
        );
    }
    if !c.sysctls.is_empty() {
        config.insert("sysctl".into(), json!([c.sysctls]));
    }
    if !c.ulimits.is_empty() {
        let limits: BTreeMap<&str, String> = c
            .ulimits
            .iter()
            .map(|(k, v)| {
                let n = |x: u64| {
                    if x == jarvis_unit::Ulimit::UNLIMITED {
                        "-1".to_string()
                    } else {
                        x.to_string()
                    }
                };
                (k.as_str(), format!("{}:{}", n(v.soft), n(v.hard)))
            })
            .collect();
        config.insert("ulimit".into(), json!([limits]));
    }
    if c.init {
        config.insert("init".into(), json!(true));
    }
    if !u.devices.is_empty() {
        let devices: Vec<Value> = u
            .devices
            .iter()
            .map(|d| {
                let host = match &d.matcher {
                    DeviceMatch::Path(p) => p.clone(),
                    DeviceMatch::Usb {
                        vendor,
                        product,
                        serial,
                    } => {
                        notes.add(
                            "devices",
                            format!(
                                "usb {vendor}:{product}{}: a udev rule on the client must make \
                                 {} for it",
                                serial
                                    .as_deref()
                                    .map(|s| format!(" serial {s}"))
                                    .unwrap_or_default(),
                                d.as_path
                            ),
                        );
                        d.as_path.clone()
                    }
                };
                if d.optional {
                    notes.add(
                        "devices",
                        format!("{}: optional in jarvis; docker fails without it", d.as_path),
                    );
                }
                json!({
                    "host_path": host,
                    "container_path": d.as_path,
                    "cgroup_permissions": "rwm",
                })
            })
            .collect();
        config.insert("devices".into(), json!(devices));
    }
    if let Some(cpuset) = &u.resources.cpuset {
        config.insert("cpuset_cpus".into(), json!(cpuset));
    }
    if let Some(pids) = u.resources.pids_max {
        config.insert("pids_limit".into(), json!(pids));
        notes.add(
            "resources",
            format!(
                "pids_max {pids}: the docker driver's pids_limit (Nomad's resources have none)"
            ),
        );
    }
    let mut t = Map::new();
    t.insert("Name".into(), json!(u.name));
    t.insert("Driver".into(), json!("docker"));
    if let Some(user) = &c.user {
        t.insert("User".into(), json!(user));
    }
    t.insert("Config".into(), Value::Object(config));
    t
}

/// What every task of a unit gets, whatever the driver: env, templates,
/// resources, stop and logs.
fn common_task(u: &Unit, t: &mut Map<String, Value>, notes: &mut Notes) {
    let mut env = u.env.clone();
    if !u.secrets.is_empty() && u.kind() == Kind::Native {
        env.insert(
            "CREDENTIALS_DIRECTORY".into(),
            "${NOMAD_SECRETS_DIR}".into(),
        );
    }
    if !env.is_empty() {
        t.insert("Env".into(), json!(env));
    }

    let mut templates = Vec::new();
    for (i, file) in u.env_file.iter().enumerate() {
        if Secret::is_age(file) {
            notes.add(
                "env_file",
                format!(
                    "{}: age-encrypted, not exported: decrypt it into a Nomad variable",
                    file.display()
                ),
            );
            continue;
        }
        templates.push(json!({
            "SourcePath": file.display().to_string(),
            "DestPath": format!("secrets/env_file_{i}.env"),
            "Envvars": true,
            "ChangeMode": "restart",
        }));
        notes.add(
            "env_file",
            format!(
                "{}: must exist on the client (and the client's template.disable_file_sandbox \
                 be true); read as a template, so {{{{ in it is template syntax; [env] wins",
                file.display()
            ),
        );
    }
    for s in &u.secrets {
        if Secret::is_age(&s.source) {
            notes.add(
                "secret",
                format!(
                    "{}: age-encrypted, not exported: decrypt it into a Nomad variable",
                    s.source.display()
                ),
            );
            continue;
        }
        templates.push(json!({
            "SourcePath": s.source.display().to_string(),
            "DestPath": format!("secrets/{}", s.target),
            "Perms": format!("{:o}", s.mode),
            "ChangeMode": "restart",
        }));
        notes.add(
            "secret",
            format!(
                "{}: must exist on the client (template.disable_file_sandbox); the task sees it \
                 in its secrets directory{}",
                s.source.display(),
                if u.kind() == Kind::Container {
                    ", bound at /run/secrets"
                } else {
                    " ($CREDENTIALS_DIRECTORY)"
                }
            ),
        );
    }
    if !templates.is_empty() {
        t.insert("Templates".into(), json!(templates));
    }

    t.insert("Resources".into(), resources(u, notes));
    t.insert("KillTimeout".into(), json!(nanos(u.stop.timeout)));
    t.insert("KillSignal".into(), json!(signal_name(u.stop.signal)));
    if u.stop.timeout > Duration::from_secs(30) {
        notes.add(
            "stop",
            format!(
                "timeout {:?}: above the client's default max_kill_timeout (30s)",
                u.stop.timeout
            ),
        );
    }
    t.insert(
        "LogConfig".into(),
        json!({
            "MaxFiles": u.logs.max_files,
            "MaxFileSizeMB": u.logs.max_size.div_ceil(MIB).max(1),
        }),
    );
}

const MIB: u64 = 1024 * 1024;

fn resources(u: &Unit, notes: &mut Notes) -> Value {
    let r = &u.resources;
    let mut res = Map::new();
    if let Some(cpus) = r.cpus {
        let mhz = ((cpus * MHZ_PER_CPU as f64).ceil() as u64).max(1);
        res.insert("CPU".into(), json!(mhz));
    }
    match r.memory_max {
        Some(bytes) => {
            let mb = bytes.div_ceil(MIB).max(1);
            res.insert("MemoryMB".into(), json!(mb));
            res.insert("MemoryMaxMB".into(), json!(mb));
        }
        None => notes.add(
            "resources",
            "no memory_max: Nomad's default reservation (300 MB) is the task's limit",
        ),
    }
    if let Some(w) = r.cpu_weight {
        notes.add(
            "resources",
            format!("cpu_weight {w}: Nomad weighs CPU by the MHz reserved"),
        );
    }
    if let Some(gpu) = &u.gpu {
        let name = match gpu.want {
            GpuWant::Nvidia => Some("nvidia/gpu"),
            GpuWant::Amd => Some("amd/gpu"),
            GpuWant::Auto => {
                notes.add(
                    "gpu",
                    "want auto: any GPU; Nomad waits for one instead of falling back to the CPU",
                );
                Some("gpu")
            }
            GpuWant::Cpu => {
                notes.add("gpu", "want cpu: no device requested");
                None
            }
        };
        if let Some(name) = name {
            let mut d = Map::new();
            d.insert("Name".into(), json!(name));
            d.insert("Count".into(), json!(gpu.count));
            if gpu.min_vram > 0 {
                d.insert(
                    "Constraints".into(),
                    json!([{
                        "LTarget": "${device.attr.memory}",
                        "Operand": ">=",
                        "RTarget": format!("{} MiB", gpu.min_vram.div_ceil(MIB)),
                    }]),
                );
                notes.add(
                    "gpu",
                    "min_vram is asked of the GPU's total memory (Nomad does not count what other \
                     tasks use)",
                );
            }
            res.insert("Devices".into(), json!([d]));
        }
        if gpu.verify.is_some() || gpu.on_fallback == jarvis_unit::OnFallback::Restart {
            notes.add(
                "gpu",
                "verify and on_fallback are jarvis's own checks: not exported",
            );
        }
    }
    Value::Object(res)
}

/// A signal's name as Nomad's `kill_signal` takes it.
fn signal_name(n: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("SIGRTMIN+{}", n - 34), |s| s.to_string())
}

/// A prestart task that waits for `dep` as `condition` asks; `None` (and a
/// note) where Nomad cannot wait for it.
fn wait_task(
    u: &Unit,
    dep: &str,
    condition: Condition,
    services: &BTreeMap<String, ServiceInfo>,
    notes: &mut Notes,
) -> Option<Value> {
    let Some(info) = services.get(dep) else {
        notes.add(
            "depends_on",
            format!("{dep}: not in this job; not waited for"),
        );
        return None;
    };
    if condition == Condition::Completed {
        notes.add(
            "depends_on",
            format!(
                "{dep} completed: Nomad cannot wait across groups for a task to finish; run \
                 {dep} first (a batch job) or make it a prestart task of this group"
            ),
        );
        return None;
    }
    let lookup = if info.provider == "consul" {
        "service"
    } else {
        "nomadService"
    };
    let tmpl = format!(
        "{{{{ range {lookup} \"{}\" }}}}DEP_ADDR={{{{ .Address }}}}\nDEP_PORT={{{{ .Port }}}}\n{{{{ end }}}}",
        info.name
    );
    let registered = "[ -n \"$DEP_ADDR\" ]";
    let test = match (condition, &info.probe) {
        (Condition::Healthy, Some(RemoteProbe::Http { https, path })) => format!(
            "{registered} && wget -q -O /dev/null \"{}://$DEP_ADDR:$DEP_PORT{path}\"",
            if *https { "https" } else { "http" }
        ),
        (Condition::Healthy, Some(RemoteProbe::Tcp)) => {
            format!("{registered} && nc -z -w 2 \"$DEP_ADDR\" \"$DEP_PORT\"")
        }
        _ => registered.to_string(),
    };
    let script = format!(
        "until {test}; do echo 'waiting for {dep} ({})'; sleep 2; done",
        condition.as_str()
    );
    let (driver, config, user) = match u.kind() {
        Kind::Container => (
            "docker",
            json!({ "image": WAIT_IMAGE, "command": "sh", "args": ["-c", script] }),
            None,
        ),
        Kind::Native => {
            notes.add(
                "depends_on",
                "the wait tasks run the client's /bin/sh, wget and nc",
            );
            (
                "exec",
                json!({ "command": "/bin/sh", "args": ["-c", script] }),
                Some("nobody"),
            )
        }
    };
    let mut t = Map::new();
    t.insert("Name".into(), json!(format!("wait-{dep}")));
    t.insert("Driver".into(), json!(driver));
    if let Some(user) = user {
        t.insert("User".into(), json!(user));
    }
    t.insert("Config".into(), config);
    t.insert(
        "Lifecycle".into(),
        json!({ "Hook": "prestart", "Sidecar": false }),
    );
    t.insert(
        "Templates".into(),
        json!([{
            "EmbeddedTmpl": tmpl,
            "DestPath": format!("local/wait-{dep}.env"),
            "Envvars": true,
            "ChangeMode": "restart",
        }]),
    );
    t.insert("Resources".into(), json!({ "CPU": 50, "MemoryMB": 32 }));
    Some(Value::Object(t))
}
