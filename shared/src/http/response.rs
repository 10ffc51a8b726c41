//! JSON responses, and the TwiML of an incoming call.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response. Serialising our own response types cannot fail; if it ever did, the
/// client gets an empty 500 rather than a panic.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::from("{}")),
    };
    json_text(status, text)
}

/// A TwiML document: Twilio's answer to a call made to one of our numbers.
pub fn twiml(text: &'static str) -> Response<Body> {
    text_response(StatusCode::OK, "text/xml; charset=utf-8", text.to_owned())
}

/// A response of JSON already serialised (a stored response, replayed).
pub fn json_text(status: StatusCode, text: String) -> Response<Body> {
    text_response(status, "application/json", text)
}

fn text_response(status: StatusCode, content_type: &'static str, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Sessions, tokens and histories are personal: no shared cache may keep them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
