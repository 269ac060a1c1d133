//! Password resets: a single-use token by email, valid `mail.password_reset_ttl_minutes`.
//! As with invitations, only the hash of the latest token sent is stored, written by the
//! mail job when it sends.

use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::sessions::{new_secret, sha256_hex};
use super::{DomainError, FirmId};

/// The mail job that sends a reset link.
pub const SEND_JOB: &str = "mail.password_reset";

#[derive(Debug, Clone, QueryableByName)]
pub struct Reset {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub used_at: Option<DateTime<Utc>>,
}

/// Starts a reset for a member; the mail job sends its link.
pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    ttl: Duration,
) -> Result<Reset, DomainError> {
    Ok(crate::db::cached_query(
        "INSERT INTO password_resets (firm_id, id, user_id, expires_at)
         VALUES ($1, $2, $3, now() + $4 * interval '1 second')
         RETURNING id, user_id, expires_at, used_at",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<SqlUuid, _>(user_id)
    .bind::<diesel::sql_types::BigInt, _>(ttl.num_seconds())
    .get_result(conn)
    .await?)
}

/// For the mail job: a fresh token for an unused, unexpired reset.
pub async fn issue_token(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
) -> Result<Option<(Reset, String)>, DomainError> {
    let secret = new_secret();
    let issued = crate::db::cached_query(
        "UPDATE password_resets SET token_hash = $3, sent_at = now()
          WHERE firm_id = $1 AND id = $2 AND used_at IS NULL AND expires_at > now()
          RETURNING id, user_id, expires_at, used_at",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(sha256_hex(&secret))
    .load::<Reset>(conn)
    .await?;
    Ok(issued.into_iter().next().map(|reset| (reset, format!("{firm}.{secret}"))))
}

/// Spends a token: the reset it stands for, if it was unused and unexpired. A second use
/// finds nothing.
pub async fn redeem(conn: &mut AsyncPgConnection, firm: FirmId, secret: &str) -> Result<Option<Reset>, DomainError> {
    let spent = crate::db::cached_query(
        "UPDATE password_resets SET used_at = now(), token_hash = NULL
          WHERE firm_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > now()
          RETURNING id, user_id, expires_at, used_at",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(sha256_hex(secret))
    .load::<Reset>(conn)
    .await?;
    Ok(spent.into_iter().next())
}

/// Whether a token stands for an unused, unexpired reset (without spending it).
pub async fn is_open(conn: &mut AsyncPgConnection, firm: FirmId, secret: &str) -> Result<bool, DomainError> {
    let found = crate::db::cached_query(
        "SELECT id, user_id, expires_at, used_at FROM password_resets
          WHERE firm_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > now()",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<Text, _>(sha256_hex(secret))
    .load::<Reset>(conn)
    .await?;
    Ok(!found.is_empty())
}

/// Spends every open reset of a login in this firm (its password just changed).
pub async fn void_for_user(conn: &mut AsyncPgConnection, firm: FirmId, user_id: Uuid) -> Result<(), DomainError> {
    crate::db::cached_query(
        "UPDATE password_resets SET used_at = now(), token_hash = NULL
          WHERE firm_id = $1 AND user_id = $2 AND used_at IS NULL",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<SqlUuid, _>(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
