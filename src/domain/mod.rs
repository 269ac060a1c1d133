//! Business rules, one module per bounded context. No HTTP and no actors here: both
//! `http` and `actors` call into it, and every query takes a `&mut` connection so it
//! runs inside whichever transaction the caller opened (`firm_tx` for tenant data).

pub mod audit;
pub mod booking_slots;
pub mod bookings;
pub mod break_glass;
pub mod business_calendars;
pub mod business_time;
pub mod calendar_events;
pub mod clients;
pub mod cluster;
pub mod contacts;
pub mod conversations;
pub mod email;
pub mod email_rules;
pub mod firms;
pub mod ical;
pub mod idempotency;
pub mod invitations;
pub mod invoices;
pub mod jobs;
pub mod login;
pub mod mailboxes;
pub mod memberships;
pub mod mfa;
pub mod money;
pub mod onboarding;
pub mod operators;
pub mod pagination;
pub mod password_resets;
pub mod permissions;
pub mod pipeline;
pub mod proposals;
pub mod sessions;
pub mod sla;
pub mod sla_clock;
pub mod sla_policies;
pub mod sla_timers;
pub mod sms;
pub mod throttle;
pub mod tickets;
pub mod timestamps;
pub mod users;
pub mod value_sets;
pub mod webhooks;

use std::collections::BTreeMap;

use crate::db::DbError;
pub use crate::tenant::FirmId;

/// Who asked and from where, for audit events.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub ip: Option<String>,
}

/// Field name -> what is wrong with it, for `validation_error` details.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{message}")]
    Validation { message: String, fields: FieldErrors },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// A failure that is not the caller's doing; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A stored secret that does not seal or open is the server's problem (a key removed too
/// soon, a tampered row), never the caller's.
impl From<crate::secret_box::SecretBoxError> for DomainError {
    fn from(err: crate::secret_box::SecretBoxError) -> Self {
        DomainError::Internal(format!("stored secret: {err}"))
    }
}

impl crate::db::Transient for DomainError {
    fn is_transient(&self) -> bool {
        matches!(self, DomainError::Db(db) if crate::db::Transient::is_transient(db))
    }
}

impl From<diesel::result::Error> for DomainError {
    fn from(err: diesel::result::Error) -> Self {
        DomainError::Db(DbError::Query(err))
    }
}

/// A value as stored JSON (settings, conditions, windows): it always serialises.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, DomainError> {
    serde_json::to_value(value).map_err(|e| DomainError::Internal(e.to_string()))
}

/// Stored JSON read back; a row that does not read is the server's fault, named by `what`.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, DomainError> {
    serde_json::from_value(value).map_err(|e| DomainError::Internal(format!("stored {what} unreadable: {e}")))
}

impl DomainError {
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        DomainError::Validation {
            message: format!("{field}: {problem}"),
            fields: BTreeMap::from([(field.to_owned(), problem)]),
        }
    }

    /// Maps "not found" to a validation error on `field` (an id in the body that names
    /// nothing this firm has); every other error, a database failure included, passes.
    pub fn missing_as_invalid(field: &'static str, problem: &'static str) -> impl FnOnce(DomainError) -> DomainError {
        move |err| match err {
            DomainError::NotFound(_) => DomainError::invalid_field(field, problem),
            other => other,
        }
    }

    /// Maps a unique-constraint violation to `Conflict` with `message`; other errors pass.
    pub fn conflict_on_unique(message: impl Into<String>) -> impl FnOnce(diesel::result::Error) -> DomainError {
        move |err| match err {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                DomainError::Conflict(message.into())
            }
            other => other.into(),
        }
    }

    /// Turns collected field errors into one validation error, or `Ok` when there are none.
    pub fn check(fields: FieldErrors) -> Result<(), DomainError> {
        if fields.is_empty() {
            return Ok(());
        }
        let message = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ");
        Err(DomainError::Validation { message, fields })
    }
}
