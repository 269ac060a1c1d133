//! The pub/sub bus. With Redis configured, a message published on any node reaches
//! subscribers on every node; without it, an in-process broadcast serves a single node.
//! Both variants have the same API and pass the same tests.
//!
//! Delivery is at-most-once by design: anything that must not be lost is stored first
//! (with a sequence number) and published after commit, so a subscriber that misses a
//! message (Redis hiccup, lagging receiver) refills the gap from the database.

pub mod live;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushKind};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Messages buffered per channel for a slow local receiver before it starts lagging.
const CHANNEL_CAPACITY: usize = 1024;
/// How long a publish may wait for Redis (connecting or answering).
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
/// How often a node whose subscriber connection dropped asks Redis whether it is back.
const RECONNECT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the bus has stopped")]
    Stopped,
}

/// The channel name of a firm-level topic. Keyed by firm so a sharded Redis Cluster
/// spreads firms over shards.
pub fn firm_channel(firm_id: uuid::Uuid, topic: &str) -> String {
    format!("cp:firm:{firm_id}:{topic}")
}

#[derive(Clone)]
pub enum Bus {
    InProcess(LocalFanout),
    Redis(RedisBus),
}

impl Bus {
    pub fn in_process() -> Self {
        Bus::InProcess(LocalFanout::default())
    }

    /// Connects to Redis: one connection for publishing, one RESP3 connection whose
    /// subscriptions are restored automatically after a reconnect.
    ///
    /// Publishing is best effort (what matters is stored first), so while Redis is down a
    /// publish fails within about a second instead of holding its request through the
    /// reconnect back-off.
    pub async fn redis(url: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(with_resp3(url))?;
        let fail_fast = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(PUBLISH_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT));
        let publisher = client.get_connection_manager_with_config(fail_fast).await?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new().set_push_sender(push_tx).set_automatic_resubscription();
        let subscriber = client.get_connection_manager_with_config(config).await?;
        let (reconcile_tx, reconcile_rx) = mpsc::unbounded_channel();
        let local = LocalFanout { on_idle: Some(reconcile_tx.clone()), ..LocalFanout::default() };
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_pushes(push_rx, local.clone(), lost_tx));
        tokio::spawn(restore_after_disconnect(lost_rx, subscriber.clone(), local.clone()));
        tokio::spawn(reconcile_subscriptions(reconcile_rx, subscriber, local.clone()));
        Ok(Bus::Redis(RedisBus { publisher, local, reconcile_tx }))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Bus::InProcess(_) => "in_process",
            Bus::Redis(_) => "redis",
        }
    }

    pub async fn publish(&self, channel: &str, payload: impl Into<Bytes>) -> Result<(), BusError> {
        let payload = payload.into();
        match self {
            Bus::InProcess(local) => {
                local.dispatch(channel, payload);
                Ok(())
            }
            Bus::Redis(bus) => {
                let mut conn = bus.publisher.clone();
                let _receivers: i64 = conn.publish(channel, payload.as_ref()).await?;
                Ok(())
            }
        }
    }

    /// Subscribes to one channel; when this returns, messages published from then on
    /// arrive. The subscription ends when the returned value is dropped, and the last
    /// local subscriber leaving also unsubscribes the node from Redis.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
        match self {
            Bus::InProcess(local) => Ok(local.join(channel)),
            Bus::Redis(bus) => {
                let subscription = bus.local.join(channel);
                let (done_tx, done_rx) = oneshot::channel();
                bus.reconcile_tx
                    .send(Reconcile { channel: channel.to_owned(), done: Some(done_tx) })
                    .map_err(|_| BusError::Stopped)?;
                done_rx.await.map_err(|_| BusError::Stopped)??;
                Ok(subscription)
            }
        }
    }

    /// Round trip to Redis for readiness; always fine for the in-process bus.
    pub async fn ping(&self) -> Result<(), BusError> {
        match self {
            Bus::InProcess(_) => Ok(()),
            Bus::Redis(bus) => {
                let mut conn = bus.publisher.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(())
            }
        }
    }

    /// Channels with at least one receiver on this node.
    pub fn active_channels(&self) -> usize {
        match self {
            Bus::InProcess(local) => local.active_channels(),
            Bus::Redis(bus) => bus.local.active_channels(),
        }
    }
}

fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[derive(Clone)]
pub struct RedisBus {
    publisher: ConnectionManager,
    local: LocalFanout,
    reconcile_tx: mpsc::UnboundedSender<Reconcile>,
}

/// Asks the subscription task to bring the node's Redis subscription for `channel` in
/// line with whether anyone on this node still listens to it.
struct Reconcile {
    channel: String,
    done: Option<oneshot::Sender<Result<(), redis::RedisError>>>,
}

/// Channel name -> local broadcast. Redis pushes are dispatched through it, so a node
/// holds one Redis subscription per channel however many local sessions listen.
#[derive(Clone, Default)]
pub struct LocalFanout {
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<Fanned>>>>,
    /// Told when a channel loses its last receiver (Redis variant only).
    on_idle: Option<mpsc::UnboundedSender<Reconcile>>,
}

