//! Two-way SMS (tenant tables, plus the platform table that routes an inbound message to
//! its firm): a firm's Twilio account and senders, inbound messages filed into the
//! sender's conversation exactly once, outbound messages queued at each sender's pace,
//! statuses that only move forward, and opt-outs by keyword.
//!
//! The wire formats (signatures, Twilio's REST API) live in `ingest::twilio` and
//! `outbound::twilio`; this module is what the hub does with them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Int2, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::audit::{self, ActorType, NewAuditEvent, Outcome};
use super::conversations::{self, Message};
use super::{DomainError, FieldErrors, FirmId, contacts, jobs};
use crate::db::schema::{sms_addresses, sms_messages, sms_numbers, sms_opt_outs, sms_settings};

/// The job that hands one outbound message to Twilio.
pub const SEND_JOB: &str = "sms.send";
/// Attempts at handing a message to Twilio before it is given up (and shown failed).
pub const SEND_ATTEMPTS: i32 = 8;
/// Twilio's limit for one message body.
pub const MAX_SMS_CHARS: usize = 1600;
pub const MAX_NUMBERS: i64 = 50;

/// Where a status stands in a message's life; a status never replaces a higher one.
/// `pending` is the hub's own: queued here, not yet handed to Twilio.
pub fn status_rank(status: &str) -> Option<i16> {
    Some(match status {
        "pending" => 0,
        "accepted" | "scheduled" => 1,
        "queued" => 2,
        "sending" => 3,
        "sent" | "receiving" | "received" => 4,
        "delivered" | "undelivered" | "failed" | "canceled" => 5,
        "read" => 6,
        _ => return None,
    })
}

/// What a whole message body (trimmed, any case) asks for, as carriers and Twilio read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

pub fn keyword(body: &str) -> Option<Keyword> {
    match body.trim().to_ascii_uppercase().as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => Some(Keyword::OptOut),
        "START" | "YES" | "UNSTOP" => Some(Keyword::OptIn),
        "HELP" | "INFO" => Some(Keyword::Help),
        _ => None,
    }
}

/// Characters of the GSM 03.38 default alphabet and its extension table (the latter take
/// two septets).
fn gsm_septets(c: char) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENDED: &str = "\u{c}^{}\\[~]|€";
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// How many SMS segments a body takes: GSM-7 when every character is in the GSM alphabet
/// (160 septets alone, 153 per part when split), otherwise UCS-2 (70 code units, 67 per
/// part).
pub fn segments(body: &str) -> i32 {
    let septets: Option<usize> = body.chars().map(gsm_septets).sum();
    let (units, single, part) = match septets {
        Some(septets) => (septets, 160, 153),
        None => (body.encode_utf16().count(), 70, 67),
    };
    let count = if units <= single { 1 } else { units.div_ceil(part) };
    i32::try_from(count).unwrap_or(i32::MAX)
}

fn is_e164(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or("");
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && number.starts_with('+')
}

fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34 && value.starts_with(prefix) && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sms_settings)]
pub struct StoredSettings {
    pub account_sid: String,
    pub auth_token_sealed: String,
    pub public_base_url: String,
    pub help_text: String,
    pub updated_at: DateTime<Utc>,
}

/// Where an auth token is sealed for: it opens only in this firm's settings row.
pub fn token_context(firm: FirmId) -> String {
    format!("sms_settings:{}", firm.into_uuid())
}

