// Shared by every test binary; each uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::LazyLock;

use actix_web::web;
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::firms::Firm;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::users::NewUser;
use consultantpro::telemetry;
use consultantpro::{Application, ApplicationBuilder};
use tokio::sync::OnceCell;

/// Process-wide test set-up: logging, and the TLS provider reqwest needs before any client
/// is built (the application installs it too, but a test may build a client first).
static TRACING: LazyLock<()> = LazyLock::new(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut settings = test_settings().telemetry;
    if std::env::var("TEST_LOG").is_ok() {
        settings.filter = "debug".into();
        telemetry::init_subscriber(telemetry::get_subscriber(&settings, std::io::stdout));
    } else {
        telemetry::init_subscriber(telemetry::get_subscriber(&settings, std::io::sink));
    }
});

static MIGRATED: OnceCell<()> = OnceCell::const_new();

pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// The `test` profile (its own database, Redis on) with an ephemeral port and one worker.
pub fn test_settings() -> Settings {
    let mut settings = Settings::load_from(&config_dir(), "test").expect("test settings load");
    settings.server.port = 0;
    settings.server.workers = 1;
    settings
}

pub async fn migrate(settings: &Settings) {
    MIGRATED
        .get_or_init(|| async {
            consultantpro::db::migrate::run_migrations(&settings.database).await.expect("migrations run");
        })
        .await;
}

pub struct TestApp {
    pub address: String,
    /// Sends a client address of its own (X-Forwarded-For, trusted in the test profile),
    /// so one test's failed log-ins never throttle another test's.
    pub client: reqwest::Client,
    pub ip: String,
    pub settings: Settings,
    /// The server's shared state (its registry of live firm supervisors, its bus).
    pub state: actix_web::web::Data<consultantpro::http::AppState>,
    /// The server's place in the cluster (graceful hand-off, or a halt as a crash).
    pub cluster: std::sync::Arc<consultantpro::actors::cluster::ClusterHandle>,
    pub server: actix_web::dev::ServerHandle,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_routes(customize, |_| {}).await
}

pub async fn spawn_app_with_routes(
    customize: impl FnOnce(&mut Settings),
    routes: fn(&mut web::ServiceConfig),
) -> TestApp {
    spawn_app_from(customize, |builder| builder.routes(routes)).await
}

/// A server from the test settings (a cluster of its own unless `customize` names one),
/// with whatever `build` adds to its builder (child kinds, routes).
pub async fn spawn_app_from(
    customize: impl FnOnce(&mut Settings),
    build: impl FnOnce(ApplicationBuilder) -> ApplicationBuilder,
) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = test_settings();
    migrate(&settings).await;
    // Tests share one database; each server is a cluster of one unless told otherwise.
    settings.cluster.name = format!("test-{}", uuid::Uuid::now_v7().simple());
    customize(&mut settings);
    let app = build(Application::builder(settings.clone())).build().await.expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let cluster = app.cluster();
    let server = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let ip = unique_ip();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    TestApp { address, client, ip, settings, state, cluster, server }
}

