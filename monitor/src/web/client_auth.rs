//! The client certificate check: webpki's chain verification when the policy verifies, none
//! when it only asks for a certificate (RequestClientCert, RequireAnyClientCert), and the
//! toolkit's `client_allowed_sans` on top.

use std::sync::Arc;

use rustls::{
    client::danger::HandshakeSignatureValid,
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
    DigitallySignedStruct, DistinguishedName, Error, SignatureScheme,
};

#[derive(Debug)]
pub struct ClientVerifier {
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    allowed_sans: Option<Vec<String>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub fn new(
        webpki: Option<Arc<dyn ClientCertVerifier>>,
        mandatory: bool,
        hints: Vec<DistinguishedName>,
        allowed_sans: Option<Vec<String>>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            webpki,
            mandatory,
            hints,
            allowed_sans,
            algorithms,
        }
    }
}

/// Whether the certificate names one of `allowed` among its DNS, URI or IP address SANs
/// (compared as written, as the toolkit compares them; e-mail SANs are not read).
fn has_allowed_san(cert: &CertificateDer<'_>, allowed: &[String]) -> Result<bool, Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| Error::General(format!("client certificate: {e}")))?;
    let found = allowed.iter().any(|want| {
        if let Ok(ip) = want.parse::<std::net::IpAddr>() {
            return ee
                .verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into()))
                .is_ok();
        }
        ee.valid_dns_names().any(|n| n == want) || ee.valid_uri_names().any(|n| n == want)
    });
    Ok(found)
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(v) = &self.webpki {
            v.verify_client_cert(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans {
            if !has_allowed_san(end_entity, allowed)? {
                return Err(Error::General(
                    "the client certificate has none of client_allowed_sans".into(),
                ));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    // The handshake's signature is checked in every mode: it proves the client holds the
    // key of the certificate it sent, trusted or not.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
