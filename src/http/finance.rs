//! `/invoices`, their payments and credit notes, the finance reports, numbering settings,
//! and Stripe card payments. Owners, admins and billing members read and write finance.
//! Creations that move money honour `Idempotency-Key`.

use super::body::JsonObject;
use crate::domain::webhooks::EventType;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Actor;
use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::once::Once;
use super::pagination::{PageParams, page_meta};
use super::{AppState, double_option, envelope};
use crate::bus::live;
use crate::db::Connection;
use crate::domain::audit::{self, NewAuditEvent, Outcome};
use crate::domain::idempotency::{self, Replay};
use crate::domain::invoices::{
    self, AgingRow, CreditNote, FinanceSettings, Invoice, InvoiceFilter, InvoiceInput, InvoiceLineInput, InvoiceStatus,
    Payment, PaymentInput, PaymentMethod, SummaryRow,
};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, FirmId, webhooks};
use crate::outbound::stripe::{self, StripeError};

fn actor_id(ctx: &FirmCtx) -> Option<Uuid> {
    match ctx.actor() {
        Actor::Member { user_id, .. } => Some(user_id),
        Actor::BreakGlass { .. } => None,
    }
}

/// Either the first answer to this key, replayed, or a new one.
enum Answer {
    Replayed(Replay),
    Fresh(serde_json::Value),
}

/// What a creation hands back to be recorded with it: its audit event, its webhook event,
/// and the response body.
struct Created {
    event: NewAuditEvent,
    event_type: EventType,
    data: serde_json::Value,
    body: serde_json::Value,
}

/// Runs a creation that moves money once: a repeated `Idempotency-Key` gets the first
/// answer back (a concurrent repeat waits for the first to commit); otherwise `create`
/// runs, and its audit record, webhook event and answer are stored in the same transaction.
async fn create_once(
    ctx: &FirmCtx,
    once: Once,
    mut create: impl AsyncFnMut(&mut Connection, FirmId) -> Result<Created, DomainError>,
) -> Result<HttpResponse, ApiError> {
    let attempts = ctx.job_attempts();
    let Once { key, scope, hash } = once;
    let answer = ctx
        .tx(Permission::FinanceWrite, async |conn, firm| {
            if let Some(key) = &key
                && let Some(replay) = idempotency::replay(conn, firm, &scope, key, &hash).await?
            {
                return Ok(Answer::Replayed(replay));
            }
            let created = create(conn, firm).await?;
            audit::record(conn, &created.event).await?;
            webhooks::emit(conn, firm, created.event_type, created.data, attempts).await?;
            if let Some(key) = &key {
                let first = Replay { status: 201, body: created.body.clone() };
                idempotency::remember(conn, firm, &scope, key, &first).await?;
            }
            Ok(Answer::Fresh(created.body))
        })
        .await?;
    Ok(match answer {
        Answer::Replayed(replay) => {
            HttpResponse::build(StatusCode::from_u16(replay.status).unwrap_or(StatusCode::OK)).json(replay.body)
        }
        Answer::Fresh(body) => HttpResponse::Created().json(body),
    })
}

