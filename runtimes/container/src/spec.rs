//! A unit plus an image config to an OCI runtime spec, with secure defaults.
//!
//! [`build_spec`] is pure: everything it needs comes in through
//! [`SpecInput`], including the image's user database (read beforehand with
//! [`UserDb::load`]) and the paths of the files bound over `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`.
//!
//! The defaults, at least as strict as Podman's:
//!
//! - **Capabilities**: bounding = effective = permitted = Podman's 11
//!   ([`DEFAULT_CAPABILITIES`], CapBnd `0x800405fb`), less `cap_drop`
//!   (`ALL`: every one), plus `cap_add` and `security.capabilities`
//!   (Docker's order: drop, then add). For a container
//!   `security.capabilities` *adds* to the default set (for a native unit
//!   it is the whole set): an image expects the usual container
//!   capabilities. Inheritable and ambient are always empty, so a non-root
//!   user keeps capabilities across exec only through file capabilities,
//!   as in Docker.
//! - **privileged**: every capability, every host device node (from the
//!   caller, [`RunPaths::host_devices`]) and a device cgroup that allows
//!   all, no seccomp filter, no masked or read-only paths, `/sys` writable:
//!   what Docker's `--privileged` gives.
//! - **no_new_privileges** from `security.no_new_privileges` (default true).
//! - **seccomp**: [`crate::seccomp::default_profile`] for those capabilities.
//! - **maskedPaths / readonlyPaths**: [`MASKED_PATHS`], [`READONLY_PATHS`].
//! - **mounts**: `/proc`, `/dev` (tmpfs 755), `/dev/pts` (newinstance,
//!   ptmxmode 0666, gid 5), `/dev/shm` (64 MiB, or `shm_size`),
//!   `/dev/mqueue`, `/sys` (read-only), the `/etc` files, then the unit's
//!   volumes (`rbind`, `rprivate`, `nodev`, plus `ro` for `:ro`; a named
//!   volume from [`RunPaths::volume_dir`]), its `tmpfs` mounts (`nosuid`,
//!   `nodev`, with their size and mode), the secrets directory read-only
//!   at `/run/secrets`, the init binary read-only at [`INIT_PATH`], then
//!   the caller's extra mounts. Volumes are `nodev`, as Docker's are: a
//!   device node in a volume is no way around the device rules.
//! - **devices**: the standard nodes ([`standard_devices`]) and the device
//!   cgroup "deny all, then allow exactly those" ([`device_rules`]), plus
//!   the caller's [`Extras`], then the unit's `device_cgroup_rules`
//!   ([`unit_device_rule`]: allow rules without nodes, as Docker's
//!   `--device-cgroup-rule`).
//! - **namespaces**: pid, ipc, uts, mount; network only for
//!   `network = "none"`; never user.
//! - **process**: no terminal, rlimits only those `ulimits` sets (the rest
//!   inherited as they are), the unit's `sysctls` as `linux.sysctl`,
//!   `group_add` as additional gids (names from the image's `/etc/group`),
//!   cwd resolved by libcontainer after `pivot_root`. With `init = true`
//!   the process is [`INIT_PATH`] `--` and the command: tini, as Docker's
//!   `--init`, reaps zombies and forwards signals as PID 1.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use jarvis_unit::{
    Container, DeviceCgroupRule, DeviceType, Exec, Network, Resources, Rlimit, Security, Unit,
    VolumeSource,
};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxCpuBuilder, LinuxDevice, LinuxDeviceBuilder,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};

use crate::seccomp;
use crate::user::{UserDb, UserError};

/// Podman's default capabilities (`containers.conf`), CapBnd `0x800405fb`.
pub const DEFAULT_CAPABILITIES: [Capability; 11] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::NetBindService,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// Paths covered by an empty read-only file or tmpfs (Docker's and
/// Podman's list plus `/sys/devices/virtual/powercap`, which leaks RAPL
/// energy counters).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths bound read-only over themselves.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The `PATH` a container gets when neither the image nor the unit sets one
/// (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `/dev/shm`'s size (Docker's default).
pub const SHM_SIZE: &str = "size=65536k";

