//! The abuse guard's counters (its policy is `guard`): fixed-window counters (per phone, per
//! IP and per network, and service-wide per hour: all sends, per country, per number block,
//! each with its untrusted share), a per-phone cooldown and the caps of failed verifications,
//! taken together in one transaction so that a refused request consumes nothing.

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
use crate::config::SendBudgets;
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
    /// Requests from the caller's network (IPv4 /24, IPv6 /64) this hour.
    NetworkPerHour,
    Cooldown,
    /// Every send of the service, this hour.
    GlobalPerHour,
    /// Sends to the phone's country, this hour.
    CountryPerHour,
    /// Sends to the phone's block of 10,000 numbers, this hour.
    PrefixPerHour,
    /// The phone's failed verifications today reached the cap.
    PhoneFailures,
    /// Untrusted requests used their share of a service-wide budget.
    UntrustedShare,
    /// The provider's calls or messages a second, or its concurrent calls, are all in use.
    ProviderRate,
}

impl Limit {
    pub const ALL: [Limit; 12] = [
        Limit::PhonePerDay,
        Limit::PhonePerHour,
        Limit::RecipientPerHour,
        Limit::IpPerHour,
        Limit::NetworkPerHour,
        Limit::Cooldown,
        Limit::GlobalPerHour,
        Limit::CountryPerHour,
        Limit::PrefixPerHour,
        Limit::PhoneFailures,
        Limit::UntrustedShare,
        Limit::ProviderRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::PhonePerDay => "phone_per_day",
            Limit::PhonePerHour => "phone_per_hour",
            Limit::RecipientPerHour => "recipient_per_hour",
            Limit::IpPerHour => "ip_per_hour",
            Limit::NetworkPerHour => "network_per_hour",
            Limit::Cooldown => "cooldown",
            Limit::GlobalPerHour => "global_per_hour",
            Limit::CountryPerHour => "country_per_hour",
            Limit::PrefixPerHour => "prefix_per_hour",
            Limit::PhoneFailures => "phone_failures",
            Limit::UntrustedShare => "untrusted_share",
            Limit::ProviderRate => "provider_rate",
        }
    }
}

/// The most items one service-wide budget is spread over. At 5,000 sends a second to one
/// country each of its items takes about 50 writes a second, against DynamoDB's limit of about
/// 1,000 per item; a total is one BatchGetItem of them all.
pub const MAX_SHARDS: u32 = 100;
/// The budget units of one item before a budget is split further: a small budget stays in few
/// items, so that a send refused by a full item while another has room is rare.
pub const UNITS_PER_SHARD: u32 = 100;
/// How many shards one request tries before a full budget refuses it: a shard that is full
/// while others have room sends the request to another one.
pub const SHARD_TRIES: usize = 3;

/// How many items a budget of `max` units an hour is spread over (write sharding with a
/// random suffix, see docs/operating.md).
pub fn shards_for(max: u32) -> u32 {
    max.div_ceil(UNITS_PER_SHARD).clamp(1, MAX_SHARDS)
}

/// The share of a budget one shard holds: the budget split evenly, the remainder to the first
/// shards, so that the shards add up to the budget exactly.
pub fn shard_capacity(max: u32, shards: u32, shard: u32) -> u32 {
    max / shards + u32::from(shard < max % shards)
}

/// A service-wide budget: every send, the sends to a country, to a block of 10,000 numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    Global,
    Country(u16),
    /// A number block (`number_block`).
    Prefix(String),
}

impl Budget {
    /// The budgets a send to `phone` draws on, in the order a refusal names them.
    pub fn of(phone: &PhoneNumber) -> [Budget; 3] {
        [
            Budget::Global,
            Budget::Country(phone.country_code()),
            Budget::Prefix(number_block(phone).to_owned()),
        ]
    }

    /// Its units an hour.
    pub fn max(&self, budgets: &SendBudgets) -> u32 {
        match self {
            Budget::Global => budgets.per_hour,
            Budget::Country(_) => budgets.per_country_per_hour,
            Budget::Prefix(_) => budgets.per_prefix_per_hour,
        }
    }

    pub fn limit(&self) -> Limit {
        match self {
            Budget::Global => Limit::GlobalPerHour,
            Budget::Country(_) => Limit::CountryPerHour,
            Budget::Prefix(_) => Limit::PrefixPerHour,
        }
    }

