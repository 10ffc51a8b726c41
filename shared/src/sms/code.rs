//! One-time codes: made by a CSPRNG, kept only as a keyed hash, and the message that carries
//! one, shaped for automatic retrieval on phones.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::http::ApiError;
use crate::phone::PhoneNumber;
use crate::secrets::Secrets;
use crate::session::Refusal;
use crate::sms::MessageId;

crate::id::random_id!(
    /// A code verification's id: a random (v4) UUID in its canonical hyphenated form.
    VerificationId,
    InvalidVerificationId,
    "must be a verification id as returned by /sms/verify/start (a UUID)"
);

/// A fresh code of `length` digits, uniform over all of them (leading zeros included), from
/// a CSPRNG (`StdRng`, ChaCha12) freshly seeded by the operating system.
pub fn random_code(length: u32) -> String {
    let mut rng = StdRng::from_os_rng();
    (0..length)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Refuses a code that is not `length` ASCII digits (before anything is read or counted).
pub fn check_code_format(code: &str, length: usize) -> Result<(), ApiError> {
    if code.len() == length && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::field(
            "code",
            format!("must be the {length} digits of the code sent"),
        ))
    }
}

/// The code's keyed hash ([`Secrets::keyed_hash`]) over the phone, the verification and the
/// code, so that a hash is worth nothing for another verification and a table dump yields no
/// code without the key.
pub fn code_hash(
    secrets: &Secrets,
    phone: &PhoneNumber,
    id: &VerificationId,
    code: &str,
) -> anyhow::Result<String> {
    secrets.keyed_hash(&[phone.as_str(), &id.to_string(), code])
}

/// Whether two codes or hashes are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether `s` is an Android SMS Retriever app hash: 11 characters of base64.
pub fn is_app_hash(s: &str) -> bool {
    s.len() == 11
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The message that carries `code`: the template's words, then the origin-bound code line
/// `@domain #code` (WebOTP, iOS and Android autofill) when a domain is configured, and last
/// the app hash (Android's SMS Retriever) when the app sent one of the allowed hashes.
pub fn message_text(
    template: &str,
    app_name: &str,
    code: &str,
    otp_domain: Option<&str>,
    app_hash: Option<&str>,
) -> String {
    let mut text = template.replace("{app}", app_name).replace("{code}", code);
    if let Some(domain) = otp_domain {
        text.push_str(&format!("\n\n@{domain} #{code}"));
    }
    if let Some(hash) = app_hash {
        text.push_str(if otp_domain.is_some() { "\n" } else { "\n\n" });
        text.push_str(hash);
    }
    text
}

/// The channel a code goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeChannel {
    #[default]
    Sms,
    /// A call that says the code.
    Voice,
    Whatsapp,
}

impl CodeChannel {
    pub const ALL: [CodeChannel; 3] = [CodeChannel::Sms, CodeChannel::Voice, CodeChannel::Whatsapp];

    pub fn as_str(self) -> &'static str {
        match self {
            CodeChannel::Sms => "sms",
            CodeChannel::Voice => "voice",
            CodeChannel::Whatsapp => "whatsapp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The token's `amr` for a code that came this way (RFC 8176: `sms`, `tel`; and ours,
    /// `whatsapp`).
    pub fn amr(self) -> &'static str {
        match self {
            CodeChannel::Sms => "sms",
            CodeChannel::Voice => "tel",
            CodeChannel::Whatsapp => "whatsapp",
        }
    }

    /// The name Twilio Verify gives this channel (`Channel=`).
    pub fn verify_name(self) -> &'static str {
        match self {
            CodeChannel::Sms => "sms",
            CodeChannel::Voice => "call",
            CodeChannel::Whatsapp => "whatsapp",
        }
    }
}

/// How a verification's code is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeMethod {
    /// Our code, kept as its keyed hash.
    Hashed { hash: String },
    /// A test number's fixed code, read from the secret at each check.
    TestNumber,
    /// Twilio Verify's code; Verify knows it, we store nothing of it.
    Delegated { provider_sid: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    Pending,
    Verified,
}

impl CodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeState::Pending => "pending",
            CodeState::Verified => "verified",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(CodeState::Pending),
            "verified" => Some(CodeState::Verified),
            _ => None,
        }
    }
}

/// The phone's current code verification: one per phone, a new one replaces the last.
#[derive(Debug, Clone)]
pub struct CodeVerification {
    pub id: VerificationId,
    pub phone: PhoneNumber,
    pub method: CodeMethod,
    /// The channel the code went by.
    pub channel: CodeChannel,
    pub state: CodeState,
    /// Checks taken, right or wrong.
    pub checks: u32,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
    /// The SMS log entry of the message that carried the code (built-in codes only).
    pub message_id: Option<MessageId>,
    /// The client network the code was asked from (`guard::network_of`): wrong checks from
    /// it use up the code's checks; wrong checks from elsewhere count only toward the failure
    /// caps, so that a stranger cannot use up a victim's code.
    pub network: Option<String>,
}

