//! The Lambda entry point every function's `main` calls.

use std::convert::Infallible;

use lambda_http::{Request, service_fn};

use crate::http::{Endpoint, serve};
use crate::init::Init;

/// Initialises logging (JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`), builds the endpoint once,
/// and serves requests until the container is retired. An init failure is reported to Lambda
/// with its whole cause chain.
pub async fn run<E: Endpoint>() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let endpoint = match init::<E>().await {
        Ok(endpoint) => endpoint,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "init failed");
            return Err(format!("{error:#}").into());
        }
    };
    // The endpoint lives as long as the process; leaking it gives every invocation a plain
    // reference instead of an Arc clone.
    let endpoint: &'static E = Box::leak(Box::new(endpoint));
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(serve(endpoint, req).await)
    }))
    .await
}

async fn init<E: Endpoint>() -> anyhow::Result<E> {
    let init = Init::from_env().await?;
    E::init(&init).await
}
