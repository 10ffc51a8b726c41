//! `template.yaml` run as deployed (`infra/deployed.sh`): every function with an `HttpApi`
//! event its own processes (its cargo-lambda binary) behind Lambda Runtime APIs on loopback,
//! with the environment the template gives it and nothing from `shared::endpoints`; the
//! template's routes served as API Gateway serves them; and every AWS call of each function
//! recorded and judged against the function's own policy (`iam`), denied as AWS denies it.

pub mod aws_proxy;
mod gateway;
pub mod iam;
mod instances;
pub mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

pub use aws_proxy::{CallLog, Recorded, Upstreams};
pub use instances::LogSink;
pub use template::{Function, Locals, Template};

/// How to run a template locally.
pub struct Options {
    pub template: Template,
    pub locals: Locals,
    /// Where the functions' binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    pub upstreams: Upstreams,
    /// Variables every function gets beside the template's: the local stack's credentials and
    /// endpoints (Twilio's mock, say). Never a setting of the template.
    pub local_env: BTreeMap<String, String>,
    /// Deny what IAM would deny (true), or only record it.
    pub enforce_iam: bool,
    pub max_instances: usize,
    pub log: LogSink,
}

pub struct Deployment {
    pub addr: SocketAddr,
    pub functions: Vec<Function>,
    pub calls: CallLog,
    gateway: Arc<gateway::Gateway>,
    server: tokio::task::JoinHandle<()>,
}

impl Deployment {
    pub async fn start(listener: TcpListener, options: Options) -> anyhow::Result<Deployment> {
        let functions = options.template.functions(&options.locals)?;
        let tables = options.template.tables(&options.locals)?;
        let resources = Arc::new(iam::Resources {
            region: options.locals.region.clone(),
            account: template::ACCOUNT.into(),
            tables: tables
                .into_values()
                .map(|t| (t.name, (t.hash_key, t.index_hash_keys)))
                .collect(),
        });
        let calls = CallLog::default();
        let mut pools = Vec::new();
        for function in &functions {
            let proxy = aws_proxy::start(
                function.logical_id.clone(),
                function.statements.clone(),
                resources.clone(),
                options.upstreams.clone(),
                calls.clone(),
                options.enforce_iam,
            )
            .await
            .with_context(|| format!("{}: its AWS proxy", function.logical_id))?;
            let mut env = options.local_env.clone();
            let endpoint = format!("http://{proxy}");
            env.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), endpoint.clone());
            env.insert("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), endpoint);
            let program = options.bin_dir.join(&function.binary);
            pools.push(Arc::new(instances::Pool::new(
                function.clone(),
                program,
                env,
                options.max_instances,
                options.log.clone(),
                options.locals.region.clone(),
            )));
        }
        let addr = listener.local_addr()?;
        let gateway = Arc::new(gateway::Gateway { pools });
        let served = gateway.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = gateway::serve(listener, served).await {
                tracing::error!("the local HTTP API stopped: {e}");
            }
        });
        Ok(Deployment {
            addr,
            functions,
            calls,
            gateway,
            server,
        })
    }

    /// Stops serving and ends every function process.
    pub async fn stop(self) {
        self.server.abort();
        for pool in &self.gateway.pools {
            pool.shutdown().await;
        }
    }
}
