//! TOTP multi-factor authentication (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of
//! drift either way) and one-time recovery codes. Both live on the login identity. The
//! TOTP secret is stored sealed (`SecretBox`, bound to the user), the codes only hashed.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::Rng;
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use super::DomainError;
use super::sessions::sha256_hex;
use super::users::{self as user_store, User};
use crate::db::schema::{user_recovery_codes, users};
use crate::secret_box::SecretBox;
use secrecy::ExposeSecret;

/// Where a user's TOTP secret is sealed (pending and confirmed alike).
pub fn secret_context(user_id: Uuid) -> String {
    format!("users.mfa:{user_id}")
}

pub const RECOVERY_CODE_COUNT: usize = 10;
/// Unambiguous characters (no 0/O, 1/I/L) for codes people copy from paper.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

fn totp(secret_base32: &str, issuer: &str, account: &str) -> Result<Totp, DomainError> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|e| DomainError::Internal(format!("stored TOTP secret unreadable: {e:?}")))?;
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| DomainError::Internal(format!("TOTP set-up failed: {e:?}")))
}

/// The step a code matches at `now`, allowing one step of drift.
pub fn matching_step(secret_base32: &str, code: &str, now_unix: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret_base32, "x", "x").ok()?.check(&code, now_unix)
}

/// The code for `now` (tests and tooling).
pub fn code_at(secret_base32: &str, now_unix: u64) -> Result<String, DomainError> {
    Ok(totp(secret_base32, "x", "x")?.generate(now_unix).to_string())
}

fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// A new random secret and its `otpauth://` URI for `account`.
pub fn new_secret(issuer: &str, account: &str) -> Result<Enrollment, DomainError> {
    let mut bytes = [0_u8; 20];
    rand::rng().fill(&mut bytes);
    let secret = Secret::from(bytes).to_base32();
    let otpauth_uri =
        totp(&secret, issuer, account)?.to_url().map_err(|e| DomainError::Internal(format!("otpauth URI: {e:?}")))?;
    Ok(Enrollment { secret, otpauth_uri })
}

/// The step `code` matches now, for a caller that records it conditionally.
pub fn current_step(secret_base32: &str, code: &str) -> Option<i64> {
    matching_step(secret_base32, code, unix_now()).and_then(|s| i64::try_from(s).ok())
}

/// Starts (or restarts) enrolment: a new secret waits for confirmation with a code.
pub async fn begin_enrollment(
    conn: &mut AsyncPgConnection,
    user: &User,
    issuer: &str,
    secrets: &SecretBox,
) -> Result<Enrollment, DomainError> {
    if user.mfa_enabled {
        return Err(DomainError::Conflict("MFA is already enabled; disable it first".into()));
    }
    let mut bytes = [0_u8; 20];
    rand::rng().fill(&mut bytes);
    let secret = Secret::from(bytes).to_base32();
    let otpauth_uri = totp(&secret, issuer, &user.email)?
        .to_url()
        .map_err(|e| DomainError::Internal(format!("otpauth URI: {e:?}")))?;
    let sealed = secrets.seal(&secret, &secret_context(user.id))?;
    diesel::update(users::table.find(user.id))
        .set((users::mfa_pending_secret.eq(&sealed), users::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    Ok(Enrollment { secret, otpauth_uri })
}

/// Turns MFA on when `code` matches the pending secret; returns fresh recovery codes,
/// shown once and stored only hashed.
pub async fn confirm(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    code: &str,
    secrets: &SecretBox,
) -> Result<Vec<String>, DomainError> {
    let user = user_store::find(conn, user_id).await?;
    if user.mfa_enabled {
        return Err(DomainError::Conflict("MFA is already enabled".into()));
    }
    let Some(pending) = user.mfa_pending_secret else {
        return Err(DomainError::Conflict("no MFA enrolment in progress; call enroll first".into()));
    };
    let opened = secrets.open_stored(&pending, &secret_context(user_id))?;
    let Some(step) = matching_step(opened.expose_secret(), code, unix_now()) else {
        return Err(DomainError::invalid_field("code", "does not match the authenticator"));
    };
    diesel::update(users::table.find(user_id))
        .set((
            users::mfa_secret.eq(Some(&pending)),
            users::mfa_pending_secret.eq(None::<String>),
            users::mfa_enabled.eq(true),
            users::mfa_last_step.eq(i64::try_from(step).ok()),
            users::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    replace_recovery_codes(conn, user_id).await
}

/// Marks every unused recovery code of the user as used.
async fn retire_recovery_codes(conn: &mut AsyncPgConnection, user_id: Uuid) -> Result<(), DomainError> {
    diesel::update(user_recovery_codes::table)
        .filter(user_recovery_codes::user_id.eq(user_id))
        .filter(user_recovery_codes::used_at.is_null())
        .set(user_recovery_codes::used_at.eq(Utc::now()))
        .execute(conn)
        .await?;
    Ok(())
}

fn generate_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let raw: String =
                (0..10).map(|_| char::from(RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())])).collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect()
}

async fn replace_recovery_codes(conn: &mut AsyncPgConnection, user_id: Uuid) -> Result<Vec<String>, DomainError> {
    retire_recovery_codes(conn, user_id).await?;
    let codes = generate_recovery_codes();
    let rows: Vec<_> = codes
        .iter()
        .map(|code| {
            (
                user_recovery_codes::user_id.eq(user_id),
                user_recovery_codes::code_hash.eq(sha256_hex(&normalize_recovery(code))),
            )
        })
        .collect();
    diesel::insert_into(user_recovery_codes::table).values(rows).execute(conn).await?;
    Ok(codes)
}

fn normalize_recovery(code: &str) -> String {
    code.trim().to_ascii_lowercase().replace(['-', ' '], "")
}

/// Accepts a TOTP code once: the step must be later than the last accepted one, and the
/// update that records it is conditional, so two concurrent uses cannot both pass.
pub async fn accept_code(
    conn: &mut AsyncPgConnection,
    user: &User,
    code: &str,
    secrets: &SecretBox,
) -> Result<bool, DomainError> {
    let Some(stored) = user.mfa_secret.as_deref() else {
        return Ok(false);
    };
    let secret = secrets.open_stored(stored, &secret_context(user.id))?;
    let Some(step) = matching_step(secret.expose_secret(), code, unix_now()).and_then(|s| i64::try_from(s).ok()) else {
        return Ok(false);
    };
    let accepted = diesel::update(users::table.find(user.id))
        .filter(users::mfa_last_step.is_null().or(users::mfa_last_step.lt(step)))
        .set(users::mfa_last_step.eq(step))
        .execute(conn)
        .await?;
    Ok(accepted == 1)
}

/// Spends a recovery code; each works once.
pub async fn spend_recovery_code(conn: &mut AsyncPgConnection, user_id: Uuid, code: &str) -> Result<bool, DomainError> {
    let spent = diesel::update(user_recovery_codes::table)
        .filter(user_recovery_codes::user_id.eq(user_id))
        .filter(user_recovery_codes::code_hash.eq(sha256_hex(&normalize_recovery(code))))
        .filter(user_recovery_codes::used_at.is_null())
        .set(user_recovery_codes::used_at.eq(Utc::now()))
        .execute(conn)
        .await?;
    Ok(spent == 1)
}

/// Turns MFA off; the caller has checked the password and a current code.
pub async fn disable(conn: &mut AsyncPgConnection, user_id: Uuid) -> Result<(), DomainError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::mfa_enabled.eq(false),
            users::mfa_secret.eq(None::<String>),
            users::mfa_pending_secret.eq(None::<String>),
            users::mfa_last_step.eq(None::<i64>),
            users::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    retire_recovery_codes(conn, user_id).await?;
    Ok(())
}

