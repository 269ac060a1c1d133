//! Email filed into conversations, and replies queued to go out.
//!
//! An imported message is stored once (its folder position and its dedupe key are unique
//! per mailbox), then either triaged (a loop, a bounce, automatic mail, or ignored by a
//! rule) or filed: the sender's contact (found case-insensitively, or made and marked for
//! review), the conversation it threads into, the chat message, every MIME leaf. Threading
//! tries, in order: `In-Reply-To`/`References` against stored Message-IDs; the reply
//! address the hub puts on its own mail; Outlook's `Thread-Index`; the subject with the
//! sender among the thread's participants, within the firm's window.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::conversations::{self, Message};
use super::email_rules::{self, RuleOutcome};
use super::mailboxes::EmailSettings;
use super::{DomainError, jobs, to_json};
use crate::db::schema::email_messages;
use crate::ingest::email::parse::ParsedEmail;
use crate::ingest::email::triage::{self, Triage};
use crate::tenant::FirmId;

/// A chat message shows at most this much of an email's text; the whole text stays on the
/// email.
const MAX_CHAT_BODY: usize = conversations::MAX_BODY_CHARS;
/// Tries for an outgoing email before it is failed for good.
pub const SEND_ATTEMPTS: i32 = 8;
pub const SEND_JOB: &str = "email.send";
/// Acknowledgements one mailbox may send in an hour.
pub const ACKNOWLEDGEMENTS_PER_HOUR: i64 = 200;

/// What an import needs besides the message: the mailbox and folder it came from, and the
/// firm's rules and settings as they stood when the batch began.
#[derive(Debug, Clone)]
pub struct ImportContext {
    pub mailbox: Uuid,
    pub mailbox_address: String,
    pub folder: String,
    pub uidvalidity: i64,
    /// The domain of the hub's Message-IDs (`mail.message_id_domain`).
    pub own_domain: String,
    pub own_addresses: Vec<String>,
    pub max_part_bytes: u64,
    pub auto_acknowledge: Option<String>,
    pub settings: EmailSettings,
    pub rules: Vec<email_rules::Rule>,
}

#[derive(Debug, Clone)]
pub enum Imported {
    /// Stored before (same folder position, or the same message by Message-ID or content).
    Duplicate,
    Triaged {
        email_id: Uuid,
        kind: &'static str,
    },
    Filed(Box<Filed>),
}

#[derive(Debug, Clone)]
pub struct Filed {
    pub email_id: Uuid,
    pub message: Message,
    pub contact_id: Uuid,
    pub new_conversation: bool,
    /// The acknowledgement queued to the sender, when the mailbox sends one.
    pub acknowledgement: Option<Message>,
}

const TOKEN_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const TOKEN_LEN: usize = 12;

/// Why triage kept an email out of the conversations: the ingest's kinds, a rule's
/// `ignored`, and `unreadable` for a message a store refused part of (`set_aside`).
pub const TRIAGE_KINDS: [&str; 5] = ["automatic", "bounce", "loop", "ignored", "unreadable"];

/// The conversation's reply token, made on first use (in the caller's transaction).
pub async fn reply_token(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
) -> Result<String, DomainError> {
    use rand::Rng;
    let fresh: String = {
        let mut rng = rand::rng();
        (0..TOKEN_LEN).map(|_| char::from(TOKEN_CHARS[rng.random_range(0..TOKEN_CHARS.len())])).collect()
    };
    #[derive(QueryableByName)]
    struct Token {
        #[diesel(sql_type = Text)]
        reply_token: String,
    }
    let token = crate::db::cached_query(
        "UPDATE conversations SET reply_token = COALESCE(reply_token, $3) WHERE firm_id = $1 AND id = $2 \
         RETURNING reply_token",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(conversation)
    .bind::<Text, _>(fresh)
    .get_result::<Token>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("conversation"))?;
    Ok(token.reply_token)
}

/// The address replies to a conversation go to: the mailbox's own with `+cp<token>`, so a
/// reply that drops every threading header (some Outlook versions) still finds it. None
/// when the mailbox's local part leaves no room (RFC 5321 allows 64 characters).
pub fn reply_address(token: &str, mailbox_address: &str) -> Option<String> {
    let (local, domain) = mailbox_address.rsplit_once('@')?;
    (local.len() + 3 + token.len() <= 64).then(|| format!("{local}+cp{token}@{domain}"))
}

/// The reply token an address carries, if it is one of the hub's reply addresses.
pub fn token_of_address(address: &str) -> Option<&str> {
    let local = address.rsplit_once('@')?.0;
    let token = local.rsplit_once("+cp")?.1;
    (token.len() == TOKEN_LEN && token.bytes().all(|b| TOKEN_CHARS.contains(&b))).then_some(token)
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct ThreadHit {
    #[diesel(sql_type = SqlUuid)]
    conversation_id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
}

/// How a message found its conversation (shown by the dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadedBy {
    References,
    ReplyAddress,
    ThreadIndex,
    SubjectAndParticipants,
}