/// A documentation-range IPv6 address in a /64 no other test uses (clients are throttled
/// per /64).
pub fn unique_ip() -> String {
    let id = uuid::Uuid::now_v7().as_u128();
    format!("2001:db8:{:x}:{:x}::1", (id >> 16) & 0xffff, id & 0xffff)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    pub async fn post_as(&self, token: &str, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    pub async fn patch_as(&self, token: &str, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.patch(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    pub async fn delete_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn login(&self, firm: &str, email: &str, password: &str) -> reqwest::Response {
        self.post("/api/v1/auth/login", &serde_json::json!({ "firm": firm, "email": email, "password": password }))
            .await
    }

    /// Logs in and returns `data` (access_token, refresh_token, ...), failing the test otherwise.
    pub async fn login_ok(&self, firm: &str, email: &str, password: &str) -> serde_json::Value {
        let response = self.login(firm, email, password).await;
        assert_eq!(response.status(), 200, "login of {email} failed");
        json(response).await["data"].clone()
    }

    pub fn db(&self) -> Db {
        Db::new(&self.settings.database, self.settings.jobs.max_attempts).expect("pool builds")
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Adds a new login to `firm` in `role`, with [`PASSWORD`]; returns the email and user id.
pub async fn add_member(db: &Db, firm: &Firm, role: Role) -> (String, uuid::Uuid) {
    let email = format!("{}-{}@example.com", role, uuid::Uuid::now_v7().simple());
    let user = NewUser::parse(&email, "Member", PASSWORD).expect("valid user");
    let membership = onboarding::add_member(db, firm.firm_id(), Joiner::New(user), role).await.expect("member added");
    (email, membership.user_id)
}

/// A firm with one owner who is signed in: (firm, owner email, owner user id, access token).
pub async fn signed_in_owner(app: &TestApp) -> (Firm, String, uuid::Uuid, String) {
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, user_id) = add_member(&db, &firm, Role::Owner).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    (firm, email, user_id, tokens["access_token"].as_str().unwrap().to_owned())
}

/// A pool as the application role, migrated, without a server.
pub async fn test_db() -> Db {
    LazyLock::force(&TRACING);
    let settings = test_settings();
    migrate(&settings).await;
    Db::new(&settings.database, settings.jobs.max_attempts).expect("pool builds")
}

/// A firm of its own for one test, so tests share the database and still never collide.
pub async fn new_firm(db: &Db) -> Firm {
    let slug = format!("t-{}", uuid::Uuid::now_v7().simple());
    onboarding::create_firm(db, &slug, "Test Firm").await.expect("firm created")
}

/// A firm with one owner; returns the firm and the owner's email.
pub async fn new_firm_with_owner(db: &Db) -> (Firm, String) {
    let firm = new_firm(db).await;
    let email = format!("owner-{}@example.com", uuid::Uuid::now_v7().simple());
    let user = NewUser::parse(&email, "Owner", "a long enough password").expect("valid user");
    onboarding::add_member(db, firm.firm_id(), Joiner::New(user), Role::Owner).await.expect("member added");
    (firm, email)
}

/// Parses a response body that must be JSON.
pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// The value `/metrics` reports for the series written exactly `series` (name and labels),
/// or `None` while it has not been recorded.
pub async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.expect("metrics read");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap_or_else(|e| panic!("{series}: {value}: {e}")))
}

/// The `consultantpro` binary in the test profile, run from the project root.
pub fn cli_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_consultantpro"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CP_ENV", "test")
        .env_remove("CP_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    command
}

/// Where the project's SMTP sink writes each message it receives (a maildir).
/// `CP_MAIL_DIR`, else `mail/` in `CP_DATA_DIR` (where `scripts/services.sh` puts it), else
/// `.data/mail`.
pub fn mail_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CP_MAIL_DIR") {
        return PathBuf::from(dir);
    }
    data_dir().join("mail")
}

/// Where `scripts/services.sh` keeps its data: `CP_DATA_DIR`, else `.data`.
pub fn data_dir() -> PathBuf {
    std::env::var("CP_DATA_DIR").map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".data"), PathBuf::from)
}

/// Every message the SMTP sink holds for `to`, oldest first.
pub fn messages_to(to: &str) -> Vec<String> {
    let wanted = format!("To: {to}").to_lowercase();
    let mut found: Vec<(std::time::SystemTime, String, String)> = Vec::new();
    for folder in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(mail_dir().join(folder)) else { continue };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            if text.to_lowercase().lines().any(|l| l.trim() == wanted) {
                let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                found.push((modified, entry.file_name().to_string_lossy().into_owned(), text));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, _, text)| text).collect()
}

/// Runs the firm's queued jobs (test servers run no job runner of their own), until none
/// is left to claim.
pub async fn run_jobs(app: &TestApp, firm: consultantpro::domain::FirmId) {
    use consultantpro::outbound::runner::{JobContext, JobRunner};
    let context =
        JobContext::new(app.db(), app.state.bus().clone(), std::sync::Arc::new(app.settings.clone())).unwrap();
    let runner = JobRunner::new(context, format!("test-{firm}")).only_firm(firm);
    for _ in 0..20 {
        if runner.run_once().await.unwrap() == 0 {
            return;
        }
    }
}