/// Where the init binary is bound in a container with `init = true`.
pub const INIT_PATH: &str = "/sbin/jarvis-init";

/// The cpu period used with `resources.cpus`.
pub const CPU_PERIOD: u64 = 100_000;

/// A device node to create in the container, with its cgroup allow rule
/// (GPU, USB, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDevice {
    /// The path inside the container, e.g. `/dev/nvidia0`.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: i64,
    pub minor: i64,
    /// Permission bits of the node, e.g. `0o666`.
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The cgroup access for this node: a subset of "rwm".
    pub access: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
}

/// An extra device-cgroup allow rule without a node (e.g. `c 195:* rwm` for
/// nodes bound in by an extra mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    /// `None`: every major.
    pub major: Option<i64>,
    /// `None`: every minor.
    pub minor: Option<i64>,
    pub access: String,
}

/// An extra bind mount from the caller (driver libraries, sockets, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraMount {
    pub host: PathBuf,
    /// Absolute path inside the container.
    pub container: PathBuf,
    /// Mount options after `rbind`, e.g. `["ro", "nosuid", "nodev"]`.
    pub options: Vec<String>,
}

/// What the caller adds beyond the unit: devices and mounts (unused today).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub devices: Vec<ExtraDevice>,
    /// Groups the process gets on top of its user's (the host's numeric
    /// `video`/`render` gids for an AMD GPU, a dongle's `dialout`).
    pub additional_gids: Vec<u32>,
    pub device_rules: Vec<DeviceRule>,
    pub mounts: Vec<ExtraMount>,
}

/// What the run provides on the host for the unit's own keys: named
/// volumes, secrets, init, and a privileged container's devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPaths {
    /// Named volume `NAME` is bound from `<volume_dir>/NAME/_data` (see
    /// [`crate::volume`]); `None` refuses a unit with a named volume.
    pub volume_dir: Option<PathBuf>,
    /// The run's secrets directory (a tmpfs, [`crate::secrets`]), bound
    /// read-only at `/run/secrets`; `None` refuses a unit with secrets.
    pub secrets: Option<PathBuf>,
    /// The static init binary on the host (tini), bound read-only at
    /// [`INIT_PATH`]; `None` refuses `init = true`.
    pub init: Option<PathBuf>,
    /// For `privileged = true`: the host's device nodes.
    pub host_devices: Vec<ExtraDevice>,
    /// The capabilities jarvisd holds (its bounding set, see
    /// [`capabilities_from_mask`]): what `privileged` and `ALL` give, as
    /// Docker does (a container cannot get one its runtime lacks). `None`:
    /// every capability the spec names.
    pub bounding: Option<HashSet<Capability>>,
}

/// The host files bound over `/etc/hosts`, `/etc/resolv.conf` and
/// `/etc/hostname` (read-only). See `run::write_etc_files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

