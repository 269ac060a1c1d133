//! Outbound webhooks (tenant tables): the endpoints a firm registers, the events it wants,
//! and one delivery per event and endpoint. Emitting an event enqueues its deliveries in
//! the caller's transaction; the job runner sends them (see `outbound::webhooks`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use rand::RngCore;
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use super::pagination::{Direction, Page, PageSpec, past_time_key};
use super::{DomainError, FieldErrors, FirmId, jobs};
use crate::db::schema::{webhook_deliveries, webhook_endpoints};
use crate::secret_box::SecretBox;

/// The job kind that sends one delivery.
pub const DELIVER_JOB: &str = "webhook.deliver";

/// The events a firm may subscribe to: the one list emitters, subscriptions, the README
/// and the OpenAPI document share. A subscription names some of them or `*` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// A test delivery sent from the endpoint's ping action.
    #[serde(rename = "ping")]
    Ping,
    /// A login joined the firm (an invitation accepted).
    #[serde(rename = "member.added")]
    MemberAdded,
    /// A member's role changed.
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged,
    /// A member was deactivated.
    #[serde(rename = "member.deactivated")]
    MemberDeactivated,
    /// A deactivated member was reactivated.
    #[serde(rename = "member.reactivated")]
    MemberReactivated,
    /// A conversation was opened by a member.
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    /// A message was stored in any conversation, whatever its channel.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A client was created (directly or by converting a lead).
    #[serde(rename = "client.created")]
    ClientCreated,
    /// A draft invoice was created.
    #[serde(rename = "invoice.created")]
    InvoiceCreated,
    /// A draft invoice was edited.
    #[serde(rename = "invoice.updated")]
    InvoiceUpdated,
    /// An invoice was sent and got its number.
    #[serde(rename = "invoice.sent")]
    InvoiceSent,
    /// An invoice was voided.
    #[serde(rename = "invoice.voided")]
    InvoiceVoided,
    /// A payment was recorded against an invoice.
    #[serde(rename = "payment.received")]
    PaymentReceived,
    /// A refund (a negative payment) was recorded.
    #[serde(rename = "payment.refunded")]
    PaymentRefunded,
    /// A card payment arrived from Stripe that could not be applied (the invoice paid or void).
    #[serde(rename = "payment.unapplied")]
    PaymentUnapplied,
    /// A credit note was issued against an invoice.
    #[serde(rename = "credit_note.issued")]
    CreditNoteIssued,
    /// A ticket's SLA clock reached its warning point.
    #[serde(rename = "sla.warning")]
    SlaWarning,
    /// A ticket's SLA clock ran out.
    #[serde(rename = "sla.breached")]
    SlaBreached,
    /// An invitee booked a slot.
    #[serde(rename = "booking.created")]
    BookingCreated,
    /// A member confirmed a booking.
    #[serde(rename = "booking.confirmed")]
    BookingConfirmed,
    /// An invitee moved a booking.
    #[serde(rename = "booking.rescheduled")]
    BookingRescheduled,
    /// A booking was cancelled (by the invitee or a member).
    #[serde(rename = "booking.cancelled")]
    BookingCancelled,
}