pub async fn settings(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Option<StoredSettings>, DomainError> {
    Ok(sms_settings::table
        .filter(sms_settings::firm_id.eq(firm.into_uuid()))
        .select(StoredSettings::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// New settings; `auth_token_sealed` None keeps the stored token.
#[derive(Debug, Clone)]
pub struct SettingsInput {
    pub account_sid: String,
    pub auth_token_sealed: Option<String>,
    pub public_base_url: String,
    pub help_text: String,
}

pub fn check_settings(
    account_sid: &str,
    auth_token: Option<&str>,
    public_base_url: &str,
    help_text: &str,
) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    if !is_sid(account_sid, "AC") {
        errors.insert("account_sid".into(), "must be a Twilio account SID (AC and 32 hex digits)".into());
    }
    if let Some(token) = auth_token
        && (token.len() < 16 || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        errors.insert("auth_token".into(), "must be 16 to 128 visible ASCII characters".into());
    }
    match url::Url::parse(public_base_url) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.username().is_empty()
                && url.password().is_none() => {}
        _ => {
            errors.insert(
                "public_base_url".into(),
                "must be the http(s) address Twilio reaches this hub at, without credentials or a query".into(),
            );
        }
    }
    if public_base_url.len() > 500 {
        errors.insert("public_base_url".into(), "must be at most 500 characters".into());
    }
    if help_text.chars().count() > MAX_SMS_CHARS {
        errors.insert("help_text".into(), format!("must be at most {MAX_SMS_CHARS} characters"));
    }
    DomainError::check(errors)
}

pub async fn save_settings(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: SettingsInput,
) -> Result<StoredSettings, DomainError> {
    let existing = settings(conn, firm).await?;
    if let Some(existing) = &existing
        && existing.account_sid != input.account_sid
        && !list_numbers(conn, firm).await?.is_empty()
    {
        // The senders were proven against the old account; the new one may not own them.
        return Err(DomainError::Conflict(
            "remove the SMS senders before changing the Twilio account, then add them again".into(),
        ));
    }
    let sealed = match (input.auth_token_sealed, existing) {
        (Some(sealed), _) => sealed,
        (None, Some(existing)) => existing.auth_token_sealed,
        (None, None) => return Err(DomainError::invalid_field("auth_token", "is required the first time")),
    };
    diesel::insert_into(sms_settings::table)
        .values((
            sms_settings::firm_id.eq(firm.into_uuid()),
            sms_settings::account_sid.eq(&input.account_sid),
            sms_settings::auth_token_sealed.eq(&sealed),
            sms_settings::public_base_url.eq(input.public_base_url.trim_end_matches('/')),
            sms_settings::help_text.eq(&input.help_text),
        ))
        .on_conflict(sms_settings::firm_id)
        .do_update()
        .set((
            sms_settings::account_sid.eq(&input.account_sid),
            sms_settings::auth_token_sealed.eq(&sealed),
            sms_settings::public_base_url.eq(input.public_base_url.trim_end_matches('/')),
            sms_settings::help_text.eq(&input.help_text),
            sms_settings::updated_at.eq(Utc::now()),
        ))
        .returning(StoredSettings::as_returning())
        .get_result(conn)
        .await
        .map_err(Into::into)
}

/// Replaces a firm's sealed token (re-sealing under a new key).
pub async fn replace_sealed_token(conn: &mut AsyncPgConnection, firm: FirmId, sealed: &str) -> Result<(), DomainError> {
    diesel::update(sms_settings::table)
        .filter(sms_settings::firm_id.eq(firm.into_uuid()))
        .set(sms_settings::auth_token_sealed.eq(sealed))
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Numbers

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = sms_numbers)]
pub struct SmsNumber {
    pub id: Uuid,
    /// E.164.
    pub phone_number: Option<String>,
    /// A Messaging Service (MG...) this sender sends through.
    pub messaging_service_sid: Option<String>,
    pub label: Option<String>,
    /// Messages per second this sender sends at most; more wait their turn.
    pub per_second: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct NumberInput {
    pub phone_number: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub label: Option<String>,
    pub per_second: Option<i32>,
}

/// Checks a sender and normalises its number to E.164.
pub fn check_number(input: NumberInput, phone_region: &str) -> Result<NumberInput, DomainError> {
    let mut errors = FieldErrors::default();
    let phone_number = match input.phone_number.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => match contacts::normalize_phone(raw, phone_region) {
            Ok(number) => Some(number),
            Err(problem) => {
                errors.insert("phone_number".into(), problem);
                None
            }
        },
        None => None,
    };
    let service = input.messaging_service_sid.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(sid) = &service
        && !is_sid(sid, "MG")
    {
        errors.insert("messaging_service_sid".into(), "must be a Messaging Service SID (MG and 32 hex digits)".into());
    }
    if input.phone_number.is_none() && service.is_none() {
        errors.insert("phone_number".into(), "give a phone number, a messaging_service_sid, or both".into());
    }
    if input.label.as_ref().is_some_and(|l| l.chars().count() > 100) {
        errors.insert("label".into(), "must be at most 100 characters".into());
    }
    if input.per_second.is_some_and(|p| !(1..=1000).contains(&p)) {
        errors.insert("per_second".into(), "must be between 1 and 1000".into());
    }
    DomainError::check(errors)?;
    Ok(NumberInput { phone_number, messaging_service_sid: service, label: input.label, per_second: input.per_second })
}

pub async fn list_numbers(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<SmsNumber>, DomainError> {
    Ok(sms_numbers::table
        .filter(sms_numbers::firm_id.eq(firm.into_uuid()))
        .order((sms_numbers::created_at, sms_numbers::id))
        .select(SmsNumber::as_select())
        .load(conn)
        .await?)
}

pub async fn find_number(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<SmsNumber, DomainError> {
    sms_numbers::table
        .filter(sms_numbers::firm_id.eq(firm.into_uuid()))
        .filter(sms_numbers::id.eq(id))
        .select(SmsNumber::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("sms number"))
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Bool)]
    claimed: bool,
}

async fn claim_address(conn: &mut AsyncPgConnection, address: &str, number: Uuid) -> Result<bool, DomainError> {
    Ok(crate::db::cached_query("SELECT cp_sms_claim_address($1, $2) AS claimed")
        .bind::<Text, _>(address)
        .bind::<SqlUuid, _>(number)
        .get_result::<Claimed>(conn)
        .await?
        .claimed)
}

/// Adds a sender, already checked with [`check_number`] and proven to belong to the
/// firm's Twilio account. Its number and service route inbound messages to this firm
/// alone: one taken already (by any firm) is a conflict.
pub async fn add_number(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: NumberInput,
) -> Result<SmsNumber, DomainError> {
    let count: i64 =
        sms_numbers::table.filter(sms_numbers::firm_id.eq(firm.into_uuid())).count().get_result(conn).await?;
    if count >= MAX_NUMBERS {
        return Err(DomainError::Conflict(format!("a firm has at most {MAX_NUMBERS} SMS senders")));
    }
    let id = Uuid::now_v7();
    let number = diesel::insert_into(sms_numbers::table)
        .values((
            sms_numbers::firm_id.eq(firm.into_uuid()),
            sms_numbers::id.eq(id),
            sms_numbers::phone_number.eq(&input.phone_number),
            sms_numbers::messaging_service_sid.eq(&input.messaging_service_sid),
            sms_numbers::label.eq(&input.label),
            sms_numbers::per_second.eq(input.per_second.unwrap_or(1)),
        ))
        .returning(SmsNumber::as_returning())
        .get_result(conn)
        .await?;
    for address in input.phone_number.iter().chain(input.messaging_service_sid.iter()) {
        if !claim_address(conn, address, id).await? {
            return Err(DomainError::Conflict(format!("{address} is already registered as an SMS sender")));
        }
    }
    Ok(number)
}

pub async fn remove_number(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<SmsNumber, DomainError> {
    let number = find_number(conn, firm, id).await?;
    crate::db::cached_query("SELECT cp_sms_release_number($1)").bind::<SqlUuid, _>(id).execute(conn).await?;
    // Conversations that replied from it go on from the firm's first remaining sender; with
    // none left, their threads go (the deletion cascades) and a sender is chosen afresh at
    // the next send.
    crate::db::cached_query(
        "UPDATE sms_threads SET sms_number_id = next.id \
           FROM (SELECT n.id FROM sms_numbers n WHERE n.firm_id = $1 AND n.id <> $2 \
                  ORDER BY n.created_at, n.id LIMIT 1) AS next \
          WHERE sms_threads.firm_id = $1 AND sms_threads.sms_number_id = $2",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await?;
    diesel::delete(sms_numbers::table)
        .filter(sms_numbers::firm_id.eq(firm.into_uuid()))
        .filter(sms_numbers::id.eq(id))
        .execute(conn)
        .await?;
    Ok(number)
}

/// The firm (and sender) an inbound message is for: by the number it was sent to, else by
/// the Messaging Service it came through, so a number in a service's pool that the firm
/// registered only as the service is still found. Reads the platform routing table (ids
/// and addresses only).
pub async fn route(
    conn: &mut AsyncPgConnection,
    to: Option<&str>,
    messaging_service_sid: Option<&str>,
) -> Result<Option<(FirmId, Uuid)>, DomainError> {
    let wanted: Vec<&str> = to.into_iter().chain(messaging_service_sid).collect();
    let found: Vec<(String, Uuid, Uuid)> = sms_addresses::table
        .filter(sms_addresses::address.eq_any(&wanted))
        .select((sms_addresses::address, sms_addresses::routed_firm_id, sms_addresses::sms_number_id))
        .load(conn)
        .await?;
    let by = |address: Option<&str>| found.iter().find(|(a, _, _)| Some(a.as_str()) == address);
    Ok(by(to).or_else(|| by(messaging_service_sid)).map(|(_, firm, number)| (FirmId(*firm), *number)))
}

// ---------------------------------------------------------------------------------------
// Opt-outs

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptChange {
    OptedOut,
    OptedIn,
}

pub async fn is_opted_out(conn: &mut AsyncPgConnection, firm: FirmId, number: &str) -> Result<bool, DomainError> {
    Ok(diesel::select(diesel::dsl::exists(
        sms_opt_outs::table
            .filter(sms_opt_outs::firm_id.eq(firm.into_uuid()))
            .filter(sms_opt_outs::phone_number.eq(number)),
    ))
    .get_result(conn)
    .await?)
}

/// Records an opt-out or opt-in (audited); None when it changed nothing.
async fn change_opt(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    number: &str,
    contact: Uuid,
    word: &str,
    opt_out: bool,
) -> Result<Option<OptChange>, DomainError> {
    let changed = if opt_out {
        diesel::insert_into(sms_opt_outs::table)
            .values((
                sms_opt_outs::firm_id.eq(firm.into_uuid()),
                sms_opt_outs::phone_number.eq(number),
                sms_opt_outs::keyword.eq(word),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?
    } else {
        diesel::delete(sms_opt_outs::table)
            .filter(sms_opt_outs::firm_id.eq(firm.into_uuid()))
            .filter(sms_opt_outs::phone_number.eq(number))
            .execute(conn)
            .await?
    };
    if changed == 0 {
        return Ok(None);
    }
    let action = if opt_out { "sms.opted_out" } else { "sms.opted_in" };
    let event = NewAuditEvent::new(firm, ActorType::System, None, action, Outcome::Success)
        .with_target("contact", contact)
        .with_metadata(json!({ "phone_number": number, "keyword": word }));
    audit::record(conn, &event).await?;
    Ok(Some(if opt_out { OptChange::OptedOut } else { OptChange::OptedIn }))
}

// ---------------------------------------------------------------------------------------
// Inbound

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Media {
    pub url: String,
    pub content_type: Option<String>,
}

/// An inbound message as Twilio posted it, after its signature was checked.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub message_sid: String,
    pub from: String,
    pub to: String,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub segments: Option<i32>,
    pub media: Vec<Media>,
    /// The sender that received it.
    pub number_id: Uuid,
}

impl Inbound {
    pub fn check(&self) -> Result<(), DomainError> {
        let mut errors = FieldErrors::default();
        if !is_sid(&self.message_sid, "SM") && !is_sid(&self.message_sid, "MM") {
            errors.insert("MessageSid".into(), "must be a Twilio message SID".into());
        }
        if !is_e164(&self.from) {
            errors.insert("From".into(), "must be an E.164 number".into());
        }
        if self.body.chars().count() > conversations::MAX_BODY_CHARS {
            errors.insert("Body".into(), "is too long".into());
        }
        if self.body.trim().is_empty() && self.media.is_empty() {
            errors.insert("Body".into(), "an empty message carries no media".into());
        }
        DomainError::check(errors)
    }
}

/// What became of an inbound message.
#[derive(Debug, Clone)]
pub enum Received {
    /// Twilio sent this MessageSid before: nothing new was stored.
    Duplicate,
    Stored(Box<StoredInbound>),
}

#[derive(Debug, Clone)]
pub struct StoredInbound {
    pub message: Message,
    pub contact_id: Uuid,
    pub new_conversation: bool,
    pub opt_change: Option<OptChange>,
    /// The firm's help text, queued as a reply to HELP or INFO.
    pub reply: Option<Message>,
}

#[derive(QueryableByName)]
struct Filed {
    #[diesel(sql_type = Bool)]
    stored: bool,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    message_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    conversation_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    contact_id: Option<Uuid>,
    #[diesel(sql_type = Bool)]
    new_conversation: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Jsonb>)]
    delivery: Option<serde_json::Value>,
}

/// Files an inbound message exactly once (per MessageSid, whatever the concurrency of
/// Twilio's retries): the sender's contact, their open SMS conversation, the message, its
/// Twilio record (all in `cp_sms_receive`, one round trip), then what a keyword asks for.
/// The caller commits before answering Twilio.
pub async fn receive(conn: &mut AsyncPgConnection, firm: FirmId, inbound: Inbound) -> Result<Received, DomainError> {
    inbound.check()?;
    let media = serde_json::to_value(&inbound.media).map_err(|e| DomainError::Internal(e.to_string()))?;
    let filed =
        crate::db::cached_query("SELECT * FROM cp_sms_receive($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
            .bind::<SqlUuid, _>(firm.into_uuid())
            .bind::<Text, _>(&inbound.message_sid)
            .bind::<Text, _>(&inbound.from)
            .bind::<Text, _>(&inbound.to)
            .bind::<Nullable<Text>, _>(&inbound.messaging_service_sid)
            .bind::<SqlUuid, _>(inbound.number_id)
            .bind::<Text, _>(&inbound.body)
            .bind::<Nullable<Integer>, _>(inbound.segments)
            .bind::<diesel::sql_types::Jsonb, _>(media)
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .get_result::<Filed>(conn)
            .await?;
    if !filed.stored {
        return Ok(Received::Duplicate);
    }
    let (Some(id), Some(conversation), Some(seq), Some(contact_id), Some(created_at)) =
        (filed.message_id, filed.conversation_id, filed.seq, filed.contact_id, filed.created_at)
    else {
        return Err(DomainError::Internal("cp_sms_receive stored a message it does not name".into()));
    };
    let message = Message {
        id,
        conversation_id: conversation,
        seq,
        author_user_id: None,
        author_contact_id: Some(contact_id),
        body: inbound.body.clone(),
        client_msg_id: None,
        created_at,
        delivery: filed.delivery,
    };
    // A keyword talks to the hub (opt out, opt in, help), not to the firm's agents.
    if keyword(&inbound.body).is_none() {
        let turn = super::tickets::Turn::Customer(Some(contact_id));
        super::tickets::on_message(conn, firm, conversation, turn, created_at).await?;
    }
    let word = inbound.body.trim().to_ascii_uppercase();
    let mut reply = None;
    let opt_change = match keyword(&inbound.body) {
        Some(Keyword::OptOut) => change_opt(conn, firm, &inbound.from, contact_id, &word, true).await?,
        Some(Keyword::OptIn) => change_opt(conn, firm, &inbound.from, contact_id, &word, false).await?,
        Some(Keyword::Help) => {
            let help = settings(conn, firm).await?.map(|s| s.help_text).unwrap_or_default();
            if !help.trim().is_empty()
                && !is_opted_out(conn, firm, &inbound.from).await?
                && help_reply_due(conn, firm, &inbound.from).await?
            {
                let mut answer = conversations::append_hub_message(conn, firm, conversation, &help).await?;
                answer.delivery = Some(queue_outbound(conn, firm, &answer).await?);
                reply = Some(answer);
            }
            None
        }
        None => None,
    };
    Ok(Received::Stored(Box::new(StoredInbound {
        message,
        contact_id,
        new_conversation: filed.new_conversation,
        opt_change,
        reply,
    })))
}

/// Whether HELP from this number gets an answer now: once a day at most, so nobody can make
/// the firm send (and pay for) messages in a loop by texting HELP.
async fn help_reply_due(conn: &mut AsyncPgConnection, firm: FirmId, number: &str) -> Result<bool, DomainError> {
    let answered = crate::db::cached_query(
        "INSERT INTO sms_help_replies (firm_id, phone_number) VALUES ($1, $2) \
         ON CONFLICT (firm_id, phone_number) DO UPDATE SET replied_at = now() \
          WHERE sms_help_replies.replied_at < now() - interval '1 day'",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(number)
    .execute(conn)
    .await?;
    Ok(answered == 1)
}

// ---------------------------------------------------------------------------------------
// Outbound

#[derive(QueryableByName)]
struct Endpoints {
    #[diesel(sql_type = Text)]
    remote_number: String,
    #[diesel(sql_type = SqlUuid)]
    sms_number_id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    phone_number: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    messaging_service_sid: Option<String>,
}

/// The conversation's two ends, settling them on its first send: the first contact
/// taking part with a number, and the firm's first sender.
async fn endpoints(conn: &mut AsyncPgConnection, firm: FirmId, conversation: Uuid) -> Result<Endpoints, DomainError> {
    let query = "SELECT t.remote_number, t.sms_number_id, n.phone_number, n.messaging_service_sid \
                   FROM sms_threads t JOIN sms_numbers n ON n.firm_id = t.firm_id AND n.id = t.sms_number_id \
                  WHERE t.firm_id = $1 AND t.conversation_id = $2";
    let found = diesel::sql_query(query)
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(conversation)
        .get_result::<Endpoints>(conn)
        .await
        .optional()?;
    if let Some(found) = found {
        return Ok(found);
    }
    let settled = crate::db::cached_query(
        "INSERT INTO sms_threads (firm_id, conversation_id, remote_number, sms_number_id) \
         SELECT $1, $2, \
                (SELECT ph.phone FROM conversation_participants p \
                   JOIN contact_phones ph ON ph.firm_id = p.firm_id AND ph.contact_id = p.contact_id \
                  WHERE p.firm_id = $1 AND p.conversation_id = $2 \
                  ORDER BY p.added_at, p.id, ph.position LIMIT 1), \
                (SELECT n.id FROM sms_numbers n WHERE n.firm_id = $1 ORDER BY n.created_at, n.id LIMIT 1) \
         ON CONFLICT (firm_id, conversation_id) DO UPDATE SET sms_number_id = excluded.sms_number_id",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(conversation)
    .execute(conn)
    .await;
    match settled {
        Ok(_) => {}
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::NotNullViolation, info)) => {
            return Err(if info.column_name() == Some("remote_number") {
                DomainError::invalid_field("conversation", "no contact in this SMS conversation has a phone number")
            } else {
                DomainError::Conflict("the firm has no SMS sender; add one under /api/v1/sms/numbers".into())
            });
        }
        Err(err) => return Err(err.into()),
    }
    Ok(diesel::sql_query(query)
        .bind::<SqlUuid, _>(firm.into_uuid())
        .bind::<SqlUuid, _>(conversation)
        .get_result::<Endpoints>(conn)
        .await?)
}

#[derive(QueryableByName)]
struct Slot {
    #[diesel(sql_type = Timestamptz)]
    slot: DateTime<Utc>,
}

/// The moment the sender's next message may go: senders send at their own pace, so a
/// burst queues (it is never dropped) and Twilio's per-number limits are kept.
async fn reserve_slot(conn: &mut AsyncPgConnection, firm: FirmId, number: Uuid) -> Result<DateTime<Utc>, DomainError> {
    Ok(crate::db::cached_query(
        "UPDATE sms_numbers \
            SET next_slot_at = GREATEST(next_slot_at, now()) + make_interval(secs => 1.0 / per_second) \
          WHERE firm_id = $1 AND id = $2 \
         RETURNING next_slot_at - make_interval(secs => 1.0 / per_second) AS slot",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(number)
    .get_result::<Slot>(conn)
    .await?
    .slot)
}

/// Queues a stored message of an SMS conversation for Twilio, in the caller's
/// transaction: refused (and so not stored) when SMS is not set up or the recipient opted
/// out. Returns the message's delivery as the API shows it.
pub async fn queue_outbound(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    message: &Message,
) -> Result<serde_json::Value, DomainError> {
    if message.body.chars().count() > MAX_SMS_CHARS {
        return Err(DomainError::invalid_field("body", format!("an SMS is at most {MAX_SMS_CHARS} characters")));
    }
    if settings(conn, firm).await?.is_none() {
        return Err(DomainError::Conflict("SMS is not set up for this firm (PUT /api/v1/sms/settings)".into()));
    }
    let ends = endpoints(conn, firm, message.conversation_id).await?;
    if is_opted_out(conn, firm, &ends.remote_number).await? {
        return Err(DomainError::Conflict(format!(
            "{} has opted out of SMS from this firm (they replied STOP); nothing is sent until they text START",
            ends.remote_number
        )));
    }
    let run_at = reserve_slot(conn, firm, ends.sms_number_id).await?;
    diesel::insert_into(sms_messages::table)
        .values((
            sms_messages::firm_id.eq(firm.into_uuid()),
            sms_messages::message_id.eq(message.id),
            sms_messages::conversation_id.eq(message.conversation_id),
            sms_messages::direction.eq("outbound"),
            sms_messages::from_number.eq(&ends.phone_number),
            sms_messages::to_number.eq(&ends.remote_number),
            sms_messages::sms_number_id.eq(ends.sms_number_id),
            sms_messages::messaging_service_sid.eq(&ends.messaging_service_sid),
            sms_messages::status.eq("pending"),
            sms_messages::status_rank.eq(0),
        ))
        .execute(conn)
        .await?;
    jobs::enqueue_at(conn, firm, SEND_JOB, json!({ "message_id": message.id }), SEND_ATTEMPTS, run_at).await?;
    conversations::delivery_of(conn, firm, message.id)
        .await?
        .ok_or(DomainError::Internal("delivery just stored is missing".into()))
}

/// What a send job needs, read in the firm's transaction.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub body: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub status_rank: i16,
    pub opted_out: bool,
    pub settings: Option<StoredSettings>,
    /// When the message was stored: a send whose outcome was unknown is looked for at
    /// Twilio from then on.
    pub created_at: DateTime<Utc>,
    /// An earlier message of the same conversation has not gone to Twilio yet: this one
    /// waits, so a conversation's messages leave in the order they were written.
    pub waiting_behind: bool,
}

#[derive(QueryableByName)]
struct OutgoingRow {
    #[diesel(sql_type = SqlUuid)]
    conversation_id: Uuid,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Text)]
    to_number: String,
    #[diesel(sql_type = Nullable<Text>)]
    from_number: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    messaging_service_sid: Option<String>,
    #[diesel(sql_type = Int2)]
    status_rank: i16,
    #[diesel(sql_type = Bool)]
    opted_out: bool,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    waiting_behind: bool,
}

pub async fn outgoing(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    message: Uuid,
) -> Result<Option<Outgoing>, DomainError> {
    let row = crate::db::cached_query(
        "SELECT s.conversation_id, m.body, s.to_number, s.from_number, s.messaging_service_sid, s.status_rank, \
                EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.firm_id = s.firm_id AND o.phone_number = s.to_number) \
                  AS opted_out, m.created_at, \
                EXISTS (SELECT 1 FROM sms_messages e \
                         WHERE e.firm_id = s.firm_id AND e.conversation_id = s.conversation_id \
                           AND e.direction = 'outbound' AND e.status_rank = 0 \
                           AND (e.created_at, e.message_id) < (s.created_at, s.message_id)) AS waiting_behind \
           FROM sms_messages s JOIN messages m ON m.firm_id = s.firm_id AND m.id = s.message_id \
          WHERE s.firm_id = $1 AND s.message_id = $2 AND s.direction = 'outbound' \
            FOR UPDATE OF s",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(message)
    .get_result::<OutgoingRow>(conn)
    .await
    .optional()?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Outgoing {
        message_id: message,
        conversation_id: row.conversation_id,
        body: row.body,
        to: row.to_number,
        from: row.from_number,
        messaging_service_sid: row.messaging_service_sid,
        status_rank: row.status_rank,
        opted_out: row.opted_out,
        settings: settings(conn, firm).await?,
        created_at: row.created_at,
        waiting_behind: row.waiting_behind,
    }))
}

