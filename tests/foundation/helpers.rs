use std::path::PathBuf;
use std::sync::LazyLock;

use actix_web::web;
use consultantpro::Application;
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::firms::Firm;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::users::NewUser;
use consultantpro::telemetry;
use tokio::sync::OnceCell;

static TRACING: LazyLock<()> = LazyLock::new(|| {
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
    pub client: reqwest::Client,
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
    LazyLock::force(&TRACING);
    let mut settings = test_settings();
    migrate(&settings).await;
    customize(&mut settings);
    let app = Application::build_with_routes(settings, routes).await.expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp { address, client }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }
}

/// A pool as the application role, migrated, without a server.
pub async fn test_db() -> Db {
    LazyLock::force(&TRACING);
    let settings = test_settings();
    migrate(&settings).await;
    Db::new(&settings.database).expect("pool builds")
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
