//! `[container]`'s network keys: `network`, `networks`, `ports`,
//! `hostname`, `aliases`, `extra_hosts` and `dns`.

use std::net::IpAddr;
use std::ops::Range;

use super::{
    a_type, check_unit_name, did_you_mean, is_valid_unit_name, string, string_list, Cx, Section,
    Value,
};
use crate::limits::MAX_NETWORK_NAME;
use crate::schema::{
    check_hostname, check_label, is_dns_label, Container, ExtraHost, HostTarget, Network,
    NetworkWord, PortSpec,
};

/// The longest hostname the kernel takes (`HOST_NAME_MAX`).
const HOSTNAME_MAX: usize = 64;

/// What the network keys of one `[container]` parsed to.
pub(super) struct NetKeys {
    /// Every key's value; `None` when any of them has an error.
    pub fields: Option<NetFields>,
    /// The network when its value is well-formed (`bridge` when absent),
    /// with the span of the value (of the section when absent).
    pub network: Option<(Network, Range<usize>)>,
    /// The well-formed ports with their spans (bridge units only).
    pub ports: Vec<(PortSpec, Range<usize>)>,
}

pub(super) struct NetFields {
    pub network: Network,
    pub networks: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub hostname: Option<String>,
    pub aliases: Vec<String>,
    pub extra_hosts: Vec<ExtraHost>,
    pub dns: Vec<IpAddr>,
}

/// Parses the network keys of `s`, a `[container]` section of the unit
/// `unit` (`None` when the file name is not a unit name).
pub(super) fn parse_network_keys(
    cx: &mut Cx<'_>,
    s: &Section<'_, '_>,
    unit: Option<&str>,
) -> NetKeys {
    let network = match s.get("network") {
        None => Some((Network::Bridge, s.span.clone())),
        Some(v) => network_value(cx, &s.label("network"), v, unit).map(|n| (n, v.span())),
    };
    let net = network.as_ref().map(|(n, _)| n.clone());
    let mut ok = network.is_some();

    let mut bridged = |cx: &mut Cx<'_>, key: &str| usable(cx, s, key, net.as_ref(), &mut ok);
    let networks = match bridged(cx, "networks") {
        Some(v) => networks(cx, &s.label("networks"), v),
        None => Some(Container::default_networks(
            net.as_ref().unwrap_or(&Network::Bridge),
        )),
    };
    let mut port_spans = Vec::new();
    let ports = match bridged(cx, "ports") {
        Some(v) => ports(cx, &s.label("ports"), v, &mut port_spans),
        None => Some(Vec::new()),
    };
    let hostname = match s.get("hostname") {
        Some(v) => hostname(cx, &s.label("hostname"), v).map(Some),
        None => Some(None),
    };
    let aliases = match bridged(cx, "aliases") {
        Some(v) => aliases(cx, &s.label("aliases"), v, unit),
        None => Some(Vec::new()),
    };
    let extra_hosts = match bridged(cx, "extra_hosts") {
        Some(v) => extra_hosts(cx, &s.label("extra_hosts"), v, net.as_ref()),
        None => Some(Vec::new()),
    };
    let dns = match bridged(cx, "dns") {
        Some(v) => dns(cx, &s.label("dns"), v),
        None => Some(Vec::new()),
    };

    // The unit's name is its default hostname and a DNS name on its
    // networks.
    if let (Some(unit), Some((Network::Bridge, span)), None) = (unit, &network, s.get("hostname")) {
        if !is_dns_label(unit) {
            ok = false;
            let why = check_label(unit).err().unwrap_or_default();
            let fixed = unit.trim_end_matches('-');
            let fixed = &fixed[..fixed.len().min(63)];
            cx.error(
                span.clone(),
                format!(
                    "the unit name {unit:?} is not a DNS name ({why}), and a bridged container \
                     is known on its networks by its unit name; rename the file (e.g. to \
                     \"{fixed}.toml\") or set hostname = \"{fixed}\" to name it"
                ),
            );
        }
    }

    let fields = (|| {
        Some(NetFields {
            network: net.clone()?,
            networks: networks?,
            ports: ports?,
            hostname: hostname?,
            aliases: aliases?,
            extra_hosts: extra_hosts?,
            dns: dns?,
        })
    })()
    .filter(|_| ok);
    NetKeys {
        fields,
        network,
        ports: port_spans,
    }
}

