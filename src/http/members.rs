//! `/members`: who belongs to the firm. Owners and admins manage members; only owners
//! make, change or remove owners; the last active owner can be neither demoted nor removed.

use super::body::JsonObject;
use crate::domain::webhooks::EventType;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::ctx::{Audit, FirmCtx};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use crate::domain::audit::{self, Outcome};
use crate::domain::invitations::{self, Invitation, NewInvitation};
use crate::domain::memberships::{self, Member, MemberFilter, MemberStatus, Role};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, jobs, sessions, users, webhooks};

/// A member's status in listings: `invited` lists the open invitations instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListedStatus {
    Active,
    Deactivated,
    Invited,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    pub role: Option<Role>,
    /// `active`, `deactivated`, or `invited` (open invitations, with `status: invited`).
    pub status: Option<ListedStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub data: Vec<Member>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Lists the firm's members, oldest first; with `status=invited`, the open invitations
/// (each `status: invited`, oldest first, at most 500).
#[utoipa::path(
    get,
    path = "/api/v1/members",
    tag = "members",
    security(("bearer" = [])),
    params(MemberQuery, PageParams),
    responses(
        (status = 200, description = "A page of members (or the open invitations)", body = MemberList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
    )
)]
pub async fn list_members(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<MemberQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let spec = page.spec()?;
    if query.status == Some(ListedStatus::Invited) {
        let role = query.role.map(Role::as_str);
        let open = ctx.tx(Permission::MembersRead, async |conn, firm| invitations::list_open(conn, firm).await).await?;
        let open: Vec<Invitation> = open.into_iter().filter(|i| role.is_none_or(|r| i.role == r)).collect();
        return Ok(envelope::whole_list(open));
    }
    let status = match query.status {
        Some(ListedStatus::Active) => Some(MemberStatus::Active),
        Some(ListedStatus::Deactivated) => Some(MemberStatus::Deactivated),
        _ => None,
    };
    let filter = MemberFilter { role: query.role, status };
    let listed = ctx
        .page(Permission::MembersRead, async |conn, firm| memberships::list(conn, firm, &filter, &spec).await)
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMemberBody {
    pub email: String,
    pub role: Role,
    /// Required for role `client` (a portal login): the contact this person is, who must
    /// have portal access. Not allowed for other roles.
    pub contact_id: Option<Uuid>,
    /// Refused: people choose their own password when they accept the invitation.
    #[schema(value_type = Option<String>)]
    pub password: Option<serde::de::IgnoredAny>,
    /// Refused: people name themselves when they accept.
    #[schema(value_type = Option<String>)]
    pub display_name: Option<serde::de::IgnoredAny>,
}

fn invitation_ttl(state: &AppState) -> chrono::Duration {
    chrono::Duration::hours(i64::try_from(state.settings().mail.invitation_ttl_hours).unwrap_or(168))
}

/// Invites someone to the firm: an email with a single-use link goes out through the jobs
/// queue. Nothing about the address's login (whether there is one, its name, its MFA) is
/// looked at or shown; the person sets or proves their own password on accepting.
#[utoipa::path(
    post,
    path = "/api/v1/members",
    tag = "members",
    security(("bearer" = [])),
    request_body = NewMemberBody,
    responses(
        (status = 201, description = "Invited; the email is on its way", body = Invitation),
        (status = 400, description = "Invalid email, role or contact, or a password or name given", body = ErrorBody),
        (status = 409, description = "Already a member, or already invited", body = ErrorBody),
    )
)]
pub async fn add_member(ctx: FirmCtx, body: JsonObject<NewMemberBody>) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::MembersManage).await?;
    let body = body.into_inner();
    if body.password.is_some() {
        return Err(ApiError::invalid_field(
            "password",
            "a firm does not choose passwords: the person sets their own when accepting the invitation",
        ));
    }
    if body.display_name.is_some() {
        return Err(ApiError::invalid_field("display_name", "the person names themselves when accepting"));
    }
    // Only an owner makes an owner.
    let needed = if body.role == Role::Owner { Permission::OwnersManage } else { Permission::MembersManage };
    let email = users::normalize_email(&body.email).map_err(|p| ApiError::invalid_field("email", p))?;
    let (ttl, attempts) = (invitation_ttl(ctx.state().await?), ctx.job_attempts());
    let invited_by = ctx.member().ok().map(|(user_id, _)| user_id);
    let new = NewInvitation { email, role: body.role, contact_id: body.contact_id };
    let audit = Audit::new("invitation.created")
        .target_of("invitation", |i: &Invitation| i.id)
        .metadata_of(|i: &Invitation| serde_json::json!({ "role": i.role }));
    let invitation = ctx
        .audited(needed, audit, async |conn, firm| {
            let invitation = invitations::create(conn, firm, new.clone(), invited_by, ttl).await?;
            let payload = serde_json::json!({ "invitation_id": invitation.id });
            jobs::enqueue(conn, firm, invitations::SEND_JOB, payload, attempts).await?;
            Ok(invitation)
        })
        .await?;
    Ok(envelope::created(invitation))
}

