//! Contacts: the people a firm deals with (tenant tables). An email address belongs to one
//! contact per firm, and phone numbers are stored in E.164, because email and SMS
//! ingestion map a sender to a contact by exactly these.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pagination::{Page, PageSpec, keyset_comparison, like_contains, past_text_key, past_time_key};
use super::users::normalize_email;
use super::{DomainError, FieldErrors, FirmId, clients};
use crate::db::functions::cp_search_contact_ids;
use crate::db::schema::{contact_emails, contact_phones, contacts};

pub const MAX_EMAILS: usize = 10;
pub const MAX_PHONES: usize = 10;

/// Normalises a phone number to E.164; numbers without a country code are read as from
/// `default_region` (ISO 3166-1 alpha-2).
pub fn normalize_phone(raw: &str, default_region: &str) -> Result<String, String> {
    let region = default_region.parse::<phonenumber::country::Id>().ok();
    let number = phonenumber::parse(region, raw.trim()).map_err(|_| format!("`{raw}` is not a phone number"))?;
    if !phonenumber::is_valid(&number) {
        return Err(format!("`{raw}` is not a valid phone number"));
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contacts)]
#[allow(dead_code)] // firm_id is selected for the row's shape; the firm is known already
struct ContactRow {
    firm_id: Uuid,
    id: Uuid,
    first_name: String,
    last_name: String,
    name_key: String,
    title: Option<String>,
    client_id: Option<Uuid>,
    portal_access: bool,
    archived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    needs_review: bool,
    // Kept on the row by triggers (migration 000025), so a page reads one table.
    emails: Vec<String>,
    phones: Vec<String>,
    sms_opted_out: Vec<String>,
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Contact {
            id: r.id,
            first_name: r.first_name,
            last_name: r.last_name,
            title: r.title,
            client_id: r.client_id,
            portal_access: r.portal_access,
            emails: r.emails,
            phones: r.phones,
            sms_opted_out: r.sms_opted_out,
            needs_review: r.needs_review,
            archived_at: r.archived_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            name_key: r.name_key,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub client_id: Option<Uuid>,
    pub portal_access: bool,
    /// The first is the primary address.
    pub emails: Vec<String>,
    /// E.164; the first is the primary number.
    pub phones: Vec<String>,
    /// Those of `phones` that replied STOP to the firm's SMS: nothing is sent to them until
    /// they text START.
    pub sms_opted_out: Vec<String>,
    /// Made by the hub from an unknown sender (an SMS from a new number); someone should
    /// check it and clear the flag.
    pub needs_review: bool,
    #[serde(serialize_with = "crate::domain::timestamps::serialize_option")]
    pub archived_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::domain::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    #[schema(ignore)]
    pub name_key: String,
}

#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<Option<String>>,
    pub client_id: Option<Option<Uuid>>,
    pub portal_access: Option<bool>,
    pub emails: Option<Vec<String>>,
    pub phones: Option<Vec<String>>,
    pub needs_review: Option<bool>,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = contacts)]
struct ContactChanges {
    first_name: Option<String>,
    last_name: Option<String>,
    title: Option<Option<String>>,
    client_id: Option<Option<Uuid>>,
    portal_access: Option<bool>,
    needs_review: Option<bool>,
}

struct Checked {
    changes: ContactChanges,
    emails: Option<Vec<String>>,
    phones: Option<Vec<String>>,
}

