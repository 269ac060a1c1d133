//! Twilio's webhooks as they arrive: the `X-Twilio-Signature` check and the parameters of
//! an inbound message or a status callback.
//!
//! Twilio signs HMAC-SHA1, keyed with the account's auth token, over the full URL it
//! called (query string included) followed, for form posts, by every POST parameter
//! sorted by name, each name then its value appended with no delimiter (the values of a
//! repeated name sorted). JSON posts are signed over the URL alone, which then carries
//! `bodySHA256`, the hex SHA-256 of the body. The signature is base64. As Twilio's own
//! SDKs do, the URL is tried as given, without its port, and with the scheme's default
//! port, because proxies add or drop it; repeated values are tried with and without
//! duplicates, as the SDKs differ there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The signature Twilio sends for `url` and `params` (already sorted or not).
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params, false).finalize().into_bytes())
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)], dedup: bool) -> Hmac<Sha1> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    if dedup {
        sorted.dedup();
    }
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The URL with its port removed, and with the scheme's default port added, besides
/// itself.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some(scheme_end) = url.find("://") else { return variants };
    let scheme = &url[..scheme_end];
    let rest = &url[scheme_end + 3..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    // The port follows the last ':' after any IPv6 literal's closing bracket.
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_part = &authority[host_start..];
    let port_at = host_part.rfind(':').filter(|&colon| !host_part[colon..].contains(']'));
    let has_port = port_at.is_some_and(|colon| {
        let port = &host_part[colon + 1..];
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    });
    let prefix = &url[..scheme_end + 3];
    if let (true, Some(colon)) = (has_port, port_at) {
        let without = format!("{prefix}{}{}{tail}", &authority[..host_start], &host_part[..colon]);
        variants.push(without);
    } else {
        let default = match scheme.to_ascii_lowercase().as_str() {
            "https" => "443",
            "http" => "80",
            _ => return variants,
        };
        variants.push(format!("{prefix}{authority}:{default}{tail}"));
    }
    variants
}

/// The value of `name` in the URL's query string, decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// Checks a webhook's signature in constant time. `url` is the public URL Twilio called,
/// with its query string; `params` the decoded form parameters (empty for a JSON body);
/// `json_body` the raw body when it was JSON.
pub fn verify(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    json_body: Option<&[u8]>,
    signature: &str,
) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else { return false };
    if let Some(body) = json_body {
        let Some(claimed) = query_param(url, "bodySHA256").and_then(|h| hex::decode(h).ok()) else {
            return false;
        };
        let actual = Sha256::digest(body);
        // Both are public values once the signature matches; compared in full anyway.
        if claimed.len() != actual.len()
            || claimed.iter().zip(actual.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0
        {
            return false;
        }
    }
    let params: &[(String, String)] = if json_body.is_some() { &[] } else { params };
    url_variants(url).iter().any(|candidate| {
        [false, true].iter().any(|&dedup| mac(auth_token, candidate, params, dedup).verify_slice(&expected).is_ok())
    })
}

/// The parameters of a form body, decoded, in the order sent.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The parameters of a JSON body (an object of strings, numbers or booleans).
pub fn json_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    Some(
        object
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect(),
    )
}