    fn subject(&self) -> String {
        match self {
            Budget::Global => "global".to_owned(),
            Budget::Country(code) => format!("country#{code}"),
            Budget::Prefix(block) => format!("prefix#{block}"),
        }
    }

    /// The key of one shard of this budget's counter (`sends-hour`, or `untrusted-hour` for
    /// its untrusted share) in hour `hour`.
    fn shard_pk(&self, counter: &str, shard: u32, hour: i64) -> String {
        keys::limit_pk(counter, &format!("{}#{shard}", self.subject()), hour)
    }
}

/// A random shard of `shards`, other than those in `tried` while one is left.
fn pick_shard(shards: u32, tried: &[u32]) -> u32 {
    let left: Vec<u32> = (0..shards).filter(|s| !tried.contains(s)).collect();
    if left.is_empty() {
        return crate::id::random_below(shards.into()) as u32;
    }
    left[crate::id::random_below(left.len() as u64) as usize]
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

/// The caller's address and network, each counted per hour (every channel together).
#[derive(Debug, Clone, Copy)]
pub struct ClientCounters<'a> {
    pub ip: &'a str,
    /// The address's network (`guard::network_of`).
    pub network: &'a str,
    pub per_ip_per_hour: u32,
    pub per_network_per_hour: u32,
}

/// What a request draws from the service-wide budgets.
#[derive(Debug, Clone, Copy)]
pub struct Sends {
    pub budgets: SendBudgets,
    /// Units taken from every budget (an SMS: its segments).
    pub units: u32,
    /// For an untrusted request, the percentage of each budget untrusted requests may use
    /// together; `None` for a trusted one, which draws on the whole budget.
    pub untrusted_share_percent: Option<u32>,
}

/// The provider's own rate a send draws on: `per_second` units a second for `subject` (our
/// calls, or one sender's messages), and for calls, at most `concurrent` at once.
#[derive(Debug, Clone)]
pub struct ProviderRate {
    /// `calls`, or `messages#<sender>`.
    pub subject: String,
    pub per_second: u32,
    pub concurrent: Option<ConcurrentCalls>,
}

/// At most `max` calls at once, each holding its slot for `lifetime` (its longest life: the
/// ring timeout and the set-up), so that a slot whose call's end was never heard of frees
/// itself.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrentCalls {
    pub max: u32,
    pub lifetime: Duration,
}

/// A daily counter of failed verifications: a request is refused while it is at `cap`.
#[derive(Debug, Clone)]
pub struct FailureCap {
    /// The counter and its subject (`flash-failures`, the phone; `code-failures-net`, the
    /// phone and the network).
    pub counter: &'static str,
    pub subject: String,
    pub cap: u32,
}

/// The limits one request must fit in.
#[derive(Debug, Clone)]
pub struct Allowance<'a> {
    /// The scope of the cooldown (`flash` for flash calls, `sms` for codes): an app that
    /// falls back from a flash call to a code is not held up by the call's cooldown. The IP
    /// and network counters are one for every channel.
    pub scope: &'static str,
    pub phone: &'a PhoneNumber,
    /// The phone's counters, in the order a refusal names them.
    pub per_phone: &'a [Quota],
    /// The caller (`None`: a service caller, not counted).
    pub client: Option<ClientCounters<'a>>,
    pub cooldown: Duration,
    /// The service-wide budgets, for a request that will reach the provider.
    pub sends: Option<Sends>,
    /// Caps of failed verifications: a phone (or network) at one is refused.
    pub failure_caps: &'a [FailureCap],
    /// The provider's rate, for a send our account hands to it.
    pub provider: Option<&'a ProviderRate>,
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
    /// Each counter taken and by how much.
    counters: Vec<(String, u32)>,
    cooldown: Option<(String, OffsetDateTime)>,
    /// The concurrent-call slot taken, and until when.
    slot: Option<(String, OffsetDateTime)>,
}

/// The transaction an allowance is taken in, with the limit each item stands for.
#[derive(Default)]
struct Plan {
    items: Vec<TransactWriteItem>,
    /// Per item: the limit it stands for, when it lifts, and for an item picked among several
    /// (a shard of a service-wide budget or of the provider's rate, a concurrent-call slot),
    /// which spread it is one of (its index in the spreads of `take_allowance`).
    limits: Vec<(Limit, OffsetDateTime, Option<usize>)>,
    taken: Taken,
}