fn enveloped(data: impl Serialize) -> serde_json::Value {
    serde_json::json!({ "data": data, "meta": {} })
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoiceBody {
    pub client_id: Uuid,
    /// ISO 4217, e.g. USD.
    pub currency: String,
    /// Default today.
    pub issue_date: Option<NaiveDate>,
    /// Default 30 days after the issue date.
    pub due_date: Option<NaiveDate>,
    pub payment_terms: Option<String>,
    pub notes: Option<String>,
    #[serde(default)]
    pub line_items: Vec<InvoiceLineInput>,
}

/// Creates a draft invoice; totals are computed here (see the README's rounding rule).
#[utoipa::path(
    post, path = "/api/v1/invoices", tag = "finance", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result")),
    request_body = NewInvoiceBody,
    responses(
        (status = 201, description = "The draft", body = Invoice),
        (status = 400, description = "Invalid field (details name it)", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another request", body = ErrorBody),
    )
)]
pub async fn create_invoice(
    ctx: FirmCtx,
    req: HttpRequest,
    body: JsonObject<NewInvoiceBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let once = Once::of(&req, "invoice.create".into(), &body)?;
    let input = InvoiceInput {
        client_id: Some(body.client_id),
        currency: Some(body.currency),
        issue_date: body.issue_date,
        due_date: body.due_date,
        payment_terms: Some(body.payment_terms),
        notes: Some(body.notes),
        line_items: Some(body.line_items),
    };
    create_once(&ctx, once, async |conn, firm| {
        let invoice = invoices::create(conn, firm, input.clone()).await?;
        Ok(Created {
            event: ctx.event("invoice.created", Outcome::Success).with_target("invoice", invoice.id),
            event_type: EventType::InvoiceCreated,
            data: serde_json::json!({ "invoice_id": invoice.id, "client_id": invoice.client_id }),
            body: enveloped(&invoice),
        })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    pub client_id: Option<Uuid>,
    pub status: Option<InvoiceStatus>,
    /// Open and past due (true), or not (false).
    pub overdue: Option<bool>,
    pub currency: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InvoiceList {
    pub data: Vec<Invoice>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Lists invoices, newest first.
#[utoipa::path(
    get, path = "/api/v1/invoices", tag = "finance", security(("bearer" = [])),
    params(InvoiceQuery),
    responses(
        (status = 200, description = "A page of invoices", body = InvoiceList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
    )
)]
pub async fn list_invoices(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<InvoiceQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let spec = PageParams { limit: query.limit, cursor: query.cursor.clone() }.spec()?;
    let filter = InvoiceFilter {
        client_id: query.client_id,
        status: query.status,
        overdue: query.overdue,
        currency: query.currency,
    };
    let listed =
        ctx.page(Permission::FinanceRead, async |conn, firm| invoices::list(conn, firm, &filter, &spec).await).await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One invoice.
#[utoipa::path(
    get, path = "/api/v1/invoices/{id}", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice", body = Invoice),
        (status = 404, description = "No such invoice in this firm", body = ErrorBody),
    )
)]
pub async fn get_invoice(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found = ctx.tx(Permission::FinanceRead, async |conn, firm| invoices::find(conn, firm, id).await).await?;
    Ok(envelope::ok(found))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoicePatch {
    pub client_id: Option<Uuid>,
    pub currency: Option<String>,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub payment_terms: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    /// Replaces the lines.
    pub line_items: Option<Vec<InvoiceLineInput>>,
}

/// Changes a draft (only drafts change).
#[utoipa::path(
    patch, path = "/api/v1/invoices/{id}", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    request_body = InvoicePatch,
    responses(
        (status = 200, description = "The draft as changed", body = Invoice),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody),
    )
)]
pub async fn update_invoice(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<InvoicePatch>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = InvoiceInput {
        client_id: body.client_id,
        currency: body.currency,
        issue_date: body.issue_date,
        due_date: body.due_date,
        payment_terms: body.payment_terms,
        notes: body.notes,
        line_items: body.line_items,
    };
    let (id, attempts) = (path.into_inner(), ctx.job_attempts());
    let audit = Audit::new(EventType::InvoiceUpdated.as_str()).target("invoice", id);
    let changed = ctx
        .audited(Permission::FinanceWrite, audit, async |conn, firm| {
            let invoice = invoices::update(conn, firm, id, input.clone()).await?;
            let data = serde_json::json!({ "invoice_id": id, "total_minor": invoice.total_minor });
            webhooks::emit(conn, firm, EventType::InvoiceUpdated, data, attempts).await?;
            Ok(invoice)
        })
        .await?;
    Ok(envelope::ok(changed))
}

/// Runs a lifecycle step with its audit record and webhook event.
async fn lifecycle(ctx: &FirmCtx, id: Uuid, action: EventType) -> Result<Invoice, ApiError> {
    let attempts = ctx.job_attempts();
    let audit = Audit::new(action.as_str())
        .target("invoice", id)
        .metadata_of(|invoice: &Invoice| serde_json::json!({ "number": invoice.number }));
    ctx.audited(Permission::FinanceWrite, audit, async |conn, firm| {
        let invoice = match action {
            EventType::InvoiceSent => invoices::send(conn, firm, id).await?,
            _ => invoices::void(conn, firm, id).await?,
        };
        let data =
            serde_json::json!({ "invoice_id": id, "number": invoice.number, "total_minor": invoice.total_minor });
        webhooks::emit(conn, firm, action, data, attempts).await?;
        Ok(invoice)
    })
    .await
}

/// Sends a draft: it gets its number from the firm's gapless sequence.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/send", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The sent invoice", body = Invoice),
        (status = 400, description = "No lines", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody),
    )
)]
pub async fn send_invoice(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(lifecycle(&ctx, path.into_inner(), EventType::InvoiceSent).await?))
}

