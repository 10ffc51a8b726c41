//! The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header): reading
//! it, and answering a replay.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};

use super::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The longest key accepted (a UUID is 36 characters; the draft sets no bound).
pub const MAX_KEY_LEN: usize = 255;

/// The request's key, if it sent one: 1 to 255 visible ASCII characters. The draft's
/// structured-field string form (`"..."`) is accepted and unquoted.
pub fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::field(
            "Idempotency-Key",
            format!("must be one header of 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let key = text
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// The first response to a key, again, marked as a replay.
pub fn replayed(status: u16, body: String) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = super::response::json_text(status, body);
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(values: &[&str]) -> Request {
        let mut builder = lambda_http::http::Request::builder();
        for value in values {
            builder = builder.header(IDEMPOTENCY_KEY, *value);
        }
        builder.body(Body::Empty).unwrap()
    }

    #[test]
    fn a_key_is_one_header_of_visible_ascii_quoted_or_not() {
        assert_eq!(idempotency_key(&request(&[])).unwrap(), None);
        assert_eq!(
            idempotency_key(&request(&["8e03978e-40d5-43e8-bc93-6894a57f9324"])).unwrap(),
            Some("8e03978e-40d5-43e8-bc93-6894a57f9324".into())
        );
        assert_eq!(
            idempotency_key(&request(&["\"order-1\""])).unwrap(),
            Some("order-1".into()),
            "the draft's structured-field string"
        );
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        for bad in [&["a b"][..], &["\"\""], &[too_long.as_str()], &["a", "b"]] {
            assert!(idempotency_key(&request(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_replay_is_the_stored_json_marked_as_replayed() {
        let response = replayed(202, r#"{"id":"x"}"#.into());
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()[IDEMPOTENT_REPLAYED], "true");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
}
