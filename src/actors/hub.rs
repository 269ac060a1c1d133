//! The conversation hub: one per firm per node. It holds the node's one subscription to
//! each of the firm's live channels and fans frames out to the sessions watching, so a
//! thousand sockets on one conversation cost one Redis subscription, not a thousand.
//!
//! Its state is only who is connected here. It keeps no messages: if it dies, its
//! supervisor starts a new one, sessions notice and join it again, and each refills what
//! it missed from the database by seq.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::child::{ChildContext, ChildHandle, ChildKind, Placement, StopChild, spawn_child};
use crate::bus::live::{EVENTS_TOPIC, EventFrame, LIVE_TOPIC, LiveFrame, PRESENCE_TOPIC};
use crate::bus::{Bus, Received, firm_channel};
use crate::domain::memberships::Role;
use crate::domain::permissions::Audience;
use crate::tenant::FirmId;

/// The hub's kind and its one key: one hub per firm per node.
pub const HUB_KIND: &str = "conversation_hub";
pub const HUB_KEY: &str = "node";

/// How often a node restates which members it has online, and how long a node's word
/// counts without being restated (so a node that died drops out of presence).
const PRESENCE_EVERY: Duration = Duration::from_secs(10);
const PRESENCE_LAPSES_AFTER: Duration = Duration::from_secs(35);

pub type SessionId = u64;

/// A frame for one session.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum Deliver {
    /// A conversation frame (message, typing, read).
    Live(Arc<LiveFrame>),
    /// A firm-wide frame (event, presence), sent as is.
    Firm(ByteString),
    /// The hub missed frames (its bus receiver lagged or it restarted): refill every
    /// watched conversation from the database.
    Resync,
}

/// Sent with `do_send` (past the queue bound) when a session fell too far behind.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TooSlow;

/// Joins a session; a member gets the firm's presence list as its first frame.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub user_id: Uuid,
    /// Members get presence and the firm events their role admits; portal users
    /// (`Role::Client`) only events about conversations they watch.
    pub role: Role,
    pub deliver: Recipient<Deliver>,
    pub too_slow: Recipient<TooSlow>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// Start routing a conversation's frames to a session. Answered once routing is in place,
/// so a session that then reads the database cannot miss a frame published afterwards.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub session: SessionId,
    pub conversation_id: Uuid,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub session: SessionId,
    pub conversation_id: Uuid,
}

/// Sessions connected to this hub, and conversations with at least one watcher.
#[derive(Message)]
#[rtype(result = "HubCounts")]
pub struct Counts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HubCounts {
    pub sessions: usize,
    pub watched_conversations: usize,
}

/// Fault injection for the restart path: the hub panics. Operators and tests use it to
/// see a firm's live service recover; it loses nothing, since the hub holds no data.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Holds the hub's thread for a while, as a hub stuck behind slow work would be: frames
/// published meanwhile overflow its bus receiver, which then reports how far it fell
/// behind. Fault tests use it to see the sessions refill from the database.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stall(pub std::time::Duration);

struct SessionEntry {
    user_id: Uuid,
    member: bool,
    role: Role,
    deliver: Recipient<Deliver>,
    too_slow: Recipient<TooSlow>,
    watching: HashSet<Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PresenceNotice {
    node: Uuid,
    online: Vec<Uuid>,
}

pub struct ConversationHub {
    firm: FirmId,
    bus: Bus,
    /// This node, in presence notices.
    node: Uuid,
    sessions: HashMap<SessionId, SessionEntry>,
    watchers: HashMap<Uuid, HashSet<SessionId>>,
    /// Members with a session here, and how many sessions each has.
    online_here: HashMap<Uuid, usize>,
    /// A member went offline here (also when dropped as too slow) and nobody was told yet.
    presence_changed: bool,
    /// Members online per node, as each node last said, and when.
    presence: HashMap<Uuid, (HashSet<Uuid>, Instant)>,
    /// The firm-wide online list last sent to sessions.
    announced: Vec<Uuid>,
    /// Since when no session has been connected.
    idle_since: Option<Instant>,
    /// A hub with no session for this long stops, releasing its bus subscriptions, so a
    /// node does not keep listening for every firm that ever connected to it.
    stop_when_idle_for: Duration,
    /// Held for the hub's life: its end tells the supervisor (finished when idle, else crashed).
    child: ChildContext,
}

/// The conversation hub as a supervised child: one per firm on each node that has sockets.
pub struct ConversationHubKind;

impl ChildKind for ConversationHubKind {
    fn name(&self) -> &'static str {
        HUB_KIND
    }

