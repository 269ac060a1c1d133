//! The sales pipeline (tenant tables): leads, and prospects (opportunities with a client).
//! Converting a lead makes or links its client and contact and opens a prospect, in one
//! transaction, exactly once.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::clients::{self, Client, ClientInput};
use super::contacts::{self, Contact, ContactInput, normalize_phone};
use super::money::valid_currency;
use super::pagination::{Page, PageSpec, keyset_comparison, like_contains, past_time_key};
use super::users::normalize_email;
use super::{DomainError, FieldErrors, FirmId};
use crate::db::schema::{leads, memberships, prospects};

pub const LEAD_STATUSES: [&str; 5] = ["new", "contacted", "qualified", "disqualified", "converted"];
pub const STAGES: [&str; 5] = ["discovery", "proposal", "negotiation", "won", "lost"];
/// The fields opening a prospect needs (an update may leave them out).
pub const PROSPECT_REQUIRED_ON_CREATE: [&str; 3] = ["client_id", "name", "currency"];

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = leads)]
pub struct Lead {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    pub id: Uuid,
    pub source: Option<String>,
    #[schema(value_type = super::value_sets::LeadStatus)]
    pub status: String,
    pub first_name: String,
    pub last_name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Integer minor units (cents) of `currency`.
    pub estimated_value_minor: Option<i64>,
    pub currency: Option<String>,
    pub converted_at: Option<DateTime<Utc>>,
    pub client_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub prospect_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct LeadInput {
    pub source: Option<Option<String>>,
    pub status: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub estimated_value_minor: Option<Option<i64>>,
    pub currency: Option<Option<String>>,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = leads)]
struct LeadChanges {
    source: Option<Option<String>>,
    status: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<Option<String>>,
    email: Option<Option<String>>,
    phone: Option<Option<String>>,
    estimated_value_minor: Option<Option<i64>>,
    currency: Option<Option<String>>,
}