/// The spreads after the three budgets: the provider's rate, then its call slots.
const PROVIDER_SPREAD: usize = 3;
const SLOT_SPREAD: usize = 4;

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

/// A fixed-window counter takes `:units`, with its window's end as its TTL, only while that
/// keeps it at or below its maximum: `:room` is the maximum less the units.
const COUNTER_UPDATE: &str = "SET #count = if_not_exists(#count, :zero) + :units, #ttl = :ttl";
/// An announced counter stores its maximum beside the count, so that the stream can tell
/// when a limit is reached.
const STORE_MAX: &str = ", #max = :max";
const COUNTER_HAS_ROOM: &str = "attribute_not_exists(#count) OR #count <= :room";
/// A condition no item meets (a request larger than the whole budget).
const NEVER: &str = "attribute_not_exists(#count) AND attribute_exists(#count)";

/// The update of a counter that takes `units` below `max`: its expression, condition, names
/// and values. `announced`: the maximum is stored too (every limit but the provider's rate,
/// whose seconds filling up are the rate working, not news).
struct CounterWrite {
    expression: String,
    condition: &'static str,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn counter_write(
    max: u32,
    units: u32,
    window_end: OffsetDateTime,
    announced: bool,
) -> CounterWrite {
    let mut names = HashMap::from([
        ("#count".to_owned(), COUNT.to_owned()),
        ("#ttl".to_owned(), TTL.to_owned()),
    ]);
    let mut values = HashMap::from([
        (":zero".to_owned(), n(0)),
        (":units".to_owned(), n(units)),
        (":ttl".to_owned(), ttl_av(window_end)),
    ]);
    let mut expression = COUNTER_UPDATE.to_owned();
    if announced {
        expression.push_str(STORE_MAX);
        names.insert("#max".to_owned(), MAX.to_owned());
        values.insert(":max".to_owned(), n(max));
    }
    let condition = if units > max {
        NEVER
    } else {
        values.insert(":room".to_owned(), n(max - units));
        COUNTER_HAS_ROOM
    };
    CounterWrite {
        expression,
        condition,
        names,
        values,
    }
}

/// A daily failure counter's key.
fn failures_pk(cap: &FailureCap, day: i64) -> String {
    keys::limit_pk(cap.counter, &cap.subject, day)
}

impl Limits {
    /// Takes one request from every applicable limit, or none of them: the counters, the
    /// cooldown and the failure caps are one DynamoDB transaction, with `with` (the writes the
    /// request makes if allowed, such as its session or message) in the same transaction. A
    /// refusal names the first limit in the order of the phone's quotas, IP/hour,
    /// network/hour, cooldown, failures, global, country, prefix, the untrusted shares, with
    /// the seconds until it lifts.
    ///
    /// Each service-wide budget is spread over [`shards_for`] items and a request takes from
    /// one at random; refused by a full shard alone, it tries another, up to [`SHARD_TRIES`].
    pub async fn take_allowance(
        &self,
        a: &Allowance<'_>,
        now: OffsetDateTime,
        with: Vec<TransactWriteItem>,
    ) -> Result<Result<Taken, Exceeded>, StoreError> {
        let budgets = Budget::of(a.phone);
        // Each spread: how many items it has (shards, slots), one of which is picked.
        let mut shards: Vec<u32> = match a.sends {
            Some(sends) => budgets
                .iter()
                .map(|b| shards_for(b.max(&sends.budgets)))
                .collect(),
            None => vec![1; budgets.len()],
        };
        shards.push(a.provider.map_or(1, |p| shards_for(p.per_second)));
        shards.push(a.provider.and_then(|p| p.concurrent).map_or(1, |c| c.max));
        let mut tried: Vec<Vec<u32>> = vec![Vec::new(); shards.len()];
        let mut picked: Vec<u32> = shards.iter().map(|&n| pick_shard(n, &[])).collect();
        let mut attempt = 1;
        loop {
            let Plan {
                mut items,
                limits,
                taken,
            } = self.plan(a, now, &budgets, &shards, &picked)?;
            items.extend(with.iter().cloned());
            let Err(cancelled) = self.transact(items).await? else {
                return Ok(Ok(taken));
            };
            let refused: Vec<usize> = (0..limits.len())
                .filter(|&i| cancelled.condition_failed(i))
                .collect();
            let Some(&first) = refused.first() else {
                return Err(cancelled.into_error());
            };
            // Only full shards refused: other shards of the same budgets may have room.
            let only_shards = refused.iter().all(|&i| limits[i].2.is_some());
            if only_shards && attempt < SHARD_TRIES {
                let mut moved = false;
                for &i in &refused {
                    let Some(budget) = limits[i].2 else { continue };
                    if !tried[budget].contains(&picked[budget]) {
                        tried[budget].push(picked[budget]);
                    }
                    if (tried[budget].len() as u32) < shards[budget] {
                        picked[budget] = pick_shard(shards[budget], &tried[budget]);
                        moved = true;
                    }
                }
                if moved {
                    attempt += 1;
                    continue;
                }
            }
            let (limit, lifts_at, spread) = limits[first];
            // The cooldown and a call's slot lift when the stored one does, not when a new
            // one would.
            let lifts_at = match (limit, spread, cancelled.old_item(first)) {
                (Limit::Cooldown, _, Some(old)) | (_, Some(SLOT_SPREAD), Some(old)) => {
                    old.time(UNTIL).unwrap_or(lifts_at)
                }
                _ => lifts_at,
            };
            return Ok(Err(Exceeded {
                limit,
                retry_after_secs: secs_until(now, lifts_at),
            }));
        }
    }

