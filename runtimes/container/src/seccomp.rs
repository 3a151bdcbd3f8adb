//! The default seccomp profile: allow by default, deny (EPERM) what Docker's
//! default profile denies, and relax a rule when the unit added the
//! capability Docker relaxes it for.
//!
//! Docker's profile is an allowlist; this one is a denylist of everything
//! that list leaves out *and that matters*: module loading, kexec, mount and
//! the new mount API, namespaces (`unshare`, `setns`, `clone` with
//! `CLONE_NEW*`), keyrings, tracing, BPF, perf, clocks, NUMA policy, swap,
//! quotas, handles, userfaultfd, io_uring, obsolete syscalls and `AF_VSOCK`
//! sockets. Most of these also need a capability the container does not
//! have; the filter is a second wall for kernel bugs behind them (and for
//! `CLONE_NEWUSER`, `userfaultfd`, `io_uring` and `keyctl`, which need none).
//!
//! `clone3` fails with ENOSYS (not EPERM), as in Docker: the flags of clone3
//! live in memory that seccomp cannot inspect, and ENOSYS makes glibc fall back
//! to `clone`, whose flags the filter can see.
//!
//! Not copied from Docker: the `personality` argument filter (a denylist
//! cannot express "only these values" for one argument) and the per-arch
//! socketcall rules of 32-bit x86.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`: the bits of Docker's
/// `0x7E020000` clone mask, one rule each.
pub const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// `AF_VSOCK`: Docker refuses `socket(AF_VSOCK, ...)`.
const AF_VSOCK: u64 = 40;

/// Syscalls denied with EPERM unless the container holds one of the listed
/// capabilities (an empty list: always denied).
pub const DENIED: &[(&[&str], &[Capability])] = &[
    // Never allowed.
    (
        &[
            "create_module",
            "get_kernel_syms",
            "query_module",
            "nfsservctl",
            "uselib",
            "ustat",
            "_sysctl",
            "sysfs",
            "vm86",
            "vm86old",
            "kexec_load",
            "kexec_file_load",
            "keyctl",
            "add_key",
            "request_key",
            "userfaultfd",
            "swapon",
            "swapoff",
            "move_pages",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ],
        &[],
    ),
    (
        &[
            "mount",
            "umount",
            "umount2",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "pivot_root",
            "unshare",
            "setns",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "name_to_handle_at",
            "fanotify_init",
            "sethostname",
            "setdomainname",
        ],
        &[Capability::SysAdmin],
    ),
    (&["bpf"], &[Capability::SysAdmin, Capability::Bpf]),
    (
        &["perf_event_open"],
        &[Capability::SysAdmin, Capability::Perfmon],
    ),
    (&["open_by_handle_at"], &[Capability::DacReadSearch]),
    (
        &["init_module", "finit_module", "delete_module"],
        &[Capability::SysModule],
    ),
    (&["reboot"], &[Capability::SysBoot]),
    (&["acct"], &[Capability::SysPacct]),
    (
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
        ],
        &[Capability::SysPtrace],
    ),
    (&["ioperm", "iopl"], &[Capability::SysRawio]),
    (
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "clock_adjtime",
            "clock_adjtime64",
        ],
        &[Capability::SysTime],
    ),
    (
        &[
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
        ],
        &[Capability::SysNice],
    ),
    (&["syslog"], &[Capability::SysAdmin, Capability::Syslog]),
    (&["vhangup"], &[Capability::SysTtyConfig]),
];

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// The architectures the filter covers: the native one plus its compat ABIs
/// (a 32-bit syscall entry must not bypass the rules).
pub fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn rule(names: &[&str], errno: u32) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno)
        .build()
        .expect("a complete syscall rule")
}

/// `(arg0 & flag) == flag`. Value and mask are both `flag`, so the rule
/// means the same whichever of `value`/`valueTwo` a runtime takes as the
/// mask (runc and youki disagree).
fn clone_flag_rule(flag: u64) -> LinuxSyscall {
    let arg = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(flag)
        .value_two(flag)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
        .expect("a complete seccomp argument");
    let mut r = rule(&["clone"], EPERM);
    r.set_args(Some(vec![arg]));
    r
}

/// The default profile for a container holding `caps` (its bounding set).
pub fn default_profile(caps: &HashSet<Capability>) -> LinuxSeccomp {
    let mut syscalls = Vec::new();
    for (names, relaxed_by) in DENIED {
        if relaxed_by.iter().any(|c| caps.contains(c)) {
            continue;
        }
        syscalls.push(rule(names, EPERM));
    }
    if !caps.contains(&Capability::SysAdmin) {
        syscalls.push(rule(&["clone3"], ENOSYS));
        syscalls.extend(CLONE_NAMESPACE_FLAGS.iter().map(|&f| clone_flag_rule(f)));
    }
    let mut vsock = rule(&["socket"], EPERM);
    vsock.set_args(Some(vec![LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(AF_VSOCK)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .build()
        .expect("a complete seccomp argument")]));
    syscalls.push(vsock);

    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
        .expect("a complete seccomp profile")
}

