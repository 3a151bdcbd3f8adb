//! What the hardware means for a unit: the GPU inventory placement works
//! on, whether a unit's devices are there, and what a run gets from its
//! placement and devices (environment, device nodes, driver files, groups).
//!
//! The facts come from `jarvis-hardware` (sysfs, procfs, NVML, CDI specs);
//! this module only turns them into what the runtimes take.

use std::path::PathBuf;

use jarvis_container::{DeviceKind, ExtraDevice, ExtraMount, Extras};
use jarvis_hardware::{Matcher, ResolvedDevice, Roots};
use jarvis_unit::{DeviceMatch, DeviceSpec, Unit};

use crate::gpu::{GpuInfo, Placement, Vendor};

/// The GPUs placement can choose from, from a probe.
pub fn inventory(roots: &Roots) -> Vec<GpuInfo> {
    let probe = jarvis_hardware::probe(roots);
    for w in &probe.warnings {
        tracing::warn!("hardware probe: {w}");
    }
    let mut amd_index = 0;
    probe
        .gpus
        .into_iter()
        .filter_map(|g| {
            let (vendor, id, index) = match g.vendor {
                jarvis_hardware::Vendor::Nvidia => {
                    (Vendor::Nvidia, g.uuid.clone()?, g.index.unwrap_or(0))
                }
                jarvis_hardware::Vendor::Amd => {
                    amd_index += 1;
                    (Vendor::Amd, g.pci_bus_id.clone(), amd_index - 1)
                }
            };
            Some(GpuInfo {
                id,
                vendor,
                index,
                minor: g.minor,
                memory_total: g.memory_total_bytes.unwrap_or(0),
            })
        })
        .collect()
}

pub fn matcher(spec: &DeviceSpec) -> Option<Matcher> {
    match &spec.matcher {
        DeviceMatch::Usb {
            vendor,
            product,
            serial,
        } => Matcher::usb(&format!("{vendor}:{product}"), serial.as_deref()),
        DeviceMatch::Path(p) => Some(Matcher::Path(PathBuf::from(p))),
    }
}

/// How a device is named in messages: `usb 10c4:ea60 (serial X)`.
pub fn describe(spec: &DeviceSpec) -> String {
    match &spec.matcher {
        DeviceMatch::Usb {
            vendor,
            product,
            serial: Some(s),
        } => format!("usb {vendor}:{product} serial {s}"),
        DeviceMatch::Usb {
            vendor, product, ..
        } => format!("usb {vendor}:{product}"),
        DeviceMatch::Path(p) => p.clone(),
    }
}

/// The node each of the unit's devices resolves to now (the first, when a
/// matcher finds several), or why a required one is missing.
pub fn resolve_devices(
    roots: &Roots,
    unit: &Unit,
) -> Result<Vec<(DeviceSpec, ResolvedDevice)>, String> {
    let mut found = Vec::new();
    for spec in &unit.devices {
        let nodes = matcher(spec)
            .map(|m| jarvis_hardware::resolve(roots, &m))
            .unwrap_or_else(|| Ok(vec![]));
        match nodes {
            Ok(nodes) if !nodes.is_empty() => {
                found.push((spec.clone(), nodes.into_iter().next().expect("not empty")))
            }
            Ok(_) | Err(_) if spec.optional => {}
            Ok(_) => {
                return Err(format!(
                    "waiting for device {} (for {})",
                    describe(spec),
                    spec.as_path
                ))
            }
            Err(e) => {
                return Err(format!(
                    "waiting for device {} (for {}): {e}",
                    describe(spec),
                    spec.as_path
                ))
            }
        }
    }
    Ok(found)
}

