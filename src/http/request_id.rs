//! `X-Request-Id`: accepted from the caller when it is sane, generated otherwise, echoed
//! on every response and carried by the request's span (so by every log line in it), which
//! ends with the request's access line.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A route parameter that is a secret; see [`observe_request`].
const SECRET_SEGMENT: &str = "{token}";

/// Longest caller-supplied id kept; longer or odd ones are replaced, not trusted into logs.
const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

fn accept(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= MAX_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| text.to_owned())
}

pub async fn assign_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req.headers().get(&REQUEST_ID_HEADER).and_then(accept).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // Handlers' and extractors' errors arrive here as responses, so every answer gets the
    // header; an `Err` would come only from a failing middleware and is passed on as is.
    let mut response = next.call(req).await?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

/// The request's span and its access line. Every line logged while the request is served
/// carries the span's request id and, once signed in, its firm. When the response is ready,
/// one `request` line gives the method, route template, path, client address, status,
/// duration and, for a refusal, its message; the route's request counter and latency
/// histogram are recorded from the same figures.
///
/// One event rather than a span closed with fields recorded into it as they become known:
/// the JSON formatter re-reads a span's stored fields on every record, and that made the
/// access line the costliest thing a short request did on the server.
pub async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let span = tracing::info_span!("http_request", request_id = %request_id, firm_id = tracing::field::Empty);
    let method = req.method().clone();
    let path = req.path().to_owned();
    // The same address audit and throttling use, never a client-written header.
    let client_ip = match req.app_data::<actix_web::web::Data<super::AppState>>() {
        Some(state) => super::auth::client_ip(req.request(), &state.settings().server),
        None => req.peer_addr().map(|a| a.ip().to_string()),
    }
    .unwrap_or_default();
    let serving = span.in_scope(|| next.call(req));
    let outcome = serving.instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let (route, status, refusal) = match &outcome {
        Ok(response) => {
            (response.request().match_pattern(), response.status(), response.response().error().map(|e| e.to_string()))
        }
        Err(error) => (None, error.as_response_error().status_code(), Some(error.to_string())),
    };
    // The route template (known once routed), never the raw path: ids in paths would
    // explode the metrics' label cardinality.
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    // A path segment that is a capability (a calendar feed's `{token}`) is a secret: such
    // paths are logged as their template.
    let target = if route.contains(SECRET_SEGMENT) { route.as_str() } else { path.as_str() };
    span.in_scope(|| {
        tracing::info!(
            http.method = %method,
            http.route = %route,
            http.target = %target,
            http.client_ip = %client_ip,
            http.status_code = status.as_u16(),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            error = refusal.as_deref(),
            "request"
        )
    });
    super::metrics::record_request(&method, route, status.as_u16(), elapsed);
    outcome
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use actix_web::middleware::from_fn;
    use actix_web::test as actix_test;
    use actix_web::{App, HttpResponse, web};

    use super::*;
    use crate::config::{LogFormat, TelemetrySettings};

    /// Log output kept in memory, one JSON document a line.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            String::from_utf8_lossy(&bytes).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
        }
    }

    async fn refused(path: web::Path<String>) -> Result<HttpResponse, super::super::error::ApiError> {
        tracing::info!(thing = %path, "looking the thing up");
        Err(super::super::error::ApiError::NotFound("no such thing".into()))
    }

    #[actix_web::test]
    async fn each_request_logs_one_access_line_and_its_lines_carry_the_request_id() {
        let captured = Captured::default();
        let settings = TelemetrySettings {
            format: LogFormat::Json,
            filter: "info".into(),
            metrics_token: secrecy::SecretString::from(String::new()),
            job_counts_every_secs: 60,
        };
        let writer = captured.clone();
        let _logging =
            tracing::subscriber::set_default(crate::telemetry::get_subscriber(&settings, move || writer.clone()));
        let app = actix_test::init_service(
            App::new()
                .route("/things/{id}", web::get().to(refused))
                .route("/feeds/{token}", web::get().to(HttpResponse::Ok))
                .wrap(from_fn(observe_request))
                .wrap(from_fn(assign_request_id)),
        )
        .await;
        let response =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri("/things/42?x=1").to_request()).await;
        assert_eq!(response.status(), 404);
        let request_id = response.headers().get(&REQUEST_ID_HEADER).expect("echoed").to_str().expect("text").to_owned();

        let lines = captured.lines();
        let access: Vec<_> = lines.iter().filter(|l| l["message"] == "request").collect();
        assert_eq!(access.len(), 1, "one access line: {lines:?}");
        let line = access[0];
        assert_eq!(line["http.method"], "GET");
        assert_eq!(line["http.route"], "/things/{id}", "the template, not the path");
        assert_eq!(line["http.target"], "/things/42");
        assert_eq!(line["http.status_code"], 404);
        assert!(line["duration_us"].is_u64());
        assert!(line["error"].as_str().is_some_and(|e| !e.is_empty()), "a refusal's message: {line}");
        assert_eq!(line["span"]["request_id"], request_id.as_str());
        let inside = lines.iter().find(|l| l["message"] == "looking the thing up").expect("the handler's line");
        assert_eq!(inside["span"]["request_id"], request_id.as_str(), "lines inside carry the request id");
        assert!(lines.iter().all(|l| l["message"] != "close"), "no second line when the span closes: {lines:?}");

        let feed =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri("/feeds/s3cret").to_request()).await;
        assert_eq!(feed.status(), 200);
        let lines = captured.lines();
        let line = lines.iter().rfind(|l| l["message"] == "request").expect("the feed's access line");
        assert_eq!(line["http.target"], "/feeds/{token}", "a capability in the path is not logged");
        assert!(!lines.iter().any(|l| l.to_string().contains("s3cret")));
    }

    #[test]
    fn odd_ids_are_replaced() {
        assert_eq!(accept(&HeaderValue::from_static("abc-123")), Some("abc-123".into()));
        assert_eq!(accept(&HeaderValue::from_static("has space")), None);
        assert_eq!(accept(&HeaderValue::from_static("")), None);
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(accept(&HeaderValue::from_str(&long).expect("ascii")), None);
    }
}
