//! The dashboard (`GET /` on `--http`) in a real browser: Debian's headless
//! Chromium, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: requests on its fd 3, answers and events on
//! its fd 4, each JSON ending in a NUL byte), loads the page from a real
//! jarvisd, and the test reads the DOM as the page rendered it, sees it
//! change without a reload when a unit changes, and takes screenshots.

use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// The browser: `$JARVIS_CHROMIUM`, else Debian's `chromium`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JARVIS_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A headless Chromium with one page, spoken to over the DevTools pipe.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

impl Browser {
    fn start(bin: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = pipe();
        let (out_r, out_w) = pipe();
        let (cr, ow) = (cmd_r.as_raw_fd(), out_w.as_raw_fd());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls
        // (fcntl, dup2) on descriptors this process owns.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way of 3 and 4 first, then into place (dup2
                // clears close-on-exec).
                let a = libc::fcntl(cr, libc::F_DUPFD_CLOEXEC, 10);
                let b = libc::fcntl(ow, libc::F_DUPFD_CLOEXEC, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop((cmd_r, out_w));
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(std::fs::File::from(out_r));
            loop {
                let mut msg = Vec::new();
                match r.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                msg.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&msg) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to: std::fs::File::from(cmd_w),
            from,
            next: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b
    }

    /// Sends one command (to the page once attached) and waits for its
    /// answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("chromium did not answer {method}: {e}"));
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method}: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until it is true; panics with `what` and the page's
    /// text after `timeout`.
    fn wait_for(&mut self, expr: &str, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.eval(expr) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        let text = self.eval("document.body ? document.body.innerText : ''");
        panic!("{what}: not within {timeout:?}; the page shows:\n{text}");
    }

    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// A PNG of the page as shown.
    fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Checks `png` is a PNG of `width` x `height` and saves it as `path`.
fn save_png(png: &[u8], width: u32, height: u32, path: &Path) {
    assert!(png.len() > 1000, "a screenshot of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (width, height));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, png).unwrap();
}

/// A stored benchmark of `unit`, as jarvisd would have analysed it: the
/// container some 3% slower.
fn bench_result(unit: &str) -> Vec<u8> {
    use jarvis_benchstats::{Form, Round, Sample, Submission};
    let rounds = (0..6)
        .map(|i| {
            let form = if i % 2 == 0 {
                Form::Native
            } else {
                Form::Container
            };
            let slow = if form == Form::Container { 1.03 } else { 1.0 };
            let mut r = Round::new(form, i, 0);
            for j in 0..8 {
                let latency = (900.0 + 7.0 * f64::from(j)) * slow;
                r.samples.push(Sample {
                    ttft_ms: Some(latency / 9.0),
                    latency_ms: latency,
                    prompt_tokens: Some(40),
                    gen_tokens: Some(64),
                    prompt_tokens_per_s: Some(400.0 / slow),
                    gen_tokens_per_s: Some(64_000.0 / latency),
                });
            }
            r
        })
        .collect();
    let sub = Submission {
        unit: unit.into(),
        api: "llamacpp".into(),
        created: "2026-11-29T12:00:00Z".into(),
        max_slowdown: 0.05,
        rounds,
    };
    serde_json::to_vec(&sub.analyze().unwrap()).unwrap()
}

/// How many lines of the log view are web's own output (not jarvis's
/// notes, which quote its command).
const OUTPUT_LINES: &str = "[...document.querySelectorAll('#log > div:not(.note)')]\
    .filter(d => d.lastChild && d.lastChild.textContent === 'hello-from-web').length";

#[test]
fn the_dashboard_renders_units_and_follows_changes_live() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let Some(bin) = chromium() else {
        // tests/run installs it (Debian's chromium package).
        return skip(true, "chromium is not installed (apt-get install chromium)");
    };
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let web = "description = \"the <b>front</b> end\"\n[native]\ncommand = [\"sh\", \"-c\", \"echo hello-from-web; exec sleep 100000\"]\n[resources]\nmemory_max = \"64M\"\n";
    let db = "[native]\ncommand = [\"sleep\", \"100000\"]\n";
    let job = "[native]\ncommand = [\"sh\", \"-c\", \"echo cannot reach the database >&2; exit 3\"]\n[restart]\npolicy = \"never\"\n";
    let j = Jarvis::start_with(
        &[("web", web), ("db", db), ("job", job)],
        &["--http", &addr],
    );
    j.ok(&["up", "--timeout", "30s"]);
    j.wait_unit("web", Duration::from_secs(20), |u| u["state"] == "running");
    j.wait_unit("db", Duration::from_secs(20), |u| u["state"] == "running");
    j.wait_unit("job", Duration::from_secs(20), |u| u["state"] == "failed");
    std::fs::create_dir_all(j.state.join("bench")).unwrap();
    std::fs::write(j.state.join("bench/web.json"), bench_result("web")).unwrap();

    let mut b = Browser::start(&bin);
    b.viewport(1280, 800, false);
    b.navigate(&format!("http://{addr}/"));
    let state = |u: &str| {
        format!(
            "(document.querySelector('#unit-rows [data-unit=\"{u}\"] .state') || {{}}).textContent"
        )
    };
    b.wait_for(
        &format!(
            "{} === 'running' && {} === 'running' && {} === 'failed'",
            state("web"),
            state("db"),
            state("job")
        ),
        Duration::from_secs(20),
        "the three units rendered with their states",
    );
    let rows = b.eval("[...document.querySelectorAll('#unit-rows tr')].map(r => r.dataset.unit)");
    let mut names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["db", "job", "web"]);
    // The failed unit says why; text from the units stays text.
    let job_row = b.eval("document.querySelector('[data-unit=\"job\"]').innerText");
    assert!(
        job_row.as_str().unwrap().contains("exit"),
        "no reason on the failed unit: {job_row}"
    );
    let web_row = b.eval("document.querySelector('[data-unit=\"web\"]').innerText");
    assert!(
        web_row.as_str().unwrap().contains("the <b>front</b> end"),
        "{web_row}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#unit-rows b').length"),
        0
    );
    // Memory and its limit (the cgroup's figures come with a later read).
    b.wait_for(
        "document.querySelector('[data-unit=\"web\"]').innerText.includes('/ 64 MiB')",
        Duration::from_secs(15),
        "web's memory and its limit",
    );
    // No GPUs on this host: no GPU panel.
    assert_eq!(b.eval("document.getElementById('gpus').hidden"), true);
    b.wait_for(
        "document.getElementById('conn').textContent === 'live'",
        Duration::from_secs(10),
        "the event stream open",
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    save_png(&b.screenshot(), 1280, 800, &dir.join("desktop.png"));

    // A phone: cards, nothing wider than the screen.
    b.viewport(390, 844, true);
    b.wait_for(
        "getComputedStyle(document.querySelector('#unit-rows tr')).display === 'block'",
        Duration::from_secs(5),
        "units as cards at 390 px",
    );
    assert_eq!(
        b.eval("document.documentElement.scrollWidth <= 390"),
        true,
        "the page scrolls sideways at 390 px: {}",
        b.eval("document.documentElement.scrollWidth")
    );
    save_png(&b.screenshot(), 390, 844, &dir.join("phone.png"));
    b.viewport(1280, 800, false);

    // Live: a unit stopped elsewhere shows as stopped without a reload.
    b.eval("window.__same_page = 1");
    j.ok(&["stop", "web"]);
    b.wait_for(
        &format!("{} === 'stopped'", state("web")),
        Duration::from_secs(15),
        "web shown stopped after jarvisctl stop",
    );
    b.wait_for(
        "[...document.querySelectorAll('#events li')].some(li => li.dataset.kind === 'stopped' && li.textContent.includes('web'))",
        Duration::from_secs(10),
        "the stop in the events list",
    );
    assert_eq!(b.eval("window.__same_page"), 1, "the page was reloaded");

    // A unit's page: details, its log live, its benchmark chart.
    b.eval("location.hash = '#/unit/web'");
    b.wait_for(
        &format!("{OUTPUT_LINES} === 1 && !document.getElementById('unit-view').hidden"),
        Duration::from_secs(10),
        "web's log on its page",
    );
    b.wait_for(
        "document.querySelectorAll('#bench-chart svg rect').length >= 4",
        Duration::from_secs(10),
        "web's benchmark chart",
    );
    save_png(&b.screenshot(), 1280, 800, &dir.join("unit.png"));
    let verdict = b.eval("document.getElementById('bench-verdict').textContent");
    assert!(
        verdict.as_str().unwrap().contains("latency_ms"),
        "{verdict}"
    );
    j.ok(&["start", "web"]);
    b.wait_for(
        &format!("{OUTPUT_LINES} === 2"),
        Duration::from_secs(15),
        "the new run's output in the log without a reload",
    );
    b.wait_for(
        "(document.querySelector('#unit-details .state') || {}).textContent === 'running'",
        Duration::from_secs(15),
        "web shown running again on its page",
    );
    assert_eq!(b.eval("window.__same_page"), 1, "the page was reloaded");
}

