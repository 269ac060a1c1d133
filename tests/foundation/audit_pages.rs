//! Keyset pagination over a real table (the audit log), stable while rows are added.

use consultantpro::db::Db;
use consultantpro::domain::DomainError;
use consultantpro::domain::FirmId;
use consultantpro::domain::audit::{self, ActorType, AuditEvent, AuditFilter, AuditKey, NewAuditEvent, Outcome};
use consultantpro::domain::pagination::{Direction, Page, PageSpec};
use scoped_futures::ScopedFutureExt;

use crate::helpers::{new_firm, test_db};

async fn record(db: &Db, firm: FirmId, action: &str) {
    let event = NewAuditEvent::new(firm, ActorType::System, None, action, Outcome::Success);
    db.firm_tx(firm, |conn| async move { audit::record(conn, &event).await }.scope_boxed()).await.unwrap();
}

async fn page(db: &Db, firm: FirmId, filter: AuditFilter, spec: PageSpec<AuditKey>) -> Page<AuditEvent, AuditKey> {
    db.firm_tx(firm, |conn| async move { audit::list(conn, firm, &filter, &spec).await }.scope_boxed())
        .await
        .map_err(|e: DomainError| e)
        .unwrap()
}

fn actions(page: &Page<AuditEvent, AuditKey>) -> Vec<String> {
    page.items.iter().map(|e| e.action.clone()).collect()
}

#[actix_web::test]
async fn pages_forward_and_back_without_gaps_or_repeats() {
    let db = test_db().await;
    let firm = new_firm(&db).await.firm_id();
    for i in 1..=7 {
        record(&db, firm, &format!("step.{i}")).await;
    }
    let only_steps = || AuditFilter { action: None, ..AuditFilter::default() };

    // Newest first; firm.created is the oldest event of all.
    let first = page(&db, firm, only_steps(), PageSpec::first(3)).await;
    assert_eq!(actions(&first), ["step.7", "step.6", "step.5"]);
    assert!(first.previous.is_none());

    // A row added while paging must not shift what comes next.
    record(&db, firm, "step.8").await;

    let second =
        page(&db, firm, only_steps(), PageSpec { limit: 3, position: Some((Direction::Forward, first.next.unwrap())) })
            .await;
    assert_eq!(actions(&second), ["step.4", "step.3", "step.2"]);
    let third = page(
        &db,
        firm,
        only_steps(),
        PageSpec { limit: 3, position: Some((Direction::Forward, second.next.unwrap())) },
    )
    .await;
    assert_eq!(actions(&third), ["step.1", "firm.created"]);
    assert!(third.next.is_none());

    let back = page(
        &db,
        firm,
        only_steps(),
        PageSpec { limit: 3, position: Some((Direction::Backward, second.previous.unwrap())) },
    )
    .await;
    assert_eq!(actions(&back), ["step.7", "step.6", "step.5"]);
    let newest = page(
        &db,
        firm,
        only_steps(),
        PageSpec { limit: 3, position: Some((Direction::Backward, back.previous.unwrap())) },
    )
    .await;
    assert_eq!(actions(&newest), ["step.8"]);
    assert!(newest.previous.is_none());
}

#[actix_web::test]
async fn filters_narrow_the_listing() {
    let db = test_db().await;
    let firm = new_firm(&db).await.firm_id();
    record(&db, firm, "login.failed").await;
    record(&db, firm, "login.succeeded").await;
    record(&db, firm, "login.failed").await;
    let filter = AuditFilter { action: Some("login.failed".into()), ..AuditFilter::default() };
    let listed = page(&db, firm, filter, PageSpec::first(10)).await;
    assert_eq!(actions(&listed), ["login.failed", "login.failed"]);
    let future = AuditFilter { from: Some(chrono::Utc::now() + chrono::Duration::hours(1)), ..AuditFilter::default() };
    assert!(page(&db, firm, future, PageSpec::first(10)).await.items.is_empty());
}
