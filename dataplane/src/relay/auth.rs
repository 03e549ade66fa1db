//! Node-to-node authentication for relays: QUIC's TLS with a throw-away self-signed
//! certificate, and both peers proving the cluster secret over the connection's TLS exporter.
//!
//! Why not the certificate: nodes start with only a shared secret, and a CA per cluster is an
//! operator chore. The client accepts any certificate (the TLS handshake still proves the
//! server holds the certificate's key), then each side sends
//! `HMAC-SHA256(secret, exporter)` where `exporter` is 32 bytes of the TLS 1.3 exporter
//! (RFC 8446 §7.5, label [`EXPORTER_LABEL`], the sender's role as context). The exporter is
//! unique to this TLS session: a man in the middle runs two sessions with different
//! exporters, so it cannot pass one side's proof to the other, and cannot compute its own
//! without the secret. Proofs are compared in constant time (`ring::hmac::verify`).

use std::sync::Arc;

use camstream_protocol::relay::AUTH_LEN;
use ring::hmac;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// TLS exporter label of the relay proofs.
pub(crate) const EXPORTER_LABEL: &[u8] = b"EXPORTER-camstream-relay-v1";
/// ALPN of the relay protocol.
pub(crate) const ALPN: &[u8] = b"camstream-relay/1";
/// The server name the client asks for (not checked: see the module docs).
pub(crate) const SERVER_NAME: &str = "camstream-relay";

/// Which side a proof comes from (the exporter context), so a proof cannot be reflected.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// The node that pulls (opens the stream).
    Edge,
    /// The node that serves the camera.
    Origin,
}

impl Role {
    fn context(self) -> &'static [u8] {
        match self {
            Role::Edge => b"edge",
            Role::Origin => b"origin",
        }
    }
}

/// The cluster secret as an HMAC key.
#[derive(Clone)]
pub(crate) struct Secret(hmac::Key);

impl Secret {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The proof `role` sends on `conn`. `None` when the connection has no exporter (closed).
    pub(crate) fn proof(&self, conn: &quinn::Connection, role: Role) -> Option<[u8; AUTH_LEN]> {
        let ekm = exporter(conn, role)?;
        let tag = hmac::sign(&self.0, &ekm);
        let mut out = [0; AUTH_LEN];
        out.copy_from_slice(tag.as_ref());
        Some(out)
    }

    /// Whether `got` is `role`'s proof on `conn` (constant-time comparison).
    pub(crate) fn verify(&self, conn: &quinn::Connection, role: Role, got: &[u8]) -> bool {
        exporter(conn, role).is_some_and(|ekm| hmac::verify(&self.0, &ekm, got).is_ok())
    }
}

fn exporter(conn: &quinn::Connection, role: Role) -> Option<[u8; 32]> {
    let mut ekm = [0; 32];
    conn.export_keying_material(&mut ekm, EXPORTER_LABEL, role.context())
        .ok()?;
    Some(ekm)
}

/// Why the relay's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayTlsError {
    /// The certificate could not be generated.
    #[error("cannot generate the relay certificate: {0}")]
    Generate(String),
    /// rustls refused the configuration.
    #[error("relay TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the TLS configuration (no TLS 1.3 suite).
    #[error("relay QUIC crypto: {0}")]
    Quic(String),
}

/// Server and client QUIC crypto with a fresh self-signed certificate.
pub(crate) fn configs() -> Result<(quinn::ServerConfig, quinn::ClientConfig), RelayTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
        .map_err(|e| RelayTlsError::Generate(e.to_string()))?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(
            provider.signature_verification_algorithms,
        )))
        .with_no_client_auth();
    client.alpn_protocols = vec![ALPN.to_vec()];
    let server = quinn::crypto::rustls::QuicServerConfig::try_from(server)
        .map_err(|e| RelayTlsError::Quic(e.to_string()))?;
    let client = quinn::crypto::rustls::QuicClientConfig::try_from(client)
        .map_err(|e| RelayTlsError::Quic(e.to_string()))?;
    Ok((
        quinn::ServerConfig::with_crypto(Arc::new(server)),
        quinn::ClientConfig::new(Arc::new(client)),
    ))
}

/// Accepts any server certificate but still checks the handshake signature with its key:
/// peers are authenticated by the secret proofs, not by the certificate.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
