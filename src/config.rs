//! Typed settings: `config/default.toml` < `config/$CP_ENV.toml` < `CP__SECTION__KEY` env.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Profiles in which the development secrets of `config/default.toml` are acceptable.
const DEVELOPMENT_PROFILES: [&str; 2] = ["development", "test"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration is invalid: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("auth.jwt_secret must be at least {MIN_JWT_SECRET_BYTES} bytes")]
    WeakJwtSecret,
    #[error(
        "refusing to start in environment `{environment}` with development secrets for: {keys}; set them through CP__SECTION__KEY"
    )]
    DefaultSecrets { environment: String, keys: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// The `CP_ENV` profile this was loaded for; not a config key.
    #[serde(skip)]
    pub environment: String,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub jobs: JobSettings,
    pub webhooks: WebhookSettings,
    pub crm: CrmSettings,
    pub realtime: RealtimeSettings,
    pub cluster: ClusterSettings,
    pub mail: MailSettings,
    pub stripe: StripeSettings,
    pub twilio: TwilioSettings,
    pub secrets: SecretSettings,
    pub telemetry: TelemetrySettings,
}

/// Twilio's APIs, at configurable base URLs (tests and `make run` point them at the local
/// stand-in, `consultantpro twilio-standin`, which speaks the same wire format).
#[derive(Debug, Clone, Deserialize)]
pub struct TwilioSettings {
    /// The REST API (`/2010-04-01/Accounts/{sid}/Messages.json`, `IncomingPhoneNumbers.json`).
    pub api_base_url: String,
    /// The Messaging API (`/v1/Services/{sid}`), where Messaging Services are looked up.
    pub messaging_base_url: String,
    pub timeout_secs: u64,
}

/// Keys that seal stored credentials (Twilio auth tokens, later mailbox passwords) with
/// AES-256-GCM. `keys` is `id:base64key[,id:base64key...]`; new seals use `active_key`,
/// and any listed key opens what it sealed, so a key is rotated by adding a new one,
/// making it active, running `consultantpro reseal-secrets`, then removing the old one.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretSettings {
    pub active_key: String,
    pub keys: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    /// Stripe's API; tests point it at a local stand-in.
    pub base_url: String,
    /// Empty: card payments are off (`POST .../payment-intent` answers 503).
    pub secret_key: SecretString,
    /// Signs the webhook events Stripe sends to `/api/v1/stripe/webhook`.
    pub webhook_secret: SecretString,
    /// How old a webhook signature may be.
    pub webhook_tolerance_secs: u64,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RealtimeSettings {
    /// Arbiter threads the firms' supervisors are spread over.
    pub arbiters: usize,
    /// Frames a session may have waiting before it counts as too slow and is closed.
    pub session_queue: usize,
    /// Largest client frame accepted, in bytes; larger ones get an `error` frame.
    pub max_frame_bytes: usize,
    /// Client frames per second a socket may send (bursts of twice that).
    pub max_frames_per_second: u32,
    /// Conversations one socket may watch at once.
    pub max_subscriptions_per_socket: usize,
    /// Transactions a firm's sockets may run at once on one node.
    pub max_socket_db_work_per_firm: usize,
    pub heartbeat_secs: u64,
    /// A session that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout_secs: u64,
    /// How often a socket checks that its sign-in still holds (log-out, deactivation).
    pub auth_recheck_secs: u64,
    /// A firm's hub with nobody connected to this node stops after this long.
    pub hub_idle_secs: u64,
    /// A supervised child that ends unasked starts again after about this long, doubling
    /// with each failure in a row up to `child_restart_max_secs`.
    pub child_restart_base_ms: u64,
    pub child_restart_max_secs: u64,
}

