//! A WebSocket client for tests: tickets, JSON frames, and waiting with a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, client_async};

use crate::helpers::{TestApp, json};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub async fn ticket(app: &TestApp, token: &str) -> String {
    let response = app.post_as(token, "/api/v1/realtime/ticket", &serde_json::json!({})).await;
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["data"]["expires_in"], 30);
    body["data"]["ticket"].as_str().unwrap().to_owned()
}

/// Opens a socket with a fresh ticket; `receive_buffer` shrinks the client's TCP receive
/// buffer (a slow reader's socket fills fast).
pub async fn connect_with(app: &TestApp, token: &str, receive_buffer: Option<u32>) -> WsClient {
    let ticket = ticket(app, token).await;
    open(app, &ticket, receive_buffer).await.expect("socket opens")
}

pub async fn connect(app: &TestApp, token: &str) -> WsClient {
    connect_with(app, token, None).await
}

/// Opens a socket with the given ticket; the HTTP status when refused.
pub async fn open(app: &TestApp, ticket: &str, receive_buffer: Option<u32>) -> Result<WsClient, u16> {
    let address = app.address.trim_start_matches("http://").to_owned();
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let tcp = socket.connect(address.parse().unwrap()).await.unwrap();
    let url = format!("ws://{address}/api/v1/ws?ticket={ticket}");
    match client_async(url, MaybeTlsStream::Plain(tcp)).await {
        Ok((stream, _)) => Ok(WsClient { stream }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("websocket handshake failed: {other}"),
    }
}

impl WsClient {
    pub async fn send(&mut self, frame: Value) {
        self.stream.send(Message::text(frame.to_string())).await.expect("frame sent");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("frame sent");
    }

    /// The next JSON frame; `None` when the socket closed (with its close frame).
    pub async fn next(&mut self) -> Result<Value, Option<CloseFrame>> {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next()).await.expect("a frame within the deadline");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("server frames are JSON"));
                }
                Some(Ok(Message::Close(frame))) => return Err(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// The next frame of the given type, skipping others (presence, typing, ...).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await.unwrap_or_else(|close| panic!("socket closed waiting for {kind}: {close:?}"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Subscribes and waits for the `subscribed` answer.
    pub async fn subscribe(&mut self, conversation_id: &str, after_seq: Option<i64>) -> Value {
        let mut frame = serde_json::json!({ "type": "subscribe", "conversation_id": conversation_id });
        if let Some(after) = after_seq {
            frame["after_seq"] = after.into();
        }
        self.send(frame).await;
        self.next_of("subscribed").await
    }

    /// Collects `message` frames of one conversation until `count` have arrived.
    pub async fn messages(&mut self, conversation_id: &str, count: usize) -> Vec<Value> {
        let mut seen = Vec::with_capacity(count);
        while seen.len() < count {
            let frame = self.next_of("message").await;
            if frame["conversation_id"] == conversation_id {
                seen.push(frame);
            }
        }
        seen
    }

    /// Nothing of the given type arrives within `wait`, on a socket that stays open: a
    /// closed socket hears nothing, which proves nothing, so it fails the check.
    pub async fn quiet(&mut self, kind: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] == kind {
                        return false;
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => panic!("socket closed while waiting for quiet: {frame:?}"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(err))) => panic!("socket failed while waiting for quiet: {err}"),
                Ok(None) => panic!("socket ended while waiting for quiet"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
