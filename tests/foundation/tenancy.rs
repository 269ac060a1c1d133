//! Tenancy enforced by PostgreSQL itself, seen from the application role.

use std::time::Duration;

use consultantpro::db::{Db, DbError};
use consultantpro::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use consultantpro::domain::{DomainError, FirmId};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use crate::helpers::{new_firm_with_owner, test_db, test_settings};

#[derive(QueryableByName, Debug)]
struct TenantTable {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    rls_enabled: bool,
    #[diesel(sql_type = Bool)]
    rls_forced: bool,
    #[diesel(sql_type = BigInt)]
    policies: i64,
    #[diesel(sql_type = BigInt)]
    fenced_policies: i64,
    #[diesel(sql_type = BigInt)]
    firm_leading_indexes: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every table in the schema with a `firm_id` column, with its row-level security state,
/// read from the catalog so that a table added later without RLS fails these tests.
async fn tenant_tables(db: &Db) -> Vec<TenantTable> {
    db.platform_tx(|conn| {
        async move {
            diesel::sql_query(
                "SELECT c.relname::text AS name, c.relrowsecurity AS rls_enabled, c.relforcerowsecurity AS rls_forced,
                        (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
                        (SELECT count(*) FROM pg_policies p
                          WHERE p.schemaname = n.nspname AND p.tablename = c.relname
                            AND p.qual LIKE '%current_setting(''app.current_firm_id''%'
                            AND p.with_check LIKE '%current_setting(''app.current_firm_id''%') AS fenced_policies,
                        (SELECT count(*) FROM pg_index i
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = c.oid AND a.attname = 'firm_id') AS firm_leading_indexes
                   FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                    AND EXISTS (SELECT 1 FROM pg_attribute a
                                 WHERE a.attrelid = c.oid AND a.attname = 'firm_id' AND NOT a.attisdropped)
                  ORDER BY 1",
            )
            .load::<TenantTable>(conn)
            .await
            .map_err(DbError::from)
        }
        .scope_boxed()
    })
    .await
    .expect("catalog readable")
}

async fn count_rows(db: &Db, firm: Option<FirmId>, sql: String) -> Result<i64, DbError> {
    let query = diesel::sql_query(sql);
    let count = match firm {
        Some(firm) => {
            db.firm_tx(firm, |conn| {
                async move { query.get_result::<Count>(conn).await.map_err(DbError::from) }.scope_boxed()
            })
            .await
        }
        None => {
            db.platform_tx(|conn| {
                async move { query.get_result::<Count>(conn).await.map_err(DbError::from) }.scope_boxed()
            })
            .await
        }
    };
    count.map(|c| c.n)
}

#[actix_web::test]
async fn every_tenant_table_has_forced_rls_a_fenced_policy_and_a_firm_index() {
    let db = test_db().await;
    let tables = tenant_tables(&db).await;
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"memberships") && names.contains(&"audit_events"), "catalog query found {names:?}");
    for table in &tables {
        assert!(table.rls_enabled, "{}: row-level security not enabled", table.name);
        assert!(table.rls_forced, "{}: row-level security not forced", table.name);
        assert!(table.policies >= 1, "{}: no policy", table.name);
        assert!(
            table.fenced_policies >= 1,
            "{}: no policy keyed on app.current_firm_id (USING and WITH CHECK)",
            table.name
        );
        assert!(table.firm_leading_indexes >= 1, "{}: no index starting with firm_id", table.name);
    }
}