fn checked(input: ContactInput, phone_region: &str) -> Result<Checked, DomainError> {
    let mut fields = FieldErrors::new();
    let first_name = input.first_name.map(|n| n.trim().to_owned());
    let last_name = input.last_name.map(|n| n.trim().to_owned());
    for (field, value) in [("first_name", &first_name), ("last_name", &last_name)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 100) {
            fields.insert(field.into(), "must be at most 100 characters".into());
        }
    }
    let title = input.title.map(|t| t.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()));
    if title.as_ref().is_some_and(|t| t.as_ref().is_some_and(|t| t.chars().count() > 200)) {
        fields.insert("title".into(), "must be at most 200 characters".into());
    }
    let emails = input.emails.map(|emails| {
        let mut cleaned: Vec<String> = Vec::new();
        for raw in emails {
            match normalize_email(&raw) {
                Ok(email) if !cleaned.contains(&email) => cleaned.push(email),
                Ok(_) => {}
                Err(problem) => {
                    fields.insert("emails".into(), format!("`{raw}` {problem}"));
                }
            }
        }
        cleaned
    });
    if emails.as_ref().is_some_and(|e| e.len() > MAX_EMAILS) {
        fields.insert("emails".into(), format!("at most {MAX_EMAILS} addresses"));
    }
    let phones = input.phones.map(|phones| {
        let mut cleaned: Vec<String> = Vec::new();
        for raw in phones {
            match normalize_phone(&raw, phone_region) {
                Ok(phone) if !cleaned.contains(&phone) => cleaned.push(phone),
                Ok(_) => {}
                Err(problem) => {
                    fields.insert("phones".into(), problem);
                }
            }
        }
        cleaned
    });
    if phones.as_ref().is_some_and(|p| p.len() > MAX_PHONES) {
        fields.insert("phones".into(), format!("at most {MAX_PHONES} numbers"));
    }
    DomainError::check(fields)?;
    Ok(Checked {
        changes: ContactChanges {
            first_name,
            last_name,
            title,
            client_id: input.client_id,
            portal_access: input.portal_access,
            needs_review: input.needs_review,
        },
        emails,
        phones,
    })
}

async fn check_client(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    client: Option<Option<Uuid>>,
) -> Result<(), DomainError> {
    if let Some(Some(client_id)) = client {
        clients::find(conn, firm, client_id)
            .await
            .map_err(DomainError::missing_as_invalid("client_id", "is not a client of this firm"))?;
    }
    Ok(())
}

async fn replace_emails(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    emails: &[String],
) -> Result<(), DomainError> {
    diesel::delete(contact_emails::table)
        .filter(contact_emails::firm_id.eq(firm.into_uuid()))
        .filter(contact_emails::contact_id.eq(id))
        .execute(conn)
        .await?;
    let rows: Vec<_> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            (
                contact_emails::firm_id.eq(firm.into_uuid()),
                contact_emails::email.eq(email.clone()),
                contact_emails::contact_id.eq(id),
                contact_emails::position.eq(i16::try_from(i).unwrap_or(i16::MAX)),
            )
        })
        .collect();
    diesel::insert_into(contact_emails::table)
        .values(rows)
        .execute(conn)
        .await
        .map_err(DomainError::conflict_on_unique("an email address already belongs to another contact in this firm"))?;
    Ok(())
}

async fn replace_phones(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    phones: &[String],
) -> Result<(), DomainError> {
    diesel::delete(contact_phones::table)
        .filter(contact_phones::firm_id.eq(firm.into_uuid()))
        .filter(contact_phones::contact_id.eq(id))
        .execute(conn)
        .await?;
    let rows: Vec<_> = phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            (
                contact_phones::firm_id.eq(firm.into_uuid()),
                contact_phones::contact_id.eq(id),
                contact_phones::phone.eq(phone.clone()),
                contact_phones::position.eq(i16::try_from(i).unwrap_or(i16::MAX)),
            )
        })
        .collect();
    diesel::insert_into(contact_phones::table).values(rows).execute(conn).await?;
    Ok(())
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Contact, DomainError> {
    contacts::table
        .filter(contacts::firm_id.eq(firm.into_uuid()))
        .filter(contacts::id.eq(id))
        .select(ContactRow::as_select())
        .first(conn)
        .await
        .optional()?
        .map(Contact::from)
        .ok_or(DomainError::NotFound("contact"))
}