/// The environment variable that names a device's current node for a
/// native unit: `/dev/zigbee` -> `JARVIS_DEVICE_ZIGBEE`.
pub fn device_env_name(as_path: &str) -> String {
    let base = as_path.trim_start_matches("/dev/");
    let mut name = String::from("JARVIS_DEVICE_");
    for c in base.chars() {
        name.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    name
}

/// What a run gets from its placement and its devices.
#[derive(Debug, Clone, Default)]
pub struct RunHardware {
    pub placement: Option<Placement>,
    pub devices: Vec<(DeviceSpec, ResolvedDevice)>,
}

impl RunHardware {
    /// Environment for the unit's process (native and container alike).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.placement.as_ref().map(|p| p.env()).unwrap_or_default();
        for (spec, dev) in &self.devices {
            env.push((
                device_env_name(&spec.as_path),
                dev.dev_path.display().to_string(),
            ));
        }
        env
    }

    /// The device nodes' current paths (`/dev/ttyUSB0`).
    pub fn device_paths(&self) -> Vec<PathBuf> {
        self.devices
            .iter()
            .map(|(_, d)| d.dev_path.clone())
            .collect()
    }

    /// Groups of the device nodes, so a non-root process can open them.
    pub fn groups(&self) -> Vec<u32> {
        let mut gids: Vec<u32> = self.devices.iter().filter_map(|(_, d)| d.gid).collect();
        gids.sort();
        gids.dedup();
        gids
    }

    /// Native units: a stable symlink at each device's `as` path (under the
    /// dev root) to its current node.
    pub fn link_native(&self, roots: &Roots) -> Result<(), String> {
        for (spec, dev) in &self.devices {
            let link = roots.dev_host_path(&spec.as_path);
            if link == dev.node {
                continue;
            }
            if let Some(dir) = link.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let tmp = link.with_extension("jarvis-new");
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&dev.node, &tmp)
                .and_then(|_| std::fs::rename(&tmp, &link))
                .map_err(|e| format!("link {} -> {}: {e}", link.display(), dev.node.display()))?;
        }
        Ok(())
    }

    /// Containers: the device nodes at their `as` paths, the GPU's nodes,
    /// driver files and groups.
    pub fn container_extras(&self, roots: &Roots) -> Result<Extras, String> {
        let mut extras = Extras::default();
        for (spec, dev) in &self.devices {
            extras.devices.push(ExtraDevice {
                path: PathBuf::from(&spec.as_path),
                kind: match dev.kind {
                    jarvis_hardware::DeviceKind::Char => DeviceKind::Char,
                    jarvis_hardware::DeviceKind::Block => DeviceKind::Block,
                },
                major: dev.major as i64,
                minor: dev.minor as i64,
                file_mode: dev.file_mode.unwrap_or(0o660) & 0o777,
                uid: 0,
                gid: dev.gid.unwrap_or(0),
                access: "rwm".into(),
            });
        }
        extras.additional_gids = self.groups();
        match &self.placement {
            Some(Placement::Gpus {
                vendor: Vendor::Nvidia,
                gpus,
            }) => {
                let ids: Vec<&str> = gpus.iter().map(|g| g.id.as_str()).collect();
                let cdi = jarvis_hardware::cdi_spec(roots, jarvis_hardware::Vendor::Nvidia, &ids)
                    .map_err(|e| format!("CDI spec: {e}"))?;
                if let Some(cdi) = cdi {
                    for n in cdi.device_nodes {
                        let host = n.host_path.clone().unwrap_or_else(|| n.path.clone());
                        let stat = jarvis_hardware::nodes::stat_node(&roots.dev_host_path(&host))
                            .map_err(|e| e.to_string())?;
                        let (major, minor) = match (n.major, n.minor, stat) {
                            (Some(a), Some(b), _) => (a, b),
                            (_, _, Some(st)) => (st.major as i64, st.minor as i64),
                            _ => {
                                return Err(format!(
                                    "CDI device {} is not on the host",
                                    host.display()
                                ))
                            }
                        };
                        extras.devices.push(ExtraDevice {
                            path: n.path,
                            kind: DeviceKind::Char,
                            major,
                            minor,
                            file_mode: n.file_mode.unwrap_or(0o666) & 0o777,
                            uid: n.uid.unwrap_or(0),
                            gid: n.gid.unwrap_or(0),
                            access: n.permissions.unwrap_or_else(|| "rwm".into()),
                        });
                    }
                    for m in cdi.mounts {
                        extras.mounts.push(ExtraMount {
                            host: m.host_path,
                            container: m.container_path,
                            options: if m.options.is_empty() {
                                vec!["ro".into(), "nosuid".into(), "nodev".into()]
                            } else {
                                m.options
                            },
                        });
                    }
                } else {
                    let minors: Vec<u32> = gpus.iter().filter_map(|g| g.minor).collect();
                    let nodes = jarvis_hardware::nvidia_device_nodes(roots, &minors)
                        .map_err(|e| format!("NVIDIA device nodes: {e}"))?;
                    for n in nodes {
                        extras.devices.push(node_device(&n));
                    }
                    for f in jarvis_hardware::nvidia_driver_files(roots) {
                        let container = logical(roots, &f);
                        extras.mounts.push(ExtraMount {
                            host: f,
                            container,
                            options: vec!["ro".into(), "nosuid".into(), "nodev".into()],
                        });
                    }
                }
            }
            Some(Placement::Gpus {
                vendor: Vendor::Amd,
                gpus,
            }) => {
                let ids: Vec<&str> = gpus.iter().map(|g| g.id.as_str()).collect();
                let amd = jarvis_hardware::amd_device_nodes(roots, &ids)
                    .map_err(|e| format!("AMD device nodes: {e}"))?;
                for n in &amd.nodes {
                    extras.devices.push(node_device(n));
                }
                extras
                    .additional_gids
                    .extend(amd.video_gid.into_iter().chain(amd.render_gid));
            }
            Some(Placement::Cpu) | None => {}
        }
        Ok(extras)
    }

    /// The driver's library directories, for containers' LD_LIBRARY_PATH
    /// (the driver may live outside the usual paths, as /usr/local/nvidia).
    pub fn library_path(&self, extras: &Extras) -> Option<String> {
        let mut dirs: Vec<String> = extras
            .mounts
            .iter()
            .filter(|m| {
                m.container
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(".so"))
            })
            .filter_map(|m| m.container.parent().map(|p| p.display().to_string()))
            .collect();
        dirs.sort();
        dirs.dedup();
        (!dirs.is_empty()).then(|| dirs.join(":"))
    }
}

