//! Email ingestion against a running server and the project's Dovecot, with `mbsync`
//! (isync) fetching the same folder to a maildir as the reference, in the same run.
//! Bounded in count and time.
//!
//!   mailbench --node http://127.0.0.1:18400 --messages 10000 --appends 1000
//!
//! It makes a firm of its own (settings as for the server: CP_ENV, CP__DATABASE__*) and a
//! fresh Dovecot user, then:
//! - appends `--messages` messages (50 senders, 200 subjects, a few KB each, one in ten
//!   with a small attachment) while the mailbox is switched off, switches it on and times
//!   the import until every message is stored (fetch + parse + thread + store);
//! - runs `mbsync` over the same folder into an empty maildir and times it;
//! - with the watcher idle, appends `--appends` messages one at a time and times each from
//!   the APPEND's start to the `email.received` event on a socket (IDLE push, import,
//!   Redis, socket).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use consultantpro::benchkit::percentile;
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::users::NewUser;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18400")]
    node: String,
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    #[arg(long, default_value_t = 1_000)]
    appends: usize,
    /// Where the mbsync reference writes its maildir.
    #[arg(long, default_value = "/tmp/mailbench-maildir")]
    maildir: String,
}

const PASSWORD: &str = "mailbench password, not a secret";

fn message(i: usize) -> Vec<u8> {
    let body =
        format!("Message {i}.\r\n{}\r\n", "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(30));
    let head = format!(
        "From: Sender {s} <sender{s}@client.example>\r\nTo: desk@firm.example\r\nSubject: Topic {t}\r\n\
         Message-ID: <{id}@client.example>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
        s = i % 50,
        t = i % 200,
        id = uuid::Uuid::now_v7()
    );
    let text = if i % 10 == 0 {
        let attachment =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![(i % 256) as u8; 4096]);
        format!(
            "{head}Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n{body}\
             --B\r\nContent-Type: application/octet-stream; name=\"a{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {attachment}\r\n--B--\r\n"
        )
    } else {
        format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")
    };
    text.into_bytes()
}

async fn imap(port: u16, user: &str, password: &str) -> anyhow::Result<async_imap::Session<TcpStream>> {
    let mut client = async_imap::Client::new(TcpStream::connect(("127.0.0.1", port)).await?);
    client.read_response().await?.context("no greeting")?;
    client.login(user, password).await.map_err(|(e, _)| e).context("IMAP login")
}