    fn placement(&self) -> Placement {
        Placement::PerNode
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(ConversationHub::new(ctx), span))
    }
}

/// One received bus payload, tagged with its channel's topic.
enum Inbound {
    Live(Bytes),
    Events(Bytes),
    Presence(Bytes),
    Lagged,
}

impl ConversationHub {
    pub fn new(child: ChildContext) -> Self {
        let live = &child.live;
        ConversationHub {
            firm: child.firm,
            bus: live.bus().clone(),
            node: live.registry().node(),
            sessions: HashMap::new(),
            watchers: HashMap::new(),
            online_here: HashMap::new(),
            presence_changed: false,
            presence: HashMap::new(),
            announced: Vec::new(),
            idle_since: Some(Instant::now()),
            stop_when_idle_for: Duration::from_secs(live.settings().realtime.hub_idle_secs),
            child,
        }
    }

    fn local_online(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.online_here.keys().copied()
    }

    fn member_sessions(&self) -> Vec<SessionId> {
        self.sessions.iter().filter(|(_, s)| s.member).map(|(id, _)| *id).collect()
    }

    /// Tells the other nodes and this node's members when someone came or went here;
    /// true when a new list went to the members.
    fn settle_presence(&mut self, ctx: &mut Context<Self>) -> bool {
        if std::mem::take(&mut self.presence_changed) {
            self.publish_presence(ctx);
            return self.announce_if_changed();
        }
        false
    }

    fn online(&self) -> Vec<Uuid> {
        let now = Instant::now();
        let mut all: HashSet<Uuid> = self.local_online().collect();
        for (node, (users, seen)) in &self.presence {
            if *node != self.node && now.duration_since(*seen) < PRESENCE_LAPSES_AFTER {
                all.extend(users);
            }
        }
        let mut all: Vec<Uuid> = all.into_iter().collect();
        all.sort_unstable();
        all
    }

    fn presence_frame(online: &[Uuid]) -> ByteString {
        ByteString::from(serde_json::json!({ "type": "presence", "online": online }).to_string())
    }

    /// Tells members here when the firm-wide list changed; false when it had not.
    fn announce_if_changed(&mut self) -> bool {
        let online = self.online();
        if online == self.announced {
            return false;
        }
        let frame = Self::presence_frame(&online);
        self.announced = online;
        for session in self.member_sessions() {
            self.deliver(session, Deliver::Firm(frame.clone()));
        }
        true
    }

    /// Tells the other nodes (and, through the bus, this one) who is online here.
    fn publish_presence(&self, ctx: &mut Context<Self>) {
        let notice = PresenceNotice { node: self.node, online: self.local_online().collect() };
        let Ok(payload) = serde_json::to_vec(&notice) else { return };
        let bus = self.bus.clone();
        let channel = firm_channel(self.firm.into_uuid(), PRESENCE_TOPIC);
        ctx.spawn(
            async move {
                if let Err(err) = bus.publish(&channel, payload).await {
                    tracing::debug!(error = %err, "presence not published");
                }
            }
            .into_actor(self),
        );
    }

