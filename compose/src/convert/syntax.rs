//! Compose's spellings of durations, sizes, ports and volumes, read as
//! Docker reads them, and jarvis's spellings of the same values.

use std::time::Duration;

/// A Go duration as compose writes one: `1m30s`, `10s`, `500ms`, `1.5h`,
/// `2us`. A bare number is refused (compose refuses it too).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the duration is empty".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "{s:?} is not a duration such as 1m30s, 10s or 500ms"
            ));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration such as 1m30s, 10s or 500ms"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "{s:?} has no unit; write e.g. {}s",
                    &s[..num_len.min(s.len())]
                ))
            }
            u => {
                return Err(format!(
                    "{s:?} has the unknown unit {u:?}; use ns, us, ms, s, m or h"
                ))
            }
        };
        total += n * scale;
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration as jarvis reads it: whole seconds as `90s`, else
/// milliseconds (`1500ms`), else microseconds.
pub(crate) fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos() == d.subsec_millis() * 1_000_000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros().max(1))
    }
}

/// A byte size as Docker reads one (`units.RAMInBytes`): a number with an
/// optional `b`, `k`, `m`, `g`, `t` or `p` suffix (any case, an optional
/// trailing `b` or `ib`), all powers of 1024; or a plain integer of bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a size such as 512m, 1g or 1048576");
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if num_len == 0 {
        return Err(bad());
    }
    let n: f64 = t[..num_len].parse().map_err(|_| bad())?;
    let unit = t[num_len..].trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    Ok((n * scale as f64) as u64)
}

/// A size as jarvis writes one: the largest binary suffix that divides it
/// (`128M`, `1G`), else bytes.
pub(crate) fn show_size(bytes: u64) -> String {
    for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.trailing_zeros() >= shift {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// One published port after ranges are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Port {
    pub host_ip: Option<String>,
    /// `None`: compose picks a free host port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: String,
}

impl Port {
    /// jarvis's spelling, `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/udp]`.
    pub fn jarvis(&self) -> Option<String> {
        let host_port = self.host_port?;
        let ip = match &self.host_ip {
            Some(ip) if ip.contains(':') && !ip.starts_with('[') => format!("[{ip}]:"),
            Some(ip) => format!("{ip}:"),
            None => String::new(),
        };
        let proto = if self.protocol == "tcp" {
            String::new()
        } else {
            format!("/{}", self.protocol)
        };
        Some(format!("{ip}{host_port}:{}{proto}", self.container_port))
    }
}

/// `a` or `a-b`.
fn port_range(s: &str) -> Result<(u16, u16), String> {
    let num = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{p:?} is not a port number"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("the range {s:?} runs backwards"));
            }
            Ok((a, b))
        }
        None => num(s).map(|n| (n, n)),
    }
}

/// Expands host and container ranges into ports, as compose does: equal
/// lengths pair up; a single container port with a host range, or no host
/// port, leaves the host port for compose to pick.
pub(crate) fn expand_ports(
    host_ip: Option<&str>,
    host: Option<&str>,
    container: &str,
    protocol: &str,
) -> Result<Vec<Port>, String> {
    let (c0, c1) = port_range(container)?;
    let host_ip = host_ip
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('[').trim_end_matches(']').to_string());
    let mk = |h: Option<u16>, c: u16| Port {
        host_ip: host_ip.clone(),
        host_port: h,
        container_port: c,
        protocol: protocol.to_string(),
    };
    match host.filter(|h| !h.is_empty()) {
        None => Ok((c0..=c1).map(|c| mk(None, c)).collect()),
        Some(h) => {
            let (h0, h1) = port_range(h)?;
            if h1 - h0 == c1 - c0 {
                Ok((c0..=c1).map(|c| mk(Some(h0 + (c - c0)), c)).collect())
            } else if c0 == c1 {
                Ok(vec![mk(None, c0)])
            } else {
                Err(format!(
                    "the host range {h:?} and the container range {container:?} differ in length"
                ))
            }
        }
    }
}

