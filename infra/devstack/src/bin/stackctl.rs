//! `stackctl`: creates the table and the secrets, and manages the pool of source numbers.
//! Works against the local stack and against AWS alike (it uses the SDK's usual settings).
//!
//!     stackctl bootstrap            table (if missing), the secrets (if missing), pool from POOL_NUMBERS
//!     stackctl erase +1555...       removes every item that holds the number (the other party's
//!                                    call records keep the call, with the number as "erased")
//!     stackctl rotate-token-key     a new token-signing key (the old one stays valid as AWSPREVIOUS)
//!     stackctl pool list
//!     stackctl pool add +1555... [+1555...]   (prints the voice URL to set on each number)
//!     stackctl pool disable +1555...
//!     stackctl traffic CALLS NUMBERS [SEED]   random call events into the table (for demos)
//!     stackctl hash-key KEY          the SHA-256 to put in the secret's service_api_key_hashes
//!     stackctl health [CC...]        the operator's detail behind GET /health: the pool, the
//!                                    send budgets used this hour (global, and per country CC),
//!                                    the quarantines in force
//!     stackctl quarantine list       quarantined blocks and countries, and the overrides
//!     stackctl quarantine release|allow|deny|clear DEST
//!                                    DEST is a block (+1415555) or a country (country:44)
//!     stackctl app-check-token [--app-id ID]
//!                                    a token of the local App Check project, valid one hour
//!     stackctl call-in --from PHONE --to POOL_NUMBER [--stir A|B|C]
//!                                    plays Twilio for the inbound missed call: posts a signed
//!                                    incoming call to the local API (PUBLIC_BASE_URL, loopback)

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use serde_json::json;
use shared::config::Config;
use shared::phone::PhoneNumber;
use shared::store::Store;
use shared::store::rate_limits::Budget;
use shared::store::reputation::{Destination, Override};

