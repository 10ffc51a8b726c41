//! Rate limits of verification requests: fixed-window counters and a per-phone cooldown,
//! taken together in one transaction so that a refused request consumes nothing.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::item::{millis, millis_av, n, s, ttl_av};
use super::keys::{self, PK, SK, TTL};
use super::{StoreError, cancellation_reasons, view};
use crate::phone::PhoneNumber;

view! {
    /// Rate-limit counters and cooldowns: taken by the endpoints that cost money.
    Limits
}

const COUNT: &str = "count";
const UNTIL: &str = "until";

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    PhonePerDay,
    IpPerHour,
    Cooldown,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PhonePerDay => "phone_per_day",
            Limit::IpPerHour => "ip_per_hour",
            Limit::Cooldown => "cooldown",
        }
    }
}

/// The limits one request must fit in.
#[derive(Debug, Clone)]
pub struct Allowance<'a> {
    /// The scope of the counters (`flash` for flash calls, `sms` for codes), so that two kinds
    /// of verification keep separate budgets.
    pub scope: &'static str,
    pub phone: &'a PhoneNumber,
    pub ip: Option<&'a str>,
    pub per_phone_per_day: u32,
    pub per_ip_per_hour: u32,
    pub cooldown: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    /// Whole seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
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

impl Limits {
    /// Takes one request from every applicable limit, or none of them: the counters and the
    /// cooldown are one DynamoDB transaction. A refusal names the first limit in the order
    /// phone/day, IP/hour, cooldown, with the seconds until it lifts.
    pub async fn take_allowance(
        &self,
        a: &Allowance<'_>,
        now: OffsetDateTime,
    ) -> Result<Result<(), Exceeded>, StoreError> {
        let mut limits = Vec::new();
        let mut items = Vec::new();

        let day = Window::containing(now, DAY);
        items.push(self.counter(
            keys::limit_pk(
                &format!("{}-phone-day", a.scope),
                a.phone.as_str(),
                day.index,
            ),
            a.per_phone_per_day,
            day.end,
        )?);
        limits.push((Limit::PhonePerDay, day.end));

        if let Some(ip) = a.ip {
            let hour = Window::containing(now, HOUR);
            items.push(self.counter(
                keys::limit_pk(&format!("{}-ip-hour", a.scope), ip, hour.index),
                a.per_ip_per_hour,
                hour.end,
            )?);
            limits.push((Limit::IpPerHour, hour.end));
        }

        if !a.cooldown.is_zero() {
            let until = now + a.cooldown;
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

        let result = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(err) = result else {
            return Ok(Ok(()));
        };
        let cancelled = cancellation_reasons(err)?;
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
            .update_expression("SET #count = if_not_exists(#count, :zero) + :one, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#count) OR #count < :max")
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max))
            .expression_attribute_values(":ttl", ttl_av(window_end))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
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
    fn retry_after_rounds_up_and_is_never_zero() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(secs_until(t, t + time::Duration::milliseconds(1_001)), 2);
        assert_eq!(secs_until(t, t), 1);
        assert_eq!(secs_until(t, t - time::Duration::seconds(5)), 1);
    }
}
