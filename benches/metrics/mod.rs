//! metrics: what a Prometheus scrape of `GET /metrics` costs with 100
//! running native units, and what the `--http` listener costs jarvisd in
//! memory.
//!
//! Two jarvisd side by side, each brought to [`UNITS`] native units
//! (`sleep 100000`): A with `--http 127.0.0.1:PORT`, B without. A is
//! scraped [`SCRAPES`] times one after another (a new connection each, as
//! the whole request: connect, request, the full answer read), alternating
//! with the same status request on A's control socket (what the scrape's
//! status report costs without HTTP and the text format). jarvisd's VmRSS
//! is read for both before and after the scrapes.

use std::io::{Read, Write};
use std::net::TcpStream;

use jarvis_proto::{Request, Response};

use super::container::request;
use super::*;

/// Running native units on each jarvisd.
const UNITS: usize = 100;
/// Scrapes timed (after [`WARMUP`] untimed ones).
const SCRAPES: usize = 200;
const WARMUP: usize = 5;
/// p99 of a scrape at 100 units.
const TARGET_SCRAPE_P99_NS: u64 = 5_000_000;

/// `GET /metrics` on 127.0.0.1:`port`, a new connection: the body.
fn scrape(port: u16) -> Res<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8(out)?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET /metrics: {head}").into());
    }
    Ok(body.to_string())
}

/// The value of the sample `name` (no labels) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn status_units(socket: &Path) -> Res<usize> {
    match request(socket, &Request::Status { units: vec![] })? {
        Response::Status(r) => Ok(r.units.len()),
        other => Err(format!("status: {other:?}").into()),
    }
}

