//! Verification events for custom logic, read from the table's DynamoDB stream (nothing is added
//! to the request path): a record of the stream becomes at most one event. The example consumer
//! (`functions/verification-events`, an EventBridge Pipes enrichment) puts them on an event bus.
//!
//! | `type` | from |
//! |---|---|
//! | `verification.succeeded` | a session or code verification turning `verified` |
//! | `verification.failed` | a wrong answer counted (attempts up, still pending) |
//! | `call.sent` | a flash call's SID stored (the provider took the call) |
//! | `session.expired` | DynamoDB's TTL deleting a session or code still pending |
//! | `rate_limit.reached` | a guard counter reaching its maximum: the next request in its window is refused |
//! | `telephony.error` | a call that could not be placed, a message `failed` or `undelivered` |
//! | `destination.quarantined` | a number block or country quarantined for its conversion (`mode`: `enforce`, or `monitor`: nothing refused) |

use serde_json::{Value, json};

/// The events of a batch of stream records (an array, as EventBridge Pipes hands an
/// enrichment; a single record is taken too), in order: what the pipe puts on the bus.
pub fn from_stream_batch(batch: &Value) -> Vec<Value> {
    match batch {
        Value::Array(records) => records.iter().filter_map(from_stream_record).collect(),
        record => from_stream_record(record).into_iter().collect(),
    }
}

/// The event of one stream record (`eventName`, `dynamodb.OldImage`/`NewImage`,
/// `userIdentity`), if it is one of the six signals.
pub fn from_stream_record(record: &Value) -> Option<Value> {
    let name = record["eventName"].as_str()?;
    let data = &record["dynamodb"];
    let new = Image(&data["NewImage"]);
    let old = Image(&data["OldImage"]);
    let pk = new
        .string("pk")
        .or_else(|| old.string("pk"))
        .or_else(|| Image(&data["Keys"]).string("pk"))?;
    let kind = pk.split('#').next()?;
    match (kind, name) {
        ("SESSION" | "CODE", "MODIFY") => verification_change(kind, &old, &new),
        ("SESSION" | "CODE", "REMOVE") if removed_by_ttl(record) => {
            (old.string("state") == Some("pending")).then(|| {
                json!({
                    "type": "session.expired",
                    "channel": channel(kind, &old),
                    "verification_id": verification_id(kind, pk, &old),
                    "phone_number": old.string("phone").or_else(|| pk.strip_prefix("CODE#")),
                })
            })
        }
        ("LIMIT", "INSERT" | "MODIFY") => {
            let count = new.number("count")?;
            let max = new.number("max")?;
            let before = old.number("count").unwrap_or(0);
            (count >= max && before < max).then(|| {
                // LIMIT#<counter>#<subject>#<window>: the subject is a phone, an IP address or
                // a budget's shard (country#1#0, global#3).
                let (_, rest) = pk.split_once('#')?;
                let (counter_and_subject, _window) = rest.rsplit_once('#')?;
                let (counter, subject) = counter_and_subject.split_once('#')?;
                Some(json!({
                    "type": "rate_limit.reached",
                    "counter": counter,
                    "subject": subject,
                    "max": max,
                }))
            })?
        }
        ("QUARANTINE", "INSERT" | "MODIFY") => {
            let until = new.number("until")?;
            let released = new.string("mode") == Some("released");
            (old.number("until") != Some(until) && !released).then(|| {
                json!({
                    "type": "destination.quarantined",
                    "destination": new.string("sk"),
                    "kind": new.string("kind"),
                    "mode": new.string("mode"),
                    "until_ms": until,
                    "sends": new.number("sends"),
                    "verified": new.number("verified"),
                })
            })
        }
        ("MESSAGE", "MODIFY") => {
            let status = new.string("status")?;
            let failed = matches!(status, "failed" | "undelivered");
            (failed && old.string("status") != Some(status)).then(|| {
                json!({
                    "type": "telephony.error",
                    "channel": "sms",
                    "message_id": pk.strip_prefix("MESSAGE#"),
                    "status": status,
                    "error_code": new.number("error_code"),
                })
            })
        }
        _ => None,
    }
}

