//! The test server's TLS: a self-signed certificate for `localhost` made with rcgen, served
//! with rustls on ring.

use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `localhost` and its key, in memory.
pub(crate) struct TestCert {
    /// The certificate in PEM, for the client's private root.
    pub(crate) pem: String,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TestCert {
    /// A fresh certificate (and key) for `localhost`.
    pub(crate) fn localhost() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generate a certificate");
        Self {
            pem: certified.cert.pem(),
            cert: certified.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()),
        }
    }

    /// A TLS acceptor that presents this certificate (TLS 1.2 and 1.3, ring's ciphers).
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .expect("a usable certificate and key");
        TlsAcceptor::from(Arc::new(config))
    }
}
