use jarvis_unit::Volume;
use oci_spec::runtime::LinuxSeccompAction;

use super::*;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nvideo:x:44:app\napp:x:1000:\nnogroup:x:65534:\n";

fn container() -> Container {
    Container::new("busybox").with_network(Network::Host)
}

fn unit(c: Container) -> Unit {
    Unit::new("web", Exec::Container(c))
}

fn image(config: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": config,
    }))
    .unwrap()
}

fn default_image() -> ImageConfiguration {
    image(serde_json::json!({"Cmd": ["sh"]}))
}

fn build_with(u: &Unit, img: &ImageConfiguration, extras: &Extras) -> Result<Spec, SpecError> {
    let users = UserDb::parse(PASSWD, GROUP);
    let etc = EtcFiles {
        hosts: "/etc/hosts".into(),
        resolv_conf: "/etc/resolv.conf".into(),
        hostname: "/run/b/hostname".into(),
    };
    build_spec(&SpecInput {
        unit: u,
        image: img,
        users: &users,
        rootfs: Path::new("/var/lib/jarvis/c/web/rootfs"),
        cgroups_path: "/jarvis/web",
        etc: Some(&etc),
        extras,
        netns: None,
        run: &Default::default(),
    })
}

fn build(u: &Unit) -> Spec {
    build_with(u, &default_image(), &Extras::default()).unwrap()
}

fn process(s: &Spec) -> &Process {
    s.process().as_ref().unwrap()
}

fn linux(s: &Spec) -> &oci_spec::runtime::Linux {
    s.linux().as_ref().unwrap()
}

fn cap_mask(caps: &HashSet<Capability>) -> u64 {
    // The kernel's capability numbers.
    caps.iter()
        .map(|c| {
            let n = match c {
                Capability::Chown => 0,
                Capability::DacOverride => 1,
                Capability::DacReadSearch => 2,
                Capability::Fowner => 3,
                Capability::Fsetid => 4,
                Capability::Kill => 5,
                Capability::Setgid => 6,
                Capability::Setuid => 7,
                Capability::Setpcap => 8,
                Capability::NetBindService => 10,
                Capability::NetAdmin => 12,
                Capability::NetRaw => 13,
                Capability::SysChroot => 18,
                Capability::SysPtrace => 19,
                Capability::SysAdmin => 21,
                Capability::Setfcap => 31,
                other => panic!("no number for {other:?} in this test"),
            };
            1u64 << n
        })
        .fold(0, |a, b| a | b)
}

#[test]
fn default_capabilities_are_podmans() {
    let s = build(&unit(container()));
    let caps = process(&s).capabilities().as_ref().unwrap();
    let bounding = caps.bounding().as_ref().unwrap();
    assert_eq!(cap_mask(bounding), 0x8004_05fb);
    assert_eq!(caps.effective().as_ref(), Some(bounding));
    assert_eq!(caps.permitted().as_ref(), Some(bounding));
    assert_eq!(caps.inheritable().as_ref(), Some(&HashSet::new()));
    assert_eq!(caps.ambient().as_ref(), Some(&HashSet::new()));
    assert_eq!(process(&s).no_new_privileges(), Some(true));
}

#[test]
fn unit_capabilities_add_to_the_default() {
    let mut u = unit(container());
    u.security.capabilities = vec!["CAP_NET_ADMIN".into(), "CAP_NET_RAW".into()];
    u.security.no_new_privileges = false;
    let s = build(&u);
    let caps = process(&s).capabilities().as_ref().unwrap();
    assert_eq!(
        cap_mask(caps.bounding().as_ref().unwrap()),
        0x8004_05fb | 1 << 12 | 1 << 13
    );
    // Absent, not Some(false): libcontainer then loads seccomp while it
    // still may (see build_spec).
    assert_eq!(process(&s).no_new_privileges(), None);
    u.security.capabilities = vec!["CAP_NOPE".into()];
    assert!(matches!(
        build_with(&u, &default_image(), &Extras::default()),
        Err(SpecError::UnknownCapability(_))
    ));
}

