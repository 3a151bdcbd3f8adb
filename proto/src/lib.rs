//! jarvis-proto: what travels over jarvisd's control socket.
//!
//! A connection starts with a [`Hello`] from each side (the client's first),
//! carrying [`PROTOCOL_VERSION`]; the daemon refuses other versions (a
//! daemon that cannot take the connection answers with [`REFUSED_VERSION`]
//! and an `Error`, without waiting for the client's hello). Then the
//! client sends one [`Request`] and reads [`Response`]s: exactly one for every
//! request except `Logs`, answered with `LogData` frames then `LogEnd`, or,
//! with `follow`, `LogData` until the client hangs up.
//!
//! `Exec` also carries file descriptors. Right after the request's frame the
//! client sends one more byte, [`EXEC_FDS_BYTE`], in one `sendmsg` with an
//! `SCM_RIGHTS` message of exactly three descriptors: the command's stdin,
//! stdout and stderr (for a tty, the slave side of a pty the client opened,
//! three times). jarvisd starts the command with them as its stdio, and
//! answers with one `Exited` (or an `Error` when it could not start). The
//! client sends nothing more; if it closes the connection before the answer,
//! jarvisd kills the command.
//!
//! Every message is a frame: a 4-byte big-endian length, then that many bytes
//! of JSON. Frames over [`MAX_FRAME`] are refused before they are read, and
//! a frame's buffer grows as its bytes arrive (from [`FRAME_CHUNK`]), so a
//! length alone reserves nothing.
//!
//! These are wire types only; the supervisor's own types live in the
//! supervisor crate and are converted at the boundary.

