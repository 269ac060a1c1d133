//! Invoices, payments and credit notes (tenant tables). Integer minor units everywhere;
//! decimal arithmetic for quantities and rates; floats never touch money.
//!
//! Rounding rule (per line, half away from zero, to the minor unit):
//! `line_subtotal = round(quantity x unit_price_minor)`,
//! `line_discount = round(line_subtotal x discount / 100)`,
//! `line_tax = round((line_subtotal - line_discount) x tax_rate / 100)`,
//! `line_total = line_subtotal - line_discount + line_tax`; the invoice's subtotal,
//! discount, tax and total are the sums of the rounded lines.
//!
//! Lifecycle: `draft -> sent -> partially_paid -> paid`, and `void` (from draft, or from
//! sent with nothing paid or credited). Only drafts change. `overdue` is derived: an open
//! invoice (sent or partially paid) whose due date has passed. The number is assigned on
//! sending, from the firm's gapless sequence. The balance is `total - paid - credited`;
//! a payment larger than the balance is refused (no client credit is held), a refund is a
//! negative payment never larger than what was paid, and credit notes are the only way to
//! reduce a sent invoice.

use super::webhooks::EventType;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::money::{LineRequest, LineTotals, PricedLine, price_lines, valid_currency};
use super::pagination::{CreatedKey, Page, PageSpec, keyset_comparison, past_time_key};
use super::{DomainError, FieldErrors, FirmId};
use crate::db::schema::{
    credit_notes, document_sequences, finance_settings, invoices, payments, stripe_events, stripe_payment_intents,
};

pub const MAX_LINE_ITEMS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Sent,
    PartiallyPaid,
    Paid,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Sent => "sent",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Card,
    Ach,
    BankTransfer,
    Cash,
    Check,
    Other,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Ach => "ach",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::Cash => "cash",
            PaymentMethod::Check => "check",
            PaymentMethod::Other => "other",
        }
    }
}

/// A line as given: quantity, tax rate and discount as decimal strings or numbers
/// (percentages for the last two).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLineInput {
    pub description: String,
    #[schema(value_type = String, example = "1.5")]
    pub quantity: serde_json::Value,
    pub unit_price_minor: i64,
    /// Percent, 0 to 100; default 0.
    #[schema(value_type = Option<String>, example = "20")]
    pub tax_rate: Option<serde_json::Value>,
    /// Percent off the line, 0 to 100; default 0.
    #[schema(value_type = Option<String>, example = "10")]
    pub discount: Option<serde_json::Value>,
}

/// A line as stored, with its computed amounts.
pub type InvoiceLine = PricedLine;

/// An invoice's amounts: the sums of its rounded lines.
pub type InvoiceTotals = LineTotals;

/// Validates lines and computes their amounts and the totals (see the module's rule).
pub fn price(items: &[InvoiceLineInput]) -> Result<(Vec<InvoiceLine>, InvoiceTotals), DomainError> {
    let requests: Vec<LineRequest<'_>> = items
        .iter()
        .map(|item| LineRequest {
            description: &item.description,
            quantity: &item.quantity,
            unit_price_minor: item.unit_price_minor,
            tax_rate: item.tax_rate.as_ref(),
            discount: item.discount.as_ref(),
        })
        .collect();
    price_lines(&requests, MAX_LINE_ITEMS)
}

