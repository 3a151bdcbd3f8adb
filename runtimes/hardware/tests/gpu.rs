//! GPUs on fixture trees: the H200 through the NVML stand-in (in a child
//! process that loads `libnvidia-ml.so.1` from `LD_LIBRARY_PATH`) and through
//! the procfs fallback, the AMD card, the nodes and files a GPU container
//! gets, and CDI specs.

use std::path::{Path, PathBuf};
use std::process::Command;

use jarvis_hardware::fixture::{self, h200, AmdGpuSpec, Fixture};
use jarvis_hardware::{
    amd_device_nodes, cdi_spec, nvidia_device_nodes, nvidia_driver_files, probe, DeviceKind, Error,
    GpuSource, Roots, Vendor,
};
use serde_json::{json, Value};

const CHILD: &str = "JARVIS_HW_TEST_CHILD";

/// Not a test of its own: the child process of [`probe_in_child`] runs it to
/// probe with `Roots::from_env()` and the NVML found on its
/// `LD_LIBRARY_PATH`.
#[test]
fn child_probe() {
    let Some(mode) = std::env::var_os(CHILD) else {
        return;
    };
    let mut p = probe(&Roots::from_env());
    if mode == "reread" {
        // The process list file is read again at each call: what the probe
        // tells is the file's second content.
        let path = std::env::var_os(fixture::STUB_PROCS_FILE).unwrap();
        let first = &p.gpus[0].processes;
        assert_eq!(first.as_ref().map(|ps| ps.len()), Some(1), "{first:?}");
        std::fs::write(&path, "0:99:7\n1:100:8\n").unwrap();
        p = probe(&Roots::from_env());
    }
    if mode == "threads" {
        // Probes at once in one process (NVML init and shutdown are counted).
        let all: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| probe(&Roots::from_env())))
            .collect();
        for t in all {
            assert_eq!(t.join().unwrap().gpus, p.gpus);
        }
    }
    println!("PROBE-JSON {}", serde_json::to_string(&p).unwrap());
}

/// Probes `fx` in a child process whose dynamic loader finds the stand-in
/// NVML as `libnvidia-ml.so.1`, with extra environment `env`.
fn probe_in_child(fx: &Fixture, env: &[(&str, &str)]) -> Value {
    probe_in_child_mode(fx, env, "1")
}