/// Numbers seeded when `POOL_NUMBERS` is not set: 555-01xx numbers are reserved for fiction.
const DEFAULT_POOL: &str = "+14155550100,+14155550101,+14155550102,+14155550103,+14155550104";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let config = Config::from_env()?;
    let sdk = shared::aws::sdk_config(&config).await;
    let store = Store::from_sdk_config(&sdk, &config.table_name);
    match args.as_slice() {
        ["bootstrap"] => {
            let created = store.create_table_if_missing().await?;
            println!(
                "table {}: {}",
                config.table_name,
                if created { "created" } else { "exists" }
            );
            let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
            ensure_secrets(&secrets, &config).await?;
            let pool = std::env::var("POOL_NUMBERS").unwrap_or_else(|_| DEFAULT_POOL.into());
            for number in parse_numbers(pool.split(','))? {
                store.pool().put(&number, true).await?;
            }
            if local_app_check(&config) {
                let project = devstack::app_check::Project::load_or_create(
                    &app_check_dir(),
                    &local_project_number(&config),
                )?;
                println!(
                    "app check: local project {} (kid {})",
                    project.number, project.kid
                );
            }
            print_pool(&store, &config).await
        }
        ["pool", "list"] => print_pool(&store, &config).await,
        ["erase", number] => {
            let number = PhoneNumber::parse(number)
                .map_err(|e| anyhow::anyhow!("{number:?} is not a phone number: {e}"))?;
            let erased = store.erase(&number).await?;
            let total: usize = erased
                .deleted
                .values()
                .chain(erased.redacted.values())
                .sum();
            for (kind, count) in &erased.deleted {
                println!("removed {count} {kind} item(s)");
            }
            for (kind, count) in &erased.redacted {
                println!("replaced the number by \"erased\" in {count} {kind} item(s)");
            }
            println!(
                "{number}: {}",
                if total == 0 {
                    "no item holds it".to_owned()
                } else {
                    format!("erased from {total} item(s)")
                }
            );
            Ok(())
        }
        ["rotate-token-key"] => {
            let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
            rotate_token_key(&secrets, &config).await
        }
        ["app-check-token", rest @ ..] => {
            let app_id = match rest {
                [] => devstack::app_check::LOCAL_APP_ID,
                ["--app-id", id] => id,
                _ => bail!("usage: stackctl app-check-token [--app-id ID]"),
            };
            let project = devstack::app_check::Project::load(&app_check_dir())?;
            println!(
                "{}",
                project.token(app_id, time::OffsetDateTime::now_utc())?
            );
            Ok(())
        }
        ["quarantine", "list"] => quarantine_list(&store).await,
        [
            "quarantine",
            action @ ("release" | "allow" | "deny" | "clear"),
            dest,
        ] => {
            let d = Destination::parse(dest).with_context(|| {
                format!("{dest:?} is neither a block (+1415555) nor a country (country:44)")
            })?;
            let now = time::OffsetDateTime::now_utc();
            let reputation = store.reputation();
            match *action {
                "release" => {
                    let had = reputation.release(&d, now).await?;
                    println!(
                        "{d}: {}",
                        if had {
                            "released"
                        } else {
                            "was not quarantined"
                        }
                    );
                }
                "allow" => {
                    reputation
                        .set_override(&d, Some(Override::Allow), now)
                        .await?;
                    reputation.release(&d, now).await?;
                    println!("{d}: allowed (never quarantined)");
                }
                "deny" => {
                    reputation
                        .set_override(&d, Some(Override::Deny), now)
                        .await?;
                    println!("{d}: denied (every send refused)");
                }
                _ => {
                    reputation.set_override(&d, None, now).await?;
                    println!("{d}: override cleared");
                }
            }
            Ok(())
        }
        ["traffic", calls, numbers, rest @ ..] if rest.len() <= 1 => {
            let calls: usize = calls.parse().context("CALLS must be a number")?;
            let numbers: usize = numbers.parse().context("NUMBERS must be a number")?;
            anyhow::ensure!(numbers >= 2, "NUMBERS must be at least 2");
            let seed = match rest.first() {
                Some(s) => s.parse().context("SEED must be a number")?,
                None => rand::random::<u64>(),
            };
            traffic(&store, calls, numbers, seed).await
        }
        ["health", countries @ ..] => health(&store, &config, countries).await,
        ["hash-key", key] => {
            println!("{}", shared::auth::hash_api_key(key));
            Ok(())
        }
        ["pool", "add", numbers @ ..] if !numbers.is_empty() => {
            for number in parse_numbers(numbers.iter().copied())? {
                store.pool().put(&number, true).await?;
            }
            print_pool(&store, &config).await?;
            println!(
                "set each number's voice URL in Twilio (A call comes in: Webhook, HTTP POST) to {}",
                incoming_url(&config)
            );
            Ok(())
        }
        ["call-in", rest @ ..] => call_in(&sdk, &config, rest).await,
        ["pool", "disable", numbers @ ..] if !numbers.is_empty() => {
            for number in parse_numbers(numbers.iter().copied())? {
                store.pool().put(&number, false).await?;
            }
            print_pool(&store, &config).await
        }
        _ => bail!(
            "usage: stackctl bootstrap | pool list | pool add NUMBER... | pool disable NUMBER... | call-in --from PHONE --to POOL_NUMBER [--stir A|B|C] | health [COUNTRY_CODE...] | quarantine list | quarantine release|allow|deny|clear DEST | app-check-token [--app-id ID] | hash-key KEY | erase NUMBER | rotate-token-key | traffic CALLS NUMBERS [SEED]"
        ),
    }
}

/// Where Twilio posts the calls to a pool number: the inbound missed call's webhook.
fn incoming_url(config: &Config) -> String {
    let base = config
        .public_base_url
        .as_deref()
        .unwrap_or("https://<your API domain>");
    format!("{base}{}", shared::telephony::VOICE_INCOMING.path)
}

