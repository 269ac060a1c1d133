//! `/conversations` and their messages over REST. Members read every conversation of the
//! firm and, with a role that writes content, start them, change them and send; a portal
//! user (role `client`) reads and writes only the conversations their contact is in.
//! Messages sent here reach live sockets exactly like those sent over a socket.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncPgConnection;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Actor, FirmAuth};
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{AppState, double_option, envelope};
use crate::bus::live;
use crate::domain::audit::{self, Outcome};
use crate::domain::conversations::{
    self, Channel, Conversation, ConversationChanges, ConversationFilter, ConversationStatus, Message, NewConversation,
    NewMessage, Stored, Viewer,
};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, RequestMeta, webhooks};

/// Who reads: members need `ContentRead`; a portal user is narrowed to their contact.
async fn viewer(conn: &mut AsyncPgConnection, auth: &FirmAuth) -> Result<Viewer, DomainError> {
    let user_id = match auth.actor {
        Actor::Member { user_id, .. } => user_id,
        Actor::BreakGlass { operator_id, .. } => operator_id,
    };
    if auth.role != Role::Client {
        return Ok(Viewer { user_id, portal_contact: None });
    }
    match conversations::portal_contact_of(conn, auth.firm, user_id).await? {
        Some(contact) => Ok(Viewer { user_id, portal_contact: Some(contact) }),
        None => Err(DomainError::Forbidden("this portal login is not tied to a contact".into())),
    }
}

fn require_read(auth: &FirmAuth) -> Result<(), ApiError> {
    if auth.role == Role::Client { Ok(()) } else { auth.require(Permission::ContentRead) }
}

fn require_write(auth: &FirmAuth) -> Result<(), ApiError> {
    if auth.role.can(Permission::MessagesSend) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("your role ({}) does not allow this", auth.role)))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversationBody {
    pub subject: String,
    /// Default `internal`; portal users start `portal` conversations.
    pub channel: Option<Channel>,
    #[serde(default)]
    pub participants: ParticipantsBody,
    pub assignee_user_id: Option<Uuid>,
    /// The client this conversation is about; it then shows on the client's timeline.
    pub client_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantsBody {
    /// Members' user ids; the creator is always added.
    #[serde(default)]
    pub members: Vec<Uuid>,
    /// Contacts' ids.
    #[serde(default)]
    pub contacts: Vec<Uuid>,
}

/// Starts a conversation.
#[utoipa::path(
    post, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = NewConversationBody,
    responses(
        (status = 201, description = "The conversation", body = Conversation),
        (status = 400, description = "Invalid field (details name it)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role may not start conversations", body = ErrorBody),
    )
)]
pub async fn create_conversation(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    body: JsonObject<NewConversationBody>,
) -> Result<HttpResponse, ApiError> {
    require_write(&auth)?;
    let body = body.into_inner();
    let input = NewConversation {
        subject: Some(body.subject),
        channel: body.channel,
        member_ids: body.participants.members,
        contact_ids: body.participants.contacts,
        assignee_user_id: body.assignee_user_id,
        client_id: body.client_id,
    };
    let firm = auth.firm;
    let attempts = state.job_attempts();
    let event = auth.audit("conversation.created", Outcome::Success, &meta);
    let created = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                let created = conversations::create(conn, firm, viewer, input).await?;
                let event = event
                    .with_target("conversation", created.id)
                    .with_metadata(serde_json::json!({ "channel": created.channel }));
                audit::record(conn, &event).await?;
                let data = serde_json::json!({ "conversation_id": created.id, "channel": created.channel });
                webhooks::emit(conn, firm, webhooks::EventType::ConversationCreated, data, attempts).await?;
                Ok::<_, DomainError>(created)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::created(created))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConversationQuery {
    pub status: Option<ConversationStatus>,
    pub channel: Option<Channel>,
    pub assignee_user_id: Option<Uuid>,
    /// A member's user id or a contact's id taking part.
    pub participant: Option<Uuid>,
    pub client_id: Option<Uuid>,
    /// Text in the subject (any case).
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationList {
    pub data: Vec<Conversation>,
    /// `count`, `limit`, `next`, `previous`.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Lists conversations, newest first, with the caller's unread count on each.
#[utoipa::path(
    get, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])),
    params(ConversationQuery),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationList),
        (status = 400, description = "Bad filter or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn list_conversations(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    query: web::Query<ConversationQuery>,
) -> Result<HttpResponse, ApiError> {
    require_read(&auth)?;
    let query = query.into_inner();
    let spec = PageParams { limit: query.limit, cursor: query.cursor.clone() }.spec()?;
    let filter = ConversationFilter {
        status: query.status,
        channel: query.channel,
        assignee_user_id: query.assignee_user_id,
        participant: query.participant,
        client_id: query.client_id,
        q: query.q,
    };
    let (firm, page_spec) = (auth.firm, spec.clone());
    let listed = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                conversations::list(conn, firm, viewer, &filter, &page_spec).await
            }
            .scope_boxed()
        })
        .await?;
    let meta = page_meta(&req, &listed, &spec);
    Ok(envelope::with_meta(listed.items, meta))
}

/// One conversation.
#[utoipa::path(
    get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
    )
)]
pub async fn get_conversation(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require_read(&auth)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let found = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                conversations::find(conn, firm, viewer, id).await
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(found))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    pub subject: Option<String>,
    pub status: Option<ConversationStatus>,
    /// A member, or null to unassign.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_user_id: Option<Option<Uuid>>,
}

