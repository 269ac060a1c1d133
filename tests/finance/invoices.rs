use std::collections::BTreeMap;

use consultantpro::domain::memberships::Role;

use crate::helpers::{PASSWORD, add_member, json, signed_in_owner, spawn_app};
use crate::{client, draft, pay, sent};

#[actix_web::test]
async fn totals_are_computed_here_with_discount_tax_and_rounding() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    // Worked by hand (per line, half away from zero):
    //   3 x 333 = 999; 10% off = 99.9 -> 100; 899 taxable; 7.5% = 67.425 -> 67; line 966
    //   1.5 x 101 = 151.5 -> 152; no discount; 20% = 30.4 -> 30; line 182
    //   1 x 5 = 5; 50% off = 2.5 -> 3; 2 taxable; 25% = 0.5 -> 1; line 3
    let invoice = draft(
        &app,
        &owner,
        &client_id,
        serde_json::json!([
            { "description": "Advisory", "quantity": "3", "unit_price_minor": 333, "tax_rate": "7.5", "discount": "10" },
            { "description": "Travel", "quantity": 1.5, "unit_price_minor": 101, "tax_rate": 20 },
            { "description": "Sundries", "quantity": 1, "unit_price_minor": 5, "tax_rate": "25", "discount": "50" },
        ]),
    )
    .await;
    let totals = |i: &serde_json::Value| {
        ["subtotal_minor", "discount_minor", "tax_minor", "total_minor", "balance_minor"]
            .map(|k| i[k].as_i64().unwrap())
    };
    assert_eq!(totals(&invoice), [1156, 103, 98, 1151, 1151]);
    assert_eq!(invoice["line_items"][0]["total_minor"], 966);
    assert_eq!(invoice["status"], "draft");
    assert!(invoice["number"].is_null(), "a draft has no number");
    // The client cannot dictate totals.
    let forged = serde_json::json!({ "client_id": client_id, "currency": "USD", "total_minor": 1 });
    assert_eq!(app.post_as(&owner, "/api/v1/invoices", &forged).await.status(), 400);
}

#[actix_web::test]
async fn twenty_concurrent_sends_get_twenty_consecutive_numbers() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let patched = app
        .patch_as(&owner, "/api/v1/finance/settings", &serde_json::json!({ "invoice_pattern": "F-{YYYY}-{seq:04}" }))
        .await;
    assert_eq!(patched.status(), 200);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let invoice = draft(
            &app,
            &owner,
            &client_id,
            serde_json::json!([{ "description": "x", "quantity": 1, "unit_price_minor": 100 }]),
        )
        .await;
        ids.push(invoice["id"].as_str().unwrap().to_owned());
    }
    let sends = ids.iter().map(|id| {
        let (app, owner) = (&app, &owner);
        async move { app.post_as(owner, &format!("/api/v1/invoices/{id}/send"), &serde_json::json!({})).await }
    });
    let mut numbers = Vec::new();
    for response in futures_util::future::join_all(sends).await {
        assert_eq!(response.status(), 200);
        numbers.push(json(response).await["data"]["number"].as_str().unwrap().to_owned());
    }
    numbers.sort();
    let year = chrono::Utc::now().format("%Y");
    let expected: Vec<String> = (1..=20).map(|n| format!("F-{year}-{n:04}")).collect();
    assert_eq!(numbers, expected, "gapless and unique");
    // A failed send (nothing to invoice) gives its number back.
    let empty = draft(&app, &owner, &client_id, serde_json::json!([])).await;
    let refused = app
        .post_as(&owner, &format!("/api/v1/invoices/{}/send", empty["id"].as_str().unwrap()), &serde_json::json!({}))
        .await;
    assert_eq!(refused.status(), 400);
    let next = sent(&app, &owner, &client_id, 100).await;
    assert_eq!(next["number"], format!("F-{year}-0021"));
}

