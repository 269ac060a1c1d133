//! One WebSocket session. It joins its firm's hub, and for each subscribed conversation
//! keeps the last seq it delivered: frames arriving live are sent when they are the next
//! seq, dropped when already sent, and a jump shows a gap, which it fills from the
//! database before going on. Replay after `subscribe {after_seq}` uses the same path, so
//! the seam between replay and live has neither gap nor duplicate.
//!
//! Close codes: 4001 idle (no frame or pong within `idle_timeout_secs`), 4008 too slow
//! (more than `session_queue` frames waiting; reconnect and subscribe with `after_seq`),
//! 4003 the sign-in behind the socket ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use bytestring::ByteString;
use scoped_futures::ScopedFutureExt;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::LiveContext;
use super::hub::{ConversationHub, Deliver, Join, Leave, SessionId, SetRole, TooSlow, Unwatch, Watch};
use crate::bus::live::{self, LiveFrame};
use crate::domain::DomainError;
use crate::domain::conversations::{self, MAX_HISTORY, Message as StoredMessage, NewMessage, Stored, Viewer};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::error::ApiError;
use crate::tenant::FirmId;

pub const CLOSE_IDLE: u16 = 4001;
pub const CLOSE_SIGNED_OUT: u16 = 4003;
pub const CLOSE_TOO_SLOW: u16 = 4008;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// How long a frame that arrives ahead of its predecessor waits for it live before the
/// gap is filled from the database. Two messages committed back to back are published by
/// two requests, which can cross on the way (two workers, two nodes), so a jump is far
/// more often a reordering than a loss; filling at once sent every watcher of a busy
/// conversation to the database together (1,000 sockets of one conversation stalled
/// for up to a second while they queued for their firm's turns).
const REORDER_GRACE: Duration = Duration::from_millis(100);

/// Frames a client may send.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe { conversation_id: Uuid, after_seq: Option<i64> },
    Unsubscribe { conversation_id: Uuid },
    Send { conversation_id: Uuid, client_msg_id: String, body: String },
    Typing { conversation_id: Uuid },
    Read { conversation_id: Uuid, seq: i64 },
    Ping,
}

const CLIENT_FRAME_TYPES: [&str; 6] = ["subscribe", "unsubscribe", "send", "typing", "read", "ping"];

/// Why a client's frame was not read: the socket's error code and what to tell the client.
#[derive(Debug, PartialEq, Eq)]
struct FrameRefusal {
    code: &'static str,
    message: String,
}

/// Reads one text frame: at most `max_bytes`, JSON, a known `type`, that type's fields.
fn decode_frame(text: &str, max_bytes: usize) -> Result<ClientFrame, FrameRefusal> {
    let refuse = |code, message: String| FrameRefusal { code, message };
    if text.len() > max_bytes {
        return Err(refuse("frame_too_large", format!("frames are limited to {max_bytes} bytes")));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| refuse("bad_frame", format!("not JSON: {err}")))?;
    let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    if !CLIENT_FRAME_TYPES.contains(&kind.as_str()) {
        return Err(refuse("unknown_type", format!("`type` must be one of {}", CLIENT_FRAME_TYPES.join(", "))));
    }
    serde_json::from_value(value).map_err(|err| refuse("bad_frame", format!("{kind}: {err}")))
}

/// A subscribed conversation.
struct Watched {
    /// The last seq sent to the client.
    last_seq: i64,
    /// Replaying or refilling from the database; live frames wait in `held`.
    filling: bool,
    /// Since when a frame that came ahead of its predecessor has waited in `held`; the gap
    /// is filled from the database [`REORDER_GRACE`] later unless it closes first.
    reordering: Option<Instant>,
    held: Vec<Arc<LiveFrame>>,
    /// Changes on every subscribe, so a stale fill of an earlier one is ignored.
    generation: u64,
}

