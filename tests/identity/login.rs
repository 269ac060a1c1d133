//! Log-in, `/me`, throttling and the audit trail of log-ins.

use consultantpro::domain::memberships::Role;

use crate::helpers::{PASSWORD, add_member, json, new_firm, signed_in_owner, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_member_logs_in_and_sees_themselves() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, user_id) = add_member(&db, &firm, Role::Staff).await;
    let tokens = app.login_ok(&firm.slug, &email, PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(refresh.starts_with(&format!("{}.", firm.id)), "refresh token names its firm");

    let me = json(app.get_as(tokens["access_token"].as_str().unwrap(), "/api/v1/me").await).await;
    assert_eq!(me["data"]["user"]["id"], user_id.to_string());
    assert_eq!(me["data"]["user"]["email"], email);
    assert_eq!(me["data"]["firm"]["slug"], firm.slug);
    assert_eq!(me["data"]["role"], "staff");
    assert!(me["data"]["user"].get("password_hash").is_none());
}

#[actix_web::test]
async fn wrong_firm_email_or_password_look_the_same() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let other = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    let attempts = [
        (firm.slug.as_str(), email.as_str(), "wrong password entirely"),
        (firm.slug.as_str(), "nobody@example.com", PASSWORD),
        ("no-such-firm", email.as_str(), PASSWORD),
        // A real login, but not a member of this firm.
        (other.slug.as_str(), email.as_str(), PASSWORD),
    ];
    let mut bodies = Vec::new();
    for (slug, email, password) in attempts {
        let response = app.login(slug, email, password).await;
        assert_eq!(response.status(), 401);
        let mut body = json(response).await;
        assert_eq!(body["error"]["code"], "invalid_credentials");
        body["error"]["details"] = serde_json::Value::Null;
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "answers differ: {bodies:?}");
}

#[actix_web::test]
async fn malformed_login_bodies_are_400() {
    let app = spawn_app().await;
    for body in [
        serde_json::json!({}),
        serde_json::json!({ "firm": "x", "email": "a@b.co" }),
        serde_json::json!({ "firm": "x", "email": "a@b.co", "password": 5 }),
        serde_json::json!({ "firm": "", "email": "", "password": "" }),
        serde_json::json!({ "firm": "x", "email": "a@b.co", "password": "x".repeat(5000) }),
        serde_json::json!({ "firm": "x", "email": "a@b.co", "password": "y", "extra": true }),
    ] {
        let response = app.post("/api/v1/auth/login", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(json(response).await["error"]["code"], "validation_error");
    }
}

#[actix_web::test]
async fn repeated_failures_for_an_account_are_throttled_and_success_resets() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    // Four failures, then a success, then four more: never throttled (the limit is five).
    for _ in 0..4 {
        assert_eq!(app.login(&firm.slug, &email, "not the password").await.status(), 401);
    }
    app.login_ok(&firm.slug, &email, PASSWORD).await;
    for _ in 0..4 {
        assert_eq!(app.login(&firm.slug, &email, "not the password").await.status(), 401);
    }
    // The fifth failure in the window uses up the allowance; the next attempt waits.
    assert_eq!(app.login(&firm.slug, &email, "not the password").await.status(), 401);
    let response = app.login(&firm.slug, &email, PASSWORD).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 900);
    assert_eq!(json(response).await["error"]["code"], "rate_limited");
}

