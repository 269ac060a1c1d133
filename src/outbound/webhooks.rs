//! Sends one webhook delivery: a signed JSON POST with `X-CP-Event`, `X-CP-Delivery-Id`
//! (the same on every attempt) and `X-CP-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
//! A 2xx answer is success; anything else, a timeout or a refused address is a failure.

use std::time::Instant;

use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::guard::read_capped;
use super::job::{JobContext, JobOutcome};
use crate::bus::live;
use crate::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use crate::domain::jobs::Job;
use crate::domain::webhooks::{self, AttemptResult, Delivery, Endpoint};
use crate::domain::{DomainError, FirmId};
use crate::secret_box::SecretBox;

pub async fn deliver(ctx: &JobContext, job: &Job) -> JobOutcome {
    let Some(delivery_id) =
        job.payload.get("delivery_id").and_then(|v| v.as_str()).and_then(|v| Uuid::parse_str(v).ok())
    else {
        return JobOutcome::Fail("job payload has no delivery_id".into());
    };
    let firm = job.firm();
    let loaded = ctx
        .db
        .firm_tx(firm, |conn| {
            async move {
                let delivery = webhooks::find_delivery(conn, firm, delivery_id).await?;
                // Only "not found" means the endpoint was deleted; a database failure is
                // retried like any other, never taken as a reason to drop the delivery.
                let endpoint = match webhooks::find(conn, firm, delivery.endpoint_id).await {
                    Ok(endpoint) => Some(endpoint),
                    Err(DomainError::NotFound(_)) => None,
                    Err(other) => return Err(other),
                };
                Ok::<_, DomainError>((delivery, endpoint))
            }
            .scope_boxed()
        })
        .await;
    let (delivery, endpoint) = match loaded {
        Ok(found) => found,
        Err(DomainError::NotFound(what)) => return JobOutcome::Fail(format!("{what} not found")),
        Err(err) => return JobOutcome::Retry(format!("loading the delivery: {err}")),
    };
    let Some(endpoint) = endpoint.filter(|e| e.active) else {
        return JobOutcome::Fail("the endpoint is disabled or deleted; not sent".into());
    };

    let (result, permanent) = send(ctx, &endpoint, &delivery).await;
    let succeeded = result.succeeded();
    let final_failure = !succeeded && (permanent || job.attempts >= job.max_attempts);
    let disable_after = i32::try_from(ctx.settings.webhooks.disable_after_failures).unwrap_or(20);
    let error =
        result.error.clone().unwrap_or_else(|| format!("receiver answered {}", result.status_code.unwrap_or(0)));
    let recorded = ctx
        .db
        .firm_tx(firm, |conn| {
            let delivery = delivery.clone();
            async move {
                let disabled =
                    webhooks::record_attempt(conn, firm, &delivery, &result, final_failure, disable_after).await?;
                if disabled {
                    let event = NewAuditEvent::new(firm, ActorType::System, None, "webhook.disabled", Outcome::Success)
                        .with_target("webhook_endpoint", delivery.endpoint_id)
                        .with_metadata(serde_json::json!({ "reason": "consecutive failures", "limit": disable_after }));
                    audit::record(conn, &event).await?;
                }
                Ok::<_, DomainError>(disabled)
            }
            .scope_boxed()
        })
        .await;
    match recorded {
        Ok(true) => notify_disabled(ctx, firm, &endpoint).await,
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, delivery = %delivery.id, "recording a delivery attempt failed"),
    }
    metrics::counter!("webhook_attempts_total", "outcome" => if succeeded { "delivered" } else { "failed" })
        .increment(1);
    match (succeeded, permanent) {
        (true, _) => JobOutcome::Done,
        (false, true) => JobOutcome::Fail(error),
        (false, false) => JobOutcome::Retry(error),
    }
}

/// Sends once; returns what happened and whether retrying cannot help.
async fn send(ctx: &JobContext, endpoint: &Endpoint, delivery: &Delivery) -> (AttemptResult, bool) {
    let started = Instant::now();
    let elapsed_ms = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let refused = |error: String| (AttemptResult { status_code: None, latency_ms: 0, error: Some(error) }, true);
    let url = match url::Url::parse(&endpoint.url) {
        Ok(url) => url,
        Err(e) => return refused(format!("invalid URL: {e}")),
    };
    if let Err(reason) = ctx.policy.check_url(&url) {
        return refused(reason);
    }
    let secret = match SecretBox::from_settings(&ctx.settings.secrets)
        .map_err(DomainError::from)
        .and_then(|secrets| webhooks::signing_secret(endpoint, &secrets))
    {
        Ok(secret) => secret,
        // The server's key configuration, not the receiver: retried (not permanent), so the
        // delivery goes out once the key is back.
        Err(err) => {
            tracing::error!(error = %err, "a webhook signing secret does not open");
            let error = "the signing secret could not be opened on this server".to_owned();
            return (AttemptResult { status_code: None, latency_ms: 0, error: Some(error) }, false);
        }
    };
    let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
    let timestamp = Utc::now().timestamp();
    let response = ctx
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-cp-event", &delivery.event_type)
        .header("x-cp-delivery-id", delivery.id.to_string())
        .header("x-cp-signature", webhooks::signature(secret.expose_secret(), timestamp, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status();
            let _ = read_capped(response, ctx.settings.webhooks.max_response_bytes).await;
            let error = (!status.is_success()).then(|| {
                if status.is_redirection() {
                    format!("receiver answered {status}; redirects are not followed")
                } else {
                    format!("receiver answered {status}")
                }
            });
            (AttemptResult { status_code: Some(status.as_u16()), latency_ms: elapsed_ms(), error }, false)
        }
        Err(err) => {
            let detail = error_chain(&err);
            let permanent = detail.contains("refused:");
            let kind = if err.is_timeout() { "timed out" } else { "request failed" };
            (
                AttemptResult { status_code: None, latency_ms: elapsed_ms(), error: Some(format!("{kind}: {detail}")) },
                permanent,
            )
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Tells the firm's live sessions (its admins' screens) that an endpoint was switched off.
async fn notify_disabled(ctx: &JobContext, firm: FirmId, endpoint: &Endpoint) {
    let payload = serde_json::json!({ "endpoint_id": endpoint.id, "url": endpoint.url });
    live::publish_event(&ctx.bus, firm, "webhook.disabled", payload).await;
}
