//! The kernel's uevents, from a `NETLINK_KOBJECT_UEVENT` socket (multicast
//! group 1: the kernel's own messages, as udev receives them), read through
//! tokio without polling.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recvfrom, setsockopt, socket, sockopt, AddressFamily, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::error::{Error, Result};

/// The subsystems whose events change what [`crate::probe`] or
/// [`crate::resolve()`] would find.
pub const RESCAN_SUBSYSTEMS: &[&str] = &[
    "tty",
    "usb",
    "usb-serial",
    "usbmisc",
    "hidraw",
    "drm",
    "kfd",
];

/// One kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, `unbind`, `move`, `online`,
    /// `offline`; [`Uevent::OVERFLOW`] when the socket dropped events.
    pub action: String,
    /// The sysfs path without `/sys`: `/devices/.../tty/ttyUSB0`.
    pub devpath: String,
    /// `SUBSYSTEM`: `tty`, `usb`, `hidraw`, `drm`, ...
    pub subsystem: Option<String>,
    /// `DEVNAME`, relative to `/dev`: `ttyUSB0`, `dri/card0`.
    pub devname: Option<String>,
    /// `DEVTYPE`: `usb_device`, `usb_interface`, ...
    pub devtype: Option<String>,
    /// `SEQNUM`.
    pub seqnum: Option<u64>,
    /// `MAJOR`.
    pub major: Option<u32>,
    /// `MINOR`.
    pub minor: Option<u32>,
    /// Every `KEY=VALUE` of the message.
    pub vars: BTreeMap<String, String>,
}

impl Uevent {
    /// The action of the synthetic event [`UeventListener::recv`] returns
    /// when the kernel dropped events because the socket's buffer was full:
    /// the daemon should rescan everything.
    pub const OVERFLOW: &'static str = "overflow";

