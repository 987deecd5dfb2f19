//! Where the samples go: the endpoints of `--remote-write.url` and of the file of
//! `--remote-write.config`, whose `remote_write` section takes Prometheus's field names
//! (`url`, `name`, `remote_timeout`, `headers`, `basic_auth`, `authorization`, `tls_config`,
//! `queue_config`, `write_relabel_configs`) so a section can be copied from a Prometheus
//! config, plus `external_labels` per endpoint. Everything, the files it names included, is read and
//! checked at start and by `monitor check-config`; an error names the file and the field.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::bail;
use regex::Regex;
use serde::Deserialize;

use super::{
    proto::Label,
    tls::{Tls, TlsConfig},
};
use crate::alert::config::Dur;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    remote_write: Vec<EndpointYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointYaml {
    url: String,
    /// The `endpoint` label of the metrics and the spool's directory (default: the URL's
    /// host and port).
    name: Option<String>,
    #[serde(default = "default_timeout")]
    remote_timeout: Dur,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    tls_config: Option<TlsConfig>,
    /// Added to every series sent here, over the defaults (`instance`, `job`); an empty
    /// value removes a default.
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    write_relabel_configs: Vec<RelabelYaml>,
    #[serde(default)]
    queue_config: QueueYaml,
}

/// Prometheus's `queue_config`, of which the fields that shape requests: the spool stands
/// for its in-memory queue and shards (`--remote-write.spool-size`), and the backoff is
/// the sender's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueYaml {
    #[serde(default = "default_max_samples")]
    max_samples_per_send: u64,
    #[serde(default = "default_deadline")]
    batch_send_deadline: Dur,
}

impl Default for QueueYaml {
    fn default() -> Self {
        Self {
            max_samples_per_send: default_max_samples(),
            batch_send_deadline: default_deadline(),
        }
    }
}

/// Prometheus's defaults.
fn default_max_samples() -> u64 {
    2000
}
fn default_deadline() -> Dur {
    Dur(Duration::from_secs(5))
}

/// Above this a request would be tens of megabytes, more than receivers take.
const MAX_SAMPLES_PER_SEND: u64 = 1_000_000;

fn default_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Authorization {
    #[serde(rename = "type", default = "bearer")]
    kind: String,
    credentials: Option<String>,
    credentials_file: Option<PathBuf>,
}

fn bearer() -> String {
    "Bearer".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelabelYaml {
    #[serde(default = "name_label")]
    source_labels: Vec<String>,
    #[serde(default = "semicolon")]
    separator: String,
    #[serde(default = "any")]
    regex: String,
    action: Option<String>,
}

fn name_label() -> Vec<String> {
    vec!["__name__".to_string()]
}
fn semicolon() -> String {
    ";".to_string()
}
fn any() -> String {
    "(.*)".to_string()
}

/// A `keep` or `drop` rule: the values of `source_labels` joined by `separator`, matched
/// whole against `regex`, as Prometheus's relabelling does.
#[derive(Debug, Clone)]
pub struct Relabel {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    keep: bool,
}

impl Relabel {
    /// Whether a series with `labels` passes this rule.
    pub fn passes(&self, labels: &[Label]) -> bool {
        let mut value = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                value.push_str(&self.separator);
            }
            if let Some(l) = labels.iter().find(|l| &l.name == name) {
                value.push_str(&l.value);
            }
        }
        self.regex.is_match(&value) == self.keep
    }
}

/// One endpoint, checked and ready to send to.
#[derive(Clone)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub timeout: Duration,
    /// Extra headers and the credentials' `Authorization` (never logged).
    pub headers: Vec<(String, String)>,
    /// Sorted by name, none empty.
    pub external_labels: Vec<Label>,
    pub relabel: Vec<Relabel>,
    /// Most samples in one request: a collection is split into requests of at most this
    /// many, and a backlog is sent in requests of up to this many.
    pub max_samples_per_send: usize,
    /// Longest a sample waits for later ones to fill its request.
    pub batch_send_deadline: Duration,
    /// Set when the endpoint has a `tls_config`.
    pub tls: Option<Arc<Tls>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &crate::alert::notify::redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// Labels a scrape of this daemon would add, which every series gets unless an endpoint