/// Renders a numbering pattern: `{YYYY}` the year, `{YY}` its last two digits, `{MM}` the
/// month, `{seq}` the number, `{seq:05}` the number zero-padded to five digits.
pub fn render_number(pattern: &str, seq: i64, on: NaiveDate) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    let mut has_seq = false;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or("an unclosed `{`")? + open;
        let token = &rest[open + 1..close];
        match token {
            "YYYY" => out.push_str(&format!("{:04}", on.year())),
            "YY" => out.push_str(&format!("{:02}", on.year().rem_euclid(100))),
            "MM" => out.push_str(&format!("{:02}", on.month())),
            "seq" => {
                has_seq = true;
                out.push_str(&seq.to_string());
            }
            _ => {
                let width = token
                    .strip_prefix("seq:")
                    .and_then(|w| w.parse::<usize>().ok())
                    .filter(|w| (1..=12).contains(w))
                    .ok_or_else(|| format!("unknown placeholder `{{{token}}}`"))?;
                has_seq = true;
                out.push_str(&format!("{seq:0width$}"));
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    if !has_seq {
        return Err("must contain `{seq}` or `{seq:NN}`, or numbers would repeat".into());
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FinanceSettings {
    pub invoice_pattern: String,
    pub credit_note_pattern: String,
}

pub async fn settings(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<FinanceSettings, DomainError> {
    let found: Option<(String, String)> = finance_settings::table
        .filter(finance_settings::firm_id.eq(firm.into_uuid()))
        .select((finance_settings::invoice_pattern, finance_settings::credit_note_pattern))
        .first(conn)
        .await
        .optional()?;
    let (invoice_pattern, credit_note_pattern) =
        found.unwrap_or_else(|| ("INV-{YYYY}-{seq:05}".to_owned(), "CN-{YYYY}-{seq:05}".to_owned()));
    Ok(FinanceSettings { invoice_pattern, credit_note_pattern })
}

pub async fn update_settings(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    invoice_pattern: Option<String>,
    credit_note_pattern: Option<String>,
) -> Result<FinanceSettings, DomainError> {
    let current = settings(conn, firm).await?;
    let invoice_pattern = invoice_pattern.unwrap_or(current.invoice_pattern);
    let credit_note_pattern = credit_note_pattern.unwrap_or(current.credit_note_pattern);
    let mut fields = FieldErrors::new();
    let today = Utc::now().date_naive();
    for (field, pattern) in [("invoice_pattern", &invoice_pattern), ("credit_note_pattern", &credit_note_pattern)] {
        if pattern.is_empty() || pattern.chars().count() > 60 {
            fields.insert(field.into(), "must be 1 to 60 characters".into());
        } else if let Err(problem) = render_number(pattern, 1, today) {
            fields.insert(field.into(), problem);
        }
    }
    DomainError::check(fields)?;
    diesel::insert_into(finance_settings::table)
        .values((
            finance_settings::firm_id.eq(firm.into_uuid()),
            finance_settings::invoice_pattern.eq(&invoice_pattern),
            finance_settings::credit_note_pattern.eq(&credit_note_pattern),
        ))
        .on_conflict(finance_settings::firm_id)
        .do_update()
        .set((
            finance_settings::invoice_pattern.eq(&invoice_pattern),
            finance_settings::credit_note_pattern.eq(&credit_note_pattern),
            finance_settings::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(FinanceSettings { invoice_pattern, credit_note_pattern })
}

/// The next number of a kind, taken under the sequence row's lock: the caller's
/// transaction holds it until commit, and a rollback gives the number back.
async fn next_in_sequence(conn: &mut AsyncPgConnection, firm: FirmId, kind: &str) -> Result<i64, DomainError> {
    Ok(diesel::insert_into(document_sequences::table)
        .values((
            document_sequences::firm_id.eq(firm.into_uuid()),
            document_sequences::kind.eq(kind),
            document_sequences::last_value.eq(1_i64),
        ))
        .on_conflict((document_sequences::firm_id, document_sequences::kind))
        .do_update()
        .set(document_sequences::last_value.eq(document_sequences::last_value + 1))
        .returning(document_sequences::last_value)
        .get_result(conn)
        .await?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = invoices)]
struct InvoiceRow {
    id: Uuid,
    client_id: Uuid,
    number: Option<String>,
    status: String,
    currency: String,
    issue_date: NaiveDate,
    due_date: NaiveDate,
    payment_terms: Option<String>,
    notes: Option<String>,
    line_items: serde_json::Value,
    subtotal_minor: i64,
    discount_minor: i64,
    tax_minor: i64,
    total_minor: i64,
    paid_minor: i64,
    credited_minor: i64,
    sent_at: Option<DateTime<Utc>>,
    voided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    pub id: Uuid,
    pub client_id: Uuid,
    /// Assigned when sent.
    pub number: Option<String>,
    #[schema(value_type = InvoiceStatus)]
    pub status: String,
    /// Derived: open (sent or partially paid) and past its due date.
    pub overdue: bool,
    pub currency: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub payment_terms: Option<String>,
    pub notes: Option<String>,
    pub line_items: Vec<InvoiceLine>,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub paid_minor: i64,
    pub credited_minor: i64,
    /// `total - paid - credited`.
    pub balance_minor: i64,
    pub sent_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Invoice {
    fn from_row(row: InvoiceRow, today: NaiveDate) -> Result<Self, DomainError> {
        let open = row.status == "sent" || row.status == "partially_paid";
        Ok(Invoice {
            overdue: open && row.due_date < today,
            balance_minor: row.total_minor - row.paid_minor - row.credited_minor,
            line_items: super::from_json("invoice lines", row.line_items)?,
            id: row.id,
            client_id: row.client_id,
            number: row.number,
            status: row.status,
            currency: row.currency,
            issue_date: row.issue_date,
            due_date: row.due_date,
            payment_terms: row.payment_terms,
            notes: row.notes,
            subtotal_minor: row.subtotal_minor,
            discount_minor: row.discount_minor,
            tax_minor: row.tax_minor,
            total_minor: row.total_minor,
            paid_minor: row.paid_minor,
            credited_minor: row.credited_minor,
            sent_at: row.sent_at,
            voided_at: row.voided_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct InvoiceInput {
    pub client_id: Option<Uuid>,
    pub currency: Option<String>,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub payment_terms: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    pub line_items: Option<Vec<InvoiceLineInput>>,
}

async fn lock(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<InvoiceRow, DomainError> {
    invoices::table
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(id))
        .select(InvoiceRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("invoice"))
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Invoice, DomainError> {
    let row = invoices::table
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(id))
        .select(InvoiceRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("invoice"))?;
    Invoice::from_row(row, Utc::now().date_naive())
}

pub async fn create(conn: &mut AsyncPgConnection, firm: FirmId, input: InvoiceInput) -> Result<Invoice, DomainError> {
    let mut fields = FieldErrors::new();
    let client_id = input.client_id;
    if client_id.is_none() {
        fields.insert("client_id".into(), "is required".into());
    }
    let currency = input.currency.map(|c| c.trim().to_ascii_uppercase());
    if !currency.as_deref().is_some_and(valid_currency) {
        fields.insert("currency".into(), "must be an ISO 4217 code such as USD".into());
    }
    let issue_date = input.issue_date.unwrap_or_else(|| Utc::now().date_naive());
    let due_date = input.due_date.unwrap_or(issue_date + chrono::Duration::days(30));
    if due_date < issue_date {
        fields.insert("due_date".into(), "must not be before the issue date".into());
    }
    let (lines, totals) = match price(input.line_items.as_deref().unwrap_or_default()) {
        Ok(priced) => priced,
        Err(DomainError::Validation { fields: more, .. }) => {
            fields.extend(more);
            (Vec::new(), InvoiceTotals::default())
        }
        Err(other) => return Err(other),
    };
    check_texts(&input.payment_terms, &input.notes, &mut fields);
    DomainError::check(fields)?;
    let client_id = client_id.unwrap_or_default();
    super::clients::find(conn, firm, client_id)
        .await
        .map_err(DomainError::missing_as_invalid("client_id", "no such client"))?;
    let id = Uuid::now_v7();
    diesel::insert_into(invoices::table)
        .values((
            invoices::firm_id.eq(firm.into_uuid()),
            invoices::id.eq(id),
            invoices::client_id.eq(client_id),
            invoices::currency.eq(currency.unwrap_or_default()),
            invoices::issue_date.eq(issue_date),
            invoices::due_date.eq(due_date),
            invoices::payment_terms.eq(input.payment_terms.flatten()),
            invoices::notes.eq(input.notes.flatten()),
            invoices::line_items.eq(serde_json::to_value(&lines).unwrap_or_default()),
            invoices::subtotal_minor.eq(totals.subtotal_minor),
            invoices::discount_minor.eq(totals.discount_minor),
            invoices::tax_minor.eq(totals.tax_minor),
            invoices::total_minor.eq(totals.total_minor),
        ))
        .execute(conn)
        .await?;
    find(conn, firm, id).await
}

fn check_texts(terms: &Option<Option<String>>, notes: &Option<Option<String>>, fields: &mut FieldErrors) {
    if terms.as_ref().and_then(Option::as_ref).is_some_and(|t| t.chars().count() > 200) {
        fields.insert("payment_terms".into(), "must be at most 200 characters".into());
    }
    if notes.as_ref().and_then(Option::as_ref).is_some_and(|n| n.chars().count() > 5000) {
        fields.insert("notes".into(), "must be at most 5000 characters".into());
    }
}

/// Changes a draft; anything else is 409 (a sent invoice changes only through payments
/// and credit notes).
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: InvoiceInput,
) -> Result<Invoice, DomainError> {
    let row = lock(conn, firm, id).await?;
    if row.status != "draft" {
        return Err(DomainError::Conflict(format!("a {} invoice cannot be edited; use a credit note", row.status)));
    }
    let mut fields = FieldErrors::new();
    let currency = input.currency.map(|c| c.trim().to_ascii_uppercase());
    if currency.as_deref().is_some_and(|c| !valid_currency(c)) {
        fields.insert("currency".into(), "must be an ISO 4217 code such as USD".into());
    }
    let issue_date = input.issue_date.unwrap_or(row.issue_date);
    let due_date = input.due_date.unwrap_or(row.due_date);
    if due_date < issue_date {
        fields.insert("due_date".into(), "must not be before the issue date".into());
    }
    let priced = match input.line_items.as_deref().map(price) {
        None => None,
        Some(Ok(priced)) => Some(priced),
        Some(Err(DomainError::Validation { fields: more, .. })) => {
            fields.extend(more);
            None
        }
        Some(Err(other)) => return Err(other),
    };
    check_texts(&input.payment_terms, &input.notes, &mut fields);
    DomainError::check(fields)?;
    if let Some(client) = input.client_id {
        super::clients::find(conn, firm, client)
            .await
            .map_err(DomainError::missing_as_invalid("client_id", "no such client"))?;
    }
    let (lines, totals) = match priced {
        Some((lines, totals)) => (Some(serde_json::to_value(&lines).unwrap_or_default()), Some(totals)),
        None => (None, None),
    };
    diesel::update(invoices::table)
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(id))
        .set((
            input.client_id.map(|c| invoices::client_id.eq(c)),
            currency.map(|c| invoices::currency.eq(c)),
            invoices::issue_date.eq(issue_date),
            invoices::due_date.eq(due_date),
            input.payment_terms.map(|t| invoices::payment_terms.eq(t)),
            input.notes.map(|n| invoices::notes.eq(n)),
            lines.map(|l| invoices::line_items.eq(l)),
            totals.map(|t| invoices::subtotal_minor.eq(t.subtotal_minor)),
            totals.map(|t| invoices::discount_minor.eq(t.discount_minor)),
            totals.map(|t| invoices::tax_minor.eq(t.tax_minor)),
            totals.map(|t| invoices::total_minor.eq(t.total_minor)),
            invoices::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    find(conn, firm, id).await
}

/// Sends a draft: it gets the next number of the firm's invoice sequence.
pub async fn send(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Invoice, DomainError> {
    let row = lock(conn, firm, id).await?;
    if row.status != "draft" {
        return Err(DomainError::Conflict(format!("only a draft can be sent; this one is {}", row.status)));
    }
    let lines: Vec<InvoiceLine> = super::from_json("invoice lines", row.line_items)?;
    if lines.is_empty() {
        return Err(DomainError::invalid_field("line_items", "an invoice needs at least one line to be sent"));
    }
    let pattern = settings(conn, firm).await?.invoice_pattern;
    let seq = next_in_sequence(conn, firm, "invoice").await?;
    let now = Utc::now();
    let number =
        render_number(&pattern, seq, now.date_naive()).map_err(|p| DomainError::invalid_field("invoice_pattern", p))?;
    let status = if row.total_minor == 0 { "paid" } else { "sent" };
    diesel::update(invoices::table)
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(id))
        .set((
            invoices::number.eq(Some(number)),
            invoices::status.eq(status),
            invoices::sent_at.eq(Some(now)),
            invoices::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map_err(DomainError::conflict_on_unique("that invoice number is taken; change the pattern"))?;
    find(conn, firm, id).await
}

/// Voids a draft, or a sent invoice nothing has been paid or credited on.
pub async fn void(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Invoice, DomainError> {
    let row = lock(conn, firm, id).await?;
    let voidable = row.status == "draft" || (row.status == "sent" && row.paid_minor == 0 && row.credited_minor == 0);
    if !voidable {
        return Err(DomainError::Conflict(format!(
            "a {} invoice with payments or credit notes cannot be voided; refund or credit it instead",
            row.status
        )));
    }
    let now = Utc::now();
    diesel::update(invoices::table)
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(id))
        .set((invoices::status.eq("void"), invoices::voided_at.eq(Some(now)), invoices::updated_at.eq(now)))
        .execute(conn)
        .await?;
    find(conn, firm, id).await
}

fn status_for(total: i64, paid: i64, credited: i64) -> &'static str {
    if paid + credited >= total {
        "paid"
    } else if paid > 0 || credited > 0 {
        "partially_paid"
    } else {
        "sent"
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = payments)]
pub struct Payment {
    pub id: Uuid,
    pub invoice_id: Uuid,
    /// Positive for money received, negative for a refund.
    pub amount_minor: i64,
    #[schema(value_type = PaymentMethod)]
    pub method: String,
    pub received_on: NaiveDate,
    pub reference: Option<String>,
    /// For a refund: the payment it returns money from.
    pub refund_of: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct PaymentInput {
    pub amount_minor: i64,
    pub method: PaymentMethod,
    pub received_on: Option<NaiveDate>,
    pub reference: Option<String>,
    /// Set for a refund (then `amount_minor` is negative).
    pub refund_of: Option<Uuid>,
}

/// Records money received or refunded, and moves the invoice's status with it. A payment
/// larger than the balance is refused, and so is a refund larger than what the payment
/// it names has left.
pub async fn record_payment(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    invoice_id: Uuid,
    input: PaymentInput,
    by: Option<Uuid>,
) -> Result<(Payment, Invoice), DomainError> {
    let row = lock(conn, firm, invoice_id).await?;
    if !matches!(row.status.as_str(), "sent" | "partially_paid" | "paid") {
        return Err(DomainError::Conflict(format!("a {} invoice takes no payments", row.status)));
    }
    if input.reference.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(DomainError::invalid_field("reference", "must be at most 200 characters"));
    }
    let balance = row.total_minor - row.paid_minor - row.credited_minor;
    match input.refund_of {
        None => {
            if input.amount_minor <= 0 {
                return Err(DomainError::invalid_field("amount_minor", "must be positive (a refund names refund_of)"));
            }
            if input.amount_minor > balance {
                return Err(DomainError::invalid_field(
                    "amount_minor",
                    format!("is more than the balance ({balance}); overpayments are not taken"),
                ));
            }
        }
        Some(original) => {
            if input.amount_minor >= 0 {
                return Err(DomainError::invalid_field("amount_minor", "a refund is negative"));
            }
            // What the named payment brought in, less what was refunded from it already.
            let refundable: i64 = payments::table
                .filter(payments::firm_id.eq(firm.into_uuid()))
                .filter(payments::invoice_id.eq(invoice_id))
                .filter(payments::id.eq(original).or(payments::refund_of.eq(original)))
                .select(payments::amount_minor)
                .load::<i64>(conn)
                .await?
                .into_iter()
                .sum();
            if refundable <= 0 {
                return Err(DomainError::invalid_field(
                    "refund_of",
                    "no payment on this invoice with money left to refund",
                ));
            }
            if -input.amount_minor > refundable {
                return Err(DomainError::invalid_field(
                    "amount_minor",
                    format!("refunds more than is left of that payment ({refundable})"),
                ));
            }
        }
    }
    let paid = row.paid_minor + input.amount_minor;
    let payment = diesel::insert_into(payments::table)
        .values((
            payments::firm_id.eq(firm.into_uuid()),
            payments::id.eq(Uuid::now_v7()),
            payments::invoice_id.eq(invoice_id),
            payments::amount_minor.eq(input.amount_minor),
            payments::method.eq(input.method.as_str()),
            payments::received_on.eq(input.received_on.unwrap_or_else(|| Utc::now().date_naive())),
            payments::reference.eq(&input.reference),
            payments::refund_of.eq(input.refund_of),
            payments::created_by.eq(by),
        ))
        .returning(Payment::as_returning())
        .get_result(conn)
        .await?;
    diesel::update(invoices::table)
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(invoice_id))
        .set((
            invoices::paid_minor.eq(paid),
            invoices::status.eq(status_for(row.total_minor, paid, row.credited_minor)),
            invoices::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok((payment, find(conn, firm, invoice_id).await?))
}

pub async fn payments_of(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    invoice_id: Uuid,
) -> Result<Vec<Payment>, DomainError> {
    find(conn, firm, invoice_id).await?;
    Ok(payments::table
        .filter(payments::firm_id.eq(firm.into_uuid()))
        .filter(payments::invoice_id.eq(invoice_id))
        .order((payments::created_at.asc(), payments::id.asc()))
        .select(Payment::as_select())
        .load(conn)
        .await?)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = credit_notes)]
pub struct CreditNote {
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub number: String,
    pub amount_minor: i64,
    pub reason: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Reduces a sent invoice's balance, with a number from the credit-note sequence.
pub async fn credit(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    invoice_id: Uuid,
    amount_minor: i64,
    reason: &str,
    by: Option<Uuid>,
) -> Result<(CreditNote, Invoice), DomainError> {
    let reason = reason.trim();
    let mut fields = FieldErrors::new();
    if amount_minor <= 0 {
        fields.insert("amount_minor".into(), "must be positive".into());
    }
    if reason.is_empty() || reason.chars().count() > 500 {
        fields.insert("reason".into(), "must be 1 to 500 characters".into());
    }
    DomainError::check(fields)?;
    let row = lock(conn, firm, invoice_id).await?;
    if !matches!(row.status.as_str(), "sent" | "partially_paid") {
        return Err(DomainError::Conflict(format!("a {} invoice cannot be credited", row.status)));
    }
    let balance = row.total_minor - row.paid_minor - row.credited_minor;
    if amount_minor > balance {
        return Err(DomainError::invalid_field("amount_minor", format!("is more than the balance ({balance})")));
    }
    let pattern = settings(conn, firm).await?.credit_note_pattern;
    let seq = next_in_sequence(conn, firm, "credit_note").await?;
    let number = render_number(&pattern, seq, Utc::now().date_naive())
        .map_err(|p| DomainError::invalid_field("credit_note_pattern", p))?;
    let note = diesel::insert_into(credit_notes::table)
        .values((
            credit_notes::firm_id.eq(firm.into_uuid()),
            credit_notes::id.eq(Uuid::now_v7()),
            credit_notes::invoice_id.eq(invoice_id),
            credit_notes::number.eq(number),
            credit_notes::amount_minor.eq(amount_minor),
            credit_notes::reason.eq(reason),
            credit_notes::created_by.eq(by),
        ))
        .returning(CreditNote::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique("that credit note number is taken; change the pattern"))?;
    let credited = row.credited_minor + amount_minor;
    diesel::update(invoices::table)
        .filter(invoices::firm_id.eq(firm.into_uuid()))
        .filter(invoices::id.eq(invoice_id))
        .set((
            invoices::credited_minor.eq(credited),
            invoices::status.eq(status_for(row.total_minor, row.paid_minor, credited)),
            invoices::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok((note, find(conn, firm, invoice_id).await?))
}

pub async fn credit_notes_of(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    invoice_id: Uuid,
) -> Result<Vec<CreditNote>, DomainError> {
    find(conn, firm, invoice_id).await?;
    Ok(credit_notes::table
        .filter(credit_notes::firm_id.eq(firm.into_uuid()))
        .filter(credit_notes::invoice_id.eq(invoice_id))
        .order((credit_notes::created_at.asc(), credit_notes::id.asc()))
        .select(CreditNote::as_select())
        .load(conn)
        .await?)
}

#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub client_id: Option<Uuid>,
    pub status: Option<InvoiceStatus>,
    pub overdue: Option<bool>,
    pub currency: Option<String>,
}

/// Newest first, keyset pages.
pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &InvoiceFilter,
    spec: &PageSpec<CreatedKey>,
) -> Result<Page<Invoice, CreatedKey>, DomainError> {
    let today = Utc::now().date_naive();
    let mut query =
        invoices::table.filter(invoices::firm_id.eq(firm.into_uuid())).select(InvoiceRow::as_select()).into_boxed();
    if let Some(client) = filter.client_id {
        query = query.filter(invoices::client_id.eq(client));
    }
    if let Some(status) = filter.status {
        query = query.filter(invoices::status.eq(status.as_str()));
    }
    if let Some(currency) = &filter.currency {
        query = query.filter(invoices::currency.eq(currency.trim().to_ascii_uppercase()));
    }
    match filter.overdue {
        Some(true) => {
            query =
                query.filter(invoices::status.eq_any(["sent", "partially_paid"])).filter(invoices::due_date.lt(today));
        }
        Some(false) => {
            query = query.filter(invoices::status.ne_all(["sent", "partially_paid"]).or(invoices::due_date.ge(today)));
        }
        None => {}
    }
    let mut ascending = false;
    if let Some((direction, key)) = &spec.position {
        let (op, fetch_ascending) = keyset_comparison(false, *direction);
        ascending = fetch_ascending;
        query = query.filter(past_time_key("invoices.created_at, invoices.id", op, key.at, key.id));
    }
    query = if ascending {
        query.order((invoices::created_at.asc(), invoices::id.asc()))
    } else {
        query.order((invoices::created_at.desc(), invoices::id.desc()))
    };
    let rows: Vec<InvoiceRow> = query.limit(spec.fetch_limit()).load(conn).await?;
    let items = rows.into_iter().map(|r| Invoice::from_row(r, today)).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(items, spec, |i: &Invoice| CreatedKey { at: i.created_at, id: i.id }))
}

/// Open balances by client and currency in age buckets (days past due) as of a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, QueryableByName, utoipa::ToSchema)]
pub struct AgingRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub client_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub currency: String,
    /// Not yet due.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub current_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub days_1_30_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub days_31_60_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub days_61_90_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub days_over_90_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub total_minor: i64,
}

/// One query over the open invoices (an index covers `status IN (sent, partially_paid)`).
pub async fn aging(conn: &mut AsyncPgConnection, firm: FirmId, as_of: NaiveDate) -> Result<Vec<AgingRow>, DomainError> {
    Ok(crate::db::cached_query(
        "SELECT client_id, currency, \
                COALESCE(SUM(balance) FILTER (WHERE late <= 0), 0)::bigint AS current_minor, \
                COALESCE(SUM(balance) FILTER (WHERE late BETWEEN 1 AND 30), 0)::bigint AS days_1_30_minor, \
                COALESCE(SUM(balance) FILTER (WHERE late BETWEEN 31 AND 60), 0)::bigint AS days_31_60_minor, \
                COALESCE(SUM(balance) FILTER (WHERE late BETWEEN 61 AND 90), 0)::bigint AS days_61_90_minor, \
                COALESCE(SUM(balance) FILTER (WHERE late > 90), 0)::bigint AS days_over_90_minor, \
                SUM(balance)::bigint AS total_minor \
           FROM (SELECT client_id, currency, total_minor - paid_minor - credited_minor AS balance, \
                        $2::date - due_date AS late \
                   FROM invoices \
                  WHERE firm_id = $1 AND status IN ('sent', 'partially_paid') \
                    AND sent_at::date <= $2) open \
          WHERE balance > 0 \
          GROUP BY client_id, currency \
          ORDER BY client_id, currency",
    )
    .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
    .bind::<diesel::sql_types::Date, _>(as_of)
    .load(conn)
    .await?)
}

/// Invoiced (sent in the period, not void), collected (payments net of refunds received
/// in the period) and outstanding (open balances now), by currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, QueryableByName, utoipa::ToSchema)]
pub struct SummaryRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub currency: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub invoiced_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub collected_minor: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub outstanding_minor: i64,
}

pub async fn summary(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<SummaryRow>, DomainError> {
    Ok(crate::db::cached_query(
        "SELECT currency, SUM(invoiced)::bigint AS invoiced_minor, SUM(collected)::bigint AS collected_minor, \
                SUM(outstanding)::bigint AS outstanding_minor \
           FROM (SELECT currency, total_minor AS invoiced, 0 AS collected, 0 AS outstanding \
                   FROM invoices \
                  WHERE firm_id = $1 AND status <> 'void' AND sent_at IS NOT NULL \
                    AND sent_at::date BETWEEN $2 AND $3 \
                 UNION ALL \
                 SELECT i.currency, 0, p.amount_minor, 0 \
                   FROM payments p JOIN invoices i ON i.firm_id = p.firm_id AND i.id = p.invoice_id \
                  WHERE p.firm_id = $1 AND p.received_on BETWEEN $2 AND $3 \
                 UNION ALL \
                 SELECT currency, 0, 0, total_minor - paid_minor - credited_minor \
                   FROM invoices \
                  WHERE firm_id = $1 AND status IN ('sent', 'partially_paid')) parts \
          GROUP BY currency \
          ORDER BY currency",
    )
    .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
    .bind::<diesel::sql_types::Date, _>(from)
    .bind::<diesel::sql_types::Date, _>(to)
    .load(conn)
    .await?)
}

/// Remembers a payment intent created for an invoice.
pub async fn remember_intent(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    invoice_id: Uuid,
    intent_id: &str,
    amount_minor: i64,
    currency: &str,
) -> Result<(), DomainError> {
    diesel::insert_into(stripe_payment_intents::table)
        .values((
            stripe_payment_intents::firm_id.eq(firm.into_uuid()),
            stripe_payment_intents::id.eq(intent_id),
            stripe_payment_intents::invoice_id.eq(invoice_id),
            stripe_payment_intents::amount_minor.eq(amount_minor),
            stripe_payment_intents::currency.eq(currency),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// What a Stripe event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeOutcome {
    Recorded,
    /// Money arrived that the invoice could not take (paid meanwhile, or void).
    Unapplied,
}

impl StripeOutcome {
    pub fn topic(self) -> &'static str {
        match self {
            StripeOutcome::Recorded => "payment.received",
            StripeOutcome::Unapplied => "payment.unapplied",
        }
    }
}

/// Handles one verified Stripe event, at most once per event id: a replay, or a
/// concurrent duplicate (which waits on the first's row), changes nothing and gives `None`.
#[allow(clippy::too_many_arguments)]
pub async fn apply_stripe_event(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    event_id: &str,
    kind: &str,
    invoice_id: Uuid,
    intent_id: &str,
    amount_minor: i64,
    attempts: i32,
) -> Result<Option<StripeOutcome>, DomainError> {
    let first_time = diesel::insert_into(stripe_events::table)
        .values((
            stripe_events::firm_id.eq(firm.into_uuid()),
            stripe_events::id.eq(event_id),
            stripe_events::kind.eq(kind),
            stripe_events::outcome.eq("ignored"),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?
        == 1;
    if !first_time || kind != "payment_intent.succeeded" {
        return Ok(None);
    }
    let known: Option<Uuid> = stripe_payment_intents::table
        .filter(stripe_payment_intents::firm_id.eq(firm.into_uuid()))
        .filter(stripe_payment_intents::id.eq(intent_id))
        .select(stripe_payment_intents::invoice_id)
        .first(conn)
        .await
        .optional()?;
    if known != Some(invoice_id) {
        // Signed by Stripe, but not an intent this firm made for this invoice.
        return Ok(None);
    }
    let input = PaymentInput {
        amount_minor,
        method: PaymentMethod::Card,
        received_on: None,
        reference: Some(intent_id.to_owned()),
        refund_of: None,
    };
    let (outcome, action, data) = match record_payment(conn, firm, invoice_id, input, None).await {
        Ok((payment, invoice)) => (
            StripeOutcome::Recorded,
            EventType::PaymentReceived,
            serde_json::json!({ "invoice_id": invoice_id, "payment_id": payment.id, "amount_minor": amount_minor,
                                "balance_minor": invoice.balance_minor }),
        ),
        Err(DomainError::Validation { .. } | DomainError::Conflict(_)) => (
            StripeOutcome::Unapplied,
            EventType::PaymentUnapplied,
            serde_json::json!({ "invoice_id": invoice_id, "payment_intent": intent_id, "amount_minor": amount_minor }),
        ),
        Err(other) => return Err(other),
    };
    diesel::update(stripe_events::table)
        .filter(stripe_events::firm_id.eq(firm.into_uuid()))
        .filter(stripe_events::id.eq(event_id))
        .set(stripe_events::outcome.eq(if outcome == StripeOutcome::Recorded { "recorded" } else { "unapplied" }))
        .execute(conn)
        .await?;
    let event = super::audit::NewAuditEvent::new(
        firm,
        super::audit::ActorType::System,
        None,
        action.as_str(),
        super::audit::Outcome::Success,
    )
    .with_target("invoice", invoice_id)
    .with_metadata(serde_json::json!({ "stripe_event": event_id, "amount_minor": amount_minor }));
    super::audit::record(conn, &event).await?;
    super::webhooks::emit(conn, firm, action, data, attempts).await?;
    Ok(Some(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: &str, unit: i64, tax: &str, discount: &str) -> InvoiceLineInput {
        InvoiceLineInput {
            description: "work".into(),
            quantity: serde_json::json!(quantity),
            unit_price_minor: unit,
            tax_rate: Some(serde_json::json!(tax)),
            discount: Some(serde_json::json!(discount)),
        }
    }

    #[test]
    fn lines_round_half_away_from_zero_after_discount() {
        // 3 x 333 = 999; 10% off = 99.9 -> 100; taxable 899; 7.5% tax = 67.425 -> 67; 966.
        // 1.5 x 101 = 151.5 -> 152; no discount; 20% = 30.4 -> 30; 182.
        // 1 x 5 = 5; 50% off = 2.5 -> 3 (away from zero); taxable 2; 25% = 0.5 -> 1; 3.
        let (lines, totals) =
            price(&[line("3", 333, "7.5", "10"), line("1.5", 101, "20", "0"), line("1", 5, "25", "50")]).unwrap();
        let amounts: Vec<_> =
            lines.iter().map(|l| (l.subtotal_minor, l.discount_minor, l.tax_minor, l.total_minor)).collect();
        assert_eq!(amounts, [(999, 100, 67, 966), (152, 0, 30, 182), (5, 3, 1, 3)]);
        assert_eq!(
            totals,
            InvoiceTotals { subtotal_minor: 1156, discount_minor: 103, tax_minor: 98, total_minor: 1151 }
        );
    }

    #[test]
    fn bad_lines_name_their_field() {
        let Err(DomainError::Validation { fields, .. }) =
            price(&[line("0", 100, "5", "0"), line("1", -1, "101", "-3")])
        else {
            panic!("invalid lines must be refused");
        };
        for field in [
            "line_items[0].quantity",
            "line_items[1].unit_price_minor",
            "line_items[1].tax_rate",
            "line_items[1].discount",
        ] {
            assert!(fields.contains_key(field), "{field}: {fields:?}");
        }
    }

    #[test]
    fn numbers_follow_the_pattern() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(render_number("INV-{YYYY}-{seq:05}", 42, day).unwrap(), "INV-2026-00042");
        assert_eq!(render_number("{YY}{MM}/{seq}", 7, day).unwrap(), "2603/7");
        assert!(render_number("INV-{YYYY}", 1, day).is_err(), "no sequence part");
        assert!(render_number("INV-{seq", 1, day).is_err());
        assert!(render_number("INV-{day}-{seq}", 1, day).is_err());
    }
}
