//! Card payments against a local stand-in for Stripe: it answers `POST
//! /v1/payment_intents` the way Stripe does (form-encoded request, bearer secret key,
//! JSON PaymentIntent back), and the test signs webhook events the way Stripe signs them.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use consultantpro::outbound::stripe::sign;
use secrecy::SecretString;

use crate::helpers::{TestApp, json, signed_in_owner, spawn_app_with};
use crate::{client, sent};

const SECRET_KEY: &str = "sk_test_standin";
const WEBHOOK_SECRET: &str = "whsec_standin";

type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Starts the stand-in; returns its base URL and the forms it received.
async fn stripe_standin() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let server = HttpServer::new(move || {
        let recorded = recorded.clone();
        App::new().route(
            "/v1/payment_intents",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let authorised = req.headers().get("authorization").and_then(|v| v.to_str().ok())
                        == Some(&format!("Bearer {SECRET_KEY}"));
                    if !authorised {
                        return HttpResponse::Unauthorized()
                            .json(serde_json::json!({ "error": { "type": "invalid_request_error", "message": "Invalid API Key provided" } }));
                    }
                    let form: Vec<(String, String)> =
                        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                    let id = format!("pi_{}", uuid::Uuid::now_v7().simple());
                    let answer = serde_json::json!({
                        "id": id, "object": "payment_intent",
                        "amount": field("amount").and_then(|a| a.parse::<i64>().ok()),
                        "currency": field("currency"), "status": "requires_payment_method",
                        "client_secret": format!("{id}_secret_standin"),
                        "metadata": { "firm_id": field("metadata[firm_id]"), "invoice_id": field("metadata[invoice_id]") },
                    });
                    recorded.lock().unwrap().push(form);
                    HttpResponse::Ok().json(answer)
                }
            }),
        )
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let address = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    (address, seen)
}

fn succeeded_event(event_id: &str, intent: &serde_json::Value, amount: i64) -> Vec<u8> {
    serde_json::json!({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "data": { "object": { "id": intent["payment_intent_id"], "object": "payment_intent", "amount": amount,
            "amount_received": amount, "currency": "usd", "status": "succeeded",
            "metadata": intent["metadata"] } },
    })
    .to_string()
    .into_bytes()
}

async fn deliver(app: &TestApp, payload: &[u8], signature: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/stripe/webhook"))
        .header("Stripe-Signature", signature)
        .header("Content-Type", "application/json")
        .body(payload.to_vec())
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_card_payment_is_recorded_once_from_a_verified_webhook() {
    let (base_url, seen) = stripe_standin().await;
    let app = spawn_app_with(|s| {
        s.stripe.base_url = base_url;
        s.stripe.secret_key = SecretString::from(SECRET_KEY);
        s.stripe.webhook_secret = SecretString::from(WEBHOOK_SECRET);
    })
    .await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let invoice = sent(&app, &owner, &client_id, 12_345).await;
    let id = invoice["id"].as_str().unwrap();

    let created = app.post_as(&owner, &format!("/api/v1/invoices/{id}/payment-intent"), &serde_json::json!({})).await;
    assert_eq!(created.status(), 201);
    let mut intent = json(created).await["data"].clone();
    assert_eq!((intent["amount_minor"].as_i64(), intent["currency"].as_str()), (Some(12_345), Some("USD")));
    assert!(intent["client_secret"].as_str().unwrap().contains("_secret_"));
    let form = seen.lock().unwrap()[0].clone();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("amount").as_deref(), Some("12345"));
    assert_eq!(field("currency").as_deref(), Some("usd"), "Stripe wants lower case");
    assert_eq!(field("metadata[invoice_id]").as_deref(), Some(id));
    assert_eq!(field("metadata[firm_id]"), Some(firm.id.to_string()));
    intent["metadata"] = serde_json::json!({ "firm_id": firm.id, "invoice_id": id });

    let now = chrono::Utc::now().timestamp();
    let payload = succeeded_event("evt_1", &intent, 12_345);
    // Bad, stale and missing signatures are refused and change nothing.
    let forged = sign(&payload, "whsec_wrong", now);
    assert_eq!(deliver(&app, &payload, &forged).await.status(), 400);
    let stale = sign(&payload, WEBHOOK_SECRET, now - 3600);
    assert_eq!(deliver(&app, &payload, &stale).await.status(), 400);
    assert_eq!(deliver(&app, &payload, "").await.status(), 400);
    // Signed correctly but not an event: refused in the error format, nothing recorded.
    let garbage = b"not json at all";
    let refused = deliver(&app, garbage, &sign(garbage, WEBHOOK_SECRET, now)).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(json(refused).await["error"]["code"], "validation_error");
    // An event for another integration on the same Stripe account is acknowledged and ignored.
    let foreign =
        br#"{"id":"evt_other","type":"payment_intent.succeeded","data":{"object":{"id":"pi_x","metadata":{}}}}"#;
    assert_eq!(deliver(&app, foreign, &sign(foreign, WEBHOOK_SECRET, now)).await.status(), 200);
    let tampered = succeeded_event("evt_1", &intent, 1);
    assert_eq!(deliver(&app, &tampered, &sign(&payload, WEBHOOK_SECRET, now)).await.status(), 400);
    let unpaid = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}")).await).await;
    assert_eq!(unpaid["data"]["balance_minor"], 12_345);

    let good = sign(&payload, WEBHOOK_SECRET, now);
    assert_eq!(deliver(&app, &payload, &good).await.status(), 200);
    // Stripe retries: the same event again records nothing more.
    assert_eq!(deliver(&app, &payload, &sign(&payload, WEBHOOK_SECRET, now + 5)).await.status(), 200);
    let paid = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}")).await).await;
    assert_eq!((paid["data"]["status"].as_str(), paid["data"]["balance_minor"].as_i64()), (Some("paid"), Some(0)));
    let payments = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}/payments")).await).await;
    let payments = payments["data"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(
        (payments[0]["method"].as_str(), payments[0]["reference"].as_str()),
        (Some("card"), intent["payment_intent_id"].as_str())
    );

    // A second success for a paid invoice is acknowledged but not applied.
    let late = succeeded_event("evt_2", &intent, 12_345);
    assert_eq!(deliver(&app, &late, &sign(&late, WEBHOOK_SECRET, now)).await.status(), 200);
    let still = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}/payments")).await).await;
    assert_eq!(still["data"].as_array().unwrap().len(), 1);
    let audit = json(app.get_as(&owner, "/api/v1/audit-events?action=payment.unapplied").await).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "staff are told to refund it");
    // Nothing left to pay: no new intent.
    let none = app.post_as(&owner, &format!("/api/v1/invoices/{id}/payment-intent"), &serde_json::json!({})).await;
    assert_eq!(none.status(), 409);

    // The intent and the events are this firm's alone.
    let (other, _, _, _) = signed_in_owner(&app).await;
    let tables = ["stripe_payment_intents", "stripe_events"];
    crate::isolation::assert_isolated(&app.db(), firm.firm_id(), other.firm_id(), &tables).await;
}

#[actix_web::test]
async fn without_stripe_configured_card_payments_are_unavailable() {
    let app = spawn_app_with(|_| {}).await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let invoice = sent(&app, &owner, &client_id, 100).await;
    let id = invoice["id"].as_str().unwrap();
    let response = app.post_as(&owner, &format!("/api/v1/invoices/{id}/payment-intent"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 503);
    assert_eq!(json(response).await["error"]["code"], "unavailable");
    assert_eq!(app.post("/api/v1/stripe/webhook", &serde_json::json!({})).await.status(), 503);
}
