//! The parser switch (the `phonenumber` crate 0.3.10, libphonenumber metadata 9.0.33, to
//! `rlibphonenumber` 2.2, metadata 9.0.42) keeps libphonenumber's semantics: both are asked the
//! same questions about tens of thousands of numbers and must give the same answers (accepted
//! or refused, the E.164 form, the country code, the number type), but for what the newer
//! metadata changed. No network, no stack: pure computation.

use std::collections::BTreeMap;

use phonenumber as old;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::phone::{NumberType, PhoneNumber};

/// What the old parser made of an input, as `PhoneNumber::parse` used it: valid numbers only,
/// and only when the digits are exactly the E.164 digits.
fn old_parse(input: &str) -> Option<(String, u16)> {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    let parsed = old::parse(None, input).ok()?;
    if !parsed.is_valid() {
        return None;
    }
    let e164 = parsed.format().mode(old::Mode::E164).to_string();
    (e164[1..] == digits).then(|| (e164, parsed.code().value()))
}

/// The old caller-ID reading: national format of the home number's country, or international
/// without the `+`.
fn old_caller_id(input: &str, home: &str) -> Option<String> {
    let valid = |region, text: &str| {
        let parsed = old::parse(region, text).ok()?;
        parsed
            .is_valid()
            .then(|| parsed.format().mode(old::Mode::E164).to_string())
    };
    if input.starts_with('+') {
        return valid(None, input);
    }
    let region = old::parse(None, home).ok().and_then(|n| n.country().id());
    valid(region, input).or_else(|| valid(None, &format!("+{input}")))
}

fn old_type(e164: &str) -> NumberType {
    use old::Type;
    let parsed = old::parse(None, e164).expect("valid");
    match parsed.number_type(&old::metadata::DATABASE) {
        Type::FixedLine => NumberType::FixedLine,
        Type::Mobile => NumberType::Mobile,
        Type::FixedLineOrMobile => NumberType::FixedLineOrMobile,
        Type::TollFree => NumberType::TollFree,
        Type::PremiumRate => NumberType::PremiumRate,
        Type::SharedCost => NumberType::SharedCost,
        Type::Voip => NumberType::Voip,
        Type::PersonalNumber => NumberType::PersonalNumber,
        Type::Pager => NumberType::Pager,
        Type::Uan => NumberType::Uan,
        Type::Voicemail => NumberType::Voicemail,
        _ => NumberType::Unknown,
    }
}

