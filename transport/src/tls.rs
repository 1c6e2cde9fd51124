//! TLS for links: rustls with the aws-lc-rs provider, TLS 1.3 only, the
//! hybrid X25519MLKEM768 group only, no 0-RTT and no resumption, on both ends.
//!
//! TLS authenticates an ephemeral Ed25519 transport key carried in an rcgen
//! self-signed certificate; both sides present one (mutual TLS). The
//! certificate is not checked against any authority: it only has to carry an
//! Ed25519 key that signs the handshake. Who the peer *is* is decided
//! afterwards by the identity binding ([`crate::binding`]), which signs the
//! hashes of both certificates together with the TLS exporter value.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// ALPN protocol id of vigil links.
pub const ALPN: &[u8] = b"vigil-link/1";
/// The server name clients put in their ClientHello (certificates are not
/// name-checked; identity comes from the binding).
pub const SERVER_NAME: &str = "vigil-link";

/// Errors while building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not create the Ed25519 transport certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS configuration is not usable for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// Which key exchange groups a configuration offers or accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    /// X25519MLKEM768 only: what every vigil link uses.
    PostQuantum,
    /// X25519 only. Exists so tests can show a classical peer is refused and
    /// the bench can measure a classical baseline; never used by the node.
    ClassicalOnly,
}

/// An ephemeral Ed25519 transport key and its self-signed certificate.
pub struct TransportIdentity {
    certificate: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
}

impl TransportIdentity {
    /// Generates a fresh Ed25519 key and self-signed certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        let certificate = params.self_signed(&key)?.der().clone();
        Ok(Self {
            certificate,
            key_pkcs8: key.serialize_der(),
        })
    }

    /// The DER certificate presented in the TLS handshake.
    pub fn certificate(&self) -> &[u8] {
        self.certificate.as_ref()
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.certificate.clone()]
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

impl std::fmt::Debug for TransportIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportIdentity(ed25519)")
    }
}

/// The aws-lc-rs provider cut down to TLS 1.3 suites and the chosen group.
pub fn provider(kx: KeyExchange) -> Arc<CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    provider.kx_groups = vec![match kx {
        KeyExchange::PostQuantum => aws_lc_rs::kx_group::X25519MLKEM768,
        KeyExchange::ClassicalOnly => aws_lc_rs::kx_group::X25519,
    }];
    provider
        .cipher_suites
        .retain(|suite| suite.version() == &rustls::version::TLS13);
    Arc::new(provider)
}

/// The client side QUIC crypto configuration.
pub fn client_crypto(
    identity: &TransportIdentity,
    kx: KeyExchange,
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
    let provider = provider(kx);
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Ed25519Only(provider)))
        .with_client_auth_cert(identity.chain(), identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(quinn::crypto::rustls::QuicClientConfig::try_from(config)?)
}

/// The server side QUIC crypto configuration: client certificates required.
pub fn server_crypto(
    identity: &TransportIdentity,
    kx: KeyExchange,
) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
    let provider = provider(kx);
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(Ed25519Only(provider)))
        .with_single_cert(identity.chain(), identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    Ok(quinn::crypto::rustls::QuicServerConfig::try_from(config)?)
}

/// Accepts any single self-signed certificate whose key signs the handshake
/// with Ed25519; the binding decides identity afterwards.
#[derive(Debug)]
struct Ed25519Only(Arc<CryptoProvider>);

impl Ed25519Only {
    fn check_chain(
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if end_entity.as_ref().is_empty() || !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ));
        }
        Ok(())
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
}

/// TLS 1.2 is never negotiated (QUIC needs 1.3; the provider has no 1.2).
fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic)
}

impl ServerCertVerifier for Ed25519Only {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for Ed25519Only {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_has_only_the_chosen_group_and_tls13() {
        let pq = provider(KeyExchange::PostQuantum);
        assert_eq!(pq.kx_groups.len(), 1);
        assert_eq!(pq.kx_groups[0].name(), rustls::NamedGroup::X25519MLKEM768);
        assert!(pq
            .cipher_suites
            .iter()
            .all(|s| s.version() == &rustls::version::TLS13));
        let classical = provider(KeyExchange::ClassicalOnly);
        assert_eq!(classical.kx_groups[0].name(), rustls::NamedGroup::X25519);
    }

    #[test]
    fn configs_build_for_quic() {
        let id = TransportIdentity::generate().unwrap();
        client_crypto(&id, KeyExchange::PostQuantum).unwrap();
        server_crypto(&id, KeyExchange::PostQuantum).unwrap();
    }
}
