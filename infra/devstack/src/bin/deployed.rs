//! `deployed`: `template.yaml` served as `sam deploy` would create it (`infra/deployed.sh` runs
//! it against the local stack). Each function with an `HttpApi` event runs as its own processes
//! with the template's environment; every AWS call is judged against the function's policy and
//! denied as AWS would deny it.
//!
//!     deployed [--template template.yaml] [--port 3000] [--bin-dir target/debug]
//!              [--resource LogicalId=local-name ...] [--record-iam]
//!              [--parameter-overrides Key=Value ...]
//!
//! `Table` and the four secrets default to `$TABLE_NAME` and `$TWILIO_SECRET_ID`,
//! `$TOKEN_KEY_SECRET_ID`, `$HASHING_KEY_SECRET_ID`, `$CLIENTS_SECRET_ID`. `--record-iam` records
//! and reports calls IAM would deny without denying them. Every function's log lines are printed
//! prefixed with its logical id; the calls IAM denied are listed when it stops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use devstack::deployed::{Deployment, Locals, Options, Template, Upstreams, iam::Decision};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let mut template = PathBuf::from("template.yaml");
    let mut port: u16 = env("PORT").map_or(Ok(3000), |p| p.parse())?;
    let mut bin_dir = PathBuf::from("target/debug");
    let mut parameters = BTreeMap::new();
    let mut resources = devstack::deployed::local_resources_from_env();
    let mut enforce = true;
    let mut i = 0;
    let value = |i: usize| args.get(i + 1).cloned().context("a flag without its value");
    while i < args.len() {
        match args[i].as_str() {
            "--template" => template = PathBuf::from(value(i)?),
            "--port" => port = value(i)?.parse()?,
            "--bin-dir" => bin_dir = PathBuf::from(value(i)?),
            "--resource" => {
                let (k, v) = value(i)?
                    .split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .context("--resource LogicalId=name")?;
                resources.insert(k, v);
            }
            "--record-iam" => {
                enforce = false;
                i += 1;
                continue;
            }
            "--parameter-overrides" => {
                // As `sam deploy` takes them: Key=Value words until the next flag.
                while let Some(pair) = args.get(i + 1).filter(|a| !a.starts_with("--")) {
                    let (k, v) = pair
                        .split_once('=')
                        .with_context(|| format!("{pair}: overrides are Key=Value"))?;
                    parameters.insert(k.to_owned(), v.to_owned());
                    i += 1;
                }
                i += 1;
                continue;
            }
            other => bail!("unknown argument {other}"),
        }
        i += 2;
    }
    shared::tls::install_crypto_provider();
    let mut local_env = BTreeMap::new();
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_EC2_METADATA_DISABLED",
        "TWILIO_API_BASE_URL",
        "TWILIO_VERIFY_BASE_URL",
        "RUST_BACKTRACE",
        // The local stack has no Twilio account: its gateway dials nothing and logs what it
        // would send, which the code refuses inside Lambda unless this says otherwise.
        "ALLOW_LOGGING_GATEWAY",
    ] {
        if let Some(v) = env(name) {
            local_env.insert(name.to_owned(), v);
        }
    }
    let upstreams = Upstreams {
        dynamodb: env("AWS_ENDPOINT_URL_DYNAMODB")
            .context("AWS_ENDPOINT_URL_DYNAMODB: the local DynamoDB")?,
        secrets_manager: env("AWS_ENDPOINT_URL_SECRETS_MANAGER")
            .context("AWS_ENDPOINT_URL_SECRETS_MANAGER: the local Secrets Manager")?,
    };
    let options = Options {
        template: Template::load(&template)?,
        locals: Locals {
            parameters,
            resources,
            region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        },
        bin_dir,
        upstreams,
        local_env,
        enforce_iam: enforce,
        max_instances: 4,
        log: Arc::new(|function: &str, line: &str| println!("{function} {line}")),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("127.0.0.1:{port}"))?;
    let deployment = Deployment::start(listener, options).await?;
    for f in &deployment.functions {
        let routes: Vec<String> = f.routes.iter().map(|r| r.key()).collect();
        eprintln!(
            "[deployed] {} ({}): {}",
            f.logical_id,
            f.binary,
            routes.join(", ")
        );
    }
    eprintln!(
        "[deployed] the template's HTTP API on http://{}",
        deployment.addr
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    let denied: Vec<_> = deployment
        .calls
        .all()
        .into_iter()
        .filter(|r| r.decision != Decision::Allowed)
        .collect();
    for r in &denied {
        eprintln!(
            "[deployed] IAM denied {}: {} on {} keys {:?}",
            r.function, r.call.action, r.call.resource, r.call.leading_keys
        );
    }
    deployment.stop().await;
    Ok(())
}
