//! Load generator for the live service: opens N WebSockets across firms and
//! conversations on one or more nodes, posts messages on a fixed schedule, and prints
//! delivery latency, deliveries per second, lost and duplicated messages, errors, and each
//! server's memory and CPU. Bounded: sends for `--seconds`, then waits at most
//! `--drain-secs`. The last line is the run as one JSON object, for scripts.
//!
//!   loadgen --nodes http://127.0.0.1:18100 --server-pids 1234 \
//!           --firms 1 --conversations 1 --sockets 1000 --rate 50 --seconds 20
//!
//! Strict in the ways that hide trouble otherwise:
//! - latency runs from each message's scheduled send time (carried in its body), not from
//!   when the request left, so a stalled server cannot slow the generator down and hide
//!   its own queueing (no coordinated omission);
//! - a message is lost for a socket when the server acknowledged its seq (201 with the
//!   message) and that socket never received that seq: sets, not counts;
//! - the achieved send and acceptance rates are printed next to the offered one.
//!
//! It creates its own firms and members in the database the servers use (settings as
//! for the server: CP_ENV, CP__DATABASE__*), then signs in over HTTP like a browser.

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
    /// Requests in flight at most; a send that finds them all busy waits, and its latency
    /// still counts from its scheduled time.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// Loopback source addresses to spread sockets over (127.0.0.1, .2, ...): each gives
    /// about 28,000 ports.
    #[arg(long, default_value_t = 1)]
    source_addresses: u8,
    /// Names the run in the JSON line.
    #[arg(long, default_value = "loadgen")]
    label: String,
}

const PASSWORD: &str = "loadgen password, not a secret";

struct Conversation {
    id: String,
    token: Arc<String>,
    /// Seqs the server acknowledged for this conversation (201 with the stored message).
    acked: std::sync::Mutex<Vec<i64>>,
}

