//! `X-Request-Id`: accepted from the caller when it is sane, generated otherwise, echoed
//! on every response and carried by the request's root span (so by every log line in it).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

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

/// Root span with our request id instead of the middleware's own.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        // The same address audit and throttling use, never a client-written header.
        let client_ip = match request.app_data::<actix_web::web::Data<super::AppState>>() {
            Some(state) => super::auth::client_ip(request.request(), &state.settings().server),
            None => request.peer_addr().map(|a| a.ip().to_string()),
        }
        .unwrap_or_default();
        tracing::info_span!(
            "http_request",
            request_id = %request_id,
            http.method = %request.method(),
            http.route = tracing::field::Empty,
            http.target = %request.path(),
            http.client_ip = %client_ip,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            firm_id = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        // Routing has happened by now, so the route template is known.
        if let Ok(response) = outcome {
            span.record("http.route", response.request().match_pattern().as_deref().unwrap_or("unmatched"));
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_ids_are_replaced() {
        assert_eq!(accept(&HeaderValue::from_static("abc-123")), Some("abc-123".into()));
        assert_eq!(accept(&HeaderValue::from_static("has space")), None);
        assert_eq!(accept(&HeaderValue::from_static("")), None);
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(accept(&HeaderValue::from_str(&long).expect("ascii")), None);
    }
}
