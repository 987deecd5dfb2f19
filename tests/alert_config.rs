//! Bad alerting configs and rule files: each gives one line naming the file, the group, the
//! rule and the field, and a non-zero exit, from `monitor check-config` and from
//! `monitor run` alike (before anything starts).

use std::path::Path;

use monitor_tests::*;

fn rule(expr: &str, extra: &str) -> String {
    format!(
        "groups:\n  - name: host\n    rules:\n      - alert: Busy\n        expr: '{expr}'\n{extra}"
    )
}

/// (the line from check-config, the line from run); both must fail with one line.
fn both_fail(dir: &Path, config: &Path) -> String {
    let config = config.to_str().unwrap();
    let (code, stderr) = fails(&[], &["check-config", "--alert.config", config]);
    assert_eq!(code, 1, "{stderr}");
    let line = one_line(&stderr).to_string();
    let state = dir.join("state");
    let (code, stderr) = fails(
        &[],
        &[
            "run",
            "--web.listen-address",
            "127.0.0.1:0",
            "--alert.config",
            config,
            "--alert.state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(one_line(&stderr), line, "run and check-config say the same");
    line
}

#[test]
fn bad_rule_files_name_the_file_group_rule_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerting.yml");
    std::fs::write(&config, "rule_files: [rules.yml]\n").unwrap();
    let rules = dir.path().join("rules.yml");
    let at = format!(
        "monitor: {}: group \"host\", rule \"Busy\": ",
        rules.display()
    );
    for (what, text, want) in [
        (
            "unknown metric",
            rule("monitor_cpu_busy_ratio > 0.9", ""),
            "expr: monitor_cpu_busy_ratio > 0.9: unknown metric monitor_cpu_busy_ratio",
        ),
        (
            "unknown metric in a window",
            rule("rate(monitor_disk_fails_total[5m]) > 0", ""),
            "expr: rate(monitor_disk_fails_total[5m]) > 0: unknown metric monitor_disk_fails_total",
        ),
        (
            "bad duration",
            rule("monitor_processes > 1", "        for: 5 mins please\n"),
            "for: \"5 mins please\" is not a duration",
        ),
        (
            "bad keep_firing_for",
            rule("monitor_processes > 1", "        keep_firing_for: -1m\n"),
            "keep_firing_for: \"-1m\" is not a duration",
        ),
        (
            "bad window",
            rule("rate(monitor_cpu_seconds_total[5q]) > 1", ""),
            "expr: rate(monitor_cpu_seconds_total[5q]) > 1: ",
        ),
        (
            "bad threshold",
            rule("monitor_processes > 1O0", ""),
            "expr: monitor_processes > 1O0: ",
        ),
        (
            "NaN threshold",
            rule("monitor_processes > NaN", ""),
            "NaN is not a threshold",
        ),
        (
            "text threshold",
            rule("monitor_processes > \"high\"", ""),
            "expr: monitor_processes > \"high\": ",
        ),
        (
            "bad matcher regex",
            rule("monitor_process_cpu_seconds_total{group=~\"((\"} > 1", ""),
            "illegal regex",
        ),
        (
            "bad matcher operator",
            rule("monitor_process_cpu_seconds_total{group==\"x\"} > 1", ""),
            "expr: monitor_process_cpu_seconds_total{group==\"x\"} > 1: ",
        ),
        (
            "bad template",
            rule(
                "monitor_processes > 1",
                "        annotations: {summary: \"{{ $valu }}\"}\n",
            ),
            "annotations.summary: {{ $valu }}",
        ),
        (
            "bad severity",
            rule(
                "monitor_processes > 1",
                "        labels: {severity: page-me}\n",
            ),
            "labels.severity: \"page-me\" is not one of critical, warning, info",
        ),
        (
            "unsupported function",
            rule(
                "predict_linear(monitor_filesystem_avail_bytes[1h], 3600) < 0",
                "",
            ),
            "function predict_linear is not supported",
        ),
    ] {
        std::fs::write(&rules, &text).unwrap();
        let line = both_fail(dir.path(), &config);
        assert!(line.starts_with(&at), "{what}: {line}");
        assert!(line.contains(want), "{what}: wanted {want:?} in\n{line}");
        eprintln!("{what}: {line}");
    }

    // Structure: an unknown field, a missing file.
    std::fs::write(
        &rules,
        rule("monitor_processes > 1", "        expression: x\n"),
    )
    .unwrap();
    let line = both_fail(dir.path(), &config);
    assert!(
        line.contains(&format!("{}: groups[0].rules[0]", rules.display())),
        "{line}"
    );
    assert!(line.contains("unknown field `expression`"), "{line}");
    std::fs::remove_file(&rules).unwrap();
    let line = both_fail(dir.path(), &config);
    assert!(
        line.contains("rules.yml: cannot read the rule file"),
        "{line}"
    );
}

#[test]
fn bad_alerting_configs_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerting.yml");
    for (text, want) in [
        ("receivers: [{name: hook, webhook: {url: 'not a url'}}]", "receivers[0] (\"hook\"): url \"not a url\""),
        ("receivers: [{name: hook, fax: {to: x}}]", "unknown field `fax`"),
        ("receivers: [{name: mail, email: {from: m@example.com, smarthost: 'mx.example.com:587'}}]", "receivers[0]: receiver \"mail\": email: missing field `to`"),
        ("receivers: [{name: mail, email: {to: ops@example.com, from: m@example.com, smarthost: mx.example.com}}]", "receivers[0] (\"mail\"): email.smarthost \"mx.example.com\" is not HOST:PORT"),
        ("receivers: [{name: mail, email: {to: ops@example.com, from: m@example.com, smarthost: 'mx.example.com:587', require_tls: sometimes}}]", "receiver \"mail\": email.require_tls: invalid type: string \"sometimes\", expected a boolean"),
        ("receivers: [{name: mail, email: {to: ops@example.com, from: m@example.com, smarthost: 'mx.example.com:587', tls_config: {min_version: TLS11}}}]", "receivers[0] (\"mail\"): email.tls_config.min_version \"TLS11\": TLS12 or TLS13"),
        ("receivers: [{name: mail, email: {to: ops@example.com, from: m@example.com, smarthost: 'mx.example.com:587', tls_config: {ca_file: /nonexistent/ca.pem}}}]", "receivers[0] (\"mail\"): email.tls_config.ca_file: cannot read /nonexistent/ca.pem"),
        ("receivers: [{name: mail, email: {to: 'ops at example', from: m@example.com, smarthost: 'mx.example.com:587'}}]", "receivers[0] (\"mail\"): email.to: \"ops at example\" is not a list of email addresses"),
        ("receivers: [{name: mail, email: {to: ops@example.com, from: m@example.com, smarthost: 'mx.example.com:587', html: '{{ alerts'}}]", "receivers[0] (\"mail\"): email.html: not a template"),
        ("receivers: [{name: tg, telegram: {bot_token: '123:abc', chat_id: ops}}]", "receiver \"tg\": telegram.chat_id: a chat id (a number) or @channelusername"),
        ("receivers: [{name: tg, telegram: {bot_token: secret, chat_id: 1}}]", "receivers[0] (\"tg\"): telegram.bot_token: not a bot token"),
        ("receivers: [{name: og, opsgenie: {api_key: k, api_url: 'api.opsgenie.com'}}]", "receivers[0] (\"og\"): opsgenie.api_url \"api.opsgenie.com\""),
        ("receivers: [{name: nt, ntfy: {url: 'https://ntfy.sh'}}]", "receiver \"nt\": ntfy: missing field `topic`"),
        ("receivers: [{name: dc, discord: {webhook_url: 'https://discord.com/api/webhooks/1/x', colour: red}}]", "receiver \"dc\": discord.colour: unknown field `colour`"),
        ("receivers: [{name: ms, msteams: {webhook_url: 'teams'}}]", "receivers[0] (\"ms\"): msteams.webhook_url \"teams\""),
        ("receivers: [{name: hook, webhook: {url: 'http://127.0.0.1:1/'}}]\nroute: {receiver: nobody}", "route.receiver: \"nobody\" is not a configured receiver"),
        ("route: {routes: [{matchers: ['severity=~\"[\"']}]}", "route.routes[0].matchers: \"severity=~\\\"[\\\"\" is not a matcher"),
        ("heartbeat: {url: 'http://127.0.0.1:1/', interval: often}", "heartbeat.interval: \"often\" is not a duration"),
        ("probes: [{name: db, tcp: {address: nowhere}}]", "probes[0] (\"db\"): tcp.address \"nowhere\""),
        ("default_rules: {disabled: [NoSuchRule]}", "default_rules.disabled: \"NoSuchRule\" is not a default rule"),
    ] {
        std::fs::write(&config, text).unwrap();
        let line = both_fail(dir.path(), &config);
        assert!(line.starts_with(&format!("monitor: {}: ", config.display())), "{line}");
        assert!(line.contains(want), "wanted {want:?} in\n{line}");
        eprintln!("{line}");
    }
}

