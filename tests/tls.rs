//! TLS from the exporter-toolkit web config: a real Prometheus scrapes the daemon with a
//! client certificate (and is refused without one), curl and openssl check the policies,
//! HTTP/2 and the headers, a rotated certificate is served without a restart, and bad
//! fields are named by `monitor check-config` and `monitor run`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use monitor_tests::{pki::Ca, *};

/// What curl saw: its exit code, the HTTP status (0 when none), the HTTP version, the
/// body, and the one header asked for.
struct Curl {
    code: i32,
    status: u16,
    version: String,
    body: String,
}

fn curl(args: &[&str], url: &str) -> Curl {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (Debian package) is installed by cargo xtask test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut f = last.split_whitespace();
    Curl {
        code: out.status.code().unwrap_or(-1),
        status: f.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        version: f.next().unwrap_or("").to_string(),
        body: body.to_string(),
    }
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A CA, a server certificate and a client certificate, and a web config using them (file
/// names relative to the config's folder, as the toolkit resolves them).
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    client: monitor_tests::pki::Leaf,
    web: PathBuf,
}

fn pki(tls_extra: &str, rest: &str) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "test");
    ca.server("server", "first");
    let client = ca.client("client", "prometheus");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             {tls_extra}{rest}"
        ),
    )
    .unwrap();
    Pki {
        dir,
        ca,
        client,
        web,
    }
}

impl Pki {
    fn with_cert(&self) -> Vec<String> {
        vec![
            "--cacert".into(),
            s(&self.ca.cert).into(),
            "--cert".into(),
            s(&self.client.cert).into(),
            "--key".into(),
            s(&self.client.key).into(),
        ]
    }

    fn start(&self, extra: &[&str]) -> Daemon {
        let args = self.with_cert();
        let mut all = vec!["--web.config.file", s(&self.web)];
        all.extend_from_slice(extra);
        Daemon::start_ready(&all, |d| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&a, &https(d, "/healthz")).status == 200
        })
    }
}

/// curl's arguments to trust `ca` and present `leaf`.
fn presenting<'a>(ca: &'a Path, leaf: &'a monitor_tests::pki::Leaf) -> Vec<&'a str> {
    vec![
        "--cacert",
        s(ca),
        "--cert",
        s(&leaf.cert),
        "--key",
        s(&leaf.key),
    ]
}

fn https(d: &Daemon, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", d.port)
}

/// The daemon's own figure `series`, read over TLS with `args`.
fn metric(d: &Daemon, args: &[String], series: &str) -> f64 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = curl(&a, &https(d, "/metrics"));
    assert_eq!(c.status, 200, "{}", c.body);
    Metrics(c.body).value(series)
}