#[test]
fn seccomp_follows_the_capabilities() {
    use crate::seccomp::{verdict, Verdict};
    let eperm = Verdict::Errno(libc::EPERM as u32);
    let s = build(&unit(container()));
    let sc = linux(&s).seccomp().as_ref().unwrap();
    assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(sc.default_errno_ret(), Some(libc::EPERM as u32));
    assert_eq!(verdict(sc, "mount"), eperm);
    assert_eq!(verdict(sc, "kcmp"), eperm);
    // CAP_SYS_CHROOT is one of the default capabilities.
    assert_eq!(verdict(sc, "chroot"), Verdict::Allow);

    let mut u = unit(container());
    u.security.capabilities = vec!["CAP_SYS_ADMIN".into(), "CAP_SYS_PTRACE".into()];
    let s = build(&u);
    let sc = linux(&s).seccomp().as_ref().unwrap();
    for name in ["mount", "umount2", "kcmp"] {
        assert_eq!(verdict(sc, name), Verdict::Allow, "{name}");
    }
    assert_eq!(verdict(sc, "kexec_load"), eperm);
}

#[test]
fn masked_and_readonly_paths() {
    let s = build(&unit(container()));
    let l = linux(&s);
    let masked = l.masked_paths().as_ref().unwrap();
    for p in [
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
    ] {
        assert!(masked.iter().any(|m| m == p), "{p} not masked");
    }
    assert_eq!(
        l.readonly_paths().as_ref().unwrap(),
        &[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]
    );
}

#[test]
fn devices_and_device_cgroup() {
    let s = build(&unit(container()));
    let l = linux(&s);
    let nodes: Vec<_> = l
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d.path().to_str().unwrap().to_string(),
                d.major(),
                d.minor(),
                d.file_mode(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ]
        .map(|(p, a, b)| (p.to_string(), a, b, Some(0o666)))
    );
    let rules: Vec<String> = l
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| format!("{}{}", if r.allow() { "+" } else { "-" }, r))
        .collect();
    assert_eq!(
        rules,
        [
            "-a *:* rwm",
            "+c 1:3 rwm",
            "+c 1:5 rwm",
            "+c 1:7 rwm",
            "+c 1:8 rwm",
            "+c 1:9 rwm",
            "+c 5:0 rwm",
            "+c 136:* rwm",
            "+c 5:2 rwm",
        ]
    );
}

#[test]
fn extra_devices_and_mounts() {
    let extras = Extras {
        devices: vec![ExtraDevice {
            path: "/dev/nvidia0".into(),
            kind: DeviceKind::Char,
            major: 195,
            minor: 0,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
            access: "rw".into(),
        }],
        device_rules: vec![DeviceRule {
            kind: DeviceKind::Char,
            major: Some(195),
            minor: None,
            access: "rwm".into(),
        }],
        mounts: vec![ExtraMount {
            host: "/usr/lib/nvidia".into(),
            container: "/usr/lib/nvidia".into(),
            options: vec!["ro".into(), "nosuid".into()],
        }],
        additional_gids: vec![44, 993],
    };
    let s = build_with(&unit(container()), &default_image(), &extras).unwrap();
    let gids = s
        .process()
        .as_ref()
        .unwrap()
        .user()
        .additional_gids()
        .clone();
    assert_eq!(
        gids,
        Some(vec![44, 993]),
        "the extras' groups reach the process"
    );
    let l = linux(&s);
    assert!(l
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .any(|d| d.path() == Path::new("/dev/nvidia0") && d.major() == 195));
    let rules: Vec<String> = l
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(rules.ends_with(&["c 195:0 rw".to_string(), "c 195:* rwm".to_string()]));
    let m = s.mounts().as_ref().unwrap().last().unwrap();
    assert_eq!(m.destination(), Path::new("/usr/lib/nvidia"));
    assert_eq!(
        m.options().as_deref(),
        Some(&["rbind".to_string(), "ro".into(), "nosuid".into()][..])
    );

    let mut bad = extras.clone();
    bad.devices[0].access = "rwx".into();
    assert!(matches!(
        build_with(&unit(container()), &default_image(), &bad),
        Err(SpecError::BadAccess(_))
    ));
}

#[test]
fn namespaces_by_network_mode() {
    let types = |s: &Spec| -> Vec<LinuxNamespaceType> {
        linux(s)
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect()
    };
    let host = build(&unit(container()));
    assert_eq!(
        types(&host),
        [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount
        ]
    );
    assert!(linux(&host)
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .all(|n| n.path().is_none()));
    let mut c = container();
    c.network = Network::None;
    let none = build(&unit(c));
    assert_eq!(
        types(&none),
        [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network
        ]
    );
    assert!(!types(&none).contains(&LinuxNamespaceType::User));
    assert_eq!(none.hostname().as_deref(), Some("web"));
}