#[test]
fn check_config_accepts_the_defaults_and_a_full_config() {
    let out = std::process::Command::new(monitor_bin())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("default rules: OK: 13 alert rules (13 default)"),
        "{stdout}"
    );
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitor/dist/alerting.yml");
    let out = std::process::Command::new(monitor_bin())
        .args(["check-config", "--alert.config", example.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_exported_family_can_be_used_in_a_rule() {
    // A daemon exporting everything it can: alerting families included.
    let hb = monitor_tests::sink::Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerting.yml");
    std::fs::write(
        &config,
        format!(
            "heartbeat: {{url: '{}', interval: 1s}}\n\
             receivers: [{{name: hook, webhook: {{url: '{}'}}}}]\n\
             services: [{{name: s, comm: '^nothing$'}}]\n\
             probes: [{{name: p, http: {{url: '{}'}}, interval: 200ms}}]\n",
            hb.url("/ping"),
            hb.url("/hook"),
            hb.url("/probe")
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start(&[
        "--alert.config",
        config.to_str().unwrap(),
        "--alert.state-dir",
        state.to_str().unwrap(),
        "--alert.evaluation-interval",
        "200ms",
    ]);
    // The probe's families appear once its first check is recorded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let exposition = loop {
        let e = d.metrics().0;
        if e.contains("monitor_probe_duration_seconds_bucket")
            && e.contains("monitor_heartbeat_pings_total")
        {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no probe figures:\n{e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut names: Vec<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(
        names.contains(&"monitor_probe_duration_seconds_bucket"),
        "{names:?}"
    );
    assert!(
        names.contains(&"monitor_alert_notifications_total"),
        "{names:?}"
    );
    // One rule per family: check-config accepts them all only if each is known.
    let mut rules = String::from("groups:\n  - name: all\n    rules:\n");
    for n in &names {
        rules.push_str(&format!("      - alert: A\n        expr: '{n} >= 0'\n"));
    }
    std::fs::write(dir.path().join("all.yml"), rules).unwrap();
    std::fs::write(&config, "rule_files: [all.yml]\n").unwrap();
    let out = std::process::Command::new(monitor_bin())
        .args(["check-config", "--alert.config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a family the daemon exports is unknown to its rules: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
