//! Proposals for a prospect (tenant tables). Line items are versioned; totals are computed
//! here, never taken from the client. A sent version is frozen: changing a sent proposal
//! starts a new draft version. Accepting one marks its prospect won.
//!
//! Rounding rule (per line, half away from zero, to the currency's minor unit):
//! `line_subtotal = round(quantity x unit_price_minor)`,
//! `line_tax = round(line_subtotal x tax_rate / 100)`; the proposal's subtotal, tax and
//! total are the sums of the rounded line amounts. Decimal arithmetic throughout; floats
//! never touch money.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::money::{LineRequest, price_lines};
use super::pagination::{Page, PageSpec, keyset_comparison, past_time_key};
use super::pipeline::{self, CreatedKey};
use super::{DomainError, FirmId};
use crate::db::schema::{proposal_versions, proposals, prospects};

/// A proposal's statuses, as the table's CHECK holds them.
pub const PROPOSAL_STATUSES: [&str; 5] = ["draft", "sent", "accepted", "declined", "expired"];

pub const MAX_LINE_ITEMS: usize = 200;

/// A line as submitted. `quantity` and `tax_rate` (percent) are decimals, given as JSON
/// strings or numbers; `unit_price_minor` is an integer number of minor units.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemInput {
    pub description: String,
    #[schema(value_type = String, example = "1.5")]
    pub quantity: serde_json::Value,
    pub unit_price_minor: i64,
    #[schema(value_type = Option<String>, example = "20")]
    pub tax_rate: Option<serde_json::Value>,
}

/// A line as stored, with its computed amounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineItem {
    pub description: String,
    pub quantity: String,
    pub unit_price_minor: i64,
    pub tax_rate: String,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

/// Validates lines and computes their amounts and the totals (see the module's rounding rule).
pub fn price(items: &[LineItemInput]) -> Result<(Vec<LineItem>, Totals), DomainError> {
    let requests: Vec<LineRequest<'_>> = items
        .iter()
        .map(|item| LineRequest {
            description: &item.description,
            quantity: &item.quantity,
            unit_price_minor: item.unit_price_minor,
            tax_rate: item.tax_rate.as_ref(),
            discount: None,
        })
        .collect();
    let (lines, totals) = price_lines(&requests, MAX_LINE_ITEMS)?;
    let lines = lines
        .into_iter()
        .map(|line| LineItem {
            description: line.description,
            quantity: line.quantity,
            unit_price_minor: line.unit_price_minor,
            tax_rate: line.tax_rate,
            subtotal_minor: line.subtotal_minor,
            tax_minor: line.tax_minor,
            total_minor: line.total_minor,
        })
        .collect();
    Ok((
        lines,
        Totals { subtotal_minor: totals.subtotal_minor, tax_minor: totals.tax_minor, total_minor: totals.total_minor },
    ))
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = proposals)]
struct ProposalRow {
    id: Uuid,
    prospect_id: Uuid,
    title: String,
    currency: String,
    status: String,
    current_version: i32,
    sent_at: Option<DateTime<Utc>>,
    decided_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = proposal_versions)]
struct VersionRow {
    version: i32,
    line_items: serde_json::Value,
    subtotal_minor: i64,
    tax_minor: i64,
    total_minor: i64,
}

/// A proposal with one of its versions (the current one unless asked otherwise).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Proposal {
    pub id: Uuid,
    pub prospect_id: Uuid,
    pub title: String,
    pub currency: String,
    #[schema(value_type = super::value_sets::ProposalStatus)]
    pub status: String,
    pub current_version: i32,
    /// The version shown here.
    pub version: i32,
    pub line_items: Vec<LineItem>,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub sent_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

async fn row(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid, lock: bool) -> Result<ProposalRow, DomainError> {
    let query = proposals::table
        .filter(proposals::firm_id.eq(firm.into_uuid()))
        .filter(proposals::id.eq(id))
        .select(ProposalRow::as_select());
    let found =
        if lock { query.for_update().first(conn).await.optional()? } else { query.first(conn).await.optional()? };
    found.ok_or(DomainError::NotFound("proposal"))
}

