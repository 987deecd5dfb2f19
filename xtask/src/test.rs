//! `cargo xtask test`: the whole suite, as CI runs it. Lints, unit tests (fixtures, no
//! privileges), then the integration tests in `tests/`, which load the real kernel programs
//! and start real Prometheus binaries, one at a time.

use anyhow::bail;

use crate::{cmd, setup, vm};

/// Debian packages the integration tests drive: Prometheus and promtool, node_exporter (a
/// peer to compare figures with), setpriv (to run the daemon without privileges), tmux (to
/// drive `monitor top` in a real terminal), Alertmanager (the alerts tests start their own
/// instance on loopback; the package's system service is never used), aiosmtpd and openssl
/// (the email receiver's SMTP server).
const TEST_PACKAGES: &[&str] = &[
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "util-linux",
    // sfdisk, for the partition the disk tests make.
    "fdisk",
    "tmux",
    // Network namespaces and a veth pair (ip), loss and a delay queue (iptables) for the
    // network tests.
    "iproute2",
    "iptables",
    // A real SMTP server on loopback for the email receiver's tests (run by
    // /usr/bin/python3), and openssl for its certificates.
    "python3-aiosmtpd",
    "openssl",
    // An HTTPS client with client certificates and HTTP/2, for the TLS tests.
    "curl",
    // systemd-analyze (the unit's security and syntax) and strace (every system call a run
    // makes, against the unit's filter) for tests/systemd_unit.rs.
    "systemd",
    "strace",
    // The daemon's page in a headless browser (tests/page.rs drives it with npm's
    // playwright-core, which that test installs).
    "chromium",
];

pub fn run(filter: Option<&str>) -> anyhow::Result<()> {
    setup::ensure()?;
    setup::apt_install(TEST_PACKAGES)?;
    if !cmd::is_root() {
        bail!("the integration tests load eBPF programs: run as root");
    }
    cmd::run(cmd::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    // Lints need no kernel object; skipping its build keeps clippy from rebuilding it. Every
    // host crate, the integration tests too (they are not a default member).
    cmd::run(
        cmd::new("cargo")
            .args([
                "clippy",
                "--workspace",
                "--exclude",
                "monitor-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .env("AYA_BUILD_SKIP", "1"),
    )?;
    // The kernel crate only builds for the BPF target, with nightly.
    cmd::run(cmd::new("rustup").args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "-p",
        "monitor-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--release",
        "--target-dir",
        "target/clippy-ebpf",
        "--",
        "-D",
        "warnings",
    ]))?;
    cmd::run(cmd::new("cargo").args(["build", "-p", "monitor"]))?;
    let mut totals = cmd::TestTotals::default();
    cmd::run_tests(
        cmd::new("cargo").args([
            "test",
            "--workspace",
            "--exclude",
            "monitor-tests",
            "--exclude",
            "monitor-ebpf",
        ]),
        &mut totals,
    )?;
    let bin = cmd::root().join("target/debug/monitor");
    let mut c = cmd::new("cargo");
    // Privileged tests share the kernel and the machine: one at a time. Every test file
    // runs even when one fails, so a run reports all its failures.
    c.args([
        "test",
        "-p",
        "monitor-tests",
        "--no-fail-fast",
        "--",
        "--test-threads=1",
    ])
    .env("MONITOR_BIN", &bin);
    if let Some(f) = filter {
        c.arg(f);
    }
    let host = cmd::run_tests(&mut c, &mut totals);
    // The same programs on the kernels users run, in VMs (whatever the host tests gave).
    let kernels: Vec<String> = vm::MATRIX.iter().map(|s| s.to_string()).collect();
    let vms = vm::run_matrix(&kernels, true).and_then(|(passed, failed)| {
        totals.passed += passed;
        totals.failed += failed;
        if failed > 0 {
            anyhow::bail!("{failed} of {} kernels failed in vm-test", passed + failed);
        }
        Ok(())
    });
    let r = host.and(vms);
    println!(
        "{} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    r
}
