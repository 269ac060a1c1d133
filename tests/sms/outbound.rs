//! Outbound: replies queued through the jobs queue to Twilio's Messages API, paced per
//! sender, retried through Twilio's failures and sent once, refusals shown, and statuses
//! that only move forward whatever order the callbacks arrive in.

use consultantpro::domain::FirmId;
use scoped_futures::ScopedFutureExt;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json};
use crate::{
    SmsFirm, messages, random_mobile, run_jobs_until, sms_app, sms_conversations, sms_firm, text_in, webhook, ws,
};

/// What Twilio posts to a status callback.
fn status_params(firm: &SmsFirm, sid: String, status: &str, code: Option<&str>) -> Vec<(String, String)> {
    let mut params = vec![
        ("AccountSid".to_owned(), firm.account.sid.clone()),
        ("MessageSid".to_owned(), sid),
        ("MessageStatus".to_owned(), status.to_owned()),
    ];
    if let Some(code) = code {
        params.push(("ErrorCode".to_owned(), code.to_owned()));
    }
    params
}

/// A conversation someone started by texting in; returns its id.
async fn conversation_with(app: &TestApp, firm: &SmsFirm, sender: &str) -> String {
    text_in(app, firm, sender, "Hello from the client").await;
    sms_conversations(app, &firm.token)
        .await
        .into_iter()
        .find(|c| c["subject"].as_str().unwrap().contains(sender))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn reply(app: &TestApp, firm: &SmsFirm, conversation: &str, body: &str) -> Value {
    let response = app
        .post_as(&firm.token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": body }))
        .await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

/// The delivery of one message, as the API shows it now.
async fn delivery(app: &TestApp, firm: &SmsFirm, conversation: &str, message_id: &str) -> Value {
    let all = messages(app, &firm.token, conversation).await;
    all.into_iter().find(|m| m["id"] == message_id).unwrap()["delivery"].clone()
}

async fn wait_for_status(app: &TestApp, firm: &SmsFirm, conversation: &str, message_id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let now = delivery(app, firm, conversation, message_id).await;
        if now["status"] == status {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{message_id} never reached {status}: {}", delivery(app, firm, conversation, message_id).await);
}

#[actix_web::test]
async fn a_reply_goes_out_and_its_status_reaches_the_socket() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let sender = random_mobile();
    let conversation = conversation_with(&app, &firm, &sender).await;
    let mut socket = ws::connect(&app, &firm.token).await;
    socket.subscribe(&conversation, None).await;

    let body = "Thursday at 10 works. See you then — Ada";
    let sent = reply(&app, &firm, &conversation, body).await;
    assert_eq!(sent["delivery"]["status"], "pending");
    assert_eq!(sent["delivery"]["to"], sender.as_str());
    let message_id = sent["id"].as_str().unwrap().to_owned();

    run_jobs_until(&app, firm.id(), || async { !standin.sent().is_empty() }).await;
    let handed = standin.sent().remove(0);
    assert_eq!(handed.to, sender);
    assert_eq!(handed.from.as_deref(), Some(firm.number.as_str()));
    assert_eq!(handed.body, body);
    assert_eq!(
        handed.status_callback.as_deref(),
        Some(format!("{}/api/v1/twilio/status/{}", app.address, firm.id().into_uuid()).as_str())
    );

    // The stand-in reports sent, then delivered, through signed callbacks.
    let delivered = wait_for_status(&app, &firm, &conversation, &message_id, "delivered").await;
    assert_eq!(delivered["segments"], 1, "the dash makes it UCS-2, still one segment");
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("delivered") {
        let event = socket.next_of("event").await;
        if event["topic"] == "sms.status" && event["payload"]["message_id"] == message_id.as_str() {
            statuses.push(event["payload"]["status"].as_str().unwrap().to_owned());
        }
    }
    assert!(statuses.contains(&"queued".to_owned()) || statuses.contains(&"sent".to_owned()), "{statuses:?}");
    assert_eq!(standin.sent().len(), 1, "sent once");
}

#[actix_web::test]
async fn callbacks_in_any_order_end_in_the_right_state() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    standin.report_statuses(&[]);
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    let first = reply(&app, &firm, &conversation, "One").await;
    let second = reply(&app, &firm, &conversation, "Two").await;
    run_jobs_until(&app, firm.id(), || async { standin.sent().len() == 2 }).await;
    let sid_of = |body: &str| standin.sent().into_iter().find(|m| m.body == body).unwrap().sid;
    let path = format!("/api/v1/twilio/status/{}", firm.id().into_uuid());
    let callback = |sid: String, status: &str, code: Option<&str>| status_params(&firm, sid, status, code);
    for status in ["delivered", "sent", "sending", "queued", "sent"] {
        let answer = webhook(&app, &path, &firm.account.token, &callback(sid_of("One"), status, None)).await;
        assert_eq!(answer.status(), 200);
    }
    for (status, code) in [("sent", None), ("undelivered", Some("30003")), ("sent", None), ("delivered", None)] {
        webhook(&app, &path, &firm.account.token, &callback(sid_of("Two"), status, code)).await;
    }
    let one = delivery(&app, &firm, &conversation, first["id"].as_str().unwrap()).await;
    assert_eq!(one["status"], "delivered", "a late sent never overwrites delivered");
    let two = delivery(&app, &firm, &conversation, second["id"].as_str().unwrap()).await;
    assert_eq!(two["status"], "undelivered", "the first final status stands: {two}");
    assert_eq!(two["error_code"], 30003);
    assert_eq!(two["error_message"], "the handset is unreachable");

    // Garbage statuses and sids are refused in the error format.
    let bad = webhook(&app, &path, &firm.account.token, &callback(sid_of("One"), "teleported", None)).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(json(bad).await["error"]["code"], "validation_error");
    let bad = webhook(&app, &path, &firm.account.token, &callback("SMnope".into(), "sent", None)).await;
    assert_eq!(bad.status(), 400);
    let bad = webhook(&app, &path, &firm.account.token, &callback(sid_of("One"), "sent", Some("thirty"))).await;
    assert_eq!(bad.status(), 400);
}

#[actix_web::test]
async fn twilio_failing_with_429_and_500_is_retried_and_sends_once() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    standin.fail_next(&[429, 500]);
    let sent = reply(&app, &firm, &conversation, "Third time lucky").await;
    run_jobs_until(&app, firm.id(), || async { !standin.sent().is_empty() }).await;
    assert_eq!(standin.attempts(), 3);
    assert_eq!(standin.sent().len(), 1);
    wait_for_status(&app, &firm, &conversation, sent["id"].as_str().unwrap(), "delivered").await;
    // Nothing more goes out however long the runner keeps running.
    let firm_id = firm.id();
    crate::helpers::run_jobs(&app, firm_id).await;
    assert_eq!(standin.sent().len(), 1);
}

#[actix_web::test]
async fn a_refusal_by_twilio_is_final_and_shown_on_the_message() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    // Twilio's test number for "not a mobile number".
    let contact = app
        .post_as(
            &firm.token,
            "/api/v1/contacts",
            &json!({ "first_name": "Land", "last_name": "Line", "phones": ["+15005550009"] }),
        )
        .await;
    let contact_id = json(contact).await["data"]["id"].as_str().unwrap().to_owned();
    let created = app
        .post_as(
            &firm.token,
            "/api/v1/conversations",
            &json!({ "subject": "Texting a landline", "channel": "sms", "participants": { "contacts": [contact_id] } }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let conversation = json(created).await["data"]["id"].as_str().unwrap().to_owned();
    let sent = reply(&app, &firm, &conversation, "Hello?").await;
    assert_eq!(sent["delivery"]["to"], "+15005550009", "the contact's number, settled at the first send");
    assert_eq!(sent["delivery"]["from"], firm.number.as_str(), "from the firm's first sender");
    let id = sent["id"].as_str().unwrap().to_owned();
    run_jobs_until(&app, firm.id(), || async { delivery(&app, &firm, &conversation, &id).await["status"] == "failed" })
        .await;
    let failed = delivery(&app, &firm, &conversation, &id).await;
    assert_eq!(failed["error_code"], 21614);
    assert!(failed["error_message"].as_str().unwrap().contains("not a valid mobile number"), "{failed}");
    assert_eq!(standin.sent().len(), 0);
    assert!(json(app.get_as(&firm.token, "/api/v1/jobs/dead").await).await["data"].as_array().unwrap().is_empty());
}

#[derive(diesel::QueryableByName)]
struct RunAt {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    run_at: chrono::DateTime<chrono::Utc>,
}

async fn send_times(app: &TestApp, firm: FirmId) -> Vec<chrono::DateTime<chrono::Utc>> {
    app.db()
        .firm_tx(firm, |conn| {
            async move {
                use diesel_async::RunQueryDsl;
                Ok::<_, consultantpro::domain::DomainError>(
                    diesel::sql_query(
                        "SELECT run_at FROM jobs WHERE firm_id = $1 AND kind = 'sms.send' ORDER BY run_at",
                    )
                    .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
                    .load::<RunAt>(conn)
                    .await?,
                )
            }
            .scope_boxed()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_at)
        .collect()
}

#[actix_web::test]
async fn a_burst_queues_at_the_senders_pace_and_none_is_dropped() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let mut account = firm.account.clone();
    crate::register_number(&app, &standin, &firm.token, &mut account, json!({ "per_second": 5 })).await;
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    // The slow sender becomes the firm's first once the fast one is removed; the
    // conversation that replied from the fast one moves to it.
    assert_eq!(app.delete_as(&firm.token, &format!("/api/v1/sms/numbers/{}", firm.number_id)).await.status(), 200);
    for i in 0..10 {
        reply(&app, &firm, &conversation, &format!("Part {i}")).await;
    }
    let times = send_times(&app, firm.id()).await;
    assert_eq!(times.len(), 10);
    for pair in times.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!((199..=201).contains(&gap), "5 per second is one every 200 ms, not {gap} ms");
    }
    run_jobs_until(&app, firm.id(), || async { standin.sent().len() == 10 }).await;
    let bodies: Vec<_> = standin.sent().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, (0..10).map(|i| format!("Part {i}")).collect::<Vec<_>>(), "in order, none lost");
}

