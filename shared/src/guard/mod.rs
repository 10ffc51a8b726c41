//! The abuse guard's policy: who is trusted, what a send may draw, which destinations are
//! quarantined, which failures are capped where. Its counters and records are the store's
//! (`store::rate_limits`, `store::reputation`); this module decides what they are asked.
//!
//! The rule is to target the abuser, never the users: untrusted callers (no attestation, no
//! service key, a phone that never verified) may spend only a share of every service-wide
//! budget; destinations whose sends do not verify are quarantined, but phones that verified
//! before pass; caps on guessing are per channel and, for codes, per client network.

pub mod attestation;
mod checks;
pub mod network;
pub mod quarantine;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::TransactWriteItem;
use lambda_http::Request;
use time::OffsetDateTime;

pub use attestation::{APP_CHECK_HEADER, AppCheck};
pub use checks::{
    TEST_NUMBER_MAX_DAYS, check_app_signature, check_destination, require_signatures_configured,
    test_number,
};
pub use network::network_of;
use quarantine::Conversion;

use crate::config::{Config, QuarantineMode};
use crate::http::ApiError;
use crate::init::Init;
use crate::phone::PhoneNumber;
use crate::store::rate_limits::shards_for;
use crate::store::rate_limits::{
    Allowance, ClientCounters, ConcurrentCalls, FailureCap, ProviderRate, Quota, Sends, Taken,
};
use crate::store::reputation::{
    Buckets, Destination, DestinationStanding, Override, Quarantine, Standing, StatShards,
};
use crate::store::{Limits, Reputation, StoreError};

/// Who asks for a send.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// An app on the public internet, from `ip`, with or without a valid App Check token.
    App { ip: Option<&'a str>, attested: bool },
    /// A holder of a service key (`/sms/send`).
    Service,
}

/// What a send asks of our provider account: a call, or a message from a sender (a number, or
/// a Messaging Service's SID).
#[derive(Debug, Clone, Copy)]
pub enum ProviderUse<'a> {
    Call,
    Message { sender: &'a str },
}

/// How long a call may hold a concurrent-call slot beyond its ring timeout: Twilio's set-up
/// before it rings, and the callback of its end.
const CALL_SETUP: Duration = Duration::from_secs(10);

/// A request that will reach the provider.
#[derive(Debug, Clone)]
pub struct SendRequest<'a> {
    pub phone: &'a PhoneNumber,
    pub caller: Caller<'a>,
    /// The cooldown's scope (`flash`, `sms`).
    pub scope: &'static str,
    pub per_phone: &'a [Quota],
    pub cooldown: Duration,
    /// Units drawn from every service-wide budget (an SMS: its segments; 0: nothing is sent,
    /// as for an inbound missed call, and no budget is drawn).
    pub units: u32,
    /// A verification's send (a flash call, a code): judged and counted by the quarantine.
    pub verification: bool,
    pub failure_caps: Vec<FailureCap>,
    /// What it asks of our provider account (`None`: another's, such as Twilio Verify's).
    pub provider: Option<ProviderUse<'a>>,
}

/// What an admitted send took, to give back if it never happens.
#[derive(Debug, Clone)]
pub struct Admitted {
    taken: Taken,
    /// The destinations whose conversion counts took the send, and the shard of each.
    counted: Vec<(Destination, u32)>,
    at: OffsetDateTime,
    /// Whether the request drew on the whole budget.
    pub trusted: bool,
}

pub struct Guard {
    config: Arc<Config>,
    limits: Limits,
    reputation: Reputation,
    app_check: Arc<AppCheck>,
}

