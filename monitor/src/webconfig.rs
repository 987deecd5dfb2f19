//! `--web.config.file`: the Prometheus exporter-toolkit web configuration. Basic auth users
//! (`basic_auth_users`, bcrypt hashes) are enforced on every endpoint; TLS settings are
//! refused with a clear error rather than ignored, as this daemon serves plain HTTP only.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::{anyhow, bail, Context as _};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use base64::Engine as _;
use serde::Deserialize;

use crate::log::access::AuthenticatedUser;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    tls_server_config: Option<serde_norway::Value>,
    http_server_config: Option<serde_norway::Value>,
}

#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<HashMap<String, String>>,
    /// Passwords already checked, per user: bcrypt is slow on purpose (tens of ms), too slow
    /// to pay on every scrape.
    verified: Arc<Mutex<HashMap<String, String>>>,
}

impl BasicAuth {
    /// Reads the file; `None` when it configures no users.
    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --web.config.file {}", path.display()))?;
        let f: File = serde_norway::from_str(&text)
            .map_err(|e| anyhow!("--web.config.file {}: {e}", path.display()))?;
        if f.tls_server_config.is_some() || f.http_server_config.is_some() {
            bail!(
                "--web.config.file {}: tls_server_config and http_server_config are not \
                 supported (only basic_auth_users); terminate TLS in a proxy",
                path.display()
            );
        }
        for (user, hash) in &f.basic_auth_users {
            hash.parse::<bcrypt::HashParts>().map_err(|e| {
                anyhow!(
                    "--web.config.file {}: basic_auth_users.{user} is not a bcrypt hash ({e})",
                    path.display()
                )
            })?;
        }
        if f.basic_auth_users.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            users: Arc::new(f.basic_auth_users.into_iter().collect()),
            verified: Arc::default(),
        }))
    }

    /// The user `authorization` authenticates, if any.
    fn check(&self, authorization: &str) -> Option<String> {
        let encoded = authorization.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.get(user).is_some_and(|p| p == password) {
            return Some(user.to_string());
        }
        if bcrypt::verify(password, hash).unwrap_or(false) {
            verified.insert(user.to_string(), password.to_string());
            return Some(user.to_string());
        }
        None
    }
}

/// The middleware: 401 without valid credentials; the user is set on the response for the
/// access log.
pub async fn layer(State(auth): State<BasicAuth>, req: Request, next: Next) -> Response<Body> {
    let user = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| auth.check(v));
    match user {
        Some(user) => {
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(AuthenticatedUser(user));
            resp
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"monitor\"")],
            "Unauthorized\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Option<BasicAuth>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, text).unwrap();
        BasicAuth::load(&p)
    }

    #[test]
    fn users_and_refusals() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = load(&format!("basic_auth_users:\n  alice: {hash}\n"))
            .unwrap()
            .unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            auth.check(&format!("Basic {}", b64("alice:s3cret"))),
            Some("alice".into())
        );
        // Cached now, and still right.
        assert_eq!(
            auth.check(&format!("Basic {}", b64("alice:s3cret"))),
            Some("alice".into())
        );
        assert_eq!(auth.check(&format!("Basic {}", b64("alice:wrong"))), None);
        assert_eq!(auth.check(&format!("Basic {}", b64("bob:s3cret"))), None);
        assert_eq!(auth.check("Bearer x"), None);
        assert!(load("").unwrap().is_none());
        let e = load("tls_server_config:\n  cert_file: a\n").err().unwrap();
        assert!(e.to_string().contains("tls_server_config"), "{e}");
        let e = load("basic_auth_users:\n  alice: plain\n").err().unwrap();
        assert!(e.to_string().contains("basic_auth_users.alice"), "{e}");
        let e = load("nope: 1\n").err().unwrap();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
