//! Log-in, token refresh, log-out, `/me` and MFA.

use super::body::JsonObject;
use actix_web::{HttpResponse, web};
use chrono::Duration;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::auth::{Actor, TokenType, claims};
use super::ctx::{Audit, FirmCtx};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use crate::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use crate::domain::login::{self, LoginError, LoginRequest};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::domain::sessions::{self, RefreshOutcome};
use crate::domain::throttle::{self, ThrottlePolicy};
use crate::domain::{DomainError, FirmId, RequestMeta, firms, jobs, mfa, password_resets, users};

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

/// Counts one attempt against an account (and the client's address); 429 when either has
/// used up its allowance.
pub(super) async fn take_attempt(
    state: &AppState,
    account_key: String,
    ip_key: Option<String>,
) -> Result<(), ApiError> {
    let policy = throttle_policy(state);
    let wait = state
        .db()
        .platform_tx(|conn| {
            async move { throttle::take_attempts(conn, &account_key, ip_key.as_deref(), policy).await }.scope_boxed()
        })
        .await?;
    match wait {
        Some(retry_after) => Err(throttled(retry_after)),
        None => Ok(()),
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
    body: JsonObject<LoginBody>,
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
    let secrets = state.secret_box()?;
    let result = login::login(state.db(), request, &meta, throttle_policy(&state), refresh_ttl(&state), &secrets).await;
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
    body: JsonObject<RefreshBody>,
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
    )
)]
pub async fn logout_handler(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let (user_id, session_id) = ctx.member()?;
    let audit = Audit::new("auth.logout").target("session", session_id);
    ctx.audited(Permission::OwnAccount, audit, async |conn, firm| {
        sessions::revoke(conn, firm, session_id, "logout").await
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
    )
)]
pub async fn me_handler(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let auth = ctx.auth().await?;
    let user_id = match auth.actor {
        Actor::Member { user_id, .. } => Some(user_id),
        Actor::BreakGlass { .. } => None,
    };
    let (firm, user) = ctx
        .tx(Permission::OwnAccount, async |conn, firm_id| {
            let firm = firms::find(conn, firm_id).await?;
            let user = match user_id {
                Some(id) => Some(users::find(conn, id).await?),
                None => None,
            };
            Ok((firm, user))
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordProof {
    /// The caller's current password.
    pub password: String,
}

/// Checks the caller's current password before a change to its sign-in, counting the
/// attempt as a log-in attempt would be (so these endpoints cannot be used to guess it).
/// Every wrong answer is the same `invalid_credentials`. The attempt is given back only by
/// [`reauth_succeeded`] once the whole step (password *and* code, where one is asked) has
/// passed, so a known password does not buy unlimited guesses at the code.
async fn prove_password(
    state: &AppState,
    user: &users::User,
    password: &str,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let (account_key, ip_key) = reauth_keys(user, meta);
    take_attempt(state, account_key, ip_key).await?;
    if !login::verify_password_off_thread(password.to_owned(), user.password_hash.clone()).await {
        return Err(wrong_credentials());
    }
    Ok(())
}

fn reauth_keys(user: &users::User, meta: &RequestMeta) -> (String, Option<String>) {
    (throttle::account_key(throttle::Flow::Reauth, "", &user.email), meta.ip.as_deref().map(throttle::ip_key))
}

/// The whole re-authentication passed: the account starts afresh.
async fn reauth_succeeded(state: &AppState, user: &users::User, meta: &RequestMeta) -> Result<(), ApiError> {
    let (account_key, ip_key) = reauth_keys(user, meta);
    state
        .db()
        .platform_tx(|conn| {
            async move { throttle::succeeded(conn, &account_key, ip_key.as_deref()).await }.scope_boxed()
        })
        .await?;
    Ok(())
}

fn wrong_credentials() -> ApiError {
    ApiError::unauthorized_as("invalid_credentials", "the password or code is not correct")
}

/// Counts a wrong second-factor code against the caller, like a wrong password.
async fn count_wrong_code(state: &AppState, user: &users::User, meta: &RequestMeta) -> Result<(), ApiError> {
    let (account_key, ip_key) = reauth_keys(user, meta);
    // Counted whether or not the allowance is already spent: the answer is a refusal anyway.
    match take_attempt(state, account_key, ip_key).await {
        Ok(()) | Err(ApiError::RateLimited { .. }) => Ok(()),
        Err(other) => Err(other),
    }
}

async fn caller(ctx: &FirmCtx) -> Result<users::User, ApiError> {
    let (user_id, _) = ctx.member()?;
    ctx.tx(Permission::OwnAccount, async |conn, _| users::find(conn, user_id).await).await
}

/// Starts MFA enrolment: returns a new secret to add to an authenticator app. Needs the
/// current password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/enroll",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordProof,
    responses(
        (status = 200, description = "Secret issued; confirm with a code", body = MfaEnrollment),
        (status = 400, description = "Missing password", body = ErrorBody),
        (status = 409, description = "MFA is already on", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords or codes; see Retry-After", body = ErrorBody),
    )
)]
pub async fn mfa_enroll(ctx: FirmCtx, body: JsonObject<PasswordProof>) -> Result<HttpResponse, ApiError> {
    let (state, meta) = (ctx.state().await?, ctx.meta());
    let body = body.into_inner();
    check_credentials_shape(&[("password", &body.password)])?;
    let user = caller(&ctx).await?;
    prove_password(state, &user, &body.password, meta).await?;
    reauth_succeeded(state, &user, meta).await?;
    let issuer = &state.settings().auth.totp_issuer;
    let secrets = state.secret_box()?;
    let audit = Audit::new("auth.mfa.enrollment_started").target("user", user.id);
    let enrollment = ctx
        .audited(Permission::OwnAccount, audit, async |conn, _| {
            mfa::begin_enrollment(conn, &user, issuer, &secrets).await
        })
        .await?;
    Ok(envelope::ok(MfaEnrollment { secret: enrollment.secret, otpauth_uri: enrollment.otpauth_uri }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    /// The caller's current password.
    pub password: String,
    #[schema(example = "123456")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Shown once; each works once in place of an authenticator code.
    pub recovery_codes: Vec<String>,
}

/// Turns MFA on with the current password and a code from the enrolled authenticator;
/// returns recovery codes.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/confirm",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaCode,
    responses(
        (status = 200, description = "MFA is on", body = RecoveryCodes),
        (status = 400, description = "Missing password or code", body = ErrorBody),
        (status = 409, description = "No enrolment in progress, or already on", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords or codes; see Retry-After", body = ErrorBody),
    )
)]
pub async fn mfa_confirm(ctx: FirmCtx, body: JsonObject<MfaCode>) -> Result<HttpResponse, ApiError> {
    let (state, meta) = (ctx.state().await?, ctx.meta());
    let body = body.into_inner();
    check_credentials_shape(&[("password", &body.password), ("code", &body.code)])?;
    let user = caller(&ctx).await?;
    prove_password(state, &user, &body.password, meta).await?;
    let (user_id, secrets) = (user.id, state.secret_box()?);
    let audit = Audit::new("auth.mfa.enabled").target("user", user_id);
    let confirmed = ctx
        .audited(Permission::OwnAccount, audit, async |conn, _| mfa::confirm(conn, user_id, &body.code, &secrets).await)
        .await;
    match confirmed {
        Ok(codes) => {
            reauth_succeeded(state, &user, meta).await?;
            Ok(envelope::ok(RecoveryCodes { recovery_codes: codes }))
        }
        // The code did not match (the input's shape was checked above).
        Err(ApiError::Validation { .. }) => {
            count_wrong_code(state, &user, meta).await?;
            Err(wrong_credentials())
        }
        Err(other) => Err(other),
    }
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

/// Turns MFA off; needs the password and a current code. A wrong password or code gets one
/// uniform `invalid_credentials`, counted like a failed log-in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/disable",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaDisableBody,
    responses(
        (status = 200, description = "MFA is off", body = MfaState),
        (status = 400, description = "Missing password or code", body = ErrorBody),
        (status = 409, description = "MFA is not on", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords or codes; see Retry-After", body = ErrorBody),
    )
)]
pub async fn mfa_disable(ctx: FirmCtx, body: JsonObject<MfaDisableBody>) -> Result<HttpResponse, ApiError> {
    let (state, meta) = (ctx.state().await?, ctx.meta());
    let body = body.into_inner();
    check_credentials_shape(&[("password", &body.password), ("code", &body.code)])?;
    let user = caller(&ctx).await?;
    prove_password(state, &user, &body.password, meta).await?;
    if !user.mfa_enabled {
        return Err(ApiError::Conflict("MFA is not enabled".into()));
    }
    let (user_id, secrets) = (user.id, state.secret_box()?);
    let disabled = ctx
        .tx(Permission::OwnAccount, async |conn, _| {
            let accepted = mfa::accept_code(conn, &user, &body.code, &secrets).await?
                || mfa::spend_recovery_code(conn, user_id, &body.code).await?;
            if !accepted {
                return Ok(false);
            }
            mfa::disable(conn, user_id).await?;
            let event = ctx.event("auth.mfa.disabled", Outcome::Success).with_target("user", user_id);
            audit::record(conn, &event).await?;
            Ok(true)
        })
        .await?;
    if !disabled {
        count_wrong_code(state, &user, meta).await?;
        return Err(wrong_credentials());
    }
    reauth_succeeded(state, &user, meta).await?;
    Ok(envelope::ok(MfaState { mfa_enabled: false }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// 12 to 256 characters.
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// The login's other sessions ended, in every firm it belongs to.
    pub sessions_ended: i32,
}

/// Hashes a new password off the async workers, after checking its length.
async fn new_password_hash(password: String) -> Result<String, ApiError> {
    users::validate_password(&password).map_err(|problem| ApiError::invalid_field("new_password", &problem))?;
    web::block(move || users::hash_password(&password)).await.map_err(ApiError::internal)?.map_err(Into::into)
}

/// Changes the caller's password. Every other session of the login ends, in every firm.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed; other sessions ended", body = PasswordChanged),
        (status = 400, description = "Missing fields, or a new password that is too short or long", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ErrorBody),
    )
)]
pub async fn change_password(ctx: FirmCtx, body: JsonObject<PasswordChange>) -> Result<HttpResponse, ApiError> {
    let (state, meta) = (ctx.state().await?, ctx.meta());
    let (_, session_id) = ctx.member()?;
    let body = body.into_inner();
    check_credentials_shape(&[("current_password", &body.current_password), ("new_password", &body.new_password)])?;
    users::validate_password(&body.new_password)
        .map_err(|problem| ApiError::invalid_field("new_password", &problem))?;
    let user = caller(&ctx).await?;
    // Proved before the new one is hashed, so a guesser cannot make the server hash at will.
    prove_password(state, &user, &body.current_password, meta).await?;
    let hash = new_password_hash(body.new_password).await?;
    reauth_succeeded(state, &user, meta).await?;
    let user_id = user.id;
    let audit = Audit::new("auth.password_changed")
        .target("user", user_id)
        .metadata_of(|ended: &i32| serde_json::json!({ "sessions_ended": ended }));
    let ended = ctx
        .audited(Permission::OwnAccount, audit, async |conn, firm| {
            users::set_password_hash(conn, user_id, &hash).await?;
            password_resets::void_for_user(conn, firm, user_id).await?;
            sessions::revoke_everywhere(conn, user_id, Some(session_id), "password_changed").await
        })
        .await?;
    Ok(envelope::ok(PasswordChanged { sessions_ended: ended }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    /// The firm's slug, as at sign-in.
    pub firm: String,
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForgotAccepted {
    /// Always true: the answer never says whether the address belongs to anyone.
    pub accepted: bool,
}

/// Emails a single-use reset link (valid `mail.password_reset_ttl_minutes`) when the
/// address belongs to an active member of the firm. Answers the same either way.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password/forgot",
    tag = "auth",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "Accepted (whether or not the address is known)", body = ForgotAccepted),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 429, description = "Too many requests for this address or client; see Retry-After", body = ErrorBody),
    )
)]
pub async fn forgot_password(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<ForgotPassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_credentials_shape(&[("firm", &body.firm), ("email", &body.email)])?;
    let (account_key, ip_key) = (
        throttle::account_key(throttle::Flow::Reset, &body.firm, &body.email),
        meta.ip.as_deref().map(throttle::ip_key),
    );
    take_attempt(&state, account_key, ip_key).await?;
    let (slug, email) = (body.firm, body.email);
    let found = state
        .db()
        .platform_tx(|conn| {
            async move {
                let firm = firms::find_by_slug(conn, &slug).await?.filter(|f| f.status == "active");
                let user = users::find_by_email(conn, &email).await?;
                Ok::<_, DomainError>(firm.zip(user))
            }
            .scope_boxed()
        })
        .await?;
    if let Some((firm, user)) = found {
        let firm_id = firm.firm_id();
        let ttl = Duration::minutes(i64::try_from(state.settings().mail.password_reset_ttl_minutes).unwrap_or(30));
        let attempts = state.job_attempts();
        let event = NewAuditEvent::new(
            firm_id,
            ActorType::User,
            Some(user.id),
            "auth.password_reset_requested",
            Outcome::Success,
        )
        .with_target("user", user.id)
        .with_request(&meta);
        state
            .db()
            .firm_tx(firm_id, |conn| {
                async move {
                    if sessions::active_role(conn, firm_id, user.id).await?.is_none() {
                        return Ok(());
                    }
                    let reset = password_resets::create(conn, firm_id, user.id, ttl).await?;
                    let payload = serde_json::json!({ "reset_id": reset.id });
                    jobs::enqueue(conn, firm_id, password_resets::SEND_JOB, payload, attempts).await?;
                    audit::record(conn, &event).await
                }
                .scope_boxed()
            })
            .await?;
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "data": ForgotAccepted { accepted: true }, "meta": {} })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// From the emailed link.
    pub token: String,
    /// 12 to 256 characters.
    pub new_password: String,
}

