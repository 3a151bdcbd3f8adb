//! What the hardware means for a unit: the GPU inventory placement works
//! on, whether a unit's devices are there, and what a run gets from its
//! placement and devices. The code lives in [`jarvis_runtime::hardware`].

pub use jarvis_runtime::hardware::{
    describe, device_env_name, inventory, matcher, resolve_devices, RunHardware,
};
