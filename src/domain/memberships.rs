//! Who belongs to a firm and in which role (a tenant table).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pagination::{Direction, Page, PageSpec, past_time_key};
use super::{DomainError, FirmId};
use crate::db::schema::{memberships, users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Staff,
    Billing,
    Readonly,
    /// A client's person on the portal: tied to a contact, sees only the conversations
    /// that contact takes part in, and nothing else of the firm.
    Client,
}

impl Role {
    pub const ALL: [Role; 6] = [Role::Owner, Role::Admin, Role::Staff, Role::Billing, Role::Readonly, Role::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Billing => "billing",
            Role::Readonly => "readonly",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            DomainError::invalid_field("role", "must be one of owner, admin, staff, billing, readonly, client")
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = memberships)]
pub struct Membership {
    pub firm_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub contact_id: Option<Uuid>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = memberships)]
struct NewMembership<'a> {
    firm_id: Uuid,
    user_id: Uuid,
    role: &'a str,
    contact_id: Option<Uuid>,
    /// The client the portal contact belonged to when the login was made; access ends
    /// when the contact moves to another.
    portal_client_id: Option<Uuid>,
}

/// Checks the contact a membership (or an invitation to one) names: a `client` (portal)
/// one names a contact of the firm with portal access, other roles none. Returns the
/// client the contact belongs to now, which the portal access then stays tied to.
pub async fn check_contact(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    role: Role,
    contact_id: Option<Uuid>,
) -> Result<Option<Uuid>, DomainError> {
    let mut portal_client_id = None;
    match (role, contact_id) {
        (Role::Client, None) => {
            return Err(DomainError::invalid_field("contact_id", "a client (portal) member must name their contact"));
        }
        (Role::Client, Some(contact)) => {
            let portal: Option<(bool, Option<Uuid>)> = crate::db::schema::contacts::table
                .filter(crate::db::schema::contacts::firm_id.eq(firm.into_uuid()))
                .filter(crate::db::schema::contacts::id.eq(contact))
                .filter(crate::db::schema::contacts::archived_at.is_null())
                .select((crate::db::schema::contacts::portal_access, crate::db::schema::contacts::client_id))
                .first(conn)
                .await
                .optional()?;
            match portal {
                None => return Err(DomainError::invalid_field("contact_id", "no such contact")),
                Some((false, _)) => {
                    return Err(DomainError::invalid_field("contact_id", "the contact does not have portal access"));
                }
                Some((true, client)) => portal_client_id = client,
            }
        }
        (_, Some(_)) => return Err(DomainError::invalid_field("contact_id", "only client (portal) members have one")),
        (_, None) => {}
    }
    Ok(portal_client_id)
}

/// Puts `user_id` into the firm as `role` (an accepted invitation): a new membership, or
/// a deactivated one made active again with the new role. Already an active member is a
/// conflict.
pub async fn join(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    role: Role,
    contact_id: Option<Uuid>,
) -> Result<(), DomainError> {
    let portal_client_id = check_contact(conn, firm, role, contact_id).await?;
    let changed = crate::db::cached_query(
        "INSERT INTO memberships (firm_id, user_id, role, contact_id, portal_client_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (firm_id, user_id) DO UPDATE
            SET role = EXCLUDED.role, status = 'active', contact_id = EXCLUDED.contact_id,
                portal_client_id = EXCLUDED.portal_client_id, updated_at = now()
          WHERE memberships.status <> 'active'",
    )
    .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
    .bind::<diesel::sql_types::Uuid, _>(user_id)
    .bind::<diesel::sql_types::Text, _>(role.as_str())
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(contact_id)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(portal_client_id)
    .execute(conn)
    .await
    .map_err(DomainError::conflict_on_unique("that contact already has a portal login"))?;
    if changed == 0 {
        return Err(DomainError::Conflict("already a member of this firm".into()));
    }
    Ok(())
}

/// Adds a member. A `client` (portal) membership names the contact it is, which must be
/// one of the firm's contacts with portal access; other roles name none.
pub async fn add(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    role: Role,
    contact_id: Option<Uuid>,
) -> Result<Membership, DomainError> {
    let portal_client_id = check_contact(conn, firm, role, contact_id).await?;
    diesel::insert_into(memberships::table)
        .values(NewMembership { firm_id: firm.into_uuid(), user_id, role: role.as_str(), contact_id, portal_client_id })
        .returning(Membership::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique("the user is already a member of this firm"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Active,
    Deactivated,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Deactivated => "deactivated",
        }
    }
}

