//! Clients: the organisations a firm works for (a tenant table).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pagination::{Page, PageSpec, keyset_comparison, like_contains, past_text_key, past_time_key};
use super::{DomainError, FieldErrors, FirmId};
use crate::db::functions::cp_search_client_ids;
use crate::db::schema::{audit_events, client_notes, clients, conversations, memberships};

/// The fields creating a client needs (an update may leave them out).
pub const REQUIRED_ON_CREATE: [&str; 1] = ["name"];

/// What a client's `status` may be.
pub const CLIENT_STATUSES: [&str; 2] = ["active", "inactive"];

pub const MAX_TAGS: usize = 20;
pub const MAX_CUSTOM_FIELDS: usize = 50;
/// Serialized size limit of `custom_fields`, so one client cannot carry a document.
pub const MAX_CUSTOM_FIELDS_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = clients)]
pub struct Client {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    pub id: Uuid,
    pub name: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub name_key: String,
    #[schema(value_type = super::value_sets::ClientStatus)]
    pub status: String,
    pub industry: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub address: Option<serde_json::Value>,
    pub tags: Vec<String>,
    pub owner_user_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A postal address; every part optional, `country` an ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// Fields for create (all that matter) and update (only those given). For update, an
/// optional field given as `null` clears it.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub name: Option<String>,
    pub status: Option<String>,
    pub industry: Option<Option<String>>,
    pub address: Option<Option<Address>>,
    pub tags: Option<Vec<String>>,
    pub owner_user_id: Option<Option<Uuid>>,
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = clients)]
struct ClientChanges {
    name: Option<String>,
    status: Option<String>,
    industry: Option<Option<String>>,
    address: Option<Option<serde_json::Value>>,
    tags: Option<Vec<String>>,
    owner_user_id: Option<Option<Uuid>>,
    custom_fields: Option<serde_json::Value>,
}

fn checked(input: ClientInput) -> Result<ClientChanges, DomainError> {
    let mut fields = FieldErrors::new();
    let name = input.name.map(|n| n.trim().to_owned());
    if name.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > 200) {
        fields.insert("name".into(), "must be 1 to 200 characters".into());
    }
    if input.status.as_deref().is_some_and(|s| !CLIENT_STATUSES.contains(&s)) {
        fields.insert("status".into(), "must be active or inactive".into());
    }
    let industry = input.industry.map(|i| i.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()));
    if industry.as_ref().is_some_and(|i| i.as_ref().is_some_and(|i| i.chars().count() > 100)) {
        fields.insert("industry".into(), "must be at most 100 characters".into());
    }
    if let Some(Some(address)) = &input.address {
        let parts = [&address.line1, &address.line2, &address.city, &address.region, &address.postal_code];
        if parts.iter().any(|p| p.as_ref().is_some_and(|p| p.chars().count() > 200)) {
            fields.insert("address".into(), "each part must be at most 200 characters".into());
        }
        if address.country.as_ref().is_some_and(|c| c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic())) {
            fields.insert("address.country".into(), "must be a two-letter ISO 3166-1 code".into());
        }
    }
    let tags = input.tags.map(|tags| {
        let mut cleaned: Vec<String> = Vec::new();
        for tag in tags {
            let tag = tag.trim().to_lowercase();
            if !tag.is_empty() && !cleaned.contains(&tag) {
                cleaned.push(tag);
            }
        }
        cleaned
    });
    if tags.as_ref().is_some_and(|t| t.len() > MAX_TAGS || t.iter().any(|t| t.chars().count() > 50)) {
        fields.insert("tags".into(), format!("at most {MAX_TAGS} tags of up to 50 characters"));
    }
    let custom_fields = input.custom_fields.map(serde_json::Value::Object);
    if let Some(custom) = &custom_fields {
        let too_many = custom.as_object().is_some_and(|o| o.len() > MAX_CUSTOM_FIELDS);
        if too_many || custom.to_string().len() > MAX_CUSTOM_FIELDS_BYTES {
            fields.insert(
                "custom_fields".into(),
                format!("at most {MAX_CUSTOM_FIELDS} fields and {MAX_CUSTOM_FIELDS_BYTES} bytes"),
            );
        }
    }
    DomainError::check(fields)?;
    let address = input.address.map(|a| {
        a.map(|mut a| {
            a.country = a.country.map(|c| c.to_ascii_uppercase());
            serde_json::to_value(a).unwrap_or(serde_json::Value::Null)
        })
    });
    Ok(ClientChanges {
        name,
        status: input.status,
        industry,
        address,
        tags,
        owner_user_id: input.owner_user_id,
        custom_fields,
    })
}

/// An owner must be a member of the firm.
async fn check_owner(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    owner: Option<Option<Uuid>>,
) -> Result<(), DomainError> {
    if let Some(Some(user_id)) = owner {
        let member: Option<Uuid> = memberships::table
            .filter(memberships::firm_id.eq(firm.into_uuid()))
            .filter(memberships::user_id.eq(user_id))
            .select(memberships::user_id)
            .first(conn)
            .await
            .optional()?;
        if member.is_none() {
            return Err(DomainError::invalid_field("owner_user_id", "is not a member of this firm"));
        }
    }
    Ok(())
}

