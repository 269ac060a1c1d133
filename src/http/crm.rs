//! `/clients` and `/contacts`. Everyone in the firm reads them; owners, admins and staff
//! change them. Every change is audited and emits its domain event for webhooks.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::FirmAuth;
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{AppState, double_option, envelope};
use crate::domain::audit::{self, Outcome};
use crate::domain::clients::{self, Address, Client, ClientFilter, ClientInput, ClientSort};
use crate::domain::contacts::{self, Contact, ContactFilter, ContactInput, ContactSort};
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, RequestMeta, webhooks};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    pub name: Option<String>,
    /// `active` or `inactive`.
    #[schema(value_type = Option<super::openapi::ClientStatus>)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub industry: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Address>)]
    pub address: Option<Option<Address>>,
    pub tags: Option<Vec<String>>,
    /// A member of the firm.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub owner_user_id: Option<Option<Uuid>>,
    /// Up to 50 keys of the firm's own fields.
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

impl From<ClientBody> for ClientInput {
    fn from(b: ClientBody) -> Self {
        ClientInput {
            name: b.name,
            status: b.status,
            industry: b.industry,
            address: b.address,
            tags: b.tags,
            owner_user_id: b.owner_user_id,
            custom_fields: b.custom_fields,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    #[param(value_type = Option<super::openapi::ClientStatus>)]
    pub status: Option<String>,
    pub tag: Option<String>,
    pub owner_user_id: Option<Uuid>,
    /// Substring of the name, any case.
    pub q: Option<String>,
    /// Include archived clients.
    #[serde(default)]
    pub include_archived: bool,
    /// `name`, `-name`, `created_at` or `-created_at` (default).
    pub sort: Option<ClientSort>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub data: Vec<Client>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Creates a client.
#[utoipa::path(
    post, path = "/api/v1/clients", tag = "crm", security(("bearer" = [])),
    request_body = ClientBody,
    responses(
        (status = 201, description = "Created", body = Client),
        (status = 400, description = "Invalid fields (see details.fields)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
    )
)]
pub async fn create_client(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<ClientBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, attempts) = (auth.firm, state.job_attempts());
    let event = auth.audit("client.created", Outcome::Success, &meta);
    let input = ClientInput::from(body.into_inner());
    let client = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let client = clients::create(conn, firm, input).await?;
                audit::record(conn, &event.with_target("client", client.id)).await?;
                webhooks::emit(
                    conn,
                    firm,
                    webhooks::EventType::ClientCreated,
                    serde_json::json!({ "client_id": client.id }),
                    attempts,
                )
                .await?;
                Ok::<_, DomainError>(client)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::created(client))
}

/// Lists clients (archived ones only on request), filtered, searched and sorted.
#[utoipa::path(
    get, path = "/api/v1/clients", tag = "crm", security(("bearer" = [])),
    params(ClientQuery, PageParams),
    responses(
        (status = 200, description = "A page of clients", body = ClientList),
        (status = 400, description = "Bad filter, sort or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_clients(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<ClientQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let spec = page.spec()?;
    let query = query.into_inner();
    let filter = ClientFilter {
        status: query.status,
        tag: query.tag,
        owner_user_id: query.owner_user_id,
        q: query.q,
        include_archived: query.include_archived,
        sort: query.sort.unwrap_or_default(),
    };
    let (firm, page_spec) = (auth.firm, spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| async move { clients::list(conn, firm, &filter, &page_spec).await }.scope_boxed())
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One client.
#[utoipa::path(
    get, path = "/api/v1/clients/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    responses(
        (status = 200, description = "The client", body = Client),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such client in this firm", body = ErrorBody),
    )
)]
pub async fn get_client(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let client =
        state.db().firm_tx(firm, |conn| async move { clients::find(conn, firm, id).await }.scope_boxed()).await?;
    Ok(envelope::ok(client))
}

