//! What a request carries besides its body: path and query parameters, the client IP, the
//! request id and a bearer token.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::ApiError;

/// The client's IP as API Gateway saw it (the local API sets it from the socket).
pub fn client_ip(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The API's public base URL: the configured one, or the domain API Gateway was called on
/// (set by API Gateway, not by the client).
pub fn public_base_url(req: &Request, configured: Option<&str>) -> Option<String> {
    if let Some(url) = configured {
        return Some(url.to_owned());
    }
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx
            .domain_name
            .as_deref()
            .map(|domain| format!("https://{domain}")),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

pub fn request_id(req: &Request) -> String {
    let from_gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    from_gateway
        .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(|| "-".to_owned())
}

/// A path parameter declared by the route (`/auth/status/{session_id}`), percent-decoded
/// (HTTP APIs pass `%2B14155550123` through as it was sent).
pub fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    let raw = req
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .ok_or_else(|| ApiError::field(name, "is required in the path"))?;
    percent_decode(raw).ok_or_else(|| ApiError::field(name, "is not valid UTF-8 once decoded"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// The token of an `Authorization: Bearer ...` header, if there is one.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(lambda_http::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
