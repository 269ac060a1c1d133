//! Health, readiness, request ids, the API description and metrics.

use crate::helpers::{json, spawn_app, spawn_app_with};

#[actix_web::test]
async fn health_answers_without_io() {
    let app = spawn_app().await;
    for path in ["/health/", "/health"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(json(response).await["data"]["status"], "ok");
    }
}

#[actix_web::test]
async fn ready_checks_database_and_redis() {
    let app = spawn_app().await;
    let response = app.get("/ready/").await;
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["checks"]["database"], "up");
    assert_eq!(body["data"]["checks"]["redis"], "up");
}

#[actix_web::test]
async fn ready_without_redis_uses_the_in_process_bus() {
    let app = spawn_app_with(|s| s.redis.url = String::new().into()).await;
    let body = json(app.get("/ready/").await).await;
    assert_eq!(body["data"]["checks"]["redis"], "not_configured");
    assert_eq!(body["data"]["checks"]["database"], "up");
}

#[actix_web::test]
async fn ready_is_503_when_the_database_is_unreachable() {
    // A port that was free a moment ago: nothing listens there.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(|s| {
        s.database.port = closed_port;
        s.database.connect_timeout_ms = 500;
    })
    .await;
    let started = std::time::Instant::now();
    let response = app.get("/ready/").await;
    assert_eq!(response.status(), 503);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], "unavailable");
    // Named, without the connection error's text (hosts, ports, roles).
    assert_eq!(body["error"]["details"]["checks"]["database"], "down");
    assert!(!body.to_string().contains(&closed_port.to_string()), "{body}");
    assert_eq!(body["error"]["details"]["checks"]["redis"], "up");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "readiness must not hang");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/health/").await.status(), 200);
}

#[actix_web::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/health/")).header("X-Request-Id", "trace-abc.123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");

    let response = app.get("/health/").await;
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    // Unsafe ids are replaced rather than written into logs; errors carry an id too.
    let response = app.client.get(app.url("/nowhere")).header("X-Request-Id", "bad id\twith tab").send().await.unwrap();
    let replaced = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");
}

