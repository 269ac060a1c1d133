//! Twilio, spoken over its REST API at configurable base URLs (`twilio.api_base_url`,
//! `twilio.messaging_base_url`; tests and `make run` point them at the local stand-in):
//! sending a message, proving a firm's account owns a sender, and the `sms.send` job.

use std::sync::OnceLock;
use std::time::Duration;

use scoped_futures::ScopedFutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::job::{JobContext, JobOutcome};
use crate::bus::live;
use crate::config::TwilioSettings;
use crate::domain::FirmId;
use crate::domain::jobs::Job;
use crate::domain::sms::{self, StatusChange};
use crate::secret_box::SecretBox;

/// One client per process: Twilio's hosts come from the operator's configuration, not
/// from firms, so they skip the guard that outbound webhooks pass through.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // No proxy from the environment: every outbound client talks to its host directly.
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ConsultantPro/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// A firm's Twilio account.
pub struct Account<'a> {
    pub sid: &'a str,
    pub token: &'a SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Twilio said no, and will say so again: the code and reason are Twilio's.
    #[error("Twilio refused ({status}{}): {message}", code.map(|c| format!(", error {c}")).unwrap_or_default())]
    Refused { status: u16, code: Option<i32>, message: String },
    /// Worth another attempt: unreachable, 429, 5xx, or credentials refused (which the firm
    /// may fix before the next attempt). Twilio did not take the message.
    #[error("{0}")]
    Retryable(String),
    /// The request may have reached Twilio (it timed out, or the answer broke off): whether
    /// the message was taken is unknown until Twilio is asked.
    #[error("{0}")]
    Unknown(String),
}

/// Marks a send whose outcome was unknown, in the job's last error, so the next attempt
/// asks Twilio before sending again.
pub const UNKNOWN_OUTCOME: &str = "outcome unknown: ";

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i32>,
    message: Option<String>,
}

/// The parts of a Message resource this hub uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMessage {
    pub sid: String,
    pub status: String,
    /// Twilio sends it as a string.
    pub num_segments: Option<serde_json::Value>,
}

