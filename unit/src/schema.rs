//! The typed form of a unit file, after parsing and validation.
//!
//! These types are what the rest of jarvis consumes. They carry no spans and
//! no serde attributes for the file format: `parse.rs` owns the mapping from
//! TOML (with positions) to these types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A closed set of words a unit file takes as a value (`run = "auto"`,
/// `policy = "on-failure"`, ...). Each variant's spelling is written once,
/// in its enum's `words!` block: the parser, the "expected one of ..."
/// messages, `as_str` and serde all take it from there.
pub trait Word: Copy + Sized + 'static {
    /// Every variant, in the order messages list them.
    const ALL: &'static [Self];
    /// The spelling in a unit file.
    fn as_str(self) -> &'static str;
    /// The variant spelled `s`, exactly.
    fn from_word(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|w| w.as_str() == s)
    }
}

/// Defines a [`Word`] enum: the variants and their spellings, once.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in the order messages list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling in a unit file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Word for $name {
            const ALL: &'static [$name] = $name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}

/// `N` keys: `a` then `b`, for key lists built from others.
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    assert!(a.len() + b.len() == N, "concat: N must be the total length");
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

/// A validated unit. `name` is the file stem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub name: String,
    pub description: Option<String>,
    /// Dependencies in file order, each with the condition that must hold.
    pub depends_on: Vec<Dependency>,
    /// The form the unit runs as by default: the one of `native` and
    /// `container` that `run` picks (for `auto` without a measurement:
    /// native when `[gpu]` or `[bench]` is present, else container). The
    /// daemon may run another declared form instead; see
    /// [`Unit::with_form`] and [`Unit::resolve_form`].
    pub exec: Exec,
    /// `[native]` as declared; `None` when the file has no such section.
    #[serde(default)]
    pub native: Option<Native>,
    /// `[container]` as declared; `None` when the file has no such section.
    #[serde(default)]
    pub container: Option<Container>,
    /// The top-level `run` key. When absent: the only form declared, or
    /// `auto` when both are. (Units built in code that leave the declared
    /// forms empty count `exec` as their only form, whatever `run` says.)
    #[serde(default)]
    pub run: RunMode,
    pub env: BTreeMap<String, String>,
    pub resources: Resources,
    pub restart: Restart,
    pub health: Option<Health>,
    pub stop: Stop,
    pub security: Security,
    pub logs: Logs,
    /// `[gpu]`: the unit wants a GPU. `None` when the section is absent.
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// `[[device]]`: host devices the service sees, in file order.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// `[bench]`: how to measure the unit's native and container forms
    /// against each other. `None` when the section is absent.
    #[serde(default)]
    pub bench: Option<Bench>,
    /// `env_file`: files of `KEY=VALUE` lines read at each start, in order,
    /// for native and container forms alike. A later file overrides an
    /// earlier one and `[env]` overrides them all (compose's rule). Paths
    /// are absolute (a compose file's relative paths are resolved by the
    /// importer; a repository's by [`crate::LoadOptions::base`]); a missing
    /// file fails the start, naming the file. A file whose name ends in
    /// `.age` is decrypted at each start with the host's age identity.
    #[serde(default)]
    pub env_file: Vec<PathBuf>,
    /// `[[secret]]`: host files the service reads, in file order, each
    /// target once.
    #[serde(default)]
    pub secrets: Vec<Secret>,
}

impl Unit {
    /// The keys at the top level of a unit file.
    pub const KEYS: &'static [&'static str] = &[
        "description",
        "depends_on",
        "run",
        "native",
        "container",
        "env",
        "resources",
        "restart",
        "health",
        "stop",
        "security",
        "logs",
        "gpu",
        "device",
        "bench",
        "env_file",
        "secret",
    ];

    /// A unit that runs as `exec` (declared as its only form), with every
    /// other field at its default, as a file with just that section gives.
    pub fn new(name: impl Into<String>, exec: Exec) -> Unit {
        let (native, container, run) = match &exec {
            Exec::Native(n) => (Some(n.clone()), None, RunMode::Native),
            Exec::Container(c) => (None, Some(c.clone()), RunMode::Container),
        };
        Unit {
            name: name.into(),
            description: None,
            depends_on: Vec::new(),
            exec,
            native,
            container,
            run,
            env: BTreeMap::new(),
            resources: Resources::default(),
            restart: Restart::default(),
            health: None,
            stop: Stop::default(),
            security: Security::default(),
            logs: Logs::default(),
            gpu: None,
            devices: Vec::new(),
            bench: None,
            env_file: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// The form of `exec`: how the unit runs.
    pub fn kind(&self) -> Kind {
        self.exec.kind()
    }

    /// The forms the unit can run as, native first: those declared, and the
    /// form of `exec` (so that a unit built in code with only `exec` has
    /// that one form).
    pub fn forms(&self) -> Vec<Kind> {
        [Kind::Native, Kind::Container]
            .into_iter()
            .filter(|&k| self.has_form(k))
            .collect()
    }

    /// Whether the unit can run as `form`.
    pub fn has_form(&self, form: Kind) -> bool {
        self.kind() == form
            || match form {
                Kind::Native => self.native.is_some(),
                Kind::Container => self.container.is_some(),
            }
    }

    /// A copy of the unit that runs as `form`: its `exec` is that form
    /// (`run`, `native` and `container` stay as declared). `None` when the
    /// unit does not declare `form`.
    pub fn with_form(&self, form: Kind) -> Option<Unit> {
        let exec = if self.kind() == form {
            self.exec.clone()
        } else {
            match form {
                Kind::Native => Exec::Native(self.native.clone()?),
                Kind::Container => Exec::Container(self.container.clone()?),
            }
        };
        Some(Unit {
            exec,
            ..self.clone()
        })
    }

    /// The form `run` picks, given the form a benchmark recommended, if
    /// any: `native` or `container` as written; for `auto`, the
    /// recommendation when the unit declares it, else [`Unit::auto_form`].
    /// Always a form the unit has; for a unit built in code whose `run`
    /// names a form it lacks, the form of `exec`.
    pub fn resolve_form(&self, recommended: Option<Kind>) -> Kind {
        let wanted = match self.run {
            RunMode::Native => Some(Kind::Native),
            RunMode::Container => Some(Kind::Container),
            RunMode::Auto => recommended.filter(|&k| self.has_form(k)),
        };
        match wanted {
            Some(k) if self.has_form(k) => k,
            Some(_) => self.kind(),
            None => self.auto_form(),
        }
    }

    /// What `run = "auto"` picks without a measurement: with both forms,
    /// native for GPU and inference units (`[gpu]` or `[bench]` present)
    /// and container otherwise; with one form, that one.
    pub fn auto_form(&self) -> Kind {
        auto_form(
            self.has_form(Kind::Native),
            self.has_form(Kind::Container),
            self.gpu.is_some() || self.bench.is_some(),
        )
        .unwrap_or_else(|| self.kind())
    }
}

/// The `auto` rule over what is declared; `None` when neither form is.
pub(crate) fn auto_form(native: bool, container: bool, gpu_or_bench: bool) -> Option<Kind> {
    match (native, container) {
        (true, true) if gpu_or_bench => Some(Kind::Native),
        (true, true) => Some(Kind::Container),
        (true, false) => Some(Kind::Native),
        (false, true) => Some(Kind::Container),
        (false, false) => None,
    }
}

words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Kind {
        Native = "native",
        Container = "container",
    }
}

