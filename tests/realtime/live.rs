use std::time::Duration;

use consultantpro::actors::hub::{Crash, Stall};
use consultantpro::bus::live;
use consultantpro::domain::memberships::Role;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::portal_user;
use crate::helpers::{PASSWORD, TestApp, add_member, json, signed_in_owner, spawn_app, spawn_app_with};
use crate::ws::{connect, connect_with, open, ticket};
use crate::{conversation, post};

fn seqs(frames: &[serde_json::Value]) -> Vec<i64> {
    frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect()
}

async fn wait_for_sessions(app: &TestApp, firm: consultantpro::domain::FirmId, expected: usize) {
    for _ in 0..200 {
        if app.state.registry().hub_counts(firm).await.sessions == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("hub session count never reached {expected}: {:?}", app.state.registry().hub_counts(firm).await);
}

/// A new firm's owner whose socket watches a new conversation and has seen its first
/// message (seq 1).
struct Watching {
    firm: consultantpro::domain::firms::Firm,
    owner_id: uuid::Uuid,
    owner: String,
    id: String,
    socket: crate::ws::WsClient,
}

async fn watching_after_one(app: &TestApp, subject: &str) -> Watching {
    let (firm, _, owner_id, owner) = signed_in_owner(app).await;
    let id = conversation(app, &owner, serde_json::json!({ "subject": subject })).await;
    let mut socket = connect(app, &owner).await;
    socket.subscribe(&id, None).await;
    post(app, &owner, &id, "first").await;
    assert_eq!(socket.messages(&id, 1).await[0]["seq"], 1);
    Watching { firm, owner_id, owner, id, socket }
}

#[actix_web::test]
async fn replay_then_live_has_no_gap_and_no_duplicate_under_concurrent_senders() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Seam" })).await;
    for i in 0..30 {
        post(&app, &owner, &id, &format!("before {i}")).await;
    }
    // Two senders keep posting while the subscriber replays and goes live.
    let senders: Vec<_> = (0..2)
        .map(|s| {
            let (address, token, id) = (app.address.clone(), owner.clone(), id.clone());
            actix_web::rt::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..40 {
                    let response = client
                        .post(format!("{address}/api/v1/conversations/{id}/messages"))
                        .bearer_auth(&token)
                        .header("x-forwarded-for", format!("2001:db8::77:{s}"))
                        .json(&serde_json::json!({ "body": format!("during {s}-{i}") }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 201);
                }
            })
        })
        .collect();
    let mut socket = connect(&app, &owner).await;
    socket.subscribe(&id, Some(10)).await;
    let frames = socket.messages(&id, 100).await;
    assert_eq!(seqs(&frames), (11..=110).collect::<Vec<i64>>(), "every message after 10, once, in order");
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(socket.quiet("message", Duration::from_millis(300)).await, "nothing beyond the 110 stored");
}

#[actix_web::test]
async fn sending_over_the_socket_acks_once_and_reaches_rest_and_other_sockets() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (email, _) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Chat" })).await;
    let mut watcher = connect(&app, &staff).await;
    watcher.subscribe(&id, None).await;
    let mut sender = connect(&app, &owner).await;
    let send = serde_json::json!({ "type": "send", "conversation_id": id, "client_msg_id": "m-1", "body": "hi" });
    sender.send(send.clone()).await;
    let ack = sender.next_of("ack").await;
    assert_eq!((ack["client_msg_id"].as_str(), ack["seq"].as_i64()), (Some("m-1"), Some(1)));
    sender.send(send).await;
    assert_eq!(sender.next_of("ack").await["seq"], 1, "a resend after reconnect is acknowledged, not stored again");
    let got = watcher.messages(&id, 1).await;
    assert_eq!(got[0]["message"]["body"], "hi");
    post(&app, &owner, &id, "over rest").await;
    assert_eq!(watcher.messages(&id, 1).await[0]["seq"], 2, "REST and socket sends travel the same way");
    let stored = json(app.get_as(&owner, &format!("/api/v1/conversations/{id}/messages")).await).await;
    assert_eq!(stored["data"].as_array().unwrap().len(), 2);
    assert!(watcher.quiet("message", Duration::from_millis(300)).await, "the resend was not delivered twice");
}