/// Sets a new password with an emailed token (once). Every session of the login ends, in
/// every firm.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password/reset",
    tag = "auth",
    request_body = PasswordReset,
    responses(
        (status = 200, description = "Password set; every session ended", body = PasswordChanged),
        (status = 400, description = "Unknown, spent or lapsed token, or an unacceptable password", body = ErrorBody),
        (status = 429, description = "Too many attempts from this client; see Retry-After", body = ErrorBody),
    )
)]
pub async fn reset_password(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<PasswordReset>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let invalid = || ApiError::invalid_field("token", "the reset link is invalid, already used or has lapsed");
    users::validate_password(&body.new_password)
        .map_err(|problem| ApiError::invalid_field("new_password", &problem))?;
    // Counted per client before any work, and the token checked before the (deliberately
    // slow) hash, so nobody can make the server hash at will.
    let ip_key = meta.ip.as_deref().map(throttle::ip_key);
    if let Some(key) = ip_key.clone() {
        let policy = throttle_policy(&state);
        let wait = state
            .db()
            .platform_tx(|conn| {
                async move { throttle::take_attempt(conn, &key, policy.max_per_ip, policy.window).await }.scope_boxed()
            })
            .await?;
        if let Some(retry_after) = wait {
            return Err(throttled(retry_after));
        }
    }
    let Some((firm, secret)) = sessions::parse_firm_secret(body.token.trim()) else {
        return Err(invalid());
    };
    let secret = secret.to_owned();
    let probe = secret.clone();
    let open = state
        .db()
        .firm_tx(firm, |conn| async move { password_resets::is_open(conn, firm, &probe).await }.scope_boxed())
        .await?;
    if !open {
        return Err(invalid());
    }
    let hash = new_password_hash(body.new_password).await?;
    let reset = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let Some(reset) = password_resets::redeem(conn, firm, &secret).await? else {
                    return Ok(None);
                };
                users::set_password_hash(conn, reset.user_id, &hash).await?;
                password_resets::void_for_user(conn, firm, reset.user_id).await?;
                let ended = sessions::revoke_everywhere(conn, reset.user_id, None, "password_reset").await?;
                let event = NewAuditEvent::new(
                    firm,
                    ActorType::User,
                    Some(reset.user_id),
                    "auth.password_reset",
                    Outcome::Success,
                )
                .with_target("user", reset.user_id)
                .with_request(&meta)
                .with_metadata(serde_json::json!({ "sessions_ended": ended }));
                audit::record(conn, &event).await?;
                Ok::<_, DomainError>(Some(ended))
            }
            .scope_boxed()
        })
        .await?;
    let ended = reset.ok_or_else(invalid)?;
    if let Some(key) = ip_key {
        state.db().platform_tx(|conn| async move { throttle::give_back(conn, &key).await }.scope_boxed()).await?;
    }
    Ok(envelope::ok(PasswordChanged { sessions_ended: ended }))
}
