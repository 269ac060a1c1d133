//! Inbound SMS webhooks against a running server: throughput with the signature check and
//! storage, and webhook-to-socket latency. Bounded in time and count.
//!
//!   smsbench --node http://127.0.0.1:18200 --concurrency 32 --seconds 15 --latency-count 1000
//!
//! It creates its own firm in the server's database (settings as for the server: CP_ENV,
//! CP__DATABASE__*, the same secrets key), gives it a Twilio account and number, and posts
//! webhooks signed exactly as Twilio signs them. For reference, in the same run: the same
//! concurrency against `GET /health/` (the HTTP floor of this server on this machine) and
//! the signature check alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use consultantpro::benchkit::{closed_loop, percentile};
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::sms;
use consultantpro::domain::users::NewUser;
use consultantpro::ingest::twilio::{compute_signature, verify};
use consultantpro::secret_box::SecretBox;
use consultantpro::standins::twilio::{inbound_params, post_signed};
use futures_util::{SinkExt, StreamExt};
use scoped_futures::ScopedFutureExt;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18200")]
    node: String,
    /// Requests in flight at once in the throughput phases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds each throughput phase runs.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Distinct senders (so conversations) the throughput phase texts from.
    #[arg(long, default_value_t = 500)]
    senders: usize,
    /// Webhooks timed to the socket, one after another.
    #[arg(long, default_value_t = 1000)]
    latency_count: usize,
}

const PASSWORD: &str = "smsbench password, not a secret";