/// Voids a draft, or a sent invoice with nothing paid or credited.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/void", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The void invoice", body = Invoice),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Paid or credited, or already void", body = ErrorBody),
    )
)]
pub async fn void_invoice(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(lifecycle(&ctx, path.into_inner(), EventType::InvoiceVoided).await?))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPaymentBody {
    /// Positive: money received (at most the balance). Negative: a refund, with `refund_of`.
    pub amount_minor: i64,
    pub method: PaymentMethod,
    /// Default today.
    pub received_on: Option<NaiveDate>,
    pub reference: Option<String>,
    /// The payment a refund returns money from.
    pub refund_of: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentRecorded {
    pub payment: Payment,
    pub invoice: Invoice,
}

/// Records a payment or a refund against a sent invoice.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/payments", tag = "finance", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Invoice id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result"),
    ),
    request_body = NewPaymentBody,
    responses(
        (status = 201, description = "Recorded, with the invoice's new balance", body = PaymentRecorded),
        (status = 400, description = "Zero, more than the balance, or a refund beyond the payment", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Draft or void invoice, or Idempotency-Key reused", body = ErrorBody),
    )
)]
pub async fn record_payment(
    ctx: FirmCtx,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: JsonObject<NewPaymentBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (path.into_inner(), actor_id(&ctx));
    let body = body.into_inner();
    let once = Once::of(&req, format!("payment.create:{id}"), &body)?;
    let input = PaymentInput {
        amount_minor: body.amount_minor,
        method: body.method,
        received_on: body.received_on,
        reference: body.reference,
        refund_of: body.refund_of,
    };
    let action = if input.amount_minor < 0 { EventType::PaymentRefunded } else { EventType::PaymentReceived };
    create_once(&ctx, once, async |conn, firm| {
        let (payment, invoice) = invoices::record_payment(conn, firm, id, input.clone(), by).await?;
        Ok(Created {
            event: ctx
                .event(action.as_str(), Outcome::Success)
                .with_target("invoice", id)
                .with_metadata(serde_json::json!({ "payment_id": payment.id, "amount_minor": payment.amount_minor })),
            event_type: action,
            data: serde_json::json!({ "invoice_id": id, "payment_id": payment.id,
                                      "amount_minor": payment.amount_minor, "balance_minor": invoice.balance_minor }),
            body: enveloped(PaymentRecorded { payment, invoice }),
        })
    })
    .await
}

/// An invoice's payments and refunds, oldest first.
#[utoipa::path(
    get, path = "/api/v1/invoices/{id}/payments", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "Payments", body = Vec<Payment>),
        (status = 404, description = "No such invoice", body = ErrorBody),
    )
)]
pub async fn list_payments(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found = ctx.tx(Permission::FinanceRead, async |conn, firm| invoices::payments_of(conn, firm, id).await).await?;
    Ok(envelope::ok(found))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreditNoteBody {
    /// At most the invoice's balance.
    pub amount_minor: i64,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreditNoteIssued {
    pub credit_note: CreditNote,
    pub invoice: Invoice,
}

/// Issues a credit note against a sent invoice, numbered from its own sequence.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/credit-notes", tag = "finance", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Invoice id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first result"),
    ),
    request_body = NewCreditNoteBody,
    responses(
        (status = 201, description = "Issued, with the invoice's new balance", body = CreditNoteIssued),
        (status = 400, description = "Not positive, or more than the balance", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Not an open invoice, or Idempotency-Key reused", body = ErrorBody),
    )
)]
pub async fn issue_credit_note(
    ctx: FirmCtx,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: JsonObject<NewCreditNoteBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, by) = (path.into_inner(), actor_id(&ctx));
    let body = body.into_inner();
    let once = Once::of(&req, format!("credit_note.create:{id}"), &body)?;
    create_once(&ctx, once, async |conn, firm| {
        let (note, invoice) = invoices::credit(conn, firm, id, body.amount_minor, &body.reason, by).await?;
        Ok(Created {
            event: ctx
                .event("credit_note.issued", Outcome::Success)
                .with_target("invoice", id)
                .with_metadata(serde_json::json!({ "credit_note": note.number, "amount_minor": note.amount_minor })),
            event_type: EventType::CreditNoteIssued,
            data: serde_json::json!({ "invoice_id": id, "credit_note_id": note.id, "number": note.number,
                                      "amount_minor": note.amount_minor }),
            body: enveloped(CreditNoteIssued { credit_note: note, invoice }),
        })
    })
    .await
}