pub(crate) fn bench_metrics(quick: bool) -> Res<Section> {
    let scrapes = if quick { 40 } else { SCRAPES };
    let load_before = super::container::loadavg();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    progress!("metrics: two jarvisd, A with --http {addr}, B without; {UNITS} native units each");
    let mut with = Daemon::start_with("metrics-http", &[], &["--http", &addr])?;
    let mut without = Daemon::start("metrics-nohttp", &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let idle_with = ProcMem::of(with.pid())?;
    let idle_without = ProcMem::of(without.pid())?;
    let names: Vec<String> = (0..UNITS).map(|i| format!("svc-{i:03}")).collect();
    let up_with = bring_up(&with, &names, &sleep_unit())?;
    let up_without = bring_up(&without, &names, &sleep_unit())?;
    progress!(
        "metrics: units up in {} ms (A) and {} ms (B); settling",
        ms(up_with),
        ms(up_without)
    );
    std::thread::sleep(Duration::from_millis(1000));
    let units_with = ProcMem::of(with.pid())?;
    let units_without = ProcMem::of(without.pid())?;

    let first = scrape(port)?;
    let described = first
        .lines()
        .filter(|l| l.starts_with("jarvis_unit_restarts{"))
        .count();
    if described != UNITS || !first.trim_end().ends_with("# EOF") {
        return Err(format!("/metrics described {described} units:\n{first}").into());
    }
    let bytes = first.len();
    for _ in 1..WARMUP {
        drop(scrape(port)?);
    }
    let (mut http, mut socket) = (Vec::new(), Vec::new());
    let mut lag = Vec::new();
    let started = Instant::now();
    for i in 0..scrapes {
        // Alternating, the side that goes first too.
        for k in 0..2 {
            let t = Instant::now();
            if (i + k) % 2 == 0 {
                let text = scrape(port)?;
                http.push(elapsed_ns(t));
                if let Some(s) = sample(&text, "jarvisd_event_loop_lag_seconds") {
                    lag.push((s * 1e9) as u64);
                }
            } else {
                let n = status_units(&with.socket)?;
                socket.push(elapsed_ns(t));
                if n != UNITS {
                    return Err(format!("A reported {n} units").into());
                }
            }
        }
    }
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let after_with = ProcMem::of(with.pid())?;
    let after_without = ProcMem::of(without.pid())?;
    // The lag gauge keeps the worst of the last 10 to 20 s: 21 s on, what
    // it reads with the units running and nothing else happening.
    let quiet_lag = if quick {
        None
    } else {
        progress!("metrics: 21 s of quiet, then the lag gauge once more");
        std::thread::sleep(Duration::from_secs(21));
        sample(&scrape(port)?, "jarvisd_event_loop_lag_seconds").map(|s| (s * 1e9) as u64)
    };
    let h = summarize(&http);
    let s = summarize(&socket);
    progress!(
        "metrics: {scrapes} scrapes in {:.1} s: p50 {} ms, p99 {} ms (socket status p50 {} ms); RSS A {} MB, B {} MB",
        took.as_secs_f64(),
        ms(h.p50),
        ms(h.p99),
        ms(s.p50),
        mb(after_with.rss),
        mb(after_without.rss)
    );
    let left_with = with.stop()?;
    let left_without = without.stop()?;
    let load_after = super::container::loadavg();
    let lag_max = lag.iter().copied().max();

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## metrics: `GET /metrics` at {UNITS} native units, and what `--http` costs in memory\n"
    );
    let _ = writeln!(
        md,
        "Load average (1/5/15 min) when the section began: {load_before}; when it ended: {load_after}.\n"
    );
    let _ = writeln!(
        md,
        "Two jarvisd side by side, each with {UNITS} native units (`sleep 100000`, memory_max 32M, pids_max 16; \
         `up --wait` took {} ms on A, {} ms on B): A with `--http {addr}`, B without. {scrapes} scrapes of A, one after \
         another, each on a new connection (connect, `GET /metrics`, the whole answer read), after {WARMUP} untimed ones, \
         alternating with the status request on A's control socket (connect, hello, `Request::Status`, the answer: what \
         the scrape's report costs without HTTP and the text format). The exposition is {bytes} bytes. Times in ms:\n",
        ms(up_with),
        ms(up_without)
    );
    let _ = writeln!(md, "| request | n | median | p95 | p99 | max |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, x) in [
        ("`GET /metrics`, A", &h),
        ("`Request::Status` on A's socket", &s),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            x.n,
            ms(x.p50),
            ms(x.p95),
            ms(x.p99),
            ms(x.max)
        );
    }
    if let Some(max) = lag_max {
        let _ = writeln!(
            md,
            "\n`jarvisd_event_loop_lag_seconds` (the worst timer delay of the last 10 to 20 s) as the scrapes read it: \
             median {} ms, highest {} ms (the window still holds the `up` of the units){}.",
            ms(median_of(&lag)),
            ms(max),
            quiet_lag
                .map(|q| format!("; 21 s after the scrapes, with nothing else happening: {} ms", ms(q)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        md,
        "\njarvisd's VmRSS (MB = 10^6 bytes; VmHWM, threads):\n\n\
         | jarvisd | when | VmRSS MB | VmHWM MB | threads |\n| --- | --- | ---: | ---: | ---: |"
    );
    for (who, when, m) in [
        ("A (`--http`)", "idle, 0 units", &idle_with),
        ("B", "idle, 0 units", &idle_without),
        (
            "A (`--http`)",
            "100 units up, before any scrape",
            &units_with,
        ),
        ("B", "100 units up", &units_without),
        ("A (`--http`)", "after the scrapes", &after_with),
        ("B", "after A's scrapes", &after_without),
    ] {
        let _ = writeln!(
            md,
            "| {who} | {when} | {} | {} | {} |",
            mb(m.rss),
            mb(m.hwm),
            m.threads
        );
    }
    let listener = units_with.rss as i64 - units_without.rss as i64;
    let scraped = after_with.rss as i64 - units_without.rss as i64;
    let _ = writeln!(
        md,
        "\nThe listener open, before any scrape: A − B = {:+.0} kB; after {scrapes} scrapes: {:+.0} kB. \
         After SIGTERM: A: {}; B: {}.",
        listener as f64 / 1e3,
        scraped as f64 / 1e3,
        left_with.describe(),
        left_without.describe()
    );
    Ok(Section {
        markdown: md,
        json: json!({
            "units": UNITS,
            "scrapes": scrapes,
            "exposition_bytes": bytes,
            "loadavg_before": load_before, "loadavg_after": load_after,
            "up_wait_ns": { "a": up_with, "b": up_without },
            "scrape": { "summary": h.json(), "samples_ns": http },
            "socket_status": { "summary": s.json(), "samples_ns": socket },
            "event_loop_lag_ns": lag,
            "event_loop_lag_quiet_ns": quiet_lag,
            "memory": {
                "idle": { "a": idle_with.json(), "b": idle_without.json() },
                "units_up": { "a": units_with.json(), "b": units_without.json() },
                "after_scrapes": { "a": after_with.json(), "b": after_without.json() },
                "listener_rss_bytes": listener,
                "listener_after_scrapes_rss_bytes": scraped,
            },
            "leftovers": { "a": left_with.json(), "b": left_without.json() },
        }),
        targets: vec![Target {
            what: "`GET /metrics` p99 at 100 native units (new connection each, sequential)",
            limit: format!("≤ {} ms", ms(TARGET_SCRAPE_P99_NS)),
            measured: format!(
                "{} ms (p50 {} ms; the socket's status p50 {} ms; {scrapes} scrapes)",
                ms(h.p99),
                ms(h.p50),
                ms(s.p50)
            ),
            pass: h.p99 <= TARGET_SCRAPE_P99_NS,
        }],
    })
}