impl SentMessage {
    pub fn segments(&self) -> Option<i32> {
        match &self.num_segments {
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            Some(serde_json::Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        }
    }
}

async fn call(request: reqwest::RequestBuilder, settings: &TwilioSettings) -> Result<(u16, bytes::Bytes), TwilioError> {
    let response = request.timeout(Duration::from_secs(settings.timeout_secs.max(1))).send().await.map_err(|e| {
        if e.is_connect() {
            TwilioError::Retryable(format!("Twilio could not be reached: {e}"))
        } else {
            TwilioError::Unknown(format!("no answer from Twilio: {e}"))
        }
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| TwilioError::Unknown(format!("Twilio's answer broke off: {e}")))?;
    if (200..300).contains(&status) {
        return Ok((status, body));
    }
    let parsed = serde_json::from_slice::<ErrorBody>(&body).ok();
    let message = parsed.as_ref().and_then(|b| b.message.clone()).unwrap_or_else(|| format!("HTTP {status}"));
    let code = parsed.and_then(|b| b.code);
    Err(match status {
        401 | 403 => TwilioError::Retryable(format!("Twilio refused the account SID and auth token: {message}")),
        429 => TwilioError::Retryable(format!("Twilio asked to slow down (429): {message}")),
        500.. => TwilioError::Retryable(format!("Twilio failed ({status}): {message}")),
        _ => TwilioError::Refused { status, code, message },
    })
}

/// What to send.
pub struct Outgoing<'a> {
    pub to: &'a str,
    pub from: Option<&'a str>,
    pub messaging_service_sid: Option<&'a str>,
    pub body: &'a str,
    pub status_callback: &'a str,
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`: through the Messaging Service when the
/// sender has one (Twilio picks the number from its pool), else from the number.
pub async fn send_message(
    settings: &TwilioSettings,
    account: &Account<'_>,
    message: &Outgoing<'_>,
) -> Result<SentMessage, TwilioError> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", message.to);
        match (message.messaging_service_sid, message.from) {
            (Some(service), _) => form.append_pair("MessagingServiceSid", service),
            (None, Some(from)) => form.append_pair("From", from),
            (None, None) => {
                let message = "the sender has no number".into();
                return Err(TwilioError::Refused { status: 400, code: None, message });
            }
        };
        form.append_pair("Body", message.body);
        form.append_pair("StatusCallback", message.status_callback);
        form.finish()
    };
    let url =
        format!("{}/2010-04-01/Accounts/{}/Messages.json", settings.api_base_url.trim_end_matches('/'), account.sid);
    let request = client()
        .post(url)
        .basic_auth(account.sid, Some(account.token.expose_secret()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form);
    let (_, body) = call(request, settings).await?;
    serde_json::from_slice(&body).map_err(|e| TwilioError::Retryable(format!("unexpected answer from Twilio: {e}")))
}

#[derive(Deserialize)]
struct MessageList {
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct ListedMessage {
    sid: String,
    status: String,
    body: Option<String>,
    date_created: Option<String>,
    num_segments: Option<serde_json::Value>,
}

/// Messages to `to` with this body created at Twilio since `since` (a minute's slack for
/// clocks): what a send whose answer was lost may have become.
pub async fn list_sent(
    settings: &TwilioSettings,
    account: &Account<'_>,
    to: &str,
    body: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<SentMessage>, TwilioError> {
    let day_before = since.date_naive().pred_opt().unwrap_or(since.date_naive());
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", to)
        .append_pair("DateSent>", &day_before.to_string())
        .append_pair("PageSize", "100")
        .finish();
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json?{query}",
        settings.api_base_url.trim_end_matches('/'),
        account.sid
    );
    let request = client().get(url).basic_auth(account.sid, Some(account.token.expose_secret()));
    let (_, answer) = call(request, settings).await?;
    let list: MessageList = serde_json::from_slice(&answer)
        .map_err(|e| TwilioError::Retryable(format!("unexpected answer from Twilio: {e}")))?;
    let since = since - chrono::Duration::minutes(1);
    Ok(list
        .messages
        .into_iter()
        .filter(|m| m.body.as_deref() == Some(body))
        .filter(|m| {
            m.date_created
                .as_deref()
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                .is_none_or(|created| created >= since)
        })
        .map(|m| SentMessage { sid: m.sid, status: m.status, num_segments: m.num_segments })
        .collect())
}

#[derive(Deserialize)]
struct NumberList {
    incoming_phone_numbers: Vec<OwnedNumber>,
}

#[derive(Deserialize)]
struct OwnedNumber {
    phone_number: String,
}

/// Whether the account owns `number` (`IncomingPhoneNumbers.json?PhoneNumber=`), so no
/// firm can register another's number and have that firm's messages routed to itself.
pub async fn owns_number(settings: &TwilioSettings, account: &Account<'_>, number: &str) -> Result<bool, TwilioError> {
    let query: String =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("PhoneNumber", number).finish();
    let url = format!(
        "{}/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json?{query}",
        settings.api_base_url.trim_end_matches('/'),
        account.sid
    );
    let request = client().get(url).basic_auth(account.sid, Some(account.token.expose_secret()));
    let (_, body) = call(request, settings).await?;
    let list: NumberList = serde_json::from_slice(&body)
        .map_err(|e| TwilioError::Retryable(format!("unexpected answer from Twilio: {e}")))?;
    // Twilio's filter also matches numbers that merely contain the one asked for (in
    // numbering plans of varying length one number can begin another): only an exact entry
    // proves ownership.
    Ok(list.incoming_phone_numbers.iter().any(|owned| owned.phone_number == number))
}

/// Whether the account has the Messaging Service (`GET /v1/Services/{sid}`).
pub async fn owns_service(
    settings: &TwilioSettings,
    account: &Account<'_>,
    service: &str,
) -> Result<bool, TwilioError> {
    let url = format!("{}/v1/Services/{service}", settings.messaging_base_url.trim_end_matches('/'));
    let request = client().get(url).basic_auth(account.sid, Some(account.token.expose_secret()));
    match call(request, settings).await {
        Ok(_) => Ok(true),
        Err(TwilioError::Refused { status: 404, .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Where Twilio reports a firm's message statuses.
pub fn status_callback_url(public_base_url: &str, firm: FirmId) -> String {
    format!("{}/api/v1/twilio/status/{}", public_base_url.trim_end_matches('/'), firm.into_uuid())
}

/// Where Twilio posts a firm's inbound messages (the same for every firm).
pub fn inbound_url(public_base_url: &str) -> String {
    format!("{}/api/v1/twilio/sms", public_base_url.trim_end_matches('/'))
}

async fn record(ctx: &JobContext, firm: FirmId, change: Option<StatusChange>) {
    if let Some(change) = change {
        live::publish_conversation_event(&ctx.bus, firm, change.conversation_id, "sms.status", &change).await;
    }
}

async fn fail_message(ctx: &JobContext, firm: FirmId, message: Uuid, code: Option<i32>, reason: &str) -> JobOutcome {
    let reason = reason.to_owned();
    let recorded = ctx
        .db
        .firm_tx(firm, |conn| {
            let reason = reason.clone();
            async move { sms::record_failed(conn, firm, message, code, &reason).await }.scope_boxed()
        })
        .await;
    match recorded {
        Ok(change) => {
            record(ctx, firm, change).await;
            JobOutcome::Done
        }
        Err(err) => JobOutcome::Retry(format!("recording the failure: {err}")),
    }
}

/// `sms.send {message_id}`: hands one queued message to Twilio. A message already handed
/// over, or refused locally since (opt-out), is not sent again; a refusal by Twilio is
/// final and shown on the message; anything else is retried, and the last attempt's
/// failure is shown too.
pub async fn send(ctx: &JobContext, job: &Job) -> JobOutcome {
    let Some(message_id) = job.payload.get("message_id").and_then(|v| v.as_str()).and_then(|v| Uuid::parse_str(v).ok())
    else {
        return JobOutcome::Fail("job payload has no message_id".into());
    };
    let firm = job.firm();
    let loaded =
        ctx.db.firm_tx(firm, |conn| async move { sms::outgoing(conn, firm, message_id).await }.scope_boxed()).await;
    let outgoing = match loaded {
        Ok(Some(outgoing)) => outgoing,
        Ok(None) => return JobOutcome::Done,
        Err(err) => return JobOutcome::Retry(format!("loading the message: {err}")),
    };
    if outgoing.status_rank > 0 {
        return JobOutcome::Done;
    }
    if outgoing.waiting_behind {
        return JobOutcome::Defer(std::time::Duration::from_millis(100));
    }
    if outgoing.opted_out {
        let reason = "not sent: the recipient opted out (replied STOP) after the message was queued";
        return fail_message(ctx, firm, message_id, None, reason).await;
    }
    let Some(settings) = outgoing.settings.as_ref() else {
        return fail_message(ctx, firm, message_id, None, "not sent: SMS is no longer set up for this firm").await;
    };
    let token = match SecretBox::from_settings(&ctx.settings.secrets)
        .and_then(|secret_box| secret_box.open(&settings.auth_token_sealed, &sms::token_context(firm)))
    {
        Ok(token) => token,
        Err(err) => return JobOutcome::Retry(format!("the stored auth token does not open: {err}")),
    };
    let callback = status_callback_url(&settings.public_base_url, firm);
    let request = Outgoing {
        to: &outgoing.to,
        from: outgoing.from.as_deref(),
        messaging_service_sid: outgoing.messaging_service_sid.as_deref(),
        body: &outgoing.body,
        status_callback: &callback,
    };
    let account = Account { sid: &settings.account_sid, token: &token };
    let unknown_before = job.last_error.as_deref().is_some_and(|e| e.starts_with(UNKNOWN_OUTCOME));
    let result = if unknown_before {
        // The last attempt may have reached Twilio: ask before sending again.
        match already_sent(ctx, firm, &account, &outgoing).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => send_message(&ctx.settings.twilio, &account, &request).await,
            Err(err) => Err(TwilioError::Unknown(err.to_string())),
        }
    } else {
        send_message(&ctx.settings.twilio, &account, &request).await
    };
    match result {
        Ok(sent) => {
            let segments = sent.segments();
            let recorded = ctx
                .db
                .firm_tx(firm, |conn| {
                    let sent = sent.clone();
                    async move { sms::record_accepted(conn, firm, message_id, &sent.sid, &sent.status, segments).await }
                        .scope_boxed()
                })
                .await;
            match recorded {
                Ok(change) => {
                    record(ctx, firm, change).await;
                    JobOutcome::Done
                }
                // Twilio has it: another attempt would send it twice. The status callbacks
                // still arrive and are kept; the job ends here.
                Err(err) => {
                    tracing::error!(error = %err, %message_id, sid = %sent.sid, "Twilio accepted a message the hub could not record");
                    JobOutcome::Done
                }
            }
        }
        Err(TwilioError::Refused { code, message, .. }) => fail_message(ctx, firm, message_id, code, &message).await,
        Err(TwilioError::Retryable(reason)) if job.attempts >= job.max_attempts => {
            // Everyone in the conversation sees the reason (portal users too): the details,
            // which name the hub's Twilio endpoint and account, stay in the log and the job.
            tracing::warn!(%message_id, %reason, "giving up on an SMS");
            let shown = format!("not sent: Twilio could not take it after {} attempts", job.attempts);
            let _ = fail_message(ctx, firm, message_id, None, &shown).await;
            JobOutcome::Fail(reason)
        }
        Err(TwilioError::Unknown(reason)) if job.attempts >= job.max_attempts => {
            tracing::warn!(%message_id, %reason, "giving up on an SMS whose sending is unconfirmed");
            let shown =
                format!("not confirmed: Twilio did not answer after {} attempts; it may have been sent", job.attempts);
            let _ = fail_message(ctx, firm, message_id, None, &shown).await;
            JobOutcome::Fail(reason)
        }
        Err(TwilioError::Retryable(reason)) => JobOutcome::Retry(reason),
        Err(TwilioError::Unknown(reason)) => JobOutcome::Retry(format!("{UNKNOWN_OUTCOME}{reason}")),
    }
}

/// The message Twilio made of an earlier attempt, if any: one to the same number with the
/// same body, since the message was stored, whose sid no other message of the firm has.
async fn already_sent(
    ctx: &JobContext,
    firm: FirmId,
    account: &Account<'_>,
    outgoing: &sms::Outgoing,
) -> Result<Option<SentMessage>, TwilioError> {
    let candidates =
        list_sent(&ctx.settings.twilio, account, &outgoing.to, &outgoing.body, outgoing.created_at).await?;
    let sids: Vec<String> = candidates.iter().map(|c| c.sid.clone()).collect();
    let known = ctx
        .db
        .firm_tx(firm, |conn| async move { sms::known_sids(conn, firm, &sids).await }.scope_boxed())
        .await
        .map_err(|e| TwilioError::Retryable(format!("checking recorded sids: {e}")))?;
    Ok(candidates.into_iter().find(|c| !known.contains(&c.sid)))
}
