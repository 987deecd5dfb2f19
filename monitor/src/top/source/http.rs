//! The daemon over HTTP: `/api/v1/processes` for the processes, `/metrics` for host CPU and
//! the run-queue histogram. Memory, disk and network come from this machine's `/proc`, so
//! only when the daemon is on this machine (a loopback URL).

use std::{
    io::Read as _,
    net::IpAddr,
    time::{Duration, Instant},
};

use url::{Host, Url};

use crate::top::{
    exposition,
    host::HostReader,
    sample::{parse_processes, Sample},
    services,
};

/// A process list is about 250 bytes per process; this bounds memory against a URL that
/// streams without end, far above any real host.
const MAX_BODY: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing listens at the address.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

pub struct Daemon {
    agent: ureq::Agent,
    /// The URL as given, without a trailing slash.
    base: String,
    processes: String,
    metrics: String,
    local: bool,
    host: HostReader,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(a)) => IpAddr::V4(a).is_loopback(),
        Some(Host::Ipv6(a)) => IpAddr::V6(a).is_loopback(),
        None => false,
    }
}

/// The first line of an error body, kept short for a one-line error.
fn snippet(body: &str) -> String {
    let line = body.lines().map(str::trim).find(|l| !l.is_empty());
    let mut s: String = line.unwrap_or("").chars().take(120).collect();
    if !s.is_empty() {
        s.insert_str(0, ": ");
    }
    s
}

impl Daemon {
    pub fn new(url: &Url) -> Self {
        let base = url.as_str().trim_end_matches('/').to_string();
        Self {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(2))
                .timeout(Duration::from_secs(10))
                .build(),
            processes: format!("{base}/api/v1/processes"),
            metrics: format!("{base}/metrics"),
            base,
            local: is_loopback(url),
            host: HostReader::default(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn is_local(&self) -> bool {
        self.local
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        match self.agent.get(url).call() {
            Ok(r) => {
                let mut body = Vec::new();
                r.into_reader()
                    .take(MAX_BODY)
                    .read_to_end(&mut body)
                    .map_err(|e| FetchError::Failed(format!("GET {url}: reading the body: {e}")))?;
                Ok(body)
            }
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                Err(FetchError::Failed(format!(
                    "GET {url}: HTTP {code}{}",
                    snippet(&body)
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                let source = std::error::Error::source(&t);
                let refused = source
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
                let why = match source {
                    Some(s) => format!("{}: {s}", t.kind()),
                    None => t.kind().to_string(),
                };
                let msg = format!("GET {url}: {why}");
                Err(if refused {
                    FetchError::Refused(msg)
                } else {
                    FetchError::Failed(msg)
                })
            }
        }
    }

    pub fn sample(&self) -> Result<Sample, FetchError> {
        let body = self.get(&self.processes)?;
        let mut s = parse_processes(&body, Instant::now())
            .map_err(|e| FetchError::Failed(format!("GET {}: {e:#}", self.processes)))?;
        // Host figures are extras: a daemon with another telemetry path, or without its
        // cpu collector, still gives a full process table.
        match self.get(&self.metrics) {
            Ok(text) => {
                let text = String::from_utf8_lossy(&text);
                let (cpu, runq) = exposition::parse(&text);
                s.host.cpu = cpu;
                s.host.runq = runq;
                s.host.services = services::parse(&text);
            }
            Err(e) => s.warning = Some(format!("no host CPU or run-queue figures ({e})")),
        }
        if self.local {
            let with_cpu = s.host.cpu.is_none();
            self.host.fill(&mut s.host, with_cpu);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        for (u, local) in [
            ("http://127.0.0.1:9957", true),
            ("http://localhost:9957/", true),
            ("http://[::1]:9957", true),
            ("http://10.1.2.3:9957", false),
            ("http://example.com", false),
        ] {
            assert_eq!(is_loopback(&Url::parse(u).unwrap()), local, "{u}");
        }
    }

    #[test]
    fn endpoints_join_the_base() {
        let d = Daemon::new(&Url::parse("http://127.0.0.1:1/prefix/").unwrap());
        assert_eq!(d.base(), "http://127.0.0.1:1/prefix");
        assert_eq!(d.processes, "http://127.0.0.1:1/prefix/api/v1/processes");
        assert_eq!(d.metrics, "http://127.0.0.1:1/prefix/metrics");
    }

    #[test]
    fn error_bodies_become_one_short_line() {
        assert_eq!(snippet("\n  not found\nmore"), ": not found");
        assert_eq!(snippet(""), "");
        assert_eq!(snippet(&"x".repeat(500)).len(), 122);
    }
}
