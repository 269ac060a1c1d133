//! A firm's email rules: conditions on headers, sender, recipients, subject or text, and
//! what to do when they hold (assign, tag, set status, ignore). They run in position order
//! on every message triage let through; a rule with `stop` ends the run.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DomainError, FieldErrors, from_json, to_json};
use crate::db::schema::email_rules;
use crate::ingest::email::parse::ParsedEmail;
use crate::tenant::FirmId;

pub const MAX_RULES: i64 = 200;
const MAX_CONDITIONS: usize = 20;
const MAX_TAGS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// A header named by `header`.
    Header,
    /// The sender's address.
    From,
    /// Any To or Cc address.
    Recipient,
    Subject,
    /// The plain text body.
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Contains,
    Equals,
    StartsWith,
    EndsWith,
    /// The header is present (any value); `value` is ignored.
    Exists,
}

/// One test; text comparisons ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: Field,
    /// The header's name, for `field = header`.
    #[serde(default)]
    pub header: Option<String>,
    pub operator: Operator,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    /// Assign the conversation to this member.
    #[serde(default)]
    pub assign_to: Option<Uuid>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// `open`, `pending` or `closed`.
    #[serde(default)]
    pub set_status: Option<String>,
    /// Keep the message out of the conversations (triaged as `ignored`).
    #[serde(default)]
    pub ignore: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rule {
    pub id: Uuid,
    pub position: i32,
    pub name: String,
    pub enabled: bool,
    /// All must hold.
    pub conditions: Vec<Condition>,
    pub actions: Actions,
    pub stop: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct RuleInput {
    pub position: i32,
    pub name: String,
    pub enabled: bool,
    pub conditions: Vec<Condition>,
    pub actions: Actions,
    pub stop: bool,
}

/// What the rules that matched ask for, combined in order (a later assignee or status
/// wins; tags add up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleOutcome {
    /// Names of the rules that matched, in order.
    pub matched: Vec<String>,
    pub assign_to: Option<Uuid>,
    pub tags: Vec<String>,
    pub status: Option<String>,
    pub ignore: bool,
}

fn text_matches(operator: Operator, haystack: &str, needle: &str) -> bool {
    let haystack = haystack.to_lowercase();
    let needle = needle.to_lowercase();
    match operator {
        Operator::Contains => haystack.contains(&needle),
        Operator::Equals => haystack.trim() == needle.trim(),
        Operator::StartsWith => haystack.trim_start().starts_with(needle.trim_start()),
        Operator::EndsWith => haystack.trim_end().ends_with(needle.trim_end()),
        Operator::Exists => true,
    }
}

fn holds(condition: &Condition, email: &ParsedEmail) -> bool {
    match condition.field {
        Field::Header => {
            let Some(name) = &condition.header else { return false };
            let mut values = email.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            match condition.operator {
                Operator::Exists => values.next().is_some(),
                op => values.any(|v| text_matches(op, v, &condition.value)),
            }
        }
        Field::From => {
            email.from.as_ref().is_some_and(|f| text_matches(condition.operator, &f.address, &condition.value))
        }
        Field::Recipient => email.recipients().any(|a| text_matches(condition.operator, a, &condition.value)),
        Field::Subject => text_matches(condition.operator, &email.subject, &condition.value),
        Field::Body => text_matches(condition.operator, &email.text, &condition.value),
    }
}

/// Runs the rules over a message. Pure: the dry run and the import share it.
pub fn evaluate(rules: &[Rule], email: &ParsedEmail) -> RuleOutcome {
    let mut outcome = RuleOutcome::default();
    for rule in rules.iter().filter(|r| r.enabled) {
        if rule.conditions.is_empty() || !rule.conditions.iter().all(|c| holds(c, email)) {
            continue;
        }
        outcome.matched.push(rule.name.clone());
        if rule.actions.assign_to.is_some() {
            outcome.assign_to = rule.actions.assign_to;
        }
        for tag in &rule.actions.add_tags {
            if !outcome.tags.contains(tag) {
                outcome.tags.push(tag.clone());
            }
        }
        if rule.actions.set_status.is_some() {
            outcome.status.clone_from(&rule.actions.set_status);
        }
        outcome.ignore |= rule.actions.ignore;
        if rule.stop {
            break;
        }
    }
    outcome
}