#[actix_web::test]
async fn the_application_role_cannot_bypass_rls() {
    let db = test_db().await;
    #[derive(QueryableByName)]
    struct Role {
        #[diesel(sql_type = Bool)]
        rolsuper: bool,
        #[diesel(sql_type = Bool)]
        rolbypassrls: bool,
        #[diesel(sql_type = BigInt)]
        owned_tables: i64,
    }
    let role: Role = db
        .platform_tx(|conn| {
            async move {
                diesel::sql_query(
                    "SELECT rolsuper, rolbypassrls,
                            (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid AND c.relkind = 'r') AS owned_tables
                       FROM pg_roles r WHERE rolname = current_user",
                )
                .get_result::<Role>(conn)
                .await
                .map_err(DbError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    assert!(!role.rolsuper && !role.rolbypassrls, "tests must run as a role that RLS applies to");
    assert_eq!(role.owned_tables, 0, "the application role must own no table");
}

#[actix_web::test]
async fn without_a_firm_every_tenant_table_reads_empty() {
    let db = test_db().await;
    let (firm, _) = new_firm_with_owner(&db).await;
    for table in tenant_tables(&db).await {
        let visible_to_firm =
            count_rows(&db, Some(firm.firm_id()), format!("SELECT count(*) AS n FROM {}", table.name)).await.unwrap();
        if table.name == "memberships" || table.name == "audit_events" {
            assert!(visible_to_firm > 0, "{}: the firm should see its own rows", table.name);
        }
        let unscoped = count_rows(&db, None, format!("SELECT count(*) AS n FROM {}", table.name)).await.unwrap();
        assert_eq!(unscoped, 0, "{}: rows visible with no firm set", table.name);
    }
}

/// The tables `seed_through_the_api` gives a firm rows in: for each, the isolation check
/// below first sees the other firm's rows (the positive control) before proving firm A
/// sees none of them.
const SEEDED: [&str; 40] = [
    "audit_events",
    "auth_sessions",
    "refresh_tokens",
    "memberships",
    "clients",
    "client_notes",
    "contacts",
    "contact_emails",
    "contact_phones",
    "leads",
    "prospects",
    "proposals",
    "proposal_versions",
    "conversations",
    "messages",
    "conversation_reads",
    "tickets",
    "sla_policies",
    "business_calendars",
    "invoices",
    "payments",
    "credit_notes",
    "idempotency_keys",
    "webhook_endpoints",
    "webhook_deliveries",
    "jobs",
    "invitations",
    "realtime_tickets",
    "password_resets",
    "booking_links",
    "conversation_participants",
    "document_sequences",
    "ticket_events",
    "sla_clocks",
    "finance_settings",
    "availability_schedules",
    "bookings",
    "calendar_busy",
    "calendar_events",
    "calendar_feeds",
];

/// Tables whose rows only a channel's own machinery makes (a watched IMAP mailbox, the
/// Twilio and Stripe stand-ins): each suite named gives a firm rows in them and checks
/// them with the same positive control (`tests/common/isolation.rs`).
const SEEDED_BY_CHANNEL_SUITES: [(&str, &str); 17] = [
    ("mailboxes", "email"),
    ("mailbox_folders", "email"),
    ("email_settings", "email"),
    ("email_rules", "email"),
    ("email_messages", "email"),
    ("email_parts", "email"),
    ("email_blobs", "email"),
    ("email_auto_replies", "email"),
    ("sms_settings", "sms"),
    ("sms_numbers", "sms"),
    ("sms_threads", "sms"),
    ("sms_messages", "sms"),
    ("sms_opt_outs", "sms"),
    ("sms_help_replies", "sms"),
    ("sms_status_callbacks", "sms"),
    ("stripe_payment_intents", "finance"),
    ("stripe_events", "finance"),
];

/// POSTs `body` as `token`; it must answer `expected`. Returns the answer's `data`.
async fn posted(
    app: &crate::helpers::TestApp,
    token: &str,
    path: &str,
    body: serde_json::Value,
    expected: u16,
) -> serde_json::Value {
    let answer = app.post_as(token, path, &body).await;
    let status = answer.status();
    let body = crate::helpers::json(answer).await;
    assert_eq!(status, expected, "{path}: {body}");
    body["data"].clone()
}

/// One of most things a firm can own, made the way a firm makes them.
async fn seed_through_the_api(app: &crate::helpers::TestApp, slug: &str, email: &str, owner: uuid::Uuid, token: &str) {
    use serde_json::json;
    let client = posted(app, token, "/api/v1/clients", json!({ "name": "Seeded Co" }), 201).await;
    let client_id = client["id"].as_str().unwrap().to_owned();
    posted(app, token, &format!("/api/v1/clients/{client_id}/notes"), json!({ "body": "A note" }), 201).await;
    let contact = json!({ "first_name": "Ada", "client_id": client_id, "emails": ["ada@seeded.test"], "phones": ["+14155552671"] });
    posted(app, token, "/api/v1/contacts", contact, 201).await;
    posted(app, token, "/api/v1/leads", json!({ "first_name": "Lee", "company": "Lead Co" }), 201).await;
    let prospect = posted(
        app,
        token,
        "/api/v1/prospects",
        json!({ "client_id": client_id, "name": "Deal", "currency": "USD" }),
        201,
    )
    .await;
    let lines = json!([{ "description": "Work", "quantity": 1, "unit_price_minor": 1000 }]);
    let proposals = format!("/api/v1/prospects/{}/proposals", prospect["id"].as_str().unwrap());
    posted(app, token, &proposals, json!({ "title": "Q1", "line_items": lines }), 201).await;
    let conversation = posted(app, token, "/api/v1/conversations", json!({ "subject": "Seeded" }), 201).await;
    let messages = format!("/api/v1/conversations/{}/messages", conversation["id"].as_str().unwrap());
    posted(app, token, &messages, json!({ "body": "Hi" }), 201).await;
    // The policy first, so the ticket gets its SLA clocks.
    let targets = json!({ "normal": { "first_response_minutes": 60, "resolution_minutes": 600 } });
    posted(app, token, "/api/v1/sla-policies", json!({ "name": "Seeded", "targets": targets }), 201).await;
    posted(app, token, "/api/v1/tickets", json!({ "subject": "Seeded ticket" }), 201).await;
    let calendar = json!({ "name": "Seeded", "time_zone": "UTC", "always_open": true });
    posted(app, token, "/api/v1/business-calendars", calendar, 201).await;
    // With an Idempotency-Key, so the key is stored too.
    let invoice = app
        .client
        .post(app.url("/api/v1/invoices"))
        .bearer_auth(token)
        .header("Idempotency-Key", "seeded-invoice")
        .json(&json!({ "client_id": client_id, "currency": "USD", "line_items": lines }))
        .send()
        .await
        .unwrap();
    assert_eq!(invoice.status(), 201);
    let invoice_id = crate::helpers::json(invoice).await["data"]["id"].as_str().unwrap().to_owned();
    posted(app, token, &format!("/api/v1/invoices/{invoice_id}/send"), json!({}), 200).await;
    let payment = json!({ "amount_minor": 300, "method": "cash" });
    posted(app, token, &format!("/api/v1/invoices/{invoice_id}/payments"), payment, 201).await;
    let credit = json!({ "amount_minor": 100, "reason": "Goodwill" });
    posted(app, token, &format!("/api/v1/invoices/{invoice_id}/credit-notes"), credit, 201).await;
    let hook = json!({ "url": "https://hooks.example.com/x", "event_types": ["*"] });
    let endpoint = posted(app, token, "/api/v1/webhooks", hook, 201).await;
    let ping = format!("/api/v1/webhooks/{}/ping", endpoint["endpoint"]["id"].as_str().unwrap());
    posted(app, token, &ping, json!({}), 202).await;
    let invited = json!({ "email": format!("invited-{owner}@seeded.test"), "role": "staff" });
    posted(app, token, "/api/v1/members", invited, 201).await;
    posted(app, token, "/api/v1/realtime/ticket", json!({}), 200).await;
    let forgot = app.post("/api/v1/auth/password/forgot", &json!({ "firm": slug, "email": email })).await;
    assert_eq!(forgot.status(), 202);
    let settings = json!({ "invoice_pattern": "S-{YYYY}-{seq:04}" });
    assert_eq!(app.patch_as(token, "/api/v1/finance/settings", &settings).await.status(), 200);
    seed_calendar(app, owner, token).await;
}

fn z(moment: chrono::DateTime<chrono::Utc>) -> String {
    moment.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Working hours, an event (whose occurrences are busy time), a feed and a booking made on
/// the public page.
async fn seed_calendar(app: &crate::helpers::TestApp, owner: uuid::Uuid, token: &str) {
    use serde_json::json;
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let windows: Vec<_> = days.iter().map(|day| json!({ "weekday": day, "start": "09:00", "end": "17:00" })).collect();
    let hours = json!({ "time_zone": "UTC", "windows": windows });
    let answer = app.client.put(app.url("/api/v1/calendar/availability")).bearer_auth(token).json(&hours).send().await;
    assert_eq!(answer.unwrap().status(), 200);
    let starts = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().and_hms_opt(9, 0, 0).unwrap().and_utc();
    let event = json!({ "title": "Seeded", "starts_at": starts, "ends_at": starts + chrono::Duration::hours(1) });
    posted(app, token, "/api/v1/calendar/events", event, 201).await;
    posted(app, token, "/api/v1/calendar/feed", json!({}), 200).await;
    let link = json!({ "title": "Intro", "member_ids": [owner], "duration_minutes": 30 });
    let slug = posted(app, token, "/api/v1/booking-links", link, 201).await["slug"].as_str().unwrap().to_owned();
    let (from, to) = (starts + chrono::Duration::days(1), starts + chrono::Duration::days(2));
    let slots = app
        .client
        .get(app.url(&format!("/api/v1/public/booking-links/{slug}/slots?from={}&to={}&tz=UTC", z(from), z(to))))
        .header("x-forwarded-for", crate::helpers::unique_ip())
        .send()
        .await
        .unwrap();
    assert_eq!(slots.status(), 200);
    let first = crate::helpers::json(slots).await["data"]["slots"][0]["start"].clone();
    assert!(first.is_string(), "the seeded hours offer a slot");
    let invitee = json!({ "start": first, "tz": "UTC", "name": "Ines Invitee", "email": "ines@example.com" });
    let booked = app
        .client
        .post(app.url(&format!("/api/v1/public/booking-links/{slug}/bookings")))
        .header("x-forwarded-for", crate::helpers::unique_ip())
        .json(&invitee)
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status(), 201);
}

#[actix_web::test]
async fn one_firm_never_sees_anothers_rows() {
    let app = crate::helpers::spawn_app().await;
    let db = app.db();
    let (firm_a, _, _, _) = crate::helpers::signed_in_owner(&app).await;
    let (firm_b, email_b, owner_b, token_b) = crate::helpers::signed_in_owner(&app).await;
    seed_through_the_api(&app, &firm_b.slug, &email_b, owner_b, &token_b).await;
    crate::isolation::assert_isolated(&db, firm_b.firm_id(), firm_a.firm_id(), &SEEDED).await;
    // The tables seeded elsewhere still show firm A nothing of any other firm's.
    for table in tenant_tables(&db).await {
        let foreign = format!("SELECT count(*) AS n FROM {} WHERE firm_id <> '{}'", table.name, firm_a.id);
        assert_eq!(crate::isolation::count_as(&db, firm_a.firm_id(), &foreign).await, 0, "{}", table.name);
    }
}

/// A tenant table added later must be given rows by some isolation test, or this fails.
#[actix_web::test]
async fn every_tenant_table_is_seeded_by_an_isolation_test() {
    let db = test_db().await;
    let seeded: Vec<&str> = SEEDED.iter().copied().chain(SEEDED_BY_CHANNEL_SUITES.iter().map(|(t, _)| *t)).collect();
    let catalog: Vec<String> = tenant_tables(&db).await.into_iter().map(|t| t.name).collect();
    let unseeded: Vec<&String> = catalog.iter().filter(|t| !seeded.contains(&t.as_str())).collect();
    assert!(unseeded.is_empty(), "no isolation test gives a firm rows in {unseeded:?}");
    let unknown: Vec<&&str> = seeded.iter().filter(|t| !catalog.iter().any(|c| c == *t)).collect();
    assert!(unknown.is_empty(), "listed but not tenant tables: {unknown:?}");
}

/// The search functions bypass RLS to use the trigram indexes, so they must take the firm
/// from the same transaction setting the policies read, and nothing else.
#[actix_web::test]
async fn search_functions_see_only_the_scoped_firm() {
    let db = test_db().await;
    let (firm_a, _) = new_firm_with_owner(&db).await;
    let (firm_b, _) = new_firm_with_owner(&db).await;
    let marker = format!("needle{}", uuid::Uuid::now_v7().simple());
    let insert = format!(
        "WITH c AS (INSERT INTO clients (firm_id, id, name) VALUES ('{firm}', gen_random_uuid(), '{marker} Ltd')),
              p AS (INSERT INTO contacts (firm_id, id, first_name, last_name)
                    VALUES ('{firm}', '{person}', 'Someone', 'Else'))
         INSERT INTO contact_emails (firm_id, email, contact_id, position) VALUES ('{firm}', '{marker}@example.com', '{person}', 0)",
        firm = firm_a.id,
        person = uuid::Uuid::now_v7(),
    );
    db.firm_tx(firm_a.firm_id(), |conn| {
        async move { diesel::sql_query(insert).execute(conn).await.map_err(DbError::from) }.scope_boxed()
    })
    .await
    .unwrap();
    for function in ["cp_search_client_ids", "cp_search_contact_ids"] {
        let sql = format!("SELECT count(*) AS n FROM {function}('%{marker}%')");
        assert_eq!(count_rows(&db, Some(firm_a.firm_id()), sql.clone()).await.unwrap(), 1, "{function}: own firm");
        assert_eq!(count_rows(&db, Some(firm_b.firm_id()), sql.clone()).await.unwrap(), 0, "{function}: other firm");
        assert_eq!(count_rows(&db, None, sql).await.unwrap(), 0, "{function}: no firm set");
    }
}

fn is_rls_violation(err: &DomainError) -> bool {
    matches!(err, DomainError::Db(DbError::Query(diesel::result::Error::DatabaseError(_, info)))
        if info.message().contains("row-level security"))
}

#[actix_web::test]
async fn writing_a_row_for_another_firm_is_rejected() {
    let db = test_db().await;
    let (firm_a, _) = new_firm_with_owner(&db).await;
    let (firm_b, _) = new_firm_with_owner(&db).await;

    let foreign_event = NewAuditEvent::new(firm_b.firm_id(), ActorType::System, None, "forged", Outcome::Success);
    let err = db
        .firm_tx(firm_a.firm_id(), |conn| async move { audit::record(conn, &foreign_event).await }.scope_boxed())
        .await
        .expect_err("insert for firm B inside firm A must fail");
    assert!(is_rls_violation(&err), "{err:?}");

    let b_id = firm_b.id;
    let err = db
        .firm_tx(firm_a.firm_id(), |conn| {
            async move {
                diesel::sql_query(
                    "INSERT INTO memberships (firm_id, user_id, role) SELECT $1, user_id, 'owner' FROM memberships",
                )
                .bind::<SqlUuid, _>(b_id)
                .execute(conn)
                .await?;
                Ok::<_, DomainError>(())
            }
            .scope_boxed()
        })
        .await
        .expect_err("copying a membership into firm B must fail");
    assert!(is_rls_violation(&err), "{err:?}");

    // Moving one of A's rows to B is refused too (WITH CHECK applies to updates).
    let err = db
        .firm_tx(firm_a.firm_id(), |conn| {
            async move {
                diesel::sql_query("UPDATE memberships SET firm_id = $1").bind::<SqlUuid, _>(b_id).execute(conn).await?;
                Ok::<_, DomainError>(())
            }
            .scope_boxed()
        })
        .await
        .expect_err("moving a membership to firm B must fail");
    assert!(is_rls_violation(&err), "{err:?}");

    // And with no firm set, nothing can be written at all.
    let orphan = NewAuditEvent::new(firm_a.firm_id(), ActorType::System, None, "orphan", Outcome::Success);
    let err = db
        .platform_tx(|conn| async move { audit::record(conn, &orphan).await }.scope_boxed())
        .await
        .expect_err("tenant insert without a firm must fail");
    assert!(is_rls_violation(&err), "{err:?}");
}

#[actix_web::test]
async fn audit_events_cannot_be_changed_or_deleted() {
    let db = test_db().await;
    let (firm, _) = new_firm_with_owner(&db).await;
    for statement in
        ["UPDATE audit_events SET action = 'tampered'", "DELETE FROM audit_events", "TRUNCATE audit_events"]
    {
        let result = db
            .firm_tx(firm.firm_id(), |conn| {
                async move { diesel::sql_query(statement).execute(conn).await.map_err(DbError::from) }.scope_boxed()
            })
            .await;
        assert!(result.is_err(), "`{statement}` succeeded");
    }
    let tampered = count_rows(
        &db,
        Some(firm.firm_id()),
        "SELECT count(*) AS n FROM audit_events WHERE action = 'tampered'".to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(tampered, 0);
    let kept =
        count_rows(&db, Some(firm.firm_id()), "SELECT count(*) AS n FROM audit_events".to_owned()).await.unwrap();
    assert_eq!(kept, 2, "firm.created and member.added must survive");
}

#[derive(QueryableByName)]
struct Session {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Nullable<Text>)]
    firm: Option<String>,
}

const SESSION_SQL: &str = "SELECT pg_backend_pid() AS pid, current_setting('app.current_firm_id', true) AS firm";

/// A pool of exactly one connection, so consecutive transactions share it.
async fn single_connection_db() -> Db {
    let mut settings = test_settings();
    settings.database.max_connections = 1;
    crate::helpers::migrate(&settings).await;
    Db::new(&settings.database, settings.jobs.max_attempts).unwrap()
}

/// The backend and its firm setting, seen outside any firm.
async fn unscoped_session(db: &Db) -> Session {
    db.platform_tx(|conn| {
        async move { diesel::sql_query(SESSION_SQL).get_result::<Session>(conn).await.map_err(DbError::from) }
            .scope_boxed()
    })
    .await
    .unwrap()
}

#[actix_web::test]
async fn a_pooled_connection_forgets_its_firm() {
    let db = single_connection_db().await;
    let (firm, _) = new_firm_with_owner(&db).await;

    let inside = db
        .firm_tx(firm.firm_id(), |conn| {
            async move { diesel::sql_query(SESSION_SQL).get_result::<Session>(conn).await.map_err(DbError::from) }
                .scope_boxed()
        })
        .await
        .unwrap();
    assert_eq!(inside.firm.as_deref(), Some(firm.id.to_string().as_str()));

    let after = unscoped_session(&db).await;
    assert_eq!(after.pid, inside.pid, "the pool of one must hand out the same connection");
    assert!(after.firm.as_deref().unwrap_or("").is_empty(), "firm setting leaked: {:?}", after.firm);
    let visible = count_rows(&db, None, "SELECT count(*) AS n FROM memberships".to_owned()).await.unwrap();
    assert_eq!(visible, 0);
}

#[actix_web::test]
async fn a_failed_transaction_also_forgets_its_firm() {
    let db = single_connection_db().await;
    let (firm, _) = new_firm_with_owner(&db).await;
    let failed: Result<(), DbError> = db
        .firm_tx(firm.firm_id(), |conn| {
            async move {
                diesel::sql_query("SELECT 1/0").execute(conn).await?;
                Ok(())
            }
            .scope_boxed()
        })
        .await;
    assert!(failed.is_err());
    let after = unscoped_session(&db).await;
    assert!(after.firm.as_deref().unwrap_or("").is_empty(), "firm setting leaked: {:?}", after.firm);
}

#[actix_web::test]
async fn an_exhausted_pool_fails_fast_instead_of_hanging() {
    let mut settings = test_settings();
    settings.database.max_connections = 1;
    settings.database.wait_timeout_ms = 200;
    crate::helpers::migrate(&settings).await;
    let db = Db::new(&settings.database, settings.jobs.max_attempts).unwrap();
    let (firm, _) = new_firm_with_owner(&db).await;

    let holder = db.firm_tx(firm.firm_id(), |conn| {
        async move {
            diesel::sql_query("SELECT pg_sleep(1)").execute(conn).await?;
            Ok::<_, DbError>(())
        }
        .scope_boxed()
    });
    let waiter = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let result = db.platform_tx(|_conn| async move { Ok::<_, DbError>(()) }.scope_boxed()).await;
        (result, started.elapsed())
    };
    let (held, (waited, elapsed)) = tokio::join!(holder, waiter);
    held.unwrap();
    assert!(matches!(waited, Err(DbError::PoolExhausted(_))), "{waited:?}");
    assert!(elapsed < Duration::from_millis(900), "waited {elapsed:?}");
}
