use consultantpro::domain::memberships::Role;

use crate::helpers::{PASSWORD, add_member, json, signed_in_owner, spawn_app};

#[actix_web::test]
async fn clients_are_created_read_changed_and_archived() {
    let app = spawn_app().await;
    let (_, _, owner_id, owner) = signed_in_owner(&app).await;
    let body = serde_json::json!({
        "name": "  Acme Holdings ",
        "industry": "Manufacturing",
        "address": { "line1": "1 Main St", "city": "Springfield", "country": "us" },
        "tags": ["Priority", "priority", "retainer"],
        "owner_user_id": owner_id,
        "custom_fields": { "account_code": "ACM-1" },
    });
    let response = app.post_as(&owner, "/api/v1/clients", &body).await;
    assert_eq!(response.status(), 201);
    let client = json(response).await["data"].clone();
    assert_eq!(client["name"], "Acme Holdings");
    assert_eq!(client["status"], "active");
    assert_eq!(client["tags"], serde_json::json!(["priority", "retainer"]));
    assert_eq!(client["address"]["country"], "US");
    let id = client["id"].as_str().unwrap();

    let fetched = json(app.get_as(&owner, &format!("/api/v1/clients/{id}")).await).await;
    assert_eq!(fetched["data"], client);

    // Only the given fields change; null clears an optional one.
    let patched = app
        .patch_as(
            &owner,
            &format!("/api/v1/clients/{id}"),
            &serde_json::json!({ "status": "inactive", "industry": null }),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched = json(patched).await["data"].clone();
    assert_eq!(patched["status"], "inactive");
    assert!(patched["industry"].is_null());
    assert_eq!(patched["name"], "Acme Holdings");
    assert_eq!(patched["tags"], client["tags"]);

    let archived = app.delete_as(&owner, &format!("/api/v1/clients/{id}")).await;
    assert_eq!(archived.status(), 200);
    assert!(json(archived).await["data"]["archived_at"].is_string());
    let listed = json(app.get_as(&owner, "/api/v1/clients").await).await;
    assert!(listed["data"].as_array().unwrap().is_empty(), "archived clients leave the default list");
    let all = json(app.get_as(&owner, "/api/v1/clients?include_archived=true").await).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);

    let log = json(app.get_as(&owner, "/api/v1/audit-events?limit=20").await).await;
    let actions: Vec<&str> = log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["client.created", "client.updated", "client.archived"] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    let updated = log["data"].as_array().unwrap().iter().find(|e| e["action"] == "client.updated").unwrap();
    assert_eq!(updated["metadata"]["fields"], serde_json::json!(["status", "industry"]));
}

#[actix_web::test]
async fn bad_client_input_names_the_field() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let cases = [
        (serde_json::json!({}), "name"),
        (serde_json::json!({ "name": "" }), "name"),
        (serde_json::json!({ "name": "A", "status": "dormant" }), "status"),
        (serde_json::json!({ "name": "A", "address": { "country": "USA" } }), "address.country"),
        (serde_json::json!({ "name": "A", "tags": (0..30).map(|i| format!("t{i}")).collect::<Vec<_>>() }), "tags"),
        (serde_json::json!({ "name": "A", "owner_user_id": uuid::Uuid::now_v7() }), "owner_user_id"),
    ];
    for (body, field) in cases {
        let response = app.post_as(&owner, "/api/v1/clients", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error = json(response).await;
        assert_eq!(error["error"]["code"], "validation_error");
        assert!(error["error"]["details"]["fields"][field].is_string(), "{body}: {error}");
    }
    // Wrong types and unknown fields are refused too.
    for body in [serde_json::json!({ "name": 5 }), serde_json::json!({ "name": "A", "colour": "red" })] {
        assert_eq!(app.post_as(&owner, "/api/v1/clients", &body).await.status(), 400, "{body}");
    }
    for query in ["?sort=size", "?owner_user_id=nope", "?cursor=abc", "?limit=0x10"] {
        assert_eq!(app.get_as(&owner, &format!("/api/v1/clients{query}")).await.status(), 400, "{query}");
    }
}

