//! The one error type clients see, over HTTP (`http::error` renders it as a response) and
//! in WebSocket `error` frames alike: `{"error": {"code", "message", "details"}}`. It sits
//! below both so the live layer never reaches into HTTP for it. Causes of 5xx are logged,
//! never returned.

use std::fmt;

use actix_web::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use diesel::result::DatabaseErrorInformation;

use crate::db::DbError;
use crate::domain::DomainError;

#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation { message: String, details: Value },
    /// 401; `code` is `unauthorized` or a more precise one (`invalid_credentials`,
    /// `mfa_required`, `invalid_mfa_code`, `invalid_refresh_token`).
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Unavailable { message: String, details: Value },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Error envelope, as documented in the OpenAPI description.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: validation_error, unauthorized (or invalid_credentials,
    /// mfa_required, invalid_mfa_code, invalid_refresh_token), forbidden, not_found,
    /// method_not_allowed, conflict, payload_too_large, unsupported_media_type,
    /// rate_limited, unavailable, internal.
    #[schema(example = "validation_error")]
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Structured detail: `fields` (field -> problem) for validation errors, position for
    /// malformed JSON, failing checks for readiness.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    pub fn validation(message: impl Into<String>, details: Value) -> Self {
        ApiError::Validation { message: message.into(), details }
    }

    pub fn invalid_field(field: &str, problem: &str) -> Self {
        ApiError::Validation {
            message: format!("{field}: {problem}"),
            details: serde_json::json!({ "fields": { field: problem } }),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized { code: "unauthorized", message: message.into() }
    }

    pub fn unauthorized_as(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized { code, message: message.into() }
    }

    /// 503 `unavailable`: a dependency is down or busy; the client may retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable { message: message.into(), details: Value::Null }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    /// The HTTP status; sockets send the same code and message without it.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_error",
            ApiError::Unauthorized { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The envelope for a bare status produced by the framework itself (unmatched route,
    /// wrong method, ...), so even those answers follow the error format.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".into()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge("request body too large".into()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType("unsupported content type".into()),
            StatusCode::UNAUTHORIZED => ApiError::unauthorized("authentication required"),
            StatusCode::FORBIDDEN => ApiError::Forbidden("not allowed".into()),
            StatusCode::SERVICE_UNAVAILABLE => {
                ApiError::Unavailable { message: "service unavailable".into(), details: Value::Null }
            }
            s if s.is_client_error() => ApiError::validation(
                s.canonical_reason().unwrap_or("bad request").to_lowercase(),
                Value::Object(Default::default()),
            ),
            s => ApiError::Internal(anyhow::anyhow!("unexpected status {s}")),
        }
    }

    /// `details` of the error format (also sent in WebSocket `error` frames).
    pub fn details(&self) -> Value {
        match self {
            ApiError::Validation { details, .. } | ApiError::Unavailable { details, .. } => {
                if details.is_null() {
                    Value::Object(Default::default())
                } else {
                    details.clone()
                }
            }
            ApiError::RateLimited { retry_after_secs } => serde_json::json!({ "retry_after": retry_after_secs }),
            _ => Value::Object(Default::default()),
        }
    }
}

impl fmt::Debug for ApiError {
    /// Prints the whole cause chain, which the log needs and the client never sees.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            writeln!(f, "caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// PostgreSQL's refusal of a NUL character: in text (`invalid byte sequence ... 0x00`) or in
/// JSON (`unsupported Unicode escape sequence`, `\u0000` cannot be converted to text).
fn refuses_nul(message: &str) -> bool {
    (message.starts_with("invalid byte sequence for encoding") && message.ends_with("0x00"))
        || message.starts_with("unsupported Unicode escape sequence")
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::PoolExhausted(_) => ApiError::unavailable("the service is busy; retry shortly"),
            DbError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                ApiError::unavailable("the database is unavailable")
            }
            DbError::Query(diesel::result::Error::NotFound) => ApiError::NotFound("not found".into()),
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => ApiError::Conflict("conflicts with an existing record".into()),
            // PostgreSQL stores no NUL character in text or JSON, whichever field it came in:
            // the client's input, refused as a whole, nothing stored.
            DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::Unknown, info))
                if refuses_nul(info.message()) =>
            {
                ApiError::validation(
                    "text may not contain the NUL character (\\u0000)",
                    serde_json::json!({ "in": "body or query" }),
                )
            }
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => database_refusal(kind, info.as_ref()),
            DbError::Query(other) => ApiError::Internal(other.into()),
        }
    }
}