/// A contact has a first or a last name (the table's CHECK says so too; this names the field).
fn require_a_name(first: &str, last: &str) -> Result<(), DomainError> {
    if first.trim().is_empty() && last.trim().is_empty() {
        return Err(DomainError::invalid_field("first_name", "a first or last name is required"));
    }
    Ok(())
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: ContactInput,
    phone_region: &str,
) -> Result<Contact, DomainError> {
    require_a_name(input.first_name.as_deref().unwrap_or(""), input.last_name.as_deref().unwrap_or(""))?;
    check_client(conn, firm, input.client_id).await?;
    let checked = checked(input, phone_region)?;
    let id = Uuid::now_v7();
    diesel::insert_into(contacts::table)
        .values((
            contacts::firm_id.eq(firm.into_uuid()),
            contacts::id.eq(id),
            contacts::first_name.eq(checked.changes.first_name.unwrap_or_default()),
            contacts::last_name.eq(checked.changes.last_name.unwrap_or_default()),
            contacts::title.eq(checked.changes.title.flatten()),
            contacts::client_id.eq(checked.changes.client_id.flatten()),
            contacts::portal_access.eq(checked.changes.portal_access.unwrap_or(false)),
            contacts::needs_review.eq(checked.changes.needs_review.unwrap_or(false)),
        ))
        .execute(conn)
        .await?;
    replace_emails(conn, firm, id, checked.emails.as_deref().unwrap_or_default()).await?;
    replace_phones(conn, firm, id, checked.phones.as_deref().unwrap_or_default()).await?;
    find(conn, firm, id).await
}