fn trimmed(value: Option<Option<String>>) -> Option<Option<String>> {
    value.map(|v| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
}

fn checked_lead(input: LeadInput, phone_region: &str) -> Result<LeadChanges, DomainError> {
    let mut fields = FieldErrors::new();
    if let Some(status) = &input.status {
        if status == "converted" {
            fields.insert("status".into(), "is set by converting the lead".into());
        } else if !LEAD_STATUSES.contains(&status.as_str()) {
            fields.insert("status".into(), "must be new, contacted, qualified or disqualified".into());
        }
    }
    let email = match input.email {
        Some(Some(raw)) => match normalize_email(&raw) {
            Ok(email) => Some(Some(email)),
            Err(problem) => {
                fields.insert("email".into(), problem.into());
                None
            }
        },
        other => other,
    };
    let phone = match input.phone {
        Some(Some(raw)) => match normalize_phone(&raw, phone_region) {
            Ok(phone) => Some(Some(phone)),
            Err(problem) => {
                fields.insert("phone".into(), problem);
                None
            }
        },
        other => other,
    };
    if input.estimated_value_minor.flatten().is_some_and(|v| v < 0) {
        fields.insert("estimated_value_minor".into(), "must not be negative".into());
    }
    let currency = input.currency.map(|c| c.map(|c| c.trim().to_ascii_uppercase()));
    if currency.as_ref().is_some_and(|c| c.as_ref().is_some_and(|c| !valid_currency(c))) {
        fields.insert("currency".into(), "must be an ISO 4217 code such as USD".into());
    }
    DomainError::check(fields)?;
    Ok(LeadChanges {
        source: trimmed(input.source),
        status: input.status,
        first_name: input.first_name.map(|v| v.trim().to_owned()),
        last_name: input.last_name.map(|v| v.trim().to_owned()),
        company: trimmed(input.company),
        email,
        phone,
        estimated_value_minor: input.estimated_value_minor,
        currency,
    })
}

pub async fn create_lead(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: LeadInput,
    phone_region: &str,
) -> Result<Lead, DomainError> {
    require_lead_name(
        input.first_name.as_deref(),
        input.last_name.as_deref(),
        input.company.as_ref().and_then(|c| c.as_deref()),
    )?;
    let c = checked_lead(input, phone_region)?;
    Ok(diesel::insert_into(leads::table)
        .values((
            leads::firm_id.eq(firm.into_uuid()),
            leads::id.eq(Uuid::now_v7()),
            leads::source.eq(c.source.flatten()),
            leads::status.eq(c.status.unwrap_or_else(|| "new".into())),
            leads::first_name.eq(c.first_name.unwrap_or_default()),
            leads::last_name.eq(c.last_name.unwrap_or_default()),
            leads::company.eq(c.company.flatten()),
            leads::email.eq(c.email.flatten()),
            leads::phone.eq(c.phone.flatten()),
            leads::estimated_value_minor.eq(c.estimated_value_minor.flatten()),
            leads::currency.eq(c.currency.flatten()),
        ))
        .returning(Lead::as_returning())
        .get_result(conn)
        .await?)
}

/// A lead is someone or some company: creation and every update keep one of the three.
fn require_lead_name(first: Option<&str>, last: Option<&str>, company: Option<&str>) -> Result<(), DomainError> {
    if [first, last, company].iter().any(|v| v.is_some_and(|v| !v.trim().is_empty())) {
        Ok(())
    } else {
        Err(DomainError::invalid_field("first_name", "a name or a company is required"))
    }
}

async fn lock_lead(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Lead, DomainError> {
    leads::table
        .filter(leads::firm_id.eq(firm.into_uuid()))
        .filter(leads::id.eq(id))
        .select(Lead::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("lead"))
}

pub async fn find_lead(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Lead, DomainError> {
    leads::table
        .filter(leads::firm_id.eq(firm.into_uuid()))
        .filter(leads::id.eq(id))
        .select(Lead::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("lead"))
}

/// Changes a lead; a converted lead is history and stays as it was.
pub async fn update_lead(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: LeadInput,
    phone_region: &str,
) -> Result<Lead, DomainError> {
    let lead = lock_lead(conn, firm, id).await?;
    if lead.status == "converted" {
        return Err(DomainError::Conflict("a converted lead cannot be changed".into()));
    }
    require_lead_name(
        input.first_name.as_deref().or(Some(&lead.first_name)),
        input.last_name.as_deref().or(Some(&lead.last_name)),
        match &input.company {
            Some(changed) => changed.as_deref(),
            None => lead.company.as_deref(),
        },
    )?;
    let changes = checked_lead(input, phone_region)?;
    Ok(diesel::update(leads::table)
        .filter(leads::firm_id.eq(firm.into_uuid()))
        .filter(leads::id.eq(id))
        .set((changes, leads::updated_at.eq(Utc::now())))
        .returning(Lead::as_returning())
        .get_result(conn)
        .await?)
}

pub use super::pagination::CreatedKey;

/// Order of lead and prospect lists: by creation, newest (default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CreatedSort {
    #[serde(rename = "created_at")]
    Oldest,
    #[default]
    #[serde(rename = "-created_at")]
    Newest,
}

#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub status: Option<String>,
    /// Substring of the name, company or email.
    pub q: Option<String>,
    pub sort: CreatedSort,
}

/// Leads, newest first unless asked otherwise.
pub async fn list_leads(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &LeadFilter,
    spec: &PageSpec<CreatedKey>,
) -> Result<Page<Lead, CreatedKey>, DomainError> {
    let mut query = leads::table.filter(leads::firm_id.eq(firm.into_uuid())).select(Lead::as_select()).into_boxed();
    if let Some(status) = &filter.status {
        if !LEAD_STATUSES.contains(&status.as_str()) {
            return Err(DomainError::invalid_field("status", "is not a lead status"));
        }
        query = query.filter(leads::status.eq(status.clone()));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = like_contains(q);
        query = query.filter(
            leads::first_name
                .ilike(pattern.clone())
                .or(leads::last_name.ilike(pattern.clone()))
                .or(leads::company.ilike(pattern.clone()))
                .or(leads::email.ilike(pattern)),
        );
    }
    let list_ascending = filter.sort == CreatedSort::Oldest;
    let mut ascending = list_ascending;
    if let Some((direction, key)) = spec.position {
        let (op, fetch_ascending) = keyset_comparison(list_ascending, direction);
        ascending = fetch_ascending;
        query = query.filter(past_time_key("created_at, id", op, key.at, key.id));
    }
    query = if ascending {
        query.order((leads::created_at.asc(), leads::id.asc()))
    } else {
        query.order((leads::created_at.desc(), leads::id.desc()))
    };
    let rows = query.limit(spec.fetch_limit()).load(conn).await?;
    Ok(Page::from_rows(rows, spec, |l: &Lead| CreatedKey { at: l.created_at, id: l.id }))
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = prospects)]
pub struct Prospect {
    #[serde(skip)]
    #[schema(ignore)]
    pub firm_id: Uuid,
    pub id: Uuid,
    pub client_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub name: String,
    #[schema(value_type = super::value_sets::ProspectStage)]
    pub stage: String,
    /// Integer minor units (cents) of `currency`.
    pub value_minor: i64,
    pub currency: String,
    pub expected_close_date: Option<NaiveDate>,
    /// Percent, 0 to 100.
    pub probability: Option<i16>,
    pub owner_user_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ProspectInput {
    pub client_id: Option<Uuid>,
    pub contact_id: Option<Option<Uuid>>,
    pub name: Option<String>,
    pub stage: Option<String>,
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
    pub expected_close_date: Option<Option<NaiveDate>>,
    pub probability: Option<Option<i16>>,
    pub owner_user_id: Option<Option<Uuid>>,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = prospects)]