pub fn check(input: &mut RuleInput) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    input.name = input.name.trim().to_owned();
    if input.name.is_empty() || input.name.chars().count() > 100 {
        errors.insert("name".into(), "must be 1 to 100 characters".into());
    }
    if !(0..=10_000).contains(&input.position) {
        errors.insert("position".into(), "must be 0 to 10000".into());
    }
    if input.conditions.is_empty() || input.conditions.len() > MAX_CONDITIONS {
        errors.insert("conditions".into(), format!("must hold 1 to {MAX_CONDITIONS} conditions"));
    }
    for (i, condition) in input.conditions.iter().enumerate() {
        if condition.field == Field::Header
            && condition
                .header
                .as_deref()
                .is_none_or(|h| h.is_empty() || h.len() > 100 || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
        {
            errors.insert(format!("conditions[{i}].header"), "must name a header".into());
        }
        if condition.operator == Operator::Exists && condition.field != Field::Header {
            errors.insert(format!("conditions[{i}].operator"), "exists applies to headers only".into());
        }
        if condition.operator != Operator::Exists
            && (condition.value.is_empty() || condition.value.chars().count() > 500)
        {
            errors.insert(format!("conditions[{i}].value"), "must be 1 to 500 characters".into());
        }
    }
    let actions = &mut input.actions;
    actions.add_tags = actions.add_tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
    actions.add_tags.dedup();
    if actions.add_tags.len() > MAX_TAGS || actions.add_tags.iter().any(|t| t.chars().count() > 50) {
        errors.insert("actions.add_tags".into(), format!("at most {MAX_TAGS} tags of up to 50 characters"));
    }
    if let Some(status) = &actions.set_status
        && !matches!(status.as_str(), "open" | "pending" | "closed")
    {
        errors.insert("actions.set_status".into(), "must be open, pending or closed".into());
    }
    if actions.assign_to.is_none() && actions.add_tags.is_empty() && actions.set_status.is_none() && !actions.ignore {
        errors.insert("actions".into(), "must ask for something: assign_to, add_tags, set_status or ignore".into());
    }
    DomainError::check(errors)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = email_rules)]
