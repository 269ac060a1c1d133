//! The per-firm audit log: append-only, metadata only (who, what, target, when, result,
//! request id, ip), never message bodies or document content.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pagination::{Direction, Page, PageSpec, past_time_key};
use super::{DomainError, FirmId, RequestMeta};
use crate::db::schema::audit_events;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorType {
    User,
    Operator,
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::Operator => "operator",
            ActorType::System => "system",
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub struct AuditEvent {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub result: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

/// An event to record. Build with [`NewAuditEvent::new`] and the `with_*` methods.
///
/// An absent value is inserted as NULL (every optional column's default) rather than as
/// `DEFAULT`: with `DEFAULT` the statement's text would depend on which values are absent,
/// and diesel would prepare it afresh for every write.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub struct NewAuditEvent {
    firm_id: Uuid,
    id: Uuid,
    actor_type: String,
    actor_id: Option<Uuid>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    result: String,
    request_id: Option<String>,
    ip: Option<String>,
    metadata: serde_json::Value,
}

impl NewAuditEvent {
    pub fn new(firm: FirmId, actor_type: ActorType, actor_id: Option<Uuid>, action: &str, result: Outcome) -> Self {
        Self {
            firm_id: firm.into_uuid(),
            id: Uuid::now_v7(),
            actor_type: actor_type.as_str().to_owned(),
            actor_id,
            action: action.to_owned(),
            target_type: None,
            target_id: None,
            result: result.as_str().to_owned(),
            request_id: None,
            ip: None,
            metadata: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn with_target(mut self, target_type: &str, target_id: impl ToString) -> Self {
        self.target_type = Some(target_type.to_owned());
        self.target_id = Some(target_id.to_string());
        self
    }

    pub fn with_request(mut self, meta: &RequestMeta) -> Self {
        self.request_id = meta.request_id.clone();
        self.ip = meta.ip.clone();
        self
    }

    pub fn set_action(&mut self, action: &str) {
        action.clone_into(&mut self.action);
    }

    /// Metadata must stay metadata: ids, counts, field names, never content.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

pub async fn record(conn: &mut AsyncPgConnection, event: &NewAuditEvent) -> Result<(), DomainError> {
    diesel::insert_into(audit_events::table).values(event).execute(conn).await?;
    Ok(())
}

/// Narrows an audit listing; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Sort key of the audit list (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AuditKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &AuditFilter,
    spec: &PageSpec<AuditKey>,
) -> Result<Page<AuditEvent, AuditKey>, DomainError> {
    let mut query = audit_events::table
        .filter(audit_events::firm_id.eq(firm.into_uuid()))
        .select(AuditEvent::as_select())
        .into_boxed();
    if let Some(action) = &filter.action {
        query = query.filter(audit_events::action.eq(action.clone()));
    }
    if let Some(actor) = filter.actor_id {
        query = query.filter(audit_events::actor_id.eq(actor));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_events::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_events::occurred_at.lt(to));
    }
    // Row comparison keeps the keyset condition on the (firm_id, occurred_at, id) index.
    query = match spec.position {
        Some((Direction::Forward, key)) => query
            .filter(past_time_key("occurred_at, id", "<", key.at, key.id))
            .order((audit_events::occurred_at.desc(), audit_events::id.desc())),
        Some((Direction::Backward, key)) => query
            .filter(past_time_key("occurred_at, id", ">", key.at, key.id))
            .order((audit_events::occurred_at.asc(), audit_events::id.asc())),
        None => query.order((audit_events::occurred_at.desc(), audit_events::id.desc())),
    };
    let rows = query.limit(spec.fetch_limit()).load(conn).await?;
    Ok(Page::from_rows(rows, spec, |e: &AuditEvent| AuditKey { at: e.occurred_at, id: e.id }))
}