#[test]
fn prometheus_scrapes_over_tls_with_a_client_certificate() {
    let p = pki(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: test-ca.pem\n",
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         X-Content-Type-Options: nosniff\n",
    );
    let d = p.start(&["--web.max-connections", "77"]);
    let target = format!("['127.0.0.1:{}']", d.port);
    let prom = Prometheus::with_scrape_configs(&format!(
        "  - job_name: tls\n    scheme: https\n    tls_config:\n      ca_file: {}\n      \
         cert_file: {}\n      key_file: {}\n    static_configs:\n      - targets: {target}\n\
         \x20 - job_name: nocert\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
         static_configs:\n      - targets: {target}\n",
        s(&p.ca.cert),
        s(&p.client.cert),
        s(&p.client.key),
        s(&p.ca.cert),
    ));
    let value = |q: &str| -> Option<String> {
        let v = prom.query(q)?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_string)
    };
    // The scrape with the certificate went through: Prometheus holds a figure only the
    // daemon knows (its connection cap, set above).
    let max = poll("Prometheus to scrape over TLS", || {
        value("monitor_http_connections_max{job=\"tls\"}")
    });
    assert_eq!(max, "77");
    assert_eq!(value("up{job=\"tls\"}").as_deref(), Some("1"));
    let nocert = poll("the scrape without a certificate", || {
        value("up{job=\"nocert\"}")
    });
    assert_eq!(
        nocert, "0",
        "a scrape without a client certificate was let in"
    );

    let with = p.with_cert();
    let a: Vec<&str> = with.iter().map(String::as_str).collect();
    // HTTP/2 by ALPN (http2 is on by default), HTTP/1.1 when the client asks for it; the
    // configured headers on both.
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let mut args = a.clone();
        args.extend([flag, "-D", "/dev/stdout"]);
        let c = curl(&args, &https(&d, "/healthz"));
        assert_eq!((c.status, c.version.as_str()), (200, version), "{}", c.body);
        let head = c.body.to_ascii_lowercase();
        assert!(head.contains("x-frame-options: deny"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    }
    let failures_before = metric(&d, &with, "monitor_http_tls_handshake_failures_total");
    // No certificate, or one from a CA the daemon does not trust: no HTTP at all.
    let rogue_ca = Ca::new(p.dir.path(), "rogue");
    let rogue = rogue_ca.client("rogue", "prometheus");
    for args in [
        vec!["--cacert", s(&p.ca.cert)],
        presenting(&p.ca.cert, &rogue),
    ] {
        let c = curl(&args, &https(&d, "/metrics"));
        assert_eq!(c.status, 0, "{args:?} got an answer: {}", c.body);
        assert_ne!(c.code, 0, "{args:?}");
    }
    // Plain HTTP on the TLS port gets no answer either.
    assert_ne!(curl(&[], &d.url("/healthz")).status, 200);
    let failures = metric(&d, &with, "monitor_http_tls_handshake_failures_total");
    assert!(
        failures >= failures_before + 3.0,
        "{failures_before} -> {failures}"
    );
}

#[test]
fn stalled_tls_handshakes_are_closed_while_scrapes_are_answered() {
    const STALLED: usize = 300;
    let p = pki("", "");
    let d = p.start(&["--web.header-timeout", "20s"]);
    let ca: Vec<String> = vec!["--cacert".into(), s(&p.ca.cert).into()];
    let mut held = Vec::new();
    for i in 0..STALLED {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        if i % 2 == 0 {
            // A TLS record header announcing a 512-byte ClientHello, and no more.
            use std::io::Write as _;
            c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
        }
        held.push(c);
    }
    poll("the daemon to hold every stalled handshake", || {
        (metric(&d, &ca, "monitor_http_connections_open") >= STALLED as f64).then_some(())
    });
    let a: Vec<&str> = ca.iter().map(String::as_str).collect();
    assert_eq!(curl(&a, &https(&d, "/healthz")).status, 200);
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(c, Duration::from_secs(120)),
            "stalled handshake {i} still open"
        );
    }
    let timed_out = metric(
        &d,
        &ca,
        "monitor_http_connections_timed_out_total{phase=\"tls_handshake\"}",
    );
    assert!(timed_out >= STALLED as f64, "{timed_out}");
}

/// The status of `/healthz` for curl with `extra` against a daemon with `tls_extra`.
fn status_with(tls_extra: &str, tries: &[&[&str]]) -> Vec<u16> {
    let p = pki(tls_extra, "");
    let d = p.start(&[]);
    tries
        .iter()
        .map(|extra| {
            let mut a = vec!["--cacert", s(&p.ca.cert)];
            a.extend_from_slice(extra);
            curl(&a, &https(&d, "/healthz")).status
        })
        .collect()
}

