//! Every MIME leaf kept byte for byte (30 attachments and inline images, inline `cid:`
//! references pointing at the hub), malformed mail and a 25 MB message imported without a
//! panic, and another firm reading none of it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{json, signed_in_owner, spawn_app};
use crate::{append, connect_mailbox, imap_user, wait_state, wait_stored, ws};

fn wrapped(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[actix_web::test]
async fn thirty_attachments_and_inline_images_are_kept_identically() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let (_, _, _, other_firm) = signed_in_owner(&app).await;
    let user = imap_user();
    let mailbox = connect_mailbox(&app, &token, &user, json!({})).await;
    let id = mailbox["id"].as_str().unwrap().to_owned();
    wait_state(&app, &token, &id, "idle").await;

    let mut expected = Vec::new();
    let mut raw = String::from(
        "From: files@client.test\r\nTo: desk@firm.test\r\nSubject: Files\r\nMessage-ID: <files-1@client.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUT\"\r\n\r\n--OUT\r\n\
         Content-Type: multipart/related; boundary=\"REL\"\r\n\r\n--REL\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Logo: <img src=\"cid:img0@client.test\"><script>alert(1)</script></p>\r\n",
    );
    for i in 0..5 {
        let bytes: Vec<u8> = (0..(1000 + i * 37)).map(|b| (b * 7 + i) as u8).collect();
        raw.push_str(&format!(
            "--REL\r\nContent-Type: image/png\r\nContent-ID: <img{i}@client.test>\r\nContent-Disposition: inline\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped(&bytes)
        ));
        expected.push((format!("image{i}"), hex::encode(Sha256::digest(&bytes))));
    }
    raw.push_str("--REL--\r\n");
    for i in 0..25 {
        let bytes: Vec<u8> = (0..(3000 + i * 101)).map(|b| (b * 13 + i) as u8).collect();
        raw.push_str(&format!(
            "--OUT\r\nContent-Type: application/octet-stream; name=\"file{i}.bin\"\r\n\
             Content-Disposition: attachment; filename=\"file{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped(&bytes)
        ));
        expected.push((format!("file{i}.bin"), hex::encode(Sha256::digest(&bytes))));
    }
    raw.push_str("--OUT--\r\n");
    let mut socket = ws::connect(&app, &token).await;
    append(&app, &user, &[raw.into_bytes()], false).await;
    let event = socket.next_of("event").await;
    let email_id = event["payload"]["email_id"].as_str().unwrap().to_owned();

    let email = json(app.get_as(&token, &format!("/api/v1/emails/{email_id}")).await).await;
    let parts = email["data"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 30, "{email}");
    let mut found: Vec<String> = parts.iter().map(|p| p["sha256"].as_str().unwrap().to_owned()).collect();
    let mut wanted: Vec<String> = expected.iter().map(|(_, sha)| sha.clone()).collect();
    found.sort();
    wanted.sort();
    assert_eq!(found, wanted);
    assert_eq!(parts.iter().filter(|p| p["disposition"] == "inline").count(), 5);
    // Downloads are the very bytes, with their SHA-256.
    for part in parts {
        let position = part["position"].as_i64().unwrap();
        let answer = app.get_as(&token, &format!("/api/v1/emails/{email_id}/parts/{position}")).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
        let bytes = answer.bytes().await.unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), part["sha256"].as_str().unwrap());
    }
    let html = email["data"]["html_body"].as_str().unwrap();
    assert!(html.contains(&format!("/api/v1/emails/{email_id}/parts/")), "{html}");
    assert!(!html.contains("cid:") && !html.contains("<script"), "{html}");

    // Another firm reads none of it.
    assert_eq!(app.get_as(&other_firm, &format!("/api/v1/emails/{email_id}")).await.status(), 404);
    assert_eq!(app.get_as(&other_firm, &format!("/api/v1/emails/{email_id}/parts/1")).await.status(), 404);
    let conversation = event["payload"]["conversation_id"].as_str().unwrap();
    assert_eq!(app.get_as(&other_firm, &format!("/api/v1/conversations/{conversation}/emails")).await.status(), 404);
    let triage = json(app.get_as(&other_firm, "/api/v1/emails/triage").await).await;
    assert_eq!(triage["data"], json!([]));
    let _ = firm;
}

#[actix_web::test]
async fn malformed_and_huge_mail_is_imported_without_a_panic() {
    let app = spawn_app().await;
    let crate::Watched { firm, token, user, id, .. } = crate::watched(&app, json!({})).await;
    let big: Vec<u8> = (0..25_000_000u32).map(|i| (i % 251) as u8).collect();
    let huge = format!(
        "From: big@client.test\r\nSubject: Big\r\nMessage-ID: <big-{}@client.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
         --X\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--X--\r\n",
        uuid::Uuid::now_v7(),
        wrapped(&big)
    );
    let malformed: Vec<Vec<u8>> = vec![
        b"From: a@client.test\r\nSubject: =?x-unknown?Q?caf=E9?=\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\ncaf\xe9\r\n".to_vec(),
        b"From: a@client.test\r\nContent-Type: multipart/mixed; boundary=\"never\"\r\n\r\n--wrong\r\nbroken\r\n".to_vec(),
        b"Subject: no sender at all\r\n\r\nhello\r\n".to_vec(),
        b"From: a@client.test\r\nSubject: nul\r\n\r\nbody with \x00 nul\r\n".to_vec(),
        b"From: <<<@@@>>>\r\nTo: ,,,\r\nSubject: bad addresses\r\n\r\nx\r\n".to_vec(),
        b"From: a@client.test\r\nContent-Transfer-Encoding: base64\r\nSubject: bad base64\r\n\r\n!!!not base64!!!\r\n".to_vec(),
        format!("From: a@client.test\r\nMessage-ID: <{}@client.test>\r\nSubject: {}\r\n\r\n", "i".repeat(3000), "s".repeat(3000))
            .into_bytes(),
        b"From: a@client.test\r\nSubject: empty\r\n\r\n".to_vec(),
    ];
    append(&app, &user, &malformed, false).await;
    append(&app, &user, &[huge.into_bytes()], false).await;
    wait_stored(&app, firm.firm_id(), &id, 9, Duration::from_secs(60)).await;
    wait_state(&app, &token, &id, "idle").await;
    let triaged = json(app.get_as(&token, "/api/v1/emails/triage?kind=ignored").await).await;
    assert!(triaged["data"].as_array().unwrap().iter().any(|e| e["triage_reason"] == "no sender address"), "{triaged}");
    let big_email = crate::count(
        &app,
        firm.firm_id(),
        "SELECT max(p.size_bytes) AS n FROM email_parts p JOIN email_messages e ON e.firm_id = p.firm_id \
           AND e.id = p.email_id WHERE e.mailbox_id = $1::uuid",
        &id,
    )
    .await;
    assert_eq!(big_email, 25_000_000, "the 25 MB attachment is kept whole");
    let filed = crate::count(
        &app,
        firm.firm_id(),
        "SELECT count(*) AS n FROM email_messages WHERE mailbox_id = $1::uuid AND chat_message_id IS NOT NULL",
        &id,
    )
    .await;
    assert_eq!(filed, 8, "everything but the senderless message was filed, hostile headers cut to size");
}