async fn stored(db: &Db, firm: consultantpro::domain::FirmId, mailbox: uuid::Uuid) -> anyhow::Result<i64> {
    use consultantpro::db::schema::email_messages::dsl as e;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    Ok(db
        .firm_tx(firm, |conn| {
            async move {
                e::email_messages
                    .filter(e::firm_id.eq(firm.into_uuid()))
                    .filter(e::mailbox_id.eq(mailbox))
                    .count()
                    .get_result::<i64>(conn)
                    .await
                    .map_err(consultantpro::domain::DomainError::from)
            }
            .scope_boxed()
        })
        .await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load()?;
    let port = settings.mail.local_imap_port.context("mail.local_imap_port: the project's Dovecot")?;
    let imap_password =
        settings.mail.local_imap_password.as_ref().context("mail.local_imap_password")?.expose_secret().to_owned();
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let firm = onboarding::create_firm(&db, &format!("mailbench-{run}"), "Mail bench").await?;
    let email = format!("owner-{run}@mailbench.example");
    let owner = NewUser::parse(&email, "Bench Owner", PASSWORD).context("bench owner")?;
    onboarding::add_member(&db, firm.firm_id(), Joiner::New(owner), Role::Owner).await?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let node = args.node.trim_end_matches('/').to_owned();
    let login = serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD });
    let answer: serde_json::Value =
        client.post(format!("{node}/api/v1/auth/login")).json(&login).send().await?.error_for_status()?.json().await?;
    let token = answer["data"]["access_token"].as_str().context("no access token")?.to_owned();
    let user = format!("bench{}@mail.test", &run[..20]);
    let body = serde_json::json!({
        "name": "Bench", "address": "desk@firm.example", "enabled": false,
        "imap": { "host": "127.0.0.1", "port": port, "tls": "none", "username": user, "password": imap_password },
    });
    let created: serde_json::Value = client
        .post(format!("{node}/api/v1/mailboxes"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mailbox_id: uuid::Uuid = created["data"]["id"].as_str().context("mailbox id")?.parse()?;
    let mailbox_url = format!("{node}/api/v1/mailboxes/{mailbox_id}");

    println!("seeding {} messages into {user} ...", args.messages);
    let mut session = imap(port, &user, &imap_password).await?;
    let mut bytes = 0usize;
    for i in 0..args.messages {
        let raw = message(i);
        bytes += raw.len();
        session.append("INBOX", None, None, &raw).await?;
    }
    session.logout().await?;
    println!("seeded {:.1} MB", bytes as f64 / 1e6);

    // The hub: switch the watcher on and wait until everything is stored.
    let started = Instant::now();
    client
        .patch(&mailbox_url)
        .bearer_auth(&token)
        .json(&serde_json::json!({ "enabled": true }))
        .send()
        .await?
        .error_for_status()?;
    let want = i64::try_from(args.messages)?;
    loop {
        let n = stored(&db, firm.firm_id(), mailbox_id).await?;
        if n >= want {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("only {n} of {want} stored after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hub = started.elapsed();

    // The reference: mbsync fetching the same folder into an empty maildir.
    let maildir = std::path::Path::new(&args.maildir);
    let _ = std::fs::remove_dir_all(maildir);
    std::fs::create_dir_all(maildir)?;
    let rc = maildir.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount bench\nHost 127.0.0.1\nPort {port}\nUser {user}\nPass \"{imap_password}\"\nSSLType None\n\
             AuthMechs LOGIN\n\nIMAPStore remote\nAccount bench\n\nMaildirStore local\nPath {dir}/\nInbox {dir}/INBOX\n\n\
             Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nSync Pull\nCreate Near\nSyncState *\n",
            dir = maildir.display()
        ),
    )?;
    let started = Instant::now();
    let status = std::process::Command::new("mbsync").arg("-q").arg("-c").arg(&rc).arg("bench").status()?;
    let mbsync = started.elapsed();
    if !status.success() {
        bail!("mbsync failed: {status}");
    }
    let fetched =
        std::fs::read_dir(maildir.join("INBOX/cur"))?.count() + std::fs::read_dir(maildir.join("INBOX/new"))?.count();

    let per_second = |d: Duration| args.messages as f64 / d.as_secs_f64();
    println!("\ningest of {} messages ({:.1} MB)", args.messages, bytes as f64 / 1e6);
    println!("  hub (fetch + parse + thread + store): {:>8.2} s  {:>8.0} msg/s", hub.as_secs_f64(), per_second(hub));
    println!(
        "  mbsync to a maildir ({fetched} files):  {:>8.2} s  {:>8.0} msg/s",
        mbsync.as_secs_f64(),
        per_second(mbsync)
    );
    println!("  ratio hub / mbsync throughput: {:.2}", per_second(hub) / per_second(mbsync));

    // Delivery latency: one APPEND at a time, timed to the socket's event.
    let ticket: serde_json::Value = client
        .post(format!("{node}/api/v1/realtime/ticket"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ticket = ticket["data"]["ticket"].as_str().context("ticket")?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/api/v1/ws?ticket={ticket}", node.replacen("http", "ws", 1)))
            .await?;
    // Wait for the watcher to be idle again.
    loop {
        let shown: serde_json::Value = client.get(&mailbox_url).bearer_auth(&token).send().await?.json().await?;
        if shown["data"]["state"] == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut session = imap(port, &user, &imap_password).await?;
    let mut latencies = Vec::with_capacity(args.appends);
    for i in 0..args.appends {
        let raw = message(args.messages + i);
        let sent = Instant::now();
        session.append("INBOX", None, None, &raw).await?;
        let arrived = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(frame) = socket.next().await {
                if let Ok(tokio_tungstenite::tungstenite::Message::Text(text)) = frame
                    && text.contains("\"email.received\"")
                {
                    return true;
                }
            }
            false
        })
        .await;
        if !matches!(arrived, Ok(true)) {
            bail!("append {i} never reached the socket");
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    session.logout().await?;
    latencies.sort_by(f64::total_cmp);
    println!("\nAPPEND to socket event, {} messages with IDLE", latencies.len());
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