pub struct WsSession {
    id: SessionId,
    firm: FirmId,
    /// The sign-in (auth session) the socket was opened under.
    auth_session: Uuid,
    viewer: Viewer,
    can_send: bool,
    /// The role as last checked; events are routed by it.
    role: Role,
    live: LiveContext,
    /// Entered by every handler, so each line this session logs names its firm and user.
    span: tracing::Span,
    hub: Option<Addr<ConversationHub>>,
    watched: HashMap<Uuid, Watched>,
    generations: u64,
    last_heard: Instant,
    /// Frames the client may still send now (a token bucket refilled at
    /// `max_frames_per_second`), when it was last refilled, and frames refused in a row.
    frame_allowance: f64,
    allowance_at: Instant,
    refused_frames: u32,
    opened_at: Instant,
}

impl WsSession {
    pub fn new(live: LiveContext, firm: FirmId, auth_session: Uuid, viewer: Viewer, role: Role) -> Self {
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let live_frames_per_second = live.settings().realtime.max_frames_per_second.max(1);
        WsSession {
            id,
            firm,
            auth_session,
            viewer,
            can_send: role.can(Permission::MessagesSend),
            role,
            live,
            span: tracing::info_span!("ws_session", firm_id = %firm, user_id = %viewer.user_id, session = id),
            hub: None,
            watched: HashMap::new(),
            generations: 0,
            last_heard: Instant::now(),
            frame_allowance: f64::from(live_frames_per_second * 2),
            allowance_at: Instant::now(),
            refused_frames: 0,
            opened_at: Instant::now(),
        }
    }

    fn send_json(ctx: &mut ws::WebsocketContext<Self>, value: serde_json::Value) {
        ctx.text(value.to_string());
    }

    fn error(ctx: &mut ws::WebsocketContext<Self>, code: &str, message: &str, conversation_id: Option<Uuid>) {
        Self::error_with(ctx, code, message, json!({}), conversation_id);
    }

    fn error_with(
        ctx: &mut ws::WebsocketContext<Self>,
        code: &str,
        message: &str,
        details: serde_json::Value,
        conversation_id: Option<Uuid>,
    ) {
        let mut frame = json!({ "type": "error", "code": code, "message": message, "details": details });
        if let Some(id) = conversation_id {
            frame["conversation_id"] = json!(id);
        }
        Self::send_json(ctx, frame);
    }

    /// An error frame with the same code, message and details the HTTP API would give.
    fn domain_error(ctx: &mut ws::WebsocketContext<Self>, err: DomainError, conversation_id: Option<Uuid>) {
        let err = ApiError::from(err);
        if let ApiError::Internal(cause) = &err {
            tracing::error!(error = ?cause, "websocket request failed");
        }
        Self::error_with(ctx, err.code(), &err.to_string(), err.details(), conversation_id);
    }

    /// Joins the firm's hub (again, after the hub was replaced) and, on a rejoin, routes
    /// the watched conversations to it and refills what may have been missed meanwhile.
    fn join_hub(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let registry = self.live.registry().clone();
        let join = Join {
            session: self.id,
            user_id: self.viewer.user_id,
            role: self.role,
            deliver: ctx.address().recipient(),
            too_slow: ctx.address().recipient(),
        };
        let (firm, session) = (self.firm, self.id);
        let watching: Vec<Uuid> = self.watched.keys().copied().collect();
        let rejoin = !watching.is_empty() || self.hub.is_some();
        ctx.wait(
            async move {
                // A hub may stop (idle) or die just as it is handed out; ask again then.
                for _ in 0..3 {
                    let Ok(hub) = registry.hub(firm).await else { continue };
                    if hub.send(join.clone()).await.is_err() {
                        continue;
                    }
                    for conversation_id in &watching {
                        hub.send(Watch { session, conversation_id: *conversation_id }).await.ok()?;
                    }
                    return Some(hub);
                }
                None
            }
            .into_actor(self)
            .map(move |joined, session, ctx| match joined {
                Some(hub) => {
                    session.hub = Some(hub);
                    if rejoin {
                        session.refill_all(ctx);
                    }
                }
                None => {
                    Self::error(ctx, "unavailable", "live service unavailable; reconnect", None);
                    ctx.stop();
                }
            }),
        );
    }