impl Kind {
    /// The other form.
    pub fn other(self) -> Kind {
        match self {
            Kind::Native => Kind::Container,
            Kind::Container => Kind::Native,
        }
    }
}

words! {
    /// The top-level `run` key: which declared form the unit runs as.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum RunMode {
        /// `[native]`.
        Native = "native",
        /// `[container]`.
        Container = "container",
        /// The form a benchmark recommended, if there is a measurement; else
        /// native for GPU and inference units (`[gpu]` or `[bench]` present)
        /// and container otherwise. With one form declared, that form.
        #[default]
        Auto = "auto",
    }
}

impl From<Kind> for RunMode {
    fn from(k: Kind) -> RunMode {
        match k {
            Kind::Native => RunMode::Native,
            Kind::Container => RunMode::Container,
        }
    }
}

/// How the unit runs: `[native]` or `[container]`.
// A unit set holds a handful of these, built once per load: boxing the
// container would cost every caller a Box for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exec {
    Native(Native),
    Container(Container),
}

impl Exec {
    pub fn kind(&self) -> Kind {
        match self {
            Exec::Native(_) => Kind::Native,
            Exec::Container(_) => Kind::Container,
        }
    }
}

/// `[container]`: an OCI image run through libcontainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// A registry reference (`docker.io` and `library/` and `latest` are the
    /// defaults) or `oci-layout:/path/to/dir[:tag]`; see
    /// [`crate::parse_image_reference`], the grammar the image store pulls
    /// with too.
    pub image: String,
    /// Overrides the image's Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Overrides the image's Cmd.
    pub command: Option<Vec<String>>,
    /// Overrides the image's User: "uid", "uid:gid", "name" or "name:group"
    /// (names are looked up in the image's /etc/passwd and /etc/group).
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// The network namespace the container runs in; `bridge` by default.
    pub network: Network,
    /// The bridge networks joined, in order (the first one gives the
    /// default route): `["default"]` by default for `bridge`, empty for
    /// every other `network`. Names are `[a-z0-9][a-z0-9_.-]*`, at most 64
    /// bytes, each once.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Published ports (bridge only), each host address, port and protocol
    /// once across all units.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// The container's hostname; `None` means the unit's name (see
    /// [`Container::hostname_or`]). Labels of RFC 1123, dots allowed, at
    /// most 64 bytes (the kernel's limit).
    #[serde(default)]
    pub hostname: Option<String>,
    /// More names for the unit on its networks (bridge only): DNS labels,
    /// each once.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Lines added to the container's `/etc/hosts` (not with `host`, where
    /// the host's own `/etc/hosts` is used).
    #[serde(default)]
    pub extra_hosts: Vec<ExtraHost>,
    /// Upstream resolvers for names that are not units (bridge only);
    /// empty means the host's.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// Bind mounts and named volumes, in file order.
    pub volumes: Vec<Volume>,
    /// A read-only root filesystem.
    pub read_only: bool,
    /// `tmpfs`: empty tmpfs mounts, in file order.
    #[serde(default)]
    pub tmpfs: Vec<Tmpfs>,
    /// `shm_size`: bytes of `/dev/shm`; `None` means the runtime's default
    /// (64 MiB, as Docker's).
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// `group_add`: supplementary groups of the container's process, on top
    /// of its user's: names (looked up in the image's `/etc/group`) or
    /// numeric gids, each once, as written.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `privileged`: every capability, every host device, no seccomp
    /// filter, no masked or read-only kernel paths. `cap_add` and
    /// `cap_drop` are refused with it (it has every capability already);
    /// `validate` and `status` say that the unit is privileged.
    #[serde(default)]
    pub privileged: bool,
    /// `device_cgroup_rules`: more allow rules for the container's device
    /// cgroup, in Docker's form (`"c 189:* rmw"`), each once: the device
    /// nodes they name may be created (`m`), read and written once they are
    /// in the container (bound in, or made with `mknod`), as Docker's
    /// `--device-cgroup-rule`. Refused with `privileged`, which allows every
    /// device already.
    #[serde(default)]
    pub device_cgroup_rules: Vec<DeviceCgroupRule>,
    /// `cap_add`: capabilities added to the default set, canonical
    /// (`CAP_NET_ADMIN`, whatever the spelling in the file: `NET_ADMIN`,
    /// `net_admin`), each once; or `["ALL"]` alone: every capability but
    /// those of `cap_drop`. The compose spelling of `[security]
    /// capabilities`, which for a container also adds to the default set:
    /// the container gets the union of both.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `cap_drop`: capabilities removed from the default set, canonical,
    /// each once; or `["ALL"]` alone: start from no capability. Dropping
    /// comes first, then `cap_add` and `[security] capabilities` are added
    /// (Docker's order), so `cap_drop = ["ALL"]` with `cap_add = ["CHOWN"]`
    /// leaves only `CAP_CHOWN`. A capability is never in both `cap_add`
    /// and `cap_drop`, nor in both `cap_drop` and `[security]
    /// capabilities`; neither list is given with `privileged`.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `sysctls`: namespaced kernel parameters set in the container, by
    /// their dotted names (`net.ipv4.ip_forward`), values as strings (a
    /// boolean is written `1` or `0`). Only `net.*` (not with `network =
    /// host` or `unit:NAME`), `kernel.shm*`, `kernel.msg*`, `kernel.sem` and
    /// `fs.mqueue.*`: see [`Container::SYSCTL_FORMS`].
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `ulimits`: resource limits (`setrlimit`) of the container's process.
    #[serde(default)]
    pub ulimits: BTreeMap<Rlimit, Ulimit>,
    /// `init`: a minimal init runs as PID 1 and runs the command as its
    /// child; it reaps zombies and forwards signals.
    #[serde(default)]
    pub init: bool,
}