    /// Queues a frame for a session; a session whose queue is full is dropped from the
    /// maps and told to close, so one slow client never holds up the others.
    fn deliver(&mut self, session: SessionId, frame: Deliver) {
        let Some(entry) = self.sessions.get(&session) else { return };
        match entry.deliver.try_send(frame) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                entry.too_slow.do_send(TooSlow);
                self.forget(session);
            }
            Err(SendError::Closed(_)) => self.forget(session),
        }
    }

    /// Drops a session from every map; notes when its member went offline here, and
    /// when the hub became idle.
    fn forget(&mut self, session: SessionId) {
        if let Some(entry) = self.sessions.remove(&session) {
            if entry.member
                && let Some(count) = self.online_here.get_mut(&entry.user_id)
            {
                *count -= 1;
                if *count == 0 {
                    self.online_here.remove(&entry.user_id);
                    self.presence_changed = true;
                }
            }
            if self.sessions.is_empty() {
                self.idle_since = Some(Instant::now());
            }
            for conversation in entry.watching {
                if let Some(watchers) = self.watchers.get_mut(&conversation) {
                    watchers.remove(&session);
                    if watchers.is_empty() {
                        self.watchers.remove(&conversation);
                    }
                }
            }
        }
    }

    fn route_live(&mut self, payload: Bytes) {
        let Some(frame) = LiveFrame::decode(&payload) else {
            tracing::warn!("undecodable live frame dropped");
            return;
        };
        let Some(watchers) = self.watchers.get(&frame.conversation_id) else { return };
        let targets: Vec<SessionId> = watchers.iter().copied().collect();
        let frame = Arc::new(frame);
        for session in targets {
            self.deliver(session, Deliver::Live(frame.clone()));
        }
    }

    /// Sends an event only to the sessions its audience admits: members by role, and for
    /// a conversation's events also the portal users watching that conversation.
    fn route_event(&mut self, payload: Bytes) {
        let Some(event) = EventFrame::decode(&payload) else {
            tracing::warn!("undecodable event dropped");
            return;
        };
        let targets: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, entry)| match (entry.member, event.audience) {
                (true, audience) => audience.admits_member(entry.role),
                (false, Audience::Conversation(conversation)) => entry.watching.contains(&conversation),
                (false, Audience::Members(_)) => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for session in targets {
            self.deliver(session, Deliver::Firm(event.frame.clone()));
        }
    }

    fn resync_all(&mut self) {
        let all: Vec<SessionId> = self.sessions.keys().copied().collect();
        for session in all {
            self.deliver(session, Deliver::Resync);
        }
    }
}

impl Actor for ConversationHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let bus = self.bus.clone();
        let firm = self.firm.into_uuid();
        // Subscribed before any Join or Watch is handled: `wait` holds the mailbox until
        // the bus confirms, so no session is told it is live before the hub is.
        ctx.wait(
            async move {
                let mut streams = Vec::new();
                for topic in [LIVE_TOPIC, EVENTS_TOPIC, PRESENCE_TOPIC] {
                    match bus.subscribe(&firm_channel(firm, topic)).await {
                        Ok(subscription) => streams.push((topic, subscription)),
                        Err(err) => tracing::error!(error = %err, topic, "hub could not subscribe"),
                    }
                }
                streams
            }
            .into_actor(self)
            .map(|streams, _hub, ctx| {
                for (topic, subscription) in streams {
                    let stream = futures_util::stream::unfold(subscription, move |mut subscription| async move {
                        let item = match subscription.recv().await {
                            Received::Message(payload) => match topic {
                                LIVE_TOPIC => Inbound::Live(payload),
                                EVENTS_TOPIC => Inbound::Events(payload),
                                _ => Inbound::Presence(payload),
                            },
                            Received::Lagged(_) => Inbound::Lagged,
                            Received::Closed => return None,
                        };
                        Some((item, subscription))
                    });
                    ctx.add_stream(stream.boxed_local());
                }
            }),
        );
        let idle_check = (self.stop_when_idle_for / 4).clamp(Duration::from_millis(250), PRESENCE_EVERY);
        ctx.run_interval(idle_check, |hub, ctx| {
            if hub.idle_since.is_some_and(|since| since.elapsed() >= hub.stop_when_idle_for) {
                hub.child.finish();
                ctx.stop();
            }
        });
        ctx.run_interval(PRESENCE_EVERY, |hub, ctx| {
            hub.presence_changed = false;
            hub.publish_presence(ctx);
            hub.announce_if_changed();
        });
    }
}

