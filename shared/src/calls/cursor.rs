//! Opaque pagination cursors: DynamoDB's last evaluated key, sealed with an HMAC over the
//! number and filters it was issued for, so that a client can neither forge one nor reuse it
//! for another number's history.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
    pub fn seal(&self, key: &[u8], scope: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.keys).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(mac(key, scope, &payload).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    pub fn open(token: &str, key: &[u8], scope: &str) -> Result<Cursor, CursorError> {
        let (payload, tag) = token.split_once('.').ok_or(CursorError)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError)?;
        mac(key, scope, payload)
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

    #[test]
    fn a_cursor_opens_only_with_its_key_and_scope() {
        let cursor = Cursor {
            keys: BTreeMap::from([("pk".into(), "CALL#1".into())]),
        };
        let sealed = cursor.seal(b"key", "+14155550101");
        assert_eq!(Cursor::open(&sealed, b"key", "+14155550101"), Ok(cursor));
        assert!(Cursor::open(&sealed, b"key", "+14155550102").is_err());
        assert!(Cursor::open(&sealed, b"other", "+14155550101").is_err());
        let mut forged = sealed.clone();
        forged.replace_range(0..1, "A");
        assert!(Cursor::open(&forged, b"key", "+14155550101").is_err() || forged == sealed);
        assert!(Cursor::open("garbage", b"key", "+14155550101").is_err());
    }
}
