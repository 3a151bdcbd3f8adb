//! The messages that reach the event loop, and its answers to requests.
//!
//! Tasks (runs, timers, health probes, the control socket, uevents,
//! blocking work) talk to the loop only through [`Msg`]; they never touch a
//! unit's state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use jarvis_proto::{Request, Response};
use jarvis_unit::{Kind, Unit};
use tokio::sync::oneshot;

use crate::engine::machine::Event;
use crate::engine::{Devices, ReplyId};
use crate::logs::UnitLog;
use crate::placement::GpuInfo;

/// Everything that reaches the event loop.
pub enum Msg {
    /// An event for one unit's state machine (a spawn failed, a run ended,
    /// a timer fired, a probe answered).
    Unit { name: String, event: Event },
    /// A run is up: its main process and the device nodes it got.
    Started {
        name: String,
        gen: u64,
        pid: i32,
        devices: Vec<PathBuf>,
    },
    Request {
        req: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// SIGTERM/SIGINT: stop every unit, then return.
    Shutdown,
    /// The kernel announced a hardware change (a uevent).
    Hardware(jarvis_hardware::Uevent),
    /// A rescan after uevents: each device unit's devices, and the GPUs
    /// when they were probed again.
    Rescanned {
        devices: BTreeMap<String, Devices>,
        gpus: Option<Vec<GpuInfo>>,
    },
    /// `up`: the units directory, loaded and validated off the loop.
    Loaded {
        id: ReplyId,
        set: Result<Vec<(Unit, Devices)>, String>,
        /// Each unit's definition digest.
        defs: jarvis_gitops::Definitions,
    },
    /// A step of an apply or rollback (see `daemon::apply`).
    Apply(crate::daemon::apply::ApplyMsg),
    /// A benchmark result, checked and stored off the loop.
    Recommended {
        id: ReplyId,
        unit: String,
        result: Result<(Kind, String), String>,
    },
}

/// The loop's answer to a request.
pub enum Reply {
    Now(Response),
    /// Answered later (stop, down, wait, status, up).
    Later(oneshot::Receiver<Response>),
    /// A log to stream from.
    Log(Arc<UnitLog>),
    /// An answer already encoded as a frame, shared by every caller that
    /// asked for the same (`status` of all units under load).
    Frame(oneshot::Receiver<Arc<Vec<u8>>>),
}
