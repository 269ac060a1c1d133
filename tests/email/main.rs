//! Email against the project's own Dovecot (scripts/services.sh) and SMTP sink: mailboxes
//! through the API, mail appended over IMAP arriving in conversations and on sockets,
//! catching up after downtime by UID, UIDVALIDITY changes, crashes mid-batch, threading of
//! replies both ways, triage, MIME parts, and firm isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/isolation.rs"]
mod isolation;
#[allow(dead_code)] // the socket helpers other suites use too
#[path = "../common/ws.rs"]
mod ws;

mod ingest;
mod mailboxes;
mod parts;
mod secrets;
mod threading;
mod triage;

use std::future::Future;
use std::time::{Duration, Instant};

use async_imap::Client;
use consultantpro::domain::{DomainError, FirmId};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use helpers::{TestApp, json};

pub fn imap_port(app: &TestApp) -> u16 {
    app.settings.mail.local_imap_port.expect("config/test.toml names the local Dovecot port")
}

pub fn imap_password(app: &TestApp) -> String {
    app.settings.mail.local_imap_password.as_ref().expect("a local Dovecot password").expose_secret().to_owned()
}

/// A Dovecot user nobody has used (the maildirs outlive a run).
pub fn imap_user() -> String {
    format!("t{}@mail.test", uuid::Uuid::now_v7().simple())
}

/// An IMAP session of the test's own, as another mail client would have.
pub async fn imap_session(app: &TestApp, user: &str) -> async_imap::Session<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", imap_port(app))).await.unwrap();
    let mut client = Client::new(tcp);
    client.read_response().await.unwrap().unwrap();
    client.login(user, imap_password(app)).await.map_err(|(e, _)| e).unwrap()
}

/// Appends raw messages to the user's INBOX, as a delivery would; `seen` marks them read.
pub async fn append(app: &TestApp, user: &str, messages: &[Vec<u8>], seen: bool) {
    let mut session = imap_session(app, user).await;
    for raw in messages {
        session.append("INBOX", if seen { Some("(\\Seen)") } else { None }, None, raw).await.unwrap();
    }
    session.logout().await.unwrap();
}

/// A plain message from `from` with a unique Message-ID.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.test>\r\n\
         Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        uuid::Uuid::now_v7()
    )
    .into_bytes()
}

/// Connects a mailbox for `user` on the local Dovecot through the API; `extra` overrides
/// fields of the body. Returns the mailbox as the API shows it.
pub async fn connect_mailbox(app: &TestApp, token: &str, user: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": "Support",
        "address": format!("desk-{}", user),
        "imap": { "host": "127.0.0.1", "port": imap_port(app), "tls": "none", "username": user,
                  "password": imap_password(app) },
        "smtp": { "host": "127.0.0.1", "port": app.settings.mail.smtp_port, "tls": "none" },
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    let answer = app.post_as(token, "/api/v1/mailboxes", &body).await;
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    json(answer).await["data"].clone()
}

/// A signed-in owner of a new firm with a mailbox on a fresh Dovecot user, watched and idle.
pub struct Watched {
    pub firm: consultantpro::domain::firms::Firm,
    pub token: String,
    pub user: String,
    pub mailbox: Value,
    pub id: String,
}

pub async fn watched(app: &TestApp, extra: Value) -> Watched {
    let (firm, _, _, token) = helpers::signed_in_owner(app).await;
    let user = imap_user();
    let mailbox = connect_mailbox(app, &token, &user, extra).await;
    let id = mailbox["id"].as_str().unwrap().to_owned();
    wait_state(app, &token, &id, "idle").await;
    Watched { firm, token, user, mailbox, id }
}

/// Polls `check` until it gives Some, for up to `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the mailbox's watcher to report `state`.
pub async fn wait_state(app: &TestApp, token: &str, mailbox: &str, state: &str) {
    let found = eventually(Duration::from_secs(20), || async {
        let body = json(app.get_as(token, &format!("/api/v1/mailboxes/{mailbox}")).await).await;
        (body["data"]["state"] == state).then_some(())
    })
    .await;
    assert!(found.is_some(), "mailbox {mailbox} never reached {state}");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A number from the firm's rows (the query binds the mailbox id as $1 when given).
pub async fn count(app: &TestApp, firm: FirmId, sql: &'static str, bind: &str) -> i64 {
    let bind = bind.to_owned();
    app.db()
        .firm_tx(firm, |conn| {
            async move {
                let query = diesel::sql_query(sql).bind::<Text, _>(bind);
                Ok::<_, DomainError>(query.get_result::<Count>(conn).await?.n)
            }
            .scope_boxed()
        })
        .await
        .unwrap()
}

/// Emails a mailbox has stored (inbound), and how many distinct dedupe keys they have.
pub async fn stored(app: &TestApp, firm: FirmId, mailbox: &str) -> (i64, i64) {
    let all = count(app, firm, "SELECT count(*) AS n FROM email_messages WHERE mailbox_id = $1::uuid", mailbox).await;
    let distinct = count(
        app,
        firm,
        "SELECT count(DISTINCT dedupe_key) AS n FROM email_messages WHERE mailbox_id = $1::uuid",
        mailbox,
    )
    .await;
    (all, distinct)
}

/// Waits until the mailbox has stored `n` emails.
pub async fn wait_stored(app: &TestApp, firm: FirmId, mailbox: &str, n: i64, limit: Duration) -> (i64, i64) {
    let reached = eventually(limit, || async {
        let counts = stored(app, firm, mailbox).await;
        (counts.0 >= n).then_some(counts)
    })
    .await;
    match reached {
        Some(counts) => counts,
        None => panic!("fewer than {n} emails stored within {limit:?}: {:?}", stored(app, firm, mailbox).await),
    }
}
