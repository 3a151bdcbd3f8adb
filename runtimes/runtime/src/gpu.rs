//! GPUs as placement sees them, and where a unit runs: what the
//! supervisor decides and a run's hardware is built from.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Vendor {
    Nvidia,
    Amd,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Amd => "amd",
        }
    }
}

/// A GPU as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// NVIDIA: the UUID (`GPU-...`); AMD: the PCI bus id.
    pub id: String,
    pub vendor: Vendor,
    /// The GPU's place among its vendor's GPUs, as the vendor's runtime
    /// numbers them (NVIDIA: the NVML index; AMD: in PCI order).
    pub index: u32,
    /// NVIDIA: the device minor (`/dev/nvidiaN`).
    pub minor: Option<u32>,
    pub memory_total: u64,
}

/// Where a unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Cpu,
    Gpus { vendor: Vendor, gpus: Vec<GpuInfo> },
}

impl Placement {
    pub fn ids(&self) -> Vec<String> {
        match self {
            Placement::Cpu => vec![],
            Placement::Gpus { gpus, .. } => gpus.iter().map(|g| g.id.clone()).collect(),
        }
    }

    /// The environment that pins the unit's processes to its placement.
    /// On the CPU every GPU is hidden, so a runtime like Ollama cannot
    /// half-use one.
    pub fn env(&self) -> Vec<(String, String)> {
        let kv = |k: &str, v: String| (k.to_string(), v);
        match self {
            Placement::Cpu => vec![
                kv("CUDA_VISIBLE_DEVICES", "-1".into()),
                kv("HIP_VISIBLE_DEVICES", "-1".into()),
                kv("ROCR_VISIBLE_DEVICES", "-1".into()),
            ],
            Placement::Gpus {
                vendor: Vendor::Nvidia,
                gpus,
            } => vec![
                kv(
                    "CUDA_VISIBLE_DEVICES",
                    join(gpus.iter().map(|g| g.id.clone())),
                ),
                kv("CUDA_DEVICE_ORDER", "PCI_BUS_ID".into()),
                kv(
                    "NVIDIA_VISIBLE_DEVICES",
                    join(gpus.iter().map(|g| g.id.clone())),
                ),
            ],
            Placement::Gpus {
                vendor: Vendor::Amd,
                gpus,
            } => {
                let idx = join(gpus.iter().map(|g| g.index.to_string()));
                vec![
                    kv("HIP_VISIBLE_DEVICES", idx.clone()),
                    kv("ROCR_VISIBLE_DEVICES", idx),
                    kv("CUDA_VISIBLE_DEVICES", "-1".into()),
                ]
            }
        }
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}