/// The first value of a parameter.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Twilio's published example (its SDKs' request-validator tests): token 12345.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn example_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn twilios_published_vectors() {
        let params = example_params();
        assert_eq!(compute_signature(TOKEN, URL, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(verify(TOKEN, URL, &params, None, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        // The order parameters arrive in does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(verify(TOKEN, URL, &reversed, None, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        // Signed with :443 while we see no port, and the reverse.
        assert!(verify(TOKEN, URL, &params, None, "kvajT1Ptam85bY51eRf/AJRuM3w="));
        let with_port = URL.replace(".com", ".com:1234");
        assert!(verify(TOKEN, &with_port, &params, None, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        let http = URL.replace("https", "http");
        assert!(verify(TOKEN, &http, &params, None, "0ZXoZLH/DfblKGATFgpif+LLRf4="));
        let http_port = with_port.replace("https", "http");
        assert!(verify(TOKEN, &http_port, &params, None, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    }

    #[test]
    fn repeated_names_are_sorted_by_value() {
        let params: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        assert!(verify(TOKEN, URL, &params, None, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
        // Twilio's own form parser hands values over in any order; the result is the same.
        let form = form_params(b"Digits=1234&Sid=CA123&Digits=5678&SidAccount=AC123&Digits=1234");
        assert!(verify(TOKEN, URL, &form, None, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
    }

    #[test]
    fn json_bodies_are_signed_through_their_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(hex::encode(Sha256::digest(body)), hash);
        let url = format!("{URL}&bodySHA256={hash}");
        assert!(verify(TOKEN, &url, &[], Some(body), "a9nBmqA0ju/hNViExpshrM61xv4="));
        // A changed body no longer matches its hash; a URL without the hash proves nothing.
        assert!(!verify(TOKEN, &url, &[], Some(br#"{"property": "other"}"#), "a9nBmqA0ju/hNViExpshrM61xv4="));
        assert!(!verify(TOKEN, URL, &[], Some(body), "a9nBmqA0ju/hNViExpshrM61xv4="));
    }

    #[test]
    fn anything_else_is_refused() {
        let params = example_params();
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(!verify("54321", URL, &params, None, good));
        assert!(!verify(TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=3", &params, None, good));
        let mut changed = params.clone();
        changed[2].1 = "9999".into();
        assert!(!verify(TOKEN, URL, &changed, None, good));
        let mut extra = params.clone();
        extra.push(("Body".into(), "injected".into()));
        assert!(!verify(TOKEN, URL, &extra, None, good));
        for garbage in ["", "not base64!", "AAAA"] {
            assert!(!verify(TOKEN, URL, &params, None, garbage), "{garbage}");
        }
    }

    #[test]
    fn ports_are_found_after_ipv6_literals_and_credentials() {
        assert_eq!(url_variants("http://[::1]:8080/x")[1], "http://[::1]/x");
        assert_eq!(url_variants("http://[::1]/x")[1], "http://[::1]:80/x");
        assert_eq!(url_variants("https://u:p@host/x?a=1")[1], "https://u:p@host:443/x?a=1");
        assert_eq!(url_variants("https://host:8443?a=1")[1], "https://host?a=1");
        assert_eq!(url_variants("not a url").len(), 1);
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::{compute_signature, form_params, json_params, url_variants, verify};

        fn params() -> impl Strategy<Value = Vec<(String, String)>> {
            proptest::collection::vec(("[A-Za-z]{1,12}", ".{0,40}"), 0..8)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any signature text, URL and body: an answer, never a panic, and no forgery.
            #[test]
            fn arbitrary_input_is_refused(signature in ".{0,80}", url in ".{0,120}", body in proptest::collection::vec(any::<u8>(), 0..200)) {
                let form = form_params(&body);
                prop_assert!(!verify("token", &url, &form, None, &signature) || signature == compute_signature("token", &url, &form));
                let _ = json_params(&body);
                prop_assert!(!verify("token", &url, &[], Some(&body), &signature));
                prop_assert!(!url_variants(&url).is_empty());
            }

            /// What Twilio would sign verifies for any parameters, and not once one changes.
            #[test]
            fn signed_requests_verify_until_changed(params in params(), port in proptest::option::of(1_u16..)) {
                let url = match port {
                    Some(port) => format!("https://hub.example.com:{port}/api/v1/sms/inbound?x=1"),
                    None => "https://hub.example.com/api/v1/sms/inbound".to_owned(),
                };
                let signature = compute_signature("token", &url, &params);
                prop_assert!(verify("token", &url, &params, None, &signature));
                prop_assert!(!verify("other", &url, &params, None, &signature));
                let mut changed = params.clone();
                changed.push(("Injected".to_owned(), "1".to_owned()));
                prop_assert!(!verify("token", &url, &changed, None, &signature));
            }
        }
    }
}
