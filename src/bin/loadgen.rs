//! Load generator for the live service: opens N WebSockets across firms and
//! conversations on one or more nodes, posts messages at a fixed rate, and prints
//! delivery latency (send timestamp in the body), deliveries per second, lost and
//! duplicated messages (checked by seq per socket), errors, and each server's memory and
//! CPU. Bounded: sends for `--seconds`, then waits at most `--drain-secs`.
//!
//!   loadgen --nodes http://127.0.0.1:18100 --server-pids 1234 \
//!           --firms 1 --conversations 1 --sockets 1000 --rate 50 --seconds 20
//!
//! It creates its own firms and members in the database the servers use (settings as
//! for the server: CP_ENV, CP__DATABASE__*), then signs in over HTTP like a browser.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::users::NewUser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// Base URLs of the nodes; sockets and posts are spread over them round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Server process ids, for memory and CPU figures.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    #[arg(long, default_value_t = 1)]
    firms: usize,
    #[arg(long, default_value_t = 1)]
    conversations: usize,
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Messages per second over all conversations.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
    /// Sockets opened at once while connecting.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
}

const PASSWORD: &str = "loadgen password, not a secret";

struct Conversation {
    id: String,
    token: Arc<String>,
    /// Messages accepted by the server for this conversation (seq order = accept order).
    posted: AtomicU64,
}

/// What one socket saw (filled in when it stops; `progress` counts as it goes).
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    received: u64,
    duplicates: u64,
    gaps: u64,
    closed_early: bool,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Resident memory (KiB) and CPU time (clock ticks) of a process, from /proc.
fn process_stats(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((rss, utime + stime))
}

fn stats_of(pids: &[u32]) -> Vec<(u64, u64)> {
    pids.iter().map(|p| process_stats(*p).unwrap_or((0, 0))).collect()
}

async fn login(client: &reqwest::Client, node: &str, firm: &str, email: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({ "firm": firm, "email": email, "password": PASSWORD });
    let response: serde_json::Value =
        client.post(format!("{node}/api/v1/auth/login")).json(&body).send().await?.error_for_status()?.json().await?;
    Ok(response["data"]["access_token"].as_str().context("no access token")?.to_owned())
}

