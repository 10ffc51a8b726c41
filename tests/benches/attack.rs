//! The attack lab (`infra/attack.sh`): attacks replayed against the local API over HTTP on
//! loopback, from source addresses spread over 127.0.0.0/8 (for address and network
//! diversity), beside a legitimate population (attested users and returning users, who verify
//! 60 to 90 % of the time) that shares the attackers' countries and number blocks. Each
//! scenario runs on a table of its own with the deployed defaults of every guard setting, over
//! one simulated hour (a clock the lab advances), bounded in requests.
//!
//!     infra/attack.sh                 # ATTACK_SCALE=1 (default); CI runs ATTACK_SCALE=0.1
//!
//! For each scenario it prints the attack's requests, the sends that reached the provider,
//! their cost at the per-country prices below, the legitimate users' success rate, the false
//! quarantines of legitimate blocks and the attack requests until the first quarantine.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shared::clock::Clock;
use shared::phone::{NumberType, PhoneNumber};
use shared::store::rate_limits::number_block;
use tests::{APP_SIGNATURE, TestApp};

/// Illustrative list prices, USD, 2025 (Twilio's published per-country outbound prices; check
/// them before relying on them): one SMS segment, and one minute of an answered call (a
/// pumped flash call is answered by the fraudster's number and billed).
const PRICES: &[(u16, &str, f64, f64)] = &[
    (1, "US", 0.0083, 0.0140),
    (44, "UK", 0.0524, 0.0260),
    (33, "FR", 0.0798, 0.0480),
    (49, "DE", 0.1078, 0.0650),
    (91, "IN", 0.0832, 0.0400),
];

/// Valid mobile numbers of each country come from these prefixes (random digits after).
const PREFIXES: &[(u16, &str, usize)] = &[
    (1, "+1", 10),
    (44, "+447", 9),
    (33, "+336", 8),
    (49, "+4915", 9),
    (91, "+919", 9),
];

fn price(country: u16) -> (f64, f64) {
    PRICES
        .iter()
        .find(|p| p.0 == country)
        .map_or((0.1, 0.05), |p| (p.2, p.3))
}

/// The deployed defaults, but for the countries served (the template has no default).
const SETTINGS: &[(&str, &str)] = &[
    ("ALLOWED_COUNTRY_CODES", "1,44,33,49,91"),
    ("MAX_SENDS_PER_HOUR", "1000"),
    ("MAX_SENDS_PER_COUNTRY_PER_HOUR", "200"),
    ("MAX_SENDS_PER_PREFIX_PER_HOUR", "20"),
    ("MAX_REQUESTS_PER_PHONE_PER_DAY", "10"),
    ("MAX_REQUESTS_PER_IP_PER_HOUR", "20"),
    ("MAX_REQUESTS_PER_NETWORK_PER_HOUR", "200"),
    ("REQUEST_COOLDOWN_SECONDS", "30"),
    ("CODE_RESEND_COOLDOWN_SECONDS", "30"),
    ("MAX_CODE_SENDS_PER_PHONE_PER_HOUR", "5"),
    ("MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY", "10"),
    ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_NETWORK_PER_DAY", "10"),
    ("MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY", "100"),
    ("UNTRUSTED_SHARE_PERCENT", "20"),
    ("QUARANTINE_MODE", "enforce"),
];

/// One simulated hour in ticks of a minute.
const TICKS: u32 = 60;

#[derive(Default, Debug)]
struct Outcome {
    attack_requests: u64,
    attack_sends: u64,
    attack_cost: f64,
    legit_attempts: u64,
    legit_served: u64,
    legit_refused: BTreeMap<String, u64>,
    first_quarantine_at: Option<u64>,
    false_quarantines: usize,
    quarantines: usize,
}

/// A legitimate user: a phone, an address of its own, and how it is trusted.
#[derive(Clone)]
struct User {
    phone: PhoneNumber,
    ip: IpAddr,
    attested: bool,
}

struct Lab {
    app: TestApp,
    rng: Mutex<StdRng>,
    clients: Mutex<HashMap<IpAddr, reqwest::Client>>,
    legit_numbers: Mutex<BTreeSet<String>>,
    /// Blocks the attack sent to (a quarantine of any other block is a false one).
    attacked_blocks: Mutex<BTreeSet<String>>,
    attack_numbers: Mutex<BTreeSet<String>>,
    outcome: Mutex<Outcome>,
    _jwks: wiremock::MockServer,
}

