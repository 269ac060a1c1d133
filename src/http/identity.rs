//! Log-in, token refresh, log-out, `/me` and MFA.

use actix_web::{HttpResponse, web};
use chrono::Duration;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::auth::{Actor, FirmAuth, TokenType, claims};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use crate::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use crate::domain::login::{self, LoginError, LoginRequest};
use crate::domain::memberships::Role;
use crate::domain::sessions::{self, RefreshOutcome};
use crate::domain::throttle::ThrottlePolicy;
use crate::domain::{DomainError, FirmId, RequestMeta, firms, mfa, users};

/// Longest password considered; longer input is refused before any hashing work.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The firm's slug.
    #[schema(example = "demo")]
    pub firm: String,
    pub email: String,
    pub password: String,
    /// The current code from the authenticator app, when MFA is on.
    pub totp_code: Option<String>,
    /// A one-time recovery code instead of `totp_code`.
    pub recovery_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// `<firm id>.<secret>`; exchange it at `/auth/refresh` before it expires.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairEnvelope {
    pub data: TokenPair,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

pub(super) fn throttle_policy(state: &AppState) -> ThrottlePolicy {
    let auth = &state.settings().auth;
    ThrottlePolicy {
        max_per_account: auth.login_max_failures_per_account,
        max_per_ip: auth.login_max_failures_per_ip,
        window: Duration::seconds(i64::try_from(auth.login_failure_window_secs).unwrap_or(900)),
    }
}

fn refresh_ttl(state: &AppState) -> Duration {
    Duration::days(i64::try_from(state.settings().auth.refresh_token_ttl_days).unwrap_or(30))
}

fn access_ttl(state: &AppState) -> i64 {
    i64::try_from(state.settings().auth.access_token_ttl_secs).unwrap_or(900)
}

fn token_pair(
    state: &AppState,
    firm: FirmId,
    user_id: Uuid,
    role: Role,
    session_id: Uuid,
    refresh_token: String,
) -> Result<TokenPair, ApiError> {
    let ttl = access_ttl(state);
    let mut claims = claims(user_id, TokenType::User, ttl);
    claims.firm_id = Some(firm.into_uuid());
    claims.role = Some(role);
    claims.sid = Some(session_id);
    Ok(TokenPair { access_token: state.tokens().issue(&claims)?, refresh_token, token_type: "Bearer", expires_in: ttl })
}

pub(super) fn check_credentials_shape(pairs: &[(&str, &str)]) -> Result<(), ApiError> {
    let mut fields = serde_json::Map::new();
    for (name, value) in pairs {
        if value.trim().is_empty() {
            fields.insert((*name).to_owned(), "is required".into());
        } else if value.len() > MAX_PASSWORD_BYTES {
            fields.insert((*name).to_owned(), format!("must be at most {MAX_PASSWORD_BYTES} bytes").into());
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation("missing or oversized credentials", serde_json::json!({ "fields": fields })))
    }
}

pub(super) fn throttled(retry_after: Duration) -> ApiError {
    ApiError::RateLimited { retry_after_secs: u64::try_from(retry_after.num_seconds().max(1)).unwrap_or(1) }
}