/// Seals every stored TOTP secret (members' confirmed and pending ones, operators') under
/// the active key: those stored before secrets were sealed, and those sealed by an older
/// key. Returns how many changed.
pub async fn seal_all(db: &crate::db::Db, secrets: &SecretBox) -> Result<usize, DomainError> {
    use crate::db::schema::operators;
    use scoped_futures::ScopedFutureExt;
    db.platform_tx(|conn| {
        async move {
            let mut changed = 0;
            let stored: Vec<(Uuid, Option<String>, Option<String>)> = users::table
                .filter(users::mfa_secret.is_not_null().or(users::mfa_pending_secret.is_not_null()))
                .select((users::id, users::mfa_secret, users::mfa_pending_secret))
                .for_update()
                .load(conn)
                .await?;
            for (id, confirmed, pending) in stored {
                let context = secret_context(id);
                let refresh = |value: Option<String>| value.and_then(|v| secrets.refreshed_or_skipped(&v, &context));
                if let Some(sealed) = refresh(confirmed) {
                    diesel::update(users::table.find(id)).set(users::mfa_secret.eq(sealed)).execute(conn).await?;
                    changed += 1;
                }
                if let Some(sealed) = refresh(pending) {
                    diesel::update(users::table.find(id))
                        .set(users::mfa_pending_secret.eq(sealed))
                        .execute(conn)
                        .await?;
                    changed += 1;
                }
            }
            let stored: Vec<(Uuid, Option<String>)> = operators::table
                .filter(operators::mfa_secret.is_not_null())
                .select((operators::id, operators::mfa_secret))
                .for_update()
                .load(conn)
                .await?;
            for (id, secret) in stored {
                let Some(secret) = secret else { continue };
                let context = super::operators::totp_context(id);
                if let Some(sealed) = secrets.refreshed_or_skipped(&secret, &context) {
                    diesel::update(operators::table.find(id))
                        .set(operators::mfa_secret.eq(sealed))
                        .execute(conn)
                        .await?;
                    changed += 1;
                }
            }
            Ok::<_, DomainError>(changed)
        }
        .scope_boxed()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits: secret "12345678901234567890".
    #[test]
    fn rfc6238_vectors() {
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        assert_eq!(code_at(&secret, 59).expect("code"), "287082");
        assert_eq!(code_at(&secret, 1_111_111_109).expect("code"), "081804");
        assert_eq!(code_at(&secret, 1_234_567_890).expect("code"), "005924");
    }

    #[test]
    fn one_step_of_drift_is_accepted_and_no_more() {
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        let now = 1_234_567_890;
        let previous = code_at(&secret, now - 30).expect("code");
        let too_old = code_at(&secret, now - 60).expect("code");
        assert!(matching_step(&secret, &previous, now).is_some());
        assert!(matching_step(&secret, &too_old, now).is_none());
        assert!(matching_step(&secret, "12345", now).is_none());
        assert!(matching_step(&secret, "abcdef", now).is_none());
    }
}