/// Everything [`build_spec`] reads.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    /// A unit with `Exec::Container`.
    pub unit: &'a Unit,
    pub image: &'a ImageConfiguration,
    /// The image's `/etc/passwd` and `/etc/group`.
    pub users: &'a UserDb,
    /// The container's root filesystem (absolute).
    pub rootfs: &'a Path,
    /// `linux.cgroupsPath`, set exactly, e.g. `/jarvis/<unit>`. libcontainer
    /// creates this cgroup (in every hierarchy it manages) and deletes it
    /// with the container; the caller creates none there.
    pub cgroups_path: &'a str,
    /// `None`: the image's own `/etc` files stay.
    pub etc: Option<&'a EtcFiles>,
    pub extras: &'a Extras,
    /// The network namespace to join (`bridge` and `unit:NAME`: made by
    /// jarvis-network); `None` makes a new one, with only loopback, unless
    /// the unit's network is `host`.
    pub netns: Option<&'a Path>,
    /// Volumes, secrets, init and devices the run provides.
    pub run: &'a RunPaths,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unit {0:?} is not a container unit")]
    NotAContainer(String),
    #[error("no command: neither the unit nor the image has an entrypoint or a command")]
    NoCommand,
    #[error(transparent)]
    User(#[from] UserError),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("{what} {path:?} must be an absolute path without `..`")]
    BadPath { what: &'static str, path: String },
    #[error("cgroups path {0:?} must be absolute and without `..`")]
    BadCgroupsPath(String),
    #[error("network = {0:?} needs the network namespace jarvis made for the run")]
    NoNetwork(String),
    #[error("hostname {0:?} is longer than 64 bytes")]
    HostnameTooLong(String),
    #[error("environment variable name {0:?} is invalid")]
    BadEnv(String),
    #[error("device access {0:?} must be a non-empty subset of \"rwm\"")]
    BadAccess(String),
    #[error("group {0:?} of group_add is not in the image's /etc/group")]
    UnknownGroup(String),
    #[error("named volume {0:?} needs the volume directory")]
    NoVolumeDir(String),
    #[error("secrets need the run's secrets directory")]
    NoSecretsDir,
    #[error("init = true needs tini's static binary on the host: apt-get install tini")]
    NoInit,
    #[error("building the spec: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// Builds the runtime spec. Pure: no IO.
pub fn build_spec(input: &SpecInput) -> Result<Spec, SpecError> {
    let unit = input.unit;
    let container = match &unit.exec {
        Exec::Container(c) => c,
        Exec::Native(_) => return Err(SpecError::NotAContainer(unit.name.clone())),
    };
    let image = input.image.config().as_ref();

    let hostname = container.hostname_or(&unit.name).to_string();
    if hostname.len() > 64 {
        return Err(SpecError::HostnameTooLong(hostname));
    }
    check_abs("cgroups path", input.cgroups_path)
        .map_err(|_| SpecError::BadCgroupsPath(input.cgroups_path.to_string()))?;

    let mut args = command(container, input.image)?;
    if container.init {
        if input.run.init.is_none() {
            return Err(SpecError::NoInit);
        }
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let user = exec_user(container, input.image, input.users)?;
    let image_env = image.and_then(|c| c.env().clone()).unwrap_or_default();
    let env = merge_env(&image_env, &unit.env, &user.home)?;
    let cwd = match (
        &container.working_dir,
        image.and_then(|c| c.working_dir().clone()),
    ) {
        (Some(dir), _) => {
            check_abs("working_dir", dir)?;
            PathBuf::from(dir)
        }
        // Docker takes a relative image WorkingDir from `/`.
        (None, Some(dir)) if !dir.is_empty() => {
            let dir = Path::new("/").join(dir);
            check_abs("the image's WorkingDir", &dir.to_string_lossy())?;
            dir
        }
        _ => PathBuf::from("/"),
    };

    let all = input.run.bounding.clone().unwrap_or_else(all_capabilities);
    let caps = if container.privileged {
        all
    } else {
        container_capabilities(container, &unit.security, &all)?
    };
    let mut process = Process::default();
    let mut spec_user = User::default();
    spec_user
        .set_uid(user.uid)
        .set_gid(user.gid)
        .set_umask(None)
        .set_additional_gids({
            let mut gids = user.additional_gids.clone();
            let added = group_add(&container.group_add, input.users)?;
            for g in added.iter().chain(&input.extras.additional_gids) {
                if *g != user.gid && !gids.contains(g) {
                    gids.push(*g);
                }
            }
            (!gids.is_empty()).then_some(gids)
        })
        .set_username(None);
    process
        .set_terminal(Some(false))
        .set_console_size(None)
        .set_user(spec_user)
        .set_args(Some(args))
        .set_command_line(None)
        .set_env(Some(env))
        .set_cwd(cwd)
        .set_capabilities(Some(capabilities(&caps)))
        .set_rlimits(rlimits(container)?)
        // `false` is written as absent: libcontainer reads `Some(false)` as
        // "set", loads seccomp after dropping capabilities without the
        // no_new_privs bit, and the kernel refuses the filter. Absent, it
        // loads the filter while it still has CAP_SYS_ADMIN.
        .set_no_new_privileges(unit.security.no_new_privileges.then_some(true))
        .set_apparmor_profile(None)
        .set_oom_score_adj(None)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf())
        .set_readonly(Some(container.read_only));

    let namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    let mut namespaces = namespaces
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
        .collect::<Result<Vec<_>, _>>()?;
    match (&container.network, input.netns) {
        (Network::Host, _) => {}
        (_, Some(path)) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path)
                .build()?,
        ),
        (Network::None, None) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        ),
        (Network::Bridge | Network::Unit(_), None) => {
            return Err(SpecError::NoNetwork(container.network.to_string()))
        }
    }

    let mut devices = standard_devices();
    let privileged_devices = if container.privileged {
        &input.run.host_devices[..]
    } else {
        &[]
    };
    for d in privileged_devices.iter().chain(&input.extras.devices) {
        check_abs("device path", &d.path.to_string_lossy())?;
        check_access(&d.access)?;
        devices.retain(|s| s.path() != &d.path);
        devices.push(
            LinuxDeviceBuilder::default()
                .path(d.path.clone())
                .typ(d.kind.oci())
                .major(d.major)
                .minor(d.minor)
                .file_mode(d.file_mode)
                .uid(d.uid)
                .gid(d.gid)
                .build()?,
        );
    }

    let rules = if container.privileged {
        vec![cgroup_rule(
            true,
            Some(LinuxDeviceType::A),
            None,
            None,
            "rwm",
        )]
    } else {
        let mut rules = device_rules(input.extras)?;
        rules.extend(container.device_cgroup_rules.iter().map(unit_device_rule));
        rules
    };
    let linux = LinuxBuilder::default()
        .resources(resources(&unit.resources, rules)?)
        .cgroups_path(PathBuf::from(input.cgroups_path))
        .namespaces(namespaces)
        .devices(devices)
        .build()?;
    // LinuxBuilder fills unset fields from `Linux::default()`; clear those
    // this crate does not decide.
    let mut linux = linux;
    if container.privileged {
        linux
            .set_seccomp(None)
            .set_masked_paths(None)
            .set_readonly_paths(None);
    } else {
        linux
            .set_seccomp(Some(seccomp::default_profile(&caps)))
            .set_masked_paths(Some(MASKED_PATHS.map(String::from).to_vec()))
            .set_readonly_paths(Some(READONLY_PATHS.map(String::from).to_vec()));
    }
    linux
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(
            (!container.sysctls.is_empty())
                .then(|| container.sysctls.clone().into_iter().collect()),
        )
        .set_net_devices(None)
        .set_rootfs_propagation(None)
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some(hostname))
        .set_domainname(None)
        .set_mounts(Some(mounts(
            container,
            !unit.secrets.is_empty(),
            input.etc,
            input.run,
            &input.extras.mounts,
        )?))
        .set_annotations(None)
        .set_hooks(None)
        .set_linux(Some(linux))
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    Ok(spec)
}

