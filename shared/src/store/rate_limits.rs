//! Rate limits and the abuse guard's budgets: fixed-window counters (per phone, per IP, and
//! service-wide per hour: all sends, per country, per number block), a per-phone cooldown and
//! the phone's cap of failed verifications, taken together in one transaction so that a
//! refused request consumes nothing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use time::OffsetDateTime;

use super::item::{millis, millis_av, n, s, ttl_av};
use super::keys::{self, PK, SK, TTL};
use super::{StoreError, condition_failed, view};
use crate::phone::PhoneNumber;

view! {
    /// Rate-limit counters and cooldowns: taken by the endpoints that cost money.
    Limits
}

const COUNT: &str = "count";
const MAX: &str = "max";
const UNTIL: &str = "until";

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PhonePerDay,
    /// Codes sent to one phone this hour (`sms-verify`).
    PhonePerHour,
    /// Messages to one recipient this hour (`sms-send`'s resend-flood throttle).
    RecipientPerHour,
    IpPerHour,
    Cooldown,
    /// Every send of the service, this hour.
    GlobalPerHour,
    /// Sends to the phone's country, this hour.
    CountryPerHour,
    /// Sends to the phone's block of 10,000 numbers, this hour.
    PrefixPerHour,
    /// The phone's failed verifications today reached the cap.
    PhoneFailures,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PhonePerDay => "phone_per_day",
            Limit::PhonePerHour => "phone_per_hour",
            Limit::RecipientPerHour => "recipient_per_hour",
            Limit::IpPerHour => "ip_per_hour",
            Limit::Cooldown => "cooldown",
            Limit::GlobalPerHour => "global_per_hour",
            Limit::CountryPerHour => "country_per_hour",
            Limit::PrefixPerHour => "prefix_per_hour",
            Limit::PhoneFailures => "phone_failures",
        }
    }
}

/// Service-wide budgets of everything that reaches the provider (flash calls and SMS alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBudgets {
    pub per_hour: u32,
    pub per_country_per_hour: u32,
    /// Per block of 10,000 numbers (the number less its last four digits): pumping walks
    /// number ranges.
    pub per_prefix_per_hour: u32,
}

/// How many items the global hourly budget is spread over: one per 100 sends of budget, at
/// most 10. A single item takes about 1,000 writes a second at most, and concurrent
/// transactions on one item conflict; ten items spread the load (see the README).
pub fn global_shards(per_hour: u32) -> u32 {
    (per_hour / 100).clamp(1, 10)
}

/// The share of the global budget one shard holds: the budget split evenly, the remainder to
/// the first shards, so that the shards add up to the budget exactly.
pub fn shard_capacity(per_hour: u32, shards: u32, shard: u32) -> u32 {
    per_hour / shards + u32::from(shard < per_hour % shards)
}

/// The length of a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    fn secs(self) -> i64 {
        match self {
            Period::Hour => HOUR,
            Period::Day => DAY,
        }
    }
}

/// A counter on the phone: at most `max` per `period`, under the name `counter` (two
/// allowances that name the same counter share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub counter: &'static str,
    pub limit: Limit,
    pub max: u32,
    pub period: Period,
}

/// The limits one request must fit in.
#[derive(Debug, Clone)]
pub struct Allowance<'a> {
    /// The scope of the cooldown (`flash` for flash calls, `sms` for codes): an app that
    /// falls back from a flash call to a code is not held up by the call's cooldown. The IP
    /// counter is one for every channel.
    pub scope: &'static str,
    pub phone: &'a PhoneNumber,
    /// The phone's counters, in the order a refusal names them.
    pub per_phone: &'a [Quota],
    /// The caller's address, counted per hour (`None`: a service caller, not counted).
    pub ip: Option<&'a str>,
    pub per_ip_per_hour: u32,
    pub cooldown: Duration,
    /// The service-wide budgets, for a request that will reach the provider.
    pub sends: Option<SendBudgets>,
    /// The phone's cap of failed verifications per day: a phone at the cap is refused.
    pub failure_cap: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
}

