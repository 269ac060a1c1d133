//! Webhook endpoints and deliveries through the queue, with a real runner per test.

use std::sync::Arc;
use std::time::Duration;

use consultantpro::bus::Bus;
use consultantpro::domain::firms::Firm;
use consultantpro::domain::webhooks::verify_signature;
use consultantpro::outbound::runner::{JobContext, JobRunner};

use crate::helpers::{TestApp, json, signed_in_owner, spawn_app, spawn_app_with};
use crate::receiver::Receiver;

/// A runner for this test's firm only, running in the background until the test ends.
fn start_runner(app: &TestApp, firm: &Firm) {
    let ctx = JobContext::new(app.db(), Bus::in_process(), Arc::new(app.settings.clone())).unwrap();
    let runner = JobRunner::new(ctx, format!("test-{}", firm.slug)).only_firm(firm.firm_id());
    actix_web::rt::spawn(runner.run());
}

async fn register(app: &TestApp, token: &str, url: &str, events: serde_json::Value) -> (String, String) {
    let response =
        app.post_as(token, "/api/v1/webhooks", &serde_json::json!({ "url": url, "event_types": events })).await;
    assert_eq!(response.status(), 201);
    let body = json(response).await;
    (body["data"]["endpoint"]["id"].as_str().unwrap().to_owned(), body["data"]["secret"].as_str().unwrap().to_owned())
}

async fn ping(app: &TestApp, token: &str, endpoint: &str) -> String {
    let response = app.post_as(token, &format!("/api/v1/webhooks/{endpoint}/ping"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 202);
    json(response).await["data"]["delivery_id"].as_str().unwrap().to_owned()
}

async fn deliveries(app: &TestApp, token: &str, endpoint: &str) -> Vec<serde_json::Value> {
    json(app.get_as(token, &format!("/api/v1/webhooks/{endpoint}/deliveries")).await).await["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// Polls until `check` holds, or fails after 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn deliveries_are_signed_with_the_secret_shown_once() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 200);
    let (endpoint, secret) = register(&app, &owner, &receiver.url, serde_json::json!(["member.added"])).await;
    let listed = json(app.get_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await).await;
    assert!(listed["data"].get("secret").is_none(), "the secret is shown only once");
    start_runner(&app, &firm);

    let delivery_id = ping(&app, &owner, &endpoint).await;
    let request = receiver.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(request.event, "ping");
    assert_eq!(request.delivery_id, delivery_id);
    let now = chrono::Utc::now().timestamp();
    assert!(verify_signature(&secret, &request.signature, &request.body, now, 300));
    assert!(!verify_signature("whsec_someone_else", &request.signature, &request.body, now, 300));
    assert!(
        !verify_signature(&secret, &request.signature, &request.body, now + 3600, 300),
        "stale timestamps are refused"
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["id"], delivery_id);
    assert_eq!(body["type"], "ping");
    assert_eq!(body["firm_id"], firm.id.to_string());

    eventually("the delivery log to show success", || async {
        deliveries(&app, &owner, &endpoint).await.first().is_some_and(|d| d["state"] == "succeeded")
    })
    .await;
    let logged = &deliveries(&app, &owner, &endpoint).await[0];
    assert_eq!(logged["last_status_code"], 200);
    assert!(logged["last_latency_ms"].is_i64(), "the attempt's latency is recorded: {logged}");
    assert_eq!(logged["attempts"], 1);

    // Rotation: the old secret no longer verifies the next delivery.
    let rotated =
        json(app.post_as(&owner, &format!("/api/v1/webhooks/{endpoint}/rotate-secret"), &serde_json::json!({})).await)
            .await;
    let new_secret = rotated["data"]["secret"].as_str().unwrap();
    ping(&app, &owner, &endpoint).await;
    let second = receiver.wait_for(2, Duration::from_secs(10)).await.remove(1);
    assert!(verify_signature(new_secret, &second.signature, &second.body, chrono::Utc::now().timestamp(), 300));
    assert!(!verify_signature(&secret, &second.signature, &second.body, chrono::Utc::now().timestamp(), 300));
}

#[actix_web::test]
async fn a_failed_delivery_is_retried_with_the_same_delivery_id() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[500, 503], 200);
    let (endpoint, _) = register(&app, &owner, &receiver.url, serde_json::json!(["*"])).await;
    start_runner(&app, &firm);
    let delivery_id = ping(&app, &owner, &endpoint).await;
    let requests = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert!(requests.iter().all(|r| r.delivery_id == delivery_id), "{requests:?}");
    eventually("success after retries", || async {
        deliveries(&app, &owner, &endpoint)
            .await
            .first()
            .is_some_and(|d| d["state"] == "succeeded" && d["attempts"] == 3)
    })
    .await;
}

