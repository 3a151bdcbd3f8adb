//! The default seccomp profile: Docker's default profile, shipped as data,
//! turned into an OCI [`LinuxSeccomp`] for this host and the container's
//! capabilities.
//!
//! `seccomp/docker-default.json` is Docker's `profiles/seccomp/default.json`
//! (moby 20.10.24 as Debian 12 ships it in `golang-github-docker-docker-dev`
//! 20.10.24+dfsg1-1+deb12u1; Apache-2.0), unchanged. It is an allowlist:
//! the default action is `SCMP_ACT_ERRNO` (EPERM), so a syscall the profile
//! does not name fails with EPERM. Its rules keep Docker's conditions:
//!
//! - `includes`/`excludes` on `arches` (libseccomp names: `amd64`, `arm64`,
//!   ...) are compared with this host's architecture; `archMap` gives the
//!   architectures the filter covers (x86_64 plus its x86 and x32 compat
//!   ABIs, so a 32-bit syscall entry cannot bypass the rules);
//! - on `caps`, with the container's capability set (the default set plus
//!   what the unit adds): a rule is included when the container holds
//!   *every* capability it `includes`, and left out when it holds *any* it
//!   `excludes`;
//! - on `minKernel` (`"4.8"`), with the running kernel's release (uname),
//!   major and minor only, as Docker does. When the release cannot be read
//!   the rule is left out.
//!
//! So, among others: `clone` is allowed only without `CLONE_NEW*` flags
//! (unless `CAP_SYS_ADMIN`), `clone3` fails with ENOSYS (its flags live in
//! memory seccomp cannot inspect; ENOSYS makes glibc fall back to `clone`),
//! `personality` only with the five values Docker allows, `ptrace` only on
//! kernels from 4.8 on, and `mount`, `unshare`, `setns`, `bpf`, `reboot`,
//! module loading, clocks and the like only with their capability.
//!
//! Stricter than that profile, as Docker itself is since 25.0: the
//! `io_uring_*` syscalls are withheld ([`WITHHELD`]), and `socket` is allowed
//! for every family but `AF_VSOCK`.
//!
//! One translation: Docker's JSON, like runc, gives `SCMP_CMP_MASKED_EQ` as
//! `value` = mask and `valueTwo` = the datum; libcontainer 0.7 takes
//! `valueTwo` as the mask and `value` as the datum. [`default_profile`]
//! writes the arguments the way libcontainer reads them.
//!
//! The JSON is parsed, and the host's conditions (architecture, kernel) are
//! decided, once per process ([`OnceLock`]); each container then only
//! filters a few dozen rules on its capabilities.

use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;

/// Docker's default profile, as shipped.
pub const DOCKER_DEFAULT_JSON: &str = include_str!("seccomp/docker-default.json");

/// Syscalls the profile allows that jarvis does not: io_uring (a large,
/// often-exploited kernel surface that seccomp cannot see into).
pub const WITHHELD: &[&str] = &["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// `AF_VSOCK`: `socket(AF_VSOCK, ...)` is refused.
const AF_VSOCK: u64 = 40;

const EPERM: u32 = libc::EPERM as u32;

/// The profile's JSON form (Docker's `types.Seccomp`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<Capability>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: usize,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: LinuxSeccompOperator,
}

/// The profile with this host's conditions decided: what is left to decide
/// per container is the capabilities.
#[derive(Debug)]
struct Prepared {
    default_errno: u32,
    architectures: Vec<Arch>,
    rules: Vec<PreparedRule>,
}

#[derive(Debug)]
struct PreparedRule {
    /// Included only when the container holds all of these.
    needs: Vec<Capability>,
    /// Left out when the container holds any of these.
    unless: Vec<Capability>,
    syscall: LinuxSyscall,
}

/// The host's architecture as libseccomp names it in `arches` conditions,
/// and as an OCI architecture for `archMap`.
fn host_arch() -> (&'static str, Arch) {
    if cfg!(target_arch = "x86_64") {
        ("amd64", Arch::ScmpArchX86_64)
    } else if cfg!(target_arch = "aarch64") {
        ("arm64", Arch::ScmpArchAarch64)
    } else if cfg!(target_arch = "x86") {
        ("x86", Arch::ScmpArchX86)
    } else if cfg!(target_arch = "arm") {
        ("arm", Arch::ScmpArchArm)
    } else if cfg!(target_arch = "s390x") {
        ("s390x", Arch::ScmpArchS390x)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        ("ppc64le", Arch::ScmpArchPpc64le)
    } else if cfg!(target_arch = "powerpc64") {
        ("ppc64", Arch::ScmpArchPpc64)
    } else if cfg!(target_arch = "riscv64") {
        ("riscv64", Arch::ScmpArchRiscv64)
    } else if cfg!(target_arch = "loongarch64") {
        ("loongarch64", Arch::ScmpArchLoongarch64)
    } else {
        ("", Arch::ScmpArchNative)
    }
}

/// `"6.1.0-18-amd64"` → `(6, 1)`; `"4.8"` → `(4, 8)`.
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The running kernel's major and minor version, from uname.
fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    parse_version(release.to_str().ok()?)
}

