//! Signing in to a firm: password, optional second factor, throttling, audit.
//!
//! Wrong firm, wrong email and wrong password are indistinguishable: the same error, and
//! about the same time, because a password is always verified (against a dummy hash when
//! there is no such member).

use std::sync::LazyLock;

use chrono::Duration;
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::audit::{self, ActorType, NewAuditEvent, Outcome};
use super::firms::{self, Firm};
use super::memberships::Role;
use super::throttle::{self, ThrottlePolicy};
use super::users::{self, User};
use super::{DomainError, RequestMeta, mfa, sessions};
use crate::db::Db;

/// Verified when the member does not exist, so the answer takes as long as a real check.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| users::hash_password("no such member: dummy password").unwrap_or_default());

/// A hash to verify against when there is no such account.
pub fn dummy_hash() -> String {
    DUMMY_HASH.clone()
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("a second factor is required")]
    MfaRequired,
    #[error("invalid second factor")]
    InvalidMfaCode,
    #[error("too many failed attempts")]
    Throttled { retry_after: Duration },
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<crate::db::DbError> for LoginError {
    fn from(err: crate::db::DbError) -> Self {
        LoginError::Domain(err.into())
    }
}

impl From<diesel::result::Error> for LoginError {
    fn from(err: diesel::result::Error) -> Self {
        LoginError::Domain(err.into())
    }
}

pub struct LoginRequest {
    pub firm_slug: String,
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
}

pub struct LoginSuccess {
    pub firm: Firm,
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub refresh_token: String,
}

/// Runs a password check off the async workers: Argon2 is deliberately slow.
pub async fn verify_password_off_thread(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || users::verify_password(&password, &hash)).await.unwrap_or(false)
}

pub async fn login(
    db: &Db,
    request: LoginRequest,
    meta: &RequestMeta,
    policy: ThrottlePolicy,
    refresh_ttl: Duration,
    secrets: &crate::secret_box::SecretBox,
) -> Result<LoginSuccess, LoginError> {
    let account_key = throttle::account_key(throttle::Flow::Login, &request.firm_slug, &request.email);
    let ip_key = meta.ip.as_deref().map(throttle::ip_key);
    let wait = {
        let (account_key, ip_key) = (account_key.clone(), ip_key.clone());
        db.platform_tx(|conn| {
            async move { throttle::take_attempts(conn, &account_key, ip_key.as_deref(), policy).await }.scope_boxed()
        })
        .await?
    };
    if let Some(retry_after) = wait {
        return Err(LoginError::Throttled { retry_after });
    }

    let (slug, email) = (request.firm_slug.clone(), request.email.clone());
    let (firm, user) = db
        .platform_tx(|conn| {
            async move {
                let firm = firms::find_by_slug(conn, &slug).await?.filter(|f| f.status == "active");
                let user = users::find_by_email(conn, &email).await?;
                Ok::<_, DomainError>((firm, user))
            }
            .scope_boxed()
        })
        .await?;
    let member = match (&firm, &user) {
        (Some(firm), Some(user)) => {
            let user_id = user.id;
            db.firm_tx(firm.firm_id(), |conn| {
                async move { sessions::active_role(conn, firm.firm_id(), user_id).await }.scope_boxed()
            })
            .await?
        }
        _ => None,
    };
    let hash =
        user.as_ref().filter(|_| member.is_some()).map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let password_ok = verify_password_off_thread(request.password.clone(), hash).await;

    let (Some(firm), Some(user), Some(role), true) = (firm, user, member, password_ok) else {
        audit_failure(db, firm_for_audit(db, &request.firm_slug).await, None, "invalid_credentials", meta).await?;
        return Err(LoginError::InvalidCredentials);
    };

    if user.mfa_enabled {
        let second_factor = second_factor(db, &firm, &user, &request, secrets).await?;
        if let Err(err) = second_factor {
            match err {
                LoginError::InvalidMfaCode => {
                    audit_failure(db, Some(firm.clone()), Some(user.id), "invalid_mfa_code", meta).await?;
                }
                // The password was right; asking for the code is not a failure.
                LoginError::MfaRequired => {
                    let (account_key, ip_key) = (account_key.clone(), ip_key.clone());
                    db.platform_tx(|conn| {
                        async move { throttle::give_back_both(conn, &account_key, ip_key.as_deref()).await }
                            .scope_boxed()
                    })
                    .await?;
                }
                _ => {}
            }
            return Err(err);
        }
    }

    let firm_id = firm.firm_id();
    let user_id = user.id;
    let event = NewAuditEvent::new(firm_id, ActorType::User, Some(user_id), "auth.login", Outcome::Success)
        .with_target("user", user_id)
        .with_request(meta)
        .with_metadata(serde_json::json!({ "mfa": user.mfa_enabled }));
    let (session_id, refresh_token) = db
        .firm_tx(firm_id, |conn| {
            async move {
                throttle::succeeded(conn, &account_key, ip_key.as_deref()).await?;
                let started = sessions::start(conn, firm_id, user_id, refresh_ttl).await?;
                audit::record(conn, &event).await?;
                Ok::<_, DomainError>(started)
            }
            .scope_boxed()
        })
        .await?;
    Ok(LoginSuccess { firm, user_id, role, session_id, refresh_token })
}