/// Assigns, renames, or changes the status of a conversation (members who write content).
#[utoipa::path(
    patch, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = ConversationPatch,
    responses(
        (status = 200, description = "The conversation as changed", body = Conversation),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role may not change conversations", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody),
    )
)]
pub async fn update_conversation(
    state: web::Data<AppState>,
    auth: FirmAuth,
    meta: RequestMeta,
    path: web::Path<Uuid>,
    body: JsonObject<ConversationPatch>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ContentWrite)?;
    let (firm, id) = (auth.firm, path.into_inner());
    let body = body.into_inner();
    let changes =
        ConversationChanges { subject: body.subject, status: body.status, assignee_user_id: body.assignee_user_id };
    let event = auth.audit("conversation.updated", Outcome::Success, &meta);
    let changed = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                let (before, after) = conversations::update(conn, firm, viewer, id, changes).await?;
                let event = event.with_target("conversation", id).with_metadata(serde_json::json!({
                    "status": { "from": before.status, "to": after.status },
                    "assignee_user_id": { "from": before.assignee_user_id, "to": after.assignee_user_id },
                }));
                audit::record(conn, &event).await?;
                Ok::<_, DomainError>(after)
            }
            .scope_boxed()
        })
        .await?;
    Ok(envelope::ok(changed))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageBody {
    /// 1 to 20,000 characters.
    pub body: String,
    /// The sender's id for this message (1 to 100 characters): sending again with the
    /// same id returns the first copy instead of storing a second. The `Idempotency-Key`
    /// header does the same when this is absent.
    pub client_msg_id: Option<String>,
}

/// Sends a message; it is stored with the conversation's next seq, then published to
/// live subscribers on every node.
#[utoipa::path(
    post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Conversation id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a resend return the first copy"),
    ),
    request_body = NewMessageBody,
    responses(
        (status = 201, description = "Stored", body = Message),
        (status = 200, description = "A resend: the message stored the first time", body = Message),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Role may not send", body = ErrorBody),
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
        (status = 409, description = "The conversation's channel cannot send now (SMS not set up, the contact opted out)", body = ErrorBody),
    )
)]
pub async fn post_message(
    state: web::Data<AppState>,
    auth: FirmAuth,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: JsonObject<NewMessageBody>,
) -> Result<HttpResponse, ApiError> {
    require_write(&auth)?;
    auth.member()?;
    let body = body.into_inner();
    let header_key = match req.headers().get("idempotency-key") {
        Some(value) => {
            Some(value.to_str().map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be visible ASCII"))?)
        }
        None => None,
    };
    let client_msg_id = match (body.client_msg_id, header_key) {
        (Some(id), Some(key)) if id != key => {
            return Err(ApiError::invalid_field("client_msg_id", "differs from the Idempotency-Key header"));
        }
        (Some(id), _) => Some(id),
        (None, key) => key.map(str::to_owned),
    };
    let input = NewMessage { body: body.body, client_msg_id };
    let (firm, id) = (auth.firm, path.into_inner());
    let (message, stored) = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                conversations::post_message(conn, firm, viewer, id, input).await
            }
            .scope_boxed()
        })
        .await?;
    Ok(match stored {
        Stored::New => {
            live::publish_message(state.bus(), firm, &message).await;
            envelope::created(message)
        }
        Stored::Duplicate => envelope::ok(message),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Messages after this seq, oldest first (catching up).
    pub after_seq: Option<i64>,
    /// Messages before this seq; alone, the newest ones before it (scrolling back).
    pub before_seq: Option<i64>,
    /// 1 to 200; default 50.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub data: Vec<Message>,
    /// `count`.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// A conversation's messages by seq. With neither bound: the newest `limit`.
#[utoipa::path(
    get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"), HistoryQuery),
    responses(
        (status = 200, description = "Messages in seq order", body = MessageList),
        (status = 400, description = "Bad bounds", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
    )
)]
pub async fn list_messages(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    require_read(&auth)?;
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=conversations::MAX_HISTORY).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be 1 to 200"));
    }
    if query.after_seq.is_some_and(|s| s < 0) || query.before_seq.is_some_and(|s| s < 1) {
        return Err(ApiError::invalid_field("after_seq", "seqs start at 1"));
    }
    let (firm, id) = (auth.firm, path.into_inner());
    let messages = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                let last = conversations::check_visible(conn, firm, viewer, id).await?;
                // Neither bound: the newest page, i.e. everything before last + 1.
                let before = query.before_seq.or(query.after_seq.is_none().then_some(last + 1));
                conversations::history(conn, firm, id, query.after_seq, before, limit).await
            }
            .scope_boxed()
        })
        .await?;
    let meta = serde_json::json!({ "count": messages.len() });
    Ok(envelope::with_meta(messages, meta))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// Read up to and including this seq; a lower value than stored changes nothing.
    pub seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ReadReceipt {
    pub conversation_id: Uuid,
    pub last_read_seq: i64,
}

/// Records how far the caller has read (also possible over the socket).
#[utoipa::path(
    post, path = "/api/v1/conversations/{id}/read", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = ReadBody,
    responses(
        (status = 200, description = "The stored position", body = ReadReceipt),
        (status = 400, description = "Seq beyond the conversation", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
    )
)]
pub async fn mark_read(
    state: web::Data<AppState>,
    auth: FirmAuth,
    path: web::Path<Uuid>,
    body: JsonObject<ReadBody>,
) -> Result<HttpResponse, ApiError> {
    require_read(&auth)?;
    let (user_id, _) = auth.member()?;
    let (firm, id, seq) = (auth.firm, path.into_inner(), body.seq);
    let stored = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let viewer = viewer(conn, &auth).await?;
                conversations::read_up_to(conn, firm, viewer, id, seq).await
            }
            .scope_boxed()
        })
        .await?;
    live::publish_read(state.bus(), firm, id, user_id, stored).await;
    Ok(envelope::ok(ReadReceipt { conversation_id: id, last_read_seq: stored }))
}