    fn refill_all(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let idle: Vec<Uuid> = self.watched.iter().filter(|(_, w)| !w.filling).map(|(id, _)| *id).collect();
        for conversation_id in idle {
            if let Some(watched) = self.watched.get_mut(&conversation_id) {
                watched.filling = true;
                watched.reordering = None;
                let (after, generation) = (watched.last_seq, watched.generation);
                self.fill(conversation_id, after, generation, ctx);
            }
        }
    }

    /// Reads messages after `after` from the database, in pages, then goes live.
    fn fill(&mut self, conversation_id: Uuid, after: i64, generation: u64, ctx: &mut ws::WebsocketContext<Self>) {
        let shared = self.live.clone();
        let firm = self.firm;
        ctx.spawn(
            async move {
                shared
                    .socket_tx(firm, |conn| {
                        async move {
                            conversations::history(conn, firm, conversation_id, Some(after), None, MAX_HISTORY).await
                        }
                        .scope_boxed()
                    })
                    .await
            }
            .into_actor(self)
            .map(move |loaded, session, ctx| match loaded {
                Ok(messages) => session.filled(conversation_id, generation, messages, ctx),
                Err(err) => {
                    Self::domain_error(ctx, err, Some(conversation_id));
                    session.drop_watch(conversation_id);
                }
            }),
        );
    }

    fn filled(
        &mut self,
        conversation_id: Uuid,
        generation: u64,
        messages: Vec<StoredMessage>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(watched) = self.watched.get_mut(&conversation_id).filter(|w| w.generation == generation) else {
            return;
        };
        let more = messages.len() as i64 == MAX_HISTORY;
        for message in &messages {
            if message.seq > watched.last_seq {
                let frame = live::message_frame(message);
                send_frame(ctx, &frame.frame);
                watched.last_seq = message.seq;
            }
        }
        if more {
            let after = watched.last_seq;
            self.fill(conversation_id, after, generation, ctx);
            return;
        }
        watched.filling = false;
        let mut held = std::mem::take(&mut watched.held);
        held.sort_by_key(|f| f.seq);
        for frame in held {
            self.live(frame, ctx);
        }
    }

    fn live(&mut self, frame: Arc<LiveFrame>, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(watched) = self.watched.get_mut(&frame.conversation_id) else { return };
        if frame.seq == 0 {
            // Typing and read frames are not ordered and not replayed.
            if !watched.filling {
                send_frame(ctx, &frame.frame);
            }
            return;
        }
        if watched.filling {
            // Held frames are the same queue by another name: bounded alike. The database
            // has them all, so dropping them loses nothing once the fill catches up; the
            // bound only keeps a stalled fill from growing without end.
            if watched.held.len() >= self.live.settings().realtime.session_queue {
                watched.held.clear();
            }
            watched.held.push(frame);
            return;
        }
        if frame.seq <= watched.last_seq {
            return;
        }
        if frame.seq == watched.last_seq + 1 {
            send_frame(ctx, &frame.frame);
            watched.last_seq = frame.seq;
            if watched.reordering.is_some() {
                Self::send_held_in_order(watched, ctx);
            }
            return;
        }
        // Ahead of its predecessor: held while the predecessor may still be on its way.
        let conversation_id = frame.conversation_id;
        if watched.held.len() >= self.live.settings().realtime.session_queue {
            return self.gap(conversation_id, None, ctx);
        }
        watched.held.push(frame);
        if watched.reordering.is_none() {
            let since = Instant::now();
            watched.reordering = Some(since);
            // Ends this wait only: one that closed and a later one that began meanwhile
            // have another `since`.
            ctx.run_later(REORDER_GRACE, move |session, ctx| session.gap(conversation_id, Some(since), ctx));
        }
    }

    /// Sends the held frames that now follow on, in seq order; the grace period ends when
    /// none is left waiting.
    fn send_held_in_order(watched: &mut Watched, ctx: &mut ws::WebsocketContext<Self>) {
        watched.held.sort_by_key(|f| f.seq);
        let mut next = 0;
        for frame in &watched.held {
            if frame.seq > watched.last_seq + 1 {
                break;
            }
            if frame.seq == watched.last_seq + 1 {
                send_frame(ctx, &frame.frame);
                watched.last_seq = frame.seq;
            }
            next += 1;
        }
        watched.held.drain(..next);
        if watched.held.is_empty() {
            watched.reordering = None;
        }
    }