impl Container {
    /// The keys of `[container]`.
    pub const KEYS: &'static [&'static str] = &[
        "image",
        "entrypoint",
        "command",
        "user",
        "working_dir",
        "network",
        "networks",
        "ports",
        "hostname",
        "aliases",
        "extra_hosts",
        "dns",
        "volumes",
        "read_only",
        "tmpfs",
        "shm_size",
        "group_add",
        "privileged",
        "device_cgroup_rules",
        "cap_add",
        "cap_drop",
        "sysctls",
        "ulimits",
        "init",
    ];

    /// The word `cap_add` and `cap_drop` take for every capability.
    pub const ALL_CAPABILITIES: &'static str = "ALL";

    /// The sysctls a container may set, for messages: those the kernel
    /// keeps per namespace.
    pub const SYSCTL_FORMS: &'static str = "net.* (with a network namespace of the unit's own), \
         kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* (the IPC and network \
         namespaces' own)";

    /// The network a container joins when `networks` is not given.
    pub const DEFAULT_NETWORK: &'static str = "default";

    /// `image` with every other key at its default, as a `[container]`
    /// with only `image` gives: `bridge` on the `default` network.
    pub fn new(image: impl Into<String>) -> Container {
        Container {
            image: image.into(),
            entrypoint: None,
            command: None,
            user: None,
            working_dir: None,
            network: Network::Bridge,
            networks: Container::default_networks(&Network::Bridge),
            ports: Vec::new(),
            hostname: None,
            aliases: Vec::new(),
            extra_hosts: Vec::new(),
            dns: Vec::new(),
            volumes: Vec::new(),
            read_only: false,
            tmpfs: Vec::new(),
            shm_size: None,
            group_add: Vec::new(),
            privileged: false,
            device_cgroup_rules: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            sysctls: BTreeMap::new(),
            ulimits: BTreeMap::new(),
            init: false,
        }
    }

    /// This container on `network`, with `networks` at that network's
    /// default (`["default"]` for `bridge`, else none).
    pub fn with_network(self, network: Network) -> Container {
        Container {
            networks: Container::default_networks(&network),
            network,
            ..self
        }
    }

    /// What `networks` is when the file leaves it out.
    pub fn default_networks(network: &Network) -> Vec<String> {
        match network {
            Network::Bridge => vec![Container::DEFAULT_NETWORK.to_string()],
            _ => Vec::new(),
        }
    }

    /// The container's hostname: `hostname`, else the unit's name.
    pub fn hostname_or<'a>(&'a self, unit: &'a str) -> &'a str {
        self.hostname.as_deref().unwrap_or(unit)
    }

    /// The names other units on its networks find this one by, each once:
    /// the unit's name (when it is a DNS label), its hostname, its aliases.
    /// Empty unless `network` is `bridge`.
    pub fn dns_names(&self, unit: &str) -> Vec<String> {
        if self.network != Network::Bridge {
            return Vec::new();
        }
        let mut names: Vec<String> = Vec::new();
        let candidates = [unit]
            .into_iter()
            .filter(|n| is_dns_label(n))
            .chain(self.hostname.as_deref())
            .chain(self.aliases.iter().map(String::as_str));
        for n in candidates {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
        names
    }
}

/// Whether `s` is a DNS label as RFC 1123 has it: 1 to 63 letters, digits
/// and '-', not starting or ending with '-'.
pub fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

words! {
    /// The plain words `network` takes; with the `unit:NAME` form they make
    /// up [`Network`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum NetworkWord {
        Bridge = "bridge",
        Host = "host",
        None = "none",
    }
}

/// `network` in `[container]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A network namespace of its own, joined to each of `networks` by a
    /// veth pair into that network's bridge (the default).
    Bridge,
    /// The host's network namespace.
    Host,
    /// A new network namespace with only loopback.
    None,
    /// The network namespace of another unit's container, which has
    /// `network = "bridge"` (written `unit:NAME`).
    Unit(String),
}

impl Network {
    /// The prefix of the `unit:NAME` form.
    pub const UNIT_PREFIX: &'static str = "unit:";

    /// The spellings, for messages: `"bridge", "host", "none" or "unit:NAME"`.
    pub fn expected() -> String {
        let words: Vec<String> = NetworkWord::ALL
            .iter()
            .map(|w| format!("{:?}", w.as_str()))
            .collect();
        format!("{} or \"{}NAME\"", words.join(", "), Network::UNIT_PREFIX)
    }

    /// The word for `bridge`, `host` and `none`; `None` for `unit:NAME`.
    pub fn word(&self) -> Option<NetworkWord> {
        match self {
            Network::Bridge => Some(NetworkWord::Bridge),
            Network::Host => Some(NetworkWord::Host),
            Network::None => Some(NetworkWord::None),
            Network::Unit(_) => None,
        }
    }

    /// The unit whose namespace this one joins, for `unit:NAME`.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Network::Unit(name) => Some(name),
            _ => None,
        }
    }
}

impl From<NetworkWord> for Network {
    fn from(w: NetworkWord) -> Network {
        match w {
            NetworkWord::Bridge => Network::Bridge,
            NetworkWord::Host => Network::Host,
            NetworkWord::None => Network::None,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.word()) {
            (Network::Unit(name), _) => write!(f, "{}{name}", Network::UNIT_PREFIX),
            (_, Some(w)) => f.write_str(w.as_str()),
            (_, None) => unreachable!("every network but unit:NAME is a word"),
        }
    }
}

impl FromStr for Network {
    type Err = String;

    /// A word, or `unit:NAME` with a non-empty NAME (not checked further:
    /// the parser checks it is a unit name).
    fn from_str(s: &str) -> Result<Network, String> {
        if let Some(w) = NetworkWord::from_word(s) {
            return Ok(w.into());
        }
        match s.strip_prefix(Network::UNIT_PREFIX) {
            Some("") => Err(format!(
                "{s:?} names no unit; write \"{}NAME\" with the name of the unit whose \
                 network namespace this one joins",
                Network::UNIT_PREFIX
            )),
            Some(name) => Ok(Network::Unit(name.to_string())),
            None => Err(format!(
                "unknown network {s:?}; expected one of {}",
                Network::expected()
            )),
        }
    }
}

words! {
    /// The protocol of a published port.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
    pub enum Protocol {
        #[default]
        Tcp = "tcp",
        Udp = "udp",
    }
}

/// A published port, `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`:
/// traffic to the host's address and port reaches the container's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// The host address it is published on; `None` means every address.
    pub host_ip: Option<IpAddr>,
    /// 1..=65535.
    pub host_port: u16,
    /// 1..=65535.
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// The form, for messages.
    pub const FORM: &'static str = "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]";
    /// Examples, for messages.
    pub const EXAMPLES: &'static str = "e.g. \"8080:80\", \"127.0.0.1:5353:53/udp\" or \
                                        \"[::1]:8080:80\"";

    /// Whether `self` and `other` take the same host port: the same port
    /// and protocol on the same address, or on every address.
    pub fn clashes_with(&self, other: &PortSpec) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The host side as `docker ps` shows it: `0.0.0.0:8080/tcp`,
    /// `[::1]:8080/udp`.
    pub fn host_side(&self) -> String {
        format!(
            "{}:{}/{}",
            show_host_ip(self.host_ip),
            self.host_port,
            self.protocol.as_str()
        )
    }
}

