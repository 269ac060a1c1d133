//! A node killed with SIGKILL while a client's socket is subscribed: the client resumes on
//! another node with `after_seq`, and gets every message once, in order.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{PASSWORD, Served, add_member, new_firm, serve, test_db, unique_ip};

/// A node of `cluster` on a port of its own, talking to `redis_url`.
fn node(cluster: &str, redis_url: &str) -> Served {
    let mut served = serve(&[("CP__CLUSTER__NAME", cluster), ("CP__REDIS__URL", redis_url)]);
    served.drain_log();
    served
}

/// SIGKILL: no shutdown, no hand-off, sockets cut mid-stream.
fn kill(node: &mut Served) {
    let status = Command::new("kill").args(["-KILL", &node.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let _ = node.child.wait();
}

/// POSTs `body` as `token` and returns the answer's JSON.
async fn post_json(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    client.post(url).bearer_auth(token).json(&body).send().await.unwrap().json().await.unwrap()
}

/// A client of the nodes, from an address of its own (sign-in throttles by address).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", unique_ip().parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// A new firm's owner signed in through `node`: (firm slug, access token).
pub async fn owner_on(client: &reqwest::Client, node_url: &str) -> (String, String) {
    let db = test_db().await;
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, consultantpro::domain::memberships::Role::Owner).await;
    let body = json!({ "firm": firm.slug, "email": email, "password": PASSWORD });
    let answer = client.post(format!("{node_url}/api/v1/auth/login")).json(&body).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let tokens: Value = answer.json().await.unwrap();
    (firm.slug, tokens["data"]["access_token"].as_str().unwrap().to_owned())
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket on the node at `node_url`, subscribed to `conversation` after `after_seq`.
pub async fn subscribed(
    client: &reqwest::Client,
    node_url: &str,
    token: &str,
    conversation: &str,
    after_seq: Option<i64>,
) -> Socket {
    let ticket = post_json(client, format!("{node_url}/api/v1/realtime/ticket"), token, json!({})).await;
    let ticket = ticket["data"]["ticket"].as_str().unwrap();
    let ws_url = format!("{}/api/v1/ws?ticket={ticket}", node_url.replacen("http", "ws", 1));
    let (mut socket, _) = connect_async(ws_url).await.unwrap();
    let mut frame = json!({ "type": "subscribe", "conversation_id": conversation });
    if let Some(after) = after_seq {
        frame["after_seq"] = after.into();
    }
    socket.send(Message::text(frame.to_string())).await.unwrap();
    socket
}

/// The next `message` frame of `conversation`, or `None` once the socket ended.
pub async fn next_message(socket: &mut Socket, conversation: &str) -> Option<Value> {
    // One deadline for the message, however many other frames (presence, pings) come first.
    let message = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if frame["type"] == "message" && frame["conversation_id"] == conversation {
                        return Some(frame);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), message).await.expect("a message frame in time")
}

#[actix_web::test]
async fn a_node_killed_under_a_socket_loses_nothing_once_the_client_resumes_elsewhere() {
    let _one_fault = crate::FAULTS.lock().await;
    let settings = crate::helpers::test_settings();
    let redis_url = secrecy::ExposeSecret::expose_secret(&settings.redis.url).to_owned();
    let cluster = format!("faults-{}", uuid::Uuid::now_v7().simple());
    let mut doomed = node(&cluster, &redis_url);
    let survivor = node(&cluster, &redis_url);
    let client = client();
    let (_, token) = owner_on(&client, &doomed.url("")).await;
    let created =
        post_json(&client, doomed.url("/api/v1/conversations"), &token, json!({ "subject": "Across a crash" })).await;
    let conversation = created["data"]["id"].as_str().unwrap().to_owned();

    // Messages go in through the surviving node, before, during and after the crash.
    const TOTAL: i64 = 60;
    let poster = {
        let (client, token, conversation, url) =
            (client.clone(), token.clone(), conversation.clone(), survivor.url(""));
        tokio::spawn(async move {
            for n in 1..=TOTAL {
                let answer = client
                    .post(format!("{url}/api/v1/conversations/{conversation}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({ "body": format!("message {n}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 201, "message {n}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    let mut seen = Vec::new();
    // From the start (after seq 0): the poster may already have stored its first messages.
    let mut socket = subscribed(&client, &doomed.url(""), &token, &conversation, Some(0)).await;
    while seen.len() < 15 {
        let frame = next_message(&mut socket, &conversation).await.expect("the first node is still up");
        seen.push(frame["seq"].as_i64().unwrap());
    }
    kill(&mut doomed);
    // Whatever was already on the wire still counts; then the socket ends.
    while let Some(frame) = next_message(&mut socket, &conversation).await {
        seen.push(frame["seq"].as_i64().unwrap());
    }
    let last = *seen.last().unwrap();
    let mut socket = subscribed(&client, &survivor.url(""), &token, &conversation, Some(last)).await;
    while seen.len() < usize::try_from(TOTAL).unwrap() {
        let frame = next_message(&mut socket, &conversation).await.expect("the surviving node keeps the socket");
        seen.push(frame["seq"].as_i64().unwrap());
    }
    poster.await.unwrap();
    assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>(), "every message once, in order");
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len());
    // And nothing more arrives: no message was doubled after the resume.
    let extra = tokio::time::timeout(Duration::from_millis(500), next_message(&mut socket, &conversation)).await;
    assert!(extra.is_err(), "an extra message arrived: {extra:?}");
}
