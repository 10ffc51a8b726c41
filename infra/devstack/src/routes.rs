//! The route table of `template.yaml`, and the dispatch of a request to its endpoint.

use std::collections::BTreeMap;

use lambda_http::{Body, Response};
use shared::Init;
use shared::calls::{CallEventEndpoint, CallHistoryEndpoint};
use shared::flash_call::{RequestEndpoint, StatusEndpoint, VerifyEndpoint};
use shared::http::{ApiError, serve};

use crate::event::{GatewayEvent, gateway_request};

/// Every route: method, path template, function. A test checks it against `template.yaml`.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/auth/request", RequestEndpoint::NAME),
    ("POST", "/auth/verify", VerifyEndpoint::NAME),
    ("GET", "/auth/status/{session_id}", StatusEndpoint::NAME),
    ("POST", "/calls/events", CallEventEndpoint::NAME),
    (
        "GET",
        "/calls/history/{phone_number}",
        CallHistoryEndpoint::NAME,
    ),
    (
        "GET",
        "/calls/history/{phone_number}/stats",
        CallHistoryEndpoint::NAME,
    ),
];

use shared::http::Endpoint;

/// Every endpoint, built once from one `Init`, as separate Lambdas would each build theirs.
pub struct LocalApi {
    request: RequestEndpoint,
    verify: VerifyEndpoint,
    status: StatusEndpoint,
    call_event: CallEventEndpoint,
    call_history: CallHistoryEndpoint,
}

impl LocalApi {
    pub async fn build(init: &Init) -> anyhow::Result<Self> {
        Ok(LocalApi {
            request: RequestEndpoint::init(init).await?,
            verify: VerifyEndpoint::init(init).await?,
            status: StatusEndpoint::init(init).await?,
            call_event: CallEventEndpoint::init(init).await?,
            call_history: CallHistoryEndpoint::init(init).await?,
        })
    }

    /// Routes a request as API Gateway would, then serves it as Lambda would.
    pub async fn handle(&self, mut event: GatewayEvent) -> Response<Body> {
        let mut method_matched = false;
        for (method, template, function) in ROUTES {
            let Some(params) = match_path(template, &event.path) else {
                continue;
            };
            if *method != event.method {
                method_matched = true;
                continue;
            }
            event.route_key = format!("{method} {template}");
            event.path_parameters = params;
            let req = match gateway_request(&event) {
                Ok(req) => req,
                Err(e) => return ApiError::InvalidJson(e.to_string()).into_response(),
            };
            return match *function {
                RequestEndpoint::NAME => serve(&self.request, req).await,
                VerifyEndpoint::NAME => serve(&self.verify, req).await,
                StatusEndpoint::NAME => serve(&self.status, req).await,
                CallEventEndpoint::NAME => serve(&self.call_event, req).await,
                CallHistoryEndpoint::NAME => serve(&self.call_history, req).await,
                _ => ApiError::Internal(anyhow::anyhow!("route without endpoint")).into_response(),
            };
        }
        let error = if method_matched {
            ApiError::MethodNotAllowed {
                method: event.method,
            }
        } else {
            ApiError::RouteNotFound {
                method: event.method,
                path: event.path,
            }
        };
        error.into_response()
    }
}

/// Matches `/auth/status/{session_id}` against a path; returns the path parameters.
fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut t = template.trim_start_matches('/').split('/');
    let mut p = path.trim_start_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                params.insert(ts[1..ts.len() - 1].to_owned(), ps.to_owned());
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::match_path;

    #[test]
    fn templates_match_whole_paths_and_capture_parameters() {
        let p = match_path("/auth/status/{session_id}", "/auth/status/abc").unwrap();
        assert_eq!(p["session_id"], "abc");
        assert!(match_path("/auth/status/{session_id}", "/auth/status/").is_none());
        assert!(match_path("/auth/status/{session_id}", "/auth/status/a/b").is_none());
        assert!(
            match_path("/auth/request", "/auth/request")
                .unwrap()
                .is_empty()
        );
        assert!(match_path("/auth/request", "/auth/requests").is_none());
    }
}