#[actix_web::test]
async fn illegal_transitions_are_refused() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let draft_invoice = draft(
        &app,
        &owner,
        &client_id,
        serde_json::json!([{ "description": "x", "quantity": 1, "unit_price_minor": 100 }]),
    )
    .await;
    let draft_id = draft_invoice["id"].as_str().unwrap();
    let payment = serde_json::json!({ "amount_minor": 10, "method": "cash" });
    assert_eq!(pay(&app, &owner, draft_id, payment.clone()).await.status(), 409, "no payments on a draft");
    let credit = serde_json::json!({ "amount_minor": 10, "reason": "goodwill" });
    assert_eq!(app.post_as(&owner, &format!("/api/v1/invoices/{draft_id}/credit-notes"), &credit).await.status(), 409);

    let invoice = sent(&app, &owner, &client_id, 1000).await;
    let id = invoice["id"].as_str().unwrap();
    let edit =
        app.patch_as(&owner, &format!("/api/v1/invoices/{id}"), &serde_json::json!({ "notes": "changed" })).await;
    assert_eq!(edit.status(), 409, "only drafts change");
    assert_eq!(app.post_as(&owner, &format!("/api/v1/invoices/{id}/send"), &serde_json::json!({})).await.status(), 409);
    assert_eq!(pay(&app, &owner, id, payment.clone()).await.status(), 201);
    let void = app.post_as(&owner, &format!("/api/v1/invoices/{id}/void"), &serde_json::json!({})).await;
    assert_eq!(void.status(), 409, "an invoice with a payment is not voided");

    let other = sent(&app, &owner, &client_id, 500).await;
    let other_id = other["id"].as_str().unwrap();
    let voided = app.post_as(&owner, &format!("/api/v1/invoices/{other_id}/void"), &serde_json::json!({})).await;
    assert_eq!(voided.status(), 200);
    assert_eq!(json(voided).await["data"]["status"], "void");
    assert_eq!(pay(&app, &owner, other_id, payment).await.status(), 409, "no payments on a void invoice");
    assert_eq!(
        app.post_as(&owner, &format!("/api/v1/invoices/{other_id}/void"), &serde_json::json!({})).await.status(),
        409
    );
    // A draft can be voided too, and keeps no number.
    let voided_draft = app.post_as(&owner, &format!("/api/v1/invoices/{draft_id}/void"), &serde_json::json!({})).await;
    assert_eq!(voided_draft.status(), 200);
    let voided_draft = json(voided_draft).await["data"].clone();
    assert_eq!((voided_draft["status"].as_str(), voided_draft["number"].is_null()), (Some("void"), true));
    let send = app.post_as(&owner, &format!("/api/v1/invoices/{draft_id}/send"), &serde_json::json!({})).await;
    assert_eq!(send.status(), 409);
}