/// Changes only the fields given; `emails` or `phones`, when given, replace the lists.
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: ContactInput,
    phone_region: &str,
) -> Result<Contact, DomainError> {
    let current = find(conn, firm, id).await?;
    // Checked on the names the contact would have after the change.
    require_a_name(
        input.first_name.as_deref().unwrap_or(&current.first_name),
        input.last_name.as_deref().unwrap_or(&current.last_name),
    )?;
    check_client(conn, firm, input.client_id).await?;
    let checked = checked(input, phone_region)?;
    diesel::update(contacts::table)
        .filter(contacts::firm_id.eq(firm.into_uuid()))
        .filter(contacts::id.eq(id))
        .set((checked.changes, contacts::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    if let Some(emails) = &checked.emails {
        replace_emails(conn, firm, id, emails).await?;
    }
    if let Some(phones) = &checked.phones {
        replace_phones(conn, firm, id, phones).await?;
    }
    find(conn, firm, id).await
}

/// Archives a contact; its email addresses stay reserved to it.
pub async fn archive(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Contact, DomainError> {
    find(conn, firm, id).await?;
    diesel::update(contacts::table)
        .filter(contacts::firm_id.eq(firm.into_uuid()))
        .filter(contacts::id.eq(id))
        .set((contacts::archived_at.eq(Some(Utc::now())), contacts::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    find(conn, firm, id).await
}

/// The contact an address belongs to (for ingestion).
/// The contact a phone number (E.164) belongs to: the active one first, then the one
/// that lists it highest, then the oldest.
pub async fn by_phone(conn: &mut AsyncPgConnection, firm: FirmId, phone: &str) -> Result<Option<Contact>, DomainError> {
    let row = contacts::table
        .inner_join(
            contact_phones::table
                .on(contact_phones::firm_id.eq(contacts::firm_id).and(contact_phones::contact_id.eq(contacts::id))),
        )
        .filter(contacts::firm_id.eq(firm.into_uuid()))
        .filter(contact_phones::phone.eq(phone))
        .order((contacts::archived_at.is_not_null(), contact_phones::position, contacts::created_at))
        .select(ContactRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(Contact::from))
}

pub async fn by_email(conn: &mut AsyncPgConnection, firm: FirmId, email: &str) -> Result<Option<Uuid>, DomainError> {
    let Ok(email) = normalize_email(email) else { return Ok(None) };
    Ok(contact_emails::table
        .filter(contact_emails::firm_id.eq(firm.into_uuid()))
        .filter(contact_emails::email.eq(email))
        .select(contact_emails::contact_id)
        .first(conn)
        .await
        .optional()?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ContactSort {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactKey {
    pub sort: ContactSort,
    pub value: String,
    pub id: Uuid,
}

#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub client_id: Option<Uuid>,
    /// Exact address, any case.
    pub email: Option<String>,
    /// A number in any common format; matched in E.164.
    pub phone: Option<String>,
    /// Substring of the name or of an email address.
    pub q: Option<String>,
    pub include_archived: bool,
    pub sort: ContactSort,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &ContactFilter,
    spec: &PageSpec<ContactKey>,
    phone_region: &str,
) -> Result<Page<Contact, ContactKey>, DomainError> {
    let mut query =
        contacts::table.filter(contacts::firm_id.eq(firm.into_uuid())).select(ContactRow::as_select()).into_boxed();
    if !filter.include_archived {
        query = query.filter(contacts::archived_at.is_null());
    }
    if let Some(client) = filter.client_id {
        query = query.filter(contacts::client_id.eq(client));
    }
    if let Some(email) = &filter.email {
        let email = normalize_email(email).map_err(|p| DomainError::invalid_field("email", p))?;
        query = query.filter(
            contacts::id.eq_any(
                contact_emails::table
                    .filter(contact_emails::firm_id.eq(firm.into_uuid()))
                    .filter(contact_emails::email.eq(email))
                    .select(contact_emails::contact_id),
            ),
        );
    }
    if let Some(phone) = &filter.phone {
        let phone = normalize_phone(phone, phone_region).map_err(|p| DomainError::invalid_field("phone", &p))?;
        query = query.filter(
            contacts::id.eq_any(
                contact_phones::table
                    .filter(contact_phones::firm_id.eq(firm.into_uuid()))
                    .filter(contact_phones::phone.eq(phone))
                    .select(contact_phones::contact_id),
            ),
        );
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query =
            query.filter(contacts::id.eq_any(diesel::select(cp_search_contact_ids(like_contains(&q.to_lowercase())))));
    }
    let by_name = matches!(filter.sort, ContactSort::NameAsc | ContactSort::NameDesc);
    let list_ascending = matches!(filter.sort, ContactSort::NameAsc | ContactSort::CreatedAsc);
    let mut ascending = list_ascending;
    if let Some((direction, key)) = &spec.position {
        if key.sort != filter.sort {
            return Err(DomainError::invalid_field("cursor", "belongs to a list in another order"));
        }
        let (op, fetch_ascending) = keyset_comparison(list_ascending, *direction);
        ascending = fetch_ascending;
        query = if by_name {
            query.filter(past_text_key("contacts.name_key, contacts.id", op, key.value.clone(), key.id))
        } else {
            let at: DateTime<Utc> = key
                .value
                .parse()
                .map_err(|_| DomainError::invalid_field("cursor", "is not a cursor this list issued"))?;
            query.filter(past_time_key("contacts.created_at, contacts.id", op, at, key.id))
        };
    }
    query = match (by_name, ascending) {
        (true, true) => query.order((contacts::name_key.asc(), contacts::id.asc())),
        (true, false) => query.order((contacts::name_key.desc(), contacts::id.desc())),
        (false, true) => query.order((contacts::created_at.asc(), contacts::id.asc())),
        (false, false) => query.order((contacts::created_at.desc(), contacts::id.desc())),
    };
    let rows: Vec<Contact> =
        query.limit(spec.fetch_limit()).load::<ContactRow>(conn).await?.into_iter().map(Contact::from).collect();
    let sort = filter.sort;
    Ok(Page::from_rows(rows, spec, |c: &Contact| ContactKey {
        sort,
        value: if by_name { c.name_key.clone() } else { c.created_at.to_rfc3339() },
        id: c.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(normalize_phone("(415) 555-2671", "US").as_deref(), Ok("+14155552671"));
        assert_eq!(normalize_phone("+44 20 7946 0958", "US").as_deref(), Ok("+442079460958"));
        assert_eq!(normalize_phone("020 7946 0958", "GB").as_deref(), Ok("+442079460958"));
        assert!(normalize_phone("12", "US").is_err());
        assert!(normalize_phone("not a number", "US").is_err());
    }
}