/// The screenshots in docs/ (`dashboard-desktop.png`, `dashboard-phone.png`)
/// of a running jarvisd's dashboard:
/// `JARVIS_DASHBOARD_URL=http://127.0.0.1:PORT/ cargo test --test it
/// dashboard_screenshots -- --ignored`.
#[test]
#[ignore = "takes the docs' screenshots of a running jarvisd"]
fn dashboard_screenshots_for_the_docs() {
    let url = std::env::var("JARVIS_DASHBOARD_URL").expect("JARVIS_DASHBOARD_URL");
    let bin = chromium().expect("chromium");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for (name, width, height, mobile) in [("desktop", 1280, 800, false), ("phone", 390, 844, true)]
    {
        let mut b = Browser::start(&bin);
        b.viewport(width, height, mobile);
        b.navigate(&url);
        b.wait_for(
            "document.querySelectorAll('#unit-rows tr').length > 0",
            Duration::from_secs(20),
            "units rendered",
        );
        // A second read, so that CPU shows as a share.
        std::thread::sleep(Duration::from_secs(6));
        save_png(
            &b.screenshot(),
            width,
            height,
            &docs.join(format!("dashboard-{name}.png")),
        );
    }
}

fn ollama_ps(size_vram: u64) -> String {
    json!({"models": [{
        "name": "llama3:8b", "model": "llama3:8b", "size": 4_700_000_000u64,
        "size_vram": size_vram, "digest": "365c0bd3c000", "details": {},
        "expires_at": "2026-01-01T00:00:00Z"
    }]})
    .to_string()
}

