//! `/invoices`, their payments and credit notes, the finance reports, numbering settings,
//! and Stripe card payments. Owners, admins and billing members read and write finance.
//! Creations that move money honour `Idempotency-Key`.

use super::body::JsonObject;
use crate::domain::webhooks::EventType;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use diesel_async::AsyncPgConnection;
use scoped_futures::{ScopedBoxFuture, ScopedFutureExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Actor, FirmAuth};
use super::error::{ApiError, ErrorBody};
use super::once::Once;
use super::pagination::{PageParams, page_meta};
use super::{AppState, double_option, envelope};
use crate::bus::live;
use crate::domain::audit::{self, NewAuditEvent, Outcome};
use crate::domain::idempotency::{self, Replay};
use crate::domain::invoices::{
    self, AgingRow, CreditNote, FinanceSettings, Invoice, InvoiceFilter, InvoiceInput, InvoiceLineInput, InvoiceStatus,
    Payment, PaymentInput, PaymentMethod, SummaryRow,
};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, FirmId, RequestMeta, webhooks};
use crate::outbound::stripe::{self, StripeError};

fn actor_id(auth: &FirmAuth) -> Option<Uuid> {
    match auth.actor {
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
async fn create_once<'a, F>(state: &'a AppState, firm: FirmId, once: Once, create: F) -> Result<HttpResponse, ApiError>
where
    F: for<'r> FnOnce(&'r mut AsyncPgConnection) -> ScopedBoxFuture<'a, 'r, Result<Created, DomainError>> + Send + 'a,
{
    let attempts = state.job_attempts();
    let answer = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let Once { key, scope, hash } = once;
                if let Some(key) = &key
                    && let Some(replay) = idempotency::replay(conn, firm, &scope, key, &hash).await?
                {
                    return Ok(Answer::Replayed(replay));
                }
                let created = create(conn).await?;
                audit::record(conn, &created.event).await?;
                webhooks::emit(conn, firm, created.event_type, created.data, attempts).await?;
                if let Some(key) = &key {
                    let first = Replay { status: 201, body: created.body.clone() };
                    idempotency::remember(conn, firm, &scope, key, &first).await?;
                }
                Ok::<_, DomainError>(Answer::Fresh(created.body))
            }
            .scope_boxed()
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another request", body = ErrorBody),
    )
)]
pub async fn create_invoice(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    req: HttpRequest,
    body: JsonObject<NewInvoiceBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
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
    let firm = auth.firm;
    let event = auth.audit("invoice.created", Outcome::Success, &meta);
    create_once(&state, firm, once, |conn| {
        async move {
            let invoice = invoices::create(conn, firm, input).await?;
            Ok(Created {
                event: event.with_target("invoice", invoice.id),
                event_type: EventType::InvoiceCreated,
                data: serde_json::json!({ "invoice_id": invoice.id, "client_id": invoice.client_id }),
                body: enveloped(&invoice),
            })
        }
        .scope_boxed()
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
    )
)]
pub async fn list_invoices(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<InvoiceQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let query = query.into_inner();
    let spec = PageParams { limit: query.limit, cursor: query.cursor.clone() }.spec()?;
    let filter = InvoiceFilter {
        client_id: query.client_id,
        status: query.status,
        overdue: query.overdue,
        currency: query.currency,
    };
    let (firm, page_spec) = (auth.firm, spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| async move { invoices::list(conn, firm, &filter, &page_spec).await }.scope_boxed())
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One invoice.
#[utoipa::path(
    get, path = "/api/v1/invoices/{id}", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice", body = Invoice),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice in this firm", body = ErrorBody),
    )
)]
pub async fn get_invoice(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let found =
        state.db().firm_tx(firm, |conn| async move { invoices::find(conn, firm, id).await }.scope_boxed()).await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody),
    )
)]
pub async fn update_invoice(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<InvoicePatch>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
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
    let (firm, id, attempts) = (auth.firm, path.into_inner(), state.job_attempts());
    let event = auth.audit(EventType::InvoiceUpdated.as_str(), Outcome::Success, &meta).with_target("invoice", id);
    let changed = audit::audited(state.db(), firm, event, |conn| {
        async move {
            let invoice = invoices::update(conn, firm, id, input).await?;
            let data = serde_json::json!({ "invoice_id": id, "total_minor": invoice.total_minor });
            webhooks::emit(conn, firm, EventType::InvoiceUpdated, data, attempts).await?;
            Ok(invoice)
        }
        .scope_boxed()
    })
    .await?;
    Ok(envelope::ok(changed))
}

