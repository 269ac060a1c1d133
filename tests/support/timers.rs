//! The firm's SLA timers: warnings and breaches fire once, within a second of their
//! moment, to the ticket's timeline, the ticket, sockets and webhooks; a paused clock does
//! not fire; edits of the rules move the moments of tickets nobody touched; notices held to
//! a calendar wait for it to open. Time passing is simulated by moving a ticket's clocks
//! back (as if opened that much earlier), through the same notice a real change sends.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, Utc};
use consultantpro::domain::{DomainError, FirmId, sla_timers};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, age_sla_clocks, age_sla_clocks_telling, invite_and_join, json, run_jobs, signed_in_owner, spawn_app,
};
use crate::receiver::Receiver;
use crate::ws;

fn moment(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

fn id_of(body: &Value) -> String {
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// A policy of `minutes` to first response and `resolution` to resolution, warning at 75%.
async fn policy(app: &TestApp, token: &str, minutes: i32, resolution: i32, extra: Value) -> String {
    let mut body = json!({
        "name": format!("P{minutes}"),
        "targets": { "normal": { "first_response_minutes": minutes, "resolution_minutes": resolution } },
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let answer = app.post_as(token, "/api/v1/sla-policies", &body).await;
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    id_of(&json(answer).await)
}

async fn ticket(app: &TestApp, token: &str) -> String {
    let answer = app.post_as(token, "/api/v1/tickets", &json!({ "subject": "Printer on fire" })).await;
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    id_of(&json(answer).await)
}

async fn age(app: &TestApp, firm: FirmId, ticket: &str, by: Duration) {
    age_sla_clocks(&app.db(), firm, ticket, by).await;
}

async fn activity(app: &TestApp, token: &str, ticket: &str) -> Vec<Value> {
    json(app.get_as(token, &format!("/api/v1/tickets/{ticket}/activity")).await).await["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The next `event` frame about SLA timers, skipping others (ticket created, ...).
async fn next_sla(socket: &mut ws::WsClient) -> Value {
    loop {
        let event = socket.next_of("event").await;
        if event["topic"].as_str().is_some_and(|t| t.starts_with("sla.")) {
            return event;
        }
    }
}

/// Waits until the timers child of `firm` runs on the app's node.
async fn timers_running(app: &TestApp, firm: FirmId) {
    for _ in 0..400 {
        if app.state.registry().is_running(firm, sla_timers::TIMERS_KIND, &sla_timers::TIMERS_KEY.to_owned()) {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    panic!("the firm's SLA timers never started");
}

async fn wait_for_events(app: &TestApp, token: &str, ticket: &str, kind: &str, count: usize) -> Vec<Value> {
    for _ in 0..300 {
        let events = activity(app, token, ticket).await;
        if of_kind(&events, kind).len() >= count {
            return events;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    panic!("no {kind} event on {ticket}");
}

#[actix_web::test]
async fn a_warning_and_a_breach_fire_once_within_a_second_everywhere_they_should() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let (other, _, _, other_token) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 204);
    let stranger = Receiver::start(&[], 204);
    for (token, url) in [(&token, &receiver.url), (&other_token, &stranger.url)] {
        let hook = app.post_as(token, "/api/v1/webhooks", &json!({ "url": url, "event_types": ["*"] })).await;
        assert_eq!(hook.status(), 201);
    }
    policy(&app, &token, 60, 600, json!({})).await;
    policy(&app, &other_token, 60, 600, json!({})).await;
    timers_running(&app, firm.firm_id()).await;
    let mut socket = ws::connect(&app, &token).await;
    let mut other_socket = ws::connect(&app, &other_token).await;
    let id = ticket(&app, &token).await;
    ticket(&app, &other_token).await;

    // Opened 59 min 57 s ago: the 45-minute warning is past and fires now; the breach is
    // three seconds away.
    age(&app, firm.firm_id(), &id, Duration::seconds(59 * 60 + 57)).await;
    let warning = next_sla(&mut socket).await;
    assert_eq!(warning["topic"], "sla.warning", "{warning}");
    assert_eq!(warning["payload"]["ticket_id"], id.as_str());
    assert_eq!(warning["payload"]["metric"], "first_response");
    let breach = next_sla(&mut socket).await;
    assert_eq!(breach["topic"], "sla.breached", "{breach}");
    let due = moment(&breach["payload"]["due_at"]);
    let skew = Utc::now() - due;
    assert!(skew >= Duration::zero() && skew < Duration::seconds(1), "breach arrived {skew} after its moment");

    // The timeline holds each once, the breach at its moment; the ticket and its clock
    // show it.
    let events = wait_for_events(&app, &token, &id, "sla_breached", 1).await;
    assert_eq!(of_kind(&events, "sla_warning").len(), 1);
    let breached = of_kind(&events, "sla_breached")[0];
    assert_eq!(breached["actor_type"], "system");
    assert_eq!(moment(&breached["detail"]["due_at"]), due);
    let fired_at = moment(&breached["at"]);
    assert!(fired_at >= due && fired_at - due < Duration::seconds(1), "fired {} after due", fired_at - due);
    let shown = json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await;
    assert_eq!(moment(&shown["data"]["sla_breached_at"]), due);
    let clocks = json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await;
    let first = clocks["data"].as_array().unwrap().iter().find(|c| c["metric"] == "first_response").unwrap().clone();
    assert_eq!(first["state"], "breached");
    assert_eq!(moment(&first["breached_at"]), due);

    // Webhooks: one of each to the firm's endpoint, signed as every delivery is.
    run_jobs(&app, firm.firm_id()).await;
    run_jobs(&app, other.firm_id()).await;
    let got = receiver.wait_for(2, StdDuration::from_secs(5)).await;
    let mut kinds: Vec<&str> = got.iter().map(|r| r.event.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["sla.breached", "sla.warning"]);
    let body: Value = serde_json::from_slice(&got.iter().find(|r| r.event == "sla.breached").unwrap().body).unwrap();
    assert_eq!(body["data"]["ticket_id"], id.as_str());
    assert!(!got[0].signature.is_empty());

    // Nothing fires twice, and the other firm hears nothing of it.
    assert!(
        tokio::time::timeout(StdDuration::from_millis(1500), next_sla(&mut socket)).await.is_err(),
        "an SLA event came twice"
    );
    let events = activity(&app, &token, &id).await;
    assert_eq!(of_kind(&events, "sla_warning").len(), 1);
    assert_eq!(of_kind(&events, "sla_breached").len(), 1);
    assert!(tokio::time::timeout(StdDuration::from_millis(200), next_sla(&mut other_socket)).await.is_err());
    run_jobs(&app, firm.firm_id()).await;
    assert_eq!(receiver.requests().len(), 2);
    assert!(stranger.requests().iter().all(|r| !r.event.starts_with("sla.")), "{:?}", stranger.requests());
}

#[actix_web::test]
async fn a_paused_clock_does_not_fire_until_it_runs_again() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    policy(&app, &token, 60, 600, json!({ "warning_percent": 99 })).await;
    timers_running(&app, firm.firm_id()).await;
    let id = ticket(&app, &token).await;
    // Due in two seconds; then the ticket waits on the client.
    age(&app, firm.firm_id(), &id, Duration::seconds(59 * 60 + 58)).await;
    let pending = app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "pending" })).await;
    assert_eq!(pending.status(), 200);
    tokio::time::sleep(StdDuration::from_millis(3000)).await;
    let events = activity(&app, &token, &id).await;
    assert!(of_kind(&events, "sla_breached").is_empty(), "a paused clock fired: {events:?}");
    let clocks = json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await;
    assert!(clocks["data"].as_array().unwrap().iter().all(|c| c["state"] == "paused"), "{clocks}");

    // Back to open, the two seconds left run out and it fires.
    let open = app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "open" })).await;
    assert_eq!(open.status(), 200);
    let events = wait_for_events(&app, &token, &id, "sla_breached", 1).await;
    assert_eq!(of_kind(&events, "sla_breached").len(), 1);
}

#[actix_web::test]
async fn editing_a_policy_moves_the_due_moments_of_tickets_nobody_touched() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let policy_id = policy(&app, &token, 60, 480, json!({})).await;
    run_jobs(&app, firm.firm_id()).await;
    let id = ticket(&app, &token).await;
    let resolution = |clocks: &Value| {
        clocks["data"].as_array().unwrap().iter().find(|c| c["metric"] == "resolution").unwrap().clone()
    };
    let before = resolution(&json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await);
    let started = moment(&before["started_at"]);
    assert_eq!(moment(&before["due_at"]), started + Duration::minutes(480));

    let targets = json!({ "normal": { "first_response_minutes": 60, "resolution_minutes": 120 } });
    let edit = app.patch_as(&token, &format!("/api/v1/sla-policies/{policy_id}"), &json!({ "targets": targets })).await;
    assert_eq!(edit.status(), 200, "{}", edit.text().await.unwrap());
    run_jobs(&app, firm.firm_id()).await;
    let after = resolution(&json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await);
    assert_eq!(after["target_seconds"], 120 * 60);
    // The time counted so far is kept: due two hours after it started (whole seconds).
    let due = moment(&after["due_at"]);
    assert!((due - (started + Duration::minutes(120))).num_seconds().abs() <= 1, "{due} vs {started}");
    assert_eq!(after["started_at"], before["started_at"]);
}

