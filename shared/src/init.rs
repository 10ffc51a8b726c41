//! `Init`: what a container builds once before its first request (configuration, SDK
//! configuration, DynamoDB client, clock) and shares between endpoints: the secret and the
//! telephony gateway.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::OnceCell;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::secrets::SecretsCache;
use crate::store::Store;
use crate::telephony::{LoggingGateway, TelephonyGateway, TwilioGateway};

pub struct Init {
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    sdk: aws_config::SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: OnceCell<Arc<SecretsCache>>,
    telephony: OnceCell<Arc<dyn TelephonyGateway>>,
}

impl Init {
    pub async fn from_env() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        Ok(Self::new(config, crate::aws::sdk_config().await))
    }

    pub fn new(config: Config, sdk: aws_config::SdkConfig) -> Self {
        Init {
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sdk,
            secrets: OnceCell::new(),
            telephony: OnceCell::new(),
        }
    }

    /// Replaces the clock (tests, benchmarks).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the telephony gateway (tests, benchmarks).
    pub fn with_telephony(self, gateway: Arc<dyn TelephonyGateway>) -> Self {
        let _ = self.telephony.set(gateway);
        self
    }

    /// Adds an interceptor to every DynamoDB call of every endpoint built from this `Init`
    /// (the benchmark counts calls with one).
    pub fn with_dynamodb_interceptor(
        mut self,
        interceptor: impl aws_sdk_dynamodb::config::Intercept + 'static,
    ) -> Self {
        let config = aws_sdk_dynamodb::Config::from(&self.sdk)
            .to_builder()
            .interceptor(interceptor)
            .build();
        self.dynamodb = aws_sdk_dynamodb::Client::from_conf(config);
        self
    }

    /// Replaces the secret source (tests).
    pub fn with_secrets(self, secrets: Arc<SecretsCache>) -> Self {
        let _ = self.secrets.set(secrets);
        self
    }

    pub fn store(&self) -> Store {
        Store::new(self.dynamodb.clone(), &self.config.table_name)
    }

    /// The secret, read on first use and shared by every endpoint of the process. A missing or
    /// malformed secret is an init error that names the problem, never a value.
    pub async fn secrets(&self) -> anyhow::Result<Arc<SecretsCache>> {
        self.secrets
            .get_or_try_init(|| async {
                let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
                let cache = SecretsCache::load(
                    client,
                    &self.config.secret_id,
                    self.config.secret_refresh_interval,
                )
                .await?;
                anyhow::Ok(Arc::new(cache))
            })
            .await
            .cloned()
    }

    /// Twilio when the secret holds its credentials; otherwise the logging gateway, which is
    /// refused inside Lambda unless `ALLOW_LOGGING_GATEWAY` is set: a production function that
    /// silently dials nobody would be an outage nobody sees.
    pub async fn telephony(&self) -> anyhow::Result<Arc<dyn TelephonyGateway>> {
        self.telephony
            .get_or_try_init(|| async {
                let secrets = self.secrets().await?;
                let gateway: Arc<dyn TelephonyGateway> = if secrets.get().await.twilio.is_some() {
                    Arc::new(TwilioGateway::new(&self.config, secrets).context("Twilio client")?)
                } else if self.config.in_lambda && !self.config.allow_logging_gateway {
                    anyhow::bail!(
                        "secret {} has no twilio_account_sid/twilio_auth_token, and the logging \
                         gateway (which dials nothing) is refused inside Lambda unless \
                         ALLOW_LOGGING_GATEWAY=true",
                        self.config.secret_id
                    );
                } else {
                    tracing::warn!("no Twilio credentials: flash calls are logged, not dialed");
                    Arc::new(LoggingGateway)
                };
                anyhow::Ok(gateway)
            })
            .await
            .cloned()
    }
}