fn show_host_ip(ip: Option<IpAddr>) -> String {
    match ip {
        None => "0.0.0.0".into(),
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => format!("[{ip}]"),
    }
}

/// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`, `[::1]:53->53/udp`.
impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            show_host_ip(self.host_ip),
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl FromStr for PortSpec {
    type Err = String;

    /// `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`; an IPv6 host
    /// address in brackets, `[::1]:8080:80`. The error says what is wrong
    /// and shows the form.
    fn from_str(s: &str) -> Result<PortSpec, String> {
        parse_port_spec(s)
            .map_err(|e| format!("{e}; write {}, {}", PortSpec::FORM, PortSpec::EXAMPLES))
    }
}

fn parse_port_spec(s: &str) -> Result<PortSpec, String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("it must not contain spaces".into());
    }
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((rest, p)) => match Protocol::from_word(p) {
            Some(p) => (rest, p),
            None if Protocol::from_word(&p.to_ascii_lowercase()).is_some() => {
                return Err(format!(
                    "write the protocol in lower case, /{}",
                    p.to_ascii_lowercase()
                ))
            }
            None => {
                return Err(format!(
                    "unknown protocol {p:?} after '/'; expected /tcp or /udp"
                ))
            }
        },
        None => (s, Protocol::Tcp),
    };
    let (host_ip, ports) = if let Some(after) = rest.strip_prefix('[') {
        let Some((ip, ports)) = after.split_once(']') else {
            return Err("unclosed '[' in the IPv6 host address".into());
        };
        let Some(ports) = ports.strip_prefix(':') else {
            return Err("expected ':' and the host port after the IPv6 host address".into());
        };
        match ip.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => (Some(IpAddr::V6(ip)), ports),
            Err(_) => return Err(format!("{ip:?} in brackets is not an IPv6 address")),
        }
    } else {
        match rest.split(':').count() {
            0..=1 => {
                return Err(format!(
                    "give the host port and the container port, e.g. \"{rest}:{rest}\" \
                     (a port is not published without a host port)"
                ))
            }
            2 => (None, rest),
            3 => {
                let (ip, ports) = rest.split_once(':').expect("has ':'");
                match ip.parse::<IpAddr>() {
                    Ok(ip) => (Some(ip), ports),
                    Err(_) if ip.is_empty() => {
                        return Err("the host address before the first ':' is empty; leave it \
                                    out to publish on every address"
                            .into())
                    }
                    Err(_) => return Err(format!("the host address {ip:?} is not an IP address")),
                }
            }
            _ => {
                return Err("too many ':'; an IPv6 host address goes in brackets, \
                            e.g. \"[::1]:8080:80\""
                    .into())
            }
        }
    };
    let (host, container) = ports
        .split_once(':')
        .ok_or_else(|| "expected HOST_PORT:CONTAINER_PORT after the host address".to_string())?;
    if ports[host.len() + 1..].contains(':') {
        return Err("too many ':'".into());
    }
    let host_port = port_number(host, "host")?;
    let container_port = port_number(container, "container")?;
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

/// A port number, 1..=65535.
fn port_number(s: &str, which: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err(format!("the {which} port is empty"));
    }
    if s.contains('-')
        && s.split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "the {which} port {s:?} is a range; ranges are not supported, publish each port \
             on its own"
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the {which} port {s:?} is not a number"));
    }
    match s.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!(
            "the {which} port {s} is out of range; ports are 1 to 65535"
        )),
    }
}

/// A line of `extra_hosts`: `NAME:IP` or `NAME:host-gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtraHost {
    /// A hostname (labels of RFC 1123, dots allowed).
    pub name: String,
    pub target: HostTarget,
}

/// The address of an [`ExtraHost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostTarget {
    /// `host-gateway`: the host, as the container reaches it (the gateway
    /// of its first network).
    Gateway,
    Addr(IpAddr),
}

impl HostTarget {
    /// How `extra_hosts` writes [`HostTarget::Gateway`].
    pub const GATEWAY: &'static str = "host-gateway";
}

impl ExtraHost {
    /// The form, for messages.
    pub const FORM: &'static str = "NAME:IP or NAME:host-gateway";
    /// Examples, for messages.
    pub const EXAMPLES: &'static str =
        "e.g. \"nas:192.0.2.10\", \"host.docker.internal:host-gateway\" or \"v6host:[::1]\"";
}

/// `NAME:IP` (IPv6 in brackets) or `NAME:host-gateway`.
impl fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target {
            HostTarget::Gateway => write!(f, "{}:{}", self.name, HostTarget::GATEWAY),
            HostTarget::Addr(IpAddr::V4(ip)) => write!(f, "{}:{ip}", self.name),
            HostTarget::Addr(IpAddr::V6(ip)) => write!(f, "{}:[{ip}]", self.name),
        }
    }
}

impl FromStr for ExtraHost {
    type Err = String;

    /// `NAME:IP`, `NAME:[IPv6]`, `NAME:IPv6` (as compose allows) or
    /// `NAME:host-gateway`. NAME is a hostname.
    fn from_str(s: &str) -> Result<ExtraHost, String> {
        let form = || format!("write {}, {}", ExtraHost::FORM, ExtraHost::EXAMPLES);
        let Some((name, target)) = s.split_once(':') else {
            return Err(format!(
                "expected ':' between the name and the address; {}",
                form()
            ));
        };
        if name.is_empty() {
            return Err(format!("the name before ':' is empty; {}", form()));
        }
        if let Err(e) = check_hostname(name, 253) {
            return Err(format!("the name {e}; {}", form()));
        }
        let target = if target == HostTarget::GATEWAY {
            HostTarget::Gateway
        } else {
            let bare = target
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .filter(|t| t.contains(':'));
            let parsed = match bare {
                Some(v6) => v6.parse::<std::net::Ipv6Addr>().map(IpAddr::V6).ok(),
                None => target.parse::<IpAddr>().ok(),
            };
            match parsed {
                Some(ip) => HostTarget::Addr(ip),
                None if target.is_empty() => {
                    return Err(format!("the address after ':' is empty; {}", form()))
                }
                None => {
                    return Err(format!(
                        "{target:?} is not an IP address or {:?}; {}",
                        HostTarget::GATEWAY,
                        form()
                    ))
                }
            }
        };
        Ok(ExtraHost {
            name: name.to_string(),
            target,
        })
    }
}

/// Checks a hostname: DNS labels (RFC 1123) joined by dots, at most `max`
/// bytes. The error reads after "the name" / "the hostname".
pub(crate) fn check_hostname(s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!(
            "{s:?} is {} bytes long; at most {max} are allowed",
            s.len()
        ));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(format!(
                "{s:?} has an empty label (two dots in a row, or a dot at an end)"
            ));
        }
        match check_label(label) {
            Err(e) if label.len() == s.len() => return Err(e),
            Err(e) => return Err(format!("{s:?}: {e}")),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// Why `s` is not a DNS label, if it is not.
pub(crate) fn check_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("a name is empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "{s:?} has {c:?}; a DNS name has only letters, digits and '-'"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("{s:?} must not start or end with '-'"));
    }
    if s.len() > 63 {
        return Err(format!(
            "{s:?} is {} characters long; a DNS label has at most 63",
            s.len()
        ));
    }
    Ok(())
}

