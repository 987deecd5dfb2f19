//! An endpoint's `tls_config`, with Prometheus's field names: the trusted CAs, a client
//! certificate, the name the server's certificate must carry (`server_name`, sent as SNI
//! too), `insecure_skip_verify`, and the protocol versions (`min_version`, `max_version`:
//! TLS12 or TLS13, the versions rustls speaks).

use std::{path::Path, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    DigitallySignedStruct, SignatureScheme,
};
use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificates trusted instead of the built-in (Mozilla) roots.
    ca_file: Option<std::path::PathBuf>,
    /// A client certificate (PEM) and its key, for endpoints that ask for one.
    cert_file: Option<std::path::PathBuf>,
    key_file: Option<std::path::PathBuf>,
    /// The name checked in the server's certificate and sent as SNI, instead of the URL's
    /// host (an endpoint reached by address, or through a tunnel).
    server_name: Option<String>,
    /// Accept any certificate: the connection is encrypted but the server unproven.
    #[serde(default)]
    insecure_skip_verify: bool,
    min_version: Option<String>,
    max_version: Option<String>,
}

/// The TLS side of an endpoint's connections.
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl ureq::TlsConnector for Tls {
    fn connect(
        &self,
        dns_name: &str,
        io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let name = self.server_name.as_deref().unwrap_or(dns_name);
        self.config.connect(name, io)
    }
}

fn version(field: &str, v: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match v {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(format!(
            "{field} {v}: not supported (TLS12 or TLS13; older versions are insecure)"
        )),
        _ => Err(format!("{field} {v:?}: TLS12 or TLS13")),
    }
}

/// The TLS client settings of an endpoint, files read relative to `base`; an error starts
/// with the field.
pub fn load(t: &TlsConfig, base: &Path) -> Result<Tls, String> {
    let certs = |field: &str, f: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let p = base.join(f);
        std::fs::metadata(&p).map_err(|e| format!("{field}: cannot read {}: {e}", p.display()))?;
        let certs = CertificateDer::pem_file_iter(&p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{field}: {}: {e}", p.display()))?;
        if certs.is_empty() {
            return Err(format!("{field}: {} holds no PEM certificate", p.display()));
        }
        Ok(certs)
    };
    if let Some(n) = &t.server_name {
        ServerName::try_from(n.as_str())
            .map_err(|e| format!("server_name {n:?}: not a host name or address ({e})"))?;
    }
    // Oldest first, as rustls lists them.
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    let min = t
        .min_version
        .as_deref()
        .map(|v| version("min_version", v))
        .transpose()?;
    let max = t
        .max_version
        .as_deref()
        .map(|v| version("max_version", v))
        .transpose()?;
    let from = min.map_or(0, |m| all.iter().position(|v| v == &m).unwrap_or(0));
    let to = max.map_or(all.len() - 1, |m| {
        all.iter().position(|v| v == &m).unwrap_or(all.len() - 1)
    });
    if from > to {
        return Err("min_version: above max_version".to_string());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&all[from..=to])
        .map_err(|e| format!("min_version: {e}"))?;
    let builder = if t.insecure_skip_verify {
        if t.ca_file.is_some() {
            return Err("insecure_skip_verify: give it or ca_file, not both".to_string());
        }
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &t.ca_file {
            Some(f) => {
                for c in certs("ca_file", f)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("ca_file: {}: {e}", base.join(f).display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&t.cert_file, &t.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err("key_file: give it with cert_file".to_string()),
        (None, Some(_)) => return Err("cert_file: give it with key_file".to_string()),
        (Some(c), Some(k)) => {
            let chain = certs("cert_file", c)?;
            let p = base.join(k);
            std::fs::metadata(&p)
                .map_err(|e| format!("key_file: cannot read {}: {e}", p.display()))?;
            let key = PrivateKeyDer::from_pem_file(&p)
                .map_err(|e| format!("key_file: {}: no PEM private key ({e})", p.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("key_file: {}: {e}", p.display()))?
        }
    };
    Ok(Tls {
        config: Arc::new(config),
        server_name: t.server_name.clone(),
    })
}

/// `insecure_skip_verify`: any certificate, for any name, is taken; the handshake's
/// signatures are still checked, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}
