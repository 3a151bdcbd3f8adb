//! load: one jarvisd with [`UNITS`] running native units, [`FOLLOWERS`]
//! `logs -f` streams and [`CLIENTS`] concurrent `status` clients, for
//! [`SECONDS`] seconds. What is measured: every status answer's latency (the
//! whole request: connect, hello, request, the full answer read), a
//! separate probe's latency (one client asking every 100 ms, what a user at
//! a terminal sees meanwhile), jarvisd's RSS and open descriptors sampled
//! through the run, and whether every follower kept receiving lines.
//!
//! Each status client loops: connect, ask, read the whole answer frame
//! (not decoded: the client's own JSON parsing would compete with jarvisd
//! for the 2 cores), close, then wait a random 0–2 s (1 s on average), so the
//! 1,000 clients ask about 1,000 times a second when jarvisd keeps up.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jarvis_proto::{read_frame, write_frame, Hello, Request, Response, PROTOCOL_VERSION};

use super::*;

const UNITS: usize = 200;
/// Units that print a line every 0.5 s, each followed by one `logs -f`.
const FOLLOWERS: usize = 100;
const CLIENTS: usize = 1000;
const SECONDS: u64 = 30;
/// p99 of the status answers during the load.
const TARGET_P99_NS: u64 = 50_000_000;
/// jarvisd's highest RSS during the load, over its RSS with the units up
/// and nothing connected.
const TARGET_RSS_GROWTH_BYTES: u64 = 64_000_000;

fn chatty_unit() -> String {
    r#"description = "bench: a line every 0.5 s"

[native]
command = ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo \"line $i\"; sleep 0.5; done"]

[resources]
memory_max = "32M"
pids_max = 16

[restart]
policy = "always"
"#
    .to_string()
}

/// Connects and says hello; the stream is ready for one request.
fn connect(socket: &Path) -> Res<UnixStream> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write_frame(
        &mut s,
        &Hello {
            version: PROTOCOL_VERSION,
            agent: "jarvis-bench-load".into(),
        },
    )?;
    let hello: Hello = read_frame(&mut s)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(format!("jarvisd speaks protocol {}", hello.version).into());
    }
    Ok(s)
}

/// One status request; the answer frame is read whole but not decoded.
/// Returns its size.
fn status_raw(socket: &Path) -> Res<usize> {
    let mut s = connect(socket)?;
    write_frame(&mut s, &Request::Status { units: vec![] })?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    if !body.starts_with(br#"{"response":"status""#) {
        let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("not a status answer: {head}").into());
    }
    Ok(len)
}

