//! `coldstart`: the cold-start benchmark (`infra/coldstart.sh` runs it). Every function of
//! `shared::endpoints` (so every function a later issue adds) is started cold `--runs` times
//! under a Lambda Runtime API of our own on loopback and sent its own `events/` fixture; then
//! `--warm` further invocations reach the warm process. Beside them, in the same run, a Python
//! handler doing what `status` does, under the same runtime API.
//!
//!     coldstart --bin-dir target/release [--runs 20] [--warm 200]
//!               [--python infra/.local/py-bench/bin/python --python-handler infra/coldstart/status_handler.py]
//!
//! Per function it prints, as medians over the runs: exec to the first `/next`, exec to the
//! first response, the first invocation's own time; warm p50/p99; peak RSS (VmHWM, the largest
//! of the runs); the stripped binary's size and its size zipped as Lambda takes it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use devstack::runtime_api::{RuntimeApi, Seen};
use hyper::body::Bytes;

/// What is measured of one function.
struct Target {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    fixture: PathBuf,
    /// The deployable binary, for its size (none for the Python handler).
    binary: Option<PathBuf>,
}

#[derive(Default)]
struct Measured {
    to_next: Vec<Duration>,
    to_response: Vec<Duration>,
    first_invocation: Vec<Duration>,
    warm: Vec<Duration>,
    peak_rss_kib: u64,
    statuses: Vec<u16>,
}

const WAIT: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs: usize = flag("--runs").map_or(Ok(20), |v| v.parse())?;
    let warm: usize = flag("--warm").map_or(Ok(200), |v| v.parse())?;
    let bin_dir = PathBuf::from(flag("--bin-dir").context("--bin-dir DIR is required")?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let mut targets = Vec::new();
    for entry in shared::endpoints::ALL {
        let binary = bin_dir.join(entry.name);
        targets.push(Target {
            name: entry.name.to_owned(),
            program: binary.clone(),
            args: Vec::new(),
            fixture: fixture_for(&root, entry.routes[0].to_string())?,
            binary: Some(binary),
        });
    }
    if let (Some(python), Some(handler)) = (flag("--python"), flag("--python-handler")) {
        targets.push(Target {
            name: "python-status".to_owned(),
            program: PathBuf::from(python),
            args: vec![handler],
            fixture: fixture_for(&root, "GET /auth/status/{session_id}".to_owned())?,
            binary: None,
        });
    }

    println!("cold starts: {runs} per function, then {warm} warm invocations");
    println!();
    println!(
        "| function | fixture (answer) | exec to first /next | exec to first response | first invocation | warm p50 | warm p99 | peak RSS | binary | zipped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for target in &targets {
        let measured = measure(target, runs, warm)
            .await
            .with_context(|| format!("measuring {}", target.name))?;
        print_row(target, &measured)?;
        results.push((target.name.clone(), measured));
    }

    let median_response = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| median(&m.to_response))
    };
    if let (Some(rust), Some(python)) =
        (median_response("status"), median_response("python-status"))
    {
        println!();
        println!(
            "status vs the Python 3 + boto3 handler doing the same GetItem: exec to first response {} vs {}: {:.1}x faster",
            ms(rust),
            ms(python),
            python.as_secs_f64() / rust.as_secs_f64()
        );
    }
    Ok(())
}

/// The fixture a function is measured with: of the `events/` files whose `routeKey` is the
/// function's first route, the one with the shortest name (the plain request, not a refusal).
fn fixture_for(root: &Path, route_key: String) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    for entry in std::fs::read_dir(root.join("events"))? {
        let path = entry?.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if event["routeKey"].as_str() == Some(route_key.as_str()) {
            candidates.push(path);
        }
    }
    candidates.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    candidates
        .into_iter()
        .next()
        .with_context(|| format!("no fixture in events/ for {route_key}"))
}

