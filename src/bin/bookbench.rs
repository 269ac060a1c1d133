//! Booking pages against a running server: the public slot list of a 60-day window, and
//! booking throughput on one member's calendar, with references measured in the same run.
//! Bounded in time and count.
//!
//!   bookbench --node http://127.0.0.1:18300 --seconds 15
//!
//! It makes a firm of its own (settings as for the server: CP_ENV, CP__DATABASE__*), whose
//! owner has hours around the clock and a 15-minute booking page, and 300 bookings already
//! in the next 60 days. Phases, each `--seconds` long:
//! - the HTTP floor (`GET /health/`) and the 60-day slot list, 8 clients;
//! - bookings of distinct free slots from 32 clients (every one should succeed), against a
//!   reference of the same server storing a row per request (`POST /tickets`);
//! - then 50 rounds in which all 32 clients race for the same slot: exactly one may win.
//!
//! Requests come from made-up addresses (`X-Forwarded-For`, trusted in the test profile) so
//! the per-address allowance of the public pages does not throttle the load.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Parser;
use consultantpro::benchkit::closed_loop;
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::bookings::{self, AvailabilityInput, BookingRequest, LinkInput};
use consultantpro::domain::business_calendars::{Weekday, WindowSpec};
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::users::NewUser;
use scoped_futures::ScopedFutureExt;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18300")]
    node: String,
    /// Seconds each closed-loop phase runs.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
}

const PASSWORD: &str = "bookbench password, not a secret";