fn message_sid() -> String {
    format!("SM{}", uuid::Uuid::new_v4().simple())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::load()?;
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let node = args.node.trim_end_matches('/').to_owned();

    // A firm of its own, with a member to watch the socket and a Twilio account.
    let run = uuid::Uuid::now_v7().simple().to_string();
    let firm = onboarding::create_firm(&db, &format!("smsbench-{run}"), "SMS bench").await?;
    let email = format!("smsbench-{run}@example.com");
    let user = NewUser::parse(&email, "Bench", PASSWORD)?;
    onboarding::add_member(&db, firm.firm_id(), Joiner::New(user), Role::Staff).await?;
    let account_sid = format!("AC{}", uuid::Uuid::new_v4().simple());
    let token = uuid::Uuid::new_v4().simple().to_string();
    let number = format!("+1500{:07}", rand::random_range(0..10_000_000u32));
    let sealed = SecretBox::from_settings(&settings.secrets)?.seal(&token, &sms::token_context(firm.firm_id()))?;
    let firm_id = firm.firm_id();
    let (sid, public, added) = (account_sid.clone(), node.clone(), number.clone());
    db.firm_tx(firm_id, |conn| {
        async move {
            let input = sms::SettingsInput {
                account_sid: sid,
                auth_token_sealed: Some(sealed),
                public_base_url: public,
                help_text: String::new(),
            };
            sms::save_settings(conn, firm_id, input).await?;
            let sender = sms::NumberInput { phone_number: Some(added), ..Default::default() };
            sms::add_number(conn, firm_id, sender).await.map(|_| ())
        }
        .scope_boxed()
    })
    .await
    .context("setting up the firm's SMS")?;
    let url = format!("{node}/api/v1/twilio/sms");
    println!("firm {} with number {number}; node {node}", firm.slug);

    // Reference: the signature check alone, on one core.
    let sample = inbound_params(&account_sid, &message_sid(), "+14155550100", &number, "How is the report coming?");
    let signature = compute_signature(&token, &url, &sample);
    let started = Instant::now();
    let mut checked = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        checked += u32::from(verify(&token, &url, &sample, None, &signature));
    }
    println!("reference: signature check alone: {checked}/s on one core");

    // Reference: the server's HTTP floor at the same concurrency.
    let health = format!("{node}/health/");
    let floor_client = client.clone();
    let floor = closed_loop(args.concurrency, args.seconds, move |_| {
        let (client, health) = (floor_client.clone(), health.clone());
        async move { client.get(&health).send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    floor.print("reference: GET /health/");

    // Reference: storing and publishing a message through the REST API, same concurrency.
    let login = serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD });
    let answer: serde_json::Value =
        client.post(format!("{node}/api/v1/auth/login")).json(&login).send().await?.error_for_status()?.json().await?;
    let access = answer["data"]["access_token"].as_str().context("no access token")?.to_owned();
    // As many conversations as the webhooks spread over (up to 100), so neither waits on one
    // conversation's row lock more than the other.
    let mut rest_urls = Vec::new();
    for _ in 0..args.senders.clamp(1, 100) {
        let created: serde_json::Value = client
            .post(format!("{node}/api/v1/conversations"))
            .bearer_auth(&access)
            .json(&serde_json::json!({ "subject": "REST reference" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let internal = created["data"]["id"].as_str().context("the reference conversation")?.to_owned();
        rest_urls.push(format!("{node}/api/v1/conversations/{internal}/messages"));
    }
    let (rest_client, rest_urls, rest_token) = (client.clone(), Arc::new(rest_urls), access.clone());
    let rest = closed_loop(args.concurrency, args.seconds, move |i| {
        let request = rest_client
            .post(&rest_urls[i % rest_urls.len()])
            .bearer_auth(&rest_token)
            .json(&serde_json::json!({ "body": format!("Reference message {i}") }));
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    rest.print("reference: POST /conversations/{id}/messages");

    // Throughput: every webhook a new message, from one of `senders` numbers.
    let senders: Arc<Vec<String>> =
        Arc::new((0..args.senders.max(1)).map(|i| format!("+1415{:07}", 2_000_000 + i)).collect());
    let (hook_client, hook_url, hook_token, hook_sid, hook_to) =
        (client.clone(), url.clone(), token.clone(), account_sid.clone(), number.clone());
    let inbound = closed_loop(args.concurrency, args.seconds, move |i| {
        let from = senders[i % senders.len()].clone();
        let params = inbound_params(&hook_sid, &message_sid(), &from, &hook_to, &format!("Bench message {i}"));
        let (client, url, token) = (hook_client.clone(), hook_url.clone(), hook_token.clone());
        async move { post_signed(&client, &url, &token, &params).await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    inbound.print("inbound webhooks (signature + store + publish)");
    #[allow(clippy::cast_precision_loss)]
    let ratio =
        (inbound.done as f64 / inbound.elapsed.as_secs_f64()) / (floor.done as f64 / floor.elapsed.as_secs_f64());
    #[allow(clippy::cast_precision_loss)]
    let against_rest =
        (inbound.done as f64 / inbound.elapsed.as_secs_f64()) / (rest.done as f64 / rest.elapsed.as_secs_f64());
    println!("ratio inbound / HTTP floor: {ratio:.3}; inbound / REST message post: {against_rest:.2}");

    // Latency: one sender's conversation, watched on a socket.
    let watched = "+14155559999";
    let first = inbound_params(&account_sid, &message_sid(), watched, &number, "opening");
    let opened = post_signed(&client, &url, &token, &first).await?;
    if !opened.status().is_success() {
        bail!("the opening webhook failed: {}", opened.status());
    }
    let listed: serde_json::Value = client
        .get(format!("{node}/api/v1/conversations?channel=sms&q=4155559999"))
        .bearer_auth(&access)
        .send()
        .await?
        .json()
        .await?;
    let conversation = listed["data"][0]["id"].as_str().context("the watched conversation")?.to_owned();
    let ticket: serde_json::Value = client
        .post(format!("{node}/api/v1/realtime/ticket"))
        .bearer_auth(&access)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ticket = ticket["data"]["ticket"].as_str().context("no ticket")?;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/api/v1/ws?ticket={ticket}", node.replacen("http", "ws", 1)))
            .await?;
    socket
        .send(Message::text(serde_json::json!({ "type": "subscribe", "conversation_id": conversation }).to_string()))
        .await?;
    let mut latencies = Vec::with_capacity(args.latency_count);
    let mut lost = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..args.latency_count {
        if Instant::now() > deadline {
            break;
        }
        let body = format!("latency probe {i}");
        let params = inbound_params(&account_sid, &message_sid(), watched, &number, &body);
        let sent = Instant::now();
        let answer = post_signed(&client, &url, &token, &params).await?;
        if !answer.status().is_success() {
            bail!("a probe failed: {}", answer.status());
        }
        let arrived = loop {
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) if text.contains(&format!("\"{body}\"")) => break true,
                Ok(Some(Ok(_))) => {}
                _ => break false,
            }
        };
        if arrived {
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        } else {
            lost += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "webhook -> socket over {} probes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, lost {lost}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
