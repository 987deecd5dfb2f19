//! The daemon's live page at `/` in a real browser: Debian's chromium (installed by `cargo
//! xtask test`), headless, driven by npm's playwright-core (this test installs its pinned
//! version into target/page-test). Under the dashboard tests' workload, every panel must
//! draw data (but those on the shared allow-list), with no console error and no request
//! outside the daemon; the drill-down must open, from the top-groups table, for the group
//! this test made; the range control redraws every panel; nothing is asked while paused.
//! Screenshots go to target/page.png and target/page-group.png.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use monitor_tests::workload::{Workload, MAY_BE_EMPTY};

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// playwright-core, as tests/page/package-lock.json pins it, in target/page-test.
fn playwright() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("page");
    let dir = target().join("page-test");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["package.json", "package-lock.json", "page.mjs"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let lock = std::fs::read(src.join("package-lock.json")).unwrap();
    let stamp = dir.join("installed.stamp");
    if std::fs::read(&stamp).ok().as_deref() != Some(&lock[..]) {
        let out = Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
            ])
            .current_dir(&dir)
            .output()
            .expect("npm (Node's package manager) runs");
        assert!(
            out.status.success(),
            "npm ci of playwright-core in {} failed (the npm registry must be reachable):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, &lock).unwrap();
    }
    dir
}

#[test]
fn the_page_draws_every_panel_and_opens_the_drill_down() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is installed by cargo xtask test (apt-get install chromium)"
    );
    let dir = playwright();
    let w = Workload::start(&[]);
    // Long enough for the 4 s rate windows and for the history to hold a few of them.
    std::thread::sleep(Duration::from_secs(15));
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(dir.join("page.mjs"))
        .arg(w.daemon.url("/"))
        .arg(&w.spinner.name)
        .arg(target())
        .arg(profile.path())
        .current_dir(&dir)
        .output()
        .expect("running node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}):\n{stderr}"));
    eprintln!("{report:#}");

    assert_eq!(report["console"], serde_json::json!([]), "console errors");
    assert_eq!(
        report["outside"],
        serde_json::json!([]),
        "requests outside the daemon"
    );
    // At the first drawing (5 min), and again after the range control asked for 1 min.
    let first = report["first"].as_array().unwrap();
    let panels = report["panels"].as_array().unwrap();
    assert!(panels.len() > 80, "{} panels", panels.len());
    let bad: Vec<String> = first
        .iter()
        .chain(panels)
        .filter(|p| p["state"] != "data")
        .filter(|p| !(p["state"] == "empty" && MAY_BE_EMPTY.iter().any(|(t, _)| p["title"] == *t)))
        .map(|p| {
            format!(
                "{} / {}: {} {}",
                p["row"], p["title"], p["state"], p["message"]
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "panels without data:\n{}\n(the daemon's log:\n{})",
        bad.join("\n"),
        w.daemon.log()
    );

    let p = &report["paused"];
    assert_eq!(p["asked"], 0, "queries while paused: {p}");
    assert_eq!(
        (&p["status"], &p["button"]),
        (&"paused".into(), &"Resume".into())
    );

    let d = &report["drill"];
    let group = &w.spinner.name;
    assert_eq!(d["title"], format!("Groups: {group}"));
    assert_eq!(d["hash"], format!("#group={group}"));
    assert_eq!(d["state"], "data");
    let legend: Vec<&str> = d["legend"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        legend,
        vec![group.as_str()],
        "the drill-down draws the chosen group only"
    );
    assert!(target().join("page.png").exists() && target().join("page-group.png").exists());
}
