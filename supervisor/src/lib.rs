//! jarvis-supervisor: `jarvisd`.
//!
//! - [`machine`]: the pure per-unit state machine (no IO);
//! - [`daemon`]: the event loop that owns all unit state and drives the
//!   machine;
//! - [`run`]: tasks that run processes and health checks and report back;
//! - [`control`]: the control socket;
//! - [`logs`], [`state`]: unit logs and the persisted state.

pub mod bench;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod events;
pub mod gpucheck;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod msg;
pub mod notify;
pub mod placement;
pub mod probe;
pub mod state;
pub mod trigger;

pub use engine::machine;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// jarvisd: runs and watches every service declared in the units directory.
#[derive(Debug, Parser)]
#[command(
    name = "jarvisd",
    version,
    about,
    long_about = None,
    after_help = "\
jarvisd runs as root in the foreground and logs to stderr. It starts each unit
(a native process or an OCI container) in its own cgroup, in dependency order;
restarts it when it fails; checks its health; and keeps it running when jarvisd
itself restarts. Steer it with jarvisctl (status, up, down, start, stop, logs).

Environment:
  JARVIS_LOG     what jarvisd logs: a tracing filter, e.g. JARVIS_LOG=debug
                 (default: info; per crate: JARVIS_LOG=info,jarvis_supervisor=debug)
  JARVIS_SOCKET  the control socket, as --socket; jarvisctl reads it too"
)]
pub struct Args {
    /// Directory of unit files (*.toml), one per unit. Without it jarvisd
    /// runs the active generation that `jarvisctl apply` deployed from git
    /// (none at first: no units).
    #[arg(long)]
    pub units: Option<PathBuf>,
    /// Where jarvisd keeps its state and the units' logs.
    #[arg(long, default_value = "/var/lib/jarvis")]
    pub state_dir: PathBuf,
    /// The control socket jarvisctl talks to.
    #[arg(long, env = jarvis_proto::SOCKET_ENV, default_value = jarvis_proto::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// A group (name or gid) whose members may use the socket (mode 0660);
    /// without it only root may (0600).
    #[arg(long)]
    pub socket_group: Option<String>,
    /// Units' cgroups are /<cgroup-parent>/<unit> in every hierarchy.
    #[arg(long, default_value = "jarvis")]
    pub cgroup_parent: String,
    /// A registry (HOST:PORT) to reach over plain HTTP, e.g. a local one for
    /// tests. Repeat for more.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Registry credentials for image pulls, in the format of podman's
    /// containers-auth.json and docker's config.json:
    /// {"auths": {"HOST:PORT": {"auth": "BASE64(USER:PASSWORD)"}}}. Read at
    /// each pull; it must not be readable by everyone. Without it,
    /// /etc/jarvis/auth.json if that exists, else pulls are anonymous.
    #[arg(long, value_name = "PATH")]
    pub auth_file: Option<PathBuf>,
    /// Where bridge networks get their subnets: a /24 each (or the whole
    /// pool if it is smaller).
    #[arg(long, value_name = "CIDR", default_value = jarvis_runtime::DEFAULT_SUBNET_POOL)]
    pub subnet_pool: ipnet::Ipv4Net,
    /// Where named volumes live (`DIR/NAME/_data`) [default:
    /// STATE_DIR/volumes].
    #[arg(long, value_name = "DIR")]
    pub volume_dir: Option<PathBuf>,
    /// The host's age identity, which decrypts the `.age` env files and
    /// secrets units name: an age identity file (age-keygen's) or an
    /// unencrypted SSH ed25519 private key (e.g. the host key, as agenix
    /// uses). Read at each start of a unit that needs it.
    #[arg(long, value_name = "FILE", default_value = jarvis_runtime::DEFAULT_AGE_IDENTITY)]
    pub age_identity: PathBuf,
    /// Log format on stderr (the level is JARVIS_LOG's).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A git repository of units (a URL or a path) to deploy from: jarvisd
    /// looks at --git-branch every --git-interval and applies each new
    /// revision as `jarvisctl apply` does (health gate, rollback). A
    /// revision rolled back or invalid is not tried again until the branch
    /// moves. `jarvisctl apply` without --repo uses it.
    #[arg(long, value_name = "URL", conflicts_with = "units")]
    pub git: Option<String>,
    /// The branch of --git whose head is applied.
    #[arg(long, value_name = "BRANCH", default_value = "main")]
    pub git_branch: String,
    /// How often jarvisd looks at --git-branch, e.g. "30s", "5m".
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub git_interval: std::time::Duration,
    /// The units directory inside the --git repository [default: its
    /// root].
    #[arg(long, value_name = "SUBDIR")]
    pub git_path: Option<String>,
    /// Open an HTTP listener on ADDR (e.g. 0.0.0.0:8787). It serves the
    /// push webhook POST /hooks/git (with --git and --webhook-secret-file),
    /// for Forgejo, Gitea and GitHub, and GET /api/v1/status (the JSON of
    /// `jarvisctl status --json`; from other hosts than loopback only with
    /// --http-token-file's token). It can read, and cannot change anything.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// The webhook's secret: a push is applied only when its body's
    /// HMAC-SHA256 under this secret matches its X-Hub-Signature-256 or
    /// X-Gitea-Signature header. One trailing newline is ignored.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// A bearer token for reading jarvisd's state over --http (GET
    /// /api/v1/status) from other hosts: they must send `Authorization:
    /// Bearer <the file's content>`; loopback peers need none. Without it,
    /// only loopback peers may read. The file must not be readable by
    /// everyone.
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// POST a notification to URL (http or https) when a unit fails, turns
    /// unhealthy, is OOM-killed or falls back from its GPU to the CPU, or a
    /// generation is rolled back. Repeat for more URLs. The same unit and
    /// kind is sent at most once a minute (the next one says how many were
    /// held back), and each URL gets at most 10 a minute. Logs show a URL
    /// without its query (e.g. Gotify's ?token=).
    #[arg(long = "notify-url", value_name = "URL")]
    pub notify_urls: Vec<String>,
    /// The body --notify-url gets: json (the event as `jarvisctl events
    /// --json` prints it), ntfy (the message, with Title, Priority and Tags
    /// headers: https://ntfy.sh/TOPIC), gotify (its /message API:
    /// https://HOST/message?token=APP-TOKEN), discord (a webhook's
    /// {"content"}) or slack (an incoming webhook's {"text"}).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "json")]
    pub notify_format: notify::Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole of `jarvisd`'s main.
pub fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("JARVIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt.json().init(),
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jarvisd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("jarvisd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn resolve_group(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    nix::unistd::Group::from_name(group)?
        .map(|g| g.gid.as_raw())
        .with_context(|| format!("--socket-group: no group named {group:?}"))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // reqwest (image pulls, http health checks) needs a TLS provider.
    jarvis_image::install_crypto_provider();
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("jarvisd must run as root: it creates cgroups and switches users");
    }
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("create state dir {}", args.state_dir.display()))?;
    // Shims work from "/": every path they get must be absolute.
    let mut args = args;
    args.state_dir = std::fs::canonicalize(&args.state_dir)
        .with_context(|| format!("state dir {}", args.state_dir.display()))?;
    let git = args
        .git
        .as_deref()
        .map(|url| {
            trigger::GitSource::new(
                url,
                &args.git_branch,
                args.git_path.as_deref(),
                args.git_interval,
            )
        })
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let secret = args
        .webhook_secret_file
        .as_deref()
        .map(http::Secret::read)
        .transpose()?;
    let http_token = args
        .http_token_file
        .as_deref()
        .map(http::Token::read)
        .transpose()?;
    let notify_targets = args
        .notify_urls
        .iter()
        .map(|url| notify::Target::parse(url, args.notify_format))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let notify_client = if notify_targets.is_empty() {
        None
    } else {
        Some(notify::client().context("--notify-url: the HTTP client")?)
    };
    let http_listener = match args.http {
        Some(addr) => Some(http::bind(addr).await?),
        None => None,
    };
    // Unit files (and the files they name) are read off the runtime's
    // thread; a directory that does not load falls back on the last good
    // set (see `daemon::boot_units`) rather than stopping jarvisd.
    let boot = {
        let (units, state_dir) = (args.units.clone(), args.state_dir.clone());
        jarvis_runtime::blocking(move || daemon::boot_units(units.as_deref(), &state_dir)).await
    };
    let daemon::Boot {
        set: units,
        source,
        definitions,
        problems,
        leave_others,
    } = boot;
    // Checked now, so a missing --auth-file stops jarvisd here; pulls read it again.
    let auth_file = jarvis_image::AuthFile::at_start(args.auth_file.as_deref())?;
    let group = args
        .socket_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    let listener = control::bind(&args.socket, group)?;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events = events::EventLog::new();
    let cfg = daemon::Config {
        events: events.clone(),
        source,
        git: git.clone(),
        definitions,
        problems,
        state_dir: args.state_dir.clone(),
        runtime: jarvis_runtime::Runtimes::new(jarvis_runtime::Config {
            launcher: PathBuf::from("/proc/self/exe"),
            native_shim: jarvis_runtime::NativeRuntime::installed_shim(),
            container_shim: jarvis_runtime::Config::installed_container_shim(),
            cgroup_parent: args.cgroup_parent.clone(),
            run_dir: args.state_dir.join("run"),
            state_dir: args.state_dir.clone(),
            roots: jarvis_hardware::Roots::from_env(),
            images: jarvis_image::ImageStore::open(args.state_dir.join("images"))
                .context("open the image store")?,
            pull: jarvis_image::PullOptions {
                insecure: args.insecure_registries.clone(),
                auth_file: Some(auth_file),
                ..Default::default()
            },
            subnet_pool: args.subnet_pool,
            volume_dir: match &args.volume_dir {
                Some(dir) => std::path::absolute(dir)
                    .with_context(|| format!("volume dir {}", dir.display()))?,
                None => args.state_dir.join("volumes"),
            },
            shims: Default::default(),
            age_identity: std::path::absolute(&args.age_identity)
                .with_context(|| format!("age identity {}", args.age_identity.display()))?,
        })
        .map_err(|e| anyhow::anyhow!("networks: {e}"))?,
    };
    let runtime = cfg.runtime.clone();
    // How late the loop runs timers, for /metrics.
    metrics::spawn_lag_probe();
    // Subscribed before boot, so the first units' failures are told too.
    let notifier = notify_client.map(|client| {
        for t in &notify_targets {
            tracing::info!(url = %t.shown(), format = ?args.notify_format, "notify: sending notifications");
        }
        let (counts, task) = notify::spawn(&events, client, notify_targets, args.notify_format);
        metrics::report_notifications(counts);
        task
    });
    let mut daemon = daemon::Daemon::new(cfg, tx.clone())?;
    tracing::info!(
        units = units.units.len(),
        socket = %args.socket.display(),
        state_dir = %args.state_dir.display(),
        "jarvisd started"
    );
    daemon
        .boot(units.units.into_values().collect(), leave_others)
        .await;

