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
    let exposition = d.metrics().0;
    for name in names {
        assert!(
            exposition
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "alerts.yml uses {name}, which the daemon does not export"
        );
    }
}
