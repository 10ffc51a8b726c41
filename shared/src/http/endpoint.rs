//! The endpoint skeleton: what every function implements, and the one place that runs a
//! handler in a request span and turns its error into a response.

use std::future::Future;
use std::time::Instant;

use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use super::{ApiError, request_id};
use crate::init::Init;

/// One API endpoint: built once per container from the shared [`Init`], then asked to handle
/// each request.
pub trait Endpoint: Send + Sync + Sized + 'static {
    /// The function's name, as in `template.yaml` and the logs.
    const NAME: &'static str;

    fn init(init: &Init) -> impl Future<Output = anyhow::Result<Self>> + Send;

    fn handle(&self, req: Request)
    -> impl Future<Output = Result<Response<Body>, ApiError>> + Send;
}

/// Runs one request through an endpoint. Never fails: a client mistake becomes its 4xx, an
/// internal error a bare 500 with the whole cause chain in the log, never in the body.
pub async fn serve<E: Endpoint>(endpoint: &E, req: Request) -> Response<Body> {
    let span = tracing::info_span!(
        "request",
        endpoint = E::NAME,
        request_id = %request_id(&req),
        method = %req.method(),
    );
    async move {
        let started = Instant::now();
        let response = match endpoint.handle(req).await {
            Ok(response) => response,
            Err(error) => {
                if let ApiError::Internal(cause) = &error {
                    tracing::error!(error = format!("{cause:#}"), "request failed");
                } else {
                    tracing::info!(error = error.code(), "request refused");
                }
                error.into_response()
            }
        };
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "request done"
        );
        response
    }
    .instrument(span)
    .await
}