/// Whether a rule's `arches` and `minKernel` conditions hold on a host with
/// architecture `arch` (libseccomp's name) and kernel `kernel`.
fn host_conditions_hold(rule: &Rule, arch: &str, kernel: Option<(u32, u32)>) -> bool {
    let at_least = |min: &str| match (parse_version(min), kernel) {
        (Some(min), Some(k)) => k >= min,
        _ => false,
    };
    if rule.excludes.arches.iter().any(|a| a == arch) {
        return false;
    }
    if rule.excludes.min_kernel.as_deref().is_some_and(at_least) {
        return false;
    }
    if !rule.includes.arches.is_empty() && !rule.includes.arches.iter().any(|a| a == arch) {
        return false;
    }
    if let Some(min) = &rule.includes.min_kernel {
        if !at_least(min) {
            return false;
        }
    }
    true
}

/// One argument condition, written the way libcontainer reads it.
fn arg(a: &Arg) -> LinuxSeccompArg {
    let (value, value_two) = match a.op {
        // JSON: value = mask, valueTwo = datum. libcontainer: the reverse.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (a.value_two, a.value),
        _ => (a.value, a.value_two),
    };
    let mut b = LinuxSeccompArgBuilder::default()
        .index(a.index)
        .value(value)
        .op(a.op);
    if value_two != 0 || a.op == LinuxSeccompOperator::ScmpCmpMaskedEq {
        b = b.value_two(value_two);
    }
    b.build().expect("a complete seccomp argument")
}

fn syscall(
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut s = LinuxSyscallBuilder::default()
        .names(names)
        .action(action)
        .build()
        .expect("a complete syscall rule");
    s.set_errno_ret(errno);
    s.set_args(args.filter(|a| !a.is_empty()));
    s
}

/// Decides the host's conditions of `profile` and applies jarvis's own
/// restrictions ([`WITHHELD`], `AF_VSOCK`).
fn prepare(profile: Profile, arch: &str, host: Arch, kernel: Option<(u32, u32)>) -> Prepared {
    let architectures = profile
        .arch_map
        .iter()
        .find(|m| m.architecture == host)
        .map(|m| {
            let mut v = vec![m.architecture];
            v.extend(&m.sub_architectures);
            v
        })
        .unwrap_or_else(|| vec![host]);
    let mut rules = Vec::new();
    let mut socket_conditions = Vec::new();
    for rule in profile.syscalls {
        if !host_conditions_hold(&rule, arch, kernel) {
            continue;
        }
        let mut names: Vec<String> = rule.name.iter().cloned().chain(rule.names).collect();
        let args = rule
            .args
            .as_ref()
            .map(|a| a.iter().map(arg).collect::<Vec<_>>());
        let unconditional = args.as_ref().is_none_or(|a| a.is_empty());
        if rule.action == LinuxSeccompAction::ScmpActAllow {
            names.retain(|n| !WITHHELD.contains(&n.as_str()));
            if unconditional && names.iter().any(|n| n == "socket") {
                names.retain(|n| n != "socket");
                socket_conditions.push((rule.includes.caps.clone(), rule.excludes.caps.clone()));
            }
        }
        if names.is_empty() {
            continue;
        }
        rules.push(PreparedRule {
            needs: rule.includes.caps,
            unless: rule.excludes.caps,
            syscall: syscall(names, rule.action, rule.errno_ret, args),
        });
    }
    for (needs, unless) in socket_conditions {
        let not_vsock = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(AF_VSOCK)
            .op(LinuxSeccompOperator::ScmpCmpNe)
            .build()
            .expect("a complete seccomp argument");
        rules.push(PreparedRule {
            needs,
            unless,
            syscall: syscall(
                vec!["socket".into()],
                LinuxSeccompAction::ScmpActAllow,
                None,
                Some(vec![not_vsock]),
            ),
        });
    }
    let default_errno = match profile.default_action {
        LinuxSeccompAction::ScmpActErrno => profile.default_errno_ret.unwrap_or(EPERM),
        // Anything else would not be an allowlist: refuse it loudly (the
        // data is built in, so a test catches this).
        other => panic!("the built-in seccomp profile's default action is {other:?}"),
    };
    Prepared {
        default_errno,
        architectures,
        rules,
    }
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let profile: Profile = serde_json::from_str(DOCKER_DEFAULT_JSON)
            .expect("the built-in seccomp profile parses (a unit test checks it)");
        let (arch, host) = host_arch();
        prepare(profile, arch, host, kernel_version())
    })
}

/// The architectures the filter covers: the native one plus its compat ABIs.
pub fn architectures() -> Vec<Arch> {
    prepared().architectures.clone()
}

fn build(p: &Prepared, caps: &HashSet<Capability>) -> LinuxSeccomp {
    let syscalls: Vec<LinuxSyscall> = p
        .rules
        .iter()
        .filter(|r| r.needs.iter().all(|c| caps.contains(c)))
        .filter(|r| !r.unless.iter().any(|c| caps.contains(c)))
        .map(|r| r.syscall.clone())
        .collect();
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(p.default_errno)
        .architectures(p.architectures.clone())
        .syscalls(syscalls)
        .build()
        .expect("a complete seccomp profile")
}

/// The default profile for a container whose capability set is `caps`.
pub fn default_profile(caps: &HashSet<Capability>) -> LinuxSeccomp {
    build(prepared(), caps)
}

/// What a profile does with a syscall, by name, before looking at its
/// arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed whatever its arguments.
    Allow,
    /// Fails with this errno whatever its arguments.
    Errno(u32),
    /// Some rule looks at its arguments.
    Conditional,
    /// Another unconditional action (kill, trap, log, ...).
    Other,
}

