//! The AWS SDK configuration: one HTTPS client (rustls on ring), timeouts and bounded retries.

use std::time::Duration;

use aws_config::{BehaviorVersion, retry::RetryConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

use crate::config::Config;

/// Loads the SDK configuration once per container. Endpoints come from the SDK's own
/// variables (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`), which is how
/// the local stack is reached without a code path of its own.
pub async fn sdk_config(config: &Config) -> aws_config::SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(aws_trust())
        .build_https();
    // API Gateway gives up after 30 s; an unreachable or frozen endpoint must be a 503 in a
    // few seconds, not a hang through the SDK's default retries.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.aws_connect_timeout)
        .operation_attempt_timeout(config.aws_attempt_timeout)
        .operation_timeout(config.aws_operation_timeout)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(config.aws_max_attempts)
        .with_initial_backoff(Duration::from_millis(25));
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// The roots AWS service endpoints chain to (Amazon Trust Services), compiled in.
const AWS_ROOTS: &str = include_str!("aws_roots.pem");

/// Trust for the SDK's TLS: the Amazon Trust Services roots only. The platform store would be
/// read and parsed file by file at every cold start (measured: several milliseconds, the
/// largest share of a function's init), for endpoints that only ever present these roots.
fn aws_trust() -> TlsContext {
    let store = TrustStore::empty().with_pem_certificate(AWS_ROOTS.as_bytes());
    TlsContext::builder()
        .with_trust_store(store)
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_trust_services_certificates() {
        let pems = super::AWS_ROOTS
            .matches("-----BEGIN CERTIFICATE-----")
            .count();
        assert_eq!(pems, 5);
        // Parsing them is what the TLS provider does with the trust store.
        let _ = super::aws_trust();
    }
}