#[test]
fn env_merge_order() {
    let img = image(serde_json::json!({
        "Env": ["PATH=/img/bin", "A=image", "B=image", "NOEQUALS", "A=again"],
        "Cmd": ["sh"],
    }));
    let mut u = unit(container());
    u.env.insert("B".into(), "unit".into());
    u.env.insert("Z".into(), "unit".into());
    u.env.insert("C".into(), "unit".into());
    let s = build_with(&u, &img, &Extras::default()).unwrap();
    assert_eq!(
        process(&s).env().as_deref().unwrap(),
        [
            "PATH=/img/bin",
            "A=again",
            "B=unit",
            "C=unit",
            "Z=unit",
            "HOME=/root"
        ]
    );
    // Defaults for PATH and HOME; the unit's HOME wins over the user's.
    let mut u = unit(container());
    u.env.insert("HOME".into(), "/data".into());
    let s = build(&u);
    assert_eq!(
        process(&s).env().as_deref().unwrap(),
        [format!("PATH={DEFAULT_PATH}"), "HOME=/data".to_string()]
    );
    let mut u = unit(container());
    u.env.insert("A=B".into(), "x".into());
    assert!(matches!(
        build_with(&u, &default_image(), &Extras::default()),
        Err(SpecError::BadEnv(_))
    ));
}

#[test]
fn entrypoint_and_command_rules() {
    let img = image(serde_json::json!({
        "Entrypoint": ["/entry"],
        "Cmd": ["--serve"],
    }));
    let argv = |c: &Container, img: &ImageConfiguration| command(c, img).unwrap();
    let mut c = container();
    assert_eq!(argv(&c, &img), ["/entry", "--serve"]);
    c.command = Some(vec!["--check".into()]);
    assert_eq!(argv(&c, &img), ["/entry", "--check"]);
    // A unit entrypoint drops the image's Cmd...
    c.command = None;
    c.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
    assert_eq!(argv(&c, &img), ["/bin/sh", "-c"]);
    // ...unless the unit gives a command too.
    c.command = Some(vec!["echo hi".into()]);
    assert_eq!(argv(&c, &img), ["/bin/sh", "-c", "echo hi"]);
    // An empty entrypoint resets the image's.
    c.entrypoint = Some(vec![]);
    c.command = Some(vec!["/bin/true".into()]);
    assert_eq!(argv(&c, &img), ["/bin/true"]);
    c.command = None;
    assert!(matches!(command(&c, &img), Err(SpecError::NoCommand)));
    // Cmd only.
    let cmd_only = image(serde_json::json!({"Cmd": ["sh", "-c", "x"]}));
    assert_eq!(argv(&container(), &cmd_only), ["sh", "-c", "x"]);
    // An image without a config at all.
    let bare: ImageConfiguration = serde_json::from_value(serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    assert!(matches!(
        command(&container(), &bare),
        Err(SpecError::NoCommand)
    ));
}

#[test]
fn user_from_unit_or_image() {
    let img = image(serde_json::json!({"User": "app", "Cmd": ["sh"]}));
    let s = build_with(&unit(container()), &img, &Extras::default()).unwrap();
    let user = process(&s).user();
    assert_eq!((user.uid(), user.gid()), (1000, 1000));
    assert_eq!(user.additional_gids().as_deref(), Some(&[44u32][..]));
    assert!(process(&s)
        .env()
        .as_ref()
        .unwrap()
        .contains(&"HOME=/home/app".to_string()));

    let mut c = container();
    c.user = Some("nobody:video".into());
    let s = build_with(&unit(c), &img, &Extras::default()).unwrap();
    let user = process(&s).user();
    assert_eq!(
        (user.uid(), user.gid(), user.additional_gids().clone()),
        (65534, 44, None)
    );

    let mut c = container();
    c.user = Some("ghost".into());
    assert!(matches!(
        build_with(&unit(c), &img, &Extras::default()),
        Err(SpecError::User(UserError::NoSuchUser(_)))
    ));
    let s = build(&unit(container()));
    assert_eq!((process(&s).user().uid(), process(&s).user().gid()), (0, 0));
}

#[test]
fn working_dir_root_and_process() {
    let img = image(serde_json::json!({"WorkingDir": "srv", "Cmd": ["sh"]}));
    let s = build_with(&unit(container()), &img, &Extras::default()).unwrap();
    assert_eq!(process(&s).cwd(), Path::new("/srv"));
    let mut c = container();
    c.working_dir = Some("/data".into());
    c.read_only = true;
    let s = build_with(&unit(c.clone()), &img, &Extras::default()).unwrap();
    assert_eq!(process(&s).cwd(), Path::new("/data"));
    let root = s.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("/var/lib/jarvis/c/web/rootfs"));
    assert_eq!(root.readonly(), Some(true));
    assert_eq!(
        build(&unit(container()))
            .root()
            .as_ref()
            .unwrap()
            .readonly(),
        Some(false)
    );
    assert_eq!(process(&build(&unit(container()))).cwd(), Path::new("/"));
    c.working_dir = Some("/a/../../etc".into());
    assert!(matches!(
        build_with(&unit(c), &img, &Extras::default()),
        Err(SpecError::BadPath { .. })
    ));

    let p = process(&s);
    assert_eq!(p.terminal(), Some(false));
    assert!(p.rlimits().is_none(), "no rlimits: inherited");
    assert!(p.apparmor_profile().is_none() && p.oom_score_adj().is_none());
    assert_eq!(
        linux(&s).cgroups_path().as_deref(),
        Some(Path::new("/jarvis/web"))
    );
    assert!(linux(&s).sysctl().is_none() && linux(&s).uid_mappings().is_none());
    assert!(s.hooks().is_none());
    assert!(s.version().starts_with("1."));
}