fn verification_change(kind: &str, old: &Image, new: &Image) -> Option<Value> {
    let pk = new.string("pk")?;
    let id = verification_id(kind, pk, new);
    let phone = new.string("phone").or_else(|| pk.strip_prefix("CODE#"));
    let (was, is) = (old.string("state")?, new.string("state")?);
    let attempts = if kind == "SESSION" {
        "attempts"
    } else {
        "checks"
    };
    if was == "pending" && is == "verified" {
        return Some(json!({
            "type": "verification.succeeded",
            "channel": channel(kind, new),
            "verification_id": id,
            "phone_number": phone,
            "verified_at_ms": new.number("verified_at"),
        }));
    }
    if was == "pending" && is == "failed" {
        return Some(json!({
            "type": "telephony.error",
            "channel": "flash_call",
            "verification_id": id,
            "phone_number": phone,
        }));
    }
    if is == "pending" && new.number(attempts)? > old.number(attempts).unwrap_or(0) {
        return Some(json!({
            "type": "verification.failed",
            "channel": channel(kind, new),
            "verification_id": id,
            "phone_number": phone,
            "attempts": new.number(attempts),
        }));
    }
    if kind == "SESSION" && old.string("call_sid").is_none() {
        let sid = new.string("call_sid")?;
        return Some(json!({
            "type": "call.sent",
            "channel": "flash_call",
            "verification_id": id,
            "phone_number": phone,
            "call_sid": sid,
        }));
    }
    None
}

/// How the verification of an item goes: a session's direction (`flash_call`,
/// `inbound_call`), a code's channel (`sms`, `voice`, `whatsapp`).
fn channel<'a>(kind: &str, image: &Image<'a>) -> &'a str {
    match (kind, image.string("direction"), image.string("channel")) {
        ("SESSION", Some("inbound"), _) => "inbound_call",
        ("SESSION", _, _) => "flash_call",
        (_, _, Some(channel)) => channel,
        _ => "sms",
    }
}

fn verification_id<'a>(kind: &str, pk: &'a str, image: &Image<'a>) -> Option<&'a str> {
    if kind == "SESSION" {
        pk.strip_prefix("SESSION#")
    } else {
        image.string("verification_id")
    }
}

/// Whether DynamoDB's TTL deleted the item (not a write of ours).
fn removed_by_ttl(record: &Value) -> bool {
    record["userIdentity"]["type"] == "Service"
        && record["userIdentity"]["principalId"] == "dynamodb.amazonaws.com"
}

/// An item image in DynamoDB's JSON (`{"name": {"S": "..."}}`).
struct Image<'a>(&'a Value);

