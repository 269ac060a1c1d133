//! Stripe, spoken over its HTTP API at a configurable base URL (tests point it at a local
//! stand-in that speaks the same wire format): creating payment intents, and verifying
//! the `Stripe-Signature` header of webhook events.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

use crate::config::StripeSettings;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("card payments are not configured (stripe.secret_key)")]
    NotConfigured,
    #[error("stripe could not be reached: {0}")]
    Unreachable(String),
    #[error("stripe refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// The parts of a PaymentIntent this service uses.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub client_secret: Option<String>,
    pub status: String,
    pub amount: i64,
    pub currency: String,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    error: StripeErrorDetail,
}

#[derive(Deserialize)]
struct StripeErrorDetail {
    message: Option<String>,
}

/// `POST /v1/payment_intents` for an invoice's balance. The firm and invoice travel in
/// the intent's metadata, so the webhook that reports the payment can file it; the
/// idempotency key makes a retried request create one intent, not two.
pub async fn create_payment_intent(
    settings: &StripeSettings,
    http: &reqwest::Client,
    amount_minor: i64,
    currency: &str,
    metadata: &[(&str, String)],
    idempotency_key: &str,
) -> Result<PaymentIntent, StripeError> {
    let key = settings.secret_key.expose_secret();
    if key.is_empty() {
        return Err(StripeError::NotConfigured);
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("amount", &amount_minor.to_string());
    form.append_pair("currency", &currency.to_ascii_lowercase());
    form.append_pair("automatic_payment_methods[enabled]", "true");
    for (name, value) in metadata {
        form.append_pair(&format!("metadata[{name}]"), value);
    }
    let response = http
        .post(format!("{}/v1/payment_intents", settings.base_url.trim_end_matches('/')))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency_key)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.finish())
        .timeout(Duration::from_secs(settings.timeout_secs))
        .send()
        .await
        .map_err(|e| StripeError::Unreachable(e.to_string()))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| StripeError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<StripeErrorBody>(&body)
            .ok()
            .and_then(|b| b.error.message)
            .unwrap_or_else(|| "no message".into());
        return Err(StripeError::Refused { status: status.as_u16(), message });
    }
    serde_json::from_slice(&body).map_err(|e| StripeError::Unreachable(format!("unexpected answer: {e}")))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
}

/// Verifies `Stripe-Signature: t=<unix>,v1=<hex hmac>[,v1=...]` over `"{t}.{payload}"`
/// with the endpoint's secret, as Stripe documents it: any `v1` may match, and the
/// timestamp must be within `tolerance` of `now`.
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &str,
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matches = signatures.iter().any(|signature| {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else { return false };
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        mac.verify_slice(signature).is_ok()
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    // abs_diff: a signed header may carry any i64, and `now - t` would overflow at the extremes.
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// `t=...,v1=...` for a payload, as Stripe signs it (the tests' stand-in uses it).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_like_stripe_does() {
        let payload = br#"{"id":"evt_1"}"#;
        let now = 1_800_000_000;
        let header = sign(payload, "whsec_test", now);
        let tolerance = Duration::from_secs(300);
        assert_eq!(verify_signature(&header, payload, "whsec_test", tolerance, now + 10), Ok(()));
        assert_eq!(verify_signature(&header, payload, "whsec_other", tolerance, now), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(&header, b"{}", "whsec_test", tolerance, now), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(&header, payload, "whsec_test", tolerance, now + 301), Err(SignatureError::Stale));
        assert_eq!(verify_signature("garbage", payload, "whsec_test", tolerance, now), Err(SignatureError::Malformed));
        // A second signature (during secret rotation) may be the one that matches.
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify_signature(&rotated, payload, "whsec_test", tolerance, now), Ok(()));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::{SignatureError, sign, verify_signature};
        use std::time::Duration;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any header text is refused without a panic unless it was signed with the secret.
            #[test]
            fn arbitrary_headers_are_refused(header in ".{0,200}", now in any::<i64>()) {
                let checked = verify_signature(&header, b"{}", "whsec_test", Duration::from_secs(300), now);
                prop_assert!(checked.is_err(), "accepted {}", header);
            }

            /// Signed at any moment (extremes included), checked at any other moment: within
            /// tolerance it verifies, outside it is stale, never a panic.
            #[test]
            fn signed_payloads_verify_within_tolerance(t in any::<i64>(), now in any::<i64>(), payload in proptest::collection::vec(any::<u8>(), 0..256)) {
                let header = sign(&payload, "whsec_test", t);
                let checked = verify_signature(&header, &payload, "whsec_test", Duration::from_secs(300), now);
                if now.abs_diff(t) <= 300 {
                    prop_assert_eq!(checked, Ok(()));
                } else {
                    prop_assert_eq!(checked, Err(SignatureError::Stale));
                }
                let forged = verify_signature(&header, &payload, "whsec_other", Duration::from_secs(300), t);
                prop_assert_eq!(forged, Err(SignatureError::Mismatch));
            }
        }
    }
}
