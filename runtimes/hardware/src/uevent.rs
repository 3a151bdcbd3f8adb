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
}

/// A bound uevent socket. Create it inside a tokio runtime (it registers
/// with the reactor).
pub struct UeventListener {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
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
        })
    }

    /// The next kernel uevent. Messages not sent by the kernel (sender pid
    /// not 0) are dropped. When the kernel dropped events (`ENOBUFS`), an
    /// event with action [`Uevent::OVERFLOW`] comes instead. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Uevent> {
        loop {
            let mut guard = self.fd.readable().await.map_err(Error::Netlink)?;
            let buf = &mut self.buf;
            let res = guard.try_io(|fd| {
                recvfrom::<NetlinkAddr>(fd.get_ref().as_raw_fd(), buf).map_err(io::Error::from)
            });
            match res {
                Err(_would_block) => continue,
                Ok(Ok((n, from))) => {
                    if from.map(|a| a.pid()) != Some(0) {
                        continue;
                    }
                    if let Some(ev) = Uevent::parse(&self.buf[..n]) {
                        return Ok(ev);
                    }
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(Uevent::overflow())
                }
                Ok(Err(e)) => return Err(Error::Netlink(e)),
            }
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
}