/// Runs a lifecycle step with its audit record and webhook event.
async fn lifecycle(
    state: &AppState,
    auth: &FirmAuth,
    meta: &RequestMeta,
    id: Uuid,
    action: EventType,
) -> Result<Invoice, ApiError> {
    let (firm, attempts) = (auth.firm, state.job_attempts());
    let event = auth.audit(action.as_str(), Outcome::Success, meta).with_target("invoice", id);
    let invoice = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let invoice = match action {
                    EventType::InvoiceSent => invoices::send(conn, firm, id).await?,
                    _ => invoices::void(conn, firm, id).await?,
                };
                audit::record(conn, &event.with_metadata(serde_json::json!({ "number": invoice.number }))).await?;
                let data = serde_json::json!({ "invoice_id": id, "number": invoice.number, "total_minor": invoice.total_minor });
                webhooks::emit(conn, firm, action, data, attempts).await?;
                Ok::<_, DomainError>(invoice)
            }
            .scope_boxed()
        })
        .await?;
    Ok(invoice)
}

/// Sends a draft: it gets its number from the firm's gapless sequence.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/send", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The sent invoice", body = Invoice),
        (status = 400, description = "No lines", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody),
    )
)]
pub async fn send_invoice(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
    Ok(envelope::ok(lifecycle(&state, &auth, &meta, path.into_inner(), EventType::InvoiceSent).await?))
}

/// Voids a draft, or a sent invoice with nothing paid or credited.
#[utoipa::path(
    post, path = "/api/v1/invoices/{id}/void", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The void invoice", body = Invoice),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Paid or credited, or already void", body = ErrorBody),
    )
)]
pub async fn void_invoice(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
    Ok(envelope::ok(lifecycle(&state, &auth, &meta, path.into_inner(), EventType::InvoiceVoided).await?))
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Draft or void invoice, or Idempotency-Key reused", body = ErrorBody),
    )
)]
pub async fn record_payment(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: JsonObject<NewPaymentBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
    let (firm, id, by) = (auth.firm, path.into_inner(), actor_id(&auth));
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
    let event = auth.audit(action.as_str(), Outcome::Success, &meta);
    create_once(&state, firm, once, |conn| {
        async move {
            let (payment, invoice) = invoices::record_payment(conn, firm, id, input, by).await?;
            Ok(Created {
                event: event
                    .with_target("invoice", id)
                    .with_metadata(serde_json::json!({ "payment_id": payment.id, "amount_minor": payment.amount_minor })),
                event_type: action,
                data: serde_json::json!({ "invoice_id": id, "payment_id": payment.id,
                                          "amount_minor": payment.amount_minor, "balance_minor": invoice.balance_minor }),
                body: enveloped(PaymentRecorded { payment, invoice }),
            })
        }
        .scope_boxed()
    })
    .await
}

/// An invoice's payments and refunds, oldest first.
#[utoipa::path(
    get, path = "/api/v1/invoices/{id}/payments", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "Payments", body = Vec<Payment>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
    )
)]
pub async fn list_payments(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let found = state
        .db()
        .firm_tx(firm, |conn| async move { invoices::payments_of(conn, firm, id).await }.scope_boxed())
        .await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Not an open invoice, or Idempotency-Key reused", body = ErrorBody),
    )
)]
pub async fn issue_credit_note(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: JsonObject<NewCreditNoteBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
    let (firm, id, by) = (auth.firm, path.into_inner(), actor_id(&auth));
    let body = body.into_inner();
    let once = Once::of(&req, format!("credit_note.create:{id}"), &body)?;
    let event = auth.audit("credit_note.issued", Outcome::Success, &meta);
    create_once(&state, firm, once, |conn| {
        async move {
            let (note, invoice) = invoices::credit(conn, firm, id, body.amount_minor, &body.reason, by).await?;
            Ok(Created {
                event: event.with_target("invoice", id).with_metadata(
                    serde_json::json!({ "credit_note": note.number, "amount_minor": note.amount_minor }),
                ),
                event_type: EventType::CreditNoteIssued,
                data: serde_json::json!({ "invoice_id": id, "credit_note_id": note.id, "number": note.number,
                                          "amount_minor": note.amount_minor }),
                body: enveloped(CreditNoteIssued { credit_note: note, invoice }),
            })
        }
        .scope_boxed()
    })
    .await
}

