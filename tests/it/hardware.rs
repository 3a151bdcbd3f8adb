//! GPUs and USB dongles end to end, on fixture trees (an H200 host from the
//! shared capture, USB dongles with real `mknod` nodes) that jarvisd reads
//! through JARVIS_SYSFS_ROOT / JARVIS_PROC_ROOT / JARVIS_DEV_ROOT /
//! JARVIS_HOST_ROOT, with a stand-in NVML on LD_LIBRARY_PATH. Unplug and
//! replug move the fixture's entries and then make the kernel send a real
//! uevent, which is what wakes jarvisd.

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use jarvis_hardware::fixture::{self, Fixture, UsbSpec};

use crate::harness::*;

/// jarvisd's environment for `fx`: its roots, and the stand-in NVML with
/// `gpus` GPUs of `total_mib` each.
fn env(fx: &Fixture, gpus: u32, total_mib: u64) -> Vec<(OsString, OsString)> {
    nvml_env(fx, gpus, Some(total_mib), None)
}

fn environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn has_env(pid: i32, kv: &str) -> bool {
    environ(pid).iter().any(|e| e == kv)
}

/// Makes the kernel send a real uevent (a tty "change"): jarvisd rescans.
fn kick() {
    std::fs::write("/sys/class/tty/tty1/uevent", "change").expect("trigger a uevent");
}

#[test]
fn probe_reports_fixture_hardware_as_pinned() {
    if !root() {
        return;
    }
    let mut fx = Fixture::h200_host().unwrap();
    fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
    let out = std::process::Command::new(&*JARVISCTL)
        .args(["probe", "--json"])
        .envs(env(&fx, 1, 143_771))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gpu = &p["gpus"][0];
    assert_eq!(gpu["vendor"], "nvidia");
    assert_eq!(gpu["name"], "NVIDIA H200");
    assert_eq!(gpu["uuid"], fixture::h200::UUID);
    assert_eq!(gpu["memory_total_bytes"], 143_771u64 << 20);
    assert!(gpu["pci_bus_id"].as_str().unwrap().ends_with("00:06.0"));
    assert!(p["cpu"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "avx512f"));
    let usb = p["usb"].as_array().unwrap();
    let sonoff = usb
        .iter()
        .find(|u| u["vendor_id"] == "10c4")
        .expect("the dongle");
    assert_eq!(sonoff["product_id"], "ea60");
    assert!(sonoff["serial"].is_string());
    assert_eq!(sonoff["nodes"], serde_json::json!(["/dev/ttyUSB0"]));
}

#[test]
fn gpu_units_are_pinned_budgeted_or_sent_to_the_cpu() {
    if !root() {
        return;
    }
    let fx = Fixture::h200_host().unwrap();
    // One 140 GiB GPU: two units that each want 100G cannot both have it.
    let big = |want: &str| {
        format!(
            "[native]\ncommand = [\"sleep\", \"1000\"]\n[gpu]\nwant = \"{want}\"\nmin_vram = \"100G\"\n"
        )
    };
    let j = Jarvis::start_full(
        &[
            ("first", &big("nvidia")),
            ("small", "[native]\ncommand = [\"sleep\", \"1000\"]\n[gpu]\nwant = \"auto\"\nmin_vram = \"60G\"\n"),
        ],
        &[],
        env(&fx, 1, 143_771),
    );
    let first = j.running("first");
    let pid = first["pid"].as_i64().unwrap() as i32;
    assert!(
        has_env(
            pid,
            &format!("CUDA_VISIBLE_DEVICES={}", fixture::h200::UUID)
        ),
        "{:?}",
        environ(pid)
    );
    assert!(has_env(pid, "CUDA_DEVICE_ORDER=PCI_BUS_ID"));
    assert_eq!(
        first["placement"],
        serde_json::json!({"device": "gpu", "gpus": [fixture::h200::UUID]})
    );
    // auto, and 60G do not fit beside the 100G promised: the CPU, with every
    // GPU hidden.
    let small = j.running("small");
    let spid = small["pid"].as_i64().unwrap() as i32;
    assert_eq!(small["placement"], serde_json::json!({"device": "cpu"}));
    assert!(
        has_env(spid, "CUDA_VISIBLE_DEVICES=-1"),
        "{:?}",
        environ(spid)
    );
    assert!(has_env(spid, "HIP_VISIBLE_DEVICES=-1"));

    // A second nvidia unit wanting 100G waits, saying why.
    j.write_unit("second", &big("nvidia"));
    j.ok(&["up"]);
    let second = j.wait_unit("second", Duration::from_secs(10), |u| {
        u["state"] == "waiting"
    });
    let reason = second["reason"].as_str().unwrap();
    assert!(reason.contains("promised to first"), "{reason}");
    assert!(second["placement"].is_null());
    // Once the first stops, its promise is released and the second runs.
    j.ok(&["stop", "first"]);
    let second = j.running("second");
    assert_eq!(second["placement"]["gpus"][0], fixture::h200::UUID);
}

