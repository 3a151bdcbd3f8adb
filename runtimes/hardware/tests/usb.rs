//! USB devices on fixture trees: the probe's entries, matchers resolved to
//! nodes (twins told apart by serial), major/minor, replug.

use std::path::Path;

use jarvis_hardware::fixture::{self, Fixture, UsbNodeSpec, UsbSpec};
use jarvis_hardware::{probe, resolve, DeviceKind, Error, Matcher, ResolvedDevice};
use serde_json::json;

const SONOFF_SERIAL: &str = "9e4a1c6b2f57ed11a5e7c2d1a0b1c2d3";

fn usb(vendor: u16, product: u16, serial: Option<&str>) -> Matcher {
    Matcher::Usb {
        vendor,
        product,
        serial: serial.map(str::to_string),
    }
}

fn nodes(r: &[ResolvedDevice]) -> Vec<(&str, u32, u32)> {
    r.iter()
        .map(|d| (d.dev_path.to_str().unwrap(), d.major, d.minor))
        .collect()
}

#[test]
fn probe_lists_each_dongle_with_its_nodes_and_links() {
    let fx = Fixture::usb_host().unwrap();
    let p = probe(&fx.roots_without_nvml());
    let v = serde_json::to_value(&p.usb).unwrap();
    assert_eq!(
        v,
        json!([
            {
                "bus_path": "1-1", "vendor_id": "10c4", "product_id": "ea60",
                "manufacturer": "ITead", "product": "Sonoff Zigbee 3.0 USB Dongle Plus",
                "serial": SONOFF_SERIAL, "busnum": 1, "devnum": 2,
                "drivers": ["cp210x"], "nodes": ["/dev/ttyUSB0"],
                "by_id": [format!("/dev/serial/by-id/usb-ITead_Sonoff_Zigbee_3.0_USB_Dongle_Plus_{SONOFF_SERIAL}-if00-port0")]
            },
            {
                "bus_path": "1-2", "vendor_id": "1cf1", "product_id": "0030",
                "manufacturer": "dresden elektronik ingenieurtechnik GmbH", "product": "ConBee II",
                "serial": "DE2419321", "busnum": 1, "devnum": 3,
                "drivers": ["cdc_acm"], "nodes": ["/dev/ttyACM0"],
                "by_id": ["/dev/serial/by-id/usb-dresden_elektronik_ingenieurtechnik_GmbH_ConBee_II_DE2419321-if00"]
            },
            {
                "bus_path": "1-3", "vendor_id": "05e3", "product_id": "0608",
                "manufacturer": null, "product": "USB2.0 Hub",
                "serial": null, "busnum": 1, "devnum": 4,
                "drivers": ["hub"], "nodes": [], "by_id": []
            },
            {
                "bus_path": "1-3.1", "vendor_id": "0403", "product_id": "6001",
                "manufacturer": "FTDI", "product": "FT232R USB UART",
                "serial": "A50285BI", "busnum": 1, "devnum": 5,
                "drivers": ["ftdi_sio"], "nodes": ["/dev/ttyUSB1"],
                "by_id": ["/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"]
            },
            {
                "bus_path": "1-3.2", "vendor_id": "0403", "product_id": "6001",
                "manufacturer": "FTDI", "product": "FT232R USB UART",
                "serial": "A10KZP3B", "busnum": 1, "devnum": 6,
                "drivers": ["ftdi_sio"], "nodes": ["/dev/ttyUSB2"],
                "by_id": ["/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZP3B-if00-port0"]
            },
            {
                "bus_path": "2-1", "vendor_id": "0764", "product_id": "0501",
                "manufacturer": "CPS", "product": "CP1500PFCLCD",
                "serial": "CXXNS2001234", "busnum": 2, "devnum": 2,
                "drivers": ["usbhid"], "nodes": ["/dev/hidraw0"], "by_id": []
            }
        ])
    );
}