use std::io::{Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// The version in the hello of a jarvisd that cannot take the connection
/// (it is at its connection limit): an `Error` frame saying why follows,
/// then the connection closes.
pub const REFUSED_VERSION: u32 = 0;
/// The largest frame either side accepts: 8 MiB.
pub const MAX_FRAME: usize = 8 << 20;
/// The most a frame's buffer holds before its bytes arrive: a frame grows
/// as it is read, so a peer that announces 8 MiB and sends nothing costs
/// this much, not 8 MiB.
pub const FRAME_CHUNK: usize = 16 << 10;
/// The most text one `LogData` frame carries: a long log comes in several.
pub const LOG_CHUNK: usize = 1 << 20;
/// Where jarvisd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/jarvis/jarvis.sock";
/// Both binaries take the socket path from this variable when it is set.
pub const SOCKET_ENV: &str = "JARVIS_SOCKET";
/// The byte that carries an `Exec` request's descriptors (see above).
pub const EXEC_FDS_BYTE: u8 = b'F';

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// "jarvisctl 0.1.0", "jarvisd 0.1.0": for messages only.
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Units by name; empty means all.
    Status {
        units: Vec<String>,
    },
    /// Read the units directory again and reconcile.
    Up,
    /// Answer when every wanted unit is ready (running, healthy where it has a
    /// check, or completed) or one has failed, or after `timeout_ms`.
    Wait {
        timeout_ms: u64,
    },
    /// Stop every unit.
    Down,
    Start {
        units: Vec<String>,
    },
    Stop {
        units: Vec<String>,
    },
    Restart {
        units: Vec<String>,
    },
    /// The last `lines` lines of the unit's log; with `follow`, then every new
    /// line as it is written. The answer is `LogData` frames (each at most
    /// [`LOG_CHUNK`] of text, ending at the end of a line where lines are
    /// shorter than that), then `LogEnd` unless following.
    Logs {
        unit: String,
        lines: Option<usize>,
        follow: bool,
        /// Only lines written at or after this time: RFC 3339 in UTC
        /// (`2026-11-29T14:01:48.5Z`). Lines of unknown time (written by an
        /// older jarvis) count as old as the line before them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<String>,
        /// Each line starts with the time it was written, as docker's
        /// `--timestamps` shows it: RFC 3339 in UTC with nine fractional
        /// digits, then a space (`2026-11-29T14:01:48.123456789Z hello`).
        /// A line whose time is not known comes as it is.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        timestamps: bool,
    },
    /// Pull an image; answered with `Progress` frames, then `Pulled`.
    ImagePull {
        reference: String,
    },
    ImageList,
    /// Remove an image no running unit uses, and what only it used.
    ImageRemove {
        reference: String,
    },
    /// Import an OCI image layout (a directory or a tar of one) as `tag`.
    ImageImport {
        path: String,
        tag: String,
    },
    /// Begin a placement benchmark of `unit`: answered with its `[bench]`
    /// settings and forms (`BenchPlan`); the unit's state now is restored by
    /// `BenchForm { form: None }`.
    BenchBegin {
        unit: String,
    },
    /// Run `unit` as `form` (`native`|`container`), stopping it first if it
    /// runs otherwise; answered once it is running and healthy. `None`: the
    /// benchmark is over, put the unit back as it was.
    BenchForm {
        unit: String,
        form: Option<UnitKind>,
        timeout_ms: u64,
    },
    /// Store a benchmark's result (the JSON `jarvisctl bench --json` prints):
    /// `run = "auto"` follows its recommendation from now on.
    BenchResult {
        unit: String,
        result: serde_json::Value,
    },
    /// The bridge networks in use: answered with `Networks`.
    NetworkList,
    /// The named volumes: answered with `Volumes`.
    VolumeList,
    /// Remove a named volume and its content; refused while a unit that
    /// uses it runs or starts.
    VolumeRemove {
        name: String,
    },
    /// Run `argv` inside a running unit: a container's namespaces, cgroup,
    /// user and capabilities, or a native unit's cgroup and user; `user`
    /// instead of the unit's. The descriptors follow the frame (see the
    /// module's documentation); answered with `Exited` once it ends.
    Exec {
        unit: String,
        argv: Vec<String>,
        user: Option<String>,
        /// The descriptors are a terminal (the command gets it as its
        /// controlling terminal where the form allows).
        tty: bool,
    },
    /// The units as jarvisd runs them (empty: all): the form it runs, env
    /// files read in under `[env]`, values of keys that look secret
    /// redacted; answered with `Config`.
    Config {
        units: Vec<String>,
    },
    /// Fetch `repo` (a path or URL; `None`: the one the active generation
    /// came from), check `rev` out (`None`: the head of its default branch)
    /// as a new generation whose units are in `path` (`None`: the
    /// repository's root), validate it, and carry out the plan: then wait up
    /// to `timeout_ms` for every started or restarted unit to be running
    /// (healthy where it has a check) or completed, and put the generation
    /// before back if one is not. With `dry_run` only the plan. Answered
    /// with `Applied`.
    Apply {
        repo: Option<String>,
        rev: Option<String>,
        path: Option<String>,
        dry_run: bool,
        timeout_ms: u64,
    },
    /// The generations: answered with `Generations`.
    Generations,
    /// Make generation `number` (`None`: the one active before the active
    /// one) active again, through the same health gate as `Apply`.
    /// Answered with `Applied`.
    Rollback {
        number: Option<u64>,
        timeout_ms: u64,
    },
    /// The events kept in memory that are at most `since_ms` old (`None`:
    /// none of them), of `units` (empty: all, jarvisd's own included), as
    /// `Event` frames; then, with `follow`, each new one as it happens,
    /// else `EventsEnd`.
    Events {
        since_ms: Option<u64>,
        units: Vec<String>,
        follow: bool,
    },
}

/// What `Config` shows instead of the value of an env key with PASSWORD,
/// SECRET, TOKEN or KEY in its name.
pub const REDACTED: &str = "<redacted>";

/// Whether an env key's value is hidden by `Config`.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY"]
        .iter()
        .any(|w| k.contains(w))
}

