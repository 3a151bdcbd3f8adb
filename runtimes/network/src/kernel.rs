//! The kernel side: links, addresses and routes through rtnetlink, network
//! namespace files, sysctls and port reservations.
//!
//! Every call here acts in the network namespace of the calling thread
//! (a netlink socket, a socket, a `/proc/sys/net` file and a subprocess all
//! belong to the namespace of the thread that made them). Work inside a
//! unit's namespace runs on a thread of its own that enters it and then
//! ends, so no thread is ever left in another namespace.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::link::{InfoData, InfoVeth};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::{PortMapping, Protocol};

/// A netlink connection on a current-thread runtime of its own, in the
/// network namespace of the thread that made it. Blocking calls run the
/// rtnetlink futures on it, whatever runtime the caller may have.
pub struct Rt {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl Rt {
    pub fn new() -> Result<Rt, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| format!("start a netlink runtime: {e}"))?;
        let (conn, handle, _) = rt
            .block_on(async { rtnetlink::new_connection() })
            .map_err(|e| format!("open a netlink socket: {e}"))?;
        rt.spawn(conn);
        Ok(Rt { rt, handle })
    }

    fn run<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, rtnetlink::Error> {
        self.rt.block_on(f)
    }

    /// The index of link `name`, or None if there is none.
    pub fn link_index(&self, name: &str) -> Result<Option<u32>, String> {
        let h = self.handle.clone();
        let r = self.run(async move {
            h.link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        });
        match r {
            Ok(m) => Ok(m.map(|m| m.header.index)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(format!("look up link {name}: {e}")),
        }
    }

    /// Makes bridge `name` if it is missing, gives it `address`/prefix and
    /// sets it up.
    pub fn ensure_bridge(
        &self,
        name: &str,
        address: Ipv4Addr,
        subnet: Ipv4Net,
    ) -> Result<(), String> {
        let index = match self.link_index(name)? {
            Some(i) => i,
            None => {
                let h = self.handle.clone();
                self.run(
                    async move { h.link().add(LinkBridge::new(name).build()).execute().await },
                )
                .map_err(|e| format!("create bridge {name}: {e}"))?;
                self.link_index(name)?
                    .ok_or_else(|| format!("bridge {name} is gone right after its creation"))?
            }
        };
        let h = self.handle.clone();
        let added = self.run(async move {
            h.address()
                .add(index, IpAddr::V4(address), subnet.prefix_len())
                .execute()
                .await
        });
        match added {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(format!(
                    "add address {address}/{} to {name}: {e}",
                    subnet.prefix_len()
                ))
            }
        }
        self.set_up(index)
            .map_err(|e| format!("set {name} up: {e}"))
    }

    fn set_up(&self, index: u32) -> Result<(), rtnetlink::Error> {
        let h = self.handle.clone();
        self.run(async move {
            h.link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
        })
    }

    /// Deletes link `name`; a link already gone is fine.
    pub fn delete_link(&self, name: &str) -> Result<(), String> {
        let Some(index) = self.link_index(name)? else {
            return Ok(());
        };
        let h = self.handle.clone();
        match self.run(async move { h.link().del(index).execute().await }) {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(format!("delete link {name}: {e}")),
        }
    }

    /// Makes the veth pair `host` (in bridge `bridge`, up) and `peer`,
    /// created straight inside the network namespace `netns` under its final
    /// name, so no temporary name is ever seen on the host.
    pub fn add_veth(
        &self,
        host: &str,
        bridge: &str,
        peer: &str,
        netns: &File,
    ) -> Result<(), String> {
        let bridge_index = self
            .link_index(bridge)?
            .ok_or_else(|| format!("bridge {bridge} is missing"))?;
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(netns.as_raw_fd())
            .build();
        let msg = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .controller(bridge_index)
            .up()
            .build();
        let h = self.handle.clone();
        self.run(async move { h.link().add(msg).execute().await })
            .map_err(|e| format!("create veth {host}: {e}"))
    }

    /// Inside a unit's namespace: `lo` up; each `(ifname, address)` gets its
    /// address and is set up; the default route goes via `gateway` on the
    /// first.
    pub fn configure_inside(
        &self,
        links: &[(String, Ipv4Addr, Ipv4Net)],
        gateway: Ipv4Addr,
    ) -> Result<(), String> {
        let lo = self
            .link_index("lo")?
            .ok_or("no lo in the unit's network namespace")?;
        self.set_up(lo).map_err(|e| format!("set lo up: {e}"))?;
        let mut first = None;
        for (ifname, address, subnet) in links {
            let index = self
                .link_index(ifname)?
                .ok_or_else(|| format!("{ifname} is missing in the unit's network namespace"))?;
            first.get_or_insert(index);
            let h = self.handle.clone();
            let (a, p) = (IpAddr::V4(*address), subnet.prefix_len());
            self.run(async move { h.address().add(index, a, p).execute().await })
                .map_err(|e| format!("add address {address}/{p} to {ifname}: {e}"))?;
            self.set_up(index)
                .map_err(|e| format!("set {ifname} up: {e}"))?;
        }
        if let Some(index) = first {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            let h = self.handle.clone();
            self.run(async move { h.route().add(route).execute().await })
                .map_err(|e| format!("add the default route via {gateway}: {e}"))?;
        }
        Ok(())
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// Makes `dir` a mount point of its own with private propagation (a bind
/// mount of itself, as iproute2 does with /run/netns), so the netns files
/// mounted in it do not propagate to other mount namespaces.
pub fn private_netns_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut bound = false;
    loop {
        match mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| format!("bind-mount {} on itself: {e}", dir.display()))?;
                bound = true;
            }
            Err(e) => return Err(format!("make {} a private mount: {e}", dir.display())),
        }
    }
}

