//! Opaque pagination cursors: DynamoDB's last evaluated key, sealed with an HMAC over the
//! number and filters it was issued for, so that a client can neither forge one nor reuse it
//! for another number's history.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secrets::TokenKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this API issued for this query")]
pub struct CursorError;

fn mac(key: &[u8], scope: &str, payload: &str) -> Hmac<Sha256> {
    // A key of any length is accepted by HMAC, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"history-cursor\x00");
    mac.update(scope.as_bytes());
    mac.update(b"\x00");
    mac.update(payload.as_bytes());
    mac
}

impl Cursor {
    /// `kid.payload.tag`: the id of the key that sealed it, then the keys and their HMAC.
    pub fn seal(&self, keys: &TokenKeys, scope: &str) -> String {
        let key = &keys.current;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.keys).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(mac(key.bytes(), scope, &payload).finalize().into_bytes());
        format!("{}.{payload}.{tag}", key.kid)
    }

    /// The id of the key that sealed `token`, if it names one.
    pub fn key_id(token: &str) -> Option<&str> {
        let (kid, rest) = token.split_once('.')?;
        rest.contains('.').then_some(kid)
    }

    /// Opens a cursor sealed by the current key or the previous one (a cursor without a key
    /// id is the current key's: those were issued before keys had ids).
    pub fn open(token: &str, keys: &TokenKeys, scope: &str) -> Result<Cursor, CursorError> {
        let kid = Cursor::key_id(token);
        let sealed = match kid {
            Some(kid) => &token[kid.len() + 1..],
            None => token,
        };
        let key = keys.by_kid(kid).ok_or(CursorError)?;
        let (payload, tag) = sealed.split_once('.').ok_or(CursorError)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError)?;
        mac(key.bytes(), scope, payload)
            .verify_slice(&tag)
            .map_err(|_| CursorError)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| CursorError)?;
        let keys = serde_json::from_slice(&json).map_err(|_| CursorError)?;
        Ok(Cursor { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SigningKey;

    fn keys(current: &str, previous: Option<&str>) -> TokenKeys {
        TokenKeys {
            current: SigningKey::new(current.to_owned().into()),
            previous: previous.map(|p| SigningKey::new(p.to_owned().into())),
        }
    }

    #[test]
    fn a_cursor_opens_only_with_its_key_and_scope() {
        let cursor = Cursor {
            keys: BTreeMap::from([("pk".into(), "CALL#1".into())]),
        };
        let key = keys("key", None);
        let sealed = cursor.seal(&key, "+14155550101");
        assert_eq!(
            Cursor::open(&sealed, &key, "+14155550101"),
            Ok(cursor.clone())
        );
        assert!(Cursor::open(&sealed, &key, "+14155550102").is_err());
        assert!(Cursor::open(&sealed, &keys("other", None), "+14155550101").is_err());
        let mut forged = sealed.clone();
        let at = sealed.find('.').unwrap() + 1;
        forged.replace_range(at..at + 1, "A");
        assert!(Cursor::open(&forged, &key, "+14155550101").is_err() || forged == sealed);
        assert!(Cursor::open("garbage", &key, "+14155550101").is_err());
        assert!(Cursor::open("a.b.c", &key, "+14155550101").is_err());
    }

    #[test]
    fn after_a_rotation_the_previous_keys_cursors_still_open() {
        let cursor = Cursor {
            keys: BTreeMap::from([("pk".into(), "CALL#1".into())]),
        };
        let sealed = cursor.seal(&keys("old", None), "s");
        assert_eq!(
            Cursor::open(&sealed, &keys("new", Some("old")), "s"),
            Ok(cursor.clone())
        );
        // Two rotations on, the key is gone and so are its cursors.
        assert!(Cursor::open(&sealed, &keys("newer", Some("new")), "s").is_err());
        // A cursor without a key id (issued before ids) is the current key's.
        let legacy = sealed.split_once('.').unwrap().1;
        assert_eq!(Cursor::open(legacy, &keys("old", None), "s"), Ok(cursor));
    }
}
