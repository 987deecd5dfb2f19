//! The Prometheus alert rules shipped in `monitor/dist/prometheus`: valid, firing as their
//! unit tests say, and written against metrics the daemon really exports.

use std::{path::PathBuf, process::Command};

use monitor_tests::*;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../monitor/dist/prometheus")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("promtool (Debian package prometheus) is installed by cargo xtask test");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_are_valid_and_pass_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts_test.yml"]);
}

/// Families other collectors are adding (their names are fixed across the project): rules
/// over them ship now and fire once the daemon exports them.
const COMING: &[&str] = &["monitor_process_oom_kills_total"];

fn alert_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn the_daemons_default_rules_have_prometheus_equivalents() {
    let prometheus = alert_names(&std::fs::read_to_string(rules_dir().join("alerts.yml")).unwrap());
    let defaults = alert_names(
        &std::fs::read_to_string(rules_dir().join("../../src/alert/default_rules.yml")).unwrap(),
    );
    assert!(defaults.len() >= 10, "{defaults:?}");
    for name in &defaults {
        assert!(
            prometheus.contains(name),
            "default rule {name} has no equivalent in alerts.yml"
        );
    }
    assert!(prometheus.contains(&"MonitorDown".to_string()));
}

#[test]
fn rules_only_use_metrics_the_daemon_exports() {
    let rules = std::fs::read_to_string(rules_dir().join("alerts.yml")).unwrap();
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("monitor_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(
        names.len() >= 4,
        "too few metrics found in the rules: {names:?}"
    );
    let d = Daemon::start(&[]);
    let exported = |exposition: &str, name: &str| {
        exposition
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
    };
    // Some families need two scrapes (time-to-full is a rate).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let exposition = d.metrics().0;
        let missing: Vec<&&str> = names
            .iter()
            .filter(|n| !exported(&exposition, n) && !COMING.contains(n))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alerts.yml uses {missing:?}, which the daemon does not export"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