/// Plays Twilio for the inbound missed call: the phone `--from` calls the pool number `--to`
/// (with STIR/SHAKEN `TN-Validation-Passed-<level>` when `--stir` says so), posted signed with
/// the Twilio secret's auth token to the local API, whose TwiML answer is printed.
async fn call_in(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    args: &[&str],
) -> anyhow::Result<()> {
    let usage = "usage: stackctl call-in --from PHONE --to POOL_NUMBER [--stir A|B|C]";
    let (mut from, mut to, mut stir) = (None, None, None);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().with_context(|| usage.to_owned())?;
        match *flag {
            "--from" => from = Some(*value),
            "--to" => to = Some(*value),
            "--stir" => stir = Some(value.to_ascii_uppercase()),
            _ => bail!("{usage}"),
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        bail!("{usage}");
    };
    let to = PhoneNumber::parse(to).with_context(|| format!("--to {to:?}"))?;
    if let Some(level) = &stir {
        anyhow::ensure!(
            matches!(level.as_str(), "A" | "B" | "C"),
            "--stir takes A, B or C"
        );
    }
    let verstat = stir.map(|level| format!("TN-Validation-Passed-{level}"));
    let base = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let url = format!("{base}{}", shared::telephony::VOICE_INCOMING.path);
    anyhow::ensure!(
        shared::telephony::is_loopback_url(&url),
        "call-in posts to the local API only; {url} is not on this machine"
    );
    let token = twilio_auth_token(sdk, config).await?;
    let params = shared::telephony::incoming_call(from, to.as_str(), verstat.as_deref());
    let signature = shared::twilio_signature::compute(&token, &url, &params);
    shared::tls::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(&url)
        .header("x-twilio-signature", signature)
        .form(&params)
        .send()
        .await
        .with_context(|| format!("posting the call to {url}"))?;
    println!("{} {}", response.status().as_u16(), response.text().await?);
    Ok(())
}

/// The auth token of the Twilio secret (`TWILIO_SECRET_ID`): what signs Twilio's webhooks,
/// read as the functions read it.
async fn twilio_auth_token(sdk: &aws_config::SdkConfig, config: &Config) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    use shared::secrets::SecretPart;
    let secrets = shared::Init::new(config.clone(), sdk.clone()).secrets();
    secrets
        .require(&[SecretPart::Twilio], "stackctl call-in")
        .await?;
    let loaded = secrets.get().await?;
    let token = loaded.twilio_webhook_token.as_ref().with_context(|| {
        format!(
            "the secret {} has no twilio_auth_token",
            secrets.id_of(SecretPart::Twilio)
        )
    })?;
    Ok(token.expose_secret().to_owned())
}

/// What `GET /health` does not tell a stranger: the pool's size and the guard's budgets used
/// this hour, globally and for each country calling code asked about.
async fn health(store: &Store, config: &Config, countries: &[&str]) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let entries = store.pool().entries().await?;
    let active = entries.iter().filter(|e| e.active).count();
    println!(
        "pool: {active} active of {} ({})",
        entries.len(),
        if active > 0 {
            "ready"
        } else {
            "NOT READY: no flash call can be placed"
        }
    );
    let budgets = config.send_budgets;
    let limits = store.limits();
    let global = limits
        .sends_this_hour(&Budget::Global, &budgets, false, now)
        .await?;
    let untrusted = limits
        .sends_this_hour(&Budget::Global, &budgets, true, now)
        .await?;
    println!(
        "sends this hour: {global} of {} ({:.0} %), {untrusted} of them untrusted (their share: {} %)",
        budgets.per_hour,
        100.0 * f64::from(global) / f64::from(budgets.per_hour),
        config.untrusted_share_percent
    );
    for country in countries {
        let code: u16 = country
            .trim_start_matches('+')
            .parse()
            .with_context(|| format!("country calling code {country:?}"))?;
        let sent = limits
            .sends_this_hour(&Budget::Country(code), &budgets, false, now)
            .await?;
        println!(
            "sends this hour to +{code}: {sent} of {}",
            budgets.per_country_per_hour
        );
    }
    let (quarantines, _) = store.reputation().list(now).await?;
    println!(
        "quarantines in force: {} (QUARANTINE_MODE={})",
        quarantines.len(),
        config.quarantine.mode.as_str()
    );
    for (d, q) in quarantines {
        println!(
            "  {d} until {} ({} of {} sends verified; {})",
            shared::clock::rfc3339(q.until),
            q.verified,
            q.sends,
            q.mode
        );
    }
    println!(
        "failed verifications by reason: the dashboard's \"Failed attempts by reason\" (metrics)"
    );
    Ok(())
}