impl EventType {
    pub const ALL: [EventType; 22] = [
        EventType::Ping,
        EventType::MemberAdded,
        EventType::MemberRoleChanged,
        EventType::MemberDeactivated,
        EventType::MemberReactivated,
        EventType::ConversationCreated,
        EventType::MessageCreated,
        EventType::ClientCreated,
        EventType::InvoiceCreated,
        EventType::InvoiceUpdated,
        EventType::InvoiceSent,
        EventType::InvoiceVoided,
        EventType::PaymentReceived,
        EventType::PaymentRefunded,
        EventType::PaymentUnapplied,
        EventType::CreditNoteIssued,
        EventType::SlaWarning,
        EventType::SlaBreached,
        EventType::BookingCreated,
        EventType::BookingConfirmed,
        EventType::BookingRescheduled,
        EventType::BookingCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Ping => "ping",
            EventType::MemberAdded => "member.added",
            EventType::MemberRoleChanged => "member.role_changed",
            EventType::MemberDeactivated => "member.deactivated",
            EventType::MemberReactivated => "member.reactivated",
            EventType::ConversationCreated => "conversation.created",
            EventType::MessageCreated => "message.created",
            EventType::ClientCreated => "client.created",
            EventType::InvoiceCreated => "invoice.created",
            EventType::InvoiceUpdated => "invoice.updated",
            EventType::InvoiceSent => "invoice.sent",
            EventType::InvoiceVoided => "invoice.voided",
            EventType::PaymentReceived => "payment.received",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::PaymentUnapplied => "payment.unapplied",
            EventType::CreditNoteIssued => "credit_note.issued",
            EventType::SlaWarning => "sla.warning",
            EventType::SlaBreached => "sla.breached",
            EventType::BookingCreated => "booking.created",
            EventType::BookingConfirmed => "booking.confirmed",
            EventType::BookingRescheduled => "booking.rescheduled",
            EventType::BookingCancelled => "booking.cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|event| event.as_str() == name)
    }
}

/// One entry of an endpoint's `event_types`: an event's name, or `*` for every event.
/// Stored as text; documented as the closed set it is.
pub struct EventSelector;

impl utoipa::PartialSchema for EventSelector {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = EventType::ALL.iter().map(|event| event.as_str()).chain(["*"]);
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(names))
            .description(Some("An event type, or `*` for every event."))
            .into()
    }
}

impl utoipa::ToSchema for EventSelector {}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    pub id: Uuid,
    pub url: String,
    pub description: String,
    #[schema(value_type = Vec<EventSelector>)]
    pub event_types: Vec<String>,
    pub active: bool,
    /// Sealed (`SecretBox`, bound to the endpoint); see [`signing_secret`].
    #[serde(skip)]
    #[schema(ignore)]
    pub secret: String,
    /// Consecutive failed attempts; the endpoint is disabled when it reaches the limit.
    pub failure_streak: i32,
    pub disabled_reason: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    /// Sent as `X-CP-Delivery-Id`; the same on every attempt.
    pub id: Uuid,
    pub endpoint_id: Uuid,
    #[schema(value_type = EventType)]
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = super::value_sets::DeliveryState)]
    pub state: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// `whsec_` + 256 random bits.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `X-CP-Signature` value: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver does: recompute the MAC, compare in constant time, refuse stale stamps.
pub fn verify_signature(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return false };
    // abs_diff: a header may carry any i64, and `now - t` would overflow at the extremes.
    if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return false;
    }
    candidates.iter().any(|candidate| {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(candidate).is_ok()
    })
}

/// Checks a URL's shape: http(s), a host, no credentials. Whether its address may be
/// reached is decided when sending (DNS can change), by `outbound::guard`.
pub fn validate_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    Ok(url.to_string())
}

fn validate_event_types(types: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err("name at least one event type, or \"*\"".into());
    }
    let mut cleaned: Vec<String> = Vec::new();
    for t in types {
        if t != "*" && EventType::parse(t).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|event| event.as_str()).collect();
            return Err(format!("unknown event type `{t}`; known: {}", known.join(", ")));
        }
        if !cleaned.contains(t) {
            cleaned.push(t.clone());
        }
    }
    Ok(cleaned)
}

pub struct EndpointInput {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub active: Option<bool>,
}

struct CheckedInput {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
}