/// Checks the TOTP code or recovery code. The outer `Result` is for storage failures.
async fn second_factor(
    db: &Db,
    firm: &Firm,
    user: &User,
    request: &LoginRequest,
    secrets: &crate::secret_box::SecretBox,
) -> Result<Result<(), LoginError>, LoginError> {
    let totp = request.totp_code.clone().filter(|c| !c.trim().is_empty());
    let recovery = request.recovery_code.clone().filter(|c| !c.trim().is_empty());
    if totp.is_none() && recovery.is_none() {
        return Ok(Err(LoginError::MfaRequired));
    }
    let user = user.clone();
    let (firm_id, user_id) = (firm.firm_id(), user.id);
    let accepted = db
        .firm_tx(firm_id, |conn| {
            async move {
                let accepted = match (&totp, &recovery) {
                    (Some(code), _) => mfa::accept_code(conn, &user, code, secrets).await?,
                    (None, Some(code)) => mfa::spend_recovery_code(conn, user_id, code).await?,
                    (None, None) => false,
                };
                if accepted && recovery.is_some() && totp.is_none() {
                    let event = NewAuditEvent::new(
                        firm_id,
                        ActorType::User,
                        Some(user_id),
                        "auth.mfa.recovery_code_used",
                        Outcome::Success,
                    )
                    .with_target("user", user_id);
                    audit::record(conn, &event).await?;
                }
                Ok::<_, DomainError>(accepted)
            }
            .scope_boxed()
        })
        .await?;
    Ok(if accepted { Ok(()) } else { Err(LoginError::InvalidMfaCode) })
}

async fn firm_for_audit(db: &Db, slug: &str) -> Option<Firm> {
    let slug = slug.to_owned();
    match db.platform_tx(|conn| async move { firms::find_by_slug(conn, &slug).await }.scope_boxed()).await {
        Ok(firm) => firm,
        // The sign-in is refused either way; the failure is logged so the missing audit
        // event is explained.
        Err(err) => {
            tracing::warn!(error = %err, "looking up the firm to audit a failed sign-in");
            None
        }
    }
}

/// Audits a failed sign-in in the firm when the firm exists (never recording the
/// password, nor an email that is not a member's). The attempt was counted before the check.
async fn audit_failure(
    db: &Db,
    firm: Option<Firm>,
    user_id: Option<Uuid>,
    reason: &str,
    meta: &RequestMeta,
) -> Result<(), LoginError> {
    if let Some(firm) = firm {
        let mut event = NewAuditEvent::new(firm.firm_id(), ActorType::User, user_id, "auth.login", Outcome::Failure)
            .with_request(meta)
            .with_metadata(serde_json::json!({ "reason": reason }));
        if let Some(user_id) = user_id {
            event = event.with_target("user", user_id);
        }
        db.firm_tx(firm.firm_id(), |conn| async move { audit::record(conn, &event).await }.scope_boxed()).await?;
    }
    Ok(())
}
