//! Inbound: Twilio's signed webhooks filed once into the sender's conversation, live;
//! everything unsigned, mis-signed or malformed refused without storing anything.

use consultantpro::ingest::twilio::compute_signature;
use consultantpro::standins::twilio::{StandinAccount, inbound_params};
use serde_json::json;
use sha2::Digest;

use crate::helpers::{TestApp, add_member, json};
use crate::{
    SmsFirm, configure, message_sid, messages, random_mobile, sms_app, sms_conversations, sms_firm, text_in, webhook,
    ws,
};

async fn count_messages(app: &TestApp, firm: &SmsFirm) -> usize {
    let mut total = 0;
    for conversation in sms_conversations(app, &firm.token).await {
        total += messages(app, &firm.token, conversation["id"].as_str().unwrap()).await.len();
    }
    total
}

#[actix_web::test]
async fn a_text_lands_in_the_senders_conversation_live() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let mut socket = ws::connect(&app, &firm.token).await;
    let sender = random_mobile();

    let (answer, _) = text_in(&app, &firm, &sender, "Hello, can we move Thursday's call?").await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    assert!(answer.text().await.unwrap().contains("<Response></Response>"));

    // Members hear of the new conversation without having subscribed to it.
    let event = socket.next_of("event").await;
    assert_eq!(event["topic"], "sms.received", "{event}");
    assert_eq!(event["payload"]["new_conversation"], true);
    let conversation = event["payload"]["conversation_id"].as_str().unwrap().to_owned();

    let listed = sms_conversations(&app, &firm.token).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], conversation.as_str());
    assert_eq!(listed[0]["channel"], "sms");
    let contact_id = listed[0]["participants"]["contacts"][0].as_str().unwrap().to_owned();
    let contact = json(app.get_as(&firm.token, &format!("/api/v1/contacts/{contact_id}")).await).await;
    assert_eq!(contact["data"]["phones"], json!([sender]));
    assert_eq!(contact["data"]["needs_review"], true, "an unknown sender becomes a contact to review");

    // The next text joins the same conversation and reaches a subscriber as a message.
    socket.subscribe(&conversation, None).await;
    text_in(&app, &firm, &sender, "Or Friday?").await;
    let frame = socket.messages(&conversation, 1).await.remove(0);
    assert_eq!(frame["message"]["body"], "Or Friday?");
    assert_eq!(frame["message"]["author_contact_id"], contact_id.as_str());
    assert_eq!(frame["message"]["delivery"]["direction"], "inbound");
    assert_eq!(frame["message"]["delivery"]["status"], "received");
    assert_eq!(sms_conversations(&app, &firm.token).await.len(), 1);
    assert_eq!(messages(&app, &firm.token, &conversation).await.len(), 2);

    // A known contact's number maps to that contact, whatever conversation it opens.
    let known = random_mobile();
    let created = app
        .post_as(
            &firm.token,
            "/api/v1/contacts",
            &json!({ "first_name": "Ada", "last_name": "Client", "phones": [known] }),
        )
        .await;
    let known_id = json(created).await["data"]["id"].as_str().unwrap().to_owned();
    text_in(&app, &firm, &known, "Hi, Ada here").await;
    let conversations = sms_conversations(&app, &firm.token).await;
    assert_eq!(conversations.len(), 2);
    let adas = conversations.iter().find(|c| c["participants"]["contacts"][0] == known_id.as_str()).unwrap();
    assert!(adas["subject"].as_str().unwrap().contains("Ada Client"), "{adas}");
}

#[actix_web::test]
async fn twilio_retries_of_one_message_store_it_once() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let sid = message_sid();
    let params = inbound_params(&firm.account.sid, &sid, &random_mobile(), &firm.number, "Only once please");
    let deliveries = (0..5).map(|_| webhook(&app, "/api/v1/twilio/sms", &firm.account.token, &params));
    for answer in futures_util::future::join_all(deliveries).await {
        assert_eq!(answer.status(), 200);
    }
    assert_eq!(count_messages(&app, &firm).await, 1);
}