/// A status change worth telling the conversation about.
#[derive(Debug, Clone, Serialize)]
pub struct StatusChange {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub status: String,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub segments: Option<i32>,
}

#[derive(QueryableByName)]
struct ChangedRow {
    #[diesel(sql_type = SqlUuid)]
    message_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    conversation_id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Integer>)]
    error_code: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    error_message: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    segments: Option<i32>,
}

impl From<ChangedRow> for StatusChange {
    fn from(r: ChangedRow) -> Self {
        StatusChange {
            message_id: r.message_id,
            conversation_id: r.conversation_id,
            status: r.status,
            error_code: r.error_code,
            error_message: r.error_message,
            segments: r.segments,
        }
    }
}

/// Serialises the send that records a sid with the callbacks about it, so a callback that
/// arrives while the send is committing is either applied by the callback (the sid is
/// there) or found by the send (the callback row is there), never missed by both. The same
/// key `cp_sms_receive` takes for an inbound sid.
async fn lock_sid(conn: &mut AsyncPgConnection, firm: FirmId, sid: &str) -> Result<(), DomainError> {
    crate::db::cached_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(format!("sms:{}:{sid}", firm.into_uuid()))
        .execute(conn)
        .await?;
    Ok(())
}

const RETURNING_CHANGE: &str = "RETURNING sms_messages.message_id, sms_messages.conversation_id, sms_messages.status, \
     sms_messages.error_code, sms_messages.error_message, sms_messages.segments";