#[test]
fn resources_mapping() {
    let mut u = unit(container());
    u.resources = Resources {
        memory_max: Some(64 * 1024 * 1024),
        cpus: Some(1.5),
        cpu_weight: Some(100),
        pids_max: Some(64),
        cpuset: Some("0-1".into()),
    };
    let s = build(&u);
    let r = linux(&s).resources().as_ref().unwrap();
    let mem = r.memory().as_ref().unwrap();
    assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(64 << 20)));
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(cpu.quota(), Some(150_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(cpu.shares(), Some(1024));
    assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
    assert_eq!(
        r.unified()
            .as_ref()
            .and_then(|u| u.get("cpu.weight"))
            .map(String::as_str),
        Some("100")
    );
    assert_eq!(r.pids().as_ref().unwrap().limit(), 64);

    u.resources = Resources {
        cpus: Some(0.001),
        cpu_weight: Some(1),
        ..Resources::default()
    };
    let s = build(&u);
    let r = linux(&s).resources().as_ref().unwrap();
    assert!(r.memory().is_none() && r.pids().is_none());
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!((cpu.quota(), cpu.shares()), (Some(1000), Some(10)));
    assert!(cpu.cpus().is_none());

    let s = build(&unit(container()));
    let r = linux(&s).resources().as_ref().unwrap();
    assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());
    assert!(r.unified().is_none());
}

#[test]
fn mounts_and_volumes() {
    let mut c = container();
    c.volumes = vec![
        Volume::bind("/srv/data", "/data", false),
        Volume::bind("/srv/conf", "/etc/app", true),
    ];
    let s = build(&unit(c.clone()));
    let m = s.mounts().as_ref().unwrap();
    let dests: Vec<_> = m
        .iter()
        .map(|m| m.destination().to_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/data",
            "/etc/app"
        ]
    );
    let opts = |i: usize| m[i].options().clone().unwrap_or_default();
    assert_eq!(m[1].typ().as_deref(), Some("tmpfs"));
    assert!(opts(1).contains(&"mode=755".into()) && opts(1).contains(&"nosuid".into()));
    for o in ["newinstance", "ptmxmode=0666", "gid=5"] {
        assert!(opts(2).contains(&o.to_string()), "/dev/pts lacks {o}");
    }
    assert!(opts(3).contains(&"size=65536k".into()));
    assert_eq!(m[4].typ().as_deref(), Some("mqueue"));
    for o in ["ro", "nosuid", "noexec", "nodev"] {
        assert!(opts(5).contains(&o.to_string()), "/sys lacks {o}");
    }
    assert_eq!(m[6].source().as_deref(), Some(Path::new("/etc/hosts")));
    assert_eq!(
        m[7].source().as_deref(),
        Some(Path::new("/etc/resolv.conf"))
    );
    for i in 6..=8 {
        assert!(opts(i).contains(&"ro".into()));
    }
    assert_eq!(m[9].typ().as_deref(), Some("bind"));
    assert_eq!(m[9].source().as_deref(), Some(Path::new("/srv/data")));
    assert_eq!(opts(9), ["rbind", "rprivate", "nodev"]);
    assert_eq!(opts(10), ["rbind", "rprivate", "nodev", "ro"]);

    c.volumes[0].container = "data".into();
    assert!(matches!(
        build_with(&unit(c.clone()), &default_image(), &Extras::default()),
        Err(SpecError::BadPath { .. })
    ));
    c.volumes[0].container = "/".into();
    assert!(build_with(&unit(c), &default_image(), &Extras::default()).is_err());
}