/// Undoes [`private_netns_dir`] once no netns file is left in `dir`: if
/// `dir` is a mount point of the calling thread's mount namespace, it is
/// unmounted, so the host's mounts are as before the first attach.
pub fn release_netns_dir(dir: &Path) -> Result<(), String> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Ok(()); // no directory, no mount
    };
    let dir = dir.as_path();
    let info = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .map_err(|e| format!("read /proc/thread-self/mountinfo: {e}"))?;
    let mounted = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(&unescape_mountinfo(m)) == dir);
    if !mounted {
        return Ok(());
    }
    match umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(format!("unmount {}: {e}", dir.display())),
    }
}

/// Mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes a new network namespace pinned by a bind mount on `path`, as
/// `ip netns add` does: a thread of its own unshares its network namespace
/// and bind-mounts it on the file, then ends.
pub fn make_netns(path: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let p = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<(), String> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("unshare a network namespace: {e}"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("bind-mount a network namespace on {}: {e}", p.display()))
    })
    .join()
    .unwrap_or_else(|_| Err("the thread making a network namespace panicked".to_string()));
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Unmounts and removes a netns file; one already gone is fine.
pub fn remove_netns(path: &Path) -> Result<(), String> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(format!("unmount {}: {e}", path.display())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}

/// Runs `f` on a new thread that has entered the network namespace of the
/// file `netns`, with a netlink connection of that namespace. The thread
/// ends with `f`.
pub fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce(&Rt) -> Result<T, String> + Send,
) -> Result<T, String> {
    let netns: PathBuf = netns.to_path_buf();
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = File::open(&netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("enter the network namespace {}: {e}", netns.display()))?;
            let rt = Rt::new()?;
            f(&rt)
        })
        .join()
        .unwrap_or_else(|_| {
            Err("a thread working in a unit's network namespace panicked".to_string())
        })
    })
}

/// Writes a sysctl of the calling thread's network namespace.
pub fn sysctl(name: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| format!("set {name}={value}: {e}"))
}

/// Sets `net.ipv4.conf.<bridge>.route_localnet=1` (a bridge name has no dot).
pub fn route_localnet(bridge: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::write(&path, "1")
        .map_err(|e| format!("set net.ipv4.conf.{bridge}.route_localnet=1: {e}"))
}

/// The host address a published port is bound on.
pub fn host_addr(p: &PortMapping) -> SocketAddr {
    SocketAddr::new(
        p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        p.host_port,
    )
}

/// Reserves a published port on the host: a socket bound to its address,
/// port and protocol (TCP: bound, not listening, no SO_REUSEADDR), held for
/// as long as the unit is attached, so no host process can take the port.
///
/// EADDRINUSE is retried for a moment before it is reported: a socket just
/// closed (by a detach, or a jarvisd that died) can still be held by a
/// child that another thread is spawning, between its fork and its exec.
pub fn reserve(p: &PortMapping) -> Result<OwnedFd, String> {
    let mut tries = 0;
    loop {
        match reserve_once(p) {
            Err(Reservation::InUse(_)) if tries < 10 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(fd) => return Ok(fd),
            Err(Reservation::InUse(e) | Reservation::Failed(e)) => return Err(e),
        }
    }
}

enum Reservation {
    InUse(String),
    Failed(String),
}

fn reserve_once(p: &PortMapping) -> Result<OwnedFd, Reservation> {
    use nix::sys::socket::{
        bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
    };
    let addr = host_addr(p);
    let (family, kind) = (
        match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        },
        match p.protocol {
            Protocol::Tcp => SockType::Stream,
            Protocol::Udp => SockType::Datagram,
        },
    );
    let name = format!("{}/{}", addr, p.protocol);
    let fd = socket(family, kind, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Reservation::Failed(format!("reserve port {name}: socket: {e}")))?;
    let bound = match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    match bound {
        Ok(()) => Ok(fd),
        Err(nix::errno::Errno::EADDRINUSE) => Err(Reservation::InUse(format!(
            "port {name} is already in use on the host"
        ))),
        Err(e) => Err(Reservation::Failed(format!(
            "reserve port {name}: bind: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            super::unescape_mountinfo("/run/a\\040b\\134c"),
            "/run/a b\\c"
        );
        assert_eq!(super::unescape_mountinfo("/plain\\"), "/plain\\");
    }
}
