//! `/metrics` in Prometheus text format: requests by route and status with latency
//! histograms, and the database pool's size, idle connections, waiters and wait times.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use sha2::Digest;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::actors::board::ChildState;
use crate::domain::jobs;
use scoped_futures::ScopedFutureExt;

/// Seconds; spans fast cached reads to slow report queries.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The process-wide recorder (the `metrics` facade allows exactly one), installed on first use.
pub fn recorder_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is already installed; ours then stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The methods the API serves, and `other` for the rest: a client may send any token as
/// a method, and each distinct label value would be a new series.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}

/// Every job state with its count, zero for states with no jobs: a state that drained
/// must read 0, not keep the last count it had.
fn job_gauges(counts: &[(String, i64)]) -> [(&'static str, i64); 4] {
    ["queued", "running", "succeeded", "dead"]
        .map(|state| (state, counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n)))
}

/// Counts a served request and its latency under its method, route template and status.
pub fn record_request(method: &actix_web::http::Method, route: String, status: u16, elapsed: std::time::Duration) {
    let method = method_label(method);
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
}

/// Whether the request may read `/metrics`: always when no token is configured, otherwise
/// only with `Authorization: Bearer <token>`. Digests are compared, so the time a
/// comparison takes says nothing about the token's characters.
fn scrape_allowed(state: &AppState, req: &HttpRequest) -> bool {
    let token = state.settings().telemetry.metrics_token.expose_secret();
    if token.is_empty() {
        return true;
    }
    let offered = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let digest = |text: &str| sha2::Sha256::digest(text.as_bytes());
    digest(offered) == digest(token)
}

/// Whether this scrape refreshes the job gauges: at most once per `every`, and only one
/// of the scrapes arriving together (the claim is taken before the query).
fn claim_refresh(last: &mut Option<Instant>, now: Instant, every: std::time::Duration) -> bool {
    if last.is_some_and(|at| now.saturating_duration_since(at) < every) {
        return false;
    }
    *last = Some(now);
    true
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "`telemetry.metrics_token` is set and the request does not bear it", body = ErrorBody),
    )
)]
pub async fn metrics_text(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if !scrape_allowed(&state, &req) {
        return Err(ApiError::unauthorized("metrics need the configured bearer token"));
    }
    for (name, pool) in state.pool_statuses() {
        metrics::gauge!("db_pool_max_connections", "pool" => name).set(pool.max_size as f64);
        metrics::gauge!("db_pool_connections", "pool" => name).set(pool.size as f64);
        metrics::gauge!("db_pool_idle_connections", "pool" => name).set(pool.available as f64);
        metrics::gauge!("db_pool_waiting_requests", "pool" => name).set(pool.waiting as f64);
    }
    metrics::gauge!("bus_active_channels").set(state.bus().active_channels() as f64);
    // Supervision, from this node's registry (set here so each scrape shows the node it asks).
    let registry = state.registry();
    metrics::gauge!("cp_firms_owned").set(registry.owned().len() as f64);
    let counts = registry.board().counts();
    for (kind, _) in registry.kinds() {
        for child_state in ChildState::ALL {
            let count = counts.get(&(kind, child_state)).copied().unwrap_or(0);
            metrics::gauge!("cp_children", "kind" => kind, "state" => child_state.as_str()).set(count as f64);
        }
    }
    // Queue depth across firms (counts only), refreshed at most once per interval; a
    // scrape during a database outage keeps the last values.
    let every = std::time::Duration::from_secs(state.settings().telemetry.job_counts_every_secs);
    let refresh = {
        let mut last = state.job_counts_refreshed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        claim_refresh(&mut last, Instant::now(), every)
    };
    if refresh {
        let counts = state.db().platform_tx(|conn| async move { jobs::counts(conn).await }.scope_boxed()).await;
        if let Ok(counts) = counts {
            for (job_state, count) in job_gauges(&counts) {
                metrics::gauge!("jobs", "state" => job_state).set(count as f64);
            }
        }
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics().render()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_counts_refresh_at_most_once_per_interval() {
        let (start, every) = (Instant::now(), std::time::Duration::from_secs(15));
        let mut last = None;
        assert!(claim_refresh(&mut last, start, every), "the first scrape refreshes");
        assert!(
            !claim_refresh(&mut last, start + std::time::Duration::from_secs(1), every),
            "a scrape soon after does not"
        );
        assert!(!claim_refresh(&mut last, start + std::time::Duration::from_secs(14), every));
        assert!(
            claim_refresh(&mut last, start + std::time::Duration::from_secs(15), every),
            "once the interval passed"
        );
        let mut always = None;
        assert!(claim_refresh(&mut always, start, std::time::Duration::ZERO));
        assert!(
            claim_refresh(&mut always, start, std::time::Duration::ZERO),
            "an interval of 0 refreshes every scrape"
        );
    }

    #[test]
    fn a_drained_job_state_reads_zero() {
        let counts = vec![("queued".to_owned(), 3), ("dead".to_owned(), 1)];
        assert_eq!(job_gauges(&counts), [("queued", 3), ("running", 0), ("succeeded", 0), ("dead", 1)]);
        assert_eq!(job_gauges(&[]), [("queued", 0), ("running", 0), ("succeeded", 0), ("dead", 0)]);
    }

    #[test]
    fn methods_outside_the_api_share_one_label() {
        assert_eq!(method_label(&actix_web::http::Method::PATCH), "PATCH");
        let invented = actix_web::http::Method::from_bytes(b"BREW").unwrap_or(actix_web::http::Method::GET);
        assert_eq!(invented.as_str(), "BREW");
        assert_eq!(method_label(&invented), "other");
    }
}