/// The conversation an email belongs to, if any, and how it was found. Read-only.
pub async fn find_thread(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email: &ParsedEmail,
    settings: &EmailSettings,
) -> Result<Option<(Uuid, String, ThreadedBy)>, DomainError> {
    let ids = email.thread_ids();
    if !ids.is_empty() {
        let hit = crate::db::cached_query(
            "SELECT e.conversation_id, c.status FROM email_messages e \
               JOIN conversations c ON c.firm_id = e.firm_id AND c.id = e.conversation_id \
              WHERE e.firm_id = $1 AND e.message_id = ANY($2) \
              ORDER BY e.created_at DESC LIMIT 1",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<Array<Text>, _>(&ids)
        .get_result::<ThreadHit>(conn)
        .await
        .optional()?;
        if let Some(hit) = hit {
            return Ok(Some((hit.conversation_id, hit.status, ThreadedBy::References)));
        }
    }
    for token in email.recipients().filter_map(token_of_address) {
        {
            let hit = crate::db::cached_query(
                "SELECT id AS conversation_id, status FROM conversations \
                  WHERE firm_id = $1 AND reply_token = $2 AND channel = 'email'",
            )
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<Text, _>(token)
            .get_result::<ThreadHit>(conn)
            .await
            .optional()?;
            if let Some(hit) = hit {
                return Ok(Some((hit.conversation_id, hit.status, ThreadedBy::ReplyAddress)));
            }
        }
    }
    if let Some(root) = &email.thread_root {
        let hit = crate::db::cached_query(
            "SELECT e.conversation_id, c.status FROM email_messages e \
               JOIN conversations c ON c.firm_id = e.firm_id AND c.id = e.conversation_id \
              WHERE e.firm_id = $1 AND e.thread_root = $2 \
              ORDER BY e.created_at DESC LIMIT 1",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<Text, _>(root)
        .get_result::<ThreadHit>(conn)
        .await
        .optional()?;
        if let Some(hit) = hit {
            return Ok(Some((hit.conversation_id, hit.status, ThreadedBy::ThreadIndex)));
        }
    }
    if let Some(from) = &email.from
        && !email.subject_key.is_empty()
        && settings.subject_window_hours > 0
    {
        let since = Utc::now() - Duration::hours(i64::from(settings.subject_window_hours));
        let hit = crate::db::cached_query(
            "SELECT e.conversation_id, c.status FROM email_messages e \
               JOIN conversations c ON c.firm_id = e.firm_id AND c.id = e.conversation_id \
              WHERE e.firm_id = $1 AND e.subject_key = $2 AND e.created_at >= $3 \
                AND ($4 = e.from_address OR $4 = ANY(e.to_addresses) OR $4 = ANY(e.cc_addresses)) \
              ORDER BY e.created_at DESC LIMIT 1",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<Text, _>(&email.subject_key)
        .bind::<Timestamptz, _>(since)
        .bind::<Text, _>(&from.address)
        .get_result::<ThreadHit>(conn)
        .await
        .optional()?;
        if let Some(hit) = hit {
            return Ok(Some((hit.conversation_id, hit.status, ThreadedBy::SubjectAndParticipants)));
        }
    }
    Ok(None)
}

/// Imports one fetched message in the caller's transaction (which also moves the folder's
/// position, so the two commit together).
pub async fn import(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ctx: &ImportContext,
    uid: u32,
    email: &ParsedEmail,
) -> Result<Imported, DomainError> {
    let email_id = Uuid::now_v7();
    let stored = crate::db::cached_query(
        "INSERT INTO email_messages (firm_id, id, direction, mailbox_id, folder, uidvalidity, uid, dedupe_key, \
             message_id, in_reply_to, \"references\", thread_index, thread_root, subject, subject_key, from_address, \
             from_name, to_addresses, cc_addresses, reply_to, sent_at, size_bytes, text_body, headers) \
         VALUES ($1, $2, 'inbound', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                 $20, $21, $22, $23) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(email_id)
    .bind::<SqlUuid, _>(ctx.mailbox)
    .bind::<Text, _>(&ctx.folder)
    .bind::<BigInt, _>(ctx.uidvalidity)
    .bind::<BigInt, _>(i64::from(uid))
    .bind::<Text, _>(&email.dedupe_key)
    .bind::<Nullable<Text>, _>(&email.message_id)
    .bind::<Array<Text>, _>(&email.in_reply_to)
    .bind::<Array<Text>, _>(&email.references)
    .bind::<Nullable<Text>, _>(&email.thread_index)
    .bind::<Nullable<Text>, _>(&email.thread_root)
    .bind::<Text, _>(&email.subject)
    .bind::<Text, _>(&email.subject_key)
    .bind::<Nullable<Text>, _>(email.from.as_ref().map(|f| f.address.as_str()))
    .bind::<Nullable<Text>, _>(email.from.as_ref().and_then(|f| f.name.as_deref()))
    .bind::<Array<Text>, _>(&email.to)
    .bind::<Array<Text>, _>(&email.cc)
    .bind::<Nullable<Text>, _>(&email.reply_to)
    .bind::<Nullable<Timestamptz>, _>(email.sent_at)
    .bind::<BigInt, _>(i64::try_from(email.size).unwrap_or(i64::MAX))
    .bind::<Text, _>(&email.text)
    .bind::<Jsonb, _>(to_json(&email.headers)?)
    .get_result::<IdRow>(conn)
    .await
    .optional()?;
    if stored.is_none_or(|row| row.id != email_id) {
        return Ok(Imported::Duplicate);
    }
    store_parts(conn, firm, email_id, email, ctx.max_part_bytes).await?;

    // The hub's own Message-IDs are all on its domain: only those need looking up.
    let sent_by_hub = match &email.message_id {
        Some(id) if id.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(&ctx.own_domain)) => {
            sent_by_hub(conn, firm, id).await?
        }
        _ => false,
    };
    if let Some(triage) = triage::classify(email, sent_by_hub, &ctx.own_addresses) {
        record_triage(conn, firm, email_id, &triage, email).await?;
        return Ok(Imported::Triaged { email_id, kind: triage.kind() });
    }
    let outcome = email_rules::evaluate(&ctx.rules, email);
    if outcome.ignore {
        set_triage(conn, firm, email_id, "ignored", &format!("rule: {}", outcome.matched.join(", ")), None).await?;
        return Ok(Imported::Triaged { email_id, kind: "ignored" });
    }
    let Some(from) = &email.from else {
        set_triage(conn, firm, email_id, "ignored", "no sender address", None).await?;
        return Ok(Imported::Triaged { email_id, kind: "ignored" });
    };
    let contact_id = contact_for(conn, firm, &from.address, from.name.as_deref()).await?;

    let thread = find_thread(conn, firm, email, &ctx.settings).await?;
    let existing = match thread {
        Some((_, status, _)) if status == "closed" && ctx.settings.closed_reply == "new_conversation" => None,
        Some((conversation, _, _)) => Some(conversation),
        None => None,
    };
    let (conversation, new_conversation) = match existing {
        Some(conversation) => (conversation, false),
        None => (start_conversation(conn, firm, email, contact_id).await?, true),
    };
    crate::db::cached_query(
        "INSERT INTO conversation_participants (firm_id, conversation_id, id, contact_id) \
         SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM conversation_participants \
             WHERE firm_id = $1 AND conversation_id = $2 AND contact_id = $4)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(conversation)
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<SqlUuid, _>(contact_id)
    .execute(conn)
    .await?;

    let body = chat_body(email);
    let message = conversations::append_message(conn, firm, conversation, Some(contact_id), &body, true).await?;
    diesel::update(email_messages::table)
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::id.eq(email_id))
        .set((
            email_messages::conversation_id.eq(conversation),
            email_messages::chat_message_id.eq(message.id),
            email_messages::contact_id.eq(contact_id),
        ))
        .execute(conn)
        .await?;
    apply_rule_actions(conn, firm, conversation, &outcome).await?;
    let turn = super::tickets::Turn::Customer(Some(contact_id));
    super::tickets::on_message(conn, firm, conversation, turn, message.created_at).await?;

    let acknowledgement = match (&ctx.auto_acknowledge, new_conversation) {
        (Some(text), true)
            if acknowledgements_left(conn, firm, ctx.mailbox).await?
                && auto_reply_due(conn, firm, &from.address, ctx.settings.auto_reply_period_hours).await? =>
        {
            let mut ack = conversations::append_message(conn, firm, conversation, None, text, false).await?;
            ack.delivery = Some(queue_outbound(conn, firm, &ack, true).await?);
            Some(ack)
        }
        _ => None,
    };
    let mut message = message;
    message.delivery = conversations::delivery_of(conn, firm, message.id).await?;
    Ok(Imported::Filed(Box::new(Filed { email_id, message, contact_id, new_conversation, acknowledgement })))
}

/// Whether a Message-ID is one of the firm's own outgoing emails.
pub async fn sent_by_hub(conn: &mut AsyncPgConnection, firm: FirmId, message_id: &str) -> Result<bool, DomainError> {
    let found: i64 = email_messages::table
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::direction.eq("outbound"))
        .filter(email_messages::message_id.eq(message_id))
        .count()
        .get_result(conn)
        .await?;
    Ok(found > 0)
}

/// Keeps a message that could not be filed (a store refused part of it) as triaged
/// `unreadable` with the reason, so one bad message never holds up the mail behind it.
/// Only fields the parser has already cut to size are written.
pub async fn set_aside(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    ctx: &ImportContext,
    uid: u32,
    email: &ParsedEmail,
    reason: &str,
) -> Result<Imported, DomainError> {
    let email_id = Uuid::now_v7();
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(300).collect();
    let stored = crate::db::cached_query(
        "INSERT INTO email_messages (firm_id, id, direction, mailbox_id, folder, uidvalidity, uid, dedupe_key, \
             subject, from_address, size_bytes, triage, triage_reason) \
         VALUES ($1, $2, 'inbound', $3, $4, $5, $6, $7, $8, $9, $10, 'unreadable', $11) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(email_id)
    .bind::<SqlUuid, _>(ctx.mailbox)
    .bind::<Text, _>(&ctx.folder)
    .bind::<BigInt, _>(ctx.uidvalidity)
    .bind::<BigInt, _>(i64::from(uid))
    .bind::<Text, _>(&email.dedupe_key)
    .bind::<Text, _>(&email.subject)
    .bind::<Nullable<Text>, _>(email.from.as_ref().map(|f| f.address.as_str()))
    .bind::<BigInt, _>(i64::try_from(email.size).unwrap_or(i64::MAX))
    .bind::<Text, _>(reason)
    .get_result::<IdRow>(conn)
    .await
    .optional()?;
    Ok(match stored {
        Some(_) => Imported::Triaged { email_id, kind: "unreadable" },
        None => Imported::Duplicate,
    })
}

fn chat_body(email: &ParsedEmail) -> String {
    let text = email.text.trim();
    let text = if text.is_empty() && !email.parts.is_empty() {
        format!("({} attachment{})", email.parts.len(), if email.parts.len() == 1 { "" } else { "s" })
    } else if text.is_empty() {
        "(no text)".to_owned()
    } else {
        text.to_owned()
    };
    if text.chars().count() > MAX_CHAT_BODY {
        let mut cut: String = text.chars().take(MAX_CHAT_BODY - 40).collect();
        cut.push_str("\n\n[the whole message is on the email]");
        cut
    } else {
        text
    }
}

async fn set_triage(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email_id: Uuid,
    kind: &str,
    reason: &str,
    bounced: Option<serde_json::Value>,
) -> Result<(), DomainError> {
    let reason: String = reason.chars().take(300).collect();
    diesel::update(email_messages::table)
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::id.eq(email_id))
        .set((
            email_messages::triage.eq(kind),
            email_messages::triage_reason.eq(reason),
            email_messages::bounced.eq(bounced),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps a triaged message out of the conversations; a bounce marks each failed address
/// on its contact (a delayed one is recorded on the message only).
async fn record_triage(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email_id: Uuid,
    triage: &Triage,
    email: &ParsedEmail,
) -> Result<(), DomainError> {
    let bounced = email.bounce.as_ref().map(to_json).transpose()?;
    set_triage(conn, firm, email_id, triage.kind(), &triage.reason(), bounced).await?;
    if let (Triage::Bounce, Some(bounce)) = (triage, &email.bounce) {
        for recipient in bounce.recipients.iter().filter(|r| r.permanent) {
            let status: String = [recipient.status.as_deref(), recipient.diagnostic.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(300)
                .collect();
            crate::db::cached_query(
                "UPDATE contact_emails SET bouncing_since = COALESCE(bouncing_since, now()), bounce_status = $3 \
                  WHERE firm_id = $1 AND email = $2",
            )
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<Text, _>(recipient.address.to_lowercase())
            .bind::<Nullable<Text>, _>(Some(status).filter(|s| !s.is_empty()))
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The contact with this address (case-insensitive), or a new one marked for review.
async fn contact_for(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    address: &str,
    name: Option<&str>,
) -> Result<Uuid, DomainError> {
    if let Some(contact) = super::contacts::by_email(conn, firm, address).await? {
        return Ok(contact);
    }
    let (first, last) = split_name(name, address);
    let id = Uuid::now_v7();
    crate::db::cached_query(
        "INSERT INTO contacts (firm_id, id, first_name, last_name, needs_review) VALUES ($1, $2, $3, $4, true)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(first)
    .bind::<Text, _>(last)
    .execute(conn)
    .await?;
    // Two messages from one new sender in one batch: the second finds the first's row.
    let inserted = crate::db::cached_query(
        "INSERT INTO contact_emails (firm_id, email, contact_id, position) VALUES ($1, $2, $3, 0) \
         ON CONFLICT (firm_id, email) DO NOTHING",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(address)
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await?;
    if inserted == 0 {
        return super::contacts::by_email(conn, firm, address).await?.ok_or(DomainError::NotFound("contact"));
    }
    Ok(id)
}

fn split_name(name: Option<&str>, address: &str) -> (String, String) {
    let cut = |s: &str| s.chars().take(100).collect::<String>();
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => match name.rsplit_once(' ') {
            Some((first, last)) => (cut(first.trim()), cut(last.trim())),
            None => (cut(name), String::new()),
        },
        None => (cut(address), String::new()),
    }
}

async fn start_conversation(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email: &ParsedEmail,
    contact: Uuid,
) -> Result<Uuid, DomainError> {
    let subject: String = if email.subject.trim().is_empty() {
        format!("Email from {}", email.from.as_ref().map_or("unknown sender", |f| f.address.as_str()))
    } else {
        email.subject.trim().to_owned()
    };
    let subject: String = subject.chars().take(300).collect();
    let id = Uuid::now_v7();
    crate::db::cached_query(
        "INSERT INTO conversations (firm_id, id, subject, channel, client_id) \
         SELECT $1, $2, $3, 'email', (SELECT client_id FROM contacts WHERE firm_id = $1 AND id = $4)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(subject)
    .bind::<SqlUuid, _>(contact)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Stores every MIME leaf; content once per firm (by SHA-256), metadata per message. A
/// part over the limit keeps its metadata and is marked oversize.
async fn store_parts(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email_id: Uuid,
    email: &ParsedEmail,
    max_part_bytes: u64,
) -> Result<(), DomainError> {
    let mut content_ids = HashMap::new();
    for part in &email.parts {
        let size = part.content.len() as u64;
        let oversize = size > max_part_bytes;
        let sha = (!oversize).then(|| part.sha256());
        if let Some(sha) = &sha {
            crate::db::cached_query(
                "INSERT INTO email_blobs (firm_id, sha256, size_bytes, content) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (firm_id, sha256) DO NOTHING",
            )
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<Text, _>(sha)
            .bind::<BigInt, _>(i64::try_from(size).unwrap_or(i64::MAX))
            .bind::<Bytea, _>(&part.content)
            .execute(conn)
            .await?;
        }
        crate::db::cached_query(
            "INSERT INTO email_parts (firm_id, email_id, position, filename, content_type, disposition, content_id, \
                                      size_bytes, sha256, oversize) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(email_id)
        .bind::<Integer, _>(part.position)
        .bind::<Nullable<Text>, _>(&part.filename)
        .bind::<Text, _>(&part.content_type)
        .bind::<Text, _>(if part.inline { "inline" } else { "attachment" })
        .bind::<Nullable<Text>, _>(&part.content_id)
        .bind::<BigInt, _>(i64::try_from(size).unwrap_or(i64::MAX))
        .bind::<Nullable<Text>, _>(&sha)
        .bind::<Bool, _>(oversize)
        .execute(conn)
        .await?;
        if let Some(cid) = &part.content_id {
            content_ids.insert(cid.clone(), part.position);
        }
    }
    if let Some(html) = &email.html {
        let clean = crate::ingest::email::html::sanitise(html, &content_ids, |position| part_path(email_id, position));
        diesel::update(email_messages::table)
            .filter(email_messages::firm_id.eq(firm.into_uuid()))
            .filter(email_messages::id.eq(email_id))
            .set(email_messages::html_body.eq(clean))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Where the API serves a part's content.
pub fn part_path(email_id: Uuid, position: i32) -> String {
    format!("/api/v1/emails/{email_id}/parts/{position}")
}

async fn apply_rule_actions(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
    outcome: &RuleOutcome,
) -> Result<(), DomainError> {
    if let Some(assignee) = outcome.assign_to {
        // Only to an active member of this firm; a rule naming someone who left assigns nobody.
        crate::db::cached_query(
            "UPDATE conversations SET assignee_user_id = $3, updated_at = now() \
              WHERE firm_id = $1 AND id = $2 AND EXISTS (SELECT 1 FROM memberships m \
                  WHERE m.firm_id = $1 AND m.user_id = $3 AND m.status = 'active' AND m.contact_id IS NULL)",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(conversation)
        .bind::<SqlUuid, _>(assignee)
        .execute(conn)
        .await?;
    }
    if !outcome.tags.is_empty() {
        crate::db::cached_query(
            "UPDATE conversations SET tags = ARRAY(SELECT DISTINCT t FROM unnest(tags || $3) t ORDER BY t) \
              WHERE firm_id = $1 AND id = $2",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(conversation)
        .bind::<Array<Text>, _>(&outcome.tags)
        .execute(conn)
        .await?;
    }
    if let Some(status) = &outcome.status {
        crate::db::cached_query("UPDATE conversations SET status = $3 WHERE firm_id = $1 AND id = $2")
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<SqlUuid, _>(conversation)
            .bind::<Text, _>(status)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Whether the mailbox may send another acknowledgement this hour (a flood of senders, each
/// new, cannot make it send without bound).
async fn acknowledgements_left(conn: &mut AsyncPgConnection, firm: FirmId, mailbox: Uuid) -> Result<bool, DomainError> {
    #[derive(QueryableByName)]
    struct Sent {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sent = crate::db::cached_query(
        "SELECT count(*) AS n FROM email_messages WHERE firm_id = $1 AND mailbox_id = $2 AND automatic \
            AND direction = 'outbound' AND created_at > now() - interval '1 hour'",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(mailbox)
    .get_result::<Sent>(conn)
    .await?;
    Ok(sent.n < ACKNOWLEDGEMENTS_PER_HOUR)
}

/// Whether the hub may write to `address` automatically now: once per period, so two
/// auto-responders can never keep each other talking through the hub.
async fn auto_reply_due(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    address: &str,
    period_hours: i32,
) -> Result<bool, DomainError> {
    let answered = crate::db::cached_query(
        "INSERT INTO email_auto_replies (firm_id, address) VALUES ($1, $2) \
         ON CONFLICT (firm_id, address) DO UPDATE SET replied_at = now() \
          WHERE email_auto_replies.replied_at < now() - make_interval(hours => $3)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(address.to_lowercase())
    .bind::<Integer, _>(period_hours)
    .execute(conn)
    .await?;
    Ok(answered == 1)
}

// ---------------------------------------------------------------------------------------
// Outbound

#[derive(QueryableByName)]
struct Recipients {
    /// The inbound email answered: recipients come from it, and the reply quotes it.
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    mailbox_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    mailbox_address: Option<String>,
    #[diesel(sql_type = Array<Text>)]
    to_addresses: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    cc_addresses: Vec<String>,
    #[diesel(sql_type = Text)]
    subject: String,
}

/// Queues a stored chat message of an email conversation to go out by SMTP, in the
/// caller's transaction: to everyone on the conversation's latest inbound email (the
/// sender, and those in Cc except the firm's own mailboxes), from the mailbox it arrived
/// at. Refused when there is nobody to send to or no mailbox can send.
pub async fn queue_outbound(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    message: &Message,
    automatic: bool,
) -> Result<serde_json::Value, DomainError> {
    let found = crate::db::cached_query(
        "SELECT e.id, e.mailbox_id, m.address AS mailbox_address, \
                ARRAY(SELECT DISTINCT a FROM unnest(ARRAY[CASE WHEN $3 THEN e.from_address \
                                                             ELSE COALESCE(e.reply_to, e.from_address) END]) a \
                       WHERE a IS NOT NULL) AS to_addresses, \
                ARRAY(SELECT DISTINCT a FROM unnest(e.to_addresses || e.cc_addresses) a \
                       WHERE a <> ALL (SELECT address FROM mailboxes WHERE firm_id = $1) \
                         AND a NOT LIKE '%+cp%' AND a <> COALESCE(e.reply_to, e.from_address, '')) AS cc_addresses, \
                e.subject \
           FROM email_messages e LEFT JOIN mailboxes m ON m.firm_id = e.firm_id AND m.id = e.mailbox_id \
          WHERE e.firm_id = $1 AND e.conversation_id = $2 AND e.direction = 'inbound' \
          ORDER BY e.created_at DESC, e.id DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(message.conversation_id)
    .bind::<Bool, _>(automatic)
    .get_result::<Recipients>(conn)
    .await
    .optional()?
    .ok_or_else(|| DomainError::invalid_field("conversation", "this email conversation has no email to answer"))?;
    let mut found = found;
    if automatic {
        // An acknowledgement answers the sender alone.
        found.cc_addresses.clear();
    }
    let (Some(mailbox_id), Some(mailbox_address)) = (found.mailbox_id, found.mailbox_address) else {
        return Err(DomainError::Conflict("the mailbox this conversation came in through was removed".into()));
    };
    if found.to_addresses.is_empty() {
        return Err(DomainError::invalid_field("conversation", "the email being answered has no sender address"));
    }
    let subject: String = found.subject.chars().take(1990).collect();
    found.subject = subject;
    let subject = if crate::ingest::email::parse::subject_key(&found.subject) == found.subject.to_lowercase()
        && !found.subject.is_empty()
    {
        format!("Re: {}", found.subject)
    } else if found.subject.is_empty() {
        "Re:".to_owned()
    } else {
        found.subject.clone()
    };
    let email_id = Uuid::now_v7();
    crate::db::cached_query(
        "INSERT INTO email_messages (firm_id, id, direction, mailbox_id, dedupe_key, subject, subject_key, \
             from_address, to_addresses, cc_addresses, text_body, conversation_id, chat_message_id, status, automatic, \
             answers_email_id) \
         VALUES ($1, $2, 'outbound', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $14)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(email_id)
    .bind::<SqlUuid, _>(mailbox_id)
    .bind::<Text, _>(format!("out:{email_id}"))
    .bind::<Text, _>(&subject)
    .bind::<Text, _>(crate::ingest::email::parse::subject_key(&subject))
    .bind::<Text, _>(&mailbox_address)
    .bind::<Array<Text>, _>(&found.to_addresses)
    .bind::<Array<Text>, _>(&found.cc_addresses)
    .bind::<Text, _>(&message.body)
    .bind::<SqlUuid, _>(message.conversation_id)
    .bind::<SqlUuid, _>(message.id)
    .bind::<Bool, _>(automatic)
    .bind::<SqlUuid, _>(found.id)
    .execute(conn)
    .await?;
    jobs::enqueue(conn, firm, SEND_JOB, json!({ "email_id": email_id }), SEND_ATTEMPTS).await?;
    conversations::delivery_of(conn, firm, message.id)
        .await?
        .ok_or_else(|| DomainError::Internal("queued email has no delivery".into()))
}

/// Everything the sender needs to put one outgoing email on the wire.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub email_id: Uuid,
    pub mailbox_id: Uuid,
    pub conversation_id: Uuid,
    pub chat_message_id: Uuid,
    pub status: String,
    pub from_address: String,
    pub from_name: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub body: String,
    pub automatic: bool,
    /// Message-IDs of the thread, oldest first, for References.
    pub references: Vec<String>,
    pub in_reply_to: Option<String>,
    /// The Thread-Index of the newest inbound message that carried one.
    pub thread_index: Option<String>,
    pub reply_token: String,
    /// The inbound email this reply answers (chosen when it was queued, with its recipients),
    /// quoted under it as mail clients do. None for automatic replies.
    pub quoted_history: Option<String>,
}

/// Quoted history is cut at this many lines of the email it quotes (which itself may
/// quote a long thread).
const QUOTED_LINES: usize = 200;

/// "On <date>, <sender> wrote:" and the quoted text, each line behind `> `.
pub fn quoted_history(from_name: Option<&str>, from_address: Option<&str>, at: DateTime<Utc>, text: &str) -> String {
    let sender = match (from_name.filter(|n| !n.trim().is_empty()), from_address) {
        (Some(name), Some(address)) => format!("{} <{address}>", name.trim()),
        (Some(name), None) => name.trim().to_owned(),
        (None, Some(address)) => address.to_owned(),
        (None, None) => "the sender".to_owned(),
    };
    let mut quoted = format!("On {}, {sender} wrote:\n", at.format("%a, %-d %b %Y at %H:%M UTC"));
    let lines: Vec<&str> = text.trim_end().lines().collect();
    for line in lines.iter().take(QUOTED_LINES) {
        quoted.push('>');
        if !line.is_empty() && !line.starts_with('>') {
            quoted.push(' ');
        }
        quoted.push_str(line);
        quoted.push('\n');
    }
    if lines.len() > QUOTED_LINES {
        quoted.push_str("> [...]\n");
    }
    quoted
}

#[derive(QueryableByName)]
struct QuotedRow {
    #[diesel(sql_type = Nullable<Text>)]
    from_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    from_address: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    text_body: String,
}

#[derive(QueryableByName)]
struct OutgoingRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    mailbox_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    conversation_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    chat_message_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    from_address: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mailbox_name: Option<String>,
    #[diesel(sql_type = Array<Text>)]
    to_addresses: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    cc_addresses: Vec<String>,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    text_body: String,
    #[diesel(sql_type = Bool)]
    automatic: bool,
}

#[derive(QueryableByName)]
struct ThreadRow {
    #[diesel(sql_type = Nullable<Text>)]
    message_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    thread_index: Option<String>,
    #[diesel(sql_type = Text)]
    direction: String,
}

pub async fn outgoing(conn: &mut AsyncPgConnection, firm: FirmId, email_id: Uuid) -> Result<Outgoing, DomainError> {
    let row = crate::db::cached_query(
        "SELECT e.id, e.mailbox_id, e.conversation_id, e.chat_message_id, e.status, e.from_address, \
                m.name AS mailbox_name, e.to_addresses, e.cc_addresses, e.subject, e.text_body, e.automatic \
           FROM email_messages e LEFT JOIN mailboxes m ON m.firm_id = e.firm_id AND m.id = e.mailbox_id \
          WHERE e.firm_id = $1 AND e.id = $2 AND e.direction = 'outbound'",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(email_id)
    .get_result::<OutgoingRow>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("email"))?;
    let (Some(mailbox_id), Some(conversation_id), Some(chat_message_id), Some(from_address)) =
        (row.mailbox_id, row.conversation_id, row.chat_message_id, row.from_address)
    else {
        return Err(DomainError::NotFound("mailbox"));
    };
    let thread = crate::db::cached_query(
        "SELECT message_id, thread_index, direction FROM email_messages \
          WHERE firm_id = $1 AND conversation_id = $2 AND id <> $3 AND triage IS NULL \
            AND (direction = 'inbound' OR status = 'sent') \
          ORDER BY created_at, id",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(conversation_id)
    .bind::<SqlUuid, _>(email_id)
    .load::<ThreadRow>(conn)
    .await?;
    let mut references: Vec<String> = thread.iter().filter_map(|t| t.message_id.clone()).collect();
    // RFC 5322 lets References be trimmed from the middle; keep the first and the newest.
    if references.len() > 20 {
        let newest = references.split_off(references.len() - 19);
        references.truncate(1);
        references.extend(newest);
    }
    let in_reply_to = thread.iter().rev().find(|t| t.direction == "inbound").and_then(|t| t.message_id.clone());
    let thread_index = thread.iter().rev().filter(|t| t.direction == "inbound").find_map(|t| t.thread_index.clone());
    let reply_token = reply_token(conn, firm, conversation_id).await?;
    let quoted = if row.automatic {
        None
    } else {
        crate::db::cached_query(
            "SELECT q.from_name, q.from_address, coalesce(q.sent_at, q.created_at) AS at, q.text_body \
               FROM email_messages q JOIN email_messages e ON e.firm_id = q.firm_id AND e.answers_email_id = q.id \
              WHERE e.firm_id = $1 AND e.id = $3 AND q.conversation_id = $2 \
                AND q.direction = 'inbound' AND q.triage IS NULL",
        )
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(conversation_id)
        .bind::<SqlUuid, _>(email_id)
        .get_result::<QuotedRow>(conn)
        .await
        .optional()?
    };
    Ok(Outgoing {
        email_id: row.id,
        mailbox_id,
        conversation_id,
        chat_message_id,
        status: row.status,
        from_address,
        from_name: row.mailbox_name.unwrap_or_default(),
        to: row.to_addresses,
        cc: row.cc_addresses,
        subject: row.subject,
        body: row.text_body,
        automatic: row.automatic,
        references,
        in_reply_to,
        thread_index,
        reply_token,
        quoted_history: quoted
            .map(|q| quoted_history(q.from_name.as_deref(), q.from_address.as_deref(), q.at, &q.text_body)),
    })
}

/// Records the outcome of a send attempt; returns the conversation and chat message to
/// tell sockets about. `message_id` is set once the email went out.
pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email_id: Uuid,
    status: &str,
    error: Option<&str>,
    message_id: Option<&str>,
    thread_index: Option<&str>,
) -> Result<Option<(Uuid, Message)>, DomainError> {
    let error: Option<String> = error.map(|e| e.chars().take(500).collect());
    let updated = diesel::update(email_messages::table)
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::id.eq(email_id))
        .set((
            email_messages::status.eq(status),
            email_messages::error_message.eq(error),
            email_messages::attempts.eq(email_messages::attempts + 1),
            email_messages::message_id.eq(message_id),
            email_messages::dedupe_key.eq(message_id.map_or(format!("out:{email_id}"), |m| format!("mid:{m}"))),
            email_messages::thread_index.eq(thread_index),
            email_messages::updated_at.eq(Utc::now()),
        ))
        .returning(email_messages::chat_message_id)
        .get_result::<Option<Uuid>>(conn)
        .await
        .optional()?
        .flatten();
    let Some(chat) = updated else { return Ok(None) };
    let message = conversations::message_by_id(conn, firm, chat).await?;
    Ok(message.map(|m| (m.conversation_id, m)))
}

/// A stored email as the API shows it.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = email_messages)]
pub struct Email {
    pub id: Uuid,
    /// `inbound` or `outbound`.
    #[schema(value_type = super::value_sets::EmailDirection)]
    pub direction: String,
    pub mailbox_id: Option<Uuid>,
    pub folder: Option<String>,
    pub message_id: Option<String>,
    pub subject: String,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub to_addresses: Vec<String>,
    pub cc_addresses: Vec<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub size_bytes: i64,
    pub text_body: String,
    /// Sanitised HTML; inline images point at the part URLs.
    pub html_body: Option<String>,
    /// `automatic`, `bounce`, `loop` or `ignored` when the message was kept out of the
    /// conversations; null otherwise.
    #[schema(value_type = Option<super::value_sets::TriageKind>)]
    pub triage: Option<String>,
    pub triage_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub bounced: Option<serde_json::Value>,
    pub conversation_id: Option<Uuid>,
    pub chat_message_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    /// `received`, `queued`, `sent`, `failed` (retried) or `failed_permanently`.
    #[schema(value_type = super::value_sets::EmailStatus)]
    pub status: String,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = crate::db::schema::email_parts)]
pub struct EmailPart {
    pub position: i32,
    pub filename: Option<String>,
    pub content_type: String,
    /// `attachment` or `inline`.
    pub disposition: String,
    pub content_id: Option<String>,
    pub size_bytes: i64,
    /// Null when the part was over the size limit: its content was not kept.
    pub sha256: Option<String>,
    pub oversize: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmailWithParts {
    #[serde(flatten)]
    pub email: Email,
    pub parts: Vec<EmailPart>,
}

pub async fn find_email(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<EmailWithParts, DomainError> {
    use crate::db::schema::email_parts;
    let email = email_messages::table
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::id.eq(id))
        .select(Email::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("email"))?;
    let parts = email_parts::table
        .filter(email_parts::firm_id.eq(firm.into_uuid()))
        .filter(email_parts::email_id.eq(id))
        .order(email_parts::position)
        .select(EmailPart::as_select())
        .load(conn)
        .await?;
    Ok(EmailWithParts { email, parts })
}

/// A part's metadata and content (None when it was over the limit).
pub async fn part_content(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    email: Uuid,
    position: i32,
) -> Result<(EmailPart, Option<Vec<u8>>), DomainError> {
    use crate::db::schema::{email_blobs, email_parts};
    let part = email_parts::table
        .filter(email_parts::firm_id.eq(firm.into_uuid()))
        .filter(email_parts::email_id.eq(email))
        .filter(email_parts::position.eq(position))
        .select(EmailPart::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("part"))?;
    let content = match &part.sha256 {
        Some(sha) => Some(
            email_blobs::table
                .filter(email_blobs::firm_id.eq(firm.into_uuid()))
                .filter(email_blobs::sha256.eq(sha))
                .select(email_blobs::content)
                .first::<Vec<u8>>(conn)
                .await?,
        ),
        None => None,
    };
    Ok((part, content))
}

/// Emails of a conversation, oldest first.
pub async fn list_for_conversation(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    conversation: Uuid,
) -> Result<Vec<Email>, DomainError> {
    use crate::db::schema::conversations;
    let exists: i64 = conversations::table
        .filter(conversations::firm_id.eq(firm.into_uuid()))
        .filter(conversations::id.eq(conversation))
        .count()
        .get_result(conn)
        .await?;
    if exists == 0 {
        return Err(DomainError::NotFound("conversation"));
    }
    Ok(email_messages::table
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::conversation_id.eq(conversation))
        .order((email_messages::created_at, email_messages::id))
        .select(Email::as_select())
        .limit(1000)
        .load(conn)
        .await?)
}

/// Triaged emails, newest first, optionally of one kind.
pub async fn list_triaged(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<Email>, DomainError> {
    let mut query = email_messages::table
        .filter(email_messages::firm_id.eq(firm.into_uuid()))
        .filter(email_messages::triage.is_not_null())
        .into_boxed();
    if let Some(kind) = kind {
        query = query.filter(email_messages::triage.eq(kind.to_owned()));
    }
    Ok(query
        .order((email_messages::created_at.desc(), email_messages::id.desc()))
        .limit(limit)
        .select(Email::as_select())
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_history_names_the_sender_and_quotes_each_line() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:05:00Z").unwrap().with_timezone(&Utc);
        let history = quoted_history(Some("Ann"), Some("ann@client.test"), at, "Please send it.\n\n> earlier\n");
        assert_eq!(
            history,
            "On Tue, 1 Dec 2026 at 10:05 UTC, Ann <ann@client.test> wrote:\n> Please send it.\n>\n>> earlier\n"
        );
        assert!(quoted_history(None, None, at, "x").starts_with("On Tue, 1 Dec 2026 at 10:05 UTC, the sender wrote:"));
        let long = "line\n".repeat(QUOTED_LINES + 5);
        let cut = quoted_history(None, Some("a@b.test"), at, &long);
        assert_eq!(cut.lines().count(), QUOTED_LINES + 2, "attribution, the kept lines and the mark");
        assert!(cut.ends_with("> [...]\n"));
    }

    #[test]
    fn reply_addresses_carry_the_token_within_the_local_part_limit() {
        let address = reply_address("abcdefgh2345", "support@firm.example").unwrap();
        assert_eq!(address, "support+cpabcdefgh2345@firm.example");
        assert_eq!(token_of_address(&address), Some("abcdefgh2345"));
        assert_eq!(token_of_address("support@firm.example"), None);
        assert_eq!(token_of_address("support+cpABCDEFGH2345@firm.example"), None);
        assert_eq!(token_of_address("support+cpabc@firm.example"), None);
        assert_eq!(reply_address("abcdefgh2345", &format!("{}@firm.example", "x".repeat(50))), None);
    }

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(split_name(Some("Ann Marie Lee"), "a@b"), ("Ann Marie".into(), "Lee".into()));
        assert_eq!(split_name(Some("Cher"), "a@b"), ("Cher".into(), String::new()));
        assert_eq!(split_name(None, "a@b.test"), ("a@b.test".into(), String::new()));
    }
}
