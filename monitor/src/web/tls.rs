//! `tls_server_config` to rustls: versions, cipher suites and curves by the names Go gives
//! them, the client certificate policy, and the certificate files read again when they
//! change, so a rotated certificate is served from the next handshake on.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use rustls::{
    crypto::{ring, CryptoProvider, SupportedKxGroup},
    server::WebPkiClientVerifier,
    ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};

use super::{client_auth::ClientVerifier, config::TlsFile, metrics::WebMetrics};

/// Go's names of the TLS 1.2 suites rustls implements.
const TLS12_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.3 suites: Go accepts their names but does not let them be chosen (all three are
/// always on); so here.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Suites the toolkit accepts that rustls does not implement (CBC modes, RSA key exchange).
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
];

/// The toolkit's client certificate policies (Go's `tls.ClientAuthType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            // The toolkit keeps the old name working.
            "RequireAnyClientCert" | "RequireClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert
        )
    }
}

/// PEM given inline in the file, or a file read at each change.
#[derive(Clone, Debug)]
enum Pem {
    Inline(String),
    File(PathBuf),
}

impl Pem {
    fn new(inline: Option<&String>, file: Option<&PathBuf>, base: &Path) -> Option<Self> {
        match (file, inline) {
            // The toolkit prefers the file when both are given.
            (Some(f), _) => Some(Self::File(base.join(f))),
            (None, Some(t)) => Some(Self::Inline(t.clone())),
            (None, None) => None,
        }
    }

    fn read(&self, file_field: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Inline(t) => Ok(t.clone().into_bytes()),
            Self::File(p) => std::fs::read(p)
                .map_err(|e| format!("{file_field}: cannot read {}: {e}", p.display())),
        }
    }

    /// What changes when the file is replaced or rewritten.
    fn stamp(&self) -> Option<(SystemTime, u64, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        match self {
            Self::Inline(_) => None,
            Self::File(p) => std::fs::metadata(p).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            }),
        }
    }
}

/// `tls_server_config`, checked: what a handshake's config is built from.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    cert: Pem,
    key: Pem,
    client_ca: Option<Pem>,
    client_auth: ClientAuth,
    versions: Vec<&'static SupportedProtocolVersion>,
    /// `None`: rustls's own (all it has).
    tls12_suites: Option<Vec<SupportedCipherSuite>>,
    kx_groups: Option<Vec<&'static dyn SupportedKxGroup>>,
    ignore_client_order: bool,
    allowed_sans: Option<Vec<String>>,
    alpn: Vec<Vec<u8>>,
}

fn version(field: &str, v: Option<&String>, default: u8) -> Result<u8, String> {
    match v.map(String::as_str) {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(s @ ("TLS10" | "TLS11")) => Err(format!(
            "{field}: {s} is not supported: rustls speaks TLS12 and TLS13 only"
        )),
        Some(s) => Err(format!(
            "{field}: unknown TLS version {s:?} (TLS10, TLS11, TLS12 or TLS13)"
        )),
    }
}

