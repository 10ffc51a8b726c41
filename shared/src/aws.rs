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

/// The DynamoDB client of every endpoint: the SDK's configuration, and
/// [`RetryConflicts`].
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk).build())
}

/// The DynamoDB client's configuration, to build on (tests change its endpoint).
pub fn dynamodb_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::from(sdk)
        .to_builder()
        .retry_classifier(RetryConflicts)
}

/// A plain write (`PutItem`, `UpdateItem`, `DeleteItem`) that met a transaction on its item
/// fails with `TransactionConflictException`, which the SDK does not retry: it is a race lost
/// for now, retried like throttling (the SDK's standard strategy waits with full jitter), and
/// an outage (503) after the last attempt (`store::StoreError::sdk`).
#[derive(Debug)]
pub struct RetryConflicts;

const TRANSACTION_CONFLICT: &str = "TransactionConflictException";

impl aws_sdk_dynamodb::config::retry::ClassifyRetry for RetryConflicts {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_dynamodb::config::interceptors::InterceptorContext,
    ) -> aws_sdk_dynamodb::config::retry::RetryAction {
        use aws_sdk_dynamodb::config::retry::RetryAction;
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        use aws_sdk_dynamodb::operation::{
            delete_item::DeleteItemError, put_item::PutItemError, update_item::UpdateItemError,
        };
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = error
            .downcast_ref::<UpdateItemError>()
            .and_then(|e| e.code())
            .or_else(|| error.downcast_ref::<PutItemError>().and_then(|e| e.code()))
            .or_else(|| {
                error
                    .downcast_ref::<DeleteItemError>()
                    .and_then(|e| e.code())
            });
        if code == Some(TRANSACTION_CONFLICT) {
            RetryAction::transient_error()
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "RetryConflicts"
    }
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
