//! A unit placed on a GPU that runs on the CPU is caught: a real jarvisd on
//! the H200 fixture with the stand-in NVML (its process list read from a
//! file the test writes once it knows the unit's pid) and a stand-in of
//! Ollama's `/api/ps` on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jarvis_hardware::fixture::{self, Fixture};
use serde_json::Value;

use crate::harness::*;

fn ps(size: u64, size_vram: u64) -> String {
    serde_json::json!({"models": [{
        "name": "llama3:8b", "model": "llama3:8b", "size": size, "size_vram": size_vram,
        "digest": "365c0bd3c000", "details": {}, "expires_at": "2026-01-01T00:00:00Z"
    }]})
    .to_string()
}

fn events(j: &Jarvis) -> Vec<Value> {
    j.ok(&["events", "--since", "5m", "--no-follow", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_unit_on_the_cpu_though_placed_on_a_gpu_is_caught() {
    if !root() {
        return skip(true, "needs root (cgroups)");
    }
    let fx = Fixture::h200_host().unwrap();
    let procs = fx.write("nvml-procs", "").unwrap();
    let env = nvml_env(&fx, 1, None, Some(&procs));

    // An idle Ollama first: no model loaded, no VRAM held.
    let body = Arc::new(Mutex::new(r#"{"models": []}"#.to_string()));
    let port = ollama_stand_in(body.clone());
    let llm = format!(
        "[native]\ncommand = [\"sleep\", \"1000\"]\n[env]\nOLLAMA_HOST = \"http://127.0.0.1:{port}\"\n\
         [gpu]\nwant = \"nvidia\"\nmin_vram = \"8G\"\nverify = \"ollama\"\nverify_interval = \"1s\"\n"
    );
    let j = Jarvis::start_full(&[("llm", &llm)], &[], env);
    let u = j.running("llm");
    let pid = u["pid"].as_i64().unwrap();
    assert_eq!(u["vram_given_bytes"], 8u64 << 30, "{u:#}");
    // Idle (no model loaded, nothing held on the GPU, as Ollama is between
    // requests): not a fallback, through several checks.
    std::thread::sleep(Duration::from_millis(3500));
    let u = j.unit("llm");
    assert_ne!(
        u["gpu"], "fallback",
        "an idle Ollama is not on the CPU: {u:#}"
    );
    assert!(
        !events(&j).iter().any(|e| e["kind"] == "gpu-fallback"),
        "{:#?}",
        events(&j)
    );
    *body.lock().unwrap() = ps(4_700_000_000, 4_700_000_000);
    // (a) Its process holds 4 GiB on the H200 it was given, and Ollama
    // has the model wholly in VRAM: on its GPU.
    std::fs::write(&procs, format!("0:{pid}:4096\n")).unwrap();
    let u = j.wait_unit("llm", Duration::from_secs(15), |u| u["gpu"] == "ok");
    assert!(u["gpu_reason"].is_null(), "{u:#}");
    let u = j.wait_unit("llm", Duration::from_secs(15), |u| {
        u["vram_bytes"] == 4096u64 << 20
    });
    assert_eq!(u["restarts"], 0);
    let st = j.status();
    let gpus = st["gpus"].as_array().expect("gpus in status");
    assert_eq!(gpus.len(), 1, "{st:#}");
    assert_eq!(gpus[0]["id"], fixture::h200::UUID);
    assert_eq!(gpus[0]["vendor"], "nvidia");
    assert_eq!(gpus[0]["name"], "NVIDIA H200");
    assert_eq!(gpus[0]["units"], serde_json::json!(["llm"]));
    assert!(gpus[0]["memory_total_bytes"].as_u64().unwrap() > 0);

    // (b) Ollama says the model is all on the CPU: a fallback, told in
    // status, the table and the events; the unit is left running (warn).
    *body.lock().unwrap() = ps(4_700_000_000, 0);
    let u = j.wait_unit("llm", Duration::from_secs(15), |u| u["gpu"] == "fallback");
    let reason = u["gpu_reason"].as_str().unwrap().to_string();
    assert!(reason.contains("llama3:8b"), "{reason}");
    assert!(reason.contains("0 B of 4.7 GB"), "{reason}");
    assert_eq!(u["state"], "running");
    assert_eq!(u["pid"], pid);
    let table = j.ok(&["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("llm "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("GPU FALLBACK: model llama3:8b"), "{table}");
    let ev = events(&j);
    assert!(
        ev.iter().any(|e| e["unit"] == "llm"
            && e["kind"] == "gpu-fallback"
            && e["message"].as_str().unwrap().contains("llama3:8b")),
        "{ev:#?}"
    );
    // Back in VRAM: on its GPU again, and told so.
    *body.lock().unwrap() = ps(4_700_000_000, 4_700_000_000);
    j.wait_unit("llm", Duration::from_secs(15), |u| u["gpu"] == "ok");
    let ev = events(&j);
    assert!(
        ev.iter()
            .any(|e| e["unit"] == "llm" && e["kind"] == "gpu-ok"),
        "{ev:#?}"
    );
    // Ollama gone: the processes alone decide (its process still holds
    // memory on the GPU).
    *body.lock().unwrap() = "not json".into();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(j.unit("llm")["gpu"], "ok");

    // (c) on_fallback = "restart": a unit none of whose processes holds
    // memory on its GPU is restarted, and the restart says why.
    j.write_unit(
        "rs",
        "[native]\ncommand = [\"sleep\", \"1000\"]\n[gpu]\nwant = \"nvidia\"\nmin_vram = \"8G\"\n\
         on_fallback = \"restart\"\nverify_interval = \"300ms\"\n[restart]\ndelay = \"200ms\"\n",
    );
    j.ok(&["up"]);
    let u = j.wait_unit("rs", Duration::from_secs(15), |u| {
        u["restarts"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        u["reason"]
            .as_str()
            .is_some_and(|r| r.contains("GPU fallback: no process of the unit holds memory on")),
        "{u:#}"
    );
    let ev = events(&j);
    let restarted: Vec<&Value> = ev
        .iter()
        .filter(|e| e["unit"] == "rs" && e["kind"] == "restarted")
        .collect();
    assert!(
        restarted
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains(&format!(
                "GPU fallback: no process of the unit holds memory on {}",
                fixture::h200::UUID
            ))),
        "{ev:#?}"
    );
    assert!(
        ev.iter()
            .any(|e| e["unit"] == "rs" && e["kind"] == "gpu-fallback"),
        "{ev:#?}"
    );
    // The restart policy bounds it: the burst limit ends the loop.
    let u = j.wait_unit("rs", Duration::from_secs(30), |u| u["state"] == "failed");
    assert!(
        u["reason"].as_str().unwrap().contains("restart.burst"),
        "{u:#}"
    );
    // The unit that runs on its GPU was left alone all along.
    assert_eq!(j.unit("llm")["restarts"], 0);
}