/// The newest message the SMTP sink received for `to` (waiting up to 10 s), as text.
pub async fn mail_to(to: &str) -> String {
    for _ in 0..200 {
        if let Some(text) = messages_to(to).pop() {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no mail for {to} in {}", mail_dir().display());
}

/// How many messages the sink holds for `to`.
pub fn mails_to(to: &str) -> usize {
    messages_to(to).len()
}

/// A quoted-printable body decoded (soft line breaks joined, `=XX` turned back into bytes),
/// as a mail reader would show it.
pub fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(byte) =
                std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the `page#token=` link in an email.
pub fn token_in(mail: &str, page: &str) -> String {
    let joined = quoted_printable(mail);
    let marker = format!("{page}#token=");
    let start = joined.find(&marker).unwrap_or_else(|| panic!("no {page} link in: {mail}")) + marker.len();
    joined[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect()
}

/// Invites `email` as `role` (with `contact_id` for a portal login) as `inviter`, delivers
/// the email, and accepts it with [`PASSWORD`]; returns the joined login's access token.
pub async fn invite_and_join(
    app: &TestApp,
    inviter: &str,
    firm: &Firm,
    email: &str,
    role: &str,
    contact_id: Option<&str>,
) -> String {
    let mut body = serde_json::json!({ "email": email, "role": role });
    if let Some(contact) = contact_id {
        body["contact_id"] = serde_json::json!(contact);
    }
    let invited = app.post_as(inviter, "/api/v1/members", &body).await;
    let status = invited.status();
    assert_eq!(status, 201, "{}", json(invited).await);
    run_jobs(app, firm.firm_id()).await;
    let token = token_in(&mail_to(email).await, "accept-invitation");
    let accepted =
        app.post("/api/v1/invitations/accept", &serde_json::json!({ "token": token, "password": PASSWORD })).await;
    let status = accepted.status();
    assert_eq!(status, 200, "{}", json(accepted).await);
    app.login_ok(&firm.slug, email, PASSWORD).await["access_token"].as_str().unwrap().to_owned()
}

/// Suspends (`"suspended"`) or reactivates (`"active"`) a firm, as a platform operator's
/// tooling would.
pub async fn set_firm_status(db: &Db, firm: consultantpro::domain::FirmId, status: &'static str) {
    use scoped_futures::ScopedFutureExt;
    db.platform_tx(|conn| {
        async move {
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query("UPDATE firms SET status = $1 WHERE id = $2")
                    .bind::<diesel::sql_types::Text, _>(status)
                    .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid()),
                conn,
            )
            .await
            .map_err(consultantpro::domain::DomainError::from)
        }
        .scope_boxed()
    })
    .await
    .unwrap();
}

/// Moves a ticket's SLA clocks `by` into the past, as if it had been opened that much
/// earlier (time passing, for the timers), and tells the firm's timers as a change of the
/// ticket would.
pub async fn age_sla_clocks(db: &Db, firm: consultantpro::domain::FirmId, ticket: &str, by: chrono::Duration) {
    age_sla_clocks_telling(db, firm, ticket, by, true).await;
}

/// As [`age_sla_clocks`]; without telling the timers when `tell_timers` is false, so they
/// keep waiting for the old moments.
pub async fn age_sla_clocks_telling(
    db: &Db,
    firm: consultantpro::domain::FirmId,
    ticket: &str,
    by: chrono::Duration,
    tell_timers: bool,
) {
    use consultantpro::db::schema::sla_clocks::dsl as c;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    let ticket = uuid::Uuid::parse_str(ticket).unwrap();
    db.firm_tx(firm, |conn| {
        async move {
            diesel::update(c::sla_clocks.filter(c::firm_id.eq(firm.into_uuid())).filter(c::ticket_id.eq(ticket)))
                .set((
                    c::started_at.eq(c::started_at - by),
                    c::running_since.eq(c::running_since - by),
                    c::due_at.eq(c::due_at - by),
                    c::warn_at.eq(c::warn_at - by),
                ))
                .execute(conn)
                .await?;
            if tell_timers {
                consultantpro::domain::sla_timers::ticket_moved(conn, firm, ticket).await?;
            }
            Ok::<_, consultantpro::domain::DomainError>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
}

/// Adds a portal login for a new contact with portal access; returns (token, contact id).
pub async fn portal_user(app: &TestApp, firm_slug: &str, owner: &str) -> (String, String) {
    let contact = app
        .post_as(owner, "/api/v1/contacts", &serde_json::json!({ "first_name": "Portal", "portal_access": true }))
        .await;
    let contact_id = json(contact).await["data"]["id"].as_str().unwrap().to_owned();
    let email = format!("portal-{}@example.com", uuid::Uuid::now_v7().simple());
    let db = app.db();
    let firm = consultantpro::domain::onboarding::find_firm(&db, firm_slug).await.unwrap();
    let token = invite_and_join(app, owner, &firm, &email, "client", Some(&contact_id)).await;
    (token, contact_id)
}

/// A `consultantpro serve` process (see [`serve`]); killed when dropped, so none outlives
/// the run.
pub struct Served {
    pub child: std::process::Child,
    pub port: u16,
    /// The `listening` log entry.
    pub listening: serde_json::Value,
    /// Its log after that line, for the caller to read; dropping it unread can block the
    /// server once the pipe fills (see [`Served::drain_log`]).
    pub log: Option<std::io::Lines<std::io::BufReader<std::process::ChildStderr>>>,
}

/// Starts `consultantpro serve` on a port of its own, with `envs` on top of the test
/// profile, logging JSON at info; returns once it logged `listening`.
pub fn serve(envs: &[(&str, &str)]) -> Served {
    use std::io::BufRead;
    let mut command = cli_command();
    command
        .arg("serve")
        .env("CP__SERVER__PORT", "0")
        .env("CP__TELEMETRY__FORMAT", "json")
        .env("CP__TELEMETRY__FILTER", "info")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("serve starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let listening = loop {
        let line = lines.next().expect("the server logs before exiting").expect("log line");
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        if entry["message"] == "listening" {
            break entry;
        }
    };
    let port = u16::try_from(listening["port"].as_u64().expect("port logged")).expect("a port");
    Served { child, port, listening, log: Some(lines) }
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Reads the rest of the log on a thread of its own, so a full pipe never blocks it.
    pub fn drain_log(&mut self) {
        if let Some(lines) = self.log.take() {
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