#[actix_web::test]
async fn filters_search_sort_and_pages_are_stable_while_rows_are_added() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    for (name, tag) in
        [("Delta LLC", "a"), ("alpha GmbH", "b"), ("Charlie & Co", "a"), ("Bravo 50%", "b"), ("Echo", "a")]
    {
        let body = serde_json::json!({ "name": name, "tags": [tag] });
        assert_eq!(app.post_as(&owner, "/api/v1/clients", &body).await.status(), 201);
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };
    let by_name = json(app.get_as(&owner, "/api/v1/clients?sort=name").await).await;
    assert_eq!(names(&by_name), ["alpha GmbH", "Bravo 50%", "Charlie & Co", "Delta LLC", "Echo"]);
    let newest = json(app.get_as(&owner, "/api/v1/clients").await).await;
    assert_eq!(names(&newest)[0], "Echo");
    assert_eq!(names(&json(app.get_as(&owner, "/api/v1/clients?q=LLC").await).await), ["Delta LLC"]);
    assert_eq!(names(&json(app.get_as(&owner, "/api/v1/clients?q=50%25").await).await), ["Bravo 50%"], "% is literal");
    assert_eq!(
        names(&json(app.get_as(&owner, "/api/v1/clients?tag=b&sort=name").await).await),
        ["alpha GmbH", "Bravo 50%"]
    );

    let first = json(app.get_as(&owner, "/api/v1/clients?sort=name&limit=2").await).await;
    assert_eq!(names(&first), ["alpha GmbH", "Bravo 50%"]);
    // A client added before the cursor's position does not shift the next page.
    let added = app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Aardvark" })).await;
    assert_eq!(added.status(), 201);
    let second = json(app.get_as(&owner, first["meta"]["next"].as_str().unwrap()).await).await;
    assert_eq!(names(&second), ["Charlie & Co", "Delta LLC"]);
    let back = json(app.get_as(&owner, second["meta"]["previous"].as_str().unwrap()).await).await;
    assert_eq!(names(&back), ["alpha GmbH", "Bravo 50%"]);
    // A cursor from one order cannot be used with another.
    let other_order = format!(
        "/api/v1/clients?sort=-name&cursor={}",
        first["meta"]["next"].as_str().unwrap().rsplit("cursor=").next().unwrap()
    );
    assert_eq!(app.get_as(&owner, &other_order).await.status(), 400);
}

#[actix_web::test]
async fn another_firms_clients_do_not_exist_and_readonly_members_only_read() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let created =
        json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Secret Client" })).await).await;
    let id = created["data"]["id"].as_str().unwrap();

    let (_, _, _, intruder) = signed_in_owner(&app).await;
    let path = format!("/api/v1/clients/{id}");
    assert_eq!(app.get_as(&intruder, &path).await.status(), 404);
    assert_eq!(app.patch_as(&intruder, &path, &serde_json::json!({ "name": "Mine" })).await.status(), 404);
    assert_eq!(app.delete_as(&intruder, &path).await.status(), 404);
    assert!(json(app.get_as(&intruder, "/api/v1/clients?q=secret").await).await["data"].as_array().unwrap().is_empty());

    let (reader_email, _) = add_member(&app.db(), &firm, Role::Readonly).await;
    let reader = app.login_ok(&firm.slug, &reader_email, PASSWORD).await["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&reader, &path).await.status(), 200);
    assert_eq!(app.post_as(&reader, "/api/v1/clients", &serde_json::json!({ "name": "X" })).await.status(), 403);
    assert_eq!(app.patch_as(&reader, &path, &serde_json::json!({ "name": "X" })).await.status(), 403);
    // The refused writes changed nothing of the owner's client.
    let still = json(app.get_as(&owner, &path).await).await;
    assert_eq!(still["data"]["name"], "Secret Client");
    assert!(still["data"]["archived_at"].is_null(), "{still}");
}

#[actix_web::test]
async fn the_timeline_shows_notes_and_changes_newest_first() {
    let app = spawn_app().await;
    let (_, _, owner_id, owner) = signed_in_owner(&app).await;
    let created =
        json(app.post_as(&owner, "/api/v1/clients", &serde_json::json!({ "name": "Timeline Co" })).await).await;
    let id = created["data"]["id"].as_str().unwrap();
    let note = app
        .post_as(
            &owner,
            &format!("/api/v1/clients/{id}/notes"),
            &serde_json::json!({ "body": "Kick-off call went well" }),
        )
        .await;
    assert_eq!(note.status(), 201);
    app.patch_as(&owner, &format!("/api/v1/clients/{id}"), &serde_json::json!({ "status": "inactive" })).await;
    assert_eq!(
        app.post_as(&owner, &format!("/api/v1/clients/{id}/notes"), &serde_json::json!({ "body": "  " }))
            .await
            .status(),
        400
    );

    let timeline = json(app.get_as(&owner, &format!("/api/v1/clients/{id}/timeline")).await).await;
    let entries = timeline["data"].as_array().unwrap();
    let texts: Vec<&str> = entries.iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["client.updated", "Kick-off call went well", "client.created"]);
    assert_eq!(entries[1]["kind"], "note");
    assert_eq!(entries[1]["actor_id"], owner_id.to_string());
    assert_eq!(entries[0]["kind"], "change");
    assert_eq!(entries[0]["detail"]["fields"], serde_json::json!(["status"]));
    let limited = json(app.get_as(&owner, &format!("/api/v1/clients/{id}/timeline?limit=1")).await).await;
    assert_eq!(limited["data"].as_array().unwrap().len(), 1);

    let (_, _, _, intruder) = signed_in_owner(&app).await;
    assert_eq!(app.get_as(&intruder, &format!("/api/v1/clients/{id}/timeline")).await.status(), 404);
    assert_eq!(
        app.post_as(&intruder, &format!("/api/v1/clients/{id}/notes"), &serde_json::json!({ "body": "hi" }))
            .await
            .status(),
        404
    );
    let after = json(app.get_as(&owner, &format!("/api/v1/clients/{id}/timeline")).await).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 3, "no note from the intruder: {after}");
}