#[test]
fn sonoff_resolves_to_its_tty_with_numbers_and_group() {
    let fx = Fixture::usb_host().unwrap();
    let r = resolve(&fx.roots(), &usb(0x10c4, 0xea60, None)).unwrap();
    assert_eq!(r.len(), 1);
    let d = &r[0];
    assert_eq!(d.node, fx.join("dev/ttyUSB0"));
    assert_eq!(d.dev_path, Path::new("/dev/ttyUSB0"));
    assert_eq!((d.kind, d.major, d.minor), (DeviceKind::Char, 188, 0));
    assert_eq!(
        (d.gid, d.file_mode),
        (Some(fixture::GID_DIALOUT), Some(0o660))
    );
    assert_eq!(d.serial.as_deref(), Some(SONOFF_SERIAL));
    assert_eq!(
        (d.vendor_id.as_deref(), d.product_id.as_deref()),
        (Some("10c4"), Some("ea60"))
    );
    assert_eq!(d.bus_path.as_deref(), Some("1-1"));
    assert_eq!(d.by_id.len(), 1);
    let j = serde_json::to_value(d).unwrap();
    for key in [
        "node", "dev_path", "major", "minor", "kind", "gid", "serial",
    ] {
        assert!(j.get(key).is_some(), "{key} missing in {j}");
    }
    assert_eq!(j["kind"], "char");
}

#[test]
fn conbee_and_ups_resolve() {
    let fx = Fixture::usb_host().unwrap();
    let r = resolve(&fx.roots(), &Matcher::usb("1cf1:0030", None).unwrap()).unwrap();
    assert_eq!(nodes(&r), [("/dev/ttyACM0", 166, 0)]);
    let r = resolve(&fx.roots(), &usb(0x0764, 0x0501, None)).unwrap();
    assert_eq!(nodes(&r), [("/dev/hidraw0", fixture::MAJOR_HIDRAW, 0)]);
    assert_eq!(r[0].file_mode, Some(0o600));
    // Nothing plugged in: an empty list, not an error.
    assert!(resolve(&fx.roots(), &usb(0x1234, 0x5678, None))
        .unwrap()
        .is_empty());
}

#[test]
fn twins_are_told_apart_by_serial() {
    let fx = Fixture::usb_host().unwrap();
    let both = resolve(&fx.roots(), &usb(0x0403, 0x6001, None)).unwrap();
    assert_eq!(
        nodes(&both),
        [("/dev/ttyUSB1", 188, 1), ("/dev/ttyUSB2", 188, 2)]
    );
    let [a, b] = UsbSpec::TWIN_SERIALS;
    let ra = resolve(&fx.roots(), &usb(0x0403, 0x6001, Some(a))).unwrap();
    assert_eq!(nodes(&ra), [("/dev/ttyUSB1", 188, 1)]);
    assert_eq!(ra[0].serial.as_deref(), Some(a));
    assert_eq!(ra[0].bus_path.as_deref(), Some("1-3.1"));
    let rb = resolve(&fx.roots(), &usb(0x0403, 0x6001, Some(b))).unwrap();
    assert_eq!(nodes(&rb), [("/dev/ttyUSB2", 188, 2)]);
    assert!(resolve(&fx.roots(), &usb(0x0403, 0x6001, Some("NOPE")))
        .unwrap()
        .is_empty());
}