#[test]
fn native_units_and_bad_inputs_are_refused() {
    let mut u = unit(container());
    u.exec = Exec::Native(jarvis_unit::Native::new(vec!["/bin/true".into()]));
    assert!(matches!(
        build_with(&u, &default_image(), &Extras::default()),
        Err(SpecError::NotAContainer(_))
    ));
    let u = unit(container());
    let users = UserDb::default();
    let input = SpecInput {
        unit: &u,
        image: &default_image(),
        users: &users,
        rootfs: Path::new("/r"),
        cgroups_path: "jarvis/web",
        etc: None,
        extras: &Extras::default(),
        netns: None,
        run: &Default::default(),
    };
    assert!(matches!(
        build_spec(&input),
        Err(SpecError::BadCgroupsPath(_))
    ));
    let ok = build_spec(&SpecInput {
        cgroups_path: "/jarvis/web",
        ..input
    })
    .unwrap();
    // Without EtcFiles, no /etc binds.
    assert_eq!(ok.mounts().as_ref().unwrap().len(), 6);
}

#[test]
fn spec_round_trips_through_json() {
    let s = build(&unit(container()));
    let json = serde_json::to_string(&s).unwrap();
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert!(!json.contains("rlimits"));
}

fn build_run(u: &Unit, run: &RunPaths) -> Result<Spec, SpecError> {
    let users = UserDb::parse(PASSWD, GROUP);
    build_spec(&SpecInput {
        unit: u,
        image: &default_image(),
        users: &users,
        rootfs: Path::new("/var/lib/jarvis/c/web/rootfs"),
        cgroups_path: "/jarvis/web",
        etc: None,
        extras: &Extras::default(),
        netns: None,
        run,
    })
}

fn caps_of(s: &Spec) -> HashSet<Capability> {
    process(s)
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap()
}

#[test]
fn cap_drop_then_cap_add() {
    let mut c = container();
    c.cap_drop = vec!["ALL".into()];
    c.cap_add = vec!["CAP_CHOWN".into()];
    let s = build(&unit(c.clone()));
    assert_eq!(caps_of(&s), HashSet::from([Capability::Chown]));
    let eff = process(&s).capabilities().as_ref().unwrap();
    assert_eq!(eff.effective().clone().unwrap(), caps_of(&s));

    c.cap_drop = vec!["CAP_KILL".into(), "NET_BIND_SERVICE".into()];
    c.cap_add = vec!["CAP_NET_ADMIN".into()];
    let caps = caps_of(&build(&unit(c.clone())));
    assert!(!caps.contains(&Capability::Kill));
    assert!(!caps.contains(&Capability::NetBindService));
    assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::Chown));
    assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len() - 1);

    // [security] capabilities still add, after the drop.
    let mut u = unit(Container {
        cap_drop: vec!["ALL".into()],
        ..container()
    });
    u.security.capabilities = vec!["CAP_SYS_NICE".into()];
    assert_eq!(caps_of(&build(&u)), HashSet::from([Capability::SysNice]));

    c.cap_add = vec!["ALL".into()];
    assert_eq!(caps_of(&build(&unit(c.clone()))).len(), 41);
    c.cap_add = vec!["CAP_NOPE".into()];
    assert!(matches!(
        build_with(&unit(c), &default_image(), &Extras::default()),
        Err(SpecError::UnknownCapability(n)) if n == "CAP_NOPE"
    ));
}

