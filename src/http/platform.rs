//! The platform surface for operators (`/platform/...`) and the firm's own view of
//! break-glass grants on it (`/security/break-glass`). Operators see firm metadata only;
//! content needs a grant: a reason, a time limit, a second operator's approval. Every step
//! is audited on the platform and in the firm, and the firm's owners are told when a grant
//! is used.

use super::body::JsonObject;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::auth::{OperatorAuth, TokenType, claims};
use super::ctx::FirmCtx;
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::identity::{check_credentials_shape, throttle_policy, throttled};
use crate::bus::live;
use crate::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use crate::domain::break_glass::{self, Grant, GrantView, Revoker};
use crate::domain::login::verify_password_off_thread;
use crate::domain::operators::{self, FirmSummary, PlatformEvent};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, FirmId, RequestMeta, firms, throttle};

/// How many grants a listing returns (newest first).
const GRANT_LIST_LIMIT: i64 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorLoginBody {
    pub email: String,
    pub password: String,
    /// The current code of the operator's authenticator (enrolled with
    /// `consultantpro enroll-operator-totp`); required.
    pub totp_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// Signs a platform operator in. The token opens platform endpoints only.
#[utoipa::path(
    post,
    path = "/api/v1/platform/auth/login",
    tag = "platform",
    request_body = OperatorLoginBody,
    responses(
        (status = 200, description = "Signed in", body = AccessToken),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, `mfa_required`, `invalid_mfa_code`, or `mfa_not_enrolled`", body = ErrorBody),
        (status = 429, description = "Too many failures; see Retry-After", body = ErrorBody),
    )
)]
pub async fn operator_login(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<OperatorLoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_credentials_shape(&[("email", &body.email), ("password", &body.password)])?;
    let policy = throttle_policy(&state);
    let account_key = throttle::account_key(throttle::Flow::Operator, "", &body.email);
    let ip_key = meta.ip.as_deref().map(throttle::ip_key);
    let (keys, email) = ((account_key.clone(), ip_key.clone()), body.email.clone());
    let (wait, operator) = state
        .db()
        .platform_tx(|conn| {
            async move {
                let wait = throttle::take_attempts(conn, &keys.0, keys.1.as_deref(), policy).await?;
                Ok::<_, DomainError>((wait, operators::find_by_email(conn, &email).await?))
            }
            .scope_boxed()
        })
        .await?;
    if let Some(retry_after) = wait {
        return Err(throttled(retry_after));
    }
    let hash = operator.as_ref().filter(|o| o.active).map(|o| o.password_hash.clone());
    let ok = match hash {
        Some(hash) => verify_password_off_thread(body.password, hash).await,
        None => {
            // Same work as a real check, so the answer does not reveal which emails exist.
            let _ = verify_password_off_thread(body.password, crate::domain::login::dummy_hash()).await;
            false
        }
    };
    // The second factor, only once the password is right (a wrong password says nothing
    // about the code). Operators without one enrolled cannot sign in at all.
    let factor = match (&operator, ok) {
        (Some(found), true) => match (&found.mfa_secret, body.totp_code.as_deref().filter(|c| !c.trim().is_empty())) {
            (None, _) => Err(("mfa_not_enrolled", "enrol a second factor first: consultantpro enroll-operator-totp")),
            (Some(_), None) => Err(("mfa_required", "give `totp_code` from your authenticator")),
            (Some(_), Some(code)) => {
                let (found, code, secrets) = (found.clone(), code.to_owned(), state.secret_box()?);
                let accepted = state
                    .db()
                    .platform_tx(|conn| {
                        async move { operators::accept_totp(conn, &found, &code, &secrets).await }.scope_boxed()
                    })
                    .await?;
                if accepted { Ok(()) } else { Err(("invalid_mfa_code", "the code is not correct")) }
            }
        },
        _ => Err(("invalid_credentials", "the email or password is not correct")),
    };
    let ok = factor.is_ok();
    let operator_id = operator.as_ref().map(|o| o.id);
    let session_key = operator.as_ref().map(|o| o.session_key);
    let record_meta = meta.clone();
    let reason = factor.err().map(|(code, _)| code);
    state
        .db()
        .platform_tx(|conn| {
            async move {
                if ok {
                    throttle::succeeded(conn, &account_key, ip_key.as_deref()).await?;
                }
                let event = PlatformEvent {
                    operator_id: operator_id.filter(|_| ok),
                    action: "operator.login",
                    target_firm: None,
                    target: None,
                    result: if ok { Outcome::Success } else { Outcome::Failure },
                    meta: &record_meta,
                    metadata: serde_json::json!({ "reason": reason }),
                };
                operators::record(conn, event).await
            }
            .scope_boxed()
        })
        .await?;
    if let Err((code, message)) = factor {
        return Err(ApiError::unauthorized_as(code, message));
    }
    let Some(operator_id) = operator_id else {
        return Err(ApiError::unauthorized_as("invalid_credentials", "the email or password is not correct"));
    };
    let ttl = i64::try_from(state.settings().auth.access_token_ttl_secs).unwrap_or(900);
    let mut token_claims = claims(operator_id, TokenType::Operator, ttl);
    token_claims.sid = session_key;
    let token = state.tokens().issue(&token_claims)?;
    Ok(envelope::ok(AccessToken { access_token: token, token_type: "Bearer", expires_in: ttl }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedOut {
    pub signed_out: bool,
}

/// Signs the operator out: every token they hold (platform and break-glass) stops working
/// at its next request.
#[utoipa::path(
    post,
    path = "/api/v1/platform/auth/logout",
    tag = "platform",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Signed out", body = SignedOut),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
        (status = 404, description = "Not an operator token", body = ErrorBody),
    )
)]
pub async fn operator_logout(
    state: web::Data<AppState>,
    auth: OperatorAuth,
    meta: RequestMeta,
) -> Result<HttpResponse, ApiError> {
    let operator_id = auth.operator_id;
    state
        .db()
        .platform_tx(|conn| {
            async move {
                operators::sign_out(conn, operator_id).await?;
                let event = PlatformEvent {
                    operator_id: Some(operator_id),
                    action: "operator.logout",
                    target_firm: None,
                    target: None,
                    result: Outcome::Success,
                    meta: &meta,
                    metadata: serde_json::json!({}),
                };
                operators::record(conn, event).await
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(SignedOut { signed_out: true }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FirmList {
    pub data: Vec<FirmSummary>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Every firm's metadata: name, slug, created, active member count, status. No content.
#[utoipa::path(
    get,
    path = "/api/v1/platform/firms",
    tag = "platform",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Firms, oldest first", body = FirmList),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
        (status = 404, description = "Not an operator token", body = ErrorBody),
    )
)]
pub async fn list_firms(state: web::Data<AppState>, _operator: OperatorAuth) -> Result<HttpResponse, ApiError> {
    let firms =
        state.db().platform_tx(|conn| async move { operators::firm_summaries(conn).await }.scope_boxed()).await?;
    Ok(envelope::whole_list(firms))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequestBody {
    pub firm_id: Uuid,
    /// Why content access is needed (10 to 2000 characters); shown to the firm's owners.
    pub reason: String,
    /// How long the grant lasts once approved, 1 to 240.
    pub minutes: i32,
}

/// Writes one break-glass step to the platform log and to the firm's own log.
async fn audit_step(
    state: &AppState,
    operator_id: Uuid,
    action: &'static str,
    grant: &Grant,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let firm = FirmId(grant.target_firm_id);
    let grant_id = grant.id;
    let metadata = serde_json::json!({ "minutes": grant.minutes, "requested_by": grant.requested_by });
    let platform_meta = meta.clone();
    let platform_metadata = metadata.clone();
    state
        .db()
        .platform_tx(|conn| {
            async move {
                let event = PlatformEvent {
                    operator_id: Some(operator_id),
                    action,
                    target_firm: Some(firm),
                    target: Some(("break_glass_grant", grant_id.to_string())),
                    result: Outcome::Success,
                    meta: &platform_meta,
                    metadata: platform_metadata,
                };
                operators::record(conn, event).await
            }
            .scope_boxed()
        })
        .await?;
    let event = NewAuditEvent::new(firm, ActorType::Operator, Some(operator_id), action, Outcome::Success)
        .with_target("break_glass_grant", grant_id)
        .with_request(meta)
        .with_metadata(metadata);
    state.db().firm_tx(firm, |conn| async move { audit::record(conn, &event).await }.scope_boxed()).await?;
    Ok(())
}

/// Asks for access to one firm's content. Another operator must approve it.
#[utoipa::path(
    post,
    path = "/api/v1/platform/break-glass",
    tag = "platform",
    security(("bearer" = [])),
    request_body = GrantRequestBody,
    responses(
        (status = 201, description = "Pending grant", body = GrantView),
        (status = 400, description = "Missing reason or minutes out of range", body = ErrorBody),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
        (status = 404, description = "No such firm", body = ErrorBody),
    )
)]
pub async fn request_grant(
    state: web::Data<AppState>,
    operator: OperatorAuth,
    meta: RequestMeta,
    body: JsonObject<GrantRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let firm = FirmId(body.firm_id);
    let operator_id = operator.operator_id;
    let grant = state
        .db()
        .platform_tx(|conn| {
            async move {
                firms::find(conn, firm).await?;
                break_glass::request(conn, operator_id, firm, &body.reason, body.minutes).await
            }
            .scope_boxed()
        })
        .await?;
    audit_step(&state, operator_id, "break_glass.requested", &grant, &meta).await?;
    Ok(envelope::created(GrantView::from(grant)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    pub data: Vec<GrantView>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

fn grant_list(grants: Vec<Grant>) -> HttpResponse {
    let views: Vec<GrantView> = grants.into_iter().map(GrantView::from).collect();
    envelope::whole_list(views)
}

/// The latest 100 grants on every firm.
#[utoipa::path(
    get,
    path = "/api/v1/platform/break-glass",
    tag = "platform",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Grants, newest first", body = GrantList),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
    )
)]
pub async fn list_grants(state: web::Data<AppState>, _operator: OperatorAuth) -> Result<HttpResponse, ApiError> {
    let grants = state
        .db()
        .platform_tx(|conn| async move { break_glass::list(conn, None, GRANT_LIST_LIMIT).await }.scope_boxed())
        .await?;
    Ok(grant_list(grants))
}

/// A second operator approves a pending grant; it lasts its minutes from now.
#[utoipa::path(
    post,
    path = "/api/v1/platform/break-glass/{id}/approve",
    tag = "platform",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Grant id")),
    responses(
        (status = 200, description = "Approved", body = GrantView),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
        (status = 403, description = "The requester cannot approve their own grant", body = ErrorBody),
        (status = 404, description = "No such grant", body = ErrorBody),
        (status = 409, description = "Not pending (approved, lapsed or revoked)", body = ErrorBody),
    )
)]
pub async fn approve_grant(
    state: web::Data<AppState>,
    operator: OperatorAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (id, approver) = (path.into_inner(), operator.operator_id);
    let grant = state
        .db()
        .platform_tx(|conn| async move { break_glass::approve(conn, id, approver).await }.scope_boxed())
        .await?;
    audit_step(&state, approver, "break_glass.approved", &grant, &meta).await?;
    Ok(envelope::ok(GrantView::from(grant)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakGlassToken {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: i64,
    pub firm_id: Uuid,
    pub grant_id: Uuid,
}

/// The requester takes up an approved grant: a short-lived token for the firm, read-only.
#[utoipa::path(
    post,
    path = "/api/v1/platform/break-glass/{id}/token",
    tag = "platform",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Grant id")),
    responses(
        (status = 200, description = "Token for the firm; every request with it is audited there", body = BreakGlassToken),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
        (status = 403, description = "Only the requester may use a grant", body = ErrorBody),
        (status = 404, description = "No such grant", body = ErrorBody),
        (status = 409, description = "Not approved, expired or revoked", body = ErrorBody),
    )
)]
pub async fn grant_token(
    state: web::Data<AppState>,
    operator: OperatorAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (id, operator_id) = (path.into_inner(), operator.operator_id);
    let grant = state
        .db()
        .platform_tx(|conn| async move { break_glass::activate(conn, id, operator_id).await }.scope_boxed())
        .await?;
    audit_step(&state, operator_id, "break_glass.activated", &grant, &meta).await?;
    // The audit event above is the durable record; the live notice is best effort.
    live::publish_event(
        state.bus(),
        FirmId(grant.target_firm_id),
        "break_glass.activated",
        serde_json::json!({ "grant_id": grant.id, "operator_id": operator_id, "reason": grant.reason, "expires_at": grant.expires_at }),
    )
    .await;
    let until_grant_ends = grant.expires_at.map_or(0, |e| (e - Utc::now()).num_seconds());
    let ttl =
        i64::try_from(state.settings().auth.break_glass_token_ttl_secs).unwrap_or(900).min(until_grant_ends).max(1);
    // The key of the session asking, not whatever is current: a token asked for just as
    // its operator signs out ends with that session.
    let mut token_claims = claims(operator_id, TokenType::BreakGlass, ttl);
    token_claims.sid = Some(operator.session_key);
    token_claims.firm_id = Some(grant.target_firm_id);
    token_claims.role = Some(crate::domain::memberships::Role::Readonly);
    token_claims.bg = Some(grant.id);
    Ok(envelope::ok(BreakGlassToken {
        access_token: state.tokens().issue(&token_claims)?,
        token_type: "Bearer",
        expires_in: ttl,
        firm_id: grant.target_firm_id,
        grant_id: grant.id,
    }))
}

/// Ends a grant now; tokens issued under it stop working at their next request.
#[utoipa::path(
    post,
    path = "/api/v1/platform/break-glass/{id}/revoke",
    tag = "platform",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Grant id")),
    responses(
        (status = 200, description = "Revoked", body = GrantView),
        (status = 401, description = "Not signed in as an operator", body = ErrorBody),
        (status = 404, description = "No such grant", body = ErrorBody),
        (status = 409, description = "Already ended", body = ErrorBody),
    )
)]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    operator: OperatorAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (id, operator_id) = (path.into_inner(), operator.operator_id);
    let grant = state
        .db()
        .platform_tx(|conn| {
            async move { break_glass::revoke(conn, id, Revoker::Operator(operator_id)).await }.scope_boxed()
        })
        .await?;
    audit_step(&state, operator_id, "break_glass.revoked", &grant, &meta).await?;
    Ok(envelope::ok(GrantView::from(grant)))
}