#[actix_web::test]
async fn openapi_describes_the_endpoints_and_the_ui_is_served() {
    let app = spawn_app().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc = json(response).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let endpoints = [
        ("get", "/health/"),
        ("get", "/ready/"),
        ("get", "/metrics"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/auth/mfa/enroll"),
        ("post", "/api/v1/auth/mfa/confirm"),
        ("post", "/api/v1/auth/mfa/disable"),
        ("post", "/api/v1/auth/password"),
        ("post", "/api/v1/auth/password/forgot"),
        ("post", "/api/v1/auth/password/reset"),
        ("get", "/api/v1/me"),
        ("get", "/api/v1/members"),
        ("post", "/api/v1/members"),
        ("post", "/api/v1/members/invitations/{id}/resend"),
        ("delete", "/api/v1/members/invitations/{id}"),
        ("post", "/api/v1/invitations/preview"),
        ("post", "/api/v1/invitations/accept"),
        ("patch", "/api/v1/members/{user_id}"),
        ("delete", "/api/v1/members/{user_id}"),
        ("get", "/api/v1/audit-events"),
        ("get", "/api/v1/security/break-glass"),
        ("post", "/api/v1/security/break-glass/{id}/revoke"),
        ("post", "/api/v1/platform/auth/login"),
        ("post", "/api/v1/platform/auth/logout"),
        ("get", "/api/v1/platform/firms"),
        ("get", "/api/v1/platform/break-glass"),
        ("post", "/api/v1/platform/break-glass"),
        ("post", "/api/v1/platform/break-glass/{id}/approve"),
        ("post", "/api/v1/platform/break-glass/{id}/token"),
        ("post", "/api/v1/platform/break-glass/{id}/revoke"),
        ("get", "/api/v1/webhooks"),
        ("post", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks/{id}"),
        ("patch", "/api/v1/webhooks/{id}"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("post", "/api/v1/webhooks/{id}/rotate-secret"),
        ("post", "/api/v1/webhooks/{id}/ping"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
        ("post", "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"),
        ("get", "/api/v1/jobs/dead"),
        ("post", "/api/v1/jobs/{id}/retry"),
        ("get", "/api/v1/clients"),
        ("post", "/api/v1/clients"),
        ("get", "/api/v1/clients/{id}"),
        ("patch", "/api/v1/clients/{id}"),
        ("delete", "/api/v1/clients/{id}"),
        ("post", "/api/v1/clients/{id}/notes"),
        ("get", "/api/v1/clients/{id}/timeline"),
        ("get", "/api/v1/contacts"),
        ("post", "/api/v1/contacts"),
        ("get", "/api/v1/contacts/{id}"),
        ("patch", "/api/v1/contacts/{id}"),
        ("delete", "/api/v1/contacts/{id}"),
        ("get", "/api/v1/leads"),
        ("post", "/api/v1/leads"),
        ("get", "/api/v1/leads/{id}"),
        ("patch", "/api/v1/leads/{id}"),
        ("post", "/api/v1/leads/{id}/convert"),
        ("get", "/api/v1/prospects"),
        ("post", "/api/v1/prospects"),
        ("get", "/api/v1/prospects/{id}"),
        ("patch", "/api/v1/prospects/{id}"),
        ("get", "/api/v1/prospects/{id}/proposals"),
        ("post", "/api/v1/prospects/{id}/proposals"),
        ("get", "/api/v1/proposals/{id}"),
        ("patch", "/api/v1/proposals/{id}"),
        ("post", "/api/v1/proposals/{id}/transition"),
        ("get", "/api/v1/conversations"),
        ("post", "/api/v1/conversations"),
        ("get", "/api/v1/conversations/{id}"),
        ("patch", "/api/v1/conversations/{id}"),
        ("get", "/api/v1/conversations/{id}/messages"),
        ("post", "/api/v1/conversations/{id}/messages"),
        ("post", "/api/v1/conversations/{id}/read"),
        ("post", "/api/v1/realtime/ticket"),
        ("get", "/api/v1/ws"),
        ("get", "/api/v1/invoices"),
        ("post", "/api/v1/invoices"),
        ("get", "/api/v1/invoices/{id}"),
        ("patch", "/api/v1/invoices/{id}"),
        ("post", "/api/v1/invoices/{id}/send"),
        ("post", "/api/v1/invoices/{id}/void"),
        ("get", "/api/v1/invoices/{id}/payments"),
        ("post", "/api/v1/invoices/{id}/payments"),
        ("get", "/api/v1/invoices/{id}/credit-notes"),
        ("post", "/api/v1/invoices/{id}/credit-notes"),
        ("post", "/api/v1/invoices/{id}/payment-intent"),
        ("get", "/api/v1/finance/aging"),
        ("get", "/api/v1/finance/summary"),
        ("get", "/api/v1/finance/settings"),
        ("patch", "/api/v1/finance/settings"),
        ("post", "/api/v1/stripe/webhook"),
        ("get", "/api/v1/sms/settings"),
        ("put", "/api/v1/sms/settings"),
        ("get", "/api/v1/mailboxes"),
        ("post", "/api/v1/mailboxes"),
        ("get", "/api/v1/mailboxes/{id}"),
        ("patch", "/api/v1/mailboxes/{id}"),
        ("delete", "/api/v1/mailboxes/{id}"),
        ("post", "/api/v1/mailboxes/{id}/test"),
        ("get", "/api/v1/email/settings"),
        ("put", "/api/v1/email/settings"),
        ("get", "/api/v1/email/rules"),
        ("post", "/api/v1/email/rules"),
        ("put", "/api/v1/email/rules/{id}"),
        ("delete", "/api/v1/email/rules/{id}"),
        ("post", "/api/v1/email/rules/dry-run"),
        ("get", "/api/v1/emails/triage"),
        ("get", "/api/v1/emails/{id}"),
        ("get", "/api/v1/emails/{id}/parts/{position}"),
        ("get", "/api/v1/conversations/{id}/emails"),
        ("get", "/api/v1/sms/numbers"),
        ("post", "/api/v1/sms/numbers"),
        ("delete", "/api/v1/sms/numbers/{id}"),
        ("post", "/api/v1/twilio/sms"),
        ("post", "/api/v1/twilio/status/{firm_id}"),
        ("get", "/api/v1/business-calendars"),
        ("post", "/api/v1/business-calendars"),
        ("get", "/api/v1/business-calendars/{id}"),
        ("patch", "/api/v1/business-calendars/{id}"),
        ("delete", "/api/v1/business-calendars/{id}"),
        ("post", "/api/v1/business-calendars/{id}/holidays/import"),
        ("get", "/api/v1/business-calendars/{id}/due"),
        ("get", "/api/v1/business-calendars/{id}/elapsed"),
        ("get", "/api/v1/tickets"),
        ("post", "/api/v1/tickets"),
        ("get", "/api/v1/tickets/{id}"),
        ("patch", "/api/v1/tickets/{id}"),
        ("get", "/api/v1/tickets/{id}/activity"),
        ("get", "/api/v1/tickets/{id}/sla-policy"),
        ("get", "/api/v1/tickets/{id}/sla"),
        ("get", "/api/v1/sla/report"),
        ("get", "/api/v1/sla-policies"),
        ("post", "/api/v1/sla-policies"),
        ("get", "/api/v1/sla-policies/{id}"),
        ("patch", "/api/v1/sla-policies/{id}"),
        ("delete", "/api/v1/sla-policies/{id}"),
        ("get", "/api/v1/calendar/availability"),
        ("put", "/api/v1/calendar/availability"),
        ("get", "/api/v1/booking-links"),
        ("post", "/api/v1/booking-links"),
        ("get", "/api/v1/booking-links/{id}"),
        ("patch", "/api/v1/booking-links/{id}"),
        ("get", "/api/v1/bookings"),
        ("post", "/api/v1/bookings/{id}/cancel"),
        ("post", "/api/v1/bookings/{id}/confirm"),
        ("get", "/api/v1/public/booking-links/{slug}"),
        ("get", "/api/v1/public/booking-links/{slug}/slots"),
        ("post", "/api/v1/public/booking-links/{slug}/bookings"),
        ("post", "/api/v1/public/bookings/lookup"),
        ("post", "/api/v1/public/bookings/cancel"),
        ("post", "/api/v1/public/bookings/reschedule"),
        ("get", "/api/v1/calendar/events"),
        ("post", "/api/v1/calendar/events"),
        ("delete", "/api/v1/calendar/events/{id}"),
        ("post", "/api/v1/calendar/events/{id}/exceptions"),
        ("post", "/api/v1/calendar/feed"),
        ("get", "/api/v1/public/calendar-feeds/{token}"),
        ("post", "/api/v1/contacts/import"),
        ("post", "/api/v1/leads/import"),
    ];
    for (method, path) in endpoints {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} missing from the API description");
        let responses = operation["responses"].as_object().unwrap();
        // A WebSocket upgrade succeeds with 101.
        let success = |code: &String| code.starts_with('2') || code == "101";
        assert!(responses.keys().any(success), "{method} {path}: no success response");
        if path.starts_with("/api/v1/") {
            assert!(responses.keys().any(|code| code.starts_with('4')), "{method} {path}: no error response");
        }
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, endpoints.len(), "the description has endpoints this test does not know");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["paths"]["/ready/"]["get"]["responses"]["503"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Every reference resolves: a client generated from the description must compile.
    let text = doc.to_string();
    let mut dangling: Vec<&str> = text
        .split("\"#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| !doc["components"]["schemas"][*name].is_object())
        .collect();
    dangling.dedup();
    assert!(dangling.is_empty(), "references to undefined schemas: {dangling:?}");
    // Generated clients name their calls by operationId: two operations sharing one get
    // one type, and a client calling one of them is typed as the other.
    let mut by_id: std::collections::HashMap<&str, Vec<String>> = std::collections::HashMap::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            if let Some(id) = operation["operationId"].as_str() {
                by_id.entry(id).or_default().push(format!("{method} {path}"));
            }
        }
    }
    let shared: Vec<_> = by_id.into_iter().filter(|(_, operations)| operations.len() > 1).collect();
    assert!(shared.is_empty(), "operationIds used more than once: {shared:?}");

    let ui = app.get("/api/docs/").await;
    assert_eq!(ui.status(), 200);
    assert!(ui.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(ui.text().await.unwrap().contains("swagger"));
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_show_the_pool() {
    let app = spawn_app().await;
    assert_eq!(app.get("/ready/").await.status(), 200);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let ready_count = |text: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("http_requests_total{") && l.contains("route=\"/ready/\"") && l.contains("status=\"200\"")
            })
            .unwrap_or_else(|| panic!("no request counter for /ready/ in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let before = ready_count(&text);
    // The counter is the process's (other tests' servers count too): this test's own three
    // requests must each show.
    for _ in 0..3 {
        assert_eq!(app.get("/ready/").await.status(), 200);
    }
    let after = ready_count(&app.get("/metrics").await.text().await.unwrap());
    assert!(after - before >= 3.0, "{before} -> {after}");
    assert!(text.contains("http_request_duration_seconds_bucket{"), "latency histogram missing");
    assert!(text.contains("db_pool_max_connections"));
    assert!(text.contains("db_pool_wait_seconds"));
}

#[actix_web::test]
async fn each_http_worker_serves_requests_from_a_pool_of_its_own() {
    let app = spawn_app_with(|s| {
        s.server.workers = 2;
        s.database.max_connections = 6;
    })
    .await;
    for _ in 0..4 {
        assert_eq!(app.get("/ready/").await.status(), 200);
    }
    let [(background_name, background), (http_name, http)] = app.state.pool_statuses();
    assert_eq!((background_name, http_name), ("background", "http"));
    // The background pool keeps the configured size; the workers share it out, 3 each.
    assert_eq!(background.max_size, 6);
    assert_eq!(http.max_size, 6);
    // The readiness checks' round trips went through the workers' pools.
    assert!(http.size >= 1, "{http:?}");
    let scraped = app.get("/metrics").await.text().await.unwrap();
    assert!(scraped.contains("db_pool_max_connections{pool=\"http\"}"), "{scraped}");
    assert!(scraped.contains("db_pool_max_connections{pool=\"background\"}"), "{scraped}");

    // A worker actix replaces (after a panic) builds a new pool; the stopped one's must
    // leave the count rather than be summed in for the node's life.
    let replacement_pool =
        consultantpro::db::Db::sized(&app.settings.database, app.settings.jobs.max_attempts, 5).unwrap();
    let replacement = app.state.for_worker(replacement_pool);
    assert_eq!(app.state.pool_statuses()[1].1.max_size, 6 + 5, "a running worker's pool counts");
    drop(replacement);
    assert_eq!(app.state.pool_statuses()[1].1.max_size, 6, "a stopped worker's pool still counted");
}

#[actix_web::test]
async fn metrics_behind_a_token_answer_only_its_bearer() {
    let app = spawn_app_with(|s| s.telemetry.metrics_token = "scrape-secret-for-tests".to_owned().into()).await;
    let refused = app.get("/metrics").await;
    assert_eq!(refused.status(), 401);
    assert_eq!(json(refused).await["error"]["code"], "unauthorized");
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("scrape-secret-for-test").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let scraped = app.client.get(app.url("/metrics")).bearer_auth("scrape-secret-for-tests").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("db_pool_max_connections"));
    // Only /metrics is behind it.
    assert_eq!(app.get("/ready/").await.status(), 200);
}

#[actix_web::test]
async fn every_webhook_event_is_documented_in_the_openapi_document_and_the_readme() {
    use consultantpro::domain::webhooks::EventType;
    let app = spawn_app().await;
    let doc = json(app.get("/api/openapi.json").await).await;
    let schemas = &doc["components"]["schemas"];
    let listed = |schema: &str| -> Vec<String> {
        schemas[schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let names: Vec<String> = EventType::ALL.iter().map(|e| e.as_str().to_owned()).collect();
    assert_eq!(listed("EventType"), names);
    let mut selectors = names.clone();
    selectors.push("*".to_owned());
    assert_eq!(listed("EventSelector"), selectors);
    for event in EventType::ALL {
        assert_eq!(serde_json::to_value(event).unwrap(), event.as_str(), "serde and as_str agree");
        assert_eq!(EventType::parse(event.as_str()), Some(event));
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for name in &names {
        assert!(readme.contains(&format!("`{name}`")), "README does not list {name}");
    }
    // Subscriptions accept exactly the set (and `*`), nothing else.
    let (_, _, _, token) = crate::helpers::signed_in_owner(&app).await;
    let body = serde_json::json!({ "url": "https://example.com/hook", "event_types": names });
    assert_eq!(app.post_as(&token, "/api/v1/webhooks", &body).await.status(), 201);
    let body = serde_json::json!({ "url": "https://example.com/hook", "event_types": ["invoice.paid"] });
    assert_eq!(app.post_as(&token, "/api/v1/webhooks", &body).await.status(), 400);
}

#[actix_web::test]
async fn fixed_value_sets_are_documented_as_enums_from_the_domain_constants() {
    use consultantpro::domain::{clients::CLIENT_STATUSES, pipeline::LEAD_STATUSES, pipeline::STAGES};
    let app = spawn_app().await;
    let doc = json(app.get("/api/openapi.json").await).await;
    let listed = |schema: &str| -> Vec<String> {
        let values = doc["components"]["schemas"][schema]["enum"].as_array().unwrap_or_else(|| panic!("{schema}"));
        values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(listed("LeadStatus"), LEAD_STATUSES);
    assert_eq!(listed("ProspectStage"), STAGES);
    assert_eq!(listed("ClientStatus"), CLIENT_STATUSES);
    // Query parameters and body fields point at them.
    let param = |path: &str, name: &str| -> serde_json::Value {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path} ?{name}")).clone()
    };
    assert!(param("/api/v1/leads", "status").to_string().contains("#/components/schemas/LeadStatus"));
    assert!(param("/api/v1/prospects", "stage").to_string().contains("#/components/schemas/ProspectStage"));
    assert!(param("/api/v1/clients", "status").to_string().contains("#/components/schemas/ClientStatus"));
    assert!(doc["components"]["schemas"]["LeadBody"]["properties"]["status"].to_string().contains("LeadStatus"));
}

#[actix_web::test]
async fn a_creation_documents_the_fields_it_needs_and_the_update_does_not() {
    use consultantpro::domain::{clients, pipeline};
    let app = spawn_app().await;
    let doc = json(app.get("/api/openapi.json").await).await;
    let body_of = |path: &str, method: &str| {
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    for (path, update, fields) in [
        ("/api/v1/clients", "/api/v1/clients/{id}", clients::REQUIRED_ON_CREATE.as_slice()),
        ("/api/v1/prospects", "/api/v1/prospects/{id}", pipeline::PROSPECT_REQUIRED_ON_CREATE.as_slice()),
    ] {
        let create = body_of(path, "post");
        let required: Vec<&str> = create["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {create}"))
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for field in fields {
            assert!(required.contains(field), "{path} does not require {field}: {create}");
            assert!(
                !create["properties"][field].to_string().contains("\"null\""),
                "{path}.{field} is nullable: {create}"
            );
        }
        let changes = body_of(update, "patch");
        assert!(changes.to_string().contains("$ref"), "the update keeps the shared, all-optional body: {changes}");
    }
    // What the document says is what the server does.
    let (_, _, _, token) = crate::helpers::signed_in_owner(&app).await;
    let refused = json(app.post_as(&token, "/api/v1/prospects", &serde_json::json!({})).await).await;
    let named: Vec<&String> = refused["error"]["details"]["fields"].as_object().unwrap().keys().collect();
    assert_eq!(named, ["client_id", "currency", "name"]);
}

/// Every fixed value set the API documents as an enum is exactly its column's CHECK
/// constraint: the document, the domain's checks and the database cannot disagree.
#[actix_web::test]
async fn documented_value_sets_are_the_columns_check_constraints() {
    use diesel::QueryableByName;
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Definition {
        #[diesel(sql_type = Text)]
        definition: String,
    }
    let db = crate::helpers::test_db().await;
    for (table, column, values) in consultantpro::domain::value_sets::STORED {
        let sql = format!(
            "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint \
              WHERE conrelid = '{table}'::regclass AND contype = 'c' \
                AND pg_get_constraintdef(oid) LIKE '%({column} = ANY%'"
        );
        let definitions: Vec<Definition> = db
            .firm_tx_retried(consultantpro::domain::FirmId(uuid::Uuid::nil()), async |conn| {
                Ok::<_, consultantpro::domain::DomainError>(diesel::sql_query(&sql).load(conn).await?)
            })
            .await
            .unwrap();
        assert_eq!(definitions.len(), 1, "{table}.{column}: one CHECK listing its values");
        let mut stored: Vec<&str> = definitions[0]
            .definition
            .split('\'')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, value)| value)
            .collect();
        stored.sort_unstable();
        let mut documented = values.to_vec();
        documented.sort_unstable();
        assert_eq!(stored, documented, "{table}.{column}");
    }
}