    /// The transaction of an allowance, with shard `picked[i]` of budget `budgets[i]`.
    fn plan(
        &self,
        a: &Allowance<'_>,
        now: OffsetDateTime,
        budgets: &[Budget],
        shards: &[u32],
        picked: &[u32],
    ) -> Result<Plan, StoreError> {
        let mut plan = Plan::default();
        let day = Window::containing(now, DAY);
        let hour = Window::containing(now, HOUR);
        let take = |plan: &mut Plan,
                    pk: String,
                    max: u32,
                    units: u32,
                    window: Window,
                    limit: (Limit, Option<usize>)|
         -> Result<(), StoreError> {
            plan.items
                .push(self.counter(pk.clone(), (max, units), window.end, true)?);
            plan.taken.counters.push((pk, units));
            plan.limits.push((limit.0, window.end, limit.1));
            Ok(())
        };

        for quota in a.per_phone {
            let window = Window::containing(now, quota.period.secs());
            let pk = keys::limit_pk(quota.counter, a.phone.as_str(), window.index);
            take(&mut plan, pk, quota.max, 1, window, (quota.limit, None))?;
        }

        if let Some(client) = a.client {
            let pk = keys::limit_pk("ip-hour", client.ip, hour.index);
            let limit = (Limit::IpPerHour, None);
            take(&mut plan, pk, client.per_ip_per_hour, 1, hour, limit)?;
            let pk = keys::limit_pk("net-hour", client.network, hour.index);
            let limit = (Limit::NetworkPerHour, None);
            take(&mut plan, pk, client.per_network_per_hour, 1, hour, limit)?;
        }

        if !a.cooldown.is_zero() {
            let until = now + a.cooldown;
            plan.taken.cooldown = Some((keys::cooldown_pk(a.phone, a.scope), until));
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
            plan.items
                .push(TransactWriteItem::builder().put(put).build());
            plan.limits.push((Limit::Cooldown, until, None));
        }

        for cap in a.failure_caps {
            plan.items.push(self.failure_lock_check(cap, now)?);
            plan.limits.push((Limit::PhoneFailures, day.end, None));
        }

        if let Some(sends) = a.sends {
            for (i, budget) in budgets.iter().enumerate() {
                let max = budget.max(&sends.budgets);
                let pk = budget.shard_pk("sends-hour", picked[i], hour.index);
                let capacity = shard_capacity(max, shards[i], picked[i]);
                let limit = (budget.limit(), Some(i));
                take(&mut plan, pk, capacity, sends.units, hour, limit)?;
            }
            if let Some(percent) = sends.untrusted_share_percent {
                for (i, budget) in budgets.iter().enumerate() {
                    let share = untrusted_share(budget.max(&sends.budgets), percent);
                    let pk = budget.shard_pk("untrusted-hour", picked[i], hour.index);
                    let capacity = shard_capacity(share, shards[i], picked[i]);
                    let limit = (Limit::UntrustedShare, Some(i));
                    take(&mut plan, pk, capacity, sends.units, hour, limit)?;
                }
            }
        }

        if let Some(provider) = a.provider {
            self.plan_provider(&mut plan, provider, a, now, shards, picked)?;
        }
        Ok(plan)
    }

