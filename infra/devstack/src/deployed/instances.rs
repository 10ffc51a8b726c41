//! A function's instances, as Lambda runs them: each its own process (the function's binary),
//! with exactly the environment the template gives it, under a Runtime API of its own, taking
//! one invocation at a time. A busy function gets another instance, up to a cap; an instance
//! that fails its init, reports an error, dies or overruns the function's `Timeout` is thrown
//! away, and the next invocation gets a fresh one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, Semaphore};

use super::template::{ACCOUNT, Function};
use crate::runtime_api::{RuntimeApi, Seen};

/// What became of one invocation.
#[derive(Debug)]
pub enum Outcome {
    /// The function's answer (the API Gateway response JSON).
    Answered(Bytes),
    /// It failed its init, reported an error or died.
    Failed(String),
    /// It overran its `Timeout`.
    TimedOut,
}

struct Instance {
    child: Child,
    api: RuntimeApi,
}

/// Where each line a function prints goes: `<LogicalId> <line>` on the runner's output, and
/// to whoever listens (the tests read caller IDs and codes from it).
pub type LogSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

pub struct Pool {
    pub function: Function,
    program: PathBuf,
    /// The variables Lambda itself and the local stack add to the template's.
    extra_env: BTreeMap<String, String>,
    idle: Mutex<Vec<Instance>>,
    capacity: Semaphore,
    log: LogSink,
    region: String,
}

impl Pool {
    pub fn new(
        function: Function,
        program: PathBuf,
        extra_env: BTreeMap<String, String>,
        max_instances: usize,
        log: LogSink,
        region: String,
    ) -> Pool {
        Pool {
            function,
            program,
            extra_env,
            idle: Mutex::new(Vec::new()),
            capacity: Semaphore::new(max_instances),
            log,
            region,
        }
    }

    async fn spawn(&self) -> anyhow::Result<Instance> {
        let f = &self.function;
        let arn = format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{}",
            self.region, f.logical_id
        );
        let api = RuntimeApi::start_for(&arn, f.timeout).await?;
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .envs(&f.environment)
            .envs(&self.extra_env)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &f.logical_id)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &self.region)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("_HANDLER", "bootstrap")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(format) = &f.log_format {
            command.env("AWS_LAMBDA_LOG_FORMAT", format);
        }
        if let Some(level) = &f.log_level {
            command.env("AWS_LAMBDA_LOG_LEVEL", level);
        }
        let mut child = command.spawn().map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot run {}: {e} (build it: cargo build --bins)",
                f.logical_id,
                self.program.display()
            )
        })?;
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            let name = f.logical_id.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log(&name, &line);
                }
            });
        }
        Ok(Instance { child, api })
    }

    /// Runs one invocation on an idle instance, or on a new one while under the cap.
    pub async fn invoke(&self, request_id: String, event: Bytes) -> Outcome {
        let Ok(_permit) = self.capacity.acquire().await else {
            return Outcome::Failed("the pool is closed".into());
        };
        let idle = self.idle.lock().await.pop();
        let mut instance = match idle {
            Some(i) => i,
            None => match self.spawn().await {
                Ok(i) => i,
                Err(e) => return Outcome::Failed(e.to_string()),
            },
        };
        let outcome = run(&mut instance, request_id, event, self.function.timeout).await;
        match outcome {
            Outcome::Answered(_) => self.idle.lock().await.push(instance),
            // Thrown away: `kill_on_drop` ends the process.
            _ => {
                let _ = instance.child.start_kill();
            }
        }
        outcome
    }

    /// Stops every idle instance.
    pub async fn shutdown(&self) {
        self.capacity.close();
        for mut instance in self.idle.lock().await.drain(..) {
            let _ = instance.child.start_kill();
            let _ = instance.child.wait().await;
        }
    }
}

async fn run(instance: &mut Instance, id: String, event: Bytes, timeout: Duration) -> Outcome {
    if instance.api.invoke(id, event).await.is_err() {
        return Outcome::Failed("the runtime API stopped".into());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::select! {
            seen = instance.api.next_seen(left) => match seen {
                Ok(Seen::Responded(_, _, body)) => return Outcome::Answered(body),
                Ok(Seen::Failed(_, error)) => return Outcome::Failed(error),
                Ok(_) => continue,
                Err(_) => return Outcome::TimedOut,
            },
            status = instance.child.wait() => {
                return Outcome::Failed(format!("the process exited ({status:?})"));
            }
        }
    }
}