impl LocalFanout {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Fanned>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dispatch(&self, channel: &str, payload: Bytes) {
        if let Some(sender) = self.lock().get(channel) {
            // No receivers left is not an error: the channel is being torn down.
            let _ = sender.send(Fanned::Message(payload));
        }
    }

    /// Tells every receiver it missed messages (the node's Redis subscriptions were down).
    fn mark_missed(&self) {
        for sender in self.lock().values() {
            let _ = sender.send(Fanned::Missed);
        }
    }

    fn join(&self, channel: &str) -> Subscription {
        let receiver =
            self.lock().entry(channel.to_owned()).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).subscribe();
        Subscription { channel: channel.to_owned(), receiver: Some(receiver), local: self.clone() }
    }

    fn has_receivers(&self, channel: &str) -> bool {
        self.lock().get(channel).is_some_and(|s| s.receiver_count() > 0)
    }

    /// Forgets the channel if nobody listens any more; true when it was forgotten.
    fn remove_if_idle(&self, channel: &str) -> bool {
        let mut channels = self.lock();
        match channels.get(channel) {
            Some(sender) if sender.receiver_count() == 0 => {
                channels.remove(channel);
                true
            }
            _ => false,
        }
    }

    pub fn active_channels(&self) -> usize {
        self.lock().values().filter(|s| s.receiver_count() > 0).count()
    }
}

/// One receiver on one channel.
pub struct Subscription {
    channel: String,
    /// Always `Some` until dropped; taken in `drop` so the count excludes it.
    receiver: Option<broadcast::Receiver<Fanned>>,
    local: LocalFanout,
}

/// What travels on a local channel: a published payload, or word that some were missed.
#[derive(Debug, Clone)]
enum Fanned {
    Message(Bytes),
    Missed,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Message(Bytes),
    /// This receiver fell behind and `n` messages were skipped (0: an unknown number, lost
    /// while the node's Redis connection was down); the caller refills from storage.
    Lagged(u64),
    Closed,
}

impl Subscription {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub async fn recv(&mut self) -> Received {
        let Some(receiver) = self.receiver.as_mut() else {
            return Received::Closed;
        };
        match receiver.recv().await {
            Ok(Fanned::Message(payload)) => Received::Message(payload),
            Ok(Fanned::Missed) => Received::Lagged(0),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        if self.local.remove_if_idle(&self.channel) {
            if let Some(on_idle) = &self.local.on_idle {
                let _ = on_idle.send(Reconcile { channel: std::mem::take(&mut self.channel), done: None });
            }
        }
    }
}

async fn forward_pushes(
    mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
    local: LocalFanout,
    lost: mpsc::UnboundedSender<()>,
) {
    while let Some(push) = pushes.recv().await {
        if push.kind == PushKind::Disconnection {
            let _ = lost.send(());
            continue;
        }
        if push.kind != PushKind::Message {
            continue;
        }
        let mut data = push.data.into_iter();
        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
            continue;
        };
        let (Ok(channel), Ok(payload)) =
            (redis::from_redis_value::<String>(channel), redis::from_redis_value::<Vec<u8>>(payload))
        else {
            continue;
        };
        local.dispatch(&channel, Bytes::from(payload));
    }
}

/// A dropped subscriber connection loses whatever was published meanwhile. The connection
/// manager reconnects (restoring the subscriptions) only while someone uses it, so this
/// asks Redis until it answers, then tells every local receiver it missed messages: hubs
/// have their sessions refill from the database.
async fn restore_after_disconnect(
    mut lost: mpsc::UnboundedReceiver<()>,
    mut subscriber: ConnectionManager,
    local: LocalFanout,
) {
    while lost.recv().await.is_some() {
        tracing::warn!("redis subscriber connection lost; reconnecting");
        loop {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut subscriber).await;
            if pong.is_ok() {
                break;
            }
            tokio::time::sleep(RECONNECT_EVERY).await;
        }
        // Disconnections noticed while reconnecting are covered by this one refill.
        while lost.try_recv().is_ok() {}
        tracing::info!("redis subscriber reconnected; receivers refill what they missed");
        local.mark_missed();
    }
}

/// The only task that subscribes or unsubscribes the node in Redis. Serialising both
/// here means a channel left and re-joined in quick succession can never end up
/// unsubscribed while someone listens.
async fn reconcile_subscriptions(
    mut requests: mpsc::UnboundedReceiver<Reconcile>,
    mut subscriber: ConnectionManager,
    local: LocalFanout,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    while let Some(Reconcile { channel, done }) = requests.recv().await {
        let wanted = local.has_receivers(&channel);
        let result = if wanted && !subscribed.contains(&channel) {
            subscriber.subscribe(&channel).await.map(|()| {
                subscribed.insert(channel.clone());
            })
        } else if !wanted && subscribed.contains(&channel) {
            subscriber.unsubscribe(&channel).await.map(|()| {
                subscribed.remove(&channel);
            })
        } else {
            Ok(())
        };
        if let Err(err) = &result {
            tracing::warn!(%channel, error = %err, "redis subscription change failed");
        }
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }
}