async fn measure(target: &Target, runs: usize, warm: usize) -> anyhow::Result<Measured> {
    let event = Bytes::from(std::fs::read(&target.fixture)?);
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let mut measured = Measured::default();
    for run in 0..runs {
        // A runtime API of its own per process: nothing a killed one left pending carries over.
        let api = &RuntimeApi::start().await?;
        let started = Instant::now();
        let mut child = Command::new(&target.program)
            .args(&target.args)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &target.name)
            // Lambda sets both; botocore reads only the second.
            .env("AWS_REGION", &region)
            .env("AWS_DEFAULT_REGION", &region)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("ALLOW_LOGGING_GATEWAY", "true")
            .env("MAX_REQUESTS_PER_PHONE_PER_DAY", "10000")
            .env("MAX_REQUESTS_PER_IP_PER_HOUR", "1000000")
            .env("REQUEST_COOLDOWN_SECONDS", "0")
            .env("MAX_SENDS_PER_HOUR", "10000000")
            .env("MAX_SENDS_PER_COUNTRY_PER_HOUR", "10000000")
            .env("MAX_SENDS_PER_PREFIX_PER_HOUR", "1000000")
            .env("MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY", "1000")
            .env("MAX_REQUESTS_PER_NETWORK_PER_HOUR", "1000000")
            .env("ALLOWED_COUNTRY_CODES", "*")
            .env("TWILIO_CALLS_PER_SECOND", "10000")
            .env("TWILIO_MESSAGES_PER_SECOND", "10000")
            // The guard reads and counts as deployed, but never quarantines the fixture's
            // one number.
            .env("QUARANTINE_MIN_SENDS", "1000000")
            .env("QUARANTINE_COUNTRY_MIN_SENDS", "10000000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", target.program.display()))?;
        let pid = child.id();
        let outcome = async {
            api.invoke(format!("cold-{run}"), event.clone()).await?;
            let next = expect_next(api).await?;
            let (handed, answered, status) = expect_answer(api).await?;
            measured.to_next.push(next - started);
            measured.to_response.push(answered - started);
            measured.first_invocation.push(answered - handed);
            measured.statuses.push(status);
            let more = if run == 0 { warm } else { 0 };
            for i in 0..more {
                expect_next(api).await?;
                api.invoke(format!("warm-{run}-{i}"), event.clone()).await?;
                let (handed, answered, _) = expect_answer(api).await?;
                measured.warm.push(answered - handed);
            }
            anyhow::Ok(())
        }
        .await;
        measured.peak_rss_kib = measured.peak_rss_kib.max(peak_rss_kib(pid).unwrap_or(0));
        let _ = child.kill();
        let _ = child.wait();
        outcome?;
    }
    Ok(measured)
}

async fn expect_next(api: &RuntimeApi) -> anyhow::Result<Instant> {
    match api.next_seen(WAIT).await? {
        Seen::Next(at) => Ok(at),
        Seen::Failed(_, error) => bail!("the function failed: {error}"),
        other => bail!("expected a /next, saw {other:?}"),
    }
}

/// Waits for an invocation to be handed out and answered: (handed, answered, status).
async fn expect_answer(api: &RuntimeApi) -> anyhow::Result<(Instant, Instant, u16)> {
    let handed = match api.next_seen(WAIT).await? {
        Seen::Handed(at) => at,
        Seen::Failed(_, error) => bail!("the function failed: {error}"),
        other => bail!("expected the invocation to be handed out, saw {other:?}"),
    };
    match api.next_seen(WAIT).await? {
        Seen::Responded(at, status, _) => Ok((handed, at, status.unwrap_or(0))),
        Seen::Failed(_, error) => bail!("the invocation failed: {error}"),
        other => bail!("expected a response, saw {other:?}"),
    }
}

/// VmHWM: the most resident memory the process ever had.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(values: &[Duration]) -> Duration {
    percentile(values, 0.5)
}

fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The binary's size, and its size in a zip as a `bootstrap` (deflated, as Lambda takes it).
fn sizes(binary: &Path) -> anyhow::Result<(u64, u64)> {
    let size = std::fs::metadata(binary)?.len();
    let out = Command::new("python3")
        .args([
            "-c",
            "import io, sys, zipfile\n\
             buf = io.BytesIO()\n\
             with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
             \x20   z.write(sys.argv[1], 'bootstrap')\n\
             print(len(buf.getvalue()))",
        ])
        .arg(binary)
        .output()?;
    let zipped = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok((size, zipped))
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn print_row(target: &Target, m: &Measured) -> anyhow::Result<()> {
    let (binary, zipped) = match &target.binary {
        Some(path) => {
            let (size, zipped) = sizes(path)?;
            (mb(size), mb(zipped))
        }
        None => ("-".to_owned(), "-".to_owned()),
    };
    let mut statuses = m.statuses.clone();
    statuses.dedup();
    let fixture = target
        .fixture
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "| {} | {fixture} ({}) | {} | {} | {} | {} | {} | {:.1} MB | {binary} | {zipped} |",
        target.name,
        statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        ms(median(&m.to_next)),
        ms(median(&m.to_response)),
        ms(median(&m.first_invocation)),
        ms(percentile(&m.warm, 0.5)),
        ms(percentile(&m.warm, 0.99)),
        m.peak_rss_kib as f64 / 1024.0,
    );
    Ok(())
}