    /// Parses one kernel message: `ACTION@DEVPATH\0KEY=VALUE\0...`.
    /// Messages from udev (`libudev\0...`) and anything malformed give
    /// `None`.
    pub fn parse(buf: &[u8]) -> Option<Uevent> {
        let mut parts = buf.split(|b| *b == 0).filter(|p| !p.is_empty());
        let head = std::str::from_utf8(parts.next()?).ok()?;
        let (action, devpath) = head.split_once('@')?;
        let mut vars = BTreeMap::new();
        for p in parts {
            let Ok(s) = std::str::from_utf8(p) else {
                continue;
            };
            if let Some((k, v)) = s.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        let get = |k: &str| vars.get(k).cloned();
        Some(Uevent {
            action: get("ACTION").unwrap_or_else(|| action.to_string()),
            devpath: get("DEVPATH").unwrap_or_else(|| devpath.to_string()),
            subsystem: get("SUBSYSTEM"),
            devname: get("DEVNAME"),
            devtype: get("DEVTYPE"),
            seqnum: get("SEQNUM").and_then(|s| s.parse().ok()),
            major: get("MAJOR").and_then(|s| s.parse().ok()),
            minor: get("MINOR").and_then(|s| s.parse().ok()),
            vars,
        })
    }

    fn overflow() -> Uevent {
        Uevent {
            action: Self::OVERFLOW.into(),
            devpath: String::new(),
            subsystem: None,
            devname: None,
            devtype: None,
            seqnum: None,
            major: None,
            minor: None,
            vars: BTreeMap::new(),
        }
    }

    /// Whether the daemon should rescan sysfs: an event of one of
    /// [`RESCAN_SUBSYSTEMS`], or an overflow.
    pub fn wants_rescan(&self) -> bool {
        self.action == Self::OVERFLOW
            || self
                .subsystem
                .as_deref()
                .is_some_and(|s| RESCAN_SUBSYSTEMS.contains(&s))
    }

    /// How much an event asks of the daemon: 3 for an overflow (everything
    /// again), 2 for a GPU's subsystem (`drm`, `pci`, `kfd`: the GPU
    /// inventory too), 1 for another rescan subsystem, 0 for nothing.
    fn weight(&self) -> u8 {
        if self.action == Self::OVERFLOW {
            3
        } else if matches!(self.subsystem.as_deref(), Some("drm" | "pci" | "kfd")) {
            2
        } else if self.wants_rescan() {
            1
        } else {
            0
        }
    }

    /// The one event of `batch` that asks the most of the daemon (the
    /// latest of equals): handling it alone does everything handling each of
    /// them would, since a rescan reads the hardware as it is now. `None`
    /// for an empty batch.
    pub fn most_telling(batch: impl IntoIterator<Item = Uevent>) -> Option<Uevent> {
        batch.into_iter().reduce(|best, ev| {
            if ev.weight() >= best.weight() {
                ev
            } else {
                best
            }
        })
    }
}

/// A bound uevent socket. Create it inside a tokio runtime (it registers
/// with the reactor).
pub struct UeventListener {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
    /// Read by a cancelled [`UeventListener::recv_batch`], not yet returned.
    pending: Vec<Uevent>,
}

impl UeventListener {
    /// Opens and binds the socket (group 1, kernel events) and asks for a
    /// 4 MiB receive buffer (`SO_RCVBUFFORCE` as root, else `SO_RCVBUF`).
    pub fn bind() -> Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|e| Error::Netlink(e.into()))?;
        let size = 4 << 20;
        if setsockopt(&fd, sockopt::RcvBufForce, &size).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &size);
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1)).map_err(|e| Error::Netlink(e.into()))?;
        // SAFETY: an OwnedFd keeps its descriptor open, and returns the same
        // one from as_raw_fd, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| Error::Netlink(e.into()))?;
        Ok(UeventListener {
            fd,
            buf: vec![0; 64 * 1024],
            pending: Vec::new(),
        })
    }

    /// The next kernel uevent. Messages not sent by the kernel (sender pid
    /// not 0) are dropped. When the kernel dropped events (`ENOBUFS`), an
    /// event with action [`Uevent::OVERFLOW`] comes instead. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Uevent> {
        loop {
            let mut guard = self.fd.readable().await.map_err(Error::Netlink)?;
            match guard.try_io(|fd| Self::read_one(fd.get_ref(), &mut self.buf)) {
                Err(_would_block) => continue,
                Ok(Ok(Ok(Some(ev)))) => return Ok(ev),
                Ok(Ok(Ok(None))) => continue,
                Ok(Ok(Err(e)) | Err(e)) => return Err(Error::Netlink(e)),
            }
        }
    }

    /// The most events [`UeventListener::recv_batch`] returns at once.
    pub const MAX_BATCH: usize = 4096;

    /// Every uevent the kernel has queued, at least one (waiting for it if
    /// need be): the socket is read until it is empty. A burst (a hub
    /// with many devices, `udevadm trigger`, other programs poking `uevent`
    /// files) comes as one batch, so a caller that rescans per batch does
    /// one rescan for all of it instead of falling behind by one per event.
    /// [`Uevent::most_telling`] picks the event to act on. Cancel-safe: what
    /// was read before a cancel is kept for the next call.
    pub async fn recv_batch(&mut self) -> Result<Vec<Uevent>> {
        loop {
            let mut guard = self.fd.readable().await.map_err(Error::Netlink)?;
            // A bound, should the kernel queue events as fast as they are
            // read: the rest come with the next call (readiness stays set).
            while self.pending.len() < Self::MAX_BATCH {
                match guard.try_io(|fd| Self::read_one(fd.get_ref(), &mut self.buf)) {
                    // Empty: readiness is cleared, so the next await waits
                    // for the kernel.
                    Err(_would_block) => break,
                    Ok(Ok(Ok(Some(ev)))) => self.pending.push(ev),
                    Ok(Ok(Ok(None))) => {}
                    Ok(Ok(Err(e)) | Err(e)) => return Err(Error::Netlink(e)),
                }
            }
            if !self.pending.is_empty() {
                return Ok(std::mem::take(&mut self.pending));
            }
        }
    }

    /// One message off the socket, as `try_io` wants it: `WouldBlock` when
    /// the socket is empty; the overflow event for `ENOBUFS`; `Ok(None)` for
    /// a message that is no kernel uevent (or `EINTR`); `Ok(Err(_))` for any
    /// other error.
    fn read_one(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<io::Result<Option<Uevent>>> {
        use nix::errno::Errno;
        match recvfrom::<NetlinkAddr>(fd.as_raw_fd(), buf) {
            Ok((n, from)) => Ok(Ok((from.map(|a| a.pid()) == Some(0))
                .then(|| Uevent::parse(&buf[..n]))
                .flatten())),
            Err(Errno::EAGAIN) => Err(io::ErrorKind::WouldBlock.into()),
            Err(Errno::EINTR) => Ok(Ok(None)),
            Err(Errno::ENOBUFS) => Ok(Ok(Some(Uevent::overflow()))),
            Err(e) => Ok(Err(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_kernel_message() {
        let msg = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0\0SUBSYSTEM=tty\0MAJOR=188\0MINOR=0\0DEVNAME=ttyUSB0\0SEQNUM=4242\0";
        let ev = Uevent::parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert!(ev.devpath.ends_with("/tty/ttyUSB0"));
        assert_eq!(ev.subsystem.as_deref(), Some("tty"));
        assert_eq!(ev.devname.as_deref(), Some("ttyUSB0"));
        assert_eq!(
            (ev.major, ev.minor, ev.seqnum),
            (Some(188), Some(0), Some(4242))
        );
        assert!(ev.wants_rescan());
        assert_eq!(Uevent::parse(b"libudev\0\xfe\xed"), None);
        let ev = Uevent::parse(b"change@/devices/system/cpu/cpu0\0SUBSYSTEM=cpu\0").unwrap();
        assert!(!ev.wants_rescan());
    }

    fn ev(action: &str, subsystem: &str, devpath: &str) -> Uevent {
        let msg = format!("{action}@{devpath}\0SUBSYSTEM={subsystem}\0");
        Uevent::parse(msg.as_bytes()).unwrap()
    }

    #[test]
    fn the_most_telling_event_of_a_batch() {
        assert_eq!(Uevent::most_telling(vec![]), None);
        let cpu = ev("change", "cpu", "/devices/system/cpu/cpu0");
        let tty1 = ev("change", "tty", "/devices/virtual/tty/tty1");
        let tty2 = ev("change", "tty", "/devices/virtual/tty/tty2");
        let drm = ev("add", "drm", "/devices/pci0000:00/drm/card0");
        // A rescan beats nothing, the latest of equals wins.
        let pick = Uevent::most_telling(vec![tty1.clone(), cpu.clone(), tty2.clone(), cpu.clone()]);
        assert_eq!(pick, Some(tty2.clone()));
        // A GPU's subsystem beats a rescan: the inventory is taken too.
        let pick = Uevent::most_telling(vec![tty1.clone(), drm.clone(), tty2.clone()]);
        assert_eq!(pick, Some(drm.clone()));
        // An overflow beats everything.
        let pick = Uevent::most_telling(vec![drm, Uevent::overflow(), tty1]);
        assert_eq!(pick.unwrap().action, Uevent::OVERFLOW);
        assert_eq!(Uevent::most_telling(vec![cpu.clone()]), Some(cpu));
    }

    /// A burst of real kernel events is read whole by one `recv_batch`
    /// (root only: writing a `uevent` file needs it).
    #[test]
    fn a_burst_comes_as_one_batch() {
        let tty = "/sys/class/tty/tty1/uevent";
        if !nix::unistd::geteuid().is_root() || !std::path::Path::new(tty).exists() {
            eprintln!("SKIPPED: a_burst_comes_as_one_batch: needs root and {tty}");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut l = UeventListener::bind().unwrap();
            const N: usize = 500;
            // The kernel queues each event before the write returns.
            for _ in 0..N {
                std::fs::write(tty, "change").unwrap();
            }
            let batch = tokio::time::timeout(std::time::Duration::from_secs(10), l.recv_batch())
                .await
                .expect("no uevent within 10 s")
                .unwrap();
            let ours = batch
                .iter()
                .filter(|e| e.action == "change" && e.devpath.ends_with("/tty/tty1"))
                .count();
            // Other programs may poke tty1 meanwhile: at least ours.
            assert!(
                ours >= N,
                "{ours} of {N} in the first batch of {}",
                batch.len()
            );
            assert!(!batch.iter().any(|e| e.action == Uevent::OVERFLOW));
        });
    }
}
