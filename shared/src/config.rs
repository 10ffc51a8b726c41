//! `Config`: every environment variable the functions read, parsed once at init.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use crate::phone::{NumberType, PhoneNumber};
use crate::secrets::SecretPart;
use crate::sms::code::CodeChannel;

/// The typed configuration. Build it with [`Config::from_env`] in production or
/// [`Config::from_vars`] in tests; nothing else reads the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// The secret of each part this container may read, by its variable
    /// ([`SecretPart::variable`]); a function's template names only its own.
    pub secret_ids: BTreeMap<SecretPart, String>,
    /// The public base URL of the API (`https://api.example.com`), used to build webhook URLs
    /// and to check Twilio's signatures. Unset, the domain API Gateway reports is used.
    pub public_base_url: Option<String>,
    pub validity_period: Duration,
    pub max_verification_attempts: u32,
    pub max_requests_per_phone_per_day: u32,
    pub max_requests_per_ip_per_hour: u32,
    pub request_cooldown: Duration,
    /// Country calling codes allowed to verify; empty allows every country (`*`, or unset
    /// outside Lambda: a deployment must name its countries).
    pub allowed_country_codes: BTreeSet<u16>,
    /// Where the users are: sends to other (allowed) countries are counted as unusual, for
    /// the alarm. Empty: no country is unusual.
    pub expected_country_codes: BTreeSet<u16>,
    pub require_app_signature: bool,
    /// Number types that may be called or texted (libphonenumber's, from its metadata).
    pub allowed_number_types: BTreeSet<NumberType>,
    /// Service-wide budgets of sends that reach the provider, per hour.
    pub send_budgets: SendBudgets,
    /// Failed flash-call verifications a phone may have in a UTC day, across sessions.
    pub max_failed_verifications_per_phone_per_day: u32,
    /// Requests per client network (IPv4 /24, IPv6 /64) per hour, every channel together.
    pub max_requests_per_network_per_hour: u32,
    /// Failed code checks of one phone from one client network in a UTC day.
    pub max_failed_code_checks_per_phone_per_network_per_day: u32,
    /// Failed code checks of one phone in a UTC day, whatever the networks: the ceiling that
    /// bounds guessing.
    pub max_failed_code_checks_per_phone_per_day: u32,
    /// App attestation (Firebase App Check).
    pub attestation: AttestationSettings,
    /// Days a phone stays trusted after it verified (0: never by its history).
    pub trusted_phone_days: u32,
    /// The share of each service-wide budget untrusted requests may use.
    pub untrusted_share_percent: u32,
    /// Conversion quarantine of number blocks and countries.
    pub quarantine: QuarantineSettings,
    /// Whether `TEST_PHONE_NUMBERS` of the secret are honoured at all.
    pub allow_test_numbers: bool,
    pub flash_call_ring_timeout: Duration,
    /// The inbound missed call: which caller-ID attestations verify.
    pub inbound: InboundSettings,
    /// The numbers `sms-send` may send from (the first is the default sender unless a
    /// Messaging Service is configured).
    pub sms_from_numbers: Vec<PhoneNumber>,
    /// A Twilio Messaging Service (`MG...`) to send through; the default sender when set.
    pub sms_messaging_service_sid: Option<String>,
    /// Messages to one recipient per hour (`sms-send`).
    pub max_sms_per_recipient_per_hour: u32,
    /// How `sms-verify` makes, sends and checks its codes.
    pub codes: CodeSettings,
    pub token_lifetime: Duration,
    /// How long call records and events are kept after their last event was recorded
    /// (`CALL_RETENTION_DAYS`, default 400); `None` keeps them.
    pub call_retention: Option<Duration>,
    pub token_issuer: String,
    pub secret_refresh_interval: Duration,
    pub pool_cache_ttl: Duration,
    pub twilio_api_base_url: String,
    pub twilio_connect_timeout: Duration,
    pub twilio_request_timeout: Duration,
    pub twilio_max_retries: u32,
    /// What our Twilio account may be handed: its calls and messages per second and its
    /// concurrent calls. A send beyond them is refused, never left in Twilio's queue.
    pub provider_rate: ProviderRates,
    /// AWS calls (DynamoDB, Secrets Manager): connecting, one attempt, and the whole operation
    /// with its retries. An unreachable or frozen dependency answers 503 within the last.
    pub aws_connect_timeout: Duration,
    pub aws_attempt_timeout: Duration,
    pub aws_operation_timeout: Duration,
    pub aws_max_attempts: u32,
    /// Whether metrics are printed (EMF lines on stdout) after each request.
    pub emit_metrics: bool,
    /// Whether the gateway that only logs calls may be used inside Lambda.
    pub allow_logging_gateway: bool,
    /// Set when running inside AWS Lambda.
    pub in_lambda: bool,
}

/// Every variable that was present but unusable, named, without its value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Service-wide budgets of everything that reaches the provider (flash calls and SMS alike),
/// in units: a flash call is one, an SMS one per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBudgets {
    pub per_hour: u32,
    pub per_country_per_hour: u32,
    /// Per block of 10,000 numbers (the number less its last four digits): pumping walks
    /// number ranges.
    pub per_prefix_per_hour: u32,
}

