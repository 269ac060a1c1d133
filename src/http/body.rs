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
    // `\u0000` is the only way a NUL reaches a JSON text; a body holding one (not as an
    // escaped backslash) is refused here, naming the field, before any handler sees it.
    if text.contains("\\u0000") {
        // A body that does not even read as a JSON value is refused whole (no field named).
        let field = serde_json::from_str::<serde_json::Value>(text)
            .map_or_else(|_| Some("body".to_owned()), |value| nul_field(&value, String::new()));
        if let Some(field) = field {
            return Err(nul_refusal(&field));
        }
    }
    serde_json::from_str(text).map_err(|cause| super::deserialize_error(&cause))
}

/// Refuses (415, `message`) a body not sent as `media_type`: the header's media type,
/// without its parameters (`; charset=utf-8`), compared whole and case-blind.
pub(super) fn require_media_type(req: &HttpRequest, media_type: &str, message: &str) -> Result<(), ApiError> {
    let header = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = header.unwrap_or_default().split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(media_type) { Ok(()) } else { Err(ApiError::UnsupportedMediaType(message.into())) }
}

/// PostgreSQL stores no NUL character in text or JSON: the client's input, refused whole.
pub(super) fn nul_refusal(field: &str) -> ApiError {
    // The name is the client's own text: echoed back cut short.
    let field: String = field.chars().take(100).collect();
    ApiError::validation(
        "text may not contain the NUL character (\\u0000)",
        serde_json::json!({ "fields": { field: "may not contain the NUL character (\\u0000)" } }),
    )
}

/// The path (`custom_fields.a`, `lines[2].description`) of the first string or key holding NUL.
fn nul_field(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |key: &str| if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(if at.is_empty() { "body".into() } else { at }),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_field(item, format!("{at}[{i}]")))
        }
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') { Some(join(&key.replace('\0', "\\u0000"))) } else { nul_field(item, join(key)) }
        }),
        _ => None,
    }
}

/// A query parameter carrying NUL is refused before any handler reads it, naming it.
pub async fn refuse_nul_in_query(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let query = req.query_string();
    if query.contains("%00") || query.contains('\0') {
        let named = url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key.contains('\0') || value.contains('\0'))
            .map(|(key, _)| key.replace('\0', "\\u0000"));
        if let Some(name) = named {
            let response = actix_web::ResponseError::error_response(&nul_refusal(&name));
            return Ok(req.into_response(response));
        }
    }
    next.call(req).await.map(actix_web::dev::ServiceResponse::map_into_boxed_body)
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
    fn a_media_type_is_compared_whole_without_its_parameters() {
        let check = |content_type: Option<&str>| {
            let mut req = actix_web::test::TestRequest::default();
            if let Some(value) = content_type {
                req = req.insert_header(("content-type", value));
            }
            require_media_type(&req.to_http_request(), "text/csv", "send CSV").is_ok()
        };
        assert!(check(Some("text/csv")));
        assert!(check(Some("TEXT/CSV ; charset=utf-8")));
        assert!(!check(Some("text/csvx")));
        assert!(!check(Some("application/json")));
        assert!(!check(None));
    }

    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_naming_its_field() {
        let field = |text: &str| {
            let err = parse_object::<serde_json::Value>(text).expect_err(text);
            let ApiError::Validation { details, .. } = err else { panic!("{text}: not a validation error") };
            details["fields"].as_object().and_then(|f| f.keys().next().cloned()).unwrap_or_default()
        };
        assert_eq!(field(r#"{"name":"a\u0000b"}"#), "name");
        assert_eq!(field(r#"{"custom_fields":{"a":"\u0000"}}"#), "custom_fields.a");
        assert_eq!(field(r#"{"lines":[{"d":"x"},{"d":"\u0000"}]}"#), "lines[1].d");
        assert_eq!(field(r#"{"tags":{"k\u0000":1}}"#), "tags.k\\u0000");
        // An escaped backslash before `u0000` is text, not a NUL.
        assert!(parse_object::<serde_json::Value>(r#"{"name":"a\\u0000"}"#).is_ok());
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