impl Request {
    /// Requests that change something; the daemon logs who sent them.
    pub fn is_mutating(&self) -> bool {
        !matches!(
            self,
            Request::Status { .. }
                | Request::Wait { .. }
                | Request::Logs { .. }
                | Request::NetworkList
                | Request::VolumeList
                | Request::Config { .. }
                | Request::Generations
                | Request::Events { .. }
                | Request::Apply { dry_run: true, .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Status(StatusReport),
    Up(UpReport),
    /// A mutating request was carried out; `message` says what happened.
    Done {
        message: String,
    },
    Wait(WaitReport),
    LogData {
        data: String,
    },
    /// The end of a non-following log answer.
    LogEnd,
    /// How a pull goes, layer by layer.
    Progress(PullProgress),
    /// A pull or import finished.
    Pulled(ImageInfo),
    Images {
        images: Vec<ImageInfo>,
    },
    BenchPlan(BenchPlan),
    Networks {
        networks: Vec<NetworkInfo>,
    },
    Volumes {
        volumes: Vec<VolumeInfo>,
    },
    /// An `Exec`'s command ended: its exit code, 128 + the signal number
    /// when a signal killed it.
    Exited {
        code: i32,
    },
    /// Units as jarvisd runs them, one JSON object each (the unit file's
    /// keys, as jarvis-unit's `Unit` serializes), the answer to `Config`.
    /// Inside jarvisd it also carries the unit an `Exec` runs in, then
    /// unredacted; that one never goes on the wire.
    Config {
        units: Vec<serde_json::Value>,
    },
    Error {
        message: String,
    },
    /// How an `Apply` or a `Rollback` went.
    Applied(ApplyReport),
    Generations {
        generations: Vec<GenerationInfo>,
    },
    /// One event (the answer to `Events`, one frame each).
    Event(Event),
    /// The end of a non-following `Events` answer.
    EventsEnd,
}

/// Something that happened to a unit or to jarvisd, as `jarvisctl events
/// --json` prints it (one object per line) and `/api/v1/events` sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Counts up from 1 for each event since jarvisd started; a gap means
    /// events were missed (a reader too slow for the stream).
    pub seq: u64,
    /// When it happened, RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// The unit, or null for jarvisd's own (a rollback).
    pub unit: Option<String>,
    pub kind: EventKind,
    /// What happened, in words: the cause of a restart, why a unit failed.
    pub message: String,
}

/// Events kept in memory for `--since` (older ones are dropped first).
pub const EVENTS_KEPT: usize = 1000;

/// What `jarvisctl apply --json` prints (pinned): the plan, the generation,
/// the result, and why when it is not `applied` or `planned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub plan: ApplyPlan,
    /// The generation made (or made active again); for `planned` and
    /// `invalid`, the number the revision would get.
    pub generation: u64,
    pub result: ApplyResult,
    pub reason: Option<String>,
    /// The commit checked out (not part of the pinned JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// The units a plan starts, restarts, stops and leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyPlan {
    pub start: Vec<String>,
    pub restart: Vec<String>,
    pub stop: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyResult {
    /// The generation is active and passed its health gate.
    Applied,
    /// It failed its health gate: the generation before is back.
    RolledBack,
    /// A unit of it is invalid: nothing changed.
    Invalid,
    /// `--dry-run`: the plan only.
    Planned,
}

impl ApplyResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyResult::Applied => "applied",
            ApplyResult::RolledBack => "rolled-back",
            ApplyResult::Invalid => "invalid",
            ApplyResult::Planned => "planned",
        }
    }
}

