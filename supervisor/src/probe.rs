//! One health probe of a unit: http and tcp from jarvisd itself, exec
//! through the runtime of the unit's form (in its cgroup with its identity,
//! or inside its container).
//!
//! For a container in a network namespace of jarvis's (`bridge`, or
//! `unit:NAME`), a loopback address in an http or tcp check means the
//! container's own loopback, as a check inside it would see it: jarvisd
//! asks the container's address on its first network instead.

use jarvis_runtime::{Runtime as _, Runtimes};
use jarvis_unit::{Probe, Unit};

/// Runs one health check of `unit` and says how it went: `Ok` with a detail
/// when it passed. Unbounded: the caller applies the unit's timeout
/// (dropping the future ends an exec check's process).
pub async fn probe(rt: &Runtimes, unit: &Unit, probe: &Probe) -> Result<String, String> {
    let inside = rt.unit_network(unit).addresses.first().map(|(_, ip)| *ip);
    match probe {
        Probe::Tcp(addr) => {
            let addr = match inside {
                Some(ip) => tcp_inside(addr, ip),
                None => addr.clone(),
            };
            tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map(|_| format!("connected to {addr}"))
                .map_err(|e| format!("tcp {addr}: {e}"))
        }
        Probe::Http(url) => {
            let url = match inside {
                Some(ip) => http_inside(url, ip),
                None => url.clone(),
            };
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

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `HOST:PORT` with a loopback HOST turned into the container's address.
fn tcp_inside(addr: &str, ip: std::net::Ipv4Addr) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) if is_loopback(host) => format!("{ip}:{port}"),
        _ => addr.to_string(),
    }
}

/// An http URL with a loopback host turned into the container's address.
fn http_inside(url: &str, ip: std::net::Ipv4Addr) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    if u.host_str().is_some_and(is_loopback) && u.set_host(Some(&ip.to_string())).is_ok() {
        u.to_string()
    } else {
        url.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_checks_of_a_bridged_container_go_to_its_address() {
        let ip = "10.89.0.7".parse().unwrap();
        assert_eq!(tcp_inside("127.0.0.1:5432", ip), "10.89.0.7:5432");
        assert_eq!(tcp_inside("localhost:5432", ip), "10.89.0.7:5432");
        assert_eq!(tcp_inside("[::1]:5432", ip), "10.89.0.7:5432");
        assert_eq!(tcp_inside("db:5432", ip), "db:5432");
        assert_eq!(
            http_inside("http://127.0.0.1:11434/api/version", ip),
            "http://10.89.0.7:11434/api/version"
        );
        assert_eq!(
            http_inside("http://localhost/health?x=1", ip),
            "http://10.89.0.7/health?x=1"
        );
        assert_eq!(
            http_inside("http://192.0.2.5:80/", ip),
            "http://192.0.2.5:80/"
        );
    }
}
