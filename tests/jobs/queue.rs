//! The queue itself: leases, transactions, concurrency, SSRF refusals, isolation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use consultantpro::bus::Bus;
use consultantpro::db::Db;
use consultantpro::domain::jobs::{self, Job};
use consultantpro::domain::memberships::Role;
use consultantpro::domain::webhooks::{self, EndpointInput};
use consultantpro::domain::{DomainError, FirmId};
use consultantpro::outbound::runner::{JobContext, JobOutcome, JobRunner};
use consultantpro::outbound::webhooks::deliver;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use crate::helpers::{PASSWORD, TestApp, add_member, json, new_firm, signed_in_owner, spawn_app};
use crate::receiver::Receiver;

fn context(app: &TestApp) -> JobContext {
    JobContext::new(app.db(), Bus::in_process(), Arc::new(app.settings.clone())).unwrap()
}

async fn endpoint(db: &Db, firm: FirmId, url: &str) -> uuid::Uuid {
    let input =
        EndpointInput { url: Some(url.into()), description: None, event_types: Some(vec!["*".into()]), active: None };
    let secrets =
        consultantpro::secret_box::SecretBox::from_settings(&crate::helpers::test_settings().secrets).unwrap();
    db.firm_tx(firm, |conn| async move { webhooks::create(conn, firm, &input, &secrets).await }.scope_boxed())
        .await
        .unwrap()
        .0
        .id
}

async fn firm_jobs(db: &Db, firm: FirmId) -> Vec<Job> {
    use consultantpro::db::schema::jobs::dsl;
    db.firm_tx(firm, |conn| {
        async move {
            dsl::jobs
                .filter(dsl::firm_id.eq(firm.into_uuid()))
                .select(Job::as_select())
                .load(conn)
                .await
                .map_err(DomainError::from)
        }
        .scope_boxed()
    })
    .await
    .unwrap()
}

async fn ping(db: &Db, firm: FirmId, endpoint: uuid::Uuid) -> uuid::Uuid {
    db.firm_tx(firm, |conn| {
        async move {
            webhooks::enqueue_delivery(conn, firm, endpoint, webhooks::EventType::Ping, serde_json::json!({}), 5).await
        }
        .scope_boxed()
    })
    .await
    .unwrap()
}

#[actix_web::test]
async fn a_job_whose_worker_died_runs_again_with_the_same_delivery_id() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    let receiver = Receiver::start(&[], 200);
    let endpoint = endpoint(&db, firm, &receiver.url).await;
    let delivery = ping(&db, firm, endpoint).await;

    // A worker claims the job with a one-second lease, sends the delivery, and dies
    // before recording the outcome.
    let claimed = db
        .platform_tx(|conn| async move { jobs::claim(conn, "doomed", 1, 10, Some(firm)).await }.scope_boxed())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let job = firm_jobs(&db, firm).await.remove(0);
    assert_eq!(job.state, "running");
    assert_eq!(deliver(&context(&app), &job).await, JobOutcome::Done);
    assert_eq!(receiver.requests().len(), 1);

    // Nothing else can claim it while the lease holds.
    let early = db
        .platform_tx(|conn| async move { jobs::claim(conn, "eager", 60, 10, Some(firm)).await }.scope_boxed())
        .await
        .unwrap();
    assert!(early.is_empty());

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let runner = JobRunner::new(context(&app), "survivor").only_firm(firm);
    assert_eq!(runner.run_once().await.unwrap(), 1);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "exactly one more run");
    assert!(requests.iter().all(|r| r.delivery_id == delivery.to_string()));
    let job = firm_jobs(&db, firm).await.remove(0);
    assert_eq!(job.state, "succeeded");
    assert_eq!(job.attempts, 2);

    // The dead worker's late report changes nothing: it no longer holds the lease.
    let late =
        db.firm_tx(firm, |conn| async move { jobs::succeed(conn, firm, job.id, "doomed").await }.scope_boxed()).await;
    assert!(!late.unwrap());
}