/// One generation, as `jarvisctl generations --json` prints it (pinned:
/// number, revision, date, state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationInfo {
    pub number: u64,
    pub revision: String,
    /// When it was made, RFC 3339 in UTC.
    pub date: String,
    /// `active`, `previous`, `failed` or `rolled-back`.
    pub state: String,
    /// Why it failed or was rolled back (not in the pinned JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `jarvisctl bench` needs to know of a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchPlan {
    pub unit: String,
    /// `ollama`, `openai` or `llamacpp`
    pub api: String,
    pub url: String,
    pub model: Option<String>,
    pub prompt: String,
    pub max_tokens: u32,
    pub requests: u32,
    pub rounds: u32,
    pub max_slowdown: f64,
    /// The forms the unit declares.
    pub forms: Vec<UnitKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullProgress {
    /// The layer's digest.
    pub layer: String,
    /// Its place in the image, from 0 (bottom), of `count`.
    pub index: usize,
    pub count: usize,
    pub done: u64,
    pub total: u64,
    /// `cached`, `downloading`, `unpacking`, `ready`
    pub phase: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The canonical reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// Bytes stored (compressed layers, config, manifest).
    pub size: u64,
    pub created: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub units: Vec<UnitStatus>,
    /// The host's GPUs, as last probed (at most a few seconds old); absent
    /// when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuStatus>,
    /// What keeps jarvisd from running the declared units as written: e.g.
    /// a units directory that did not load at boot (the last good set runs
    /// instead). Empty when all is well; absent from the JSON then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One unit as `status --json` shows it. The fields up to `reason` are
/// pinned for scripts; more may be added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    /// The form the unit runs as now.
    pub kind: UnitKind,
    pub state: UnitState,
    pub pid: Option<i32>,
    pub restarts: u32,
    /// Null without a health check.
    pub health: Option<Health>,
    /// The last exit: the code, or 128 + the signal number when killed.
    pub exit_code: Option<i32>,
    /// The unit's cgroup path, as in /proc/PID/cgroup.
    pub cgroup: String,
    /// Why the unit is failed, waiting, or about to restart.
    pub reason: Option<String>,
    pub description: Option<String>,
    /// The signal that ended the last run, e.g. "SIGKILL".
    pub exit_signal: Option<String>,
    /// Whether the kernel's OOM killer ended the last run.
    pub oom_killed: bool,
    pub uptime_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_max_bytes: Option<u64>,
    pub cpu_usage_ns: Option<u64>,
    pub tasks: Option<u64>,
    /// Whether the unit is meant to run (`up`/`start`) or was stopped.
    pub wanted: bool,
    /// The form the unit runs as, for units that declare both; and why.
    pub form: Option<UnitKind>,
    pub form_reason: Option<String>,
    /// Where a unit with `[gpu]` runs: `{"device": "cpu"}` or
    /// `{"device": "gpu", "gpus": ["GPU-..."]}`; null for units without
    /// `[gpu]` and while one waits.
    pub placement: Option<Placement>,
    /// The bridge networks the unit is on, with its address on each (a unit
    /// in another's namespace, `network = "unit:NAME"`, shows NAME's).
    #[serde(default)]
    pub networks: Vec<NetworkAddress>,
    /// Published ports as `docker ps` shows them: `0.0.0.0:8080->80/tcp`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// A container that runs (or would run) with `privileged = true`:
    /// every capability and device, no seccomp filter.
    #[serde(default)]
    pub privileged: bool,
    /// For a unit placed on a GPU: whether it really runs there (`ok`) or
    /// fell back to the CPU (`fallback`, with `gpu_reason`); null when not
    /// checked (no GPU placement, or not checked yet).
    #[serde(default)]
    pub gpu: Option<GpuCheck>,
    /// Runs the kernel's OOM killer ended since jarvisd started.
    #[serde(default)]
    pub oom_kills: u32,
    /// Why `gpu` is `fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_reason: Option<String>,
    /// GPU memory the unit's processes hold now (NVML's per-process list;
    /// AMD: their DRM fdinfo), summed over its GPUs; null when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_bytes: Option<u64>,
    /// GPU memory promised to the unit on each of its GPUs (`[gpu]
    /// min_vram`); null without a GPU placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_given_bytes: Option<u64>,
}

/// One GPU as `status --json` shows it (`gpus`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuStatus {
    /// The id placements name: the UUID (NVIDIA) or the PCI address (AMD).
    pub id: String,
    /// `nvidia` or `amd`.
    pub vendor: String,
    pub name: String,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    /// NVML's utilisation (AMD: `gpu_busy_percent`), percent.
    pub utilization_percent: Option<u32>,
    /// The units placed on it now.
    pub units: Vec<String>,
}

/// A unit's address on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddress {
    pub name: String,
    pub ip: String,
}

