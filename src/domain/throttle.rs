//! Failed sign-in counting, shared by all nodes through PostgreSQL. Keys are SHA-256 of
//! `account|<scope>|<email>` or `ip|<address or /64>`, so the table holds no address or
//! email.
//!
//! An attempt is counted *before* the credentials are checked, in one statement that also
//! refuses it once the key has used up its allowance: concurrent attempts serialise on the
//! key's row, so twenty wrong passwords at once record at most the limit, and the rest are
//! refused. A success gives its attempt back (and clears the account's count).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::DomainError;
use super::sessions::sha256_hex;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_per_account: u32,
    pub max_per_ip: u32,
    pub window: Duration,
}

/// What an allowance is for. Each flow counts apart, so one flow's failures (or anyone
/// posing as one) never use up another's: wrong log-ins at a firm named like a flow cannot
/// lock its person out of changing their password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Signing in to a firm (scope: the firm's slug).
    Login,
    /// A platform operator signing in.
    Operator,
    /// A signed-in person proving their password or code again (MFA, password change).
    Reauth,
    /// An existing login accepting an invitation.
    Invitation,
    /// Asking for a reset link (scope: the firm's slug).
    Reset,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Login => "login",
            Flow::Operator => "operator",
            Flow::Reauth => "reauth",
            Flow::Invitation => "invitation",
            Flow::Reset => "reset",
        }
    }
}

/// The key for one account in one flow, within `scope` (a firm's slug, or empty). Scope and
/// email are normalised exactly as the look-up normalises them, so `DEMO`, ` demo` and
/// `demo` are one account, not three allowances.
pub fn account_key(flow: Flow, scope: &str, email: &str) -> String {
    sha256_hex(&format!(
        "account|{}|{}|{}",
        flow.as_str(),
        scope.trim().to_ascii_lowercase(),
        email.trim().to_lowercase()
    ))
}

/// The key for a client address. IPv6 clients are counted per /64 (one subscriber's
/// whole prefix), IPv4-mapped addresses as the IPv4 address they are.
pub fn ip_key(ip: &str) -> String {
    sha256_hex(&format!("ip|{}", address_bucket(ip)))
}

/// The key for a client address in a flow of its own (public booking pages), so its
/// allowance is apart from sign-in's.
pub fn scoped_ip_key(scope: &str, ip: &str) -> String {
    sha256_hex(&format!("{scope}|ip|{}", address_bucket(ip)))
}

fn address_bucket(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
        Err(_) => ip.trim().to_owned(),
    }
}

#[derive(QueryableByName)]
struct Counted {
    #[allow(dead_code)]
    #[diesel(sql_type = Integer)]
    failures: i32,
}

#[derive(QueryableByName)]
struct WindowStart {
    #[diesel(sql_type = Timestamptz)]
    window_started_at: DateTime<Utc>,
}

/// Counts an attempt against `key`; `Some(wait)` when the key has already used up `max`
/// attempts in the window (nothing is counted then).
pub async fn take_attempt(
    conn: &mut AsyncPgConnection,
    key: &str,
    max: u32,
    window: Duration,
) -> Result<Option<Duration>, DomainError> {
    let window_secs = i32::try_from(window.num_seconds()).unwrap_or(i32::MAX);
    let counted = crate::db::cached_query(
        "INSERT INTO auth_throttle AS t (key_hash, failures, window_started_at) VALUES ($1, 1, now())
         ON CONFLICT (key_hash) DO UPDATE SET
             failures = CASE WHEN t.window_started_at <= now() - $3 * interval '1 second' THEN 1
                             ELSE t.failures + 1 END,
             window_started_at = CASE WHEN t.window_started_at <= now() - $3 * interval '1 second' THEN now()
                                      ELSE t.window_started_at END
         WHERE t.window_started_at <= now() - $3 * interval '1 second' OR t.failures < $2
         RETURNING t.failures",
    )
    .bind::<Text, _>(key)
    .bind::<Integer, _>(i32::try_from(max).unwrap_or(i32::MAX))
    .bind::<Integer, _>(window_secs)
    .load::<Counted>(conn)
    .await?;
    if !counted.is_empty() {
        return Ok(None);
    }
    let started = crate::db::cached_query("SELECT window_started_at FROM auth_throttle WHERE key_hash = $1")
        .bind::<Text, _>(key)
        .load::<WindowStart>(conn)
        .await?;
    let wait = started.into_iter().next().map_or(window, |row| row.window_started_at + window - Utc::now());
    Ok(Some(wait.max(Duration::seconds(1))))
}

