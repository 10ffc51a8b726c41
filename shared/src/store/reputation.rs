//! What the guard knows of phones and destinations (its policy is `guard`): trust records of
//! phones that verified, and for each number block and country its sends and the verifications
//! that came of them (per bucket of time), its quarantine and the operator's override. A
//! request reads all it needs of them in one BatchGetItem.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::item::{Item, millis_av, n, s, ttl_av};
use super::keys::{self, PK, SK, TTL};
use super::{StoreError, condition_failed, view};
use crate::phone::PhoneNumber;

view! {
    /// Trust records, conversion counts, quarantines and overrides.
    Reputation
}

const UNTIL: &str = "until";
const VERIFIED_AT: &str = "verified_at";
const MODE: &str = "mode";
const SENDS: &str = "sends";
const VERIFIED: &str = "verified";
const SINCE: &str = "since";
const OVERRIDE: &str = "override";
const SET_AT: &str = "set_at";
/// The mode of a quarantine an operator lifted.
pub const RELEASED: &str = "released";

/// A destination the quarantine judges: a block of 10,000 numbers or a country.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// The E.164 number less its last four digits (`+1415555`).
    Block(String),
    /// A country calling code.
    Country(u16),
}

impl Destination {
    pub fn block_of(phone: &PhoneNumber) -> Self {
        Destination::Block(super::rate_limits::number_block(phone).to_owned())
    }

    pub fn country_of(phone: &PhoneNumber) -> Self {
        Destination::Country(phone.country_code())
    }

    /// As stored and as an operator types it: `+1415555`, or `country:44`.
    pub fn key(&self) -> String {
        match self {
            Destination::Block(block) => block.clone(),
            Destination::Country(code) => format!("country:{code}"),
        }
    }

    /// Reads what [`Destination::key`] writes (`country:+44` and `country:44` alike).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(code) = text.strip_prefix("country:") {
            let code: u16 = code.trim_start_matches('+').parse().ok()?;
            return (1..=999)
                .contains(&code)
                .then_some(Destination::Country(code));
        }
        let digits = text.strip_prefix('+')?;
        let ok = (1..=14).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        ok.then(|| Destination::Block(text.to_owned()))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Block(_) => "block",
            Destination::Country(_) => "country",
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// An operator's standing decision on a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// Never quarantined.
    Allow,
    /// Always refused.
    Deny,
}

impl Override {
    pub fn as_str(self) -> &'static str {
        match self {
            Override::Allow => "allow",
            Override::Deny => "deny",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "allow" => Some(Override::Allow),
            "deny" => Some(Override::Deny),
            _ => None,
        }
    }
}

/// The buckets conversion counts are kept in: `len` seconds each, grouped into items of one
/// window (`epoch`) each, so that a window's counts are in at most two items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub window_secs: i64,
    pub len_secs: i64,
}

impl Buckets {
    /// Sixty buckets a window (a minute each for the default hour).
    pub fn for_window(window_secs: i64) -> Self {
        Buckets {
            window_secs: window_secs.max(1),
            len_secs: (window_secs / 60).max(1),
        }
    }

    fn index(&self, t: OffsetDateTime) -> i64 {
        t.unix_timestamp().div_euclid(self.len_secs)
    }

    fn epoch(&self, bucket: i64) -> i64 {
        (bucket * self.len_secs).div_euclid(self.window_secs)
    }
}

/// The sends of one bucket and how many of them verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// When the bucket ends (every send in it is older than this).
    pub ends_at: OffsetDateTime,
    pub sends: u32,
    pub verified: u32,
}

/// A quarantine in force (or, in monitor mode, that would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub until: OffsetDateTime,
    pub since: OffsetDateTime,
    pub mode: String,
    /// The counted sends and their verifications when it was decided.
    pub sends: u32,
    pub verified: u32,
}

/// What is known of one destination.
#[derive(Debug, Clone, Default)]
pub struct DestinationStanding {
    pub quarantine: Option<Quarantine>,
    pub override_: Option<Override>,
    pub buckets: Vec<Bucket>,
}

/// What one request needs to know: whether its phone verified recently, and its block's and
/// country's standing.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    pub trusted_until: Option<OffsetDateTime>,
    pub block: DestinationStanding,
    pub country: DestinationStanding,
}

