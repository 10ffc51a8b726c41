//! `local-api`: serves every route of `template.yaml` on 127.0.0.1:$PORT (default 3000).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use devstack::{LocalApi, serve};
use shared::Init;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lambda_http::tracing::init_default_subscriber();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().context("PORT must be a port number")?,
        Err(_) => 3000,
    };
    let init = Init::from_env().await?;
    let api = Arc::new(
        LocalApi::build(&init)
            .await
            .context("building the endpoints")?,
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("local API listening on http://{addr}");
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    tokio::select! {
        result = serve(listener, api) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
        _ = hangup.recv() => Ok(()),
    }
}