/// A statement the database refused, by the kind of refusal. Constraints the handlers'
/// own checks should have caught still answer as the client's mistake, naming the
/// constraint; a transaction that lost a serialization race or a deadlock is a 503 to retry.
fn database_refusal(kind: diesel::result::DatabaseErrorKind, info: &dyn DatabaseErrorInformation) -> ApiError {
    use diesel::result::DatabaseErrorKind as Kind;
    let constraint = info.constraint_name().unwrap_or("unknown");
    match kind {
        Kind::CheckViolation => ApiError::validation(
            "a value is outside what this field allows",
            serde_json::json!({ "constraint": constraint }),
        ),
        Kind::NotNullViolation => ApiError::validation(
            "a required value is missing",
            serde_json::json!({ "fields": { info.column_name().unwrap_or("unknown"): "is required" } }),
        ),
        // A row still referred to elsewhere cannot go; a reference to a row that does not
        // exist cannot be stored.
        Kind::ForeignKeyViolation if info.message().starts_with("update or delete on table") => {
            ApiError::Conflict("other records still refer to this one".into())
        }
        Kind::ForeignKeyViolation => ApiError::validation(
            "refers to something that does not exist in this firm",
            serde_json::json!({ "constraint": constraint }),
        ),
        Kind::SerializationFailure => ApiError::unavailable("a concurrent change interfered; retry"),
        Kind::Unknown if info.message().starts_with("deadlock detected") => {
            ApiError::unavailable("a concurrent change interfered; retry")
        }
        other => ApiError::Internal(anyhow::anyhow!("database refused: {other:?}: {}", info.message())),
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Validation { message, fields } => {
                ApiError::Validation { message, details: serde_json::json!({ "fields": fields }) }
            }
            DomainError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            DomainError::Conflict(message) => ApiError::Conflict(message),
            DomainError::Forbidden(message) => ApiError::Forbidden(message),
            DomainError::Db(db) => db.into(),
            DomainError::Internal(message) => ApiError::Internal(anyhow::anyhow!(message)),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::Query(err).into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pool_exhaustion_is_503_not_500() {
        let err: ApiError = DbError::PoolExhausted(Duration::from_secs(3)).into();
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code(), "unavailable");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("password authentication failed for user cp_app"));
        assert_eq!(err.to_string(), "internal error");
        assert!(format!("{err:?}").contains("password authentication failed"));
    }

    /// A refusal as PostgreSQL would report it.
    struct Refusal {
        message: &'static str,
        constraint: Option<&'static str>,
        column: Option<&'static str>,
    }

    impl DatabaseErrorInformation for Refusal {
        fn message(&self) -> &str {
            self.message
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            self.column
        }
        fn constraint_name(&self) -> Option<&str> {
            self.constraint
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn refused(kind: diesel::result::DatabaseErrorKind, refusal: Refusal) -> ApiError {
        DbError::Query(diesel::result::Error::DatabaseError(kind, Box::new(refusal))).into()
    }

    #[test]
    fn database_refusals_map_by_kind() {
        use diesel::result::DatabaseErrorKind as Kind;
        let check = refused(
            Kind::CheckViolation,
            Refusal { message: "new row violates check constraint", constraint: Some("contacts_check"), column: None },
        );
        assert_eq!(check.status(), StatusCode::BAD_REQUEST);
        let missing = refused(
            Kind::ForeignKeyViolation,
            Refusal {
                message: "insert or update on table \"contacts\" violates foreign key constraint",
                constraint: Some("contacts_client_fkey"),
                column: None,
            },
        );
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
        let still_used = refused(
            Kind::ForeignKeyViolation,
            Refusal {
                message: "update or delete on table \"clients\" violates foreign key constraint",
                constraint: Some("contacts_client_fkey"),
                column: None,
            },
        );
        assert_eq!(still_used.status(), StatusCode::CONFLICT);
        let null =
            refused(Kind::NotNullViolation, Refusal { message: "null value", constraint: None, column: Some("name") });
        assert_eq!(null.status(), StatusCode::BAD_REQUEST);
        let race = refused(
            Kind::SerializationFailure,
            Refusal { message: "could not serialize access", constraint: None, column: None },
        );
        assert_eq!(race.status(), StatusCode::SERVICE_UNAVAILABLE);
        let deadlock = refused(Kind::Unknown, Refusal { message: "deadlock detected", constraint: None, column: None });
        assert_eq!(deadlock.status(), StatusCode::SERVICE_UNAVAILABLE);
        let other = refused(Kind::Unknown, Refusal { message: "out of shared memory", constraint: None, column: None });
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unique_violation_is_conflict() {
        let err: ApiError = DomainError::Conflict("slug taken".into()).into();
        assert_eq!(err.status(), StatusCode::CONFLICT);
    }
}