/// An invoice's credit notes.
#[utoipa::path(
    get, path = "/api/v1/invoices/{id}/credit-notes", tag = "finance", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "Credit notes", body = Vec<CreditNote>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
    )
)]
pub async fn list_credit_notes(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let found = state
        .db()
        .firm_tx(firm, |conn| async move { invoices::credit_notes_of(conn, firm, id).await }.scope_boxed())
        .await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
    )
)]
pub async fn aging(
    state: web::Data<AppState>,
    auth: FirmAuth,
    query: web::Query<AgingQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let firm = auth.firm;
    let as_of = query.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let rows =
        state.db().firm_tx(firm, |conn| async move { invoices::aging(conn, firm, as_of).await }.scope_boxed()).await?;
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
    )
)]
pub async fn summary(
    state: web::Data<AppState>,
    auth: FirmAuth,
    query: web::Query<SummaryQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let (from, to) = (query.from, query.to);
    if from > to {
        return Err(ApiError::invalid_field("from", "must not be after `to`"));
    }
    let firm = auth.firm;
    let rows = state
        .db()
        .firm_tx(firm, |conn| async move { invoices::summary(conn, firm, from, to).await }.scope_boxed())
        .await?;
    Ok(envelope::with_meta(rows, serde_json::json!({ "from": from, "to": to })))
}

/// The firm's numbering patterns.
#[utoipa::path(
    get, path = "/api/v1/finance/settings", tag = "finance", security(("bearer" = [])),
    responses(
        (status = 200, description = "Numbering patterns", body = FinanceSettings),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
    )
)]
pub async fn get_settings(state: web::Data<AppState>, auth: FirmAuth) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceRead)?;
    let firm = auth.firm;
    let found =
        state.db().firm_tx(firm, |conn| async move { invoices::settings(conn, firm).await }.scope_boxed()).await?;
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
    patch, path = "/api/v1/finance/settings", tag = "finance", security(("bearer" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "Numbering patterns", body = FinanceSettings),
        (status = 400, description = "A pattern without `{seq}` or with an unknown placeholder", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
    )
)]
pub async fn update_settings(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
    let body = body.into_inner();
    let firm = auth.firm;
    let event = auth.audit("finance.settings_changed", Outcome::Success, &meta);
    let changed = audit::audited(state.db(), firm, event, |conn| {
        async move { invoices::update_settings(conn, firm, body.invoice_pattern, body.credit_note_pattern).await }
            .scope_boxed()
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role has no finance access", body = ErrorBody),
        (status = 404, description = "No such invoice", body = ErrorBody),
        (status = 409, description = "Nothing to pay", body = ErrorBody),
        (status = 503, description = "Card payments not configured, or Stripe unreachable", body = ErrorBody),
    )
)]
pub async fn create_payment_intent(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FinanceWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let invoice =
        state.db().firm_tx(firm, |conn| async move { invoices::find(conn, firm, id).await }.scope_boxed()).await?;
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
    let stored = intent.clone();
    let currency = invoice.currency.clone();
    state
        .db()
        .firm_tx(firm, |conn| {
            async move { invoices::remember_intent(conn, firm, id, &stored.id, stored.amount, &currency).await }
                .scope_boxed()
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
        .firm_tx(firm, |conn| {
            async move {
                invoices::apply_stripe_event(conn, firm, &event_id, &kind, invoice, &intent, amount, attempts).await
            }
            .scope_boxed()
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
