//! The endpoint skeleton: what every function implements, and the one place that runs a
//! handler in a request span, hands it the route it was called on, and turns its error into a
//! response.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use lambda_http::http::Method as HttpMethod;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use super::{ApiError, ErrorCode, Route, request_id};
use crate::init::Init;

/// One API endpoint: built once per container from the shared [`Init`], then asked to handle
/// each request on one of its routes.
pub trait Endpoint: Send + Sync + Sized + 'static {
    /// The function's name, as in `template.yaml`, `functions/` and the logs.
    const NAME: &'static str;

    /// The routes this function serves; `template.yaml` must declare exactly these for it.
    const ROUTES: &'static [Route];

    /// The secrets this function reads; `template.yaml` names exactly these in its environment
    /// and its policy, and `init` requires them ([`crate::secrets::SecretsCache::require`]).
    const SECRETS: &'static [crate::secrets::SecretPart];

    fn init(init: &Init) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Handles a request on `route` (one of [`Self::ROUTES`]).
    fn handle(
        &self,
        route: &'static Route,
        req: Request,
    ) -> impl Future<Output = Result<Response<Body>, ApiError>> + Send;
}

/// Runs one request through an endpoint. Never fails: a client mistake becomes its 4xx, an
/// outage a 503 with `Retry-After`, an internal error a bare 500 with the whole cause chain in
/// the log, never in the body.
pub async fn serve<E: Endpoint>(endpoint: &E, req: Request) -> Response<Body> {
    let span = tracing::info_span!(
        "request",
        endpoint = E::NAME,
        request_id = %request_id(&req),
        method = %req.method(),
    );
    async move {
        let started = Instant::now();
        let head = req.method() == HttpMethod::HEAD;
        let outcome = match matched_route(E::ROUTES, &req) {
            Some(route) => endpoint.handle(route, req).await,
            None => Err(ApiError::refused(
                ErrorCode::RouteNotFound,
                format!("{} serves no such route", E::NAME),
            )),
        };
        let mut response = outcome.unwrap_or_else(|error| {
            error.log();
            match &error {
                ApiError::RateLimited { limit, .. } => crate::telemetry::guard_refusal(limit),
                ApiError::Quarantined { .. } => crate::telemetry::quarantine_refusal(),
                _ => {}
            }
            error.into_response()
        });
        if head {
            *response.body_mut() = Body::Empty;
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms,
            "request done"
        );
        crate::telemetry::handled(E::NAME, elapsed_ms);
        crate::telemetry::flush();
        response
    }
    .instrument(span)
    .await
}

/// The route API Gateway matched (its `routeKey`); without one, the route whose method and
/// path template fit the request.
fn matched_route(routes: &'static [Route], req: &Request) -> Option<&'static Route> {
    let route_key = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    match route_key.filter(|k| k != "$default") {
        Some(key) => routes.iter().find(|r| r.has_key(&key)),
        None => routes.iter().find(|r| {
            r.method.serves(req.method().as_str()) && r.match_path(req.raw_http_path()).is_some()
        }),
    }
}

/// An endpoint behind a uniform face, so that one list can hold them all (the local API).
pub trait Served: Send + Sync {
    fn name(&self) -> &'static str;
    fn routes(&self) -> &'static [Route];
    fn serve(&self, req: Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>>;
}

impl<E: Endpoint> Served for E {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn routes(&self) -> &'static [Route] {
        E::ROUTES
    }

    fn serve(&self, req: Request) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>> {
        Box::pin(serve(self, req))
    }
}
