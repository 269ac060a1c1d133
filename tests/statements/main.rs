//! How many SQL statements a list request makes: a page of 100 must cost no more statements
//! than a page of 1 (no query per row). A binary of its own, because the count comes from
//! diesel's process-wide default instrumentation, which every connection opened by this
//! process reports to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
use helpers::{TestApp, json, signed_in_owner, spawn_app};
use serde_json::json;

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn count_statements() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if matches!(event, InstrumentationEvent::StartQuery { .. }) {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }))
}

/// Statements one GET makes. The server's own background work (heartbeats, timers) also
/// counts, and only ever adds: the least of several tries is the request's own cost.
async fn statements_for(app: &TestApp, token: &str, path: &str, rows: usize) -> u64 {
    let mut least = u64::MAX;
    for _ in 0..5 {
        let before = STATEMENTS.load(Ordering::SeqCst);
        let response = app.get_as(token, path).await;
        let after = STATEMENTS.load(Ordering::SeqCst);
        assert_eq!(response.status(), 200, "{path}");
        let body = json(response).await;
        assert_eq!(body["data"].as_array().map(Vec::len), Some(rows), "{path}: {body}");
        least = least.min(after - before);
    }
    least
}

async fn create(app: &TestApp, token: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let response = app.post_as(token, path, &body).await;
    assert_eq!(response.status(), 201, "{path}");
    json(response).await["data"].clone()
}

#[actix_web::test]
async fn a_page_of_a_hundred_costs_the_statements_of_a_page_of_one() {
    set_default_instrumentation(count_statements).unwrap();
    let app = spawn_app().await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    let client = create(&app, &token, "/api/v1/clients", json!({ "name": "Client 0" })).await;
    let client_id = client["id"].as_str().unwrap().to_owned();
    let conversation = create(&app, &token, "/api/v1/conversations", json!({ "subject": "Thread 0" })).await;
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();
    for n in 0..100 {
        if n > 0 {
            create(&app, &token, "/api/v1/clients", json!({ "name": format!("Client {n}") })).await;
            create(&app, &token, "/api/v1/conversations", json!({ "subject": format!("Thread {n}") })).await;
        }
        let contact = json!({
            "first_name": format!("Person {n}"),
            "client_id": client_id,
            "emails": [format!("person{n}@example.com"), format!("p{n}@example.org")],
            "phones": [format!("+1415555{:04}", 2000 + n)],
        });
        create(&app, &token, "/api/v1/contacts", contact).await;
        create(&app, &token, "/api/v1/tickets", json!({ "subject": format!("Ticket {n}") })).await;
        let path = format!("/api/v1/conversations/{conversation_id}/messages");
        create(&app, &token, &path, json!({ "body": format!("message {n}") })).await;
    }

    let lists = [
        "/api/v1/contacts",
        "/api/v1/clients",
        "/api/v1/conversations",
        "/api/v1/tickets",
        &format!("/api/v1/conversations/{conversation_id}/messages"),
    ];
    for list in lists {
        let separator = if list.contains('?') { '&' } else { '?' };
        let one = statements_for(&app, &token, &format!("{list}{separator}limit=1"), 1).await;
        let hundred = statements_for(&app, &token, &format!("{list}{separator}limit=100"), 100).await;
        // The request's own session check, transaction and page: a counter that sees
        // nothing would pass the comparison below by accident.
        eprintln!("{list}: {one} statements for 1, {hundred} for 100");
        assert!(one >= 3, "{list}: only {one} statements counted for a page of 1");
        assert!(hundred <= one, "{list}: a page of 100 made {hundred} statements, a page of 1 made {one}");
    }
}
