//! `Init`: what a container builds once before its first request (configuration, SDK
//! configuration, DynamoDB client, clock, the secret's cache) and shares between endpoints,
//! with the telephony gateway built on first use.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::OnceCell;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::guard::AppCheck;
use crate::secrets::{SecretPart, SecretsCache};
use crate::store::Store;
use crate::telephony::{ConfiguredGateway, TelephonyGateway};

pub struct Init {
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    dynamodb: aws_sdk_dynamodb::Client,
    sdk: aws_config::SdkConfig,
    secrets: Arc<SecretsCache>,
    telephony: OnceCell<Arc<dyn TelephonyGateway>>,
    app_check: Arc<AppCheck>,
}

impl Init {
    pub async fn from_env() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        let sdk = crate::aws::sdk_config(&config).await;
        Ok(Self::new(config, sdk))
    }

    pub fn new(config: Config, sdk: aws_config::SdkConfig) -> Self {
        crate::telemetry::install(config.emit_metrics);
        let secrets = Arc::new(SecretsCache::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            &config.secret_ids,
            config.secret_refresh_interval,
        ));
        Init {
            app_check: Arc::new(AppCheck::new(config.attestation.clone())),
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            dynamodb: crate::aws::dynamodb_client(&sdk),
            sdk,
            secrets,
            telephony: OnceCell::new(),
        }
    }

    /// Replaces the clock (tests, benchmarks).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the telephony gateway (tests, benchmarks).
    pub fn with_telephony(mut self, gateway: Arc<dyn TelephonyGateway>) -> Self {
        self.telephony = OnceCell::new_with(Some(gateway));
        self
    }

    /// Adds an interceptor to every DynamoDB call of every endpoint built from this `Init`
    /// (the benchmark counts calls with one; tests inject faults with one).
    pub fn with_dynamodb_interceptor(
        self,
        interceptor: impl aws_sdk_dynamodb::config::Intercept + 'static,
    ) -> Self {
        self.with_dynamodb_config(|c| c.interceptor(interceptor))
    }

    /// Changes the DynamoDB client's configuration for every endpoint built from this `Init`
    /// (tests point it at a dead or frozen endpoint).
    pub fn with_dynamodb_config(
        mut self,
        change: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
    ) -> Self {
        let builder = crate::aws::dynamodb_config(&self.sdk);
        self.dynamodb = aws_sdk_dynamodb::Client::from_conf(change(builder).build());
        self
    }

    /// Replaces the secret source (tests).
    pub fn with_secrets(mut self, secrets: Arc<SecretsCache>) -> Self {
        self.secrets = secrets;
        self
    }

    /// App Check's verifier and its JWKS cache, shared by every endpoint of the process.
    pub fn app_check(&self) -> Arc<AppCheck> {
        self.app_check.clone()
    }

    pub fn store(&self) -> Store {
        Store::new(self.dynamodb.clone(), &self.config.table_name)
    }

    /// The secret's cache, shared by every endpoint of the process. An endpoint that needs the
    /// secret warms it in its `init` ([`SecretsCache::warm`]).
    pub fn secrets(&self) -> Arc<SecretsCache> {
        self.secrets.clone()
    }

    /// The gateway that places calls: Twilio when the secret holds its credentials, otherwise
    /// the logging gateway (refused inside Lambda unless `ALLOW_LOGGING_GATEWAY` is set: a
    /// production function that silently dials nobody would be an outage nobody sees).
    pub async fn telephony(&self) -> anyhow::Result<Arc<dyn TelephonyGateway>> {
        self.telephony
            .get_or_try_init(|| async {
                self.secrets
                    .require(&[SecretPart::Twilio], "the telephony gateway")
                    .await?;
                let gateway = ConfiguredGateway::new(&self.config, self.secrets())
                    .context("the telephony gateway")?;
                anyhow::Ok(Arc::new(gateway) as Arc<dyn TelephonyGateway>)
            })
            .await
            .cloned()
    }
}
