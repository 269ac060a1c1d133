//! Failed log-in counting, shared by all nodes through PostgreSQL. Keys are SHA-256 of
//! `account|<firm>|<email>` or `ip|<address>`, so the table holds no address or email.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::DomainError;
use super::sessions::sha256_hex;
use crate::db::schema::auth_throttle;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_per_account: u32,
    pub max_per_ip: u32,
    pub window: Duration,
}

pub fn account_key(scope: &str, email: &str) -> String {
    sha256_hex(&format!("account|{scope}|{}", email.trim().to_lowercase()))
}

pub fn ip_key(ip: &str) -> String {
    sha256_hex(&format!("ip|{ip}"))
}

/// How long until `key` may try again, when it has used up `max` failures in the window.
pub async fn retry_after(
    conn: &mut AsyncPgConnection,
    key: &str,
    max: u32,
    window: Duration,
) -> Result<Option<Duration>, DomainError> {
    let row: Option<(i32, DateTime<Utc>)> = auth_throttle::table
        .find(key)
        .select((auth_throttle::failures, auth_throttle::window_started_at))
        .first(conn)
        .await
        .optional()?;
    let now = Utc::now();
    Ok(row.and_then(|(failures, started)| {
        let ends = started + window;
        (u32::try_from(failures).unwrap_or(0) >= max && ends > now).then(|| ends - now)
    }))
}

/// Counts one failure, starting a new window when the last one has ended.
pub async fn record_failure(conn: &mut AsyncPgConnection, key: &str, window: Duration) -> Result<(), DomainError> {
    let window_start = Utc::now() - window;
    diesel::insert_into(auth_throttle::table)
        .values((
            auth_throttle::key_hash.eq(key),
            auth_throttle::failures.eq(1),
            auth_throttle::window_started_at.eq(Utc::now()),
        ))
        .on_conflict(auth_throttle::key_hash)
        .do_update()
        .set((
            auth_throttle::failures.eq(diesel::dsl::case_when(
                auth_throttle::window_started_at.lt(window_start),
                1.into_sql::<diesel::sql_types::Integer>(),
            )
            .otherwise(auth_throttle::failures + 1)),
            auth_throttle::window_started_at.eq(diesel::dsl::case_when(
                auth_throttle::window_started_at.lt(window_start),
                excluded(auth_throttle::window_started_at),
            )
            .otherwise(auth_throttle::window_started_at)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn clear(conn: &mut AsyncPgConnection, key: &str) -> Result<(), DomainError> {
    diesel::delete(auth_throttle::table.find(key)).execute(conn).await?;
    Ok(())
}