#[actix_web::test]
async fn unsigned_mis_signed_and_malformed_webhooks_store_nothing() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let url = app.url("/api/v1/twilio/sms");
    let params = inbound_params(&firm.account.sid, &message_sid(), &random_mobile(), &firm.number, "Let me in");
    let form = |params: &[(String, String)]| {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            form.append_pair(k, v);
        }
        form.finish()
    };
    let post = |signature: Option<String>, body: String, content_type: &'static str| {
        let mut request = reqwest::Client::new().post(&url).header("Content-Type", content_type).body(body);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send()
    };
    let good = compute_signature(&firm.account.token, &url, &params);

    let missing = post(None, form(&params), "application/x-www-form-urlencoded").await.unwrap();
    assert_eq!(missing.status(), 403);
    let body = json(missing).await;
    assert_eq!(body["error"]["code"], "forbidden");

    let wrong_token = compute_signature("another-accounts-token", &url, &params);
    assert_eq!(
        post(Some(wrong_token), form(&params), "application/x-www-form-urlencoded").await.unwrap().status(),
        403
    );
    assert_eq!(
        post(Some("garbage".into()), form(&params), "application/x-www-form-urlencoded").await.unwrap().status(),
        403
    );

    // Signed, then changed on the way.
    let mut tampered = params.clone();
    tampered.iter_mut().find(|(k, _)| k == "Body").unwrap().1 = "Something else".into();
    assert_eq!(
        post(Some(good.clone()), form(&tampered), "application/x-www-form-urlencoded").await.unwrap().status(),
        403
    );

    // A number no firm has.
    let mut elsewhere = params.clone();
    elsewhere.iter_mut().find(|(k, _)| k == "To").unwrap().1 = random_mobile();
    let signed = compute_signature(&firm.account.token, &url, &elsewhere);
    assert_eq!(post(Some(signed), form(&elsewhere), "application/x-www-form-urlencoded").await.unwrap().status(), 403);

    // Malformed: no To, a bad MessageSid, a body that is neither form nor JSON.
    let no_to: Vec<_> = params.iter().filter(|(k, _)| k != "To").cloned().collect();
    let answer = webhook(&app, "/api/v1/twilio/sms", &firm.account.token, &no_to).await;
    assert_eq!(answer.status(), 400);
    assert_eq!(json(answer).await["error"]["code"], "validation_error");
    let mut bad_sid = params.clone();
    bad_sid.iter_mut().find(|(k, _)| k == "MessageSid").unwrap().1 = "SM-not-a-sid".into();
    let answer = webhook(&app, "/api/v1/twilio/sms", &firm.account.token, &bad_sid).await;
    assert_eq!(answer.status(), 400);
    assert!(json(answer).await["error"]["details"]["fields"]["MessageSid"].is_string());
    assert_eq!(post(Some(good.clone()), "<xml/>".into(), "application/xml").await.unwrap().status(), 415);
    let broken_json = post(Some(good.clone()), "{not json".into(), "application/json").await.unwrap();
    assert_eq!(broken_json.status(), 400);

    assert_eq!(count_messages(&app, &firm).await, 0, "nothing refused was stored");
    // The genuine request still works afterwards.
    assert_eq!(post(Some(good), form(&params), "application/x-www-form-urlencoded").await.unwrap().status(), 200);
    assert_eq!(count_messages(&app, &firm).await, 1);
}

