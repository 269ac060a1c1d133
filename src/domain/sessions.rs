//! Log-in sessions and their rotating refresh tokens (tenant tables).
//!
//! A session is one log-in; every refresh token it ever had belongs to it (the family).
//! A refresh token is `<firm id>.<secret>`: the firm part lets it be looked up inside that
//! firm's transaction, the secret (256 random bits) is stored only as its SHA-256.
//! Exchanging a token marks it used and issues its successor; presenting a used token
//! again means it was copied, so the whole session is revoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::memberships::Role;
use super::{DomainError, FirmId};
use crate::db::schema::{auth_sessions, realtime_tickets, refresh_tokens};

/// Random secret, URL-safe.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Splits `<firm id>.<secret>` (refresh tokens and WebSocket tickets); `None` for anything
/// else.
pub fn parse_firm_secret(token: &str) -> Option<(FirmId, &str)> {
    let (firm, secret) = token.split_once('.')?;
    let firm = Uuid::parse_str(firm).ok()?;
    (!secret.is_empty() && secret.len() <= 128).then_some((FirmId(firm), secret))
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
struct NewRefreshToken {
    firm_id: Uuid,
    id: Uuid,
    session_id: Uuid,
    token_hash: String,
    expires_at: DateTime<Utc>,
}

async fn issue_refresh_token(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    session_id: Uuid,
    ttl: Duration,
) -> Result<String, DomainError> {
    let secret = new_secret();
    diesel::insert_into(refresh_tokens::table)
        .values(NewRefreshToken {
            firm_id: firm.into_uuid(),
            id: Uuid::now_v7(),
            session_id,
            token_hash: sha256_hex(&secret),
            expires_at: Utc::now() + ttl,
        })
        .execute(conn)
        .await?;
    Ok(format!("{firm}.{secret}"))
}

/// Opens a session for a member and returns `(session id, refresh token)`.
pub async fn start(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    refresh_ttl: Duration,
) -> Result<(Uuid, String), DomainError> {
    let session_id = Uuid::now_v7();
    diesel::insert_into(auth_sessions::table)
        .values((
            auth_sessions::firm_id.eq(firm.into_uuid()),
            auth_sessions::id.eq(session_id),
            auth_sessions::user_id.eq(user_id),
        ))
        .execute(conn)
        .await?;
    let token = issue_refresh_token(conn, firm, session_id, refresh_ttl).await?;
    Ok((session_id, token))
}

/// id, session id, expiry, when it was exchanged.
type StoredRefreshToken = (Uuid, Uuid, DateTime<Utc>, Option<DateTime<Utc>>);

pub enum RefreshOutcome {
    Rotated {
        user_id: Uuid,
        session_id: Uuid,
        role: Role,
        refresh_token: String,
    },
    /// A used token came back: the session is now revoked. Commit, then refuse.
    Reused {
        user_id: Uuid,
        session_id: Uuid,
    },
    Refused,
}

/// Exchanges a refresh token for its successor. The token row is locked, so of two
/// concurrent exchanges of one token the second sees it used and is treated as reuse.
/// A session signed in longer ago than `lifetime` is not renewed, however recently its
/// tokens were exchanged.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    secret: &str,
    refresh_ttl: Duration,
    lifetime: Duration,
) -> Result<RefreshOutcome, DomainError> {
    let found: Option<StoredRefreshToken> = refresh_tokens::table
        .filter(refresh_tokens::firm_id.eq(firm.into_uuid()))
        .filter(refresh_tokens::token_hash.eq(sha256_hex(secret)))
        .select((refresh_tokens::id, refresh_tokens::session_id, refresh_tokens::expires_at, refresh_tokens::used_at))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some((token_id, session_id, expires_at, used_at)) = found else {
        return Ok(RefreshOutcome::Refused);
    };
    let Some((user_id, revoked_at, signed_in_at)) = auth_sessions::table
        .filter(auth_sessions::firm_id.eq(firm.into_uuid()))
        .filter(auth_sessions::id.eq(session_id))
        .select((auth_sessions::user_id, auth_sessions::revoked_at, auth_sessions::created_at))
        .for_update()
        .first::<(Uuid, Option<DateTime<Utc>>, DateTime<Utc>)>(conn)
        .await
        .optional()?
    else {
        return Ok(RefreshOutcome::Refused);
    };
    if revoked_at.is_some() {
        return Ok(RefreshOutcome::Refused);
    }
    if signed_in_at.checked_add_signed(lifetime).is_some_and(|ends| ends <= Utc::now()) {
        revoke(conn, firm, session_id, "session_lifetime").await?;
        return Ok(RefreshOutcome::Refused);
    }
    if used_at.is_some() {
        revoke(conn, firm, session_id, "refresh_token_reuse").await?;
        return Ok(RefreshOutcome::Reused { user_id, session_id });
    }
    if expires_at <= Utc::now() {
        return Ok(RefreshOutcome::Refused);
    }
    let Some(role) = active_role(conn, firm, user_id).await? else {
        return Ok(RefreshOutcome::Refused);
    };
    diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::firm_id.eq(firm.into_uuid()))
        .filter(refresh_tokens::id.eq(token_id))
        .set(refresh_tokens::used_at.eq(Utc::now()))
        .execute(conn)
        .await?;
    let refresh_token = issue_refresh_token(conn, firm, session_id, refresh_ttl).await?;
    Ok(RefreshOutcome::Rotated { user_id, session_id, role, refresh_token })
}