/// A member as the firm sees them: membership plus the login's public fields.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = Role)]
    pub role: String,
    pub status: String,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

type MemberColumns = (
    memberships::user_id,
    users::email,
    users::display_name,
    memberships::role,
    memberships::status,
    users::mfa_enabled,
    memberships::created_at,
    memberships::updated_at,
);

const MEMBER_COLUMNS: MemberColumns = (
    memberships::user_id,
    users::email,
    users::display_name,
    memberships::role,
    memberships::status,
    users::mfa_enabled,
    memberships::created_at,
    memberships::updated_at,
);

#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub role: Option<Role>,
    pub status: Option<MemberStatus>,
}

/// Sort key of the member list (oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemberKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    filter: &MemberFilter,
    spec: &PageSpec<MemberKey>,
) -> Result<Page<Member, MemberKey>, DomainError> {
    let mut query = memberships::table
        .inner_join(users::table)
        .filter(memberships::firm_id.eq(firm.into_uuid()))
        .select(MEMBER_COLUMNS)
        .into_boxed();
    if let Some(role) = filter.role {
        query = query.filter(memberships::role.eq(role.as_str()));
    }
    if let Some(status) = filter.status {
        query = query.filter(memberships::status.eq(status.as_str()));
    }
    let keyset = |op: &'static str, key: MemberKey| {
        past_time_key("memberships.created_at, memberships.user_id", op, key.at, key.id)
    };
    query = match spec.position {
        Some((Direction::Forward, key)) => {
            query.filter(keyset(">", key)).order((memberships::created_at.asc(), memberships::user_id.asc()))
        }
        Some((Direction::Backward, key)) => {
            query.filter(keyset("<", key)).order((memberships::created_at.desc(), memberships::user_id.desc()))
        }
        None => query.order((memberships::created_at.asc(), memberships::user_id.asc())),
    };
    let rows = query.limit(spec.fetch_limit()).load::<Member>(conn).await?;
    Ok(Page::from_rows(rows, spec, |m| MemberKey { at: m.created_at, id: m.user_id }))
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, user_id: Uuid) -> Result<Member, DomainError> {
    memberships::table
        .inner_join(users::table)
        .filter(memberships::firm_id.eq(firm.into_uuid()))
        .filter(memberships::user_id.eq(user_id))
        .select(MEMBER_COLUMNS)
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("member"))
}

/// Changes a member's role and/or status. A firm always keeps one active owner: the
/// firm's active owner rows are locked first (in a fixed order), so two owners demoting
/// each other at once cannot both succeed.
pub async fn change(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    role: Option<Role>,
    status: Option<MemberStatus>,
) -> Result<(Member, Member), DomainError> {
    let owners: Vec<Uuid> = memberships::table
        .filter(memberships::firm_id.eq(firm.into_uuid()))
        .filter(memberships::role.eq(Role::Owner.as_str()))
        .filter(memberships::status.eq(MemberStatus::Active.as_str()))
        .order(memberships::user_id.asc())
        .select(memberships::user_id)
        .for_update()
        .load(conn)
        .await?;
    let before = find(conn, firm, user_id).await?;
    if role.is_some_and(|r| r.as_str() != before.role && (r == Role::Client || before.role == Role::Client.as_str())) {
        return Err(DomainError::invalid_field(
            "role",
            "portal (client) logins and members are separate: add or remove the membership instead",
        ));
    }
    let loses_ownership = owners.contains(&user_id)
        && (role.is_some_and(|r| r != Role::Owner) || status == Some(MemberStatus::Deactivated));
    if loses_ownership && owners.len() == 1 {
        return Err(DomainError::Conflict("the firm's last owner cannot be demoted or removed".into()));
    }
    diesel::update(memberships::table)
        .filter(memberships::firm_id.eq(firm.into_uuid()))
        .filter(memberships::user_id.eq(user_id))
        .set((
            role.map(|r| memberships::role.eq(r.as_str())),
            status.map(|s| memberships::status.eq(s.as_str())),
            memberships::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    let after = find(conn, firm, user_id).await?;
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("superuser".parse::<Role>().is_err());
    }
}