#[actix_web::test]
async fn signatures_hold_through_a_proxy_and_for_json_bodies() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    // Twilio calls the public address of a proxy; the proxy passes the request on.
    let public = "https://hub.example.test";
    let settings = json!({ "account_sid": firm.account.sid, "public_base_url": public });
    let saved =
        app.client.put(app.url("/api/v1/sms/settings")).bearer_auth(&firm.token).json(&settings).send().await.unwrap();
    assert_eq!(saved.status(), 200, "the stored token stays when none is given");

    let params = inbound_params(&firm.account.sid, &message_sid(), &random_mobile(), &firm.number, "Via the proxy");
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        form.append_pair(k, v);
    }
    let body = form.finish();
    // Signed with the default port written out, as some of Twilio's requests are.
    let signature = compute_signature(&firm.account.token, &format!("{public}:443/api/v1/twilio/sms"), &params);
    let answer = reqwest::Client::new()
        .post(app.url("/api/v1/twilio/sms"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    // A JSON body: signed over the URL, which carries the body's SHA-256.
    let payload = json!({
        "MessageSid": message_sid(), "AccountSid": firm.account.sid, "From": random_mobile(),
        "To": firm.number, "Body": "Sent as JSON",
    })
    .to_string();
    let hash = hex::encode(sha2::Sha256::digest(payload.as_bytes()));
    let path = format!("/api/v1/twilio/sms?bodySHA256={hash}");
    let signature = compute_signature(&firm.account.token, &format!("{public}{path}"), &[]);
    let send = |body: String| {
        reqwest::Client::new()
            .post(app.url(&path))
            .header("Content-Type", "application/json")
            .header("X-Twilio-Signature", signature.clone())
            .body(body)
            .send()
    };
    assert_eq!(send(payload.replace("Sent as JSON", "Changed")).await.unwrap().status(), 403);
    assert_eq!(send(payload).await.unwrap().status(), 200);
    assert_eq!(count_messages(&app, &firm).await, 2);
}

#[actix_web::test]
async fn a_number_in_a_messaging_service_pool_is_found_through_the_service() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let service = firm.account.services[0].clone();
    let added = app.post_as(&firm.token, "/api/v1/sms/numbers", &json!({ "messaging_service_sid": service })).await;
    assert_eq!(added.status(), 201, "{}", added.text().await.unwrap());
    // A service the account does not have is refused.
    let foreign = format!("MG{}", uuid::Uuid::new_v4().simple());
    let refused = app.post_as(&firm.token, "/api/v1/sms/numbers", &json!({ "messaging_service_sid": foreign })).await;
    assert_eq!(refused.status(), 400);

    // Sent to a pool number the firm never registered on its own.
    let mut params = inbound_params(&firm.account.sid, &message_sid(), &random_mobile(), &random_mobile(), "Pool");
    params.push(("MessagingServiceSid".into(), service));
    let answer = webhook(&app, "/api/v1/twilio/sms", &firm.account.token, &params).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(count_messages(&app, &firm).await, 1);
}

#[actix_web::test]
async fn pictures_are_recorded_with_their_types() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let mut params = inbound_params(&firm.account.sid, &message_sid(), &random_mobile(), &firm.number, "");
    params.retain(|(k, _)| k != "NumMedia");
    params.extend(
        [
            ("NumMedia", "2"),
            ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2"),
            ("MediaContentType1", "application/pdf"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    assert_eq!(webhook(&app, "/api/v1/twilio/sms", &firm.account.token, &params).await.status(), 200);
    let conversation = sms_conversations(&app, &firm.token).await.remove(0);
    let message = messages(&app, &firm.token, conversation["id"].as_str().unwrap()).await.remove(0);
    assert_eq!(message["body"], "");
    let media = message["delivery"]["media"].as_array().unwrap();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0]["content_type"], "image/jpeg");
    assert_eq!(media[1]["content_type"], "application/pdf");
}