#[actix_web::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let app = spawn_app_with(|s| s.auth.login_max_failures_per_ip = 3).await;
    let db = app.db();
    let firm = new_firm(&db).await;
    for i in 0..3 {
        let response = app.login(&firm.slug, &format!("guess{i}@example.com"), "whatever it is").await;
        assert_eq!(response.status(), 401);
    }
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    let response = app.login(&firm.slug, &email, PASSWORD).await;
    assert_eq!(response.status(), 429, "a fourth try from the same address must wait");
    assert!(response.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn log_ins_are_audited_for_owners_and_admins_only() {
    let app = spawn_app().await;
    let (firm, _, owner_id, owner) = signed_in_owner(&app).await;
    let db = app.db();
    let (staff_email, _) = add_member(&db, &firm, Role::Staff).await;
    assert_eq!(app.login(&firm.slug, &staff_email, "wrong password here").await.status(), 401);
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await;

    let events = json(app.get_as(&owner, "/api/v1/audit-events?action=auth.login&limit=10").await).await;
    let events = events["data"].as_array().unwrap();
    assert!(events.iter().any(|e| e["result"] == "failure" && e["metadata"]["reason"] == "invalid_credentials"));
    assert!(events.iter().any(|e| e["result"] == "success" && e["actor_id"] == owner_id.to_string()));
    assert!(events.iter().all(|e| e["action"] == "auth.login"));
    for event in events {
        let text = event.to_string();
        assert!(!text.contains("wrong password"), "a password reached the audit log: {text}");
    }

    let response = app.get_as(staff["access_token"].as_str().unwrap(), "/api/v1/audit-events").await;
    assert_eq!(response.status(), 403);
    assert_eq!(json(response).await["error"]["code"], "forbidden");
}

#[actix_web::test]
async fn audit_listing_pages_and_rejects_bad_filters() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    // firm.created, member.added, auth.login
    let first = json(app.get_as(&owner, "/api/v1/audit-events?limit=2").await).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let next = first["meta"]["next"].as_str().expect("a next page");
    let second = json(app.get_as(&owner, next).await).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"][0]["action"], "firm.created");
    assert!(second["meta"]["next"].is_null());

    for bad in [
        "?from=yesterday",
        "?actor_id=42",
        "?limit=-1",
        "?cursor=zzz",
        "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let response = app.get_as(&owner, &format!("/api/v1/audit-events{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[actix_web::test]
async fn the_throttle_cannot_be_sidestepped_by_writing_the_firm_or_email_differently() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    let upper = firm.slug.to_uppercase();
    let (padded_left, padded_right) = (format!(" {}", firm.slug), format!("{} ", firm.slug));
    let shouted = email.to_uppercase();
    let spellings = [
        (firm.slug.as_str(), email.as_str()),
        (&upper, &email),
        (&padded_left, &shouted),
        (&padded_right, &email),
        (&upper, &shouted),
    ];
    // Five failures spread over five spellings of one account use up its allowance.
    for (slug, address) in spellings {
        assert_eq!(app.login(slug, address, "not the password").await.status(), 401, "{slug:?} {address:?}");
    }
    for (slug, address) in spellings {
        let response = app.login(slug, address, PASSWORD).await;
        assert_eq!(response.status(), 429, "{slug:?} {address:?} got another allowance");
    }
}

#[actix_web::test]
async fn the_throttles_bookkeeping_never_deadlocks_with_itself() {
    // The interleaving behind a sign-in answered 503: one request's success bookkeeping (the
    // account's row, then the address's) against another's counting (the address's row,
    // then the account's). Run both as fast as they go, side by side, on their own
    // connections; with the rows taken in opposite orders this deadlocks within moments.
    use consultantpro::domain::throttle::{self, Flow, ThrottlePolicy};
    use scoped_futures::ScopedFutureExt;
    let app = spawn_app().await;
    let db = app.db();
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let account = throttle::account_key(Flow::Login, &unique, "someone@example.com");
    let ip = format!("test-address-{unique}");
    let policy = ThrottlePolicy { max_per_account: u32::MAX, max_per_ip: u32::MAX, window: chrono::Duration::hours(1) };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let counting = async {
        let mut runs = 0;
        while std::time::Instant::now() < until {
            let (account, ip) = (account.clone(), ip.clone());
            db.platform_tx(|conn| {
                async move { throttle::take_attempts(conn, &account, Some(&ip), policy).await }.scope_boxed()
            })
            .await
            .expect("counting an attempt");
            runs += 1;
        }
        runs
    };
    let succeeding = async {
        let mut runs = 0;
        while std::time::Instant::now() < until {
            let (account, ip) = (account.clone(), ip.clone());
            db.platform_tx(|conn| async move { throttle::succeeded(conn, &account, Some(&ip)).await }.scope_boxed())
                .await
                .expect("recording a success");
            runs += 1;
        }
        runs
    };
    let (counted, succeeded) = futures_util::future::join(counting, succeeding).await;
    assert!(counted > 50 && succeeded > 50, "both sides ran: {counted} and {succeeded}");
}

#[actix_web::test]
async fn concurrent_wrong_log_ins_record_at_most_the_limit() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    let attempts = (0..20).map(|_| app.login(&firm.slug, &email, "not the password"));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 20, "{statuses:?}");
    assert_eq!(checked, 5, "exactly the limit was checked, the rest refused: {statuses:?}");
}