#[test]
fn a_gpu_container_gets_the_nodes_libraries_and_environment() {
    if !root() {
        return;
    }
    let fx = Fixture::h200_host().unwrap();
    fx.add_nvidia_driver_files().unwrap();
    let unit = r#"
[container]
image = "busybox:local"
network = "none"
command = ["sh", "-c", "ls -l /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm; ls /usr/local/nvidia/lib64; echo cvd=$CUDA_VISIBLE_DEVICES; echo done; sleep 1000"]
[gpu]
want = "nvidia"
min_vram = "1G"
[stop]
timeout = "1s"
"#;
    let j = Jarvis::start_full(&[], &[], env(&fx, 1, 143_771));
    j.import_busybox("busybox:local");
    j.write_unit("cuda", unit);
    j.ok(&["up"]);
    let u = j.running("cuda");
    let log = crate::containers::wait_log(&j, "cuda", "done");
    // The majors are the host's (the fixture's), not assumed.
    assert!(
        log.contains(&format!("{}, 0 ", fixture::h200::MAJOR_NVIDIA))
            || log.contains(&format!("{},   0", fixture::h200::MAJOR_NVIDIA)),
        "{log}"
    );
    assert!(
        log.contains(&format!("{}, 255", fixture::h200::MAJOR_NVIDIA)),
        "{log}"
    );
    assert!(
        log.contains(&format!("{},   0", fixture::h200::MAJOR_UVM))
            || log.contains(&format!("{}, 0", fixture::h200::MAJOR_UVM)),
        "{log}"
    );
    assert!(log.contains("libcuda.so.1"), "{log}");
    assert!(
        log.contains(&format!("cvd={}", fixture::h200::UUID)),
        "{log}"
    );
    let devices = j.read_cgroup("devices", "cuda", "devices.list");
    assert!(
        devices.contains(&format!("c {}:0 rwm", fixture::h200::MAJOR_NVIDIA)),
        "{devices}"
    );
    assert!(
        devices.contains(&format!("c {}:255 rwm", fixture::h200::MAJOR_NVIDIA)),
        "{devices}"
    );
    assert_eq!(u["placement"]["device"], "gpu");
}