#[test]
fn privileged_has_everything_and_no_filters() {
    let c = Container {
        privileged: true,
        ..container()
    };
    let host = ExtraDevice {
        path: "/dev/sda".into(),
        kind: DeviceKind::Block,
        major: 8,
        minor: 0,
        file_mode: 0o660,
        uid: 0,
        gid: 6,
        access: "rwm".into(),
    };
    let run = RunPaths {
        host_devices: vec![host],
        ..RunPaths::default()
    };
    let s = build_run(&unit(c.clone()), &run).unwrap();
    assert_eq!(caps_of(&s).len(), 41);
    // Only what jarvisd holds itself.
    let held = RunPaths {
        bounding: Some(capabilities_from_mask(0x1fffeffffff)),
        ..run.clone()
    };
    let caps = caps_of(&build_run(&unit(c.clone()), &held).unwrap());
    assert_eq!(caps.len(), 40);
    assert!(!caps.contains(&Capability::SysResource));
    let all_added = Container {
        cap_add: vec!["ALL".into()],
        ..container()
    };
    assert_eq!(caps_of(&build_run(&unit(all_added), &held).unwrap()), caps);
    let l = linux(&s);
    assert!(l.seccomp().is_none());
    assert!(l.masked_paths().is_none() && l.readonly_paths().is_none());
    assert!(l
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .any(|d| d.path() == Path::new("/dev/sda") && d.major() == 8));
    let rules = l.resources().as_ref().unwrap().devices().clone().unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow() && rules[0].typ() == Some(LinuxDeviceType::A));
    let sys = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    // Without privileged the host's devices are not taken.
    let s = build_run(&unit(container()), &run).unwrap();
    assert!(!linux(&s)
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .any(|d| d.path() == Path::new("/dev/sda")));
    assert!(linux(&s).seccomp().is_some());
}

