//! Accepting an invitation, without signing in: the emailed token is the credential for
//! joining, and an existing login must still prove itself (password, and its TOTP code
//! when it has MFA), so a token alone never opens someone else's account.

use super::body::JsonObject;
use actix_web::{HttpResponse, web};
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::identity::{check_credentials_shape, take_attempt};
use crate::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use crate::domain::memberships::{self, Role};
use crate::domain::users::{self, NewUser};
use crate::domain::{DomainError, FirmId, RequestMeta, firms, invitations, login, mfa, sessions, throttle, webhooks};

fn invalid_invitation() -> ApiError {
    ApiError::NotFound("the invitation is invalid, already used, withdrawn or has lapsed".into())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPreview {
    /// The inviting firm's name.
    pub firm_name: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationToken {
    /// From the invitation email.
    pub token: String,
}

/// What an invitation is for: the firm's name and the role, nothing else. The token
/// travels in the body, never in a URL (which ends up in logs and Referer headers).
#[utoipa::path(
    post,
    path = "/api/v1/invitations/preview",
    tag = "members",
    request_body = InvitationToken,
    responses(
        (status = 200, description = "The invitation", body = InvitationPreview),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "Unknown, used, withdrawn or lapsed", body = ErrorBody),
    )
)]
pub async fn preview(state: web::Data<AppState>, body: JsonObject<InvitationToken>) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().token;
    let (firm, secret) = sessions::parse_firm_secret(token.trim()).ok_or_else(invalid_invitation)?;
    let secret = secret.to_owned();
    let found = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let Some(invitation) = invitations::find_by_secret(conn, firm, &secret, false).await? else {
                    return Ok(None);
                };
                let firm = firms::find(conn, firm).await?;
                Ok::<_, DomainError>(Some((invitation, firm)))
            }
            .scope_boxed()
        })
        .await?;
    let (invitation, firm) = found.filter(|(_, f)| f.status == "active").ok_or_else(invalid_invitation)?;
    let role = invitation.role.parse::<Role>().map_err(|_| invalid_invitation())?;
    Ok(envelope::ok(InvitationPreview { firm_name: firm.name, role }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    /// A new address: the password to set (12 to 256 characters). An address that already
    /// has a login: that login's password.
    pub password: String,
    /// A new address: the name to show (defaults to the part of the address before the @).
    /// Ignored for an existing login.
    pub display_name: Option<String>,
    /// An existing login with MFA on: a current authenticator code.
    pub totp_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    /// Sign in to this firm with the address and password.
    pub firm_slug: String,
    pub email: String,
    pub role: Role,
}

/// Accepts an invitation (once): a new address sets its password; an address that already
/// has a login proves it. Then the person is a member and signs in as usual.
#[utoipa::path(
    post,
    path = "/api/v1/invitations/accept",
    tag = "members",
    request_body = AcceptInvitation,
    responses(
        (status = 200, description = "Joined", body = Joined),
        (status = 400, description = "Missing fields, or an unacceptable new password", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, `mfa_required` or `invalid_mfa_code` for an existing login", body = ErrorBody),
        (status = 404, description = "Unknown, used, withdrawn or lapsed invitation", body = ErrorBody),
        (status = 409, description = "Already a member of the firm", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords or codes; see Retry-After", body = ErrorBody),
    )
)]
pub async fn accept(
    state: web::Data<AppState>,
    meta: RequestMeta,
    body: JsonObject<AcceptInvitation>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_credentials_shape(&[("token", &body.token), ("password", &body.password)])?;
    let (firm, secret) = sessions::parse_firm_secret(body.token.trim()).ok_or_else(invalid_invitation)?;
    let secret = secret.to_owned();
    let lookup_secret = secret.clone();
    let (invitation, firm_record) = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let invitation = invitations::find_by_secret(conn, firm, &lookup_secret, false).await?;
                let firm = firms::find(conn, firm).await?;
                Ok::<_, DomainError>(invitation.map(|i| (i, firm)))
            }
            .scope_boxed()
        })
        .await?
        .filter(|(_, f)| f.status == "active")
        .ok_or_else(invalid_invitation)?;
    let role = invitation.role.parse::<Role>().map_err(|_| invalid_invitation())?;
    let email = invitation.email.clone();
    let lookup = email.clone();
    let existing =
        state.db().platform_tx(|conn| async move { users::find_by_email(conn, &lookup).await }.scope_boxed()).await?;

    let (user_id, new_user) = match existing {
        Some(user) => {
            prove_existing_login(&state, firm, &user, &body, &meta).await?;
            (user.id, None)
        }
        None => {
            let display_name = body
                .display_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            let (address, password) = (email.clone(), body.password.clone());
            let new_user = web::block(move || NewUser::parse(&address, &display_name, &password))
                .await
                .map_err(ApiError::internal)??;
            (new_user.id, Some(new_user))
        }
    };

    let attempts = state.job_attempts();
    let invitation_id = invitation.id;
    let contact_id = invitation.contact_id;
    let event = NewAuditEvent::new(firm, ActorType::User, Some(user_id), "invitation.accepted", Outcome::Success)
        .with_target("invitation", invitation_id)
        .with_request(&meta)
        .with_metadata(serde_json::json!({ "role": role.as_str() }));
    state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                // Locked and checked again: of two acceptances of one token, one joins.
                if invitations::find_by_secret(conn, firm, &secret, true).await?.is_none() {
                    return Err(DomainError::NotFound("invitation"));
                }
                if let Some(new_user) = &new_user {
                    users::insert(conn, new_user)
                        .await
                        .map_err(|_| DomainError::Conflict("the address got a login meanwhile; accept again".into()))?;
                }
                memberships::join(conn, firm, user_id, role, contact_id).await?;
                invitations::mark_accepted(conn, firm, invitation_id, user_id).await?;
                audit::record(conn, &event).await?;
                let data = serde_json::json!({ "user_id": user_id, "role": role.as_str() });
                webhooks::emit(conn, firm, webhooks::EventType::MemberAdded, data, attempts).await?;
                Ok(())
            }
            .scope_boxed()
        })
        .await
        .map_err(|err: DomainError| match err {
            DomainError::NotFound(_) => invalid_invitation(),
            other => other.into(),
        })?;
    Ok(envelope::ok(Joined { firm_slug: firm_record.slug, email, role }))
}

