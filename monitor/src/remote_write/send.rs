//! One sender thread per endpoint: takes the spool's oldest requests (`batch`), POSTs them
//! as one, and deletes them once the endpoint took it. 5xx, 429 and connection errors are retried with exponential
//! backoff (not before a `Retry-After`), so the requests arrive in order and none is skipped;
//! any other answer outside 2xx refuses the request for good (retrying cannot fix it): it is
//! deleted and its samples counted as failed.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use super::{batch, config::Endpoint, spool::Spool};
use crate::alert::notify::redact;

/// The first wait after a failure; it doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between tries (Prometheus's default is 5 s too): an endpoint back from
/// an outage gets the backlog within this long.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

const USER_AGENT: &str = concat!("monitor/", env!("CARGO_PKG_VERSION"));

/// An endpoint's counters, shown in its metrics.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub requests_failed: AtomicU64,
    /// Samples collected that could not be written to the spool (a disk error).
    pub unwritten: AtomicU64,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Sent,
    /// Not retried.
    Refused(String),
    /// Retried, not before the wait given (if any).
    Retry(String, Option<Duration>),
}

pub fn agent(e: &Endpoint) -> ureq::Agent {
    let mut b = ureq::AgentBuilder::new()
        .timeout(e.timeout)
        .user_agent(USER_AGENT)
        // A redirect would turn the POST into a GET or resend the body elsewhere: an
        // endpoint's URL is given whole.
        .redirects(0);
    if let Some(tls) = &e.tls {
        b = b.tls_connector(tls.clone());
    }
    b.build()
}

/// POSTs one request body once.
pub fn post(agent: &ureq::Agent, e: &Endpoint, body: &[u8]) -> Outcome {
    let shown = redact(&e.url);
    let mut rq = agent
        .post(&e.url)
        .set("Content-Encoding", "snappy")
        .set("Content-Type", "application/x-protobuf")
        .set("X-Prometheus-Remote-Write-Version", "0.1.0");
    for (k, v) in &e.headers {
        rq = rq.set(k, v);
    }
    match rq.send_bytes(body) {
        Ok(r) if (200..300).contains(&r.status()) => {
            let _ = r.into_string();
            Outcome::Sent
        }
        Ok(r) => Outcome::Refused(format!("{shown}: HTTP {}", r.status())),
        Err(ureq::Error::Status(code, r)) => {
            let retry_after = r
                .header("Retry-After")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(|s| Duration::from_secs_f64(s).min(MAX_RETRY_AFTER));
            let text: String = r
                .into_string()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let why = format!("{shown}: HTTP {code}: {}", text.trim());
            if code == 429 || code >= 500 {
                Outcome::Retry(why, retry_after)
            } else {
                Outcome::Refused(why)
            }
        }
        Err(ureq::Error::Transport(t)) => {
            // The cause (a certificate for another name, a TLS version refused) is in the
            // sources, not in the message.
            let mut why = format!(
                "{shown}: {}{}",
                t.kind(),
                t.message().map(|m| format!(": {m}")).unwrap_or_default()
            );
            let mut source = std::error::Error::source(&t);
            while let Some(e) = source {
                why.push_str(&format!(": {e}"));
                source = e.source();
            }
            Outcome::Retry(why, None)
        }
    }
}

pub fn spawn(e: Endpoint, spool: Arc<Spool>, counters: Arc<Counters>) -> anyhow::Result<()> {
    let name = e.name.clone();
    std::thread::Builder::new()
        .name(format!("rw-{}", name.chars().take(12).collect::<String>()))
        .spawn(move || run(&e, &spool, &counters))
        .map(|_| ())
        .map_err(|err| anyhow::anyhow!("starting the remote write sender for {name}: {err}"))
}