impl DeviceKind {
    fn oci(self) -> LinuxDeviceType {
        match self {
            DeviceKind::Char => LinuxDeviceType::C,
            DeviceKind::Block => LinuxDeviceType::B,
        }
    }
}

fn check_abs(what: &'static str, path: &str) -> Result<(), SpecError> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::BadPath {
            what,
            path: path.to_string(),
        });
    }
    Ok(())
}

fn check_access(access: &str) -> Result<(), SpecError> {
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(SpecError::BadAccess(access.to_string()));
    }
    Ok(())
}

/// The user the container's process runs as: the unit's `user`, else the
/// image's, else root; resolved against the image's user database.
pub fn exec_user(
    container: &Container,
    image: &ImageConfiguration,
    users: &UserDb,
) -> Result<crate::user::ExecUser, SpecError> {
    let user = container
        .user
        .clone()
        .or_else(|| image.config().as_ref().and_then(|c| c.user().clone()))
        .unwrap_or_default();
    Ok(users.resolve(&user)?)
}

/// The argv, with Docker's rules: a unit `entrypoint` replaces the image's
/// Entrypoint *and* drops the image's Cmd; a unit `command` replaces the
/// image's Cmd; the argv is entrypoint + command.
pub fn command(
    container: &Container,
    image: &ImageConfiguration,
) -> Result<Vec<String>, SpecError> {
    let config = image.config().as_ref();
    let (entrypoint, cmd) = match &container.entrypoint {
        Some(ep) => (ep.clone(), container.command.clone().unwrap_or_default()),
        None => (
            config
                .and_then(|c| c.entrypoint().clone())
                .unwrap_or_default(),
            container
                .command
                .clone()
                .or_else(|| config.and_then(|c| c.cmd().clone()))
                .unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.first().is_none_or(|a| a.is_empty()) {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// The environment: the image's `Env` first, overridden by the unit's
/// `[env]` (in place, keeping the image's order), then the unit's other
/// variables in name order. `PATH` defaults to [`DEFAULT_PATH`] and `HOME`
/// to the user's home (so libcontainer never looks the user up itself with
/// the host's NSS inside the container).
pub fn merge_env(
    image_env: &[String],
    unit_env: &BTreeMap<String, String>,
    home: &str,
) -> Result<Vec<String>, SpecError> {
    for k in unit_env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(SpecError::BadEnv(k.clone()));
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for entry in image_env {
        let Some((k, v)) = entry.split_once('=') else {
            continue;
        };
        if k.is_empty() {
            continue;
        }
        let v = unit_env.get(k).cloned().unwrap_or_else(|| v.to_string());
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(existing) => existing.1 = v,
            None => out.push((k.to_string(), v)),
        }
    }
    for (k, v) in unit_env {
        if !out.iter().any(|(ek, _)| ek == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    if !out.iter().any(|(k, v)| k == "HOME" && !v.is_empty()) {
        out.retain(|(k, _)| k != "HOME");
        out.push(("HOME".into(), home.into()));
    }
    Ok(out.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Podman's defaults plus what the unit adds.
pub fn capability_set(security: &Security) -> Result<HashSet<Capability>, SpecError> {
    let mut caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    add_capabilities(&mut caps, &security.capabilities, &all_capabilities())?;
    Ok(caps)
}

/// A container's set: Podman's defaults less `cap_drop` (`ALL`: all of
/// them), then `cap_add` and `security.capabilities` added (`ALL`: those
/// of `all`).
pub fn container_capabilities(
    container: &Container,
    security: &Security,
    all: &HashSet<Capability>,
) -> Result<HashSet<Capability>, SpecError> {
    let mut caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    for name in &container.cap_drop {
        if is_all(name) {
            caps.clear();
        } else {
            caps.remove(&parse_capability(name)?);
        }
    }
    add_capabilities(&mut caps, &container.cap_add, all)?;
    add_capabilities(&mut caps, &security.capabilities, all)?;
    Ok(caps)
}

/// The capabilities of a mask as `/proc/PID/status` shows them (`CapBnd`),
/// bit N being capability N.
pub fn capabilities_from_mask(mask: u64) -> HashSet<Capability> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .filter_map(|(_, n)| n.parse().ok())
        .collect()
}

/// Every capability the spec can name (those up to
/// `CAP_CHECKPOINT_RESTORE`, Linux 5.9's).
pub fn all_capabilities() -> HashSet<Capability> {
    ALL_CAPABILITIES
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The names of every capability, as the kernel numbers them.
const ALL_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn is_all(name: &str) -> bool {
    name.eq_ignore_ascii_case(Container::ALL_CAPABILITIES)
}

fn parse_capability(name: &str) -> Result<Capability, SpecError> {
    let short = name.strip_prefix("CAP_").unwrap_or(name);
    short
        .parse()
        .map_err(|_| SpecError::UnknownCapability(name.to_string()))
}

fn add_capabilities(
    caps: &mut HashSet<Capability>,
    names: &[String],
    all: &HashSet<Capability>,
) -> Result<(), SpecError> {
    for name in names {
        if is_all(name) {
            caps.extend(all.iter().cloned());
        } else {
            caps.insert(parse_capability(name)?);
        }
    }
    Ok(())
}

/// `group_add`: numeric gids as they are, names from the image's
/// `/etc/group`.
pub fn group_add(groups: &[String], users: &UserDb) -> Result<Vec<u32>, SpecError> {
    groups
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => users
                .group
                .iter()
                .find(|e| e.name == *g)
                .map(|e| e.gid)
                .ok_or_else(|| SpecError::UnknownGroup(g.clone())),
        })
        .collect()
}

/// `ulimits` as `process.rlimits`; `None` when there are none.
pub fn rlimits(container: &Container) -> Result<Option<Vec<PosixRlimit>>, SpecError> {
    if container.ulimits.is_empty() {
        return Ok(None);
    }
    container
        .ulimits
        .iter()
        .map(|(r, u)| {
            Ok(PosixRlimitBuilder::default()
                .typ(rlimit_type(*r))
                .soft(u.soft)
                .hard(u.hard)
                .build()?)
        })
        .collect::<Result<Vec<_>, SpecError>>()
        .map(Some)
}

fn rlimit_type(r: Rlimit) -> PosixRlimitType {
    match r {
        Rlimit::Core => PosixRlimitType::RlimitCore,
        Rlimit::Cpu => PosixRlimitType::RlimitCpu,
        Rlimit::Data => PosixRlimitType::RlimitData,
        Rlimit::Fsize => PosixRlimitType::RlimitFsize,
        Rlimit::Locks => PosixRlimitType::RlimitLocks,
        Rlimit::Memlock => PosixRlimitType::RlimitMemlock,
        Rlimit::Msgqueue => PosixRlimitType::RlimitMsgqueue,
        Rlimit::Nice => PosixRlimitType::RlimitNice,
        Rlimit::Nofile => PosixRlimitType::RlimitNofile,
        Rlimit::Nproc => PosixRlimitType::RlimitNproc,
        Rlimit::Rss => PosixRlimitType::RlimitRss,
        Rlimit::Rtprio => PosixRlimitType::RlimitRtprio,
        Rlimit::Rttime => PosixRlimitType::RlimitRttime,
        Rlimit::Sigpending => PosixRlimitType::RlimitSigpending,
        Rlimit::Stack => PosixRlimitType::RlimitStack,
    }
}

fn capabilities(caps: &HashSet<Capability>) -> LinuxCapabilities {
    let mut lc = LinuxCapabilities::default();
    lc.set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps.clone()))
        .set_inheritable(Some(HashSet::new()))
        .set_ambient(Some(HashSet::new()));
    lc
}

/// The standard device nodes: null, zero, full, random, urandom, tty (all
/// 0666, root). `/dev/ptmx` is libcontainer's symlink to `pts/ptmx`.
pub fn standard_devices() -> Vec<LinuxDevice> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| {
        LinuxDeviceBuilder::default()
            .path(PathBuf::from(path))
            .typ(LinuxDeviceType::C)
            .major(major)
            .minor(minor)
            .file_mode(0o666u32)
            .uid(0u32)
            .gid(0u32)
            .build()
            .expect("a complete device")
    })
    .collect()
}

fn cgroup_rule(
    allow: bool,
    kind: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_string());
    if let Some(k) = kind {
        b = b.typ(k);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().expect("a complete device rule")
}

/// The device cgroup: deny everything, then allow the standard nodes,
/// `/dev/pts/*` (136:*), `/dev/ptmx` (5:2) and the caller's extras.
pub fn device_rules(extras: &Extras) -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    let mut rules = vec![cgroup_rule(
        false,
        Some(LinuxDeviceType::A),
        None,
        None,
        "rwm",
    )];
    for d in standard_devices() {
        rules.push(cgroup_rule(
            true,
            Some(LinuxDeviceType::C),
            Some(d.major()),
            Some(d.minor()),
            "rwm",
        ));
    }
    rules.push(cgroup_rule(
        true,
        Some(LinuxDeviceType::C),
        Some(136),
        None,
        "rwm",
    ));
    rules.push(cgroup_rule(
        true,
        Some(LinuxDeviceType::C),
        Some(5),
        Some(2),
        "rwm",
    ));
    for d in &extras.devices {
        check_access(&d.access)?;
        rules.push(cgroup_rule(
            true,
            Some(d.kind.oci()),
            Some(d.major),
            Some(d.minor),
            &d.access,
        ));
    }
    for r in &extras.device_rules {
        check_access(&r.access)?;
        rules.push(cgroup_rule(
            true,
            Some(r.kind.oci()),
            r.major,
            r.minor,
            &r.access,
        ));
    }
    Ok(rules)
}