/// Changes the fields given; `null` clears an optional one.
#[utoipa::path(
    patch, path = "/api/v1/clients/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    request_body = ClientBody,
    responses(
        (status = 200, description = "Changed", body = Client),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such client in this firm", body = ErrorBody),
    )
)]
pub async fn update_client(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<ClientBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let body = body.into_inner();
    let changed = serde_json::json!({ "fields": given_fields(&body) });
    let event = auth.audit("client.updated", Outcome::Success, &meta).with_target("client", id).with_metadata(changed);
    let input = ClientInput::from(body);
    let client = audit::audited(state.db(), firm, event, |conn| {
        async move { clients::update(conn, firm, id, input).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(client))
}

/// Archives a client.
#[utoipa::path(
    delete, path = "/api/v1/clients/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    responses(
        (status = 200, description = "Archived", body = Client),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such client in this firm", body = ErrorBody),
    )
)]
pub async fn archive_client(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let event = auth.audit("client.archived", Outcome::Success, &meta).with_target("client", id);
    let client = audit::audited(state.db(), firm, event, |conn| {
        async move { clients::archive(conn, firm, id).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(client))
}

/// Which fields a change touched: names only, never values (audit is metadata only).
fn given_fields(b: &ClientBody) -> Vec<&'static str> {
    [
        ("name", b.name.is_some()),
        ("status", b.status.is_some()),
        ("industry", b.industry.is_some()),
        ("address", b.address.is_some()),
        ("tags", b.tags.is_some()),
        ("owner_user_id", b.owner_user_id.is_some()),
        ("custom_fields", b.custom_fields.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .map(|(name, _)| name)
    .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub client_id: Option<Option<Uuid>>,
    pub portal_access: Option<bool>,
    /// Replaces the list; the first is primary. Unique within the firm.
    pub emails: Option<Vec<String>>,
    /// Replaces the list; any common format, stored as E.164.
    pub phones: Option<Vec<String>>,
    /// `false` once someone has checked a contact the hub made from an unknown sender.
    pub needs_review: Option<bool>,
}

impl From<ContactBody> for ContactInput {
    fn from(b: ContactBody) -> Self {
        ContactInput {
            first_name: b.first_name,
            last_name: b.last_name,
            title: b.title,
            client_id: b.client_id,
            portal_access: b.portal_access,
            emails: b.emails,
            phones: b.phones,
            needs_review: b.needs_review,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    pub client_id: Option<Uuid>,
    /// Exact address, any case.
    pub email: Option<String>,
    /// A phone number in any common format.
    pub phone: Option<String>,
    /// Substring of the name or of an email address.
    pub q: Option<String>,
    #[serde(default)]
    pub include_archived: bool,
    /// `name`, `-name`, `created_at` or `-created_at` (default).
    pub sort: Option<ContactSort>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactList {
    pub data: Vec<Contact>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Creates a contact.
#[utoipa::path(
    post, path = "/api/v1/contacts", tag = "crm", security(("bearer" = [])),
    request_body = ContactBody,
    responses(
        (status = 201, description = "Created", body = Contact),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 409, description = "An email already belongs to another contact in this firm", body = ErrorBody),
    )
)]
pub async fn create_contact(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let firm = auth.firm;
    let region = state.settings().crm.default_phone_region.clone();
    let event = auth.audit("contact.created", Outcome::Success, &meta);
    let input = ContactInput::from(body.into_inner());
    let contact = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let contact = contacts::create(conn, firm, input, &region).await?;
                audit::record(conn, &event.with_target("contact", contact.id)).await?;
                Ok::<_, DomainError>(contact)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::created(contact))
}

/// Lists contacts, filtered, searched (name, email) and sorted; look-ups by email or phone.
#[utoipa::path(
    get, path = "/api/v1/contacts", tag = "crm", security(("bearer" = [])),
    params(ContactQuery, PageParams),
    responses(
        (status = 200, description = "A page of contacts", body = ContactList),
        (status = 400, description = "Bad filter, sort or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_contacts(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<ContactQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let spec = page.spec()?;
    let query = query.into_inner();
    let filter = ContactFilter {
        client_id: query.client_id,
        email: query.email,
        phone: query.phone,
        q: query.q,
        include_archived: query.include_archived,
        sort: query.sort.unwrap_or_default(),
    };
    let (firm, page_spec) = (auth.firm, spec.clone());
    let region = state.settings().crm.default_phone_region.clone();
    let listed = state
        .db()
        .firm_tx(firm, |conn| {
            async move { contacts::list(conn, firm, &filter, &page_spec, &region).await }.scope_boxed()
        })
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One contact.
#[utoipa::path(
    get, path = "/api/v1/contacts/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such contact in this firm", body = ErrorBody),
    )
)]
pub async fn get_contact(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let contact =
        state.db().firm_tx(firm, |conn| async move { contacts::find(conn, firm, id).await }.scope_boxed()).await?;
    Ok(envelope::ok(contact))
}

/// Changes the fields given; `emails` and `phones` replace their lists.
#[utoipa::path(
    patch, path = "/api/v1/contacts/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    request_body = ContactBody,
    responses(
        (status = 200, description = "Changed", body = Contact),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such contact in this firm", body = ErrorBody),
        (status = 409, description = "An email already belongs to another contact in this firm", body = ErrorBody),
    )
)]
pub async fn update_contact(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let region = state.settings().crm.default_phone_region.clone();
    let event = auth.audit("contact.updated", Outcome::Success, &meta).with_target("contact", id);
    let input = ContactInput::from(body.into_inner());
    let contact = audit::audited(state.db(), firm, event, |conn| {
        async move { contacts::update(conn, firm, id, input, &region).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(contact))
}

/// Archives a contact.
#[utoipa::path(
    delete, path = "/api/v1/contacts/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 200, description = "Archived", body = Contact),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such contact in this firm", body = ErrorBody),
    )
)]
pub async fn archive_contact(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let event = auth.audit("contact.archived", Outcome::Success, &meta).with_target("contact", id);
    let contact = audit::audited(state.db(), firm, event, |conn| {
        async move { contacts::archive(conn, firm, id).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::ok(contact))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub body: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Entries to return, 1 to 100 (default 50).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub data: Vec<clients::TimelineEntry>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Adds a note to a client's timeline.
#[utoipa::path(
    post, path = "/api/v1/clients/{id}/notes", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    request_body = NoteBody,
    responses(
        (status = 201, description = "Added", body = clients::TimelineEntry),
        (status = 400, description = "Empty or too long", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Your role cannot change content", body = ErrorBody),
        (status = 404, description = "No such client in this firm", body = ErrorBody),
    )
)]
pub async fn add_note(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<NoteBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let author = auth.member().ok().map(|(user_id, _)| user_id);
    let event = auth.audit("client.note_added", Outcome::Success, &meta).with_target("client", id);
    let text = body.into_inner().body;
    let note = audit::audited(state.db(), firm, event, |conn| {
        async move { clients::add_note(conn, firm, id, author, &text).await }.scope_boxed()
    })
    .await?;
    Ok(envelope::created(note))
}

/// A client's notes and changes, newest first.
#[utoipa::path(
    get, path = "/api/v1/clients/{id}/timeline", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id"), TimelineQuery),
    responses(
        (status = 200, description = "Newest first", body = Timeline),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such client in this firm", body = ErrorBody),
    )
)]
pub async fn timeline(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentRead)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 100));
    let entries = state
        .db()
        .firm_tx(firm, |conn| async move { clients::timeline(conn, firm, id, limit).await }.scope_boxed())
        .await?;
    let meta = serde_json::json!({ "count": entries.len(), "limit": limit, "next": null, "previous": null });
    Ok(envelope::with_meta(entries, meta))
}