#[actix_web::test]
async fn settings_keep_the_token_to_themselves_and_refuse_bad_input() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let shown = json(app.get_as(&firm.token, "/api/v1/sms/settings").await).await;
    assert_eq!(shown["data"]["account_sid"], firm.account.sid.as_str());
    assert_eq!(shown["data"]["auth_token_set"], true);
    assert!(!shown.to_string().contains(&firm.account.token), "the token never leaves the server");
    assert_eq!(shown["data"]["inbound_url"], format!("{}/api/v1/twilio/sms", app.address));
    assert_eq!(
        shown["data"]["status_callback_url"],
        format!("{}/api/v1/twilio/status/{}", app.address, firm.id().into_uuid())
    );
    // Sealed at rest, too.
    let stored = crate::sealed_token(&app, firm.id()).await;
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(!stored.contains(&firm.account.token));

    let bad = json!({ "account_sid": "AC123", "auth_token": "short", "public_base_url": "ftp://x", "help_text": "x".repeat(2000) });
    let answer =
        app.client.put(app.url("/api/v1/sms/settings")).bearer_auth(&firm.token).json(&bad).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let fields = &json(answer).await["error"]["details"]["fields"];
    for field in ["account_sid", "auth_token", "public_base_url", "help_text"] {
        assert!(fields[field].is_string(), "{field}: {fields}");
    }
    let unknown = json!({ "account_sid": firm.account.sid, "public_base_url": app.address, "extra": 1 });
    let answer =
        app.client.put(app.url("/api/v1/sms/settings")).bearer_auth(&firm.token).json(&unknown).send().await.unwrap();
    assert_eq!(answer.status(), 400);

    // Senders are checked field by field before Twilio is asked anything.
    for (body, field) in [
        (json!({}), "phone_number"),
        (json!({ "phone_number": "not a number" }), "phone_number"),
        (json!({ "messaging_service_sid": "MG123" }), "messaging_service_sid"),
        (json!({ "phone_number": random_mobile(), "per_second": 0 }), "per_second"),
        (json!({ "phone_number": random_mobile(), "label": "x".repeat(101) }), "label"),
    ] {
        let answer = app.post_as(&firm.token, "/api/v1/sms/numbers", &body).await;
        assert_eq!(answer.status(), 400, "{body}");
        assert!(json(answer).await["error"]["details"]["fields"][field].is_string(), "{field}");
    }
    let unknown =
        app.post_as(&firm.token, "/api/v1/sms/numbers", &json!({ "phone_number": "+447400000000", "colour": 1 })).await;
    assert_eq!(unknown.status(), 400);
    let missing = app.delete_as(&firm.token, &format!("/api/v1/sms/numbers/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(json(app.get_as(&firm.token, "/api/v1/sms/numbers").await).await["data"].as_array().unwrap().len(), 1);

    // Staff send messages but do not manage the firm's Twilio account.
    let (email, _) = add_member(&app.db(), &firm.firm, consultantpro::domain::memberships::Role::Staff).await;
    let staff = app.login_ok(&firm.firm.slug, &email, crate::helpers::PASSWORD).await;
    let staff = staff["access_token"].as_str().unwrap();
    assert_eq!(app.get_as(staff, "/api/v1/sms/settings").await.status(), 403);
    assert_eq!(
        app.post_as(staff, "/api/v1/sms/numbers", &json!({ "phone_number": random_mobile() })).await.status(),
        403
    );
}

#[actix_web::test]
async fn another_firm_sees_and_takes_nothing() {
    let (app, standin) = sms_app().await;
    let a = sms_firm(&app, &standin).await;
    let b = sms_firm(&app, &standin).await;
    text_in(&app, &a, &random_mobile(), "For firm A only").await;
    let conversation = sms_conversations(&app, &a.token).await.remove(0);
    let id = conversation["id"].as_str().unwrap();
    assert_eq!(app.get_as(&b.token, &format!("/api/v1/conversations/{id}")).await.status(), 404);
    assert_eq!(app.get_as(&b.token, &format!("/api/v1/conversations/{id}/messages")).await.status(), 404);
    assert!(sms_conversations(&app, &b.token).await.is_empty());
    let b_numbers = json(app.get_as(&b.token, "/api/v1/sms/numbers").await).await;
    assert_eq!(b_numbers["data"].as_array().unwrap().len(), 1);
    assert_eq!(app.delete_as(&b.token, &format!("/api/v1/sms/numbers/{}", a.number_id)).await.status(), 404);

    // B's account does not own A's number — not even with a longer number that begins with
    // it, which Twilio's own filter would list — and were it to own it, the number is taken.
    let mut b_account = b.account.clone();
    b_account.numbers.push(format!("{}5", a.number));
    standin.add_account(b_account.clone());
    let taken = app.post_as(&b.token, "/api/v1/sms/numbers", &json!({ "phone_number": a.number })).await;
    assert_eq!(taken.status(), 400);
    b_account.numbers.push(a.number.clone());
    standin.add_account(b_account);
    let taken = app.post_as(&b.token, "/api/v1/sms/numbers", &json!({ "phone_number": a.number })).await;
    assert_eq!(taken.status(), 409);
    let a_numbers = json(app.get_as(&a.token, "/api/v1/sms/numbers").await).await;
    assert!(a_numbers["data"].as_array().unwrap().iter().any(|n| n["id"] == a.number_id.as_str()), "{a_numbers}");

    // A's number signed with B's token, and A's status callbacks signed by B, are refused.
    let params = inbound_params(&b.account.sid, &message_sid(), &random_mobile(), &a.number, "Spoofed");
    assert_eq!(webhook(&app, "/api/v1/twilio/sms", &b.account.token, &params).await.status(), 403);
    let callback = vec![
        ("MessageSid".to_owned(), message_sid()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
        ("AccountSid".to_owned(), b.account.sid.clone()),
    ];
    let path = format!("/api/v1/twilio/status/{}", a.id().into_uuid());
    assert_eq!(webhook(&app, &path, &b.account.token, &callback).await.status(), 403);
    assert_eq!(count_messages(&app, &a).await, 1);

    // A firm's settings can hold another account, but its token opens only in its own row.
    // (The account changes only once its senders, proven against the old one, are gone.)
    let mut copied = StandinAccount::generate(&random_mobile());
    copied.sid = a.account.sid.clone();
    assert_eq!(configure(&app, &b.token, &copied, "").await.status(), 409);
    assert_eq!(app.delete_as(&b.token, &format!("/api/v1/sms/numbers/{}", b.number_id)).await.status(), 200);
    assert_eq!(configure(&app, &b.token, &copied, "").await.status(), 200);
    let params = inbound_params(&a.account.sid, &message_sid(), &random_mobile(), &a.number, "Still A's");
    assert_eq!(webhook(&app, "/api/v1/twilio/sms", &copied.token, &params).await.status(), 403);
    assert_eq!(count_messages(&app, &a).await, 1);
}

#[actix_web::test]
async fn keywords_opt_out_opt_in_and_ask_for_help() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let sender = random_mobile();
    text_in(&app, &firm, &sender, "Hello").await;
    let conversation = sms_conversations(&app, &firm.token).await.remove(0);
    let id = conversation["id"].as_str().unwrap().to_owned();
    let contact_id = conversation["participants"]["contacts"][0].as_str().unwrap().to_owned();
    let contact = || async { json(app.get_as(&firm.token, &format!("/api/v1/contacts/{contact_id}")).await).await };
    let reply = |body: &'static str| {
        let path = format!("/api/v1/conversations/{id}/messages");
        let token = firm.token.clone();
        let app = &app;
        async move { app.post_as(&token, &path, &json!({ "body": body })).await }
    };

    // "STOP PLEASE" is a message like any other.
    text_in(&app, &firm, &sender, "STOP PLEASE").await;
    assert_eq!(contact().await["data"]["sms_opted_out"], json!([]));

    text_in(&app, &firm, &sender, "  Stop ").await;
    assert_eq!(contact().await["data"]["sms_opted_out"], json!([sender]));
    let attempts = standin.attempts();
    let refused = reply("Are you sure?").await;
    assert_eq!(refused.status(), 409);
    let refused = json(refused).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("opted out"), "{refused}");
    assert_eq!(standin.attempts(), attempts, "nothing reached Twilio");
    let audit = json(app.get_as(&firm.token, "/api/v1/audit-events?action=sms.opted_out").await).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["data"][0]["target_id"], contact_id.as_str());

    text_in(&app, &firm, &sender, "START").await;
    assert_eq!(contact().await["data"]["sms_opted_out"], json!([]));
    assert_eq!(reply("Welcome back").await.status(), 201);
    let audit = json(app.get_as(&firm.token, "/api/v1/audit-events?action=sms.opted_in").await).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");

    // HELP is answered with the firm's help text, as a message of the conversation — once a
    // day, however often it is asked.
    text_in(&app, &firm, &sender, "help").await;
    text_in(&app, &firm, &sender, "HELP").await;
    let all = messages(&app, &firm.token, &id).await;
    let help = &all[all.len() - 2];
    assert_eq!(help["body"], "Test Firm: reply STOP to opt out.");
    assert!(help["author_user_id"].is_null() && help["author_contact_id"].is_null());
    assert_eq!(help["delivery"]["direction"], "outbound");
    crate::run_jobs_until(&app, firm.id(), || async {
        standin.sent().iter().any(|m| m.to == sender && m.body == "Test Firm: reply STOP to opt out.")
    })
    .await;
    // Every keyword and message was kept in the conversation.
    let bodies: Vec<_> = all.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        bodies,
        ["Hello", "STOP PLEASE", "  Stop ", "START", "Welcome back", "help", help["body"].as_str().unwrap(), "HELP"]
    );
    let helped = standin.sent().iter().filter(|m| m.body == "Test Firm: reply STOP to opt out.").count();
    assert_eq!(helped, 1);
}