/// The value of `key` when `network` (`None` when unknown) takes it;
/// otherwise an error at the key, and `ok` turns false.
fn usable<'a, 'i>(
    cx: &mut Cx<'_>,
    s: &Section<'a, 'i>,
    key: &str,
    network: Option<&Network>,
    ok: &mut bool,
) -> Option<&'a Value<'i>> {
    let v = s.get(key)?;
    let label = s.label(key);
    let message = match network? {
        Network::Host if key == "extra_hosts" => format!(
            "{label}: with network = \"host\" the container uses the host's /etc/hosts; add \
             the names there, or use network = \"bridge\""
        ),
        _ if key == "extra_hosts" => return Some(v),
        Network::Bridge => return Some(v),
        n => not_on_bridge(&label, key, n),
    };
    cx.error(s.key(key).map_or(v.span(), |k| k.span()), message);
    *ok = false;
    None
}

/// Why `key` is wrong with `network`, which is not `bridge`.
fn not_on_bridge(label: &str, key: &str, network: &Network) -> String {
    let what = match key {
        "ports" => "published ports",
        "networks" => "networks to join",
        "aliases" => "aliases (more names on its networks)",
        _ => "upstream resolvers (dns)",
    };
    let advice = match (key, network) {
        ("ports", Network::Host) => {
            "with network = \"host\" the service listens on the host's ports directly; remove \
             ports"
                .to_string()
        }
        ("ports", Network::None) => {
            "network = \"none\" has only loopback, so nothing can reach a published port; use \
             network = \"bridge\" (the default) or remove ports"
                .to_string()
        }
        ("ports", Network::Unit(owner)) => format!(
            "ports belong to the unit that owns the namespace, {owner}: move them to the \
             [container] of {owner}"
        ),
        ("networks", Network::Unit(owner)) => format!(
            "the container shares the network namespace of {owner}, and so its networks: set \
             networks in the [container] of {owner}"
        ),
        ("aliases", Network::Unit(owner)) => format!(
            "the container shares the network namespace of {owner}: give the aliases to \
             {owner}, and they reach this container too"
        ),
        (_, Network::Unit(owner)) => format!(
            "the container shares the network namespace of {owner} and its resolver: set dns \
             in the [container] of {owner}"
        ),
        ("dns", Network::Host) => {
            "with network = \"host\" the container uses the host's /etc/resolv.conf; remove dns"
                .to_string()
        }
        (_, n) => format!(
            "network = \"{n}\" joins no bridge network; remove {key}, or use network = \"bridge\" \
             (the default)"
        ),
    };
    format!("{label}: only a bridged unit (network = \"bridge\") has {what}; {advice}")
}

/// `network`: a word, or `unit:NAME` naming another unit.
fn network_value(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    unit: Option<&str>,
) -> Option<Network> {
    let expected = Network::expected();
    let text = match v.get_ref() {
        toml::de::DeValue::String(s) => s.to_string(),
        other => {
            cx.error(
                v.span(),
                format!(
                    "{label}: expected a string, one of {expected}; found {}",
                    a_type(other)
                ),
            );
            return None;
        }
    };
    for docker in ["container:", "service:"] {
        if let Some(name) = text.strip_prefix(docker) {
            cx.error(
                v.span(),
                format!(
                    "{label}: unknown value {text:?}; to join the network namespace of another \
                     unit write \"{}{name}\"",
                    Network::UNIT_PREFIX
                ),
            );
            return None;
        }
    }
    match text.parse::<Network>() {
        Ok(Network::Unit(name)) if !is_valid_unit_name(&name) => {
            let why = check_unit_name(&name).err().unwrap_or_default();
            cx.error(
                v.span(),
                format!(
                    "{label}: {text:?} names no unit: {name:?} is not a unit name: {why} (a \
                     unit's name is its file name without .toml)"
                ),
            );
            None
        }
        Ok(Network::Unit(name)) if Some(name.as_str()) == unit => {
            cx.error(
                v.span(),
                format!(
                    "{label}: {text:?} names this unit itself, a cycle: a unit cannot join its \
                     own network namespace; use network = \"bridge\" for a namespace of its own"
                ),
            );
            None
        }
        Ok(n) => Some(n),
        Err(e) if text.starts_with(Network::UNIT_PREFIX) => {
            cx.error(v.span(), format!("{label}: {e}"));
            None
        }
        Err(_) => {
            cx.error(
                v.span(),
                format!(
                    "{label}: unknown value {text:?}; expected one of {expected}{}",
                    did_you_mean(&text, NetworkWord::ALL.iter().map(|w| w.as_str()))
                ),
            );
            None
        }
    }
}

