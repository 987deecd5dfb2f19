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
    // Written and read on their own threads: a command that does not read its input, or
    // writes much to stderr, must not block us past the timeout.
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let stderr = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut err = Vec::new();
            let _ = s.read_to_end(&mut err);
            String::from_utf8_lossy(&err)
                .trim()
                .chars()
                .take(200)
                .collect::<String>()
        })
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Outcome::Delivered,
            Ok(Some(status)) => {
                let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> Notification {
        Notification::new("r", "k".into(), Default::default(), "http://x", vec![])
    }

    #[test]
    fn exit_status_and_timeout() {
        let sh = Path::new("/bin/sh");
        let args = |s: &str| vec!["-c".to_string(), s.to_string()];
        assert_eq!(
            run(
                sh,
                &args("cat >/dev/null"),
                &note(),
                Duration::from_secs(30)
            ),
            Outcome::Delivered
        );
        match run(
            sh,
            &args("echo broken >&2; exit 3"),
            &note(),
            Duration::from_secs(30),
        ) {
            Outcome::Failed(why) => assert!(why.contains("exit status: 3: broken"), "{why}"),
            other => panic!("{other:?}"),
        }
        match run(
            sh,
            &args("exec sleep 600"),
            &note(),
            Duration::from_millis(200),
        ) {
            Outcome::Failed(why) => assert!(why.contains("killed"), "{why}"),
            other => panic!("{other:?}"),
        }
        match run(
            Path::new("/nonexistent/x"),
            &[],
            &note(),
            Duration::from_secs(1),
        ) {
            Outcome::Failed(why) => assert!(why.contains("cannot run /nonexistent/x"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