#[actix_web::test]
async fn without_a_sender_or_settings_nothing_is_stored() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    let before = messages(&app, &firm.token, &conversation).await.len();
    let too_long = "x".repeat(1601);
    let answer = app
        .post_as(&firm.token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": too_long }))
        .await;
    assert_eq!(answer.status(), 400);
    assert_eq!(json(answer).await["error"]["code"], "validation_error");
    // An SMS conversation with nobody to text.
    let created =
        app.post_as(&firm.token, "/api/v1/conversations", &json!({ "subject": "Nobody", "channel": "sms" })).await;
    let empty = json(created).await["data"]["id"].as_str().unwrap().to_owned();
    let answer =
        app.post_as(&firm.token, &format!("/api/v1/conversations/{empty}/messages"), &json!({ "body": "Hi" })).await;
    assert_eq!(answer.status(), 400);
    assert!(messages(&app, &firm.token, &empty).await.is_empty());
    assert_eq!(messages(&app, &firm.token, &conversation).await.len(), before);
}

/// Every order of four callbacks, one message each: all end `delivered`.
#[actix_web::test]
async fn every_order_of_callbacks_ends_delivered() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    standin.report_statuses(&[]);
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    let statuses = ["queued", "sending", "sent", "delivered"];
    let mut orders = Vec::new();
    for n in 0..256usize {
        let order = [n % 4, n / 4 % 4, n / 16 % 4, n / 64 % 4];
        if (0..4).all(|step| order.contains(&step)) {
            orders.push(order);
        }
    }
    assert_eq!(orders.len(), 24);
    let mut sent = Vec::new();
    for i in 0..orders.len() {
        sent.push(reply(&app, &firm, &conversation, &format!("Order {i}")).await);
    }
    run_jobs_until(&app, firm.id(), || async { standin.sent().len() == orders.len() }).await;
    let path = format!("/api/v1/twilio/status/{}", firm.id().into_uuid());
    let handed = standin.sent();
    for (i, order) in orders.iter().enumerate() {
        let sid = handed.iter().find(|m| m.body == format!("Order {i}")).unwrap().sid.clone();
        for &step in order {
            let params = status_params(&firm, sid.clone(), statuses[step], None);
            assert_eq!(webhook(&app, &path, &firm.account.token, &params).await.status(), 200);
        }
    }
    for message in messages(&app, &firm.token, &conversation).await.iter().filter(|m| m["author_user_id"].is_string()) {
        assert_eq!(message["delivery"]["status"], "delivered", "{message}");
    }
    assert_eq!(sent.len(), 24);
}