    /// A gap the wait that began at `since` did not close (or, with `None`, any wait that
    /// must end now): a publish was lost somewhere. Filled from the database, then the held
    /// frames follow.
    fn gap(&mut self, conversation_id: Uuid, since: Option<Instant>, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(watched) = self.watched.get_mut(&conversation_id) else { return };
        if watched.filling || watched.reordering.is_none() || since.is_some_and(|s| watched.reordering != Some(s)) {
            return;
        }
        watched.reordering = None;
        watched.filling = true;
        // Frames still missing after the reorder wait: lost between nodes, or a publish
        // slower than the wait. A rate that climbs is worth an operator's look.
        metrics::counter!("ws_gap_fills_total").increment(1);
        let (after, generation) = (watched.last_seq, watched.generation);
        self.fill(conversation_id, after, generation, ctx);
    }

    fn drop_watch(&mut self, conversation_id: Uuid) {
        self.watched.remove(&conversation_id);
        if let Some(hub) = &self.hub {
            hub.do_send(Unwatch { session: self.id, conversation_id });
        }
    }

    fn subscribe(&mut self, conversation_id: Uuid, after_seq: Option<i64>, ctx: &mut ws::WebsocketContext<Self>) {
        if after_seq.is_some_and(|s| s < 0) {
            return Self::error(ctx, "validation_error", "after_seq: must be 0 or more", Some(conversation_id));
        }
        let most = self.live.settings().realtime.max_subscriptions_per_socket;
        if !self.watched.contains_key(&conversation_id) && self.watched.len() >= most {
            let message = format!("a socket watches at most {most} conversations; unsubscribe from one first");
            return Self::error(ctx, "too_many_subscriptions", &message, Some(conversation_id));
        }
        self.generations += 1;
        let generation = self.generations;
        self.watched.insert(
            conversation_id,
            Watched { last_seq: after_seq.unwrap_or(0), filling: true, reordering: None, held: Vec::new(), generation },
        );
        let (state, firm, viewer, session) = (self.live.clone(), self.firm, self.viewer, self.id);
        let hub = self.hub.clone();
        ctx.spawn(
            async move {
                let last = state
                    .socket_tx(firm, |conn| {
                        async move { conversations::check_visible(conn, firm, viewer, conversation_id).await }
                            .scope_boxed()
                    })
                    .await?;
                // Routing is in place before the database is read below, so anything
                // committed after that read is routed here too.
                if let Some(hub) = hub {
                    hub.send(Watch { session, conversation_id })
                        .await
                        .map_err(|_| DomainError::Internal("live service restarting".into()))?;
                }
                Ok::<_, DomainError>(last)
            }
            .into_actor(self)
            .map(move |checked, session, ctx| {
                let Some(watched) = session.watched.get_mut(&conversation_id).filter(|w| w.generation == generation)
                else {
                    return;
                };
                match checked {
                    Ok(last) => {
                        let start = after_seq.unwrap_or(last).min(last);
                        watched.last_seq = start;
                        Self::send_json(
                            ctx,
                            json!({ "type": "subscribed", "conversation_id": conversation_id, "last_seq": last }),
                        );
                        session.fill(conversation_id, start, generation, ctx);
                    }
                    Err(err) => {
                        Self::domain_error(ctx, err, Some(conversation_id));
                        session.drop_watch(conversation_id);
                    }
                }
            }),
        );
    }

    fn send_message(
        &mut self,
        conversation_id: Uuid,
        client_msg_id: String,
        body: String,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.can_send {
            return Self::error(ctx, "forbidden", "your role does not allow sending messages", Some(conversation_id));
        }
        let (state, firm, viewer) = (self.live.clone(), self.firm, self.viewer);
        let input = NewMessage { body, client_msg_id: Some(client_msg_id.clone()) };
        ctx.spawn(
            async move {
                let (message, stored) = state
                    .socket_tx(firm, |conn| {
                        async move { conversations::post_message(conn, firm, viewer, conversation_id, input).await }
                            .scope_boxed()
                    })
                    .await?;
                if stored == Stored::New {
                    live::publish_message(state.bus(), firm, &message).await;
                }
                Ok::<_, DomainError>(message)
            }
            .into_actor(self)
            .map(move |sent, _session, ctx| match sent {
                Ok(message) => Self::send_json(
                    ctx,
                    json!({ "type": "ack", "client_msg_id": client_msg_id, "conversation_id": conversation_id, "seq": message.seq }),
                ),
                Err(err) => Self::domain_error(ctx, err, Some(conversation_id)),
            }),
        );
    }