    /// The provider's rate: a shard of this second's counter, and a free call slot.
    fn plan_provider(
        &self,
        plan: &mut Plan,
        provider: &ProviderRate,
        a: &Allowance<'_>,
        now: OffsetDateTime,
        shards: &[u32],
        picked: &[u32],
    ) -> Result<(), StoreError> {
        let second = Window::containing(now, 1);
        let (spread, shard) = (PROVIDER_SPREAD, picked[PROVIDER_SPREAD]);
        let capacity = shard_capacity(provider.per_second, shards[spread], shard);
        // A message longer than a second's capacity takes the whole second.
        let units = a.sends.map_or(1, |s| s.units).clamp(1, capacity.max(1));
        let subject = format!("{}#{shard}", provider.subject);
        let pk = keys::limit_pk("provider-second", &subject, second.index);
        // Not announced: a second filling up is the rate working, not news for the stream's
        // `rate_limit.reached`.
        plan.items
            .push(self.counter(pk.clone(), (capacity, units), second.end, false)?);
        plan.taken.counters.push((pk, units));
        plan.limits
            .push((Limit::ProviderRate, second.end, Some(spread)));

        if let Some(concurrent) = provider.concurrent {
            let until = now + concurrent.lifetime;
            let slot = picked[SLOT_SPREAD];
            let pk = keys::limit_pk("call-slot", &provider.subject, i64::from(slot));
            let put = Put::builder()
                .table_name(self.table())
                .item(PK, s(pk.as_str()))
                .item(SK, s(keys::LIMIT_SK))
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
            plan.items
                .push(TransactWriteItem::builder().put(put).build());
            plan.taken.slot = Some((pk, until));
            plan.limits
                .push((Limit::ProviderRate, until, Some(SLOT_SPREAD)));
        }
        Ok(())
    }