/// The names a profile denies unconditionally (no argument filter), with
/// the errno each returns. For tests and diagnostics.
pub fn denied_names(profile: &LinuxSeccomp) -> Vec<(String, u32)> {
    profile
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.args().as_ref().is_none_or(|a| a.is_empty()))
        .flat_map(|s| {
            let errno = s.errno_ret().unwrap_or(EPERM);
            s.names().iter().map(move |n| (n.clone(), errno))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Docker's default profile denies (for a container without extra
    /// capabilities), as listed in the task and Docker's documentation.
    const DOCKER_DENIES: &[&str] = &[
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
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
        "ptrace",
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
    ];

    fn denied(caps: &[Capability]) -> Vec<(String, u32)> {
        denied_names(&default_profile(&caps.iter().copied().collect()))
    }

    fn is_denied(list: &[(String, u32)], name: &str) -> bool {
        list.iter().any(|(n, _)| n == name)
    }

    #[test]
    fn denies_everything_docker_denies() {
        let d = denied(&[]);
        for name in DOCKER_DENIES {
            assert!(
                d.iter().any(|(n, e)| n == name && *e == EPERM),
                "{name} not denied with EPERM"
            );
        }
        assert!(d.contains(&("clone3".to_string(), ENOSYS)));
        // Plain fork/clone and ordinary syscalls stay allowed.
        for name in [
            "clone", "fork", "vfork", "execve", "read", "socket", "chroot",
        ] {
            assert!(!is_denied(&d, name), "{name} denied");
        }
    }

    #[test]
    fn default_allow_and_architectures() {
        let p = default_profile(&HashSet::new());
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                p.architectures().as_deref(),
                Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
            );
        }
        // No rule may use the default action (libcontainer would drop it).
        for s in p.syscalls().iter().flatten() {
            assert_eq!(s.action(), LinuxSeccompAction::ScmpActErrno);
        }
    }

    #[test]
    fn clone_with_namespace_flags_is_denied_bit_by_bit() {
        let p = default_profile(&HashSet::new());
        let clone_rules: Vec<_> = p
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names() == &["clone".to_string()])
            .collect();
        assert_eq!(clone_rules.len(), 7);
        let mut mask = 0;
        for r in clone_rules {
            let args = r.args().as_ref().unwrap();
            assert_eq!(args.len(), 1);
            let a = args[0];
            assert_eq!(a.index(), 0);
            assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
            assert_eq!(Some(a.value()), a.value_two());
            assert_eq!(r.errno_ret(), Some(EPERM));
            mask |= a.value();
        }
        assert_eq!(mask, 0x7E02_0000, "Docker's CLONE_NEW* mask");
    }

    #[test]
    fn vsock_sockets_are_denied() {
        let p = default_profile(&HashSet::new());
        let r = p
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["socket".to_string()])
            .unwrap();
        let a = r.args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.op()),
            (0, 40, LinuxSeccompOperator::ScmpCmpEq)
        );
    }

    #[test]
    fn capabilities_relax_their_rules() {
        let d = denied(&[Capability::SysAdmin]);
        for name in [
            "mount", "umount2", "unshare", "setns", "clone3", "bpf", "fsopen",
        ] {
            assert!(
                !is_denied(&d, name),
                "{name} still denied with CAP_SYS_ADMIN"
            );
        }
        assert!(is_denied(&d, "ptrace") && is_denied(&d, "keyctl"));
        let p = default_profile(&[Capability::SysAdmin].into_iter().collect());
        assert!(!p
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.names() == &["clone".to_string()]));

        let d = denied(&[Capability::SysPtrace]);
        for name in ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"] {
            assert!(
                !is_denied(&d, name),
                "{name} still denied with CAP_SYS_PTRACE"
            );
        }
        assert!(is_denied(&d, "mount"));

        let d = denied(&[Capability::SysTime]);
        assert!(!is_denied(&d, "settimeofday") && !is_denied(&d, "clock_settime"));
        let d = denied(&[Capability::SysModule]);
        assert!(!is_denied(&d, "init_module") && !is_denied(&d, "delete_module"));
        let d = denied(&[Capability::SysBoot]);
        assert!(!is_denied(&d, "reboot") && is_denied(&d, "kexec_load"));
        let d = denied(&[Capability::SysNice]);
        assert!(!is_denied(&d, "mbind") && is_denied(&d, "move_pages"));
        let d = denied(&[Capability::SysRawio]);
        assert!(!is_denied(&d, "iopl"));
        let d = denied(&[Capability::SysPacct]);
        assert!(!is_denied(&d, "acct"));
        let d = denied(&[Capability::DacReadSearch]);
        assert!(!is_denied(&d, "open_by_handle_at"));
        let d = denied(&[Capability::Bpf, Capability::Perfmon]);
        assert!(!is_denied(&d, "bpf") && !is_denied(&d, "perf_event_open"));
        assert!(is_denied(&d, "mount"));
    }
}
