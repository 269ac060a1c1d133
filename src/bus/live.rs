//! What travels on a firm's live channels, and the helpers that publish it.
//!
//! `cp:firm:{id}:live` carries conversation frames. Each payload is a one-line header,
//! `"{conversation_id} {seq}"` (seq 0 for frames that are not messages), a newline, then
//! the frame exactly as sessions send it to browsers, so a hub routes and a session
//! orders without parsing JSON. `cp:firm:{id}:events` carries firm-wide `event` frames,
//! each behind a one-line header naming its audience (`p <permission>` or `c <conversation
//! id>`), so every hub sends it only to the sessions allowed to hear it; and
//! `cp:firm:{id}:presence` each node's list of the firm's members it has online.
//!
//! Publishing is best effort and always after commit: a lost publish shows up as a seq
//! gap at the next message and the session refills it from the database.

use bytes::Bytes;
use bytestring::ByteString;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{Bus, firm_channel};
use crate::domain::FirmId;
use crate::domain::conversations::Message;
use crate::domain::permissions::{Audience, Permission, audience_of};

pub const LIVE_TOPIC: &str = "live";
pub const EVENTS_TOPIC: &str = "events";
pub const PRESENCE_TOPIC: &str = "presence";

/// A conversation frame as routed between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFrame {
    pub conversation_id: Uuid,
    /// The message's seq, or 0 for typing and read frames.
    pub seq: i64,
    /// The JSON text sent to browsers (UTF-8 checked once, here, not per socket).
    pub frame: ByteString,
}

impl LiveFrame {
    pub fn encode(&self) -> Bytes {
        let mut out = format!("{} {}\n", self.conversation_id, self.seq).into_bytes();
        out.extend_from_slice(self.frame.as_bytes());
        Bytes::from(out)
    }

    pub fn decode(payload: &Bytes) -> Option<LiveFrame> {
        let newline = payload.iter().position(|b| *b == b'\n')?;
        let header = std::str::from_utf8(&payload[..newline]).ok()?;
        let (conversation, seq) = header.split_once(' ')?;
        Some(LiveFrame {
            conversation_id: conversation.parse().ok()?,
            seq: seq.parse().ok()?,
            frame: ByteString::try_from(payload.slice(newline + 1..)).ok()?,
        })
    }
}

/// The `message` frame for a stored message.
pub fn message_frame(message: &Message) -> LiveFrame {
    let frame = json!({
        "type": "message",
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "message": message,
    });
    LiveFrame { conversation_id: message.conversation_id, seq: message.seq, frame: ByteString::from(frame.to_string()) }
}

async fn publish_live(bus: &Bus, firm: FirmId, frame: LiveFrame) {
    if let Err(err) = bus.publish(&firm_channel(firm.into_uuid(), LIVE_TOPIC), frame.encode()).await {
        tracing::warn!(error = %err, conversation_id = %frame.conversation_id, "live frame not published");
    }
}

/// Publishes a committed message to every node's subscribers.
pub async fn publish_message(bus: &Bus, firm: FirmId, message: &Message) {
    publish_live(bus, firm, message_frame(message)).await;
}

pub async fn publish_typing(bus: &Bus, firm: FirmId, conversation_id: Uuid, user_id: Uuid) {
    let frame = json!({ "type": "typing", "conversation_id": conversation_id, "user_id": user_id });
    publish_live(bus, firm, LiveFrame { conversation_id, seq: 0, frame: ByteString::from(frame.to_string()) }).await;
}

pub async fn publish_read(bus: &Bus, firm: FirmId, conversation_id: Uuid, user_id: Uuid, seq: i64) {
    let frame = json!({ "type": "read", "conversation_id": conversation_id, "user_id": user_id, "seq": seq });
    publish_live(bus, firm, LiveFrame { conversation_id, seq: 0, frame: ByteString::from(frame.to_string()) }).await;
}

/// An `event` frame and who may hear it, as routed between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFrame {
    pub audience: Audience,
    /// The JSON text sent to browsers.
    pub frame: ByteString,
}

impl EventFrame {
    pub fn encode(&self) -> Bytes {
        let header = match self.audience {
            Audience::Members(permission) => format!("p {}\n", permission.as_str()),
            Audience::Conversation(id) => format!("c {id}\n"),
        };
        let mut out = header.into_bytes();
        out.extend_from_slice(self.frame.as_bytes());
        Bytes::from(out)
    }

    /// `None` for anything malformed, which is then sent to nobody.
    pub fn decode(payload: &Bytes) -> Option<EventFrame> {
        let newline = payload.iter().position(|b| *b == b'\n')?;
        let header = std::str::from_utf8(&payload[..newline]).ok()?;
        let audience = match header.split_once(' ')? {
            ("p", permission) => Audience::Members(Permission::parse(permission)?),
            ("c", conversation) => Audience::Conversation(conversation.parse().ok()?),
            _ => return None,
        };
        Some(EventFrame { audience, frame: ByteString::try_from(payload.slice(newline + 1..)).ok()? })
    }
}

/// A firm-wide `event {topic, payload}` (new email, SMS status, SLA warning, booking made,
/// a payment, ...) for the signed-in members whose role the topic's audience admits
/// ([`audience_of`]), on every node.
pub async fn publish_event(bus: &Bus, firm: FirmId, topic: &str, payload: impl Serialize) {
    publish_to(bus, firm, audience_of(topic), topic, payload).await;
}

/// An `event` about one conversation: for the members who may read the firm's
/// conversations and the portal users watching this one.
pub async fn publish_conversation_event(
    bus: &Bus,
    firm: FirmId,
    conversation_id: Uuid,
    topic: &str,
    payload: impl Serialize,
) {
    publish_to(bus, firm, Audience::Conversation(conversation_id), topic, payload).await;
}

async fn publish_to(bus: &Bus, firm: FirmId, audience: Audience, topic: &str, payload: impl Serialize) {
    let frame = json!({ "type": "event", "topic": topic, "payload": payload });
    let event = EventFrame { audience, frame: ByteString::from(frame.to_string()) };
    if let Err(err) = bus.publish(&firm_channel(firm.into_uuid(), EVENTS_TOPIC), event.encode()).await {
        tracing::warn!(error = %err, topic, "event not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_carry_their_audience_and_garbage_reaches_nobody() {
        for audience in [Audience::Members(Permission::FinanceRead), Audience::Conversation(Uuid::now_v7())] {
            let event = EventFrame { audience, frame: ByteString::from_static("{\"type\":\"event\"}") };
            assert_eq!(EventFrame::decode(&event.encode()), Some(event));
        }
        for garbage in [&b"{\"type\":\"event\"}"[..], b"p everything\n{}", b"c not-a-uuid\n{}", b"x y\n{}"] {
            assert_eq!(EventFrame::decode(&Bytes::copy_from_slice(garbage)), None);
        }
    }

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let frame =
            LiveFrame { conversation_id: Uuid::now_v7(), seq: 42, frame: ByteString::from_static("{\"a\":\n1}") };
        assert_eq!(LiveFrame::decode(&frame.encode()), Some(frame));
        for garbage in [&b""[..], b"no newline", b"not-a-uuid 1\n{}", b"7f0c0f06-0000-7000-8000-000000000000 x\n{}"] {
            assert_eq!(LiveFrame::decode(&Bytes::copy_from_slice(garbage)), None);
        }
    }
}
