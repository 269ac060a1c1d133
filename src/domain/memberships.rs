//! Who belongs to a firm and in which role (a tenant table).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DomainError, FirmId};
use crate::db::schema::memberships;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Staff,
    Billing,
    Readonly,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Owner, Role::Admin, Role::Staff, Role::Billing, Role::Readonly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Billing => "billing",
            Role::Readonly => "readonly",
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
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DomainError::invalid_field("role", "must be one of owner, admin, staff, billing, readonly"))
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
}

#[derive(Debug, Insertable)]
#[diesel(table_name = memberships)]
struct NewMembership<'a> {
    firm_id: Uuid,
    user_id: Uuid,
    role: &'a str,
}

pub async fn add(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    role: Role,
) -> Result<Membership, DomainError> {
    diesel::insert_into(memberships::table)
        .values(NewMembership { firm_id: firm.into_uuid(), user_id, role: role.as_str() })
        .returning(Membership::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique("the user is already a member of this firm"))
}

pub async fn count(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<i64, DomainError> {
    Ok(memberships::table.filter(memberships::firm_id.eq(firm.into_uuid())).count().get_result(conn).await?)
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
