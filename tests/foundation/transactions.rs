//! A transaction abandoned half-way (its future dropped: a cancelled request, a child
//! stopped mid-write) ends at once; its locks do not linger in the pool. One that lost a
//! serialization race or a deadlock runs again, a bounded number of times.

use std::time::Duration;

use consultantpro::db::{Planning, TRANSIENT_RETRIES};
use consultantpro::domain::audit::{self, ActorType, Outcome};
use consultantpro::domain::clients::{self, ClientFilter, ClientInput};
use consultantpro::domain::pagination::{Direction, PageSpec};
use consultantpro::domain::{DomainError, FirmId};
use consultantpro::error::ApiError;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use crate::helpers::{new_firm, test_db};

#[tokio::test]
async fn an_abandoned_transaction_releases_its_locks_at_once() {
    let db = test_db().await;
    let firm = new_firm(&db).await;
    let id = firm.id;
    // Takes the firm's row lock, then waits far longer than it is given.
    let abandoned = db.platform_tx(|conn| {
        async move {
            diesel::sql_query("SELECT id FROM firms WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)
                .await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, DomainError>(())
        }
        .scope_boxed()
    });
    assert!(tokio::time::timeout(Duration::from_millis(300), abandoned).await.is_err(), "it was cut short");

    // Another writer of that row (on a pool of its own, so not on the abandoned
    // connection) gets it, well within its own lock timeout.
    let other = test_db().await;
    let changed = other
        .platform_tx(|conn| {
            async move {
                diesel::sql_query("SET LOCAL lock_timeout = '3s'").execute(conn).await?;
                diesel::sql_query("UPDATE firms SET updated_at = now() WHERE id = $1")
                    .bind::<diesel::sql_types::Uuid, _>(id)
                    .execute(conn)
                    .await
                    .map_err(DomainError::from)
            }
            .scope_boxed()
        })
        .await;
    assert_eq!(changed.unwrap(), 1, "the abandoned transaction still held the row");
}

/// A client named `name` in `firm`, made in its own transaction.
async fn client_named(db: &consultantpro::db::Db, firm: FirmId, name: &str) -> uuid::Uuid {
    let input = ClientInput { name: Some(name.to_owned()), ..ClientInput::default() };
    db.firm_tx_retried(firm, async |conn| clients::create(conn, firm, input.clone()).await).await.unwrap().id
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn clients_named(db: &consultantpro::db::Db, firm: FirmId, prefix: &str) -> i64 {
    let pattern = format!("{prefix}%");
    let count = db
        .firm_tx_retried(firm, async |conn| {
            diesel::sql_query("SELECT count(*) AS n FROM clients WHERE name LIKE $1")
                .bind::<diesel::sql_types::Text, _>(&pattern)
                .get_result::<Count>(conn)
                .await
                .map_err(DomainError::from)
        })
        .await
        .unwrap();
    count.n
}

/// Fails the transaction as PostgreSQL does when it lost a serialization race.
async fn lose_a_race(conn: &mut consultantpro::db::Connection) -> Result<(), DomainError> {
    diesel::sql_query("DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '40001'; END $$")
        .execute(conn)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_transaction_that_lost_a_serialization_race_runs_again_and_only_its_last_run_stays() {
    let db = test_db().await;
    let firm = FirmId(new_firm(&db).await.id);
    let mut runs = 0;
    let kept = db
        .firm_tx_retried(firm, async |conn| {
            runs += 1;
            let input = ClientInput { name: Some(format!("retried run {runs}")), ..ClientInput::default() };
            clients::create(conn, firm, input).await?;
            if runs == 1 {
                lose_a_race(conn).await?;
            }
            Ok::<_, DomainError>(runs)
        })
        .await
        .expect("the second run commits");
    assert_eq!((runs, kept), (2, 2));
    // The first run's insert was rolled back with it: exactly the second one is stored.
    assert_eq!(clients_named(&db, firm, "retried run ").await, 1);
    assert_eq!(clients_named(&db, firm, "retried run 2").await, 1);
}

#[tokio::test]
async fn a_transaction_that_keeps_losing_is_a_503_after_the_bounded_retries() {
    let db = test_db().await;
    let firm = FirmId(new_firm(&db).await.id);
    let mut runs = 0;
    let outcome = db
        .firm_tx_retried(firm, async |conn| {
            runs += 1;
            lose_a_race(conn).await
        })
        .await;
    assert_eq!(runs, 1 + TRANSIENT_RETRIES);
    let answer = ApiError::from(outcome.expect_err("it never commits"));
    assert_eq!(answer.status().as_u16(), 503);
    assert_eq!(answer.code(), "unavailable");
}

#[tokio::test]
async fn other_failures_are_not_run_again() {
    let db = test_db().await;
    let firm = FirmId(new_firm(&db).await.id);
    let mut runs = 0;
    let outcome = db
        .firm_tx_retried(firm, async |conn| {
            runs += 1;
            diesel::sql_query("DO $$ BEGIN RAISE EXCEPTION 'taken' USING ERRCODE = '23505'; END $$")
                .execute(conn)
                .await?;
            Ok::<_, DomainError>(())
        })
        .await;
    assert_eq!(runs, 1, "a unique violation is the client's conflict, not a race");
    assert_eq!(ApiError::from(outcome.unwrap_err()).status().as_u16(), 409);
}

/// Two transactions that lock the same two rows in opposite orders: PostgreSQL detects
/// the deadlock and aborts one, which runs again once the other has committed. Both end
/// with their changes made.
#[tokio::test]
async fn a_real_deadlock_is_survived_by_running_the_loser_again() {
    let db = test_db().await;
    let firm = FirmId(new_firm(&db).await.id);
    let (a, b) = (client_named(&db, firm, "deadlock a").await, client_named(&db, firm, "deadlock b").await);
    let both_hold_one = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let side = |first: uuid::Uuid, second: uuid::Uuid, tag: &'static str| {
        let (db, barrier, runs) = (db.clone(), both_hold_one.clone(), runs.clone());
        async move {
            let mut attempt = 0;
            db.firm_tx_retried(firm, async |conn| {
                attempt += 1;
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                touch(conn, first, tag).await?;
                if attempt == 1 {
                    barrier.wait().await;
                }
                touch(conn, second, tag).await
            })
            .await
        }
    };
    let (left, right) = tokio::join!(side(a, b, "left"), side(b, a, "right"));
    left.expect("left committed");
    right.expect("right committed");
    assert_eq!(
        std::sync::atomic::AtomicU32::load(&runs, std::sync::atomic::Ordering::SeqCst),
        3,
        "exactly one side ran again"
    );
}

async fn touch(conn: &mut consultantpro::db::Connection, id: uuid::Uuid, tag: &str) -> Result<(), DomainError> {
    diesel::sql_query("UPDATE clients SET industry = $2 WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Text, _>(tag)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(diesel::QueryableByName, Debug, Clone, Copy, PartialEq, Eq)]
struct Plans {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    custom_plans: i64,
}

/// The plans this connection has made so far for its prepared page of clients.
async fn client_page_plans(conn: &mut consultantpro::db::Connection) -> Result<Plans, DomainError> {
    Ok(diesel::sql_query(
        "SELECT coalesce(sum(generic_plans), 0)::int8 AS generic_plans, \
                coalesce(sum(custom_plans), 0)::int8 AS custom_plans \
           FROM pg_prepared_statements WHERE statement LIKE 'SELECT %FROM \"clients\"%LIMIT%'",
    )
    .get_result(conn)
    .await?)
}

/// Reads the first page of clients three times in one transaction planned as `planning`;
/// returns the plans made for it before and after.
async fn read_client_pages(db: &consultantpro::db::Db, firm: FirmId, planning: Planning) -> (Plans, Plans) {
    db.firm_tx_planned(firm, planning, async |conn| {
        let before = client_page_plans(conn).await?;
        for _ in 0..3 {
            let page = clients::list(conn, firm, &ClientFilter::default(), &PageSpec::first(2)).await?;
            assert_eq!(page.items.len(), 2);
        }
        Ok::<_, DomainError>((before, client_page_plans(conn).await?))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_page_is_planned_once_per_connection_and_the_setting_ends_with_its_transaction() {
    let settings = crate::helpers::test_settings();
    let db = test_db().await;
    let firm = FirmId(new_firm(&db).await.id);
    for name in ["Aster", "Birch", "Cedar"] {
        client_named(&db, firm, name).await;
    }
    // One connection, so the transaction after the page's runs where the page ran.
    let one = consultantpro::db::Db::sized(&settings.database, settings.jobs.max_attempts, 1).unwrap();

    let (before, after) = read_client_pages(&one, firm, Planning::Generic).await;
    assert_eq!(after.custom_plans, before.custom_plans, "a page was planned for its values: {after:?}");
    assert_eq!(after.generic_plans, before.generic_plans + 3, "{before:?} -> {after:?}");

    // PostgreSQL's own choice returns with the next transaction on that connection: the
    // bound LIMIT makes it plan the page for its values each time.
    let (before, after) = read_client_pages(&one, firm, Planning::Auto).await;
    assert_eq!(after.custom_plans, before.custom_plans + 3, "{before:?} -> {after:?}");
}

#[derive(diesel::QueryableByName)]
struct Runs {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
}

/// How often this connection ran a statement it keeps prepared whose text is like
/// `pattern`; a statement diesel would not cache is closed after its run and counts 0.
async fn kept_statement_runs(conn: &mut consultantpro::db::Connection, pattern: &str) -> Result<i64, DomainError> {
    let runs: Runs = diesel::sql_query(
        "SELECT coalesce(sum(generic_plans + custom_plans), 0)::int8 AS runs \
           FROM pg_prepared_statements WHERE statement LIKE $1",
    )
    .bind::<diesel::sql_types::Text, _>(pattern)
    .get_result(conn)
    .await?;
    Ok(runs.runs)
}

#[tokio::test]
async fn constant_raw_sql_and_later_pages_keep_their_prepared_statements() {
    let db = test_db().await;
    let firm = FirmId(new_firm(&db).await.id);
    for name in ["Alder", "Beech", "Cherry"] {
        client_named(&db, firm, name).await;
    }
    let (raw, later_pages, audit_inserts) = db
        .firm_tx_retried(firm, async |conn| {
            for _ in 0..2 {
                #[derive(diesel::QueryableByName)]
                struct Sum {
                    #[diesel(sql_type = diesel::sql_types::Integer)]
                    sum: i32,
                }
                let sum: Sum = consultantpro::db::cached_query("SELECT $1::int4 + $1::int4 AS sum")
                    .bind::<diesel::sql_types::Integer, _>(20)
                    .get_result(conn)
                    .await?;
                assert_eq!(sum.sum, 40);
            }
            let first = clients::list(conn, firm, &ClientFilter::default(), &PageSpec::first(1)).await?;
            let after = first.items[0].clone();
            for _ in 0..2 {
                let key = clients::ClientKey {
                    sort: ClientFilter::default().sort,
                    value: after.created_at.to_rfc3339(),
                    id: after.id,
                };
                let spec = PageSpec { limit: 1, position: Some((Direction::Forward, key)) };
                let second = clients::list(conn, firm, &ClientFilter::default(), &spec).await?;
                assert_eq!(second.items.len(), 1);
                assert_ne!(second.items[0].id, after.id);
            }
            // One event with a target and one without: the same statement either way.
            let event = || audit::NewAuditEvent::new(firm, ActorType::System, None, "test.kept", Outcome::Success);
            let audit_runs_before = kept_statement_runs(conn, "INSERT INTO \"audit_events\"%").await?;
            audit::record(conn, &event().with_target("client", after.id)).await?;
            audit::record(conn, &event()).await?;
            Ok::<_, DomainError>((
                kept_statement_runs(conn, "SELECT $1::int4 + $2::int4 AS sum").await?,
                kept_statement_runs(conn, "SELECT %FROM \"clients\"%(created_at, id) < ($%").await?,
                kept_statement_runs(conn, "INSERT INTO \"audit_events\"%").await? - audit_runs_before,
            ))
        })
        .await
        .unwrap();
    assert_eq!(raw, 2, "the constant raw statement was prepared for each run");
    assert_eq!(later_pages, 2, "a page after the first was prepared for each run");
    assert_eq!(audit_inserts, 2, "an audit event was prepared for each write");
}
