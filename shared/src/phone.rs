//! `PhoneNumber`: an E.164 number that libphonenumber's metadata says is valid, and its type.
//!
//! The parser is `rlibphonenumber` (a port of Google's libphonenumber) on `regex-lite`: its
//! metadata loads in a few milliseconds and each country's patterns compile in well under one,
//! where the `phonenumber` crate parsed every pattern of every country on first use (66 ms of
//! every cold start). `tests/it/phone_parity.rs` checks both agree on tens of thousands of
//! numbers.

use std::fmt;

use rlibphonenumber::enums::Region;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType};
use serde::{Deserialize, Serialize};

/// The longest input we hand to the parser; E.164 is at most 15 digits, the rest is room for
/// spaces, dashes and parentheses.
const MAX_INPUT_LEN: usize = 32;

/// A valid phone number, printed as E.164 (`+14155550123`). It can only be built by parsing.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber {
    e164: String,
    country_code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("is empty")]
    Empty,
    #[error("must be in E.164 format, starting with '+' and the country calling code")]
    MissingPlus,
    #[error("may contain only digits, spaces, dashes, dots and parentheses")]
    InvalidCharacters,
    #[error("is too long for a phone number")]
    TooLong,
    #[error("is not a phone number")]
    Unparseable,
    #[error("is not a valid phone number for its country")]
    Invalid,
    #[error("is not in E.164 format (a national trunk prefix such as 0 must be left out)")]
    NotE164,
}

impl PhoneNumber {
    /// Parses a number given in international format. Spaces, dashes, dots and parentheses are
    /// tolerated and dropped, but the digits must be exactly the E.164 digits: a trunk zero after
    /// the country code (`+44 07911 123456`) is refused rather than silently repaired.
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let input = input.trim();
        let rest = check_shape(input)?;
        let Some(rest) = rest.strip_prefix('+') else {
            return Err(PhoneNumberError::MissingPlus);
        };
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        let number = Self::from_libphonenumber(None, input)?;
        if number.e164[1..] != digits {
            return Err(PhoneNumberError::NotE164);
        }
        Ok(number)
    }

    /// Parses a caller ID as a phone shows it, which may be in the national format of the
    /// country of `home` (`(415) 555-0123`, `0412 345 678`) or international without the `+`.
    pub fn parse_caller_id(input: &str, home: &PhoneNumber) -> Result<Self, PhoneNumberError> {
        let input = input.trim();
        check_shape(input)?;
        if input.starts_with('+') {
            return Self::from_libphonenumber(None, input);
        }
        let region = PHONE_NUMBER_UTIL
            .parse(&home.e164, None)
            .ok()
            .and_then(|n| n.get_region_code());
        Self::from_libphonenumber(region, input).or_else(|national_err| {
            // Some apps drop the '+' but keep the country code.
            Self::from_libphonenumber(None, &format!("+{input}")).map_err(|_| national_err)
        })
    }

    /// A test number from the secret (`TEST_PHONE_NUMBERS`) as it is: E.164 digits that need
    /// not be valid for their country (`+15555550100`). Such a number is never dialed or texted.
    pub fn test_number(e164: &str) -> Result<Self, PhoneNumberError> {
        let digits = e164
            .strip_prefix('+')
            .ok_or(PhoneNumberError::MissingPlus)?;
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneNumberError::Unparseable);
        }
        let parsed = PHONE_NUMBER_UTIL
            .parse(e164, None)
            .map_err(|_| PhoneNumberError::Unparseable)?;
        let country_code =
            u16::try_from(parsed.country_code).map_err(|_| PhoneNumberError::Unparseable)?;
        Ok(PhoneNumber {
            e164: e164.to_owned(),
            country_code,
        })
    }

    fn from_libphonenumber(region: Option<Region>, input: &str) -> Result<Self, PhoneNumberError> {
        let parsed = PHONE_NUMBER_UTIL
            .parse(input, region)
            .map_err(|_| PhoneNumberError::Unparseable)?;
        if !parsed.is_valid() {
            return Err(PhoneNumberError::Invalid);
        }
        let country_code =
            u16::try_from(parsed.country_code).map_err(|_| PhoneNumberError::Unparseable)?;
        Ok(PhoneNumber {
            e164: parsed.format_as(PhoneNumberFormat::E164).into_owned(),
            country_code,
        })
    }

    /// What kind of line the number is, from libphonenumber's metadata (no network lookup).
    pub fn number_type(&self) -> NumberType {
        let Ok(parsed) = PHONE_NUMBER_UTIL.parse(&self.e164, None) else {
            return NumberType::Unknown;
        };
        match parsed.get_type() {
            PhoneNumberType::FixedLine => NumberType::FixedLine,
            PhoneNumberType::Mobile => NumberType::Mobile,
            PhoneNumberType::FixedLineOrMobile => NumberType::FixedLineOrMobile,
            PhoneNumberType::TollFree => NumberType::TollFree,
            PhoneNumberType::PremiumRate => NumberType::PremiumRate,
            PhoneNumberType::SharedCost => NumberType::SharedCost,
            PhoneNumberType::VoIP => NumberType::Voip,
            PhoneNumberType::PersonalNumber => NumberType::PersonalNumber,
            PhoneNumberType::Pager => NumberType::Pager,
            PhoneNumberType::UAN => NumberType::Uan,
            PhoneNumberType::VoiceMail => NumberType::Voicemail,
            PhoneNumberType::Unknown => NumberType::Unknown,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The country calling code (`1`, `44`, ...).
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The number as it may appear in logs: the country calling code and the last two digits
    /// (`+1***23`). An area code and four digits (`+1415***0123`) would leave a thousand
    /// candidates; this leaves millions.
    pub fn masked(&self) -> String {
        let head = 1 + self.country_code.to_string().len();
        let tail = self.e164.len().saturating_sub(2).max(head);
        format!("{}***{}", &self.e164[..head], &self.e164[tail..])
    }
}

/// Loads the parser's metadata and compiles the patterns of the first country, on a blocking
/// thread: an endpoint's `init` runs it while it waits for the secret, so that its first
/// request does not pay for it.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| PhoneNumber::parse("+14155550123")).await;
}

