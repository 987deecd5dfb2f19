//! Remote write's `tls_config` against a real Prometheus serving TLS (its `web.yml`) with a
//! certificate for `receiver.example`, reached at 127.0.0.1, and speaking TLS 1.2 at most:
//! without `server_name` the certificate is refused (it names another host), with it or
//! with `insecure_skip_verify` the samples are taken, and `min_version: TLS13` cannot
//! connect. What arrived is read back from Prometheus's own storage, restarted without
//! TLS, so it is the receiver that says which endpoints got through.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use monitor_tests::{
    certs::certs,
    rw_receiver::{pushing, Receiver},
    *,
};

const DEADLINE: Duration = Duration::from_secs(90);

const TAKEN: &[&str] = &["named", "skip", "tls12"];
const REFUSED: &[&str] = &["plain", "tls13"];

#[test]
fn server_name_insecure_skip_verify_and_versions_against_a_tls_prometheus() {
    let mut prom = Receiver::new(free_port());
    let c = certs(prom.dir.path(), "receiver.example", "DNS:receiver.example");
    std::fs::write(
        prom.dir.path().join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  max_version: TLS12\n",
            c.cert.display(),
            c.key.display()
        ),
    )
    .unwrap();
    prom.start();

    let url = format!("https://127.0.0.1:{}/api/v1/write", prom.port);
    let ca = c.ca.display();
    let endpoint = |name: &str, tls: &str| {
        format!(
            "  - {{name: {name}, url: '{url}', external_labels: {{via: {name}}}, tls_config: {{{tls}}}}}\n"
        )
    };
    let config = [
        endpoint("plain", &format!("ca_file: '{ca}'")),
        endpoint(
            "named",
            &format!("ca_file: '{ca}', server_name: receiver.example"),
        ),
        endpoint("skip", "insecure_skip_verify: true"),
        endpoint(
            "tls13",
            &format!("ca_file: '{ca}', server_name: receiver.example, min_version: TLS13"),
        ),
        endpoint(
            "tls12",
            &format!(
                "ca_file: '{ca}', server_name: receiver.example, min_version: TLS12, \
                 max_version: TLS12"
            ),
        ),
    ]
    .concat();
    let spool = tempfile::tempdir().unwrap();
    let file = spool.path().join("rw.yml");
    std::fs::write(&file, format!("remote_write:\n{config}")).unwrap();
    let d = pushing(&file, spool.path());

    // The daemon's account: the endpoints that got through, and tries that all failed for
    // the others.
    let value =
        |m: &Metrics, family: &str, e: &str| m.value(&format!("{family}{{endpoint=\"{e}\"}}"));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let m = d.metrics();
        let sent = TAKEN
            .iter()
            .all(|e| value(&m, "monitor_remote_write_samples_sent_total", e) > 0.0);
        let tried = REFUSED
            .iter()
            .all(|e| value(&m, "monitor_remote_write_failed_requests_total", e) >= 3.0);
        if sent && tried {
            for e in REFUSED {
                assert_eq!(
                    value(&m, "monitor_remote_write_samples_sent_total", e),
                    0.0,
                    "{e}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "endpoints never got through or never failed: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = d.log();
    let failure = |e: &str| {
        log.lines()
            .find(|l| l.contains(&format!("endpoint={e}")) && l.contains("remote write failed"))
            .unwrap_or_else(|| panic!("no failure logged for {e}: {log}"))
            .to_string()
    };
    let plain = failure("plain");
    assert!(plain.to_lowercase().contains("certificate"), "{plain}");
    let tls13 = failure("tls13");
    assert!(tls13.to_lowercase().contains("version"), "{tls13}");
    drop(d);

    // Prometheus's storage, read over plain HTTP.
    prom.stop();
    std::fs::remove_file(prom.dir.path().join("web.yml")).unwrap();
    prom.start();
    let via: BTreeSet<String> = prom
        .query("count by (via) (monitor_build_info)")
        .iter()
        .map(|r| r["metric"]["via"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        via,
        TAKEN.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
}