async fn ticket(client: &reqwest::Client, node: &str, token: &str) -> anyhow::Result<String> {
    let response: serde_json::Value = client
        .post(format!("{node}/api/v1/realtime/ticket"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(response["data"]["ticket"].as_str().context("no ticket")?.to_owned())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket and subscribes; returns it once the server says it is live.
async fn open_socket(client: &reqwest::Client, node: &str, token: &str, conversation: &str) -> anyhow::Result<Socket> {
    let ticket = ticket(client, node, token).await?;
    let url = format!("{}/api/v1/ws?ticket={ticket}", node.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let subscribe = serde_json::json!({ "type": "subscribe", "conversation_id": conversation });
    socket.send(Message::text(subscribe.to_string())).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await? {
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value = serde_json::from_str(&text)?;
                match frame["type"].as_str() {
                    Some("subscribed") => return Ok(socket),
                    Some("error") => bail!("subscribe refused: {frame}"),
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
            other => bail!("socket ended while subscribing: {other:?}"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    seq: Option<i64>,
    #[serde(borrow)]
    message: Option<FrameMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct FrameMessage<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// Reads a socket until told to stop, checking seqs and timing each message.
async fn read_socket(
    mut socket: Socket,
    stop: Arc<tokio::sync::Notify>,
    seen: Arc<Mutex<Seen>>,
    progress: Arc<AtomicU64>,
) {
    let mut last_seq = 0_i64;
    let mut local = Seen::default();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let arrived = now_us();
                    // Borrowing parse of the three fields needed: the generator shares the
                    // machine with the server, so it should spend as little as it can.
                    let Ok(frame) = serde_json::from_str::<Frame>(&text) else { continue };
                    if frame.kind != "message" {
                        continue;
                    }
                    let seq = frame.seq.unwrap_or(0);
                    if seq <= last_seq {
                        local.duplicates += 1;
                        continue;
                    }
                    if last_seq != 0 && seq != last_seq + 1 {
                        local.gaps += (seq - last_seq - 1) as u64;
                    }
                    last_seq = seq;
                    local.received += 1;
                    progress.fetch_add(1, Ordering::Relaxed);
                    let sent: u64 = frame
                        .message
                        .and_then(|m| m.body.split_whitespace().next().and_then(|t| t.parse().ok()))
                        .unwrap_or(arrived);
                    local.latencies_us.push(arrived.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                }
                Some(Ok(_)) => {}
                _ => {
                    local.closed_early = true;
                    break;
                }
            }
        }
    }
    let _ = socket.close(None).await;
    *seen.lock().await = local;
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.firms == 0 || args.conversations < args.firms || args.sockets == 0 {
        bail!("need at least one firm, one conversation per firm and one socket");
    }
    let settings = Settings::load()?;
    let db = Db::new(&settings.database)?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let run = now_us();

    // Firms, one staff member each, signed in on every node's behalf (tokens work on all).
    let mut tokens = Vec::new();
    for f in 0..args.firms {
        let slug = format!("load-{run}-{f}");
        let firm = onboarding::create_firm(&db, &slug, "Load test firm").await?;
        let email = format!("load-{run}-{f}@example.com");
        let user = NewUser::parse(&email, "Load", PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
        onboarding::add_member(&db, firm.firm_id(), Joiner::New(user), Role::Staff).await?;
        tokens.push(Arc::new(login(&client, &args.nodes[0], &slug, &email).await?));
    }
    let mut conversations = Vec::new();
    for c in 0..args.conversations {
        let token = tokens[c % args.firms].clone();
        let node = c % args.nodes.len();
        let body = serde_json::json!({ "subject": format!("load {c}") });
        let created: serde_json::Value = client
            .post(format!("{}/api/v1/conversations", args.nodes[node]))
            .bearer_auth(token.as_str())
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["data"]["id"].as_str().context("no conversation id")?.to_owned();
        conversations.push(Arc::new(Conversation { id, token, posted: AtomicU64::new(0) }));
    }

    let before = stats_of(&args.server_pids);
    println!(
        "opening {} sockets over {} conversations in {} firms on {} node(s)...",
        args.sockets,
        args.conversations,
        args.firms,
        args.nodes.len()
    );
    let opening = Instant::now();
    let limit = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut opened = Vec::with_capacity(args.sockets);
    for s in 0..args.sockets {
        let conversation = conversations[s % conversations.len()].clone();
        let node = args.nodes[s % args.nodes.len()].clone();
        let (client, limit) = (client.clone(), limit.clone());
        opened.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let socket = open_socket(&client, &node, &conversation.token, &conversation.id).await?;
            Ok::<_, anyhow::Error>(socket)
        }));
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::new();
    let mut connect_errors = 0;
    for (s, handle) in opened.into_iter().enumerate() {
        match handle.await? {
            Ok(socket) => {
                let seen = Arc::new(Mutex::new(Seen::default()));
                let progress = Arc::new(AtomicU64::new(0));
                let reader = tokio::spawn(read_socket(socket, stop.clone(), seen.clone(), progress.clone()));
                readers.push((s % conversations.len(), seen, progress, reader));
            }
            Err(err) => {
                connect_errors += 1;
                if connect_errors <= 3 {
                    eprintln!("socket {s}: {err:#}");
                }
            }
        }
    }
    println!("opened {} sockets in {:.1} s ({connect_errors} failed)", readers.len(), opening.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = stats_of(&args.server_pids);

    // Send at the given rate, round-robin over conversations and nodes.
    let post_errors = Arc::new(AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let total = args.rate * args.seconds;
    let sending = Instant::now();
    let in_flight = Arc::new(Semaphore::new(256));
    let mut posts = Vec::with_capacity(total as usize);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        ticker.tick().await;
        let conversation = conversations[n as usize % conversations.len()].clone();
        let node = args.nodes[(n as usize / conversations.len()) % args.nodes.len()].clone();
        let (client, errors, permit) = (client.clone(), post_errors.clone(), in_flight.clone().acquire_owned().await?);
        posts.push(tokio::spawn(async move {
            let _permit = permit;
            let body = serde_json::json!({ "body": format!("{} load message {n}", now_us()) });
            let sent = client
                .post(format!("{node}/api/v1/conversations/{}/messages", conversation.id))
                .bearer_auth(conversation.token.as_str())
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 201 => {
                    conversation.posted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(response) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("post refused: {}", response.status());
                    }
                }
                Err(err) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("post failed: {err}");
                    }
                }
            }
        }));
    }
    for post in posts {
        post.await?;
    }
    let send_secs = sending.elapsed().as_secs_f64();
    let after_send = stats_of(&args.server_pids);

    // Wait until every socket has everything its conversation was sent, or the drain ends.
    let expected: HashMap<usize, u64> =
        conversations.iter().enumerate().map(|(i, c)| (i, c.posted.load(Ordering::Relaxed))).collect();
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    while Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if readers
            .iter()
            .all(|(conversation, _, progress, _)| progress.load(Ordering::Relaxed) >= expected[conversation])
        {
            break;
        }
    }
    let delivery_secs = sending.elapsed().as_secs_f64();
    stop.notify_waiters();
    let mut latencies = Vec::new();
    let (mut received, mut duplicates, mut gaps, mut lost, mut closed_early) = (0, 0, 0, 0, 0);
    for (conversation, seen, _, handle) in readers {
        handle.await?;
        let seen = std::mem::take(&mut *seen.lock().await);
        received += seen.received;
        duplicates += seen.duplicates;
        gaps += seen.gaps;
        lost += expected[&conversation].saturating_sub(seen.received);
        closed_early += u64::from(seen.closed_early);
        latencies.extend(seen.latencies_us);
    }
    latencies.sort_unstable();
    let posted: u64 = expected.values().sum();

    println!();
    println!(
        "sockets            {} on {} node(s), {} conversations",
        args.sockets,
        args.nodes.len(),
        args.conversations
    );
    println!(
        "sent               {posted} of {total} in {send_secs:.1} s ({:.0}/s), post errors {}",
        posted as f64 / send_secs,
        post_errors.load(Ordering::Relaxed)
    );
    println!("delivered          {received} ({:.0}/s over {delivery_secs:.1} s)", received as f64 / delivery_secs);
    println!(
        "lost               {lost}   duplicated {duplicates}   seq gaps seen {gaps}   sockets closed early {closed_early}   connect errors {connect_errors}"
    );
    println!(
        "latency ms         p50 {:.1}   p95 {:.1}   p99 {:.1}   max {:.1}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    let ticks = 100.0; // USER_HZ on Linux
    for (i, pid) in args.server_pids.iter().enumerate() {
        let per_socket_kib =
            (idle[i].0.saturating_sub(before[i].0)) as f64 / (args.sockets as f64 / args.server_pids.len() as f64);
        println!(
            "server {pid:<8}    RSS {:.1} MiB before, {:.1} MiB with sockets idle ({per_socket_kib:.1} KiB per idle socket), {:.1} MiB after sending; CPU {:.2} cores while sending",
            before[i].0 as f64 / 1024.0,
            idle[i].0 as f64 / 1024.0,
            after_send[i].0 as f64 / 1024.0,
            (after_send[i].1.saturating_sub(idle[i].1)) as f64 / ticks / send_secs,
        );
    }
    Ok(())
}
