//! Embedded migrations, run as the owner role without libpq.

use diesel::{Connection, RunQueryDsl};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises concurrent `migrate` runs (several nodes starting at once) on one lock key.
const MIGRATION_LOCK_KEY: i64 = 0x6370_6d69_6772_6174; // "cpmigrat"

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect as the owner role: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("migration lock: {0}")]
    Lock(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("migration task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Applies pending migrations and returns the versions applied, oldest first.
pub async fn run_migrations(settings: &DatabaseSettings) -> Result<Vec<String>, MigrateError> {
    let url = settings.owner_url();
    // The harness is synchronous; the wrapper drives the async connection from a blocking thread.
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, MigrateError> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url.expose_secret())?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")).execute(&mut conn)?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| MigrateError::Migration(e.to_string()));
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")).execute(&mut conn)?;
        applied
    })
    .await?
}
