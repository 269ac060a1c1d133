//! ConsultantPro: the real-time communications hub and API for consulting firms.
//! This file builds the application from [`Settings`]; everything else lives in modules.

pub mod actors;
pub mod benchkit;
pub mod bus;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ingest;
pub mod net;
pub mod outbound;
pub mod secret_box;
pub mod standins;
pub mod telemetry;
pub mod tenant;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::actors::cluster::{self, ClusterHandle};
use crate::actors::{ChildKind, FirmRegistry};
use crate::bus::Bus;
use crate::config::Settings;
use crate::db::Db;
use crate::http::AppState;
use crate::outbound::runner::{JobContext, JobRunner};

/// A bound, not yet running server. Port 0 in settings binds an ephemeral port (tests).
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    cluster: Arc<ClusterHandle>,
}

/// What an application is built from: settings, and optionally extra child kinds for the
/// firm supervisors and extra routes (tests use both).
pub struct ApplicationBuilder {
    settings: Settings,
    kinds: Vec<Arc<dyn ChildKind>>,
    extra_routes: fn(&mut web::ServiceConfig),
}

impl ApplicationBuilder {
    /// Registers a child kind with every firm supervisor on this node.
    pub fn child_kind(mut self, kind: impl ChildKind) -> Self {
        self.kinds.push(Arc::new(kind));
        self
    }

    /// Routes of the caller's, mounted behind the real middleware stack.
    pub fn routes(mut self, extra_routes: fn(&mut web::ServiceConfig)) -> Self {
        self.extra_routes = extra_routes;
        self
    }

    /// Creates the pool, the bus, the registry and the shared state once, outside the
    /// per-worker factory, so every worker shares them (an actor started inside the
    /// factory would become one per thread); joins the cluster; binds the listener.
    pub async fn build(self) -> anyhow::Result<Application> {
        let ApplicationBuilder { settings, kinds, extra_routes } = self;
        // reqwest is built without a default TLS provider; pick ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A server that could not open the credentials it stores should not start.
        secret_box::SecretBox::from_settings(&settings.secrets)?;
        let settings = Arc::new(settings);
        let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
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
        let registry = FirmRegistry::new(db, bus, settings.clone(), kinds);
        let live = registry.context();
        let cluster = Arc::new(cluster::start(live.clone()));
        let state = web::Data::new(AppState::new(live, http::metrics::recorder_handle()));
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", settings.server.host, settings.server.port))?;
        let port = listener.local_addr()?.port();
        let max_body_bytes = settings.server.max_body_bytes;
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        // Each worker's handlers use a pool of their own, its share of the configured size;
        // the supervisors, sockets' hubs and the job runner keep the pool made above.
        let worker_pool_size = settings.database.max_connections.div_ceil(workers).max(1);
        let (app_state, worker_settings) = (state.clone(), settings.clone());
        let web_app = http::web_app::WebApp::at(std::path::Path::new(&settings.server.web_dir));
        if !web_app.is_built() {
            tracing::info!(web_dir = %settings.server.web_dir, "no built browser app there; serving the API only");
        }
        let server = HttpServer::new(move || {
            let worker_state =
                match Db::sized(&worker_settings.database, worker_settings.jobs.max_attempts, worker_pool_size) {
                    Ok(worker_db) => app_state.for_worker(worker_db),
                    Err(err) => {
                        tracing::warn!(error = %err, "worker pool not built; this worker shares the node's pool");
                        http::AppState::clone(&app_state)
                    }
                };
            App::new()
                .app_data(web::Data::new(worker_state))
                .configure(|cfg| http::configure(cfg, max_body_bytes))
                .configure(|cfg| web_app.configure(cfg))
                .configure(extra_routes)
                .default_service(web::to(http::web_app::fallback))
                .wrap(http::error_envelopes())
                .wrap(from_fn(http::body::refuse_nul_in_query))
                .wrap(from_fn(http::auth::read_only_guard))
                .wrap(from_fn(http::auth::audit_break_glass_requests))
                .wrap(from_fn(http::request_id::observe_request))
                .wrap(from_fn(http::request_id::assign_request_id))
        })
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        // actix treats SIGINT as a forced stop; `serve` handles signals itself so that
        // Ctrl-C drains in-flight requests too.
        .disable_signals()
        .workers(workers)
        .listen(listener)?;
        tracing::info!(port, bus = state.bus().kind(), "listening");
        Ok(Application { port, server: server.run(), state, cluster })
    }
}

impl Application {
    /// The default child kinds and routes.
    pub fn builder(settings: Settings) -> ApplicationBuilder {
        ApplicationBuilder { settings, kinds: actors::default_kinds(), extra_routes: |_| {} }
    }

    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::builder(settings).build().await
    }

    /// As [`Application::build`], plus routes of the caller's (tests mount probes here to
    /// exercise the real middleware stack and extractor settings).
    pub async fn build_with_routes(
        settings: Settings,
        extra_routes: fn(&mut web::ServiceConfig),
    ) -> anyhow::Result<Self> {
        Self::builder(settings).routes(extra_routes).build().await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server; `stop(true)` lets in-flight requests finish first.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The node's place in the cluster: hand off on shutdown, or halt as a crash would.
    pub fn cluster(&self) -> Arc<ClusterHandle> {
        self.cluster.clone()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