    let server = tokio::spawn(control::serve(
        listener,
        tx.clone(),
        args.socket.clone(),
        control::Access { group },
        runtime,
        events.clone(),
    ));
    // Hardware changes come as kernel uevents: no polling.
    let uevents = tokio::spawn({
        let tx = tx.clone();
        async move {
            let mut listener = match jarvis_hardware::UeventListener::bind() {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "no uevents: device changes are seen only at start");
                    return;
                }
            };
            loop {
                // What the kernel queued meanwhile comes at once and is acted
                // on once: a burst costs one rescan, not one per event.
                match listener.recv_batch().await {
                    Ok(batch) => {
                        let Some(ev) = jarvis_hardware::Uevent::most_telling(batch) else {
                            continue;
                        };
                        if tx.send(msg::Msg::Hardware(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "uevent socket failed");
                        return;
                    }
                }
            }
        }
    });
    let signals = tokio::spawn({
        let tx = tx.clone();
        async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                let _ = tx.send(msg::Msg::Shutdown);
            }
        }
    });
    let poller = git.map(|src| {
        tracing::info!(repo = %src.url, branch = %src.branch, interval = %humantime::format_duration(src.interval), "git: deploying the branch's new revisions");
        trigger::spawn(src, args.state_dir.clone(), tx.clone())
    });
    let web = http_listener.map(|listener| {
        let hook = match (&poller, secret) {
            (Some((trigger, _)), Some(secret)) => http::Hook::Ready {
                secret,
                trigger: trigger.clone(),
            },
            (None, _) => http::Hook::Off(format!(
                "{} is not served: jarvisd was started without --git (no repository to apply)",
                http::GIT_HOOK
            )),
            (Some(_), None) => http::Hook::Off(format!(
                "{} is not served: jarvisd was started without --webhook-secret-file (no secret to check signatures with)",
                http::GIT_HOOK
            )),
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match &hook {
            http::Hook::Ready { .. } => {
                tracing::info!(%addr, hook = http::GIT_HOOK, "http: listening; the push webhook is served")
            }
            http::Hook::Off(why) => tracing::warn!(%addr, "http: listening; {why}"),
        }
        let api = http::Api {
            status: http::StatusSource::new(tx.clone()),
            token: http_token.clone(),
            events: events.clone(),
            bench_dir: Some(bench::dir(&args.state_dir)),
        };
        tokio::spawn(http::serve(listener, http::router(hook, api)))
    });
    if args.webhook_secret_file.is_some() && args.http.is_none() {
        tracing::warn!("--webhook-secret-file without --http: no webhook is served");
    }
    drop(tx);
    daemon.run(rx).await;
    if let Some(web) = web {
        web.abort();
    }
    if let Some((_, poller)) = poller {
        poller.abort();
    }
    if let Some(notifier) = notifier {
        notifier.abort();
    }
    server.abort();
    signals.abort();
    uevents.abort();
    let _ = std::fs::remove_file(&args.socket);
    tracing::info!("jarvisd stopped");
    Ok(())
}
