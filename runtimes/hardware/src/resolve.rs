//! Device matchers (`usb = "10c4:ea60"`, `path = "/dev/ttyUSB0"`) resolved
//! to the device nodes on the host.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::nodes::{stat_node, DeviceKind};
use crate::roots::{normalize, Roots};
use crate::usb::{scan, serial_by_id, UsbScan};
use crate::util::read_dev_numbers;

/// What a unit asks for. Serialized externally tagged:
/// `{"usb": {"vendor": 4292, "product": 60000, "serial": null}}`,
/// `{"path": "/dev/ttyUSB0"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matcher {
    /// Every node of every USB device with this vendor and product id (and
    /// this serial, when given: how two identical dongles are told apart).
    Usb {
        /// `idVendor`.
        vendor: u16,
        /// `idProduct`.
        product: u16,
        /// `serial`, compared exactly.
        serial: Option<String>,
    },
    /// One node by its `/dev/...` path; symlinks such as
    /// `/dev/serial/by-id/...` are followed inside the dev root.
    Path(PathBuf),
}

impl Matcher {
    /// `"10c4:ea60"` (hex, as lsusb writes it) with an optional serial.
    pub fn usb(id: &str, serial: Option<&str>) -> Option<Matcher> {
        let (v, p) = id.trim().split_once(':')?;
        Some(Matcher::Usb {
            vendor: u16::from_str_radix(v, 16).ok()?,
            product: u16::from_str_radix(p, 16).ok()?,
            serial: serial.map(str::to_string),
        })
    }
}

/// A device node a matcher resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedDevice {
    /// The host path of the node (under the dev root): what to bind or stat.
    pub node: PathBuf,
    /// Its logical path, `/dev/ttyUSB0`: where it goes in the container.
    pub dev_path: PathBuf,
    /// Character or block.
    pub kind: DeviceKind,
    /// Major number: `stat` of the node, else the sysfs `dev` file.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits of the host node; `None` when the node is not (yet)
    /// in the dev root and the numbers come from sysfs.
    pub file_mode: Option<u32>,
    /// Owner of the host node.
    pub uid: Option<u32>,
    /// Group of the host node (`dialout` for ttys, typically).
    pub gid: Option<u32>,
    /// The USB device's serial, when the node belongs to a USB device that
    /// has one.
    pub serial: Option<String>,
    /// The USB device's vendor id (`10c4`), when it is a USB device's node.
    pub vendor_id: Option<String>,
    /// The USB device's product id.
    pub product_id: Option<String>,
    /// The USB device's bus path (`1-1.2`).
    pub bus_path: Option<String>,
    /// The `/dev/serial/by-id` links to this node.
    pub by_id: Vec<String>,
}

/// The nodes `m` names on this host, in node order. Nothing plugged in (or
/// no such path) is an empty list, not an error: the daemon waits for a
/// uevent. A path that exists but is no device node is
/// [`Error::NotADevice`](crate::Error::NotADevice).
pub fn resolve(roots: &Roots, m: &Matcher) -> Result<Vec<ResolvedDevice>> {
    let usb = scan(roots);
    let links = serial_by_id(roots);
    match m {
        Matcher::Usb {
            vendor,
            product,
            serial,
        } => {
            let (v, p) = (format!("{vendor:04x}"), format!("{product:04x}"));
            let mut out = Vec::new();
            for dev in usb.iter().filter(|s| {
                s.device.vendor_id == v
                    && s.device.product_id == p
                    && (serial.is_none() || s.device.serial == *serial)
            }) {
                for n in &dev.nodes {
                    let sys_dev = n.sys_dir.join("dev");
                    let kind = if n.sys_dir.components().any(|c| c.as_os_str() == "block") {
                        DeviceKind::Block
                    } else {
                        DeviceKind::Char
                    };
                    if let Some(r) =
                        resolved(roots, &n.dev_path, Some(&sys_dev), kind, &usb, &links)?
                    {
                        out.push(r);
                    }
                }
            }
            Ok(out)
        }
        Matcher::Path(p) => {
            let Some(host) = follow_links(roots, p) else {
                return Ok(Vec::new());
            };
            let Some(logical) = roots.dev_logical_path(&host) else {
                return Ok(Vec::new());
            };
            let logical = logical.to_string_lossy().into_owned();
            Ok(
                resolved(roots, &logical, None, DeviceKind::Char, &usb, &links)?
                    .into_iter()
                    .collect(),
            )
        }
    }
}

/// The host path `p` ends at, following symlinks inside the dev root (at
/// most 16); `None` when nothing is there.
fn follow_links(roots: &Roots, p: &Path) -> Option<PathBuf> {
    let mut host = roots.dev_host_path(p);
    for _ in 0..16 {
        let md = fs::symlink_metadata(&host).ok()?;
        if !md.file_type().is_symlink() {
            return Some(host);
        }
        let t = fs::read_link(&host).ok()?;
        host = if t.is_absolute() {
            roots.dev_host_path(&t)
        } else {
            normalize(&host.parent()?.join(t))
        };
    }
    None
}

fn resolved(
    roots: &Roots,
    dev_path: &str,
    sys_dev: Option<&Path>,
    kind: DeviceKind,
    usb: &[UsbScan],
    links: &[(String, String)],
) -> Result<Option<ResolvedDevice>> {
    let node = roots.dev_host_path(dev_path);
    let owner = usb
        .iter()
        .find(|s| s.device.nodes.iter().any(|n| n == dev_path));
    let sys_dev = sys_dev.map(Path::to_path_buf).or_else(|| {
        owner.and_then(|o| {
            o.nodes
                .iter()
                .find(|n| n.dev_path == dev_path)
                .map(|n| n.sys_dir.join("dev"))
        })
    });
    let (kind, major, minor, file_mode, uid, gid) = match stat_node(&node)? {
        Some(st) => (
            st.kind,
            st.major,
            st.minor,
            Some(st.mode),
            Some(st.uid),
            Some(st.gid),
        ),
        None => match sys_dev.and_then(read_dev_numbers) {
            Some((ma, mi)) => (kind, ma, mi, None, None, None),
            None => return Ok(None),
        },
    };
    let d = owner.map(|o| &o.device);
    Ok(Some(ResolvedDevice {
        node,
        dev_path: dev_path.into(),
        kind,
        major,
        minor,
        file_mode,
        uid,
        gid,
        serial: d.and_then(|d| d.serial.clone()),
        vendor_id: d.map(|d| d.vendor_id.clone()),
        product_id: d.map(|d| d.product_id.clone()),
        bus_path: d.map(|d| d.bus_path.clone()),
        by_id: links
            .iter()
            .filter(|(_, t)| t == dev_path)
            .map(|(l, _)| l.clone())
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usb_ids_parse() {
        assert_eq!(
            Matcher::usb("10c4:ea60", Some("abc")),
            Some(Matcher::Usb {
                vendor: 0x10c4,
                product: 0xea60,
                serial: Some("abc".into())
            })
        );
        assert_eq!(Matcher::usb("10c4", None), None);
        assert_eq!(Matcher::usb("zz:1", None), None);
        let j = serde_json::to_value(Matcher::Path("/dev/ttyACM0".into())).unwrap();
        assert_eq!(j, serde_json::json!({"path": "/dev/ttyACM0"}));
    }
}