fn probe_in_child_mode(fx: &Fixture, env: &[(&str, &str)], mode: &str) -> Value {
    let stub = fx.nvml_stub_dir().expect("building the NVML stand-in");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_probe", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env("LD_LIBRARY_PATH", &stub)
        .env_remove("JARVIS_NVML_LIB")
        .envs(fx.env())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PROBE-JSON ").map(|(_, j)| j))
        .unwrap_or_else(|| {
            panic!(
                "no probe from the child: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

#[test]
fn h200_through_the_nvml_stand_in() {
    let fx = Fixture::h200_host().unwrap();
    let p = probe_in_child(&fx, &[]);
    assert_eq!(
        p["gpus"],
        json!([{
            "vendor": "nvidia",
            "index": 0,
            "name": "NVIDIA H200",
            "uuid": "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25",
            "pci_bus_id": "00000000:00:06.0",
            "minor": 0,
            "memory_total_bytes": 150754820096u64,
            "memory_used_bytes": 0,
            "memory_free_bytes": 150109880320u64,
            "utilization_percent": 0,
            "busy_percent": null,
            "compute_capability": "9.0",
            "driver_version": "580.159.04",
            "cuda_version": "13.0",
            "processes": [],
            "source": "nvml",
            "render_node": null,
            "card": null,
            "kfd": null
        }])
    );
    assert_eq!(p["warnings"], json!([]));
}

#[test]
fn concurrent_probes_share_the_library() {
    let fx = Fixture::h200_host().unwrap();
    let p = probe_in_child_mode(&fx, &[(fixture::STUB_GPUS, "3")], "threads");
    assert_eq!(p["gpus"].as_array().unwrap().len(), 3);
}

#[test]
fn stand_in_knobs_give_two_gpus_with_different_free_memory() {
    let fx = Fixture::h200_host().unwrap();
    let p = probe_in_child(
        &fx,
        &[
            (fixture::STUB_GPUS, "2"),
            (fixture::STUB_FREE_MIB, "100000,2048"),
            (fixture::STUB_UTIL, "5,97"),
            (fixture::STUB_PROCS, "1:4242:140000,1:77:500"),
        ],
    );
    let g = p["gpus"].as_array().unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["memory_free_bytes"], 100000u64 << 20);
    assert_eq!(g[1]["memory_free_bytes"], 2048u64 << 20);
    let reserved = h200::MEMORY_TOTAL_BYTES - h200::MEMORY_FREE_BYTES;
    assert_eq!(
        g[1]["memory_used_bytes"],
        h200::MEMORY_TOTAL_BYTES - reserved - (2048u64 << 20)
    );
    assert_eq!(
        (g[0]["index"].clone(), g[1]["index"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(
        (g[0]["minor"].clone(), g[1]["minor"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(g[1]["uuid"], "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f26");
    assert_eq!(g[1]["pci_bus_id"], "00000000:00:07.0");
    assert_eq!(g[1]["utilization_percent"], 97);
    assert_eq!(g[0]["processes"], json!([]));
    assert_eq!(
        g[1]["processes"],
        json!([
            {"pid": 4242, "used_memory_bytes": 140000u64 << 20},
            {"pid": 77, "used_memory_bytes": 500u64 << 20}
        ])
    );
}

#[test]
fn stand_in_reads_its_process_list_file_at_each_call() {
    let fx = Fixture::h200_host().unwrap();
    let file = fx.write("procs", "0:4242:100").unwrap();
    let file = file.to_str().unwrap();
    // The file wins over the list in the environment.
    let p = probe_in_child_mode(
        &fx,
        &[
            (fixture::STUB_GPUS, "2"),
            (fixture::STUB_PROCS, "1:1:1"),
            (fixture::STUB_PROCS_FILE, file),
        ],
        "reread",
    );
    let g = p["gpus"].as_array().unwrap();
    assert_eq!(
        g[0]["processes"],
        json!([{"pid": 99, "used_memory_bytes": 7u64 << 20}])
    );
    assert_eq!(
        g[1]["processes"],
        json!([{"pid": 100, "used_memory_bytes": 8u64 << 20}])
    );
    // A missing file lists no process.
    let p = probe_in_child(&fx, &[(fixture::STUB_PROCS_FILE, "/nonexistent/procs")]);
    assert_eq!(p["gpus"][0]["processes"], json!([]));
}

#[test]
fn nvml_failing_to_start_falls_back_to_procfs_with_a_warning() {
    let fx = Fixture::h200_host().unwrap();
    let p = probe_in_child(&fx, &[(fixture::STUB_INIT_ERROR, "9")]);
    assert_eq!(p["gpus"][0]["source"], "procfs");
    assert_eq!(p["gpus"][0]["uuid"], h200::UUID);
    let w = p["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].as_str().unwrap().starts_with("nvml:"), "{w:?}");
}

#[test]
fn h200_through_procfs_without_nvml() {
    let fx = Fixture::h200_host().unwrap();
    let p = probe(&fx.roots_without_nvml());
    assert_eq!(
        serde_json::to_value(&p.gpus).unwrap(),
        json!([{
            "vendor": "nvidia",
            "index": 0,
            "name": "NVIDIA H200",
            "uuid": "GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25",
            "pci_bus_id": "0000:00:06.0",
            "minor": 0,
            "memory_total_bytes": null,
            "memory_used_bytes": null,
            "memory_free_bytes": null,
            "utilization_percent": null,
            "busy_percent": null,
            "compute_capability": null,
            "driver_version": "580.159.04",
            "cuda_version": null,
            "processes": null,
            "source": "procfs",
            "render_node": null,
            "card": null,
            "kfd": null
        }])
    );
    assert!(p.warnings.is_empty());
}

#[test]
fn missing_nvml_library_is_the_fallback_not_an_error() {
    let fx = Fixture::h200_host().unwrap();
    let mut roots = fx.roots();
    roots.nvml_lib = Some("libnvidia-ml-that-is-not-there.so.1".into());
    let p = probe(&roots);
    assert_eq!(p.gpus.len(), 1);
    assert_eq!(p.gpus[0].source, GpuSource::Procfs);
    assert!(p.warnings.is_empty());
    // No driver and no library: nothing, and no error either.
    let empty = Fixture::new().unwrap();
    let mut roots = empty.roots();
    roots.nvml_lib = Some("libnvidia-ml-that-is-not-there.so.1".into());
    assert!(probe(&roots).gpus.is_empty());
}

#[test]
fn pci_only_nvidia_gpu_is_named_by_its_pci_id() {
    let mut fx = Fixture::new().unwrap();
    fx.add_h200().unwrap();
    // A second GPU the driver did not take: PCI sysfs only.
    std::fs::remove_dir_all(fx.join("proc/driver/nvidia/gpus")).unwrap();
    fx.write("sys/devices/pci0000:00/0000:00:07.0/vendor", "0x10de\n")
        .unwrap();
    fx.write("sys/devices/pci0000:00/0000:00:07.0/device", "0x2335\n")
        .unwrap();
    fx.write("sys/devices/pci0000:00/0000:00:07.0/class", "0x030200\n")
        .unwrap();
    fx.symlink(
        "sys/bus/pci/devices/0000:00:07.0",
        "sys/devices/pci0000:00/0000:00:07.0",
    )
    .unwrap();
    // An NVIDIA audio function is no GPU.
    fx.write("sys/devices/pci0000:00/0000:00:07.1/vendor", "0x10de\n")
        .unwrap();
    fx.write("sys/devices/pci0000:00/0000:00:07.1/class", "0x040300\n")
        .unwrap();
    fx.symlink(
        "sys/bus/pci/devices/0000:00:07.1",
        "sys/devices/pci0000:00/0000:00:07.1",
    )
    .unwrap();
    let gpus = probe(&fx.roots_without_nvml()).gpus;
    let names: Vec<_> = gpus
        .iter()
        .map(|g| (g.name.as_str(), g.pci_bus_id.as_str(), g.index))
        .collect();
    assert_eq!(
        names,
        [
            ("10de:2335", "0000:00:06.0", Some(0)),
            ("10de:2335", "0000:00:07.0", Some(1))
        ]
    );
    assert!(gpus
        .iter()
        .all(|g| g.source == GpuSource::Sysfs && g.uuid.is_none()));
}

#[test]
fn nvidia_nodes_have_the_hosts_numbers() {
    let fx = Fixture::h200_host().unwrap();
    let nodes = nvidia_device_nodes(&fx.roots(), &[0]).unwrap();
    let got: Vec<_> = nodes
        .iter()
        .map(|n| {
            (
                n.path.to_str().unwrap(),
                n.major,
                n.minor,
                n.kind,
                n.file_mode,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/dev/nvidiactl", 195, 255, DeviceKind::Char, Some(0o666)),
            ("/dev/nvidia-uvm", 238, 0, DeviceKind::Char, Some(0o666)),
            (
                "/dev/nvidia-uvm-tools",
                238,
                1,
                DeviceKind::Char,
                Some(0o666)
            ),
            ("/dev/nvidia0", 195, 0, DeviceKind::Char, Some(0o666)),
        ]
    );
    assert_eq!(nodes[0].host_path, fx.join("dev/nvidiactl"));
    assert!(nodes.iter().all(|n| n.on_host()));

    // The uvm majors are dynamic: another host, another number, read not assumed.
    let fx = Fixture::h200_host().unwrap();
    fx.mknod_char("nvidia-uvm", 511, 0, 0o666, 0).unwrap();
    fx.mknod_char("nvidia-modeset", 195, 254, 0o666, 0).unwrap();
    let nodes = nvidia_device_nodes(&fx.roots(), &[0]).unwrap();
    assert_eq!(
        (nodes[1].path.to_str().unwrap(), nodes[1].major),
        ("/dev/nvidia-uvm", 511)
    );
    assert_eq!(
        (nodes[3].path.to_str().unwrap(), nodes[3].minor),
        ("/dev/nvidia-modeset", 254)
    );

    // Not created yet (nvidia-modprobe makes it on first use): from /proc/devices.
    std::fs::remove_file(fx.join("dev/nvidia-uvm")).unwrap();
    let nodes = nvidia_device_nodes(&fx.roots(), &[0]).unwrap();
    assert_eq!(
        (nodes[1].major, nodes[1].minor, nodes[1].on_host()),
        (238, 0, false)
    );

    // A GPU minor with no node and no driver major: an error naming the path.
    let empty = Fixture::new().unwrap();
    match nvidia_device_nodes(&empty.roots(), &[0]) {
        Err(Error::NvidiaNodeMissing { path, .. }) => assert_eq!(path, empty.join("dev/nvidiactl")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nvidia_driver_files_follow_the_fixture_convention() {
    let fx = Fixture::h200_host().unwrap();
    let files = nvidia_driver_files(&fx.roots());
    let rel: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(fx.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for want in [
        "usr/local/nvidia/lib64/libcuda.so.1",
        "usr/local/nvidia/lib64/libcuda.so.580.159.04",
        "usr/local/nvidia/lib64/libnvidia-ml.so.1",
        "usr/local/nvidia/lib64/libnvidia-ptxjitcompiler.so.1",
        "usr/local/nvidia/lib64/libGLX_nvidia.so.0",
        "usr/local/nvidia/bin/nvidia-smi",
    ] {
        assert!(rel.iter().any(|r| r == want), "{want} not in {rel:?}");
    }
    assert!(!rel.iter().any(|r| r.contains("cudart")), "{rel:?}");
    let mut dedup = rel.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), rel.len());
    assert!(nvidia_driver_files(&Fixture::new().unwrap().roots()).is_empty());
}

#[test]
fn ldconfig_lines_of_the_capture() {
    use jarvis_hardware::driver_files::{is_nvidia_driver_lib, parse_ldconfig};
    let e = parse_ldconfig(h200::LDCONFIG_P);
    assert_eq!(e.len(), 18);
    assert_eq!(e[4].name, "libnvidia-ml.so.1");
    assert_eq!(e[4].flags, "libc6,x86-64");
    assert_eq!(
        e[4].path,
        Path::new("/usr/local/nvidia/lib64/libnvidia-ml.so.1")
    );
    let driver: Vec<_> = e.iter().filter(|e| is_nvidia_driver_lib(&e.name)).collect();
    assert_eq!(driver.len(), 16, "all but libcudart");
}

#[test]
fn amd_card_from_sysfs() {
    let fx = Fixture::amd_host().unwrap();
    let p = probe(&fx.roots_without_nvml());
    assert_eq!(
        serde_json::to_value(&p.gpus).unwrap(),
        json!([{
            "vendor": "amd",
            "index": null,
            "name": "1002:744c",
            "uuid": null,
            "pci_bus_id": "0000:03:00.0",
            "minor": null,
            "memory_total_bytes": 25753026560u64,
            "memory_used_bytes": 1073741824u64,
            "memory_free_bytes": 25753026560u64 - 1073741824u64,
            "utilization_percent": null,
            "busy_percent": 3,
            "compute_capability": null,
            "driver_version": null,
            "cuda_version": null,
            "processes": null,
            "source": "sysfs",
            "render_node": "/dev/dri/renderD128",
            "card": "/dev/dri/card0",
            "kfd": true
        }])
    );

    // product_name wins; a second card pairs with its own render node.
    let mut fx = Fixture::amd_host().unwrap();
    fx.add_amd_gpu(&AmdGpuSpec {
        pci_address: "0000:0c:00.0".into(),
        product_name: Some("AMD Instinct MI210".into()),
        card: 1,
        render: 129,
        ..AmdGpuSpec::rx7900xtx()
    })
    .unwrap();
    let gpus = probe(&fx.roots_without_nvml()).gpus;
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[1].name, "AMD Instinct MI210");
    assert_eq!(gpus[1].render_node.as_deref(), Some("/dev/dri/renderD129"));
    assert_eq!(gpus[1].card.as_deref(), Some("/dev/dri/card1"));
    assert_eq!(gpus[0].render_node.as_deref(), Some("/dev/dri/renderD128"));
}

#[test]
fn amd_nodes_and_groups() {
    let fx = Fixture::amd_host().unwrap();
    let a = amd_device_nodes(&fx.roots(), &["0000:03:00.0"]).unwrap();
    let got: Vec<_> = a
        .nodes
        .iter()
        .map(|n| (n.path.to_str().unwrap(), n.major, n.minor, n.gid))
        .collect();
    assert_eq!(
        got,
        [
            ("/dev/kfd", fixture::MAJOR_KFD, 0, Some(fixture::GID_RENDER)),
            ("/dev/dri/renderD128", 226, 128, Some(fixture::GID_RENDER)),
            ("/dev/dri/card0", 226, 0, Some(fixture::GID_VIDEO)),
        ]
    );
    assert_eq!((a.video_gid, a.render_gid), (Some(44), Some(993)));
    assert!(matches!(
        amd_device_nodes(&fx.roots(), &["0000:09:00.0"]),
        Err(Error::GpuNotFound { .. })
    ));
    // Without GPUs asked for, the gids still come from /etc/group.
    let a = amd_device_nodes(&fx.roots(), &[]).unwrap();
    assert_eq!(
        (a.nodes.len(), a.video_gid, a.render_gid),
        (1, Some(44), Some(993))
    );
}

const NVIDIA_CDI_YAML: &str = r#"---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: GPU-4aab4a36-5ccd-78a2-8824-50b743cc1f25
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidia-uvm
  - path: /dev/nvidia-uvm-tools
  - path: /dev/nvidiactl
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args:
    - nvidia-cdi-hook
    - update-ldcache
    - --folder
    - /usr/local/nvidia/lib64
  mounts:
  - hostPath: /usr/local/nvidia/lib64/libcuda.so.580.159.04
    containerPath: /usr/local/nvidia/lib64/libcuda.so.580.159.04
    options:
    - ro
    - nosuid
    - nodev
    - bind
"#;

#[test]
fn cdi_spec_yaml_and_json() {
    let fx = Fixture::h200_host().unwrap();
    assert_eq!(cdi_spec(&fx.roots(), Vendor::Nvidia, &["0"]).unwrap(), None);
    fx.add_cdi_spec("etc/cdi", "nvidia.yaml", NVIDIA_CDI_YAML)
        .unwrap();
    fx.add_cdi_spec("etc/cdi", "broken.yaml", "kind: [")
        .unwrap();
    let s = cdi_spec(&fx.roots(), Vendor::Nvidia, &[h200::UUID])
        .unwrap()
        .unwrap();
    assert_eq!(s.kind, "nvidia.com/gpu");
    assert_eq!(s.files, [fx.join("etc/cdi/nvidia.yaml")]);
    let nodes: Vec<_> = s
        .device_nodes
        .iter()
        .map(|n| n.path.to_str().unwrap())
        .collect();
    assert_eq!(
        nodes,
        [
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools",
            "/dev/nvidiactl",
            "/dev/nvidia0"
        ]
    );
    assert_eq!(s.env, ["NVIDIA_VISIBLE_DEVICES=void"]);
    assert_eq!(s.mounts.len(), 1);
    assert_eq!(s.mounts[0].options, ["ro", "nosuid", "nodev", "bind"]);
    assert_eq!(s.hooks[0].hook_name, "createContainer");
    assert!(cdi_spec(&fx.roots(), Vendor::Amd, &["0"])
        .unwrap()
        .is_none());
    match cdi_spec(&fx.roots(), Vendor::Nvidia, &["7"]) {
        Err(Error::CdiDeviceNotFound { device, .. }) => assert_eq!(device, "7"),
        other => panic!("{other:?}"),
    }

    // /var/run/cdi wins over /etc/cdi; JSON works as well.
    let json_spec = json!({
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0", "major": 195, "minor": 0, "type": "c"}]}}],
        "containerEdits": {"env": ["FROM=run"]}
    });
    fx.add_cdi_spec("var/run/cdi", "nvidia.json", &json_spec.to_string())
        .unwrap();
    let s = cdi_spec(&fx.roots(), Vendor::Nvidia, &["0"])
        .unwrap()
        .unwrap();
    assert_eq!(s.files, [fx.join("var/run/cdi/nvidia.json")]);
    assert_eq!(s.env, ["FROM=run"]);
    assert_eq!(s.device_nodes[0].major, Some(195));
    assert_eq!(s.device_nodes[0].kind.as_deref(), Some("c"));
}

/// The fixture's H200 facts match the capture in shared/, where it is
/// reachable (beside the checkout). The capture is not part of the
/// repository and nothing installs it, so its absence is a skip, said in the
/// output, under CI too.
#[test]
fn fixture_matches_the_shared_capture() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/gpu/nvidia-h200");
    let Ok(probe_txt) = std::fs::read_to_string(dir.join("host-probe.txt")) else {
        skip(false, &format!("no shared capture at {}", dir.display()));
        return;
    };
    for line in h200::PROC_INFORMATION.lines() {
        assert!(probe_txt.contains(line), "{line:?} not in the capture");
    }
    assert!(probe_txt.contains(h200::PROC_VERSION.lines().next().unwrap()));
    for line in h200::LDCONFIG_P.lines() {
        assert!(probe_txt.contains(line), "{line:?} not in the capture");
    }
    for (node, major, minor) in [
        ("nvidia0", 195, 0),
        ("nvidiactl", 195, 255),
        ("nvidia-uvm", 238, 0),
        ("nvidia-uvm-tools", 238, 1),
    ] {
        let want = format!("{major}, {minor:>3} Nov 26 00:01 /dev/{node}");
        assert!(probe_txt.contains(&want), "{want:?} not in the capture");
    }
    assert!(probe_txt.contains(&format!(
        "mem=Ok(({}, 0, {}))",
        h200::MEMORY_TOTAL_BYTES,
        h200::MEMORY_FREE_BYTES
    )));
    let xml = std::fs::read_to_string(dir.join("nvidia-smi-q.xml")).unwrap();
    assert!(xml.contains(&format!("<uuid>{}</uuid>", h200::UUID)));
    assert!(xml.contains(&format!("<pci_bus_id>{}</pci_bus_id>", h200::NVML_BUS_ID)));
    assert!(xml.contains("<total>143771 MiB</total>"));
    assert!(xml.contains(&format!(
        "<driver_version>{}</driver_version>",
        h200::DRIVER_VERSION
    )));
    assert!(xml.contains(&format!(
        "<cuda_version>{}</cuda_version>",
        h200::CUDA_VERSION
    )));
    assert!(xml.contains(&format!("<product_name>{}</product_name>", h200::NAME)));
}

/// Says that the calling test cannot run, and why: `SKIPPED: <test>:
/// <reason>` written straight to stderr, which the test runner does not
/// capture, so it shows in its output. A prerequisite CI provides
/// (`ci_provides`) panics instead under `CI=true`, where a skip would hide a
/// broken setup. The caller then returns.
fn skip(ci_provides: bool, reason: &str) {
    use std::io::Write as _;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(
        !(ci_provides && ci),
        "{test}: {reason}; CI provides this, so it must not be skipped there"
    );
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {reason}");
}