/// Outgoing mail (invitations, password resets) through an SMTP relay, sent by the jobs
/// queue.
#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `tls` (implicit TLS, usually port 465), `starttls` (usually 587), or `none`, which
    /// is accepted only for a loopback host (a local sink or relay).
    pub smtp_tls: String,
    /// Empty: no authentication.
    pub smtp_username: String,
    pub smtp_password: SecretString,
    /// The `From` of every email, e.g. `ConsultantPro <no-reply@example.com>`.
    pub from: String,
    /// Links in emails start here (the web front end's address).
    pub link_base_url: String,
    pub timeout_secs: u64,
    pub invitation_ttl_hours: u64,
    pub password_reset_ttl_minutes: u64,
    /// Mailbox hosts (IMAP and SMTP) allowed although internal (loopback, private); every
    /// other internal address is refused, as for webhooks.
    #[serde(default)]
    pub allow_private_hosts: Vec<String>,
    /// The domain of the Message-IDs the hub writes (`<id@domain>`): a message arriving
    /// with one is the hub's own mail come back, triaged as a loop.
    pub message_id_domain: String,
    /// A MIME part larger than this is recorded (name, type, size) without its content.
    pub max_part_bytes: u64,
    /// Messages imported per transaction while catching up.
    pub import_batch: usize,
    /// IDLE is re-issued this often (RFC 2177 servers may drop it after 30 minutes).
    pub idle_renew_secs: u64,
    /// The project's own Dovecot (scripts/services.sh), for the demo mailbox; unset
    /// elsewhere.
    #[serde(default)]
    pub local_imap_port: Option<u16>,
    #[serde(default)]
    pub local_imap_password: Option<SecretString>,
}

/// How nodes share out the firms' once-only work.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSettings {
    /// Nodes on one database with the same name share the firms between them.
    pub name: String,
    /// How often a node renews its lease and looks for firms to take.
    pub heartbeat_ms: u64,
    /// A node that stops renewing loses its firms this long after its last renewal; the
    /// bound on failover is this plus one heartbeat.
    pub lease_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CrmSettings {
    pub default_phone_region: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    pub enabled: bool,
    pub poll_interval_ms: u64,
    pub lease_secs: u32,
    pub batch_size: u32,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub timeout_secs: u64,
    pub max_response_bytes: usize,
    pub disable_after_failures: u32,
    pub allow_private_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// 0: one worker per core.
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    /// Whether the client address comes from `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// With `trust_forwarded_for`: how many proxies of ours stand in front. The client is
    /// the address that many hops from the right of `X-Forwarded-For`; anything further
    /// left was written by the client and is never believed.
    pub trusted_proxies: usize,
    /// The built browser app (`web/dist`); served at `/` when its `index.html` is there.
    #[serde(default = "default_web_dir")]
    pub web_dir: String,
}

fn default_web_dir() -> String {
    "web/dist".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub app_user: String,
    pub app_password: SecretString,
    pub owner_user: String,
    pub owner_password: SecretString,
    pub max_connections: usize,
    pub wait_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub recycle_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Empty means no Redis: the in-process bus serves a single node.
    pub url: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    /// A session is renewed by refresh tokens for at most this long after sign-in; then
    /// its person signs in again.
    pub session_lifetime_secs: u64,
    pub break_glass_token_ttl_secs: u64,
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window_secs: u64,
    pub totp_issuer: String,
}

/// HS256 keys shorter than the hash output weaken the signature (RFC 7518 section 3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    pub filter: String,
    /// When set, `/metrics` answers only requests bearing it (`Authorization: Bearer ...`).
    pub metrics_token: SecretString,
    /// How often a scrape may refresh the job-queue gauges (a query across firms).
    pub job_counts_every_secs: u64,
}

