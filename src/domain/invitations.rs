//! Invitations: how a firm adds a person without choosing anything of that person's. The
//! firm names an address and a role; the person accepts with a single-use token from the
//! email, setting their own password if the address has no login yet, or proving the
//! existing login (password, and TOTP when it has MFA) if it has. The firm learns nothing
//! about the login until the person has joined.
//!
//! Tokens are `<firm id>.<secret>`; only the secret's SHA-256 is stored, written when the
//! email is sent (by the mail job), so nothing usable rests in the database or the queue.

use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::memberships::Role;
use super::sessions::{new_secret, sha256_hex};
use super::{DomainError, FirmId};

/// The mail job that sends (or sends again) an invitation.
pub const SEND_JOB: &str = "mail.invitation";

#[derive(Debug, Clone, Serialize, ToSchema, QueryableByName)]
pub struct Invitation {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub contact_id: Option<Uuid>,
    /// Always `invited` while the invitation is open.
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
    /// When the latest email went out; null until the mail job has sent it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sent_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, email, role, contact_id, 'invited' AS status, created_at, expires_at, sent_at";

#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub role: Role,
    pub contact_id: Option<Uuid>,
}

/// Records an open invitation. The address must not already belong to an active member
/// of this firm, nor have an open invitation here (resend that one instead).
pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    new: NewInvitation,
    invited_by: Option<Uuid>,
    ttl: Duration,
) -> Result<Invitation, DomainError> {
    super::memberships::check_contact(conn, firm, new.role, new.contact_id).await?;
    let already = crate::db::cached_query(
        "SELECT m.user_id AS id FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.firm_id = $1 AND u.email = $2 AND m.status = 'active'",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(&new.email)
    .load::<IdRow>(conn)
    .await?;
    if !already.is_empty() {
        return Err(DomainError::Conflict("that address already belongs to a member of this firm".into()));
    }
    diesel::sql_query(format!(
        "INSERT INTO invitations (firm_id, id, email, role, contact_id, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + $7 * interval '1 second')
         RETURNING {COLUMNS}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<Text, _>(&new.email)
    .bind::<Text, _>(new.role.as_str())
    .bind::<Nullable<SqlUuid>, _>(new.contact_id)
    .bind::<Nullable<SqlUuid>, _>(invited_by)
    .bind::<diesel::sql_types::BigInt, _>(ttl.num_seconds())
    .get_result::<Invitation>(conn)
    .await
    .map_err(DomainError::conflict_on_unique("that address already has an open invitation here; resend it"))
}

#[derive(QueryableByName)]
struct IdRow {
    #[allow(dead_code)]
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Open invitations, oldest first.
pub async fn list_open(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<Invitation>, DomainError> {
    Ok(diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM invitations
          WHERE firm_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
          ORDER BY created_at, id LIMIT 500"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .load::<Invitation>(conn)
    .await?)
}

/// An open invitation by id.
pub async fn find_open(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Invitation, DomainError> {
    diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM invitations
          WHERE firm_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .get_result::<Invitation>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("invitation"))
}

/// Gives an open invitation a fresh lifetime (for a resend).
pub async fn renew(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    ttl: Duration,
) -> Result<Invitation, DomainError> {
    diesel::sql_query(format!(
        "UPDATE invitations SET expires_at = now() + $3 * interval '1 second'
          WHERE firm_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
          RETURNING {COLUMNS}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .bind::<diesel::sql_types::BigInt, _>(ttl.num_seconds())
    .get_result::<Invitation>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("invitation"))
}

pub async fn revoke(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Invitation, DomainError> {
    diesel::sql_query(format!(
        "UPDATE invitations SET revoked_at = now(), token_hash = NULL
          WHERE firm_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
          RETURNING {COLUMNS}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .get_result::<Invitation>(conn)
    .await
    .optional()?
    .ok_or(DomainError::NotFound("invitation"))
}

/// For the mail job: a fresh token for an open, unexpired invitation (replacing any
/// earlier one), or `None` when there is nothing to send any more.
pub async fn issue_token(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
) -> Result<Option<(Invitation, String)>, DomainError> {
    let secret = new_secret();
    let issued = diesel::sql_query(format!(
        "UPDATE invitations SET token_hash = $3, sent_at = now()
          WHERE firm_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
          RETURNING {COLUMNS}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(sha256_hex(&secret))
    .load::<Invitation>(conn)
    .await?;
    Ok(issued.into_iter().next().map(|invitation| (invitation, format!("{firm}.{secret}"))))
}

/// The open, unexpired invitation a token stands for; `for_update` locks it (acceptance).
pub async fn find_by_secret(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    secret: &str,
    for_update: bool,
) -> Result<Option<Invitation>, DomainError> {
    let lock = if for_update { "FOR UPDATE" } else { "" };
    Ok(diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM invitations
          WHERE firm_id = $1 AND token_hash = $2 AND accepted_at IS NULL AND revoked_at IS NULL
            AND expires_at > now() {lock}"
    ))
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(sha256_hex(secret))
    .load::<Invitation>(conn)
    .await?
    .into_iter()
    .next())
}

/// Spends the invitation: it can never be used again.
pub async fn mark_accepted(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    user_id: Uuid,
) -> Result<(), DomainError> {
    crate::db::cached_query(
        "UPDATE invitations SET accepted_at = now(), accepted_user_id = $3, token_hash = NULL
          WHERE firm_id = $1 AND id = $2",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