/// One named volume, as `jarvisctl volume ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    /// Its data directory on the host (what containers mount).
    pub path: String,
    /// The bytes of its files; null when they could not be counted.
    pub size: Option<u64>,
    /// The units whose files name it, whether they run or not.
    pub units: Vec<String>,
}

/// One bridge network, as `jarvisctl network ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub name: String,
    /// e.g. `10.89.0.0/24`
    pub subnet: String,
    pub gateway: String,
    /// The host's bridge interface, e.g. `jarvis0`.
    pub bridge: String,
    /// The units attached now.
    pub units: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub device: Device,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Vec<String>>,
}

/// A closed set of words on the wire. Each variant's spelling is written
/// once: serde uses it, and so do `as_str`, `Display`, `FromStr` and `ALL`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord {
                        word: s.to_string(),
                        expected: $name::ALL.iter().map(|v| v.as_str()).collect(),
                    })
            }
        }
    };
}

/// A string that is none of a wire enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {word:?}; expected one of: {}", expected.join(", "))]
pub struct UnknownWord {
    pub word: String,
    pub expected: Vec<&'static str>,
}

wire_enum! {
    /// How a unit runs: `kind` and `form` in [`UnitStatus`].
    pub enum UnitKind {
        Native = "native",
        Container = "container",
    }
}

wire_enum! {
    /// Where a unit is in its life: `state` in [`UnitStatus`].
    pub enum UnitState {
        Waiting = "waiting",
        Starting = "starting",
        Running = "running",
        Stopping = "stopping",
        Stopped = "stopped",
        Exited = "exited",
        Failed = "failed",
    }
}

wire_enum! {
    /// What an [`Event`] is about.
    pub enum EventKind {
        /// A run is up (pid in the message).
        Started = "started",
        Healthy = "healthy",
        Unhealthy = "unhealthy",
        /// An automatic restart, with its cause.
        Restarted = "restarted",
        /// The kernel's OOM killer ended a run.
        OomKilled = "oom-killed",
        /// The unit failed and will not be restarted.
        Failed = "failed",
        /// A run ended and the unit is done (exit code 0 for a job).
        Exited = "exited",
        /// Stopped on purpose.
        Stopped = "stopped",
        /// A unit with `[gpu]` was placed on a GPU or the CPU.
        Placed = "placed",
        /// A `[[device]]` the unit needs went away.
        DeviceGone = "device-gone",
        /// It is back.
        DeviceBack = "device-back",
        /// A unit placed on a GPU runs on the CPU.
        GpuFallback = "gpu-fallback",
        /// It runs on its GPU again.
        GpuOk = "gpu-ok",
        /// A generation failed its health gate and the one before is back.
        Rollback = "rollback",
    }
}

wire_enum! {
    /// `gpu` in [`UnitStatus`]: whether a unit placed on a GPU runs there.
    pub enum GpuCheck {
        Ok = "ok",
        Fallback = "fallback",
    }
}

wire_enum! {
    /// What a unit's health check says: `health` in [`UnitStatus`].
    pub enum Health {
        Starting = "starting",
        Healthy = "healthy",
        Unhealthy = "unhealthy",
    }
}

wire_enum! {
    /// What a unit with `[gpu]` was placed on: `device` in [`Placement`].
    pub enum Device {
        Cpu = "cpu",
        Gpu = "gpu",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpReport {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitReport {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes is over the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    #[error("bad message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A message as one frame (length, then JSON), ready to write: what
/// [`write_frame`] sends, for an answer written to many peers.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    encode(msg)
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn check_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Writes one frame (blocking).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame (blocking). A clean EOF before the header is `Closed`.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = check_len(header)?;
    let mut body = Vec::with_capacity(len.min(FRAME_CHUNK));
    r.take(len as u64).read_to_end(&mut body)?;
    whole(&body, len)?;
    Ok(serde_json::from_slice(&body)?)
}

/// A body that ended before its length is an unexpected end of file, as
/// `read_exact` says it.
fn whole(body: &[u8], len: usize) -> Result<(), FrameError> {
    if body.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the frame ended after {} of its {len} bytes", body.len()),
        )
        .into());
    }
    Ok(())
}