/// A list of strings, each parsed by `item` (which reports its own errors
/// and gives `None`), each once (by what it parses to). `None` when any
/// element is bad.
fn unique_list<T: PartialEq>(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    example: &str,
    mut item: impl FnMut(&mut Cx<'_>, &str, Range<usize>) -> Option<T>,
) -> Option<Vec<(T, Range<usize>)>> {
    let list = string_list(cx, label, v, example)?;
    let mut out: Vec<(T, Range<usize>)> = Vec::new();
    let mut ok = true;
    for (text, span) in list {
        let Some(t) = item(cx, &text, span.clone()) else {
            ok = false;
            continue;
        };
        if let Some((_, first)) = out.iter().find(|(u, _)| *u == t) {
            let (line, col) = cx.line_col(first.start);
            cx.error(
                span,
                format!("{label}: {text:?} is listed twice (first at {line}:{col}); remove one"),
            );
            ok = false;
            continue;
        }
        out.push((t, span));
    }
    ok.then_some(out)
}

/// `networks`: bridge network names, at least one.
fn networks(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<Vec<String>> {
    const EXAMPLE: &str = "[\"default\", \"media\"]";
    let list = unique_list(
        cx,
        label,
        v,
        EXAMPLE,
        |cx, name, span| match check_network_name(name) {
            Ok(()) => Some(name.to_string()),
            Err(e) => {
                cx.error(span, format!("{label}: {e}"));
                None
            }
        },
    )?;
    if list.is_empty() {
        cx.error(
            v.span(),
            format!(
                "{label}: a bridged unit joins at least one network; leave networks out for \
                 [\"{}\"], or use network = \"none\" for a container with only loopback",
                Container::DEFAULT_NETWORK
            ),
        );
        return None;
    }
    Some(list.into_iter().map(|(n, _)| n).collect())
}

/// Why `name` is not a network name, if it is not.
fn check_network_name(name: &str) -> Result<(), String> {
    const RULE: &str = "network names are lowercase letters, digits, '_', '.' and '-', starting \
                        with a letter or digit, e.g. \"media\"";
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        return Err(format!("a network name is empty; {RULE}"));
    }
    if !first_ok {
        return Err(format!("{name:?} is not a network name; {RULE}"));
    }
    if let Some(c) = chars
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!("{name:?} has {c:?}; {RULE}"));
    }
    if name.len() > MAX_NETWORK_NAME {
        return Err(format!(
            "{name:?} is {} bytes long; a network name has at most {MAX_NETWORK_NAME}",
            name.len()
        ));
    }
    Ok(())
}

/// `ports`: each `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`, each
/// host address, port and protocol once. `spans` gets every well-formed
/// port that does not clash, with its span.
fn ports(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    spans: &mut Vec<(PortSpec, Range<usize>)>,
) -> Option<Vec<PortSpec>> {
    const EXAMPLE: &str = "[\"8080:80\", \"127.0.0.1:5353:53/udp\"]";
    if let toml::de::DeValue::Array(a) = v.get_ref() {
        for item in a.iter() {
            if let toml::de::DeValue::Integer(i) = item.get_ref() {
                let n = i.as_str();
                cx.error(
                    item.span(),
                    format!(
                        "{label}: expected a string \"HOST_PORT:CONTAINER_PORT\", found an \
                         integer; write \"{n}:{n}\" to publish port {n} on the same host port"
                    ),
                );
                return None;
            }
        }
    }
    let list = string_list(cx, label, v, EXAMPLE)?;
    let mut ok = true;
    let mut out: Vec<(PortSpec, String, Range<usize>)> = Vec::new();
    for (text, span) in list {
        let port = match text.parse::<PortSpec>() {
            Ok(p) => p,
            Err(e) => {
                cx.error(span, format!("{label}: invalid port {text:?}: {e}"));
                ok = false;
                continue;
            }
        };
        if let Some((first, first_text, first_span)) =
            out.iter().find(|(p, _, _)| p.clashes_with(&port))
        {
            let (line, col) = cx.line_col(first_span.start);
            let why = if first == &port {
                format!("is listed twice (first at {line}:{col}); remove one")
            } else {
                format!(
                    "takes host port {} too, which {first_text:?} ({line}:{col}) already \
                     publishes{}; publish it on another host port",
                    port.host_side(),
                    every_address(first, &port)
                )
            };
            cx.error(span, format!("{label}: {text:?} {why}"));
            ok = false;
            continue;
        }
        out.push((port, text, span));
    }
    spans.extend(out.iter().map(|(p, _, s)| (*p, s.clone())));
    ok.then(|| out.into_iter().map(|(p, _, _)| p).collect())
}

