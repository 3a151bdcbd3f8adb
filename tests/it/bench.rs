//! `jarvisctl bench` on the reference workload (llama.cpp's llama-server with
//! SmolLM2, built by benches/llm/setup.sh into a cache outside the repo):
//! alternating rounds, statistics, and `run = "auto"` following the result.
//! Skipped, saying why, when the workload is not in the cache (a failure
//! under `CI=true`: CI builds it).

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;

/// The workload's cache, if setup.sh has filled it.
fn workload() -> Option<PathBuf> {
    let cache = PathBuf::from(
        std::env::var("JARVIS_BENCH_CACHE").unwrap_or_else(|_| "/var/cache/jarvis-bench".into()),
    );
    let ready = cache.join("bin/llama-server").exists()
        && cache.join("models/smollm2.gguf").exists()
        && cache.join("image/index.json").exists();
    if ready {
        Some(cache)
    } else {
        skip(
            true,
            &format!(
                "the reference workload is not in {} (run benches/llm/setup.sh; CI does)",
                cache.display()
            ),
        );
        None
    }
}

#[test]
fn bench_alternates_forms_and_auto_follows_the_result() {
    if !root() {
        return;
    }
    let Some(cache) = workload() else { return };
    let port = free_port();
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/llm/unit.toml.in"
    ))
    .unwrap();
    let unit = template
        .replace("@CACHE@", cache.to_str().unwrap())
        .replace("@PORT@", &port.to_string());
    let j = Jarvis::start(&[("llm", &unit)]);
    // Before any measurement, auto runs an inference unit natively.
    let u = j.wait_unit("llm", Duration::from_secs(60), |u| u["health"] == "healthy");
    assert_eq!(u["kind"], "native");
    assert!(
        u["form_reason"].as_str().unwrap().contains("not measured"),
        "{u:#}"
    );

    let out = j.ctl(&["bench", "llm", "--rounds", "4", "--requests", "3", "--json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        j.daemon_log()
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let forms: Vec<&str> = r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["form"].as_str().unwrap())
        .collect();
    assert_eq!(forms, vec!["native", "container", "native", "container"]);
    for round in r["rounds"].as_array().unwrap() {
        assert_eq!(round["samples"].as_array().unwrap().len(), 3, "{round:#}");
    }
    for metric in ["ttft_ms", "latency_ms", "gen_tokens_per_s"] {
        let m = &r["metrics"][metric];
        for side in ["native", "container"] {
            assert!(m[side]["median"].as_f64().unwrap() > 0.0, "{metric}: {m:#}");
            assert!(m[side]["p95"].as_f64().unwrap() >= m[side]["median"].as_f64().unwrap());
        }
        let (lo, ratio, hi) = (
            m["ci_low"].as_f64().unwrap(),
            m["ratio"].as_f64().unwrap(),
            m["ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= ratio && ratio <= hi, "{metric}: {m:#}");
    }
    assert!(r["verdict"].as_str().unwrap().len() > 10);
    let rec = r["recommendation"].as_str().unwrap().to_string();
    assert!(rec == "native" || rec == "container");

    // The unit is back as it was, and auto now follows the stored result.
    let u = j.wait_unit("llm", Duration::from_secs(60), |u| {
        u["state"] == "running" && u["health"] == "healthy"
    });
    assert_eq!(u["kind"], rec.as_str(), "{u:#}");
    assert!(
        u["form_reason"].as_str().unwrap().contains("measured"),
        "{u:#}"
    );
    // jarvisd stored its own analysis of the rounds, which agrees with the
    // client's to the bit: the same code on the same samples (floats
    // round-trip exactly through the JSON).
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(j.state.join("bench/llm.json")).unwrap()).unwrap();
    assert_eq!(stored["rounds"], r["rounds"]);
    assert_eq!(stored["metrics"], r["metrics"]);
    assert_eq!(stored["recommendation"], r["recommendation"]);
}

/// Sends one request to jarvisd over its socket, as jarvisctl does, and
/// returns the answer.
fn ask(socket: &std::path::Path, req: jarvis_proto::Request) -> jarvis_proto::Response {
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    jarvis_proto::write_frame(
        &mut s,
        &jarvis_proto::Hello {
            version: jarvis_proto::PROTOCOL_VERSION,
            agent: "it".into(),
        },
    )
    .unwrap();
    let _: jarvis_proto::Hello = jarvis_proto::read_frame(&mut s).unwrap();
    jarvis_proto::write_frame(&mut s, &req).unwrap();
    jarvis_proto::read_frame(&mut s).unwrap()
}

/// Rounds in the wire form of a benchmark result: `pairs` native/container
/// pairs of 5 requests, the container's latency `ratio` times the native's.
fn rounds(pairs: usize, ratio: f64, failed_round: Option<usize>) -> serde_json::Value {
    let mut out = vec![];
    for i in 0..pairs * 2 {
        let container = i % 2 == 1;
        let base = 100.0 + (i / 2) as f64;
        let latency = if container { base * ratio } else { base };
        let samples: Vec<serde_json::Value> = (0..5)
            .map(|k| {
                serde_json::json!({
                    "ttft_ms": null, "latency_ms": latency + k as f64 * 0.1,
                    "prompt_tokens": null, "gen_tokens": null,
                    "prompt_tokens_per_s": null, "gen_tokens_per_s": null
                })
            })
            .collect();
        let errors: Vec<String> = if failed_round == Some(i) {
            vec!["HTTP 500".into()]
        } else {
            vec![]
        };
        out.push(serde_json::json!({
            "form": if container { "container" } else { "native" },
            "index": i, "start_ms": i * 1000, "duration_ms": 500.0,
            "samples": samples, "errors": errors
        }));
    }
    serde_json::Value::Array(out)
}

#[test]
fn jarvisd_refuses_failed_rounds_and_recomputes_the_verdict_itself() {
    if !root() {
        return;
    }
    let j = Jarvis::start(&[(
        "llm",
        r#"
run = "native"
[native]
command = ["sleep", "1000"]
[container]
image = "busybox"
network = "none"
[health]
exec = ["true"]
[bench]
api = "llamacpp"
url = "http://127.0.0.1:1"
"#,
    )]);
    j.running("llm");
    let stored = j.state.join("bench/llm.json");
    let result = |rounds: serde_json::Value, claim: &str| jarvis_proto::Request::BenchResult {
        unit: "llm".into(),
        result: serde_json::json!({
            "unit": "llm", "api": "llamacpp", "max_slowdown": 0.05, "rounds": rounds,
            // What a client might claim; jarvisd must not take it.
            "verdict": "container is as fast", "recommendation": claim
        }),
    };
    // A failed request in a round: refused, nothing stored.
    match ask(&j.socket, result(rounds(3, 1.0, Some(3)), "container")) {
        jarvis_proto::Response::Error { message } => {
            assert!(message.contains("round"), "{message}")
        }
        other => panic!("a result with a failed round was accepted: {other:?}"),
    }
    assert!(!stored.exists(), "a refused result was stored");
    // No container rounds at all: refused too.
    let native_only: Vec<serde_json::Value> = rounds(3, 1.0, None)
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["form"] == "native")
        .cloned()
        .collect();
    match ask(
        &j.socket,
        result(serde_json::Value::Array(native_only), "container"),
    ) {
        jarvis_proto::Response::Error { .. } => {}
        other => panic!("a result with no container rounds was accepted: {other:?}"),
    }
    assert!(!stored.exists());
    // Clean rounds where the container is 20% slower, with a client that
    // claims the container: jarvisd's own analysis recommends native.
    match ask(&j.socket, result(rounds(3, 1.2, None), "container")) {
        jarvis_proto::Response::Done { message } => {
            assert!(message.contains("as native"), "{message}")
        }
        other => panic!("a clean result was refused: {other:?}"),
    }
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    assert_eq!(rec["recommendation"], "native", "{rec:#}");
}
