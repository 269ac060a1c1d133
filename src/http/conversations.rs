//! `/conversations` and their messages over REST. Members read every conversation of the
//! firm and, with a role that writes content, start them, change them and send; a portal
//! user (role `client`) reads and writes only the conversations their contact is in.
//! Messages sent here reach live sockets exactly like those sent over a socket.

use super::body::JsonObject;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Actor, FirmAuth};
use super::ctx::{Audit, FirmCtx};
use super::error::{ApiError, ErrorBody};
use super::pagination::{PageParams, page_meta};
use super::{double_option, envelope};
use crate::bus::live;
use crate::domain::audit::{self, Outcome};
use crate::domain::conversations::{
    self, Channel, Conversation, ConversationChanges, ConversationFilter, ConversationStatus, Message, NewConversation,
    NewMessage, Stored, Viewer,
};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, webhooks};

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
    )
)]
pub async fn create_conversation(
    ctx: FirmCtx,
    body: JsonObject<NewConversationBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = NewConversation {
        subject: Some(body.subject),
        channel: body.channel,
        member_ids: body.participants.members,
        contact_ids: body.participants.contacts,
        assignee_user_id: body.assignee_user_id,
        client_id: body.client_id,
    };
    let attempts = ctx.job_attempts();
    let audit = Audit::new("conversation.created")
        .target_of("conversation", |c: &Conversation| c.id)
        .metadata_of(|c: &Conversation| serde_json::json!({ "channel": c.channel }));
    let created = ctx
        .audited(Permission::MessagesSend, audit, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            let created = conversations::create(conn, firm, viewer, input.clone()).await?;
            let data = serde_json::json!({ "conversation_id": created.id, "channel": created.channel });
            webhooks::emit(conn, firm, webhooks::EventType::ConversationCreated, data, attempts).await?;
            Ok(created)
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
    )
)]
pub async fn list_conversations(
    ctx: FirmCtx,
    req: HttpRequest,
    query: web::Query<ConversationQuery>,
) -> Result<HttpResponse, ApiError> {
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
    let listed = ctx
        .page(Permission::ConversationsRead, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            conversations::list(conn, firm, viewer, &filter, &spec).await
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
        (status = 200, description = "The conversation, with everyone's read position", body = ConversationDetail),
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
    )
)]
pub async fn get_conversation(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found = ctx
        .tx(Permission::ConversationsRead, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            let conversation = conversations::find(conn, firm, viewer, id).await?;
            let mut reads = conversations::read_positions(conn, firm, id).await?;
            // A portal login sees the receipts of the firm's members taking part and its own;
            // not who else in the firm opened it, nor other portal logins (a login is a
            // person across firms).
            if viewer.portal_contact.is_some() {
                reads.retain(|r| r.user_id == viewer.user_id || conversation.participants.members.contains(&r.user_id));
            }
            Ok(ConversationDetail { conversation, reads })
        })
        .await?;
    Ok(envelope::ok(found))
}

/// A conversation with its read receipts; the socket's `read` frames keep them current.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub reads: Vec<conversations::ReadPosition>,
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
        (status = 404, description = "No such conversation", body = ErrorBody),
    )
)]
pub async fn update_conversation(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ConversationPatch>,
) -> Result<HttpResponse, ApiError> {
    let (id, body) = (path.into_inner(), body.into_inner());
    let changes =
        ConversationChanges { subject: body.subject, status: body.status, assignee_user_id: body.assignee_user_id };
    let changed = ctx
        .tx(Permission::ContentWrite, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            let (before, after) = conversations::update(conn, firm, viewer, id, changes.clone()).await?;
            let event = ctx.event("conversation.updated", Outcome::Success).with_target("conversation", id);
            let event = event.with_metadata(serde_json::json!({
                "status": { "from": before.status, "to": after.status },
                "assignee_user_id": { "from": before.assignee_user_id, "to": after.assignee_user_id },
            }));
            audit::record(conn, &event).await?;
            Ok(after)
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
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
        (status = 409, description = "The conversation's channel cannot send now (SMS not set up, the contact opted out)", body = ErrorBody),
    )
)]
pub async fn post_message(
    ctx: FirmCtx,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: JsonObject<NewMessageBody>,
) -> Result<HttpResponse, ApiError> {
    ctx.member()?;
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
    let id = path.into_inner();
    let (message, stored) = ctx
        .tx(Permission::MessagesSend, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            conversations::post_message(conn, firm, viewer, id, input.clone()).await
        })
        .await?;
    Ok(match stored {
        Stored::New => {
            live::publish_message(ctx.state().await?.bus(), ctx.firm(), &message).await;
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
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
    )
)]
pub async fn list_messages(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=conversations::MAX_HISTORY).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be 1 to 200"));
    }
    if query.after_seq.is_some_and(|s| s < 0) || query.before_seq.is_some_and(|s| s < 1) {
        return Err(ApiError::invalid_field("after_seq", "seqs start at 1"));
    }
    let id = path.into_inner();
    let messages = ctx
        .page(Permission::ConversationsRead, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            let last = conversations::check_visible(conn, firm, viewer, id).await?;
            // Neither bound: the newest page, i.e. everything before last + 1.
            let before = query.before_seq.or(query.after_seq.is_none().then_some(last + 1));
            conversations::history(conn, firm, id, query.after_seq, before, limit).await
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
        (status = 404, description = "No such conversation visible to the caller", body = ErrorBody),
    )
)]
pub async fn mark_read(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<ReadBody>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = ctx.member()?;
    let (id, seq) = (path.into_inner(), body.seq);
    let stored = ctx
        .tx(Permission::ConversationsRead, async |conn, firm| {
            let viewer = viewer(conn, ctx.checked()?).await?;
            conversations::read_up_to(conn, firm, viewer, id, seq).await
        })
        .await?;
    live::publish_read(ctx.state().await?.bus(), ctx.firm(), id, user_id, stored).await;
    Ok(envelope::ok(ReadReceipt { conversation_id: id, last_read_seq: stored }))
}
