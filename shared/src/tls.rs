//! The process-wide rustls crypto provider: ring, chosen once for reqwest's client.

/// Installs ring as rustls' default provider; reqwest is built without one so that aws-lc is
/// never compiled. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
