//! The messages that reach the event loop, and its answers to requests.
//!
//! Tasks (runs, timers, health probes, the control socket, uevents) talk to
//! the loop only through [`Msg`]; they never touch a unit's state.

use std::path::PathBuf;
use std::sync::Arc;

use jarvis_proto::{Request, Response};
use tokio::sync::oneshot;

use crate::logs::UnitLog;
use crate::machine::Event;

/// Everything that reaches the event loop.
pub enum Msg {
    Unit {
        name: String,
        event: Event,
    },
    Request {
        req: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// SIGTERM/SIGINT: stop every unit, then return.
    Shutdown,
    /// A run started with these device nodes.
    DevicesInUse {
        name: String,
        gen: u64,
        paths: Vec<PathBuf>,
    },
    /// The kernel announced a hardware change (a uevent).
    Hardware(jarvis_hardware::Uevent),
}

/// The loop's answer to a request.
pub enum Reply {
    Now(Response),
    /// Answered later, when the units settle (stop, down, wait).
    Later(oneshot::Receiver<Response>),
    /// A log to stream from.
    Log(Arc<UnitLog>),
}

