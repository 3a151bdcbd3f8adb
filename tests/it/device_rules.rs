//! `[container] device_cgroup_rules` end to end: a real container whose
//! device cgroup decides whether a node can be made (`m`) and opened (`r`).
//!
//! The node is `/dev/net/tun`'s (c 10:200: opening it needs no capability),
//! made with `mknod` in the container's `/dev` (the only place a container
//! can open a node: the root filesystem and volumes are `nodev`). The
//! default rules allow neither; CAP_MKNOD is added so that only the device
//! cgroup can refuse.

use crate::containers::wait_log;
use crate::harness::*;

fn unit(rules: &str) -> String {
    format!(
        r#"
[container]
image = "busybox:local"
network = "none"
cap_add = ["MKNOD"]
{rules}
command = ["sh", "-c", "busybox mknod /dev/jtun c 10 200; echo mknod=$?; (: </dev/jtun); echo open=$?; echo done; sleep 1000"]
[stop]
timeout = "1s"
"#
    )
}

/// `key=` values printed by the unit's command.
fn value<'a>(log: &'a str, key: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::trim))
}

#[test]
fn device_cgroup_rules_allow_exactly_the_devices_and_access_they_name() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[]);
    j.import_busybox("busybox:local");
    j.write_unit("denied", &unit(""));
    j.write_unit(
        "mknodonly",
        &unit(r#"device_cgroup_rules = ["c 10:200 m"]"#),
    );
    j.write_unit("allowed", &unit(r#"device_cgroup_rules = ["c 10:* rwm"]"#));
    j.ok(&["up", "--wait", "--timeout", "60s"]);

    // Without a rule the device cgroup refuses the node.
    let log = wait_log(&j, "denied", "done");
    assert_eq!(value(&log, "mknod"), Some("1"), "{log}");
    assert!(log.contains("Operation not permitted"), "{log}");
    assert_ne!(value(&log, "open"), Some("0"), "{log}");

    // `m` alone: the node is made, and opening it is refused.
    let log = wait_log(&j, "mknodonly", "done");
    assert_eq!(value(&log, "mknod"), Some("0"), "{log}");
    assert_eq!(value(&log, "open"), Some("1"), "{log}");
    assert!(log.contains("Operation not permitted"), "{log}");

    // `c 10:* rwm`: made and opened.
    let log = wait_log(&j, "allowed", "done");
    assert_eq!(value(&log, "mknod"), Some("0"), "{log}");
    assert_eq!(value(&log, "open"), Some("0"), "{log}");
    assert!(!log.contains("Operation not permitted"), "{log}");
}