impl Settings {
    /// Loads settings for the profile named by `CP_ENV` from the directory named by
    /// `CP_CONFIG_DIR` (default `config`), then applies `CP__*` variables. An unset (or
    /// empty) `CP_ENV` is production: a forgotten variable must never make a public server
    /// accept the development secrets; `make run` sets `development` explicitly.
    pub fn load() -> Result<Self, ConfigError> {
        let environment =
            std::env::var("CP_ENV").ok().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "production".to_owned());
        let dir = std::env::var("CP_CONFIG_DIR").map_or_else(|_| PathBuf::from("config"), PathBuf::from);
        Self::load_from(&dir, &environment)
    }

    pub fn load_from(dir: &Path, environment: &str) -> Result<Self, ConfigError> {
        Self::extract(Self::files(dir, environment).merge(Env::prefixed("CP__").split("__")), dir, environment)
    }

    fn files(dir: &Path, environment: &str) -> Figment {
        Figment::new()
            .merge(Toml::file_exact(dir.join("default.toml")))
            .merge(Toml::file(dir.join(format!("{environment}.toml"))))
    }

    fn extract(figment: Figment, dir: &Path, environment: &str) -> Result<Self, ConfigError> {
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        settings.environment = environment.to_owned();
        settings.refuse_development_secrets(dir)?;
        if settings.auth.jwt_secret.expose_secret().len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::WeakJwtSecret);
        }
        Ok(settings)
    }

    pub fn is_development(&self) -> bool {
        DEVELOPMENT_PROFILES.contains(&self.environment.as_str())
    }

    /// Outside development, every secret must differ from the value shipped in
    /// `default.toml`, or a forgotten override would run production on a public password.
    fn refuse_development_secrets(&self, dir: &Path) -> Result<(), ConfigError> {
        if self.is_development() {
            return Ok(());
        }
        let shipped: Settings =
            Figment::new().merge(Toml::file_exact(dir.join("default.toml"))).extract().map_err(Box::new)?;
        let pairs = [
            ("database.app_password", &self.database.app_password, &shipped.database.app_password),
            ("database.owner_password", &self.database.owner_password, &shipped.database.owner_password),
            ("auth.jwt_secret", &self.auth.jwt_secret, &shipped.auth.jwt_secret),
            ("secrets.keys", &self.secrets.keys, &shipped.secrets.keys),
        ];
        let keys: Vec<&str> = pairs
            .iter()
            .filter(|(_, current, default)| current.expose_secret() == default.expose_secret())
            .map(|(key, _, _)| *key)
            .collect();
        if keys.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::DefaultSecrets { environment: self.environment.clone(), keys: keys.join(", ") })
        }
    }
}

impl DatabaseSettings {
    /// URL for the application role; this is what the server and CLI use for data.
    pub fn app_url(&self) -> SecretString {
        self.url_for(&self.app_user, &self.app_password)
    }

    /// URL for the schema owner; only `migrate` uses it.
    pub fn owner_url(&self) -> SecretString {
        self.url_for(&self.owner_user, &self.owner_password)
    }

    fn url_for(&self, user: &str, password: &SecretString) -> SecretString {
        let mut url = url::Url::parse("postgres://localhost/").unwrap_or_else(|_| unreachable!("static URL parses"));
        // Setting parts of a parsed postgres:// URL cannot fail except for a malformed host,
        // which then surfaces as a connection error naming the host.
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(user);
        let _ = url.set_password(Some(password.expose_secret()));
        url.set_path(&self.name);
        SecretString::from(url.to_string())
    }

    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn recycle_timeout(&self) -> Duration {
        Duration::from_millis(self.recycle_timeout_ms)
    }
}

impl RedisSettings {
    pub fn url(&self) -> Option<&str> {
        let url = self.url.expose_secret().trim();
        (!url.is_empty()).then_some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    /// The files alone: these tests check the shipped values, whatever CP__* the shell has.
    fn load_files(environment: &str) -> Result<Settings, ConfigError> {
        Settings::extract(Settings::files(&config_dir(), environment), &config_dir(), environment)
    }

    #[test]
    fn production_with_shipped_secrets_is_refused() {
        let err = load_files("production").expect_err("must refuse");
        let message = err.to_string();
        assert!(message.contains("auth.jwt_secret"), "{message}");
        assert!(message.contains("database.app_password"), "{message}");
        assert!(!message.contains("development-only"), "secret value leaked: {message}");
    }

    #[test]
    fn development_loads_and_debug_hides_secrets() {
        let settings = load_files("development").expect("loads");
        assert_eq!(settings.database.port, 55432);
        let printed = format!("{settings:?}");
        assert!(!printed.contains("development-only-jwt-secret"), "{printed}");
        assert!(!printed.contains("password: \"cp_app\""), "{printed}");
    }

    #[test]
    fn database_url_escapes_credentials() {
        let mut settings = load_files("development").expect("loads");
        settings.database.app_password = SecretString::from("p@ss/word");
        let url = settings.database.app_url();
        assert_eq!(url.expose_secret(), "postgres://cp_app:p%40ss%2Fword@127.0.0.1:55432/consultantpro");
    }
}
