//! The success envelope: `{"data": ..., "meta": {...}}`.

use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub data: T,
    #[schema(value_type = Object)]
    pub meta: Value,
}

/// 200 with `data` and an empty `meta`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Envelope { data, meta: Value::Object(Map::new()) })
}

/// 201 with `data` and an empty `meta`.
pub fn created<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Created().json(Envelope { data, meta: Value::Object(Map::new()) })
}

/// 200 with a whole list (not paged): `meta` has `count`, and `next` and `previous` null.
pub fn whole_list<T: Serialize>(items: Vec<T>) -> HttpResponse {
    let meta = serde_json::json!({ "count": items.len(), "next": null, "previous": null });
    with_meta(items, meta)
}

/// 200 with `data` and the given `meta` (list pages carry count, limit, next, previous).
pub fn with_meta<T: Serialize>(data: T, meta: Value) -> HttpResponse {
    HttpResponse::Ok().json(Envelope { data, meta })
}