#[test]
fn versions_and_cipher_suites_are_enforced() {
    // 0: no answer. TLS 1.2 is refused under min_version TLS13.
    let got = status_with(
        "  min_version: TLS13\n",
        &[&["--tlsv1.3"], &["--tls-max", "1.2"]],
    );
    assert_eq!(got, [200, 0]);
    // TLS 1.2 with one suite (the server's key is ECDSA): curl offering only another, or
    // TLS 1.3, gets no answer.
    let got = status_with(
        "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n",
        &[
            &["--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"],
            &["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            &["--tlsv1.3"],
        ],
    );
    assert_eq!(got, [200, 0, 0]);
}

#[test]
fn optional_client_certificates_and_allowed_sans() {
    let p = pki(
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: test-ca.pem\n  \
         client_allowed_sans: [prometheus]\n",
        "",
    );
    let d = p.start(&[]);
    let ca = ["--cacert", s(&p.ca.cert)];
    assert_eq!(
        curl(&ca, &https(&d, "/healthz")).status,
        200,
        "no certificate"
    );
    let other = p.ca.client("other", "someone-else");
    let c = curl(&presenting(&p.ca.cert, &other), &https(&d, "/healthz"));
    assert_eq!(
        c.status, 0,
        "a certificate without an allowed SAN was let in"
    );
    let with = p.with_cert();
    let a: Vec<&str> = with.iter().map(String::as_str).collect();
    assert_eq!(curl(&a, &https(&d, "/healthz")).status, 200);
}

/// The subject of the certificate the daemon serves now, as openssl reads it.
fn served_subject(port: u16) -> String {
    let hello = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let _ = x509.stdin.take().unwrap().write_all(&hello.stdout);
    let out = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let p = pki("", "");
    let d = p.start(&[]);
    let pid = d.pid();
    let ca = ["--cacert", s(&p.ca.cert)];
    let with: Vec<String> = ca.iter().map(|a| a.to_string()).collect();
    assert!(served_subject(d.port).contains("CN = first"));
    let cert = p.dir.path().join("server.pem");
    let key = p.dir.path().join("server.key");
    // A broken certificate file: the old pair is kept, and the failure counted.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    assert!(served_subject(d.port).contains("CN = first"));
    assert_eq!(curl(&ca, &https(&d, "/healthz")).status, 200);
    assert!(
        metric(
            &d,
            &with,
            "monitor_tls_certificate_reloads_total{result=\"failure\"}"
        ) >= 1.0
    );
    // A new pair, each file replaced by a rename as certificate tools do.
    let next = p.ca.server("next", "second");
    std::fs::rename(&next.key, &key).unwrap();
    std::fs::rename(&next.cert, &cert).unwrap();
    poll("the new certificate to be served", || {
        served_subject(d.port).contains("CN = second").then_some(())
    });
    assert_eq!(curl(&ca, &https(&d, "/healthz")).status, 200);
    assert!(
        metric(
            &d,
            &with,
            "monitor_tls_certificate_reloads_total{result=\"success\"}"
        ) >= 1.0
    );
    assert_eq!(d.pid(), pid);
    assert!(d.log().contains("reloaded"), "{}", d.log());
}

#[test]
fn bad_web_config_fields_are_named_by_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "test");
    ca.server("server", "first");
    ca.server("other", "other");
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let web = dir.path().join("web.yml");
    std::fs::write(&web, tls).unwrap();
    let out = Command::new(monitor_bin())
        .args(["check-config", "--web.config.file", s(&web)])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("web.yml: OK: TLS"), "{said}");
    for (text, needle) in [
        (
            format!("{tls}  min_version: TLS11\n"),
            "tls_server_config.min_version: TLS11 is not supported",
        ),
        (
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n".into(),
            "tls_server_config.key_file",
        ),
        (
            "tls_server_config:\n  cert_file: nowhere.pem\n  key_file: server.key\n".into(),
            "tls_server_config.cert_file: cannot read",
        ),
        (
            format!("{tls}http_server_config:\n  headers:\n    X-Powered-By: me\n"),
            "http_server_config.headers.X-Powered-By",
        ),
        (
            format!("{tls}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"),
            "tls_server_config.cipher_suites[0]",
        ),
    ] {
        std::fs::write(&web, &text).unwrap();
        let (code, stderr) = fails(&[], &["check-config", "--web.config.file", s(&web)]);
        assert_eq!(code, 1, "{text}: {stderr}");
        let line = one_line(&stderr);
        assert!(line.contains(needle), "check-config, {text}: {line}");
        let (code, stderr) = fails(
            &[],
            &[
                "run",
                "--web.listen-address",
                "127.0.0.1:0",
                "--web.config.file",
                s(&web),
            ],
        );
        assert_eq!(code, 1, "{text}: {stderr}");
        let line = one_line(&stderr);
        assert!(line.contains(needle), "run, {text}: {line}");
    }
}