#[actix_web::test]
async fn a_send_whose_answer_was_lost_is_looked_up_at_twilio_not_repeated() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let standin = consultantpro::standins::twilio::TwilioStandin::start(listener, None).unwrap();
    let base = standin.base_url.clone();
    let app = crate::helpers::spawn_app_with(move |settings| {
        settings.twilio.api_base_url = base.clone();
        settings.twilio.messaging_base_url = base;
        settings.twilio.timeout_secs = 1;
    })
    .await;
    let firm = sms_firm(&app, &standin).await;
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    // Twilio takes the message but its answer never arrives in time.
    standin.stall_next(1, std::time::Duration::from_secs(3));
    let sent = reply(&app, &firm, &conversation, "Sent exactly once").await;
    let id = sent["id"].as_str().unwrap().to_owned();
    run_jobs_until(&app, firm.id(), || async {
        delivery(&app, &firm, &conversation, &id).await["status"] == "delivered"
    })
    .await;
    assert_eq!(standin.attempts(), 1, "the retry asked Twilio instead of sending again");
    assert_eq!(standin.sent().len(), 1);
    let shown = delivery(&app, &firm, &conversation, &id).await;
    assert_eq!(shown["segments"], 1);
    // Another message with the same words is sent in its own right.
    let again = reply(&app, &firm, &conversation, "Sent exactly once").await;
    let again_id = again["id"].as_str().unwrap().to_owned();
    run_jobs_until(&app, firm.id(), || async { standin.sent().len() == 2 }).await;
    wait_for_status(&app, &firm, &conversation, &again_id, "delivered").await;
}