/// The quarantines in force and the operator's overrides.
async fn quarantine_list(store: &Store) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let (quarantines, overrides) = store.reputation().list(now).await?;
    if quarantines.is_empty() && overrides.is_empty() {
        println!("no quarantine and no override");
    }
    for (d, q) in quarantines {
        println!(
            "quarantined {} {d} since {} until {} ({} of {} sends verified, {})",
            d.kind(),
            shared::clock::rfc3339(q.since),
            shared::clock::rfc3339(q.until),
            q.verified,
            q.sends,
            q.mode
        );
    }
    for (d, o) in overrides {
        println!("{} {d}", o.as_str());
    }
    Ok(())
}

/// Whether this stack is its own App Check project: its JWKS is served on loopback.
fn local_app_check(config: &Config) -> bool {
    let url = &config.attestation.jwks_url;
    url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:")
}

fn local_project_number(config: &Config) -> String {
    config
        .attestation
        .project_number
        .clone()
        .unwrap_or_else(|| devstack::app_check::LOCAL_PROJECT_NUMBER.to_owned())
}

fn app_check_dir() -> std::path::PathBuf {
    std::env::var("APP_CHECK_LOCAL_DIR")
        .unwrap_or_else(|_| devstack::app_check::DEFAULT_DIR.to_owned())
        .into()
}

/// Generates traffic and records it through the same store function the `call-event`
/// handler uses, events shuffled and some duplicated.
async fn traffic(store: &Store, calls: usize, numbers: usize, seed: u64) -> anyhow::Result<()> {
    let mut generator = devstack::traffic::Generator::new(seed);
    let numbers = generator.numbers(numbers);
    let generated = generator.calls(calls, &numbers, time::OffsetDateTime::now_utc(), 30);
    let events = generator.shuffled_events(&generated, 10);
    let started = std::time::Instant::now();
    for event in &events {
        store.calls().ingest_call_event(event, None).await?;
    }
    println!(
        "{} calls, {} events (seed {seed}) in {:.1} s between:",
        generated.len(),
        events.len(),
        started.elapsed().as_secs_f64()
    );
    for n in numbers {
        println!("  {n}");
    }
    Ok(())
}

fn parse_numbers<'a>(items: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<PhoneNumber>> {
    items
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| PhoneNumber::parse(s).with_context(|| format!("pool number {s:?}")))
        .collect()
}

async fn print_pool(store: &Store, config: &Config) -> anyhow::Result<()> {
    let entries = store.pool().entries().await?;
    for entry in &entries {
        let state = if entry.active { "active" } else { "disabled" };
        println!("pool {} {state}", entry.number);
    }
    let active = entries.iter().filter(|e| e.active).count();
    let failures = config.max_failed_verifications_per_phone_per_day;
    println!("{}", guess_bound(failures, active));
    println!("{}", code_guess_bound(config));
    Ok(())
}

/// What a guesser of one victim's code can get: wrong checks are counted per network and the
/// phone's ceiling bounds them all, whatever the networks; each names one of 10^length codes.
fn code_guess_bound(config: &Config) -> String {
    let per_network = config.max_failed_code_checks_per_phone_per_network_per_day;
    let ceiling = config.max_failed_code_checks_per_phone_per_day;
    let length = config.codes.length;
    let space = 10f64.powi(length as i32);
    format!(
        "a guesser of one phone's code succeeds with probability at most {ceiling}/10^{length} \
         = {:.4} % a day ({per_network} guesses from each network, \
         MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_NETWORK_PER_DAY={per_network}, \
         MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY={ceiling}, CODE_LENGTH={length})",
        (f64::from(ceiling) / space).min(1.0) * 100.0
    )
}

/// What a blind guesser of one victim's caller ID can get: every answered guess is a failure
/// counted against the phone, at most `failures` a day whatever the sessions, and each one
/// names one of `pool` equally likely numbers.
fn guess_bound(failures: u32, pool: usize) -> String {
    if pool == 0 {
        return "no active pool number: no flash call can be placed".to_owned();
    }
    let per_day = (f64::from(failures) / pool as f64).min(1.0);
    format!(
        "a blind guesser of one phone's caller ID succeeds with probability at most \
         {failures}/{pool} = {:.1} % a day (MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY={failures}, \
         {pool} active pool numbers)",
        per_day * 100.0
    )
}