/// What an allowance took, to give back when the request's send did not happen
/// ([`Limits::give_back`]).
#[derive(Debug, Clone, Default)]
pub struct Taken {
    counters: Vec<String>,
    cooldown: Option<(String, OffsetDateTime)>,
}

/// A fixed window of `len` seconds: its index and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: i64,
    pub end: OffsetDateTime,
}

impl Window {
    pub fn containing(now: OffsetDateTime, len_secs: i64) -> Self {
        let index = now.unix_timestamp().div_euclid(len_secs);
        let end = OffsetDateTime::from_unix_timestamp((index + 1) * len_secs)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Window { index, end }
    }
}

fn secs_until(now: OffsetDateTime, then: OffsetDateTime) -> u64 {
    let ms = (millis(then) - millis(now)).max(0);
    (ms as u64).div_ceil(1000).max(1)
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// A fixed-window counter takes one, with its window's end as its TTL, only below its maximum
/// (stored beside the count, so that the stream can tell when a limit is reached).
const COUNTER_UPDATE: &str =
    "SET #count = if_not_exists(#count, :zero) + :one, #ttl = :ttl, #max = :max";
const COUNTER_BELOW_MAX: &str = "attribute_not_exists(#count) OR #count < :max";

fn counter_names() -> HashMap<String, String> {
    HashMap::from([
        ("#count".to_owned(), COUNT.to_owned()),
        ("#ttl".to_owned(), TTL.to_owned()),
        ("#max".to_owned(), MAX.to_owned()),
    ])
}

fn counter_values(max: u32, window_end: OffsetDateTime) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":zero".to_owned(), n(0)),
        (":one".to_owned(), n(1)),
        (":max".to_owned(), n(max)),
        (":ttl".to_owned(), ttl_av(window_end)),
    ])
}

/// The counter of a phone's failed verifications today (shared by every channel).
fn failures_pk(phone: &PhoneNumber, day: i64) -> String {
    keys::limit_pk("verify-failures", phone.as_str(), day)
}