#[actix_web::test]
async fn payments_refunds_and_credit_notes_never_make_a_balance_negative() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let invoice = sent(&app, &owner, &client_id, 1000).await;
    let id = invoice["id"].as_str().unwrap();

    let first = pay(
        &app,
        &owner,
        id,
        serde_json::json!({ "amount_minor": 300, "method": "bank_transfer", "reference": "T-1" }),
    )
    .await;
    assert_eq!(first.status(), 201);
    let first = json(first).await["data"].clone();
    assert_eq!(
        (first["invoice"]["status"].as_str(), first["invoice"]["balance_minor"].as_i64()),
        (Some("partially_paid"), Some(700))
    );
    let over = pay(&app, &owner, id, serde_json::json!({ "amount_minor": 701, "method": "cash" })).await;
    assert_eq!(over.status(), 400, "overpayment is refused");
    assert!(json(over).await["error"]["details"]["fields"]["amount_minor"].is_string());

    let credit = app
        .post_as(
            &owner,
            &format!("/api/v1/invoices/{id}/credit-notes"),
            &serde_json::json!({ "amount_minor": 200, "reason": "Discount agreed" }),
        )
        .await;
    assert_eq!(credit.status(), 201);
    let credit = json(credit).await["data"].clone();
    assert_eq!(credit["credit_note"]["number"], format!("CN-{}-00001", chrono::Utc::now().format("%Y")));
    assert_eq!(credit["invoice"]["balance_minor"], 500);
    let listed = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}/credit-notes")).await).await;
    let notes = listed["data"].as_array().unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(notes.len(), 1, "{listed}");
    assert_eq!(notes[0]["id"], credit["credit_note"]["id"]);
    assert_eq!((notes[0]["amount_minor"].as_i64(), notes[0]["reason"].as_str()), (Some(200), Some("Discount agreed")));
    let too_much = app
        .post_as(
            &owner,
            &format!("/api/v1/invoices/{id}/credit-notes"),
            &serde_json::json!({ "amount_minor": 501, "reason": "x" }),
        )
        .await;
    assert_eq!(too_much.status(), 400);

    // Ten payments of 100 race for a balance of 500: exactly five land.
    let racing = (0..10).map(|_| pay(&app, &owner, id, serde_json::json!({ "amount_minor": 100, "method": "card" })));
    let statuses: Vec<u16> = futures_util::future::join_all(racing).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 400), "{statuses:?}");
    let paid = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}")).await).await["data"].clone();
    assert_eq!((paid["status"].as_str(), paid["balance_minor"].as_i64()), (Some("paid"), Some(0)));

    // Refunds are negative entries against a payment, never more than it brought in.
    let payment_id = first["payment"]["id"].as_str().unwrap();
    let refund = |amount: i64| {
        pay(
            &app,
            &owner,
            id,
            serde_json::json!({ "amount_minor": amount, "method": "bank_transfer", "refund_of": payment_id }),
        )
    };
    assert_eq!(refund(-301).await.status(), 400);
    assert_eq!(refund(-100).await.status(), 201);
    assert_eq!(refund(-200).await.status(), 201);
    assert_eq!(refund(-1).await.status(), 400, "nothing left of that payment");
    assert_eq!(pay(&app, &owner, id, serde_json::json!({ "amount_minor": -5, "method": "cash" })).await.status(), 400);
    let after = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}")).await).await["data"].clone();
    assert_eq!(
        (after["status"].as_str(), after["balance_minor"].as_i64(), after["paid_minor"].as_i64()),
        (Some("partially_paid"), Some(300), Some(500))
    );
    let listed = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}/payments")).await).await;
    let amounts: i64 = listed["data"].as_array().unwrap().iter().map(|p| p["amount_minor"].as_i64().unwrap()).sum();
    assert_eq!(amounts, 500, "the ledger adds up to what the invoice says");
}