/// The short port syntax: `[[IP:]HOST:]CONTAINER[/PROTOCOL]`, IPv6 in
/// brackets or bare (the last two ':' separate the ports).
pub(crate) fn parse_short_port(s: &str) -> Result<Vec<Port>, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (s, "tcp".to_string()),
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    match parts.as_slice() {
        [c] => expand_ports(None, None, c, &protocol),
        [c, h] => expand_ports(None, Some(h), c, &protocol),
        [c, h, ip] => expand_ports(Some(ip), Some(h), c, &protocol),
        _ => Err(format!("{s:?} is not a port")),
    }
}

/// A volume in the short syntax, `SOURCE:TARGET[:MODE]` or `TARGET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShortVolume {
    pub source: Option<String>,
    pub target: String,
    pub options: Vec<String>,
}

/// Splits the short volume syntax as compose does (a Windows drive letter
/// is not looked for: this is Linux).
pub(crate) fn parse_short_volume(s: &str) -> Result<ShortVolume, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [src, t] => (Some(*src), *t, None),
        [src, t, m] => (Some(*src), *t, Some(*m)),
        _ => return Err(format!("{s:?} has too many ':'")),
    };
    if target.is_empty() {
        return Err(format!("{s:?} has no container path"));
    }
    Ok(ShortVolume {
        source: source.map(str::to_string),
        target: target.to_string(),
        options: mode
            .map(|m| m.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// Whether a volume source is a host path rather than a volume name:
/// compose's rule (absolute, `.` or `~`).
pub(crate) fn is_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

/// A named-volume name as jarvis (and Docker) takes it.
pub(crate) fn is_volume_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A bridge-network name as jarvis takes it: `[a-z0-9][a-z0-9_.-]*`, at
/// most 64 bytes.
pub(crate) fn is_network_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// Docker's default capabilities that jarvis's default container set
/// (Podman's eleven) leaves out.
pub(crate) const DOCKER_EXTRA_CAPS: &[&str] = &["AUDIT_WRITE", "MKNOD", "NET_RAW"];

/// `CAP_X` or `x` as `X`.
pub(crate) fn cap_name(s: &str) -> String {
    let up = s.trim().to_ascii_uppercase();
    up.strip_prefix("CAP_").map(str::to_string).unwrap_or(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10x").is_err());
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show_duration(Duration::from_micros(20)), "20us");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128mb"), Ok(128 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("100b"), Ok(100));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert!(parse_size("lots").is_err());
        assert_eq!(show_size(128 << 20), "128M");
        assert_eq!(show_size(3 << 29), "1536M");
        assert_eq!(show_size(1 << 30), "1G");
        assert_eq!(show_size(1000), "1000");
    }

    #[test]
    fn short_ports() {
        let p = parse_short_port("127.0.0.1:8001:8001").unwrap();
        assert_eq!(p[0].jarvis().as_deref(), Some("127.0.0.1:8001:8001"));
        let p = parse_short_port("8000-8002:9000-9002/udp").unwrap();
        let got: Vec<String> = p.iter().filter_map(Port::jarvis).collect();
        assert_eq!(got, ["8000:9000/udp", "8001:9001/udp", "8002:9002/udp"]);
        assert_eq!(parse_short_port("3000").unwrap()[0].host_port, None);
        assert_eq!(
            parse_short_port("127.0.0.1::5000").unwrap()[0].host_port,
            None
        );
        assert_eq!(parse_short_port("8000-8010:80").unwrap()[0].host_port, None);
        let p = parse_short_port("[::1]:6001:6001").unwrap();
        assert_eq!(p[0].jarvis().as_deref(), Some("[::1]:6001:6001"));
        let p = parse_short_port("::1:6001:6001").unwrap();
        assert_eq!(p[0].jarvis().as_deref(), Some("[::1]:6001:6001"));
        assert!(parse_short_port("80-81:90-99").is_err());
    }

    #[test]
    fn short_volumes() {
        let v = parse_short_volume("pgdata:/var/lib/postgresql/data:ro,z").unwrap();
        assert_eq!(v.source.as_deref(), Some("pgdata"));
        assert_eq!(v.options, ["ro", "z"]);
        assert_eq!(parse_short_volume("/data").unwrap().source, None);
        assert!(is_path("./x") && is_path("/x") && is_path("~/x") && !is_path("x"));
        assert!(is_volume_name("immich_model-cache") && !is_volume_name("_x"));
        assert!(is_network_name("immich_default") && !is_network_name("Immich"));
    }
}