impl StreamHandler<Inbound> for ConversationHub {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        match item {
            Inbound::Live(payload) => self.route_live(payload),
            Inbound::Events(payload) => self.route_event(payload),
            Inbound::Presence(payload) => {
                if let Ok(notice) = serde_json::from_slice::<PresenceNotice>(&payload)
                    && notice.node != self.node
                {
                    self.presence.insert(notice.node, (notice.online.into_iter().collect(), Instant::now()));
                    self.announce_if_changed();
                }
            }
            Inbound::Lagged => {
                tracing::warn!(firm_id = %self.firm, "hub fell behind its bus; sessions refill from the database");
                self.resync_all();
            }
        }
        // Delivering may have dropped a slow session, and with it someone's presence.
        self.settle_presence(ctx);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // A bus stream ending means the bus stopped; sessions keep their seqs and refill
        // when the hub is replaced.
    }
}

impl Handler<Join> for ConversationHub {
    type Result = ();

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) {
        self.idle_since = None;
        if join.role != Role::Client {
            let count = self.online_here.entry(join.user_id).or_default();
            *count += 1;
            self.presence_changed |= *count == 1;
        }
        self.sessions.insert(
            join.session,
            SessionEntry {
                user_id: join.user_id,
                member: join.role != Role::Client,
                role: join.role,
                deliver: join.deliver,
                too_slow: join.too_slow,
                watching: HashSet::new(),
            },
        );
        if !self.settle_presence(ctx) && join.role != Role::Client {
            // Nobody new came online (another tab of someone already here): only this
            // session lacks the list.
            let frame = Self::presence_frame(&self.announced);
            self.deliver(join.session, Deliver::Firm(frame));
        }
    }
}

impl Handler<Leave> for ConversationHub {
    type Result = ();

    fn handle(&mut self, leave: Leave, ctx: &mut Self::Context) {
        self.forget(leave.session);
        self.settle_presence(ctx);
    }
}

impl Handler<Watch> for ConversationHub {
    type Result = ();

    fn handle(&mut self, watch: Watch, _ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&watch.session) {
            entry.watching.insert(watch.conversation_id);
            self.watchers.entry(watch.conversation_id).or_default().insert(watch.session);
        }
    }
}

impl Handler<Unwatch> for ConversationHub {
    type Result = ();

    fn handle(&mut self, unwatch: Unwatch, _ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&unwatch.session) {
            entry.watching.remove(&unwatch.conversation_id);
        }
        if let Some(watchers) = self.watchers.get_mut(&unwatch.conversation_id) {
            watchers.remove(&unwatch.session);
            if watchers.is_empty() {
                self.watchers.remove(&unwatch.conversation_id);
            }
        }
    }
}

/// A session's role changed (found by its periodic sign-in check): route its events by
/// the new one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRole {
    pub session: SessionId,
    pub role: Role,
}

impl Handler<SetRole> for ConversationHub {
    type Result = ();

    fn handle(&mut self, set: SetRole, _ctx: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&set.session) {
            entry.role = set.role;
        }
    }
}

impl Handler<Counts> for ConversationHub {
    type Result = MessageResult<Counts>;

    fn handle(&mut self, _: Counts, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(HubCounts { sessions: self.sessions.len(), watched_conversations: self.watchers.len() })
    }
}

impl Handler<Crash> for ConversationHub {
    type Result = ();

    #[allow(clippy::panic)]
    fn handle(&mut self, _: Crash, _ctx: &mut Self::Context) {
        panic!("conversation hub of firm {} crashed on request", self.firm);
    }
}

impl Handler<Stall> for ConversationHub {
    type Result = ();

    fn handle(&mut self, Stall(how_long): Stall, _ctx: &mut Self::Context) {
        std::thread::sleep(how_long);
    }
}

impl Handler<StopChild> for ConversationHub {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
