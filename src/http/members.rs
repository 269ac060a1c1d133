//! `/members`: who belongs to the firm. Owners and admins manage members; only owners
//! make, change or remove owners; the last active owner can be neither demoted nor removed.

use actix_web::{HttpRequest, HttpResponse, web};
use rand::Rng;
use rand::distr::Alphanumeric;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::auth::FirmAuth;
use super::envelope;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use crate::domain::audit::{self, Outcome};
use crate::domain::memberships::{self, Member, MemberFilter, MemberStatus, Role};
use crate::domain::permissions::Permission;
use crate::domain::users::{self, NewUser};
use crate::domain::{DomainError, RequestMeta, sessions, webhooks};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    pub role: Option<Role>,
    pub status: Option<MemberStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub data: Vec<Member>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Lists the firm's members, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/members",
    tag = "members",
    security(("bearer" = [])),
    params(MemberQuery, PageParams),
    responses(
        (status = 200, description = "A page of members", body = MemberList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_members(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<MemberQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::MembersRead)?;
    let spec = page.spec()?;
    let filter = MemberFilter { role: query.role, status: query.status };
    let firm = auth.firm;
    let page_spec = spec.clone();
    let listed = state
        .db()
        .firm_tx(firm, |conn| async move { memberships::list(conn, firm, &filter, &page_spec).await }.scope_boxed())
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMemberBody {
    pub email: String,
    pub role: Role,
    /// For a new login; defaults to the part of the email before the @.
    pub display_name: Option<String>,
    /// Initial password for a new login (12 to 256 characters). Omit it to have one
    /// generated and returned once. Ignored for someone who already has a login.
    pub password: Option<String>,
    /// Required for role `client` (a portal login): the contact this person is, who must
    /// have portal access. Not allowed for other roles.
    pub contact_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddedMember {
    pub member: Member,
    /// Present only when a password was generated for a new login; shown once.
    pub temporary_password: Option<String>,
}

fn generated_password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect()
}

/// Adds someone to the firm, creating their login when the email is new.
#[utoipa::path(
    post,
    path = "/api/v1/members",
    tag = "members",
    security(("bearer" = [])),
    request_body = NewMemberBody,
    responses(
        (status = 201, description = "Added", body = AddedMember),
        (status = 400, description = "Invalid email, role or password", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an owner or admin (owners only, to add an owner)", body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
    )
)]
pub async fn add_member(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: web::Json<NewMemberBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::MembersManage)?;
    let body = body.into_inner();
    if body.role == Role::Owner {
        auth.require(Permission::OwnersManage)?;
    }
    let email = users::normalize_email(&body.email).map_err(|p| ApiError::invalid_field("email", p))?;
    let lookup = email.clone();
    let existing =
        state.db().platform_tx(|conn| async move { users::find_by_email(conn, &lookup).await }.scope_boxed()).await?;
    let (new_user, temporary_password) = match existing {
        Some(_) => (None, None),
        None => {
            let generated = body.password.is_none().then(generated_password);
            let password = body.password.clone().or_else(|| generated.clone()).unwrap_or_default();
            let display_name =
                body.display_name.clone().unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            let new_user = web::block(move || NewUser::parse(&email, &display_name, &password))
                .await
                .map_err(ApiError::internal)??;
            (Some(new_user), generated)
        }
    };
    let existing_id = existing.map(|u| u.id);
    let attempts = i32::try_from(state.settings().jobs.max_attempts).unwrap_or(8);
    let firm = auth.firm;
    let role = body.role;
    let contact_id = body.contact_id;
    let audit_event = auth.audit("member.added", Outcome::Success, &meta);
    let member = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let user_id = match (&new_user, existing_id) {
                    (Some(new_user), _) => users::insert(conn, new_user).await?.id,
                    (None, Some(id)) => id,
                    (None, None) => return Err(DomainError::Internal("no user to add".into())),
                };
                memberships::add(conn, firm, user_id, role, contact_id).await?;
                let event = audit_event
                    .with_target("user", user_id)
                    .with_metadata(serde_json::json!({ "role": role.as_str(), "new_login": new_user.is_some() }));
                audit::record(conn, &event).await?;
                let data = serde_json::json!({ "user_id": user_id, "role": role.as_str() });
                webhooks::emit(conn, firm, "member.added", data, attempts).await?;
                memberships::find(conn, firm, user_id).await
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::created(AddedMember { member, temporary_password }))
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not allowed for your role", body = ErrorBody),
        (status = 404, description = "No such member in this firm", body = ErrorBody),
        (status = 409, description = "Would leave the firm without an active owner", body = ErrorBody),
    )
)]
pub async fn update_member(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: web::Json<MemberChanges>,
) -> Result<HttpResponse, ApiError> {
    let changes = body.into_inner();
    if changes.role.is_none() && changes.status.is_none() {
        return Err(ApiError::validation("give `role` and/or `status`", serde_json::json!({ "fields": {} })));
    }
    change_member(&state, &auth, &meta, path.into_inner(), changes).await.map(envelope::ok)
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
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not allowed for your role", body = ErrorBody),
        (status = 404, description = "No such member in this firm", body = ErrorBody),
        (status = 409, description = "The firm's last active owner", body = ErrorBody),
    )
)]
pub async fn deactivate_member(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let changes = MemberChanges { role: None, status: Some(MemberStatus::Deactivated) };
    change_member(&state, &auth, &meta, path.into_inner(), changes).await.map(envelope::ok)
}

async fn change_member(
    state: &AppState,
    auth: &FirmAuth,
    meta: &RequestMeta,
    user_id: Uuid,
    changes: MemberChanges,
) -> Result<Member, ApiError> {
    auth.require(Permission::MembersManage)?;
    if changes.role == Some(Role::Owner) {
        auth.require(Permission::OwnersManage)?;
    }
    let firm = auth.firm;
    let caller_is_not_owner = auth.require(Permission::OwnersManage).is_err();
    let audit_template = auth.audit("member.changed", Outcome::Success, meta);
    let attempts = i32::try_from(state.settings().jobs.max_attempts).unwrap_or(8);
    Ok(state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let current = memberships::find(conn, firm, user_id).await?;
                if caller_is_not_owner && current.role == Role::Owner.as_str() {
                    return Err(DomainError::Forbidden("only an owner can change an owner".into()));
                }
                let (before, after) = memberships::change(conn, firm, user_id, changes.role, changes.status).await?;
                if after.status == MemberStatus::Deactivated.as_str() && before.status != after.status {
                    sessions::revoke_all_for_user(conn, firm, user_id, "deactivated").await?;
                }
                let action = match (before.role != after.role, before.status != after.status) {
                    (true, _) => "member.role_changed",
                    (false, true) if after.status == MemberStatus::Deactivated.as_str() => "member.deactivated",
                    (false, true) => "member.reactivated",
                    (false, false) => "member.unchanged",
                };
                let mut event = audit_template.with_target("user", user_id).with_metadata(serde_json::json!({
                    "role": { "from": before.role, "to": after.role },
                    "status": { "from": before.status, "to": after.status },
                }));
                event.set_action(action);
                audit::record(conn, &event).await?;
                if action != "member.unchanged" {
                    let data = serde_json::json!({ "user_id": user_id, "role": after.role, "status": after.status });
                    webhooks::emit(conn, firm, action, data, attempts).await?;
                }
                Ok::<_, DomainError>(after)
            }
            .scope_boxed()
        })
        .await?)
}