/// The old metadata's descriptors of every type a number can have in a region.
fn type_descriptors(meta: &old::Metadata) -> Vec<&old::metadata::Descriptor> {
    let d = meta.descriptors();
    [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whether the old metadata itself calls a national number valid: some type of some region of
/// the code matches it *entirely* (and has its length). The old crate matched patterns at the
/// start only, so it accepted numbers its own metadata refuses.
fn old_metadata_says_valid(code: u16, national: &str) -> bool {
    let Some(regions) = old::metadata::DATABASE.by_code(&code) else {
        return false;
    };
    regions.iter().any(|meta| {
        type_descriptors(meta).into_iter().any(|desc| {
            let lengths = desc.possible_length();
            let length_fits = lengths.is_empty() || lengths.contains(&(national.len() as u16));
            let pattern =
                regex::RegexBuilder::new(&format!("^(?:{})$", desc.national_number().as_str()))
                    .ignore_whitespace(true)
                    .build()
                    .expect("metadata patterns compile");
            length_fits && pattern.is_match(national)
        })
    })
}

/// Agreements and disagreements of one family of inputs, by country calling code.
#[derive(Default)]
struct Tally {
    agreed: usize,
    disagreed: BTreeMap<u16, Vec<String>>,
}

impl Tally {
    fn record(&mut self, code: u16, agree: bool, what: impl FnOnce() -> String) {
        if agree {
            self.agreed += 1;
        } else {
            self.disagreed.entry(code).or_default().push(what());
        }
    }

    fn total(&self) -> usize {
        self.agreed + self.disagreed.values().map(Vec::len).sum::<usize>()
    }

    fn rate(&self) -> f64 {
        self.agreed as f64 / self.total() as f64
    }

    fn report(&self, family: &str) {
        let disagreed = self.total() - self.agreed;
        println!(
            "{family}: {} inputs, {} agree ({:.3} %), {disagreed} differ in {} country codes",
            self.total(),
            self.agreed,
            self.rate() * 100.0,
            self.disagreed.len()
        );
        for (code, cases) in &self.disagreed {
            let shown: Vec<&str> = cases.iter().take(3).map(String::as_str).collect();
            println!("  +{code}: {} ({})", cases.len(), shown.join("; "));
        }
    }
}

/// Every example number of the current metadata, every region and type, reads back as a valid
/// number of that type: the ground truth the metadata itself states.
#[test]
fn every_example_number_of_the_metadata_is_valid_and_of_its_type() {
    use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, PhoneNumberType as T};
    let kinds = [
        (T::FixedLine, NumberType::FixedLine),
        (T::Mobile, NumberType::Mobile),
        (T::TollFree, NumberType::TollFree),
        (T::PremiumRate, NumberType::PremiumRate),
        (T::SharedCost, NumberType::SharedCost),
        (T::VoIP, NumberType::Voip),
        (T::PersonalNumber, NumberType::PersonalNumber),
        (T::Pager, NumberType::Pager),
        (T::UAN, NumberType::Uan),
        (T::VoiceMail, NumberType::Voicemail),
    ];
    let mut checked = 0;
    let mut wrong = Vec::new();
    for region in PHONE_NUMBER_UTIL.get_supported_regions() {
        for (kind, expected) in kinds {
            let Ok(example) =
                PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, kind)
            else {
                continue;
            };
            let e164 = example.format_as(PhoneNumberFormat::E164).into_owned();
            checked += 1;
            match PhoneNumber::parse(&e164) {
                Ok(number) => {
                    let got = number.number_type();
                    let fits = got == expected
                        || (got == NumberType::FixedLineOrMobile
                            && matches!(expected, NumberType::FixedLine | NumberType::Mobile));
                    if number.as_str() != e164 || !fits {
                        wrong.push(format!("{region:?} {e164}: {got:?}, expected {expected:?}"));
                    }
                }
                Err(e) => wrong.push(format!("{region:?} {e164}: {e}")),
            }
        }
    }
    println!("{checked} example numbers checked");
    assert!(checked > 1_000, "{checked}");
    assert!(wrong.is_empty(), "{} wrong: {wrong:#?}", wrong.len());
}

