//! The receivers that reach a person: email through a real SMTP server on loopback (Debian's
//! python3-aiosmtpd, STARTTLS and AUTH required, a certificate of our own CA), and Opsgenie,
//! Microsoft Teams, Telegram, ntfy and Discord against loopback servers that check each
//! request as the service's public API documents it (method, path, headers, JSON fields) and
//! answer as the service does, its error and rate-limit answers included. The alert is
//! `ServiceDown` for a watched service that is not running; starting it resolves it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use monitor_tests::{certs::Certs, *};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(60);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

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

/// A config watching a service named `service` (not running yet: ServiceDown fires at once),
/// with fast retries.
fn service_config(dir: &Path, service: &str, receivers: &str, route: &str) -> PathBuf {
    write(
        dir,
        "alerting.yml",
        &format!(
            "default_rules: {{enabled: false}}\n\
             services: [{{name: svc, comm: '^{service}$', for: 0s}}]\n\
             receivers: [{receivers}]\n\
             delivery: {{initial_backoff: 100ms, max_backoff: 400ms}}\n{route}"
        ),
    )
}

fn sleeper(bin: &NamedBinary) -> Guard {
    Guard(Command::new(&bin.path).arg("600").spawn().unwrap())
}

fn metric(d: &Daemon, name: &str, receiver: &str) -> f64 {
    d.metrics()
        .value(&format!("{name}{{receiver=\"{receiver}\"}}"))
}

