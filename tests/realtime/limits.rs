//! One socket cannot take the server from everyone else: frames per second and
//! subscriptions per socket are bounded, with a clear error first and a close after.

use std::time::Duration;

use crate::conversation;
use crate::helpers::{signed_in_owner, spawn_app_with};
use crate::ws::connect;

#[actix_web::test]
async fn a_flooding_socket_is_told_then_closed_and_a_calm_one_is_not() {
    let app = spawn_app_with(|s| s.realtime.max_frames_per_second = 5).await;
    let (_, _, _, owner) = signed_in_owner(&app).await;

    // Within the allowance (a burst of twice the rate), every ping is answered.
    let mut calm = connect(&app, &owner).await;
    for _ in 0..10 {
        calm.send(serde_json::json!({ "type": "ping" })).await;
        calm.next_of("pong").await;
    }

    let mut flood = connect(&app, &owner).await;
    for _ in 0..40 {
        flood.send(serde_json::json!({ "type": "ping" })).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    let close = loop {
        match flood.next().await {
            Ok(frame) if frame["type"] == "pong" => pongs += 1,
            Ok(frame) if frame["type"] == "error" => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                limited += 1;
            }
            // Presence of the other socket, and the like.
            Ok(_) => {}
            Err(close) => break close.expect("a close frame"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!((10..=12).contains(&pongs), "{pongs} pings answered");
    assert!(limited >= 1, "the client was told before it was closed");

    // The calm socket is untouched, and after a pause it has its allowance back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    calm.send(serde_json::json!({ "type": "ping" })).await;
    calm.next_of("pong").await;
}

#[actix_web::test]
async fn a_socket_watches_a_bounded_number_of_conversations() {
    let app = spawn_app_with(|s| s.realtime.max_subscriptions_per_socket = 2).await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let ids: Vec<String> = futures_util::future::join_all(
        (0..3).map(|n| conversation(&app, &owner, serde_json::json!({ "subject": format!("Watched {n}") }))),
    )
    .await;
    let mut socket = connect(&app, &owner).await;
    socket.subscribe(&ids[0], None).await;
    socket.subscribe(&ids[1], None).await;
    // Subscribing again to one already watched is not a new subscription.
    socket.subscribe(&ids[1], None).await;
    socket.send(serde_json::json!({ "type": "subscribe", "conversation_id": ids[2] })).await;
    let refused = socket.next_of("error").await;
    assert_eq!(refused["code"], "too_many_subscriptions", "{refused}");
    assert_eq!(refused["conversation_id"], ids[2].as_str());
    // Room again after an unsubscribe.
    socket.send(serde_json::json!({ "type": "unsubscribe", "conversation_id": ids[0] })).await;
    socket.subscribe(&ids[2], None).await;
}

#[actix_web::test]
async fn a_firms_sockets_take_turns_at_the_database_and_other_firms_do_not_wait() {
    let app = spawn_app_with(|s| s.realtime.max_socket_db_work_per_firm = 2).await;
    let (busy_firm, _, _, busy_owner) = signed_in_owner(&app).await;
    let (other_firm, _, _, _) = signed_in_owner(&app).await;
    let id = conversation(&app, &busy_owner, serde_json::json!({ "subject": "Waits its turn" })).await;
    let mut socket = connect(&app, &busy_owner).await;

    let registry = app.state.registry();
    let first = registry.socket_db_turn(busy_firm.firm_id()).await.unwrap();
    let _second = registry.socket_db_turn(busy_firm.firm_id()).await.unwrap();
    let wait = Duration::from_millis(300);
    assert!(tokio::time::timeout(wait, registry.socket_db_turn(busy_firm.firm_id())).await.is_err());
    assert!(tokio::time::timeout(wait, registry.socket_db_turn(other_firm.firm_id())).await.is_ok());

    // With the firm's turns taken, its socket's subscribe waits; it goes through once one frees.
    socket.send(serde_json::json!({ "type": "subscribe", "conversation_id": id })).await;
    assert!(socket.quiet("subscribed", Duration::from_millis(500)).await);
    drop(first);
    assert_eq!(socket.next_of("subscribed").await["conversation_id"], id.as_str());
}