impl CodeVerification {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }

    pub fn checks_remaining(&self, max_checks: u32) -> u32 {
        max_checks.saturating_sub(self.checks)
    }

    /// Why this verification refuses a check of `id` now, in the order a client should hear
    /// it: another verification (a resend replaced it) is "not found".
    pub fn refusal(
        &self,
        id: Option<&VerificationId>,
        now: OffsetDateTime,
        max_checks: u32,
    ) -> Option<Refusal> {
        if id.is_some_and(|id| *id != self.id) {
            return Some(Refusal::NotFound);
        }
        match self.state {
            CodeState::Verified => Some(Refusal::AlreadyVerified),
            CodeState::Pending if self.is_expired(now) => Some(Refusal::Expired),
            CodeState::Pending if self.checks_remaining(max_checks) == 0 => {
                Some(Refusal::AttemptsExhausted)
            }
            CodeState::Pending => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_the_asked_length_and_vary() {
        for length in 4..=10 {
            let code = random_code(length);
            assert_eq!(code.len(), length as usize);
            assert!(check_code_format(&code, length as usize).is_ok());
        }
        let codes: std::collections::BTreeSet<String> = (0..50).map(|_| random_code(6)).collect();
        assert!(codes.len() > 45);
        // Every digit shows up in every position over enough codes (no bias to a range).
        let many: Vec<String> = (0..2000).map(|_| random_code(6)).collect();
        for position in 0..6 {
            let digits: std::collections::BTreeSet<u8> =
                many.iter().map(|c| c.as_bytes()[position]).collect();
            assert_eq!(digits.len(), 10);
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "12345",
            "1234567",
            "12a456",
            "１２３４５６",
            " 12345",
            "+12345",
            "",
        ] {
            assert!(check_code_format(bad, 6).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_hash_depends_on_key_phone_verification_and_code() {
        let phone = PhoneNumber::parse("+14155550123").unwrap();
        let other = PhoneNumber::parse("+14155550124").unwrap();
        let id = VerificationId::random();
        let hash = |key: &[u8], phone: &PhoneNumber, id: &VerificationId, code: &str| {
            let text = serde_json::json!({
                "token_signing_key": "test-signing-key-test-signing-key-42",
                "code_hashing_key": String::from_utf8(key.to_vec()).unwrap(),
            });
            let secrets = Secrets::parse("test", &text.to_string()).unwrap();
            code_hash(&secrets, phone, id, code).unwrap()
        };
        let h = hash(b"key1-key1-key1-key1-key1-key1-key1", &phone, &id, "123456");
        assert_eq!(h.len(), 64);
        assert_eq!(
            h,
            hash(b"key1-key1-key1-key1-key1-key1-key1", &phone, &id, "123456")
        );
        assert_ne!(
            h,
            hash(b"key2-key2-key2-key2-key2-key2-key2", &phone, &id, "123456")
        );
        assert_ne!(
            h,
            hash(b"key1-key1-key1-key1-key1-key1-key1", &other, &id, "123456")
        );
        assert_ne!(
            h,
            hash(
                b"key1-key1-key1-key1-key1-key1-key1",
                &phone,
                &VerificationId::random(),
                "123456"
            )
        );
        assert_ne!(
            h,
            hash(b"key1-key1-key1-key1-key1-key1-key1", &phone, &id, "123457")
        );
        assert!(!h.contains("123456"));
    }

    #[test]
    fn the_message_ends_with_the_domain_line_and_the_app_hash() {
        let template = "Your {app} code is {code}.";
        assert_eq!(
            message_text(template, "Acme", "042917", None, None),
            "Your Acme code is 042917."
        );
        assert_eq!(
            message_text(template, "Acme", "042917", Some("acme.example"), None),
            "Your Acme code is 042917.\n\n@acme.example #042917"
        );
        assert_eq!(
            message_text(template, "Acme", "042917", None, Some("FA+9qCX9VSu")),
            "Your Acme code is 042917.\n\nFA+9qCX9VSu"
        );
        assert_eq!(
            message_text(
                template,
                "Acme",
                "042917",
                Some("acme.example"),
                Some("FA+9qCX9VSu")
            ),
            "Your Acme code is 042917.\n\n@acme.example #042917\nFA+9qCX9VSu"
        );
        assert!(is_app_hash("FA+9qCX9VSu"));
        assert!(!is_app_hash("local-dev-signature"));
        assert!(!is_app_hash("FA+9qCX9VS-"));
    }
}