impl<'a> Image<'a> {
    fn string(&self, name: &str) -> Option<&'a str> {
        self.0.get(name)?.get("S")?.as_str()
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.0.get(name)?.get("N")?.as_str()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, old: Value, new: Value) -> Value {
        json!({"eventName": name, "dynamodb": {"OldImage": old, "NewImage": new}})
    }

    fn session(state: &str, attempts: u32, call_sid: Option<&str>) -> Value {
        let mut item = json!({
            "pk": {"S": "SESSION#3f0c5b4e-8d2a-4c1e-9b7f-2a6d8e4c1b90"},
            "phone": {"S": "+14155550123"},
            "state": {"S": state},
            "attempts": {"N": attempts.to_string()},
            "verified_at": {"N": "1795255200000"},
        });
        if let Some(sid) = call_sid {
            item["call_sid"] = json!({"S": sid});
        }
        item
    }

    #[test]
    fn session_changes_are_the_flash_call_signals() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        let sent = from_stream_record(&record(
            "MODIFY",
            session("pending", 0, None),
            session("pending", 0, Some(sid)),
        ))
        .unwrap();
        assert_eq!(sent["type"], "call.sent");
        assert_eq!(sent["call_sid"], sid);
        let failed = from_stream_record(&record(
            "MODIFY",
            session("pending", 0, Some(sid)),
            session("pending", 1, Some(sid)),
        ))
        .unwrap();
        assert_eq!(failed["type"], "verification.failed");
        assert_eq!(failed["attempts"], 1);
        let ok = from_stream_record(&record(
            "MODIFY",
            session("pending", 1, Some(sid)),
            session("verified", 2, Some(sid)),
        ))
        .unwrap();
        assert_eq!(ok["type"], "verification.succeeded");
        assert_eq!(ok["phone_number"], "+14155550123");
        let not_placed = from_stream_record(&record(
            "MODIFY",
            session("pending", 0, None),
            session("failed", 0, None),
        ))
        .unwrap();
        assert_eq!(not_placed["type"], "telephony.error");
        // A call status callback moving `call_status` is no signal.
        assert!(
            from_stream_record(&record(
                "MODIFY",
                session("pending", 1, Some(sid)),
                session("pending", 1, Some(sid)),
            ))
            .is_none()
        );
    }

    #[test]
    fn the_channel_is_the_sessions_direction_or_the_codes_channel() {
        let mut inbound = session("verified", 1, None);
        inbound["direction"] = json!({"S": "inbound"});
        let ok =
            from_stream_record(&record("MODIFY", session("pending", 0, None), inbound)).unwrap();
        assert_eq!(ok["channel"], "inbound_call");
        let code = |state: &str, channel: Option<&str>| {
            let mut item = json!({"pk": {"S": "CODE#+14155550123"}, "state": {"S": state},
                                  "checks": {"N": "1"}, "verified_at": {"N": "1"}});
            if let Some(channel) = channel {
                item["channel"] = json!({"S": channel});
            }
            item
        };
        for (stored, expected) in [
            (Some("voice"), "voice"),
            (Some("whatsapp"), "whatsapp"),
            (None, "sms"),
        ] {
            let ok = from_stream_record(&record(
                "MODIFY",
                code("pending", stored),
                code("verified", stored),
            ))
            .unwrap();
            assert_eq!(ok["type"], "verification.succeeded");
            assert_eq!(ok["channel"], expected);
        }
    }

    #[test]
    fn ttl_removals_of_pending_items_are_expiries_and_ours_are_not() {
        let mut removed = json!({
            "eventName": "REMOVE",
            "dynamodb": {"OldImage": session("pending", 0, None)},
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        });
        assert_eq!(
            from_stream_record(&removed).unwrap()["type"],
            "session.expired"
        );
        removed["userIdentity"] = Value::Null;
        assert!(from_stream_record(&removed).is_none());
    }

    #[test]
    fn a_counter_reaching_its_maximum_is_a_limit_reached_once() {
        let counter = |count: u32| {
            json!({"pk": {"S": "LIMIT#flash-phone-day#+14155550123#20778"},
                   "count": {"N": count.to_string()}, "max": {"N": "10"}})
        };
        let reached = from_stream_record(&record("MODIFY", counter(9), counter(10))).unwrap();
        assert_eq!(reached["type"], "rate_limit.reached");
        assert_eq!(reached["counter"], "flash-phone-day");
        assert_eq!(reached["subject"], "+14155550123");
        assert!(from_stream_record(&record("MODIFY", counter(8), counter(9))).is_none());
    }

    #[test]
    fn a_new_quarantine_is_an_event_once() {
        let quarantine = |until: u64| {
            json!({"pk": {"S": "QUARANTINE"}, "sk": {"S": "+1415555"}, "kind": {"S": "block"},
                   "mode": {"S": "monitor"}, "until": {"N": until.to_string()},
                   "sends": {"N": "12"}, "verified": {"N": "1"}})
        };
        let event = from_stream_record(&record("INSERT", Value::Null, quarantine(5))).unwrap();
        assert_eq!(event["type"], "destination.quarantined");
        assert_eq!(event["destination"], "+1415555");
        assert_eq!(event["mode"], "monitor");
        assert_eq!(
            (event["sends"].clone(), event["verified"].clone()),
            (json!(12), json!(1))
        );
        assert!(from_stream_record(&record("MODIFY", quarantine(5), quarantine(5))).is_none());
        let override_ = json!({"pk": {"S": "QUARANTINE_OVERRIDE"}, "sk": {"S": "+1415555"}});
        assert!(from_stream_record(&record("INSERT", Value::Null, override_)).is_none());
    }

    #[test]
    fn a_failed_message_is_a_telephony_error() {
        let message = |status: &str| {
            json!({"pk": {"S": "MESSAGE#3f0c5b4e-8d2a-4c1e-9b7f-2a6d8e4c1b90"},
                   "status": {"S": status}, "error_code": {"N": "30003"}})
        };
        let error =
            from_stream_record(&record("MODIFY", message("sent"), message("undelivered"))).unwrap();
        assert_eq!(error["type"], "telephony.error");
        assert_eq!(error["error_code"], 30003);
        assert!(
            from_stream_record(&record("MODIFY", message("queued"), message("sent"))).is_none()
        );
    }
}
