//! One health probe of a unit: http and tcp from jarvisd itself, exec
//! through the runtime of the unit's form (in its cgroup with its identity,
//! or inside its container).

use jarvis_runtime::{Runtime as _, Runtimes};
use jarvis_unit::{Probe, Unit};

/// Runs one health check of `unit` and says how it went: `Ok` with a detail
/// when it passed. Unbounded: the caller applies the unit's timeout
/// (dropping the future ends an exec check's process).
pub async fn probe(rt: &Runtimes, unit: &Unit, probe: &Probe) -> Result<String, String> {
    match probe {
        Probe::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(|_| format!("connected to {addr}"))
            .map_err(|e| format!("tcp {addr}: {e}")),
        Probe::Http(url) => {
            let client = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?;
            match client.get(url.as_str()).send().await {
                Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => {
                    Ok(format!("GET {url}: {}", resp.status()))
                }
                Ok(resp) => Err(format!("GET {url}: {}", resp.status())),
                Err(e) => Err(format!("GET {url}: {}", error_chain(&e))),
            }
        }
        Probe::Exec(argv) => rt.exec_probe(unit, argv.clone()).await,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