/// Sends an open invitation again with a new link (the earlier one stops working) and a
/// fresh lifetime.
#[utoipa::path(
    post,
    path = "/api/v1/members/invitations/{id}/resend",
    tag = "members",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 200, description = "Sent again", body = Invitation),
        (status = 404, description = "No open invitation with this id in this firm", body = ErrorBody),
    )
)]
pub async fn resend_invitation(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (id, ttl, attempts) = (path.into_inner(), invitation_ttl(ctx.state().await?), ctx.job_attempts());
    let audit = Audit::new("invitation.resent").target("invitation", id);
    let invitation = ctx
        .audited(Permission::MembersManage, audit, async |conn, firm| {
            open_invitation_within_reach(&ctx, conn, id, "only an owner can invite an owner").await?;
            let invitation = invitations::renew(conn, firm, id, ttl).await?;
            let payload = serde_json::json!({ "invitation_id": id });
            jobs::enqueue(conn, firm, invitations::SEND_JOB, payload, attempts).await?;
            Ok(invitation)
        })
        .await?;
    Ok(envelope::ok(invitation))
}

/// Withdraws an open invitation: its link stops working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/members/invitations/{id}",
    tag = "members",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 200, description = "Withdrawn", body = Invitation),
        (status = 404, description = "No open invitation with this id in this firm", body = ErrorBody),
    )
)]
pub async fn revoke_invitation(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("invitation.revoked").target("invitation", id);
    let invitation = ctx
        .audited(Permission::MembersManage, audit, async |conn, firm| {
            open_invitation_within_reach(&ctx, conn, id, "only an owner can withdraw an owner's invitation").await?;
            invitations::revoke(conn, firm, id).await
        })
        .await?;
    Ok(envelope::ok(invitation))
}

/// An open invitation the caller may act on: one for an owner only if the caller is an
/// owner (by the standing checked for this transaction).
async fn open_invitation_within_reach(
    ctx: &FirmCtx,
    conn: &mut crate::db::Connection,
    id: Uuid,
    refusal: &str,
) -> Result<(), DomainError> {
    let open = invitations::find_open(conn, ctx.firm(), id).await?;
    if open.role == Role::Owner.as_str() && !ctx.checked()?.role.can(Permission::OwnersManage) {
        return Err(DomainError::Forbidden(refusal.into()));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChanges {
    pub role: Option<Role>,
    pub status: Option<MemberStatus>,
}

/// Changes a member's role or status. Deactivating ends their sessions at once.
#[utoipa::path(
    patch,
    path = "/api/v1/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The member's user id")),
    request_body = MemberChanges,
    responses(
        (status = 200, description = "Changed", body = Member),
        (status = 400, description = "Nothing to change, or bad values", body = ErrorBody),
        (status = 404, description = "No such member in this firm", body = ErrorBody),
        (status = 409, description = "Would leave the firm without an active owner", body = ErrorBody),
    )
)]
pub async fn update_member(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<MemberChanges>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.into_inner();
    if changes.role.is_none() && changes.status.is_none() {
        return Err(ApiError::validation("give `role` and/or `status`", serde_json::json!({ "fields": {} })));
    }
    change_member(&ctx, path.into_inner(), changes).await.map(envelope::ok)
}

/// Deactivates a member (their login and history stay; their access ends at once).
#[utoipa::path(
    delete,
    path = "/api/v1/members/{user_id}",
    tag = "members",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The member's user id")),
    responses(
        (status = 200, description = "Deactivated", body = Member),
        (status = 404, description = "No such member in this firm", body = ErrorBody),
        (status = 409, description = "The firm's last active owner", body = ErrorBody),
    )
)]
pub async fn deactivate_member(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let changes = MemberChanges { role: None, status: Some(MemberStatus::Deactivated) };
    change_member(&ctx, path.into_inner(), changes).await.map(envelope::ok)
}

async fn change_member(ctx: &FirmCtx, user_id: Uuid, changes: MemberChanges) -> Result<Member, ApiError> {
    // Only an owner makes an owner.
    let needed = if changes.role == Some(Role::Owner) { Permission::OwnersManage } else { Permission::MembersManage };
    let attempts = ctx.job_attempts();
    ctx.tx(needed, async |conn, firm| {
        let current = memberships::find(conn, firm, user_id).await?;
        let caller_is_owner = ctx.checked()?.role.can(Permission::OwnersManage);
        if !caller_is_owner && current.role == Role::Owner.as_str() {
            return Err(DomainError::Forbidden("only an owner can change an owner".into()));
        }
        let (before, after) = memberships::change(conn, firm, user_id, changes.role, changes.status).await?;
        if after.status == MemberStatus::Deactivated.as_str() && before.status != after.status {
            sessions::revoke_all_for_user(conn, firm, user_id, "deactivated").await?;
        }
        let change = match (before.role != after.role, before.status != after.status) {
            (true, _) => Some(EventType::MemberRoleChanged),
            (false, true) if after.status == MemberStatus::Deactivated.as_str() => Some(EventType::MemberDeactivated),
            (false, true) => Some(EventType::MemberReactivated),
            (false, false) => None,
        };
        let action = change.map_or("member.unchanged", EventType::as_str);
        let event = ctx.event(action, Outcome::Success).with_target("user", user_id).with_metadata(serde_json::json!({
            "role": { "from": before.role, "to": after.role },
            "status": { "from": before.status, "to": after.status },
        }));
        audit::record(conn, &event).await?;
        if let Some(change) = change {
            let data = serde_json::json!({ "user_id": user_id, "role": after.role, "status": after.status });
            webhooks::emit(conn, firm, change, data, attempts).await?;
        }
        Ok(after)
    })
    .await
}