impl Lab {
    async fn new(seed: u64, extra: &[(&str, &str)]) -> Lab {
        let (jwks, app_check) = tests::app_check_jwks().await;
        let mut all: Vec<(&str, &str)> = SETTINGS.to_vec();
        all.extend(app_check.iter().map(|(k, v)| (*k, v.as_str())));
        all.extend_from_slice(extra);
        let (init, clock, phone) = tests::isolated_init(&all).await;
        let app = TestApp::spawn_with(init, clock, phone).await;
        Lab {
            app,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            clients: Mutex::new(HashMap::new()),
            legit_numbers: Mutex::new(BTreeSet::new()),
            attacked_blocks: Mutex::new(BTreeSet::new()),
            attack_numbers: Mutex::new(BTreeSet::new()),
            outcome: Mutex::new(Outcome::default()),
            _jwks: jwks,
        }
    }

    fn client(&self, ip: IpAddr) -> reqwest::Client {
        self.clients
            .lock()
            .unwrap()
            .entry(ip)
            .or_insert_with(|| {
                reqwest::Client::builder()
                    .local_address(ip)
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap()
            })
            .clone()
    }

    async fn post(&self, ip: IpAddr, path: &str, body: Value, attested: bool) -> (u16, Value) {
        let mut req = self
            .client(ip)
            .post(format!("{}{path}", self.app.url))
            .json(&body);
        if attested {
            // A fresh token at the lab's time (App Check tokens live an hour).
            let token = tests::app_check_token(self.app.clock.now());
            req = req.header("x-firebase-appcheck", token);
        }
        let response = req.send().await.expect("the local API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A valid mobile number of `country`, in `block` when given (the block's prefix).
    fn number(&self, country: u16, block: Option<&str>) -> PhoneNumber {
        let (_, prefix, digits) = *PREFIXES.iter().find(|p| p.0 == country).unwrap();
        let mut rng = self.rng.lock().unwrap();
        loop {
            let text = match block {
                Some(block) => format!("{block}{:04}", rng.random_range(0..10_000)),
                None => {
                    let rest: String = (0..digits)
                        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                        .collect();
                    format!("{prefix}{rest}")
                }
            };
            if let Ok(phone) = PhoneNumber::parse(&text)
                && matches!(
                    phone.number_type(),
                    NumberType::Mobile | NumberType::FixedLineOrMobile
                )
            {
                return phone;
            }
        }
    }

    /// An address among `hosts` hosts of each of `networks` /24 networks, of the `group`
    /// (attackers and users never share an address).
    fn address(&self, group: u8, networks: u32, hosts: u32) -> IpAddr {
        let mut rng = self.rng.lock().unwrap();
        let network = rng.random_range(0..networks.min(250)) as u8;
        let host = rng.random_range(1..=hosts.min(250)) as u8;
        IpAddr::V4(Ipv4Addr::new(127, group, network + 1, host))
    }

    fn chance(&self, p: f64) -> bool {
        self.rng.lock().unwrap().random_bool(p)
    }

    fn minute(&self) {
        self.app.clock.advance(time::Duration::seconds(60));
    }

    /// One attack request: a flash call or a code start to `phone`.
    async fn attack_send(&self, ip: IpAddr, phone: &PhoneNumber, code: bool, attested: bool) {
        if self.legit_numbers.lock().unwrap().contains(phone.as_str()) {
            return; // a number of the population: not the attacker's to spend
        }
        self.attacked_blocks
            .lock()
            .unwrap()
            .insert(number_block(phone).to_owned());
        self.attack_numbers
            .lock()
            .unwrap()
            .insert(phone.as_str().to_owned());
        let path = if code {
            "/sms/verify/start"
        } else {
            "/auth/request"
        };
        let body = json!({"phone_number": phone, "app_signature": APP_SIGNATURE});
        let (status, body) = self.post(ip, path, body, attested).await;
        let mut o = self.outcome.lock().unwrap();
        o.attack_requests += 1;
        if status == 202 {
            o.attack_sends += 1;
            let (sms, call) = price(phone.country_code());
            o.attack_cost += if code { sms } else { call };
        }
        if status == 403
            && body["error"] == "destination_quarantined"
            && o.first_quarantine_at.is_none()
        {
            o.first_quarantine_at = Some(o.attack_requests);
        }
    }

    /// One legitimate verification: a start, and (60-90 % of the time) the right answer.
    async fn legit(&self, user: &User, code: bool, converts: f64) {
        let body = json!({"phone_number": user.phone, "app_signature": APP_SIGNATURE});
        let path = if code {
            "/sms/verify/start"
        } else {
            "/auth/request"
        };
        let (status, started) = self.post(user.ip, path, body, user.attested).await;
        {
            let mut o = self.outcome.lock().unwrap();
            o.legit_attempts += 1;
            if status == 202 {
                o.legit_served += 1;
            } else {
                let why = started["limit"]
                    .as_str()
                    .or(started["error"].as_str())
                    .unwrap_or("?")
                    .to_owned();
                *o.legit_refused.entry(why).or_default() += 1;
            }
        }
        if status != 202 || !self.chance(converts) {
            return;
        }
        let (status, reply) = if code {
            let code = self.app.phone.code_sent_to(&user.phone).unwrap();
            let body = json!({"phone_number": user.phone, "code": code,
                              "verification_id": started["verification_id"]});
            self.post(user.ip, "/sms/verify/check", body, false).await
        } else {
            let caller = self.app.caller_id(&user.phone);
            let body = json!({"phone_number": user.phone, "received_caller_id": caller,
                              "session_id": started["session_id"]});
            self.post(user.ip, "/auth/verify", body, false).await
        };
        if status != 200 {
            let mut o = self.outcome.lock().unwrap();
            let why = format!("verify:{}", reply["error"].as_str().unwrap_or("?"));
            *o.legit_refused.entry(why).or_default() += 1;
        }
    }

    /// `n` users spread over the countries (and, for `blocks`, inside those blocks), half
    /// attested, half returning (they verify once before the hour, which then starts).
    async fn population(&self, n: usize, blocks: &[String]) -> Vec<User> {
        let mut users = Vec::new();
        for i in 0..n {
            let country = PREFIXES[i % PREFIXES.len()].0;
            let block = blocks
                .iter()
                .find(|b| b.starts_with(&format!("+{country}")) && self.chance(0.5));
            let user = User {
                phone: self.number(country, block.map(String::as_str)),
                ip: self.address(200, 250, 250),
                attested: i % 2 == 0,
            };
            self.legit_numbers
                .lock()
                .unwrap()
                .insert(user.phone.as_str().to_owned());
            if !user.attested {
                let returning = User {
                    attested: true,
                    ..user.clone()
                };
                self.legit(&returning, false, 1.0).await;
            }
            users.push(user);
        }
        // The hour starts afresh: the setup spent nothing of it.
        self.app.clock.advance(time::Duration::seconds(3601));
        *self.outcome.lock().unwrap() = Outcome::default();
        users
    }

    async fn finish(&self) -> Outcome {
        let (quarantines, _) = self
            .app
            .store
            .reputation()
            .list(self.app.clock.now())
            .await
            .unwrap();
        let attacked = self.attacked_blocks.lock().unwrap().clone();
        let mut o = std::mem::take(&mut *self.outcome.lock().unwrap());
        o.quarantines = quarantines.len();
        o.false_quarantines = quarantines
            .iter()
            .filter(|(d, _)| match d {
                shared::store::reputation::Destination::Block(b) => !attacked.contains(b),
                shared::store::reputation::Destination::Country(_) => false,
            })
            .count();
        // Sends that reached the provider, counted at the provider.
        let numbers = self.attack_numbers.lock().unwrap().clone();
        let reached: usize = numbers
            .iter()
            .map(|n| PhoneNumber::parse(n).unwrap())
            .map(|n| self.app.phone.calls_to(&n) + self.app.phone.messages_to(&n).len())
            .sum();
        assert_eq!(
            reached as u64, o.attack_sends,
            "every 202 reached the provider, and nothing else did"
        );
        o
    }
}

fn scaled(n: f64, scale: f64) -> usize {
    ((n * scale).round() as usize).max(1)
}

/// Scenario 1, pumping: code starts and flash calls to fresh numbers over hundreds of blocks in five
/// countries, from 1,000 addresses in 40 networks, never verifying.
async fn pumping(scale: f64, attested_share: f64) -> Outcome {
    let lab = Lab::new(1, &[]).await;
    let mut rng = StdRng::seed_from_u64(11);
    let blocks: Vec<String> = (0..scaled(300.0, scale))
        .map(|i| number_block(&lab.number(PREFIXES[i % PREFIXES.len()].0, None)).to_owned())
        .collect();
    let users = lab.population(scaled(100.0, scale), &blocks).await;
    let per_tick = scaled(50.0, scale);
    for tick in 0..TICKS {
        for _ in 0..per_tick {
            let block = &blocks[rng.random_range(0..blocks.len())];
            let country = PREFIXES
                .iter()
                .find(|p| block.starts_with(&format!("+{}", p.0)))
                .map_or(1, |p| p.0);
            let phone = lab.number(country, Some(block));
            let ip = lab.address(10, 40, 25);
            let attested = rng.random_bool(attested_share);
            lab.attack_send(ip, &phone, rng.random_bool(0.5), attested)
                .await;
        }
        legit_tick(&lab, &users, tick).await;
        lab.minute();
    }
    lab.finish().await
}

/// Scenario 2, budget exhaustion: an untrusted flood at one country.
async fn budget_exhaustion(scale: f64) -> Outcome {
    let lab = Lab::new(2, &[]).await;
    let mut rng = StdRng::seed_from_u64(22);
    let users = lab.population(scaled(100.0, scale), &[]).await;
    let per_tick = scaled(60.0, scale);
    for tick in 0..TICKS {
        for _ in 0..per_tick {
            let phone = lab.number(44, None);
            let ip = lab.address(20, 60, 20);
            lab.attack_send(ip, &phone, rng.random_bool(0.5), false)
                .await;
        }
        legit_tick(&lab, &users, tick).await;
        lab.minute();
    }
    lab.finish().await
}

/// Scenario 3, victim lockout: wrong code checks at known victims' numbers from a few networks,
/// while the victims verify.
async fn victim_lockout(scale: f64) -> Outcome {
    let lab = Lab::new(3, &[]).await;
    let users = lab.population(scaled(60.0, scale), &[]).await;
    let attackers: Vec<IpAddr> = (0..3).map(|n| lab.address(30 + n, 1, 5)).collect();
    for (i, victim) in users.iter().enumerate() {
        let body = json!({"phone_number": victim.phone, "app_signature": APP_SIGNATURE});
        let (status, started) = lab
            .post(victim.ip, "/sms/verify/start", body, victim.attested)
            .await;
        {
            let mut o = lab.outcome.lock().unwrap();
            o.legit_attempts += 1;
            if status != 202 {
                *o.legit_refused
                    .entry(format!("start:{status}"))
                    .or_default() += 1;
                continue;
            }
        }
        // The attacker knows the number, not the code: 30 wrong guesses from each network
        // (a guess that happens to be right is skipped: the lab measures the lockout, not luck).
        let code = lab.app.phone.code_sent_to(&victim.phone).unwrap();
        for ip in &attackers {
            for guess in 0..30u32 {
                let guess = format!("{:06}", guess * 7919 % 1_000_000);
                if guess == code {
                    continue;
                }
                let body = json!({"phone_number": victim.phone, "code": guess});
                lab.post(*ip, "/sms/verify/check", body, false).await;
                lab.outcome.lock().unwrap().attack_requests += 1;
            }
        }
        let body = json!({"phone_number": victim.phone, "code": code,
                          "verification_id": started["verification_id"]});
        let (status, reply) = lab.post(victim.ip, "/sms/verify/check", body, false).await;
        let mut o = lab.outcome.lock().unwrap();
        if status == 200 {
            o.legit_served += 1;
        } else {
            let why = format!("verify:{}", reply["error"].as_str().unwrap_or("?"));
            *o.legit_refused.entry(why).or_default() += 1;
        }
        drop(o);
        if i % 5 == 4 {
            lab.minute();
        }
    }
    lab.finish().await
}

/// Scenario 4, slow drip: pumping just under every threshold for a whole window: a few untrusted
/// sends a block (under the untrusted prefix share), spread over the window and the countries.
async fn slow_drip(scale: f64) -> Outcome {
    let lab = Lab::new(4, &[]).await;
    let mut rng = StdRng::seed_from_u64(44);
    let blocks: Vec<String> = (0..scaled(400.0, scale))
        .map(|i| number_block(&lab.number(PREFIXES[i % PREFIXES.len()].0, None)).to_owned())
        .collect();
    let users = lab.population(scaled(100.0, scale), &blocks).await;
    // The untrusted share of the global budget (200 an hour), paced: 3 a minute.
    let per_tick = scaled(3.0, scale);
    let mut next = 0;
    for tick in 0..TICKS {
        for _ in 0..per_tick {
            let block = &blocks[next % blocks.len()];
            next += 1;
            let country = PREFIXES
                .iter()
                .find(|p| block.starts_with(&format!("+{}", p.0)))
                .map_or(1, |p| p.0);
            let phone = lab.number(country, Some(block));
            let ip = lab.address(40, 50, 20);
            lab.attack_send(ip, &phone, rng.random_bool(0.5), false)
                .await;
        }
        legit_tick(&lab, &users, tick).await;
        lab.minute();
    }
    lab.finish().await
}

/// Each user verifies about once in the hour, at a minute of its own.
async fn legit_tick(lab: &Lab, users: &[User], tick: u32) {
    for (i, user) in users.iter().enumerate() {
        if i as u32 % TICKS == tick || (i as u32 + 30) % TICKS == tick && i % 3 == 0 {
            let converts = 0.6 + 0.3 * (i % 4) as f64 / 3.0;
            lab.legit(user, i % 2 == 0, converts).await;
        }
    }
}

fn row(name: &str, o: &Outcome) {
    let success = if o.legit_attempts == 0 {
        100.0
    } else {
        100.0 * o.legit_served as f64 / o.legit_attempts as f64
    };
    println!(
        "| {name} | {} | {} | ${:.2} | {:.1} % ({} of {}) | {} of {} | {} |",
        o.attack_requests,
        o.attack_sends,
        o.attack_cost,
        success,
        o.legit_served,
        o.legit_attempts,
        o.false_quarantines,
        o.quarantines,
        o.first_quarantine_at
            .map_or("none".to_owned(), |n| n.to_string()),
    );
    if !o.legit_refused.is_empty() {
        println!("|  legitimate refusals: {:?} | | | | | |", o.legit_refused);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scale: f64 = std::env::var("ATTACK_SCALE")
        .ok()
        .map(|v| v.parse().expect("ATTACK_SCALE must be a number"))
        .unwrap_or(1.0);
    let started = std::time::Instant::now();
    println!("== attack lab (ATTACK_SCALE={scale}, deployed defaults, one simulated hour) ==");
    println!(
        "| scenario | attack requests | sends reaching the provider | their cost | legitimate success | false quarantines (of all) | attack requests until the first quarantine |"
    );
    println!("|---|---|---|---|---|---|---|");
    let pumped = pumping(scale, 0.0).await;
    row("1. pumping (untrusted)", &pumped);
    let exhausted = budget_exhaustion(scale).await;
    row("2. budget exhaustion (+44)", &exhausted);
    let locked = victim_lockout(scale).await;
    row("3. victim lockout", &locked);
    let dripped = slow_drip(scale).await;
    row("4. slow drip", &dripped);
    let farmed = pumping(scale, 1.0).await;
    row("5. pumping from attested devices", &farmed);
    println!(
        "lab time: {:.1} s (the hour is simulated; the budgets are fixed clock-hour windows, so \
         the simulated hour, which straddles two, may see up to twice an hourly share)",
        started.elapsed().as_secs_f64()
    );
    // The contract: the users' budget and their phones cannot be taken from them.
    for (name, o) in [
        ("budget exhaustion", &exhausted),
        ("victim lockout", &locked),
    ] {
        assert_eq!(
            o.legit_served, o.legit_attempts,
            "{name}: legitimate users were refused: {:?}",
            o.legit_refused
        );
    }
}
