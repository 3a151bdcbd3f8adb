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
        self.devices.iter().map(|(_, d)| d.dev_path.clone()).collect()
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

    #[test]
    fn device_env_names() {
        assert_eq!(device_env_name("/dev/zigbee"), "JARVIS_DEVICE_ZIGBEE");
        assert_eq!(
            device_env_name("/dev/serial/zwave-1"),
            "JARVIS_DEVICE_SERIAL_ZWAVE_1"
        );
    }
}
