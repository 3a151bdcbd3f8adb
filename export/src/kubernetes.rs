//! Units to Kubernetes manifests (k3s and the rest), as typed objects of
//! the Kubernetes 1.32 API (`k8s-openapi`) written as YAML, with how each
//! key was mapped (or why it was not) as comments above the objects.
//!
//! Per container unit (a native unit with a `[container]` form exports
//! that form): a ConfigMap of its `[env]` (keys that look secret become
//! Secret references instead), a ClusterIP Service named after the unit for
//! its ports (so `http://ollama:11434` still resolves), one more per alias,
//! and its workload: a Deployment, a StatefulSet (named volumes with
//! [`Storage::Pvc`]) or a Job (a one-shot unit: restart policy `never`, or
//! one that another unit waits on to complete).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jarvis_unit::{
    Condition, Container as UnitContainer, DeviceMatch, Exec, GpuWant, HostTarget, Kind, Network,
    OnFallback, OnUnhealthy, Probe as UnitProbe, Protocol, RestartPolicy, Secret, Unit,
    VolumeSource,
};
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::{Document, Export, Skipped};

/// Where named volumes go with [`Storage::HostPath`]: where jarvisd keeps
/// them (`STATE_DIR/volumes/NAME`), so a node that ran jarvis keeps its
/// data.
pub const VOLUME_BASE: &str = "/var/lib/jarvis/volumes";
/// The image of the init containers that wait for a dependency.
pub const WAIT_IMAGE: &str = "busybox:1.36";
/// The label every object carries with the unit's name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label every object carries with [`MANAGED_BY`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "jarvis";
/// NVIDIA GPU feature discovery's label: each GPU's memory in MiB.
pub const GPU_MEMORY_LABEL: &str = "nvidia.com/gpu.memory";
/// The generic device plugin's resource prefix (squat/generic-device-plugin).
pub const DEVICE_RESOURCE_PREFIX: &str = "squat.ai/";
/// The prefix of the node labels that say a device is plugged in there.
pub const DEVICE_LABEL_PREFIX: &str = "jarvis.dev/";
/// Why a native-only unit is not exported.
pub const NATIVE_ONLY: &str = "native only (no [container] form): Kubernetes runs containers";
/// The size written in a volumeClaimTemplate: a unit says none.
pub const CLAIM_SIZE: &str = "1Gi";

/// Where named volumes go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// hostPath volumes on the node (the unit runs where its data is).
    #[default]
    HostPath,
    /// PersistentVolumeClaims (a StatefulSet for a unit with named
    /// volumes).
    Pvc,
}

/// How to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `metadata.namespace` of every object; `None`: left out (kubectl's
    /// current namespace).
    pub namespace: Option<String>,
    pub storage: Storage,
}

/// The manifests of `units`: one document per unit (its objects, as YAML
/// documents separated by `---`), in the order of the units' names; a
/// native-only unit is in `skipped`.
pub fn export(units: &[Unit], opts: &Options) -> Export {
    let mut units: Vec<&Unit> = units.iter().collect();
    units.sort_by(|a, b| a.name.cmp(&b.name));
    let mut cx = Cx {
        opts,
        peers: BTreeMap::new(),
        completed: units
            .iter()
            .flat_map(|u| &u.depends_on)
            .filter(|d| d.condition == Condition::Completed)
            .map(|d| d.unit.clone())
            .collect(),
        volume_users: BTreeMap::new(),
    };
    let forms: Vec<(&Unit, Option<Unit>)> = units
        .iter()
        .map(|u| (*u, u.with_form(Kind::Container)))
        .collect();
    for (_, form) in &forms {
        let Some(u) = form else { continue };
        let c = container_of(u);
        let ports = service_ports(c, u.health.as_ref());
        let http_health = match u.health.as_ref().map(|h| &h.probe) {
            Some(UnitProbe::Http(url)) => parse_url(url).map(|(_, _, port, path)| (port, path)),
            _ => None,
        };
        cx.peers.insert(
            u.name.clone(),
            Peer {
                service: dns_name(&u.name),
                port: ports.first().map(|p| p.port),
                http_health,
                job: is_job(u, &cx.completed),
            },
        );
        for v in &c.volumes {
            if let VolumeSource::Named(n) = &v.source {
                let users = cx.volume_users.entry(n.clone()).or_default();
                if !users.contains(&u.name) {
                    users.push(u.name.clone());
                }
            }
        }
    }
    let mut out = Export::default();
    for (unit, form) in forms {
        match form {
            None => out.skipped.push(Skipped {
                unit: unit.name.clone(),
                why: NATIVE_ONLY.into(),
            }),
            Some(u) => out.documents.push(document(unit, &u, &cx)),
        }
    }
    out
}

/// A name Kubernetes takes for an object (a DNS-1035 label: lower case
/// letters, digits and '-', starting with a letter, at most 63
/// characters): `s` lowercased, other characters as '-', with `u-` in
/// front when it does not start with a letter.
pub fn dns_name(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = mapped.trim_matches('-').to_string();
    if name.is_empty() {
        name = "unit".into();
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("u-{name}");
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// What a unit's document needs to know of the others.
struct Cx<'a> {
    opts: &'a Options,
    /// The exported units, by unit name.
    peers: BTreeMap<String, Peer>,
    /// Units that another waits on to complete.
    completed: BTreeSet<String>,
    /// The exported units that mount each named volume.
    volume_users: BTreeMap<String, Vec<String>>,
}

/// An exported unit, as a dependent sees it.
struct Peer {
    service: String,
    /// Its Service's first port, if it has a Service.
    port: Option<u16>,
    /// The port and path of its http health check.
    http_health: Option<(u16, String)>,
    job: bool,
}

fn container_of(u: &Unit) -> &UnitContainer {
    match &u.exec {
        Exec::Container(c) => c,
        Exec::Native(_) => unreachable!("with_form(Container) gives a container"),
    }
}

/// A one-shot unit: restart policy `never`, or one that another unit waits
/// on to complete.
fn is_job(u: &Unit, completed: &BTreeSet<String>) -> bool {
    u.restart.policy == RestartPolicy::Never || completed.contains(&u.name)
}

/// One object and the notes above it.
struct Object {
    notes: Vec<String>,
    yaml: String,
}

impl Object {
    fn new<T: Serialize>(notes: Vec<String>, value: &T) -> Object {
        Object {
            notes,
            yaml: serde_yaml_ng::to_string(value).expect("a Kubernetes object is YAML"),
        }
    }
}

fn push_comment(text: &mut String, note: &str) {
    for line in note.lines() {
        if line.is_empty() {
            text.push_str("#\n");
        } else {
            text.push_str("# ");
            text.push_str(line);
            text.push('\n');
        }
    }
}

/// A port of the unit's Service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServicePortPlan {
    port: u16,
    target: u16,
    protocol: Protocol,
    /// Published on the node at this address and port (`hostPort`).
    host: Option<(Option<std::net::IpAddr>, u16)>,
}