struct ProspectChanges {
    client_id: Option<Uuid>,
    contact_id: Option<Option<Uuid>>,
    name: Option<String>,
    stage: Option<String>,
    value_minor: Option<i64>,
    currency: Option<String>,
    expected_close_date: Option<Option<NaiveDate>>,
    probability: Option<Option<i16>>,
    owner_user_id: Option<Option<Uuid>>,
}

async fn checked_prospect(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: ProspectInput,
) -> Result<ProspectChanges, DomainError> {
    let mut fields = FieldErrors::new();
    let name = input.name.map(|n| n.trim().to_owned());
    if name.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > 200) {
        fields.insert("name".into(), "must be 1 to 200 characters".into());
    }
    if input.stage.as_ref().is_some_and(|s| !STAGES.contains(&s.as_str())) {
        fields.insert("stage".into(), "must be discovery, proposal, negotiation, won or lost".into());
    }
    if input.value_minor.is_some_and(|v| v < 0) {
        fields.insert("value_minor".into(), "must not be negative".into());
    }
    let currency = input.currency.map(|c| c.trim().to_ascii_uppercase());
    if currency.as_ref().is_some_and(|c| !valid_currency(c)) {
        fields.insert("currency".into(), "must be an ISO 4217 code such as USD".into());
    }
    if input.probability.flatten().is_some_and(|p| !(0..=100).contains(&p)) {
        fields.insert("probability".into(), "must be 0 to 100".into());
    }
    if let Some(client_id) = input.client_id {
        match clients::find(conn, firm, client_id).await {
            Err(DomainError::NotFound(_)) => {
                fields.insert("client_id".into(), "is not a client of this firm".into());
            }
            other => {
                other?;
            }
        }
    }
    if let Some(Some(contact_id)) = input.contact_id {
        match contacts::find(conn, firm, contact_id).await {
            Err(DomainError::NotFound(_)) => {
                fields.insert("contact_id".into(), "is not a contact of this firm".into());
            }
            other => {
                other?;
            }
        }
    }
    if let Some(Some(owner)) = input.owner_user_id {
        let member: Option<Uuid> = memberships::table
            .filter(memberships::firm_id.eq(firm.into_uuid()))
            .filter(memberships::user_id.eq(owner))
            .select(memberships::user_id)
            .first(conn)
            .await
            .optional()?;
        if member.is_none() {
            fields.insert("owner_user_id".into(), "is not a member of this firm".into());
        }
    }
    DomainError::check(fields)?;
    Ok(ProspectChanges {
        client_id: input.client_id,
        contact_id: input.contact_id,
        name,
        stage: input.stage,
        value_minor: input.value_minor,
        currency,
        expected_close_date: input.expected_close_date,
        probability: input.probability,
        owner_user_id: input.owner_user_id,
    })
}