fn trust_pk(phone: &PhoneNumber) -> String {
    format!("TRUST#{phone}")
}
const TRUST_SK: &str = "TRUST";
const QUARANTINE_PK: &str = "QUARANTINE";
const OVERRIDE_PK: &str = "QUARANTINE_OVERRIDE";
/// One shard of a destination's conversion counts in one window epoch.
fn stats_pk(d: &Destination, epoch: i64, shard: u32) -> String {
    format!("QSTAT#{}#{epoch}#{shard}", d.key())
}

/// How many items each destination's conversion counts are spread over (a country's take a
/// write for each of its sends: at 5,000 a second, one item would be over DynamoDB's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatShards {
    pub block: u32,
    pub country: u32,
}

impl StatShards {
    pub fn of(&self, d: &Destination) -> u32 {
        match d {
            Destination::Block(_) => self.block,
            Destination::Country(_) => self.country,
        }
        .max(1)
    }

    /// A random shard of `d`'s.
    pub fn pick(&self, d: &Destination) -> u32 {
        crate::id::random_below(self.of(d).into()) as u32
    }
}
const STATS_SK: &str = "QSTAT";

fn quarantine_from(item: &Item) -> Result<Quarantine, StoreError> {
    Ok(Quarantine {
        until: item.time(UNTIL)?,
        since: item.time(SINCE)?,
        mode: item.string(MODE)?.to_owned(),
        sends: item.number(SENDS)?,
        verified: item.number(VERIFIED)?,
    })
}

impl Reputation {
    /// Everything the guard reads for one send to `phone`, in one BatchGetItem (eventually
    /// consistent: a quarantine decided a moment ago may be seen a moment late). Without
    /// `buckets`, only the phone's trust is read.
    pub async fn standing(
        &self,
        phone: &PhoneNumber,
        buckets: Option<(Buckets, StatShards)>,
        now: OffsetDateTime,
    ) -> Result<Standing, StoreError> {
        let mut wanted = vec![keys::item_key(trust_pk(phone), TRUST_SK)];
        let destinations = [Destination::block_of(phone), Destination::country_of(phone)];
        if let Some((b, shards)) = buckets {
            let epoch = b.epoch(b.index(now));
            for d in &destinations {
                wanted.push(keys::item_key(QUARANTINE_PK.to_owned(), &d.key()));
                wanted.push(keys::item_key(OVERRIDE_PK.to_owned(), &d.key()));
                for shard in 0..shards.of(d) {
                    wanted.push(keys::item_key(stats_pk(d, epoch, shard), STATS_SK));
                    wanted.push(keys::item_key(stats_pk(d, epoch - 1, shard), STATS_SK));
                }
            }
        }
        let items = self.batch_get_all(wanted).await?;
        let mut standing = Standing::default();
        for item in items {
            let pk = item.string(PK)?.to_owned();
            let sk = item.string(SK)?.to_owned();
            if pk.starts_with("TRUST#") {
                standing.trusted_until = Some(item.time(UNTIL)?);
                continue;
            }
            let Some((b, _)) = buckets else { continue };
            let which = |key: &str| {
                if key == destinations[0].key() {
                    Some(0)
                } else if key == destinations[1].key() {
                    Some(1)
                } else {
                    None
                }
            };
            let (index, kind) = if pk == QUARANTINE_PK || pk == OVERRIDE_PK {
                (which(&sk), pk.as_str())
            } else if let Some(rest) = pk.strip_prefix("QSTAT#") {
                // `<destination>#<epoch>#<shard>`
                let subject = rest.rsplitn(3, '#').nth(2).unwrap_or_default();
                (which(subject), "QSTAT")
            } else {
                (None, "")
            };
            let Some(index) = index else { continue };
            let target = if index == 0 {
                &mut standing.block
            } else {
                &mut standing.country
            };
            match kind {
                QUARANTINE_PK => target.quarantine = Some(quarantine_from(&item)?),
                OVERRIDE_PK => {
                    target.override_ = item.opt_string(OVERRIDE).and_then(Override::parse)
                }
                _ => target.buckets.extend(buckets_of(&item, b)),
            }
        }
        for d in [&mut standing.block, &mut standing.country] {
            d.buckets = merged(std::mem::take(&mut d.buckets));
        }
        Ok(standing)
    }