#[actix_web::test]
async fn a_ticket_works_once_and_anything_else_is_refused() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let ticket = ticket(&app, &owner).await;
    let first = open(&app, &ticket, None).await;
    assert!(first.is_ok());
    assert_eq!(open(&app, &ticket, None).await.err(), Some(401), "a ticket works once");
    let (firm_part, _) = ticket.split_once('.').unwrap();
    for bad in ["", "garbage", &format!("{firm_part}.not-the-secret"), "00000000-0000-0000-0000-000000000000.x"] {
        assert_eq!(open(&app, bad, None).await.err(), Some(401), "{bad}");
    }
    let plain = app.get("/api/v1/ws").await;
    assert_eq!(plain.status(), 401);
    assert_eq!(json(plain).await["error"]["code"], "unauthorized");
    assert_eq!(app.post("/api/v1/realtime/ticket", &serde_json::json!({})).await.status(), 401);
}

#[actix_web::test]
async fn bad_frames_get_error_frames_and_the_session_goes_on() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Robust" })).await;
    let mut socket = connect(&app, &owner).await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("not json"), "bad_frame"),
        (Message::text("[1,2,3]"), "unknown_type"),
        (Message::text(r#"{"type":"dance"}"#), "unknown_type"),
        (Message::text(r#"{"type":"subscribe"}"#), "bad_frame"),
        (Message::text(r#"{"type":"subscribe","conversation_id":"nope"}"#), "bad_frame"),
        (
            Message::text(r#"{"type":"send","conversation_id":"6f1c1f4e-0000-7000-8000-000000000000","body":"x"}"#),
            "bad_frame",
        ),
        (
            Message::text(format!(
                r#"{{"type":"send","conversation_id":"{id}","client_msg_id":"a","body":"{}"}}"#,
                "x".repeat(70_000)
            )),
            "frame_too_large",
        ),
        (
            Message::text(format!(r#"{{"type":"send","conversation_id":"{id}","client_msg_id":"a","body":""}}"#)),
            "validation_error",
        ),
        (Message::text(format!(r#"{{"type":"read","conversation_id":"{id}","seq":99}}"#)), "validation_error"),
        (Message::text(format!(r#"{{"type":"typing","conversation_id":"{id}"}}"#)), "not_subscribed"),
        (
            Message::text(r#"{"type":"subscribe","conversation_id":"6f1c1f4e-0000-7000-8000-000000000000"}"#),
            "not_found",
        ),
        (
            Message::text(format!(r#"{{"type":"subscribe","conversation_id":"{id}","after_seq":-4}}"#)),
            "validation_error",
        ),
        (Message::binary(vec![0_u8, 159, 146, 150]), "bad_frame"),
    ];
    for (frame, code) in cases {
        let shown = format!("{frame:?}").chars().take(80).collect::<String>();
        socket.send_raw(frame).await;
        let error = socket.next_of("error").await;
        assert_eq!(error["code"], code, "{shown}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Field problems come with the same details the HTTP API gives.
    socket.send(serde_json::json!({ "type": "send", "conversation_id": id, "client_msg_id": "d", "body": " " })).await;
    let error = socket.next_of("error").await;
    assert!(error["details"]["fields"]["body"].is_string(), "{error}");
    socket.send(serde_json::json!({ "type": "ping" })).await;
    socket.next_of("pong").await;
    socket.subscribe(&id, None).await;
    post(&app, &owner, &id, "still here").await;
    assert_eq!(socket.messages(&id, 1).await[0]["message"]["body"], "still here");
}

#[actix_web::test]
async fn another_firm_can_neither_subscribe_nor_send() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Firm A only" })).await;
    let (_, _, _, intruder) = signed_in_owner(&app).await;
    let mut socket = connect(&app, &intruder).await;
    socket.send(serde_json::json!({ "type": "subscribe", "conversation_id": id, "after_seq": 0 })).await;
    assert_eq!(socket.next_of("error").await["code"], "not_found");
    socket.send(serde_json::json!({ "type": "send", "conversation_id": id, "client_msg_id": "x", "body": "hi" })).await;
    assert_eq!(socket.next_of("error").await["code"], "not_found");
    socket.send(serde_json::json!({ "type": "read", "conversation_id": id, "seq": 0 })).await;
    assert_eq!(socket.next_of("error").await["code"], "not_found");
    // The intruder's send stored nothing: the owner's next message is the first.
    assert_eq!(post(&app, &owner, &id, "not for you").await, 1);
    assert!(socket.quiet("message", Duration::from_millis(300)).await);
}

#[actix_web::test]
async fn portal_users_live_only_in_their_conversations_and_readonly_cannot_send() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let (portal, contact_id) = portal_user(&app, &firm.slug, &owner).await;
    let theirs = conversation(
        &app,
        &owner,
        serde_json::json!({ "subject": "Shared", "channel": "portal",
        "participants": { "contacts": [contact_id] } }),
    )
    .await;
    let internal = conversation(&app, &owner, serde_json::json!({ "subject": "Internal" })).await;
    let mut socket = connect(&app, &portal).await;
    socket.send(serde_json::json!({ "type": "subscribe", "conversation_id": internal })).await;
    assert_eq!(socket.next_of("error").await["code"], "not_found");
    socket.subscribe(&theirs, Some(0)).await;
    socket
        .send(serde_json::json!({ "type": "send", "conversation_id": theirs, "client_msg_id": "p", "body": "Hello" }))
        .await;
    // The ack and the message itself may come in either order.
    let (mut ack, mut message) = (None, None);
    while ack.is_none() || message.is_none() {
        let frame = socket.next().await.unwrap();
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("message") => message = Some(frame),
            _ => {}
        }
    }
    assert_eq!(ack.unwrap()["seq"], 1);
    assert_eq!(message.unwrap()["message"]["author_contact_id"], contact_id);
    // Firm events are for members, not for the firm's clients; events about a conversation
    // reach the portal users watching it, and no other conversation's do.
    live::publish_event(app.state.bus(), firm.firm_id(), "sla.warning", serde_json::json!({ "ticket": 1 })).await;
    let other = uuid::Uuid::now_v7();
    live::publish_conversation_event(app.state.bus(), firm.firm_id(), other, "sms.status", serde_json::json!({})).await;
    assert!(socket.quiet("event", Duration::from_millis(300)).await);
    let theirs_id: uuid::Uuid = theirs.parse().unwrap();
    live::publish_conversation_event(
        app.state.bus(),
        firm.firm_id(),
        theirs_id,
        "sms.status",
        serde_json::json!({ "n": 1 }),
    )
    .await;
    let event = socket.next_of("event").await;
    assert_eq!((event["topic"].as_str(), event["payload"]["n"].as_i64()), (Some("sms.status"), Some(1)));

    let (email, _) = add_member(&app.db(), &firm, Role::Readonly).await;
    let reader = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let mut reading = connect(&app, &reader).await;
    reading.subscribe(&theirs, Some(0)).await;
    assert_eq!(reading.messages(&theirs, 1).await[0]["seq"], 1, "readonly members read");
    reading
        .send(serde_json::json!({ "type": "send", "conversation_id": theirs, "client_msg_id": "r", "body": "x" }))
        .await;
    assert_eq!(reading.next_of("error").await["code"], "forbidden");
    let stored =
        crate::helpers::json(app.get_as(&owner, &format!("/api/v1/conversations/{theirs}/messages")).await).await;
    assert_eq!(stored["data"].as_array().unwrap().len(), 1, "the refused send stored nothing: {stored}");
}

#[actix_web::test]
async fn presence_read_receipts_typing_and_events_reach_the_firm() {
    let app = spawn_app().await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let (email, staff_id) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Presence" })).await;
    post(&app, &owner, &id, "read me").await;

    let mut first = connect(&app, &owner).await;
    assert_eq!(first.next_of("presence").await["online"], serde_json::json!([owner_id]));
    let mut second = connect(&app, &staff).await;
    let mut both = vec![owner_id, staff_id];
    both.sort();
    assert_eq!(second.next_of("presence").await["online"], serde_json::json!(both));
    assert_eq!(first.next_of("presence").await["online"], serde_json::json!(both));

    first.subscribe(&id, None).await;
    second.subscribe(&id, None).await;
    second.send(serde_json::json!({ "type": "read", "conversation_id": id, "seq": 1 })).await;
    let read = first.next_of("read").await;
    assert_eq!((read["user_id"].as_str(), read["seq"].as_i64()), (Some(staff_id.to_string().as_str()), Some(1)));
    let listed = json(app.get_as(&staff, "/api/v1/conversations").await).await;
    assert_eq!(listed["data"][0]["unread"], 0, "the receipt is stored");
    second.send(serde_json::json!({ "type": "typing", "conversation_id": id })).await;
    assert_eq!(first.next_of("typing").await["user_id"], staff_id.to_string());

    live::publish_event(app.state.bus(), firm.firm_id(), "email.received", serde_json::json!({ "from": "a@b.c" }))
        .await;
    let event = first.next_of("event").await;
    assert_eq!((event["topic"].as_str(), event["payload"]["from"].as_str()), (Some("email.received"), Some("a@b.c")));

    second.close().await;
    assert_eq!(first.next_of("presence").await["online"], serde_json::json!([owner_id]));
}

#[actix_web::test]
async fn two_nodes_deliver_to_each_other_through_redis() {
    let node_a = spawn_app().await;
    let node_b = spawn_app().await;
    assert_eq!(node_a.state.bus().kind(), "redis", "the test profile runs the Redis bus");
    let (firm, _, owner_id, owner) = signed_in_owner(&node_a).await;
    let (email, staff_id) = add_member(&node_a.db(), &firm, Role::Staff).await;
    let staff = node_b.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let id = conversation(&node_a, &owner, serde_json::json!({ "subject": "Across nodes" })).await;
    let mut on_b = connect(&node_b, &staff).await;
    on_b.subscribe(&id, None).await;
    let mut on_a = connect(&node_a, &owner).await;
    on_a.subscribe(&id, None).await;
    post(&node_a, &owner, &id, "from A over REST").await;
    on_a.send(
        serde_json::json!({ "type": "send", "conversation_id": id, "client_msg_id": "s", "body": "from A's socket" }),
    )
    .await;
    let got = on_b.messages(&id, 2).await;
    assert_eq!(seqs(&got), [1, 2]);
    on_b.send(serde_json::json!({ "type": "send", "conversation_id": id, "client_msg_id": "b", "body": "from B" }))
        .await;
    let back = on_a.messages(&id, 3).await;
    assert_eq!(back[2]["message"]["body"], "from B");
    // Presence spans the nodes too.
    let mut both = vec![owner_id, staff_id];
    both.sort();
    loop {
        let presence = on_a.next_of("presence").await;
        if presence["online"] == serde_json::json!(both) {
            break;
        }
    }
}

#[actix_web::test]
async fn a_slow_consumer_is_closed_while_others_keep_receiving() {
    let app = spawn_app_with(|s| s.realtime.session_queue = 8).await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let (email, _) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Firehose" })).await;
    // Watches presence only: it should see the slow member go offline when dropped.
    let mut observer = connect(&app, &owner).await;
    let mut slow = connect_with(&app, &staff, Some(4096)).await;
    slow.subscribe(&id, None).await;
    let mut fast = connect(&app, &owner).await;
    fast.subscribe(&id, None).await;
    wait_for_sessions(&app, firm.firm_id(), 3).await;
    let body = "x".repeat(19_000);
    let total = 400;
    let mut received = 0;
    for _ in 0..total {
        post(&app, &owner, &id, &body).await;
        // The fast reader keeps up as it goes; the slow one never reads.
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(1), fast.next()).await.map(Result::ok) {
            if frame["type"] == "message" {
                received += 1;
            }
        }
    }
    received += fast.messages(&id, total - received).await.len();
    assert_eq!(received, total, "the fast reader got everything");
    // The slow one was dropped from the hub (and from presence) and, once it reads, finds
    // the close code.
    wait_for_sessions(&app, firm.firm_id(), 2).await;
    while observer.next_of("presence").await["online"] != serde_json::json!([owner_id]) {}
    let close = loop {
        match slow.next().await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 4008, "{close:?}");
}

#[actix_web::test]
async fn a_thousand_sockets_come_and_go_and_the_hub_forgets_them() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Crowd" })).await;
    let mut sockets = Vec::with_capacity(1000);
    for chunk in 0..20 {
        let opened = futures_util::future::join_all((0..50).map(|_| connect(&app, &owner))).await;
        sockets.extend(opened);
        if chunk % 2 == 0 {
            // Half of them watch the conversation too.
            for socket in sockets.iter_mut().rev().take(50) {
                socket.send(serde_json::json!({ "type": "subscribe", "conversation_id": id })).await;
            }
        }
    }
    wait_for_sessions(&app, firm.firm_id(), 1000).await;
    // Half close politely, half just vanish.
    let (polite, rude): (Vec<_>, Vec<_>) = sockets.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    futures_util::future::join_all(polite.into_iter().map(|(_, s)| s.close())).await;
    drop(rude);
    wait_for_sessions(&app, firm.firm_id(), 0).await;
    assert_eq!(app.state.registry().hub_counts(firm.firm_id()).await.watched_conversations, 0);
}

#[actix_web::test]
async fn a_crashed_hub_is_restarted_and_sessions_lose_nothing() {
    let app = spawn_app().await;
    let Watching { firm, owner, id, mut socket, .. } = watching_after_one(&app, "Resilient").await;

    let registry = app.state.registry();
    registry.hub(firm.firm_id()).await.unwrap().do_send(Crash);
    // Sent while the hub is down or just replaced: the session refills it by seq.
    post(&app, &owner, &id, "during").await;
    for _ in 0..100 {
        if registry.restarts(firm.firm_id()) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.restarts(firm.firm_id()), 1);
    wait_for_sessions(&app, firm.firm_id(), 1).await;
    post(&app, &owner, &id, "after").await;
    let got = socket.messages(&id, 2).await;
    assert_eq!(seqs(&got), [2, 3], "nothing lost across the restart");
}

#[actix_web::test]
async fn a_silent_client_is_closed_as_idle_and_a_signed_out_one_as_such() {
    let app = spawn_app_with(|s| {
        s.realtime.heartbeat_secs = 1;
        s.realtime.idle_timeout_secs = 2;
        s.realtime.auth_recheck_secs = 1;
    })
    .await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    // A client that never reads never answers the server's pings either.
    let mut silent = connect(&app, &owner).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let close = loop {
        match silent.next().await {
            Ok(_) => continue,
            Err(close) => break close.expect("a close frame"),
        }
    };
    assert_eq!(u16::from(close.code), 4001);

    let (email, _) = add_member(&app.db(), &firm, Role::Staff).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let mut socket = connect(&app, &access).await;
    let logout = app
        .post_as(&access, "/api/v1/auth/logout", &serde_json::json!({ "refresh_token": tokens["refresh_token"] }))
        .await;
    assert!(logout.status().is_success(), "{}", logout.status());
    let close = loop {
        match socket.next().await {
            Ok(_) => continue,
            Err(close) => break close.expect("a close frame"),
        }
    };
    assert_eq!(u16::from(close.code), 4003);
}

#[actix_web::test]
async fn an_idle_hub_stops_and_the_next_socket_starts_it_again() {
    let app = spawn_app_with(|s| s.realtime.hub_idle_secs = 1).await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Comes and goes" })).await;
    let socket = connect(&app, &owner).await;
    wait_for_sessions(&app, firm.firm_id(), 1).await;
    assert_eq!(app.state.registry().firms(), 1);
    socket.close().await;
    let registry = app.state.registry();
    for _ in 0..100 {
        if registry.firms() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.firms(), 0, "the idle hub and its supervisor stopped");
    let mut again = connect(&app, &owner).await;
    again.subscribe(&id, None).await;
    post(&app, &owner, &id, "back").await;
    assert_eq!(again.messages(&id, 1).await[0]["seq"], 1);
    assert_eq!(registry.restarts(firm.firm_id()), 0, "stopping when idle is not a crash");
}

/// Stores a message by `author` the way the REST handler does, without publishing it.
async fn store_unpublished(
    app: &TestApp,
    firm_id: consultantpro::domain::FirmId,
    author: uuid::Uuid,
    conversation_id: uuid::Uuid,
    body: &'static str,
) -> consultantpro::domain::conversations::Message {
    use consultantpro::domain::conversations::{self, NewMessage, Viewer};
    use scoped_futures::ScopedFutureExt;
    let (message, _) = app
        .db()
        .firm_tx(firm_id, |conn| {
            async move {
                let viewer = Viewer { user_id: author, portal_contact: None };
                let input = NewMessage { body: body.into(), client_msg_id: None };
                conversations::post_message(conn, firm_id, viewer, conversation_id, input).await
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    message
}

/// A message stored but never published (a node died between commit and publish, or Redis
/// dropped it) shows up as a gap at the next frame, and the session fills it from the
/// database before going on.
#[actix_web::test]
async fn a_lost_publish_is_filled_from_the_database_at_the_next_frame() {
    let app = spawn_app().await;
    let Watching { firm, owner_id, owner, id, mut socket } = watching_after_one(&app, "Lossy").await;
    store_unpublished(&app, firm.firm_id(), owner_id, id.parse().unwrap(), "stored, never published").await;
    assert!(socket.quiet("message", Duration::from_millis(300)).await, "nothing announced the second message");
    let fills_before = gap_fills(&app).await;
    post(&app, &owner, &id, "three").await;
    let got = socket.messages(&id, 2).await;
    assert_eq!(seqs(&got), [2, 3], "the gap is filled, in order");
    assert_eq!(got[0]["message"]["body"], "stored, never published");
    assert!(gap_fills(&app).await > fills_before, "the fill is counted in /metrics");
}

/// `ws_gap_fills_total` as `/metrics` reports it (0 before the first fill).
async fn gap_fills(app: &TestApp) -> f64 {
    crate::helpers::metric(app, "ws_gap_fills_total").await.unwrap_or(0.0)
}

/// Two publishes that cross on their way (seq 3 before seq 2) are put back in order by
/// the session without a trip to the database: the frames sent are the published ones.
#[actix_web::test]
async fn publishes_that_cross_are_sent_in_order_without_a_fill() {
    let app = spawn_app().await;
    let Watching { firm, owner_id, id, mut socket, .. } = watching_after_one(&app, "Crossing").await;
    let (firm_id, conversation_id) = (firm.firm_id(), id.parse().unwrap());
    let mut two = store_unpublished(&app, firm_id, owner_id, conversation_id, "stored two").await;
    let mut three = store_unpublished(&app, firm_id, owner_id, conversation_id, "stored three").await;
    two.body = "published two".into();
    three.body = "published three".into();
    live::publish_message(app.state.bus(), firm_id, &three).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    live::publish_message(app.state.bus(), firm_id, &two).await;
    let got = socket.messages(&id, 2).await;
    assert_eq!(seqs(&got), [2, 3], "in seq order");
    assert_eq!(got[0]["message"]["body"], "published two", "sent from the live frames, not refilled");
    assert_eq!(got[1]["message"]["body"], "published three");
}

#[actix_web::test]
async fn events_reach_only_the_roles_allowed_to_see_their_subject() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let mut sockets = Vec::new();
    for role in [Role::Readonly, Role::Billing, Role::Staff] {
        let (email, _) = add_member(&app.db(), &firm, role).await;
        let token = app.login_ok(&firm.slug, &email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
        sockets.push((role, connect(&app, &token).await));
    }
    let mut owner_socket = connect(&app, &owner).await;
    for (_, socket) in &mut sockets {
        socket.next_of("presence").await;
    }
    owner_socket.next_of("presence").await;

    let firm_id = firm.firm_id();
    live::publish_event(app.state.bus(), firm_id, "payment.received", serde_json::json!({ "amount_minor": 100 })).await;
    live::publish_event(app.state.bus(), firm_id, "webhook.disabled", serde_json::json!({ "endpoint_id": 1 })).await;
    live::publish_event(app.state.bus(), firm_id, "email.received", serde_json::json!({ "n": 1 })).await;

    // The owner may see all three: the positive control, in order.
    let topics: Vec<String> =
        [owner_socket.next_of("event").await, owner_socket.next_of("event").await, owner_socket.next_of("event").await]
            .iter()
            .map(|e| e["topic"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(topics, ["payment.received", "webhook.disabled", "email.received"]);
    for (role, socket) in &mut sockets {
        let expected: &[&str] = match role {
            Role::Billing => &["payment.received", "email.received"],
            _ => &["email.received"],
        };
        for topic in expected {
            assert_eq!(socket.next_of("event").await["topic"], *topic, "{role}");
        }
        assert!(socket.quiet("event", Duration::from_millis(300)).await, "{role} heard more than {expected:?}");
    }
}

#[actix_web::test]
async fn an_unsubscribed_conversation_stops_arriving_and_the_others_keep_coming() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let kept = conversation(&app, &owner, serde_json::json!({ "subject": "Kept" })).await;
    let dropped = conversation(&app, &owner, serde_json::json!({ "subject": "Dropped" })).await;
    let mut socket = connect(&app, &owner).await;
    socket.subscribe(&kept, None).await;
    socket.subscribe(&dropped, None).await;
    post(&app, &owner, &dropped, "while subscribed").await;
    assert_eq!(seqs(&socket.messages(&dropped, 1).await), [1], "the positive control: it arrives while subscribed");

    socket.send(serde_json::json!({ "type": "unsubscribe", "conversation_id": dropped })).await;
    // A ping after the unsubscribe: its pong proves the unsubscribe was handled first.
    socket.send(serde_json::json!({ "type": "ping" })).await;
    socket.next_of("pong").await;
    post(&app, &owner, &dropped, "after the unsubscribe").await;
    post(&app, &owner, &kept, "still watched").await;
    // The kept conversation's message arrives, and no message of the dropped one came
    // before it or comes after it.
    loop {
        let frame = socket.next_of("message").await;
        assert_ne!(frame["conversation_id"], dropped.as_str(), "an unsubscribed conversation still arrives: {frame}");
        if frame["conversation_id"] == kept.as_str() {
            break;
        }
    }
    assert!(socket.quiet("message", Duration::from_millis(300)).await, "nothing more arrives");
}

/// A hub whose bus receiver falls behind (frames dropped by the bus) cannot know what it
/// missed: it has every session refill from the database by seq. A message stored without
/// a live frame stands for what was dropped; it reaches the socket only through the refill.
#[actix_web::test]
async fn a_hub_that_fell_behind_its_bus_has_sessions_refill_by_seq() {
    use consultantpro::domain::conversations::{self, NewMessage, Viewer};
    let app = spawn_app().await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let id = conversation(&app, &owner, serde_json::json!({ "subject": "Behind" })).await;
    let mut socket = connect(&app, &owner).await;
    socket.subscribe(&id, None).await;
    wait_for_sessions(&app, firm.firm_id(), 1).await;

    let conversation_id: uuid::Uuid = id.parse().unwrap();
    let unannounced = NewMessage { body: "stored, never published".into(), client_msg_id: None };
    let (stored, _) = app
        .db()
        .firm_tx_retried(firm.firm_id(), async |conn| {
            let viewer = Viewer { user_id: owner_id, portal_contact: None };
            conversations::post_message(conn, firm.firm_id(), viewer, conversation_id, unannounced.clone()).await
        })
        .await
        .unwrap();
    assert_eq!(stored.seq, 1);
    // The control: without a frame, nothing brings it.
    assert!(socket.quiet("message", Duration::from_millis(300)).await, "it arrived without the refill");

    // Far more frames than the bus holds for a receiver, published while the hub is held:
    // its receiver lags. (Typing in other conversations: nothing this socket watches.)
    let hub = app.state.registry().hub(firm.firm_id()).await.unwrap();
    hub.do_send(Stall(Duration::from_millis(1500)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5_000 {
        live::publish_typing(app.state.bus(), firm.firm_id(), uuid::Uuid::now_v7(), owner_id).await;
    }
    let refilled = socket.messages(&id, 1).await;
    assert_eq!(seqs(&refilled), [1]);
    assert_eq!(refilled[0]["message"]["body"], "stored, never published");
    post(&app, &owner, &id, "after").await;
    assert_eq!(seqs(&socket.messages(&id, 1).await), [2], "live again, nothing twice");
}
