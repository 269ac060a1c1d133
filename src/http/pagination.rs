//! Cursor pagination over HTTP: `?limit=&cursor=` in, `meta.next` / `meta.previous` out.
//! A cursor is opaque to clients (base64url of the position); tampering with one can only
//! point it elsewhere in the caller's own firm, which row-level security already fences.

use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::error::ApiError;
use crate::domain::pagination::{DEFAULT_LIMIT, Direction, MAX_LIMIT, Page, PageSpec};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 100 (larger values are capped at 100); default 25.
    pub limit: Option<u32>,
    /// Opaque cursor from a previous page's `meta.next` or `meta.previous`.
    pub cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CursorToken<K> {
    d: Direction,
    k: K,
}

pub fn encode_cursor<K: Serialize>(direction: Direction, key: &K) -> String {
    let json = serde_json::to_vec(&CursorToken { d: direction, k: key }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

impl PageParams {
    pub fn spec<K: DeserializeOwned>(&self) -> Result<PageSpec<K>, ApiError> {
        let limit = self.limit.map_or(DEFAULT_LIMIT, |l| usize::try_from(l).unwrap_or(MAX_LIMIT));
        let mut spec = PageSpec::first(limit);
        if let Some(cursor) = self.cursor.as_deref().filter(|c| !c.is_empty()) {
            let token: CursorToken<K> = URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::invalid_field("cursor", "is not a cursor this list issued"))?;
            spec.position = Some((token.d, token.k));
        }
        Ok(spec)
    }
}

/// `meta` for a list page: `count` (items in this page), `limit`, and `next`/`previous`
/// as relative URLs that repeat the request's other query parameters.
pub fn page_meta<T, K: Serialize>(req: &HttpRequest, page: &Page<T, K>, spec: &PageSpec<K>) -> Value {
    let link = |direction: Direction, key: &Option<K>| {
        key.as_ref().map(|key| link_with_cursor(req, spec.limit, &encode_cursor(direction, key)))
    };
    json!({
        "count": page.items.len(),
        "limit": spec.limit,
        "next": link(Direction::Forward, &page.next),
        "previous": link(Direction::Backward, &page.previous),
    })
}

fn link_with_cursor(req: &HttpRequest, limit: usize, cursor: &str) -> String {
    let kept = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(name, _)| name != "cursor" && name != "limit")
        .collect::<Vec<_>>();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(kept);
    query.append_pair("limit", &limit.to_string());
    query.append_pair("cursor", cursor);
    format!("{}?{}", req.path(), query.finish())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let token = encode_cursor(Direction::Forward, &42_i64);
        let params = PageParams { limit: Some(500), cursor: Some(token) };
        let spec = params.spec::<i64>().expect("valid cursor");
        assert_eq!(spec.limit, MAX_LIMIT);
        assert_eq!(spec.position, Some((Direction::Forward, 42)));

        let bad = PageParams { limit: None, cursor: Some("not-a-cursor".into()) };
        assert!(matches!(bad.spec::<i64>(), Err(ApiError::Validation { .. })));
    }

    #[test]
    fn links_keep_filters_and_replace_cursor() {
        let req = TestRequest::get().uri("/api/v1/things?status=open&cursor=old&limit=3").to_http_request();
        let spec = PageSpec { limit: 3, position: Some((Direction::Forward, 5_i64)) };
        let page = Page { items: vec![6, 7, 8], next: Some(8_i64), previous: Some(6_i64) };
        let meta = page_meta(&req, &page, &spec);
        let next = meta["next"].as_str().expect("next link");
        assert!(next.starts_with("/api/v1/things?status=open&limit=3&cursor="), "{next}");
        assert!(!next.contains("old"));
        assert_eq!(meta["count"], 3);
        let previous = meta["previous"].as_str().expect("previous link");
        let cursor = previous.rsplit("cursor=").next().expect("cursor");
        let spec = PageParams { limit: None, cursor: Some(cursor.into()) }.spec::<i64>().expect("decodes");
        assert_eq!(spec.position, Some((Direction::Backward, 6)));
    }
}