/// A tiny xorshift, so the clients' pauses differ without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn open_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub(crate) fn bench_load(quick: bool) -> Res<Section> {
    let (clients, seconds, followers) = if quick {
        (100, 5, 10)
    } else {
        (CLIENTS, SECONDS, FOLLOWERS)
    };
    let load_before = super::container::loadavg();
    progress!(
        "load: one jarvisd, {UNITS} native units ({followers} of them print a line every 0.5 s)"
    );
    let mut d = Daemon::start("load", &[])?;
    let chatty: Vec<String> = (0..followers).map(|i| format!("chat-{i:03}")).collect();
    let quiet: Vec<String> = (followers..UNITS)
        .map(|i| format!("quiet-{i:03}"))
        .collect();
    for n in &chatty {
        fs::write(d.units.join(format!("{n}.toml")), chatty_unit())?;
    }
    for n in &quiet {
        fs::write(d.units.join(format!("{n}.toml")), sleep_unit())?;
    }
    let t = Instant::now();
    d.ctl(&["up", "--wait", "--timeout", "120s"])?;
    let up_ns = elapsed_ns(t);
    let status: Value = serde_json::from_str(&d.ctl(&["status", "--json"])?)?;
    let running = status["units"]
        .as_array()
        .map_or(0, |u| u.iter().filter(|u| u["state"] == "running").count());
    if running != UNITS {
        return Err(format!("{running} of {UNITS} units running after up --wait").into());
    }
    progress!("load: {UNITS} units up in {} ms", ms(up_ns));
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.pid();
    let before = ProcMem::of(pid)?;
    let fds_before = open_fds(pid);

    let stop = Arc::new(AtomicBool::new(false));
    // Followers: each counts the bytes of log it receives, and when.
    let received: Arc<Vec<AtomicU64>> =
        Arc::new((0..followers).map(|_| AtomicU64::new(0)).collect());
    let follower_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for (i, unit) in chatty.iter().enumerate() {
        let (socket, unit) = (d.socket.clone(), unit.clone());
        let (received, errors, stop) = (received.clone(), follower_errors.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    let run = || -> Res<()> {
                        let mut s = connect(&socket)?;
                        s.set_read_timeout(Some(Duration::from_secs(2)))?;
                        write_frame(
                            &mut s,
                            &Request::Logs {
                                unit: unit.clone(),
                                lines: Some(0),
                                follow: true,
                                since: None,
                                timestamps: false,
                            },
                        )?;
                        while !stop.load(Ordering::Relaxed) {
                            match read_frame::<Response>(&mut s) {
                                Ok(Response::LogData { data }) => {
                                    received[i].fetch_add(data.len() as u64, Ordering::Relaxed);
                                }
                                Ok(Response::LogEnd) => return Err("the stream ended".into()),
                                Ok(other) => return Err(format!("{other:?}").into()),
                                Err(jarvis_proto::FrameError::Io(e))
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut =>
                                {
                                    return Err("no line for 2 s".into())
                                }
                                Err(e) => return Err(e.to_string().into()),
                            }
                        }
                        Ok(())
                    };
                    if let Err(e) = run() {
                        errors.lock().unwrap().push(format!("{unit}: {e}"));
                    }
                })?,
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let followed_before: u64 = received.iter().map(|r| r.load(Ordering::Relaxed)).sum();

    // Status clients.
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(
        clients * seconds as usize,
    )));
    let client_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let answer_bytes = Arc::new(AtomicU64::new(0));
    progress!(
        "load: {followers} followers attached; starting {clients} status clients for {seconds} s"
    );
    let started = Instant::now();
    for c in 0..clients {
        let socket = d.socket.clone();
        let (lat, errors, stop, bytes) = (
            latencies.clone(),
            client_errors.clone(),
            stop.clone(),
            answer_bytes.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    let mut rng =
                        0x9e37_79b9_7f4a_7c15u64 ^ ((c as u64 + 1) * 0x2545_f491_4f6c_dd1d);
                    // Spread the first calls over the first second.
                    std::thread::sleep(Duration::from_millis(next_random(&mut rng) % 1000));
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match status_raw(&socket) {
                            Ok(n) => {
                                mine.push(elapsed_ns(t));
                                bytes.store(n as u64, Ordering::Relaxed);
                            }
                            Err(e) => {
                                errors.lock().unwrap().push(e.to_string());
                            }
                        }
                        std::thread::sleep(Duration::from_millis(next_random(&mut rng) % 2000));
                    }
                    lat.lock().unwrap().extend(mine);
                })?,
        );
    }
    // The probe and the samplers, on this thread.
    let mut probe = Vec::new();
    let mut peak = before;
    let mut fds_peak = fds_before;
    let end = started + Duration::from_secs(seconds);
    while Instant::now() < end {
        let t = Instant::now();
        match status_raw(&d.socket) {
            Ok(_) => probe.push(elapsed_ns(t)),
            Err(e) => client_errors.lock().unwrap().push(format!("probe: {e}")),
        }
        if let Ok(m) = ProcMem::of(pid) {
            if m.rss > peak.rss {
                peak = m;
            }
        }
        fds_peak = fds_peak.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let followed_during: u64 = received
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .sum::<u64>()
        - followed_before;
    let starved: Vec<usize> = (0..followers)
        .filter(|&i| received[i].load(Ordering::Relaxed) == 0)
        .collect();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let ran_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let after = ProcMem::of(pid)?;
    let fds_after = open_fds(pid);
    d.check_alive()?;
    let left = d.stop()?;
    let load_after = super::container::loadavg();

    let lat = std::mem::take(&mut *latencies.lock().unwrap());
    let errors = std::mem::take(&mut *client_errors.lock().unwrap());
    let ferrors = std::mem::take(&mut *follower_errors.lock().unwrap());
    if lat.is_empty() {
        return Err(format!(
            "no status answer at all; errors: {:?}",
            &errors[..errors.len().min(5)]
        )
        .into());
    }
    let s = summarize(&lat);
    let p = summarize(&probe);
    let rate = lat.len() as f64 / ran_s;
    progress!(
        "load: {} answers ({rate:.0}/s), p50 {} ms, p99 {} ms, max {} ms; probe p99 {} ms; {} errors; RSS {} → peak {} → {} MB",
        lat.len(),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        ms(p.p99),
        errors.len(),
        mb(before.rss),
        mb(peak.rss),
        mb(after.rss)
    );

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## load: {UNITS} units, {clients} concurrent `status` clients, `logs -f` on {followers} units\n"
    );
    let _ = writeln!(
        md,
        "Load average (1/5/15 min) when the section began: {load_before}; when it ended: {load_after}.\n"
    );
    let _ = writeln!(
        md,
        "One jarvisd with {UNITS} running native units (`up --wait` took {} ms), {followers} of which print a line every \
         0.5 s, each followed by a `logs -f` stream from this process. Then {clients} status clients for {seconds} s, \
         each in a loop: connect, hello, `status` (all units; the answer frame, {} bytes, read whole), close, pause \
         0–2 s at random. A probe asks the same every 100 ms meanwhile. Times in ms.\n",
        ms(up_ns),
        answer_bytes.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        md,
        "| series | answers | rate /s | median | p95 | p99 | max | errors |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let _ = writeln!(
        md,
        "| {clients} status clients | {} | {rate:.0} | {} | {} | {} | {} | {} |",
        lat.len(),
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max),
        errors.len()
    );
    let _ = writeln!(
        md,
        "| probe, every 100 ms | {} | {:.0} | {} | {} | {} | {} | – |",
        probe.len(),
        probe.len() as f64 / ran_s,
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        ms(p.max)
    );
    let _ = writeln!(
        md,
        "\nFollowers: {} bytes of log received during the load ({:.0} bytes/s), {} of {followers} received nothing, \
         {} ended with an error{}.\n",
        followed_during,
        followed_during as f64 / ran_s,
        starved.len(),
        ferrors.len(),
        if ferrors.is_empty() {
            String::new()
        } else {
            format!(" (first: {})", ferrors[0])
        }
    );
    let _ = writeln!(
        md,
        "jarvisd: VmRSS {} MB with the units up and nothing connected, {} MB at the highest sample, {} MB 2 s after \
         the clients left; open descriptors {fds_before} → highest {fds_peak} → {fds_after}. After SIGTERM: {}.",
        mb(before.rss),
        mb(peak.rss),
        mb(after.rss),
        left.describe()
    );
    if !errors.is_empty() {
        let _ = writeln!(
            md,
            "\nFirst client errors: {:?}",
            &errors[..errors.len().min(3)]
        );
    }
    let growth = peak.rss.saturating_sub(before.rss);
    Ok(Section {
        markdown: md,
        json: json!({
            "units": UNITS, "clients": clients, "followers": followers, "seconds": seconds,
            "up_wait_ns": up_ns,
            "loadavg_before": load_before, "loadavg_after": load_after,
            "status": { "summary": s.json(), "rate_per_s": rate, "errors": errors.len(), "samples_ns": lat },
            "probe": { "summary": p.json(), "samples_ns": probe },
            "followers": { "bytes_during": followed_during, "starved": starved.len(), "errors": ferrors },
            "memory": { "before": before.json(), "peak": peak.json(), "after": after.json() },
            "fds": { "before": fds_before, "peak": fds_peak, "after": fds_after },
            "leftovers": left.json(),
        }),
        targets: vec![
            Target {
                what: "`status` p99 under load (200 units, 1,000 status clients, `logs -f` on 100 units)",
                limit: format!("≤ {} ms", ms(TARGET_P99_NS)),
                measured: format!(
                    "{} ms ({} answers, {rate:.0}/s, {} errors; probe p99 {} ms)",
                    ms(s.p99),
                    lat.len(),
                    errors.len(),
                    ms(p.p99)
                ),
                pass: s.p99 <= TARGET_P99_NS && errors.is_empty() && p.p99 <= TARGET_P99_NS,
            },
            Target {
                what: "jarvisd RSS growth under that load (highest sample − before)",
                limit: format!("< {} MB", mb(TARGET_RSS_GROWTH_BYTES)),
                measured: format!(
                    "{} MB ({} → {} MB; {} MB after)",
                    mb(growth),
                    mb(before.rss),
                    mb(peak.rss),
                    mb(after.rss)
                ),
                pass: growth < TARGET_RSS_GROWTH_BYTES,
            },
            Target {
                what: "every `logs -f` follower kept receiving during that load",
                limit: format!("{followers} of {followers}, no error"),
                measured: format!(
                    "{} of {followers}, {} errors",
                    followers - starved.len(),
                    ferrors.len()
                ),
                pass: starved.is_empty() && ferrors.is_empty(),
            },
        ],
    })
}
