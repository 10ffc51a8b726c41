//! What `stackctl bootstrap` may write where: the well-known local values (the service key
//! `local-service-key`, the app signature `local-dev-signature`) only into a stack on this
//! machine. Pointed at AWS, it wants values of the operator's own.

/// The app signature the local secret allows when `APP_SIGNATURES` is not set.
pub const DEFAULT_APP_SIGNATURE: &str = "local-dev-signature";

/// The service API key the local secret allows when `SERVICE_API_KEYS` is not set.
pub const DEFAULT_SERVICE_KEY: &str = "local-service-key";

/// The auth token a local secret gets when `TWILIO_AUTH_TOKEN` is not set: the logging gateway
/// signs its simulated callbacks with it, and the webhook checks them with it.
pub const LOCAL_TWILIO_AUTH_TOKEN: &str = "local-twilio-auth-token";

/// Whether both endpoints are on this machine.
pub fn is_local(dynamodb_endpoint: Option<&str>, secrets_endpoint: Option<&str>) -> bool {
    dynamodb_endpoint.is_some_and(is_loopback) && secrets_endpoint.is_some_and(is_loopback)
}

/// Whether an endpoint URL names this machine (`127.0.0.0/8`, `localhost`, `[::1]`).
pub fn is_loopback(url: &str) -> bool {
    shared::telephony::is_loopback_url(url)
}

/// The app signatures and service keys a new secret gets: the given ones, or the local
/// defaults when both endpoints are on loopback. Anywhere else (AWS, another host) the
/// defaults are refused: everyone knows them.
pub fn secret_values(
    dynamodb_endpoint: Option<&str>,
    secrets_endpoint: Option<&str>,
    app_signatures: Option<&str>,
    service_keys: Option<&str>,
) -> Result<(String, String), String> {
    let local =
        dynamodb_endpoint.is_some_and(is_loopback) && secrets_endpoint.is_some_and(is_loopback);
    let signatures = app_signatures.unwrap_or(DEFAULT_APP_SIGNATURE);
    let keys = service_keys.unwrap_or(DEFAULT_SERVICE_KEY);
    if !local {
        let well_known = signatures
            .split(',')
            .any(|s| s.trim() == DEFAULT_APP_SIGNATURE)
            || keys.split(',').any(|k| k.trim() == DEFAULT_SERVICE_KEY);
        if well_known {
            return Err(format!(
                "refusing to create a secret with the local defaults ({DEFAULT_APP_SIGNATURE}, \
                 {DEFAULT_SERVICE_KEY}) outside this machine: set APP_SIGNATURES and \
                 SERVICE_API_KEYS to values of your own (AWS_ENDPOINT_URL_DYNAMODB and \
                 AWS_ENDPOINT_URL_SECRETS_MANAGER are not both on loopback)"
            ));
        }
    }
    Ok((signatures.to_owned(), keys.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_recognised_in_every_spelling_and_nothing_else_is() {
        for url in [
            "http://127.0.0.1:8000",
            "http://127.1.2.3",
            "http://localhost:4584/",
            "http://[::1]:8000",
            "https://user@LOCALHOST",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://10.0.0.5:8000",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn the_local_defaults_are_refused_unless_both_endpoints_are_local() {
        let local = Some("http://127.0.0.1:8000");
        assert!(secret_values(local, local, None, None).is_ok());
        assert!(secret_values(None, None, None, None).is_err());
        assert!(secret_values(local, None, None, None).is_err());
        assert!(secret_values(None, None, Some("FA+9qCX9VSu"), None).is_err());
        assert!(secret_values(None, None, Some("FA+9qCX9VSu"), Some("local-service-key")).is_err());
        assert_eq!(
            secret_values(None, None, Some("FA+9qCX9VSu"), Some("k-123")).unwrap(),
            ("FA+9qCX9VSu".to_owned(), "k-123".to_owned())
        );
    }
}
