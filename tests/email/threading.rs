//! Replies both ways: a member's reply goes out by SMTP with the headers that keep the
//! thread; the client's answers come back into the same conversation by references, by the
//! reply address (Outlook without In-Reply-To), by Thread-Index, and from someone who was
//! only in Cc; a reply to a closed conversation reopens it or starts another, per setting.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::helpers::{json, messages_to, run_jobs, signed_in_owner, spawn_app};
use crate::{append, connect_mailbox, eventually, imap_user, wait_state, ws};

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{}: ", name.to_lowercase());
    mail.lines().find(|l| l.to_lowercase().starts_with(&prefix)).map(|l| l[prefix.len()..].trim())
}

#[actix_web::test]
async fn replies_keep_the_thread_in_both_directions() {
    let app = spawn_app().await;
    let crate::Watched { firm, token, user, mailbox, .. } = crate::watched(&app, json!({})).await;
    let desk = mailbox["address"].as_str().unwrap().to_owned();
    let ann = format!("ann-{}@client.test", uuid::Uuid::now_v7().simple());
    let carol = format!("carol-{}@client.test", uuid::Uuid::now_v7().simple());
    let mut socket = ws::connect(&app, &token).await;

    let mut thread_header = vec![0x01u8, 0xdb, 0x3a, 0x10, 0x20, 0x30];
    thread_header.extend_from_slice(&[7u8; 16]);
    let first_index = STANDARD.encode(&thread_header);
    let first_id = format!("{}@client.test", uuid::Uuid::now_v7());
    let first = format!(
        "From: Ann <{ann}>\r\nTo: {desk}\r\nCc: {carol}\r\nSubject: Engagement letter\r\nMessage-ID: <{first_id}>\r\n\
         Thread-Index: {first_index}\r\n\r\nPlease send the letter.\r\n"
    );
    append(&app, &user, &[first.into_bytes()], false).await;
    let event = socket.next_of("event").await;
    assert_eq!(event["topic"], "email.received", "{event}");
    let conversation = event["payload"]["conversation_id"].as_str().unwrap().to_owned();

    // A member answers: queued with the message, then out through the mailbox's SMTP.
    let posted = app
        .post_as(
            &token,
            &format!("/api/v1/conversations/{conversation}/messages"),
            &json!({ "body": "Attached today." }),
        )
        .await;
    assert_eq!(posted.status(), 201);
    let posted = json(posted).await;
    assert_eq!(posted["data"]["delivery"]["channel"], "email", "{posted}");
    assert_eq!(posted["data"]["delivery"]["status"], "queued");
    run_jobs(&app, firm.firm_id()).await;
    let mail =
        eventually(Duration::from_secs(10), || async { messages_to(&ann).pop() }).await.expect("the reply went out");
    assert_eq!(header(&mail, "In-Reply-To"), Some(format!("<{first_id}>").as_str()), "{mail}");
    assert!(header(&mail, "References").unwrap().contains(&first_id), "{mail}");
    assert!(header(&mail, "Cc").unwrap().contains(&carol), "{mail}");
    assert!(header(&mail, "Subject").unwrap().starts_with("Re: Engagement letter"), "{mail}");
    assert!(header(&mail, "Message-ID").unwrap().ends_with("@hub.consultantpro.test>"), "{mail}");
    assert_eq!(header(&mail, "Auto-Submitted"), None, "a member's reply is not automatic");
    // The reply carries what it answers, quoted below it as mail clients do.
    let normalized = mail.replace("\r\n", "\n");
    // Quoted-printable: long lines come folded with soft breaks.
    let body = normalized.split_once("\n\n").map(|(_, body)| body).unwrap_or_default().replace("=\n", "");
    let attribution = format!("Ann <{ann}> wrote:\n> Please send the letter.");
    let (fresh, quoted) = body.split_once("\n\nOn ").unwrap_or_else(|| panic!("no quoted history: {mail}"));
    assert_eq!(fresh.trim(), "Attached today.", "{mail}");
    assert!(quoted.contains(&attribution), "{mail}");
    let reply_address = header(&mail, "Reply-To").unwrap().trim_matches(['<', '>']).to_owned();
    assert!(reply_address.contains("+cp"), "{reply_address}");
    let reply_index = header(&mail, "Thread-Index").unwrap().to_owned();
    let decoded = STANDARD.decode(&reply_index).unwrap();
    assert_eq!(decoded.len(), 27, "one child block added");
    assert_eq!(&decoded[..22], &thread_header[..]);
    let emails = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}/emails")).await).await;
    let outbound = emails["data"].as_array().unwrap().iter().find(|e| e["direction"] == "outbound").unwrap().clone();
    assert_eq!(outbound["status"], "sent", "{outbound}");

    // Outlook without In-Reply-To or References: the reply address finds the conversation;
    // without that either, the Thread-Index does. (The dry run says which.)
    let outlook = |to: &str, index: &str| {
        format!(
            "From: {ann}\r\nTo: {to}\r\nSubject: AW: something else\r\nMessage-ID: <{}@client.test>\r\n\
             Thread-Index: {index}\r\n\r\nThanks!\r\n",
            uuid::Uuid::now_v7()
        )
    };
    for (to, by) in [(reply_address.as_str(), "reply_address"), (desk.as_str(), "thread_index")] {
        let raw = outlook(to, &reply_index);
        let dry = json(app.post_as(&token, "/api/v1/email/rules/dry-run", &json!({ "raw": raw })).await).await;
        assert_eq!(dry["data"]["conversation_id"], conversation.as_str(), "{dry}");
        assert_eq!(dry["data"]["threaded_by"], by, "{dry}");
    }
    socket.subscribe(&conversation, None).await;
    append(&app, &user, &[outlook(&reply_address, &reply_index).into_bytes()], false).await;
    let frame = socket.messages(&conversation, 1).await.remove(0);
    assert_eq!(frame["message"]["body"], "Thanks!");

    // Carol was only in Cc; her reply joins, and she becomes a participant.
    let from_carol = format!(
        "From: {carol}\r\nTo: {desk}\r\nSubject: Re: Engagement letter\r\nMessage-ID: <{}@client.test>\r\n\
         In-Reply-To: <{first_id}>\r\n\r\nCopying my team.\r\n",
        uuid::Uuid::now_v7()
    );
    append(&app, &user, &[from_carol.into_bytes()], false).await;
    let frame = socket.messages(&conversation, 1).await.remove(0);
    assert_eq!(frame["message"]["body"], "Copying my team.");
    let shown = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}")).await).await;
    assert_eq!(shown["data"]["participants"]["contacts"].as_array().unwrap().len(), 2, "{shown}");

    // Closed: a reply reopens it by default ...
    let closed =
        app.patch_as(&token, &format!("/api/v1/conversations/{conversation}"), &json!({ "status": "closed" })).await;
    assert_eq!(closed.status(), 200);
    let again = |body: &str| {
        format!(
            "From: {ann}\r\nTo: {desk}\r\nSubject: Re: Engagement letter\r\nMessage-ID: <{}@client.test>\r\n\
             In-Reply-To: <{first_id}>\r\n\r\n{body}\r\n",
            uuid::Uuid::now_v7()
        )
    };
    append(&app, &user, &[again("One more thing").into_bytes()], false).await;
    let frame = socket.messages(&conversation, 1).await.remove(0);
    assert_eq!(frame["message"]["body"], "One more thing");
    let shown = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}")).await).await;
    assert_eq!(shown["data"]["status"], "open");

    // ... or starts a new conversation when the firm says so.
    let settings =
        json!({ "closed_reply": "new_conversation", "subject_window_hours": 168, "auto_reply_period_hours": 24 });
    assert_eq!(
        app.client
            .put(app.url("/api/v1/email/settings"))
            .bearer_auth(&token)
            .json(&settings)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.patch_as(&token, &format!("/api/v1/conversations/{conversation}"), &json!({ "status": "closed" })).await;
    append(&app, &user, &[again("A new matter").into_bytes()], false).await;
    // Earlier arrivals' events are still queued on the socket: find the new conversation's.
    let event = loop {
        let event = socket.next_of("event").await;
        if event["topic"] == "email.received" && event["payload"]["new_conversation"] == true {
            break event;
        }
    };
    assert_ne!(event["payload"]["conversation_id"], conversation.as_str());
    let shown = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}")).await).await;
    assert_eq!(shown["data"]["status"], "closed", "the closed conversation stayed closed");
}

