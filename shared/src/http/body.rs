//! JSON request bodies: size and media type checked, and errors that name the field.

use lambda_http::Request;
use lambda_http::http::header;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The largest body any endpoint accepts; the biggest legitimate one is a batch of events.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body as a JSON object deserialised into `T`.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let value = json_value(req)?;
    if !value.is_object() {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    }
    from_value(value)
}

/// The body as any JSON value (for endpoints that take an object or an array). It must say
/// it is JSON: without `Content-Type: application/json` it is a 415, so that no web page can
/// post to the API as a CORS-simple request (no header, or a form type) from its visitors'
/// browsers and addresses.
pub fn json_value(req: &Request) -> Result<serde_json::Value, ApiError> {
    match media_type(req).as_deref() {
        Some(m)
            if m == "application/json"
                || (m.starts_with("application/") && m.ends_with("+json")) => {}
        _ => return Err(ApiError::UnsupportedMediaType),
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson("the body is empty".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidJson(strip_position(&e.to_string())))
}

/// The body's media type (`Content-Type` without parameters, lowercase), if it has one.
pub fn media_type(req: &Request) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
}

/// An optional field that may be left out but not sent as `null` (no type of the contract has
/// null): `#[serde(default, deserialize_with = "not_null")]`.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Deserialises a JSON value, naming the field at fault on error.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    let err = match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let path = err.path().to_string();
    let message = strip_position(&err.into_inner().to_string());
    // serde reports a missing or unknown field at the parent's path; name the field itself.
    if let Some(name) = quoted_name(&message, "missing field `") {
        return Err(ApiError::field(join(&path, name), "is required"));
    }
    if let Some(name) = quoted_name(&message, "unknown field `") {
        let field = if path.ends_with(name) {
            path.clone()
        } else {
            join(&path, name)
        };
        return Err(ApiError::field(field, "is not a known field"));
    }
    if path == "." {
        return Err(ApiError::InvalidJson(message));
    }
    Err(ApiError::field(path, message))
}

fn join(path: &str, name: &str) -> String {
    if path == "." {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn quoted_name<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// serde_json appends "at line 1 column 17": useful in a log, noise in an API answer.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::PhoneNumber;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        phone_number: PhoneNumber,
        count: Option<u32>,
    }

    fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        if !value.is_object() {
            return Err(ApiError::InvalidJson("not an object".into()));
        }
        from_value(value)
    }

    fn field_of(body: &str) -> (String, String) {
        match parse::<Probe>(body.as_bytes()) {
            Err(ApiError::InvalidField { field, detail }) => (field, detail),
            other => panic!("expected a field error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        assert_eq!(field_of("{}").0, "phone_number");
        assert_eq!(field_of(r#"{"phone_number":"+14155550123","x":1}"#).0, "x");
        let (field, detail) = field_of(r#"{"phone_number":"0123"}"#);
        assert_eq!(field, "phone_number");
        assert!(detail.contains("E.164"), "{detail}");
        assert_eq!(
            field_of(r#"{"phone_number":"+14155550123","count":"many"}"#).0,
            "count"
        );
        assert_eq!(field_of(r#"{"phone_number":12}"#).0, "phone_number");
    }

    #[test]
    fn syntax_errors_and_wrong_top_level_types_are_invalid_json() {
        assert!(matches!(
            parse::<Probe>(b"{\"phone_number\":"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse::<Probe>(b"[1,2]"),
            Err(ApiError::InvalidJson(_))
        ));
    }
}