#[actix_web::test]
async fn a_rolled_back_change_enqueues_nothing() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    endpoint(&db, firm, "https://hooks.example.com/x").await;
    let rolled_back: Result<(), DomainError> = db
        .firm_tx(firm, |conn| {
            async move {
                let queued =
                    webhooks::emit(conn, firm, webhooks::EventType::MemberAdded, serde_json::json!({}), 5).await?;
                assert_eq!(queued, 1);
                Err(DomainError::Conflict("the change failed after emitting".into()))
            }
            .scope_boxed()
        })
        .await;
    assert!(rolled_back.is_err());
    assert!(firm_jobs(&db, firm).await.is_empty());

    db.firm_tx(firm, |conn| {
        async move { webhooks::emit(conn, firm, webhooks::EventType::MemberAdded, serde_json::json!({}), 5).await }
            .scope_boxed()
    })
    .await
    .unwrap();
    assert_eq!(firm_jobs(&db, firm).await.len(), 1);
}

#[actix_web::test]
async fn two_workers_never_hold_the_same_job() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    db.firm_tx(firm, |conn| {
        async move {
            for i in 0..200 {
                jobs::enqueue(conn, firm, "test.noop", serde_json::json!({ "i": i }), 3).await?;
            }
            Ok::<_, DomainError>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap();
    let worker = |name: &'static str| {
        let db = app.db();
        async move {
            let mut mine = Vec::new();
            loop {
                let batch = db
                    .platform_tx(|conn| async move { jobs::claim(conn, name, 60, 7, Some(firm)).await }.scope_boxed())
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|(_, id)| id));
            }
        }
    };
    let (a, b) = tokio::join!(worker("worker-a"), worker("worker-b"));
    let a: HashSet<_> = a.into_iter().collect();
    let b: HashSet<_> = b.into_iter().collect();
    assert!(a.is_disjoint(&b), "a job was claimed twice");
    assert_eq!(a.len() + b.len(), 200);
    assert!(!a.is_empty() && !b.is_empty(), "both workers should have found work");
    assert!(firm_jobs(&db, firm).await.iter().all(|j| j.attempts == 1 && j.state == "running"));
}

#[actix_web::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    let mut strict = app.settings.clone();
    strict.webhooks.allow_private_hosts = Vec::new();
    let strict = JobContext::new(db.clone(), Bus::in_process(), Arc::new(strict)).unwrap();
    let receiver = Receiver::start(&[], 200);
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();

    for url in [
        receiver.url.clone(),
        format!("http://localhost:{port}/hooks"),
        format!("http://[::1]:{port}/hooks"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hooks".to_owned(),
        "http://192.168.0.10/hooks".to_owned(),
    ] {
        let endpoint = endpoint(&db, firm, &url).await;
        let delivery = ping(&db, firm, endpoint).await;
        let job =
            firm_jobs(&db, firm).await.into_iter().find(|j| j.payload["delivery_id"] == delivery.to_string()).unwrap();
        let outcome = deliver(&strict, &job).await;
        let JobOutcome::Fail(reason) = outcome else {
            panic!("{url}: expected a permanent refusal, got {outcome:?}");
        };
        assert!(reason.contains("refused"), "{url}: {reason}");
    }
    assert!(receiver.requests().is_empty(), "nothing reached the internal receiver");

    // With the allow-list, the same loopback receiver is reachable.
    let endpoint = endpoint(&db, firm, &receiver.url).await;
    let delivery = ping(&db, firm, endpoint).await;
    let job =
        firm_jobs(&db, firm).await.into_iter().find(|j| j.payload["delivery_id"] == delivery.to_string()).unwrap();
    assert_eq!(deliver(&context(&app), &job).await, JobOutcome::Done);
    assert_eq!(receiver.requests().len(), 1);
}