pub async fn create_prospect(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: ProspectInput,
    lead_id: Option<Uuid>,
) -> Result<Prospect, DomainError> {
    let mut missing = FieldErrors::new();
    for field in PROSPECT_REQUIRED_ON_CREATE {
        let absent = match field {
            "client_id" => input.client_id.is_none(),
            "name" => input.name.is_none(),
            _ => input.currency.is_none(),
        };
        if absent {
            missing.insert(field.into(), "is required".into());
        }
    }
    DomainError::check(missing)?;
    let c = checked_prospect(conn, firm, input).await?;
    Ok(diesel::insert_into(prospects::table)
        .values((
            prospects::firm_id.eq(firm.into_uuid()),
            prospects::id.eq(Uuid::now_v7()),
            prospects::client_id.eq(c.client_id.unwrap_or_default()),
            prospects::contact_id.eq(c.contact_id.flatten()),
            prospects::name.eq(c.name.unwrap_or_default()),
            prospects::stage.eq(c.stage.unwrap_or_else(|| "discovery".into())),
            prospects::value_minor.eq(c.value_minor.unwrap_or(0)),
            prospects::currency.eq(c.currency.unwrap_or_default()),
            prospects::expected_close_date.eq(c.expected_close_date.flatten()),
            prospects::probability.eq(c.probability.flatten()),
            prospects::owner_user_id.eq(c.owner_user_id.flatten()),
            prospects::lead_id.eq(lead_id),
        ))
        .returning(Prospect::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find_prospect(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Prospect, DomainError> {
    prospects::table
        .filter(prospects::firm_id.eq(firm.into_uuid()))
        .filter(prospects::id.eq(id))
        .select(Prospect::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("prospect"))
}

pub async fn update_prospect(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: ProspectInput,
) -> Result<Prospect, DomainError> {
    find_prospect(conn, firm, id).await?;
    let changes = checked_prospect(conn, firm, input).await?;
    Ok(diesel::update(prospects::table)
        .filter(prospects::firm_id.eq(firm.into_uuid()))
        .filter(prospects::id.eq(id))
        .set((changes, prospects::updated_at.eq(Utc::now())))
        .returning(Prospect::as_returning())
        .get_result(conn)
        .await?)
}

#[derive(Debug, Clone, Default)]
pub struct ProspectFilter {
    pub stage: Option<String>,
    pub client_id: Option<Uuid>,
    pub sort: CreatedSort,
}

/// Prospects, newest first unless asked otherwise.
pub async fn list_prospects(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &ProspectFilter,
    spec: &PageSpec<CreatedKey>,
) -> Result<Page<Prospect, CreatedKey>, DomainError> {
    let mut query =
        prospects::table.filter(prospects::firm_id.eq(firm.into_uuid())).select(Prospect::as_select()).into_boxed();
    if let Some(stage) = &filter.stage {
        if !STAGES.contains(&stage.as_str()) {
            return Err(DomainError::invalid_field("stage", "is not a stage"));
        }
        query = query.filter(prospects::stage.eq(stage.clone()));
    }
    if let Some(client) = filter.client_id {
        query = query.filter(prospects::client_id.eq(client));
    }
    let list_ascending = filter.sort == CreatedSort::Oldest;
    let mut ascending = list_ascending;
    if let Some((direction, key)) = spec.position {
        let (op, fetch_ascending) = keyset_comparison(list_ascending, direction);
        ascending = fetch_ascending;
        query = query.filter(past_time_key("created_at, id", op, key.at, key.id));
    }
    query = if ascending {
        query.order((prospects::created_at.asc(), prospects::id.asc()))
    } else {
        query.order((prospects::created_at.desc(), prospects::id.desc()))
    };
    let rows = query.limit(spec.fetch_limit()).load(conn).await?;
    Ok(Page::from_rows(rows, spec, |p: &Prospect| CreatedKey { at: p.created_at, id: p.id }))
}

/// What a conversion produced.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conversion {
    pub lead: Lead,
    pub client: Client,
    /// Whether the client was created by this conversion (rather than linked).
    pub client_created: bool,
    pub contact: Contact,
    pub prospect: Prospect,
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Link this existing client instead of creating one.
    pub client_id: Option<Uuid>,
    pub prospect_name: Option<String>,
    /// Used when the lead has no currency.
    pub currency: Option<String>,
}

/// Converts a lead once. The lead row is locked first, so of two concurrent conversions
/// the second waits, then finds it converted and gets 409.
pub async fn convert(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    options: ConvertOptions,
    phone_region: &str,
) -> Result<Conversion, DomainError> {
    let lead = lock_lead(conn, firm, id).await?;
    match lead.status.as_str() {
        "converted" => return Err(DomainError::Conflict("the lead is already converted".into())),
        "disqualified" => return Err(DomainError::Conflict("a disqualified lead cannot be converted".into())),
        _ => {}
    }
    let currency = lead.currency.clone().or(options.currency.map(|c| c.trim().to_ascii_uppercase()));
    let Some(currency) = currency else {
        return Err(DomainError::invalid_field("currency", "the lead has none; give one to convert"));
    };
    let full_name = format!("{} {}", lead.first_name, lead.last_name).trim().to_owned();
    let (client, client_created) = match options.client_id {
        Some(client_id) => (
            clients::find(conn, firm, client_id)
                .await
                .map_err(DomainError::missing_as_invalid("client_id", "is not a client of this firm"))?,
            false,
        ),
        None => {
            let name = lead.company.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| full_name.clone());
            (clients::create(conn, firm, ClientInput { name: Some(name), ..ClientInput::default() }).await?, true)
        }
    };
    let existing_contact = match &lead.email {
        Some(email) => contacts::by_email(conn, firm, email).await?,
        None => None,
    };
    let contact = match existing_contact {
        Some(contact_id) => contacts::find(conn, firm, contact_id).await?,
        None => {
            let input = ContactInput {
                first_name: Some(lead.first_name.clone()),
                last_name: Some(lead.last_name.clone()).filter(|_| !full_name.is_empty()).or(lead.company.clone()),
                client_id: Some(Some(client.id)),
                emails: Some(lead.email.iter().cloned().collect()),
                phones: Some(lead.phone.iter().cloned().collect()),
                ..ContactInput::default()
            };
            contacts::create(conn, firm, input, phone_region).await?
        }
    };
    let prospect_input = ProspectInput {
        client_id: Some(client.id),
        contact_id: Some(Some(contact.id)),
        name: Some(options.prospect_name.unwrap_or_else(|| format!("{} opportunity", client.name))),
        value_minor: Some(lead.estimated_value_minor.unwrap_or(0)),
        currency: Some(currency),
        ..ProspectInput::default()
    };
    let prospect = create_prospect(conn, firm, prospect_input, Some(lead.id)).await?;
    let now = Utc::now();
    let lead = diesel::update(leads::table)
        .filter(leads::firm_id.eq(firm.into_uuid()))
        .filter(leads::id.eq(id))
        .set((
            leads::status.eq("converted"),
            leads::converted_at.eq(Some(now)),
            leads::client_id.eq(Some(client.id)),
            leads::contact_id.eq(Some(contact.id)),
            leads::prospect_id.eq(Some(prospect.id)),
            leads::updated_at.eq(now),
        ))
        .returning(Lead::as_returning())
        .get_result(conn)
        .await?;
    Ok(Conversion { lead, client, client_created, contact, prospect })
}