#[actix_web::test]
async fn members_reply_over_the_socket_and_portal_logins_cannot_text() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let conversation = conversation_with(&app, &firm, &random_mobile()).await;
    let mut socket = ws::connect(&app, &firm.token).await;
    socket.subscribe(&conversation, None).await;
    let frame =
        json!({ "type": "send", "conversation_id": conversation, "client_msg_id": "sms-1", "body": "Over the socket" });
    socket.send(frame).await;
    assert_eq!(socket.next_of("ack").await["seq"], 2);
    run_jobs_until(&app, firm.id(), || async { standin.sent().iter().any(|m| m.body == "Over the socket") }).await;

    // The texter's contact gets a portal login: it reads the conversation, but the firm's
    // number is not its to text from.
    let listed = sms_conversations(&app, &firm.token).await;
    let contact_id = listed[0]["participants"]["contacts"][0].as_str().unwrap().to_owned();
    let email = format!("portal-{}@example.com", uuid::Uuid::now_v7().simple());
    let changed = app
        .patch_as(
            &firm.token,
            &format!("/api/v1/contacts/{contact_id}"),
            &json!({ "portal_access": true, "emails": [email] }),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let portal =
        crate::helpers::invite_and_join(&app, &firm.token, &firm.firm, &email, "client", Some(&contact_id)).await;
    assert_eq!(app.get_as(&portal, &format!("/api/v1/conversations/{conversation}")).await.status(), 200);
    let refused = app
        .post_as(
            &portal,
            &format!("/api/v1/conversations/{conversation}/messages"),
            &json!({ "body": "From the portal" }),
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(json(refused).await["error"]["code"], "forbidden");
    assert_eq!(standin.sent().len(), 1);
    let stored = messages(&app, &firm.token, &conversation).await;
    assert!(stored.iter().all(|m| m["body"] != "From the portal"), "{stored:?}");
}

/// Every table the SMS channel writes holds this firm's rows (the positive control) and
/// shows another firm none of them.
#[actix_web::test]
async fn every_sms_table_keeps_its_rows_to_its_firm() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    let other = sms_firm(&app, &standin).await;
    let sender = random_mobile();
    for body in ["Hello", "HELP", "STOP"] {
        assert_eq!(text_in(&app, &firm, &sender, body).await.0.status(), 200, "{body}");
    }
    // A callback is kept as received, even for a sid the hub has not recorded yet.
    let path = format!("/api/v1/twilio/status/{}", firm.id().into_uuid());
    let callback = status_params(&firm, crate::message_sid(), "sent", None);
    assert_eq!(webhook(&app, &path, &firm.account.token, &callback).await.status(), 200);
    let tables = [
        "sms_settings",
        "sms_numbers",
        "sms_threads",
        "sms_messages",
        "sms_opt_outs",
        "sms_help_replies",
        "sms_status_callbacks",
    ];
    crate::isolation::assert_isolated(&app.db(), firm.id(), other.id(), &tables).await;
}