/// A new random key of the length the template generates.
fn random_key() -> String {
    Alphanumeric.sample_string(&mut StdRng::from_os_rng(), 48)
}

/// Creates each configured part's secret with local values when it does not exist; never
/// overwrites one.
async fn ensure_secrets(
    client: &aws_sdk_secretsmanager::Client,
    config: &Config,
) -> anyhow::Result<()> {
    use shared::secrets::SecretPart;
    if config.secret_ids.is_empty() {
        bail!(
            "no secret is named: set {}",
            SecretPart::ALL.map(SecretPart::variable).join(", ")
        );
    }
    for (part, secret_id) in &config.secret_ids {
        let exists = client.describe_secret().secret_id(secret_id).send().await;
        match exists {
            Ok(_) => {
                println!("secret {secret_id}: exists");
                continue;
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(e) => {
                bail!(
                    "describing the secret {secret_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                );
            }
        }
        let value = local_secret_value(*part)?;
        client
            .create_secret()
            .name(secret_id)
            .secret_string(value.to_string())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "creating the secret {secret_id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                )
            })?;
        println!("secret {secret_id}: created with local values");
    }
    Ok(())
}

/// What a new secret of `part` holds: generated keys, and the clients and Twilio credentials
/// of the environment (`APP_SIGNATURES`, `SERVICE_API_KEYS`, `TWILIO_ACCOUNT_SID`,
/// `TWILIO_AUTH_TOKEN`).
fn local_secret_value(part: shared::secrets::SecretPart) -> anyhow::Result<serde_json::Value> {
    use shared::secrets::SecretPart;
    let var = |name| std::env::var(name).ok();
    let (dynamodb, secrets_manager) = (
        var("AWS_ENDPOINT_URL_DYNAMODB"),
        var("AWS_ENDPOINT_URL_SECRETS_MANAGER"),
    );
    let local = devstack::bootstrap::is_local(dynamodb.as_deref(), secrets_manager.as_deref());
    Ok(match part {
        SecretPart::TokenKey => json!({"token_signing_key": random_key()}),
        SecretPart::HashingKey => json!({"code_hashing_key": random_key()}),
        SecretPart::Clients => {
            let (signatures, service_keys) = devstack::bootstrap::secret_values(
                dynamodb.as_deref(),
                secrets_manager.as_deref(),
                var("APP_SIGNATURES").as_deref(),
                var("SERVICE_API_KEYS").as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            json!({
                "app_signatures": signatures.split(',').map(str::trim).collect::<Vec<_>>(),
                "service_api_key_hashes": service_keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(shared::auth::hash_api_key)
                    .collect::<Vec<_>>(),
            })
        }
        SecretPart::Twilio => match (var("TWILIO_ACCOUNT_SID"), var("TWILIO_AUTH_TOKEN")) {
            (Some(sid), Some(token)) => {
                json!({"twilio_account_sid": sid, "twilio_auth_token": token})
            }
            // Locally, a token alone: the webhook checks the signatures of the callbacks the
            // logging gateway posts, and nothing is dialed.
            (None, token) if local => json!({
                "twilio_auth_token":
                    token.unwrap_or_else(|| devstack::bootstrap::LOCAL_TWILIO_AUTH_TOKEN.into())
            }),
            _ => json!({}),
        },
    })
}

/// Puts a new token-signing key as the secret's current version: Secrets Manager moves the
/// old one to `AWSPREVIOUS`, where the functions still accept what it signed.
async fn rotate_token_key(
    client: &aws_sdk_secretsmanager::Client,
    config: &Config,
) -> anyhow::Result<()> {
    use shared::secrets::{SecretPart, SigningKey};
    let Some(secret_id) = config.secret_ids.get(&SecretPart::TokenKey) else {
        bail!("{} is not set", SecretPart::TokenKey.variable());
    };
    let key = random_key();
    let kid = SigningKey::new(key.clone().into()).kid;
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(json!({"token_signing_key": key}).to_string())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "rotating {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    println!(
        "secret {secret_id}: new token key {kid}; tokens and cursors of the previous key stay \
         valid until the next rotation (warm functions see the new key within \
         SECRET_REFRESH_SECONDS)"
    );
    Ok(())
}
