//! Throughput of the job queue, end to end: enqueue N webhook deliveries for one firm,
//! run R job runners against them, and count signed POSTs answered by a local receiver.
//! Bounded: stops after all jobs finish or after `--max-secs`.
//!
//!   CP_ENV=test cargo run --release --bin jobbench -- --jobs 5000 --runners 2

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use consultantpro::bus::Bus;
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::db::schema::jobs;
use consultantpro::domain::webhooks::{self, EndpointInput};
use consultantpro::domain::{DomainError, onboarding};
use consultantpro::outbound::runner::{JobContext, JobRunner};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

#[derive(Parser)]
struct Args {
    /// Deliveries to enqueue.
    #[arg(long, default_value_t = 5000)]
    jobs: usize,
    /// Job runners (as if on that many nodes).
    #[arg(long, default_value_t = 2)]
    runners: usize,
    /// Concurrent jobs per runner.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut settings = Settings::load()?;
    settings.webhooks.allow_private_hosts = vec!["127.0.0.1".into()];
    settings.jobs.concurrency = args.concurrency;
    settings.jobs.batch_size = 50;
    settings.database.max_connections = (args.runners * args.concurrency + 8).min(64);
    consultantpro::db::migrate::run_migrations(&settings.database).await?;
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;

    let received = Arc::new(AtomicUsize::new(0));
    let counter = web::Data::new(Arc::clone(&received));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    let server = HttpServer::new(move || {
        App::new().app_data(counter.clone()).default_service(web::to(
            |counter: web::Data<Arc<AtomicUsize>>| async move {
                counter.fetch_add(1, Ordering::Relaxed);
                HttpResponse::Ok().finish()
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    actix_web::rt::spawn(server);

    let slug = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let firm = onboarding::create_firm(&db, &slug, "Benchmark").await?.firm_id();
    let input = EndpointInput { url: Some(url), description: None, event_types: Some(vec!["*".into()]), active: None };
    let secrets = consultantpro::secret_box::SecretBox::from_settings(&settings.secrets)?;
    let endpoint = db
        .firm_tx(firm, |conn| async move { webhooks::create(conn, firm, &input, &secrets).await }.scope_boxed())
        .await?
        .0
        .id;

    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let chunk = left.min(500);
        db.firm_tx(firm, |conn| {
            async move {
                for _ in 0..chunk {
                    webhooks::enqueue_delivery(
                        conn,
                        firm,
                        endpoint,
                        webhooks::EventType::Ping,
                        serde_json::json!({}),
                        3,
                    )
                    .await?;
                }
                Ok::<_, DomainError>(())
            }
            .scope_boxed()
        })
        .await?;
        left -= chunk;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    let settings = Arc::new(settings);
    let started = Instant::now();
    for i in 0..args.runners {
        let ctx = JobContext::new(db.clone(), Bus::in_process(), Arc::clone(&settings))?;
        actix_web::rt::spawn(JobRunner::new(ctx, format!("bench-{i}")).only_firm(firm).run());
    }
    let deadline = started + Duration::from_secs(args.max_secs);
    let finished = loop {
        let done: i64 = db
            .firm_tx(firm, |conn| {
                async move {
                    jobs::table
                        .filter(jobs::firm_id.eq(firm.into_uuid()))
                        .filter(jobs::state.eq("succeeded"))
                        .count()
                        .get_result(conn)
                        .await
                        .map_err(DomainError::from)
                }
                .scope_boxed()
            })
            .await?;
        if usize::try_from(done).unwrap_or(0) >= args.jobs || Instant::now() > deadline {
            break usize::try_from(done).unwrap_or(0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let run_secs = started.elapsed().as_secs_f64();
    println!(
        "jobs enqueued:       {} in {:.2} s ({:.0} jobs/s, 500 per transaction)",
        args.jobs,
        enqueue_secs,
        args.jobs as f64 / enqueue_secs
    );
    println!("runners x concurrency: {} x {}", args.runners, args.concurrency);
    println!(
        "jobs succeeded:      {finished} in {run_secs:.2} s ({:.0} jobs/s end to end)",
        finished as f64 / run_secs
    );
    println!("POSTs received:      {}", AtomicUsize::load(&received, Ordering::Relaxed));
    Ok(())
}