/// The Twilio account's own rates (its CPS and MPS, its concurrent calls): Twilio queues what
/// goes beyond them, and a queued flash call or code arrives after it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderRates {
    /// `TWILIO_CALLS_PER_SECOND` (1, Twilio's default CPS).
    pub calls_per_second: u32,
    /// `TWILIO_MAX_CONCURRENT_CALLS` (`unlimited`; accounts without an approved business
    /// profile may hold 2 or 3).
    pub max_concurrent_calls: Option<u32>,
    /// `TWILIO_MESSAGES_PER_SECOND` (1), per sender: a number's MPS, or the Messaging
    /// Service's figure when sending through one. Counted in segments, as Twilio counts.
    pub messages_per_second: u32,
}

/// Google's public keys of App Check tokens.
pub const DEFAULT_APP_CHECK_JWKS_URL: &str = "https://firebaseappcheck.googleapis.com/v1/jwks";

/// Firebase App Check: which project's tokens are accepted, and whether one is required.
#[derive(Debug, Clone)]
pub struct AttestationSettings {
    /// The Firebase project number (digits); unset, no token is looked at.
    pub project_number: Option<String>,
    /// The app ids (`sub`) accepted; empty accepts any app of the project.
    pub app_ids: BTreeSet<String>,
    pub jwks_url: String,
    /// `REQUIRE_ATTESTATION`: no token is a 401, an invalid one a 403.
    pub required: bool,
}

/// What the conversion quarantine does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineMode {
    /// Quarantined destinations are refused.
    Enforce,
    /// Nothing is refused; the log, the metric and the event say what would have been.
    Monitor,
    /// Nothing is counted or refused.
    Off,
}

impl QuarantineMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineMode::Enforce => "enforce",
            QuarantineMode::Monitor => "monitor",
            QuarantineMode::Off => "off",
        }
    }
}

/// The conversion quarantine: number blocks and countries whose sends do not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineSettings {
    pub mode: QuarantineMode,
    /// The window over which sends and their verifications are counted.
    pub window: Duration,
    /// Sends younger than this are not yet counted as unconverted.
    pub grace: Duration,
    /// Counted sends a block needs before its conversion is judged.
    pub min_sends: u32,
    /// Counted sends a country needs before its conversion is judged.
    pub country_min_sends: u32,
    /// Below this share of verified sends, a block or country is quarantined.
    pub min_conversion_percent: u32,
    /// How long a quarantine lasts.
    pub duration: Duration,
}

/// How `sms-verify` makes, sends and checks its codes.
#[derive(Debug, Clone)]
pub struct CodeSettings {
    /// Digits in a code (4 to 10).
    pub length: u32,
    pub validity: Duration,
    pub resend_cooldown: Duration,
    pub max_sends_per_phone_per_hour: u32,
    /// Checks one code takes (right or wrong) before it is used up.
    pub max_checks: u32,
    /// The `{app}` of the message templates.
    pub app_name: String,
    /// The domain of the origin-bound code line (`@example.com #123456`), for WebOTP and iOS
    /// security-code autofill.
    pub otp_domain: Option<String>,
    pub templates: CodeTemplates,
    /// The channels a start may name (`CODE_CHANNELS`, default `sms,voice`), in order.
    pub channels: Vec<CodeChannel>,
    /// What a voice call says: a default and one per locale (`CODE_VOICE_TEMPLATE[_<LANG>]`).
    pub voice_templates: CodeTemplates,
    /// The language the default voice template is said in (`CODE_VOICE_LANGUAGE`).
    pub voice_language: String,
    /// Our WhatsApp sender (`WHATSAPP_FROM`, E.164).
    pub whatsapp_from: Option<PhoneNumber>,
    /// The approved authentication template (`WHATSAPP_CONTENT_SID`, `HX...`) that carries
    /// the code as its variable `1`.
    pub whatsapp_content_sid: Option<String>,
    /// With a Verify Service (`VA...`), Twilio Verify makes, sends and checks the codes.
    pub verify_service_sid: Option<String>,
    pub verify_base_url: String,
}

/// Which incoming calls verify an inbound session, by their STIR/SHAKEN attestation.
#[derive(Debug, Clone)]
pub struct InboundSettings {
    /// The attestation levels that verify (`INBOUND_ACCEPTED_ATTESTATIONS`, default `A`).
    pub accepted_attestations: BTreeSet<char>,
    /// A call without an attestation is refused (`INBOUND_REQUIRE_ATTESTATION`).
    pub require_attestation: bool,
}

/// The code message's wording: a default and one per locale.
#[derive(Debug, Clone)]
pub struct CodeTemplates {
    pub default: String,
    /// By lowercase BCP 47 tag (`es`, `pt-br`).
    pub by_locale: std::collections::BTreeMap<String, String>,
}

/// The default wording of a code message.
pub const DEFAULT_CODE_TEMPLATE: &str = "Your {app} code is {code}. Do not share it.";

/// The default words of a voice code (the digits are said one by one).
pub const DEFAULT_VOICE_TEMPLATE: &str = "Your {app} verification code is: {code}.";

impl CodeTemplates {
    /// The template for `locale` (`pt-BR`): its own, its language's (`pt`), or the default.
    pub fn for_locale(&self, locale: Option<&str>) -> &str {
        self.matching(locale)
            .map_or(&self.default, |(_, text)| text)
    }

    /// The localized template for `locale`, with the tag it is kept under (`pt-br`, `pt`);
    /// `None` when the default applies.
    pub fn matching(&self, locale: Option<&str>) -> Option<(&str, &str)> {
        let locale = locale?.to_ascii_lowercase();
        let language = locale.split('-').next().unwrap_or_default();
        self.by_locale
            .get_key_value(&locale)
            .or_else(|| self.by_locale.get_key_value(language))
            .map(|(tag, text)| (tag.as_str(), text.as_str()))
    }
}