#[actix_web::test]
async fn an_acknowledgement_goes_once_per_period_marked_automatic() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let user = imap_user();
    let mailbox = connect_mailbox(
        &app,
        &token,
        &user,
        json!({ "auto_acknowledge": "We have your message and will answer soon." }),
    )
    .await;
    wait_state(&app, &token, mailbox["id"].as_str().unwrap(), "idle").await;
    let desk = mailbox["address"].as_str().unwrap().to_owned();
    let bob = format!("bob-{}@client.test", uuid::Uuid::now_v7().simple());
    let mut socket = ws::connect(&app, &token).await;
    let copied = format!("copied-{}@client.test", uuid::Uuid::now_v7().simple());
    for subject in ["First matter", "Second matter"] {
        let raw = String::from_utf8(crate::message(&bob, &desk, subject, "Hello"))
            .unwrap()
            .replace("Subject:", &format!("Cc: {copied}\r\nSubject:"));
        append(&app, &user, &[raw.into_bytes()], false).await;
        let event = loop {
            let event = socket.next_of("event").await;
            if event["topic"] == "email.received" {
                break event;
            }
        };
        assert_eq!(event["payload"]["new_conversation"], true);
    }
    run_jobs(&app, firm.firm_id()).await;
    let sent = eventually(Duration::from_secs(10), || async { (!messages_to(&bob).is_empty()).then_some(()) }).await;
    assert!(sent.is_some(), "the acknowledgement went out");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = messages_to(&bob);
    assert_eq!(mails.len(), 1, "one acknowledgement per period, however many conversations");
    assert_eq!(header(&mails[0], "Auto-Submitted"), Some("auto-replied"));
    assert!(mails[0].contains("We have your message"));
    assert!(messages_to(&copied).is_empty(), "an acknowledgement answers the sender alone");
    assert!(!mails[0].to_lowercase().contains(&copied), "no Cc on an acknowledgement");
}

