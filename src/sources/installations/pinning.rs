//! A controller in a home rarely has a publicly signed certificate. The registry can pin its
//! certificate instead (`installation_cert_sha256`: the SHA-256 of the DER certificate, as
//! `openssl x509 -outform der | sha256sum` prints it): the TLS connection is then accepted when,
//! and only when, the server's certificate is exactly that one (host name and chain are not
//! consulted; the handshake's signatures still are).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if got.as_ref() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the certificate is not the one pinned in the registry (installation_cert_sha256)"
                    .into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS configuration that accepts exactly the certificate with this fingerprint.
pub fn pinned_tls(sha256: [u8; 32]) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
            .with_no_client_auth(),
    )
}

#[cfg(test)]
mod tests {
    use crate::registry::parse_fingerprint;

    #[test]
    fn fingerprints_as_tools_print_them() {
        let plain = "052ff59338b82c9b3e3c764ca5d3fbe0d6599eb86423a4b0375ac4e1a4ef017f";
        let colons = "05:2F:F5:93:38:B8:2C:9B:3E:3C:76:4C:A5:D3:FB:E0:D6:59:9E:B8:64:23:A4:B0:37:5A:C4:E1:A4:EF:01:7F";
        assert_eq!(parse_fingerprint(plain), parse_fingerprint(colons));
        assert_eq!(parse_fingerprint(plain).unwrap()[0], 0x05);
        assert_eq!(parse_fingerprint(&plain[1..]), None);
        assert_eq!(parse_fingerprint(&plain.replace('0', "g")), None);
    }
}