/// Signs a member in to a firm.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = TokenPairEnvelope),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (wrong firm, email or password, all alike), `mfa_required` or `invalid_mfa_code`", body = ErrorBody),
        (status = 429, description = "Too many failures for this account or address; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login_handler(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_credentials_shape(&[("firm", &body.firm), ("email", &body.email), ("password", &body.password)])?;
    let request = LoginRequest {
        firm_slug: body.firm,
        email: body.email,
        password: body.password,
        totp_code: body.totp_code,
        recovery_code: body.recovery_code,
    };
    let result = login::login(state.db(), request, &meta, throttle_policy(&state), refresh_ttl(&state)).await;
    let success = result.map_err(|err| match err {
        LoginError::InvalidCredentials => {
            ApiError::unauthorized_as("invalid_credentials", "the firm, email or password is not correct")
        }
        LoginError::MfaRequired => {
            ApiError::unauthorized_as("mfa_required", "enter the code from your authenticator app")
        }
        LoginError::InvalidMfaCode => {
            ApiError::unauthorized_as("invalid_mfa_code", "the authentication code is not correct")
        }
        LoginError::Throttled { retry_after } => throttled(retry_after),
        LoginError::Domain(err) => err.into(),
    })?;
    let pair = token_pair(
        &state,
        success.firm.firm_id(),
        success.user_id,
        success.role,
        success.session_id,
        success.refresh_token,
    )?;
    Ok(envelope::ok(pair))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new pair. The old refresh token dies; presenting a used
/// one again ends its whole session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new token pair", body = TokenPairEnvelope),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "`invalid_refresh_token`: unknown, expired, used or revoked", body = ErrorBody),
    )
)]
pub async fn refresh_handler(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let refused =
        || ApiError::unauthorized_as("invalid_refresh_token", "the refresh token is invalid, expired or revoked");
    let Some((firm, secret)) = sessions::parse_firm_secret(body.refresh_token.trim()) else {
        return Err(refused());
    };
    let secret = secret.to_owned();
    let ttl = refresh_ttl(&state);
    let lifetime = i64::try_from(state.settings().auth.session_lifetime_secs)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX);
    let outcome = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let outcome = sessions::rotate(conn, firm, &secret, ttl, lifetime).await?;
                if let RefreshOutcome::Reused { user_id, session_id } = &outcome {
                    let event = NewAuditEvent::new(
                        firm,
                        ActorType::User,
                        Some(*user_id),
                        "auth.refresh_reuse",
                        Outcome::Denied,
                    )
                    .with_target("session", session_id)
                    .with_request(&meta)
                    .with_metadata(serde_json::json!({ "session_revoked": true }));
                    audit::record(conn, &event).await?;
                }
                Ok::<_, DomainError>(outcome)
            }
            .scope_boxed()
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated { user_id, session_id, role, refresh_token } => {
            Ok(envelope::ok(token_pair(&state, firm, user_id, role, session_id, refresh_token)?))
        }
        RefreshOutcome::Reused { .. } | RefreshOutcome::Refused => Err(refused()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOut {
    pub session_revoked: bool,
}

/// Ends the caller's session: its access and refresh tokens stop working at once.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Session ended", body = LoggedOut),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn logout_handler(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
) -> Result<HttpResponse, ApiError> {
    let (user_id, session_id) = auth.member()?;
    let firm = auth.firm;
    let event = auth.audit("auth.logout", Outcome::Success, &meta).with_target("session", session_id);
    audit::audited(state.db(), firm, event, |conn| {
        async move { sessions::revoke(conn, firm, session_id, "logout").await }.scope_boxed()
    })
    .await?;
    tracing::debug!(%user_id, "logged out");
    Ok(envelope::ok(LoggedOut { session_revoked: true }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub mfa_enabled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeFirm {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// Absent under break-glass access.
    pub user: Option<MeUser>,
    pub firm: MeFirm,
    pub role: Role,
    /// The grant in use, under break-glass access.
    pub break_glass_grant_id: Option<Uuid>,
}

/// Who the caller is, in which firm, with which role.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn me_handler(state: web::Data<AppState>, auth: FirmAuth) -> Result<HttpResponse, ApiError> {
    let firm_id = auth.firm;
    let user_id = match auth.actor {
        Actor::Member { user_id, .. } => Some(user_id),
        Actor::BreakGlass { .. } => None,
    };
    let (firm, user) = state
        .db()
        .firm_tx(firm_id, |conn| {
            async move {
                let firm = firms::find(conn, firm_id).await?;
                let user = match user_id {
                    Some(id) => Some(users::find(conn, id).await?),
                    None => None,
                };
                Ok::<_, DomainError>((firm, user))
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(Me {
        user: user.map(|u| MeUser {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            mfa_enabled: u.mfa_enabled,
        }),
        firm: MeFirm { id: firm.id, slug: firm.slug, name: firm.name },
        role: auth.role,
        break_glass_grant_id: match auth.actor {
            Actor::BreakGlass { grant_id, .. } => Some(grant_id),
            Actor::Member { .. } => None,
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaEnrollment {
    /// Base32 secret, for typing into an authenticator by hand.
    pub secret: String,
    /// `otpauth://totp/...` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Starts MFA enrolment: returns a new secret to add to an authenticator app.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/enroll",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Secret issued; confirm with a code", body = MfaEnrollment),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "MFA is already on", body = ErrorBody),
    )
)]
pub async fn mfa_enroll(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = auth.member()?;
    let issuer = state.settings().auth.totp_issuer.clone();
    let event = auth.audit("auth.mfa.enrollment_started", Outcome::Success, &meta).with_target("user", user_id);
    let enrollment = state
        .db()
        .firm_tx(auth.firm, |conn| {
            async move {
                let user = users::find(conn, user_id).await?;
                let enrollment = mfa::begin_enrollment(conn, &user, &issuer).await?;
                audit::record(conn, &event).await?;
                Ok::<_, DomainError>(enrollment)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(MfaEnrollment { secret: enrollment.secret, otpauth_uri: enrollment.otpauth_uri }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    #[schema(example = "123456")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Shown once; each works once in place of an authenticator code.
    pub recovery_codes: Vec<String>,
}

/// Turns MFA on with a code from the enrolled authenticator; returns recovery codes.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/confirm",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaCode,
    responses(
        (status = 200, description = "MFA is on", body = RecoveryCodes),
        (status = 400, description = "Wrong code", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "No enrolment in progress, or already on", body = ErrorBody),
    )
)]
pub async fn mfa_confirm(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: web::Json<MfaCode>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = auth.member()?;
    let event = auth.audit("auth.mfa.enabled", Outcome::Success, &meta).with_target("user", user_id);
    let code = body.into_inner().code;
    let codes = audit::audited(state.db(), auth.firm, event, |conn| {
        async move { mfa::confirm(conn, user_id, &code).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(RecoveryCodes { recovery_codes: codes }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaDisableBody {
    pub password: String,
    /// A current authenticator code or an unused recovery code.
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaState {
    pub mfa_enabled: bool,
}

/// Turns MFA off; needs the password and a current code.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/disable",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaDisableBody,
    responses(
        (status = 200, description = "MFA is off", body = MfaState),
        (status = 400, description = "Wrong password or code", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "MFA is not on", body = ErrorBody),
    )
)]
pub async fn mfa_disable(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: web::Json<MfaDisableBody>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = auth.member()?;
    let body = body.into_inner();
    check_credentials_shape(&[("password", &body.password), ("code", &body.code)])?;
    let user =
        state.db().firm_tx(auth.firm, |conn| async move { users::find(conn, user_id).await }.scope_boxed()).await?;
    if !user.mfa_enabled {
        return Err(ApiError::Conflict("MFA is not enabled".into()));
    }
    if !login::verify_password_off_thread(body.password, user.password_hash.clone()).await {
        return Err(ApiError::invalid_field("password", "is not correct"));
    }
    let event = auth.audit("auth.mfa.disabled", Outcome::Success, &meta).with_target("user", user_id);
    let code = body.code;
    state
        .db()
        .firm_tx(auth.firm, |conn| {
            async move {
                let accepted = mfa::accept_code(conn, &user, &code).await?
                    || mfa::spend_recovery_code(conn, user_id, &code).await?;
                if !accepted {
                    return Err(DomainError::invalid_field("code", "is not correct"));
                }
                mfa::disable(conn, user_id).await?;
                audit::record(conn, &event).await
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(MfaState { mfa_enabled: false }))
}
