//! The HTTP/1.1 server of the local API (hyper), with the client IP taken from the socket.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::Body;
use shared::http::ApiError;
use tokio::net::TcpListener;

use crate::event::GatewayEvent;
use crate::head_guard::HeadGuard;
use crate::routes::LocalApi;

/// API Gateway refuses payloads over 10 MB before Lambda sees them; so does the local API.
const GATEWAY_MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// Serves until the listener fails; each connection on its own task.
pub async fn serve(listener: TcpListener, api: Arc<LocalApi>) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let api = api.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&api, req, peer.ip().to_string()).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(HeadGuard::new(stream)), service)
                .await
            {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}

async fn handle(
    api: &LocalApi,
    req: hyper::Request<Incoming>,
    source_ip: String,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, GATEWAY_MAX_PAYLOAD).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return to_hyper(
                ApiError::PayloadTooLarge {
                    limit: GATEWAY_MAX_PAYLOAD,
                }
                .into_response(),
            );
        }
    };
    let event = GatewayEvent::from_http(&parts, body, source_ip);
    to_hyper(api.handle(event).await)
}

fn to_hyper(response: lambda_http::Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}
