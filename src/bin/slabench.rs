//! SLA timers at scale, in one process: a firm with `--timers` pending due moments (one
//! million by default) is owned by a node started here. Measured:
//!
//! - memory: the process's resident size before the firm's timers load and after;
//! - load time: from the node taking the firm to its timers waiting, first on a cold node
//!   and again on a new node after the first one stops (the restart case);
//! - fire skew: `--fires` more tickets whose first-response targets come due over ten
//!   seconds, announced as real ticket changes are; the moment each `sla.breached` event
//!   reaches the bus, against its due moment (p50, p99, max), and any timer fired twice.
//!
//! References in the same run: the same moments held in a bare `BinaryHeap` (the least
//! memory a timer set can take), the same rows read in one plain query (the database's
//! floor for the load), and the same due moments slept on by bare tokio timers (the
//! runtime's floor for skew).
//!
//! The firm's data is written and removed with the schema owner's connection (bulk SQL);
//! everything measured runs as the application does.
//!
//!   slabench --timers 1000000 --fires 5000

use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Parser;
use consultantpro::actors::sla_timers::{PendingCount, SlaTimers};
use consultantpro::benchkit::percentile;
use consultantpro::bus::{Received, firm_channel};
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::sla_policies::{self, PolicyInput, Target, Targets};
use consultantpro::domain::sla_timers::{TIMERS_KEY, TIMERS_KIND};
use consultantpro::domain::{FirmId, cluster, onboarding};
use consultantpro::http::AppState;
use consultantpro::{Application, bus};
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use scoped_futures::ScopedFutureExt;
use secrecy::ExposeSecret;
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Pending timers loaded (two clocks per ticket, each waiting for its due moment).
    #[arg(long, default_value_t = 1_000_000)]
    timers: u64,
    /// Timers that come due during the run, spread over ten seconds.
    #[arg(long, default_value_t = 5_000)]
    fires: u64,
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn summary(name: &str, mut skews_ms: Vec<f64>) -> String {
    skews_ms.sort_by(f64::total_cmp);
    format!(
        "{name}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        skews_ms.len(),
        percentile(&skews_ms, 0.5),
        percentile(&skews_ms, 0.99),
        skews_ms.last().copied().unwrap_or(f64::NAN)
    )
}

async fn owner(settings: &Settings) -> anyhow::Result<AsyncPgConnection> {
    Ok(AsyncPgConnection::establish(settings.database.owner_url().expose_secret()).await?)
}