/// What `profile` does with the syscall `name` (an unconditional rule wins;
/// no rule: the default action).
pub fn verdict(profile: &LinuxSeccomp, name: &str) -> Verdict {
    let of = |action: LinuxSeccompAction, errno: Option<u32>| match action {
        LinuxSeccompAction::ScmpActAllow => Verdict::Allow,
        LinuxSeccompAction::ScmpActErrno => Verdict::Errno(errno.unwrap_or(EPERM)),
        _ => Verdict::Other,
    };
    let mut conditional = false;
    for s in profile.syscalls().iter().flatten() {
        if !s.names().iter().any(|n| n == name) {
            continue;
        }
        if s.args().as_ref().is_none_or(|a| a.is_empty()) {
            return of(s.action(), s.errno_ret());
        }
        conditional = true;
    }
    if conditional {
        Verdict::Conditional
    } else {
        of(profile.default_action(), profile.default_errno_ret())
    }
}

/// Every syscall name the built-in profile mentions, in any rule, for any
/// architecture or capability, plus [`WITHHELD`].
pub fn known_names() -> &'static BTreeSet<String> {
    static NAMES: OnceLock<BTreeSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let profile: Profile = serde_json::from_str(DOCKER_DEFAULT_JSON)
            .expect("the built-in seccomp profile parses (a unit test checks it)");
        profile
            .syscalls
            .into_iter()
            .flat_map(|r| r.name.into_iter().chain(r.names))
            .chain(WITHHELD.iter().map(|n| n.to_string()))
            .collect()
    })
}

/// The names among [`known_names`] that `profile` refuses whatever their
/// arguments, with the errno each gets. For tests and diagnostics.
pub fn denied_names(profile: &LinuxSeccomp) -> Vec<(String, u32)> {
    known_names()
        .iter()
        .filter_map(|n| match verdict(profile, n) {
            Verdict::Errno(e) => Some((n.clone(), e)),
            _ => None,
        })
        .collect()
}

/// A profile compiled to a seccomp BPF program once, in jarvisd, and
/// loaded by the container's init right before `execve` (see
/// [`bpf::compile_bpf`] and [`bpf::Program::load`]).
pub mod bpf {
    use std::collections::hash_map::DefaultHasher;
    use std::collections::{HashSet, VecDeque};
    use std::hash::{Hash, Hasher};
    use std::io::{self, Read, Seek};
    use std::sync::{Arc, Mutex};

    use libseccomp::{
        ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    };
    use oci_spec::runtime::{
        Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    };

    /// Why a profile is not compiled ahead (the caller leaves it to
    /// libcontainer), or could not be.
    #[derive(Debug, thiserror::Error)]
    pub enum BpfError {
        /// The profile needs what only loading it in the container can
        /// give: a notify listener descriptor, or a flag with no meaning
        /// without one.
        #[error("seccomp profile not compiled ahead: {0}")]
        Refused(&'static str),
        #[error("compiling the seccomp profile: {0}")]
        Compile(String),
        #[error("seccomp program: {0}")]
        Io(#[from] io::Error),
    }

    /// The program's file in the bundle directory, written 0600 (it holds
    /// nothing secret: it is the profile, compiled).
    pub const FILE: &str = "seccomp.bpf";

    /// The `config.json` annotation that names [`FILE`] when the spec's
    /// `linux.seccomp` was compiled ahead and taken out of it: the
    /// container's init (and an exec into it) must load that program, and
    /// fail rather than run without it.
    pub const ANNOTATION: &str = "org.jarvis.seccomp.bpf";

    /// The annotation with the program's `seccomp(2)` flags (decimal),
    /// beside [`ANNOTATION`]; absent means 0.
    pub const FLAGS_ANNOTATION: &str = "org.jarvis.seccomp.flags";

    /// The largest program the kernel takes (`BPF_MAXINSNS`).
    const MAX_INSNS: usize = 4096;

    /// The `seccomp(2)` flags that stand for the profile's `flags`, or why
    /// the profile cannot be loaded as a ready program: a notify action
    /// (default or per syscall), a listener, or
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (a notify flag).
    pub fn load_flags(profile: &LinuxSeccomp) -> Result<u32, BpfError> {
        let notify = profile.default_action() == LinuxSeccompAction::ScmpActNotify
            || profile
                .syscalls()
                .iter()
                .flatten()
                .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify);
        if notify || profile.listener_path().is_some() {
            return Err(BpfError::Refused("a notify action needs its listener"));
        }
        let mut flags = 0u32;
        for f in profile.flags().iter().flatten() {
            flags |= match f {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                    libc::SECCOMP_FILTER_FLAG_LOG as u32
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                    libc::SECCOMP_FILTER_FLAG_TSYNC as u32
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    return Err(BpfError::Refused("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"))
                }
            };
        }
        Ok(flags)
    }

