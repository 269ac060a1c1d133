//! Mail arriving: live on sockets within two seconds, caught up by UID after downtime
//! whatever the `\Seen` flags say, a UIDVALIDITY change read again without duplicates, a
//! node dying mid-batch, and one watcher per mailbox across nodes.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, data_dir, json, signed_in_owner, spawn_app, spawn_app_with};
use crate::{append, connect_mailbox, count, imap_user, message, stored, wait_state, wait_stored, ws};

fn mailbox_path(mailbox: &serde_json::Value) -> String {
    format!("/api/v1/mailboxes/{}", mailbox["id"].as_str().unwrap())
}

#[actix_web::test]
async fn an_appended_message_reaches_the_socket_within_two_seconds() {
    let app = spawn_app().await;
    let crate::Watched { firm, token, user, mailbox, .. } = crate::watched(&app, json!({})).await;
    let mut socket = ws::connect(&app, &token).await;

    let sent = Instant::now();
    append(&app, &user, &[message("Ann Lee <ann@client.test>", &user, "Quarterly review", "Can we meet?")], false)
        .await;
    let event = socket.next_of("event").await;
    let latency = sent.elapsed();
    assert_eq!(event["topic"], "email.received", "{event}");
    assert!(latency < Duration::from_secs(2), "delivered to the socket after {latency:?}");
    assert_eq!(event["payload"]["new_conversation"], true);
    let conversation = event["payload"]["conversation_id"].as_str().unwrap().to_owned();

    let listed = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}")).await).await;
    assert_eq!(listed["data"]["channel"], "email");
    assert_eq!(listed["data"]["subject"], "Quarterly review");
    let contact_id = listed["data"]["participants"]["contacts"][0].as_str().unwrap().to_owned();
    let contact = json(app.get_as(&token, &format!("/api/v1/contacts/{contact_id}")).await).await;
    assert_eq!(contact["data"]["emails"], json!(["ann@client.test"]));
    assert_eq!(contact["data"]["needs_review"], true, "an unknown sender becomes a contact to review");

    // A second message from the same sender (upper-case address) threads by subject.
    socket.subscribe(&conversation, None).await;
    append(&app, &user, &[message("ANN@Client.Test", &user, "RE: Quarterly review", "Or Friday?")], false).await;
    let frame = socket.messages(&conversation, 1).await.remove(0);
    assert_eq!(frame["message"]["body"], "Or Friday?");
    assert_eq!(frame["message"]["author_contact_id"], contact_id.as_str());
    assert_eq!(frame["message"]["delivery"]["channel"], "email");
    assert_eq!(frame["message"]["delivery"]["direction"], "inbound");
    let emails = json(app.get_as(&token, &format!("/api/v1/conversations/{conversation}/emails")).await).await;
    assert_eq!(emails["data"].as_array().unwrap().len(), 2, "{emails}");
    assert_eq!(stored(&app, firm.firm_id(), mailbox["id"].as_str().unwrap()).await, (2, 2));
}