#[actix_web::test]
async fn a_receiver_that_does_not_answer_in_time_is_a_failed_attempt() {
    let mut app = spawn_app().await;
    app.settings.webhooks.timeout_secs = 1;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    let receiver = Receiver::start(&[], 200);
    receiver.set_delay(Duration::from_secs(3));
    let endpoint = endpoint(&db, firm, &receiver.url).await;
    let delivery = ping(&db, firm, endpoint).await;
    let job =
        firm_jobs(&db, firm).await.into_iter().find(|j| j.payload["delivery_id"] == delivery.to_string()).unwrap();
    let started = std::time::Instant::now();
    let JobOutcome::Retry(reason) = deliver(&context(&app), &job).await else {
        panic!("a timeout is worth retrying");
    };
    assert!(reason.contains("timed out"), "{reason}");
    assert!(started.elapsed() < Duration::from_millis(2500), "the timeout was not applied");
}

#[actix_web::test]
async fn redirects_are_not_followed() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    let receiver = Receiver::start(&[], 302);
    let endpoint = endpoint(&db, firm, &receiver.url).await;
    let delivery = ping(&db, firm, endpoint).await;
    let job =
        firm_jobs(&db, firm).await.into_iter().find(|j| j.payload["delivery_id"] == delivery.to_string()).unwrap();
    let JobOutcome::Retry(reason) = deliver(&context(&app), &job).await else {
        panic!("a redirect is a failed attempt");
    };
    assert!(reason.contains("redirects are not followed"), "{reason}");
    assert_eq!(receiver.requests().len(), 1);
}

#[actix_web::test]
async fn another_firms_jobs_cannot_be_seen_or_retried_and_staff_cannot_manage_them() {
    let app = spawn_app().await;
    let db = app.db();
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let job_id = db
        .firm_tx(firm.firm_id(), |conn| {
            let firm = firm.firm_id();
            async move { jobs::enqueue(conn, firm, "test.unknown_kind", serde_json::json!({}), 1).await }.scope_boxed()
        })
        .await
        .unwrap();
    let runner = JobRunner::new(context(&app), "isolation").only_firm(firm.firm_id());
    runner.run_once().await.unwrap();
    let dead = json(app.get_as(&owner, "/api/v1/jobs/dead").await).await;
    assert_eq!(dead["data"][0]["id"], job_id.to_string());
    assert!(dead["data"][0]["last_error"].as_str().unwrap().contains("no handler"));

    let (_, _, _, intruder) = signed_in_owner(&app).await;
    assert!(json(app.get_as(&intruder, "/api/v1/jobs/dead").await).await["data"].as_array().unwrap().is_empty());
    let response = app.post_as(&intruder, &format!("/api/v1/jobs/{job_id}/retry"), &serde_json::json!({})).await;
    assert_eq!(response.status(), 404);
    let still = json(app.get_as(&owner, "/api/v1/jobs/dead").await).await;
    assert_eq!(still["data"][0]["id"], job_id.to_string(), "still dead, not retried: {still}");

    let (staff_email, _) = add_member(&db, &firm, Role::Staff).await;
    let staff = app.login_ok(&firm.slug, &staff_email, PASSWORD).await;
    let staff = staff["access_token"].as_str().unwrap();
    assert_eq!(app.get_as(staff, "/api/v1/jobs/dead").await.status(), 403);
    assert_eq!(app.get_as(staff, "/api/v1/webhooks").await.status(), 403);
    assert_eq!(app.post_as(&owner, "/api/v1/jobs/not-a-uuid/retry", &serde_json::json!({})).await.status(), 400);
}

#[actix_web::test]
async fn metrics_show_queue_depth_by_state() {
    let app = spawn_app().await;
    let db = app.db();
    let firm = new_firm(&db).await.firm_id();
    db.firm_tx(firm, |conn| {
        async move { jobs::enqueue(conn, firm, "test.noop", serde_json::json!({}), 1).await }.scope_boxed()
    })
    .await
    .unwrap();
    let count = crate::helpers::metric(&app, "jobs{state=\"queued\"}").await.expect("the queued jobs gauge");
    assert!(count >= 1.0);
}
