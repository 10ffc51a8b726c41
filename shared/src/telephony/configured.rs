//! `ConfiguredGateway`: Twilio when the secret holds its credentials, the logging gateway
//! otherwise. Chosen at each call from the current secret, so that a container that started
//! while Secrets Manager was unreachable, or a secret that gains credentials, needs no restart.

use std::sync::Arc;

use super::{
    BoxFuture, FlashCall, LoggingGateway, PlacedCall, TelephonyError, TelephonyGateway,
    TwilioGateway,
};
use crate::config::Config;
use crate::secrets::SecretsCache;

pub struct ConfiguredGateway {
    twilio: TwilioGateway,
    /// Posts the logging gateway's simulated status callbacks; built on first use (never in
    /// production, where calls go to Twilio).
    local_http: std::sync::OnceLock<reqwest::Client>,
    secrets: Arc<SecretsCache>,
    /// Inside Lambda, the logging gateway is refused unless `ALLOW_LOGGING_GATEWAY` is set.
    refuse_logging: bool,
}

impl ConfiguredGateway {
    /// Fails when the secret is already known to lack Twilio credentials where the logging
    /// gateway is refused: the cold start names the problem instead of every request.
    pub fn new(config: &Config, secrets: Arc<SecretsCache>) -> anyhow::Result<Self> {
        let refuse_logging = config.in_lambda && !config.allow_logging_gateway;
        if let Some(loaded) = secrets.loaded()
            && loaded.twilio.is_none()
        {
            if refuse_logging {
                anyhow::bail!(
                    "secret {} has no twilio_account_sid/twilio_auth_token, and the logging \
                     gateway (which dials nothing) is refused inside Lambda unless \
                     ALLOW_LOGGING_GATEWAY=true",
                    config.secret_id
                );
            }
            tracing::warn!("no Twilio credentials: flash calls are logged, not dialed");
        }
        Ok(ConfiguredGateway {
            twilio: TwilioGateway::new(config, secrets.clone())?,
            local_http: std::sync::OnceLock::new(),
            secrets,
            refuse_logging,
        })
    }
}

impl TelephonyGateway for ConfiguredGateway {
    fn place_flash_call<'a>(
        &'a self,
        call: &'a FlashCall,
    ) -> BoxFuture<'a, Result<PlacedCall, TelephonyError>> {
        Box::pin(async move {
            let secrets = self
                .secrets
                .get()
                .await
                .map_err(|e| TelephonyError::Unavailable(e.to_string()))?;
            if secrets.twilio.is_some() {
                self.twilio.place_flash_call(call).await
            } else if self.refuse_logging {
                Err(TelephonyError::Unavailable(
                    "no Twilio credentials in the secret".into(),
                ))
            } else {
                let placed = LoggingGateway.place_flash_call(call).await?;
                // Twilio's part is played towards a local API only: a callback URL elsewhere
                // is a real deployment's, which the logging gateway does not call.
                let local_callback = call
                    .status_callback
                    .as_deref()
                    .is_some_and(super::logging::is_loopback_url);
                if let (true, Some(token)) = (local_callback, secrets.twilio_webhook_token.as_ref())
                {
                    let http = self.local_http.get_or_init(|| {
                        reqwest::Client::builder()
                            .timeout(std::time::Duration::from_secs(5))
                            .build()
                            .unwrap_or_default()
                    });
                    super::logging::simulate_call_callbacks(
                        http.clone(),
                        secrecy::ExposeSecret::expose_secret(token).to_owned(),
                        call,
                        placed.sid.clone(),
                    );
                }
                Ok(placed)
            }
        })
    }
}