#[cfg(feature = "async")]
pub mod nonblocking {
    //! The same framing over tokio streams.
    use super::*;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    pub async fn write_frame<T: Serialize>(
        w: &mut (impl AsyncWrite + Unpin),
        msg: &T,
    ) -> Result<(), FrameError> {
        w.write_all(&encode(msg)?).await?;
        w.flush().await?;
        Ok(())
    }

    pub async fn read_frame<T: DeserializeOwned>(
        r: &mut (impl AsyncRead + Unpin),
    ) -> Result<T, FrameError> {
        let mut header = [0u8; 4];
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FrameError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
        let len = check_len(header)?;
        let mut body = Vec::with_capacity(len.min(FRAME_CHUNK));
        r.take(len as u64).read_to_end(&mut body).await?;
        whole(&body, len)?;
        Ok(serde_json::from_slice(&body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let req = Request::Logs {
            unit: "web".into(),
            lines: Some(10),
            follow: true,
            since: Some("2026-11-29T14:01:48.5Z".into()),
            timestamps: true,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        assert_eq!(&buf[..4], &((buf.len() - 4) as u32).to_be_bytes());
        let back: Request = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn a_logs_request_from_an_older_client_reads_with_the_defaults() {
        let old = r#"{"request":"logs","unit":"web","lines":null,"follow":false}"#;
        let req: Request = serde_json::from_str(old).unwrap();
        assert_eq!(
            req,
            Request::Logs {
                unit: "web".into(),
                lines: None,
                follow: false,
                since: None,
                timestamps: false,
            }
        );
        // And such a request is sent as it was.
        assert_eq!(serde_json::to_string(&req).unwrap(), old);
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let mut buf = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(b"{}");
        let err = read_frame::<Request>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(n) if n == MAX_FRAME + 1));
    }

    /// A peer that announces `announced` bytes, sends `sent` of them and
    /// stops: records the largest buffer a read asked it to fill.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        largest: usize,
    }

    impl Trickle {
        fn new(announced: usize, sent: usize) -> Trickle {
            let mut data = (announced as u32).to_be_bytes().to_vec();
            data.extend(std::iter::repeat_n(b' ', sent));
            Trickle {
                data,
                at: 0,
                largest: 0,
            }
        }

        fn give(&mut self, buf: &mut [u8]) -> usize {
            if self.at >= 4 {
                self.largest = self.largest.max(buf.len());
            }
            let n = buf.len().min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            n
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            Ok(self.give(buf))
        }
    }

    #[cfg(feature = "async")]
    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.give(buf.initialize_unfilled());
            buf.advance(n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_frame_is_allocated_as_its_bytes_arrive() {
        // 8 MiB announced, 100 bytes sent: the reader is never handed a
        // buffer of the announced size.
        let mut peer = Trickle::new(MAX_FRAME, 100);
        let err = read_frame::<Request>(&mut peer).unwrap_err();
        assert!(
            matches!(&err, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        assert!(
            peer.largest <= FRAME_CHUNK,
            "a read was given {} bytes to fill for 100 that came",
            peer.largest
        );
        // A whole frame still reads, in pieces.
        let req = Request::Status {
            units: vec!["x".repeat(3 * FRAME_CHUNK)],
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let back: Request = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, req);
    }

    #[cfg(feature = "async")]
    #[test]
    fn a_frame_is_allocated_as_its_bytes_arrive_async() {
        use std::future::Future;
        use std::task::{Context, Poll};
        let mut peer = Trickle::new(MAX_FRAME, 100);
        // The peer is always ready: one poll finishes the read.
        let polled = {
            let fut = nonblocking::read_frame::<Request>(&mut peer);
            let mut fut = std::pin::pin!(fut);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            fut.as_mut().poll(&mut cx)
        };
        let Poll::Ready(Err(err)) = polled else {
            panic!("the read did not end with an error")
        };
        assert!(
            matches!(&err, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        assert!(
            peer.largest <= FRAME_CHUNK,
            "a read was given {} bytes to fill for 100 that came",
            peer.largest
        );
    }

    #[test]
    fn eof_is_closed() {
        let err = read_frame::<Request>(&mut [].as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::Closed));
    }

    #[test]
    fn request_wire_form_is_tagged() {
        let json = serde_json::to_value(Request::Stop {
            units: vec!["a".into()],
        })
        .unwrap();
        assert_eq!(json["request"], "stop");
        assert!(Request::Up.is_mutating());
        assert!(!Request::Status { units: vec![] }.is_mutating());
        let rm = Request::VolumeRemove { name: "pg".into() };
        assert_eq!(
            serde_json::to_string(&rm).unwrap(),
            r#"{"request":"volume-remove","name":"pg"}"#
        );
        assert!(rm.is_mutating() && !Request::VolumeList.is_mutating());
    }

    #[test]
    fn secret_looking_keys() {
        for k in [
            "DB_PASSWORD",
            "api_key",
            "GITHUB_TOKEN",
            "SECRET",
            "KEYRING",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["PATH", "HOME", "DB_HOST", "TZ"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn exec_wire_form() {
        let req = Request::Exec {
            unit: "web".into(),
            argv: vec!["id".into(), "-u".into()],
            user: None,
            tty: false,
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"request":"exec","unit":"web","argv":["id","-u"],"user":null,"tty":false}"#
        );
        assert!(req.is_mutating());
        assert_eq!(
            serde_json::to_string(&Response::Exited { code: 3 }).unwrap(),
            r#"{"response":"exited","code":3}"#
        );
    }

    /// The spellings scripts see in `status --json`: pinned, every variant.
    #[test]
    fn wire_words_keep_their_spelling() {
        fn check<T>(pairs: &[(T, &str)], all: &[T])
        where
            T: Serialize
                + DeserializeOwned
                + std::fmt::Debug
                + PartialEq
                + Copy
                + std::str::FromStr,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            let listed: Vec<T> = pairs.iter().map(|(v, _)| *v).collect();
            assert_eq!(listed, all, "every variant is pinned here");
            for (v, text) in pairs {
                let json = format!("\"{text}\"");
                assert_eq!(serde_json::to_string(v).unwrap(), json);
                assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), v);
                assert_eq!(&text.parse::<T>().unwrap(), v);
            }
        }
        check(
            &[
                (UnitKind::Native, "native"),
                (UnitKind::Container, "container"),
            ],
            UnitKind::ALL,
        );
        check(
            &[
                (UnitState::Waiting, "waiting"),
                (UnitState::Starting, "starting"),
                (UnitState::Running, "running"),
                (UnitState::Stopping, "stopping"),
                (UnitState::Stopped, "stopped"),
                (UnitState::Exited, "exited"),
                (UnitState::Failed, "failed"),
            ],
            UnitState::ALL,
        );
        check(
            &[
                (Health::Starting, "starting"),
                (Health::Healthy, "healthy"),
                (Health::Unhealthy, "unhealthy"),
            ],
            Health::ALL,
        );
        check(&[(Device::Cpu, "cpu"), (Device::Gpu, "gpu")], Device::ALL);
        assert_eq!(UnitState::Failed.to_string(), "failed");
        let e = "Running".parse::<UnitState>().unwrap_err().to_string();
        assert!(
            e.contains("\"Running\"") && e.contains("running, stopping"),
            "{e}"
        );
    }

    /// A whole `status --json` entry, byte for byte as the string-typed
    /// fields wrote it.
    #[test]
    fn unit_status_json_is_unchanged() {
        let pinned = r#"{"name":"llm","kind":"native","state":"running","pid":42,"restarts":1,"health":"healthy","exit_code":null,"cgroup":"/jarvis/llm","reason":null,"description":null,"exit_signal":null,"oom_killed":false,"uptime_ms":5,"memory_bytes":null,"memory_max_bytes":null,"cpu_usage_ns":null,"tasks":null,"wanted":true,"form":"container","form_reason":"run = \"container\"","placement":{"device":"gpu","gpus":["GPU-1"]},"networks":[{"name":"default","ip":"10.89.0.2"}],"ports":["0.0.0.0:8080->80/tcp"],"privileged":true,"gpu":null,"oom_kills":0}"#;
        let u = UnitStatus {
            name: "llm".into(),
            kind: UnitKind::Native,
            state: UnitState::Running,
            pid: Some(42),
            restarts: 1,
            health: Some(Health::Healthy),
            exit_code: None,
            cgroup: "/jarvis/llm".into(),
            reason: None,
            description: None,
            exit_signal: None,
            oom_killed: false,
            uptime_ms: Some(5),
            memory_bytes: None,
            memory_max_bytes: None,
            cpu_usage_ns: None,
            tasks: None,
            wanted: true,
            form: Some(UnitKind::Container),
            form_reason: Some("run = \"container\"".into()),
            placement: Some(Placement {
                device: Device::Gpu,
                gpus: Some(vec!["GPU-1".into()]),
            }),
            networks: vec![NetworkAddress {
                name: "default".into(),
                ip: "10.89.0.2".into(),
            }],
            ports: vec!["0.0.0.0:8080->80/tcp".into()],
            privileged: true,
            gpu: None,
            oom_kills: 0,
            gpu_reason: None,
            vram_bytes: None,
            vram_given_bytes: None,
        };
        assert_eq!(serde_json::to_string(&u).unwrap(), pinned);
        assert_eq!(serde_json::from_str::<UnitStatus>(pinned).unwrap(), u);
        // An older daemon's answer, without networks and ports, still reads.
        let (older, _) = pinned.split_once(r#","networks""#).unwrap();
        let older = serde_json::from_str::<UnitStatus>(&format!("{older}}}")).unwrap();
        assert!(older.networks.is_empty() && older.ports.is_empty() && !older.privileged);
        let cpu = Placement {
            device: Device::Cpu,
            gpus: None,
        };
        assert_eq!(serde_json::to_string(&cpu).unwrap(), r#"{"device":"cpu"}"#);
    }

    #[test]
    fn apply_and_generations_are_pinned() {
        let report = ApplyReport {
            plan: ApplyPlan {
                start: vec!["c".into()],
                restart: vec!["b".into()],
                stop: vec![],
                unchanged: vec!["a".into()],
            },
            generation: 3,
            result: ApplyResult::RolledBack,
            reason: Some("b: unhealthy".into()),
            revision: None,
        };
        let pinned = r#"{"plan":{"start":["c"],"restart":["b"],"stop":[],"unchanged":["a"]},"generation":3,"result":"rolled-back","reason":"b: unhealthy"}"#;
        assert_eq!(serde_json::to_string(&report).unwrap(), pinned);
        assert_eq!(serde_json::from_str::<ApplyReport>(pinned).unwrap(), report);
        for (r, s) in [
            (ApplyResult::Applied, "applied"),
            (ApplyResult::RolledBack, "rolled-back"),
            (ApplyResult::Invalid, "invalid"),
            (ApplyResult::Planned, "planned"),
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{s}\""));
            assert_eq!(r.as_str(), s);
        }
        let g = GenerationInfo {
            number: 1,
            revision: "abc".into(),
            date: "2026-11-29T14:00:00Z".into(),
            state: "active".into(),
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"number":1,"revision":"abc","date":"2026-11-29T14:00:00Z","state":"active"}"#
        );
        let apply = Request::Apply {
            repo: None,
            rev: Some("v2".into()),
            path: None,
            dry_run: true,
            timeout_ms: 1000,
        };
        assert_eq!(
            serde_json::to_string(&apply).unwrap(),
            r#"{"request":"apply","repo":null,"rev":"v2","path":null,"dry_run":true,"timeout_ms":1000}"#
        );
        assert!(!apply.is_mutating() && !Request::Generations.is_mutating());
        assert!(Request::Rollback {
            number: None,
            timeout_ms: 1
        }
        .is_mutating());
    }
}