#[actix_web::test]
async fn member_events_reach_subscribed_endpoints_only() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 200);
    register(&app, &owner, &receiver.url, serde_json::json!(["member.added"])).await;
    let other = Receiver::start(&[], 200);
    register(&app, &owner, &other.url, serde_json::json!(["invoice.sent"])).await;
    start_runner(&app, &firm);
    let email = format!("hooked-{}@example.com", uuid::Uuid::now_v7().simple());
    let added = app.post_as(&owner, "/api/v1/members", &serde_json::json!({ "email": email, "role": "staff" })).await;
    assert_eq!(added.status(), 201);
    // The member is added when the invitation is accepted (the runner sends its email).
    let token = crate::helpers::token_in(&crate::helpers::mail_to(&email).await, "accept-invitation");
    let accepted = app
        .post(
            "/api/v1/invitations/accept",
            &serde_json::json!({ "token": token, "password": crate::helpers::PASSWORD }),
        )
        .await;
    assert_eq!(accepted.status(), 200);
    let request = receiver.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(request.event, "member.added");
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["data"]["role"], "staff");
    assert!(!String::from_utf8_lossy(&request.body).contains(&email), "events carry ids, not addresses");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(other.requests().is_empty());
}

#[actix_web::test]
async fn a_permanently_failing_delivery_goes_to_the_dead_letter_queue_and_can_be_retried() {
    let app = spawn_app_with(|s| s.jobs.max_attempts = 2).await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 500);
    let (endpoint, _) = register(&app, &owner, &receiver.url, serde_json::json!(["*"])).await;
    start_runner(&app, &firm);
    ping(&app, &owner, &endpoint).await;

    eventually("the job to die", || async {
        !json(app.get_as(&owner, "/api/v1/jobs/dead").await).await["data"].as_array().unwrap().is_empty()
    })
    .await;
    let dead = json(app.get_as(&owner, "/api/v1/jobs/dead").await).await["data"].as_array().unwrap().clone();
    assert_eq!(receiver.requests().len(), 2, "exactly max_attempts tries");
    let job = &dead[0];
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["kind"], "webhook.deliver");
    assert!(job["last_error"].as_str().unwrap().contains("500"), "{job}");
    assert_eq!(deliveries(&app, &owner, &endpoint).await[0]["state"], "failed");

    receiver.set_default_status(200);
    let retried = app
        .post_as(&owner, &format!("/api/v1/jobs/{}/retry", job["id"].as_str().unwrap()), &serde_json::json!({}))
        .await;
    assert_eq!(retried.status(), 200);
    assert_eq!(json(retried).await["data"]["state"], "queued");
    receiver.wait_for(3, Duration::from_secs(10)).await;
    eventually("the retried job to succeed", || async {
        deliveries(&app, &owner, &endpoint).await[0]["state"] == "succeeded"
    })
    .await;
    assert!(json(app.get_as(&owner, "/api/v1/jobs/dead").await).await["data"].as_array().unwrap().is_empty());
    // Retrying a job that is not dead is a conflict.
    let again = app
        .post_as(&owner, &format!("/api/v1/jobs/{}/retry", job["id"].as_str().unwrap()), &serde_json::json!({}))
        .await;
    assert_eq!(again.status(), 409);
}

