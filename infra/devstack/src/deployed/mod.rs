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
pub use template::{Function, LOCAL_RESOURCES, Locals, Template, local_resources_from_env};

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
    /// How the template was resolved (its functions' statements name these resources).
    pub locals: Locals,
    pub calls: CallLog,
    gateway: Arc<gateway::Gateway>,
    /// The HTTP API and every function's AWS proxy.
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Deployment {
    pub async fn start(listener: TcpListener, options: Options) -> anyhow::Result<Deployment> {
        let functions = options.template.functions(&options.locals)?;
        let tables = options.template.tables(&options.locals)?;
        let calls = CallLog::default();
        let proxies = Arc::new(aws_proxy::Shared {
            resources: iam::Resources {
                region: options.locals.region.clone(),
                account: template::ACCOUNT.into(),
                tables: tables
                    .into_values()
                    .map(|t| (t.name, (t.hash_key, t.index_hash_keys)))
                    .collect(),
            },
            upstreams: options.upstreams,
            log: calls.clone(),
            enforce: options.enforce_iam,
            client: reqwest::Client::builder().no_proxy().build()?,
        });
        let mut pools = Vec::new();
        let mut servers = Vec::new();
        for function in &functions {
            let (proxy, server) = aws_proxy::start(function, proxies.clone())
                .await
                .with_context(|| format!("{}: its AWS proxy", function.logical_id))?;
            servers.push(server);
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
        servers.push(gateway::serve(listener, gateway.clone()));
        Ok(Deployment {
            addr,
            functions,
            locals: options.locals,
            calls,
            gateway,
            servers,
        })
    }

    /// Stops serving and ends every function process.
    pub async fn stop(self) {
        for server in &self.servers {
            server.abort();
        }
        for pool in &self.gateway.pools {
            pool.shutdown().await;
        }
    }
}