    fn read(&mut self, conversation_id: Uuid, seq: i64, ctx: &mut ws::WebsocketContext<Self>) {
        let (state, firm, viewer) = (self.live.clone(), self.firm, self.viewer);
        ctx.spawn(
            async move {
                let stored = state
                    .socket_tx(firm, |conn| {
                        async move { conversations::read_up_to(conn, firm, viewer, conversation_id, seq).await }
                            .scope_boxed()
                    })
                    .await?;
                live::publish_read(state.bus(), firm, conversation_id, viewer.user_id, stored).await;
                Ok::<_, DomainError>(())
            }
            .into_actor(self)
            .map(move |done, _session, ctx| {
                if let Err(err) = done {
                    Self::domain_error(ctx, err, Some(conversation_id));
                }
            }),
        );
    }

    /// Spends one frame of the client's allowance; false (with an `error` frame, or the
    /// socket closed when it keeps going) when there is none left.
    fn frame_allowed(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        let per_second = f64::from(self.live.settings().realtime.max_frames_per_second.max(1));
        let now = Instant::now();
        let refill = now.duration_since(self.allowance_at).as_secs_f64() * per_second;
        self.frame_allowance = (self.frame_allowance + refill).min(per_second * 2.0);
        self.allowance_at = now;
        if self.frame_allowance >= 1.0 {
            self.frame_allowance -= 1.0;
            self.refused_frames = 0;
            return true;
        }
        self.refused_frames += 1;
        if f64::from(self.refused_frames) > per_second {
            let reason = ws::CloseReason {
                code: ws::CloseCode::Policy,
                description: Some("too many frames; slow down and reconnect".into()),
            };
            ctx.close(Some(reason));
            ctx.stop();
        } else {
            let message = format!("at most {per_second} frames a second; this one was dropped");
            Self::error(ctx, "rate_limited", &message, None);
        }
        false
    }

    fn handle_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.frame_allowed(ctx) {
            return;
        }
        let frame = match decode_frame(text, self.live.settings().realtime.max_frame_bytes) {
            Ok(frame) => frame,
            Err(refused) => return Self::error(ctx, refused.code, &refused.message, None),
        };
        match frame {
            ClientFrame::Subscribe { conversation_id, after_seq } => self.subscribe(conversation_id, after_seq, ctx),
            ClientFrame::Unsubscribe { conversation_id } => self.drop_watch(conversation_id),
            ClientFrame::Send { conversation_id, client_msg_id, body } => {
                self.send_message(conversation_id, client_msg_id, body, ctx)
            }
            ClientFrame::Typing { conversation_id } => {
                if !self.watched.contains_key(&conversation_id) {
                    return Self::error(
                        ctx,
                        "not_subscribed",
                        "subscribe to the conversation first",
                        Some(conversation_id),
                    );
                }
                let (bus, firm, user) = (self.live.bus().clone(), self.firm, self.viewer.user_id);
                ctx.spawn(
                    async move { live::publish_typing(&bus, firm, conversation_id, user).await }.into_actor(self),
                );
            }
            ClientFrame::Read { conversation_id, seq } => self.read(conversation_id, seq, ctx),
            ClientFrame::Ping => Self::send_json(ctx, json!({ "type": "pong" })),
        }
    }

    /// Log-out, deactivation or a role change to one without access ends the socket too,
    /// within `auth_recheck_secs`.
    fn recheck_sign_in(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let (state, firm, user, auth_session) = (self.live.clone(), self.firm, self.viewer.user_id, self.auth_session);
        ctx.spawn(
            async move {
                let role = state.db().session_role(firm, user, auth_session).await?;
                Ok::<_, crate::db::DbError>(role.and_then(|r| r.parse::<Role>().ok()))
            }
            .into_actor(self)
            .map(|role, session, ctx| match role {
                Ok(Some(role)) => {
                    session.can_send = role.can(Permission::MessagesSend);
                    if role != session.role {
                        session.role = role;
                        if let Some(hub) = &session.hub {
                            hub.do_send(SetRole { session: session.id, role });
                        }
                    }
                }
                Ok(None) => Self::close(ctx, CLOSE_SIGNED_OUT, "signed out"),
                // A busy database is no reason to drop a socket; the next check decides.
                Err(err) => tracing::debug!(error = %err, "sign-in re-check skipped"),
            }),
        );
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: u16, why: &str) {
        ctx.close(Some(ws::CloseReason { code: ws::CloseCode::Other(code), description: Some(why.to_owned()) }));
        ctx.stop();
    }
}