#[actix_web::test]
async fn ipv6_clients_are_throttled_per_64() {
    let app = spawn_app_with(|s| s.auth.login_max_failures_per_ip = 3).await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let prefix = app.ip.trim_end_matches("::1").to_owned();
    let from = |host: u32| {
        let (client, url) = (app.client.clone(), app.url("/api/v1/auth/login"));
        let address = format!("{prefix}:{host:x}:0:0:1");
        // A different account each time, so only the address can be what throttles.
        let email = format!("guess-{}@example.com", uuid::Uuid::now_v7().simple());
        async move {
            client
                .post(url)
                .header("x-forwarded-for", address)
                .json(&serde_json::json!({ "firm": "no-such-firm", "email": email, "password": "whatever it is" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Three addresses of one /64 share its allowance; a fourth address is refused.
    for host in 1..=3 {
        assert_eq!(from(host).await, 401);
    }
    assert_eq!(from(4).await, 429, "another address in the same /64 got a new allowance");
    // Another /64 is another client.
    let (email, _) = add_member(&db, &firm, Role::Staff).await;
    assert_eq!(app.login(&firm.slug, &email, PASSWORD).await.status(), 429, "the test client shares that /64");
    let other = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", crate::helpers::unique_ip())
        .json(&serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

/// The address an audited log-in recorded for `email`'s latest sign-in in `firm`.
async fn audited_ip(app: &crate::helpers::TestApp, owner_token: &str) -> Option<String> {
    let events = json(app.get_as(owner_token, "/api/v1/audit-events?action=auth.login").await).await;
    events["data"][0]["ip"].as_str().map(str::to_owned)
}

#[actix_web::test]
async fn forwarded_for_is_read_only_from_trusted_proxies_and_from_the_right() {
    // Not behind a proxy: the header is the client's own claim and is ignored.
    let app = spawn_app_with(|s| s.server.trust_forwarded_for = false).await;
    let db = app.db();
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Owner).await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let token = json(response).await["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(audited_ip(&app, &token).await.as_deref(), Some("127.0.0.1"));

    // Behind one proxy: the right-most entry (the proxy's) is the client; a spoofed
    // left-hand entry is not.
    let app = spawn_app_with(|s| {
        s.server.trust_forwarded_for = true;
        s.server.trusted_proxies = 1;
    })
    .await;
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Owner).await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.10")
        .json(&serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let token = json(response).await["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(audited_ip(&app, &token).await.as_deref(), Some("203.0.113.10"));

    // A client's own left-hand entry that is not even text does not hide the proxy's.
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Owner).await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", reqwest::header::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.12").unwrap())
        .json(&serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let token = json(response).await["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(audited_ip(&app, &token).await.as_deref(), Some("203.0.113.12"));

    // Behind two proxies: two places from the right.
    let app = spawn_app_with(|s| {
        s.server.trust_forwarded_for = true;
        s.server.trusted_proxies = 2;
    })
    .await;
    let firm = new_firm(&db).await;
    let (email, _) = add_member(&db, &firm, Role::Owner).await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.11, 192.0.2.1")
        .json(&serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let token = json(response).await["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(audited_ip(&app, &token).await.as_deref(), Some("203.0.113.11"));
}
