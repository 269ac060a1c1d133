//! The pub/sub bus: the same behaviour in-process and over Redis, and across nodes.

use std::time::Duration;

use consultantpro::bus::{Bus, Received, firm_channel};

use crate::helpers::test_settings;

async fn redis_bus() -> Bus {
    let settings = test_settings();
    Bus::redis(settings.redis.url().expect("test profile configures Redis")).await.expect("redis reachable")
}

async fn next(subscription: &mut consultantpro::bus::Subscription) -> Received {
    tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.expect("message within 5 s")
}

fn channel() -> String {
    firm_channel(uuid::Uuid::now_v7(), "events")
}

async fn publish_and_receive(bus: Bus) {
    let channel = channel();
    let mut first = bus.subscribe(&channel).await.unwrap();
    let mut second = bus.subscribe(&channel).await.unwrap();
    let mut other = bus.subscribe(&self::channel()).await.unwrap();
    bus.publish(&channel, b"hello".to_vec()).await.unwrap();
    bus.publish(&channel, b"again".to_vec()).await.unwrap();
    assert_eq!(next(&mut first).await, Received::Message("hello".into()));
    assert_eq!(next(&mut first).await, Received::Message("again".into()));
    assert_eq!(next(&mut second).await, Received::Message("hello".into()));
    // A subscriber of another channel gets nothing.
    assert!(tokio::time::timeout(Duration::from_millis(200), other.recv()).await.is_err());
    assert_eq!(first.channel(), channel);
}

#[actix_web::test]
async fn in_process_bus_delivers_to_every_subscriber_of_the_channel() {
    publish_and_receive(Bus::in_process()).await;
}

#[actix_web::test]
async fn redis_bus_delivers_to_every_subscriber_of_the_channel() {
    publish_and_receive(redis_bus().await).await;
}

#[actix_web::test]
async fn a_message_published_on_one_node_reaches_another() {
    let node_a = redis_bus().await;
    let node_b = redis_bus().await;
    let channel = channel();
    let mut on_b = node_b.subscribe(&channel).await.unwrap();
    node_a.publish(&channel, b"cross-node".to_vec()).await.unwrap();
    assert_eq!(next(&mut on_b).await, Received::Message("cross-node".into()));
}

async fn dropped_subscriptions_are_forgotten(bus: Bus) {
    let before = bus.active_channels();
    let channel = channel();
    let subscriptions: Vec<_> = futures_util::future::join_all((0..50).map(|_| bus.subscribe(&channel))).await;
    assert_eq!(bus.active_channels(), before + 1);
    drop(subscriptions);
    assert_eq!(bus.active_channels(), before);

    // Joining again after everyone left still works (the node re-subscribes).
    let mut again = bus.subscribe(&channel).await.unwrap();
    bus.publish(&channel, b"back".to_vec()).await.unwrap();
    assert_eq!(next(&mut again).await, Received::Message("back".into()));
}

#[actix_web::test]
async fn in_process_bus_forgets_dropped_subscriptions() {
    dropped_subscriptions_are_forgotten(Bus::in_process()).await;
}

#[actix_web::test]
async fn redis_bus_forgets_dropped_subscriptions() {
    dropped_subscriptions_are_forgotten(redis_bus().await).await;
}

#[actix_web::test]
async fn a_receiver_that_falls_behind_is_told_how_much_it_missed() {
    let bus = Bus::in_process();
    let channel = channel();
    let mut slow = bus.subscribe(&channel).await.unwrap();
    for i in 0..1100_u32 {
        bus.publish(&channel, i.to_be_bytes().to_vec()).await.unwrap();
    }
    assert!(matches!(next(&mut slow).await, Received::Lagged(n) if n > 0));
}