pub async fn create(conn: &mut AsyncPgConnection, firm: FirmId, input: ClientInput) -> Result<Client, DomainError> {
    if input.name.is_none() {
        return Err(DomainError::invalid_field("name", "is required"));
    }
    check_owner(conn, firm, input.owner_user_id).await?;
    let changes = checked(input)?;
    Ok(diesel::insert_into(clients::table)
        .values((
            clients::firm_id.eq(firm.into_uuid()),
            clients::id.eq(Uuid::now_v7()),
            clients::name.eq(changes.name.unwrap_or_default()),
            clients::status.eq(changes.status.unwrap_or_else(|| "active".into())),
            clients::industry.eq(changes.industry.flatten()),
            clients::address.eq(changes.address.flatten()),
            clients::tags.eq(changes.tags.unwrap_or_default()),
            clients::owner_user_id.eq(changes.owner_user_id.flatten()),
            clients::custom_fields.eq(changes.custom_fields.unwrap_or_else(|| serde_json::json!({}))),
        ))
        .returning(Client::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Client, DomainError> {
    clients::table
        .filter(clients::firm_id.eq(firm.into_uuid()))
        .filter(clients::id.eq(id))
        .select(Client::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("client"))
}

/// Changes only the fields given.
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: ClientInput,
) -> Result<Client, DomainError> {
    find(conn, firm, id).await?;
    check_owner(conn, firm, input.owner_user_id).await?;
    let changes = checked(input)?;
    Ok(diesel::update(clients::table)
        .filter(clients::firm_id.eq(firm.into_uuid()))
        .filter(clients::id.eq(id))
        .set((changes, clients::updated_at.eq(Utc::now())))
        .returning(Client::as_returning())
        .get_result(conn)
        .await?)
}

/// Archives a client: it leaves default lists but keeps its history.
pub async fn archive(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Client, DomainError> {
    find(conn, firm, id).await?;
    Ok(diesel::update(clients::table)
        .filter(clients::firm_id.eq(firm.into_uuid()))
        .filter(clients::id.eq(id))
        .set((clients::archived_at.eq(Some(Utc::now())), clients::updated_at.eq(Utc::now())))
        .returning(Client::as_returning())
        .get_result(conn)
        .await?)
}

/// List orders: by name or by creation, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ClientSort {
    #[serde(rename = "name")]
    NameAsc,
    #[serde(rename = "-name")]
    NameDesc,
    #[serde(rename = "created_at")]
    CreatedAsc,
    #[default]
    #[serde(rename = "-created_at")]
    CreatedDesc,
}

/// Position in a client list: the sort it belongs to, the sort value and the id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientKey {
    pub sort: ClientSort,
    pub value: String,
    pub id: Uuid,
}

#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    pub status: Option<String>,
    pub tag: Option<String>,
    pub owner_user_id: Option<Uuid>,
    /// Substring of the name, any case.
    pub q: Option<String>,
    pub include_archived: bool,
    pub sort: ClientSort,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &ClientFilter,
    spec: &PageSpec<ClientKey>,
) -> Result<Page<Client, ClientKey>, DomainError> {
    let mut query =
        clients::table.filter(clients::firm_id.eq(firm.into_uuid())).select(Client::as_select()).into_boxed();
    if !filter.include_archived {
        query = query.filter(clients::archived_at.is_null());
    }
    if let Some(status) = &filter.status {
        query = query.filter(clients::status.eq(status.clone()));
    }
    if let Some(tag) = &filter.tag {
        query = query.filter(clients::tags.contains(vec![tag.trim().to_lowercase()]));
    }
    if let Some(owner) = filter.owner_user_id {
        query = query.filter(clients::owner_user_id.eq(owner));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query =
            query.filter(clients::id.eq_any(diesel::select(cp_search_client_ids(like_contains(&q.to_lowercase())))));
    }
    let by_name = matches!(filter.sort, ClientSort::NameAsc | ClientSort::NameDesc);
    let list_ascending = matches!(filter.sort, ClientSort::NameAsc | ClientSort::CreatedAsc);
    let mut ascending = list_ascending;
    if let Some((direction, key)) = &spec.position {
        if key.sort != filter.sort {
            return Err(DomainError::invalid_field("cursor", "belongs to a list in another order"));
        }
        let (op, fetch_ascending) = keyset_comparison(list_ascending, *direction);
        ascending = fetch_ascending;
        query = if by_name {
            query.filter(past_text_key("name_key, id", op, key.value.clone(), key.id))
        } else {
            let at: DateTime<Utc> = key
                .value
                .parse()
                .map_err(|_| DomainError::invalid_field("cursor", "is not a cursor this list issued"))?;
            query.filter(past_time_key("created_at, id", op, at, key.id))
        };
    }
    query = match (by_name, ascending) {
        (true, true) => query.order((clients::name_key.asc(), clients::id.asc())),
        (true, false) => query.order((clients::name_key.desc(), clients::id.desc())),
        (false, true) => query.order((clients::created_at.asc(), clients::id.asc())),
        (false, false) => query.order((clients::created_at.desc(), clients::id.desc())),
    };
    let rows = query.limit(spec.fetch_limit()).load(conn).await?;
    let sort = filter.sort;
    Ok(Page::from_rows(rows, spec, |c: &Client| ClientKey {
        sort,
        value: if by_name { c.name_key.clone() } else { c.created_at.to_rfc3339() },
        id: c.id,
    }))
}