/// One of the unit's `device_cgroup_rules` as an allow rule (`a *:*` is
/// every device: no type, no numbers).
pub fn unit_device_rule(r: &DeviceCgroupRule) -> LinuxDeviceCgroup {
    let kind = match r.kind {
        DeviceType::All => LinuxDeviceType::A,
        DeviceType::Char => LinuxDeviceType::C,
        DeviceType::Block => LinuxDeviceType::B,
    };
    cgroup_rule(
        true,
        Some(kind),
        r.major.map(i64::from),
        r.minor.map(i64::from),
        &r.access,
    )
}

/// `Resources` to `linux.resources`, the only translation of a container
/// unit's `[resources]` (libcontainer writes it into the cgroup it
/// creates): memory (swap = limit: no swap; on v2
/// libcgroups leaves `memory.swap.max` alone for that, so
/// [`crate::run::create_and_start`] writes 0 there itself), cpu quota over a
/// 100 ms period, cpu shares from the weight (v1 scale, `weight * 1024 /
/// 100`) plus the exact `cpu.weight` as a unified (v2-only) key, pids,
/// cpuset.
pub fn resources(
    r: &Resources,
    devices: Vec<LinuxDeviceCgroup>,
) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    let mut b = LinuxResourcesBuilder::default().devices(devices);
    if let Some(max) = r.memory_max {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        b = b.memory(LinuxMemoryBuilder::default().limit(max).swap(max).build()?);
    }
    if r.cpus.is_some() || r.cpu_weight.is_some() || r.cpuset.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(cpus) = r.cpus {
            // The kernel's minimum quota is 1 ms.
            let quota = ((cpus * CPU_PERIOD as f64).round() as i64).max(1000);
            cpu = cpu.quota(quota).period(CPU_PERIOD);
        }
        if let Some(w) = r.cpu_weight {
            cpu = cpu.shares((w * 1024 / 100).max(2));
            // On v2 libcgroups maps shares back to a weight only roughly
            // (50 -> 512 -> 59); the unified key sets it exactly, after the
            // cpu controller. v1 ignores `unified`.
            b = b.unified(HashMap::from([("cpu.weight".to_string(), w.to_string())]));
        }
        if let Some(set) = &r.cpuset {
            cpu = cpu.cpus(set.clone());
        }
        b = b.cpu(cpu.build()?);
    }
    if let Some(p) = r.pids_max {
        b = b.pids(
            LinuxPidsBuilder::default()
                .limit(i64::try_from(p).unwrap_or(i64::MAX))
                .build()?,
        );
    }
    Ok(b.build()?)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(PathBuf::from(dest))
        .typ(typ.to_string())
        .source(PathBuf::from(source))
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("a complete mount")
}