#[test]
fn replug_under_a_new_number_resolves_to_the_new_node() {
    let mut fx = Fixture::new().unwrap();
    fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
    let m = usb(0x10c4, 0xea60, Some(SONOFF_SERIAL));
    assert_eq!(
        nodes(&resolve(&fx.roots(), &m).unwrap()),
        [("/dev/ttyUSB0", 188, 0)]
    );

    let gone = fx.unplug("1-1").unwrap();
    assert_eq!(gone.node, UsbNodeSpec::TtyUsb(0));
    assert!(resolve(&fx.roots(), &m).unwrap().is_empty());
    assert!(!fx.join("dev/ttyUSB0").exists());
    assert!(probe(&fx.roots_without_nvml()).usb.is_empty());

    fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
    let spec = fx.replug("1-1", 1).unwrap();
    assert_eq!(spec.node, UsbNodeSpec::TtyUsb(1));
    assert!(!fx.join("dev/ttyUSB0").exists(), "the old node is gone");
    let r = resolve(&fx.roots(), &m).unwrap();
    assert_eq!(nodes(&r), [("/dev/ttyUSB1", 188, 1)]);
    assert_eq!(r[0].node, fx.join("dev/ttyUSB1"));
    // The by-id link follows the device.
    let by_id = &r[0].by_id[0];
    let r2 = resolve(&fx.roots(), &Matcher::Path(by_id.into())).unwrap();
    assert_eq!(nodes(&r2), [("/dev/ttyUSB1", 188, 1)]);
}

#[test]
fn unplugging_a_hub_takes_its_devices() {
    let mut fx = Fixture::usb_host().unwrap();
    fx.unplug("1-3").unwrap();
    let p = probe(&fx.roots_without_nvml());
    let paths: Vec<_> = p.usb.iter().map(|u| u.bus_path.as_str()).collect();
    assert_eq!(paths, ["1-1", "1-2", "2-1"]);
    assert!(!fx.join("dev/ttyUSB1").exists() && !fx.join("dev/ttyUSB2").exists());
    assert!(resolve(&fx.roots(), &usb(0x0403, 0x6001, None))
        .unwrap()
        .is_empty());
}

#[test]
fn path_matcher_follows_links_and_finds_the_usb_device() {
    let fx = Fixture::usb_host().unwrap();
    let r = resolve(&fx.roots(), &Matcher::Path("/dev/ttyACM0".into())).unwrap();
    assert_eq!(nodes(&r), [("/dev/ttyACM0", 166, 0)]);
    assert_eq!(r[0].serial.as_deref(), Some("DE2419321"));
    let link = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZP3B-if00-port0";
    let r = resolve(&fx.roots(), &Matcher::Path(link.into())).unwrap();
    assert_eq!(nodes(&r), [("/dev/ttyUSB2", 188, 2)]);
    assert_eq!(r[0].by_id, [link]);
    assert_eq!(r[0].serial.as_deref(), Some("A10KZP3B"));
    // Not a USB device's node: numbers and group, no USB facts.
    fx.mknod_char("ttyS0", 4, 64, 0o660, fixture::GID_DIALOUT)
        .unwrap();
    let r = resolve(&fx.roots(), &Matcher::Path("/dev/ttyS0".into())).unwrap();
    assert_eq!(nodes(&r), [("/dev/ttyS0", 4, 64)]);
    assert_eq!((r[0].serial.clone(), r[0].bus_path.clone()), (None, None));
    // Absent: empty. Not a device: an error.
    assert!(resolve(&fx.roots(), &Matcher::Path("/dev/ttyUSB9".into()))
        .unwrap()
        .is_empty());
    fx.write("dev/notanode", "x").unwrap();
    assert!(matches!(
        resolve(&fx.roots(), &Matcher::Path("/dev/notanode".into())),
        Err(Error::NotADevice { .. })
    ));
}

#[test]
fn numbers_come_from_sysfs_when_the_node_is_not_made_yet() {
    let fx = Fixture::usb_host().unwrap();
    // udev has not made the node yet: sysfs' dev file still says 188:0.
    std::fs::remove_file(fx.join("dev/ttyUSB0")).unwrap();
    let r = resolve(&fx.roots(), &usb(0x10c4, 0xea60, None)).unwrap();
    assert_eq!(nodes(&r), [("/dev/ttyUSB0", 188, 0)]);
    assert_eq!((r[0].file_mode, r[0].gid), (None, None));
}