/// Break-glass grants on the caller's firm, for its owners.
#[utoipa::path(
    get,
    path = "/api/v1/security/break-glass",
    tag = "security",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Grants on this firm, newest first", body = GrantList),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Owners only", body = ErrorBody),
    )
)]
pub async fn firm_grants(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::SecurityManage).await?;
    let firm = ctx.firm();
    // Grants are platform records: read with no firm set, narrowed to this firm here.
    let grants = ctx
        .state()
        .await?
        .db()
        .platform_tx(|conn| async move { break_glass::list(conn, Some(firm), GRANT_LIST_LIMIT).await }.scope_boxed())
        .await?;
    Ok(grant_list(grants))
}

/// An owner ends a grant on their firm.
#[utoipa::path(
    post,
    path = "/api/v1/security/break-glass/{id}/revoke",
    tag = "security",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Grant id")),
    responses(
        (status = 200, description = "Revoked", body = GrantView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Owners only", body = ErrorBody),
        (status = 404, description = "No such grant on this firm", body = ErrorBody),
        (status = 409, description = "Already ended", body = ErrorBody),
    )
)]
pub async fn owner_revoke_grant(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::SecurityManage).await?;
    let (user_id, _) = ctx.member()?;
    let (id, firm) = (path.into_inner(), ctx.firm());
    let grant = ctx
        .state()
        .await?
        .db()
        .platform_tx(|conn| {
            async move { break_glass::revoke(conn, id, Revoker::Owner { firm, user_id }).await }.scope_boxed()
        })
        .await?;
    let event = ctx.event("break_glass.revoked", Outcome::Success).with_target("break_glass_grant", grant.id);
    ctx.tx(Permission::SecurityManage, async |conn, _| audit::record(conn, &event).await).await?;
    Ok(envelope::ok(GrantView::from(grant)))
}
