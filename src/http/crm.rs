//! `/clients` and `/contacts`. Everyone in the firm reads them; owners, admins and staff
//! change them. Every change is audited and emits its domain event for webhooks.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{double_option, envelope};
use crate::domain::clients::{self, Address, Client, ClientFilter, ClientInput, ClientSort};
use crate::domain::contacts::{self, Contact, ContactFilter, ContactInput, ContactSort};
use crate::domain::permissions::Permission;
use crate::domain::webhooks;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    pub name: Option<String>,
    /// `active` or `inactive`.
    #[schema(value_type = Option<crate::domain::value_sets::ClientStatus>)]
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
    #[param(value_type = Option<crate::domain::value_sets::ClientStatus>)]
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
    responses((status = 201, description = "Created", body = Client))
)]
pub async fn create_client(ctx: FirmCtx, body: JsonObject<ClientBody>) -> Result<HttpResponse, ApiError> {
    let input = ClientInput::from(body.into_inner());
    let attempts = ctx.job_attempts();
    let audit = Audit::new("client.created").target_of("client", |c: &Client| c.id);
    let client = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            let client = clients::create(conn, firm, input.clone()).await?;
            let data = serde_json::json!({ "client_id": client.id });
            webhooks::emit(conn, firm, webhooks::EventType::ClientCreated, data, attempts).await?;
            Ok(client)
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
    )
)]
pub async fn list_clients(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ClientQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
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
    let listed =
        ctx.page(Permission::ContentRead, async |conn, firm| clients::list(conn, firm, &filter, &spec).await).await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One client.
#[utoipa::path(
    get, path = "/api/v1/clients/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    responses((status = 200, description = "The client", body = Client))
)]
pub async fn get_client(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let client = ctx.tx(Permission::ContentRead, async |conn, firm| clients::find(conn, firm, id).await).await?;
    Ok(envelope::ok(client))
}

/// Changes the fields given; `null` clears an optional one.
#[utoipa::path(
    patch, path = "/api/v1/clients/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    request_body = ClientBody,
    responses((status = 200, description = "Changed", body = Client))
)]
pub async fn update_client(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ClientBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, body) = (path.into_inner(), body.into_inner());
    let audit = Audit::new("client.updated")
        .target("client", id)
        .metadata(serde_json::json!({ "fields": given_fields(&body) }));
    let input = ClientInput::from(body);
    let client = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            clients::update(conn, firm, id, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(client))
}

/// Archives a client.
#[utoipa::path(
    delete, path = "/api/v1/clients/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client id")),
    responses((status = 200, description = "Archived", body = Client))
)]
pub async fn archive_client(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("client.archived").target("client", id);
    let client =
        ctx.audited(Permission::ContentWrite, audit, async |conn, firm| clients::archive(conn, firm, id).await).await?;
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
        (status = 409, description = "An email already belongs to another contact in this firm", body = ErrorBody),
    )
)]
pub async fn create_contact(ctx: FirmCtx, body: JsonObject<ContactBody>) -> Result<HttpResponse, ApiError> {
    let region = ctx.phone_region();
    let input = ContactInput::from(body.into_inner());
    let audit = Audit::new("contact.created").target_of("contact", |c: &Contact| c.id);
    let contact = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            contacts::create(conn, firm, input.clone(), region).await
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
    )
)]
pub async fn list_contacts(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ContactQuery>,
    page: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
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
    let region = ctx.phone_region();
    let listed = ctx
        .page(Permission::ContentRead, async |conn, firm| contacts::list(conn, firm, &filter, &spec, region).await)
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One contact.
#[utoipa::path(
    get, path = "/api/v1/contacts/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    responses((status = 200, description = "The contact", body = Contact))
)]
pub async fn get_contact(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let contact = ctx.tx(Permission::ContentRead, async |conn, firm| contacts::find(conn, firm, id).await).await?;
    Ok(envelope::ok(contact))
}

/// Changes the fields given; `emails` and `phones` replace their lists.
#[utoipa::path(
    patch, path = "/api/v1/contacts/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    request_body = ContactBody,
    responses(
        (status = 200, description = "Changed", body = Contact),
        (status = 409, description = "An email already belongs to another contact in this firm", body = ErrorBody),
    )
)]
pub async fn update_contact(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let region = ctx.phone_region();
    let input = ContactInput::from(body.into_inner());
    let audit = Audit::new("contact.updated").target("contact", id);
    let contact = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            contacts::update(conn, firm, id, input.clone(), region).await
        })
        .await?;
    Ok(envelope::ok(contact))
}

/// Archives a contact.
#[utoipa::path(
    delete, path = "/api/v1/contacts/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Contact id")),
    responses((status = 200, description = "Archived", body = Contact))
)]
pub async fn archive_contact(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("contact.archived").target("contact", id);
    let contact = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| contacts::archive(conn, firm, id).await)
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
    )
)]
pub async fn add_note(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<NoteBody>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let author = ctx.member().ok().map(|(user_id, _)| user_id);
    let text = body.into_inner().body;
    let audit = Audit::new("client.note_added").target("client", id);
    let note = ctx
        .audited(Permission::ContentWrite, audit, async |conn, firm| {
            clients::add_note(conn, firm, id, author, &text).await
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
    )
)]
pub async fn timeline(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 100));
    let entries =
        ctx.tx(Permission::ContentRead, async |conn, firm| clients::timeline(conn, firm, id, limit).await).await?;
    let meta = serde_json::json!({ "count": entries.len(), "limit": limit, "next": null, "previous": null });
    Ok(envelope::with_meta(entries, meta))
}
