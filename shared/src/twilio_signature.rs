//! Twilio's webhook signature (`X-Twilio-Signature`): HMAC-SHA1 with the account's auth token
//! over the exact URL Twilio requested, then, for form posts, every parameter (keys in byte
//! order, each key's distinct values in byte order, key and value concatenated). A JSON body is
//! signed through its SHA-256 in the URL's `bodySHA256` parameter instead, which must match the
//! body. Like Twilio's SDKs, the URL is accepted with the default port (443, 80) left out or
//! written in, and an apostrophe in the query escaped or not. The comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What Twilio posted, as the check needs it.
pub struct Signed<'a> {
    /// The full URL Twilio requested, query string included, exactly as sent.
    pub url: &'a str,
    /// The form parameters of a form-encoded body (empty for a JSON body or a GET).
    pub params: &'a [(String, String)],
    /// The raw body, for JSON bodies signed through `bodySHA256`.
    pub body: &'a [u8],
    pub json_body: bool,
}

/// The signature Twilio computes over `url` and `params` with `auth_token`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut message = String::from(url);
    for key in keys {
        let mut values: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        values.sort_unstable();
        values.dedup();
        for value in values {
            message.push_str(key);
            message.push_str(value);
        }
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `presented` is Twilio's signature of the request.
pub fn is_valid(auth_token: &str, request: &Signed<'_>, presented: &str) -> bool {
    if request.json_body {
        // The body is signed through its hash in the URL: the hash must be the body's, and the
        // URL alone is signed.
        let Some(claimed) = query_param(request.url, "bodySHA256") else {
            return false;
        };
        let actual = hex::encode(Sha256::digest(request.body));
        if !bool::from(actual.as_bytes().ct_eq(claimed.as_bytes())) {
            return false;
        }
    }
    let params: &[(String, String)] = if request.json_body {
        &[]
    } else {
        request.params
    };
    url_variants(request.url)
        .iter()
        .flat_map(|url| quote_variants(url))
        .fold(subtle::Choice::from(0), |found, url| {
            found
                | compute(auth_token, &url, params)
                    .as_bytes()
                    .ct_eq(presented.as_bytes())
        })
        .into()
}

/// The URL as sent, and with an apostrophe in the query spelled the other way (`'` or `%27`):
/// Twilio's SDKs accept both, as one URL library escapes it and the other does not.
fn quote_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Some((base, query)) = url.split_once('?') {
        for swapped in [query.replace('\'', "%27"), query.replace("%27", "'")] {
            let candidate = format!("{base}?{swapped}");
            if !variants.contains(&candidate) {
                variants.push(candidate);
            }
        }
    }
    variants
}

/// The URL with its port left out, and with the default port written in (an explicit port is
/// kept as it is), as Twilio's SDKs accept both.
pub fn url_variants(url: &str) -> [String; 2] {
    let Some((scheme, rest)) = url.split_once("://") else {
        return [url.to_owned(), url.to_owned()];
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((user, hp)) => (format!("{user}@"), hp),
        None => (String::new(), authority),
    };
    let (host, port) = split_port(host_port);
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        _ => "80",
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    let with = format!(
        "{scheme}://{userinfo}{host}:{}{tail}",
        port.unwrap_or(default)
    );
    [without, with]
}

/// `host[:port]`, IPv6 literals (`[::1]:8080`) included.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    let bracket_end = host_port.rfind(']');
    match host_port.rfind(':') {
        Some(i) if bracket_end.is_none_or(|b| i > b) => {
            (&host_port[..i], Some(&host_port[i + 1..]))
        }
        _ => (host_port, None),
    }
}

/// A query parameter of a URL, as sent (not decoded: `bodySHA256` is hex).
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_both_removed_and_added() {
        assert_eq!(
            url_variants("https://example.com/a?b=1"),
            [
                "https://example.com/a?b=1".to_owned(),
                "https://example.com:443/a?b=1".to_owned()
            ]
        );
        assert_eq!(
            url_variants("https://example.com:443/a"),
            [
                "https://example.com/a".to_owned(),
                "https://example.com:443/a".to_owned()
            ]
        );
        assert_eq!(
            url_variants("http://127.0.0.1:3000/w"),
            [
                "http://127.0.0.1/w".to_owned(),
                "http://127.0.0.1:3000/w".to_owned()
            ]
        );
    }
}