impl Guard {
    pub fn new(init: &Init) -> Self {
        let store = init.store();
        Guard {
            config: init.config.clone(),
            limits: store.limits(),
            reputation: store.reputation(),
            app_check: init.app_check(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Loads App Check's keys ahead of the first request (a cold start's other waits overlap).
    pub async fn warm(&self) {
        self.app_check.warm().await;
    }

    /// The request's App Check token: a 401 or 403 under `REQUIRE_ATTESTATION`, else whether
    /// it is attested.
    pub async fn attest(&self, req: &Request, now: OffsetDateTime) -> Result<bool, ApiError> {
        let token = req
            .headers()
            .get(APP_CHECK_HEADER)
            .and_then(|v| v.to_str().ok());
        self.app_check.attest(token, now).await
    }

    fn buckets(&self) -> Buckets {
        Buckets::for_window(self.config.quarantine.window.as_secs() as i64)
    }

    /// A destination's conversion counts are spread like its send budget.
    fn stat_shards(&self) -> StatShards {
        let budgets = &self.config.send_budgets;
        StatShards {
            block: shards_for(budgets.per_prefix_per_hour),
            country: shards_for(budgets.per_country_per_hour),
        }
    }

    /// Admits a send or refuses it: the phone's trust and its destinations' standing are read
    /// (one BatchGetItem), the quarantine is judged, and the allowance is taken with `with` in
    /// one transaction, or nothing is.
    pub async fn admit(
        &self,
        send: &SendRequest<'_>,
        now: OffsetDateTime,
        mut with: Vec<TransactWriteItem>,
    ) -> Result<Admitted, ApiError> {
        let settings = &self.config.quarantine;
        let judged = send.verification && settings.mode != QuarantineMode::Off;
        let trusted_by_caller = matches!(
            send.caller,
            Caller::Service | Caller::App { attested: true, .. }
        );
        let standing = if judged || !trusted_by_caller {
            self.reputation
                .standing(
                    send.phone,
                    judged.then(|| (self.buckets(), self.stat_shards())),
                    now,
                )
                .await?
        } else {
            Standing::default()
        };
        let returning = self.config.trusted_phone_days > 0
            && standing.trusted_until.is_some_and(|until| until > now);
        let trusted = trusted_by_caller || returning;

        let mut counted = Vec::new();
        if judged {
            let block = Destination::block_of(send.phone);
            let country = Destination::country_of(send.phone);
            self.judge(
                send.phone,
                &block,
                &standing.block,
                settings.min_sends,
                returning,
                now,
            )
            .await?;
            self.judge(
                send.phone,
                &country,
                &standing.country,
                settings.country_min_sends,
                returning,
                now,
            )
            .await?;
            for d in [block, country] {
                let shard = self.stat_shards().pick(&d);
                with.push(self.reputation.count_send(&d, now, self.buckets(), shard)?);
                counted.push((d, shard));
            }
        }

        let network = match send.caller {
            Caller::App { ip: Some(ip), .. } => Some((ip, network_of(ip))),
            _ => None,
        };
        let provider = send.provider.map(|using| self.provider_rate(using));
        let allowance = Allowance {
            scope: send.scope,
            phone: send.phone,
            per_phone: send.per_phone,
            client: network.as_ref().map(|(ip, network)| ClientCounters {
                ip,
                network,
                per_ip_per_hour: self.config.max_requests_per_ip_per_hour,
                per_network_per_hour: self.config.max_requests_per_network_per_hour,
            }),
            cooldown: send.cooldown,
            sends: (send.units > 0).then(|| Sends {
                budgets: self.config.send_budgets,
                units: send.units,
                // A share of 100 % is no share: nothing to count.
                untrusted_share_percent: (!trusted && self.config.untrusted_share_percent < 100)
                    .then_some(self.config.untrusted_share_percent),
            }),
            failure_caps: &send.failure_caps,
            provider: provider.as_ref(),
        };
        let taken = self.limits.take_allowance(&allowance, now, with).await??;
        Ok(Admitted {
            taken,
            counted,
            at: now,
            trusted,
        })
    }

    /// Our account's rate for `using`: calls a second and at once, or a sender's messages a
    /// second.
    fn provider_rate(&self, using: ProviderUse<'_>) -> ProviderRate {
        let rates = &self.config.provider_rate;
        match using {
            ProviderUse::Call => ProviderRate {
                subject: "calls".to_owned(),
                per_second: rates.calls_per_second,
                concurrent: rates.max_concurrent_calls.map(|max| ConcurrentCalls {
                    max,
                    lifetime: self.config.flash_call_ring_timeout + CALL_SETUP,
                }),
            },
            ProviderUse::Message { sender } => ProviderRate {
                subject: format!("messages#{sender}"),
                per_second: rates.messages_per_second,
                concurrent: None,
            },
        }
    }

    /// Refuses a send to `d` while it is denied or quarantined (but for a returning phone, and
    /// in monitor mode), quarantining it first when its conversion says so.
    async fn judge(
        &self,
        phone: &PhoneNumber,
        d: &Destination,
        standing: &DestinationStanding,
        min_sends: u32,
        returning: bool,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let settings = &self.config.quarantine;
        match standing.override_ {
            Some(Override::Allow) => return Ok(()),
            Some(Override::Deny) => {
                tracing::info!(destination = %d, phone = %phone.masked(), "destination denied by the operator");
                return Err(quarantined(
                    d,
                    settings.duration.as_secs(),
                    "by the operator",
                ));
            }
            None => {}
        }
        let quarantine = match standing.quarantine.as_ref().filter(|q| q.until > now) {
            Some(q) => q.clone(),
            None => {
                // Only sends after the last quarantine ended (or was released) are judged.
                let after = standing.quarantine.as_ref().map(|q| q.until);
                let buckets: Vec<_> = standing
                    .buckets
                    .iter()
                    .filter(|b| after.is_none_or(|t| b.ends_at > t))
                    .copied()
                    .collect();
                let conversion = Conversion::of(&buckets, now, settings);
                if !conversion.trips(min_sends, settings.min_conversion_percent) {
                    return Ok(());
                }
                let q = Quarantine {
                    until: now + settings.duration,
                    since: now,
                    mode: settings.mode.as_str().to_owned(),
                    sends: conversion.sends,
                    verified: conversion.verified,
                };
                if self.reputation.quarantine(d, &q, now).await? {
                    tracing::warn!(
                        destination = %d,
                        mode = settings.mode.as_str(),
                        sends = q.sends,
                        verified = q.verified,
                        "destination quarantined: its sends do not verify"
                    );
                    crate::telemetry::quarantined(phone.country_code(), d.kind(), settings.mode);
                }
                q
            }
        };
        if returning {
            tracing::info!(destination = %d, phone = %phone.masked(), "a phone that verified before passes the quarantine");
            return Ok(());
        }
        if settings.mode == QuarantineMode::Monitor {
            tracing::info!(destination = %d, phone = %phone.masked(), mode = "monitor", "would have refused: destination quarantined");
            return Ok(());
        }
        let left = (quarantine.until - now).whole_seconds().max(1) as u64;
        Err(quarantined(
            d,
            left,
            "too few of its recent verifications completed",
        ))
    }

    /// Gives back what [`Guard::admit`] took, with `with` in the same transaction: for a send
    /// that never happened.
    pub async fn give_back(
        &self,
        admitted: &Admitted,
        mut with: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        for (d, shard) in &admitted.counted {
            with.push(
                self.reputation
                    .uncount_send(d, admitted.at, self.buckets(), *shard)?,
            );
        }
        self.limits.give_back(&admitted.taken, with).await
    }

    /// The writes that close a verification of `phone` in one transaction with it: a check
    /// per cap of `caps` (a phone at a cap cannot verify, whatever the verification), and the
    /// phone's trust record when `trusts` (a test number earns none).
    pub fn closing_writes(
        &self,
        phone: &PhoneNumber,
        caps: &[FailureCap],
        trusts: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut writes = caps
            .iter()
            .map(|cap| self.limits.failure_lock_check(cap, now))
            .collect::<Result<Vec<_>, _>>()?;
        if trusts {
            writes.extend(self.trust(phone, now)?);
        }
        Ok(writes)
    }

    /// The flash call's cap of failed verifications of a phone a day.
    pub fn flash_failure_caps(&self, phone: &PhoneNumber) -> Vec<FailureCap> {
        vec![FailureCap {
            counter: "flash-failures",
            subject: phone.as_str().to_owned(),
            cap: self.config.max_failed_verifications_per_phone_per_day,
        }]
    }

    /// The code's caps of failed checks a day: of the phone from the caller's network, then
    /// of the phone (the ceiling), narrowest first.
    pub fn code_failure_caps(&self, phone: &PhoneNumber, ip: Option<&str>) -> Vec<FailureCap> {
        let network = network_of(ip.unwrap_or("unknown"));
        vec![
            FailureCap {
                counter: "code-failures-net",
                subject: format!("{phone}#{network}"),
                cap: self
                    .config
                    .max_failed_code_checks_per_phone_per_network_per_day,
            },
            FailureCap {
                counter: "code-failures",
                subject: phone.as_str().to_owned(),
                cap: self.config.max_failed_code_checks_per_phone_per_day,
            },
        ]
    }

    /// The write that makes a phone that just verified trusted (for the verification's
    /// transaction); none when `TRUSTED_PHONE_DAYS` is 0.
    pub fn trust(
        &self,
        phone: &PhoneNumber,
        now: OffsetDateTime,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        let days = self.config.trusted_phone_days;
        if days == 0 {
            return Ok(None);
        }
        let until = now + time::Duration::days(i64::from(days));
        self.reputation.trust(phone, now, until).map(Some)
    }

    /// Counts a verification of the send made at `sent_at` for its block and country. A
    /// failure is only logged: the verification stands.
    pub async fn converted(&self, phone: &PhoneNumber, sent_at: OffsetDateTime) {
        if self.config.quarantine.mode == QuarantineMode::Off {
            return;
        }
        let b = self.buckets();
        let (block, country) = (Destination::block_of(phone), Destination::country_of(phone));
        let shards = self.stat_shards();
        let (a, c) = tokio::join!(
            self.reputation
                .count_verified(&block, sent_at, b, shards.pick(&block)),
            self.reputation
                .count_verified(&country, sent_at, b, shards.pick(&country)),
        );
        if let Err(error) = a.and(c) {
            tracing::error!(%error, "a verification could not be counted for the quarantine");
        }
    }
}

fn quarantined(d: &Destination, retry_after_secs: u64, why: &str) -> ApiError {
    ApiError::Quarantined {
        detail: format!(
            "sends to this {} are suspended: {why}",
            match d {
                Destination::Block(_) => "number range",
                Destination::Country(_) => "country",
            }
        ),
        retry_after_secs,
    }
}