    /// The write that counts one send to `d` at `at`, for the guard's transaction.
    pub fn count_send(
        &self,
        d: &Destination,
        at: OffsetDateTime,
        b: Buckets,
        shard: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self.bucket_update(d, at, b, shard, "s", 1)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The write that takes back a send counted by [`Reputation::count_send`] (its send never
    /// happened).
    pub fn uncount_send(
        &self,
        d: &Destination,
        at: OffsetDateTime,
        b: Buckets,
        shard: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self.bucket_update(d, at, b, shard, "s", -1)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Counts the verification of a send made at `sent_at` to `d`, in the send's bucket (of
    /// any shard: the shards are summed).
    pub async fn count_verified(
        &self,
        d: &Destination,
        sent_at: OffsetDateTime,
        b: Buckets,
        shard: u32,
    ) -> Result<(), StoreError> {
        let add = BucketAdd::new(d, sent_at, b, shard, "v", 1);
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(keys::item_key(add.pk, STATS_SK)))
            .update_expression(BUCKET_ADD)
            .expression_attribute_names("#b", add.attribute)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":by", n(add.by))
            .expression_attribute_values(":ttl", ttl_av(add.expires))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    fn bucket_update(
        &self,
        d: &Destination,
        at: OffsetDateTime,
        b: Buckets,
        shard: u32,
        what: &str,
        by: i64,
    ) -> Result<Update, StoreError> {
        let add = BucketAdd::new(d, at, b, shard, what, by);
        Ok(Update::builder()
            .table_name(self.table())
            .set_key(Some(keys::item_key(add.pk, STATS_SK)))
            .update_expression(BUCKET_ADD)
            .expression_attribute_names("#b", add.attribute)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":by", n(add.by))
            .expression_attribute_values(":ttl", ttl_av(add.expires))
            .build()?)
    }

    /// The write that makes `phone` trusted until `until`, for a verification's transaction.
    pub fn trust(
        &self,
        phone: &PhoneNumber,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table())
            .item(PK, s(trust_pk(phone)))
            .item(SK, s(TRUST_SK))
            .item(keys::KIND, s("trust"))
            .item(VERIFIED_AT, millis_av(now))
            .item(UNTIL, millis_av(until))
            .item(TTL, ttl_av(until))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Quarantines `d` until `q.until`, unless a quarantine is already in force at `now`:
    /// whether this call decided it (only one request reports a new quarantine).
    pub async fn quarantine(
        &self,
        d: &Destination,
        q: &Quarantine,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .item(PK, s(QUARANTINE_PK))
            .item(SK, s(d.key()))
            .item(keys::KIND, s(d.kind()))
            .item(UNTIL, millis_av(q.until))
            .item(SINCE, millis_av(q.since))
            .item(MODE, s(q.mode.as_str()))
            .item(SENDS, n(q.sends))
            .item(VERIFIED, n(q.verified))
            .item(TTL, ttl_av(q.until + time::Duration::days(1)))
            .condition_expression("attribute_not_exists(#until) OR #until <= :now")
            .expression_attribute_names("#until", UNTIL)
            .expression_attribute_values(":now", millis_av(now))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("PutItem", e)),
        }
    }

    /// Lifts `d`'s quarantine at `now` (the operator's `release`): whether one was in force.
    /// The record stays, ended at `now` (`mode: released`), so that only sends after the
    /// release are judged: the sends that made the quarantine do not make it again at once.
    pub async fn release(&self, d: &Destination, now: OffsetDateTime) -> Result<bool, StoreError> {
        let out = self
            .client()
            .put_item()
            .table_name(self.table())
            .item(PK, s(QUARANTINE_PK))
            .item(SK, s(d.key()))
            .item(keys::KIND, s(d.kind()))
            .item(UNTIL, millis_av(now))
            .item(SINCE, millis_av(now))
            .item(MODE, s(RELEASED))
            .item(SENDS, n(0))
            .item(VERIFIED, n(0))
            .item(TTL, ttl_av(now + time::Duration::days(1)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        let was = out
            .attributes
            .map(Item)
            .and_then(|old| quarantine_from(&old).ok())
            .is_some_and(|q| q.until > now);
        Ok(was)
    }

    /// Sets (or, with `None`, removes) the operator's override of `d`.
    pub async fn set_override(
        &self,
        d: &Destination,
        o: Option<Override>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let key = keys::item_key(OVERRIDE_PK.to_owned(), &d.key());
        match o {
            Some(o) => {
                self.client()
                    .put_item()
                    .table_name(self.table())
                    .set_item(Some(key))
                    .item(keys::KIND, s(d.kind()))
                    .item(OVERRIDE, s(o.as_str()))
                    .item(SET_AT, millis_av(now))
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("PutItem", e))?;
            }
            None => {
                self.client()
                    .delete_item()
                    .table_name(self.table())
                    .set_key(Some(key))
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("DeleteItem", e))?;
            }
        }
        Ok(())
    }

    /// Every quarantine still in force at `now` (or decided in monitor mode), and every
    /// override: for the operator.
    pub async fn list(
        &self,
        now: OffsetDateTime,
    ) -> Result<(Vec<(Destination, Quarantine)>, Vec<(Destination, Override)>), StoreError> {
        let mut quarantines = Vec::new();
        for item in self.partition(QUARANTINE_PK).await? {
            let Some(d) = Destination::parse(item.string(SK)?) else {
                continue;
            };
            let q = quarantine_from(&item)?;
            if q.until > now {
                quarantines.push((d, q));
            }
        }
        let mut overrides = Vec::new();
        for item in self.partition(OVERRIDE_PK).await? {
            if let (Some(d), Some(o)) = (
                Destination::parse(item.string(SK)?),
                item.opt_string(OVERRIDE).and_then(Override::parse),
            ) {
                overrides.push((d, o));
            }
        }
        Ok((quarantines, overrides))
    }

    async fn partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true);
        self.query_all(query).await
    }
}

