use crate::helpers::{TestApp, json, signed_in_owner, spawn_app};

async fn new_lead(app: &TestApp, token: &str, body: serde_json::Value) -> String {
    let response = app.post_as(token, "/api/v1/leads", &body).await;
    assert_eq!(response.status(), 201);
    json(response).await["data"]["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn converting_a_lead_creates_client_contact_and_prospect_once() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let lead = new_lead(&app, &owner, serde_json::json!({
        "first_name": "Grace", "last_name": "Hopper", "company": "Navy Labs", "source": "referral",
        "email": "Grace@Navy.example", "phone": "415 555 2671", "estimated_value_minor": 1_250_000, "currency": "usd",
    }))
    .await;
    let shown = json(app.get_as(&owner, &format!("/api/v1/leads/{lead}")).await).await;
    assert_eq!(shown["data"]["phone"], "+14155552671");
    assert_eq!(shown["data"]["currency"], "USD");

    let response = app.post_as(&owner, &format!("/api/v1/leads/{lead}/convert"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 200);
    let conversion = json(response).await["data"].clone();
    assert_eq!(conversion["client"]["name"], "Navy Labs");
    assert_eq!(conversion["client_created"], true);
    assert_eq!(conversion["contact"]["emails"], serde_json::json!(["grace@navy.example"]));
    assert_eq!(conversion["contact"]["client_id"], conversion["client"]["id"]);
    assert_eq!(conversion["prospect"]["value_minor"], 1_250_000);
    assert_eq!(conversion["prospect"]["stage"], "discovery");
    assert_eq!(conversion["lead"]["status"], "converted");
    assert_eq!(conversion["lead"]["prospect_id"], conversion["prospect"]["id"]);

    let again = app.post_as(&owner, &format!("/api/v1/leads/{lead}/convert"), &serde_json::json!({})).await;
    assert_eq!(again.status(), 409);
    let edit = app.patch_as(&owner, &format!("/api/v1/leads/{lead}"), &serde_json::json!({ "company": "Other" })).await;
    assert_eq!(edit.status(), 409);
    let clients = json(app.get_as(&owner, "/api/v1/clients?q=navy").await).await;
    assert_eq!(clients["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn two_concurrent_conversions_make_one() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let lead = new_lead(&app, &owner, serde_json::json!({ "company": "Race Conditions Ltd", "currency": "EUR" })).await;
    let path = format!("/api/v1/leads/{lead}/convert");
    let body = serde_json::json!({});
    let (a, b) = tokio::join!(app.post_as(&owner, &path, &body), app.post_as(&owner, &path, &body));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let clients = json(app.get_as(&owner, "/api/v1/clients?q=race%20conditions").await).await;
    assert_eq!(clients["data"].as_array().unwrap().len(), 1, "nothing half-done by the loser");
    let prospects = json(app.get_as(&owner, "/api/v1/prospects").await).await;
    assert_eq!(prospects["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn conversion_links_an_existing_contact_and_client() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client =
        json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Existing Co" })).await).await;
    let client_id = client["data"]["id"].as_str().unwrap();
    let contact = json(
        app.post_as(
            &owner,
            "/api/v1/contacts",
            &serde_json::json!({ "first_name": "Known", "emails": ["known@example.com"] }),
        )
        .await,
    )
    .await;
    let lead = new_lead(&app, &owner, serde_json::json!({ "first_name": "Known", "email": "known@example.com" })).await;
    let missing_currency = app
        .post_as(&owner, &format!("/api/v1/leads/{lead}/convert"), &serde_json::json!({ "client_id": client_id }))
        .await;
    assert_eq!(missing_currency.status(), 400);
    let response = app
        .post_as(
            &owner,
            &format!("/api/v1/leads/{lead}/convert"),
            &serde_json::json!({ "client_id": client_id, "currency": "GBP", "prospect_name": "Audit 2027" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let conversion = json(response).await["data"].clone();
    assert_eq!(conversion["client"]["id"], client_id);
    assert_eq!(conversion["client_created"], false);
    assert_eq!(conversion["contact"]["id"], contact["data"]["id"]);
    assert_eq!(conversion["prospect"]["name"], "Audit 2027");
    assert_eq!(conversion["prospect"]["currency"], "GBP");
}

#[actix_web::test]
async fn bad_pipeline_input_names_the_field() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    for (body, field) in [
        (serde_json::json!({ "source": "web" }), "first_name"),
        (serde_json::json!({ "company": "X", "estimated_value_minor": -5 }), "estimated_value_minor"),
        (serde_json::json!({ "company": "X", "currency": "dollars" }), "currency"),
        (serde_json::json!({ "company": "X", "email": "nope" }), "email"),
        (serde_json::json!({ "company": "X", "status": "converted" }), "status"),
        (serde_json::json!({ "company": "X", "status": "hot" }), "status"),
    ] {
        let response = app.post_as(&owner, "/api/v1/leads", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(json(response).await["error"]["details"]["fields"][field].is_string(), "{body}");
    }
    assert_eq!(
        app.post_as(&owner, "/api/v1/leads", &serde_json::json!({ "company": "X", "estimated_value_minor": 1.5 }))
            .await
            .status(),
        400
    );

    let client = json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "P" })).await).await;
    let client_id = client["data"]["id"].as_str().unwrap();
    for (body, field) in [
        (serde_json::json!({ "name": "Deal", "currency": "USD" }), "client_id"),
        (
            serde_json::json!({ "client_id": client_id, "name": "Deal", "currency": "USD", "value_minor": -1 }),
            "value_minor",
        ),
        (serde_json::json!({ "client_id": client_id, "name": "Deal", "currency": "USD", "stage": "signed" }), "stage"),
        (
            serde_json::json!({ "client_id": client_id, "name": "Deal", "currency": "USD", "probability": 101 }),
            "probability",
        ),
        (serde_json::json!({ "client_id": uuid::Uuid::now_v7(), "name": "Deal", "currency": "USD" }), "client_id"),
    ] {
        let response = app.post_as(&owner, "/api/v1/prospects", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(json(response).await["error"]["details"]["fields"][field].is_string(), "{body}");
    }
    let response = app
        .post_as(&owner, "/api/v1/prospects", &serde_json::json!({ "client_id": client_id, "name": "Deal", "currency": "usd", "value_minor": 500, "expected_close_date": "2027-03-31", "probability": 40 }))
        .await;
    assert_eq!(response.status(), 201);
    let prospect = json(response).await["data"].clone();
    assert_eq!(prospect["expected_close_date"], "2027-03-31");
    let id = prospect["id"].as_str().unwrap();
    let won = app
        .patch_as(
            &owner,
            &format!("/api/v1/prospects/{id}"),
            &serde_json::json!({ "stage": "won", "probability": null }),
        )
        .await;
    assert_eq!(won.status(), 200);
    let won = json(won).await["data"].clone();
    assert_eq!(won["stage"], "won");
    assert!(won["probability"].is_null());
    assert_eq!(json(app.get_as(&owner, "/api/v1/prospects?stage=won").await).await["data"][0]["id"], id);
    // Both orders, and paging through them.
    let second = json(
        app.post_as(
            &owner,
            "/api/v1/prospects",
            &serde_json::json!({ "client_id": client_id, "name": "Later", "currency": "USD" }),
        )
        .await,
    )
    .await;
    let newest = json(app.get_as(&owner, "/api/v1/prospects?limit=1").await).await;
    assert_eq!(newest["data"][0]["id"], second["data"]["id"]);
    let oldest = json(app.get_as(&owner, "/api/v1/prospects?sort=created_at&limit=1").await).await;
    assert_eq!(oldest["data"][0]["id"], id);
    let next = json(app.get_as(&owner, oldest["meta"]["next"].as_str().unwrap()).await).await;
    assert_eq!(next["data"][0]["id"], second["data"]["id"]);
    assert_eq!(app.get_as(&owner, "/api/v1/leads?sort=value").await.status(), 400);
    assert_eq!(app.get_as(&owner, "/api/v1/prospects?stage=nope").await.status(), 400);
}

#[actix_web::test]
async fn another_firms_leads_and_prospects_do_not_exist() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let lead = new_lead(&app, &owner, serde_json::json!({ "company": "Mine", "currency": "USD" })).await;
    let (_, _, _, intruder) = signed_in_owner(&app).await;
    assert_eq!(app.get_as(&intruder, &format!("/api/v1/leads/{lead}")).await.status(), 404);
    assert_eq!(
        app.patch_as(&intruder, &format!("/api/v1/leads/{lead}"), &serde_json::json!({ "status": "contacted" }))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.post_as(&intruder, &format!("/api/v1/leads/{lead}/convert"), &serde_json::json!({})).await.status(),
        404
    );
    let untouched = json(app.get_as(&owner, &format!("/api/v1/leads/{lead}")).await).await;
    assert_eq!(untouched["data"]["status"], "new", "{untouched}");
    assert!(untouched["data"]["prospect_id"].is_null(), "{untouched}");
    let converted =
        json(app.post_as(&owner, &format!("/api/v1/leads/{lead}/convert"), &serde_json::json!({})).await).await;
    let prospect = converted["data"]["prospect"]["id"].as_str().unwrap();
    assert_eq!(app.get_as(&intruder, &format!("/api/v1/prospects/{prospect}")).await.status(), 404);
    assert_eq!(
        app.patch_as(&intruder, &format!("/api/v1/prospects/{prospect}"), &serde_json::json!({ "stage": "lost" }))
            .await
            .status(),
        404
    );
    let untouched = json(app.get_as(&owner, &format!("/api/v1/prospects/{prospect}")).await).await;
    assert_eq!(untouched["data"]["stage"], "discovery", "{untouched}");
    assert!(json(app.get_as(&intruder, "/api/v1/leads").await).await["data"].as_array().unwrap().is_empty());
}

/// Creation refuses a lead with neither a name nor a company; so does every update, which
/// must not empty a lead into one.
#[actix_web::test]
async fn an_update_cannot_leave_a_lead_nameless() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let lead = new_lead(&app, &owner, serde_json::json!({ "first_name": "Ada", "company": "Engines" })).await;
    let path = format!("/api/v1/leads/{lead}");

    // Emptying one of the two is fine: the other still names the lead.
    let response = app.patch_as(&owner, &path, &serde_json::json!({ "company": null })).await;
    assert_eq!(response.status(), 200);
    let nameless = serde_json::json!({ "first_name": "", "last_name": " " });
    let response = app.patch_as(&owner, &path, &nameless).await;
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["error"]["details"]["fields"]["first_name"], "a name or a company is required", "{body}");
    let stored = json(app.get_as(&owner, &path).await).await;
    assert_eq!(stored["data"]["first_name"], "Ada", "nothing changed");

    // Naming a company in the same update keeps it a lead of someone.
    let response =
        app.patch_as(&owner, &path, &serde_json::json!({ "first_name": "", "company": "Analytical Engines" })).await;
    assert_eq!(response.status(), 200);
    let created = app.post_as(&owner, "/api/v1/leads", &serde_json::json!({ "company": "  " })).await;
    assert_eq!(created.status(), 400);
}