/// A line of `volumes`: `HOST_PATH:PATH[:ro]` (a bind mount) or
/// `NAME:PATH[:ro]` (a named volume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// What is mounted.
    pub source: VolumeSource,
    /// Where in the container: absolute, without `..`, not `/`.
    pub container: String,
    pub read_only: bool,
}

impl Volume {
    /// A bind mount of the host directory `host` at `container`.
    pub fn bind(host: impl Into<String>, container: impl Into<String>, read_only: bool) -> Volume {
        Volume {
            source: VolumeSource::Bind(host.into()),
            container: container.into(),
            read_only,
        }
    }

    /// The named volume `name` at `container`.
    pub fn named(name: impl Into<String>, container: impl Into<String>, read_only: bool) -> Volume {
        Volume {
            source: VolumeSource::Named(name.into()),
            container: container.into(),
            read_only,
        }
    }
}

/// As a unit file writes it: `HOST_PATH:PATH` or `NAME:PATH`, then `:ro`
/// when read-only.
impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            VolumeSource::Bind(host) => write!(f, "{host}:{}", self.container)?,
            VolumeSource::Named(name) => write!(f, "{name}:{}", self.container)?,
        }
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

impl FromStr for Volume {
    type Err = String;

    /// See [`crate::parse_volume`].
    fn from_str(s: &str) -> Result<Volume, String> {
        crate::parse_volume(s)
    }
}

/// The host side of a [`Volume`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeSource {
    /// A host path: absolute, without `..`.
    Bind(String),
    /// A named volume, `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (Docker's rule): a
    /// directory jarvisd keeps under its state directory (`volumes/NAME`),
    /// created on first use, filled from the image's content at the mount
    /// path when new, and kept when the unit goes away. Units that name
    /// the same volume share it.
    Named(String),
}

/// A device cgroup rule's device type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// `a`: every device, character and block (only as `a *:*`).
    All,
    /// `c`: character devices.
    Char,
    /// `b`: block devices.
    Block,
}

/// A line of `device_cgroup_rules`: `TYPE MAJOR:MINOR ACCESS`, Docker's
/// `--device-cgroup-rule` (`"c 189:* rmw"`): TYPE `a`, `b` or `c`; MAJOR
/// and MINOR numbers or `*` (any); ACCESS letters of `rwm`, each at most
/// once (read, write, mknod).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceCgroupRule {
    pub kind: DeviceType,
    /// `None`: every major (`*`).
    pub major: Option<u32>,
    /// `None`: every minor (`*`).
    pub minor: Option<u32>,
    /// The access letters in the order `rwm`, e.g. `"rw"`.
    pub access: String,
}

impl DeviceCgroupRule {
    /// The form, for messages.
    pub const FORM: &'static str = "TYPE MAJOR:MINOR ACCESS";
    /// Examples, for messages.
    pub const EXAMPLES: &'static str = "e.g. \"c 189:* rmw\" or \"b 8:0 r\"";
    /// The largest major the kernel gives a device (12 bits).
    pub const MAX_MAJOR: u32 = (1 << 12) - 1;
    /// The largest minor the kernel gives a device (20 bits).
    pub const MAX_MINOR: u32 = (1 << 20) - 1;
}

/// As Docker writes it: `c 189:* rmw`.
impl fmt::Display for DeviceCgroupRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceType::All => 'a',
            DeviceType::Char => 'c',
            DeviceType::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

impl FromStr for DeviceCgroupRule {
    type Err = String;

    /// Docker's grammar, `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`,
    /// with each access letter once, numbers the kernel can give a device,
    /// and type `a` only as `a *:*` (it matches every device whatever the
    /// numbers).
    fn from_str(s: &str) -> Result<DeviceCgroupRule, String> {
        let form = || {
            format!(
                "write {}, {}",
                DeviceCgroupRule::FORM,
                DeviceCgroupRule::EXAMPLES
            )
        };
        let parts: Vec<&str> = s.split(' ').collect();
        let [kind, numbers, access] = parts.as_slice() else {
            return Err(format!(
                "expected three parts separated by one space; {}",
                form()
            ));
        };
        let kind = match *kind {
            "a" => DeviceType::All,
            "c" => DeviceType::Char,
            "b" => DeviceType::Block,
            other => {
                return Err(format!(
                    "unknown device type {other:?}; the type is c (character), b (block) or a \
                     (all)"
                ))
            }
        };
        let Some((major, minor)) = numbers.split_once(':') else {
            return Err(format!(
                "expected MAJOR:MINOR, found {numbers:?}; {}",
                form()
            ));
        };
        let number = |what: &str, text: &str, max: u32| -> Result<Option<u32>, String> {
            if text == "*" {
                return Ok(None);
            }
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "the {what} {text:?} is not a number or *; {}",
                    form()
                ));
            }
            match text.parse::<u32>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(format!(
                    "the {what} {text} is larger than any device's (at most {max})"
                )),
            }
        };
        let major = number("major", major, DeviceCgroupRule::MAX_MAJOR)?;
        let minor = number("minor", minor, DeviceCgroupRule::MAX_MINOR)?;
        if kind == DeviceType::All && (major.is_some() || minor.is_some()) {
            return Err(
                "type a allows every device whatever the numbers; write \"a *:* ACCESS\", or c \
                 or b with the numbers"
                    .into(),
            );
        }
        if access.is_empty() {
            return Err(format!("the access is empty; {}", form()));
        }
        let mut letters = String::new();
        for l in ['r', 'w', 'm'] {
            match access.matches(l).count() {
                0 => {}
                1 => letters.push(l),
                _ => return Err(format!("the access {access:?} has {l} twice")),
            }
        }
        if letters.len() != access.len() {
            return Err(format!(
                "the access {access:?} is not letters of rwm (r read, w write, m mknod)"
            ));
        }
        Ok(DeviceCgroupRule {
            kind,
            major,
            minor,
            access: letters,
        })
    }
}

/// A line of `tmpfs`: `PATH[:OPTIONS]`, e.g. `"/tmp:size=64m,mode=1777"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Where in the container: absolute, without `..`, not `/`.
    pub path: String,
    /// `size=`: bytes; `None` means the kernel's default (half of RAM).
    pub size: Option<u64>,
    /// `mode=`: the permission bits of the mount's root, at most `0o7777`;
    /// `None` means the kernel's default (`1777`).
    pub mode: Option<u32>,
}

