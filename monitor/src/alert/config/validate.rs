//! The checks of the alerting config that span fields: names, URLs, the route tree's
//! receivers, bounds. Each error names the file and the field.

use std::time::Duration;

use anyhow::bail;

use super::{Config, Route};
use crate::alert::rules;

pub fn validate(file: &str, c: &Config) -> anyhow::Result<()> {
    let mut names = std::collections::HashSet::new();
    for (i, r) in c.receivers.iter().enumerate() {
        let at = format!("{file}: receivers[{i}] ({:?})", r.name);
        if r.name.is_empty()
            || !r
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            bail!("{at}: name must be letters, digits, - or _");
        }
        if !names.insert(r.name.clone()) {
            bail!("{at}: name is used twice");
        }
        let kind = r.kind.kind();
        for (field, u) in r.kind.urls() {
            // The old kinds' errors said `url` alone; the new kinds name kind and field.
            let field = match kind {
                "webhook" | "alertmanager" | "slack" | "pagerduty" => field,
                _ => format!("{kind}.{field}"),
            };
            let parsed =
                url::Url::parse(u).map_err(|e| anyhow::anyhow!("{at}: {field} {u:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("{at}: {field} {u:?}: only http and https are supported");
            }
        }
        r.kind
            .check()
            .map_err(|e| anyhow::anyhow!("{at}: {kind}.{e}"))?;
        if let Some(rl) = r.rate_limit {
            if rl.count == 0 || rl.per.0.is_zero() {
                bail!("{at}: rate_limit: count and per must be above zero");
            }
        }
        if r.timeout.0.is_zero() {
            bail!("{at}: timeout must be above zero");
        }
    }
    if let Some(route) = &c.route {
        check_route(file, "route", route, &names, true)?;
    } else if c.receivers.len() > 1 {
        bail!("{file}: route: missing; with several receivers, say which gets what (route.receiver and route.routes)");
    }
    if c.delivery.max_queue == 0 {
        bail!("{file}: delivery.max_queue must be above zero");
    }
    if c.delivery.initial_backoff.0.is_zero()
        || c.delivery.max_backoff.0 < c.delivery.initial_backoff.0
    {
        bail!("{file}: delivery: initial_backoff must be above zero and at most max_backoff");
    }
    if let Some(h) = &c.heartbeat {
        url::Url::parse(&h.url)
            .map_err(|e| anyhow::anyhow!("{file}: heartbeat.url {:?}: {e}", h.url))?;
        if !matches!(h.method.as_str(), "GET" | "POST" | "HEAD" | "PUT") {
            bail!(
                "{file}: heartbeat.method {:?}: GET, POST, HEAD or PUT",
                h.method
            );
        }
        if h.interval.0 < Duration::from_millis(100) {
            bail!("{file}: heartbeat.interval must be at least 100ms");
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in c.services.iter().enumerate() {
        let at = format!("{file}: services[{i}] ({:?})", s.name);
        if !is_simple_name(&s.name) || !seen.insert(s.name.clone()) {
            bail!("{at}: name must be unique, of letters, digits, '.', '-' or '_'");
        }
        if s.comm.is_none() && s.exe.is_none() && s.cmdline.is_none() {
            bail!("{at}: give comm, exe or cmdline (a regular expression)");
        }
        if !rules::SEVERITIES.contains(&s.severity.as_str()) {
            bail!(
                "{at}: severity {:?} is not one of {}",
                s.severity,
                rules::SEVERITIES.join(", ")
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in c.probes.iter().enumerate() {
        let at = format!("{file}: probes[{i}] ({:?})", p.name);
        if !is_simple_name(&p.name) || !seen.insert(p.name.clone()) {
            bail!("{at}: name must be unique, of letters, digits, '.', '-' or '_'");
        }
        match (&p.http, &p.tcp) {
            (Some(h), None) => {
                let u = url::Url::parse(&h.url)
                    .map_err(|e| anyhow::anyhow!("{at}: http.url {:?}: {e}", h.url))?;
                if !matches!(u.scheme(), "http" | "https") {
                    bail!("{at}: http.url {:?}: only http and https", h.url);
                }
                if let Some(bad) = h.expect_status.iter().find(|c| !(100..=599).contains(*c)) {
                    bail!("{at}: http.expect_status: {bad} is not an HTTP status");
                }
            }
            (None, Some(t)) => {
                use std::net::ToSocketAddrs as _;
                if t.address.to_socket_addrs().is_err() {
                    bail!("{at}: tcp.address {:?} is not HOST:PORT", t.address);
                }
            }
            _ => bail!("{at}: give exactly one of http or tcp"),
        }
        if p.interval.0 < Duration::from_millis(100) || p.timeout.0.is_zero() {
            bail!("{at}: interval must be at least 100ms and timeout above zero");
        }
        if !rules::SEVERITIES.contains(&p.severity.as_str()) {
            bail!(
                "{at}: severity {:?} is not one of {}",
                p.severity,
                rules::SEVERITIES.join(", ")
            );
        }
    }
    Ok(())
}

/// A service or probe name: it becomes a label value and a rule matcher.
fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn check_route(
    file: &str,
    at: &str,
    r: &Route,
    receivers: &std::collections::HashSet<String>,
    top: bool,
) -> anyhow::Result<()> {
    match &r.receiver {
        Some(name) if !receivers.contains(name) => {
            bail!("{file}: {at}.receiver: {name:?} is not a configured receiver")
        }
        None if top && !receivers.is_empty() => {
            bail!("{file}: {at}.receiver: missing (the top route needs a receiver)")
        }
        _ => {}
    }
    if top && r.matchers.is_some() {
        bail!("{file}: {at}.matchers: the top route matches every alert");
    }
    for (i, c) in r.routes.iter().enumerate() {
        check_route(file, &format!("{at}.routes[{i}]"), c, receivers, false)?;
    }
    Ok(())
}