#[actix_web::test]
async fn an_endpoint_failing_too_often_is_switched_off_and_the_firm_is_told() {
    let app = spawn_app_with(|s| {
        s.jobs.max_attempts = 1;
        s.webhooks.disable_after_failures = 3;
    })
    .await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 500);
    let (endpoint, _) = register(&app, &owner, &receiver.url, serde_json::json!(["*"])).await;
    start_runner(&app, &firm);
    for _ in 0..3 {
        ping(&app, &owner, &endpoint).await;
    }
    eventually("the endpoint to be switched off", || async {
        json(app.get_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await).await["data"]["active"] == false
    })
    .await;
    let shown = json(app.get_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await).await;
    assert!(shown["data"]["disabled_reason"].as_str().unwrap().contains("consecutive"));
    let events = json(app.get_as(&owner, "/api/v1/audit-events?action=webhook.disabled").await).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);

    // Switching it back on clears the streak.
    let on =
        app.patch_as(&owner, &format!("/api/v1/webhooks/{endpoint}"), &serde_json::json!({ "active": true })).await;
    assert_eq!(json(on).await["data"]["failure_streak"], 0);
}

#[actix_web::test]
async fn bad_endpoint_input_is_400_and_another_firms_endpoints_do_not_exist() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    for body in [
        serde_json::json!({ "url": "ftp://example.com/x", "event_types": ["*"] }),
        serde_json::json!({ "url": "https://user:pw@example.com/x", "event_types": ["*"] }),
        serde_json::json!({ "url": "https://example.com/x", "event_types": [] }),
        serde_json::json!({ "url": "https://example.com/x", "event_types": ["no.such.event"] }),
        serde_json::json!({ "url": "https://example.com/x" }),
        serde_json::json!({ "url": 7, "event_types": ["*"] }),
    ] {
        let response = app.post_as(&owner, "/api/v1/webhooks", &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let (endpoint, _) = register(&app, &owner, "https://hooks.example.com/cp", serde_json::json!(["*"])).await;
    let delivery = ping(&app, &owner, &endpoint).await;
    let shown_before = json(app.get_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await).await["data"].clone();

    let (_, _, _, intruder) = signed_in_owner(&app).await;
    for (method, path) in [
        ("get", format!("/api/v1/webhooks/{endpoint}")),
        ("patch", format!("/api/v1/webhooks/{endpoint}")),
        ("delete", format!("/api/v1/webhooks/{endpoint}")),
        ("post", format!("/api/v1/webhooks/{endpoint}/ping")),
        ("post", format!("/api/v1/webhooks/{endpoint}/rotate-secret")),
        ("get", format!("/api/v1/webhooks/{endpoint}/deliveries")),
        ("post", format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery}/redeliver")),
    ] {
        let response = match method {
            "get" => app.get_as(&intruder, &path).await,
            "patch" => app.patch_as(&intruder, &path, &serde_json::json!({ "active": false })).await,
            "delete" => app.delete_as(&intruder, &path).await,
            _ => app.post_as(&intruder, &path, &serde_json::json!({})).await,
        };
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    assert!(json(app.get_as(&intruder, "/api/v1/webhooks").await).await["data"].as_array().unwrap().is_empty());
    // The owner's endpoint is as it was, with only the owner's ping delivered.
    let shown_after = json(app.get_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await).await["data"].clone();
    assert_eq!(shown_after, shown_before);
    assert_eq!(deliveries(&app, &owner, &endpoint).await.len(), 1, "no ping or redelivery by the intruder");
}

#[actix_web::test]
async fn messages_and_invoice_changes_are_delivered_to_their_subscribers() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 200);
    let events = serde_json::json!(["message.created", "invoice.created", "invoice.updated"]);
    let (endpoint, _) = register(&app, &owner, &receiver.url, events).await;
    start_runner(&app, &firm);

    let conversation =
        json(app.post_as(&owner, "/api/v1/conversations", &serde_json::json!({ "subject": "Hooked" })).await).await;
    let conversation_id = conversation["data"]["id"].as_str().unwrap().to_owned();
    let posted = app
        .post_as(
            &owner,
            &format!("/api/v1/conversations/{conversation_id}/messages"),
            &serde_json::json!({ "body": "Heard by the webhook" }),
        )
        .await;
    assert_eq!(posted.status(), 201);
    let message_id = json(posted).await["data"]["id"].as_str().unwrap().to_owned();

    let client = json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Hooked Co" })).await).await;
    let lines = serde_json::json!([{ "description": "Work", "quantity": 1, "unit_price_minor": 1000 }]);
    let body = serde_json::json!({ "client_id": client["data"]["id"], "currency": "USD", "line_items": lines });
    let invoice = app.post_as(&owner, "/api/v1/invoices", &body).await;
    assert_eq!(invoice.status(), 201);
    let invoice_id = json(invoice).await["data"]["id"].as_str().unwrap().to_owned();
    let lines = serde_json::json!([{ "description": "More work", "quantity": 2, "unit_price_minor": 1000 }]);
    let patched = app
        .patch_as(&owner, &format!("/api/v1/invoices/{invoice_id}"), &serde_json::json!({ "line_items": lines }))
        .await;
    assert_eq!(patched.status(), 200);

    // conversation.created and client.created are not subscribed: exactly these three come.
    let requests = receiver.wait_for(3, Duration::from_secs(10)).await;
    let bodies: Vec<serde_json::Value> = requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let of =
        |event: &str| bodies.iter().find(|b| b["type"] == event).unwrap_or_else(|| panic!("no {event}: {bodies:?}"));
    let message = of("message.created");
    assert_eq!(message["data"]["message_id"], message_id);
    assert_eq!(message["data"]["conversation_id"], conversation_id);
    assert_eq!(message["data"]["channel"], "internal");
    assert_eq!(message["firm_id"], firm.id.to_string());
    assert!(!message.to_string().contains("Heard by the webhook"), "events carry ids, not message text");
    assert_eq!(of("invoice.created")["data"]["invoice_id"], invoice_id);
    assert_eq!(of("invoice.updated")["data"]["invoice_id"], invoice_id);
    assert_eq!(of("invoice.updated")["data"]["total_minor"], 2000);

    // The database queued message.created itself, with the server's configured attempts.
    let logged = deliveries(&app, &owner, &endpoint).await;
    let delivery = logged.iter().find(|d| d["event_type"] == "message.created").expect("logged");
    let delivery_id = uuid::Uuid::parse_str(delivery["id"].as_str().unwrap()).unwrap();
    let attempts = job_attempts_of(&app, &firm, delivery_id).await;
    assert_eq!(attempts, i32::try_from(app.settings.jobs.max_attempts).unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests().len(), 3, "nothing else was subscribed to");
}

