//! SLA timers across nodes: a breach that came due while no node owned the firm fires once
//! when another takes over, and no timer fires on two nodes, whether the firm moves while
//! timers are coming due or several callers race to fire the same clocks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use consultantpro::domain::{DomainError, FirmId, sla_timers};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, age_sla_clocks, json, signed_in_owner};
use crate::ownership::{cluster_name, failover_bound, node_pair, wait_until};

fn runs_timers(app: &TestApp, firm: FirmId) -> bool {
    app.state.registry().is_running(firm, sla_timers::TIMERS_KIND, &sla_timers::TIMERS_KEY.to_owned())
}

/// Which of the two nodes runs the firm's timers, once exactly one does.
async fn timers_owner(a: &TestApp, b: &TestApp, firm: FirmId) -> usize {
    let found = wait_until(Duration::from_secs(10), || runs_timers(a, firm) != runs_timers(b, firm)).await;
    assert!(found.is_some(), "the firm's SLA timers never started on one node");
    if runs_timers(a, firm) { 0 } else { 1 }
}

/// A policy of 60 minutes to first response (warning at 99%) and a signed-in owner, on `app`.
async fn firm_with_policy(app: &TestApp) -> (FirmId, String) {
    let (firm, _, _, token) = signed_in_owner(app).await;
    let targets = json!({ "normal": { "first_response_minutes": 60, "resolution_minutes": 6000 } });
    let answer = app
        .post_as(&token, "/api/v1/sla-policies", &json!({ "name": "Hour", "targets": targets, "warning_percent": 99 }))
        .await;
    assert_eq!(answer.status(), 201);
    (firm.firm_id(), token)
}

async fn new_ticket(app: &TestApp, token: &str) -> String {
    let answer = app.post_as(token, "/api/v1/tickets", &json!({ "subject": "Down" })).await;
    assert_eq!(answer.status(), 201);
    json(answer).await["data"]["id"].as_str().unwrap().to_owned()
}

/// Every `sla_breached` event of the firm: ticket -> the moments they were written.
async fn breaches(app: &TestApp, firm: FirmId) -> HashMap<Uuid, Vec<DateTime<Utc>>> {
    use consultantpro::db::schema::ticket_events::dsl as e;
    let rows: Vec<(Uuid, DateTime<Utc>)> = app
        .db()
        .firm_tx(firm, |conn| {
            async move {
                e::ticket_events
                    .filter(e::firm_id.eq(firm.into_uuid()))
                    .filter(e::kind.eq("sla_breached"))
                    .select((e::ticket_id, e::at))
                    .load(conn)
                    .await
                    .map_err(DomainError::from)
            }
            .scope_boxed()
        })
        .await
        .unwrap();
    let mut by_ticket: HashMap<Uuid, Vec<DateTime<Utc>>> = HashMap::new();
    for (ticket, at) in rows {
        by_ticket.entry(ticket).or_default().push(at);
    }
    by_ticket
}

