//! The probe's JSON: the pinned field names and formats, whole-object
//! snapshots for the CPU and the top level.

use jarvis_hardware::fixture::{AmdGpuSpec, Fixture, UsbSpec};
use jarvis_hardware::{probe, Roots};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[test]
fn probe_json_shape() {
    let mut fx = Fixture::h200_host().unwrap();
    fx.add_amd_gpu(&AmdGpuSpec::rx7900xtx()).unwrap();
    fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
    let v = serde_json::to_value(probe(&fx.roots_without_nvml())).unwrap();
    assert_eq!(keys(&v), ["cpu", "gpus", "usb", "warnings"]);

    let gpu_keys = [
        "busy_percent",
        "card",
        "compute_capability",
        "cuda_version",
        "driver_version",
        "index",
        "kfd",
        "memory_free_bytes",
        "memory_total_bytes",
        "memory_used_bytes",
        "minor",
        "name",
        "pci_bus_id",
        "processes",
        "render_node",
        "source",
        "utilization_percent",
        "uuid",
        "vendor",
    ];
    let gpus = v["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2);
    for g in gpus {
        assert_eq!(keys(g), gpu_keys);
    }
    assert_eq!(
        (gpus[0]["vendor"].as_str(), gpus[1]["vendor"].as_str()),
        (Some("nvidia"), Some("amd"))
    );

    let mut cpu = v["cpu"].clone();
    let flags = cpu.as_object_mut().unwrap().remove("flags").unwrap();
    assert_eq!(
        cpu,
        json!({
            "model": "Intel(R) Xeon(R) Platinum 8480+",
            "vendor": "GenuineIntel",
            "sockets": 1,
            "cores": 2,
            "threads": 4,
            "avx2": true,
            "avx512f": true,
            "avx512_vnni": true,
            "amx": true,
            "memory_total_bytes": 131891904u64 * 1024
        })
    );
    let flags: Vec<&str> = flags
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(flags.first(), Some(&"fpu"));
    for f in [
        "avx2",
        "avx512f",
        "avx512_vnni",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ] {
        assert!(flags.contains(&f), "{f}");
    }

    let usb = &v["usb"][0];
    assert_eq!(
        keys(usb),
        [
            "bus_path",
            "busnum",
            "by_id",
            "devnum",
            "drivers",
            "manufacturer",
            "nodes",
            "product",
            "product_id",
            "serial",
            "vendor_id"
        ]
    );
    assert_eq!(usb["vendor_id"], "10c4");
    assert_eq!(usb["product_id"], "ea60");
    assert_eq!(usb["nodes"], json!(["/dev/ttyUSB0"]));
}

#[test]
fn a_cpu_without_avx512_or_amx() {
    let fx = Fixture::new().unwrap();
    fx.write(
        "proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 7 5800X 8-Core Processor\nphysical id\t: 0\ncore id\t\t: 0\ncpu cores\t: 8\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n",
    )
    .unwrap();
    let c = probe(&fx.roots_without_nvml()).cpu;
    assert_eq!((c.threads, c.cores, c.sockets), (2, 2, 1));
    assert!(c.avx2 && !c.avx512f && !c.avx512_vnni && !c.amx);
    assert_eq!(c.memory_total_bytes, None);
}

#[test]
fn this_machine_probes_without_error() {
    let roots = Roots {
        nvml_lib: None,
        ..Roots::default()
    };
    let p = probe(&roots);
    assert!(p.cpu.threads >= 1);
    let _ = serde_json::to_string(&p).unwrap();
}