struct RuleRow {
    id: Uuid,
    position: i32,
    name: String,
    enabled: bool,
    conditions: serde_json::Value,
    actions: serde_json::Value,
    stop: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl RuleRow {
    fn into_rule(self) -> Result<Rule, DomainError> {
        Ok(Rule {
            id: self.id,
            position: self.position,
            name: self.name,
            enabled: self.enabled,
            conditions: from_json("email rule conditions", self.conditions)?,
            actions: from_json("email rule actions", self.actions)?,
            stop: self.stop,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn list(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<Rule>, DomainError> {
    email_rules::table
        .filter(email_rules::firm_id.eq(firm.into_uuid()))
        .order((email_rules::position, email_rules::created_at, email_rules::id))
        .select(RuleRow::as_select())
        .limit(MAX_RULES)
        .load(conn)
        .await?
        .into_iter()
        .map(RuleRow::into_rule)
        .collect()
}

pub async fn create(conn: &mut AsyncPgConnection, firm: FirmId, mut input: RuleInput) -> Result<Rule, DomainError> {
    check(&mut input)?;
    let count: i64 =
        email_rules::table.filter(email_rules::firm_id.eq(firm.into_uuid())).count().get_result(conn).await?;
    if count >= MAX_RULES {
        return Err(DomainError::Conflict(format!("a firm may have at most {MAX_RULES} email rules")));
    }
    diesel::insert_into(email_rules::table)
        .values((
            email_rules::firm_id.eq(firm.into_uuid()),
            email_rules::id.eq(Uuid::now_v7()),
            email_rules::position.eq(input.position),
            email_rules::name.eq(&input.name),
            email_rules::enabled.eq(input.enabled),
            email_rules::conditions.eq(to_json(&input.conditions)?),
            email_rules::actions.eq(to_json(&input.actions)?),
            email_rules::stop.eq(input.stop),
        ))
        .returning(RuleRow::as_returning())
        .get_result(conn)
        .await?
        .into_rule()
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    mut input: RuleInput,
) -> Result<Rule, DomainError> {
    check(&mut input)?;
    diesel::update(email_rules::table)
        .filter(email_rules::firm_id.eq(firm.into_uuid()))
        .filter(email_rules::id.eq(id))
        .set((
            email_rules::position.eq(input.position),
            email_rules::name.eq(&input.name),
            email_rules::enabled.eq(input.enabled),
            email_rules::conditions.eq(to_json(&input.conditions)?),
            email_rules::actions.eq(to_json(&input.actions)?),
            email_rules::stop.eq(input.stop),
            email_rules::updated_at.eq(Utc::now()),
        ))
        .returning(RuleRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("email rule"))?
        .into_rule()
}

pub async fn delete(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<(), DomainError> {
    let deleted = diesel::delete(email_rules::table)
        .filter(email_rules::firm_id.eq(firm.into_uuid()))
        .filter(email_rules::id.eq(id))
        .execute(conn)
        .await?;
    if deleted == 0 {
        return Err(DomainError::NotFound("email rule"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::email::parse::parse;

    fn rule(name: &str, conditions: Vec<Condition>, actions: Actions, stop: bool) -> Rule {
        Rule {
            id: Uuid::now_v7(),
            position: 0,
            name: name.into(),
            enabled: true,
            conditions,
            actions,
            stop,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn rules_run_in_order_and_stop_when_asked() {
        let email = parse(b"From: Billing@Client.example\r\nTo: desk@firm.test\r\nSubject: Invoice 42 overdue\r\nX-Priority: 1\r\n\r\nPlease pay\r\n");
        let member = Uuid::now_v7();
        let rules = vec![
            rule(
                "invoices",
                vec![Condition {
                    field: Field::Subject,
                    header: None,
                    operator: Operator::Contains,
                    value: "INVOICE".into(),
                }],
                Actions { add_tags: vec!["billing".into()], set_status: Some("pending".into()), ..Default::default() },
                false,
            ),
            rule(
                "urgent",
                vec![Condition {
                    field: Field::Header,
                    header: Some("x-priority".into()),
                    operator: Operator::Exists,
                    value: String::new(),
                }],
                Actions { assign_to: Some(member), add_tags: vec!["urgent".into()], ..Default::default() },
                true,
            ),
            rule(
                "never reached",
                vec![Condition {
                    field: Field::From,
                    header: None,
                    operator: Operator::EndsWith,
                    value: "client.example".into(),
                }],
                Actions { ignore: true, ..Default::default() },
                false,
            ),
        ];
        let outcome = evaluate(&rules, &email);
        assert_eq!(outcome.matched, vec!["invoices", "urgent"]);
        assert_eq!(outcome.tags, vec!["billing", "urgent"]);
        assert_eq!(outcome.assign_to, Some(member));
        assert_eq!(outcome.status.as_deref(), Some("pending"));
        assert!(!outcome.ignore);
        let other = parse(b"From: someone@else.example\r\nSubject: hello\r\n\r\nhi\r\n");
        assert_eq!(evaluate(&rules, &other), RuleOutcome::default());
    }

    #[test]
    fn a_rule_must_test_something_and_ask_for_something() {
        let mut empty = RuleInput {
            position: 0,
            name: "x".into(),
            enabled: true,
            conditions: Vec::new(),
            actions: Actions::default(),
            stop: false,
        };
        let err = check(&mut empty).unwrap_err();
        let DomainError::Validation { fields, .. } = err else { panic!("validation") };
        assert!(fields.contains_key("conditions") && fields.contains_key("actions"), "{fields:?}");
    }
}