/// The old parser's answers on its own example numbers (every region, every type, in E.164 and
/// as people type them), on random national numbers of every country's possible lengths, and
/// on caller IDs in the national format of the phone's country. The new parser must accept
/// everything the old one accepted, with the same E.164 form and country code, and give the
/// same type wherever the old one named one. Where the old one refused or said `Unknown` and
/// the new one accepts, the differences are printed: the old crate's known gaps (leading zeros
/// of Italian and West African numbers, Russian 8-800 numbers) and newer metadata.
#[test]
fn the_new_parser_accepts_everything_the_old_one_did_with_the_same_answers() {
    let mut examples = Tally::default();
    let mut random = Tally::default();
    let mut caller_ids = Tally::default();
    let mut types = Tally::default();
    let mut regressions = Vec::new();
    let mut rng = StdRng::seed_from_u64(20261121);

    // Where the old parser accepted and the new one does not: the old crate's prefix matching
    // (its own metadata calls the number invalid), or newer metadata (the old metadata calls
    // it valid, the new one does not).
    let mut old_crate_gaps = Tally::default();
    let mut metadata_changes = Tally::default();
    let check = |tally: &mut Tally,
                 types: &mut Tally,
                 refused: (&mut Tally, &mut Tally),
                 regressions: &mut Vec<String>,
                 code: u16,
                 input: &str| {
        let new = PhoneNumber::parse(input).ok();
        let old = old_parse(input);
        let same = new
            .as_ref()
            .map(|n| (n.as_str().to_owned(), n.country_code()))
            == old;
        let show = || {
            format!(
                "{input:?}: new {:?}, old {old:?}",
                new.as_ref().map(PhoneNumber::as_str)
            )
        };
        match (&new, &old) {
            (None, Some((e164, _))) => {
                let national = &e164[1 + code.to_string().len()..];
                if old_metadata_says_valid(code, national) {
                    refused.1.record(code, false, show);
                } else {
                    refused.0.record(code, false, show);
                }
            }
            (Some(n), Some((e164, _))) if n.as_str() != e164 => regressions.push(show()),
            _ => {}
        }
        tally.record(code, same, show);
        if let (Some(new), Some((e164, _))) = (&new, &old) {
            let (new_type, old_type) = (new.number_type(), old_type(e164));
            types.record(code, new_type == old_type, || {
                format!("{e164}: new {new_type:?}, old {old_type:?}")
            });
        }
    };

    for meta in old::metadata::DATABASE.iter() {
        let code = meta.country_code();
        let d = meta.descriptors();
        let described = type_descriptors(meta);
        for example in described.iter().filter_map(|d| d.example()) {
            let (head, tail) = example.split_at(example.len().min(3));
            for input in [
                format!("+{code}{example}"),
                format!("+{code} ({head}) {tail}"),
                format!("+{code}-{head}-{tail}"),
                format!("+{code}.{head}.{tail}"),
            ] {
                check(
                    &mut examples,
                    &mut types,
                    (&mut old_crate_gaps, &mut metadata_changes),
                    &mut regressions,
                    code,
                    &input,
                );
            }
        }

        // Random national numbers of the lengths the country's numbers have.
        let mut lengths: Vec<u16> = described
            .iter()
            .flat_map(|d| d.possible_length().iter().copied())
            .chain(
                described
                    .iter()
                    .filter_map(|d| d.example())
                    .map(|e| e.len() as u16),
            )
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        if lengths.is_empty() {
            continue;
        }
        for _ in 0..120 {
            let len = lengths[rng.random_range(0..lengths.len())];
            let national: String = (0..len)
                .map(|i| char::from(b'0' + rng.random_range(u8::from(i == 0)..=9u8)))
                .collect();
            check(
                &mut random,
                &mut types,
                (&mut old_crate_gaps, &mut metadata_changes),
                &mut regressions,
                code,
                &format!("+{code}{national}"),
            );
        }

        // Caller IDs as a phone of this region shows them: the mobile example in national
        // format (with the trunk prefix where the region has one), and with the country code
        // but no `+`.
        let (Some(home), Some(caller)) = (
            d.fixed_line().or(d.mobile()).and_then(|d| d.example()),
            d.mobile().and_then(|d| d.example()),
        ) else {
            continue;
        };
        let home = format!("+{code}{home}");
        let Ok(home_number) = PhoneNumber::parse(&home) else {
            continue;
        };
        let mut shown = vec![caller.to_owned(), format!("{code}{caller}")];
        if let Some(prefix) = meta.national_prefix() {
            shown.push(format!("{prefix}{caller}"));
        }
        for input in &shown {
            let new = PhoneNumber::parse_caller_id(input, &home_number)
                .ok()
                .map(|n| n.as_str().to_owned());
            let old = old_caller_id(input, &home);
            if old.is_some() && new.is_none() {
                regressions.push(format!(
                    "caller ID {input:?} at {home}: refused, was {old:?}"
                ));
            }
            caller_ids.record(code, new == old, || {
                format!("{input:?} at {home}: new {new:?}, old {old:?}")
            });
        }
    }

    examples.report("example numbers, E.164 and formatted");
    random.report("random numbers of possible lengths");
    caller_ids.report("caller IDs");
    types.report("number types of numbers both accept");
    old_crate_gaps.report("accepted by the old crate only, though its metadata calls them invalid");
    metadata_changes.report("valid in metadata 9.0.33, refused under 9.0.42");

    assert!(examples.total() > 4_000, "{}", examples.total());
    assert!(random.total() > 25_000, "{}", random.total());
    assert!(
        regressions.is_empty(),
        "{} regressions: {regressions:#?}",
        regressions.len()
    );
    // Newer metadata refuses few numbers the old called valid (ranges withdrawn or narrowed).
    let changed = metadata_changes.total() as f64 / random.total() as f64;
    assert!(changed < 0.01, "{:.4} of random numbers changed", changed);
    assert!(types.rate() >= 0.98, "types {:.4}", types.rate());
}