/// Counts one attempt against the address and then the account; the longest wait when
/// either has used up its allowance. The address goes first, so a client refused for its
/// address spends nothing of the account's.
pub async fn take_attempts(
    conn: &mut AsyncPgConnection,
    account_key: &str,
    ip_key: Option<&str>,
    policy: ThrottlePolicy,
) -> Result<Option<Duration>, DomainError> {
    if let Some(ip_key) = ip_key
        && let Some(wait) = take_attempt(conn, ip_key, policy.max_per_ip, policy.window).await?
    {
        return Ok(Some(wait));
    }
    take_attempt(conn, account_key, policy.max_per_account, policy.window).await
}

/// The credentials were right: the account starts afresh and the address gets its
/// attempt back.
///
/// Rows are locked in the order `take_attempts` locks them, the address first: two
/// sign-ins of one person from one address at the same moment (two tabs, a phone and a
/// laptop behind one NAT) would otherwise each hold the row the other waits for.
pub async fn succeeded(
    conn: &mut AsyncPgConnection,
    account_key: &str,
    ip_key: Option<&str>,
) -> Result<(), DomainError> {
    if let Some(ip_key) = ip_key {
        give_back(conn, ip_key).await?;
    }
    clear(conn, account_key).await
}

/// Returns both counted attempts (the password was right and a second factor is asked
/// for), in the same order as every other change here: the address first.
pub async fn give_back_both(
    conn: &mut AsyncPgConnection,
    account_key: &str,
    ip_key: Option<&str>,
) -> Result<(), DomainError> {
    if let Some(ip_key) = ip_key {
        give_back(conn, ip_key).await?;
    }
    give_back(conn, account_key).await
}

/// Returns one counted attempt (an attempt that turned out not to be a failure).
pub async fn give_back(conn: &mut AsyncPgConnection, key: &str) -> Result<(), DomainError> {
    crate::db::cached_query("UPDATE auth_throttle SET failures = greatest(failures - 1, 0) WHERE key_hash = $1")
        .bind::<Text, _>(key)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn clear(conn: &mut AsyncPgConnection, key: &str) -> Result<(), DomainError> {
    crate::db::cached_query("DELETE FROM auth_throttle WHERE key_hash = $1").bind::<Text, _>(key).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_however_its_firm_and_email_are_written() {
        let key = account_key(Flow::Login, "demo", "owner@demo.test");
        for (scope, email) in [
            ("DEMO", "owner@demo.test"),
            (" demo", "Owner@Demo.test "),
            ("demo ", " OWNER@DEMO.TEST"),
            ("\tdemo", "owner@demo.test"),
        ] {
            assert_eq!(account_key(Flow::Login, scope, email), key, "{scope:?} {email:?}");
        }
        assert_ne!(account_key(Flow::Login, "demo2", "owner@demo.test"), key);
        // Flows never share an allowance, whatever a firm is called.
        let reauth = account_key(Flow::Reauth, "", "owner@demo.test");
        assert_ne!(account_key(Flow::Login, "reauth", "owner@demo.test"), reauth);
        assert_ne!(account_key(Flow::Login, "", "owner@demo.test"), reauth);
        assert_ne!(key, account_key(Flow::Reset, "demo", "owner@demo.test"));
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip_key("2001:db8:1:2::1"), ip_key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(ip_key("2001:db8:1:2::1"), ip_key("2001:db8:1:3::1"));
        assert_eq!(ip_key("::ffff:192.0.2.7"), ip_key("192.0.2.7"));
        assert_ne!(ip_key("192.0.2.7"), ip_key("192.0.2.8"));
        assert_eq!(address_bucket("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }
}
