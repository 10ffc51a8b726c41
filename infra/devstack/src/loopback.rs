//! How the stack's own small servers (the runtime APIs, the AWS proxies, the as-deployed
//! HTTP API) serve a listener: HTTP/1.1, each connection on its own task, the handler given
//! the request and the peer's address.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves `listener` until it fails or the returned task is aborted.
pub fn serve<H, F>(listener: TcpListener, handler: H) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answer = handler(req, peer);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "connection closed with an error");
                }
            });
        }
    })
}
