//! The one JSON body extractor. `web::Json` lets serde read a struct from a JSON array
//! (`[null, null]` fills the fields in order), so a PATCH with an array body would be
//! accepted; every request body here must be a JSON object, and this is where that is
//! decided. Size limit, content type and syntax errors come from `web::JsonConfig`
//! (`json_error`), so the error format stays the same as before.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A request body that is a JSON object deserialised into `T`.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for JsonObject<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = web::Json::<Box<RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let raw = raw.await?.into_inner();
            parse_object(raw.get()).map(JsonObject).map_err(Into::into)
        })
    }
}

/// `text` is one syntactically valid JSON value (the extractor checked that).
fn parse_object<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    if !text.starts_with('{') {
        let found = match text.as_bytes().first() {
            Some(b'[') => "array",
            Some(b'"') => "string",
            Some(b'n') => "null",
            Some(b't' | b'f') => "boolean",
            _ => "number",
        };
        return Err(ApiError::validation(
            format!("the request body must be a JSON object, not a JSON {found}"),
            serde_json::json!({ "kind": "wrong_shape", "expected": "object", "found": found }),
        ));
    }
    serde_json::from_str(text).map_err(|cause| super::deserialize_error(&cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Settings {
        #[allow(dead_code)]
        currency: Option<String>,
        #[allow(dead_code)]
        days: Option<i32>,
    }

    #[test]
    fn objects_are_read_and_every_other_json_value_refused() {
        assert!(parse_object::<Settings>(r#"{"currency":"EUR","days":30}"#).is_ok());
        for (body, found) in
            [("[null,null]", "array"), ("\"x\"", "string"), ("null", "null"), ("true", "boolean"), ("12", "number")]
        {
            let refused = parse_object::<Settings>(body).expect_err(body);
            assert_eq!(refused.details()["found"], found, "{body}");
            assert_eq!(refused.details()["kind"], "wrong_shape", "{body}");
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_names_its_place() {
        let refused = parse_object::<Settings>("{\"days\": \"thirty\"}").expect_err("wrong type");
        assert_eq!(refused.details()["kind"], "wrong_shape");
        assert_eq!(refused.details()["line"], 1);
    }
}
