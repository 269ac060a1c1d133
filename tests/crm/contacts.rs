use crate::helpers::{json, signed_in_owner, spawn_app};

#[actix_web::test]
async fn contacts_normalise_phones_and_keep_emails_unique_per_firm() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let client = json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Acme" })).await).await;
    let client_id = client["data"]["id"].as_str().unwrap();
    let body = serde_json::json!({
        "first_name": "Ada", "last_name": "Lovelace", "title": "CFO", "client_id": client_id,
        "emails": ["Ada@Example.COM", "ada.l@example.com"], "phones": ["(415) 555-2671", "+44 20 7946 0958"],
    });
    let response = app.post_as(&owner, "/api/v1/contacts", &body).await;
    assert_eq!(response.status(), 201);
    let contact = json(response).await["data"].clone();
    assert_eq!(contact["emails"], serde_json::json!(["ada@example.com", "ada.l@example.com"]));
    assert_eq!(contact["phones"], serde_json::json!(["+14155552671", "+442079460958"]));
    assert_eq!(contact["client_id"], client_id);
    let id = contact["id"].as_str().unwrap();

    // Look-ups the way ingestion will make them.
    let by_phone = json(app.get_as(&owner, "/api/v1/contacts?phone=415-555-2671").await).await;
    assert_eq!(by_phone["data"][0]["id"], id);
    let by_email = json(app.get_as(&owner, "/api/v1/contacts?email=ADA@example.com").await).await;
    assert_eq!(by_email["data"][0]["id"], id);
    let searched = json(app.get_as(&owner, "/api/v1/contacts?q=lovel").await).await;
    assert_eq!(searched["data"][0]["id"], id);
    let by_address = json(app.get_as(&owner, "/api/v1/contacts?q=ADA.L@EXAMPLE").await).await;
    assert_eq!(by_address["data"].as_array().unwrap().len(), 1, "search covers email addresses: {by_address}");
    assert_eq!(by_address["data"][0]["id"], id);
    let by_client = json(app.get_as(&owner, &format!("/api/v1/contacts?client_id={client_id}")).await).await;
    assert_eq!(by_client["data"].as_array().unwrap().len(), 1);

    // Another contact cannot take one of those addresses in this firm...
    let clash = serde_json::json!({ "first_name": "Eve", "emails": ["ada@example.com"] });
    let response = app.post_as(&owner, "/api/v1/contacts", &clash).await;
    let status = response.status();
    let error = json(response).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "conflict");
    // ...but another firm's contact can.
    let (_, _, _, other_owner) = signed_in_owner(&app).await;
    assert_eq!(app.post_as(&other_owner, "/api/v1/contacts", &clash).await.status(), 201);

    // Replacing the list frees the old address.
    let patched = app
        .patch_as(
            &owner,
            &format!("/api/v1/contacts/{id}"),
            &serde_json::json!({ "emails": ["ada@newmail.example.com"], "title": null }),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched = json(patched).await["data"].clone();
    assert_eq!(patched["emails"], serde_json::json!(["ada@newmail.example.com"]));
    assert!(patched["title"].is_null());
    assert_eq!(patched["phones"], contact["phones"], "untouched lists stay");
    assert_eq!(app.post_as(&owner, "/api/v1/contacts", &clash).await.status(), 201);
}

#[actix_web::test]
async fn bad_contact_input_names_the_field() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let (_, _, _, other) = signed_in_owner(&app).await;
    let foreign_client =
        json(app.post_as(&other, "/api/v1/clients", &serde_json::json!({ "name": "Theirs" })).await).await;
    let cases = [
        (serde_json::json!({ "emails": ["a@example.com"] }), "first_name"),
        (serde_json::json!({ "first_name": "A", "emails": ["not-an-email"] }), "emails"),
        (serde_json::json!({ "first_name": "A", "phones": ["12"] }), "phones"),
        (serde_json::json!({ "first_name": "A", "phones": ["call me maybe"] }), "phones"),
        (serde_json::json!({ "first_name": "A", "client_id": foreign_client["data"]["id"] }), "client_id"),
    ];
    for (body, field) in cases {
        let response = app.post_as(&owner, "/api/v1/contacts", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert!(error["error"]["details"]["fields"][field].is_string(), "{body}: {error}");
    }
    assert_eq!(app.get_as(&owner, "/api/v1/contacts?phone=nonsense").await.status(), 400);
    assert_eq!(app.get_as(&owner, "/api/v1/contacts?email=nonsense").await.status(), 400);
}

#[actix_web::test]
async fn an_update_may_not_leave_a_contact_without_a_name() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let created = app.post_as(&owner, "/api/v1/contacts", &serde_json::json!({ "first_name": "Only" })).await;
    assert_eq!(created.status(), 201);
    let id = json(created).await["data"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/contacts/{id}");
    for body in [serde_json::json!({ "first_name": "" }), serde_json::json!({ "first_name": "  ", "last_name": "" })] {
        let response = app.patch_as(&owner, &path, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert!(error["error"]["details"]["fields"]["first_name"].is_string(), "{body}: {error}");
    }
    assert_eq!(json(app.get_as(&owner, &path).await).await["data"]["first_name"], "Only");
    // Giving a last name first makes the first one optional, as on creation.
    let renamed = app.patch_as(&owner, &path, &serde_json::json!({ "first_name": "", "last_name": "Surname" })).await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(json(renamed).await["data"]["last_name"], "Surname");
}

#[actix_web::test]
async fn another_firms_contacts_do_not_exist() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let created = json(
        app.post_as(
            &owner,
            "/api/v1/contacts",
            &serde_json::json!({ "first_name": "Private", "phones": ["+14155550100"] }),
        )
        .await,
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap();
    let (_, _, _, intruder) = signed_in_owner(&app).await;
    let path = format!("/api/v1/contacts/{id}");
    assert_eq!(app.get_as(&intruder, &path).await.status(), 404);
    assert_eq!(app.patch_as(&intruder, &path, &serde_json::json!({ "first_name": "Mine" })).await.status(), 404);
    assert_eq!(app.delete_as(&intruder, &path).await.status(), 404);
    assert!(
        json(app.get_as(&intruder, "/api/v1/contacts?phone=+14155550100").await).await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let still = json(app.get_as(&owner, &path).await).await;
    assert_eq!(still["data"]["first_name"], "Private", "{still}");
    assert!(still["data"]["archived_at"].is_null(), "{still}");
    assert_eq!(app.delete_as(&owner, &path).await.status(), 200);
    assert!(json(app.get_as(&owner, "/api/v1/contacts").await).await["data"].as_array().unwrap().is_empty());
}