/// An invoice's credit notes.
#[utoipa::path(
    get, path = "/api/v1/invoices/{id}/credit-notes", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "Credit notes", body = Vec<CreditNote>),
        (status = 404, description = "No such invoice", body = ErrorBody),
    )
)]
pub async fn list_credit_notes(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found =
        ctx.tx(Permission::FinanceRead, async |conn, firm| invoices::credit_notes_of(conn, firm, id).await).await?;
    Ok(envelope::ok(found))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AgingQuery {
    /// Age balances as of this date; default today.
    pub as_of: Option<NaiveDate>,
}

/// Open balances by client and currency: current, 1-30, 31-60, 61-90 and 90+ days past due.
#[utoipa::path(
    get, path = "/api/v1/finance/aging", tag = "finance", security(("bearer" = [])),
    params(AgingQuery),
    responses(
        (status = 200, description = "One row per client and currency", body = Vec<AgingRow>),
        (status = 400, description = "Bad date", body = ErrorBody),
    )
)]
pub async fn aging(ctx: FirmCtx, query: web::Query<AgingQuery>) -> Result<HttpResponse, ApiError> {
    let as_of = query.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let rows = ctx.tx(Permission::FinanceRead, async |conn, firm| invoices::aging(conn, firm, as_of).await).await?;
    Ok(envelope::with_meta(rows, serde_json::json!({ "as_of": as_of })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Invoiced and collected within a period, and outstanding now, by currency.
#[utoipa::path(
    get, path = "/api/v1/finance/summary", tag = "finance", security(("bearer" = [])),
    params(SummaryQuery),
    responses(
        (status = 200, description = "One row per currency", body = Vec<SummaryRow>),
        (status = 400, description = "Missing or bad dates, or from after to", body = ErrorBody),
    )
)]
pub async fn summary(ctx: FirmCtx, query: web::Query<SummaryQuery>) -> Result<HttpResponse, ApiError> {
    let (from, to) = (query.from, query.to);
    if from > to {
        return Err(ApiError::invalid_field("from", "must not be after `to`"));
    }
    let rows =
        ctx.tx(Permission::FinanceRead, async |conn, firm| invoices::summary(conn, firm, from, to).await).await?;
    Ok(envelope::with_meta(rows, serde_json::json!({ "from": from, "to": to })))
}

/// The firm's numbering patterns.
#[utoipa::path(
    get, path = "/api/v1/finance/settings", operation_id = "get_finance_settings", tag = "finance", security(("bearer" = [])),
    responses(
        (status = 200, description = "Numbering patterns", body = FinanceSettings),
    )
)]
pub async fn get_settings(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let found = ctx.tx(Permission::FinanceRead, async |conn, firm| invoices::settings(conn, firm).await).await?;
    Ok(envelope::ok(found))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Placeholders: `{YYYY}`, `{YY}`, `{MM}`, and `{seq}` or `{seq:05}` (required).
    pub invoice_pattern: Option<String>,
    pub credit_note_pattern: Option<String>,
}

/// Changes the numbering patterns (numbers already given keep their text).
#[utoipa::path(
    patch, path = "/api/v1/finance/settings", operation_id = "patch_finance_settings", tag = "finance", security(("bearer" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "Numbering patterns", body = FinanceSettings),
        (status = 400, description = "A pattern without `{seq}` or with an unknown placeholder", body = ErrorBody),
    )
)]
pub async fn update_settings(ctx: FirmCtx, body: JsonObject<SettingsPatch>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let changed = ctx
        .audited(Permission::FinanceWrite, Audit::new("finance.settings_changed"), async |conn, firm| {
            invoices::update_settings(conn, firm, body.invoice_pattern.clone(), body.credit_note_pattern.clone()).await
        })
        .await?;
    Ok(envelope::ok(changed))
}

#[derive(Serialize, ToSchema)]
pub struct CardPayment {
    pub payment_intent_id: String,
    /// For Stripe.js in the browser.
    pub client_secret: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
}