/// The kind of line a number is, as libphonenumber's metadata classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberType {
    FixedLine,
    Mobile,
    /// Where the two cannot be told apart (the US, Canada, ...).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    pub const ALL: [NumberType; 12] = [
        NumberType::FixedLine,
        NumberType::Mobile,
        NumberType::FixedLineOrMobile,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::Voip,
        NumberType::PersonalNumber,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    /// The name used in configuration (`ALLOWED_NUMBER_TYPES`) and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::FixedLine => "fixed_line",
            NumberType::Mobile => "mobile",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::Voip => "voip",
            NumberType::PersonalNumber => "personal_number",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Refuses what no phone number looks like before it reaches the parser, which keeps arbitrary
/// text (letters, vanity numbers, control characters, huge inputs) away from it.
fn check_shape(input: &str) -> Result<&str, PhoneNumberError> {
    if input.is_empty() {
        return Err(PhoneNumberError::Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(PhoneNumberError::TooLong);
    }
    let allowed = |(i, c): (usize, char)| {
        c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')') || (c == '+' && i == 0)
    };
    if !input.char_indices().all(allowed) {
        return Err(PhoneNumberError::InvalidCharacters);
    }
    if input.chars().filter(char::is_ascii_digit).count() > 15 {
        return Err(PhoneNumberError::TooLong);
    }
    Ok(input)
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneNumberError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PhoneNumber::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.e164
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// Debug output is masked so that a number in a logged struct does not leak whole.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        PhoneNumber::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
            .to_string()
    }

    fn err(input: &str) -> PhoneNumberError {
        match PhoneNumber::parse(input) {
            Ok(n) => panic!("{input:?} should be refused, parsed as {n}"),
            Err(e) => e,
        }
    }

    #[test]
    fn e164_numbers_of_several_countries_parse_to_themselves() {
        for n in [
            "+14155550123",
            "+442079460958",
            "+447911123456",
            "+4915123456789",
            "+61412345678",
            "+33612345678",
            "+919876543210",
        ] {
            assert_eq!(ok(n), n);
        }
    }

    #[test]
    fn spaces_dashes_dots_and_parentheses_are_dropped() {
        assert_eq!(ok("+1 (415) 555-0123"), "+14155550123");
        assert_eq!(ok("+44 20 7946 0958"), "+442079460958");
        assert_eq!(ok(" +1.415.555.0123 "), "+14155550123");
    }

    #[test]
    fn a_trunk_zero_after_the_country_code_is_refused() {
        assert_eq!(err("+44 020 7946 0958"), PhoneNumberError::NotE164);
        assert_eq!(err("+4407911123456"), PhoneNumberError::NotE164);
    }

    #[test]
    fn a_number_without_the_plus_is_refused() {
        assert_eq!(err("14155550123"), PhoneNumberError::MissingPlus);
        assert_eq!(err("(415) 555-0123"), PhoneNumberError::MissingPlus);
    }

    #[test]
    fn letters_are_refused_even_as_vanity_numbers() {
        assert_eq!(err("+1 800 FLOWERS"), PhoneNumberError::InvalidCharacters);
        assert_eq!(err("+1415555012a"), PhoneNumberError::InvalidCharacters);
        assert_eq!(
            err("+1 415 555 0123;ext=4"),
            PhoneNumberError::InvalidCharacters
        );
    }

    #[test]
    fn too_long_too_short_and_empty_numbers_are_refused() {
        assert_eq!(err("+1415555012345678"), PhoneNumberError::TooLong);
        assert_eq!(
            err("+1 (415) 555-0123 - - - - - - - - -"),
            PhoneNumberError::TooLong
        );
        assert!(matches!(
            err("+1415555"),
            PhoneNumberError::Invalid | PhoneNumberError::Unparseable
        ));
        assert_eq!(err(""), PhoneNumberError::Empty);
        assert_eq!(err("   "), PhoneNumberError::Empty);
    }

    #[test]
    fn a_number_invalid_for_its_country_is_refused() {
        // US numbers cannot have an area code starting with 0 or 1.
        assert!(matches!(
            err("+10155550123"),
            PhoneNumberError::Invalid | PhoneNumberError::Unparseable
        ));
        // +999 is not an assigned country calling code.
        assert!(matches!(
            err("+99912345678"),
            PhoneNumberError::Invalid | PhoneNumberError::Unparseable
        ));
    }

    #[test]
    fn a_plus_anywhere_but_first_is_refused() {
        assert_eq!(err("1+4155550123"), PhoneNumberError::InvalidCharacters);
        assert_eq!(err("++14155550123"), PhoneNumberError::InvalidCharacters);
    }

    #[test]
    fn caller_ids_in_national_format_are_read_in_the_country_of_the_phone() {
        let us = PhoneNumber::parse("+14155550123").unwrap();
        let uk = PhoneNumber::parse("+447911123456").unwrap();
        let call = |s, home| PhoneNumber::parse_caller_id(s, home).map(|n| n.to_string());
        assert_eq!(call("(415) 555-0199", &us), Ok("+14155550199".into()));
        assert_eq!(call("14155550199", &us), Ok("+14155550199".into()));
        assert_eq!(call("020 7946 0958", &uk), Ok("+442079460958".into()));
        assert_eq!(call("+44 20 7946 0958", &us), Ok("+442079460958".into()));
        assert!(call("not a number", &us).is_err());
    }

    #[test]
    fn the_country_calling_code_is_exposed() {
        assert_eq!(
            PhoneNumber::parse("+14155550123").unwrap().country_code(),
            1
        );
        assert_eq!(
            PhoneNumber::parse("+447911123456").unwrap().country_code(),
            44
        );
    }

    #[test]
    fn masking_keeps_only_the_country_code_and_the_last_two_digits() {
        let n = PhoneNumber::parse("+14155550123").unwrap();
        assert_eq!(n.masked(), "+1***23");
        let n = PhoneNumber::parse("+447911123456").unwrap();
        assert_eq!(n.masked(), "+44***56");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+44***56)");
    }

    #[test]
    fn serde_reads_and_writes_e164_strings() {
        let n: PhoneNumber = serde_json::from_str("\"+1 415 555 0123\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"+14155550123\"");
        assert!(serde_json::from_str::<PhoneNumber>("\"hello\"").is_err());
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_short_inputs() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "+0123456789 -().#*;=xX,/\u{0}é٣".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let s: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let _ = PhoneNumber::parse(&s);
            let home = PhoneNumber::parse("+14155550123").unwrap();
            let _ = PhoneNumber::parse_caller_id(&s, &home);
        }
    }
}