/// An existing login accepts only by proving it, counted like a log-in.
async fn prove_existing_login(
    state: &AppState,
    firm: FirmId,
    user: &users::User,
    body: &AcceptInvitation,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let (account_key, ip_key) =
        (throttle::account_key(throttle::Flow::Invitation, "", &user.email), meta.ip.as_deref().map(throttle::ip_key));
    take_attempt(state, account_key.clone(), ip_key.clone()).await?;
    if !login::verify_password_off_thread(body.password.clone(), user.password_hash.clone()).await {
        return Err(ApiError::unauthorized_as("invalid_credentials", "the email or password is not correct"));
    }
    if user.mfa_enabled {
        let Some(code) = body.totp_code.clone().filter(|c| !c.trim().is_empty()) else {
            return Err(ApiError::unauthorized_as("mfa_required", "this login has MFA: give `totp_code`"));
        };
        let (user, secrets) = (user.clone(), state.secret_box()?);
        let accepted = state
            .db()
            .firm_tx(firm, |conn| async move { mfa::accept_code(conn, &user, &code, &secrets).await }.scope_boxed())
            .await?;
        if !accepted {
            return Err(ApiError::unauthorized_as("invalid_mfa_code", "the code is not correct"));
        }
    }
    state
        .db()
        .platform_tx(|conn| {
            async move { throttle::succeeded(conn, &account_key, ip_key.as_deref()).await }.scope_boxed()
        })
        .await?;
    Ok(())
}