#[test]
fn a_dongle_follows_unplug_and_replug_to_the_same_path() {
    if !root() {
        return;
    }
    let mut fx = Fixture::new().unwrap();
    fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
    fx.add_usb(&UsbSpec::twin(0)).unwrap();
    fx.add_usb(&UsbSpec::twin(1)).unwrap();
    let sonoff = UsbSpec::sonoff_zbdongle_p();
    let zigbee = r#"
[native]
command = ["sh", "-c", "echo node=$JARVIS_DEVICE_ZIGBEE; sleep 1000"]
user = "nobody"
[[device]]
usb = "10c4:EA60"
as = "/dev/zigbee"
[stop]
timeout = "1s"
"#;
    let twin = format!(
        "[native]\ncommand = [\"sleep\", \"1000\"]\n[[device]]\nusb = \"0403:6001\"\nserial = \"{}\"\nas = \"/dev/zwave\"\n",
        UsbSpec::TWIN_SERIALS[1]
    );
    let j = Jarvis::start_full(&[("z2m", zigbee), ("zwave", &twin)], &[], env(&fx, 0, 0));
    let u = j.running("z2m");
    let pid = u["pid"].as_i64().unwrap() as i32;
    assert!(
        has_env(pid, "JARVIS_DEVICE_ZIGBEE=/dev/ttyUSB0"),
        "{:?}",
        environ(pid)
    );
    let link = fx.join("dev/zigbee");
    assert_eq!(std::fs::read_link(&link).unwrap(), fx.join("dev/ttyUSB0"));
    // The dongle's group (dialout) lets the non-root unit open it.
    let groups = proc_status(pid, "Groups");
    assert!(
        groups
            .split_whitespace()
            .any(|g| g == fixture::GID_DIALOUT.to_string()),
        "{groups}"
    );
    // The twin with the second serial, not the first.
    let zw = j.running("zwave")["pid"].as_i64().unwrap() as i32;
    let twin_node = environ(zw)
        .into_iter()
        .find_map(|e| e.strip_prefix("JARVIS_DEVICE_ZWAVE=").map(str::to_string))
        .unwrap();
    assert_eq!(twin_node, UsbSpec::twin(1).node.dev_path().unwrap());

    // Unplug: the unit stops and waits, saying for what.
    let mut gone = fx.unplug(&sonoff.bus_path).unwrap();
    kick();
    let u = j.wait_unit("z2m", Duration::from_secs(10), |u| u["state"] == "waiting");
    assert!(u["reason"].as_str().unwrap().contains("10c4:ea60"), "{u:#}");
    assert!(!alive(pid));
    // Replug under another number: back, with the device at the same path.
    gone.node = gone.node.renumbered(3);
    gone.devnum += 10;
    fx.add_usb(&gone).unwrap();
    kick();
    let u = j.wait_unit("z2m", Duration::from_secs(10), |u| u["state"] == "running");
    let pid = u["pid"].as_i64().unwrap() as i32;
    assert!(
        has_env(pid, "JARVIS_DEVICE_ZIGBEE=/dev/ttyUSB3"),
        "{:?}",
        environ(pid)
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), fx.join("dev/ttyUSB3"));
    assert_eq!(u["restarts"], 0, "a device coming and going is no crash");
}

