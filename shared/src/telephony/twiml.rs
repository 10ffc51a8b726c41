//! The TwiML we hand Twilio: a flash call's hang-up, a voice code's words, and the answer to
//! an incoming call (rejected, so that nobody is billed for it).

/// A flash call, if the phone answers: hang up at once. The call is only a caller ID.
pub const HANG_UP: &str = "<Response><Hangup/></Response>";

/// The answer to every incoming call: busy. Twilio bills no rejected call, and the caller's
/// phone hears an ordinary busy signal.
pub const REJECT_BUSY: &str = "<Response><Reject reason=\"busy\"/></Response>";

/// The languages Twilio's `<Say>` has voices for (its Polly and Google voices).
const SAY_LANGUAGES: [&str; 41] = [
    "ar-AE",
    "arb",
    "ca-ES",
    "cmn-CN",
    "cy-GB",
    "da-DK",
    "de-AT",
    "de-DE",
    "en-AU",
    "en-CA",
    "en-GB",
    "en-IE",
    "en-IN",
    "en-NZ",
    "en-US",
    "en-ZA",
    "es-ES",
    "es-MX",
    "es-US",
    "fi-FI",
    "fr-CA",
    "fr-FR",
    "hi-IN",
    "is-IS",
    "it-IT",
    "ja-JP",
    "ko-KR",
    "nb-NO",
    "nl-BE",
    "nl-NL",
    "pl-PL",
    "pt-BR",
    "pt-PT",
    "ro-RO",
    "ru-RU",
    "sv-SE",
    "tr-TR",
    "zh-CN",
    "zh-HK",
    "zh-TW",
    "en-GB-WLS",
];

/// A language's voice when a tag names no region (`es` is said as `es-ES`).
const LANGUAGE_DEFAULTS: [(&str, &str); 24] = [
    ("ar", "arb"),
    ("ca", "ca-ES"),
    ("cy", "cy-GB"),
    ("da", "da-DK"),
    ("de", "de-DE"),
    ("en", "en-US"),
    ("es", "es-ES"),
    ("fi", "fi-FI"),
    ("fr", "fr-FR"),
    ("hi", "hi-IN"),
    ("is", "is-IS"),
    ("it", "it-IT"),
    ("ja", "ja-JP"),
    ("ko", "ko-KR"),
    ("nb", "nb-NO"),
    ("no", "nb-NO"),
    ("nl", "nl-NL"),
    ("pl", "pl-PL"),
    ("pt", "pt-BR"),
    ("ro", "ro-RO"),
    ("ru", "ru-RU"),
    ("sv", "sv-SE"),
    ("tr", "tr-TR"),
    ("zh", "zh-CN"),
];

/// The `<Say language>` for a BCP 47 tag (`pt-BR`, `es`, `de-CH`), if Twilio can say it: the
/// tag itself, or its language's default voice.
pub fn say_language(tag: &str) -> Option<&'static str> {
    if let Some(exact) = SAY_LANGUAGES.iter().find(|l| l.eq_ignore_ascii_case(tag)) {
        return Some(exact);
    }
    let language = tag.split('-').next()?.to_ascii_lowercase();
    LANGUAGE_DEFAULTS
        .iter()
        .find(|(l, _)| *l == language)
        .map(|(_, voice)| *voice)
}

/// A code's digits as a voice says them one by one: `0, 4, 2, 9, 1, 7`.
pub fn spoken_digits(code: &str) -> String {
    let digits: Vec<String> = code.chars().map(String::from).collect();
    digits.join(", ")
}

/// A voice code's call: a breath for the phone to reach an ear, the words, a pause, the words
/// again.
pub fn say_twice(words: &str, language: &str) -> String {
    let say = format!(
        "<Say language=\"{}\">{}</Say>",
        escape(language),
        escape(words)
    );
    format!("<Response><Pause length=\"1\"/>{say}<Pause length=\"2\"/>{say}</Response>")
}

/// Text as XML character data or an attribute value.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_twilios_or_their_languages_default() {
        assert_eq!(say_language("pt-br"), Some("pt-BR"));
        assert_eq!(say_language("es"), Some("es-ES"));
        assert_eq!(say_language("es-419"), Some("es-ES"));
        assert_eq!(say_language("de-CH"), Some("de-DE"));
        assert_eq!(say_language("en-US"), Some("en-US"));
        assert_eq!(say_language("xx"), None);
        assert_eq!(say_language(""), None);
    }

    #[test]
    fn the_code_is_said_digit_by_digit_twice_and_escaped() {
        assert_eq!(spoken_digits("042917"), "0, 4, 2, 9, 1, 7");
        let twiml = say_twice("Tom & Jerry's <code>: 0, 4.", "en-US");
        assert_eq!(twiml.matches("<Say language=\"en-US\">").count(), 2);
        assert!(
            twiml.contains("Tom &amp; Jerry&apos;s &lt;code&gt;: 0, 4."),
            "{twiml}"
        );
        assert!(twiml.contains("<Pause length=\"2\"/>"));
        assert!(twiml.starts_with("<Response>") && twiml.ends_with("</Response>"));
    }
}