fn alert_test(config: &Path) -> (bool, String) {
    let out = Command::new(monitor_bin())
        .args(["alert", "test", "--alert.config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), stdout)
}

// ---------------------------------------------------------------------------------------
// Email

/// A CA and a certificate for `localhost` and 127.0.0.1 that it signed.
fn certs(dir: &Path) -> Certs {
    monitor_tests::certs::certs(dir, "localhost", "DNS:localhost,IP:127.0.0.1")
}

/// tests/smtp_server.py on `port`, run by Debian's interpreter (where python3-aiosmtpd is).
struct Smtp {
    child: Child,
    out: PathBuf,
}

const PYTHON: &str = "/usr/bin/python3";

impl Smtp {
    fn start(port: u16, certs: &Certs, out: &Path, extra: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_server.py");
        let mut child = Command::new(PYTHON)
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--user",
                "alice",
                "--password",
                "s3cret",
            ])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .arg("--out")
            .arg(out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 with python3-aiosmtpd (installed by cargo xtask test)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        if line.trim() != "ready" {
            let _ = child.kill();
            panic!(
                "the SMTP server did not start: {}",
                read_all(child.stderr.take().unwrap())
            );
        }
        Smtp {
            child,
            out: out.to_path_buf(),
        }
    }

    /// The delivered messages, in order.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|x| x == "json"));
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn wait_messages(&self, what: &str, n: usize) -> Vec<Value> {
        wait_until(what, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    /// Login attempts: (mechanism, accepted).
    fn logins(&self) -> Vec<(String, bool)> {
        std::fs::read_to_string(self.out.join("auth.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].to_string(), f[3] == "accepted")
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn email_through_a_real_smtp_server_with_starttls_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let bin = NamedBinary::new("/bin/sleep", "mtmail");
    let port = free_port();
    let receivers = format!(
        "{{name: mail, email: {{to: 'ops@example.com, Oncall <oncall@example.com>', \
         from: 'Monitor <monitor@example.com>', smarthost: 'localhost:{port}', \
         hello: monitor-test, auth_username: alice, auth_password: s3cret, \
         tls_config: {{ca_file: '{}'}}, headers: {{X-Monitor-Test: 'group {{{{ groupLabels.alertname }}}}'}}}}}}",
        certs.ca.display()
    );
    let config = service_config(
        dir.path(),
        &bin.name,
        &receivers,
        "route: {receiver: mail, group_wait: 0s, group_interval: 500ms}\n",
    );
    let d = daemon(&config, &dir.path().join("state"));

    // Nothing listens yet: each attempt fails, is counted and retried.
    wait_until("failed attempts against an unreachable server", || {
        (metric(&d, "monitor_alert_notification_failures_total", "mail") >= 2.0).then_some(())
    });
    assert_eq!(metric(&d, "monitor_alert_notifications_total", "mail"), 0.0);
    assert_eq!(metric(&d, "monitor_alert_queue_length", "mail"), 1.0);
    let unreachable = metric(&d, "monitor_alert_notification_failures_total", "mail");

    // The server comes up, refusing the first two logins (535), then accepting.
    let smtp = Smtp::start(port, &certs, &dir.path().join("mail"), &["--refuse", "2"]);
    let msgs = smtp.wait_messages("the firing message", 1);
    let logins = smtp.logins();
    assert!(logins.len() >= 3, "{logins:?}");
    assert!(!logins[0].1 && !logins[1].1 && logins[2].1, "{logins:?}");
    assert_eq!(logins[0].0, "PLAIN");
    wait_until("the delivery to be counted", || {
        (metric(&d, "monitor_alert_notifications_total", "mail") == 1.0).then_some(())
    });
    assert!(
        metric(&d, "monitor_alert_notification_failures_total", "mail") >= unreachable + 2.0,
        "the refused logins are counted"
    );
    assert_eq!(metric(&d, "monitor_alert_queue_length", "mail"), 0.0);
    let log = d.log();
    assert!(log.contains("will retry") && log.contains("535"), "{log}");

    let m = &msgs[0];
    assert_eq!(m["tls"], true, "STARTTLS before the message");
    assert_eq!(m["login"], "alice");
    assert_eq!(m["hello"], "monitor-test");
    assert_eq!(m["mail_from"], "monitor@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["ops@example.com", "oncall@example.com"])
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    let h = &m["headers"];
    assert_eq!(
        h["Subject"], "[FIRING:1] ServiceDown: service svc is not running",
        "{m:#}"
    );
    assert_eq!(h["To"], "ops@example.com, Oncall <oncall@example.com>");
    assert_eq!(h["From"], "Monitor <monitor@example.com>");
    assert_eq!(h["X-Monitor-Test"], "group ServiceDown");
    let text = m["text"].as_str().unwrap();
    for want in [
        "[FIRING] ServiceDown (value 0)",
        "summary: service svc is not running",
        "service=svc",
        "severity=critical",
        "Source: http://",
    ] {
        assert!(
            text.contains(want),
            "{want:?} not in the text body:\n{text}"
        );
    }
    let html = m["html"].as_str().unwrap();
    for want in [
        "<h3>[FIRING] ServiceDown (value 0)</h3>",
        "<td>service svc is not running</td>",
        "service=svc",
        "<a href=\"http://",
    ] {
        assert!(
            html.contains(want),
            "{want:?} not in the HTML body:\n{html}"
        );
    }
    // Exactly one message for the one notification.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.messages().len(), 1);

    // Resolved: one more message for the group.
    let _svc = sleeper(&bin);
    let msgs = smtp.wait_messages("the resolved message", 2);
    let r = &msgs[1];
    assert_eq!(
        r["headers"]["Subject"],
        "[RESOLVED] ServiceDown: service svc is not running"
    );
    assert!(r["text"]
        .as_str()
        .unwrap()
        .contains("[RESOLVED] ServiceDown"));
    assert!(r["html"]
        .as_str()
        .unwrap()
        .contains("<th align=\"left\">ended</th>"));
    wait_until("two deliveries", || {
        (metric(&d, "monitor_alert_notifications_total", "mail") == 2.0).then_some(())
    });
    drop(smtp);

    // `monitor alert test`, to a server that offers AUTH LOGIN only.
    let smtp = Smtp::start(
        port,
        &certs,
        &dir.path().join("mail2"),
        &["--exclude", "PLAIN"],
    );
    let (ok, stdout) = alert_test(&config);
    assert!(ok, "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "mail (email): delivered"),
        "{stdout}"
    );
    let msgs = smtp.wait_messages("the test message", 1);
    assert!(
        msgs[0]["headers"]["Subject"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING:1] MonitorTestAlert: test notification from monitor on "),
        "{:#}",
        msgs[0]
    );
    assert_eq!(smtp.logins(), [("LOGIN".to_string(), true)]);
}

#[test]
fn email_refused_for_good_bad_settings_and_implicit_tls_on_465() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let bin = NamedBinary::new("/bin/sleep", "mtbounce");
    let port = free_port();
    let smtp = Smtp::start(port, &certs, &dir.path().join("mail"), &[]);
    let server = format!("smarthost: 'localhost:{port}', from: m@example.com");
    let ca = format!("tls_config: {{ca_file: '{}'}}", certs.ca.display());
    let receivers = format!(
        "{{name: bounce, email: {{to: nobody@refused.example.com, {server}, auth_username: alice, auth_password: s3cret, {ca}}}}}, \
         {{name: untrusted, email: {{to: a@example.com, {server}, auth_username: alice, auth_password: s3cret}}}}, \
         {{name: wrongpw, email: {{to: a@example.com, {server}, auth_username: alice, auth_password: nope, {ca}}}}}, \
         {{name: noauth, email: {{to: a@example.com, {server}, require_tls: false, {ca}}}}}"
    );
    let config = service_config(
        dir.path(),
        &bin.name,
        &receivers,
        "route: {receiver: bounce, group_wait: 0s}\n",
    );
    let d = daemon(&config, &dir.path().join("state"));
    // 550 for the recipient: a permanent answer to the message, refused once, not retried.
    wait_until("the refusal", || {
        (metric(&d, "monitor_alert_notification_failures_total", "bounce") == 1.0
            && metric(&d, "monitor_alert_queue_length", "bounce") == 0.0)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let rcpts = std::fs::read_to_string(dir.path().join("mail/rcpt.log")).unwrap();
    assert_eq!(rcpts, "nobody@refused.example.com refused\n");
    assert_eq!(
        metric(&d, "monitor_alert_notifications_total", "bounce"),
        0.0
    );
    assert!(d.log().contains("not retried"), "{}", d.log());

    // The others through `monitor alert test`: each says what failed, no secret shown.
    let (ok, stdout) = alert_test(&config);
    assert!(!ok, "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} (email): ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"))
            .to_string()
    };
    // Our CA is not among the built-in roots.
    let l = line("untrusted");
    assert!(l.contains("FAILED") && l.contains("certificate"), "{l}");
    let l = line("wrongpw");
    assert!(l.contains("FAILED") && l.contains("535"), "{l}");
    // require_tls: false is plain SMTP, which this server refuses (530: STARTTLS first).
    let l = line("noauth");
    assert!(l.contains("FAILED") && l.contains("530"), "{l}");
    assert!(
        !stdout.contains("s3cret") && !stdout.contains("nope"),
        "{stdout}"
    );
    assert!(smtp.messages().is_empty());

    // Port 465: TLS from the first byte (a server that speaks nothing else).
    let tls = Smtp::start(
        465,
        &certs,
        &dir.path().join("mail465"),
        &["--implicit-tls"],
    );
    let config = write(
        dir.path(),
        "implicit.yml",
        &format!(
            "receivers: [{{name: implicit, email: {{to: a@example.com, from: m@example.com, smarthost: 'localhost:465', auth_username: alice, auth_password: s3cret, {ca}}}}}]\n"
        ),
    );
    let (ok, stdout) = alert_test(&config);
    assert!(ok, "{stdout}");
    let msgs = tls.wait_messages("the message over implicit TLS", 1);
    assert_eq!(msgs[0]["login"], "alice");
    assert_eq!(msgs[0]["rcpt_tos"], json!(["a@example.com"]));
}

// ---------------------------------------------------------------------------------------
// The HTTP services

#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    /// The status it was answered with.
    status: u16,
    at: Instant,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// (status, body, extra headers) of an answer.
type Answer = (u16, String, Vec<(&'static str, String)>);

/// A stand-in for a service on loopback: each request goes through `answer`, which checks
/// it as the service would and answers as the service does; `n` is the request's index.
struct Service {
    port: u16,
    server: Arc<tiny_http::Server>,
    requests: Arc<Mutex<Vec<Req>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(answer: impl Fn(&Req, usize) -> Answer + Send + 'static) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, requests) = (server.clone(), requests.clone());
            std::thread::spawn(move || {
                for mut rq in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = rq.as_reader().read_to_string(&mut body);
                    let mut r = Req {
                        method: rq.method().to_string(),
                        path: rq.url().to_string(),
                        headers: rq
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect(),
                        body,
                        status: 0,
                        at: Instant::now(),
                    };
                    let n = requests.lock().unwrap().len();
                    let (status, text, headers) = answer(&r, n);
                    r.status = status;
                    requests.lock().unwrap().push(r);
                    let mut resp = tiny_http::Response::from_string(text).with_status_code(status);
                    resp.add_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                    for (k, v) in headers {
                        resp.add_header(tiny_http::Header::from_bytes(k, v.as_bytes()).unwrap());
                    }
                    let _ = rq.respond(resp);
                }
            })
        };
        Service {
            port,
            server,
            requests,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    fn wait(&self, what: &str, done: impl Fn(&[Req]) -> bool) -> Vec<Req> {
        wait_until(what, || {
            let r = self.requests();
            done(&r).then_some(r)
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(status: u16, body: Value) -> Answer {
    (status, body.to_string(), vec![])
}

fn is_json(r: &Req) -> bool {
    r.header("Content-Type")
        .is_some_and(|c| c.starts_with("application/json"))
        && r.json().is_object()
}

/// Opsgenie's Alert API v2: `GenieKey` auth, create at /v2/alerts (message at most 130
/// characters, alias at most 512), close at /v2/alerts/ALIAS/close?identifierType=alias;
/// both answered 202. The first create is rate limited (429).
fn opsgenie(key: &'static str) -> Service {
    let limited = AtomicBool::new(false);
    Service::start(move |r, n| {
        if r.header("Authorization") != Some(&format!("GenieKey {key}")) {
            return answer(
                401,
                json!({"message": "Could not authenticate", "took": 0.0, "requestId": "r"}),
            );
        }
        let body = r.json();
        let accepted = json!({"result": "Request will be processed", "took": 0.01, "requestId": format!("r{n}")});
        let bad = |why: &str| answer(422, json!({"message": why, "took": 0.0, "requestId": "r"}));
        if r.method != "POST" || !is_json(r) {
            return bad("Request body is not processable");
        }
        if r.path == "/v2/alerts" {
            let msg = body["message"].as_str().unwrap_or("");
            if msg.is_empty() || msg.chars().count() > 130 {
                return bad("Message can not be empty or longer than 130 characters");
            }
            if body["alias"].as_str().is_none_or(|a| a.len() > 512) {
                return bad("Alias can not be longer than 512 characters");
            }
            if !matches!(
                body["priority"].as_str(),
                Some("P1" | "P2" | "P3" | "P4" | "P5")
            ) {
                return bad("Priority should be one of P1, P2, P3, P4, P5");
            }
            if !limited.swap(true, Ordering::SeqCst) {
                return answer(
                    429,
                    json!({"message": "You are making too many requests! To avoid errors, we recommend you limit requests.", "took": 0.0, "requestId": "r"}),
                );
            }
            return answer(202, accepted);
        }
        if let Some(alias) = r
            .path
            .strip_prefix("/v2/alerts/")
            .and_then(|p| p.strip_suffix("/close?identifierType=alias"))
        {
            if alias.is_empty() {
                return bad("Alias is empty");
            }
            return answer(202, accepted);
        }
        answer(
            404,
            json!({"message": "Not found", "took": 0.0, "requestId": "r"}),
        )
    })
}

/// A Teams workflow webhook: a message with one Adaptive Card attachment, answered 202; the
/// first request meets a throttled flow (429).
fn teams() -> Service {
    Service::start(|r, n| {
        let b = r.json();
        let card = &b["attachments"][0];
        let ok = r.method == "POST"
            && r.path == "/workflows/abc/triggers/manual/paths/invoke?sig=s"
            && is_json(r)
            && b["type"] == "message"
            && card["contentType"] == "application/vnd.microsoft.card.adaptive"
            && card["content"]["type"] == "AdaptiveCard"
            && card["content"]["body"]
                .as_array()
                .is_some_and(|b| !b.is_empty());
        if !ok {
            return answer(
                400,
                json!({"error": {"code": "InvalidRequestContent", "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}),
            );
        }
        if n == 0 {
            return answer(
                429,
                json!({"error": {"code": "WorkflowTriggerIsThrottled", "message": "Rate limit is exceeded."}}),
            );
        }
        (202, String::new(), vec![])
    })
}

const TG_TOKEN: &str = "123456:ABC-def_ghi";

/// The Bot API: POST /bot<token>/sendMessage with chat_id and text; `{"ok": true, ...}`,
/// or `{"ok": false, "error_code", "description"}` with that status: 401 for a bad token,
/// 400 for an unknown chat, 429 with `parameters.retry_after` for the first message.
fn telegram() -> Service {
    let limited = AtomicBool::new(false);
    Service::start(move |r, n| {
        let Some(method) = r.path.strip_prefix(&format!("/bot{TG_TOKEN}/")) else {
            return answer(
                401,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        };
        let b = r.json();
        if method != "sendMessage" || r.method != "POST" || !is_json(r) {
            return answer(
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            );
        }
        if b["text"]
            .as_str()
            .is_none_or(|t| t.is_empty() || t.chars().count() > 4096)
        {
            return answer(
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}),
            );
        }
        if b["chat_id"] != json!(-100_123) {
            return answer(
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            );
        }
        if !limited.swap(true, Ordering::SeqCst) {
            return answer(
                429,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
            );
        }
        answer(
            200,
            json!({"ok": true, "result": {"message_id": n, "chat": {"id": -100_123, "type": "supergroup"}, "date": 0, "text": b["text"]}}),
        )
    })
}

/// ntfy's JSON publish: POST to the root with topic, message, priority 1..5 and tags; the
/// bearer token checked (401 with ntfy's error JSON); 429 (code 42901) for the first.
fn ntfy() -> Service {
    Service::start(|r, n| {
        let err = |status: u16, code: u32, error: &str| {
            answer(
                status,
                json!({"code": code, "http": status, "error": error, "link": "https://ntfy.sh/docs/publish/"}),
            )
        };
        if r.header("Authorization") != Some("Bearer tk_test") {
            return err(401, 40101, "unauthorized");
        }
        let b = r.json();
        if r.method != "POST" || r.path != "/" || !is_json(r) || b["topic"] != "alerts-web1" {
            return err(400, 40001, "invalid request: topic invalid");
        }
        if !b["priority"].as_u64().is_some_and(|p| (1..=5).contains(&p))
            || !b["tags"].is_array()
            || b["message"].as_str().is_none_or(str::is_empty)
        {
            return err(400, 40007, "invalid request: priority invalid");
        }
        if n == 0 {
            return err(429, 42901, "limit reached: too many requests");
        }
        answer(
            200,
            json!({"id": format!("m{n}"), "time": 0, "event": "message", "topic": "alerts-web1", "message": b["message"]}),
        )
    })
}

/// A Discord webhook: POST /api/webhooks/ID/TOKEN with content or embeds (title at most
/// 256, description at most 4096 characters), answered 204; the first is rate limited
/// (429 with retry_after and a Retry-After header).
fn discord() -> Service {
    Service::start(|r, n| {
        if r.path != "/api/webhooks/42/tok" {
            return answer(
                401,
                json!({"message": "Invalid Webhook Token", "code": 50027}),
            );
        }
        let b = r.json();
        let embeds_ok = b["embeds"].as_array().is_some_and(|e| {
            e.len() <= 10
                && e.iter().all(|e| {
                    e["title"]
                        .as_str()
                        .is_some_and(|t| t.chars().count() <= 256)
                        && e["description"]
                            .as_str()
                            .is_some_and(|d| d.chars().count() <= 4096)
                })
        });
        if r.method != "POST" || !is_json(r) || !embeds_ok {
            return answer(400, json!({"message": "Invalid Form Body", "code": 50035}));
        }
        if n == 0 {
            return (
                429,
                json!({"message": "You are being rate limited.", "retry_after": 0.2, "global": false}).to_string(),
                vec![("Retry-After", "1".to_string())],
            );
        }
        (204, String::new(), vec![])
    })
}

#[test]
fn chat_and_paging_services_get_firing_and_resolved_notifications() {
    let og = opsgenie("og-key");
    let ms = teams();
    let tg = telegram();
    let nt = ntfy();
    let dc = discord();
    let bin = NamedBinary::new("/bin/sleep", "mtchat");
    let dir = tempfile::tempdir().unwrap();
    let receivers = format!(
        "{{name: og, opsgenie: {{api_key: og-key, api_url: '{og}', responders: [{{type: team, name: ops}}], tags: [web]}}}}, \
         {{name: teams, msteams: {{webhook_url: '{teams}'}}}}, \
         {{name: tg, telegram: {{bot_token: '{TG_TOKEN}', chat_id: -100123, api_url: '{tg}'}}}}, \
         {{name: ntfy, ntfy: {{url: '{nt}', topic: alerts-web1, token: tk_test}}}}, \
         {{name: discord, discord: {{webhook_url: '{dc}', username: monitor}}}}, \
         {{name: tgbad, telegram: {{bot_token: '{TG_TOKEN}', chat_id: 999, api_url: '{tg}'}}}}, \
         {{name: ogbad, opsgenie: {{api_key: wrong, api_url: '{og}'}}}}",
        og = og.url("/"),
        teams = ms.url("/workflows/abc/triggers/manual/paths/invoke?sig=s"),
        tg = tg.url(""),
        nt = nt.url(""),
        dc = dc.url("/api/webhooks/42/tok"),
    );
    let routes: String = ["teams", "tg", "ntfy", "discord", "tgbad", "ogbad"]
        .iter()
        .map(|r| format!("    - {{receiver: {r}, continue: true}}\n"))
        .collect();
    let config = service_config(
        dir.path(),
        &bin.name,
        &receivers,
        &format!(
            "route:\n  receiver: og\n  group_wait: 0s\n  group_interval: 500ms\n  routes:\n{routes}    - {{receiver: og}}\n"
        ),
    );
    let d = daemon(&config, &dir.path().join("state"));
    let accepted = |r: &[Req]| r.iter().filter(|r| r.status / 100 == 2).count();

    // Each service rate-limits the first request: retried, then delivered.
    let og_reqs = og.wait("Opsgenie's create", |r| {
        r.iter().any(|r| r.path == "/v2/alerts" && r.status == 202)
    });
    let ms_reqs = ms.wait("the Teams card", |r| accepted(r) == 1);
    let tg_reqs = tg.wait("the Telegram message", |r| accepted(r) == 1);
    let nt_reqs = nt.wait("the ntfy message", |r| accepted(r) == 1);
    let dc_reqs = dc.wait("the Discord message", |r| accepted(r) == 1);
    for (name, reqs) in [
        ("og", &og_reqs),
        ("teams", &ms_reqs),
        ("tg", &tg_reqs),
        ("ntfy", &nt_reqs),
        ("discord", &dc_reqs),
    ] {
        let mine: Vec<&Req> = reqs
            .iter()
            .filter(|r| name != "og" || r.header("Authorization") == Some("GenieKey og-key"))
            .filter(|r| name != "tg" || r.json()["chat_id"] == json!(-100_123))
            .collect();
        assert_eq!(mine[0].status, 429, "{name}: {reqs:#?}");
        assert_eq!(
            mine[0].body, mine[1].body,
            "{name}: a retry sends the same request"
        );
        // Telegram and Discord say how long to wait (1 s): the retry waits that long, not
        // the 100ms backoff.
        let gap = mine[1].at - mine[0].at;
        if matches!(name, "tg" | "discord") {
            assert!(
                gap >= Duration::from_millis(950),
                "{name}: retried after {gap:?}"
            );
        }
        wait_until("the counters", || {
            (metric(&d, "monitor_alert_notifications_total", name) == 1.0
                && metric(&d, "monitor_alert_notification_failures_total", name) == 1.0)
                .then_some(())
        });
    }

    let create = og_reqs.iter().find(|r| r.status == 202).unwrap().json();
    assert_eq!(
        create["message"],
        "[FIRING:1] ServiceDown: service svc is not running"
    );
    assert_eq!(create["priority"], "P1", "critical is P1");
    assert_eq!(create["source"], monitor_tests_host());
    assert_eq!(
        create["responders"],
        json!([{"type": "team", "name": "ops"}])
    );
    assert!(create["tags"].as_array().unwrap().contains(&json!("web")));
    assert_eq!(create["details"]["alertname"], "ServiceDown");
    assert!(create["description"]
        .as_str()
        .unwrap()
        .contains("service=svc"));
    let alias = create["alias"].as_str().unwrap().to_string();

    let card = &ms_reqs[1].json()["attachments"][0]["content"];
    assert_eq!(
        card["body"][0]["text"],
        "[FIRING:1] ServiceDown: service svc is not running"
    );
    assert_eq!(card["body"][0]["color"], "Attention");
    assert!(card["body"][2]["facts"]
        .as_array()
        .unwrap()
        .contains(&json!({"title": "service", "value": "svc"})));

    let m = tg_reqs.iter().find(|r| r.status == 200).unwrap().json();
    assert_eq!(m["parse_mode"], "HTML");
    let text = m["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "<b>[FIRING:1] ServiceDown: service svc is not running</b>\n• firing ServiceDown"
        ),
        "{text}"
    );

    let p = nt_reqs[1].json();
    assert_eq!(p["topic"], "alerts-web1");
    assert_eq!(p["priority"], 5, "critical is ntfy's max priority");
    assert_eq!(
        p["title"],
        "[FIRING:1] ServiceDown: service svc is not running"
    );
    assert!(p["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("rotating_light")));
    assert!(p["message"].as_str().unwrap().contains("service=svc"));

    let e = &dc_reqs[1].json()["embeds"][0];
    assert_eq!(
        e["title"],
        "[FIRING:1] ServiceDown: service svc is not running"
    );
    assert_eq!(dc_reqs[1].json()["username"], "monitor");

    // 4xx (an unknown chat, a bad key): refused once, counted, not retried.
    wait_until("the refusals", || {
        (metric(&d, "monitor_alert_notification_failures_total", "tgbad") == 1.0
            && metric(&d, "monitor_alert_notification_failures_total", "ogbad") == 1.0
            && metric(&d, "monitor_alert_queue_length", "tgbad") == 0.0
            && metric(&d, "monitor_alert_queue_length", "ogbad") == 0.0)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let tried =
        |s: &Service, pred: &dyn Fn(&Req) -> bool| s.requests().iter().filter(|r| pred(r)).count();
    assert_eq!(tried(&tg, &|r| r.json()["chat_id"] == json!(999)), 1);
    assert_eq!(
        tried(&og, &|r| r.header("Authorization")
            == Some("GenieKey wrong")),
        1
    );
    assert!(d.log().contains("Bad Request: chat not found"));

    // Resolved: Opsgenie closes the alias; the others say so.
    let _svc = sleeper(&bin);
    let og_reqs = og.wait("Opsgenie's close", |r| {
        r.iter().any(|r| {
            r.path.contains("/close") && r.header("Authorization") == Some("GenieKey og-key")
        })
    });
    let close = og_reqs
        .iter()
        .find(|r| r.path.contains("/close") && r.header("Authorization") == Some("GenieKey og-key"))
        .unwrap();
    assert_eq!(
        close.path,
        format!("/v2/alerts/{alias}/close?identifierType=alias")
    );
    assert_eq!(close.status, 202);
    let resolved = |s: &Service, what: &str, f: fn(&Value) -> String| {
        let r = s.wait(what, |r| {
            r.iter().filter(|r| r.status / 100 == 2).count() == 2
        });
        let last = r.iter().rfind(|r| r.status / 100 == 2).unwrap().json();
        f(&last)
    };
    assert_eq!(
        resolved(&ms, "Teams' resolved", |v| v["attachments"][0]["content"]
            ["body"][0]["color"]
            .to_string()),
        "\"Good\""
    );
    assert!(
        resolved(&tg, "Telegram's resolved", |v| v["text"].to_string())
            .contains("[RESOLVED] ServiceDown")
    );
    assert_eq!(
        resolved(&nt, "ntfy's resolved", |v| format!(
            "{} {}",
            v["priority"], v["tags"][0]
        )),
        "3 \"white_check_mark\""
    );
    assert_eq!(
        resolved(&dc, "Discord's resolved", |v| v["embeds"][0]["color"]
            .to_string()),
        0x2E_CC71.to_string()
    );

    // `monitor alert test` through each: the good ones deliver, the bad ones say why.
    let (ok, stdout) = alert_test(&config);
    assert!(!ok, "two receivers refuse:\n{stdout}");
    for line in [
        "og (opsgenie): delivered",
        "teams (msteams): delivered",
        "tg (telegram): delivered",
        "ntfy (ntfy): delivered",
        "discord (discord): delivered",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line} not in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("tgbad (telegram): FAILED: http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("HTTP 400") && stdout.contains("chat not found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ogbad (opsgenie): FAILED: ") && stdout.contains("HTTP 401"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(TG_TOKEN),
        "the bot token stays out of the output:\n{stdout}"
    );
    let test_create = og
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/v2/alerts" && r.status == 202)
        .unwrap()
        .json();
    assert_eq!(
        test_create["priority"], "P5",
        "the test alert is of severity info"
    );
    assert!(test_create["message"]
        .as_str()
        .unwrap()
        .contains("MonitorTestAlert"));
}

/// The host name the daemon reports as the source.
fn monitor_tests_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}