fn send_frame(ctx: &mut ws::WebsocketContext<WsSession>, frame: &ByteString) {
    ctx.text(frame.clone());
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let settings = self.live.settings().realtime.clone();
        ctx.set_mailbox_capacity(settings.session_queue.max(1));
        metrics::gauge!("ws_sessions").increment(1.0);
        self.join_hub(ctx);
        let heartbeat = Duration::from_secs(settings.heartbeat_secs.max(1));
        let idle = Duration::from_secs(settings.idle_timeout_secs.max(1));
        ctx.run_interval(heartbeat, move |session, ctx| {
            if session.last_heard.elapsed() > idle {
                return Self::close(ctx, CLOSE_IDLE, "idle");
            }
            ctx.ping(b"");
        });
        let recheck = Duration::from_secs(settings.auth_recheck_secs.max(1));
        ctx.run_interval(recheck, |session, ctx| session.recheck_sign_in(ctx));
        // A hub that died is noticed when its supervisor sees it end, so a crash costs
        // little; a wake-up per ending rather than a timer per socket.
        let endings = self.live.registry().hub_endings(self.firm);
        ctx.add_stream(futures_util::stream::unfold(endings, |mut endings| async move {
            endings.changed().await.ok().map(|()| (HubEnded, endings))
        }));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::gauge!("ws_sessions").decrement(1.0);
        self.span.in_scope(|| tracing::info!(open_secs = self.opened_at.elapsed().as_secs(), "socket closed"));
        if let Some(hub) = &self.hub {
            hub.do_send(Leave { session: self.id });
        }
    }
}

impl Handler<Deliver> for WsSession {
    type Result = ();

    fn handle(&mut self, deliver: Deliver, ctx: &mut Self::Context) {
        let _entered = self.span.clone().entered();
        match deliver {
            Deliver::Live(frame) => self.live(frame, ctx),
            Deliver::Firm(frame) => send_frame(ctx, &frame),
            Deliver::Resync => self.refill_all(ctx),
        }
    }
}

impl Handler<TooSlow> for WsSession {
    type Result = ();

    fn handle(&mut self, _: TooSlow, ctx: &mut Self::Context) {
        Self::close(ctx, CLOSE_TOO_SLOW, "too slow: reconnect and subscribe with after_seq");
    }
}

/// The firm's hub on this node ended (see `FirmRegistry::hub_endings`).
struct HubEnded;

impl StreamHandler<HubEnded> for WsSession {
    fn handle(&mut self, _: HubEnded, ctx: &mut Self::Context) {
        if self.hub.as_ref().is_some_and(|h| !h.connected()) {
            self.join_hub(ctx);
        }
    }