impl TlsSettings {
    /// Checks the fields (not the files); an error starts with the field's name.
    pub fn new(f: &TlsFile, base: &Path) -> Result<Self, String> {
        let cert = Pem::new(f.cert.as_ref(), f.cert_file.as_ref(), base)
            .ok_or("cert_file: missing (one of cert or cert_file is needed)")?;
        let key = Pem::new(f.key.as_ref(), f.key_file.as_ref(), base)
            .ok_or("key_file: missing (one of key or key_file is needed)")?;
        let client_ca = Pem::new(f.client_ca.as_ref(), f.client_ca_file.as_ref(), base);
        let auth_name = f.client_auth_type.as_deref().unwrap_or("");
        let client_auth = ClientAuth::parse(auth_name).ok_or_else(|| {
            format!(
                "client_auth_type: unknown {auth_name:?} (NoClientCert, RequestClientCert, \
                 RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            )
        })?;
        if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
            return Err(
                "client_auth_type: a client CA is configured but client_auth_type \
                        asks for no client certificate"
                    .into(),
            );
        }
        if client_auth.verifies() && client_ca.is_none() {
            // Go would verify against the system's roots; a public CA vouching for
            // scrapers is not what anyone means, so it is refused.
            return Err(format!(
                "client_ca_file: {auth_name} needs the CA that signs client certificates"
            ));
        }
        let min = version("min_version", f.min_version.as_ref(), 12)?;
        let max = version("max_version", f.max_version.as_ref(), 13)?;
        if min > max {
            return Err(format!(
                "min_version: TLS{min} is above max_version TLS{max}"
            ));
        }
        let versions = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
        let tls12_suites = if f.cipher_suites.is_empty() {
            None
        } else {
            let mut out = Vec::new();
            for (i, name) in f.cipher_suites.iter().enumerate() {
                if let Some((_, s)) = TLS12_SUITES.iter().find(|(n, _)| n == name) {
                    out.push(*s);
                } else if GO_ONLY_SUITES.contains(&name.as_str()) {
                    return Err(format!(
                        "cipher_suites[{i}]: {name} is not implemented by rustls (TLS 1.2 \
                         suites here: {})",
                        TLS12_SUITES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                } else if !TLS13_NAMES.contains(&name.as_str()) {
                    return Err(format!("cipher_suites[{i}]: unknown cipher suite {name:?}"));
                }
            }
            Some(out)
        };
        let kx_groups = if f.curve_preferences.is_empty() {
            None
        } else {
            let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
            for (i, name) in f.curve_preferences.iter().enumerate() {
                out.push(match name.as_str() {
                    "X25519" => ring::kx_group::X25519,
                    "CurveP256" => ring::kx_group::SECP256R1,
                    "CurveP384" => ring::kx_group::SECP384R1,
                    "CurveP521" => {
                        return Err(format!(
                            "curve_preferences[{i}]: CurveP521 is not implemented by rustls \
                             (X25519, CurveP256, CurveP384)"
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "curve_preferences[{i}]: unknown curve {name:?} (X25519, \
                             CurveP256, CurveP384)"
                        ))
                    }
                });
            }
            Some(out)
        };
        Ok(Self {
            cert,
            key,
            client_ca,
            client_auth,
            versions,
            tls12_suites,
            kx_groups,
            ignore_client_order: f.prefer_server_cipher_suites.unwrap_or(true),
            allowed_sans: f.client_allowed_sans.clone(),
            alpn: vec![b"http/1.1".to_vec()],
        })
    }

    /// Offers HTTP/2 (ALPN `h2`) before HTTP/1.1.
    pub fn offer_http2(&mut self) {
        self.alpn.insert(0, b"h2".to_vec());
    }

    pub fn describe(&self) -> String {
        format!(
            "{:?}, {}",
            self.client_auth,
            self.versions
                .iter()
                .map(|v| format!("{:?}", v.version))
                .collect::<Vec<_>>()
                .join("/")
        )
    }

    fn provider(&self) -> CryptoProvider {
        let mut p = ring::default_provider();
        if let Some(tls12) = &self.tls12_suites {
            p.cipher_suites
                .retain(|s| s.version() == &rustls::version::TLS13 || tls12.contains(s));
        }
        if let Some(groups) = &self.kx_groups {
            p.kx_groups.clone_from(groups);
        }
        p
    }

    /// Reads the files and builds the config; an error starts with the field at fault.
    pub fn build(&self) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(self.provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| format!("cipher_suites: {e}"))?;
        let verifier = self.verifier(&provider)?;
        let chain = CertificateDer::pem_slice_iter(&self.cert.read("cert_file")?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", self.cert_field()))?;
        if chain.is_empty() {
            return Err(format!("{}: no PEM certificate in it", self.cert_field()));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key.read("key_file")?)
            .map_err(|e| format!("{}: no PEM private key in it ({e})", self.key_field()))?;
        let mut config = builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| format!("{}: does not fit cert_file: {e}", self.key_field()))?;
        config.ignore_client_order = self.ignore_client_order;
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(config))
    }

    fn cert_field(&self) -> String {
        field(&self.cert, "cert_file", "cert")
    }

    fn key_field(&self) -> String {
        field(&self.key, "key_file", "key")
    }

    fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
        let roots = match &self.client_ca {
            None => None,
            Some(ca) => {
                let name = field(ca, "client_ca_file", "client_ca");
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&ca.read("client_ca_file")?) {
                    let c = c.map_err(|e| format!("{name}: {e}"))?;
                    roots.add(c).map_err(|e| format!("{name}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("{name}: no PEM certificate in it"));
                }
                Some(Arc::new(roots))
            }
        };
        if self.client_auth == ClientAuth::NoClientCert {
            return Ok(WebPkiClientVerifier::no_client_auth());
        }
        let webpki = match (&roots, self.client_auth.verifies()) {
            (Some(roots), true) => {
                let b =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
                let b = if self.client_auth == ClientAuth::VerifyClientCertIfGiven {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                Some(b.build().map_err(|e| format!("client_ca_file: {e}"))?)
            }
            _ => None,
        };
        Ok(Arc::new(ClientVerifier::new(
            webpki,
            self.client_auth == ClientAuth::RequireAnyClientCert
                || self.client_auth == ClientAuth::RequireAndVerifyClientCert,
            roots.map(|r| r.subjects()).unwrap_or_default(),
            self.allowed_sans.clone(),
            provider.signature_verification_algorithms,
        )))
    }

    fn stamps(&self) -> Vec<Option<(SystemTime, u64, u64)>> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(Pem::stamp)
            .collect()
    }
}

fn field(p: &Pem, file: &str, inline: &str) -> String {
    match p {
        Pem::File(path) => format!("{file}: {}", path.display()),
        Pem::Inline(_) => inline.to_string(),
    }
}

/// The config handshakes use, rebuilt when a certificate, key or CA file changes.
pub struct Reloading {
    settings: TlsSettings,
    metrics: Arc<WebMetrics>,
    state: Mutex<State>,
}

struct State {
    stamps: Vec<Option<(SystemTime, u64, u64)>>,
    config: Arc<ServerConfig>,
    /// The stamps of files that failed to load: logged once, tried again when they change.
    failed: Option<Vec<Option<(SystemTime, u64, u64)>>>,
}

impl Reloading {
    pub fn new(settings: TlsSettings, metrics: Arc<WebMetrics>) -> Result<Self, String> {
        let stamps = settings.stamps();
        let config = settings.build()?;
        Ok(Self {
            settings,
            metrics,
            state: Mutex::new(State {
                stamps,
                config,
                failed: None,
            }),
        })
    }

    /// The config for a new connection: three `stat`s, and a rebuild when they changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        let stamps = self.settings.stamps();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if stamps != s.stamps && s.failed.as_ref() != Some(&stamps) {
            match self.settings.build() {
                Ok(config) => {
                    tracing::info!("TLS certificate files changed: reloaded");
                    self.metrics.reloaded(true);
                    s.config = config;
                    s.stamps = stamps;
                    s.failed = None;
                }
                Err(e) => {
                    // A certificate written before its key fails once, then loads when the
                    // key lands; until then the old pair is served.
                    tracing::error!(error = %e, "TLS certificate files changed but do not load; keeping the old ones");
                    self.metrics.reloaded(false);
                    s.failed = Some(stamps);
                }
            }
        }
        s.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> TlsSettings {
        let f: TlsFile =
            serde_norway::from_str(&format!("cert_file: c\nkey_file: k\n{extra}")).unwrap();
        TlsSettings::new(&f, Path::new("/etc")).unwrap()
    }

    #[test]
    fn versions_suites_and_curves_map_to_rustls() {
        let d = settings("");
        assert_eq!(d.versions.len(), 2);
        assert_eq!(d.client_auth, ClientAuth::NoClientCert);
        assert!(d.ignore_client_order);
        assert_eq!(d.provider().cipher_suites.len(), 9);
        assert!(matches!(&d.cert, Pem::File(p) if p == Path::new("/etc/c")));
        let t = settings(
            "min_version: TLS13\ncipher_suites: [TLS_AES_128_GCM_SHA256, \
             TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\ncurve_preferences: [CurveP384, X25519]\n\
             prefer_server_cipher_suites: false\nclient_auth_type: RequireClientCert\n",
        );
        assert_eq!(t.versions, vec![&rustls::version::TLS13]);
        assert_eq!(t.client_auth, ClientAuth::RequireAnyClientCert);
        assert!(!t.ignore_client_order);
        let p = t.provider();
        // The three TLS 1.3 suites stay (Go cannot turn them off either), and the one TLS
        // 1.2 suite listed.
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        let groups: Vec<String> = p
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, ["secp384r1", "X25519"]);
    }
}