/// The proposal with `version` (default: its current one).
pub async fn find(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    version: Option<i32>,
) -> Result<Proposal, DomainError> {
    let p = row(conn, firm, id, false).await?;
    let wanted = version.unwrap_or(p.current_version);
    let v: VersionRow = proposal_versions::table
        .filter(proposal_versions::firm_id.eq(firm.into_uuid()))
        .filter(proposal_versions::proposal_id.eq(id))
        .filter(proposal_versions::version.eq(wanted))
        .select(VersionRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("proposal version"))?;
    Ok(Proposal {
        id: p.id,
        prospect_id: p.prospect_id,
        title: p.title,
        currency: p.currency,
        status: p.status,
        current_version: p.current_version,
        version: v.version,
        line_items: super::from_json("proposal lines", v.line_items)?,
        subtotal_minor: v.subtotal_minor,
        tax_minor: v.tax_minor,
        total_minor: v.total_minor,
        sent_at: p.sent_at,
        decided_at: p.decided_at,
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

async fn write_version(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    version: i32,
    lines: &[LineItem],
    totals: &Totals,
    replace: bool,
) -> Result<(), DomainError> {
    let items = serde_json::to_value(lines).map_err(|e| DomainError::Internal(e.to_string()))?;
    if replace {
        diesel::update(proposal_versions::table)
            .filter(proposal_versions::firm_id.eq(firm.into_uuid()))
            .filter(proposal_versions::proposal_id.eq(id))
            .filter(proposal_versions::version.eq(version))
            .set((
                proposal_versions::line_items.eq(items),
                proposal_versions::subtotal_minor.eq(totals.subtotal_minor),
                proposal_versions::tax_minor.eq(totals.tax_minor),
                proposal_versions::total_minor.eq(totals.total_minor),
            ))
            .execute(conn)
            .await?;
    } else {
        diesel::insert_into(proposal_versions::table)
            .values((
                proposal_versions::firm_id.eq(firm.into_uuid()),
                proposal_versions::proposal_id.eq(id),
                proposal_versions::version.eq(version),
                proposal_versions::line_items.eq(items),
                proposal_versions::subtotal_minor.eq(totals.subtotal_minor),
                proposal_versions::tax_minor.eq(totals.tax_minor),
                proposal_versions::total_minor.eq(totals.total_minor),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Drafts a proposal for a prospect; the currency defaults to the prospect's.
pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    prospect_id: Uuid,
    title: &str,
    currency: Option<String>,
    items: &[LineItemInput],
) -> Result<Proposal, DomainError> {
    let prospect = pipeline::find_prospect(conn, firm, prospect_id).await?;
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(DomainError::invalid_field("title", "must be 1 to 200 characters"));
    }
    let currency = currency.map_or(prospect.currency, |c| c.trim().to_ascii_uppercase());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DomainError::invalid_field("currency", "must be an ISO 4217 code such as USD"));
    }
    let (lines, totals) = price(items)?;
    let id = Uuid::now_v7();
    diesel::insert_into(proposals::table)
        .values((
            proposals::firm_id.eq(firm.into_uuid()),
            proposals::id.eq(id),
            proposals::prospect_id.eq(prospect_id),
            proposals::title.eq(title),
            proposals::currency.eq(currency),
        ))
        .execute(conn)
        .await?;
    write_version(conn, firm, id, 1, &lines, &totals, false).await?;
    find(conn, firm, id, None).await
}

/// Replaces the line items (and title). A draft changes in place; a sent proposal keeps
/// its sent version and gets a new draft version; a decided one no longer changes.
pub async fn revise(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    title: Option<String>,
    items: &[LineItemInput],
) -> Result<Proposal, DomainError> {
    let p = row(conn, firm, id, true).await?;
    let (lines, totals) = price(items)?;
    let title = title.map(|t| t.trim().to_owned());
    if title.as_ref().is_some_and(|t| t.is_empty() || t.chars().count() > 200) {
        return Err(DomainError::invalid_field("title", "must be 1 to 200 characters"));
    }
    let version = match p.status.as_str() {
        "draft" => {
            write_version(conn, firm, id, p.current_version, &lines, &totals, true).await?;
            p.current_version
        }
        "sent" => {
            let next = p.current_version + 1;
            write_version(conn, firm, id, next, &lines, &totals, false).await?;
            next
        }
        other => return Err(DomainError::Conflict(format!("a proposal that is {other} can no longer change"))),
    };
    diesel::update(proposals::table)
        .filter(proposals::firm_id.eq(firm.into_uuid()))
        .filter(proposals::id.eq(id))
        .set((
            title.map(|t| proposals::title.eq(t)),
            proposals::status.eq("draft"),
            proposals::current_version.eq(version),
            proposals::sent_at.eq(None::<DateTime<Utc>>),
            proposals::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    find(conn, firm, id, None).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Send,
    Accept,
    Decline,
    Expire,
}

/// Moves a proposal along `draft -> sent -> accepted | declined | expired`; anything else
/// is a conflict. Accepting marks the prospect won.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    to: Transition,
) -> Result<Proposal, DomainError> {
    let p = row(conn, firm, id, true).await?;
    let next = match (p.status.as_str(), to) {
        ("draft", Transition::Send) => "sent",
        ("sent", Transition::Accept) => "accepted",
        ("sent", Transition::Decline) => "declined",
        ("sent", Transition::Expire) => "expired",
        (from, _) => {
            return Err(DomainError::Conflict(format!(
                "a {from} proposal cannot be {}",
                match to {
                    Transition::Send => "sent",
                    Transition::Accept => "accepted",
                    Transition::Decline => "declined",
                    Transition::Expire => "expired",
                }
            )));
        }
    };
    if to == Transition::Send && find(conn, firm, id, None).await?.line_items.is_empty() {
        return Err(DomainError::invalid_field("line_items", "a proposal needs at least one line to be sent"));
    }
    let now = Utc::now();
    diesel::update(proposals::table)
        .filter(proposals::firm_id.eq(firm.into_uuid()))
        .filter(proposals::id.eq(id))
        .set((
            proposals::status.eq(next),
            (to == Transition::Send).then(|| proposals::sent_at.eq(Some(now))),
            (to != Transition::Send).then(|| proposals::decided_at.eq(Some(now))),
            proposals::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    if to == Transition::Accept {
        diesel::update(prospects::table)
            .filter(prospects::firm_id.eq(firm.into_uuid()))
            .filter(prospects::id.eq(p.prospect_id))
            .set((prospects::stage.eq("won"), prospects::updated_at.eq(now)))
            .execute(conn)
            .await?;
    }
    find(conn, firm, id, None).await
}

/// A prospect's proposals (or all), newest first, each with its current version.
pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    prospect_id: Option<Uuid>,
    spec: &PageSpec<CreatedKey>,
) -> Result<Page<Proposal, CreatedKey>, DomainError> {
    let mut query = proposals::table.filter(proposals::firm_id.eq(firm.into_uuid())).select(proposals::id).into_boxed();
    if let Some(prospect) = prospect_id {
        query = query.filter(proposals::prospect_id.eq(prospect));
    }
    let mut ascending = false;
    if let Some((direction, key)) = spec.position {
        let (op, fetch_ascending) = keyset_comparison(false, direction);
        ascending = fetch_ascending;
        query = query.filter(past_time_key("created_at, id", op, key.at, key.id));
    }
    query = if ascending {
        query.order((proposals::created_at.asc(), proposals::id.asc()))
    } else {
        query.order((proposals::created_at.desc(), proposals::id.desc()))
    };
    let ids: Vec<Uuid> = query.limit(spec.fetch_limit()).load(conn).await?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        rows.push(find(conn, firm, id, None).await?);
    }
    Ok(Page::from_rows(rows, spec, |p: &Proposal| CreatedKey { at: p.created_at, id: p.id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: &str, unit: i64, tax: &str) -> LineItemInput {
        LineItemInput {
            description: "work".into(),
            quantity: serde_json::Value::String(quantity.into()),
            unit_price_minor: unit,
            tax_rate: Some(serde_json::Value::String(tax.into())),
        }
    }

    /// Worked by hand: 1.5 h x 333 = 499.5 -> 500; 7.25 % of 500 = 36.25 -> 36.
    /// 3 x 1999 = 5997; 20 % = 1199.4 -> 1199. 0.333 x 1000 = 333; 0 % -> 0.
    /// Subtotal 500 + 5997 + 333 = 6830; tax 36 + 1199 + 0 = 1235; total 8065.
    #[test]
    fn totals_round_per_line_half_away_from_zero() {
        let (lines, totals) =
            price(&[line("1.5", 333, "7.25"), line("3", 1999, "20"), line("0.333", 1000, "0")]).expect("valid");
        assert_eq!(lines[0].subtotal_minor, 500);
        assert_eq!(lines[0].tax_minor, 36);
        assert_eq!(lines[1].tax_minor, 1199);
        assert_eq!(lines[2].subtotal_minor, 333);
        assert_eq!(totals, Totals { subtotal_minor: 6830, tax_minor: 1235, total_minor: 8065 });
    }

    #[test]
    fn a_half_minor_unit_of_tax_rounds_up() {
        // 1 x 5 at 10 % = 0.5 of tax -> 1.
        let (lines, _) = price(&[line("1", 5, "10")]).expect("valid");
        assert_eq!(lines[0].tax_minor, 1);
    }

    #[test]
    fn bad_lines_are_named() {
        let Err(DomainError::Validation { fields, .. }) =
            price(&[line("-1", 100, "5"), line("1", -5, "5"), line("1", 5, "150"), line("abc", 5, "5")])
        else {
            panic!("expected validation errors");
        };
        for field in [
            "line_items[0].quantity",
            "line_items[1].unit_price_minor",
            "line_items[2].tax_rate",
            "line_items[3].quantity",
        ] {
            assert!(fields.contains_key(field), "{field}: {fields:?}");
        }
        assert!(price(&[line("1e30", i64::MAX, "0")]).is_err(), "overflow is an error, not a panic");
    }
}
