//! `Idempotency-Key` for creations that move money: the first result is stored in the
//! same transaction as the thing created, and a repeat with the same key returns it. A
//! repeat with a different body is a conflict, not a second creation.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

use super::{DomainError, FirmId};
use crate::db::schema::idempotency_keys;

/// A stored first answer: HTTP status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub status: u16,
    pub body: serde_json::Value,
}

pub fn request_hash(body: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

pub fn check_key(key: &str) -> Result<(), DomainError> {
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::invalid_field("Idempotency-Key", "must be 1 to 200 visible ASCII characters"));
    }
    Ok(())
}

/// The stored answer for this key, if the key was used before. Locks the key's row so a
/// concurrent repeat waits for the first to commit.
pub async fn replay(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    scope: &str,
    key: &str,
    hash: &str,
) -> Result<Option<Replay>, DomainError> {
    // Take the key first: a concurrent request with the same key blocks here until this
    // transaction ends, then finds the stored answer.
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::firm_id.eq(firm.into_uuid()),
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(hash),
            idempotency_keys::status.eq(0_i16),
            idempotency_keys::response.eq(serde_json::Value::Null),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    let (stored_hash, status, body): (String, i16, serde_json::Value) = idempotency_keys::table
        .filter(idempotency_keys::firm_id.eq(firm.into_uuid()))
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::key.eq(key))
        .select((idempotency_keys::request_hash, idempotency_keys::status, idempotency_keys::response))
        .for_update()
        .first(conn)
        .await?;
    if status == 0 {
        return Ok(None);
    }
    if stored_hash != hash {
        return Err(DomainError::Conflict("this Idempotency-Key was used with a different request".into()));
    }
    Ok(Some(Replay { status: u16::try_from(status).unwrap_or(200), body }))
}

/// Stores the first answer for the key taken by [`replay`].
pub async fn remember(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    scope: &str,
    key: &str,
    answer: &Replay,
) -> Result<(), DomainError> {
    diesel::update(idempotency_keys::table)
        .filter(idempotency_keys::firm_id.eq(firm.into_uuid()))
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::key.eq(key))
        .set((
            idempotency_keys::status.eq(i16::try_from(answer.status).unwrap_or(200)),
            idempotency_keys::response.eq(&answer.body),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