/// What one socket saw (filled in when it stops; `progress` counts as it goes).
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    seqs: Vec<i64>,
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

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a socket from `source` (one loopback source address has about 28,000 ports, so
/// larger runs spread over several) and subscribes; returns it once the server says it is live.
async fn open_socket(
    client: &reqwest::Client,
    node: &str,
    token: &str,
    conversation: &str,
    source: std::net::Ipv4Addr,
) -> anyhow::Result<Socket> {
    let ticket = ticket(client, node, token).await?;
    let url = format!("{}/api/v1/ws?ticket={ticket}", node.replacen("http", "ws", 1));
    let parsed = reqwest::Url::parse(node)?;
    let host = parsed.host_str().context("node URL without a host")?;
    let target = tokio::net::lookup_host((host, parsed.port_or_known_default().unwrap_or(80)))
        .await?
        .next()
        .context("node address does not resolve")?;
    let tcp = tokio::net::TcpSocket::new_v4()?;
    tcp.bind(std::net::SocketAddr::from((source, 0)))?;
    let stream = tcp.connect(target).await?;
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await?;
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
                    local.seqs.push(frame.seq.unwrap_or(0));
                    progress.fetch_add(1, Ordering::Relaxed);
                    let scheduled: u64 = frame
                        .message
                        .and_then(|m| m.body.split_whitespace().next().and_then(|t| t.parse().ok()))
                        .unwrap_or(arrived);
                    local.latencies_us.push(arrived.saturating_sub(scheduled).min(u64::from(u32::MAX)) as u32);
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
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
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
        conversations.push(Arc::new(Conversation { id, token, acked: std::sync::Mutex::new(Vec::new()) }));
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
        let source = std::net::Ipv4Addr::new(127, 0, 0, 1 + (s % usize::from(args.source_addresses.max(1))) as u8);
        opened.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let socket = open_socket(&client, &node, &conversation.token, &conversation.id, source).await?;
            Ok::<_, anyhow::Error>(socket)
        }));
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::new();
    let mut connect_errors = 0;
    let mut opened_per_node = vec![0_u64; args.nodes.len()];
    for (s, handle) in opened.into_iter().enumerate() {
        match handle.await? {
            Ok(socket) => {
                opened_per_node[s % args.nodes.len()] += 1;
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
    let readers_opened = readers.len();
    println!("opened {readers_opened} sockets in {:.1} s ({connect_errors} failed)", opening.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = stats_of(&args.server_pids);

    // Send on a fixed schedule, round-robin over conversations and nodes.
    let post_errors = Arc::new(AtomicUsize::new(0));
    let interval_us = 1_000_000 / args.rate.max(1);
    let total = args.rate * args.seconds;
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
    let ack_latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total as usize)));
    let mut posts = Vec::with_capacity(total as usize);
    let sending = Instant::now();
    let start_us = now_us() + 10_000;
    for n in 0..total {
        let scheduled = start_us + n * interval_us;
        let wait = scheduled.saturating_sub(now_us());
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
        let conversation = conversations[n as usize % conversations.len()].clone();
        let node = args.nodes[(n as usize / conversations.len()) % args.nodes.len()].clone();
        let (client, errors, acks) = (client.clone(), post_errors.clone(), ack_latencies.clone());
        let permit = in_flight.clone().acquire_owned().await?;
        posts.push(tokio::spawn(async move {
            let _permit = permit;
            let body = serde_json::json!({ "body": format!("{scheduled} load message {n}") });
            let sent = client
                .post(format!("{node}/api/v1/conversations/{}/messages", conversation.id))
                .bearer_auth(conversation.token.as_str())
                .json(&body)
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status() == 201 => match response.json::<serde_json::Value>().await {
                    Ok(stored) => match stored["data"]["seq"].as_i64() {
                        Some(seq) => {
                            let latency = now_us().saturating_sub(scheduled).min(u64::from(u32::MAX)) as u32;
                            acks.lock().map(|mut a| a.push(latency)).ok();
                            conversation.acked.lock().map(|mut a| a.push(seq)).ok();
                            None
                        }
                        None => Some(format!("201 without a seq: {stored}")),
                    },
                    Err(err) => Some(format!("201 with an unreadable body: {err}")),
                },
                Ok(response) => Some(format!("post refused: {}", response.status())),
                Err(err) => Some(format!("post failed: {err}")),
            };
            if let Some(failure) = failure
                && errors.fetch_add(1, Ordering::Relaxed) < 3
            {
                eprintln!("{failure}");
            }
        }));
    }
    let issued_secs = sending.elapsed().as_secs_f64();
    for post in posts {
        post.await?;
    }
    let send_secs = sending.elapsed().as_secs_f64();
    let after_send = stats_of(&args.server_pids);

    // Wait until every socket has every seq acknowledged for its conversation, or the drain ends.
    let acked: Vec<Vec<i64>> =
        conversations.iter().map(|c| c.acked.lock().map(|a| a.clone()).unwrap_or_default()).collect();
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    while Instant::now() < drain_until {
        if readers
            .iter()
            .all(|(conversation, _, progress, _)| progress.load(Ordering::Relaxed) >= acked[*conversation].len() as u64)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery_secs = sending.elapsed().as_secs_f64();
    stop.notify_waiters();
    let mut latencies = Vec::new();
    let (mut received, mut duplicates, mut lost, mut closed_early) = (0_u64, 0_u64, 0_u64, 0_u64);
    for (conversation, seen, _, handle) in readers {
        handle.await?;
        let seen = std::mem::take(&mut *seen.lock().await);
        let unique: std::collections::HashSet<i64> = seen.seqs.iter().copied().collect();
        received += seen.seqs.len() as u64;
        duplicates += (seen.seqs.len() - unique.len()) as u64;
        lost += acked[conversation].iter().filter(|seq| !unique.contains(seq)).count() as u64;
        closed_early += u64::from(seen.closed_early);
        latencies.extend(seen.latencies_us);
    }
    latencies.sort_unstable();
    let mut ack_latencies = ack_latencies.lock().map(|a| a.clone()).unwrap_or_default();
    ack_latencies.sort_unstable();
    let accepted: u64 = acked.iter().map(|a| a.len() as u64).sum();
    let errors = post_errors.load(Ordering::Relaxed);

    println!();
    println!(
        "sockets            {} on {} node(s), {} conversations",
        args.sockets,
        args.nodes.len(),
        args.conversations
    );
    println!(
        "offered            {total} at {}/s; issued in {issued_secs:.1} s ({:.0}/s); accepted {accepted} in {send_secs:.1} s ({:.0}/s); post errors {errors}",
        args.rate,
        total as f64 / issued_secs,
        accepted as f64 / send_secs,
    );
    println!(
        "accept latency ms  p50 {:.1}   p99 {:.1}   max {:.1}   (scheduled send -> 201)",
        percentile(&ack_latencies, 0.50),
        percentile(&ack_latencies, 0.99),
        percentile(&ack_latencies, 1.0)
    );
    println!("delivered          {received} ({:.0}/s over {delivery_secs:.1} s)", received as f64 / delivery_secs);
    println!(
        "lost               {lost}   duplicated {duplicates}   sockets closed early {closed_early}   connect errors {connect_errors}"
    );
    println!(
        "latency ms         p50 {:.1}   p95 {:.1}   p99 {:.1}   max {:.1}   (scheduled send -> socket)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    let ticks = 100.0; // USER_HZ on Linux
    let mut servers = Vec::new();
    for (i, pid) in args.server_pids.iter().enumerate() {
        // Sockets are spread over nodes in order, and a server pid is given per node.
        let sockets_here = opened_per_node.get(i).copied().unwrap_or(0).max(1);
        let per_socket_kib = (idle[i].0.saturating_sub(before[i].0)) as f64 / sockets_here as f64;
        println!(
            "server {pid:<8}    RSS {:.1} MiB before, {:.1} MiB with sockets idle ({per_socket_kib:.1} KiB per idle socket), {:.1} MiB after sending; CPU {:.2} cores while sending",
            before[i].0 as f64 / 1024.0,
            idle[i].0 as f64 / 1024.0,
            after_send[i].0 as f64 / 1024.0,
            (after_send[i].1.saturating_sub(idle[i].1)) as f64 / ticks / send_secs,
        );
        servers.push(serde_json::json!({
            "pid": pid,
            "rss_mib_before": before[i].0 as f64 / 1024.0,
            "rss_mib_idle": idle[i].0 as f64 / 1024.0,
            "kib_per_socket": per_socket_kib,
            "cpu_cores_sending": (after_send[i].1.saturating_sub(idle[i].1)) as f64 / ticks / send_secs,
            "cpu_seconds_sending": (after_send[i].1.saturating_sub(idle[i].1)) as f64 / ticks,
        }));
    }
    let summary = serde_json::json!({
        "tool": "loadgen",
        "label": args.label,
        "sockets": readers_opened,
        "conversations": args.conversations,
        "nodes": args.nodes.len(),
        "offered_rate": args.rate,
        "issued_rate": total as f64 / issued_secs,
        "accepted": accepted,
        "accepted_rate": accepted as f64 / send_secs,
        "post_errors": errors,
        "accept_latency_ms": {
            "p50": percentile(&ack_latencies, 0.50),
            "p99": percentile(&ack_latencies, 0.99),
            "max": percentile(&ack_latencies, 1.0),
        },
        "delivered": received,
        "lost": lost,
        "duplicated": duplicates,
        "closed_early": closed_early,
        "connect_errors": connect_errors,
        "latency_ms": {
            "p50": percentile(&latencies, 0.50),
            "p95": percentile(&latencies, 0.95),
            "p99": percentile(&latencies, 0.99),
            "max": percentile(&latencies, 1.0),
        },
        "servers": servers,
    });
    println!("{summary}");
    Ok(())
}