fn node_device(n: &jarvis_hardware::DeviceNode) -> ExtraDevice {
    ExtraDevice {
        path: n.path.clone(),
        kind: match n.kind {
            jarvis_hardware::DeviceKind::Char => DeviceKind::Char,
            jarvis_hardware::DeviceKind::Block => DeviceKind::Block,
        },
        major: n.major as i64,
        minor: n.minor as i64,
        file_mode: n.file_mode.unwrap_or(0o666) & 0o777,
        uid: n.uid.unwrap_or(0),
        gid: n.gid.unwrap_or(0),
        access: "rwm".into(),
    }
}

/// A host path (under the host root) as the container should see it.
fn logical(roots: &Roots, host: &std::path::Path) -> PathBuf {
    match host.strip_prefix(&roots.host) {
        Ok(rel) if roots.host != std::path::Path::new("/") => PathBuf::from("/").join(rel),
        _ => host.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_hardware::fixture::{Fixture, UsbSpec};
    use jarvis_unit::{Exec, Native};

    fn unit(devices: Vec<DeviceSpec>) -> Unit {
        let mut u = Unit::new(
            "zigbee2mqtt",
            Exec::Native(Native::new(vec!["/bin/true".into()])),
        );
        u.devices = devices;
        u
    }

    fn usb(vendor: &str, product: &str, as_path: &str, optional: bool) -> DeviceSpec {
        DeviceSpec {
            matcher: DeviceMatch::Usb {
                vendor: vendor.into(),
                product: product.into(),
                serial: None,
            },
            as_path: as_path.into(),
            optional,
        }
    }

    fn gpu_of(fx: &Fixture) -> GpuInfo {
        let gpus = inventory(&fx.roots_without_nvml());
        assert_eq!(gpus.len(), 1, "{gpus:?}");
        gpus.into_iter().next().unwrap()
    }

    #[test]
    fn device_env_names() {
        assert_eq!(device_env_name("/dev/zigbee"), "JARVIS_DEVICE_ZIGBEE");
        assert_eq!(
            device_env_name("/dev/serial/zwave-1"),
            "JARVIS_DEVICE_SERIAL_ZWAVE_1"
        );
    }

    #[test]
    fn a_required_device_is_waited_for_and_an_optional_one_skipped() {
        let mut fx = Fixture::new().unwrap();
        fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
        let roots = fx.roots();
        let found = resolve_devices(
            &roots,
            &unit(vec![
                usb("10c4", "ea60", "/dev/zigbee", false),
                usb("1cf1", "0030", "/dev/conbee", true),
            ]),
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.dev_path, PathBuf::from("/dev/ttyUSB0"));
        let err = resolve_devices(
            &roots,
            &unit(vec![usb("1cf1", "0030", "/dev/conbee", false)]),
        )
        .unwrap_err();
        assert_eq!(err, "waiting for device usb 1cf1:0030 (for /dev/conbee)");
    }

    #[test]
    fn a_run_gets_its_devices_env_groups_and_links() {
        let mut fx = Fixture::new().unwrap();
        fx.add_usb(&UsbSpec::sonoff_zbdongle_p()).unwrap();
        let roots = fx.roots();
        let u = unit(vec![usb("10c4", "ea60", "/dev/zigbee", false)]);
        let hw = RunHardware {
            placement: Some(Placement::Cpu),
            devices: resolve_devices(&roots, &u).unwrap(),
        };
        let env = hw.env();
        let get = |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CUDA_VISIBLE_DEVICES"), Some("-1"));
        assert_eq!(get("JARVIS_DEVICE_ZIGBEE"), Some("/dev/ttyUSB0"));
        assert_eq!(hw.groups(), vec![20], "dialout");
        assert_eq!(hw.device_paths(), vec![PathBuf::from("/dev/ttyUSB0")]);

        hw.link_native(&roots).unwrap();
        let link = roots.dev_host_path("/dev/zigbee");
        assert_eq!(std::fs::read_link(&link).unwrap(), hw.devices[0].1.node);
        // Linking again replaces the link.
        hw.link_native(&roots).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), hw.devices[0].1.node);

        let extras = hw.container_extras(&roots).unwrap();
        assert_eq!(extras.devices.len(), 1);
        let d = &extras.devices[0];
        assert_eq!(
            d.path,
            PathBuf::from("/dev/zigbee"),
            "the container sees it at `as`"
        );
        assert_eq!((d.major, d.minor), (188, 0));
        assert_eq!(d.gid, 20);
        assert_eq!(extras.additional_gids, vec![20]);
        assert!(extras.mounts.is_empty());
        assert_eq!(hw.library_path(&extras), None);
    }

    #[test]
    fn an_nvidia_gpu_without_cdi_gets_its_nodes_and_driver_files() {
        let fx = Fixture::h200_host().unwrap();
        let gpu = gpu_of(&fx);
        assert_eq!(gpu.vendor, Vendor::Nvidia);
        assert!(gpu.id.starts_with("GPU-"), "{}", gpu.id);
        assert_eq!(gpu.minor, Some(0));
        let hw = RunHardware {
            placement: Some(Placement::Gpus {
                vendor: Vendor::Nvidia,
                gpus: vec![gpu],
            }),
            devices: vec![],
        };
        let extras = hw.container_extras(&fx.roots_without_nvml()).unwrap();
        let paths: Vec<String> = extras
            .devices
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        for want in ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"] {
            assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
        }
        // Driver files are mounted where the host has them, as the
        // container sees the host: without the fixture's root.
        let root = fx.path().display().to_string();
        assert!(!extras.mounts.is_empty());
        for m in &extras.mounts {
            assert!(m.host.starts_with(fx.path()), "{:?}", m.host);
            assert!(!m.container.display().to_string().starts_with(&root));
            assert_eq!(m.options, vec!["ro", "nosuid", "nodev"]);
        }
        let lib = hw.library_path(&extras).unwrap();
        assert!(
            lib.split(':').any(|d| d == "/usr/local/nvidia/lib64"),
            "{lib}"
        );
    }

    #[test]
    fn an_amd_gpu_gets_kfd_its_render_node_and_groups() {
        let fx = Fixture::amd_host().unwrap();
        let gpu = gpu_of(&fx);
        assert_eq!(gpu.vendor, Vendor::Amd);
        assert_eq!(gpu.id, "0000:03:00.0");
        assert_eq!((gpu.index, gpu.memory_total), (0, 25_753_026_560));
        let hw = RunHardware {
            placement: Some(Placement::Gpus {
                vendor: Vendor::Amd,
                gpus: vec![gpu],
            }),
            devices: vec![],
        };
        let extras = hw.container_extras(&fx.roots_without_nvml()).unwrap();
        let paths: Vec<String> = extras
            .devices
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert!(paths.contains(&"/dev/kfd".to_string()), "{paths:?}");
        assert!(
            paths.contains(&"/dev/dri/renderD128".to_string()),
            "{paths:?}"
        );
        let mut gids = extras.additional_gids.clone();
        gids.sort();
        assert_eq!(gids, vec![44, 993], "video and render");
        let env = hw.env();
        assert!(env.contains(&("HIP_VISIBLE_DEVICES".into(), "0".into())));
    }
}