    /// The signal ends only with the registry, at shutdown; the socket ends on its own terms.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let _entered = self.span.clone().entered();
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => self.handle_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => Self::error(ctx, "bad_frame", "frames are JSON text", None),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) => {
                Self::error(ctx, "bad_frame", "fragmented frames are not accepted", None)
            }
            Err(err) => {
                tracing::debug!(error = %err, "websocket protocol error");
                let reason = ws::CloseReason { code: ws::CloseCode::Protocol, description: Some(err.to_string()) };
                ctx.close(Some(reason));
                ctx.stop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::{ClientFrame, decode_frame};

    const MAX: usize = 16 * 1024;

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    /// Every frame a client may send, with random fields.
    fn frame() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            (uuid(), proptest::option::of(any::<i64>()))
                .prop_map(|(conversation_id, after_seq)| ClientFrame::Subscribe { conversation_id, after_seq }),
            uuid().prop_map(|conversation_id| ClientFrame::Unsubscribe { conversation_id }),
            (uuid(), ".{0,40}", ".{0,200}").prop_map(|(conversation_id, client_msg_id, body)| ClientFrame::Send {
                conversation_id,
                client_msg_id,
                body
            }),
            uuid().prop_map(|conversation_id| ClientFrame::Typing { conversation_id }),
            (uuid(), any::<i64>()).prop_map(|(conversation_id, seq)| ClientFrame::Read { conversation_id, seq }),
            Just(ClientFrame::Ping),
        ]
    }

    fn encoded(frame: &ClientFrame) -> serde_json::Value {
        match frame {
            ClientFrame::Subscribe { conversation_id, after_seq } => {
                serde_json::json!({ "type": "subscribe", "conversation_id": conversation_id, "after_seq": after_seq })
            }
            ClientFrame::Unsubscribe { conversation_id } => {
                serde_json::json!({ "type": "unsubscribe", "conversation_id": conversation_id })
            }
            ClientFrame::Send { conversation_id, client_msg_id, body } => serde_json::json!({
                "type": "send", "conversation_id": conversation_id, "client_msg_id": client_msg_id, "body": body
            }),
            ClientFrame::Typing { conversation_id } => {
                serde_json::json!({ "type": "typing", "conversation_id": conversation_id })
            }
            ClientFrame::Read { conversation_id, seq } => {
                serde_json::json!({ "type": "read", "conversation_id": conversation_id, "seq": seq })
            }
            ClientFrame::Ping => serde_json::json!({ "type": "ping" }),
        }
    }

    /// JSON-ish text a careless or hostile client might send.
    fn frame_shaped() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("type"),
            Just("conversation_id"),
            Just("after_seq"),
            Just("seq"),
            Just("body"),
            Just("client_msg_id"),
            Just("extra")
        ];
        let value = prop_oneof![
            Just("\"subscribe\"".to_owned()),
            Just("\"send\"".to_owned()),
            Just("\"ping\"".to_owned()),
            Just("null".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("1e400".to_owned()),
            Just("-9223372036854775809".to_owned()),
            Just("\"00000000-0000-0000-0000-000000000000\"".to_owned()),
            ".{0,20}".prop_map(|s| serde_json::Value::String(s).to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
        ];
        proptest::collection::vec((key, value), 0..8).prop_map(|pairs| {
            let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", fields.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every valid frame decodes to itself.
        #[test]
        fn valid_frames_decode_to_what_was_sent(frame in frame()) {
            let text = encoded(&frame).to_string();
            prop_assert_eq!(decode_frame(&text, MAX), Ok(frame));
        }

        /// Any text at all gets a frame or one of the documented refusals, never a panic.
        #[test]
        fn arbitrary_text_is_decoded_or_refused(text in ".{0,400}") {
            if let Err(refused) = decode_frame(&text, MAX) {
                prop_assert!(["frame_too_large", "bad_frame", "unknown_type"].contains(&refused.code));
                prop_assert!(!refused.message.is_empty());
            }
        }

        /// Frame-shaped objects with wrong, missing, duplicate or extra fields.
        #[test]
        fn frame_shaped_objects_are_decoded_or_refused(text in frame_shaped()) {
            if let Err(refused) = decode_frame(&text, MAX) {
                prop_assert!(["bad_frame", "unknown_type"].contains(&refused.code), "{:?}", refused);
            }
        }

        /// Size is checked before anything is parsed.
        #[test]
        fn oversized_frames_are_refused_by_size(extra in 1_usize..512, frame in frame()) {
            let text = encoded(&frame).to_string();
            let refused = decode_frame(&text, text.len() - 1).map(|_| ()).unwrap_err();
            prop_assert_eq!(refused.code, "frame_too_large");
            let padded = format!("{text}{}", " ".repeat(extra));
            prop_assert!(decode_frame(&padded, text.len()).is_err());
        }
    }
}
