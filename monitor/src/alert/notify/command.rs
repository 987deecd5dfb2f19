//! The command receiver: runs a program with the notification's JSON on stdin and its key
//! fields in the environment; killed at the timeout. Exit 0 is delivered; anything else is
//! retried like a server error.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{payload::Notification, Outcome};

pub fn run(path: &Path, args: &[String], n: &Notification, timeout: Duration) -> Outcome {
    let body = serde_json::to_vec(n).unwrap_or_default();
    let first = n.alerts.first();
    let label = |k: &str| {
        n.common_labels
            .get(k)
            .or_else(|| first.and_then(|a| a.labels.get(k)))
            .cloned()
            .unwrap_or_default()
    };
    let fingerprints: Vec<&str> = n.alerts.iter().map(|a| a.fingerprint.as_str()).collect();
    let mut child = match Command::new(path)
        .args(args)
        .env("MONITOR_ALERT_STATUS", &n.status)
        .env("MONITOR_ALERT_RECEIVER", &n.receiver)
        .env("MONITOR_ALERT_NAME", label("alertname"))
        .env("MONITOR_ALERT_SEVERITY", label("severity"))
        .env("MONITOR_ALERT_COUNT", n.alerts.len().to_string())
        .env("MONITOR_ALERT_FINGERPRINTS", fingerprints.join(","))
        .env("MONITOR_ALERT_SUMMARY", n.title())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot run {}: {e}", path.display())),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is its own business: a broken pipe is fine.
        let _ = stdin.write_all(&body);
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Outcome::Delivered,
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = s.read_to_string(&mut err);
                }
                let err: String = err.trim().chars().take(200).collect();
                return Outcome::Failed(format!("{} exited with {status}: {err}", path.display()));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Failed(format!(
                    "{} did not finish within {timeout:?}; killed",
                    path.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Outcome::Failed(format!("waiting for {}: {e}", path.display())),
        }
    }
}