fn check(input: &EndpointInput) -> Result<CheckedInput, DomainError> {
    let mut fields = FieldErrors::new();
    let url =
        input.url.as_deref().map(validate_url).transpose().map_err(|p| fields.insert("url".into(), p)).ok().flatten();
    let event_types = input
        .event_types
        .as_deref()
        .map(validate_event_types)
        .transpose()
        .map_err(|p| fields.insert("event_types".into(), p))
        .ok()
        .flatten();
    let description = input.description.as_ref().map(|d| d.trim().to_owned());
    if description.as_ref().is_some_and(|d| d.chars().count() > 500) {
        fields.insert("description".into(), "must be at most 500 characters".into());
    }
    DomainError::check(fields)?;
    Ok(CheckedInput { url, description, event_types })
}

/// Registers an endpoint; returns it with its secret (shown to the firm once).
/// Where an endpoint's signing secret is sealed.
pub fn secret_context(firm: FirmId, endpoint: Uuid) -> String {
    format!("webhook_endpoints:{}:{endpoint}", firm.into_uuid())
}

/// The endpoint's signing secret, opened.
pub fn signing_secret(endpoint: &Endpoint, secrets: &SecretBox) -> Result<SecretString, DomainError> {
    Ok(secrets.open_stored(&endpoint.secret, &secret_context(FirmId(endpoint.firm_id), endpoint.id))?)
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: &EndpointInput,
    secrets: &SecretBox,
) -> Result<(Endpoint, String), DomainError> {
    let checked = check(input)?;
    let mut fields = FieldErrors::new();
    if checked.url.is_none() {
        fields.insert("url".into(), "is required".into());
    }
    if checked.event_types.is_none() {
        fields.insert("event_types".into(), "is required".into());
    }
    DomainError::check(fields)?;
    let (id, secret) = (Uuid::now_v7(), new_secret());
    let sealed = secrets.seal(&secret, &secret_context(firm, id))?;
    let endpoint = diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::firm_id.eq(firm.into_uuid()),
            webhook_endpoints::id.eq(id),
            webhook_endpoints::url.eq(checked.url.unwrap_or_default()),
            webhook_endpoints::description.eq(checked.description.unwrap_or_default()),
            webhook_endpoints::event_types.eq(checked.event_types.unwrap_or_default()),
            webhook_endpoints::active.eq(input.active.unwrap_or(true)),
            webhook_endpoints::secret.eq(&sealed),
        ))
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await?;
    Ok((endpoint, secret))
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Endpoint, DomainError> {
    webhook_endpoints::table
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::deleted_at.is_null())
        .select(Endpoint::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("webhook endpoint"))
}

pub async fn list(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<Endpoint>, DomainError> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::deleted_at.is_null())
        .order((webhook_endpoints::created_at.asc(), webhook_endpoints::id.asc()))
        .select(Endpoint::as_select())
        .load(conn)
        .await?)
}

/// Changes an endpoint; turning it back on clears its failure streak.
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: &EndpointInput,
) -> Result<Endpoint, DomainError> {
    let checked = check(input)?;
    let current = find(conn, firm, id).await?;
    let reactivated = input.active == Some(true) && !current.active;
    Ok(diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::id.eq(id))
        .set((
            checked.url.map(|v| webhook_endpoints::url.eq(v)),
            checked.description.map(|v| webhook_endpoints::description.eq(v)),
            checked.event_types.map(|v| webhook_endpoints::event_types.eq(v)),
            input.active.map(|v| webhook_endpoints::active.eq(v)),
            reactivated.then(|| webhook_endpoints::failure_streak.eq(0)),
            reactivated.then(|| webhook_endpoints::disabled_reason.eq(None::<String>)),
            webhook_endpoints::updated_at.eq(Utc::now()),
        ))
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await?)
}

/// Removes an endpoint (kept for its delivery history); nothing more is sent to it.
pub async fn delete(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<(), DomainError> {
    find(conn, firm, id).await?;
    diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::id.eq(id))
        .set((webhook_endpoints::deleted_at.eq(Utc::now()), webhook_endpoints::active.eq(false)))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    secrets: &SecretBox,
) -> Result<String, DomainError> {
    find(conn, firm, id).await?;
    let secret = new_secret();
    let sealed = secrets.seal(&secret, &secret_context(firm, id))?;
    replace_secret(conn, firm, id, &sealed).await?;
    Ok(secret)
}