fn run(e: &Endpoint, spool: &Spool, c: &Counters) {
    let agent = agent(e);
    // Whether the endpoint is failing: logged once when it starts and once when it ends.
    let mut failing = false;
    loop {
        let Some(b) = batch::gather(
            spool,
            e.max_samples_per_send,
            e.batch_send_deadline,
            Duration::from_secs(5),
        ) else {
            continue;
        };
        let mut backoff = MIN_BACKOFF;
        loop {
            if !b.records.iter().all(|r| spool.contains(r)) {
                // Some dropped by the bounded spool meanwhile: the rest go in the next.
                break;
            }
            match post(&agent, e, &b.body) {
                Outcome::Sent => {
                    for r in &b.records {
                        if spool.remove(r) {
                            c.sent.fetch_add(r.samples, Ordering::Relaxed);
                        }
                    }
                    c.sent_bytes
                        .fetch_add(b.body.len() as u64, Ordering::Relaxed);
                    if failing {
                        failing = false;
                        tracing::info!(endpoint = %e.name, "remote write endpoint takes samples again");
                    }
                    break;
                }
                Outcome::Refused(why) => {
                    for r in &b.records {
                        if spool.remove(r) {
                            c.failed.fetch_add(r.samples, Ordering::Relaxed);
                        }
                    }
                    c.requests_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(endpoint = %e.name, samples = b.samples, error = %why, "remote write request refused; not retried");
                    break;
                }
                Outcome::Retry(why, asked) => {
                    c.retried.fetch_add(b.samples, Ordering::Relaxed);
                    c.requests_failed.fetch_add(1, Ordering::Relaxed);
                    let wait = asked.map_or(backoff, |a| a.max(backoff));
                    if failing {
                        tracing::debug!(endpoint = %e.name, error = %why, retry_in = ?wait, "remote write failed; will retry");
                    } else {
                        failing = true;
                        tracing::warn!(endpoint = %e.name, error = %why, retry_in = ?wait, "remote write failed; samples wait in the spool and are retried");
                    }
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server answering each request with the next of `answers` (status and
    /// extra header lines), recording the requests' heads.
    fn server(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead as _, BufReader, Read as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for (status, extra) in answers {
                let (s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                heads.push(head);
                let mut s = s;
                std::io::Write::write_all(
                    &mut s,
                    format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nno").as_bytes(),
                )
                .unwrap();
            }
            heads
        });
        (url, h)
    }

    fn endpoint(url: &str) -> Endpoint {
        let defaults = super::super::config::Defaults {
            instance: "h:1".into(),
            job: "monitor".into(),
        };
        super::super::config::load(None, &[url.to_string()], &defaults)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn answers_decide_what_is_retried() {
        let (url, h) = server(vec![
            (204, ""),
            (400, ""),
            (404, ""),
            (500, ""),
            (503, "Retry-After: 7\r\n"),
            (429, ""),
            (302, "Location: http://127.0.0.1:1/\r\n"),
        ]);
        let e = endpoint(&url);
        let a = agent(&e);
        let got: Vec<Outcome> = (0..7).map(|_| post(&a, &e, b"x")).collect();
        assert_eq!(got[0], Outcome::Sent);
        assert!(
            matches!(&got[1], Outcome::Refused(w) if w.contains("HTTP 400: no")),
            "{:?}",
            got[1]
        );
        assert!(matches!(got[2], Outcome::Refused(_)));
        assert!(matches!(got[3], Outcome::Retry(_, None)));
        assert!(matches!(got[4], Outcome::Retry(_, Some(d)) if d == Duration::from_secs(7)));
        assert!(matches!(got[5], Outcome::Retry(_, None)));
        assert!(
            matches!(&got[6], Outcome::Refused(w) if w.contains("HTTP 302")),
            "{:?}",
            got[6]
        );
        let head = &h.join().unwrap()[0].to_ascii_lowercase();
        for want in [
            "post /api/v1/write http/1.1",
            "content-encoding: snappy",
            "content-type: application/x-protobuf",
            "x-prometheus-remote-write-version: 0.1.0",
            "user-agent: monitor/",
        ] {
            assert!(head.contains(want), "{want} not in {head}");
        }
        // Nothing listens on port 1: retried.
        let e = endpoint("http://127.0.0.1:1/");
        assert!(matches!(
            post(&agent(&e), &e, b"x"),
            Outcome::Retry(_, None)
        ));
    }
}
