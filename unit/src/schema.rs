//! The typed form of a unit file, after parsing and validation.
//!
//! These types are what the rest of jarvis consumes. They carry no spans and
//! no serde attributes for the file format: `parse.rs` owns the mapping from
//! TOML (with positions) to these types.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A validated unit. `name` is the file stem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub name: String,
    pub description: Option<String>,
    /// Dependencies in file order, each with the condition that must hold.
    pub depends_on: Vec<Dependency>,
    pub exec: Exec,
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
}

impl Unit {
    pub fn kind(&self) -> Kind {
        match self.exec {
            Exec::Native(_) => Kind::Native,
            Exec::Container(_) => Kind::Container,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Native,
    Container,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::Container => "container",
        }
    }
}

/// How the unit runs: `[native]` or `[container]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exec {
    Native(Native),
    Container(Container),
}

/// `[container]`: an OCI image run through libcontainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// A registry reference (`docker.io` and `library/` and `latest` are the
    /// defaults) or `oci-layout:/path/to/dir:tag`.
    pub image: String,
    /// Overrides the image's Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Overrides the image's Cmd.
    pub command: Option<Vec<String>>,
    /// Overrides the image's User: "uid", "uid:gid", "name" or "name:group"
    /// (names are looked up in the image's /etc/passwd and /etc/group).
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub network: Network,
    pub volumes: Vec<Volume>,
    /// A read-only root filesystem.
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The host's network namespace (the default).
    Host,
    /// A new network namespace with only loopback.
    None,
}

/// A bind mount `host:container[:ro]`; both paths absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub host: String,
    pub container: String,
    pub read_only: bool,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The dependency's process has been started.
    Started,
    /// The dependency is running and its health check passes.
    Healthy,
    /// The dependency ran to completion and exited 0.
    Completed,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    pub policy: RestartPolicy,
    pub delay: Duration,
    pub max_delay: Duration,
    pub burst: u32,
    pub interval: Duration,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnhealthy {
    Restart,
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// A signal number (validated from a name such as "SIGTERM" or "TERM").
    pub signal: i32,
    pub timeout: Duration,
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

impl Default for Logs {
    fn default() -> Self {
        Logs {
            max_size: 10 * 1024 * 1024,
            max_files: 3,
        }
    }
}

/// `want` in `[gpu]`: which kind of accelerator the unit runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpuWant {
    /// The best GPU that fits (`count` and `min_vram`), else the CPU.
    Auto,
    /// An NVIDIA GPU; the unit waits until one fits.
    Nvidia,
    /// An AMD GPU; the unit waits until one fits.
    Amd,
    /// No GPU: run on the CPU.
    Cpu,
}

impl GpuWant {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuWant::Auto => "auto",
            GpuWant::Nvidia => "nvidia",
            GpuWant::Amd => "amd",
            GpuWant::Cpu => "cpu",
        }
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
}

impl Default for Gpu {
    fn default() -> Self {
        Gpu {
            want: GpuWant::Auto,
            count: 1,
            min_vram: 0,
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