async fn wait_for_breaches(
    app: &TestApp,
    firm: FirmId,
    tickets: usize,
    limit: Duration,
) -> HashMap<Uuid, Vec<DateTime<Utc>>> {
    let started = Instant::now();
    loop {
        let found = breaches(app, firm).await;
        if found.len() >= tickets || started.elapsed() > limit {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_breach_due_while_its_owner_was_down_fires_once_promptly_after_takeover() {
    let name = cluster_name();
    let (a, b) = node_pair(&name, false).await;
    let (firm, token) = firm_with_policy(&a).await;
    let owner = timers_owner(&a, &b, firm).await;
    let (dying, survivor) = if owner == 0 { (&a, &b) } else { (&b, &a) };
    let ticket = new_ticket(survivor, &token).await;

    // The owner dies; then the ticket's breach comes due while nobody owns the firm.
    dying.cluster.halt().await;
    dying.server.stop(false).await;
    dying.state.db().close();
    age_sla_clocks(&survivor.db(), firm, &ticket, ChronoDuration::seconds(60 * 60) - ChronoDuration::milliseconds(300))
        .await;
    let due = Utc::now() + ChronoDuration::milliseconds(300);

    let took = wait_until(failover_bound(), || runs_timers(survivor, firm)).await;
    assert!(took.is_some(), "the survivor never took the firm's timers over");
    let taken_at = Utc::now();
    assert!(taken_at > due, "the breach was due before the take-over, as the test needs");
    let fired = wait_for_breaches(survivor, firm, 1, Duration::from_secs(5)).await;
    let ticket = Uuid::parse_str(&ticket).unwrap();
    let moments = fired.get(&ticket).cloned().unwrap_or_default();
    assert_eq!(moments.len(), 1, "fired {moments:?}");
    assert!(moments[0] - taken_at < ChronoDuration::seconds(1), "fired {} after the take-over", moments[0] - taken_at);

    // And never again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(breaches(survivor, firm).await.get(&ticket).map(Vec::len), Some(1));
}

#[actix_web::test]
async fn no_timer_fires_on_two_nodes_when_the_firm_moves_or_callers_race() {
    const TICKETS: usize = 30;
    let name = cluster_name();
    let (a, b) = node_pair(&name, false).await;
    let (firm, token) = firm_with_policy(&a).await;
    let owner = timers_owner(&a, &b, firm).await;
    let (leaving, staying) = if owner == 0 { (&a, &b) } else { (&b, &a) };
    let mut tickets = Vec::new();
    for _ in 0..TICKETS {
        tickets.push(new_ticket(staying, &token).await);
    }
    // Due every 40 ms from 200 ms on, so the firm moves while they keep coming due.
    for (i, ticket) in tickets.iter().enumerate() {
        let left = ChronoDuration::milliseconds(200 + 40 * i as i64);
        age_sla_clocks(&staying.db(), firm, ticket, ChronoDuration::seconds(3600) - left).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    leaving.cluster.shutdown().await;
    let moved = wait_until(Duration::from_secs(5), || runs_timers(staying, firm)).await;
    assert!(moved.is_some(), "the timers were not handed over");
    let fired = wait_for_breaches(staying, firm, TICKETS, Duration::from_secs(10)).await;
    assert_eq!(fired.len(), TICKETS, "every ticket breached");
    assert!(fired.values().all(|m| m.len() == 1), "a timer fired twice: {fired:?}");

    // Callers racing for the same due clocks: the running child and two more with the
    // current token fire each clock once; a stale token fires nothing.
    let token_now = *staying.state.registry().owned().get(&firm).expect("the staying node owns the firm");
    let mut more = Vec::new();
    for _ in 0..10 {
        more.push(new_ticket(staying, &token).await);
    }
    let db = staying.db();
    let stale = db
        .firm_tx(firm, |conn| {
            let name = name.clone();
            async move { sla_timers::fire_due(conn, firm, &name, token_now - 1, Utc::now(), 500).await }.scope_boxed()
        })
        .await
        .unwrap();
    assert!(stale.is_none(), "a stale fencing token was let through");
    for ticket in &more {
        age_sla_clocks(&db, firm, ticket, ChronoDuration::seconds(3601)).await;
    }
    let race = |db: consultantpro::db::Db, name: String| async move {
        db.firm_tx(firm, |conn| {
            async move { sla_timers::fire_due(conn, firm, &name, token_now, Utc::now(), 500).await }.scope_boxed()
        })
        .await
        .unwrap()
        .map_or(0, |fired| fired.iter().filter(|f| f.fired == "breached").count())
    };
    let (one, two) = tokio::join!(race(db.clone(), name.clone()), race(db.clone(), name.clone()));
    let fired = wait_for_breaches(staying, firm, TICKETS + 10, Duration::from_secs(5)).await;
    assert_eq!(fired.len(), TICKETS + 10);
    assert!(fired.values().all(|m| m.len() == 1), "a timer fired twice: {fired:?}");
    assert!(one + two <= 10, "the racers fired {one} + {two} of 10 clocks");
}
