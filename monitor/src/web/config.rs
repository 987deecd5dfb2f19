//! `--web.config.file`: the Prometheus exporter-toolkit web configuration, with the toolkit's
//! field names, defaults and checks. Relative file names are relative to the file's folder,
//! as the toolkit resolves them.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, Context as _};
use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::tls::TlsSettings;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: TlsFile,
    #[serde(default)]
    http_server_config: HttpFile,
    #[serde(default)]
    rate_limit: RateLimitFile,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

/// `tls_server_config`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub client_allowed_sans: Option<Vec<String>>,
}

impl TlsFile {
    /// The toolkit serves TLS when any of these is set.
    fn enabled(&self) -> bool {
        self.cert.is_some()
            || self.key.is_some()
            || self.client_ca.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.client_ca_file.is_some()
            || self.client_auth_type.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    #[serde(default)]
    burst: u32,
    interval: Option<String>,
}

/// The response headers an operator may set, and the values allowed where the toolkit
/// restricts them (the same set, so a file works with every Prometheus exporter).
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A checked web configuration.
pub struct WebConfig {
    pub path: PathBuf,
    pub tls: Option<TlsSettings>,
    pub http2: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// (one request per `interval`, `burst`), when `rate_limit.interval` is set.
    pub rate_limit: Option<(Duration, u32)>,
    pub users: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads and checks the file, loading the TLS files once; an error names the file and
    /// the field at fault.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let name = format!("--web.config.file {}", path.display());
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
        // An empty file is an empty config (the toolkit's reading of it).
        let f: File = if text.trim().is_empty() {
            File::default()
        } else {
            crate::alert::rules::from_yaml(&name, &text)?
        };
        let at = |field: &str, e: String| anyhow!("{name}: {field}: {e}");
        for (user, hash) in &f.basic_auth_users {
            hash.parse::<bcrypt::HashParts>().map_err(|e| {
                at(
                    &format!("basic_auth_users.{user}"),
                    format!("not a bcrypt hash ({e})"),
                )
            })?;
        }
        let mut headers = Vec::new();
        for (header, value) in &f.http_server_config.headers {
            let field = format!("http_server_config.headers.{header}");
            let Some((_, allowed)) = HEADERS.iter().find(|(h, _)| h == header) else {
                let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
                return Err(at(
                    &field,
                    format!("this header cannot be set (allowed: {})", names.join(", ")),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(at(
                    &field,
                    format!("{value:?} is not one of {}", allowed.join(", ")),
                ));
            }
            let v =
                HeaderValue::from_str(value).map_err(|e| at(&field, format!("{value:?}: {e}")))?;
            let name =
                HeaderName::from_bytes(header.as_bytes()).map_err(|e| at(&field, e.to_string()))?;
            headers.push((name, v));
        }
        let rate_limit = match &f.rate_limit.interval {
            None => None,
            Some(s) => {
                let d = humantime::parse_duration(s)
                    .map_err(|e| at("rate_limit.interval", format!("{s:?}: {e}")))?;
                (!d.is_zero()).then_some((d, f.rate_limit.burst))
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = if f.tls_server_config.enabled() {
            let settings = TlsSettings::new(&f.tls_server_config, base)
                .map_err(|e| anyhow!("{name}: tls_server_config.{e}"))?;
            // Build once now: unreadable files or a key that does not match fail at start.
            settings
                .build()
                .map_err(|e| anyhow!("{name}: tls_server_config.{e}"))?;
            Some(settings)
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            tls,
            http2: f.http_server_config.http2.unwrap_or(true),
            headers,
            rate_limit,
            users: f.basic_auth_users,
        })
    }

    /// One line for `monitor check-config`.
    pub fn summary(&self) -> String {
        let tls = match &self.tls {
            Some(t) => format!("TLS ({})", t.describe()),
            None => "plain HTTP".to_string(),
        };
        format!(
            "{}: OK: {tls}{}, {} basic auth users, {} headers{}",
            self.path.display(),
            if self.tls.is_some() && self.http2 {
                ", HTTP/2"
            } else {
                ""
            },
            self.users.len(),
            self.headers.len(),
            if self.rate_limit.is_some() {
                ", a rate limit"
            } else {
                ""
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<WebConfig> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, text).unwrap();
        WebConfig::load(&p)
    }

    fn error(text: &str) -> String {
        let e = load(text).err().expect("an error").to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    }

    #[test]
    fn users_headers_and_rate_limit() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let c = load(&format!(
            "basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    \
             X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n\
             rate_limit:\n  interval: 100ms\n  burst: 5\n"
        ))
        .unwrap();
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.rate_limit, Some((Duration::from_millis(100), 5)));
        assert!(c.tls.is_none());
        assert!(c.http2);
        let empty = load("").unwrap();
        assert!(empty.users.is_empty() && empty.tls.is_none());
    }

    #[test]
    fn each_bad_field_is_named() {
        for (text, needle) in [
            ("nope: 1\n", "nope"),
            ("basic_auth_users:\n  alice: plain\n", "basic_auth_users.alice"),
            (
                "http_server_config:\n  headers:\n    Server: x\n",
                "http_server_config.headers.Server: this header cannot be set",
            ),
            (
                "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
                "http_server_config.headers.X-Content-Type-Options: \"sniff\" is not one of nosniff",
            ),
            ("http_server_config:\n  http3: true\n", "http3"),
            ("rate_limit:\n  interval: soon\n", "rate_limit.interval"),
            ("tls_server_config:\n  key_file: k\n", "tls_server_config.cert_file: missing"),
            ("tls_server_config:\n  cert_file: c\n", "tls_server_config.key_file: missing"),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Maybe\n",
                "tls_server_config.client_auth_type: unknown \"Maybe\"",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
                "tls_server_config.client_auth_type: a client CA is configured",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  \
                 client_auth_type: RequireAndVerifyClientCert\n",
                "tls_server_config.client_ca_file: RequireAndVerifyClientCert needs",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n",
                "tls_server_config.min_version: TLS10 is not supported: rustls speaks TLS12 and TLS13 only",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  max_version: TLS14\n",
                "tls_server_config.max_version: unknown TLS version",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  \
                 max_version: TLS12\n",
                "tls_server_config.min_version: TLS13 is above max_version TLS12",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites:\n    \
                 - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n    - TLS_RSA_WITH_AES_128_CBC_SHA\n",
                "tls_server_config.cipher_suites[1]: TLS_RSA_WITH_AES_128_CBC_SHA is not implemented by rustls",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_NULL]\n",
                "tls_server_config.cipher_suites[0]: unknown cipher suite \"TLS_NULL\"",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [CurveP521]\n",
                "tls_server_config.curve_preferences[0]: CurveP521 is not implemented by rustls",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_typo: x\n",
                "tls_server_config.client_auth_typo: unknown field",
            ),
            // The files are read once at load, relative to the config file's folder.
            (
                "tls_server_config:\n  cert_file: missing.pem\n  key_file: k\n",
                "tls_server_config.cert_file: cannot read ",
            ),
        ] {
            let e = error(text);
            assert!(e.contains(needle), "{text}: {e}");
            assert!(e.starts_with("--web.config.file "), "{e}");
        }
    }
}
