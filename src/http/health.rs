//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::envelope;
use super::error::{ApiError, ErrorBody};

/// A readiness probe must answer quickly even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: Checks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// `up` or `down` (the reason goes to the node's log, not to whoever asks).
    pub database: String,
    /// `up`, `down`, or `not_configured` (single node, in-process bus).
    pub redis: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthEnvelope {
    pub data: Health,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessEnvelope {
    pub data: Readiness,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The process is up. No I/O, so a busy database never makes the node look dead.
#[utoipa::path(
    get,
    path = "/health/",
    tag = "operations",
    responses((status = 200, description = "Process is up", body = HealthEnvelope))
)]
pub async fn health() -> HttpResponse {
    envelope::ok(Health { status: "ok" })
}

/// The node can serve: the database answers and, when configured, Redis answers.
#[utoipa::path(
    get,
    path = "/ready/",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = ReadinessEnvelope),
        (status = 503, description = "A dependency is down; `details.checks` says which", body = ErrorBody)
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.db().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let redis = match state.bus().kind() {
        "redis" => Some(match tokio::time::timeout(CHECK_TIMEOUT, state.bus().ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }),
        _ => None,
    };
    let all_up = database.is_ok() && redis.as_ref().is_none_or(Result::is_ok);
    // The errors name hosts, ports and roles: logged here, never answered.
    let describe = |name: &str, check: &Result<(), String>| match check {
        Ok(()) => "up".to_owned(),
        Err(reason) => {
            tracing::warn!(check = name, error = %reason, "readiness check failed");
            "down".to_owned()
        }
    };
    let checks = Checks {
        database: describe("database", &database),
        redis: redis.as_ref().map_or_else(|| "not_configured".to_owned(), |r| describe("redis", r)),
    };
    if all_up {
        Ok(envelope::ok(Readiness { status: "ready", checks }))
    } else {
        let details = serde_json::json!({ "checks": checks });
        Err(ApiError::Unavailable { message: "not ready: a dependency is unavailable".into(), details })
    }
}
