//! `Idempotency-Key` on creations: the key a client sent (if any), checked, with the
//! request's fingerprint, for `domain::idempotency`.

use actix_web::HttpRequest;
use serde::Serialize;

use super::error::ApiError;
use crate::domain::idempotency;

/// A creation's `Idempotency-Key` (if sent), scope and request fingerprint.
pub struct Once {
    pub key: Option<String>,
    pub scope: String,
    pub hash: String,
}

impl Once {
    pub fn of(req: &HttpRequest, scope: String, body: &impl Serialize) -> Result<Self, ApiError> {
        let key = match req.headers().get("idempotency-key") {
            None => None,
            Some(value) => {
                let key =
                    value.to_str().map_err(|_| ApiError::invalid_field("Idempotency-Key", "must be visible ASCII"))?;
                idempotency::check_key(key)?;
                Some(key.to_owned())
            }
        };
        let hash = idempotency::request_hash(&serde_json::to_value(body).unwrap_or_default());
        Ok(Once { key, scope, hash })
    }
}