impl Tmpfs {
    /// The options a tmpfs line takes after ':'.
    pub const OPTIONS: &'static [&'static str] = &["size", "mode"];
    /// The form, for messages.
    pub const FORM: &'static str = "PATH or PATH:size=SIZE,mode=OCTAL";
    /// Examples, for messages.
    pub const EXAMPLES: &'static str = "e.g. \"/run\" or \"/tmp:size=64m,mode=1777\"";
}

/// As a unit file writes it: `/tmp:size=64m,mode=1777` (the size with the
/// largest of the suffixes k, m, g that divides it).
impl fmt::Display for Tmpfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        let mut sep = ':';
        if let Some(size) = self.size {
            write!(f, "{sep}size={}", show_size(size))?;
            sep = ',';
        }
        if let Some(mode) = self.mode {
            write!(f, "{sep}mode={mode:o}")?;
        }
        Ok(())
    }
}

/// `n` bytes with the largest binary suffix (g, m, k) that divides it.
fn show_size(n: u64) -> String {
    for (shift, suffix) in [(30, 'g'), (20, 'm'), (10, 'k')] {
        if n != 0 && n.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

impl FromStr for Tmpfs {
    type Err = String;

    /// `PATH[:OPTIONS]`: PATH absolute, without `..`, not `/`; OPTIONS
    /// comma-separated `size=SIZE` (bytes, or a number with a binary suffix
    /// k, m or g, as Docker's `--tmpfs` takes it) and `mode=OCTAL` (at most
    /// `7777`), each at most once. Any other option is an error.
    fn from_str(s: &str) -> Result<Tmpfs, String> {
        let form = || format!("write {}, {}", Tmpfs::FORM, Tmpfs::EXAMPLES);
        if s.contains('\0') {
            return Err("a tmpfs line must not contain NUL".into());
        }
        let (path, options) = match s.split_once(':') {
            Some((p, o)) => (p, Some(o)),
            None => (s, None),
        };
        if path.is_empty() {
            return Err(format!("the path is empty; {}", form()));
        }
        if !path.starts_with('/') {
            return Err(format!(
                "the path {path:?} must be absolute (start with /); {}",
                form()
            ));
        }
        if path.split('/').any(|c| c == "..") {
            return Err(format!("the path {path:?} must not contain \"..\""));
        }
        if crate::container::normalize_path(path) == "/" {
            return Err(
                "cannot mount a tmpfs over the container's root directory \"/\"".to_string(),
            );
        }
        let mut tmpfs = Tmpfs {
            path: path.to_string(),
            size: None,
            mode: None,
        };
        let Some(options) = options else {
            return Ok(tmpfs);
        };
        if options.is_empty() {
            return Err(format!("nothing follows ':'; {}", form()));
        }
        for option in options.split(',') {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            match name {
                "size" if tmpfs.size.is_some() => return Err("size is given twice".into()),
                "mode" if tmpfs.mode.is_some() => return Err("mode is given twice".into()),
                "size" => {
                    let n = crate::parse_size(value).ok_or_else(|| {
                        format!(
                            "invalid size {value:?}; write bytes or a number with k, m or g, \
                             e.g. size=64m"
                        )
                    })?;
                    if n == 0 {
                        return Err(
                            "size=0 is not a size; leave size out for the kernel's default \
                             (half of the memory)"
                                .into(),
                        );
                    }
                    tmpfs.size = Some(n);
                }
                "mode" => tmpfs.mode = Some(parse_mode(value, 0o7777)?),
                "" => {
                    return Err(format!(
                        "an option is empty (two ',' in a row?); {}",
                        form()
                    ))
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?}; a tmpfs takes size=SIZE and mode=OCTAL \
                         (it is always mounted nosuid and nodev)"
                    ))
                }
            }
        }
        Ok(tmpfs)
    }
}

/// Permission bits written in octal (`1777`, `0400`), at most `max`.
pub fn parse_mode(s: &str, max: u32) -> Result<u32, String> {
    if s.is_empty() {
        return Err("the mode is empty; write octal digits, e.g. 0755".into());
    }
    if !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "the mode {s:?} is not octal; write octal digits, e.g. 0755"
        ));
    }
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= max => Ok(m),
        _ => Err(format!("the mode {s} is larger than {max:o}")),
    }
}

/// Why a container may not set the sysctl `name` with `network`, if it may
/// not: only sysctls the kernel keeps per namespace are allowed, and `net.*`
/// only in a network namespace of the unit's own.
pub fn check_sysctl(name: &str, network: &Network) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.contains('/') {
        return Err(format!(
            "write the name with dots, {:?}, as sysctl(8) does",
            name.trim_matches('/').replace('/', ".")
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '=')
    {
        return Err(format!("{name:?} has {c:?}, which no sysctl name has"));
    }
    if name.split('.').any(str::is_empty) {
        return Err(format!(
            "{name:?} has an empty component (two dots in a row, or a dot at an end)"
        ));
    }
    let namespaced = name.starts_with("net.")
        || name.starts_with("fs.mqueue.")
        || ["kernel.shm", "kernel.msg", "kernel.sem"]
            .iter()
            .any(|p| name.starts_with(p));
    if !namespaced {
        let hint = match name {
            "kernel.hostname" => "; set the container's hostname with hostname = \"NAME\"",
            "kernel.domainname" => "; the NIS domain name cannot be set",
            _ => "; set it on the host instead (e.g. in /etc/sysctl.d)",
        };
        return Err(format!(
            "{name:?} is not kept per container: setting it would change the whole host; a \
             container may set only {}{hint}",
            Container::SYSCTL_FORMS
        ));
    }
    if name.starts_with("net.") {
        match network {
            Network::Host => {
                return Err(format!(
                    "{name:?} would change the host's network: with network = \"host\" the \
                     container shares the host's network namespace; set it on the host, or \
                     use network = \"bridge\""
                ))
            }
            Network::Unit(owner) => {
                return Err(format!(
                    "the container shares the network namespace of {owner}: set {name:?} in \
                     the sysctls of {owner}"
                ))
            }
            Network::Bridge | Network::None => {}
        }
    }
    Ok(())
}

words! {
    /// A resource limit `ulimits` sets: Docker's names (`nofile`, ...).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Rlimit {
        Core = "core",
        Cpu = "cpu",
        Data = "data",
        Fsize = "fsize",
        Locks = "locks",
        Memlock = "memlock",
        Msgqueue = "msgqueue",
        Nice = "nice",
        Nofile = "nofile",
        Nproc = "nproc",
        Rss = "rss",
        Rtprio = "rtprio",
        Rttime = "rttime",
        Sigpending = "sigpending",
        Stack = "stack",
    }
}

impl Rlimit {
    /// The name the OCI runtime spec gives it (`RLIMIT_NOFILE`).
    pub fn oci_name(self) -> String {
        format!("RLIMIT_{}", self.as_str().to_ascii_uppercase())
    }
}