/// A template holds `{code}` once and no placeholder but `{code}` and `{app}`.
fn check_template(text: &str) -> Result<(), &'static str> {
    if text.matches("{code}").count() != 1 {
        return Err("must contain {code} exactly once");
    }
    let rest = text.replace("{code}", "").replace("{app}", "");
    if rest.contains('{') || rest.contains('}') {
        return Err("may contain no placeholder but {code} and {app}");
    }
    if text.chars().count() > 320 {
        return Err("must be at most 320 characters");
    }
    Ok(())
}

impl Config {
    /// The sender of messages when the request names none: the Messaging Service if one is
    /// configured, else the first of `SMS_FROM_NUMBERS`.
    /// Whether a send to `country_code` is outside `EXPECTED_COUNTRY_CODES` (for the metric
    /// and alarm of sends to unusual countries).
    pub fn is_unusual_country(&self, country_code: u16) -> bool {
        !self.expected_country_codes.is_empty()
            && !self.expected_country_codes.contains(&country_code)
    }

    pub fn default_sms_sender(&self) -> Option<crate::telephony::Sender> {
        use crate::telephony::Sender;
        match (
            &self.sms_messaging_service_sid,
            self.sms_from_numbers.first(),
        ) {
            (Some(sid), _) => Some(Sender::MessagingService(sid.clone())),
            (None, Some(number)) => Some(Sender::Number(number.clone())),
            (None, None) => None,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut env = Vars {
            vars,
            problems: Vec::new(),
        };
        let config = Config {
            table_name: env.string("TABLE_NAME", "phone-verification"),
            secret_ids: SecretPart::ALL
                .into_iter()
                .filter_map(|part| Some((part, env.raw(part.variable())?.to_owned())))
                .collect(),
            public_base_url: env
                .raw("PUBLIC_BASE_URL")
                .map(|u| u.trim_end_matches('/').to_owned()),
            validity_period: env.seconds("VALIDITY_PERIOD_SECONDS", 300, 30..=3600),
            max_verification_attempts: env.number("MAX_VERIFICATION_ATTEMPTS", 5, 1..=20),
            max_requests_per_phone_per_day: env.number(
                "MAX_REQUESTS_PER_PHONE_PER_DAY",
                10,
                1..=10_000,
            ),
            max_requests_per_ip_per_hour: env.number(
                "MAX_REQUESTS_PER_IP_PER_HOUR",
                20,
                1..=1_000_000,
            ),
            request_cooldown: env.seconds("REQUEST_COOLDOWN_SECONDS", 30, 0..=3600),
            allowed_country_codes: env.allowed_countries("ALLOWED_COUNTRY_CODES"),
            expected_country_codes: env.country_codes("EXPECTED_COUNTRY_CODES"),
            require_app_signature: env.boolean("REQUIRE_APP_SIGNATURE", true),
            allowed_number_types: env.number_types(
                "ALLOWED_NUMBER_TYPES",
                &[NumberType::Mobile, NumberType::FixedLineOrMobile],
            ),
            send_budgets: SendBudgets {
                // 5,000 sends a second for an hour is 18,000,000.
                per_hour: env.number("MAX_SENDS_PER_HOUR", 1000, 1..=100_000_000),
                per_country_per_hour: env.number(
                    "MAX_SENDS_PER_COUNTRY_PER_HOUR",
                    200,
                    1..=100_000_000,
                ),
                per_prefix_per_hour: env.number(
                    "MAX_SENDS_PER_PREFIX_PER_HOUR",
                    20,
                    1..=10_000_000,
                ),
            },
            max_failed_verifications_per_phone_per_day: env.number(
                "MAX_FAILED_VERIFICATIONS_PER_PHONE_PER_DAY",
                10,
                1..=1000,
            ),
            max_requests_per_network_per_hour: env.number(
                "MAX_REQUESTS_PER_NETWORK_PER_HOUR",
                200,
                1..=10_000_000,
            ),
            max_failed_code_checks_per_phone_per_network_per_day: env.number(
                "MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_NETWORK_PER_DAY",
                10,
                1..=1000,
            ),
            max_failed_code_checks_per_phone_per_day: env.number(
                "MAX_FAILED_CODE_CHECKS_PER_PHONE_PER_DAY",
                100,
                1..=100_000,
            ),
            attestation: AttestationSettings {
                project_number: env.digits("APP_CHECK_PROJECT_NUMBER"),
                app_ids: env.list("APP_CHECK_APP_IDS"),
                jwks_url: env.url("APP_CHECK_JWKS_URL", DEFAULT_APP_CHECK_JWKS_URL),
                required: env.boolean("REQUIRE_ATTESTATION", false),
            },
            trusted_phone_days: env.number("TRUSTED_PHONE_DAYS", 90, 0..=3650),
            untrusted_share_percent: env.number("UNTRUSTED_SHARE_PERCENT", 20, 0..=100),
            quarantine: QuarantineSettings {
                mode: env.quarantine_mode("QUARANTINE_MODE"),
                window: env.seconds("QUARANTINE_WINDOW_SECONDS", 3600, 60..=86_400),
                grace: env.seconds("QUARANTINE_GRACE_SECONDS", 120, 0..=3600),
                min_sends: env.number("QUARANTINE_MIN_SENDS", 10, 1..=1_000_000),
                country_min_sends: env.number("QUARANTINE_COUNTRY_MIN_SENDS", 200, 1..=10_000_000),
                min_conversion_percent: env.number(
                    "QUARANTINE_MIN_CONVERSION_PERCENT",
                    20,
                    0..=100,
                ),
                duration: env.seconds("QUARANTINE_SECONDS", 43_200, 60..=2_592_000),
            },
            allow_test_numbers: env.boolean("ALLOW_TEST_NUMBERS", false),
            flash_call_ring_timeout: env.seconds("FLASH_CALL_RING_TIMEOUT_SECONDS", 10, 5..=60),
            inbound: InboundSettings {
                accepted_attestations: env.attestations("INBOUND_ACCEPTED_ATTESTATIONS"),
                require_attestation: env.boolean("INBOUND_REQUIRE_ATTESTATION", false),
            },
            sms_from_numbers: env.phone_numbers("SMS_FROM_NUMBERS"),
            sms_messaging_service_sid: env.sid(
                "SMS_MESSAGING_SERVICE_SID",
                "MG",
                "a Messaging Service SID",
            ),
            max_sms_per_recipient_per_hour: env.number(
                "MAX_SMS_PER_RECIPIENT_PER_HOUR",
                5,
                1..=1000,
            ),
            codes: CodeSettings {
                length: env.number("CODE_LENGTH", 6, 4..=10),
                validity: env.seconds("CODE_VALIDITY_SECONDS", 600, 60..=3600),
                resend_cooldown: env.seconds("CODE_RESEND_COOLDOWN_SECONDS", 30, 0..=3600),
                max_sends_per_phone_per_hour: env.number(
                    "MAX_CODE_SENDS_PER_PHONE_PER_HOUR",
                    5,
                    1..=100,
                ),
                max_checks: env.number("MAX_CODE_CHECKS", 5, 1..=20),
                app_name: env.string("APP_NAME", "Phone Verification"),
                otp_domain: env.domain("OTP_DOMAIN"),
                templates: env.templates("CODE_MESSAGE_TEMPLATE", DEFAULT_CODE_TEMPLATE),
                channels: env.code_channels("CODE_CHANNELS"),
                voice_templates: env.templates("CODE_VOICE_TEMPLATE", DEFAULT_VOICE_TEMPLATE),
                voice_language: env.voice_language("CODE_VOICE_LANGUAGE"),
                whatsapp_from: env.phone_numbers("WHATSAPP_FROM").first().cloned(),
                whatsapp_content_sid: env.sid(
                    "WHATSAPP_CONTENT_SID",
                    "HX",
                    "a Content SID of an approved template",
                ),
                verify_service_sid: env.sid("VERIFY_SERVICE_SID", "VA", "a Verify Service SID"),
                verify_base_url: env
                    .string("TWILIO_VERIFY_BASE_URL", "https://verify.twilio.com")
                    .trim_end_matches('/')
                    .to_owned(),
            },
            token_lifetime: env.seconds("TOKEN_LIFETIME_SECONDS", 900, 60..=86_400),
            call_retention: match env.number("CALL_RETENTION_DAYS", 400u32, 0..=36_500) {
                0 => None,
                days => Some(Duration::from_secs(u64::from(days) * 86_400)),
            },
            token_issuer: env.string("TOKEN_ISSUER", "phone-verification"),
            secret_refresh_interval: env.seconds("SECRET_REFRESH_SECONDS", 300, 10..=86_400),
            pool_cache_ttl: env.seconds("POOL_CACHE_SECONDS", 60, 0..=3600),
            twilio_api_base_url: env
                .string("TWILIO_API_BASE_URL", "https://api.twilio.com")
                .trim_end_matches('/')
                .to_owned(),
            twilio_connect_timeout: Duration::from_millis(env.number(
                "TWILIO_CONNECT_TIMEOUT_MS",
                1_000,
                50..=10_000,
            )),
            twilio_request_timeout: Duration::from_millis(env.number(
                "TWILIO_REQUEST_TIMEOUT_MS",
                3_000,
                100..=30_000,
            )),
            twilio_max_retries: env.number("TWILIO_MAX_RETRIES", 2, 0..=5),
            provider_rate: ProviderRates {
                calls_per_second: env.number("TWILIO_CALLS_PER_SECOND", 1, 1..=10_000),
                max_concurrent_calls: env.unlimited_or("TWILIO_MAX_CONCURRENT_CALLS", 1..=100_000),
                messages_per_second: env.number("TWILIO_MESSAGES_PER_SECOND", 1, 1..=10_000),
            },
            aws_connect_timeout: Duration::from_millis(env.number(
                "AWS_CONNECT_TIMEOUT_MS",
                500,
                50..=10_000,
            )),
            aws_attempt_timeout: Duration::from_millis(env.number(
                "AWS_ATTEMPT_TIMEOUT_MS",
                1_500,
                50..=30_000,
            )),
            aws_operation_timeout: Duration::from_millis(env.number(
                "AWS_OPERATION_TIMEOUT_MS",
                3_000,
                100..=30_000,
            )),
            aws_max_attempts: env.number("AWS_MAX_ATTEMPTS", 3, 1..=10),
            emit_metrics: env.boolean("EMIT_METRICS", true),
            allow_logging_gateway: env.boolean("ALLOW_LOGGING_GATEWAY", false),
            in_lambda: env.vars.contains_key("AWS_LAMBDA_FUNCTION_NAME"),
        };
        if config
            .public_base_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://"))
        {
            env.problems
                .push("PUBLIC_BASE_URL must start with https:// or http://".into());
        }
        if config.attestation.required && config.attestation.project_number.is_none() {
            env.problems
                .push("REQUIRE_ATTESTATION is true but APP_CHECK_PROJECT_NUMBER is not set".into());
        }
        let codes = &config.codes;
        if codes.channels.contains(&CodeChannel::Whatsapp)
            && codes.verify_service_sid.is_none()
            && (codes.whatsapp_from.is_none() || codes.whatsapp_content_sid.is_none())
        {
            env.problems.push(
                "CODE_CHANNELS offers whatsapp: WHATSAPP_FROM and WHATSAPP_CONTENT_SID must be set \
                 (or VERIFY_SERVICE_SID, whose service sends it)"
                    .into(),
            );
        }
        if config.quarantine.grace >= config.quarantine.window {
            env.problems.push(
                "QUARANTINE_GRACE_SECONDS must be shorter than QUARANTINE_WINDOW_SECONDS".into(),
            );
        }
        if config.in_lambda && env.raw("ALLOWED_COUNTRY_CODES").is_none() {
            env.problems.push(
                "ALLOWED_COUNTRY_CODES must name the country calling codes served (such as 1,44), \
                 or * for every country"
                    .into(),
            );
        }
        if env.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                problems: env.problems,
            })
        }
    }
}