/// One entry of a client's timeline: a note, a change from the audit log, or a
/// conversation about the client (email and SMS threads arrive as conversations), placed
/// at its latest message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// `note`, `change` or `conversation`.
    pub kind: &'static str,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The author of a note, or whoever made a change.
    pub actor_id: Option<Uuid>,
    /// A note's text; a change's action, e.g. `client.updated`; a conversation's subject.
    pub text: String,
    /// A change's metadata (field names, never values); a conversation's channel, status
    /// and message count.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// id, last message, created, creator, subject, channel, status, messages.
type ConversationRow = (Uuid, Option<DateTime<Utc>>, DateTime<Utc>, Option<Uuid>, String, String, String, i64);

/// id, when, actor, action, metadata.
type ChangeRow = (Uuid, DateTime<Utc>, Option<Uuid>, String, serde_json::Value);

pub async fn add_note(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    client_id: Uuid,
    author: Option<Uuid>,
    body: &str,
) -> Result<TimelineEntry, DomainError> {
    find(conn, firm, client_id).await?;
    let body = body.trim();
    if body.is_empty() || body.chars().count() > 10_000 {
        return Err(DomainError::invalid_field("body", "must be 1 to 10000 characters"));
    }
    let (id, at): (Uuid, DateTime<Utc>) = diesel::insert_into(client_notes::table)
        .values((
            client_notes::firm_id.eq(firm.into_uuid()),
            client_notes::id.eq(Uuid::now_v7()),
            client_notes::client_id.eq(client_id),
            client_notes::author_user_id.eq(author),
            client_notes::body.eq(body),
        ))
        .returning((client_notes::id, client_notes::created_at))
        .get_result(conn)
        .await?;
    Ok(TimelineEntry { kind: "note", id, at, actor_id: author, text: body.to_owned(), detail: None })
}

/// A client's notes and changes, newest first, at most `limit` (each source is read up to
/// `limit`, then merged).
pub async fn timeline(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    client_id: Uuid,
    limit: i64,
) -> Result<Vec<TimelineEntry>, DomainError> {
    find(conn, firm, client_id).await?;
    let notes: Vec<(Uuid, DateTime<Utc>, Option<Uuid>, String)> = client_notes::table
        .filter(client_notes::firm_id.eq(firm.into_uuid()))
        .filter(client_notes::client_id.eq(client_id))
        .order((client_notes::created_at.desc(), client_notes::id.desc()))
        .select((client_notes::id, client_notes::created_at, client_notes::author_user_id, client_notes::body))
        .limit(limit)
        .load(conn)
        .await?;
    let changes: Vec<ChangeRow> = audit_events::table
        .filter(audit_events::firm_id.eq(firm.into_uuid()))
        .filter(audit_events::target_type.eq("client"))
        .filter(audit_events::target_id.eq(client_id.to_string()))
        // The note itself is on the timeline; its audit record would repeat it.
        .filter(audit_events::action.ne("client.note_added"))
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .select((
            audit_events::id,
            audit_events::occurred_at,
            audit_events::actor_id,
            audit_events::action,
            audit_events::metadata,
        ))
        .limit(limit)
        .load(conn)
        .await?;
    let threads: Vec<ConversationRow> = conversations::table
        .filter(conversations::firm_id.eq(firm.into_uuid()))
        .filter(conversations::client_id.eq(client_id))
        .order(conversations::updated_at.desc())
        .select((
            conversations::id,
            conversations::last_message_at,
            conversations::created_at,
            conversations::created_by,
            conversations::subject,
            conversations::channel,
            conversations::status,
            conversations::last_seq,
        ))
        .limit(limit)
        .load(conn)
        .await?;
    let mut entries: Vec<TimelineEntry> = notes
        .into_iter()
        .map(|(id, at, actor_id, text)| TimelineEntry { kind: "note", id, at, actor_id, text, detail: None })
        .chain(changes.into_iter().map(|(id, at, actor_id, text, detail)| TimelineEntry {
            kind: "change",
            id,
            at,
            actor_id,
            text,
            detail: Some(detail),
        }))
        .chain(threads.into_iter().map(
            |(id, last_message_at, created_at, actor_id, subject, channel, status, messages)| TimelineEntry {
                kind: "conversation",
                id,
                at: last_message_at.unwrap_or(created_at),
                actor_id,
                text: subject,
                detail: Some(serde_json::json!({ "channel": channel, "status": status, "messages": messages })),
            },
        ))
        .collect();
    entries.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    entries.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(entries)
}