#[actix_web::test]
async fn after_downtime_every_message_is_caught_up_once_whatever_was_read() {
    let app = spawn_app().await;
    let crate::Watched { firm, token, user, mailbox, id } = crate::watched(&app, json!({})).await;
    append(&app, &user, &[message("first@client.test", &user, "Before", "one")], false).await;
    wait_stored(&app, firm.firm_id(), &id, 1, Duration::from_secs(10)).await;

    // Down: the watcher stops while 5,000 messages arrive, half of them already read by
    // another client.
    assert_eq!(app.patch_as(&token, &mailbox_path(&mailbox), &json!({ "enabled": false })).await.status(), 200);
    wait_state(&app, &token, &id, "disabled").await;
    let batch: Vec<Vec<u8>> = (0..5000)
        .map(|i| {
            message(&format!("sender{}@client.test", i % 50), &user, &format!("Topic {}", i % 200), &format!("n{i}"))
        })
        .collect();
    let (read, unread) = batch.split_at(2500);
    append(&app, &user, read, true).await;
    append(&app, &user, unread, false).await;
    assert_eq!(stored(&app, firm.firm_id(), &id).await.0, 1, "nothing imported while disabled");

    let started = Instant::now();
    assert_eq!(app.patch_as(&token, &mailbox_path(&mailbox), &json!({ "enabled": true })).await.status(), 200);
    let (all, distinct) = wait_stored(&app, firm.firm_id(), &id, 5001, Duration::from_secs(240)).await;
    println!("caught up 5,000 messages in {:?}", started.elapsed());
    assert_eq!((all, distinct), (5001, 5001));
    let filed = count(
        &app,
        firm.firm_id(),
        "SELECT count(*) AS n FROM email_messages e JOIN messages m ON m.firm_id = e.firm_id AND m.id = e.chat_message_id \
          WHERE e.mailbox_id = $1::uuid",
        &id,
    )
    .await;
    assert_eq!(filed, 5001, "every email became exactly one chat message");
    let bodies = count(
        &app,
        firm.firm_id(),
        "SELECT count(DISTINCT text_body) AS n FROM email_messages WHERE mailbox_id = $1::uuid",
        &id,
    )
    .await;
    assert_eq!(bodies, 5001);
    let position = count(
        &app,
        firm.firm_id(),
        "SELECT last_uid AS n FROM mailbox_folders WHERE mailbox_id = $1::uuid AND folder = 'INBOX'",
        &id,
    )
    .await;
    assert_eq!(position, 5001, "the folder's position is its highest UID");
    // The hub changed no flags: the unread half is still unread on the server.
    let mut session = crate::imap_session(&app, &user).await;
    session.select("INBOX").await.unwrap();
    let unseen = session.search("UNSEEN").await.unwrap();
    assert_eq!(unseen.len(), 2501, "the hub set no \\Seen flag");
    session.logout().await.unwrap();
}

