//! Email out: invitations and password-reset links, sent by the jobs queue over SMTP with
//! lettre. A job carries only the id of what to send; the token in the link is made when
//! the email is sent (its hash replacing any earlier one), so no usable secret waits in
//! the queue or shows in the dead-letter list.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use scoped_futures::ScopedFutureExt;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::job::{JobContext, JobOutcome};
use crate::config::MailSettings;
use crate::domain::jobs::Job;
use crate::domain::{DomainError, firms, invitations, password_resets, users};

/// One email, plain text, with an iCalendar invitation when `calendar` is set.
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub calendar: Option<CalendarPart>,
}

/// An iTIP message in an email (RFC 6047): the MIME `method` parameter equals the
/// calendar's `METHOD`.
pub struct CalendarPart {
    pub method: &'static str,
    pub ics: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Will not work however often it is tried (bad configuration, refused address).
    #[error("{0}")]
    Permanent(String),
    /// Worth another attempt (relay down, timeout, 4xx).
    #[error("{0}")]
    Transient(String),
}

fn transport(settings: &MailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let host = settings.smtp_host.as_str();
    let builder = match settings.smtp_tls.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        "none" if crate::net::is_loopback_host(host) => {
            Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host))
        }
        "none" => return Err(MailError::Permanent(format!("mail.smtp_tls = \"none\" is refused for {host}"))),
        other => {
            return Err(MailError::Permanent(format!("mail.smtp_tls must be tls, starttls or none, not {other:?}")));
        }
    }
    .map_err(|e| MailError::Permanent(format!("SMTP relay {host}: {e}")))?;
    let mut builder = builder.port(settings.smtp_port).timeout(Some(Duration::from_secs(settings.timeout_secs.max(1))));
    if !settings.smtp_username.is_empty() {
        builder = builder.credentials(Credentials::new(
            settings.smtp_username.clone(),
            settings.smtp_password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// Sends one email now.
pub async fn send(settings: &MailSettings, email: Email) -> Result<(), MailError> {
    let from = settings.from.parse().map_err(|e| MailError::Permanent(format!("mail.from: {e}")))?;
    let to = email.to.parse().map_err(|e| MailError::Permanent(format!("recipient: {e}")))?;
    let builder = Message::builder().from(from).to(to).subject(email.subject);
    let message = match email.calendar {
        None => builder.header(ContentType::TEXT_PLAIN).body(email.text),
        Some(calendar) => {
            let kind = ContentType::parse(&format!("text/calendar; method={}; charset=UTF-8", calendar.method))
                .map_err(|e| MailError::Permanent(format!("calendar part: {e}")))?;
            builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.text))
                    .singlepart(SinglePart::builder().header(kind).body(calendar.ics)),
            )
        }
    }
    .map_err(|e| MailError::Permanent(format!("message: {e}")))?;
    match transport(settings)?.send(message).await {
        Ok(_) => Ok(()),
        Err(err) if err.is_permanent() => Err(MailError::Permanent(format!("the relay refused the message: {err}"))),
        Err(err) => Err(MailError::Transient(format!("sending failed: {err}"))),
    }
}

fn outcome(sent: Result<(), MailError>) -> JobOutcome {
    match sent {
        Ok(()) => JobOutcome::Done,
        Err(MailError::Permanent(why)) => JobOutcome::Fail(why),
        Err(MailError::Transient(why)) => JobOutcome::Retry(why),
    }
}

fn id_in(job: &Job, field: &str) -> Option<Uuid> {
    job.payload.get(field).and_then(|v| v.as_str()).and_then(|v| Uuid::parse_str(v).ok())
}

/// The token rides in the fragment: browsers never send it to a server, so it stays out of
/// access logs and Referer headers; the page reads it and posts it.
fn link_in(settings: &MailSettings, page: &str, token: &str) -> String {
    format!("{}/{page}#token={token}", settings.link_base_url.trim_end_matches('/'))
}

