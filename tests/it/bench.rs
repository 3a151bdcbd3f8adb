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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    // client's: the same code on the same samples.
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(j.state.join("bench/llm.json")).unwrap()).unwrap();
    assert_eq!(stored["rounds"], r["rounds"]);
    assert_eq!(stored["metrics"], r["metrics"]);
    assert_eq!(stored["recommendation"], r["recommendation"]);
}
