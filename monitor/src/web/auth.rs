//! `basic_auth_users`: bcrypt-hashed passwords required on every endpoint. bcrypt is slow on
//! purpose (tens of milliseconds), so each check runs on the blocking pool, one at a time,
//! and its answer is remembered: the thread that accepts connections and answers /healthz
//! never waits for one.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use base64::Engine as _;
use tokio::sync::Semaphore;

use crate::log::access::AuthenticatedUser;

/// Answers remembered: enough for every scraper of a host, small enough that a client
/// trying passwords cannot grow it.
const CACHE_SIZE: usize = 100;

#[derive(Clone)]
pub struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    cache: Arc<Mutex<HashMap<(String, String), bool>>>,
    /// One bcrypt at a time, so wrong passwords cannot take every blocking thread from
    /// the scrapes.
    bcrypt: Arc<Semaphore>,
    /// What an unknown user's password is compared with, so that a wrong user name takes
    /// as long as a wrong password and does not tell which users exist.
    decoy: Arc<OnceLock<String>>,
}

impl BasicAuth {
    /// `None` when there are no users.
    pub fn new(users: BTreeMap<String, String>) -> Option<Self> {
        (!users.is_empty()).then(|| Self {
            users: Arc::new(users),
            cache: Arc::default(),
            bcrypt: Arc::new(Semaphore::new(1)),
            decoy: Arc::default(),
        })
    }

    /// The user `authorization` authenticates, if any.
    pub async fn check(&self, authorization: &str) -> Option<String> {
        let encoded = authorization.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let key = (user.to_string(), password.to_string());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        let ok = match cached {
            Some(ok) => ok,
            None => {
                let _permit = self.bcrypt.acquire().await.ok()?;
                let hash = self.users.get(user).cloned();
                let decoy = self.decoy.clone();
                let password = key.1.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    let matches = |h: &str| bcrypt::verify(&password, h).unwrap_or(false);
                    match hash {
                        Some(h) => matches(&h),
                        None => {
                            let d = decoy.get_or_init(|| {
                                bcrypt::hash("decoy", bcrypt::DEFAULT_COST).unwrap_or_default()
                            });
                            let _ = matches(d);
                            false
                        }
                    }
                })
                .await
                .ok()?;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= CACHE_SIZE {
                    // Any entry: the map's order is random, so no client can pick which.
                    if let Some(k) = cache.keys().next().cloned() {
                        cache.remove(&k);
                    }
                }
                cache.insert(key, ok);
                ok
            }
        };
        ok.then(|| user.to_string())
    }
}

/// The middleware: 401 without valid credentials; the user is set on the response for the
/// access log.
pub async fn layer(State(auth): State<BasicAuth>, req: Request, next: Next) -> Response<Body> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user = match given {
        Some(v) => auth.check(&v).await,
        None => None,
    };
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

    #[tokio::test]
    async fn users_cache_and_refusals() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new([("alice".to_string(), hash)].into()).unwrap();
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(auth.check(&b64("alice:s3cret")).await, Some("alice".into()));
        // Cached now, and still right.
        assert_eq!(auth.check(&b64("alice:s3cret")).await, Some("alice".into()));
        assert_eq!(auth.check(&b64("alice:wrong")).await, None);
        assert_eq!(auth.check(&b64("alice:wrong")).await, None);
        assert_eq!(auth.check(&b64("bob:s3cret")).await, None);
        assert_eq!(auth.check("Bearer x").await, None);
        assert!(BasicAuth::new(BTreeMap::new()).is_none());
        // The cache stays bounded whatever is tried.
        for i in 0..CACHE_SIZE + 5 {
            assert_eq!(auth.check(&b64(&format!("alice:guess{i}"))).await, None);
        }
        assert_eq!(auth.check(&b64("alice:s3cret")).await, Some("alice".into()));
        assert!(auth.cache.lock().unwrap().len() <= CACHE_SIZE);
    }
}
