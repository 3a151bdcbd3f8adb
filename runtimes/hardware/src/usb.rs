//! USB devices from `<sys>/bus/usb/devices`, with the device nodes their
//! interfaces expose and the `/dev/serial/by-id` links to those nodes.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::roots::{normalize, Roots};
use crate::util::{list_dir, natural_cmp, read_trim, read_u64, uevent_var};

/// One USB device (not a root hub, not an interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsbDevice {
    /// Its name in `/sys/bus/usb/devices`: bus, then the port chain,
    /// `1-1.2`.
    pub bus_path: String,
    /// `idVendor`, 4 lowercase hex digits: `10c4`.
    pub vendor_id: String,
    /// `idProduct`, 4 lowercase hex digits: `ea60`.
    pub product_id: String,
    /// The `manufacturer` string, if the device has one.
    pub manufacturer: Option<String>,
    /// The `product` string, if the device has one.
    pub product: Option<String>,
    /// The `serial` string, if the device has one.
    pub serial: Option<String>,
    /// `busnum`.
    pub busnum: Option<u32>,
    /// `devnum`: changes on every plug.
    pub devnum: Option<u32>,
    /// The drivers bound to its interfaces (`cp210x`, `cdc_acm`, `usbhid`),
    /// sorted, without repeats.
    pub drivers: Vec<String>,
    /// The device nodes its interfaces expose, as `/dev/...` paths whatever
    /// the dev root: `/dev/ttyUSB0`, `/dev/ttyACM0`, `/dev/hidraw0`, ...
    pub nodes: Vec<String>,
    /// The `/dev/serial/by-id/*` links that point at one of `nodes`, as
    /// `/dev/serial/by-id/NAME` paths.
    pub by_id: Vec<String>,
}

/// A device node of a USB device, with the sysfs directory that describes it.
#[derive(Debug, Clone)]
pub(crate) struct UsbNode {
    /// `/dev/ttyUSB0`.
    pub dev_path: String,
    /// The sysfs class directory holding its `dev` file.
    pub sys_dir: PathBuf,
}

/// A USB device and where its nodes are in sysfs.
#[derive(Debug, Clone)]
pub(crate) struct UsbScan {
    pub device: UsbDevice,
    pub nodes: Vec<UsbNode>,
}

fn is_device_entry(name: &str) -> bool {
    !name.contains(':') && !name.starts_with("usb") && name.contains('-')
}

/// Directories with a `dev` file under `dir` (not following symlinks, at
/// most `depth` levels, skipping `ep_*` endpoint entries).
fn walk_nodes(dir: &Path, depth: u32, out: &mut Vec<UsbNode>) {
    if depth == 0 {
        return;
    }
    for (name, path) in list_dir(dir) {
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !md.is_dir() || name.starts_with("ep_") {
            continue;
        }
        if path.join("dev").is_file() {
            let devname = uevent_var(&path, "DEVNAME").unwrap_or_else(|| name.clone());
            out.push(UsbNode {
                dev_path: format!("/dev/{devname}"),
                sys_dir: path.clone(),
            });
        }
        walk_nodes(&path, depth - 1, out);
    }
}

/// The `/dev/serial/by-id` links (logical link path, logical target path).
pub(crate) fn serial_by_id(roots: &Roots) -> Vec<(String, String)> {
    let dir = roots.dev_host_path("/dev/serial/by-id");
    let mut out = Vec::new();
    for (name, path) in list_dir(&dir) {
        let Ok(target) = fs::read_link(&path) else {
            continue;
        };
        let abs = if target.is_absolute() {
            // An absolute link names a host path: map `/dev/x` under the root.
            roots.dev_host_path(&target)
        } else {
            normalize(&dir.join(&target))
        };
        if let Some(logical) = roots.dev_logical_path(&abs) {
            out.push((
                format!("/dev/serial/by-id/{name}"),
                logical.to_string_lossy().into_owned(),
            ));
        }
    }
    out
}

fn hex4(s: Option<String>) -> String {
    let s = s.unwrap_or_default().to_ascii_lowercase();
    format!("{:0>4}", s)
}

pub(crate) fn scan(roots: &Roots) -> Vec<UsbScan> {
    let by_id = serial_by_id(roots);
    let mut out = Vec::new();
    for (name, dir) in list_dir(roots.sys_path("bus/usb/devices")) {
        if !is_device_entry(&name) {
            continue;
        }
        let mut nodes = Vec::new();
        let mut drivers = Vec::new();
        for (iface, idir) in list_dir(&dir) {
            if !iface.starts_with(&format!("{name}:")) {
                continue;
            }
            if let Ok(t) = fs::read_link(idir.join("driver")) {
                if let Some(d) = t.file_name() {
                    drivers.push(d.to_string_lossy().into_owned());
                }
            }
            walk_nodes(&idir, 7, &mut nodes);
        }
        drivers.sort();
        drivers.dedup();
        nodes.sort_by(|a, b| natural_cmp(&a.dev_path, &b.dev_path));
        nodes.dedup_by(|a, b| a.dev_path == b.dev_path);
        let node_paths: Vec<String> = nodes.iter().map(|n| n.dev_path.clone()).collect();
        let mut links: Vec<String> = by_id
            .iter()
            .filter(|(_, t)| node_paths.contains(t))
            .map(|(l, _)| l.clone())
            .collect();
        links.sort();
        let device = UsbDevice {
            vendor_id: hex4(read_trim(dir.join("idVendor"))),
            product_id: hex4(read_trim(dir.join("idProduct"))),
            manufacturer: read_trim(dir.join("manufacturer")),
            product: read_trim(dir.join("product")),
            serial: read_trim(dir.join("serial")),
            busnum: read_u64(dir.join("busnum")).map(|v| v as u32),
            devnum: read_u64(dir.join("devnum")).map(|v| v as u32),
            drivers,
            nodes: node_paths,
            by_id: links,
            bus_path: name,
        };
        out.push(UsbScan { device, nodes });
    }
    out
}

/// Every USB device in `<sys>/bus/usb/devices` but the root hubs (`usbN`),
/// in bus-path order.
pub fn probe_usb(roots: &Roots) -> Vec<UsbDevice> {
    scan(roots).into_iter().map(|s| s.device).collect()
}