#[actix_web::test]
async fn creation_with_an_idempotency_key_happens_once() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let body = serde_json::json!({ "client_id": client_id, "currency": "EUR",
        "line_items": [{ "description": "x", "quantity": 1, "unit_price_minor": 100 }] });
    let create = |key: &'static str, body: serde_json::Value| {
        app.client
            .post(app.url("/api/v1/invoices"))
            .bearer_auth(&owner)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = create("inv-1", body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first = json(first).await;
    let again = create("inv-1", body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(json(again).await["data"]["id"], first["data"]["id"], "the first result, not a second invoice");
    let mut changed = body.clone();
    changed["currency"] = "USD".into();
    assert_eq!(create("inv-1", changed).await.unwrap().status(), 409, "same key, other request");
    let listed = json(app.get_as(&owner, "/api/v1/invoices").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    let invoice = sent(&app, &owner, &client_id, 1000).await;
    let id = invoice["id"].as_str().unwrap().to_owned();
    let payment = serde_json::json!({ "amount_minor": 400, "method": "check" });
    let pay_keyed = || {
        app.client
            .post(app.url(&format!("/api/v1/invoices/{id}/payments")))
            .bearer_auth(&owner)
            .header("Idempotency-Key", "pay-1")
            .json(&payment)
            .send()
    };
    let (a, b) = futures_util::join!(pay_keyed(), pay_keyed());
    let (a, b) = (json(a.unwrap()).await, json(b.unwrap()).await);
    assert_eq!(a["data"]["payment"]["id"], b["data"]["payment"]["id"], "concurrent repeats give one payment");
    let after = json(app.get_as(&owner, &format!("/api/v1/invoices/{id}")).await).await;
    assert_eq!(after["data"]["balance_minor"], 600);
    let bad_key = app
        .client
        .post(app.url("/api/v1/invoices"))
        .bearer_auth(&owner)
        .header("Idempotency-Key", "x".repeat(201))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
}

#[actix_web::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let cases = [
        (serde_json::json!({ "client_id": client_id, "currency": "dollars" }), "currency"),
        (
            serde_json::json!({ "client_id": client_id, "currency": "USD", "issue_date": "2026-05-10", "due_date": "2026-05-01" }),
            "due_date",
        ),
        (
            serde_json::json!({ "client_id": client_id, "currency": "USD", "line_items": [{ "description": "x", "quantity": 1, "unit_price_minor": -5 }] }),
            "line_items[0].unit_price_minor",
        ),
        (
            serde_json::json!({ "client_id": client_id, "currency": "USD", "line_items": [{ "description": "x", "quantity": "lots", "unit_price_minor": 5 }] }),
            "line_items[0].quantity",
        ),
        (
            serde_json::json!({ "client_id": client_id, "currency": "USD", "line_items": [{ "description": "x", "quantity": 1, "unit_price_minor": 5, "tax_rate": "120" }] }),
            "line_items[0].tax_rate",
        ),
        (serde_json::json!({ "client_id": uuid::Uuid::now_v7(), "currency": "USD" }), "client_id"),
    ];
    for (body, field) in cases {
        let response = app.post_as(&owner, "/api/v1/invoices", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert!(error["error"]["details"]["fields"][field].is_string(), "{body}: {error}");
    }
    for query in ["status=overdue", "overdue=maybe", "cursor=garbage"] {
        assert_eq!(app.get_as(&owner, &format!("/api/v1/invoices?{query}")).await.status(), 400, "{query}");
    }
    let invoice = sent(&app, &owner, &client_id, 100).await;
    let id = invoice["id"].as_str().unwrap();
    for body in [
        serde_json::json!({ "amount_minor": 0, "method": "cash" }),
        serde_json::json!({ "amount_minor": 10, "method": "bitcoin" }),
        serde_json::json!({ "amount_minor": "ten", "method": "cash" }),
    ] {
        assert_eq!(pay(&app, &owner, id, body.clone()).await.status(), 400, "{body}");
    }
    for body in [
        serde_json::json!({ "invoice_pattern": "INV-{YYYY}" }),
        serde_json::json!({ "credit_note_pattern": "CN-{week}-{seq}" }),
    ] {
        assert_eq!(app.patch_as(&owner, "/api/v1/finance/settings", &body).await.status(), 400, "{body}");
    }
    assert_eq!(app.get_as(&owner, "/api/v1/finance/summary?from=2026-02-01&to=2026-01-01").await.status(), 400);
    assert_eq!(app.get_as(&owner, "/api/v1/finance/summary").await.status(), 400);
    let listed = json(app.get_as(&owner, "/api/v1/invoices").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "only the valid one exists");
    assert_eq!(listed["data"][0]["paid_minor"], 0);
}

#[actix_web::test]
async fn a_drafts_changes_are_checked_as_strictly_as_its_creation() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    // A refused change leaves the draft as it was.
    let open_draft = draft(
        &app,
        &owner,
        &client_id,
        serde_json::json!([{ "description": "x", "quantity": 1, "unit_price_minor": 10 }]),
    )
    .await;
    let draft_path = format!("/api/v1/invoices/{}", open_draft["id"].as_str().unwrap());
    for (body, field) in [
        (serde_json::json!({ "currency": "usd$" }), Some("currency")),
        (serde_json::json!({ "issue_date": "2026-05-10", "due_date": "2026-05-01" }), Some("due_date")),
        (
            serde_json::json!({ "line_items": [{ "description": "", "quantity": 1, "unit_price_minor": 1 }] }),
            Some("line_items[0].description"),
        ),
        (serde_json::json!({ "client_id": uuid::Uuid::now_v7() }), Some("client_id")),
        (serde_json::json!({ "total_minor": 1 }), None),
        (serde_json::json!({ "due_date": "not a date" }), None),
    ] {
        let response = app.patch_as(&owner, &draft_path, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert_eq!(error["error"]["code"], "validation_error", "{body}");
        if let Some(field) = field {
            assert!(error["error"]["details"]["fields"][field].is_string(), "{body}: {error}");
        }
    }
    let unchanged = json(app.get_as(&owner, &draft_path).await).await;
    assert_eq!(
        (unchanged["data"]["total_minor"].as_i64(), unchanged["data"]["currency"].as_str()),
        (Some(10), Some("USD"))
    );
}

#[actix_web::test]
async fn another_firms_invoices_do_not_exist_and_roles_are_checked() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let client_id = client(&app, &owner).await;
    let invoice = sent(&app, &owner, &client_id, 100).await;
    let id = invoice["id"].as_str().unwrap();
    let (_, _, _, intruder) = signed_in_owner(&app).await;
    let path = format!("/api/v1/invoices/{id}");
    assert_eq!(app.get_as(&intruder, &path).await.status(), 404);
    assert_eq!(app.patch_as(&intruder, &path, &serde_json::json!({ "notes": "x" })).await.status(), 404);
    for action in ["send", "void", "payment-intent"] {
        assert_eq!(
            app.post_as(&intruder, &format!("{path}/{action}"), &serde_json::json!({})).await.status(),
            404,
            "{action}"
        );
    }
    assert_eq!(
        pay(&app, &intruder, id, serde_json::json!({ "amount_minor": 1, "method": "cash" })).await.status(),
        404
    );
    assert_eq!(app.get_as(&intruder, &format!("{path}/payments")).await.status(), 404);
    assert_eq!(app.get_as(&intruder, &format!("{path}/credit-notes")).await.status(), 404);
    let credit = serde_json::json!({ "amount_minor": 1, "reason": "x" });
    assert_eq!(app.post_as(&intruder, &format!("{path}/credit-notes"), &credit).await.status(), 404);
    assert!(json(app.get_as(&intruder, "/api/v1/invoices").await).await["data"].as_array().unwrap().is_empty());
    let aging = json(app.get_as(&intruder, "/api/v1/finance/aging").await).await;
    assert!(aging["data"].as_array().unwrap_or_else(|| panic!("{aging}")).is_empty());
    // The owner's invoice is as it was: sent, unpaid, uncredited, no notes.
    let still = json(app.get_as(&owner, &path).await).await["data"].clone();
    assert_eq!((still["status"].as_str(), still["balance_minor"].as_i64()), (Some("sent"), Some(100)), "{still}");
    assert!(still["notes"].is_null(), "{still}");
    let credits = json(app.get_as(&owner, &format!("{path}/credit-notes")).await).await;
    assert!(credits["data"].as_array().unwrap().is_empty(), "{credits}");
    let payments = json(app.get_as(&owner, &format!("{path}/payments")).await).await;
    assert!(payments["data"].as_array().unwrap().is_empty(), "{payments}");

    let (staff_email, _) = add_member(&app.db(), &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&staff, &path).await.status(), 403, "staff have no finance access");
    let (billing_email, _) = add_member(&app.db(), &firm, Role::Billing).await;
    let billing = app.login_ok(&firm.slug, &billing_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        pay(&app, &billing, id, serde_json::json!({ "amount_minor": 100, "method": "ach" })).await.status(),
        201
    );
}

