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