/// `count` tickets of the firm, each with a first-response and a resolution clock due
/// between one and thirty days from now (warnings already given), in batches.
async fn seed(conn: &mut AsyncPgConnection, firm: FirmId, policy: Uuid, count: u64) -> anyhow::Result<()> {
    let batch = 50_000;
    let mut done = 0;
    while done < count {
        let n = batch.min(count - done);
        let sql = format!(
            "WITH t AS (
                INSERT INTO tickets (firm_id, id, subject, status)
                SELECT '{firm}', gen_random_uuid(), 'bench ' || g, 'open' FROM generate_series(1, {n}) g
                RETURNING id)
             INSERT INTO sla_clocks (firm_id, ticket_id, metric, policy_id, target_seconds, running_since, state,
                                     due_at, warn_at, warned_at, started_at)
             SELECT '{firm}', t.id, m.metric, '{policy}', 3600, now(), 'running',
                    now() + interval '1 day' + random() * interval '29 days', now(), now(), now()
               FROM t CROSS JOIN (VALUES ('first_response'), ('resolution')) AS m(metric)"
        );
        conn.batch_execute(&sql).await?;
        done += n;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Moment {
    #[diesel(sql_type = SqlUuid)]
    ticket_id: Uuid,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    due_at: Option<DateTime<Utc>>,
}

async fn start_node(settings: &Settings) -> anyhow::Result<Application> {
    Application::builder(settings.clone()).build().await
}

/// Waits until the node's timers for `firm` have loaded at least `least` moments; how long
/// after `since`.
async fn loaded(
    state: &actix_web::web::Data<AppState>,
    firm: FirmId,
    least: usize,
    since: Instant,
) -> anyhow::Result<Duration> {
    while since.elapsed() < Duration::from_secs(180) {
        if let Some(timers) = state.registry().running_child::<SlaTimers>(firm, TIMERS_KIND, TIMERS_KEY).await
            && let Ok(Some(n)) = timers.send(PendingCount).await
            && n >= least
        {
            return Ok(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("the timers did not load")
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = Settings::load()?;
    let run = Uuid::now_v7().simple().to_string();
    settings.cluster.name = format!("slabench-{run}");
    settings.server.port = 0;
    settings.jobs.enabled = false;
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let firm = onboarding::create_firm(&db, &format!("slabench-{run}"), "SLA bench").await?.firm_id();
    let hour = Target { first_response_minutes: Some(60), next_response_minutes: None, resolution_minutes: Some(600) };
    let policy = db
        .firm_tx(firm, |conn| {
            async move {
                let input = PolicyInput {
                    name: Some("Bench".into()),
                    targets: Some(Targets { normal: Some(hour), ..Targets::default() }),
                    ..PolicyInput::default()
                };
                sla_policies::create(conn, firm, input).await
            }
            .scope_boxed()
        })
        .await?;
    let mut owner_conn = owner(&settings).await?;
    let tickets = args.timers.div_ceil(2);
    let seeding = Instant::now();
    seed(&mut owner_conn, firm, policy.id, tickets).await.context("seeding")?;
    let pending = usize::try_from(tickets * 2)?;
    println!("seeded {pending} pending timers in {:.1} s", seeding.elapsed().as_secs_f64());

    let result = measure(&args, &settings, &db, firm, pending).await;

    let cleanup = format!(
        "DELETE FROM ticket_events WHERE firm_id = '{firm}'; DELETE FROM sla_clocks WHERE firm_id = '{firm}';
         DELETE FROM tickets WHERE firm_id = '{firm}'; DELETE FROM jobs WHERE firm_id = '{firm}';
         DELETE FROM sla_policies WHERE firm_id = '{firm}'; DELETE FROM firm_ownership WHERE owned_firm_id = '{firm}';"
    );
    owner_conn.batch_execute(&cleanup).await.context("removing the bench firm's data")?;
    result
}

async fn measure(args: &Args, settings: &Settings, db: &Db, firm: FirmId, pending: usize) -> anyhow::Result<()> {
    // Cold node: baseline memory, then the firm's timers.
    let first = start_node(settings).await?;
    let (first_cluster, first_handle) = (first.cluster(), first.handle());
    let first_state = first.state();
    actix_web::rt::spawn(first.run_until_stopped());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_mib();
    let name = settings.cluster.name.clone();
    db.platform_tx(|conn| async move { cluster::require_owner(conn, &name, firm).await }.scope_boxed()).await?;
    let cold = loaded(&first_state, firm, pending, Instant::now()).await.context("cold node")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_mib();
    println!(
        "memory: {:.0} MiB before, {:.0} MiB after loading {pending} timers: {:.0} bytes a timer",
        rss_before,
        rss_after,
        (rss_after - rss_before) * 1024.0 * 1024.0 / pending as f64
    );
    println!("load on a cold node (claim + read + schedule): {:.2} s", cold.as_secs_f64());

    // Fire skew on this node: tickets coming due over ten seconds, announced on commit.
    let skews = fire_skew(args, settings, firm).await?;

    // Restart: the first node leaves, a new one takes the firm and loads again.
    first_cluster.shutdown().await;
    first_handle.stop(true).await;
    drop(first_state);
    let second = start_node(settings).await?;
    let restarted = Instant::now();
    let second_handle = second.handle();
    let second_cluster = second.cluster();
    let second_state = second.state();
    actix_web::rt::spawn(second.run_until_stopped());
    let restart = loaded(&second_state, firm, pending, restarted).await.context("restarted node")?;
    println!("load after a restart (node start + claim + read + schedule): {:.2} s", restart.as_secs_f64());
    second_cluster.shutdown().await;
    second_handle.stop(true).await;

    // References: the least memory, the plain read, the bare timers.
    let mut conn = AsyncPgConnection::establish(settings.database.owner_url().expose_secret()).await?;
    let read = Instant::now();
    let rows: Vec<Moment> = diesel::sql_query(
        "SELECT ticket_id, due_at FROM sla_clocks WHERE firm_id = $1 AND running_since IS NOT NULL AND breached_at IS NULL",
    )
    .bind::<SqlUuid, _>(firm.into_uuid())
    .load(&mut conn)
    .await?;
    let plain_read = read.elapsed();
    let heap_before = rss_mib();
    let heap: BinaryHeap<(i64, Uuid)> =
        rows.iter().map(|r| (r.due_at.map_or(0, |d| d.timestamp_micros()), r.ticket_id)).collect();
    let heap_after = rss_mib();
    println!(
        "reference: one plain query of the {} rows {:.2} s; a bare BinaryHeap of them {:.0} bytes a timer \
         (resident growth {:.0} MiB)",
        rows.len(),
        plain_read.as_secs_f64(),
        (std::mem::size_of::<(i64, Uuid)>() * heap.capacity()) as f64 / heap.len().max(1) as f64,
        heap_after - heap_before
    );
    drop(heap);
    println!("{}", summary("fire skew, due -> sla.breached on the bus", skews.0));
    println!("{}", summary("reference: bare tokio timers on the same moments", skews.1));
    println!("fired twice: {}", skews.2);
    Ok(())
}

/// Skews (ms) of the product's breaches, of bare tokio timers for the same moments, and
/// how many clocks fired more than once.
async fn fire_skew(args: &Args, settings: &Settings, firm: FirmId) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
    let bus = bus::Bus::redis(settings.redis.url.expose_secret()).await?;
    let mut events = bus.subscribe(&firm_channel(firm.into_uuid(), consultantpro::bus::live::EVENTS_TOPIC)).await?;
    let start = Utc::now() + chrono::Duration::seconds(3);
    let fires = args.fires;
    let spacing_us = 10_000_000 / fires.max(1);
    // New tickets through the owner's connection in batches, each announced on commit as
    // a changed ticket is.
    let mut conn = AsyncPgConnection::establish(settings.database.owner_url().expose_secret()).await?;
    let mut created = 0;
    while created < fires {
        let n = 500.min(fires - created);
        let sql = format!(
            "WITH t AS (
                INSERT INTO tickets (firm_id, id, subject, status)
                SELECT '{firm}', gen_random_uuid(), 'due ' || g, 'open' FROM generate_series({from}, {to}) g
                RETURNING id, subject),
             c AS (
                INSERT INTO sla_clocks (firm_id, ticket_id, metric, target_seconds, running_since, state, due_at,
                                        warn_at, warned_at, started_at)
                SELECT '{firm}', t.id, 'first_response', 3600, now(), 'running',
                       '{start}'::timestamptz + (split_part(t.subject, ' ', 2)::bigint * {spacing_us}) * interval '1 microsecond',
                       now(), now(), now()
                  FROM t RETURNING ticket_id)
             SELECT pg_notify('{channel}', '{kind} {firm} ' || ticket_id) FROM c",
            from = created,
            to = created + n - 1,
            start = start.to_rfc3339(),
            channel = cluster::NOTICE_CHANNEL,
            kind = TIMERS_KIND,
        );
        conn.batch_execute(&sql).await?;
        created += n;
    }
    // Bare tokio timers on the same moments, in this process, at the same time.
    let mut bare = Vec::new();
    for i in 0..fires {
        let due = start + chrono::Duration::microseconds(i64::try_from(i * spacing_us)?);
        bare.push(tokio::spawn(async move {
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            (Utc::now() - due).num_microseconds().unwrap_or(0) as f64 / 1000.0
        }));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut skews = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while (skews.len() as u64) < fires && Instant::now() < deadline {
        let Ok(received) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await else { continue };
        let Received::Message(payload) = received else { continue };
        let arrived = Utc::now();
        let Some(frame) = consultantpro::bus::live::EventFrame::decode(&payload) else { continue };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&frame.frame) else { continue };
        if event["topic"] != "sla.breached" {
            continue;
        }
        let key = format!("{}/{}", event["payload"]["ticket_id"], event["payload"]["metric"]);
        let count = seen.entry(key).or_default();
        *count += 1;
        if *count > 1 {
            continue;
        }
        if let Some(due) = event["payload"]["due_at"].as_str().and_then(|d| d.parse::<DateTime<Utc>>().ok()) {
            skews.push((arrived - due).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    let mut bare_skews = Vec::new();
    for task in bare {
        bare_skews.push(task.await?);
    }
    // A moment more for any second fire to show.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        let Ok(Received::Message(payload)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
        else {
            continue;
        };
        if let Some(frame) = consultantpro::bus::live::EventFrame::decode(&payload)
            && let Ok(event) = serde_json::from_str::<serde_json::Value>(&frame.frame)
            && event["topic"] == "sla.breached"
        {
            let key = format!("{}/{}", event["payload"]["ticket_id"], event["payload"]["metric"]);
            *seen.entry(key).or_default() += 1;
        }
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    if (skews.len() as u64) < fires {
        println!("only {} of {fires} breaches arrived", skews.len());
    }
    Ok((skews, bare_skews, twice))
}
