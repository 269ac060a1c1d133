//! Firm ownership across nodes, measured: failover after an abrupt stop (median and max
//! over `--failovers` rounds, each with two fresh nodes in this process on the configured
//! heartbeat and lease), and the memory one node spends per idle owned firm (its
//! supervisor, with nothing to run) at `--firms` firms. Bounded by its own counts and by
//! the failover bound per round. Its firms are removed again at the end.
//!
//!   CP_ENV=test cargo run --release --bin clusterbench -- --failovers 10 --firms 10000

use std::time::{Duration, Instant};

use clap::Parser;
use consultantpro::Application;
use consultantpro::config::Settings;
use consultantpro::domain::DomainError;
use consultantpro::http::AppState;
use diesel::QueryableByName;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use secrecy::ExposeSecret;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Abrupt stops to time.
    #[arg(long, default_value_t = 10)]
    failovers: usize,
    /// Idle firms one node owns for the memory figure (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    firms: usize,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

struct Node {
    state: actix_web::web::Data<AppState>,
    cluster: std::sync::Arc<consultantpro::actors::cluster::ClusterHandle>,
    server: actix_web::dev::ServerHandle,
}

async fn start_node(settings: &Settings, cluster: &str) -> anyhow::Result<Node> {
    let mut settings = settings.clone();
    settings.cluster.name = cluster.to_owned();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.jobs.enabled = false;
    let app = Application::build(settings).await?;
    let node = Node { state: app.state(), cluster: app.cluster(), server: app.handle() };
    actix_web::rt::spawn(app.run_until_stopped());
    Ok(node)
}

/// Creates `count` firms named for this run and marks them as needing an owner.
async fn bench_firms(node: &Node, run: &str, cluster: &str, count: usize) -> anyhow::Result<Vec<Uuid>> {
    let (prefix, cluster, count) = (format!("bench-{run}-"), cluster.to_owned(), count as i32);
    let ids = node
        .state
        .db()
        .platform_tx(|conn| {
            async move {
                let ids = diesel::sql_query(
                    "INSERT INTO firms (id, slug, name)
                     SELECT gen_random_uuid(), $1 || g, 'Cluster bench' FROM generate_series(1, $2) AS g
                     RETURNING id",
                )
                .bind::<Text, _>(&prefix)
                .bind::<diesel::sql_types::Integer, _>(count)
                .load::<Id>(conn)
                .await?;
                diesel::sql_query(
                    "INSERT INTO firm_ownership (cluster, owned_firm_id)
                     SELECT $1, id FROM firms WHERE slug LIKE $2 || '%'",
                )
                .bind::<Text, _>(&cluster)
                .bind::<Text, _>(&prefix)
                .execute(conn)
                .await?;
                diesel::sql_query("SELECT pg_notify('cp_cluster', $1)").bind::<Text, _>(&cluster).execute(conn).await?;
                Ok::<_, DomainError>(ids)
            }
            .scope_boxed()
        })
        .await?;
    Ok(ids.into_iter().map(|r| r.id).collect())
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn halt(node: &Node) {
    node.cluster.halt().await;
    node.server.stop(false).await;
    node.state.db().close();
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::load()?;
    consultantpro::db::migrate::run_migrations(&settings.database).await?;
    let run = Uuid::now_v7().simple().to_string();
    let heartbeat = Duration::from_millis(settings.cluster.heartbeat_ms);
    let lease = Duration::from_millis(settings.cluster.lease_ms);
    let bound = lease + heartbeat;
    println!("heartbeat {heartbeat:?}, lease {lease:?}: failover bound {bound:?}");

    let mut failovers = Vec::new();
    for round in 0..args.failovers {
        let cluster = format!("bench-{run}-{round}");
        let (a, b) = (start_node(&settings, &cluster).await?, start_node(&settings, &cluster).await?);
        let met = wait_for(bound * 2, || a.cluster.live_nodes() == 2 && b.cluster.live_nodes() == 2).await;
        anyhow::ensure!(met.is_some(), "round {round}: the nodes never saw each other");
        let firm = consultantpro::tenant::FirmId(bench_firms(&a, &format!("{run}-{round}"), &cluster, 1).await?[0]);
        let owned = wait_for(bound * 2, || a.state.registry().owns(firm) || b.state.registry().owns(firm)).await;
        anyhow::ensure!(owned.is_some(), "round {round}: the firm found no owner");
        let (dying, survivor) = if a.state.registry().owns(firm) { (&a, &b) } else { (&b, &a) };
        let stopped = Instant::now();
        halt(dying).await;
        let moved = wait_for(bound * 3, || survivor.state.registry().owns(firm)).await;
        let took = moved.map(|_| stopped.elapsed());
        anyhow::ensure!(took.is_some(), "round {round}: no take-over within {:?}", bound * 3);
        let took = took.unwrap_or_default();
        println!("failover {}: {:.2} s", round + 1, took.as_secs_f64());
        failovers.push(took);
        halt(survivor).await;
    }
    if !failovers.is_empty() {
        failovers.sort();
        let median = failovers[failovers.len() / 2];
        let max = failovers[failovers.len() - 1];
        println!(
            "failover after an abrupt stop, {} rounds: median {:.2} s, max {:.2} s (bound {:.1} s)",
            failovers.len(),
            median.as_secs_f64(),
            max.as_secs_f64(),
            bound.as_secs_f64()
        );
    }

    if args.firms > 0 {
        let cluster = format!("bench-{run}-memory");
        let node = start_node(&settings, &cluster).await?;
        wait_for(bound, || node.cluster.live_nodes() == 1).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss_bytes();
        let created = Instant::now();
        bench_firms(&node, &format!("{run}-m"), &cluster, args.firms).await?;
        let owned = wait_for(Duration::from_secs(300), || node.state.registry().firms() >= args.firms).await;
        anyhow::ensure!(owned.is_some(), "not all {} firms were taken", args.firms);
        let took = created.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_bytes();
        let per_firm = after.saturating_sub(before) as f64 / args.firms as f64;
        println!(
            "{} idle firms owned and supervised in {:.1} s: RSS {:.1} MB -> {:.1} MB, {:.2} KB per firm",
            args.firms,
            took.as_secs_f64(),
            before as f64 / 1e6,
            after as f64 / 1e6,
            per_firm / 1024.0
        );
        halt(&node).await;
    }

    // The benchmark's firms go again (as the owner role: the application role deletes no firm).
    let mut owner = AsyncPgConnection::establish(settings.database.owner_url().expose_secret()).await?;
    let removed = diesel::sql_query("DELETE FROM firms WHERE slug LIKE $1 || '%'")
        .bind::<Text, _>(format!("bench-{run}-"))
        .execute(&mut owner)
        .await?;
    diesel::sql_query("DELETE FROM cluster_nodes WHERE cluster LIKE $1 || '%'")
        .bind::<Text, _>(format!("bench-{run}-"))
        .execute(&mut owner)
        .await?;
    println!("removed the benchmark's {removed} firms");
    Ok(())
}
