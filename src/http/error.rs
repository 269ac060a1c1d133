//! HTTP rendering of [`ApiError`]: the status, the envelope, and `Retry-After` for 429.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

pub use crate::error::{ApiError, ErrorBody, ErrorDetail};

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let body =
            ErrorBody { error: ErrorDetail { code: self.code(), message: self.to_string(), details: self.details() } };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_secs } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.insert_header((header::RETRY_AFTER, value));
            }
        }
        response.json(body)
    }
}
