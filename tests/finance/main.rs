//! Finance: invoices, payments, credit notes and reports that never disagree, and card
//! payments through a local stand-in that speaks Stripe's wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/isolation.rs"]
mod isolation;

mod invoices;
mod stripe;

use helpers::{TestApp, json};

/// A client of the signed-in firm; returns its id.
pub async fn client(app: &TestApp, token: &str) -> String {
    let created =
        json(app.post_as(token, "/api/v1/clients", &serde_json::json!({ "name": "Billable Co" })).await).await;
    created["data"]["id"].as_str().unwrap().to_owned()
}

/// A draft invoice with the given lines; returns its JSON.
pub async fn draft(app: &TestApp, token: &str, client_id: &str, lines: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({ "client_id": client_id, "currency": "USD", "line_items": lines });
    let response = app.post_as(token, "/api/v1/invoices", &body).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

/// A sent invoice for `amount` (one line); returns its JSON.
pub async fn sent(app: &TestApp, token: &str, client_id: &str, amount: i64) -> serde_json::Value {
    let invoice = draft(
        app,
        token,
        client_id,
        serde_json::json!([{ "description": "Work", "quantity": 1, "unit_price_minor": amount }]),
    )
    .await;
    let id = invoice["id"].as_str().unwrap();
    let response = app.post_as(token, &format!("/api/v1/invoices/{id}/send"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 200);
    json(response).await["data"].clone()
}

pub async fn pay(app: &TestApp, token: &str, invoice_id: &str, body: serde_json::Value) -> reqwest::Response {
    app.post_as(token, &format!("/api/v1/invoices/{invoice_id}/payments"), &body).await
}