/// `mail.invitation {invitation_id}`: sends the invitation with a fresh token; nothing
/// when it was accepted, revoked or has lapsed meanwhile.
pub async fn send_invitation(ctx: &JobContext, job: &Job) -> JobOutcome {
    let Some(id) = id_in(job, "invitation_id") else {
        return JobOutcome::Fail("job payload has no invitation_id".into());
    };
    let firm = job.firm();
    let issued = ctx
        .db
        .firm_tx(firm, |conn| {
            async move {
                let Some((invitation, token)) = invitations::issue_token(conn, firm, id).await? else {
                    return Ok(None);
                };
                let firm_name = firms::find(conn, firm).await?.name;
                Ok::<_, DomainError>(Some((invitation, token, firm_name)))
            }
            .scope_boxed()
        })
        .await;
    let (invitation, token, firm_name) = match issued {
        Ok(Some(found)) => found,
        Ok(None) => return JobOutcome::Done,
        Err(err) => return JobOutcome::Retry(format!("loading the invitation: {err}")),
    };
    let settings = &ctx.settings.mail;
    let text = format!(
        "You have been invited to join {firm_name} on ConsultantPro as {role}.\n\n\
         Accept the invitation here (the link works once, until {expires}):\n{link}\n\n\
         If you already use ConsultantPro with this address, you will be asked for your \
         password; otherwise you choose one. If you did not expect this, ignore this email.\n",
        role = invitation.role,
        expires = invitation.expires_at.format("%Y-%m-%d %H:%M UTC"),
        link = link_in(settings, "accept-invitation", &token),
    );
    let email = Email { to: invitation.email, subject: format!("Invitation to {firm_name}"), text, calendar: None };
    outcome(send(settings, email).await)
}

/// `mail.password_reset {reset_id}`: sends the reset link with a fresh token.
pub async fn send_password_reset(ctx: &JobContext, job: &Job) -> JobOutcome {
    let Some(id) = id_in(job, "reset_id") else {
        return JobOutcome::Fail("job payload has no reset_id".into());
    };
    let firm = job.firm();
    let issued = ctx
        .db
        .firm_tx(firm, |conn| {
            async move {
                let Some((reset, token)) = password_resets::issue_token(conn, firm, id).await? else {
                    return Ok(None);
                };
                let user = users::find(conn, reset.user_id).await?;
                let firm_name = firms::find(conn, firm).await?.name;
                Ok::<_, DomainError>(Some((reset, token, user.email, firm_name)))
            }
            .scope_boxed()
        })
        .await;
    let (reset, token, to, firm_name) = match issued {
        Ok(Some(found)) => found,
        Ok(None) => return JobOutcome::Done,
        Err(err) => return JobOutcome::Retry(format!("loading the reset: {err}")),
    };
    let settings = &ctx.settings.mail;
    let text = format!(
        "Someone asked to reset the ConsultantPro password for this address (signing in to \
         {firm_name}).\n\nChoose a new password here (the link works once, until {expires}):\n{link}\n\n\
         Resetting signs you out everywhere. If you did not ask, ignore this email: your \
         password stays as it is.\n",
        expires = reset.expires_at.format("%Y-%m-%d %H:%M UTC"),
        link = link_in(settings, "reset-password", &token),
    );
    outcome(
        send(settings, Email { to, subject: "Reset your ConsultantPro password".into(), text, calendar: None }).await,
    )
}