#[actix_web::test]
async fn escalation_notices_wait_for_the_notice_calendar_while_the_timeline_does_not() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let receiver = Receiver::start(&[], 204);
    let hook =
        app.post_as(&token, "/api/v1/webhooks", &json!({ "url": receiver.url, "event_types": ["sla.breached"] })).await;
    assert_eq!(hook.status(), 201);
    let hook = json(hook).await["data"]["endpoint"]["id"].as_str().unwrap().to_owned();
    // Open one hour, the day after tomorrow (UTC): closed now, whatever the time.
    let day = (Utc::now() + Duration::days(2)).weekday();
    let weekday = format!("{day:?}").to_lowercase();
    let day_name = match weekday.as_str() {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    };
    let calendar = app
        .post_as(
            &token,
            "/api/v1/business-calendars",
            &json!({
                "name": "Escalation desk",
                "time_zone": "UTC",
                "windows": [{ "weekday": day_name, "start": "09:00", "end": "10:00" }],
            }),
        )
        .await;
    assert_eq!(calendar.status(), 201, "{}", calendar.text().await.unwrap());
    let calendar = id_of(&json(calendar).await);
    policy(&app, &token, 60, 600, json!({ "notice_calendar_id": calendar, "warning_percent": 99 })).await;
    timers_running(&app, firm.firm_id()).await;
    let id = ticket(&app, &token).await;
    age(&app, firm.firm_id(), &id, Duration::minutes(61)).await;
    wait_for_events(&app, &token, &id, "sla_breached", 1).await;

    // The delivery is queued for the desk's next opening, not sent now.
    run_jobs(&app, firm.firm_id()).await;
    assert!(receiver.requests().is_empty(), "a held notice went out: {:?}", receiver.requests());
    let deliveries = json(app.get_as(&token, &format!("/api/v1/webhooks/{hook}/deliveries")).await).await;
    let queued = deliveries["data"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{deliveries}");
    assert_eq!(queued[0]["event_type"], "sla.breached");
    assert_eq!(queued[0]["attempts"], 0);
    let firm_id = firm.firm_id();
    let run_at: Vec<DateTime<Utc>> = app
        .db()
        .firm_tx(firm_id, |conn| {
            async move {
                use consultantpro::db::schema::jobs::dsl as j;
                j::jobs
                    .filter(j::firm_id.eq(firm_id.into_uuid()))
                    .filter(j::kind.eq("webhook.deliver"))
                    .select(j::run_at)
                    .load(conn)
                    .await
                    .map_err(DomainError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    let expected = (Utc::now() + Duration::days(2)).date_naive().and_hms_opt(9, 0, 0).unwrap().and_utc();
    assert_eq!(run_at, vec![expected]);

    // A calendar a policy holds its notices to cannot be deleted.
    let delete = app.delete_as(&token, &format!("/api/v1/business-calendars/{calendar}")).await;
    assert_eq!(delete.status(), 409);
}

#[actix_web::test]
async fn next_response_starts_with_each_customer_message_and_solving_stops_it_for_good() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let targets =
        json!({ "normal": { "first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 600 } });
    let answer = app.post_as(&token, "/api/v1/sla-policies", &json!({ "name": "Replies", "targets": targets })).await;
    assert_eq!(answer.status(), 201);
    timers_running(&app, firm.firm_id()).await;
    let email = format!("client-{}@example.com", Uuid::now_v7().simple());
    let (contact, conversation) = crate::portal_conversation(&app, &token, &email, "Payroll").await;
    let opened = app.post_as(&token, "/api/v1/tickets", &json!({ "conversation_id": conversation })).await;
    let id = id_of(&json(opened).await);
    let portal = invite_and_join(&app, &token, &firm, &email, "client", Some(&contact)).await;
    let say = |who: String, body: &'static str| {
        let path = format!("/api/v1/conversations/{conversation}/messages");
        let app = &app;
        async move { assert_eq!(app.post_as(&who, &path, &json!({ "body": body })).await.status(), 201) }
    };
    let next_response = || async {
        let clocks = json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await;
        clocks["data"].as_array().unwrap().iter().find(|c| c["metric"] == "next_response").cloned()
    };

    say(token.clone(), "Hello").await;
    assert!(next_response().await.is_none(), "no customer message yet, no next-response clock");
    say(portal.clone(), "Question one").await;
    let first = next_response().await.unwrap();
    assert_eq!(first["state"], "running");
    say(token.clone(), "Answer one").await;
    assert_eq!(next_response().await.unwrap()["state"], "met");
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    say(portal.clone(), "Question two").await;
    let second = next_response().await.unwrap();
    assert_eq!(second["state"], "running");
    assert!(moment(&second["started_at"]) > moment(&first["started_at"]), "a fresh clock for the new message");

    // Solving stops it (and meets resolution); two hours later nothing has fired.
    let solved = app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "solved" })).await;
    assert_eq!(solved.status(), 200);
    let stopped = next_response().await.unwrap();
    assert_eq!(stopped["state"], "stopped");
    assert!(stopped["due_at"].is_null());
    age(&app, firm.firm_id(), &id, Duration::hours(2)).await;
    // The control: an open ticket under the same policy, two hours on, does breach; the firm's
    // due clocks fire in one pass, so by then the solved ticket's would have fired too.
    let control = ticket(&app, &token).await;
    age(&app, firm.firm_id(), &control, Duration::hours(2)).await;
    wait_for_events(&app, &token, &control, "sla_breached", 1).await;
    let events = activity(&app, &token, &id).await;
    assert!(of_kind(&events, "sla_breached").is_empty() && of_kind(&events, "sla_warning").is_empty(), "{events:?}");
}

#[actix_web::test]
async fn a_change_landing_after_the_due_moment_but_before_the_timer_still_records_the_breach() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    policy(&app, &token, 60, 600, json!({ "warning_percent": 99 })).await;
    timers_running(&app, firm.firm_id()).await;
    let id = ticket(&app, &token).await;
    // Due a minute ago, but the timers were not told: they wait for the old moment.
    age_sla_clocks_telling(&app.db(), firm.firm_id(), &id, Duration::minutes(61), false).await;
    let solved = app.patch_as(&token, &format!("/api/v1/tickets/{id}"), &json!({ "status": "solved" })).await;
    assert_eq!(solved.status(), 200);
    let events = activity(&app, &token, &id).await;
    let breaches = of_kind(&events, "sla_breached");
    assert_eq!(breaches.len(), 1, "{events:?}");
    assert_eq!(breaches[0]["detail"]["metric"], "first_response");
    let shown = json(app.get_as(&token, &format!("/api/v1/tickets/{id}")).await).await;
    assert_eq!(moment(&shown["data"]["sla_breached_at"]), moment(&breaches[0]["detail"]["due_at"]));
    let clocks = json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await;
    let first = clocks["data"].as_array().unwrap().iter().find(|c| c["metric"] == "first_response").unwrap().clone();
    assert_eq!(moment(&first["breached_at"]), moment(&breaches[0]["detail"]["due_at"]), "breached at its moment");
}

#[actix_web::test]
async fn a_target_raised_before_its_moment_fires_nothing_by_the_old_moment() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let policy_id = policy(&app, &token, 60, 600, json!({ "warning_percent": 99 })).await;
    run_jobs(&app, firm.firm_id()).await;
    timers_running(&app, firm.firm_id()).await;
    let id = ticket(&app, &token).await;
    age(&app, firm.firm_id(), &id, Duration::seconds(59 * 60 + 58)).await;
    // Two seconds before the hour is up, the target becomes two hours.
    let targets = json!({ "normal": { "first_response_minutes": 120, "resolution_minutes": 600 } });
    let edit = app.patch_as(&token, &format!("/api/v1/sla-policies/{policy_id}"), &json!({ "targets": targets })).await;
    assert_eq!(edit.status(), 200);
    tokio::time::sleep(StdDuration::from_millis(3000)).await;
    assert!(of_kind(&activity(&app, &token, &id).await, "sla_breached").is_empty(), "fired by the old target");
    // The recompute sets the new moment: an hour on.
    run_jobs(&app, firm.firm_id()).await;
    let clocks = json(app.get_as(&token, &format!("/api/v1/tickets/{id}/sla")).await).await;
    let first = clocks["data"].as_array().unwrap().iter().find(|c| c["metric"] == "first_response").unwrap().clone();
    assert_eq!(first["state"], "running");
    let left = moment(&first["due_at"]) - Utc::now();
    assert!(left > Duration::minutes(59) && left < Duration::minutes(61), "{first}");
    // The control: this ticket's timer does fire on the same timeline once it is really due.
    age(&app, firm.firm_id(), &id, Duration::minutes(61)).await;
    wait_for_events(&app, &token, &id, "sla_breached", 1).await;
}