/// The GPU panel, on a fixture H200 host with the stand-in NVML: the GPU's
/// name, its memory and the unit placed on it, and the unit's placement;
/// then the unit falls back to the CPU and the page says so, loudly and
/// without a reload.
#[test]
fn the_dashboard_shows_gpus_placements_and_fallbacks() {
    use jarvis_hardware::fixture::Fixture;
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let Some(bin) = chromium() else {
        return skip(true, "chromium is not installed (apt-get install chromium)");
    };
    let fx = Fixture::h200_host().unwrap();
    let procs = fx.write("nvml-procs", "").unwrap();
    let env = nvml_env(&fx, 1, Some(143771), Some(&procs));
    let ps = std::sync::Arc::new(std::sync::Mutex::new(ollama_ps(4_700_000_000)));
    let ollama = ollama_stand_in(ps.clone());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let llm = format!(
        "[native]\ncommand = [\"sleep\", \"100000\"]\n[env]\nOLLAMA_HOST = \"http://127.0.0.1:{ollama}\"\n\
         [gpu]\nwant = \"nvidia\"\nmin_vram = \"40G\"\nverify = \"ollama\"\nverify_interval = \"1s\"\n"
    );
    let j = Jarvis::start_full(&[("llm", &llm)], &["--http", &addr], env);
    let pid = j.running("llm")["pid"].as_i64().unwrap();
    std::fs::write(&procs, format!("0:{pid}:4096\n")).unwrap();
    j.wait_unit("llm", Duration::from_secs(15), |u| u["gpu"] == "ok");

    let mut b = Browser::start(&bin);
    b.viewport(1280, 800, false);
    b.navigate(&format!("http://{addr}/"));
    b.wait_for(
        "!document.getElementById('gpus').hidden && document.querySelectorAll('#gpu-list .gpu').length === 1",
        Duration::from_secs(20),
        "the GPU panel",
    );
    let gpu = b.eval("document.querySelector('#gpu-list .gpu').innerText");
    let gpu = gpu.as_str().unwrap();
    assert!(gpu.contains("H200"), "{gpu}");
    assert!(gpu.contains("Units: llm"), "{gpu}");
    assert!(gpu.contains("/ 140 GiB"), "{gpu}");
    assert_eq!(
        b.eval("document.querySelectorAll('#gpu-list .bar > span').length"),
        1,
        "no VRAM bar"
    );
    let placement = "document.querySelector('[data-unit=\"llm\"] .placement').innerText";
    b.wait_for(
        &format!("{placement}.includes('VRAM 4.0 GiB of 40 GiB given')"),
        Duration::from_secs(15),
        "the unit's VRAM, used and given",
    );
    let placed = b.eval(placement);
    let placed = placed.as_str().unwrap();
    assert!(placed.contains("GPU NVIDIA H200"), "{placed}");
    assert!(!placed.contains("FALLBACK"), "{placed}");

    // Ollama has the model on the CPU: shown loudly, with the reason.
    b.eval("window.__same_page = 1");
    *ps.lock().unwrap() = ollama_ps(0);
    b.wait_for(
        "!!document.querySelector('[data-unit=\"llm\"] .fallback')",
        Duration::from_secs(20),
        "the fallback on the unit",
    );
    let placed = b.eval(placement);
    let placed = placed.as_str().unwrap();
    assert!(placed.contains("GPU FALLBACK"), "{placed}");
    assert!(placed.contains("llama3:8b"), "{placed}");
    assert_eq!(b.eval("window.__same_page"), 1, "the page was reloaded");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    save_png(&b.screenshot(), 1280, 800, &dir.join("gpu.png"));
}