/// says otherwise.
pub struct Defaults {
    /// The daemon's own address as a scrape target would name it: the listen address, or
    /// `HOSTNAME:PORT` when it listens on every address (`history::instance`).
    pub instance: String,
    pub job: String,
}

/// Headers the sender sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-encoding",
    "content-type",
    "content-length",
    "user-agent",
    "x-prometheus-remote-write-version",
    "host",
];

/// The endpoints of `file` (if given) and of the `--remote-write.url` flags, in that order.
pub fn load(
    file: Option<&Path>,
    urls: &[String],
    defaults: &Defaults,
) -> anyhow::Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{shown}: cannot read the remote write config: {e}"))?;
        let f: File = crate::alert::rules::from_yaml(&shown, &text)?;
        if f.remote_write.is_empty() {
            bail!("{shown}: remote_write: no endpoint (give at least one url)");
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for (i, e) in f.remote_write.into_iter().enumerate() {
            let at = format!("{shown}: remote_write[{i}]");
            out.push(endpoint(e, base, defaults).map_err(|e| anyhow::anyhow!("{at}.{e}"))?);
        }
    }
    for u in urls {
        let e = EndpointYaml {
            url: u.clone(),
            name: None,
            remote_timeout: default_timeout(),
            headers: BTreeMap::new(),
            basic_auth: None,
            authorization: None,
            tls_config: None,
            external_labels: BTreeMap::new(),
            write_relabel_configs: Vec::new(),
            queue_config: QueueYaml::default(),
        };
        out.push(
            endpoint(e, Path::new("."), defaults)
                .map_err(|e| anyhow::anyhow!("--remote-write.{e}"))?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    for e in &out {
        if !seen.insert(e.name.clone()) {
            bail!(
                "remote write endpoint name {:?} is used twice: give each endpoint of the same \
                 host and port a name of its own (name, in --remote-write.config)",
                e.name
            );
        }
    }
    Ok(out)
}

/// One endpoint; an error starts with the field at fault (the caller adds where).
fn endpoint(e: EndpointYaml, base: &Path, defaults: &Defaults) -> Result<Endpoint, String> {
    let parsed = url::Url::parse(&e.url).map_err(|err| format!("url {:?}: {err}", e.url))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "url {:?}: only http and https are supported",
            e.url
        ));
    }
    let Some(host) = parsed.host_str() else {
        return Err(format!("url {:?} names no host", e.url));
    };
    let name = match e.name {
        Some(n) => n,
        // Made a valid name: an IPv6 host's brackets become _.
        None => match parsed.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect(),
    };
    if name.is_empty()
        || name.len() > 100
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
    {
        return Err(format!(
            "name {name:?}: 1 to 100 letters, digits, '.', '-', '_' or ':'"
        ));
    }
    if e.remote_timeout.0.is_zero() {
        return Err("remote_timeout: must be above zero".to_string());
    }
    let mut headers = Vec::new();
    for (k, v) in &e.headers {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("headers: {k:?} is not a header name"));
        }
        let lower = k.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("headers.{k}: set by the sender itself"));
        }
        if lower == "authorization" {
            return Err(format!(
                "headers.{k}: give credentials in basic_auth or authorization"
            ));
        }
        if v.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(format!("headers.{k}: a value is one line"));
        }
        headers.push((k.clone(), v.clone()));
    }
    match (&e.basic_auth, &e.authorization) {
        (Some(_), Some(_)) => {
            return Err("authorization: give basic_auth or authorization, not both".to_string())
        }
        (Some(b), None) => {
            if b.username.is_empty() {
                return Err("basic_auth.username: must not be empty".to_string());
            }
            let password = secret(
                "basic_auth.password",
                b.password.as_deref(),
                b.password_file.as_deref(),
                base,
            )?;
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{password}", b.username));
            headers.push(("Authorization".to_string(), format!("Basic {token}")));
        }
        (None, Some(a)) => {
            if a.kind.is_empty() || !a.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("authorization.type {:?}: e.g. Bearer", a.kind));
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err("authorization.type: use basic_auth for Basic".to_string());
            }
            let credentials = secret(
                "authorization.credentials",
                a.credentials.as_deref(),
                a.credentials_file.as_deref(),
                base,
            )?;
            headers.push((
                "Authorization".to_string(),
                format!("{} {credentials}", a.kind),
            ));
        }
        (None, None) => {}
    }
    let tls = match &e.tls_config {
        Some(t) => {
            if parsed.scheme() != "https" {
                return Err(format!(
                    "tls_config: url {:?} is not https, so it would not be used",
                    e.url
                ));
            }
            Some(Arc::new(
                super::tls::load(t, base).map_err(|err| format!("tls_config.{err}"))?,
            ))
        }
        None => None,
    };
    let q = &e.queue_config;
    if !(1..=MAX_SAMPLES_PER_SEND).contains(&q.max_samples_per_send) {
        return Err(format!(
            "queue_config.max_samples_per_send {}: 1 to {MAX_SAMPLES_PER_SEND}",
            q.max_samples_per_send
        ));
    }
    if q.batch_send_deadline.0.is_zero() {
        return Err("queue_config.batch_send_deadline: must be above zero".to_string());
    }
    let mut labels: BTreeMap<String, String> = BTreeMap::from([
        ("instance".to_string(), defaults.instance.clone()),
        ("job".to_string(), defaults.job.clone()),
    ]);
    for (k, v) in e.external_labels {
        if !is_label_name(&k) || k.starts_with("__") {
            return Err(format!(
                "external_labels: {k:?} is not a label name (letters, digits and _, not \
                 starting with a digit or __)"
            ));
        }
        if v.is_empty() {
            labels.remove(&k);
        } else {
            labels.insert(k, v);
        }
    }
    let mut relabel = Vec::new();
    for (i, r) in e.write_relabel_configs.into_iter().enumerate() {
        let at = format!("write_relabel_configs[{i}]");
        let keep = match r.action.as_deref() {
            Some("keep") => true,
            Some("drop") => false,
            Some(other) => {
                return Err(format!(
                    "{at}.action {other:?}: keep or drop (series are kept or dropped, not \
                     rewritten)"
                ))
            }
            None => return Err(format!("{at}.action: missing (keep or drop)")),
        };
        if r.source_labels.is_empty() {
            return Err(format!("{at}.source_labels: give at least one label"));
        }
        if let Some(bad) = r.source_labels.iter().find(|l| !is_label_name(l)) {
            return Err(format!("{at}.source_labels: {bad:?} is not a label name"));
        }
        // Checked as written, so an error shows the user's regex; matched whole.
        let regex = Regex::new(&r.regex)
            .and_then(|_| Regex::new(&format!("^(?:{})$", r.regex)))
            .map_err(|err| {
                let one_line = err
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                format!(
                    "{at}.regex {:?} is not a regular expression: {one_line}",
                    r.regex
                )
            })?;
        relabel.push(Relabel {
            source_labels: r.source_labels,
            separator: r.separator,
            regex,
            keep,
        });
    }
    Ok(Endpoint {
        name,
        url: e.url,
        timeout: e.remote_timeout.0,
        headers,
        external_labels: labels
            .into_iter()
            .map(|(name, value)| Label { name, value })
            .collect(),
        relabel,
        max_samples_per_send: q.max_samples_per_send as usize,
        batch_send_deadline: q.batch_send_deadline.0,
        tls,
    })
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret given inline or in a file (trailing newline removed), exactly one of them.
fn secret(
    field: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    base: &Path,
) -> Result<String, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("{field}: give {field} or {field}_file, not both")),
        (Some(s), None) if !s.is_empty() => Ok(s.to_string()),
        (None, Some(f)) => {
            let p = base.join(f);
            let s = std::fs::read_to_string(&p)
                .map_err(|e| format!("{field}_file: cannot read {}: {e}", p.display()))?;
            let s = s.trim_end_matches(['\n', '\r']).to_string();
            if s.is_empty() {
                return Err(format!("{field}_file: {} is empty", p.display()));
            }
            Ok(s)
        }
        _ => Err(format!("{field}: missing (give {field} or {field}_file)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            instance: "host:9957".into(),
            job: "monitor".into(),
        }
    }

    fn load_text(text: &str) -> anyhow::Result<Vec<Endpoint>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rw.yml");
        std::fs::write(&p, text).unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("not-a-cert.pem"), "hello\n").unwrap();
        load(Some(&p), &[], &defaults())
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_full_endpoint() {
        let e = load_text(
            r#"
remote_write:
  - url: https://mimir.example.com/api/v1/push
    name: mimir
    remote_timeout: 10s
    headers: {X-Scope-OrgID: tenant-1}
    authorization: {credentials_file: token}
    external_labels: {job: node, region: eu, instance: ""}
    queue_config: {max_samples_per_send: 500, batch_send_deadline: 1s}
    write_relabel_configs:
      - {source_labels: [__name__], regex: "process_.*", action: drop}
      - {source_labels: [__name__, group], separator: "/", regex: "monitor_process_.*/(other|sshd)|monitor_[^p].*", action: keep}
"#,
        )
        .unwrap();
        let [e] = &e[..] else { panic!() };
        assert_eq!(e.name, "mimir");
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert_eq!(e.max_samples_per_send, 500);
        assert_eq!(e.batch_send_deadline, Duration::from_secs(1));
        assert_eq!(
            e.headers,
            vec![
                ("X-Scope-OrgID".to_string(), "tenant-1".to_string()),
                ("Authorization".to_string(), "Bearer s3cret".to_string())
            ]
        );
        assert_eq!(
            e.external_labels,
            labels(&[("job", "node"), ("region", "eu")])
        );
        let passes = |l: &[(&str, &str)]| e.relabel.iter().all(|r| r.passes(&labels(l)));
        assert!(!passes(&[("__name__", "process_open_fds")]));
        assert!(passes(&[("__name__", "monitor_build_info")]));
        assert!(passes(&[
            ("__name__", "monitor_process_cpu_seconds_total"),
            ("group", "sshd")
        ]));
        assert!(!passes(&[
            ("__name__", "monitor_process_cpu_seconds_total"),
            ("group", "bash")
        ]));
        assert!(e.tls.is_none());
        let e = load_text(
            "remote_write: [{url: 'https://10.0.0.1/push', tls_config: {server_name: \
             mimir.example.com, insecure_skip_verify: true, min_version: TLS13}}]",
        )
        .unwrap();
        assert!(e[0].tls.is_some());
    }

    #[test]
    fn flags_get_the_defaults() {
        let e = load(
            None,
            &[
                "http://127.0.0.1:9090/api/v1/write".to_string(),
                "https://example.com/push".to_string(),
            ],
            &defaults(),
        )
        .unwrap();
        assert_eq!(e[0].name, "127.0.0.1:9090");
        assert_eq!(e[1].name, "example.com:443");
        assert_eq!(
            e[0].external_labels,
            labels(&[("instance", "host:9957"), ("job", "monitor")])
        );
        assert!(e[0].headers.is_empty());
        // Prometheus's defaults.
        assert_eq!(e[0].max_samples_per_send, 2000);
        assert_eq!(e[0].batch_send_deadline, Duration::from_secs(5));
        let e = load(None, &["ftp://x/".to_string()], &defaults()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--remote-write.url \"ftp://x/\": only http and https are supported"
        );
        let e = load(
            None,
            &["http://a:1/x".to_string(), "http://a:1/y".to_string()],
            &defaults(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"a:1\" is used twice"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        for (text, want) in [
            ("remote_write: [{name: x}]", "rw.yml: remote_write[0]: missing field `url`"),
            ("remote_write: []", "rw.yml: remote_write: no endpoint"),
            ("remote_write: [{url: 'nope'}]", "rw.yml: remote_write[0].url \"nope\": relative URL"),
            (
                "remote_write: [{url: 'http://x/', write_relabel_configs: [{regex: '(', action: drop}]}]",
                "rw.yml: remote_write[0].write_relabel_configs[0].regex \"(\" is not a regular expression",
            ),
            (
                "remote_write: [{url: 'http://x/', write_relabel_configs: [{action: replace}]}]",
                "write_relabel_configs[0].action \"replace\": keep or drop",
            ),
            (
                "remote_write: [{url: 'http://x/', write_relabel_configs: [{regex: x}]}]",
                "write_relabel_configs[0].action: missing",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {ca_file: /nonexistent.pem}}]",
                "remote_write[0].tls_config.ca_file: cannot read /nonexistent.pem",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {ca_file: not-a-cert.pem}}]",
                "not-a-cert.pem holds no PEM certificate",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {cert_file: not-a-cert.pem}}]",
                "remote_write[0].tls_config.key_file: give it with cert_file",
            ),
            (
                "remote_write: [{url: 'http://x/', tls_config: {}}]",
                "remote_write[0].tls_config: url \"http://x/\" is not https",
            ),
            (
                "remote_write: [{url: 'http://x/', basic_auth: {username: u}}]",
                "remote_write[0].basic_auth.password: missing",
            ),
            (
                "remote_write: [{url: 'http://x/', authorization: {credentials_file: nope}}]",
                "remote_write[0].authorization.credentials_file: cannot read",
            ),
            (
                "remote_write: [{url: 'http://x/', headers: {Content-Type: x}}]",
                "remote_write[0].headers.Content-Type: set by the sender itself",
            ),
            (
                "remote_write: [{url: 'http://x/', external_labels: {__x: y}}]",
                "remote_write[0].external_labels: \"__x\" is not a label name",
            ),
            (
                "remote_write: [{url: 'http://x/', remote_timeout: soon}]",
                "remote_write[0].remote_timeout: \"soon\" is not a duration",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {min_version: TLS10}}]",
                "remote_write[0].tls_config.min_version TLS10: not supported",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {max_version: tls13}}]",
                "remote_write[0].tls_config.max_version \"tls13\": TLS12 or TLS13",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {min_version: TLS13, max_version: TLS12}}]",
                "remote_write[0].tls_config.min_version: above max_version",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {insecure_skip_verify: true, ca_file: not-a-cert.pem}}]",
                "remote_write[0].tls_config.insecure_skip_verify: give it or ca_file, not both",
            ),
            (
                "remote_write: [{url: 'https://x/', tls_config: {server_name: 'a b'}}]",
                "remote_write[0].tls_config.server_name \"a b\": not a host name",
            ),
            ("remote_write: [{url: 'http://x/', colour: red}]", "unknown field `colour`"),
            (
                "remote_write: [{url: 'http://x/', queue_config: {max_samples_per_send: 0}}]",
                "remote_write[0].queue_config.max_samples_per_send 0: 1 to 1000000",
            ),
            (
                "remote_write: [{url: 'http://x/', queue_config: {batch_send_deadline: 0s}}]",
                "remote_write[0].queue_config.batch_send_deadline: must be above zero",
            ),
            (
                "remote_write: [{url: 'http://x/', queue_config: {capacity: 10}}]",
                "unknown field `capacity`",
            ),
            ("queue_config: {}", "unknown field `queue_config`"),
        ] {
            let e = format!(
                "{:#}",
                load_text(text)
                    .err()
                    .unwrap_or_else(|| panic!("{text} accepted"))
            );
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains('\n'), "{text}: {e}");
        }
    }
}