/// The soft and hard values of one of `ulimits`; soft <= hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ulimit {
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    /// No limit (`RLIM_INFINITY`), written `-1` or `"unlimited"`.
    pub const UNLIMITED: u64 = u64::MAX;
    /// The word for [`Ulimit::UNLIMITED`].
    pub const UNLIMITED_WORD: &'static str = "unlimited";

    /// The same value for soft and hard.
    pub fn both(n: u64) -> Ulimit {
        Ulimit { soft: n, hard: n }
    }
}

/// `[[secret]]`: a host file the service reads. A container sees it at
/// `/run/secrets/TARGET`, read-only, owned by the unit's user; a native
/// unit finds it at `$CREDENTIALS_DIRECTORY/TARGET`. Its content never
/// appears in `status`, logs or the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Secret {
    /// The host file: absolute, without `..` (a repository's relative
    /// paths are joined to its root when the unit is loaded). A missing
    /// file fails the start, naming the file. A name ending in `.age` is an
    /// age-encrypted file, decrypted at each start with the host's
    /// identity.
    pub source: PathBuf,
    /// The file name the service sees: no '/', not `.` or `..`; by default
    /// the source's file name, less `.age`. Each target once per unit.
    pub target: String,
    /// The file's permission bits; [`Secret::DEFAULT_MODE`] by default.
    #[serde(default = "Secret::default_mode")]
    pub mode: u32,
}

impl Secret {
    /// The keys of `[[secret]]`.
    pub const KEYS: &'static [&'static str] = &["source", "target", "mode"];
    /// Read-only for its owner.
    pub const DEFAULT_MODE: u32 = 0o400;
    /// Where a container finds its secrets.
    pub const CONTAINER_DIR: &'static str = "/run/secrets";
    /// The suffix of an age-encrypted file, an `env_file` entry's or a
    /// source's.
    pub const AGE_SUFFIX: &'static str = ".age";

    /// Whether `path` names an age-encrypted file (its name ends in
    /// [`Secret::AGE_SUFFIX`]).
    pub fn is_age(path: &Path) -> bool {
        path.file_name().is_some_and(|n| {
            n.as_encoded_bytes()
                .ends_with(Secret::AGE_SUFFIX.as_bytes())
        })
    }

    fn default_mode() -> u32 {
        Secret::DEFAULT_MODE
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Native {
    /// argv; never empty.
    pub command: Vec<String>,
    /// A user name or a numeric uid; `None` means root.
    pub user: Option<String>,
    /// A group name or numeric gid; `None` means the user's primary group.
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    pub working_dir: Option<String>,
}

impl Native {
    /// `command` run as root, in jarvisd's working directory.
    pub fn new(command: Vec<String>) -> Native {
        Native {
            command,
            user: None,
            group: None,
            supplementary_groups: vec![],
            working_dir: None,
        }
    }

    /// The keys of `[native]`.
    pub const KEYS: &'static [&'static str] = &[
        "command",
        "user",
        "group",
        "supplementary_groups",
        "working_dir",
    ];
}

words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Condition {
        /// The dependency's process has been started.
        Started = "started",
        /// The dependency is running and its health check passes.
        Healthy = "healthy",
        /// The dependency ran to completion and exited 0.
        Completed = "completed",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub unit: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes.
    pub memory_max: Option<u64>,
    /// CPU quota in CPUs (compose's `cpus`), > 0.
    pub cpus: Option<f64>,
    /// 1..=10000, as cgroup v2's cpu.weight.
    pub cpu_weight: Option<u64>,
    pub pids_max: Option<u64>,
    /// A cpu list such as "0-3,6", syntax-checked.
    pub cpuset: Option<String>,
}

impl Resources {
    /// The keys of `[resources]`.
    pub const KEYS: &'static [&'static str] =
        &["memory_max", "cpus", "cpu_weight", "pids_max", "cpuset"];
}

words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RestartPolicy {
        Always = "always",
        OnFailure = "on-failure",
        Never = "never",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    pub policy: RestartPolicy,
    pub delay: Duration,
    pub max_delay: Duration,
    pub burst: u32,
    pub interval: Duration,
}

impl Restart {
    /// The keys of `[restart]`.
    pub const KEYS: &'static [&'static str] =
        &["policy", "delay", "max_delay", "burst", "interval"];
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::OnFailure,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            burst: 5,
            interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// A URL; healthy on a 2xx or 3xx answer.
    Http(String),
    /// `host:port`; healthy when a connection opens.
    Tcp(String),
    /// argv; healthy on exit 0.
    Exec(Vec<String>),
}

impl Probe {
    /// The keys of `[health]` that name a probe; a health check has
    /// exactly one of them.
    pub const KEYS: &'static [&'static str] = &["http", "tcp", "exec"];
}

words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum OnUnhealthy {
        Restart = "restart",
        Ignore = "ignore",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    /// Failures within this time after a start do not count; a success ends
    /// it early (Docker's `start_period`).
    pub start_period: Duration,
    /// How often to probe during `start_period` (Docker's `start_interval`).
    pub start_interval: Duration,
    pub on_unhealthy: OnUnhealthy,
}

impl Health {
    /// The keys of `[health]`: a probe, then its settings.
    pub const KEYS: &'static [&'static str] = &concat::<9>(
        Probe::KEYS,
        &[
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "on_unhealthy",
        ],
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// A signal number (validated from a name such as "SIGTERM" or "TERM").
    pub signal: i32,
    pub timeout: Duration,
}

impl Stop {
    /// The keys of `[stop]`.
    pub const KEYS: &'static [&'static str] = &["signal", "timeout"];
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: 15,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// Capabilities kept, canonical upper-case names with the `CAP_` prefix
    /// (e.g. "CAP_NET_ADMIN"). Every other capability is dropped.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
}

impl Security {
    /// The keys of `[security]`.
    pub const KEYS: &'static [&'static str] = &["capabilities", "no_new_privileges"];
}

impl Default for Security {
    fn default() -> Self {
        Security {
            capabilities: Vec::new(),
            no_new_privileges: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// Bytes.
    pub max_size: u64,
    pub max_files: u32,
}

impl Logs {
    /// The keys of `[logs]`.
    pub const KEYS: &'static [&'static str] = &["max_size", "max_files"];
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            max_size: 10 * 1024 * 1024,
            max_files: 3,
        }
    }
}

words! {
    /// `want` in `[gpu]`: which kind of accelerator the unit runs on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum GpuWant {
        /// The best GPU that fits (`count` and `min_vram`), else the CPU.
        Auto = "auto",
        /// An NVIDIA GPU; the unit waits until one fits.
        Nvidia = "nvidia",
        /// An AMD GPU; the unit waits until one fits.
        Amd = "amd",
        /// No GPU: run on the CPU.
        Cpu = "cpu",
    }
}