/// Ends a session: its access tokens stop working at their next request and none of its
/// refresh tokens can be exchanged.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    session_id: Uuid,
    reason: &str,
) -> Result<bool, DomainError> {
    let changed = diesel::update(auth_sessions::table)
        .filter(auth_sessions::firm_id.eq(firm.into_uuid()))
        .filter(auth_sessions::id.eq(session_id))
        .filter(auth_sessions::revoked_at.is_null())
        .set((auth_sessions::revoked_at.eq(Utc::now()), auth_sessions::revoked_reason.eq(reason)))
        .execute(conn)
        .await?;
    Ok(changed > 0)
}

/// Ends every session a user has in the firm (deactivation).
pub async fn revoke_all_for_user(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    reason: &str,
) -> Result<usize, DomainError> {
    Ok(diesel::update(auth_sessions::table)
        .filter(auth_sessions::firm_id.eq(firm.into_uuid()))
        .filter(auth_sessions::user_id.eq(user_id))
        .filter(auth_sessions::revoked_at.is_null())
        .set((auth_sessions::revoked_at.eq(Utc::now()), auth_sessions::revoked_reason.eq(reason)))
        .execute(conn)
        .await?)
}

/// Ends every open session of a login in every firm but `keep`; how many ended.
pub async fn revoke_everywhere(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<i32, DomainError> {
    #[derive(diesel::QueryableByName)]
    struct Ended {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        ended: i32,
    }
    let row = crate::db::cached_query("SELECT cp_revoke_user_sessions($1, $2, $3) AS ended")
        .bind::<diesel::sql_types::Uuid, _>(user_id)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(keep)
        .bind::<diesel::sql_types::Text, _>(reason)
        .get_result::<Ended>(conn)
        .await?;
    Ok(row.ended)
}

/// The member's current role while the membership is active, the firm is active and, for
/// a portal login, its contact still grants access (see `cp_member_role`).
pub async fn active_role(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
) -> Result<Option<Role>, DomainError> {
    let role = diesel::select(crate::db::functions::cp_member_role(firm.into_uuid(), user_id))
        .get_result::<Option<String>>(conn)
        .await?;
    Ok(role.and_then(|r| r.parse().ok()))
}

/// What a request's access token may do now: [`active_role`], provided the token's
/// session has not been revoked. Checked on every request, so deactivation, log-out, a
/// suspended firm or a contact's lost portal access take effect at once, not at expiry.
pub async fn current_role(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<Role>, DomainError> {
    let role = diesel::select(crate::db::functions::cp_session_role(firm.into_uuid(), user_id, session_id))
        .get_result::<Option<String>>(conn)
        .await?;
    Ok(role.and_then(|r| r.parse().ok()))
}

/// Lifetime of a WebSocket ticket.
pub const TICKET_TTL_SECS: i64 = 30;

/// A one-use ticket for opening a WebSocket as this session: `<firm id>.<secret>`, stored
/// as the secret's SHA-256 only.
pub async fn issue_ticket(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<String, DomainError> {
    // Spent and lapsed tickets of the firm go as new ones come.
    diesel::delete(realtime_tickets::table)
        .filter(realtime_tickets::firm_id.eq(firm.into_uuid()))
        .filter(realtime_tickets::expires_at.lt(Utc::now()))
        .execute(conn)
        .await?;
    let secret = new_secret();
    diesel::insert_into(realtime_tickets::table)
        .values((
            realtime_tickets::firm_id.eq(firm.into_uuid()),
            realtime_tickets::ticket_hash.eq(sha256_hex(&secret)),
            realtime_tickets::user_id.eq(user_id),
            realtime_tickets::session_id.eq(session_id),
            realtime_tickets::expires_at.eq(Utc::now() + chrono::Duration::seconds(TICKET_TTL_SECS)),
        ))
        .execute(conn)
        .await?;
    Ok(format!("{firm}.{secret}"))
}

/// Spends a ticket: the (user, session) it was issued to, if it exists and has not
/// lapsed. Deleting it is what makes it work once, even for two racing sockets.
pub async fn redeem_ticket(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    secret: &str,
) -> Result<Option<(Uuid, Uuid)>, DomainError> {
    let spent: Option<(Uuid, Uuid, DateTime<Utc>)> = diesel::delete(realtime_tickets::table)
        .filter(realtime_tickets::firm_id.eq(firm.into_uuid()))
        .filter(realtime_tickets::ticket_hash.eq(sha256_hex(secret)))
        .returning((realtime_tickets::user_id, realtime_tickets::session_id, realtime_tickets::expires_at))
        .get_result(conn)
        .await
        .optional()?;
    Ok(spent.filter(|(_, _, expires_at)| *expires_at > Utc::now()).map(|(user, session, _)| (user, session)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_carry_their_firm() {
        let firm = Uuid::now_v7();
        let token = format!("{firm}.{}", new_secret());
        let (parsed, secret) = parse_firm_secret(&token).expect("parses");
        assert_eq!(parsed.into_uuid(), firm);
        assert_eq!(secret.len(), 43);
        assert!(parse_firm_secret("garbage").is_none());
        assert!(parse_firm_secret("not-a-uuid.secret").is_none());
        assert!(parse_firm_secret(&format!("{firm}.")).is_none());
    }
}