#[actix_web::test]
async fn a_failed_send_shows_its_reason_on_the_message() {
    let app = spawn_app().await;
    let smtp_down = json!({ "smtp": { "host": "127.0.0.1", "port": 1, "tls": "none" } });
    let crate::Watched { firm, token, user, mailbox, .. } = crate::watched(&app, smtp_down).await;
    let desk = mailbox["address"].as_str().unwrap().to_owned();
    let mut socket = ws::connect(&app, &token).await;
    append(&app, &user, &[crate::message("dora@client.test", &desk, "Question", "Hello?")], false).await;
    let event = socket.next_of("event").await;
    let conversation = event["payload"]["conversation_id"].as_str().unwrap().to_owned();
    socket.subscribe(&conversation, None).await;
    let posted = app
        .post_as(&token, &format!("/api/v1/conversations/{conversation}/messages"), &json!({ "body": "Answer" }))
        .await;
    assert_eq!(posted.status(), 201);
    run_jobs(&app, firm.firm_id()).await;
    let status = loop {
        let event = socket.next_of("event").await;
        if event["topic"] == "email.status" {
            break event;
        }
    };
    assert_eq!(status["payload"]["status"], "failed", "{status}");
    assert!(status["payload"]["error_message"].as_str().unwrap().contains("sending failed"), "{status}");
    let emails = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}/emails")).await).await;
    let out = emails["data"].as_array().unwrap().iter().find(|e| e["direction"] == "outbound").unwrap().clone();
    assert_eq!(out["status"], "failed");
    assert_eq!(out["attempts"], 1);
    assert!(out["error_message"].is_string());
}
