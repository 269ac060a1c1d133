//! Amounts: integer minor units, with decimal quantities and rates read from JSON as
//! strings or numbers, and one rounding rule (half away from zero) wherever money is
//! computed. Floats never touch money.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// A decimal from a JSON string (`"1.5"`) or number (`1.5`); anything else is `None`.
pub fn decimal(value: &serde_json::Value) -> Option<Decimal> {
    match value {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// Rounds to a whole minor unit, half away from zero; `None` when it does not fit.
pub fn round_minor(value: Decimal) -> Option<i64> {
    value.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero).to_i64()
}

/// An ISO 4217 code as stored: three upper-case letters.
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A percentage from 0 to 100; absent means 0.
pub fn percentage(value: Option<&serde_json::Value>) -> Option<Decimal> {
    match value {
        None => Some(Decimal::ZERO),
        Some(v) => decimal(v).filter(|r| *r >= Decimal::ZERO && *r <= Decimal::ONE_HUNDRED),
    }
}

/// A line with its computed amounts (invoices store it as it is).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PricedLine {
    pub description: String,
    /// Normalised decimal text.
    pub quantity: String,
    pub unit_price_minor: i64,
    pub tax_rate: String,
    pub discount: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

/// The sums of a document's rounded lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LineTotals {
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

/// A line as given by a client, whatever document it belongs to.
pub struct LineRequest<'a> {
    pub description: &'a str,
    pub quantity: &'a serde_json::Value,
    pub unit_price_minor: i64,
    pub tax_rate: Option<&'a serde_json::Value>,
    /// Percent off the line; documents without discounts pass `None`.
    pub discount: Option<&'a serde_json::Value>,
}

/// Validates and prices lines under the one rounding rule (per line, half away from zero,
/// to the minor unit): `subtotal = round(quantity x unit_price)`, `discount = round(subtotal
/// x discount / 100)`, `tax = round((subtotal - discount) x tax_rate / 100)`, `total =
/// subtotal - discount + tax`; the totals are the sums of the rounded lines. Problems are
/// named `line_items[i].field`.
pub fn price_lines(
    lines: &[LineRequest<'_>],
    max_lines: usize,
) -> Result<(Vec<PricedLine>, LineTotals), crate::domain::DomainError> {
    let mut fields = crate::domain::FieldErrors::new();
    if lines.len() > max_lines {
        fields.insert("line_items".into(), format!("at most {max_lines} lines"));
    }
    let mut priced = Vec::with_capacity(lines.len());
    let mut totals = LineTotals::default();
    for (i, line) in lines.iter().enumerate() {
        let at = |field: &str| format!("line_items[{i}].{field}");
        let description = line.description.trim();
        if description.is_empty() || description.chars().count() > 500 {
            fields.insert(at("description"), "must be 1 to 500 characters".into());
        }
        let quantity = decimal(line.quantity).filter(|q| *q > Decimal::ZERO);
        if quantity.is_none() {
            fields.insert(at("quantity"), "must be a positive decimal".into());
        }
        if line.unit_price_minor < 0 {
            fields.insert(at("unit_price_minor"), "must not be negative".into());
        }
        let tax_rate = percentage(line.tax_rate);
        if tax_rate.is_none() {
            fields.insert(at("tax_rate"), "must be a percentage from 0 to 100".into());
        }
        let discount = percentage(line.discount);
        if discount.is_none() {
            fields.insert(at("discount"), "must be a percentage from 0 to 100".into());
        }
        let (Some(quantity), Some(tax_rate), Some(discount)) = (quantity, tax_rate, discount) else { continue };
        if line.unit_price_minor < 0 {
            continue;
        }
        let amounts = (|| {
            let subtotal = round_minor(quantity.checked_mul(Decimal::from(line.unit_price_minor))?)?;
            let off = round_minor(Decimal::from(subtotal).checked_mul(discount)? / Decimal::ONE_HUNDRED)?;
            let taxable = subtotal.checked_sub(off)?;
            let tax = round_minor(Decimal::from(taxable).checked_mul(tax_rate)? / Decimal::ONE_HUNDRED)?;
            Some((subtotal, off, tax, taxable.checked_add(tax)?))
        })();
        let Some((subtotal, off, tax, total)) = amounts else {
            fields.insert(at("quantity"), "makes the amount too large".into());
            continue;
        };
        let sums = (
            totals.subtotal_minor.checked_add(subtotal),
            totals.discount_minor.checked_add(off),
            totals.tax_minor.checked_add(tax),
            totals.total_minor.checked_add(total),
        );
        let (Some(s), Some(d), Some(t), Some(g)) = sums else {
            fields.insert("line_items".into(), "the total is too large".into());
            continue;
        };
        totals = LineTotals { subtotal_minor: s, discount_minor: d, tax_minor: t, total_minor: g };
        priced.push(PricedLine {
            description: description.to_owned(),
            quantity: quantity.normalize().to_string(),
            unit_price_minor: line.unit_price_minor,
            tax_rate: tax_rate.normalize().to_string(),
            discount: discount.normalize().to_string(),
            subtotal_minor: subtotal,
            discount_minor: off,
            tax_minor: tax,
            total_minor: total,
        });
    }
    crate::domain::DomainError::check(fields)?;
    Ok((priced, totals))
}
