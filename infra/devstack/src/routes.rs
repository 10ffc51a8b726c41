//! The dispatch of a request to its endpoint, as API Gateway routes it: by the routes each
//! endpoint declares (`shared::endpoints`), nothing listed here.

use lambda_http::{Body, Response};
use shared::Init;
use shared::http::{ApiError, ErrorCode, Served};

use crate::event::{GatewayEvent, gateway_request};

/// API Gateway refuses a request line and headers over 10 KiB (HTTP API quotas); so does the
/// local API, with a JSON 414.
pub const GATEWAY_MAX_REQUEST_LINE: usize = 10 * 1024;

/// Every endpoint, built once from one `Init`, as separate Lambdas would each build theirs.
pub struct LocalApi {
    endpoints: Vec<Box<dyn Served>>,
}

impl LocalApi {
    pub async fn build(init: &Init) -> anyhow::Result<Self> {
        Ok(LocalApi {
            endpoints: shared::endpoints::build_all(init).await?,
        })
    }

    /// Routes a request as API Gateway would, then serves it as Lambda would.
    pub async fn handle(&self, mut event: GatewayEvent) -> Response<Body> {
        if event.path.len() + event.raw_query.len() > GATEWAY_MAX_REQUEST_LINE
            || event.path == crate::head_guard::TOO_LONG_PATH
        {
            return ApiError::refused(
                ErrorCode::UriTooLong,
                format!("the path and query are longer than {GATEWAY_MAX_REQUEST_LINE} bytes"),
            )
            .into_response();
        }
        // Every route whose template matches, the most specific (fewest parameters) first:
        // API Gateway prefers `/sms/send` to `/sms/{id}`.
        let mut matches: Vec<_> = self
            .endpoints
            .iter()
            .flat_map(|endpoint| endpoint.routes().iter().map(move |route| (endpoint, route)))
            .filter_map(|(endpoint, route)| {
                route
                    .match_path(&event.path)
                    .map(|params| (endpoint, route, params))
            })
            .collect();
        matches.sort_by_key(|(_, _, params)| params.len());
        if let Some(index) = matches
            .iter()
            .position(|(_, route, _)| route.method.serves(&event.method))
        {
            let (endpoint, route, params) = matches.swap_remove(index);
            event.route_key = format!("{} {}", event.method.to_ascii_uppercase(), route.path);
            event.path_parameters = params;
            return match gateway_request(&event) {
                Ok(req) => endpoint.serve(req).await,
                Err(e) => ApiError::InvalidJson(e.to_string()).into_response(),
            };
        }
        // The methods of the most specific template that matches.
        let fewest = matches.first().map(|(_, _, params)| params.len());
        let mut allow = Vec::new();
        for (_, route, params) in &matches {
            if Some(params.len()) != fewest {
                continue;
            }
            allow.push(route.method.as_str());
            if route.method == shared::http::Method::Get {
                allow.push("HEAD");
            }
        }
        let error = if allow.is_empty() {
            ApiError::refused(
                ErrorCode::RouteNotFound,
                format!("no route for {} {}", event.method, event.path),
            )
        } else {
            ApiError::MethodNotAllowed {
                method: event.method,
                allow,
            }
        };
        error.into_response()
    }
}