/// Why two clashing ports clash when their host addresses differ (one of
/// them has none); empty otherwise.
pub(crate) fn every_address(a: &PortSpec, b: &PortSpec) -> &'static str {
    if a.host_ip != b.host_ip {
        " (a port without a host address is published on every address)"
    } else {
        ""
    }
}

/// `hostname`: DNS labels joined by dots, at most 64 bytes.
fn hostname(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<String> {
    let name = string(cx, label, v)?;
    if name.is_empty() {
        cx.error(
            v.span(),
            format!("{label}: must not be empty; leave it out for the unit's name"),
        );
        return None;
    }
    match check_hostname(&name, HOSTNAME_MAX) {
        Ok(()) => Some(name),
        Err(e) => {
            cx.error(
                v.span(),
                format!(
                    "{label}: {e} (a hostname is DNS labels joined by dots, at most \
                     {HOSTNAME_MAX} bytes), e.g. hostname = \"ollama\""
                ),
            );
            None
        }
    }
}

/// `aliases`: DNS labels, each once, not the unit's own name.
fn aliases(cx: &mut Cx<'_>, label: &str, v: &Value<'_>, unit: Option<&str>) -> Option<Vec<String>> {
    let list = unique_list(cx, label, v, "[\"llm\"]", |cx, alias, span| {
        if let Err(e) = check_label(alias) {
            let dots = if alias.contains('.') {
                " (an alias is one label, without dots)"
            } else {
                ""
            };
            cx.error(span, format!("{label}: {e}{dots}"));
            return None;
        }
        if Some(alias) == unit {
            cx.error(
                span,
                format!(
                    "{label}: {alias:?} is the unit's name, which is a name on its networks \
                     already; remove it"
                ),
            );
            return None;
        }
        Some(alias.to_string())
    })?;
    Some(list.into_iter().map(|(a, _)| a).collect())
}

/// `extra_hosts`: `NAME:IP` or `NAME:host-gateway` (not with `none`), each
/// name once.
fn extra_hosts(
    cx: &mut Cx<'_>,
    label: &str,
    v: &Value<'_>,
    network: Option<&Network>,
) -> Option<Vec<ExtraHost>> {
    let example = format!("[{}]", ExtraHost::EXAMPLES.trim_start_matches("e.g. "));
    let mut names: Vec<(String, Range<usize>)> = Vec::new();
    let list = unique_list(cx, label, v, &example, |cx, text, span| {
        let host = match text.parse::<ExtraHost>() {
            Ok(h) => h,
            Err(e) => {
                cx.error(span, format!("{label}: invalid entry {text:?}: {e}"));
                return None;
            }
        };
        if host.target == HostTarget::Gateway && network == Some(&Network::None) {
            cx.error(
                span,
                format!(
                    "{label}: {text:?}: with network = \"none\" there is no way to the host, so \
                     no {:?}; give an address, or use network = \"bridge\"",
                    HostTarget::GATEWAY
                ),
            );
            return None;
        }
        if let Some((_, first)) = names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&host.name))
        {
            let (line, col) = cx.line_col(first.start);
            cx.error(
                span,
                format!(
                    "{label}: {text:?}: the name {:?} is given an address already (at \
                     {line}:{col}); give each name once",
                    host.name
                ),
            );
            return None;
        }
        names.push((host.name.clone(), span));
        Some(host)
    })?;
    Some(list.into_iter().map(|(h, _)| h).collect())
}

/// `dns`: resolver addresses, each once.
fn dns(cx: &mut Cx<'_>, label: &str, v: &Value<'_>) -> Option<Vec<IpAddr>> {
    const EXAMPLE: &str = "[\"9.9.9.9\", \"2620:fe::fe\"]";
    let list = unique_list(cx, label, v, EXAMPLE, |cx, text, span| {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(ip);
        }
        let hint = if text.parse::<std::net::SocketAddr>().is_ok() {
            "give the address without a port (resolvers are asked on port 53)".to_string()
        } else {
            format!("give the resolvers' IP addresses, e.g. {EXAMPLE}")
        };
        cx.error(
            span,
            format!("{label}: {text:?} is not an IP address; {hint}"),
        );
        None
    })?;
    Some(list.into_iter().map(|(ip, _)| ip).collect())
}
