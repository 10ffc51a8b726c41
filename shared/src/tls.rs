//! TLS for the clients the functions build: the process-wide rustls crypto provider (ring), and
//! the Twilio client's trust, compiled in.

use std::sync::Arc;

/// Installs ring as rustls' default provider; reqwest is built without one so that aws-lc is
/// never compiled. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client configuration trusting Mozilla's root set (`webpki-roots`), which is static
/// data: no certificate file is read or parsed at a cold start (the platform store took several
/// milliseconds of every one). Twilio's certificates chain to one of these roots, whichever
/// public CA it uses.
pub fn public_web_client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_public_web_configuration_builds_with_mozillas_roots() {
        let config = super::public_web_client_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
    }
}