/// Collects every problem instead of stopping at the first, so one deploy shows them all.
struct Vars {
    vars: HashMap<String, String>,
    problems: Vec<String>,
}

impl Vars {
    fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_owned()
    }

    fn number<T>(&mut self, name: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match raw.parse::<T>() {
            Ok(v) if range.contains(&v) => v,
            _ => {
                self.problems.push(format!(
                    "{name} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ));
                default
            }
        }
    }

    /// `unlimited` (the default) or a number in `range`.
    fn unlimited_or(&mut self, name: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
        match self.raw(name) {
            None => None,
            Some(raw) if raw.eq_ignore_ascii_case("unlimited") => None,
            Some(_) => {
                let value = self.number(name, 0, range.clone());
                range.contains(&value).then_some(value).or_else(|| {
                    let last = self.problems.pop().unwrap_or_default();
                    self.problems.push(format!("{last}, or unlimited"));
                    None
                })
            }
        }
    }

    fn seconds(
        &mut self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Duration {
        Duration::from_secs(self.number(name, default, range))
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(_) => {
                self.problems.push(format!("{name} must be true or false"));
                default
            }
        }
    }

    fn number_types(&mut self, name: &str, default: &[NumberType]) -> BTreeSet<NumberType> {
        let Some(raw) = self.raw(name) else {
            return default.iter().copied().collect();
        };
        let mut types = BTreeSet::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match NumberType::parse(part) {
                Some(t) => {
                    types.insert(t);
                }
                None => {
                    let known: Vec<&str> = NumberType::ALL.iter().map(|t| t.as_str()).collect();
                    self.problems.push(format!(
                        "{name} must be a comma-separated list of {}",
                        known.join(", ")
                    ));
                    return BTreeSet::new();
                }
            }
        }
        if types.is_empty() {
            self.problems
                .push(format!("{name} must name at least one number type"));
        }
        types
    }

    fn phone_numbers(&mut self, name: &str) -> Vec<PhoneNumber> {
        let Some(raw) = self.raw(name) else {
            return Vec::new();
        };
        let parsed: Result<Vec<PhoneNumber>, _> = raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PhoneNumber::parse)
            .collect();
        match parsed {
            Ok(mut numbers) => {
                numbers.dedup();
                numbers
            }
            Err(_) => {
                self.problems.push(format!(
                    "{name} must be a comma-separated list of E.164 numbers such as +14155550100"
                ));
                Vec::new()
            }
        }
    }

    fn sid(&mut self, name: &str, prefix: &str, what: &str) -> Option<String> {
        let raw = self.raw(name)?;
        if crate::telephony::is_sid(raw, prefix) {
            Some(raw.to_owned())
        } else {
            self.problems
                .push(format!("{name} must be {what} ({prefix} + 32 hex digits)"));
            None
        }
    }

    /// A host name for the origin-bound code line (`example.com`), without a scheme or path.
    fn domain(&mut self, name: &str) -> Option<String> {
        let raw = self.raw(name)?.to_ascii_lowercase();
        let labels_ok = raw.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if labels_ok && raw.len() <= 253 && raw.contains('.') {
            Some(raw)
        } else {
            self.problems.push(format!(
                "{name} must be a host name such as example.com (no scheme, port or path)"
            ));
            None
        }
    }

    /// The code message's templates: `NAME` is the default, `NAME_<LOCALE>` (`NAME_ES`,
    /// `NAME_PT_BR`) a locale's. Each must hold `{code}` and may hold `{app}`, nothing else in
    /// braces.
    fn templates(&mut self, name: &str, default_text: &str) -> CodeTemplates {
        let mut by_locale = std::collections::BTreeMap::new();
        let prefix = format!("{name}_");
        let localized: Vec<(String, String)> = self
            .vars
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), v.clone())))
            .collect();
        for (suffix, text) in localized {
            let valid_suffix = !suffix.is_empty()
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            match (valid_suffix, check_template(&text)) {
                (true, Ok(())) => {
                    by_locale.insert(suffix.to_ascii_lowercase().replace('_', "-"), text);
                }
                (false, _) => self.problems.push(format!(
                    "{name}_{suffix} must be named {name}_<LANGUAGE>[_<REGION>]"
                )),
                (true, Err(problem)) => self.problems.push(format!("{name}_{suffix} {problem}")),
            }
        }
        let default = match self.raw(name).map(str::to_owned) {
            None => default_text.to_owned(),
            Some(text) => match check_template(&text) {
                Ok(()) => text,
                Err(problem) => {
                    self.problems.push(format!("{name} {problem}"));
                    default_text.to_owned()
                }
            },
        };
        CodeTemplates { default, by_locale }
    }

    /// `CODE_CHANNELS`: the code channels offered, in order (default `sms,voice`).
    fn code_channels(&mut self, name: &str) -> Vec<CodeChannel> {
        let Some(raw) = self.raw(name).map(str::to_owned) else {
            return vec![CodeChannel::Sms, CodeChannel::Voice];
        };
        let mut channels = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match CodeChannel::parse(&part.to_ascii_lowercase()) {
                Some(c) if !channels.contains(&c) => channels.push(c),
                Some(_) => {}
                None => {
                    self.problems
                        .push(format!("{name} may name only sms, voice and whatsapp"));
                    return vec![CodeChannel::Sms];
                }
            }
        }
        if channels.is_empty() {
            self.problems
                .push(format!("{name} must name at least one channel"));
        }
        channels
    }

    /// A language Twilio's `<Say>` has a voice for (`en-US`).
    fn voice_language(&mut self, name: &str) -> String {
        let raw = self.string(name, "en-US");
        match crate::telephony::twiml::say_language(&raw) {
            Some(language) => language.to_owned(),
            None => {
                self.problems.push(format!(
                    "{name} must be a language Twilio can say, such as en-US or es-ES"
                ));
                "en-US".to_owned()
            }
        }
    }

    /// `INBOUND_ACCEPTED_ATTESTATIONS`: STIR/SHAKEN levels (`A`, `A,B`).
    fn attestations(&mut self, name: &str) -> BTreeSet<char> {
        let raw = self.string(name, "A").to_ascii_uppercase();
        let parts: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let levels: BTreeSet<char> = parts
            .iter()
            .filter_map(|p| match p.as_bytes() {
                [c @ (b'A' | b'B' | b'C')] => Some(char::from(*c)),
                _ => None,
            })
            .collect();
        let all_valid = parts.iter().all(|p| matches!(*p, "A" | "B" | "C"));
        if levels.is_empty() || !all_valid {
            self.problems.push(format!(
                "{name} must list attestation levels A, B or C (such as A,B)"
            ));
            return BTreeSet::from(['A']);
        }
        levels
    }

    /// `ALLOWED_COUNTRY_CODES`: country codes, or `*` for every country (an empty set).
    fn allowed_countries(&mut self, name: &str) -> BTreeSet<u16> {
        if self.raw(name) == Some("*") {
            return BTreeSet::new();
        }
        self.country_codes(name)
    }

    /// A comma-separated list of names (empty: none).
    fn list(&mut self, name: &str) -> BTreeSet<String> {
        self.raw(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A string of decimal digits (a project number).
    fn digits(&mut self, name: &str) -> Option<String> {
        let raw = self.raw(name)?;
        if raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Some(raw.to_owned())
        } else {
            self.problems
                .push(format!("{name} must be a project number (digits only)"));
            None
        }
    }

    /// An http(s) URL, without a trailing slash.
    fn url(&mut self, name: &str, default: &str) -> String {
        let url = self.string(name, default);
        if !url.starts_with("https://") && !url.starts_with("http://") {
            self.problems
                .push(format!("{name} must start with https:// or http://"));
            return default.to_owned();
        }
        url
    }

    fn quarantine_mode(&mut self, name: &str) -> QuarantineMode {
        match self.raw(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("enforce") => QuarantineMode::Enforce,
            Some("monitor") => QuarantineMode::Monitor,
            Some("off") => QuarantineMode::Off,
            Some(_) => {
                self.problems
                    .push(format!("{name} must be enforce, monitor or off"));
                QuarantineMode::Enforce
            }
        }
    }

    fn country_codes(&mut self, name: &str) -> BTreeSet<u16> {
        let Some(raw) = self.raw(name) else {
            return BTreeSet::new();
        };
        let mut codes = BTreeSet::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.trim_start_matches('+').parse::<u16>() {
                Ok(code) if (1..=999).contains(&code) => {
                    codes.insert(code);
                }
                _ => {
                    self.problems.push(format!(
                        "{name} must be a comma-separated list of country calling codes such as 1,44"
                    ));
                    return BTreeSet::new();
                }
            }
        }
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let c = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(c.validity_period, Duration::from_secs(300));
        assert_eq!(c.max_verification_attempts, 5);
        assert_eq!(c.max_requests_per_phone_per_day, 10);
        assert_eq!(c.max_requests_per_ip_per_hour, 20);
        assert_eq!(c.request_cooldown, Duration::from_secs(30));
        assert!(c.allowed_country_codes.is_empty());
        assert!(c.require_app_signature);
        assert!(!c.in_lambda);
        assert_eq!(c.call_retention, Some(Duration::from_secs(400 * 86_400)));
        let vars = HashMap::from([("CALL_RETENTION_DAYS".to_owned(), "0".to_owned())]);
        assert_eq!(Config::from_vars(vars).unwrap().call_retention, None);
    }

    #[test]
    fn the_providers_rates_default_to_twilios_and_concurrency_may_be_unlimited() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(
            c.provider_rate,
            ProviderRates {
                calls_per_second: 1,
                max_concurrent_calls: None,
                messages_per_second: 1,
            }
        );
        let c = Config::from_vars(vars(&[
            ("TWILIO_MAX_CONCURRENT_CALLS", "3"),
            ("TWILIO_CALLS_PER_SECOND", "5"),
        ]))
        .unwrap();
        assert_eq!(c.provider_rate.max_concurrent_calls, Some(3));
        assert_eq!(c.provider_rate.calls_per_second, 5);
        let c = Config::from_vars(vars(&[("TWILIO_MAX_CONCURRENT_CALLS", "Unlimited")])).unwrap();
        assert_eq!(c.provider_rate.max_concurrent_calls, None);
        for bad in ["0", "many", "-1"] {
            let err = Config::from_vars(vars(&[("TWILIO_MAX_CONCURRENT_CALLS", bad)])).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{bad}");
            assert!(err.problems[0].contains("or unlimited"), "{err}");
        }
        assert!(Config::from_vars(vars(&[("TWILIO_MESSAGES_PER_SECOND", "0")])).is_err());
    }

    #[test]
    fn every_bad_variable_is_named_in_one_error_without_its_value() {
        let err = Config::from_vars(vars(&[
            ("VALIDITY_PERIOD_SECONDS", "soon"),
            ("MAX_VERIFICATION_ATTEMPTS", "0"),
            ("REQUIRE_APP_SIGNATURE", "maybe-secret-value"),
            ("ALLOWED_COUNTRY_CODES", "1,UK"),
            ("PUBLIC_BASE_URL", "example.com"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "VALIDITY_PERIOD_SECONDS",
            "MAX_VERIFICATION_ATTEMPTS",
            "REQUIRE_APP_SIGNATURE",
            "ALLOWED_COUNTRY_CODES",
            "PUBLIC_BASE_URL",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert!(!text.contains("maybe-secret-value"));
        assert_eq!(err.problems.len(), 5);
    }

    #[test]
    fn number_types_default_to_what_a_phone_can_read_and_unknown_names_are_refused() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(
            c.allowed_number_types,
            BTreeSet::from([NumberType::Mobile, NumberType::FixedLineOrMobile])
        );
        let c = Config::from_vars(vars(&[("ALLOWED_NUMBER_TYPES", "mobile, fixed_line")])).unwrap();
        assert_eq!(
            c.allowed_number_types,
            BTreeSet::from([NumberType::Mobile, NumberType::FixedLine])
        );
        let err = Config::from_vars(vars(&[("ALLOWED_NUMBER_TYPES", "mobile,premium")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ALLOWED_NUMBER_TYPES"), "{err}");
    }

    #[test]
    fn country_codes_accept_an_optional_plus_and_spaces() {
        let c = Config::from_vars(vars(&[("ALLOWED_COUNTRY_CODES", " +1, 44 ,49")])).unwrap();
        assert_eq!(c.allowed_country_codes, BTreeSet::from([1, 44, 49]));
        assert!(
            !c.is_unusual_country(7),
            "no expected countries: nothing is unusual"
        );
        let c = Config::from_vars(vars(&[("EXPECTED_COUNTRY_CODES", "1,44")])).unwrap();
        assert!(c.is_unusual_country(7) && !c.is_unusual_country(44));
    }

    #[test]
    fn sms_senders_are_e164_numbers_or_a_messaging_service_sid() {
        let c = Config::from_vars(vars(&[
            ("SMS_FROM_NUMBERS", "+1 415 555 0100, +14155550101"),
            (
                "SMS_MESSAGING_SERVICE_SID",
                "MG0123456789abcdef0123456789abcdef",
            ),
        ]))
        .unwrap();
        let numbers: Vec<&str> = c.sms_from_numbers.iter().map(|n| n.as_str()).collect();
        assert_eq!(numbers, ["+14155550100", "+14155550101"]);
        assert!(c.sms_messaging_service_sid.is_some());
        assert_eq!(c.max_sms_per_recipient_per_hour, 5);
        let err = Config::from_vars(vars(&[
            ("SMS_FROM_NUMBERS", "+14155550100,not-a-number"),
            (
                "SMS_MESSAGING_SERVICE_SID",
                "AC0123456789abcdef0123456789abcdef",
            ),
        ]))
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("SMS_FROM_NUMBERS"));
        assert!(err.to_string().contains("SMS_MESSAGING_SERVICE_SID"));
    }

    #[test]
    fn code_settings_have_the_documented_defaults_and_templates_are_checked() {
        let c = Config::from_vars(vars(&[])).unwrap().codes;
        assert_eq!(c.length, 6);
        assert_eq!(c.validity, Duration::from_secs(600));
        assert_eq!(c.resend_cooldown, Duration::from_secs(30));
        assert_eq!(c.max_sends_per_phone_per_hour, 5);
        assert_eq!(c.max_checks, 5);
        assert!(c.otp_domain.is_none() && c.verify_service_sid.is_none());
        assert_eq!(c.templates.for_locale(Some("fr")), DEFAULT_CODE_TEMPLATE);

        let c = Config::from_vars(vars(&[
            ("OTP_DOMAIN", "Acme.Example"),
            ("CODE_MESSAGE_TEMPLATE_PT", "Seu código {app}: {code}"),
            ("CODE_MESSAGE_TEMPLATE_PT_BR", "Código {app}: {code}"),
            ("VERIFY_SERVICE_SID", "VA0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap()
        .codes;
        assert_eq!(c.otp_domain.as_deref(), Some("acme.example"));
        assert_eq!(
            c.templates.for_locale(Some("pt-BR")),
            "Código {app}: {code}"
        );
        assert_eq!(
            c.templates.for_locale(Some("pt-PT")),
            "Seu código {app}: {code}"
        );
        assert!(c.verify_service_sid.is_some());

        let err = Config::from_vars(vars(&[
            ("CODE_LENGTH", "3"),
            ("CODE_MESSAGE_TEMPLATE", "no code here"),
            ("CODE_MESSAGE_TEMPLATE_ES", "{code} {name}"),
            ("OTP_DOMAIN", "https://acme.example/"),
            ("VERIFY_SERVICE_SID", "MG0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
    }

    #[test]
    fn lambda_is_detected_from_the_runtime_variables_and_must_name_its_countries() {
        let err = Config::from_vars(vars(&[("AWS_LAMBDA_FUNCTION_NAME", "request")])).unwrap_err();
        assert!(err.to_string().contains("ALLOWED_COUNTRY_CODES"), "{err}");
        let c = Config::from_vars(vars(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "request"),
            ("ALLOWED_COUNTRY_CODES", "*"),
        ]))
        .unwrap();
        assert!(c.in_lambda);
        assert!(c.allowed_country_codes.is_empty(), "* allows every country");
    }

    #[test]
    fn the_abuse_defense_has_the_documented_defaults() {
        let c = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(c.max_requests_per_network_per_hour, 200);
        assert_eq!(c.max_failed_code_checks_per_phone_per_network_per_day, 10);
        assert_eq!(c.max_failed_code_checks_per_phone_per_day, 100);
        assert_eq!(c.trusted_phone_days, 90);
        assert_eq!(c.untrusted_share_percent, 20);
        assert!(!c.allow_test_numbers);
        assert!(!c.attestation.required && c.attestation.project_number.is_none());
        assert_eq!(c.attestation.jwks_url, DEFAULT_APP_CHECK_JWKS_URL);
        let q = c.quarantine;
        assert_eq!(q.mode, QuarantineMode::Enforce);
        assert_eq!(q.window, Duration::from_secs(3600));
        assert_eq!(q.grace, Duration::from_secs(120));
        assert_eq!((q.min_sends, q.country_min_sends), (10, 200));
        assert_eq!(q.min_conversion_percent, 20);
        assert_eq!(q.duration, Duration::from_secs(43_200));
    }

    #[test]
    fn the_abuse_defense_settings_are_checked() {
        let err = Config::from_vars(vars(&[
            ("REQUIRE_ATTESTATION", "true"),
            ("QUARANTINE_MODE", "audit"),
            ("UNTRUSTED_SHARE_PERCENT", "101"),
            ("APP_CHECK_PROJECT_NUMBER", "my-project"),
            ("APP_CHECK_JWKS_URL", "ftp://example.com"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "REQUIRE_ATTESTATION",
            "QUARANTINE_MODE",
            "UNTRUSTED_SHARE_PERCENT",
            "APP_CHECK_PROJECT_NUMBER",
            "APP_CHECK_JWKS_URL",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        let c = Config::from_vars(vars(&[
            ("APP_CHECK_PROJECT_NUMBER", "123456789012"),
            ("APP_CHECK_APP_IDS", "1:123:android:ab, 1:123:ios:cd"),
            ("QUARANTINE_MODE", "Monitor"),
        ]))
        .unwrap();
        assert_eq!(c.attestation.app_ids.len(), 2);
        assert_eq!(c.quarantine.mode, QuarantineMode::Monitor);
    }

    #[test]
    fn channel_and_inbound_settings_have_the_documented_defaults_and_are_checked() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.codes.channels, [CodeChannel::Sms, CodeChannel::Voice]);
        assert_eq!(c.codes.voice_language, "en-US");
        assert_eq!(c.inbound.accepted_attestations, BTreeSet::from(['A']));
        assert!(!c.inbound.require_attestation);

        let c = Config::from_vars(vars(&[
            ("CODE_CHANNELS", "whatsapp, sms"),
            ("WHATSAPP_FROM", "+14155550100"),
            ("WHATSAPP_CONTENT_SID", "HX0123456789abcdef0123456789abcdef"),
            ("INBOUND_ACCEPTED_ATTESTATIONS", "a,B"),
            ("INBOUND_REQUIRE_ATTESTATION", "true"),
        ]))
        .unwrap();
        assert_eq!(c.codes.channels, [CodeChannel::Whatsapp, CodeChannel::Sms]);
        assert_eq!(c.inbound.accepted_attestations, BTreeSet::from(['A', 'B']));
        assert!(c.inbound.require_attestation);
        // Twilio Verify sends WhatsApp from its own sender.
        assert!(
            Config::from_vars(vars(&[
                ("CODE_CHANNELS", "sms,whatsapp"),
                ("VERIFY_SERVICE_SID", "VA0123456789abcdef0123456789abcdef"),
            ]))
            .is_ok()
        );

        let err = Config::from_vars(vars(&[
            ("CODE_CHANNELS", "sms,fax"),
            ("CODE_VOICE_LANGUAGE", "xx-XX"),
            ("INBOUND_ACCEPTED_ATTESTATIONS", "A,D"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "CODE_CHANNELS",
            "CODE_VOICE_LANGUAGE",
            "INBOUND_ACCEPTED_ATTESTATIONS",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        let err = Config::from_vars(vars(&[("CODE_CHANNELS", "sms,whatsapp")])).unwrap_err();
        assert!(err.to_string().contains("WHATSAPP_CONTENT_SID"), "{err}");
    }
}