fn bind(source: &Path, dest: &Path, options: &[String]) -> Mount {
    MountBuilder::default()
        .destination(dest.to_path_buf())
        .typ("bind".to_string())
        .source(source.to_path_buf())
        .options(options.to_vec())
        .build()
        .expect("a complete mount")
}

/// The mounts, in order: kernel filesystems, `/etc` files, volumes, tmpfs
/// mounts, secrets, init, extras.
pub fn mounts(
    container: &Container,
    secrets: bool,
    etc: Option<&EtcFiles>,
    run: &RunPaths,
    extras: &[ExtraMount],
) -> Result<Vec<Mount>, SpecError> {
    let shm_size = container
        .shm_size
        .map_or_else(|| SHM_SIZE.to_string(), |b| format!("size={b}"));
    let sys_opts: &[&str] = if container.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount("/sys", "sysfs", "sysfs", sys_opts),
    ];
    if let Some(etc) = etc {
        let opts: Vec<String> = ["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"]
            .map(String::from)
            .to_vec();
        m.push(bind(&etc.hosts, Path::new("/etc/hosts"), &opts));
        m.push(bind(&etc.resolv_conf, Path::new("/etc/resolv.conf"), &opts));
        m.push(bind(&etc.hostname, Path::new("/etc/hostname"), &opts));
    }
    for v in &container.volumes {
        let host = match &v.source {
            VolumeSource::Bind(path) => {
                check_abs("volume host path", path)?;
                PathBuf::from(path)
            }
            VolumeSource::Named(name) => {
                let dir = run
                    .volume_dir
                    .as_deref()
                    .ok_or_else(|| SpecError::NoVolumeDir(name.clone()))?;
                crate::volume::data_path(dir, name).map_err(|_| SpecError::BadPath {
                    what: "volume name",
                    path: name.clone(),
                })?
            }
        };
        check_inner("volume container path", &v.container)?;
        let mut opts: Vec<String> = ["rbind", "rprivate", "nodev"].map(String::from).to_vec();
        if v.read_only {
            opts.push("ro".into());
        }
        m.push(bind(&host, Path::new(&v.container), &opts));
    }
    for t in &container.tmpfs {
        check_inner("tmpfs path", &t.path)?;
        let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
        if let Some(size) = t.size {
            opts.push(format!("size={size}"));
        }
        if let Some(mode) = t.mode {
            opts.push(format!("mode={:o}", mode & 0o7777));
        }
        m.push(
            MountBuilder::default()
                .destination(PathBuf::from(&t.path))
                .typ("tmpfs".to_string())
                .source(PathBuf::from("tmpfs"))
                .options(opts)
                .build()?,
        );
    }
    if secrets {
        let dir = run.secrets.as_deref().ok_or(SpecError::NoSecretsDir)?;
        let opts: Vec<String> = ["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"]
            .map(String::from)
            .to_vec();
        m.push(bind(
            dir,
            Path::new(jarvis_unit::Secret::CONTAINER_DIR),
            &opts,
        ));
    }
    if container.init {
        let init = run.init.as_deref().ok_or(SpecError::NoInit)?;
        let opts: Vec<String> = ["bind", "rprivate", "ro", "nosuid", "nodev"]
            .map(String::from)
            .to_vec();
        m.push(bind(init, Path::new(INIT_PATH), &opts));
    }
    for e in extras {
        check_abs("extra mount host path", &e.host.to_string_lossy())?;
        check_abs("extra mount container path", &e.container.to_string_lossy())?;
        let mut opts = vec!["rbind".to_string()];
        opts.extend(e.options.iter().cloned());
        m.push(bind(&e.host, &e.container, &opts));
    }
    Ok(m)
}

/// An absolute path inside the container other than `/`.
fn check_inner(what: &'static str, path: &str) -> Result<(), SpecError> {
    check_abs(what, path)?;
    if Path::new(path) == Path::new("/") {
        return Err(SpecError::BadPath {
            what,
            path: path.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
