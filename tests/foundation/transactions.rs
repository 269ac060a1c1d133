//! A transaction abandoned half-way (its future dropped: a cancelled request, a child
//! stopped mid-write) ends at once; its locks do not linger in the pool.

use std::time::Duration;

use consultantpro::domain::DomainError;
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