async fn replace_secret(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid, sealed: &str) -> Result<(), DomainError> {
    diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::id.eq(id))
        .set((webhook_endpoints::secret.eq(sealed), webhook_endpoints::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Seals every signing secret under the active key: those stored before secrets were
/// sealed, and those sealed by an older key. All firms, or one. Returns how many changed.
pub async fn seal_all(db: &crate::db::Db, secrets: &SecretBox, only: Option<FirmId>) -> Result<usize, DomainError> {
    let firms = super::firms::holding(db, super::firms::FirmLister::WebhookEndpoints, only).await?;
    let mut sealed = 0;
    for firm in firms {
        sealed += db
            .firm_tx(firm, |conn| {
                async move {
                    let stored: Vec<(Uuid, String)> = webhook_endpoints::table
                        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
                        .select((webhook_endpoints::id, webhook_endpoints::secret))
                        .for_update()
                        .load(conn)
                        .await?;
                    let mut changed = 0;
                    for (id, secret) in stored {
                        if let Some(resealed) = secrets.refreshed_or_skipped(&secret, &secret_context(firm, id)) {
                            replace_secret(conn, firm, id, &resealed).await?;
                            changed += 1;
                        }
                    }
                    Ok::<_, DomainError>(changed)
                }
                .scope_boxed()
            })
            .await?;
    }
    Ok(sealed)
}

/// Creates one delivery for one endpoint, whatever it subscribes to (a ping), and the job
/// that sends it.
pub async fn enqueue_delivery(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    endpoint_id: Uuid,
    event: EventType,
    data: serde_json::Value,
    max_attempts: i32,
) -> Result<Uuid, DomainError> {
    let queued = queue_deliveries(conn, firm, event, data, max_attempts, Utc::now(), Some(endpoint_id)).await?;
    queued.into_iter().next().ok_or(DomainError::NotFound("webhook endpoint"))
}

/// Emits a domain event to every active endpoint of the firm that wants it, inside the
/// caller's transaction. Returns how many deliveries were queued.
pub async fn emit(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    event: EventType,
    data: serde_json::Value,
    max_attempts: i32,
) -> Result<usize, DomainError> {
    emit_at(conn, firm, event, data, max_attempts, Utc::now()).await
}

/// As [`emit`], the deliveries sent no earlier than `send_at`.
pub async fn emit_at(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    event: EventType,
    data: serde_json::Value,
    max_attempts: i32,
    send_at: DateTime<Utc>,
) -> Result<usize, DomainError> {
    Ok(queue_deliveries(conn, firm, event, data, max_attempts, send_at, None).await?.len())
}

#[derive(QueryableByName)]
struct QueuedDelivery {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// `cp_emit_webhook`: the deliveries and their jobs in one statement (the database also
/// calls it for `message.created`, so a delivery has one shape wherever it was queued).
async fn queue_deliveries(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    event: EventType,
    data: serde_json::Value,
    max_attempts: i32,
    send_at: DateTime<Utc>,
    only_endpoint: Option<Uuid>,
) -> Result<Vec<Uuid>, DomainError> {
    use diesel::sql_types::{Integer, Jsonb, Nullable, Text, Timestamptz};
    let queued = crate::db::cached_query("SELECT cp_emit_webhook AS id FROM cp_emit_webhook($1, $2, $3, $4, $5, $6)")
        .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
        .bind::<Text, _>(event.as_str())
        .bind::<Jsonb, _>(data)
        .bind::<Integer, _>(max_attempts)
        .bind::<Timestamptz, _>(send_at)
        .bind::<Nullable<diesel::sql_types::Uuid>, _>(only_endpoint)
        .load::<QueuedDelivery>(conn)
        .await?;
    Ok(queued.into_iter().map(|queued| queued.id).collect())
}

pub async fn find_delivery(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Delivery, DomainError> {
    webhook_deliveries::table
        .filter(webhook_deliveries::firm_id.eq(firm.into_uuid()))
        .filter(webhook_deliveries::id.eq(id))
        .select(Delivery::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("delivery"))
}

/// Sends a delivery again (same delivery id, so a receiver that already has it can tell).
pub async fn redeliver(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    endpoint_id: Uuid,
    delivery_id: Uuid,
    max_attempts: i32,
) -> Result<Delivery, DomainError> {
    find(conn, firm, endpoint_id).await?;
    let delivery = find_delivery(conn, firm, delivery_id).await?;
    if delivery.endpoint_id != endpoint_id {
        return Err(DomainError::NotFound("delivery"));
    }
    diesel::update(webhook_deliveries::table)
        .filter(webhook_deliveries::firm_id.eq(firm.into_uuid()))
        .filter(webhook_deliveries::id.eq(delivery_id))
        .set(webhook_deliveries::state.eq("pending"))
        .execute(conn)
        .await?;
    jobs::enqueue(conn, firm, DELIVER_JOB, serde_json::json!({ "delivery_id": delivery_id }), max_attempts).await?;
    find_delivery(conn, firm, delivery_id).await
}

/// Sort key of an endpoint's delivery log (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeliveryKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    endpoint_id: Uuid,
    spec: &PageSpec<DeliveryKey>,
) -> Result<Page<Delivery, DeliveryKey>, DomainError> {
    find(conn, firm, endpoint_id).await?;
    let keyset = |op: &'static str, key: DeliveryKey| past_time_key("created_at, id", op, key.at, key.id);
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::firm_id.eq(firm.into_uuid()))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
        .select(Delivery::as_select())
        .into_boxed();
    query = match spec.position {
        Some((Direction::Forward, key)) => {
            query.filter(keyset("<", key)).order((webhook_deliveries::created_at.desc(), webhook_deliveries::id.desc()))
        }
        Some((Direction::Backward, key)) => {
            query.filter(keyset(">", key)).order((webhook_deliveries::created_at.asc(), webhook_deliveries::id.asc()))
        }
        None => query.order((webhook_deliveries::created_at.desc(), webhook_deliveries::id.desc())),
    };
    let rows = query.limit(spec.fetch_limit()).load(conn).await?;
    Ok(Page::from_rows(rows, spec, |d: &Delivery| DeliveryKey { at: d.created_at, id: d.id }))
}

/// One attempt's result, as the sender saw it.
pub struct AttemptResult {
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

impl AttemptResult {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Records an attempt on the delivery and the endpoint's failure streak. Returns true when
/// this failure reached `disable_after` and the endpoint was switched off.
pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    delivery: &Delivery,
    result: &AttemptResult,
    final_failure: bool,
    disable_after: i32,
) -> Result<bool, DomainError> {
    let now = Utc::now();
    let ok = result.succeeded();
    diesel::update(webhook_deliveries::table)
        .filter(webhook_deliveries::firm_id.eq(firm.into_uuid()))
        .filter(webhook_deliveries::id.eq(delivery.id))
        .set((
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::last_status_code.eq(result.status_code.map(i32::from)),
            webhook_deliveries::last_latency_ms.eq(i32::try_from(result.latency_ms).unwrap_or(i32::MAX)),
            webhook_deliveries::last_error.eq(&result.error),
            webhook_deliveries::last_attempt_at.eq(now),
            webhook_deliveries::state.eq(match (ok, final_failure) {
                (true, _) => "succeeded",
                (false, true) => "failed",
                (false, false) => "pending",
            }),
            ok.then(|| webhook_deliveries::delivered_at.eq(now)),
        ))
        .execute(conn)
        .await?;
    if ok {
        diesel::update(webhook_endpoints::table)
            .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
            .filter(webhook_endpoints::id.eq(delivery.endpoint_id))
            .set(webhook_endpoints::failure_streak.eq(0))
            .execute(conn)
            .await?;
        return Ok(false);
    }
    let streak: i32 = diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::id.eq(delivery.endpoint_id))
        .set(webhook_endpoints::failure_streak.eq(webhook_endpoints::failure_streak + 1))
        .returning(webhook_endpoints::failure_streak)
        .get_result(conn)
        .await?;
    if streak < disable_after {
        return Ok(false);
    }
    let disabled = diesel::update(webhook_endpoints::table)
        .filter(webhook_endpoints::firm_id.eq(firm.into_uuid()))
        .filter(webhook_endpoints::id.eq(delivery.endpoint_id))
        .filter(webhook_endpoints::active.eq(true))
        .set((
            webhook_endpoints::active.eq(false),
            webhook_endpoints::disabled_reason
                .eq(Some(format!("disabled after {streak} consecutive failed deliveries"))),
            webhook_endpoints::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(disabled == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_the_secret_only() {
        let body = br#"{"type":"ping"}"#;
        let header = signature("whsec_a", 1_700_000_000, body);
        // Computed independently with the README's Python receiver code.
        assert_eq!(header, "t=1700000000,v1=cb7bbe68dab6ab49fe48abc671eb26338ce27702cf501ef7bebc7d134424c917");
        assert!(verify_signature("whsec_a", &header, body, 1_700_000_010, 300));
        assert!(!verify_signature("whsec_b", &header, body, 1_700_000_010, 300));
        assert!(!verify_signature("whsec_a", &header, b"{}", 1_700_000_010, 300));
        assert!(!verify_signature("whsec_a", &header, body, 1_700_001_000, 300), "stale");
        assert!(!verify_signature("whsec_a", "garbage", body, 1_700_000_010, 300));
    }

    #[test]
    fn urls_and_event_types_are_checked() {
        assert!(validate_url("https://hooks.example.com/cp").is_ok());
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("https://user:pw@example.com").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(validate_event_types(&["member.added".into(), "member.added".into()]).is_ok_and(|t| t.len() == 1));
        assert!(validate_event_types(&["nope".into()]).is_err());
        assert!(validate_event_types(&[]).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::{signature, verify_signature};

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any header text is answered (never a panic), and only a signature made with
            /// the secret over this body verifies.
            #[test]
            fn arbitrary_headers_never_verify(header in ".{0,200}", now in any::<i64>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
                let forged = verify_signature("whsec_a", &header, &body, now, 300);
                prop_assert!(!forged || header == signature("whsec_a", now, &body) || header.contains("v1="));
            }

            /// Header-shaped text with extreme timestamps and odd hex never panics.
            #[test]
            fn header_shaped_input_never_panics(t in any::<i64>(), v1 in "[0-9a-fA-F]{0,80}", extra in "[a-z0-9=,]{0,20}", now in any::<i64>()) {
                let header = format!("t={t},v1={v1},{extra}");
                let _ = verify_signature("whsec_a", &header, b"{}", now, 300);
                let _ = verify_signature("whsec_a", &header, b"{}", now, i64::MIN);
            }

            /// What the hub signs verifies with its secret at any moment within tolerance,
            /// and not with another secret or over another body.
            #[test]
            fn signed_bodies_verify_only_as_signed(t in any::<i64>(), skew in -300_i64..=300, body in proptest::collection::vec(any::<u8>(), 0..256)) {
                let header = signature("whsec_a", t, &body);
                let now = t.saturating_add(skew);
                prop_assert!(verify_signature("whsec_a", &header, &body, now, 300));
                prop_assert!(!verify_signature("whsec_b", &header, &body, now, 300));
                let mut other = body.clone();
                other.push(b'!');
                prop_assert!(!verify_signature("whsec_a", &header, &other, now, 300));
            }
        }
    }
}