#[actix_web::test]
async fn the_aging_report_matches_an_independent_computation() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let today = chrono::Utc::now().date_naive();
    let first_client = client(&app, &owner).await;
    let second_client = client(&app, &owner).await;
    // (client, currency, days past due, amount, paid): a spread over every bucket.
    let fixture = [
        (&first_client, "USD", -5, 1000, 0),
        (&first_client, "USD", 0, 700, 200),
        (&first_client, "USD", 1, 300, 0),
        (&first_client, "USD", 30, 400, 100),
        (&first_client, "EUR", 31, 250, 0),
        (&second_client, "USD", 60, 900, 0),
        (&second_client, "USD", 61, 800, 800),
        (&second_client, "USD", 90, 120, 20),
        (&second_client, "USD", 91, 5000, 0),
        (&second_client, "USD", 400, 60, 0),
    ];
    for (client_id, currency, late, amount, paid) in fixture {
        let due = today - chrono::Duration::days(late);
        let issue = due - chrono::Duration::days(30);
        let body = serde_json::json!({ "client_id": client_id, "currency": currency, "issue_date": issue, "due_date": due,
            "line_items": [{ "description": "x", "quantity": 1, "unit_price_minor": amount }] });
        let invoice = json(app.post_as(&owner, "/api/v1/invoices", &body).await).await;
        let id = invoice["data"]["id"].as_str().unwrap_or_else(|| panic!("{invoice}"));
        assert_eq!(
            app.post_as(&owner, &format!("/api/v1/invoices/{id}/send"), &serde_json::json!({})).await.status(),
            200
        );
        if paid > 0 {
            assert_eq!(
                pay(&app, &owner, id, serde_json::json!({ "amount_minor": paid, "method": "cash" })).await.status(),
                201
            );
        }
    }
    // Drafts and void invoices owe nothing.
    let stray = draft(
        &app,
        &owner,
        &first_client,
        serde_json::json!([{ "description": "x", "quantity": 1, "unit_price_minor": 77 }]),
    )
    .await;
    assert_eq!(stray["status"], "draft");

    let mut expected: BTreeMap<(String, String), [i64; 6]> = BTreeMap::new();
    for (client_id, currency, late, amount, paid) in fixture {
        let balance = amount - paid;
        if balance == 0 {
            continue;
        }
        let bucket = match late {
            ..=0 => 0,
            1..=30 => 1,
            31..=60 => 2,
            61..=90 => 3,
            _ => 4,
        };
        let row = expected.entry((client_id.clone(), currency.to_owned())).or_default();
        row[bucket] += balance;
        row[5] += balance;
    }
    let report = json(app.get_as(&owner, &format!("/api/v1/finance/aging?as_of={today}")).await).await;
    let mut actual: BTreeMap<(String, String), [i64; 6]> = BTreeMap::new();
    for row in report["data"].as_array().unwrap() {
        let key = (row["client_id"].as_str().unwrap().to_owned(), row["currency"].as_str().unwrap().to_owned());
        let values = [
            "current_minor",
            "days_1_30_minor",
            "days_31_60_minor",
            "days_61_90_minor",
            "days_over_90_minor",
            "total_minor",
        ]
        .map(|k| row[k].as_i64().unwrap());
        actual.insert(key, values);
    }
    assert_eq!(actual, expected);

    let summary = json(app.get_as(&owner, &format!("/api/v1/finance/summary?from={today}&to={today}")).await).await;
    let usd = summary["data"].as_array().unwrap().iter().find(|r| r["currency"] == "USD").unwrap().clone();
    let invoiced: i64 = fixture.iter().filter(|f| f.1 == "USD").map(|f| f.3).sum();
    let collected: i64 = fixture.iter().filter(|f| f.1 == "USD").map(|f| f.4).sum();
    assert_eq!((usd["invoiced_minor"].as_i64(), usd["collected_minor"].as_i64()), (Some(invoiced), Some(collected)));
    assert_eq!(usd["outstanding_minor"].as_i64(), Some(invoiced - collected));
    let overdue = json(app.get_as(&owner, "/api/v1/invoices?overdue=true&limit=100").await).await;
    assert_eq!(overdue["data"].as_array().unwrap().len(), 7, "open and past due: 1, 30, 31, 60, 90, 91 and 400 days");
}