/// The unit's Service ports: each published port as its host port (to the
/// container port) and its container port (the port other units use on a
/// jarvis network); with none, the port of its health check.
fn service_ports(c: &UnitContainer, health: Option<&jarvis_unit::Health>) -> Vec<ServicePortPlan> {
    let mut out: Vec<ServicePortPlan> = Vec::new();
    let mut add = |p: ServicePortPlan| {
        if !out
            .iter()
            .any(|q| q.port == p.port && q.protocol == p.protocol)
        {
            out.push(p);
        }
    };
    for p in &c.ports {
        add(ServicePortPlan {
            port: p.host_port,
            target: p.container_port,
            protocol: p.protocol,
            host: Some((p.host_ip, p.host_port)),
        });
        add(ServicePortPlan {
            port: p.container_port,
            target: p.container_port,
            protocol: p.protocol,
            host: None,
        });
    }
    if let Some(port) = health.and_then(|h| probe_port(&h.probe)) {
        add(ServicePortPlan {
            port,
            target: port,
            protocol: Protocol::Tcp,
            host: None,
        });
    }
    out
}

fn probe_port(p: &UnitProbe) -> Option<u16> {
    match p {
        UnitProbe::Http(url) => parse_url(url).map(|(_, _, port, _)| port),
        UnitProbe::Tcp(addr) => parse_host_port(addr).map(|(_, port)| port),
        UnitProbe::Exec(_) => None,
    }
}

/// `http[s]://HOST[:PORT][/PATH]` as (https, host, port, path).
fn parse_url(url: &str) -> Option<(bool, String, u16, String)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let (host, tail) = after.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default),
        }
    };
    Some((https, host, port, path))
}

/// `HOST:PORT` (IPv6 in brackets) as (host, port).
fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// Whether a probe's host is the unit itself (the pod's address is the
/// default of a Kubernetes probe).
fn is_local(host: &str) -> bool {
    host.is_empty()
        || host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Whole seconds, rounded up, at least 1.
fn secs(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.clamp(1, i32::MAX as u64) as i32
}

/// Bytes as a Kubernetes quantity: `24Gi`, `512Mi`, else bytes.
pub fn memory_quantity(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "Ti"),
        (1 << 30, "Gi"),
        (1 << 20, "Mi"),
        (1 << 10, "Ki"),
    ];
    for (size, suffix) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Thousandths of a CPU as a quantity: `2`, `1500m`.
pub fn cpu_quantity(millis: u64) -> String {
    let millis = millis.max(1);
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

fn protocol(p: Protocol) -> String {
    match p {
        Protocol::Tcp => "TCP".into(),
        Protocol::Udp => "UDP".into(),
    }
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), name.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ])
}

fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_string(), name.to_string())])
}

fn meta(object: &str, unit: &str, cx: &Cx) -> ObjectMeta {
    ObjectMeta {
        name: Some(object.to_string()),
        namespace: cx.opts.namespace.clone(),
        labels: Some(labels(unit)),
        ..Default::default()
    }
}

/// ` -n NS` for kubectl commands in notes.
fn ns_flag(cx: &Cx) -> String {
    cx.opts
        .namespace
        .as_ref()
        .map(|n| format!(" -n {n}"))
        .unwrap_or_default()
}

/// Pod volume names, each once.
#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    fn take(&mut self, base: &str) -> String {
        let base = dns_name(base);
        let mut name = base.clone();
        let mut n = 2;
        while !self.0.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }
}

/// The unit's document: its ConfigMap, Services and workload.
fn document(declared: &Unit, u: &Unit, cx: &Cx) -> Document {
    let c = container_of(u);
    let name = dns_name(&u.name);
    let mut head = vec![format!(
        "{}: exported by jarvisctl export kubernetes",
        u.name
    )];
    if let Some(d) = &u.description {
        head.push(d.clone());
    }
    if declared.resolve_form(None) == Kind::Native {
        head.push(format!(
            "jarvis runs it natively (run = \"{}\"); Kubernetes runs its [container] form",
            declared.run.as_str()
        ));
    }
    if name != u.name {
        head.push(format!(
            "its objects are named {name}: Kubernetes names are DNS labels"
        ));
    }
    let mut objects = Vec::new();
    let mut pod = PodPlan::default();
    env(u, &name, cx, &mut pod, &mut objects);
    let ports = service_ports(c, u.health.as_ref());
    let service = services(u, c, &name, &ports, cx, &mut objects);
    workload(u, c, &name, &ports, service, cx, pod, &mut objects);

    let mut text = String::new();
    for line in &head {
        push_comment(&mut text, line);
    }
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        for n in &o.notes {
            push_comment(&mut text, n);
        }
        text.push_str(&o.yaml);
    }
    Document {
        name: format!("{}.yaml", u.name),
        unit: Some(u.name.clone()),
        text,
    }
}