/// Dovecot gives a folder a new UIDVALIDITY (it counts seconds) once its uidlist and
/// indexes are gone, as after a restore from backup or a server move.
async fn reset_uidvalidity(user: &str) {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let maildir = data_dir().join("dovecot/home").join(user).join("Maildir");
    let mut removed = 0;
    for entry in std::fs::read_dir(&maildir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("dovecot") {
            std::fs::remove_file(entry.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "no Dovecot index files in {}", maildir.display());
}

#[actix_web::test]
async fn a_new_uidvalidity_reads_the_folder_again_without_duplicates() {
    let app = spawn_app().await;
    let crate::Watched { firm, token, user, mailbox, id } = crate::watched(&app, json!({})).await;
    let mut first: Vec<Vec<u8>> = (0..20).map(|i| message("a@client.test", &user, "Hello", &format!("m{i}"))).collect();
    // Two without a Message-ID: recognised by their content.
    first.push(b"From: b@client.test\r\nSubject: no id\r\n\r\nfirst without id\r\n".to_vec());
    first.push(b"From: b@client.test\r\nSubject: no id\r\n\r\nsecond without id\r\n".to_vec());
    append(&app, &user, &first, false).await;
    wait_stored(&app, firm.firm_id(), &id, 22, Duration::from_secs(20)).await;
    let before =
        count(&app, firm.firm_id(), "SELECT uidvalidity AS n FROM mailbox_folders WHERE mailbox_id = $1::uuid", &id)
            .await;

    assert_eq!(app.patch_as(&token, &mailbox_path(&mailbox), &json!({ "enabled": false })).await.status(), 200);
    wait_state(&app, &token, &id, "disabled").await;
    reset_uidvalidity(&user).await;
    append(&app, &user, &[message("c@client.test", &user, "After", "new one")], false).await;
    assert_eq!(app.patch_as(&token, &mailbox_path(&mailbox), &json!({ "enabled": true })).await.status(), 200);
    let after = crate::eventually(Duration::from_secs(20), || async {
        let v = count(
            &app,
            firm.firm_id(),
            "SELECT uidvalidity AS n FROM mailbox_folders WHERE mailbox_id = $1::uuid",
            &id,
        )
        .await;
        (v != before).then_some(v)
    })
    .await;
    assert!(after.is_some(), "the new UIDVALIDITY was recorded");
    wait_stored(&app, firm.firm_id(), &id, 23, Duration::from_secs(20)).await;
    wait_state(&app, &token, &id, "idle").await;
    assert_eq!(stored(&app, firm.firm_id(), &id).await, (23, 23), "the folder read again stored nothing twice");
}

#[actix_web::test]
async fn a_node_killed_mid_batch_imports_nothing_twice() {
    let user = imap_user();
    let name = format!("test-cluster-{}", uuid::Uuid::now_v7().simple());
    let node = move |s: &mut consultantpro::config::Settings| {
        s.cluster.name = name.clone();
        s.cluster.heartbeat_ms = 250;
        s.cluster.lease_ms = 1500;
        s.mail.import_batch = 10;
    };
    let first = spawn_app_with(node.clone()).await;
    let (firm, _, _, token) = signed_in_owner(&first).await;
    let mailbox = connect_mailbox(&first, &token, &user, json!({ "enabled": false })).await;
    let id = mailbox["id"].as_str().unwrap().to_owned();
    let batch: Vec<Vec<u8>> =
        (0..600).map(|i| message(&format!("s{}@client.test", i % 7), &user, "Load", &format!("b{i}"))).collect();
    append(&first, &user, &batch, false).await;
    assert_eq!(first.patch_as(&token, &mailbox_path(&mailbox), &json!({ "enabled": true })).await.status(), 200);
    // Kill the node once it is part of the way through.
    wait_stored(&first, firm.firm_id(), &id, 30, Duration::from_secs(30)).await;
    first.cluster.halt().await;
    first.server.stop(false).await;
    let at_kill = stored(&first, firm.firm_id(), &id).await.0;
    assert!(at_kill < 600, "the node was killed mid-way ({at_kill} stored)");

    // Another node of the cluster takes the firm over once the killed node's lease lapses,
    // and finishes from the stored position.
    let second = spawn_app_with(node).await;
    let (all, distinct) = wait_stored(&second, firm.firm_id(), &id, 600, Duration::from_secs(120)).await;
    assert_eq!((all, distinct), (600, 600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&second, firm.firm_id(), &id).await, (600, 600));
}

fn watches(app: &TestApp, firm: consultantpro::domain::FirmId, mailbox: &str) -> bool {
    app.state.registry().is_running(firm, consultantpro::actors::mailbox::MAILBOX_KIND, &mailbox.to_owned())
}

#[actix_web::test]
async fn two_nodes_never_both_watch_one_mailbox() {
    let name = format!("test-cluster-{}", uuid::Uuid::now_v7().simple());
    let (name_a, name_b) = (name.clone(), name.clone());
    let a = spawn_app_with(move |s| s.cluster.name = name_a).await;
    let b = spawn_app_with(move |s| s.cluster.name = name_b).await;
    let (firm, _, _, token) = signed_in_owner(&a).await;
    let user = imap_user();
    let mailbox = connect_mailbox(&a, &token, &user, json!({})).await;
    let id = mailbox["id"].as_str().unwrap().to_owned();
    let firm_id = firm.firm_id();
    let one = crate::eventually(Duration::from_secs(20), || async {
        (watches(&a, firm_id, &id) != watches(&b, firm_id, &id)).then_some(())
    })
    .await;
    assert!(one.is_some(), "exactly one node watches the mailbox");
    for _ in 0..40 {
        assert!(!(watches(&a, firm_id, &id) && watches(&b, firm_id, &id)), "both nodes watch the mailbox");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    append(&a, &user, &[message("x@client.test", &user, "Once", "only once")], false).await;
    wait_stored(&a, firm_id, &id, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&a, firm_id, &id).await, (1, 1));
}