#[test]
fn a_container_sees_its_dongle_at_the_as_path() {
    if !root() {
        return;
    }
    let mut fx = Fixture::new().unwrap();
    fx.add_usb(&UsbSpec::conbee_ii()).unwrap();
    let j = Jarvis::start_full(&[], &[], env(&fx, 0, 0));
    j.import_busybox("busybox:local");
    j.write_unit(
        "ha",
        r#"
[container]
image = "busybox:local"
network = "none"
command = ["sh", "-c", "ls -l /dev/conbee; echo done; sleep 1000"]
[[device]]
usb = "1cf1:0030"
as = "/dev/conbee"
[stop]
timeout = "1s"
"#,
    );
    j.ok(&["up"]);
    j.running("ha");
    let log = crate::containers::wait_log(&j, "ha", "done");
    let line = log
        .lines()
        .find(|l| l.contains("/dev/conbee") && !l.starts_with("[jarvis"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.starts_with('c'), "a character device: {line}");
    assert!(
        line.contains(&format!("{},", fixture::MAJOR_TTYACM)),
        "{line}"
    );
    let devices = j.read_cgroup("devices", "ha", "devices.list");
    assert!(
        devices.contains(&format!("c {}:0 rwm", fixture::MAJOR_TTYACM)),
        "{devices}"
    );
    // A required device that is not there holds a unit back.
    j.write_unit(
        "missing",
        "[native]\ncommand = [\"sleep\", \"1000\"]\n[[device]]\nusb = \"dead:beef\"\nas = \"/dev/nothing\"\n",
    );
    j.ok(&["up"]);
    let u = j.wait_unit("missing", Duration::from_secs(10), |u| {
        u["state"] == "waiting"
    });
    assert!(u["reason"].as_str().unwrap().contains("dead:beef"), "{u:#}");
    assert!(Path::new(&fx.join("dev/ttyACM0"))
        .metadata()
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn an_amd_unit_is_pinned_by_index() {
    if !root() {
        return;
    }
    let fx = Fixture::amd_host().unwrap();
    let j = Jarvis::start_full(
        &[(
            "sd",
            "[native]\ncommand = [\"sleep\", \"1000\"]\n[gpu]\nwant = \"amd\"\nmin_vram = \"8G\"\n",
        )],
        &[],
        env(&fx, 0, 0),
    );
    let u = j.running("sd");
    let pid = u["pid"].as_i64().unwrap() as i32;
    assert!(has_env(pid, "HIP_VISIBLE_DEVICES=0"), "{:?}", environ(pid));
    assert!(has_env(pid, "ROCR_VISIBLE_DEVICES=0"));
    assert!(
        has_env(pid, "CUDA_VISIBLE_DEVICES=-1"),
        "no NVIDIA half-use"
    );
    assert_eq!(u["placement"]["device"], "gpu");
    let id = u["placement"]["gpus"][0].as_str().unwrap();
    assert!(id.contains(':'), "AMD GPUs are named by PCI address: {id}");
}

/// Polls `status --json` until `pred` holds for `name`, for at most `limit`;
/// how long it took (`None`: it never held) and the last status.
fn time_until(
    j: &Jarvis,
    name: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> (Option<Duration>, serde_json::Value) {
    let t0 = std::time::Instant::now();
    loop {
        let u = j.unit(name);
        if pred(&u) {
            return (Some(t0.elapsed()), u);
        }
        if t0.elapsed() > limit {
            return (None, u);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes the kernel send uevents without pause (a tty "change" every
/// `every`) until the returned guard is dropped, as a hub full of devices,
/// `udevadm trigger` or other programs poking `uevent` files do: every
/// daemon on the machine receives each one.
fn uevent_storm(every: Duration) -> impl Drop {
    struct Storm(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        Option<std::thread::JoinHandle<u64>>,
    );
    impl Drop for Storm {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(t) = self.1.take() {
                let n = t.join().unwrap();
                eprintln!("uevent storm: {n} events");
            }
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            // Bounded, should the guard never be dropped.
            let end = std::time::Instant::now() + Duration::from_secs(180);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < end
            {
                kick();
                n += 1;
                std::thread::sleep(every);
            }
            n
        }
    });
    Storm(stop, Some(thread))
}

/// Unplugs and replugs a dongle `rounds` times; each unplug must stop the
/// unit (state `waiting`) within a second of the uevent, and each replug
/// start it again (a new pid) within 5 s (a start takes a spawn, slow on a
/// loaded machine; a replug not seen at all is not seen in 15 s). Says the
/// worst of each.
///
/// `spares` more units wait for dongles that are not plugged in, as on a
/// host where some are away: each rescan looks for theirs too.
fn unplug_and_replug(rounds: u32, storm: Option<Duration>, spares: usize) {
    let limit = Duration::from_secs(1);
    let replug_limit = Duration::from_secs(5);
    let mut fx = Fixture::new().unwrap();
    let sonoff = UsbSpec::sonoff_zbdongle_p();
    fx.add_usb(&sonoff).unwrap();
    let unit = r#"
[native]
command = ["sleep", "1000"]
[[device]]
usb = "10c4:EA60"
as = "/dev/zigbee"
[stop]
timeout = "1s"
# Every replug is a start: more than the default burst of 5 in 10 s.
[restart]
burst = 1000
"#;
    let spares: Vec<(String, String)> = (0..spares)
        .map(|i| {
            (
                format!("spare{i}"),
                format!(
                    "[native]\ncommand = [\"sleep\", \"1000\"]\n[[device]]\nusb = \"dead:{i:04x}\"\nas = \"/dev/spare{i}\"\n"
                ),
            )
        })
        .collect();
    let mut units = vec![("z2m", unit)];
    units.extend(spares.iter().map(|(n, u)| (n.as_str(), u.as_str())));
    let j = Jarvis::start_full(&units, &[], env(&fx, 0, 0));
    let mut pid = j.running("z2m")["pid"].as_i64().unwrap();
    let storm = storm.map(uevent_storm);
    let (mut worst_unplug, mut worst_replug) = (Duration::ZERO, Duration::ZERO);
    let mut late = Vec::new();
    for round in 0..rounds {
        let mut gone = fx.unplug(&sonoff.bus_path).unwrap();
        kick();
        // A late one is timed on (up to 15 s) to say how late it came.
        let (took, u) = time_until(&j, "z2m", Duration::from_secs(15), |u| {
            u["state"] == "waiting"
        });
        let Some(took) = took else {
            panic!(
                "round {round}: unplug not seen within 15 s: {u:#}\njarvisd:\n{}",
                j.daemon_log()
            );
        };
        if took > limit {
            late.push(format!("round {round}: unplug seen after {took:?}"));
        }
        worst_unplug = worst_unplug.max(took);
        assert!(u["reason"].as_str().unwrap().contains("10c4:ea60"), "{u:#}");
        assert!(
            !alive(pid as i32),
            "round {round}: the unit's process lives on"
        );

        // Back, every other time under another number.
        gone.node = gone.node.renumbered(if round % 2 == 0 { 3 } else { 0 });
        gone.devnum += 1;
        fx.add_usb(&gone).unwrap();
        kick();
        let (took, u) = time_until(&j, "z2m", Duration::from_secs(15), |u| {
            u["state"] == "running" && u["pid"].is_number() && u["pid"].as_i64() != Some(pid)
        });
        let Some(took) = took else {
            panic!(
                "round {round}: replug not seen within 15 s: {u:#}\njarvisd:\n{}",
                j.daemon_log()
            );
        };
        if took > replug_limit {
            late.push(format!("round {round}: replug seen after {took:?}"));
        }
        worst_replug = worst_replug.max(took);
        pid = u["pid"].as_i64().unwrap();
        assert_eq!(u["restarts"], 0, "a device coming and going is no crash");
    }
    drop(storm);
    eprintln!("{rounds} rounds: worst unplug {worst_unplug:?}, worst replug {worst_replug:?}");
    // The daemon's log is long after a storm: its last lines say enough.
    let log = j.daemon_log();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    assert!(
        late.is_empty(),
        "{late:#?}\njarvisd (last lines):\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// Every unplug stops the unit within a second of the kernel's uevent, and
/// every replug starts it again, over many rounds and whatever events the
/// other tests make the kernel send meanwhile.
#[test]
fn every_unplug_and_replug_is_seen_within_a_second() {
    if !root() {
        return;
    }
    unplug_and_replug(30, None, 0);
}

/// The same while the kernel sends a uevent every half millisecond, with six
/// more units waiting for dongles: jarvisd must not fall behind, one rescan
/// per event, until an unplug waits its turn for seconds.
#[test]
fn an_unplug_is_seen_within_a_second_during_a_uevent_storm() {
    if !root() {
        return;
    }
    unplug_and_replug(20, Some(Duration::from_micros(500)), 6);
}