words! {
    /// `verify` in `[gpu]`: what is asked, besides the GPU driver, whether
    /// the unit really runs on its GPU.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum GpuVerify {
        /// Ollama's `/api/ps` at the unit's `OLLAMA_HOST`: every loaded
        /// model must be wholly in VRAM.
        Ollama = "ollama",
    }
}

words! {
    /// `on_fallback` in `[gpu]`: what jarvis does when a unit placed on a
    /// GPU is found running on the CPU.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum OnFallback {
        /// Restart it, under the restart policy's delay and burst window.
        Restart = "restart",
        /// Say so (status, events, jarvisd's log) and leave it running.
        #[default]
        Warn = "warn",
    }
}

/// `[gpu]`. Every key has a default, so an empty `[gpu]` asks for one GPU
/// of any kind, else the CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// Default `auto`.
    pub want: GpuWant,
    /// How many GPUs, 1..=16.
    pub count: u32,
    /// Bytes of video memory that each GPU must have free (not promised to
    /// other units) for this unit to be admitted; 0 means no requirement.
    pub min_vram: u64,
    /// Asks the unit's own API too whether it runs on its GPU (the
    /// processes holding GPU memory are always checked).
    #[serde(default)]
    pub verify: Option<GpuVerify>,
    /// What a fallback to the CPU does; default `warn`.
    #[serde(default)]
    pub on_fallback: OnFallback,
    /// How often a unit placed on a GPU is checked, the first time this
    /// long after it runs (and is healthy, with a health check); default
    /// 30 s.
    #[serde(default = "Gpu::default_verify_interval")]
    pub verify_interval: Duration,
}

impl Gpu {
    /// The keys of `[gpu]`.
    pub const KEYS: &'static [&'static str] = &[
        "want",
        "count",
        "min_vram",
        "verify",
        "on_fallback",
        "verify_interval",
    ];

    /// `verify_interval`'s default.
    pub const DEFAULT_VERIFY_INTERVAL: Duration = Duration::from_secs(30);

    fn default_verify_interval() -> Duration {
        Self::DEFAULT_VERIFY_INTERVAL
    }
}

impl Default for Gpu {
    fn default() -> Self {
        Gpu {
            want: GpuWant::Auto,
            count: 1,
            min_vram: 0,
            verify: None,
            on_fallback: OnFallback::Warn,
            verify_interval: Gpu::DEFAULT_VERIFY_INTERVAL,
        }
    }
}

/// Which host device a `[[device]]` entry names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceMatch {
    /// A USB device by its ids, as `lsusb` shows them: 4 lowercase hex
    /// digits each. `serial` narrows it to one device when several with the
    /// same ids are plugged in.
    Usb {
        vendor: String,
        product: String,
        serial: Option<String>,
    },
    /// A plain host device node, an absolute path such as "/dev/net/tun".
    Path(String),
}

impl DeviceMatch {
    /// The keys of `[[device]]` that name the device; an entry has exactly
    /// one of them.
    pub const KEYS: &'static [&'static str] = &["usb", "path"];
}

/// `[[device]]`: a host device the service sees at `as_path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub matcher: DeviceMatch,
    /// `as`: the stable path the service sees, absolute and under /dev
    /// (normalised: no empty or "." components, no trailing '/'). For a
    /// `path` device it defaults to that path.
    pub as_path: String,
    /// When false (the default) the unit waits, in state "waiting", until
    /// the device is present; when true it starts without it.
    pub optional: bool,
}

impl DeviceSpec {
    /// The keys of `[[device]]`.
    pub const KEYS: &'static [&'static str] = &["usb", "serial", "path", "as", "optional"];
}

words! {
    /// `api` in `[bench]`: the inference server's HTTP API.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum BenchApi {
        /// Ollama: `POST /api/generate`.
        Ollama = "ollama",
        /// OpenAI-compatible completions: `POST /v1/completions`.
        Openai = "openai",
        /// llama.cpp's server: `POST /completion`.
        Llamacpp = "llamacpp",
    }
}

impl BenchApi {
    /// The path the bench posts to, appended to [`Bench::url`].
    pub fn path(self) -> &'static str {
        match self {
            BenchApi::Ollama => "/api/generate",
            BenchApi::Openai => "/v1/completions",
            BenchApi::Llamacpp => "/completion",
        }
    }

    /// Whether the API takes a model name (llama.cpp's `/completion` serves
    /// the one model it loaded).
    pub fn takes_model(self) -> bool {
        !matches!(self, BenchApi::Llamacpp)
    }
}

/// `[bench]`: a benchmark of the unit's native form against its container
/// form. Each round starts the unit in one form, waits until its health
/// check passes, sends one warm-up request and then `requests` measured
/// ones; rounds alternate native, container, native, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bench {
    pub api: BenchApi,
    /// The server's base URL, `http://host:port` (no path, no trailing
    /// '/'); the request goes to `url` + [`BenchApi::path`].
    pub url: String,
    /// Passed to the API where it takes one; required for `ollama`.
    pub model: Option<String>,
    /// Default [`Bench::DEFAULT_PROMPT`]; never empty.
    pub prompt: String,
    /// Tokens to generate per request, >= 1. Default 64.
    pub max_tokens: u32,
    /// Measured requests per round, after one warm-up request; >= 1.
    /// Default 10.
    pub requests: u32,
    /// Rounds, alternating native and container; >= 2. Default 6.
    pub rounds: u32,
    /// The container is preferred unless it is measurably slower than
    /// native by more than this fraction (0.05: 5%); 0..=1. Default 0.05.
    pub max_slowdown: f64,
}

impl Bench {
    /// The keys of `[bench]`.
    pub const KEYS: &'static [&'static str] = &[
        "api",
        "url",
        "model",
        "prompt",
        "max_tokens",
        "requests",
        "rounds",
        "max_slowdown",
    ];
    pub const DEFAULT_PROMPT: &'static str = "Why is the sky blue?";
    pub const DEFAULT_MAX_TOKENS: u32 = 64;
    pub const DEFAULT_REQUESTS: u32 = 10;
    pub const DEFAULT_ROUNDS: u32 = 6;
    pub const DEFAULT_MAX_SLOWDOWN: f64 = 0.05;

    /// A bench with every optional key at its default.
    pub fn new(api: BenchApi, url: impl Into<String>) -> Bench {
        Bench {
            api,
            url: url.into(),
            model: None,
            prompt: Bench::DEFAULT_PROMPT.into(),
            max_tokens: Bench::DEFAULT_MAX_TOKENS,
            requests: Bench::DEFAULT_REQUESTS,
            rounds: Bench::DEFAULT_ROUNDS,
            max_slowdown: Bench::DEFAULT_MAX_SLOWDOWN,
        }
    }

    /// The URL the bench posts to.
    pub fn endpoint(&self) -> String {
        format!("{}{}", self.url, self.api.path())
    }
}