fn address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::load()?;
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let firm = onboarding::create_firm(&db, &format!("bookbench-{run}"), "Booking bench").await?;
    let email = format!("owner-{run}@bookbench.example");
    let owner = NewUser::parse(&email, "Bench Owner", PASSWORD).context("bench owner")?;
    let member = onboarding::add_member(&db, firm.firm_id(), Joiner::New(owner), Role::Owner).await?;
    let (firm_id, user) = (firm.firm_id(), member.user_id);
    let days = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    let slug = format!("bench-{}", &run[20..]);
    let link_slug = slug.clone();
    let link = db
        .firm_tx(firm_id, |conn| {
            async move {
                let windows = days
                    .iter()
                    .map(|d| WindowSpec { weekday: *d, start: "00:00".into(), end: "24:00".into() })
                    .collect();
                let hours = AvailabilityInput { time_zone: "Europe/Paris".into(), windows, overrides: Vec::new() };
                bookings::set_availability(conn, firm_id, user, hours).await?;
                let input = LinkInput {
                    slug: Some(link_slug),
                    title: Some("Bench call".into()),
                    member_ids: Some(vec![user]),
                    duration_minutes: Some(15),
                    window_days: Some(365),
                    ..LinkInput::default()
                };
                bookings::create_link(conn, firm_id, user, input).await
            }
            .scope_boxed()
        })
        .await?;
    // 300 bookings in the next 60 days: the busy time a slot list has to keep clear of.
    let now = Utc::now();
    let seeded = db
        .firm_tx(firm_id, |conn| {
            let link = link.clone();
            async move {
                let slots =
                    bookings::link_slots(conn, firm_id, &link, now, now, now + chrono::Duration::days(60)).await?;
                let step = (slots.len() / 300).max(1);
                let mut made = 0;
                for start in slots.iter().step_by(step).take(300) {
                    let request = BookingRequest {
                        start: *start,
                        tz: "UTC".into(),
                        name: "Seeded".into(),
                        email: "seeded@bookbench.example".into(),
                        answers: serde_json::Map::new(),
                    };
                    bookings::book(conn, firm_id, &link, &request, now).await?;
                    made += 1;
                }
                Ok::<_, consultantpro::domain::DomainError>(made)
            }
            .scope_boxed()
        })
        .await?;
    println!("firm ready: one member, a 15-minute page, {seeded} bookings in the next 60 days");

    let node = args.node.trim_end_matches('/').to_owned();
    // reqwest is built without a default TLS provider; the application picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let login = serde_json::json!({ "firm": firm.slug, "email": email, "password": PASSWORD });
    let answer: serde_json::Value =
        client.post(format!("{node}/api/v1/auth/login")).json(&login).send().await?.error_for_status()?.json().await?;
    let access = answer["data"]["access_token"].as_str().context("no access token")?.to_owned();

    let (floor_client, floor_url) = (client.clone(), format!("{node}/health/"));
    let floor = closed_loop(8, args.seconds, move |_| {
        let request = floor_client.get(&floor_url);
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    floor.print("reference: GET /health/, 8 clients");

    let to = now + chrono::Duration::days(60);
    let z = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let list_url =
        format!("{node}/api/v1/public/booking-links/{slug}/slots?from={}&to={}&tz=America/New_York", z(now), z(to));
    let (list_client, list_url_shared) = (client.clone(), Arc::new(list_url.clone()));
    let listing = closed_loop(8, args.seconds, move |i| {
        let request = list_client.get(list_url_shared.as_str()).header("x-forwarded-for", address(i));
        async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    listing.print("public slot list, 60-day window, 8 clients");
    let sample: serde_json::Value =
        client.get(&list_url).header("x-forwarded-for", "10.255.0.1").send().await?.json().await?;
    let free: Vec<String> = sample["data"]["slots"]
        .as_array()
        .context("slots")?
        .iter()
        .filter_map(|s| s["start"].as_str().map(str::to_owned))
        .collect();
    println!("the 60-day list holds {} slots", free.len());

    // Distinct slots from 32 clients: a year's worth to draw from.
    let year: serde_json::Value = {
        let mut all = Vec::new();
        let mut from = to;
        for _ in 0..5 {
            let until = from + chrono::Duration::days(60);
            let url = format!("{node}/api/v1/public/booking-links/{slug}/slots?from={}&to={}", z(from), z(until));
            let page: serde_json::Value =
                client.get(&url).header("x-forwarded-for", "10.255.0.2").send().await?.json().await?;
            all.extend(page["data"]["slots"].as_array().cloned().unwrap_or_default());
            from = until;
        }
        serde_json::Value::Array(all)
    };
    let targets: Arc<Vec<String>> = Arc::new(
        year.as_array()
            .context("year of slots")?
            .iter()
            .filter_map(|s| s["start"].as_str().map(str::to_owned))
            .collect(),
    );
    let book_url = Arc::new(format!("{node}/api/v1/public/booking-links/{slug}/bookings"));
    let (book_client, book_targets, book_url_shared) = (client.clone(), targets.clone(), book_url.clone());
    let booking = closed_loop(32, args.seconds, move |i| {
        let start = book_targets.get(i).cloned().unwrap_or_default();
        let body = serde_json::json!({ "start": start, "tz": "Europe/Paris", "name": "Bench", "email": "bench@bookbench.example" });
        let request = book_client.post(book_url_shared.as_str()).header("x-forwarded-for", address(i)).json(&body);
        async move { request.send().await.is_ok_and(|r| r.status().as_u16() == 201) }
    })
    .await;
    booking.print("bookings of distinct slots on one member's calendar, 32 clients");

    let (ticket_client, ticket_url, ticket_token) = (client.clone(), format!("{node}/api/v1/tickets"), access.clone());
    let tickets = closed_loop(32, args.seconds, move |i| {
        let request = ticket_client
            .post(&ticket_url)
            .bearer_auth(&ticket_token)
            .json(&serde_json::json!({ "subject": format!("Reference {i}") }));
        async move { request.send().await.is_ok_and(|r| r.status().as_u16() == 201) }
    })
    .await;
    tickets.print("reference: POST /tickets, 32 clients");
    #[allow(clippy::cast_precision_loss)]
    let rate = |p: &consultantpro::benchkit::Phase| p.done as f64 / p.elapsed.as_secs_f64();
    println!(
        "ratios: slot list / HTTP floor {:.3}; bookings / ticket creation {:.2}",
        rate(&listing) / rate(&floor),
        rate(&booking) / rate(&tickets)
    );

    // Contention: all 32 clients race for one slot, 50 times.
    let mut rounds_ok = 0;
    let mut winners_total = 0;
    let started = Instant::now();
    let offset = booking.done + booking.failed + 10;
    for round in 0..50 {
        let Some(start) = targets.get(offset + round).cloned() else { break };
        let racers = (0..32).map(|j| {
            let body =
                serde_json::json!({ "start": start, "tz": "UTC", "name": "Racer", "email": "racer@bookbench.example" });
            client
                .post(book_url.as_str())
                .header("x-forwarded-for", address(100_000 + round * 32 + j))
                .json(&body)
                .send()
        });
        let answers = futures_util::future::join_all(racers).await;
        let winners = answers.iter().filter(|a| a.as_ref().is_ok_and(|r| r.status().as_u16() == 201)).count();
        let refused = answers.iter().filter(|a| a.as_ref().is_ok_and(|r| r.status().as_u16() == 409)).count();
        winners_total += winners;
        if winners == 1 && refused == 31 {
            rounds_ok += 1;
        }
    }
    println!(
        "contention: 50 rounds of 32 racers for one slot in {:.1} s: {rounds_ok} rounds with exactly one winner and 31 conflicts ({winners_total} winners in all)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