/// What the environment adds to the container.
#[derive(Default)]
struct PodPlan {
    env: Vec<core::EnvVar>,
    env_from: Vec<core::EnvFromSource>,
    notes: Vec<String>,
}

/// `[env]` as a ConfigMap (secret-looking keys as Secret references) and
/// `env_file` as ConfigMaps (or Secrets, for `.age` files) to create.
fn env(u: &Unit, name: &str, cx: &Cx, pod: &mut PodPlan, objects: &mut Vec<Object>) {
    let ns = ns_flag(cx);
    let many = u.env_file.len() > 1;
    for (i, file) in u.env_file.iter().enumerate() {
        let object = if many {
            format!("{name}-env-file-{}", i + 1)
        } else {
            format!("{name}-env-file")
        };
        if Secret::is_age(file) {
            pod.notes.push(format!(
                "env_file {}: age-encrypted; not read here: decrypt it and create the Secret \
                 {object}: age -d -i IDENTITY {} > env && kubectl create secret generic \
                 {object}{ns} --from-env-file=env",
                file.display(),
                file.display()
            ));
            pod.env_from.push(core::EnvFromSource {
                secret_ref: Some(core::SecretEnvSource {
                    name: object,
                    optional: None,
                }),
                ..Default::default()
            });
        } else {
            pod.notes.push(format!(
                "env_file {}: not read here: create the ConfigMap {object} from it: \
                 kubectl create configmap {object}{ns} --from-env-file={}",
                file.display(),
                file.display()
            ));
            pod.env_from.push(core::EnvFromSource {
                config_map_ref: Some(core::ConfigMapEnvSource {
                    name: object,
                    optional: None,
                }),
                ..Default::default()
            });
        }
    }
    let (secret, plain): (Vec<_>, Vec<_>) = u
        .env
        .iter()
        .partition(|(k, _)| jarvis_proto::is_secret_key(k));
    if !plain.is_empty() {
        let object = format!("{name}-env");
        let map = core::ConfigMap {
            metadata: meta(&object, name, cx),
            data: Some(
                plain
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        let mut notes = vec![format!("[env] of {}", u.name)];
        if !u.env_file.is_empty() {
            notes.push(
                "it comes after the env_file ConfigMaps in envFrom: [env] overrides them, \
                 as in jarvis"
                    .into(),
            );
        }
        objects.push(Object::new(notes, &map));
        pod.env_from.push(core::EnvFromSource {
            config_map_ref: Some(core::ConfigMapEnvSource {
                name: object,
                optional: None,
            }),
            ..Default::default()
        });
    }
    if !secret.is_empty() {
        let object = format!("{name}-env-secret");
        let keys: Vec<String> = secret.iter().map(|(k, _)| format!("{k}=...")).collect();
        pod.notes.push(format!(
            "[env] keys that look secret ({}): their values are not written here but read \
             from the Secret {object}: kubectl create secret generic {object}{ns} {}",
            secret
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            keys.iter()
                .map(|k| format!("--from-literal={k}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        for (k, _) in secret {
            pod.env.push(core::EnvVar {
                name: k.clone(),
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        name: object.clone(),
                        key: k.clone(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
}

/// The unit's Service (named after it) and one per alias or hostname;
/// returns the Service's name, if it has one.
fn services(
    u: &Unit,
    c: &UnitContainer,
    name: &str,
    ports: &[ServicePortPlan],
    cx: &Cx,
    objects: &mut Vec<Object>,
) -> Option<String> {
    if ports.is_empty() {
        return None;
    }
    let spec_ports: Vec<core::ServicePort> = ports
        .iter()
        .map(|p| core::ServicePort {
            name: Some(format!("{}-{}", p.protocol.as_str(), p.port)),
            port: i32::from(p.port),
            target_port: Some(IntOrString::Int(i32::from(p.target))),
            protocol: Some(protocol(p.protocol)),
            ..Default::default()
        })
        .collect();
    let mut names = vec![name.to_string()];
    let extra = c.hostname.iter().chain(&c.aliases).map(|n| dns_name(n));
    for n in extra {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    for (i, svc) in names.iter().enumerate() {
        let mut notes = Vec::new();
        if i == 0 {
            notes.push(format!(
                "{}'s name on the cluster network: other pods reach it at {svc}:PORT, as \
                 units on a jarvis network do",
                u.name
            ));
            for p in ports {
                match p.host {
                    Some((ip, host_port)) => notes.push(format!(
                        "port {}: published on the host as {}:{host_port}/{} (container port \
                         {}); the container asks for hostPort {host_port} on its node",
                        p.port,
                        ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string()),
                        p.protocol.as_str(),
                        p.target
                    )),
                    None if !c.ports.iter().any(|q| q.container_port == p.port) => {
                        notes.push(format!("port {}: the port of its health check", p.port))
                    }
                    None => {}
                }
            }
        } else {
            notes.push(format!(
                "{svc}: another name of {} (hostname or alias)",
                u.name
            ));
        }
        let service = core::Service {
            metadata: meta(svc, name, cx),
            spec: Some(core::ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(selector(name)),
                ports: Some(spec_ports.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(Object::new(notes, &service));
    }
    Some(name.to_string())
}

/// The probe action of a health check.
fn probe_action(p: &UnitProbe, notes: &mut Vec<String>) -> core::Probe {
    match p {
        UnitProbe::Http(url) => match parse_url(url) {
            Some((https, host, port, path)) => core::Probe {
                http_get: Some(core::HTTPGetAction {
                    host: (!is_local(&host)).then_some(host),
                    path: Some(path),
                    port: IntOrString::Int(i32::from(port)),
                    scheme: https.then(|| "HTTPS".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None => {
                notes.push(format!(
                    "[health] http {url}: not a URL Kubernetes can probe"
                ));
                core::Probe::default()
            }
        },
        UnitProbe::Tcp(addr) => match parse_host_port(addr) {
            Some((host, port)) => core::Probe {
                tcp_socket: Some(core::TCPSocketAction {
                    host: (!is_local(&host)).then_some(host),
                    port: IntOrString::Int(i32::from(port)),
                }),
                ..Default::default()
            },
            None => {
                notes.push(format!("[health] tcp {addr}: not HOST:PORT"));
                core::Probe::default()
            }
        },
        UnitProbe::Exec(argv) => core::Probe {
            exec: Some(core::ExecAction {
                command: Some(argv.clone()),
            }),
            ..Default::default()
        },
    }
}

/// Liveness, readiness and startup probes of `[health]`.
fn probes(u: &Unit, k: &mut core::Container, notes: &mut Vec<String>) {
    let Some(h) = &u.health else { return };
    let action = probe_action(&h.probe, notes);
    if action == core::Probe::default() {
        return;
    }
    let probe = core::Probe {
        period_seconds: Some(secs(h.interval)),
        timeout_seconds: Some(secs(h.timeout)),
        failure_threshold: Some(h.retries.clamp(1, i32::MAX as u32) as i32),
        ..action.clone()
    };
    notes.push(
        "[health]: interval, timeout and retries are periodSeconds, timeoutSeconds and \
         failureThreshold; healthy is ready (the Service sends it traffic)"
            .into(),
    );
    k.readiness_probe = Some(probe.clone());
    match h.on_unhealthy {
        OnUnhealthy::Restart => {
            notes.push(
                "on_unhealthy = restart: a liveness probe too (Kubernetes restarts the \
                 container when it fails)"
                    .into(),
            );
            k.liveness_probe = Some(probe);
            if !h.start_period.is_zero() {
                let period = secs(h.start_interval);
                let tries = h.start_period.as_secs_f64() / f64::from(period);
                notes.push(format!(
                    "start_period {}s: a startupProbe every start_interval ({period}s) for \
                     that long, then the liveness probe takes over",
                    h.start_period.as_secs()
                ));
                k.startup_probe = Some(core::Probe {
                    period_seconds: Some(period),
                    timeout_seconds: Some(secs(h.timeout)),
                    failure_threshold: Some((tries.ceil() as i32).max(1)),
                    ..action
                });
            }
        }
        OnUnhealthy::Ignore => notes.push(
            "on_unhealthy = ignore: a readiness probe only, no liveness or startup probe \
             (those restart the container)"
                .into(),
        ),
    }
}

/// A user or group id, when numeric.
fn numeric(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// `[resources]`, `[gpu]` and `[[device]]` as requests, limits and node
/// affinity.
fn resources(
    u: &Unit,
    k: &mut core::Container,
    notes: &mut Vec<String>,
    required: &mut Vec<core::NodeSelectorRequirement>,
    preferred: &mut Vec<core::NodeSelectorRequirement>,
) {
    let r = &u.resources;
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    if let Some(m) = r.memory_max {
        limits.insert("memory".into(), Quantity(memory_quantity(m)));
        requests.insert("memory".into(), Quantity(memory_quantity(m / 4)));
    }
    if let Some(cpus) = r.cpus {
        let millis = (cpus * 1000.0).round() as u64;
        limits.insert("cpu".into(), Quantity(cpu_quantity(millis)));
        requests.insert("cpu".into(), Quantity(cpu_quantity(millis / 4)));
    }
    if !requests.is_empty() {
        notes.push(
            "[resources]: memory_max and cpus are the limits; jarvis caps a unit but \
             reserves nothing, so the requests are a quarter of the limits (the scheduler \
             counts the unit without holding its whole cap; set them equal for a \
             Guaranteed pod)"
                .into(),
        );
    }
    if let Some(w) = r.cpu_weight {
        notes.push(format!(
            "cpu_weight {w}: no field (the kubelet derives cpu.weight from requests.cpu)"
        ));
    }
    if let Some(p) = r.pids_max {
        notes.push(format!(
            "pids_max {p}: no per-pod field (the kubelet's podPidsLimit is node-wide)"
        ));
    }
    if let Some(set) = &r.cpuset {
        notes.push(format!(
            "cpuset {set}: no field (the kubelet's static CPU manager pins Guaranteed pods)"
        ));
    }
    if let Some(g) = &u.gpu {
        let resource = match g.want {
            GpuWant::Cpu => {
                notes.push("[gpu] want = cpu: no GPU requested".into());
                None
            }
            GpuWant::Nvidia => Some("nvidia.com/gpu"),
            GpuWant::Amd => Some("amd.com/gpu"),
            GpuWant::Auto => {
                notes.push(
                    "[gpu] want = auto: jarvis takes the best GPU that fits, else the CPU; \
                     Kubernetes needs one vendor's resource: nvidia.com/gpu (amd.com/gpu for \
                     AMD), and the pod waits for one"
                        .into(),
                );
                Some("nvidia.com/gpu")
            }
        };
        if let Some(resource) = resource {
            limits.insert(resource.into(), Quantity(g.count.to_string()));
            notes.push(format!(
                "[gpu] count {}: {resource} (the device plugin's resource); on k3s the pod \
                 may also need runtimeClassName: nvidia unless that is the default runtime",
                g.count
            ));
            if g.min_vram > 0 {
                let mib = g.min_vram.div_ceil(1 << 20);
                if g.want == GpuWant::Amd {
                    notes.push(format!(
                        "[gpu] min_vram {mib} MiB: AMD has no standard node label for it; \
                         not expressed"
                    ));
                } else {
                    notes.push(format!(
                        "[gpu] min_vram {mib} MiB: a node whose GPUs have at least that much \
                         (GPU feature discovery's {GPU_MEMORY_LABEL}, MiB: each GPU's total, \
                         where jarvis counts what is free)"
                    ));
                    required.push(core::NodeSelectorRequirement {
                        key: GPU_MEMORY_LABEL.into(),
                        operator: "Gt".into(),
                        values: Some(vec![(mib - 1).to_string()]),
                    });
                }
            }
        }
        if g.verify.is_some() || g.on_fallback == OnFallback::Restart {
            notes.push(
                "[gpu] verify and on_fallback: jarvis's own checks that the unit runs on its \
                 GPU; no Kubernetes equivalent"
                    .into(),
            );
        }
    }
    for d in &u.devices {
        let (id, config, usb) = match &d.matcher {
            DeviceMatch::Usb {
                vendor,
                product,
                serial,
            } => {
                let serial_json = serial
                    .as_ref()
                    .map(|s| format!(", \"serial\": \"{s}\""))
                    .unwrap_or_default();
                (
                    format!("usb-{vendor}-{product}"),
                    format!(
                        "{{\"usb\": [{{\"vendor\": \"{vendor}\", \"product\": \
                         \"{product}\"{serial_json}}}]}}"
                    ),
                    true,
                )
            }
            DeviceMatch::Path(p) => {
                let id = dns_name(p.trim_start_matches("/dev/"));
                (
                    id,
                    format!(
                        "{{\"paths\": [{{\"path\": \"{p}\", \"mountPath\": \"{}\"}}]}}",
                        d.as_path
                    ),
                    false,
                )
            }
        };
        let resource = format!("{DEVICE_RESOURCE_PREFIX}{id}");
        let label = format!("{DEVICE_LABEL_PREFIX}{id}");
        let what = match &d.matcher {
            DeviceMatch::Usb {
                vendor, product, ..
            } => format!("usb {vendor}:{product}"),
            DeviceMatch::Path(p) => format!("path {p}"),
        };
        let mut note = format!(
            "[[device]] {what} as {}: the resource {resource} of the generic device plugin \
             (github.com/squat/generic-device-plugin, whose resources are squat.ai/NAME), \
             run with --device '{{\"name\": \"{id}\", \"groups\": [{config}]}}'",
            d.as_path
        );
        if usb {
            note.push_str(&format!(
                "; the plugin passes the USB device at its host path, not at {}: point the \
                 service at it; a dongle is on one node: label it with kubectl label node \
                 NODE {label}=true",
                d.as_path
            ));
        }
        let requirement = core::NodeSelectorRequirement {
            key: label,
            operator: "In".into(),
            values: Some(vec!["true".into()]),
        };
        if d.optional {
            note.push_str(&format!(
                "; optional: not requested (the pod would wait for it), only preferred on \
                 its node; add {resource}: 1 to the limits to give it the device"
            ));
            if usb {
                preferred.push(requirement);
            }
        } else {
            limits.insert(resource, Quantity("1".into()));
            if usb {
                required.push(requirement);
            }
        }
        notes.push(note);
    }
    if !limits.is_empty() {
        k.resources = Some(core::ResourceRequirements {
            limits: Some(limits),
            requests: (!requests.is_empty()).then_some(requests),
            ..Default::default()
        });
    }
}

/// The container's and the pod's security contexts.
fn security(
    u: &Unit,
    c: &UnitContainer,
    k: &mut core::Container,
    pod: &mut core::PodSpec,
    notes: &mut Vec<String>,
) {
    let mut sc = core::SecurityContext::default();
    let mut psc = core::PodSecurityContext::default();
    if c.privileged {
        sc.privileged = Some(true);
        notes.push("privileged: privileged (every capability and host device)".into());
    } else if u.security.no_new_privileges {
        sc.allow_privilege_escalation = Some(false);
    }
    if c.read_only {
        sc.read_only_root_filesystem = Some(true);
    }
    if let Some(user) = &c.user {
        let (name, group) = match user.split_once(':') {
            Some((n, g)) => (n, Some(g)),
            None => (user.as_str(), None),
        };
        match numeric(name) {
            Some(uid) => sc.run_as_user = Some(uid),
            None => notes.push(format!(
                "user {name}: a name; Kubernetes takes numbers: set runAsUser to its uid in \
                 the image"
            )),
        }
        if let Some(g) = group {
            match numeric(g) {
                Some(gid) => sc.run_as_group = Some(gid),
                None => notes.push(format!(
                    "group {g}: a name; Kubernetes takes numbers: set runAsGroup to its gid \
                     in the image"
                )),
            }
        }
    }
    let strip = |cap: &String| cap.trim_start_matches("CAP_").to_string();
    let mut add: Vec<String> = c.cap_add.iter().map(strip).collect();
    for cap in u.security.capabilities.iter().map(strip) {
        if !add.contains(&cap) {
            add.push(cap);
        }
    }
    let drop: Vec<String> = c.cap_drop.iter().map(strip).collect();
    if !add.is_empty() || !drop.is_empty() {
        sc.capabilities = Some(core::Capabilities {
            add: (!add.is_empty()).then_some(add),
            drop: (!drop.is_empty()).then_some(drop),
        });
    }
    let (gids, names): (Vec<_>, Vec<_>) = c.group_add.iter().partition(|g| numeric(g).is_some());
    if !gids.is_empty() {
        psc.supplemental_groups = Some(gids.iter().filter_map(|g| numeric(g)).collect());
    }
    if !names.is_empty() {
        notes.push(format!(
            "group_add {}: names; supplementalGroups takes gids",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !c.sysctls.is_empty() {
        psc.sysctls = Some(
            c.sysctls
                .iter()
                .map(|(k, v)| core::Sysctl {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        );
        notes.push(
            "sysctls: other than Kubernetes's safe set they need the kubelet's \
             --allowed-unsafe-sysctls"
                .into(),
        );
    }
    if !c.ulimits.is_empty() {
        notes.push("ulimits: no Kubernetes field (the container runtime's defaults apply)".into());
    }
    if !c.device_cgroup_rules.is_empty() {
        notes.push(format!(
            "device_cgroup_rules {}: no Kubernetes field (a device plugin, or privileged)",
            c.device_cgroup_rules
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if sc != core::SecurityContext::default() {
        k.security_context = Some(sc);
    }
    if psc != core::PodSecurityContext::default() {
        pod.security_context = Some(psc);
    }
}

/// The init containers that wait for the unit's dependencies.
fn waits(u: &Unit, cx: &Cx, notes: &mut Vec<String>) -> Vec<core::Container> {
    let mut out = Vec::new();
    for d in &u.depends_on {
        let cond = d.condition.as_str();
        let Some(peer) = cx.peers.get(&d.unit) else {
            notes.push(format!(
                "depends_on {} ({cond}): {} is not exported (native only): not waited for",
                d.unit, d.unit
            ));
            continue;
        };
        if d.condition == Condition::Completed {
            let how = if peer.job {
                format!(
                    "kubectl wait --for=condition=complete job/{} before applying this",
                    peer.service
                )
            } else {
                "run it first".into()
            };
            notes.push(format!(
                "depends_on {} (completed): a pod cannot see another's completion without \
                 API access: not waited for; {how}",
                d.unit
            ));
            continue;
        }
        let Some(port) = peer.port else {
            notes.push(format!(
                "depends_on {} ({cond}): it has no Service port to wait on: not waited for",
                d.unit
            ));
            continue;
        };
        let svc = &peer.service;
        let (check, note) = match (&peer.http_health, d.condition) {
            (Some((hp, path)), Condition::Healthy) => (
                format!("wget -q -T 2 -O /dev/null http://{svc}:{hp}{path}"),
                format!("its health check answers at http://{svc}:{hp}{path}"),
            ),
            _ => (
                format!("nc -z -w 2 {svc} {port}"),
                format!("{svc}:{port} accepts connections"),
            ),
        };
        notes.push(format!(
            "depends_on {} ({cond}): the init container wait-for-{svc} waits until {note}",
            d.unit
        ));
        out.push(core::Container {
            name: dns_name(&format!("wait-for-{svc}")),
            image: Some(WAIT_IMAGE.into()),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("until {check}; do echo waiting for {svc}; sleep 2; done"),
            ]),
            ..Default::default()
        });
    }
    out
}

/// The Deployment, StatefulSet or Job of the unit.
#[allow(clippy::too_many_arguments)]
fn workload(
    u: &Unit,
    c: &UnitContainer,
    name: &str,
    ports: &[ServicePortPlan],
    service: Option<String>,
    cx: &Cx,
    env: PodPlan,
    objects: &mut Vec<Object>,
) {
    let mut notes = env.notes;
    let mut k = core::Container {
        name: name.to_string(),
        image: Some(c.image.clone()),
        command: c.entrypoint.clone(),
        args: c.command.clone(),
        working_dir: c.working_dir.clone(),
        env: (!env.env.is_empty()).then_some(env.env),
        env_from: (!env.env_from.is_empty()).then_some(env.env_from),
        ..Default::default()
    };
    if c.image.starts_with("oci-layout:") {
        notes.push(format!(
            "image {}: a local OCI layout; push it to a registry the cluster pulls from",
            c.image
        ));
    }
    if c.entrypoint.is_some() || c.command.is_some() {
        notes.push("entrypoint is command, command is args".into());
    }
    let mut pod = core::PodSpec::default();

    // Ports.
    let mut container_ports: Vec<core::ContainerPort> = Vec::new();
    for p in &c.ports {
        container_ports.push(core::ContainerPort {
            container_port: i32::from(p.container_port),
            host_port: Some(i32::from(p.host_port)),
            host_ip: p.host_ip.map(|ip| ip.to_string()),
            protocol: Some(protocol(p.protocol)),
            ..Default::default()
        });
    }
    for p in ports {
        if !container_ports.iter().any(|q| {
            q.container_port == i32::from(p.target) && q.protocol == Some(protocol(p.protocol))
        }) {
            container_ports.push(core::ContainerPort {
                container_port: i32::from(p.target),
                protocol: Some(protocol(p.protocol)),
                ..Default::default()
            });
        }
    }
    if !c.ports.is_empty() {
        notes.push(
            "ports: published ports are hostPorts (the node's port reaches the container, as \
             on the jarvis host; hostIP where the unit gives an address) and ports of the \
             Service"
                .into(),
        );
    }
    if !container_ports.is_empty() {
        k.ports = Some(container_ports);
    }

    // Network.
    match &c.network {
        Network::Bridge => {
            if c.networks != UnitContainer::default_networks(&Network::Bridge) {
                notes.push(format!(
                    "networks {}: Kubernetes has one flat pod network (a NetworkPolicy would \
                     keep the others out)",
                    c.networks.join(", ")
                ));
            }
        }
        Network::Host => {
            pod.host_network = Some(true);
            pod.dns_policy = Some("ClusterFirstWithHostNet".into());
            notes.push(
                "network = host: hostNetwork (the node's network; cluster names still \
                 resolve with dnsPolicy ClusterFirstWithHostNet)"
                    .into(),
            );
        }
        Network::None => notes.push(
            "network = none: a pod always has the cluster network (a NetworkPolicy denying \
             all traffic is the nearest)"
                .into(),
        ),
        Network::Unit(other) => notes.push(format!(
            "network = unit:{other}: it shares {other}'s network namespace under jarvis; \
             here it is a pod of its own and reaches {other} at its Service, not localhost \
             (or make it a container of {other}'s pod)"
        )),
    }
    if let Some(h) = &c.hostname {
        if jarvis_unit::is_dns_label(h) {
            pod.hostname = Some(h.clone());
        } else {
            notes.push(format!("hostname {h}: not a DNS label; left out"));
        }
    }
    let mut aliases: Vec<core::HostAlias> = Vec::new();
    for e in &c.extra_hosts {
        match e.target {
            HostTarget::Addr(ip) => {
                let ip = ip.to_string();
                match aliases.iter_mut().find(|a| a.ip == ip) {
                    Some(a) => a
                        .hostnames
                        .get_or_insert_with(Vec::new)
                        .push(e.name.clone()),
                    None => aliases.push(core::HostAlias {
                        ip,
                        hostnames: Some(vec![e.name.clone()]),
                    }),
                }
            }
            HostTarget::Gateway => notes.push(format!(
                "extra_hosts {e}: host-gateway has no Kubernetes form (hostAliases take an \
                 address: the node's)"
            )),
        }
    }
    if !aliases.is_empty() {
        pod.host_aliases = Some(aliases);
    }
    if !c.dns.is_empty() {
        notes.push(format!(
            "dns {}: upstream resolvers are the cluster DNS's (CoreDNS's forward plugin)",
            c.dns
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Volumes.
    let mut names = Names::default();
    let mut volumes: Vec<core::Volume> = Vec::new();
    let mut mounts: Vec<core::VolumeMount> = Vec::new();
    let mut claims: Vec<core::PersistentVolumeClaim> = Vec::new();
    let pvc = cx.opts.storage == Storage::Pvc;
    let mut named_seen: BTreeMap<String, String> = BTreeMap::new();
    for v in &c.volumes {
        let volume = match &v.source {
            VolumeSource::Bind(host) => {
                let vn = names.take("host");
                volumes.push(core::Volume {
                    name: vn.clone(),
                    host_path: Some(core::HostPathVolumeSource {
                        path: host.clone(),
                        type_: None,
                    }),
                    ..Default::default()
                });
                vn
            }
            VolumeSource::Named(n) => {
                if let Some(vn) = named_seen.get(n) {
                    vn.clone()
                } else {
                    let vn = names.take(n);
                    named_seen.insert(n.clone(), vn.clone());
                    if pvc {
                        claims.push(core::PersistentVolumeClaim {
                            metadata: ObjectMeta {
                                name: Some(vn.clone()),
                                labels: Some(labels(name)),
                                ..Default::default()
                            },
                            spec: Some(core::PersistentVolumeClaimSpec {
                                access_modes: Some(vec!["ReadWriteOnce".into()]),
                                resources: Some(core::VolumeResourceRequirements {
                                    requests: Some(BTreeMap::from([(
                                        "storage".to_string(),
                                        Quantity(CLAIM_SIZE.into()),
                                    )])),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        });
                        notes.push(format!(
                            "volume {n}: a volumeClaimTemplate of {CLAIM_SIZE} (a unit gives no \
                             size: set one) in the cluster's default StorageClass (local-path \
                             on k3s); it starts empty, where jarvis fills a new volume from \
                             the image"
                        ));
                    } else {
                        let path = format!("{VOLUME_BASE}/{n}");
                        volumes.push(core::Volume {
                            name: vn.clone(),
                            host_path: Some(core::HostPathVolumeSource {
                                path: path.clone(),
                                type_: Some("DirectoryOrCreate".into()),
                            }),
                            ..Default::default()
                        });
                        notes.push(format!(
                            "volume {n}: hostPath {path}, where jarvisd keeps it: the pod must \
                             run on the node with the data (a nodeSelector on \
                             kubernetes.io/hostname), or use --storage pvc; it starts empty, \
                             where jarvis fills a new volume from the image"
                        ));
                    }
                    let users = cx.volume_users.get(n).map_or(&[][..], |v| &v[..]);
                    if users.len() > 1 {
                        notes.push(format!(
                            "volume {n} is shared with {}{}",
                            users
                                .iter()
                                .filter(|x| **x != u.name)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                            if pvc {
                                ": each StatefulSet gets a claim of its own; share one \
                                 ReadWriteMany claim instead"
                            } else {
                                ""
                            }
                        ));
                    }
                    vn
                }
            }
        };
        mounts.push(core::VolumeMount {
            name: volume,
            mount_path: v.container.clone(),
            read_only: v.read_only.then_some(true),
            ..Default::default()
        });
    }
    for t in &c.tmpfs {
        let vn = names.take("tmpfs");
        volumes.push(core::Volume {
            name: vn.clone(),
            empty_dir: Some(core::EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: t.size.map(|s| Quantity(memory_quantity(s))),
            }),
            ..Default::default()
        });
        mounts.push(core::VolumeMount {
            name: vn,
            mount_path: t.path.clone(),
            ..Default::default()
        });
        if let Some(mode) = t.mode {
            notes.push(format!(
                "tmpfs {}: mode {mode:o} has no emptyDir field",
                t.path
            ));
        }
    }
    if !c.tmpfs.is_empty() {
        notes.push("tmpfs: emptyDir volumes in memory".into());
    }
    if let Some(shm) = c.shm_size {
        let vn = names.take("dshm");
        volumes.push(core::Volume {
            name: vn.clone(),
            empty_dir: Some(core::EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity(memory_quantity(shm))),
            }),
            ..Default::default()
        });
        mounts.push(core::VolumeMount {
            name: vn,
            mount_path: "/dev/shm".into(),
            ..Default::default()
        });
        notes.push("shm_size: an emptyDir in memory at /dev/shm".into());
    }
    if !u.secrets.is_empty() {
        let object = format!("{name}-files");
        let vn = names.take("secrets");
        let key = |t: &str| -> String {
            t.chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_') {
                        ch
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let items: Vec<core::KeyToPath> = u
            .secrets
            .iter()
            .map(|s| core::KeyToPath {
                key: key(&s.target),
                path: s.target.clone(),
                mode: Some(s.mode as i32),
            })
            .collect();
        let from: Vec<String> = u
            .secrets
            .iter()
            .map(|s| format!("--from-file={}={}", key(&s.target), s.source.display()))
            .collect();
        notes.push(format!(
            "[[secret]]: the Secret {object} at {} (its content is not read here): kubectl \
             create secret generic {object}{} {}{}",
            Secret::CONTAINER_DIR,
            ns_flag(cx),
            from.join(" "),
            if u.secrets.iter().any(|s| Secret::is_age(&s.source)) {
                " (decrypt the .age files with age -d first)"
            } else {
                ""
            }
        ));
        volumes.push(core::Volume {
            name: vn.clone(),
            secret: Some(core::SecretVolumeSource {
                secret_name: Some(object),
                items: Some(items),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(core::VolumeMount {
            name: vn,
            mount_path: Secret::CONTAINER_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if !volumes.is_empty() {
        pod.volumes = Some(volumes);
    }
    if !mounts.is_empty() {
        k.volume_mounts = Some(mounts);
    }

    // Health, resources, security.
    probes(u, &mut k, &mut notes);
    let mut required = Vec::new();
    let mut preferred = Vec::new();
    resources(u, &mut k, &mut notes, &mut required, &mut preferred);
    if !required.is_empty() || !preferred.is_empty() {
        pod.affinity =
            Some(core::Affinity {
                node_affinity: Some(core::NodeAffinity {
                    required_during_scheduling_ignored_during_execution: (!required.is_empty())
                        .then(|| core::NodeSelector {
                            node_selector_terms: vec![core::NodeSelectorTerm {
                                match_expressions: Some(required),
                                ..Default::default()
                            }],
                        }),
                    preferred_during_scheduling_ignored_during_execution: (!preferred.is_empty())
                        .then(|| {
                            vec![core::PreferredSchedulingTerm {
                                weight: 100,
                                preference: core::NodeSelectorTerm {
                                    match_expressions: Some(preferred),
                                    ..Default::default()
                                },
                            }]
                        }),
                }),
                ..Default::default()
            });
    }
    security(u, c, &mut k, &mut pod, &mut notes);
    if c.init {
        pod.share_process_namespace = Some(true);
        notes.push(
            "init = true: shareProcessNamespace, so the pod's pause process is PID 1 and \
             reaps zombies (it does not forward signals)"
                .into(),
        );
    }

    // Stop, logs, bench.
    pod.termination_grace_period_seconds = Some(i64::from(secs(u.stop.timeout)));
    notes.push(format!(
        "[stop] timeout {}s: terminationGracePeriodSeconds",
        secs(u.stop.timeout)
    ));
    if u.stop.signal != 15 {
        notes.push(format!(
            "[stop] signal {}: Kubernetes stops with SIGTERM (the image's STOPSIGNAL changes \
             it)",
            u.stop.signal
        ));
    }
    if u.logs != jarvis_unit::Logs::default() {
        notes.push(
            "[logs]: the kubelet rotates container logs (containerLogMaxSize, \
             containerLogMaxFiles)"
                .into(),
        );
    }
    if u.bench.is_some() {
        notes.push("[bench]: jarvis's own measurement; not exported".into());
    }

    let inits = waits(u, cx, &mut notes);
    if !inits.is_empty() {
        pod.init_containers = Some(inits);
    }
    pod.containers = vec![k];

    // The workload.
    let job = is_job(u, &cx.completed);
    let policy = u.restart.policy.as_str();
    let template = |pod: core::PodSpec| core::PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(name)),
            annotations: u
                .description
                .as_ref()
                .map(|d| BTreeMap::from([("kubernetes.io/description".to_string(), d.clone())])),
            ..Default::default()
        }),
        spec: Some(pod),
    };
    let selector = LabelSelector {
        match_labels: Some(selector(name)),
        ..Default::default()
    };
    if job {
        let (restart, backoff) = match u.restart.policy {
            RestartPolicy::Never => ("Never", 0),
            _ => ("OnFailure", u.restart.burst.min(i32::MAX as u32) as i32),
        };
        notes.push(format!(
            "restart = {policy}{}: a one-shot unit, so a Job with restartPolicy {restart} and \
             backoffLimit {backoff}",
            if cx.completed.contains(&u.name) {
                ", and another unit waits for it to complete"
            } else {
                ""
            }
        ));
        pod.restart_policy = Some(restart.into());
        let object = batch::Job {
            metadata: meta(name, name, cx),
            spec: Some(batch::JobSpec {
                backoff_limit: Some(backoff),
                template: template(pod),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(Object::new(notes, &object));
        return;
    }
    notes.push(format!(
        "restart = {policy}: a Deployment or StatefulSet restarts its pod whatever the exit \
         (restartPolicy Always){}; delay, max_delay and burst are the kubelet's back-off \
         (10s doubling to 5m)",
        if u.restart.policy == RestartPolicy::OnFailure {
            ", also after a clean one"
        } else {
            ""
        }
    ));
    if !claims.is_empty() {
        notes.push(format!(
            "a StatefulSet: named volumes with --storage pvc; serviceName {}",
            service.as_deref().unwrap_or(name)
        ));
        let object = apps::StatefulSet {
            metadata: meta(name, name, cx),
            spec: Some(apps::StatefulSetSpec {
                replicas: Some(1),
                selector,
                service_name: Some(service.unwrap_or_else(|| name.to_string())),
                template: template(pod),
                volume_claim_templates: Some(claims),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(Object::new(notes, &object));
        return;
    }
    notes.push(
        "one replica, Recreate: one instance at a time, as jarvis runs it (host ports, host \
         paths and devices are not shared by two)"
            .into(),
    );
    let object = apps::Deployment {
        metadata: meta(name, name, cx),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(1),
            selector,
            strategy: Some(apps::DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template: template(pod),
            ..Default::default()
        }),
        ..Default::default()
    };
    objects.push(Object::new(notes, &object));
}

#[cfg(test)]
mod tests;