/// Starts a card payment of the invoice's balance through Stripe. The payment is recorded
/// when Stripe's `payment_intent.succeeded` webhook arrives.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/payment-intent", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 201, description = "The intent, for Stripe.js", body = CardPayment),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Nothing to pay", body = ErrorBody),
        (status = 503, description = "Card payments not configured, or Stripe unreachable", body = ErrorBody),
    )
)]
pub async fn create_payment_intent(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (state, firm, id) = (ctx.state().await?, ctx.firm(), path.into_inner());
    let invoice = ctx.tx(Permission::FinanceWrite, async |conn, firm| invoices::find(conn, firm, id).await).await?;
    if !matches!(invoice.status.as_str(), "sent" | "partially_paid") || invoice.balance_minor <= 0 {
        return Err(ApiError::Conflict(format!("a {} invoice has nothing to pay", invoice.status)));
    }
    // No proxy from the environment: every outbound client talks to its host directly.
    let http = reqwest::Client::builder().no_proxy().build().map_err(ApiError::internal)?;
    let metadata = [("firm_id", firm.to_string()), ("invoice_id", id.to_string())];
    // One intent per invoice and balance: a retry after a timeout gets the same intent.
    let key = format!("{firm}:{id}:{}", invoice.balance_minor);
    let intent = stripe::create_payment_intent(
        &state.settings().stripe,
        &http,
        invoice.balance_minor,
        &invoice.currency,
        &metadata,
        &key,
    )
    .await
    .map_err(|err| match err {
        StripeError::NotConfigured => ApiError::unavailable("card payments are not configured"),
        StripeError::Unreachable(detail) => {
            tracing::warn!(%detail, "stripe unreachable");
            ApiError::unavailable("the card processor is unreachable; try again")
        }
        StripeError::Refused { status, message } => {
            tracing::warn!(status, %message, "stripe refused a payment intent");
            ApiError::unavailable("the card processor refused the request")
        }
    })?;
    ctx.tx(Permission::FinanceWrite, async |conn, firm| {
        invoices::remember_intent(conn, firm, id, &intent.id, intent.amount, &invoice.currency).await
    })
    .await?;
    Ok(HttpResponse::Created().json(enveloped(CardPayment {
        payment_intent_id: intent.id,
        client_secret: intent.client_secret,
        amount_minor: intent.amount,
        currency: invoice.currency,
    })))
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: StripeEventData,
}

#[derive(Deserialize)]
struct StripeEventData {
    object: serde_json::Value,
}

/// Stripe's webhook. The signature is verified (`Stripe-Signature`, within
/// `stripe.webhook_tolerance_secs`); each event id is handled once, and a
/// `payment_intent.succeeded` records the card payment on its invoice.
#[utoipa::path(
    post, path = "/api/v1/stripe/webhook", tag = "finance",
    request_body(content = Object, description = "A Stripe event"),
    responses(
        (status = 200, description = "Handled (or already handled)"),
        (status = 400, description = "Bad signature, stale timestamp, or not an event", body = ErrorBody),
        (status = 503, description = "Webhook secret not configured", body = ErrorBody),
    )
)]
pub async fn stripe_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings().stripe;
    let secret = secrecy::ExposeSecret::expose_secret(&settings.webhook_secret);
    if secret.is_empty() {
        return Err(ApiError::unavailable("stripe webhooks are not configured"));
    }
    let header = req.headers().get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let tolerance = std::time::Duration::from_secs(settings.webhook_tolerance_secs);
    stripe::verify_signature(header, &payload, secret, tolerance, chrono::Utc::now().timestamp())
        .map_err(|err| ApiError::invalid_field("Stripe-Signature", &err.to_string()))?;
    let event: StripeEvent =
        serde_json::from_slice(&payload).map_err(|_| ApiError::invalid_field("body", "not a Stripe event"))?;
    let object = &event.data.object;
    let metadata = &object["metadata"];
    let firm = metadata["firm_id"].as_str().and_then(|f| f.parse::<Uuid>().ok()).map(FirmId);
    let invoice = metadata["invoice_id"].as_str().and_then(|i| i.parse::<Uuid>().ok());
    let (Some(firm), Some(invoice)) = (firm, invoice) else {
        // Not one of ours (another integration on the same Stripe account): acknowledged.
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true })));
    };
    let intent = object["id"].as_str().unwrap_or_default().to_owned();
    let amount = object["amount_received"].as_i64().or_else(|| object["amount"].as_i64()).unwrap_or(0);
    let attempts = state.job_attempts();
    let (event_id, kind) = (event.id, event.kind);
    let outcome = state
        .db()
        .firm_tx_retried(firm, async |conn| {
            invoices::apply_stripe_event(conn, firm, &event_id, &kind, invoice, &intent, amount, attempts).await
        })
        .await?;
    if let Some(outcome) = outcome {
        live::publish_event(
            state.bus(),
            firm,
            outcome.topic(),
            serde_json::json!({ "invoice_id": invoice, "amount_minor": amount }),
        )
        .await;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true })))
}
