//! jarvis-container: OCI containers for jarvis, run in-process through
//! youki's `libcontainer` 0.7.
//!
//! - [`spec`]: a unit + an image config to an OCI runtime spec with secure
//!   defaults (pure; [`spec::build_spec`]).
//! - [`seccomp`]: the default seccomp profile.
//! - [`user`]: "uid", "uid:gid", "name", "name:group" against the image's
//!   `/etc/passwd` and `/etc/group`.
//! - [`rootfs`]: the overlay root filesystem over the image's layers.
//! - [`run`]: create + start, kill, delete, state, exec.
//! - [`inroot`]: path resolution confined to a rootfs (`openat2`).
//! - [`net`]: the namespace a run joins and its `/etc/hosts` and
//!   `/etc/resolv.conf` ([`NetSetup`]).
//! - [`volume`]: named volumes, made on first use and filled from the
//!   image.
//! - [`secrets`]: a run's secrets in a tmpfs of its own.
//! - [`prepare`]: one run's bundle from a stored image (clear, mount,
//!   `/etc` files, spec, `config.json`): [`prepare_bundle`].
//!
//! A caller's sequence for one run:
//!
//! ```text
//! ensure_sealed()                       first thing in main (CVE-2019-5736)
//! rootfs = mount_rootfs(layers, container_dir)
//! users  = UserDb::load(&rootfs)
//! etc    = write_etc_files(bundle, &unit.name, network)
//! spec   = build_spec(&SpecInput { .. })
//! write_bundle(bundle, &spec)
//! pid    = create_and_start(id, bundle, state_root, stdio)   init is our child: reap it
//! ... kill(id, state_root, SIGTERM) / kill_all(..., SIGKILL)
//! delete(id, state_root, true); unmount_rootfs(container_dir)
//! ```
//!
//! # libcontainer features
//!
//! `v1`, `v2` (cgroupfs managers for both hierarchies), `libseccomp`, and
//! `cgroupsv2_devices`: on cgroup v2 the device rules are an eBPF program
//! attached to the container's cgroup (building it needs libelf-dev and
//! zlib1g-dev); on v1 they are the devices controller's lists (tightened to
//! exactly the spec's, see [`run::create_and_start`]). Not `systemd`: jarvis
//! owns its cgroup tree.

pub mod inroot;
pub mod net;
pub mod prepare;
pub mod rootfs;
pub mod run;
pub mod seccomp;
pub mod secrets;
pub mod spec;
pub mod user;
pub mod volume;

pub use net::NetSetup;
pub use oci_spec;
pub use prepare::{
    clear, find_init, host_devices, prepare_bundle, Leftover, PrepareError, PrepareInput, Prepared,
    INIT_CANDIDATES,
};
pub use rootfs::{mount_rootfs, rootfs_path, unmount_rootfs, RootfsError};
pub use run::{
    create_and_start, delete, ensure_sealed, exec_in, is_sealed, kill, kill_all, state,
    write_bundle, write_etc_files, RunError, State, Status, Stdio,
};
pub use spec::{
    build_spec, DeviceKind, DeviceRule, EtcFiles, ExtraDevice, ExtraMount, Extras, RunPaths,
    SpecError, SpecInput, INIT_PATH,
};
pub use user::{ExecUser, UserDb, UserError};
