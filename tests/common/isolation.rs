//! Firm isolation checked table by table, each with its positive control: the owning firm
//! must hold rows in a table before another firm seeing none of them proves anything.

use consultantpro::db::Db;
use consultantpro::domain::{DomainError, FirmId};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT count(*) AS n ...` in a transaction scoped to `firm`.
pub async fn count_as(db: &Db, firm: FirmId, sql: &str) -> i64 {
    db.firm_tx_retried(firm, async |conn| {
        Ok::<_, DomainError>(diesel::sql_query(sql).get_result::<Count>(conn).await?.n)
    })
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

/// For each table: `owner` holds rows in it (the control), `other` sees none of them, and
/// `other` sees no row of any firm but its own.
pub async fn assert_isolated(db: &Db, owner: FirmId, other: FirmId, tables: &[&str]) {
    for table in tables {
        let owners = format!("SELECT count(*) AS n FROM {table} WHERE firm_id = '{}'", owner.0);
        assert!(
            count_as(db, owner, &owners).await > 0,
            "{table}: the owning firm has no row, so its check proves nothing"
        );
        assert_eq!(count_as(db, other, &owners).await, 0, "{table}: another firm sees the owner's rows");
        let foreign = format!("SELECT count(*) AS n FROM {table} WHERE firm_id <> '{}'", other.0);
        assert_eq!(count_as(db, other, &foreign).await, 0, "{table}: rows of other firms are visible");
    }
}
