//! ConsultantPro: the real-time communications hub and API for consulting firms.
//! This file builds the application from [`Settings`]; everything else lives in modules.

pub mod actors;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod outbound;
pub mod telemetry;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::actors::bus::Bus;
use crate::actors::registry::FirmRegistry;
use crate::config::Settings;
use crate::db::Db;
use crate::http::AppState;
use crate::outbound::runner::{JobContext, JobRunner};

/// A bound, not yet running server. Port 0 in settings binds an ephemeral port (tests).
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Creates the pool, the bus and the shared state once, outside the per-worker
    /// factory, so every worker shares them (an actor started inside the factory would
    /// become one per thread).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_routes(settings, |_| {}).await
    }

    /// As [`Application::build`], plus routes of the caller's (tests mount probes here to
    /// exercise the real middleware stack and extractor settings).
    pub async fn build_with_routes(
        settings: Settings,
        extra_routes: fn(&mut web::ServiceConfig),
    ) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider; pick ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Arc::new(settings);
        let db = Db::new(&settings.database)?;
        let bus = match settings.redis.url() {
            Some(url) => Bus::redis(url)
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach Redis at the configured redis.url: {e}"))?,
            None => Bus::in_process(),
        };
        if settings.jobs.enabled {
            let context = JobContext::new(db.clone(), bus.clone(), settings.clone())?;
            let runner = JobRunner::new(context, JobRunner::process_worker_id());
            actix_web::rt::spawn(runner.run());
        }
        // One registry per node, made here and not in the worker factory, so every worker
        // reaches the same per-firm supervisors.
        let registry = FirmRegistry::new(
            bus.clone(),
            settings.realtime.arbiters,
            std::time::Duration::from_secs(settings.realtime.hub_idle_secs),
        );
        let state =
            web::Data::new(AppState::new(db, bus, settings.clone(), http::metrics::recorder_handle(), registry));
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", settings.server.host, settings.server.port))?;
        let port = listener.local_addr()?.port();
        let max_body_bytes = settings.server.max_body_bytes;
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| http::configure(cfg, max_body_bytes))
                .configure(extra_routes)
                .default_service(web::to(http::not_found))
                .wrap(http::error_envelopes())
                .wrap(from_fn(http::auth::audit_break_glass_requests))
                .wrap(from_fn(http::metrics::record_request))
                .wrap(TracingLogger::<http::request_id::RequestSpan>::new())
                .wrap(from_fn(http::request_id::assign_request_id))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        // actix treats SIGINT as a forced stop; `serve` handles signals itself so that
        // Ctrl-C drains in-flight requests too.
        .disable_signals()
        .listen(listener)?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        tracing::info!(port, bus = state.bus().kind(), "listening");
        Ok(Self { port, server: server.run(), state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server; `stop(true)` lets in-flight requests finish first.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
