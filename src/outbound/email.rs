//! Replies out: `email.send {email_id}` puts one stored outgoing email on the wire through
//! its mailbox's SMTP server (lettre), with the headers that keep the thread together in
//! every client: Message-ID on the hub's domain, In-Reply-To and References, a reply
//! address that finds the conversation again, Outlook's Thread-Index extended, and
//! `Auto-Submitted: auto-replied` on anything the hub sends by itself. A failure shows on
//! the message with its reason; a temporary one is retried, a permanent one is final.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use scoped_futures::ScopedFutureExt;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::job::{JobContext, JobOutcome};
use crate::bus::live;
use crate::domain::email::{self, Outgoing};
use crate::domain::mailboxes::{self, StoredMailbox, TlsMode};
use crate::domain::{DomainError, jobs::Job};
use crate::ingest::email::triage::loop_mark;
use crate::net::is_loopback_host;
use crate::secret_box::SecretBox;
use crate::tenant::FirmId;

macro_rules! text_header {
    ($name:ident, $header:literal) => {
        #[derive(Debug, Clone)]
        struct $name(String);

        impl Header for $name {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($header)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($name(s.to_owned()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(ThreadIndex, "Thread-Index");
text_header!(AutoSubmitted, "Auto-Submitted");
text_header!(XLoop, "X-Loop");
text_header!(AutoResponseSuppress, "X-Auto-Response-Suppress");

/// 100-nanosecond intervals since 1601 (Windows FILETIME), as Thread-Index counts time.
fn filetime_now() -> u64 {
    let unix_100ns = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or_default().saturating_mul(10);
    unix_100ns.saturating_add(116_444_736_000_000_000)
}

/// A reply's Thread-Index (MS-OXOMSG 2.2.1.3): the thread's, plus a 5-byte child block
/// holding the time since the thread began, a random nibble and a sequence nibble. None
/// when the inbound value does not decode.
pub fn extend_thread_index(thread_index: &str) -> Option<String> {
    let mut bytes = STANDARD.decode(thread_index.trim()).ok()?;
    if bytes.len() < 22 || (bytes.len() - 22) % 5 != 0 {
        return None;
    }
    let mut header_time = [0u8; 8];
    header_time[..6].copy_from_slice(bytes.get(..6)?);
    let started = u64::from_be_bytes(header_time);
    let delta = filetime_now().saturating_sub(started);
    let block: u64 =
        if delta < 1 << 49 { (delta >> 18) & 0x7fff_ffff } else { (1 << 31) | ((delta >> 23) & 0x7fff_ffff) };
    let children = u8::try_from((bytes.len() - 22) / 5).unwrap_or(u8::MAX);
    let tail = (rand::random::<u8>() & 0xf0) | (children & 0x0f);
    bytes.extend_from_slice(&(block as u32).to_be_bytes());
    bytes.push(tail);
    Some(STANDARD.encode(bytes))
}

fn angle(id: &str) -> String {
    format!("<{id}>")
}

#[derive(Debug)]
enum SendError {
    Permanent(String),
    Transient(String),
}

async fn transport(
    ctx: &JobContext,
    firm: FirmId,
    mailbox: &StoredMailbox,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let (Some(host), Some(port), Some(tls)) =
        (&mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_tls.as_deref().and_then(TlsMode::parse))
    else {
        return Err(SendError::Permanent("the mailbox has no SMTP settings; replies cannot go out".into()));
    };
    let port = u16::try_from(port).map_err(|_| SendError::Permanent("the SMTP port is out of range".into()))?;
    // The address guard as for IMAP and webhooks: an internal address is refused unless
    // allow-listed; a plaintext connection only to this machine.
    let policy = crate::outbound::guard::OutboundPolicy::new(&ctx.settings.mail.allow_private_hosts);
    let addrs = policy.resolve(host, port).await.map_err(|e| SendError::Transient(e.to_string()))?;
    let timeout = Some(Duration::from_secs(ctx.settings.mail.timeout_secs.max(1)));
    // Dial the address just checked, naming the host for the certificate, so a second DNS
    // answer cannot send the connection somewhere internal.
    let Some(address) = addrs.first() else {
        return Err(SendError::Transient(format!("{host} has no usable address")));
    };
    let certificate_name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let tls_parameters =
        || TlsParameters::new(certificate_name.clone()).map_err(|e| SendError::Permanent(format!("SMTP TLS: {e}")));
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string());
    let builder = match tls {
        TlsMode::None if is_loopback_host(host) && addrs.iter().all(|a| a.ip().is_loopback()) => builder,
        TlsMode::None => {
            return Err(SendError::Permanent("SMTP without TLS is allowed only to a loopback host".into()));
        }
        TlsMode::Tls => builder.tls(Tls::Wrapper(tls_parameters()?)),
        TlsMode::Starttls => builder.tls(Tls::Required(tls_parameters()?)),
    };
    let mut builder = builder.port(port).timeout(timeout);
    if let (Some(username), Some(sealed)) = (&mailbox.smtp_username, &mailbox.smtp_password_sealed) {
        let password = SecretBox::from_settings(&ctx.settings.secrets)
            .and_then(|b| b.open(sealed, &mailboxes::password_context(firm, mailbox.id, "smtp")))
            .map_err(|e| SendError::Transient(format!("the stored SMTP password does not open: {e}")))?;
        builder = builder.credentials(Credentials::new(username.clone(), password.expose_secret().to_owned()));
    }
    Ok(builder.build())
}

fn compose(outgoing: &Outgoing, message_id: &str) -> Result<Message, SendError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SendError::Permanent(format!("{what}: {e}"));
    let from_address = outgoing.from_address.parse().map_err(|e| bad("the mailbox address", &e))?;
    let from = Mailbox::new(Some(outgoing.from_name.clone()).filter(|n| !n.is_empty()), from_address);
    // Without room for the token, replies go to the mailbox itself and thread by references.
    let reply = email::reply_address(&outgoing.reply_token, &outgoing.from_address)
        .unwrap_or_else(|| outgoing.from_address.clone());
    let reply_to = Mailbox::new(None, reply.parse().map_err(|e| bad("the reply address", &e))?);
    let mut builder = Message::builder()
        .from(from)
        .reply_to(reply_to)
        .subject(outgoing.subject.clone())
        .message_id(Some(angle(message_id)))
        .header(XLoop(loop_mark(&outgoing.from_address)));
    for address in &outgoing.to {
        builder = builder.to(Mailbox::new(None, address.parse().map_err(|e| bad("a recipient", &e))?));
    }
    for address in &outgoing.cc {
        if let Ok(parsed) = address.parse() {
            builder = builder.cc(Mailbox::new(None, parsed));
        }
    }
    if let Some(parent) = &outgoing.in_reply_to {
        builder = builder.in_reply_to(angle(parent));
    }
    if !outgoing.references.is_empty() {
        builder = builder.references(outgoing.references.iter().map(|r| angle(r)).collect::<Vec<_>>().join(" "));
    }
    if let Some(index) = outgoing.thread_index.as_deref().and_then(extend_thread_index) {
        builder = builder.header(ThreadIndex(index));
    }
    if outgoing.automatic {
        // RFC 3834: marks it automatic, so a well-behaved responder never answers it.
        builder = builder.header(AutoSubmitted("auto-replied".into())).header(AutoResponseSuppress("All".into()));
    }
    let body = match &outgoing.quoted_history {
        Some(history) => format!("{}\n\n{history}", outgoing.body.trim_end()),
        None => outgoing.body.clone(),
    };
    builder.header(ContentType::TEXT_PLAIN).body(body).map_err(|e| bad("the message", &e))
}

/// `email.send {email_id}`.
pub async fn send(ctx: &JobContext, job: &Job) -> JobOutcome {
    let firm = FirmId(job.firm_id);
    let Some(email_id) = job.payload.get("email_id").and_then(|v| v.as_str()).and_then(|v| Uuid::parse_str(v).ok())
    else {
        return JobOutcome::Fail("the job names no email".into());
    };
    let loaded = ctx
        .db
        .firm_tx(firm, |conn| {
            async move {
                let outgoing = email::outgoing(conn, firm, email_id).await?;
                let mailbox = mailboxes::find(conn, firm, outgoing.mailbox_id).await?;
                Ok::<_, DomainError>((outgoing, mailbox))
            }
            .scope_boxed()
        })
        .await;
    let (outgoing, mailbox) = match loaded {
        Ok(found) => found,
        Err(DomainError::NotFound(what)) => {
            let reason = format!("not sent: the {what} was removed");
            return record(ctx, firm, email_id, "failed_permanently", Some(&reason), None, None).await;
        }
        Err(err) => return JobOutcome::Retry(format!("reading the email failed: {err}")),
    };
    if outgoing.status == "sent" || outgoing.status == "failed_permanently" {
        return JobOutcome::Done;
    }
    // Stable across attempts, so a resend after an unanswered attempt is the same message.
    let message_id = format!("{}@{}", outgoing.email_id, ctx.settings.mail.message_id_domain);
    let message = match compose(&outgoing, &message_id) {
        Ok(message) => message,
        Err(SendError::Permanent(reason) | SendError::Transient(reason)) => {
            return record(ctx, firm, email_id, "failed_permanently", Some(&reason), None, None).await;
        }
    };
    let thread_index = message.headers().get_raw("Thread-Index").map(str::to_owned);
    let sent = match transport(ctx, firm, &mailbox).await {
        Ok(transport) => match transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_permanent() => Err(SendError::Permanent(format!("the server refused it: {err}"))),
            Err(err) => Err(SendError::Transient(format!("sending failed: {err}"))),
        },
        Err(err) => Err(err),
    };
    match sent {
        Ok(()) => {
            record(ctx, firm, email_id, "sent", None, Some(&message_id), thread_index.as_deref()).await;
            JobOutcome::Done
        }
        Err(SendError::Permanent(reason)) => {
            record(ctx, firm, email_id, "failed_permanently", Some(&reason), None, None).await;
            JobOutcome::Fail(reason)
        }
        Err(SendError::Transient(reason)) if job.attempts >= job.max_attempts => {
            let shown = format!("not sent after {} attempts: {reason}", job.attempts);
            record(ctx, firm, email_id, "failed_permanently", Some(&shown), None, None).await;
            JobOutcome::Fail(reason)
        }
        Err(SendError::Transient(reason)) => {
            record(ctx, firm, email_id, "failed", Some(&reason), None, None).await;
            JobOutcome::Retry(reason)
        }
    }
}

/// Stores the attempt's outcome and tells the conversation's sockets.
async fn record(
    ctx: &JobContext,
    firm: FirmId,
    email_id: Uuid,
    status: &'static str,
    error: Option<&str>,
    message_id: Option<&str>,
    thread_index: Option<&str>,
) -> JobOutcome {
    let (error_owned, mid, index) =
        (error.map(str::to_owned), message_id.map(str::to_owned), thread_index.map(str::to_owned));
    let recorded = ctx
        .db
        .firm_tx(firm, |conn| {
            async move {
                email::record_attempt(
                    conn,
                    firm,
                    email_id,
                    status,
                    error_owned.as_deref(),
                    mid.as_deref(),
                    index.as_deref(),
                )
                .await
            }
            .scope_boxed()
        })
        .await;
    match recorded {
        Ok(Some((conversation, message))) => {
            live::publish_conversation_event(
                &ctx.bus,
                firm,
                conversation,
                "email.status",
                serde_json::json!({
                    "conversation_id": conversation,
                    "message_id": message.id,
                    "email_id": email_id,
                    "status": status,
                    "error_message": error,
                    "delivery": message.delivery,
                }),
            )
            .await;
            JobOutcome::Done
        }
        Ok(None) => JobOutcome::Done,
        Err(err) => {
            tracing::error!(error = %err, %email_id, "recording an email's delivery failed");
            JobOutcome::Retry(format!("recording the outcome failed: {err}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_index_grows_by_one_child_block() {
        let mut header = vec![0x01u8];
        header.extend_from_slice(&(filetime_now() >> 16).to_be_bytes()[3..8]);
        header.extend_from_slice(&[9u8; 16]);
        assert_eq!(header.len(), 22);
        let first = STANDARD.encode(&header);
        let reply = extend_thread_index(&first).unwrap();
        let decoded = STANDARD.decode(&reply).unwrap();
        assert_eq!(decoded.len(), 27);
        assert_eq!(&decoded[..22], &header[..]);
        let again = STANDARD.decode(extend_thread_index(&reply).unwrap()).unwrap();
        assert_eq!(again.len(), 32);
        assert_eq!(again[31] & 0x0f, 1, "the second child block counts one before it");
        assert_eq!(extend_thread_index("bm90IGEgdGhyZWFkIGluZGV4"), None);
    }
}