    /// Gives back what [`Limits::take_allowance`] took, with `with` (the request's own undo,
    /// such as deleting what it wrote) in the same transaction: for a request whose send never
    /// happened (the provider refused or was down). Each counter goes down by what it took,
    /// never below zero; the cooldown is lifted only if it is still the one this request set.
    pub async fn give_back(
        &self,
        taken: &Taken,
        with: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::new();
        for (pk, units) in &taken.counters {
            let update = Update::builder()
                .table_name(self.table())
                .key(PK, s(pk.as_str()))
                .key(SK, s(keys::LIMIT_SK))
                .update_expression("SET #count = #count - :units")
                .condition_expression("#count >= :units")
                .expression_attribute_names("#count", COUNT)
                .expression_attribute_values(":units", n(*units))
                .build()?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let held = [
            taken.cooldown.as_ref().map(|c| (c, keys::COOLDOWN_SK)),
            taken.slot.as_ref().map(|c| (c, keys::LIMIT_SK)),
        ];
        for ((pk, until), sk) in held.into_iter().flatten() {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(self.table())
                .key(PK, s(pk.as_str()))
                .key(SK, s(sk))
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

    /// Counts one failed verification today on each of `caps`, in order, each only while it is
    /// below its cap: at the first one at its cap nothing further is counted and the request is
    /// refused until the day ends. (Order them narrowest first: a network at its cap must not
    /// go on filling the phone's ceiling.)
    pub async fn count_failure(
        &self,
        caps: &[FailureCap],
        now: OffsetDateTime,
    ) -> Result<Result<(), Exceeded>, StoreError> {
        let day = Window::containing(now, DAY);
        for cap in caps {
            let write = counter_write(cap.cap, 1, day.end, true);
            let counted = self
                .client()
                .update_item()
                .table_name(self.table())
                .key(PK, s(failures_pk(cap, day.index)))
                .key(SK, s(keys::LIMIT_SK))
                .update_expression(write.expression)
                .condition_expression(write.condition)
                .set_expression_attribute_names(Some(write.names))
                .set_expression_attribute_values(Some(write.values))
                .send()
                .await;
            match counted {
                Ok(_) => {}
                Err(e) if condition_failed(&e) => {
                    return Ok(Err(Exceeded {
                        limit: Limit::PhoneFailures,
                        retry_after_secs: secs_until(now, day.end),
                    }));
                }
                Err(e) => return Err(StoreError::sdk("UpdateItem", e)),
            }
        }
        Ok(Ok(()))
    }

    /// A transaction item that holds only while `cap`'s counter is below its cap today.
    pub fn failure_lock_check(
        &self,
        cap: &FailureCap,
        now: OffsetDateTime,
    ) -> Result<TransactWriteItem, StoreError> {
        let day = Window::containing(now, DAY);
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .key(PK, s(failures_pk(cap, day.index)))
            .key(SK, s(keys::LIMIT_SK))
            .condition_expression("attribute_not_exists(#count) OR #count < :max")
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_values(":max", n(cap.cap))
            .build()?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// When the phone's cooldown in each of `scopes` lifts, where one is set (one
    /// BatchGetItem): what a client may be told of its other channels.
    pub async fn cooldowns(
        &self,
        phone: &PhoneNumber,
        scopes: &[&'static str],
    ) -> Result<Vec<(&'static str, OffsetDateTime)>, StoreError> {
        let keys = scopes
            .iter()
            .map(|scope| keys::item_key(keys::cooldown_pk(phone, scope), keys::COOLDOWN_SK))
            .collect();
        let mut found = Vec::new();
        for item in self.batch_get_all(keys).await? {
            let pk = item.string(PK)?;
            if let Some(scope) = scopes.iter().find(|s| keys::cooldown_pk(phone, s) == pk) {
                found.push((*scope, item.time(UNTIL)?));
            }
        }
        Ok(found)
    }

    /// The failures counted today under `cap` (for the operator).
    pub async fn failures_today(
        &self,
        cap: &FailureCap,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        self.count_of(failures_pk(cap, Window::containing(now, DAY).index))
            .await
    }

    /// The units counted this hour under `budget` (`untrusted`: its untrusted share's
    /// counter), over all its shards: one BatchGetItem.
    pub async fn sends_this_hour(
        &self,
        budget: &Budget,
        budgets: &SendBudgets,
        untrusted: bool,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let hour = Window::containing(now, HOUR).index;
        let counter = if untrusted {
            "untrusted-hour"
        } else {
            "sends-hour"
        };
        let keys = (0..shards_for(budget.max(budgets)))
            .map(|shard| keys::item_key(budget.shard_pk(counter, shard, hour), keys::LIMIT_SK))
            .collect();
        let mut total = 0;
        for item in self.batch_get_all(keys).await? {
            total += item.number::<u32>(COUNT)?;
        }
        Ok(total)
    }

    async fn count_of(&self, pk: String) -> Result<u32, StoreError> {
        match self.get_item(pk, keys::LIMIT_SK).await? {
            Some(item) => item.number(COUNT),
            None => Ok(0),
        }
    }

    /// A counter's update for a transaction (`announced`: see [`counter_write`]).
    fn counter(
        &self,
        pk: String,
        (max, units): (u32, u32),
        window_end: OffsetDateTime,
        announced: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let write = counter_write(max, units, window_end, announced);
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(pk))
            .key(SK, s(keys::LIMIT_SK))
            .update_expression(write.expression)
            .condition_expression(write.condition)
            .set_expression_attribute_names(Some(write.names))
            .set_expression_attribute_values(Some(write.values))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// The untrusted share of a budget of `max`: `percent` of it, rounded down.
pub fn untrusted_share(max: u32, percent: u32) -> u32 {
    (u64::from(max) * u64::from(percent) / 100) as u32
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
    fn a_budget_is_split_into_shards_that_add_up_to_it_exactly() {
        assert_eq!(shards_for(1), 1);
        assert_eq!(shards_for(100), 1);
        assert_eq!(shards_for(250), 3);
        assert_eq!(shards_for(10_000), 100);
        assert_eq!(shards_for(100_000_000), MAX_SHARDS);
        for max in [1, 10, 99, 100, 101, 999, 1000, 1234, 100_000, 18_000_000] {
            let shards = shards_for(max);
            let total: u32 = (0..shards).map(|i| shard_capacity(max, shards, i)).sum();
            assert_eq!(total, max);
        }
    }

    #[test]
    fn a_shard_is_picked_among_those_not_tried() {
        for _ in 0..200 {
            let picked = pick_shard(5, &[0, 1, 3]);
            assert!(picked == 2 || picked == 4, "{picked}");
            assert_eq!(pick_shard(3, &[0, 2]), 1);
            assert!(pick_shard(2, &[0, 1]) < 2);
            assert_eq!(pick_shard(1, &[]), 0);
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