#[test]
fn sysctls_ulimits_shm_and_groups() {
    let mut c = container();
    c.sysctls = BTreeMap::from([(
        "net.ipv4.ip_unprivileged_port_start".to_string(),
        "0".to_string(),
    )]);
    c.ulimits = BTreeMap::from([
        (
            jarvis_unit::Rlimit::Nofile,
            jarvis_unit::Ulimit {
                soft: 1024,
                hard: 65536,
            },
        ),
        (
            jarvis_unit::Rlimit::Core,
            jarvis_unit::Ulimit {
                soft: jarvis_unit::Ulimit::UNLIMITED,
                hard: jarvis_unit::Ulimit::UNLIMITED,
            },
        ),
    ]);
    c.shm_size = Some(1 << 30);
    c.group_add = vec!["video".into(), "12".into()];
    c.user = Some("app".into());
    let s = build(&unit(c.clone()));
    assert_eq!(
        linux(&s).sysctl().as_ref().unwrap()["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );
    let rl = process(&s).rlimits().clone().unwrap();
    let nofile = rl
        .iter()
        .find(|r| r.typ() == PosixRlimitType::RlimitNofile)
        .unwrap();
    assert_eq!((nofile.soft(), nofile.hard()), (1024, 65536));
    let core = rl
        .iter()
        .find(|r| r.typ() == PosixRlimitType::RlimitCore)
        .unwrap();
    assert_eq!(core.hard(), u64::MAX);
    let shm = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/dev/shm"))
        .unwrap();
    assert!(shm
        .options()
        .as_ref()
        .unwrap()
        .contains(&"size=1073741824".to_string()));
    let gids = process(&s).user().additional_gids().clone().unwrap();
    // app is in video (44) already through /etc/group; 12 is added.
    assert!(gids.contains(&44) && gids.contains(&12), "{gids:?}");
    assert_eq!(gids.iter().filter(|&&g| g == 44).count(), 1);

    c.group_add = vec!["wheel".into()];
    assert!(matches!(
        build_with(&unit(c), &default_image(), &Extras::default()),
        Err(SpecError::UnknownGroup(g)) if g == "wheel"
    ));
    // No sysctls, no rlimits: neither key in the spec.
    let s = build(&unit(container()));
    assert!(linux(&s).sysctl().is_none() && process(&s).rlimits().is_none());
}

#[test]
fn tmpfs_named_volumes_secrets_and_init() {
    let mut c = container();
    c.tmpfs = vec![
        jarvis_unit::Tmpfs {
            path: "/tmp".into(),
            size: Some(64 << 20),
            mode: Some(0o1777),
        },
        jarvis_unit::Tmpfs {
            path: "/run/x".into(),
            size: None,
            mode: None,
        },
    ];
    c.volumes = vec![
        Volume::named("pgdata", "/var/lib/postgresql/data", false),
        Volume::bind("/srv/media", "/media", true),
    ];
    c.init = true;
    let mut u = unit(c.clone());
    u.secrets = vec![jarvis_unit::Secret {
        source: "/srv/secrets/db".into(),
        target: "db".into(),
        mode: 0o400,
    }];
    let run = RunPaths {
        volume_dir: Some("/var/lib/jarvis/volumes".into()),
        secrets: Some("/var/lib/jarvis/run/secrets/web".into()),
        init: Some("/usr/bin/tini-static".into()),
        ..RunPaths::default()
    };
    let s = build_run(&u, &run).unwrap();
    let m = s.mounts().as_ref().unwrap();
    let find = |dest: &str| {
        m.iter()
            .find(|x| x.destination() == Path::new(dest))
            .unwrap()
    };
    let opts = |dest: &str| find(dest).options().clone().unwrap();
    assert_eq!(find("/tmp").typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        opts("/tmp"),
        ["nosuid", "nodev", "size=67108864", "mode=1777"].map(String::from)
    );
    assert_eq!(opts("/run/x"), ["nosuid", "nodev"].map(String::from));
    assert_eq!(
        find("/var/lib/postgresql/data").source().as_deref(),
        Some(Path::new("/var/lib/jarvis/volumes/pgdata/_data"))
    );
    assert_eq!(
        find("/media").source().as_deref(),
        Some(Path::new("/srv/media"))
    );
    assert_eq!(
        find("/run/secrets").source().as_deref(),
        Some(Path::new("/var/lib/jarvis/run/secrets/web"))
    );
    assert!(opts("/run/secrets").contains(&"ro".to_string()));
    assert_eq!(
        find(INIT_PATH).source().as_deref(),
        Some(Path::new("/usr/bin/tini-static"))
    );
    assert!(opts(INIT_PATH).contains(&"ro".to_string()));
    assert_eq!(
        process(&s).args().clone().unwrap(),
        [INIT_PATH, "--", "sh"].map(String::from)
    );

    // Each needs what the run provides.
    assert!(matches!(
        build_run(
            &u,
            &RunPaths {
                init: None,
                ..run.clone()
            }
        ),
        Err(SpecError::NoInit)
    ));
    assert!(matches!(
        build_run(
            &u,
            &RunPaths {
                volume_dir: None,
                ..run.clone()
            }
        ),
        Err(SpecError::NoVolumeDir(n)) if n == "pgdata"
    ));
    assert!(matches!(
        build_run(
            &u,
            &RunPaths {
                secrets: None,
                ..run.clone()
            }
        ),
        Err(SpecError::NoSecretsDir)
    ));
    c.tmpfs[0].path = "/".into();
    assert!(matches!(
        build_run(&unit(c), &run),
        Err(SpecError::BadPath { .. })
    ));
}

#[test]
fn device_cgroup_rules_are_allowed_after_the_defaults() {
    let rules_of = |c: Container| {
        linux(&build(&unit(c)))
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap()
    };
    let base = rules_of(container());
    let c = Container {
        device_cgroup_rules: ["c 189:* rmw", "b 8:0 r", "a *:* m"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect(),
        ..container()
    };
    let rules = rules_of(c);
    // The defaults first (deny all, then the standard nodes), unchanged.
    assert_eq!(rules[..base.len()], base[..]);
    assert!(!rules[0].allow());
    // allow, type, major, minor, access
    type Rule = (
        bool,
        Option<LinuxDeviceType>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let added: Vec<Rule> = rules[base.len()..]
        .iter()
        .map(|r| (r.allow(), r.typ(), r.major(), r.minor(), r.access().clone()))
        .collect();
    assert_eq!(
        added,
        [
            (
                true,
                Some(LinuxDeviceType::C),
                Some(189),
                None,
                Some("rwm".into())
            ),
            (
                true,
                Some(LinuxDeviceType::B),
                Some(8),
                Some(0),
                Some("r".into())
            ),
            (true, Some(LinuxDeviceType::A), None, None, Some("m".into())),
        ]
    );
    // No node is made for them.
    assert_eq!(
        linux(&build(&unit(container()))).devices(),
        linux(&build(&unit(Container {
            device_cgroup_rules: vec!["c 189:* rmw".parse().unwrap()],
            ..container()
        })))
        .devices()
    );
}