    fn translate_arch(arch: Arch) -> ScmpArch {
        match arch {
            Arch::ScmpArchNative => ScmpArch::Native,
            Arch::ScmpArchX86 => ScmpArch::X86,
            Arch::ScmpArchX86_64 => ScmpArch::X8664,
            Arch::ScmpArchX32 => ScmpArch::X32,
            Arch::ScmpArchArm => ScmpArch::Arm,
            Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
            Arch::ScmpArchMips => ScmpArch::Mips,
            Arch::ScmpArchMips64 => ScmpArch::Mips64,
            Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
            Arch::ScmpArchMipsel => ScmpArch::Mipsel,
            Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
            Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
            Arch::ScmpArchPpc => ScmpArch::Ppc,
            Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
            Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
            Arch::ScmpArchS390 => ScmpArch::S390,
            Arch::ScmpArchS390x => ScmpArch::S390X,
            Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
            Arch::ScmpArchParisc => ScmpArch::Parisc,
            Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
            Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
            Arch::ScmpArchM68k => ScmpArch::M68k,
            Arch::ScmpArchSh => ScmpArch::Sh,
            Arch::ScmpArchSheb => ScmpArch::Sheb,
        }
    }

    fn translate_action(
        action: LinuxSeccompAction,
        errno: Option<u32>,
    ) -> Result<ScmpAction, BpfError> {
        let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
        Ok(match action {
            LinuxSeccompAction::ScmpActKill => ScmpAction::KillThread,
            LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
            LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
            LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
                errno
                    .try_into()
                    .map_err(|_| BpfError::Compile(format!("trace errno {errno}")))?,
            ),
            LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
            LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
            LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
            LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
            LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        })
    }

    fn translate_op(op: LinuxSeccompOperator, datum_b: Option<u64>) -> ScmpCompareOp {
        match op {
            LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
            LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
            LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
            LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
            LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
            LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                ScmpCompareOp::MaskedEqual(datum_b.unwrap_or(0))
            }
        }
    }

    fn lib(what: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> BpfError + '_ {
        move |e| BpfError::Compile(format!("{what}: {e}"))
    }

    /// The BPF program `profile` is, as libseccomp generates it when
    /// libcontainer 0.7's `initialize_seccomp` loads the profile: the same
    /// translation (default action and errno, flags, architectures,
    /// `SCMP_FLTATR_CTL_NNP` off, rules whose action is the default
    /// skipped, names this libseccomp does not know skipped, arguments
    /// with a repeated index added as one rule each), exported instead of
    /// loaded. Bytes: `struct sock_filter` in host order, 8 each. A
    /// profile [`load_flags`] refuses is refused here too.
    pub fn compile_bpf(profile: &LinuxSeccomp) -> Result<Vec<u8>, BpfError> {
        load_flags(profile)?;
        let default_action =
            translate_action(profile.default_action(), profile.default_errno_ret())?;
        let mut ctx = ScmpFilterContext::new(default_action).map_err(lib("new filter"))?;
        for flag in profile.flags().iter().flatten() {
            match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    ctx.set_ctl_waitkill(true)
                }
            }
            .map_err(lib("setting a filter flag"))?;
        }
        for &arch in profile.architectures().iter().flatten() {
            ctx.add_arch(translate_arch(arch))
                .map_err(lib("adding an architecture"))?;
        }
        ctx.set_ctl_nnp(false).map_err(lib("SCMP_FLTATR_CTL_NNP"))?;
        for syscall in profile.syscalls().iter().flatten() {
            let action = translate_action(syscall.action(), syscall.errno_ret())?;
            if action == default_action {
                continue;
            }
            for name in syscall.names() {
                let Ok(sc) = ScmpSyscall::from_name(name) else {
                    continue;
                };
                match syscall.args() {
                    Some(args) => {
                        let mut seen = HashSet::new();
                        let mut repeated = false;
                        let cmps: Vec<ScmpArgCompare> = args
                            .iter()
                            .map(|a| {
                                let index = a.index() as u32;
                                repeated |= !seen.insert(index);
                                ScmpArgCompare::new(
                                    index,
                                    translate_op(a.op(), a.value_two()),
                                    a.value(),
                                )
                            })
                            .collect();
                        if repeated {
                            for c in &cmps {
                                ctx.add_rule_conditional(action, sc, std::slice::from_ref(c))
                                    .map_err(|e| BpfError::Compile(format!("rule {name}: {e}")))?;
                            }
                        } else {
                            ctx.add_rule_conditional(action, sc, &cmps)
                                .map_err(|e| BpfError::Compile(format!("rule {name}: {e}")))?;
                        }
                    }
                    None => {
                        ctx.add_rule(action, sc)
                            .map_err(|e| BpfError::Compile(format!("rule {name}: {e}")))?;
                    }
                }
            }
        }
        // libseccomp 2.5 exports to a descriptor only.
        // SAFETY: memfd_create with a C string; the descriptor it returns
        // is owned by the file from here on.
        let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        ctx.export_bpf(&file).map_err(lib("exporting"))?;
        file.rewind()?;
        let mut out = Vec::new();
        file.read_to_end(&mut out)?;
        Program::check(&out)?;
        Ok(out)
    }

    /// A ready program and its `seccomp(2)` flags, to load in the
    /// container's init (or an exec'd process) just before `execve`.
    #[derive(Clone)]
    pub struct Program {
        filter: Arc<[libc::sock_filter]>,
        flags: u32,
    }

    impl std::fmt::Debug for Program {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Program")
                .field("insns", &self.filter.len())
                .field("flags", &self.flags)
                .finish()
        }
    }

    impl Program {
        fn check(bytes: &[u8]) -> io::Result<()> {
            if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > MAX_INSNS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} bytes is no seccomp BPF program", bytes.len()),
                ));
            }
            Ok(())
        }

        /// A program from [`compile_bpf`]'s bytes (a non-empty multiple of
        /// 8, at most `BPF_MAXINSNS` instructions).
        pub fn from_bytes(bytes: &[u8], flags: u32) -> io::Result<Program> {
            Program::check(bytes)?;
            let filter = bytes
                .chunks_exact(8)
                .map(|c| libc::sock_filter {
                    code: u16::from_ne_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect();
            Ok(Program { filter, flags })
        }

        /// Reads a program written from [`compile_bpf`]'s bytes.
        pub fn read(path: &std::path::Path, flags: u32) -> io::Result<Program> {
            let bytes = std::fs::read(path)?;
            Program::from_bytes(&bytes, flags)
                .map_err(|e| io::Error::new(e.kind(), format!("{path:?}: {e}")))
        }

        /// Instructions.
        pub fn len(&self) -> usize {
            self.filter.len()
        }

        pub fn is_empty(&self) -> bool {
            self.filter.is_empty()
        }

        /// Installs the program on the calling thread:
        /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`. Needs
        /// `no_new_privs` set (or `CAP_SYS_ADMIN`). Allocates nothing.
        pub fn load(&self) -> io::Result<()> {
            let prog = libc::sock_fprog {
                len: self.filter.len() as u16,
                filter: self.filter.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: `prog` points at `len` instructions that outlive the
            // call; the kernel copies them.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    self.flags as libc::c_ulong,
                    &prog as *const libc::sock_fprog,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    }

    /// Compiled programs by profile, a few at most, the most recently used
    /// kept: a unit's profile depends only on its capabilities (and the
    /// host), so a handful of distinct ones cover every start.
    #[derive(Debug)]
    pub struct BpfCache {
        cap: usize,
        /// Most recent last.
        entries: Mutex<VecDeque<Entry>>,
    }

    /// A hash of a profile's JSON, that JSON, and its program.
    type Entry = (u64, String, Arc<Vec<u8>>);

    impl BpfCache {
        pub fn new(cap: usize) -> BpfCache {
            BpfCache {
                cap: cap.max(1),
                entries: Mutex::new(VecDeque::new()),
            }
        }

        /// `profile`'s program, compiled on the first call for it (the
        /// lock is held meanwhile, so one profile is compiled once).
        pub fn get(&self, profile: &LinuxSeccomp) -> Result<Arc<Vec<u8>>, BpfError> {
            let json = serde_json::to_string(profile)
                .map_err(|e| BpfError::Compile(format!("serializing the profile: {e}")))?;
            let mut h = DefaultHasher::new();
            json.hash(&mut h);
            let hash = h.finish();
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = entries
                .iter()
                .position(|(k, j, _)| *k == hash && *j == json)
            {
                let hit = entries.remove(i).expect("position is in range");
                let program = hit.2.clone();
                entries.push_back(hit);
                return Ok(program);
            }
            let program = Arc::new(compile_bpf(profile)?);
            if entries.len() >= self.cap {
                entries.pop_front();
            }
            entries.push_back((hash, json, program.clone()));
            Ok(program)
        }

        /// Profiles held.
        pub fn len(&self) -> usize {
            self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
        }

        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENOSYS: u32 = libc::ENOSYS as u32;

    /// What Docker's default profile refuses a container without extra
    /// capabilities (Docker's documentation), plus what jarvis withholds.
    const REFUSED: &[&str] = &[
        "acct",
        "add_key",
        "bpf",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "mount",
        "move_mount",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "open_tree",
        "move_pages",
        "name_to_handle_at",
        "nfsservctl",
        "open_by_handle_at",
        "perf_event_open",
        "pivot_root",
        "process_vm_readv",
        "process_vm_writev",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "set_mempolicy",
        "setns",
        "settimeofday",
        "stime",
        "swapon",
        "swapoff",
        "sysfs",
        "_sysctl",
        "umount",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ];

    fn profile(caps: &[Capability]) -> LinuxSeccomp {
        default_profile(&caps.iter().copied().collect())
    }

    fn parsed() -> Profile {
        serde_json::from_str(DOCKER_DEFAULT_JSON).unwrap()
    }

    /// The built-in profile prepared for another host.
    fn prepared_for(arch: &str, host: Arch, kernel: Option<(u32, u32)>) -> Prepared {
        prepare(parsed(), arch, host, kernel)
    }

    fn rules<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn the_built_in_profile_is_dockers_allowlist() {
        let raw = parsed();
        assert_eq!(raw.default_action, LinuxSeccompAction::ScmpActErrno);
        assert!(raw.syscalls.len() > 20);
        assert!(known_names().len() > 350, "{}", known_names().len());

        let p = profile(&[]);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                p.architectures().as_deref(),
                Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
            );
            assert_eq!(verdict(&p, "arch_prctl"), Verdict::Allow);
            assert_eq!(verdict(&p, "modify_ldt"), Verdict::Allow);
        }
        assert_eq!(architectures(), p.architectures().clone().unwrap());
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "fork",
            "vfork",
            "wait4",
            "mmap",
            "futex",
            "epoll_wait",
            "accept4",
            "getrandom",
            "exit_group",
            "setuid",
            "capset",
        ] {
            assert_eq!(verdict(&p, name), Verdict::Allow, "{name}");
        }
        // A name the profile does not mention gets the default: EPERM.
        assert_eq!(verdict(&p, "pkey_alloc"), Verdict::Errno(EPERM));
        // libcontainer drops a rule whose action is the default one; none is.
        for s in p.syscalls().iter().flatten() {
            assert!(
                !(s.action() == LinuxSeccompAction::ScmpActErrno
                    && s.errno_ret().unwrap_or(EPERM) == EPERM),
                "{:?}",
                s.names()
            );
        }
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let p = profile(&[]);
        for name in REFUSED {
            assert_eq!(verdict(&p, name), Verdict::Errno(EPERM), "{name}");
        }
        // denied_names lists those the profile mentions (for another
        // capability or architecture).
        let denied = denied_names(&p);
        for name in REFUSED.iter().filter(|n| known_names().contains(**n)) {
            assert!(denied.contains(&(name.to_string(), EPERM)), "{name}");
        }
        assert!(denied.iter().any(|(n, _)| n == "mount"));
        assert!(!denied.iter().any(|(n, _)| n == "keyctl"));
        assert!(denied.contains(&("clone3".to_string(), ENOSYS)));
        assert!(!denied.iter().any(|(n, _)| n == "read" || n == "clone"));
    }

    #[test]
    fn clone_without_namespace_flags_only() {
        let p = profile(&[]);
        assert_eq!(verdict(&p, "clone3"), Verdict::Errno(ENOSYS));
        let clone = rules(&p, "clone");
        assert_eq!(clone.len(), 1, "{clone:?}");
        assert_eq!(clone[0].action(), LinuxSeccompAction::ScmpActAllow);
        let args = clone[0].args().as_ref().unwrap();
        assert_eq!(args.len(), 1);
        let a = args[0];
        // (flags & CLONE_NEW*) == 0, with libcontainer's reading of
        // MASKED_EQ: value = datum, valueTwo = mask.
        assert_eq!(
            (a.index(), a.op(), a.value(), a.value_two()),
            (
                if cfg!(target_arch = "s390x") { 1 } else { 0 },
                LinuxSeccompOperator::ScmpCmpMaskedEq,
                0,
                Some(0x7E02_0000)
            )
        );

        let admin = profile(&[Capability::SysAdmin]);
        assert_eq!(verdict(&admin, "clone"), Verdict::Allow);
        assert_eq!(verdict(&admin, "clone3"), Verdict::Allow);
        assert_eq!(rules(&admin, "clone3").len(), 1);
    }

    #[test]
    fn personality_only_with_dockers_values() {
        let p = profile(&[]);
        let mut values: Vec<u64> = rules(&p, "personality")
            .iter()
            .map(|s| {
                assert_eq!(s.action(), LinuxSeccompAction::ScmpActAllow);
                let a = s.args().as_ref().unwrap();
                assert_eq!((a.len(), a[0].index()), (1, 0));
                assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                a[0].value()
            })
            .collect();
        values.sort();
        assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
        assert_eq!(verdict(&p, "personality"), Verdict::Conditional);
    }

    #[test]
    fn vsock_sockets_and_io_uring_are_withheld() {
        for caps in [&[][..], &[Capability::SysAdmin, Capability::NetAdmin][..]] {
            let p = profile(caps);
            let socket = rules(&p, "socket");
            assert_eq!(socket.len(), 1, "{socket:?}");
            assert_eq!(socket[0].names(), &["socket".to_string()]);
            assert_eq!(socket[0].action(), LinuxSeccompAction::ScmpActAllow);
            let a = socket[0].args().as_ref().unwrap()[0];
            assert_eq!(
                (a.index(), a.value(), a.op()),
                (0, 40, LinuxSeccompOperator::ScmpCmpNe)
            );
            for name in WITHHELD {
                assert_eq!(verdict(&p, name), Verdict::Errno(EPERM), "{name}");
                assert!(rules(&p, name).is_empty());
            }
        }
        // Everything else of the rule socket came in stays allowed.
        let p = profile(&[]);
        assert_eq!(verdict(&p, "socketpair"), Verdict::Allow);
        assert_eq!(verdict(&p, "connect"), Verdict::Allow);
    }

    #[test]
    fn capabilities_relax_their_rules() {
        let relaxed: &[(Capability, &[&str])] = &[
            (
                Capability::SysAdmin,
                &[
                    "mount",
                    "umount2",
                    "unshare",
                    "setns",
                    "bpf",
                    "fsopen",
                    "mount_setattr",
                    "sethostname",
                    "perf_event_open",
                    "quotactl",
                    "lookup_dcookie",
                ],
            ),
            (
                Capability::SysPtrace,
                &[
                    "kcmp",
                    "process_vm_readv",
                    "process_vm_writev",
                    "pidfd_getfd",
                ],
            ),
            (Capability::SysTime, &["settimeofday", "clock_settime"]),
            (
                Capability::SysModule,
                &["init_module", "finit_module", "delete_module"],
            ),
            (Capability::SysBoot, &["reboot"]),
            (Capability::SysNice, &["mbind", "set_mempolicy"]),
            (Capability::SysRawio, &["iopl", "ioperm"]),
            (Capability::SysPacct, &["acct"]),
            (Capability::DacReadSearch, &["open_by_handle_at"]),
            (Capability::Syslog, &["syslog"]),
            (Capability::SysTtyConfig, &["vhangup"]),
            (Capability::SysChroot, &["chroot"]),
        ];
        let none = profile(&[]);
        for (cap, names) in relaxed {
            let p = profile(&[*cap]);
            for name in *names {
                assert_eq!(verdict(&none, name), Verdict::Errno(EPERM), "{name}");
                assert_eq!(verdict(&p, name), Verdict::Allow, "{name} with {cap:?}");
            }
            // The rest stays refused.
            for name in [
                "kexec_load",
                "keyctl",
                "add_key",
                "userfaultfd",
                "io_uring_setup",
                "pivot_root",
            ] {
                assert_eq!(
                    verdict(&p, name),
                    Verdict::Errno(EPERM),
                    "{name} with {cap:?}"
                );
            }
        }
        // CAP_SYS_ADMIN relaxes no other capability's rules.
        let admin = profile(&[Capability::SysAdmin]);
        for name in ["reboot", "init_module", "kcmp", "settimeofday", "acct"] {
            assert_eq!(verdict(&admin, name), Verdict::Errno(EPERM), "{name}");
        }
    }

    /// A container spec carries the profile of its capability set: the
    /// defaults plus what the unit adds.
    #[test]
    fn the_spec_carries_the_profile_of_its_capabilities() {
        use crate::spec::{build_spec, Extras, SpecInput};
        use jarvis_unit::{Container, Exec, Network, Unit};
        let spec = |caps: &[&str]| {
            let mut u = Unit::new(
                "web",
                Exec::Container(Container {
                    command: Some(vec!["sh".into()]),
                    ..Container::new("busybox").with_network(Network::Host)
                }),
            );
            u.security.capabilities = caps.iter().map(|c| c.to_string()).collect();
            let image = serde_json::from_value(serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {},
            }))
            .unwrap();
            let s = build_spec(&SpecInput {
                unit: &u,
                image: &image,
                users: &crate::UserDb::parse("root:x:0:0::/:/bin/sh\n", "root:x:0:\n"),
                rootfs: std::path::Path::new("/var/lib/jarvis/c/web/rootfs"),
                cgroups_path: "/jarvis/web",
                etc: None,
                extras: &Extras::default(),
                netns: None,
                run: &Default::default(),
            })
            .unwrap();
            s.linux().as_ref().unwrap().seccomp().clone().unwrap()
        };
        let eperm = Verdict::Errno(EPERM);
        let sc = spec(&[]);
        assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(sc.default_errno_ret(), Some(EPERM));
        assert_eq!(verdict(&sc, "mount"), eperm);
        assert_eq!(verdict(&sc, "kcmp"), eperm);
        // CAP_SYS_CHROOT is one of the default capabilities.
        assert_eq!(verdict(&sc, "chroot"), Verdict::Allow);
        let sc = spec(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        for name in ["mount", "umount2", "kcmp", "chroot"] {
            assert_eq!(verdict(&sc, name), Verdict::Allow, "{name}");
        }
        assert_eq!(verdict(&sc, "kexec_load"), eperm);
    }

    #[test]
    fn caps_included_need_all_excluded_need_any() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["both"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
                {"names": ["neither"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
                {"name": "single", "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }"#;
        let p = prepare(
            serde_json::from_str(json).unwrap(),
            "amd64",
            Arch::ScmpArchX86_64,
            Some((6, 1)),
        );
        assert_eq!(p.architectures, [Arch::ScmpArchX86_64]);
        let with = |caps: &[Capability]| build(&p, &caps.iter().copied().collect());
        let (admin, net) = (Capability::SysAdmin, Capability::NetAdmin);
        assert_eq!(verdict(&with(&[admin]), "both"), Verdict::Errno(EPERM));
        assert_eq!(verdict(&with(&[admin, net]), "both"), Verdict::Allow);
        assert_eq!(verdict(&with(&[]), "neither"), Verdict::Allow);
        assert_eq!(verdict(&with(&[net]), "neither"), Verdict::Errno(EPERM));
        assert_eq!(verdict(&with(&[]), "single"), Verdict::Errno(ENOSYS));
    }

    #[test]
    fn min_kernel_is_compared_with_the_kernel() {
        let on = |kernel| {
            let p = prepared_for("amd64", Arch::ScmpArchX86_64, kernel);
            verdict(&build(&p, &HashSet::new()), "ptrace")
        };
        assert_eq!(on(Some((4, 8))), Verdict::Allow);
        assert_eq!(on(Some((6, 1))), Verdict::Allow);
        assert_eq!(on(Some((5, 0))), Verdict::Allow);
        assert_eq!(on(Some((4, 7))), Verdict::Errno(EPERM));
        assert_eq!(on(Some((3, 19))), Verdict::Errno(EPERM));
        assert_eq!(on(None), Verdict::Errno(EPERM));
        assert_eq!(parse_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_version("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("6"), None);
        // This host: the kernel is read.
        assert!(kernel_version().is_some());
    }

    #[test]
    fn arch_conditions_follow_the_host() {
        let on = |arch, host| build(&prepared_for(arch, host, Some((6, 1))), &HashSet::new());
        let amd64 = on("amd64", Arch::ScmpArchX86_64);
        let arm64 = on("arm64", Arch::ScmpArchAarch64);
        let s390x = on("s390x", Arch::ScmpArchS390x);
        assert_eq!(verdict(&amd64, "arch_prctl"), Verdict::Allow);
        assert_eq!(verdict(&arm64, "arch_prctl"), Verdict::Errno(EPERM));
        assert_eq!(verdict(&arm64, "arm_fadvise64_64"), Verdict::Allow);
        assert_eq!(verdict(&amd64, "arm_fadvise64_64"), Verdict::Errno(EPERM));
        assert_eq!(
            arm64.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        // s390's clone takes its flags second.
        let clone = rules(&s390x, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);
        assert_eq!(verdict(&s390x, "clone3"), Verdict::Errno(ENOSYS));
        // An architecture without an archMap entry: itself only.
        let riscv = on("riscv64", Arch::ScmpArchRiscv64);
        assert_eq!(
            riscv.architectures().as_deref(),
            Some(&[Arch::ScmpArchRiscv64][..])
        );
    }
}

#[cfg(test)]
mod bpf_tests {
    use std::sync::Arc;

    use oci_spec::runtime::{LinuxSeccompFilterFlag, LinuxSyscallBuilder};

    use super::bpf::*;
    use super::*;

    fn docker() -> LinuxSeccomp {
        default_profile(&crate::spec::DEFAULT_CAPABILITIES.into_iter().collect())
    }

    #[test]
    fn docker_default_compiles_to_whole_instructions() {
        let bytes = compile_bpf(&docker()).unwrap();
        assert!(bytes.len() >= 8 * 100, "{} bytes", bytes.len());
        assert_eq!(bytes.len() % 8, 0);
        let p = Program::from_bytes(&bytes, load_flags(&docker()).unwrap()).unwrap();
        assert_eq!(p.len() * 8, bytes.len());
        // The same profile, the same program.
        assert_eq!(compile_bpf(&docker()).unwrap(), bytes);
        assert!(Program::from_bytes(&bytes[..bytes.len() - 1], 0).is_err());
        assert!(Program::from_bytes(&[], 0).is_err());
    }

    /// Loads the program in a forked child (never in the test process)
    /// and reports what two syscalls did there: an unlisted one
    /// (`pkey_alloc`), and `write(2)` on a pipe the parent reads.
    #[test]
    fn the_loaded_program_refuses_unlisted_syscalls_and_allows_write() {
        let profile = docker();
        let program = Program::from_bytes(
            &compile_bpf(&profile).unwrap(),
            load_flags(&profile).unwrap(),
        )
        .unwrap();
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let [r, w] = fds;
        // SAFETY: the child makes system calls only, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: system calls on plain integers and our own buffers.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(10);
                }
                if program.load().is_err() {
                    libc::_exit(11);
                }
                let refused = libc::syscall(libc::SYS_pkey_alloc, 0, 0) == -1
                    && *libc::__errno_location() == libc::EPERM;
                let unnumbered =
                    libc::syscall(1000) == -1 && *libc::__errno_location() == libc::EPERM;
                let byte: &[u8] = match (refused, unnumbered) {
                    (true, true) => b"E",
                    (false, _) => b"a",
                    (_, false) => b"n",
                };
                let wrote = libc::write(w, byte.as_ptr().cast(), 1);
                libc::_exit(if wrote == 1 { 0 } else { 12 });
            }
        }
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(w) };
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let mut byte = [0u8; 1];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(r, byte.as_mut_ptr().cast(), 1) };
        // SAFETY: closing our read end.
        unsafe { libc::close(r) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status:#x}"
        );
        assert_eq!(n, 1);
        assert_eq!(
            byte[0] as char, 'E',
            "a: pkey_alloc not EPERM, n: syscall 1000 not EPERM"
        );
    }

    #[test]
    fn notify_and_waitkill_profiles_are_left_to_libcontainer() {
        let mut notify = docker();
        let mut rules = notify.syscalls().clone().unwrap();
        rules.push(
            LinuxSyscallBuilder::default()
                .names(vec!["pkey_alloc".to_string()])
                .action(LinuxSeccompAction::ScmpActNotify)
                .build()
                .unwrap(),
        );
        notify.set_syscalls(Some(rules));
        assert!(matches!(load_flags(&notify), Err(BpfError::Refused(_))));
        assert!(matches!(compile_bpf(&notify), Err(BpfError::Refused(_))));

        let mut waitkill = docker();
        waitkill.set_flags(Some(vec![
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
        ]));
        assert!(matches!(load_flags(&waitkill), Err(BpfError::Refused(_))));

        let mut log = docker();
        log.set_flags(Some(vec![
            LinuxSeccompFilterFlag::SeccompFilterFlagLog,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        ]));
        assert_eq!(
            load_flags(&log).unwrap(),
            (libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW) as u32
        );
        assert_eq!(load_flags(&docker()).unwrap(), 0);
    }

    #[test]
    fn the_cache_compiles_each_profile_once_and_keeps_a_few() {
        let cache = BpfCache::new(2);
        let a = docker();
        let first = cache.get(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&a).unwrap()));
        let mut b = docker();
        b.set_default_errno_ret(Some(libc::EACCES as u32));
        let bp = cache.get(&b).unwrap();
        assert_ne!(*bp, *first, "another default errno, another program");
        assert_eq!(cache.len(), 2);
        let mut c = docker();
        c.set_default_errno_ret(Some(libc::ENOSYS as u32));
        cache.get(&c).unwrap();
        assert_eq!(cache.len(), 2);
        // `a` was the least recently used: it went, so it is compiled anew.
        assert!(!Arc::ptr_eq(&first, &cache.get(&a).unwrap()));
        assert!(Arc::ptr_eq(
            &cache.get(&a).unwrap(),
            &cache.get(&a).unwrap()
        ));
    }
}