/// `booking.notify {booking_id, recipient, method, sequence, starts_at, ends_at}`: the
/// invitation (`REQUEST`) or cancellation (`CANCEL`) of a booking as it stood when the
/// change was made, to the invitee (with the link to cancel or move it) or the member.
/// Names and addresses are read when sending; the job holds ids and times only.
pub async fn send_booking_notice(ctx: &JobContext, job: &Job) -> JobOutcome {
    use chrono::{DateTime, Utc};

    use crate::domain::ical::{self, Invitation, Method, Person};
    use crate::domain::{bookings, memberships};

    let Some(id) = id_in(job, "booking_id") else {
        return JobOutcome::Fail("job payload has no booking_id".into());
    };
    let field = |name: &str| job.payload.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let moment = |name: &str| field(name).parse::<DateTime<Utc>>().ok();
    let (Some(starts_at), Some(ends_at)) = (moment("starts_at"), moment("ends_at")) else {
        return JobOutcome::Fail("job payload has no times".into());
    };
    let method = match field("method").as_str() {
        "REQUEST" => Method::Request,
        "CANCEL" => Method::Cancel,
        other => return JobOutcome::Fail(format!("unknown method {other:?}")),
    };
    let to_invitee = match field("recipient").as_str() {
        "invitee" => true,
        "member" => false,
        other => return JobOutcome::Fail(format!("unknown recipient {other:?}")),
    };
    let sequence = job.payload.get("sequence").and_then(serde_json::Value::as_i64).unwrap_or(0);
    let firm = job.firm();
    let loaded = ctx
        .db
        .firm_tx(firm, |conn| {
            async move {
                let booking = bookings::lock(conn, firm, id).await?;
                let link = bookings::find_link(conn, firm, booking.link_id).await?;
                let member = memberships::find(conn, firm, booking.member_user_id).await?;
                let member_zone =
                    bookings::availability(conn, firm, booking.member_user_id).await?.map(|a| a.time_zone);
                let firm_name = firms::find(conn, firm).await?.name;
                Ok::<_, DomainError>((booking, link, member, member_zone, firm_name))
            }
            .scope_boxed()
        })
        .await;
    let (booking, link, member, member_zone, firm_name) = match loaded {
        Ok(found) => found,
        Err(DomainError::NotFound(what)) => return JobOutcome::Fail(format!("{what} not found")),
        Err(err) => return JobOutcome::Retry(format!("loading the booking: {err}")),
    };
    let zone_name = if to_invitee { booking.invitee_time_zone.clone() } else { member_zone.unwrap_or_default() };
    let zone = zone_name.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC);
    let invite = Invitation {
        method,
        uid: booking.ical_uid.clone(),
        sequence: i32::try_from(sequence).unwrap_or(0),
        starts_at,
        ends_at,
        summary: format!("{} ({firm_name})", link.title),
        description: String::new(),
        organizer: Person { name: member.display_name.clone(), email: member.email.clone() },
        attendee: Person { name: booking.invitee_name.clone(), email: booking.invitee_email.clone() },
        zone,
        tentative: booking.status == "pending",
        stamp: Utc::now(),
    };
    let settings = &ctx.settings.mail;
    let when = format!("{} ({})", starts_at.with_timezone(&zone).format("%A %-d %B %Y, %H:%M"), zone.name());
    let (subject, mut text) = match method {
        Method::Request => (
            format!("{}: {when}", link.title),
            format!("{} with {} ({firm_name}), {when}.\n", link.title, member.display_name),
        ),
        Method::Cancel => (
            format!("Cancelled: {}, {when}", link.title),
            format!("{} with {} ({firm_name}), {when}, is cancelled.\n", link.title, member.display_name),
        ),
    };
    if to_invitee && method == Method::Request {
        let token = bookings::manage_token(ctx.settings.auth.jwt_secret.expose_secret().as_bytes(), firm, booking.id);
        text.push_str(&format!("\nTo cancel or move it: {}\n", link_in(settings, "booking/manage", &token)));
    }
    if !to_invitee {
        text.push_str(&format!("\nBooked by {} <{}>.\n", booking.invitee_name, booking.invitee_email));
    }
    let to = if to_invitee { booking.invitee_email } else { member.email };
    let calendar = Some(CalendarPart { method: method.as_str(), ics: ical::invitation(&invite) });
    outcome(send(settings, Email { to, subject, text, calendar }).await)
}
