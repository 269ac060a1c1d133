use crate::helpers::{TestApp, json, signed_in_owner, spawn_app};

/// A client and a prospect in EUR; returns the prospect id.
async fn prospect(app: &TestApp, token: &str) -> String {
    let client =
        json(app.post_as(token, "/api/v1/clients", &serde_json::json!({ "name": "Proposal Client" })).await).await;
    let body = serde_json::json!({ "client_id": client["data"]["id"], "name": "Advisory", "currency": "EUR" });
    json(app.post_as(token, "/api/v1/prospects", &body).await).await["data"]["id"].as_str().unwrap().to_owned()
}

fn lines() -> serde_json::Value {
    // Worked by hand: 1.5 x 333 = 499.5 -> 500, tax 7.25 % = 36.25 -> 36;
    // 3 x 1999 = 5997, tax 20 % = 1199.4 -> 1199. Subtotal 6497, tax 1235, total 7732.
    serde_json::json!([
        { "description": "Workshop", "quantity": "1.5", "unit_price_minor": 333, "tax_rate": "7.25" },
        { "description": "Report", "quantity": 3, "unit_price_minor": 1999, "tax_rate": 20 },
    ])
}

#[actix_web::test]
async fn proposals_total_on_the_server_and_freeze_what_was_sent() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let prospect = prospect(&app, &owner).await;
    let body = serde_json::json!({ "title": "Q1 engagement", "line_items": lines(), "total_minor": 1 });
    assert_eq!(
        app.post_as(&owner, &format!("/api/v1/prospects/{prospect}/proposals"), &body).await.status(),
        400,
        "totals are not accepted from clients"
    );
    let body = serde_json::json!({ "title": "Q1 engagement", "line_items": lines() });
    let response = app.post_as(&owner, &format!("/api/v1/prospects/{prospect}/proposals"), &body).await;
    assert_eq!(response.status(), 201);
    let proposal = json(response).await["data"].clone();
    assert_eq!(proposal["currency"], "EUR");
    assert_eq!(proposal["subtotal_minor"], 6497);
    assert_eq!(proposal["tax_minor"], 1235);
    assert_eq!(proposal["total_minor"], 7732);
    assert_eq!(proposal["line_items"][0]["total_minor"], 536);
    let id = proposal["id"].as_str().unwrap();

    // A draft changes in place.
    let one_line =
        serde_json::json!({ "line_items": [{ "description": "Workshop", "quantity": "2", "unit_price_minor": 1000 }] });
    let revised = json(app.patch_as(&owner, &format!("/api/v1/proposals/{id}"), &one_line).await).await["data"].clone();
    assert_eq!(revised["version"], 1);
    assert_eq!(revised["total_minor"], 2000);

    let sent = app
        .post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &serde_json::json!({ "action": "send" }))
        .await;
    assert_eq!(json(sent).await["data"]["status"], "sent");
    // Changing a sent proposal makes version 2; version 1 stays as it was sent.
    let revised = json(
        app.patch_as(&owner, &format!("/api/v1/proposals/{id}"), &serde_json::json!({ "line_items": lines() })).await,
    )
    .await["data"]
        .clone();
    assert_eq!(revised["version"], 2);
    assert_eq!(revised["status"], "draft");
    assert_eq!(revised["total_minor"], 7732);
    let first = json(app.get_as(&owner, &format!("/api/v1/proposals/{id}?version=1")).await).await["data"].clone();
    assert_eq!(first["total_minor"], 2000);
    assert_eq!(app.get_as(&owner, &format!("/api/v1/proposals/{id}?version=9")).await.status(), 404);

    // Only allowed moves: a draft cannot be accepted; once accepted, nothing else.
    let accept = serde_json::json!({ "action": "accept" });
    assert_eq!(app.post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &accept).await.status(), 409);
    app.post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &serde_json::json!({ "action": "send" })).await;
    let accepted = app.post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &accept).await;
    assert_eq!(json(accepted).await["data"]["status"], "accepted");
    let decline = serde_json::json!({ "action": "decline" });
    assert_eq!(app.post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &decline).await.status(), 409);
    assert_eq!(app.patch_as(&owner, &format!("/api/v1/proposals/{id}"), &one_line).await.status(), 409);
    let won = json(app.get_as(&owner, &format!("/api/v1/prospects/{prospect}")).await).await;
    assert_eq!(won["data"]["stage"], "won", "accepting marks the prospect won");
    let listed = json(app.get_as(&owner, &format!("/api/v1/prospects/{prospect}/proposals")).await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn bad_proposals_are_refused_and_other_firms_see_nothing() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let prospect = prospect(&app, &owner).await;
    let path = format!("/api/v1/prospects/{prospect}/proposals");
    let bad = serde_json::json!({ "title": "X", "line_items": [
        { "description": "ok", "quantity": "1", "unit_price_minor": 100 },
        { "description": "neg", "quantity": "1", "unit_price_minor": -100 },
    ]});
    let response = app.post_as(&owner, &path, &bad).await;
    assert_eq!(response.status(), 400);
    assert!(json(response).await["error"]["details"]["fields"]["line_items[1].unit_price_minor"].is_string());
    let empty =
        json(app.post_as(&owner, &path, &serde_json::json!({ "title": "Empty", "line_items": [] })).await).await;
    let id = empty["data"]["id"].as_str().unwrap();
    let send = serde_json::json!({ "action": "send" });
    assert_eq!(app.post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &send).await.status(), 400);
    assert_eq!(
        app.post_as(&owner, &format!("/api/v1/proposals/{id}/transition"), &serde_json::json!({ "action": "burn" }))
            .await
            .status(),
        400
    );

    let (_, _, _, intruder) = signed_in_owner(&app).await;
    assert_eq!(app.get_as(&intruder, &format!("/api/v1/proposals/{id}")).await.status(), 404);
    assert_eq!(
        app.patch_as(
            &intruder,
            &format!("/api/v1/proposals/{id}"),
            &serde_json::json!({ "title": "Mine", "line_items": [] })
        )
        .await
        .status(),
        404
    );
    assert_eq!(app.post_as(&intruder, &format!("/api/v1/proposals/{id}/transition"), &send).await.status(), 404);
    assert_eq!(
        app.post_as(&intruder, &path, &serde_json::json!({ "title": "X", "line_items": [] })).await.status(),
        404
    );
    let still = json(app.get_as(&owner, &format!("/api/v1/proposals/{id}")).await).await["data"].clone();
    assert_eq!(
        (still["status"].as_str(), still["version"].as_i64(), still["title"].as_str()),
        (Some("draft"), Some(1), Some("Empty"))
    );
    assert_eq!(
        json(app.get_as(&owner, &path).await).await["data"].as_array().unwrap().len(),
        1,
        "no proposal from the intruder"
    );
}