impl Limits {
    /// Takes one request from every applicable limit, or none of them: the counters, the
    /// cooldown and the failure cap are one DynamoDB transaction, with `with` (the writes the
    /// request makes if allowed, such as its session or message) in the same transaction. A
    /// refusal names the first limit in the order of the phone's quotas, IP/hour, cooldown,
    /// failures, global, country, prefix, with the seconds until it lifts.
    pub async fn take_allowance(
        &self,
        a: &Allowance<'_>,
        now: OffsetDateTime,
        with: Vec<TransactWriteItem>,
    ) -> Result<Result<Taken, Exceeded>, StoreError> {
        let mut limits = Vec::new();
        let mut items = Vec::new();
        let mut taken = Taken::default();
        let day = Window::containing(now, DAY);
        let hour = Window::containing(now, HOUR);

        for quota in a.per_phone {
            let window = Window::containing(now, quota.period.secs());
            let pk = keys::limit_pk(quota.counter, a.phone.as_str(), window.index);
            items.push(self.counter(pk.clone(), quota.max, window.end)?);
            taken.counters.push(pk);
            limits.push((quota.limit, window.end));
        }

        if let Some(ip) = a.ip {
            let pk = keys::limit_pk("ip-hour", ip, hour.index);
            items.push(self.counter(pk.clone(), a.per_ip_per_hour, hour.end)?);
            taken.counters.push(pk);
            limits.push((Limit::IpPerHour, hour.end));
        }

        if !a.cooldown.is_zero() {
            let until = now + a.cooldown;
            taken.cooldown = Some((keys::cooldown_pk(a.phone, a.scope), until));
            let put = Put::builder()
                .table_name(self.table())
                .item(PK, s(keys::cooldown_pk(a.phone, a.scope)))
                .item(SK, s(keys::COOLDOWN_SK))
                .item(UNTIL, millis_av(until))
                .item(TTL, ttl_av(until))
                .condition_expression("attribute_not_exists(#pk) OR #until <= :now")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#until", UNTIL)
                .expression_attribute_values(":now", millis_av(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()?;
            items.push(TransactWriteItem::builder().put(put).build());
            limits.push((Limit::Cooldown, until));
        }

        if let Some(cap) = a.failure_cap {
            items.push(self.failure_lock_check(a.phone, cap, now)?);
            limits.push((Limit::PhoneFailures, day.end));
        }

        if let Some(budgets) = a.sends {
            let shards = global_shards(budgets.per_hour);
            let shard = u32::from(uuid::Uuid::new_v4().as_bytes()[0]) % shards;
            let counters = [
                (
                    Limit::GlobalPerHour,
                    format!("global#{shard}"),
                    shard_capacity(budgets.per_hour, shards, shard),
                ),
                (
                    Limit::CountryPerHour,
                    format!("country#{}", a.phone.country_code()),
                    budgets.per_country_per_hour,
                ),
                (
                    Limit::PrefixPerHour,
                    format!("prefix#{}", number_block(a.phone)),
                    budgets.per_prefix_per_hour,
                ),
            ];
            for (limit, subject, max) in counters {
                let pk = keys::limit_pk("sends-hour", &subject, hour.index);
                items.push(self.counter(pk.clone(), max, hour.end)?);
                taken.counters.push(pk);
                limits.push((limit, hour.end));
            }
        }

        items.extend(with);
        let Err(cancelled) = self.transact(items).await? else {
            return Ok(Ok(taken));
        };
        for (i, (limit, lifts_at)) in limits.iter().enumerate() {
            if !cancelled.condition_failed(i) {
                continue;
            }
            // The cooldown lifts when the stored one does, not when a new one would.
            let lifts_at = match (limit, cancelled.old_item(i)) {
                (Limit::Cooldown, Some(old)) => old.time(UNTIL).unwrap_or(*lifts_at),
                _ => *lifts_at,
            };
            return Ok(Err(Exceeded {
                limit: *limit,
                retry_after_secs: secs_until(now, lifts_at),
            }));
        }
        Err(cancelled.into_error())
    }

    /// Gives back what [`Limits::take_allowance`] took, with `with` (the request's own undo,
    /// such as deleting what it wrote) in the same transaction: for a request whose send never
    /// happened (the provider refused or was down). Each counter goes down by one, never below
    /// zero; the cooldown is lifted only if it is still the one this request set.
    pub async fn give_back(
        &self,
        taken: &Taken,
        with: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::new();
        for pk in &taken.counters {
            let update = Update::builder()
                .table_name(self.table())
                .key(PK, s(pk.as_str()))
                .key(SK, s(keys::LIMIT_SK))
                .update_expression("SET #count = #count - :one")
                .condition_expression("#count > :zero")
                .expression_attribute_names("#count", COUNT)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0))
                .build()?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        if let Some((pk, until)) = &taken.cooldown {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(self.table())
                .key(PK, s(pk.as_str()))
                .key(SK, s(keys::COOLDOWN_SK))
                .condition_expression("#until = :until")
                .expression_attribute_names("#until", UNTIL)
                .expression_attribute_values(":until", millis_av(*until))
                .build()?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        items.extend(with);
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(cancelled) => Err(cancelled.into_error()),
        }
    }

    /// Counts one failed verification of `phone` today, unless the phone is at `cap` already:
    /// then nothing is counted and the phone is refused until the day ends.
    pub async fn count_failure(
        &self,
        phone: &PhoneNumber,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<Result<(), Exceeded>, StoreError> {
        let day = Window::containing(now, DAY);
        let counted = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(PK, s(failures_pk(phone, day.index)))
            .key(SK, s(keys::LIMIT_SK))
            .update_expression(COUNTER_UPDATE)
            .condition_expression(COUNTER_BELOW_MAX)
            .set_expression_attribute_names(Some(counter_names()))
            .set_expression_attribute_values(Some(counter_values(cap, day.end)))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(Ok(())),
            Err(e) if condition_failed(&e) => Ok(Err(Exceeded {
                limit: Limit::PhoneFailures,
                retry_after_secs: secs_until(now, day.end),
            })),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// A transaction item that holds only while `phone` is below its failure cap today.
    pub fn failure_lock_check(
        &self,
        phone: &PhoneNumber,
        cap: u32,
        now: OffsetDateTime,
    ) -> Result<TransactWriteItem, StoreError> {
        let day = Window::containing(now, DAY);
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .key(PK, s(failures_pk(phone, day.index)))
            .key(SK, s(keys::LIMIT_SK))
            .condition_expression("attribute_not_exists(#count) OR #count < :max")
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_values(":max", n(cap))
            .build()?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The phone's failed verifications today (for the operator).
    pub async fn failures_today(
        &self,
        phone: &PhoneNumber,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        self.count_of(failures_pk(phone, Window::containing(now, DAY).index))
            .await
    }

    /// The sends counted this hour under a budget: `global` (all shards), or a country code.
    pub async fn sends_this_hour(
        &self,
        subject: &str,
        per_hour: u32,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let hour = Window::containing(now, HOUR).index;
        if subject != "global" {
            return self
                .count_of(keys::limit_pk("sends-hour", subject, hour))
                .await;
        }
        let mut total = 0;
        for shard in 0..global_shards(per_hour) {
            total += self
                .count_of(keys::limit_pk(
                    "sends-hour",
                    &format!("global#{shard}"),
                    hour,
                ))
                .await?;
        }
        Ok(total)
    }

    async fn count_of(&self, pk: String) -> Result<u32, StoreError> {
        match self.get_item(pk, keys::LIMIT_SK).await? {
            Some(item) => item.number(COUNT),
            None => Ok(0),
        }
    }

    fn counter(
        &self,
        pk: String,
        max: u32,
        window_end: OffsetDateTime,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(keys::LIMIT_SK))
            .update_expression(COUNTER_UPDATE)
            .condition_expression(COUNTER_BELOW_MAX)
            .set_expression_attribute_names(Some(counter_names()))
            .set_expression_attribute_values(Some(counter_values(max, window_end)))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Whole seconds until the UTC day of `now` ends (when the daily counters start over).
pub fn seconds_to_day_end(now: OffsetDateTime) -> u64 {
    secs_until(now, Window::containing(now, DAY).end)
}

/// The block of 10,000 numbers a number belongs to: its E.164 form less the last four digits.
pub fn number_block(phone: &PhoneNumber) -> &str {
    let e164 = phone.as_str();
    &e164[..e164.len().saturating_sub(4)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_utc_days_and_hours() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(); // 22:13:20 UTC
        let day = Window::containing(t, DAY);
        assert_eq!(day.end.unix_timestamp() - t.unix_timestamp(), 6_400);
        let hour = Window::containing(t, HOUR);
        assert_eq!(hour.end.unix_timestamp() - t.unix_timestamp(), 2_800);
        assert_eq!(Window::containing(hour.end, HOUR).index, hour.index + 1);
    }

    #[test]
    fn the_global_budget_is_split_into_shards_that_add_up_to_it_exactly() {
        assert_eq!(global_shards(10), 1);
        assert_eq!(global_shards(250), 2);
        assert_eq!(global_shards(1000), 10);
        assert_eq!(global_shards(100_000), 10);
        for per_hour in [1, 10, 99, 100, 101, 999, 1000, 1234, 100_000] {
            let shards = global_shards(per_hour);
            let total: u32 = (0..shards)
                .map(|i| shard_capacity(per_hour, shards, i))
                .sum();
            assert_eq!(total, per_hour);
        }
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(secs_until(t, t + time::Duration::milliseconds(1_001)), 2);
        assert_eq!(secs_until(t, t), 1);
        assert_eq!(secs_until(t, t - time::Duration::seconds(5)), 1);
    }
}