/// Twilio accepted the message: its sid and first status are recorded, then any status
/// callbacks that raced ahead of this answer are applied (forward only).
pub async fn record_accepted(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    message: Uuid,
    sid: &str,
    status: &str,
    segments: Option<i32>,
) -> Result<Option<StatusChange>, DomainError> {
    let rank = status_rank(status).unwrap_or(1);
    lock_sid(conn, firm, sid).await?;
    let changed = diesel::sql_query(format!(
        "WITH early AS ( \
             SELECT status AS early_status, status_rank AS early_rank, error_code AS early_error \
               FROM sms_status_callbacks \
              WHERE firm_id = $1 AND twilio_sid = $3 ORDER BY status_rank DESC, received_at LIMIT 1 \
         ) \
         UPDATE sms_messages SET \
                twilio_sid = $3, \
                segments = COALESCE($6, sms_messages.segments), \
                status = CASE WHEN early.early_rank > $5 THEN early.early_status ELSE $4 END, \
                status_rank = GREATEST($5, COALESCE(early.early_rank, 0)), \
                error_code = CASE WHEN early.early_rank > $5 THEN early.early_error ELSE sms_messages.error_code END, \
                updated_at = now() \
           FROM (SELECT 1) AS one LEFT JOIN early ON true \
          WHERE sms_messages.firm_id = $1 AND sms_messages.message_id = $2 \
            AND sms_messages.status_rank < GREATEST($5, COALESCE(early.early_rank, 0)) \
         {RETURNING_CHANGE}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(message)
    .bind::<Text, _>(sid)
    .bind::<Text, _>(status)
    .bind::<Int2, _>(rank)
    .bind::<Nullable<Integer>, _>(segments)
    .get_result::<ChangedRow>(conn)
    .await
    .optional()?;
    Ok(changed.map(Into::into))
}

/// The message will not go out: Twilio refused it (code and reason as Twilio gave them) or
/// the hub gave up. Final; shown on the message.
pub async fn record_failed(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    message: Uuid,
    error_code: Option<i32>,
    reason: &str,
) -> Result<Option<StatusChange>, DomainError> {
    let reason: String = reason.chars().take(500).collect();
    let changed = diesel::sql_query(format!(
        "UPDATE sms_messages SET status = 'failed', status_rank = 5, error_code = $3, error_message = $4, \
                updated_at = now() \
          WHERE firm_id = $1 AND message_id = $2 AND status_rank < 5 \
         {RETURNING_CHANGE}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(message)
    .bind::<Nullable<Integer>, _>(error_code)
    .bind::<Text, _>(reason)
    .get_result::<ChangedRow>(conn)
    .await
    .optional()?;
    Ok(changed.map(Into::into))
}

/// What Twilio's common delivery error codes mean (callbacks carry the code alone).
pub fn error_description(code: i32) -> &'static str {
    match code {
        21211 => "the 'To' number is not a valid phone number",
        21408 => "sending to this region is not enabled on the Twilio account",
        21610 => "the recipient has unsubscribed (replied STOP) at the carrier",
        21612 => "Twilio cannot route to this number from this sender",
        21614 => "the 'To' number is not a mobile number",
        30001 => "the message queue overflowed at Twilio",
        30002 => "the Twilio account is suspended",
        30003 => "the handset is unreachable",
        30004 => "the message was blocked",
        30005 => "the number is unknown or no longer in service",
        30006 => "the number is a landline or its carrier is unreachable",
        30007 => "the carrier filtered the message",
        30008 => "unknown delivery error",
        _ => "see Twilio's error dictionary",
    }
}

/// A status callback: kept as received, and applied when it moves the message forward.
/// None when it changed nothing (a late `sent` after `delivered`, a repeat, or a sid the
/// hub has not recorded yet, which its send then applies).
pub async fn apply_status(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    sid: &str,
    status: &str,
    error_code: Option<i32>,
) -> Result<Option<StatusChange>, DomainError> {
    let Some(rank) = status_rank(status) else {
        return Err(DomainError::invalid_field("MessageStatus", format!("`{status}` is not a Twilio message status")));
    };
    if !is_sid(sid, "SM") && !is_sid(sid, "MM") {
        return Err(DomainError::invalid_field("MessageSid", "must be a Twilio message SID"));
    }
    lock_sid(conn, firm, sid).await?;
    crate::db::cached_query(
        "INSERT INTO sms_status_callbacks (firm_id, id, twilio_sid, status, status_rank, error_code) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<Text, _>(sid)
    .bind::<Text, _>(status)
    .bind::<Int2, _>(rank)
    .bind::<Nullable<Integer>, _>(error_code)
    .execute(conn)
    .await?;
    let changed = diesel::sql_query(format!(
        "UPDATE sms_messages SET status = $3, status_rank = $4, error_code = COALESCE($5, error_code), \
                error_message = COALESCE($6, error_message), updated_at = now() \
          WHERE firm_id = $1 AND twilio_sid = $2 AND status_rank < $4 \
         {RETURNING_CHANGE}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(sid)
    .bind::<Text, _>(status)
    .bind::<Int2, _>(rank)
    .bind::<Nullable<Integer>, _>(error_code)
    .bind::<Nullable<Text>, _>(error_code.map(error_description))
    .get_result::<ChangedRow>(conn)
    .await
    .optional()?;
    Ok(changed.map(Into::into))
}

/// Re-seals the stored auth tokens that another key than the active one sealed, of one
/// firm or of every firm that has one; returns how many changed.
pub async fn reseal_all(
    db: &crate::db::Db,
    secret_box: &crate::secret_box::SecretBox,
    only: Option<FirmId>,
) -> Result<usize, DomainError> {
    use scoped_futures::ScopedFutureExt;
    use secrecy::ExposeSecret;
    let firms = super::firms::holding(db, super::firms::FirmLister::SmsSettings, only).await?;
    let mut resealed = 0;
    for firm in firms {
        let context = token_context(firm);
        let changed = db
            .firm_tx(firm, |conn| {
                let context = context.clone();
                async move {
                    let Some(stored) = settings(conn, firm).await? else { return Ok(false) };
                    if !secret_box.needs_reseal(&stored.auth_token_sealed) {
                        return Ok(false);
                    }
                    let reseal = |e: crate::secret_box::SecretBoxError| {
                        DomainError::Internal(format!("firm {}: {e}", firm.into_uuid()))
                    };
                    let token = secret_box.open(&stored.auth_token_sealed, &context).map_err(reseal)?;
                    let sealed = secret_box.seal(token.expose_secret(), &context).map_err(reseal)?;
                    replace_sealed_token(conn, firm, &sealed).await?;
                    Ok::<_, DomainError>(true)
                }
                .scope_boxed()
            })
            .await?;
        resealed += usize::from(changed);
    }
    Ok(resealed)
}

/// Which of these Twilio sids the firm has recorded already.
pub async fn known_sids(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    sids: &[String],
) -> Result<Vec<String>, DomainError> {
    Ok(sms_messages::table
        .filter(sms_messages::firm_id.eq(firm.into_uuid()))
        .filter(sms_messages::twilio_sid.eq_any(sids))
        .select(sms_messages::twilio_sid.assume_not_null())
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_keyword_changes_anything() {
        for word in ["STOP", "stop", "  Stop \n", "STOPALL", "unsubscribe", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
        {
            assert_eq!(keyword(word), Some(Keyword::OptOut), "{word}");
        }
        for word in ["START", "yes", "Unstop"] {
            assert_eq!(keyword(word), Some(Keyword::OptIn), "{word}");
        }
        for word in ["HELP", "info"] {
            assert_eq!(keyword(word), Some(Keyword::Help), "{word}");
        }
        for text in ["STOP PLEASE", "please stop", "STOP.", "YES!", "helpful", ""] {
            assert_eq!(keyword(text), None, "{text}");
        }
    }

    #[test]
    fn statuses_only_move_forward() {
        let order = ["pending", "accepted", "queued", "sending", "sent", "delivered", "read"];
        for pair in order.windows(2) {
            assert!(status_rank(pair[0]) < status_rank(pair[1]), "{pair:?}");
        }
        assert_eq!(status_rank("failed"), status_rank("delivered"));
        assert_eq!(status_rank("bogus"), None);
    }

    #[test]
    fn segments_follow_the_encoding() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        // Extension characters count twice.
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        // Anything outside GSM-7 makes the whole message UCS-2.
        assert_eq!(segments(&format!("{}ü", "a".repeat(69))), 1);
        assert_eq!(segments(&format!("{}ł", "a".repeat(69))), 1);
        assert_eq!(segments(&format!("{}ł", "a".repeat(70))), 2);
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&"😀".repeat(36)), 2);
    }

    #[test]
    fn numbers_and_sids_are_checked() {
        assert!(is_e164("+14155550100"));
        for bad in ["14155550100", "+0123", "+1", "+1415555010012345", "+1415abc"] {
            assert!(!is_e164(bad), "{bad}");
        }
        assert!(is_sid(&format!("SM{}", "a".repeat(32)), "SM"));
        assert!(!is_sid(&format!("SM{}", "g".repeat(32)), "SM"));
        assert!(!is_sid(&format!("MG{}", "a".repeat(32)), "SM"));
    }
}