/// The `max_attempts` of the job that sends `delivery`.
async fn job_attempts_of(app: &TestApp, firm: &Firm, delivery: uuid::Uuid) -> i32 {
    use consultantpro::db::schema::jobs;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    app.db()
        .firm_tx(firm.firm_id(), |conn| {
            async move {
                jobs::table
                    .filter(jobs::payload.contains(serde_json::json!({ "delivery_id": delivery })))
                    .select(jobs::max_attempts)
                    .first::<i32>(conn)
                    .await
                    .map_err(consultantpro::db::DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap()
}

/// The signing secret column as stored for `endpoint`.
async fn stored_secret(app: &TestApp, firm: &Firm, endpoint: uuid::Uuid) -> String {
    use consultantpro::db::schema::webhook_endpoints;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    app.db()
        .firm_tx(firm.firm_id(), |conn| {
            async move {
                webhook_endpoints::table
                    .filter(webhook_endpoints::id.eq(endpoint))
                    .select(webhook_endpoints::secret)
                    .first::<String>(conn)
                    .await
                    .map_err(consultantpro::db::DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap()
}

#[actix_web::test]
async fn signing_secrets_are_stored_sealed_and_ones_stored_in_the_clear_get_sealed() {
    use consultantpro::db::schema::webhook_endpoints;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 200);
    let (endpoint, secret) = register(&app, &owner, &receiver.url, serde_json::json!(["*"])).await;
    let endpoint_id = uuid::Uuid::parse_str(&endpoint).unwrap();
    let stored = stored_secret(&app, &firm, endpoint_id).await;
    assert!(stored.starts_with("v1:") && !stored.contains(&secret), "{stored}");
    start_runner(&app, &firm);

    // A secret from before sealing, in the clear, still signs.
    let plain = "whsec_stored_before_sealing_was_introduced".to_owned();
    let written = plain.clone();
    app.db()
        .firm_tx(firm.firm_id(), |conn| {
            async move {
                diesel::update(webhook_endpoints::table.filter(webhook_endpoints::id.eq(endpoint_id)))
                    .set(webhook_endpoints::secret.eq(&written))
                    .execute(conn)
                    .await
                    .map_err(consultantpro::db::DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    ping(&app, &owner, &endpoint).await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let now = chrono::Utc::now().timestamp();
    assert!(verify_signature(&plain, &first.signature, &first.body, now, 300));

    // Sealing (what `migrate` and `reseal-secrets` run) seals it, and it still signs.
    let secrets = consultantpro::secret_box::SecretBox::from_settings(&app.settings.secrets).unwrap();
    let sealed = consultantpro::domain::webhooks::seal_all(&app.db(), &secrets, Some(firm.firm_id())).await.unwrap();
    assert_eq!(sealed, 1);
    let stored = stored_secret(&app, &firm, endpoint_id).await;
    assert!(stored.starts_with("v1:") && !stored.contains(&plain), "{stored}");
    assert_eq!(consultantpro::domain::webhooks::seal_all(&app.db(), &secrets, Some(firm.firm_id())).await.unwrap(), 0);
    ping(&app, &owner, &endpoint).await;
    let second = receiver.wait_for(2, Duration::from_secs(10)).await.remove(1);
    assert!(verify_signature(&plain, &second.signature, &second.body, chrono::Utc::now().timestamp(), 300));
}

#[actix_web::test]
async fn a_delivery_can_be_sent_again_and_a_deleted_endpoint_gets_nothing_more() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 200);
    let (endpoint, _) = register(&app, &owner, &receiver.url, serde_json::json!(["*"])).await;
    start_runner(&app, &firm);
    let delivery_id = ping(&app, &owner, &endpoint).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    eventually("the first attempt to succeed", || async {
        deliveries(&app, &owner, &endpoint).await.first().is_some_and(|d| d["state"] == "succeeded")
    })
    .await;

    let again = app
        .post_as(
            &owner,
            &format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery_id}/redeliver"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(again.status(), 202);
    assert_eq!(json(again).await["data"]["id"], delivery_id.as_str());
    let resent = receiver.wait_for(2, Duration::from_secs(10)).await.remove(1);
    assert_eq!(resent.delivery_id, delivery_id, "the same delivery id, so the receiver can drop the duplicate");
    eventually("the second attempt to be logged", || async {
        deliveries(&app, &owner, &endpoint)
            .await
            .first()
            .is_some_and(|d| d["attempts"] == 2 && d["state"] == "succeeded")
    })
    .await;

    assert_eq!(app.delete_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await.status(), 200);
    assert_eq!(app.get_as(&owner, &format!("/api/v1/webhooks/{endpoint}")).await.status(), 404);
    let listed = json(app.get_as(&owner, "/api/v1/webhooks").await).await;
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
    let ping_after = app.post_as(&owner, &format!("/api/v1/webhooks/{endpoint}/ping"), &serde_json::json!({})).await;
    assert_eq!(ping_after.status(), 404);
    let redeliver_after = app
        .post_as(
            &owner,
            &format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery_id}/redeliver"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(redeliver_after.status(), 404);
    assert_eq!(receiver.requests().len(), 2, "nothing more reached the deleted endpoint");
}
