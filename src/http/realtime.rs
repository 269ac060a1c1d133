//! Opening a live socket: trade the access token for a one-use ticket over HTTPS, then
//! `GET /api/v1/ws?ticket=...`. Tokens never travel in URLs (which end up in logs).

use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use scoped_futures::ScopedFutureExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ctx::FirmCtx;
use super::error::{ApiError, ErrorBody};
use super::{AppState, envelope};
use crate::actors::session::WsSession;
use crate::domain::conversations::{self, Viewer};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, sessions};

#[derive(Serialize, ToSchema)]
#[schema(as = SocketTicket)]
pub struct Ticket {
    /// Pass as `?ticket=` to `GET /api/v1/ws` within `expires_in` seconds; works once.
    pub ticket: String,
    pub expires_in: i64,
}

/// A one-use ticket for opening a WebSocket as the caller.
#[utoipa::path(
    post, path = "/api/v1/realtime/ticket", tag = "realtime", security(("bearer" = [])),
    responses(
        (status = 200, description = "The ticket", body = Ticket),
        (status = 403, description = "Break-glass access has no live socket", body = ErrorBody),
    )
)]
pub async fn issue_ticket(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let (user_id, session_id) = ctx.member()?;
    let ticket = ctx
        .tx(Permission::ConversationsRead, async |conn, firm| {
            sessions::issue_ticket(conn, firm, user_id, session_id).await
        })
        .await?;
    Ok(envelope::ok(Ticket { ticket, expires_in: sessions::TICKET_TTL_SECS }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    /// From `POST /api/v1/realtime/ticket`.
    pub ticket: Option<String>,
}

/// Opens the live socket (WebSocket upgrade). Frames are JSON; see the README for the
/// protocol and close codes.
#[utoipa::path(
    get, path = "/api/v1/ws", tag = "realtime",
    params(SocketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "Missing, unknown, spent or lapsed ticket", body = ErrorBody),
    )
)]
pub async fn open_socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
    query: web::Query<SocketQuery>,
) -> Result<HttpResponse, ApiError> {
    let refused = || ApiError::unauthorized("the ticket is missing, unknown, already used or lapsed");
    let ticket = query.into_inner().ticket.ok_or_else(refused)?;
    let (firm, secret) = sessions::parse_firm_secret(&ticket).ok_or_else(refused)?;
    let secret = secret.to_owned();
    let admitted = state
        .db()
        .firm_tx(firm, |conn| {
            async move {
                let Some((user_id, session_id)) = sessions::redeem_ticket(conn, firm, &secret).await? else {
                    return Ok(None);
                };
                let Some(role) = sessions::current_role(conn, firm, user_id, session_id).await? else {
                    return Ok(None);
                };
                let portal_contact = match role {
                    Role::Client => conversations::portal_contact_of(conn, firm, user_id).await?,
                    _ => None,
                };
                Ok::<_, DomainError>(Some((user_id, session_id, role, portal_contact)))
            }
            .scope_boxed()
        })
        .await?;
    let (user_id, session_id, role, portal_contact) = admitted.ok_or_else(refused)?;
    let viewer = Viewer { user_id, portal_contact };
    let max_frame = state.settings().realtime.max_frame_bytes;
    let session = WsSession::new(state.live().clone(), firm, session_id, viewer, role);
    // The codec accepts frames well past the limit so that an oversized frame gets an
    // `error` frame and the session goes on; only absurd ones end it (close 1009).
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(max_frame.saturating_mul(16).max(1 << 20))
        .start()
        .map_err(|err| ApiError::invalid_field("upgrade", &err.to_string()))
}
