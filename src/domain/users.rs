//! Login identities (a platform table) and their passwords.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::{DomainError, FieldErrors};
use crate::db::schema::users;

/// Shortest password accepted; length beats composition rules (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub mfa_secret: Option<String>,
    #[serde(skip)]
    pub mfa_pending_secret: Option<String>,
    pub mfa_enabled: bool,
    #[serde(skip)]
    pub mfa_last_step: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
}

/// Lower-cases and trims an address and checks its shape; deliverability is not ours to judge.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must be an email address");
    };
    let shape_ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 254;
    if shape_ok { Ok(email) } else { Err("must be an email address") }
}

pub fn validate_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    Ok(())
}

/// Argon2id with the crate's default (OWASP-recommended) cost and a random salt.
pub fn hash_password(password: &str) -> Result<String, DomainError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| DomainError::Internal(format!("password could not be hashed: {e}")))
}

pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), stored_hash).is_ok()
}

impl NewUser {
    /// Validates input and hashes the password (slow by design: call off hot paths).
    pub fn parse(email: &str, display_name: &str, password: &str) -> Result<Self, DomainError> {
        let mut fields = FieldErrors::new();
        let email = normalize_email(email).map_err(|p| fields.insert("email".into(), p.into())).ok();
        let display_name = display_name.trim().to_owned();
        if display_name.chars().count() > 200 {
            fields.insert("display_name".into(), "must be at most 200 characters".into());
        }
        if let Err(problem) = validate_password(password) {
            fields.insert("password".into(), problem);
        }
        DomainError::check(fields)?;
        let email = email.unwrap_or_default();
        Ok(Self { id: Uuid::now_v7(), email, display_name, password_hash: hash_password(password)? })
    }
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<User, DomainError> {
    users::table.find(id).select(User::as_select()).first(conn).await.optional()?.ok_or(DomainError::NotFound("user"))
}

pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> Result<Option<User>, DomainError> {
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    Ok(users::table.filter(users::email.eq(email)).select(User::as_select()).first(conn).await.optional()?)
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewUser) -> Result<User, DomainError> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique(format!("a user with email `{}` already exists", new.email)))
}

/// Sets a login's password (already hashed off the async workers).
pub async fn set_password_hash(conn: &mut AsyncPgConnection, id: Uuid, password_hash: &str) -> Result<(), DomainError> {
    let changed = diesel::update(users::table.find(id))
        .set((users::password_hash.eq(password_hash), users::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    if changed == 0 {
        return Err(DomainError::NotFound("user"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(normalize_email("  Ada@Example.COM ").as_deref(), Ok("ada@example.com"));
        assert!(normalize_email("ada").is_err());
        assert!(normalize_email("ada@localhost").is_err());
        assert!(normalize_email("a da@example.com").is_err());
        assert!(normalize_email("@example.com").is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse battery").expect("hashes");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough password").is_ok());
    }
}
