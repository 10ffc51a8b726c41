//! Erasure: every item that holds a phone number, found and removed (`stackctl erase`).
//!
//! The number can be anywhere: in a key (codes, cooldowns, trust, limit and failure counters,
//! its history partition), in an attribute (sessions, SMS log entries, idempotency records
//! holding a response, call events) or in the other party's record of a call. Not every one is
//! reachable by a key or an index (an SMS log entry is keyed by its id, a failure counter by
//! the phone and a network), so the table is scanned: one read of every item, a few dollars
//! per 100 GB on demand, for a request that comes rarely and must miss nothing.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{GSI1_PK, PK, POOL_PK, SK, history_gsi_pk};
use super::{Store, StoreError};
use crate::call::ERASED;
use crate::phone::PhoneNumber;

/// What an erasure did, by kind of item (the partition key's prefix: `SESSION`, `CODE`,
/// `LIMIT`, `CALL`, ...).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Items removed: the number's own.
    pub deleted: BTreeMap<String, usize>,
    /// Items kept with the number replaced by `erased`: the other party's call records and
    /// the call events (kept so that a redelivered event is still known).
    pub redacted: BTreeMap<String, usize>,
}

/// Whether `text` holds `number` as a whole number (not as the start of a longer one).
pub fn mentions(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        !text[at + number.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Whether any string in `value` (maps and lists included) holds `number`.
pub fn value_mentions(value: &AttributeValue, number: &str) -> bool {
    match value {
        AttributeValue::S(s) => mentions(s, number),
        AttributeValue::Ss(list) => list.iter().any(|s| mentions(s, number)),
        AttributeValue::L(list) => list.iter().any(|v| value_mentions(v, number)),
        AttributeValue::M(map) => map.values().any(|v| value_mentions(v, number)),
        _ => false,
    }
}

fn redact(value: &AttributeValue, number: &str) -> AttributeValue {
    let text = |s: &str| {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find(number) {
            let after = &rest[at + number.len()..];
            out.push_str(&rest[..at]);
            if after.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                out.push_str(number);
            } else {
                out.push_str(ERASED);
            }
            rest = after;
        }
        out.push_str(rest);
        out
    };
    match value {
        AttributeValue::S(s) => AttributeValue::S(text(s)),
        AttributeValue::Ss(list) => AttributeValue::Ss(list.iter().map(|s| text(s)).collect()),
        AttributeValue::L(list) => {
            AttributeValue::L(list.iter().map(|v| redact(v, number)).collect())
        }
        AttributeValue::M(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), redact(v, number)))
                .collect(),
        ),
        other => other.clone(),
    }
}

enum Action {
    Delete,
    Redact,
}

fn action(item: &HashMap<String, AttributeValue>, pk: &str, number: &PhoneNumber) -> Action {
    let own_history =
        item.get(GSI1_PK).and_then(|v| v.as_s().ok()) == Some(&history_gsi_pk(number));
    if (pk.starts_with("CALL#") && !own_history) || pk.starts_with("EVENT#") {
        Action::Redact
    } else {
        Action::Delete
    }
}

impl Store {
    /// Removes every item that holds `number` (see the module's note); in the other party's
    /// call records and in call events the number becomes `erased`. The pool (the service's
    /// own numbers) is left alone. Safe to run again: a second run finds nothing.
    pub async fn erase(&self, number: &PhoneNumber) -> Result<Erased, StoreError> {
        let mut erased = Erased::default();
        let mut start = None;
        loop {
            let page = self
                .client()
                .scan()
                .table_name(self.table())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::sdk("Scan", e))?;
            for item in page.items() {
                let Some(pk) = item.get(PK).and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                if pk == POOL_PK || !item.values().any(|v| value_mentions(v, number.as_str())) {
                    continue;
                }
                let kind = pk.split('#').next().unwrap_or(pk).to_owned();
                match action(item, pk, number) {
                    Action::Delete => {
                        let key = [PK, SK]
                            .into_iter()
                            .filter_map(|k| Some((k.to_owned(), item.get(k)?.clone())))
                            .collect();
                        self.client()
                            .delete_item()
                            .table_name(self.table())
                            .set_key(Some(key))
                            .send()
                            .await
                            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
                        *erased.deleted.entry(kind).or_default() += 1;
                    }
                    Action::Redact => {
                        let redacted = item
                            .iter()
                            .map(|(k, v)| (k.clone(), redact(v, number.as_str())))
                            .collect();
                        self.client()
                            .put_item()
                            .table_name(self.table())
                            .set_item(Some(redacted))
                            .send()
                            .await
                            .map_err(|e| StoreError::sdk("PutItem", e))?;
                        *erased.redacted.entry(kind).or_default() += 1;
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(erased),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_found_whole_and_replaced_whole() {
        let n = "+14155550123";
        assert!(mentions(
            "LIMIT#code-failures-net#+14155550123#10.0.0.0/24#20000",
            n
        ));
        assert!(mentions("+14155550123", n));
        assert!(
            !mentions("+141555501234", n),
            "a longer number is another number"
        );
        assert!(!mentions("+1415555012", n));
        let v = AttributeValue::S("c1|INITIATE|+14155550123|+141555501234|5".into());
        assert_eq!(
            redact(&v, n),
            AttributeValue::S("c1|INITIATE|erased|+141555501234|5".into())
        );
        let nested = AttributeValue::M(HashMap::from([(
            "to".to_owned(),
            AttributeValue::L(vec![AttributeValue::S(n.into())]),
        )]));
        assert!(value_mentions(&nested, n));
        assert!(!value_mentions(&redact(&nested, n), n));
    }
}
