//! Alerting end to end, with real parts: the daemon's rules over real workloads, a real
//! Alertmanager (Debian's prometheus-alertmanager) on loopback, loopback HTTP receivers
//! that fail and recover, a daemon killed with SIGKILL and restarted, heartbeats, probes
//! and watched services. The truth is what each test did (the child it ran or killed, the
//! answers its receiver gave), read back from the receivers and from Alertmanager's API.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::{sink::Sink, *};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts the daemon with an alerting config, its own state directory and a fast
/// evaluation interval.
fn daemon(config: &Path, state: &Path) -> Daemon {
    Daemon::start(&[
        "--alert.config",
        config.to_str().unwrap(),
        "--alert.state-dir",
        state.to_str().unwrap(),
        "--alert.evaluation-interval",
        "250ms",
    ])
}

/// The daemon's alerts (`/api/v1/alerts`).
fn alerts(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.get("/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"].as_array().unwrap().clone()
}

fn find_alert(d: &Daemon, name: &str, state: &str) -> Option<Value> {
    alerts(d)
        .into_iter()
        .find(|a| a["labels"]["alertname"] == name && a["state"] == state)
}

/// Polls `f` until it gives a value (generous deadline: the machine is shared).
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The notifications a webhook sink accepted (status 200) whose alerts include `name` in
/// `status`.
fn accepted(reqs: &[sink::Request], name: &str, status: &str) -> usize {
    reqs.iter()
        .filter(|r| r.status == 200)
        .filter(|r| {
            r.json()["alerts"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["labels"]["alertname"] == name && a["status"] == status)
            })
        })
        .count()
}

/// A process named `bin.name` that sleeps (a watched service's stand-in).
fn sleeper(bin: &NamedBinary) -> Guard {
    Guard(
        Command::new(&bin.path)
            .arg("600")
            .spawn()
            .expect("spawning a sleeper"),
    )
}

struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Our own instance on a free loopback port, with its own storage and config (never the
    /// system's), sending what it notifies to `webhook`.
    fn start(webhook: &str) -> Self {
        Self::start_in_cluster(webhook, &["--cluster.listen-address=".to_string()])
    }

    /// `start`, with `cluster` flags (none: no cluster). Alerts are grouped by alert name
    /// and service, so each alert of the tests is a notification of its own.
    fn start_in_cluster(webhook: &str, cluster: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "alertmanager.yml",
            &format!(
                "route: {{receiver: sink, group_by: [alertname, service], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\n\
                 receivers:\n  - name: sink\n    webhook_configs: [{{url: '{webhook}', send_resolved: true}}]\n"
            ),
        );
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(cluster)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (Debian package) is installed by cargo xtask test");
        let am = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        wait_until("Alertmanager to be ready", || {
            (request("GET", &am.url("/-/ready")).0 == 200).then_some(())
        });
        am
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn alerts(&self) -> Vec<Value> {
        let (status, body) = request("GET", &self.url("/api/v2/alerts"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_cpu_alert_reaches_a_real_alertmanager_and_resolves() {
    let am_hook = Sink::start(&[]);
    let am = Alertmanager::start(&am_hook.url("/am"));
    let bin = NamedBinary::new("/bin/dash", "mtalert");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rules.yml",
        &format!(
            r#"groups:
  - name: cpu
    rules:
      - alert: ProcessCPUHigh
        expr: rate(monitor_process_cpu_seconds_total{{group="{name}"}}[3s]) > 0.5
        for: 2s
        labels: {{severity: warning}}
        annotations:
          summary: "{{{{ $labels.group }}}} uses {{{{ $value | humanizePercentage }}}} of a CPU"
"#,
            name = bin.name
        ),
    );
    let config = write(
        dir.path(),
        "alerting.yml",
        &format!(
            "rule_files: [rules.yml]\ndefault_rules: {{enabled: false}}\n\
             receivers: [{{name: am, alertmanager: {{url: '{}', resend_interval: 1m}}}}]\n",
            am.url("")
        ),
    );
    let d = daemon(&config, &dir.path().join("state"));
    let child = spin(&bin, None);

    let in_am = |a: &Value| {
        a["labels"]["alertname"] == "ProcessCPUHigh" && a["labels"]["group"] == bin.name.as_str()
    };
    let fired = wait_until("the CPU alert in Alertmanager", || {
        am.alerts().into_iter().find(in_am)
    });
    assert_eq!(fired["status"]["state"], "active", "{fired:#}");
    assert_eq!(fired["labels"]["severity"], "warning");
    let summary = fired["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("{} uses ", bin.name)),
        "{summary}"
    );
    let ours = find_alert(&d, "ProcessCPUHigh", "firing").expect("firing in /api/v1/alerts");
    assert!(
        ours["value"].as_str().unwrap().parse::<f64>().unwrap() > 0.5,
        "{ours:#}"
    );
    // Alertmanager's fingerprint of the labels is ours.
    assert_eq!(fired["fingerprint"], ours["fingerprint"]);
    let m = d.metrics();
    assert_eq!(
        m.value(r#"monitor_alerts{alertname="ProcessCPUHigh",severity="warning",state="firing"}"#),
        1.0
    );
    assert!(m.value(r#"monitor_alert_notifications_total{receiver="am"}"#) >= 1.0);

    drop(child);
    // Resolved: gone from Alertmanager's active alerts well before the endsAt of the firing
    // sends (four resend intervals, 4 minutes), and notified by Alertmanager as resolved.
    wait_until("the alert to leave Alertmanager", || {
        (!am.alerts().iter().any(in_am)).then_some(())
    });
    am_hook.wait_for("Alertmanager's resolved notification", DEADLINE, |r| {
        accepted(r, "ProcessCPUHigh", "resolved") >= 1
    });
    assert!(find_alert(&d, "ProcessCPUHigh", "resolved").is_some());
    assert!(accepted(&am_hook.requests(), "ProcessCPUHigh", "firing") >= 1);
}

/// The notifications a webhook sink accepted with `service`'s ServiceDown firing.
fn service_down_notified(reqs: &[sink::Request], service: &str) -> usize {
    reqs.iter()
        .filter(|r| r.status == 200)
        .filter(|r| {
            r.json()["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["labels"]["alertname"] == "ServiceDown"
                        && a["labels"]["service"] == service
                        && a["status"] == "firing"
                })
            })
        })
        .count()
}

#[test]
fn alerts_reach_a_cluster_of_two_alertmanagers_once_even_with_one_down() {
    let hook = Sink::start(&[]);
    let (gossip_a, gossip_b) = (free_port(), free_port());
    // The wait of the second peer before it notifies what the first has not: short, but
    // far longer than gossip takes on loopback.
    let member = |own: u16, peer: u16| {
        vec![
            format!("--cluster.listen-address=127.0.0.1:{own}"),
            format!("--cluster.peer=127.0.0.1:{peer}"),
            "--cluster.peer-timeout=3s".to_string(),
            "--cluster.gossip-interval=100ms".to_string(),
            "--cluster.pushpull-interval=1s".to_string(),
        ]
    };
    let a = Alertmanager::start_in_cluster(&hook.url("/am"), &member(gossip_a, gossip_b));
    let b = Alertmanager::start_in_cluster(&hook.url("/am"), &member(gossip_b, gossip_a));
    for am in [&a, &b] {
        wait_until("the two Alertmanagers to form a cluster", || {
            let (_, body) = request("GET", &am.url("/api/v2/status"));
            let v: Value = serde_json::from_str(&body).ok()?;
            (v["cluster"]["status"] == "ready"
                && v["cluster"]["peers"].as_array().map(Vec::len) == Some(2))
            .then_some(())
        });
    }
    let down = NamedBinary::new("/bin/sleep", "mthadn");
    let later = NamedBinary::new("/bin/sleep", "mthalt");
    let running = sleeper(&later);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "alerting.yml",
        &format!(
            "default_rules: {{enabled: false}}\n\
             services:\n  \
             - {{name: down, comm: '^{}$', for: 0s}}\n  \
             - {{name: later, comm: '^{}$', for: 0s}}\n\
             receivers: [{{name: am, alertmanager: {{urls: ['{}', '{}'], resend_interval: 1m}}}}]\n\
             delivery: {{initial_backoff: 100ms, max_backoff: 400ms}}\n",
            down.name,
            later.name,
            a.url(""),
            b.url("")
        ),
    );
    let d = daemon(&config, &dir.path().join("state"));
    let in_am = |am: &Alertmanager, service: &str| {
        am.alerts()
            .iter()
            .any(|x| x["labels"]["alertname"] == "ServiceDown" && x["labels"]["service"] == service)
    };

    // Both up: both have the alert, the cluster notifies it once.
    hook.wait_for("the first alert's notification", DEADLINE, |r| {
        service_down_notified(r, "down") >= 1
    });
    assert!(in_am(&a, "down") && in_am(&b, "down"), "sent to both");
    // Past the second peer's wait (3 s) with room to spare: no second notification.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(service_down_notified(&hook.requests(), "down"), 1);

    // One Alertmanager down, then a new alert: it still arrives, once.
    drop(a);
    drop(running);
    hook.wait_for("the second alert's notification", DEADLINE, |r| {
        service_down_notified(r, "later") >= 1
    });
    assert!(in_am(&b, "later"));
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(service_down_notified(&hook.requests(), "later"), 1);
    assert_eq!(service_down_notified(&hook.requests(), "down"), 1);
    let m = d.metrics();
    assert_eq!(
        m.value(r#"monitor_alert_notification_failures_total{receiver="am"}"#),
        0.0,
        "one Alertmanager that took the alerts is a delivery"
    );
    let log = d.log();
    assert!(
        log.contains("an Alertmanager of the cluster did not take the alerts; another did"),
        "{log}"
    );
}

/// A service that is not running (ServiceDown fires at once) sent to a webhook.
fn service_config(dir: &Path, service: &str, receivers: &str, extra: &str) -> PathBuf {
    write(
        dir,
        "alerting.yml",
        &format!(
            "default_rules: {{enabled: false}}\n\
             services: [{{name: svc, comm: '^{service}$', for: 0s, max_restarts: 2, window: 10m}}]\n\
             receivers: [{receivers}]\n\
             delivery: {{initial_backoff: 100ms, max_backoff: 400ms}}\n{extra}"
        ),
    )
}

#[test]
fn a_failing_webhook_still_receives_every_notification() {
    let hook = Sink::start(&[500, 502, 503]);
    let bin = NamedBinary::new("/bin/sleep", "mtsvc");
    let dir = tempfile::tempdir().unwrap();
    let config = service_config(
        dir.path(),
        &bin.name,
        &format!("{{name: hook, webhook: {{url: '{}'}}}}", hook.url("/hook")),
        "route: {receiver: hook, group_wait: 0s, group_interval: 500ms}\n",
    );
    let d = daemon(&config, &dir.path().join("state"));
    hook.wait_for(
        "the firing notification after three failures",
        DEADLINE,
        |r| accepted(r, "ServiceDown", "firing") == 1,
    );
    let _svc = sleeper(&bin);
    let reqs = hook.wait_for("the resolved notification", DEADLINE, |r| {
        accepted(r, "ServiceDown", "resolved") == 1
    });
    // The same firing notification, tried until accepted, then the resolved one.
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 502, 503, 200, 200], "{reqs:#?}");
    for r in &reqs[..4] {
        assert_eq!(r.body, reqs[0].body, "a retry sends the same notification");
        let n = r.json();
        assert_eq!(n["version"], "4");
        assert_eq!(n["status"], "firing");
        assert_eq!(n["receiver"], "hook");
        assert_eq!(n["alerts"][0]["labels"]["service"], "svc");
    }
    let resolved = reqs[4].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(
        resolved["alerts"][0]["fingerprint"],
        reqs[0].json()["alerts"][0]["fingerprint"]
    );
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let m = d.metrics();
    assert_eq!(
        m.value(r#"monitor_alert_notification_failures_total{receiver="hook"}"#),
        3.0
    );
    assert_eq!(
        m.value(r#"monitor_alert_notifications_total{receiver="hook"}"#),
        2.0
    );
    assert_eq!(
        m.value(r#"monitor_alert_queue_length{receiver="hook"}"#),
        0.0
    );
    let log = d.log();
    assert!(
        log.contains("alert firing") && log.contains("alert resolved"),
        "{log}"
    );
    assert!(log.contains("will retry"), "{log}");
}

fn queued(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("queue"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_notification_queued_when_the_daemon_is_killed_is_delivered_after_restart() {
    let hook = Sink::start(&[503; 1000]);
    let bin = NamedBinary::new("/bin/sleep", "mtkill");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let receivers = format!("{{name: hook, webhook: {{url: '{}'}}}}", hook.url("/hook"));
    let config = service_config(
        dir.path(),
        &bin.name,
        &receivers,
        "route: {receiver: hook, group_wait: 0s}\n",
    );
    let first = daemon(&config, &state);
    // Fired, and its delivery failing.
    let reqs = hook.wait_for("a delivery attempt", DEADLINE, |r| !r.is_empty());
    let sent = reqs[0].json();
    assert_eq!(sent["alerts"][0]["labels"]["alertname"], "ServiceDown");
    assert_eq!(queued(&state).len(), 1, "the notification is on disk");
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(first.pid() as i32, libc::SIGKILL) };
    wait_until("the daemon to die", || {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", first.pid())).unwrap_or_default();
        (s.is_empty() || s[s.rfind(')').unwrap() + 2..].starts_with('Z')).then_some(())
    });
    hook.then_answer(&[]);
    let attempts = hook.requests().len();

    // Restarted without the service watch, so nothing new fires: what arrives is the
    // notification the killed daemon had queued.
    let config = write(
        dir.path(),
        "alerting.yml",
        &format!("default_rules: {{enabled: false}}\nreceivers: [{receivers}]\n"),
    );
    let second = daemon(&config, &state);
    let reqs = hook.wait_for("the queued notification", DEADLINE, |r| {
        r.iter().any(|r| r.status == 200)
    });
    let delivered: Vec<_> = reqs.iter().filter(|r| r.status == 200).collect();
    assert_eq!(delivered.len(), 1, "{reqs:#?}");
    assert_eq!(delivered[0].json(), sent, "the same notification");
    assert!(reqs.len() > attempts);
    wait_until("the queue to empty", || {
        queued(&state).is_empty().then_some(())
    });
    assert_eq!(
        second
            .metrics()
            .value(r#"monitor_alert_notifications_total{receiver="hook"}"#),
        1.0
    );
    drop(first);
}

#[test]
fn heartbeat_pings_stop_when_the_daemon_stops() {
    let hb = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "alerting.yml",
        &format!(
            "heartbeat: {{url: '{}', interval: 200ms}}\n",
            hb.url("/ping")
        ),
    );
    let d = daemon(&config, &dir.path().join("state"));
    hb.wait_for("three pings", DEADLINE, |r| r.len() >= 3);
    assert!(hb
        .requests()
        .iter()
        .all(|r| r.method == "POST" && r.path == "/ping"));
    assert!(d.metrics().value("monitor_heartbeat_pings_total") >= 3.0);
    let pid = d.pid();
    drop(d); // SIGTERM, and waits for the exit
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.is_empty() || s[s.rfind(')').unwrap() + 2..].starts_with('Z')
        }
    );
    let after = hb.requests().len();
    // Five intervals of silence: the switch's receiver would now alert.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hb.requests().len(), after, "pings after the daemon stopped");
}

#[test]
fn slack_pagerduty_and_command_receivers_and_a_refusing_one() {
    let hook = Sink::start(&[]);
    let refusing = Sink::start(&[400]);
    let bin = NamedBinary::new("/bin/sleep", "mtrecv");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = write(
        dir.path(),
        "notify.sh",
        &format!(
            "#!/bin/sh\ncat > {out}/stdin.json\nenv | grep ^MONITOR_ALERT_ | sort > {out}/env\n",
            out = out.display()
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let receivers = format!(
        "{{name: chat, slack: {{url: '{}', channel: '#ops'}}}}, \
         {{name: pager, pagerduty: {{routing_key: k123, url: '{}'}}}}, \
         {{name: script, command: {{path: '{}'}}, timeout: 5s}}, \
         {{name: bad, webhook: {{url: '{}'}}}}",
        hook.url("/slack"),
        hook.url("/pd"),
        script.display(),
        refusing.url("/bad"),
    );
    let config = service_config(
        dir.path(),
        &bin.name,
        &receivers,
        "route:\n  receiver: chat\n  group_wait: 0s\n  group_interval: 500ms\n  routes:\n\
         \x20   - {receiver: pager, matchers: ['severity=\"critical\"'], continue: true}\n\
         \x20   - {receiver: script, matchers: ['alertname=\"ServiceDown\"'], continue: true}\n\
         \x20   - {receiver: bad, continue: true}\n\
         \x20   - {receiver: chat}\n",
    );
    let d = daemon(&config, &dir.path().join("state"));
    hook.wait_for("slack and pagerduty", DEADLINE, |r| {
        r.iter().any(|r| r.path == "/slack") && r.iter().any(|r| r.path == "/pd")
    });
    let fired = find_alert(&d, "ServiceDown", "firing").expect("ServiceDown firing");

    let slack = hook.to("/slack")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING:1] ServiceDown: service svc is not running"),
        "{text}"
    );
    assert_eq!(slack["channel"], "#ops");

    let pd = hook.to("/pd")[0].json();
    assert_eq!(pd["routing_key"], "k123");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], fired["fingerprint"]);
    assert_eq!(pd["payload"]["severity"], "critical");
    assert_eq!(pd["payload"]["summary"], "service svc is not running");

    let stdin = wait_until("the command's output", || {
        std::fs::read_to_string(out.join("env")).ok()?;
        std::fs::read_to_string(out.join("stdin.json")).ok()
    });
    let n: Value = serde_json::from_str(&stdin).unwrap();
    assert_eq!(n["alerts"][0]["labels"]["alertname"], "ServiceDown");
    assert_eq!(n["receiver"], "script");
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    for line in [
        "MONITOR_ALERT_NAME=ServiceDown",
        "MONITOR_ALERT_STATUS=firing",
        "MONITOR_ALERT_SEVERITY=critical",
        "MONITOR_ALERT_COUNT=1",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in:\n{env}");
    }

    // 400: counted as a failure, dropped from the queue, never retried.
    wait_until("the refusal to be counted", || {
        let m = d.metrics();
        (m.value(r#"monitor_alert_notification_failures_total{receiver="bad"}"#) == 1.0
            && m.value(r#"monitor_alert_queue_length{receiver="bad"}"#) == 0.0)
            .then_some(())
    });
    assert_eq!(refusing.requests().len(), 1);

    // The resolution reaches PagerDuty as a resolve of the same dedup key.
    let _svc = sleeper(&bin);
    hook.wait_for("the resolve event", DEADLINE, |r| {
        r.iter()
            .any(|r| r.path == "/pd" && r.json()["event_action"] == "resolve")
    });
    let resolve = hook
        .to("/pd")
        .into_iter()
        .find(|r| r.json()["event_action"] == "resolve")
        .unwrap();
    assert_eq!(resolve.json()["dedup_key"], fired["fingerprint"]);

    // `monitor alert test`: one test notification through each receiver.
    let before = hook.requests().len();
    let out = Command::new(monitor_bin())
        .args(["alert", "test", "--alert.config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in [
        "chat (slack): delivered",
        "pager (pagerduty): delivered",
        "script (command): delivered",
        "bad (webhook): delivered",
    ] {
        assert!(stdout.lines().any(|l| l == r), "{r} not in:\n{stdout}");
    }
    let tests: Vec<_> = hook.requests()[before..].to_vec();
    assert!(tests
        .iter()
        .any(|r| r.path == "/slack" && r.body.contains("MonitorTestAlert")));
    assert!(tests
        .iter()
        .any(|r| r.path == "/pd" && r.body.contains("MonitorTestAlert")));
    assert!(refusing
        .requests()
        .last()
        .unwrap()
        .body
        .contains("MonitorTestAlert"));
}

#[test]
fn a_service_that_keeps_restarting_alerts() {
    let bin = NamedBinary::new("/bin/sleep", "mtflap");
    let dir = tempfile::tempdir().unwrap();
    let config = service_config(dir.path(), &bin.name, "", "");
    let d = daemon(&config, &dir.path().join("state"));
    let series = r#"monitor_service_processes{service="svc"}"#;
    // Processes there at the first look are not starts: let that look happen first.
    wait_until("the first look", || {
        (d.metrics().get(series) == Some(0.0)).then_some(())
    });
    for _ in 0..3 {
        let svc = sleeper(&bin);
        wait_until("the process to be seen", || {
            (d.metrics().get(series) == Some(1.0)).then_some(())
        });
        drop(svc);
        wait_until("the exit to be seen", || {
            (d.metrics().get(series) == Some(0.0)).then_some(())
        });
    }
    let m = d.metrics();
    assert_eq!(
        m.value(r#"monitor_service_starts_total{service="svc"}"#),
        3.0
    );
    assert_eq!(
        m.value(r#"monitor_service_recent_starts{service="svc"}"#),
        3.0
    );
    let a = wait_until("ServiceRestarting", || {
        find_alert(&d, "ServiceRestarting", "firing")
    });
    assert_eq!(a["labels"]["service"], "svc");
    assert_eq!(a["value"], "3");
}

#[test]
fn probes_measure_their_targets_and_alert_when_down() {
    let web = Sink::start(&[]);
    let closed = free_port();
    // Accepts connections (the kernel's backlog) but never answers a request.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "alerting.yml",
        &format!(
            "default_rules: {{enabled: false}}\nprobes:\n\
             \x20 - {{name: web, http: {{url: '{}'}}, interval: 200ms}}\n\
             \x20 - {{name: closed, tcp: {{address: '127.0.0.1:{closed}'}}, interval: 200ms, for: 0s}}\n\
             \x20 - {{name: hung, http: {{url: 'http://{}/'}}, interval: 500ms, timeout: 300ms, for: 0s}}\n",
            web.url("/health"),
            hung.local_addr().unwrap(),
        ),
    );
    let d = daemon(&config, &dir.path().join("state"));
    wait_until("probe results", || {
        let m = d.metrics();
        (m.get(r#"monitor_probe_duration_seconds_count{probe="web"}"#)? >= 3.0
            && m.get(r#"monitor_probe_failures_total{probe="hung"}"#)? >= 1.0
            && m.get(r#"monitor_probe_failures_total{probe="closed"}"#)? >= 1.0)
            .then_some(())
    });
    let m = d.metrics();
    assert_eq!(m.value(r#"monitor_probe_up{probe="web"}"#), 1.0);
    assert_eq!(
        m.value(r#"monitor_probe_http_status_code{probe="web"}"#),
        200.0
    );
    assert_eq!(m.value(r#"monitor_probe_failures_total{probe="web"}"#), 0.0);
    let checks = m.value(r#"monitor_probe_duration_seconds_count{probe="web"}"#);
    // Each check the daemon counted reached the target.
    assert!(web.to("/health").len() as f64 >= checks);
    assert_eq!(m.value(r#"monitor_probe_up{probe="closed"}"#), 0.0);
    assert_eq!(m.value(r#"monitor_probe_up{probe="hung"}"#), 0.0);
    assert_eq!(
        m.get(r#"monitor_probe_http_status_code{probe="hung"}"#),
        None
    );
    for probe in ["closed", "hung"] {
        wait_until("ProbeDown", || {
            alerts(&d).into_iter().find(|a| {
                a["labels"]["alertname"] == "ProbeDown"
                    && a["labels"]["probe"] == probe
                    && a["state"] == "firing"
            })
        });
    }
    assert!(find_alert(&d, "ProbeDown", "pending").is_none());
    drop(hung);
}

#[test]
fn a_rate_limit_holds_notifications_and_a_full_queue_drops_the_oldest() {
    // One notification an hour: the resolved one waits in the queue.
    let hook = Sink::start(&[]);
    let bin = NamedBinary::new("/bin/sleep", "mtrate");
    let dir = tempfile::tempdir().unwrap();
    let config = service_config(
        dir.path(),
        &bin.name,
        &format!(
            "{{name: hook, webhook: {{url: '{}'}}, rate_limit: {{count: 1, per: 1h}}}}",
            hook.url("/hook")
        ),
        "route: {receiver: hook, group_wait: 0s, group_interval: 500ms}\n",
    );
    let d = daemon(&config, &dir.path().join("state"));
    hook.wait_for("the firing notification", DEADLINE, |r| r.len() == 1);
    let svc = sleeper(&bin);
    wait_until("the resolved notification to wait in the queue", || {
        let m = d.metrics();
        (m.get(r#"monitor_alert_queue_length{receiver="hook"}"#)? == 1.0).then_some(())
    });
    assert_eq!(hook.requests().len(), 1);
    assert_eq!(
        d.metrics()
            .value(r#"monitor_alert_notifications_total{receiver="hook"}"#),
        1.0
    );
    drop((d, svc));

    // A queue of one behind a receiver that always fails: the resolved notification pushes
    // out the firing one being retried, and the drop is counted.
    let down = Sink::start(&[503; 10_000]);
    let dir = tempfile::tempdir().unwrap();
    let config = service_config(
        dir.path(),
        &bin.name,
        &format!("{{name: hook, webhook: {{url: '{}'}}}}", down.url("/hook")),
        "route: {receiver: hook, group_wait: 0s, group_interval: 500ms}\n",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("delivery: {", "delivery: {max_queue: 1, ");
    std::fs::write(&config, text).unwrap();
    let d = daemon(&config, &dir.path().join("state"));
    down.wait_for("a failing attempt", DEADLINE, |r| !r.is_empty());
    let _svc = sleeper(&bin);
    wait_until("the drop to be counted", || {
        (d.metrics().get("monitor_alert_queue_dropped_total")? == 1.0).then_some(())
    });
    let m = d.metrics();
    assert_eq!(
        m.value(r#"monitor_alert_queue_length{receiver="hook"}"#),
        1.0
    );
    down.wait_for("the resolved notification's attempts", DEADLINE, |r| {
        r.iter().any(|r| r.json()["status"] == "resolved")
    });
}