const BUCKET_ADD: &str = "ADD #b :by SET #ttl = :ttl";

/// One bucket's count going up or down: its item, its attribute (`s<bucket>` for sends,
/// `v<bucket>` for verifications) and the item's expiry.
struct BucketAdd {
    pk: String,
    attribute: String,
    by: i64,
    expires: OffsetDateTime,
}

impl BucketAdd {
    fn new(
        d: &Destination,
        at: OffsetDateTime,
        b: Buckets,
        shard: u32,
        what: &str,
        by: i64,
    ) -> Self {
        let bucket = b.index(at);
        let epoch = b.epoch(bucket);
        BucketAdd {
            pk: stats_pk(d, epoch, shard),
            attribute: format!("{what}{bucket}"),
            by,
            // Readable for the window after its own, then DynamoDB may delete it.
            expires: OffsetDateTime::from_unix_timestamp((epoch + 2) * b.window_secs)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }
}

/// The buckets of a destination's shards, one per bucket, summed.
fn merged(buckets: Vec<Bucket>) -> Vec<Bucket> {
    let mut by_end: std::collections::BTreeMap<OffsetDateTime, Bucket> = Default::default();
    for b in buckets {
        by_end
            .entry(b.ends_at)
            .and_modify(|m| {
                m.sends += b.sends;
                m.verified += b.verified;
            })
            .or_insert(b);
    }
    by_end.into_values().collect()
}

/// The buckets of a stats item.
fn buckets_of(item: &Item, b: Buckets) -> Vec<Bucket> {
    let mut by_index: std::collections::BTreeMap<i64, (u32, u32)> = Default::default();
    for (name, value) in &item.0 {
        let (what, index) = name.split_at(1.min(name.len()));
        let (Ok(index), AttributeValue::N(count)) = (index.parse::<i64>(), value) else {
            continue;
        };
        let count: u32 = count.parse::<i64>().unwrap_or(0).max(0) as u32;
        let entry = by_index.entry(index).or_default();
        match what {
            "s" => entry.0 = count,
            "v" => entry.1 = count,
            _ => {}
        }
    }
    by_index
        .into_iter()
        .map(|(index, (sends, verified))| Bucket {
            ends_at: OffsetDateTime::from_unix_timestamp((index + 1) * b.len_secs)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            sends,
            verified,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_read_back_as_they_are_written() {
        for d in [
            Destination::Block("+1415555".into()),
            Destination::Country(44),
        ] {
            assert_eq!(Destination::parse(&d.key()), Some(d));
        }
        assert_eq!(
            Destination::parse("country:+1"),
            Some(Destination::Country(1))
        );
        for bad in ["", "1415555", "+0415", "country:0", "country:x", "+14a"] {
            assert_eq!(Destination::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_window_has_sixty_buckets_in_at_most_two_items() {
        let b = Buckets::for_window(3600);
        assert_eq!(b.len_secs, 60);
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let now = b.epoch(b.index(t));
        let hour_ago = b.epoch(b.index(t - time::Duration::seconds(3600)));
        assert!(now - hour_ago <= 1);
    }
}
