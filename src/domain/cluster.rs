//! The cluster's platform tables: node leases and firm ownership (see the `cluster`
//! migration for why ownership hangs off per-node leases). Ids, node names and child
//! states only; no tenant content.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::DomainError;
use crate::tenant::FirmId;

/// The NOTIFY channel nodes listen on; the payload is the cluster's name.
pub const WAKE_CHANNEL: &str = "cp_cluster";
/// Tells the owner of a firm to look again at its owned children; payload `"{cluster} {firm id}"`.
pub const REFRESH_CHANNEL: &str = "cp_cluster_refresh";
/// Tells a firm's owned children of one kind that something of theirs changed; payload
/// `"{kind} {firm id} {what}"`. Firm ids are unique across clusters, so no cluster name.
pub const NOTICE_CHANNEL: &str = "cp_child_notice";

#[derive(QueryableByName)]
struct LiveNodes {
    #[diesel(sql_type = Nullable<Array<SqlUuid>>)]
    live: Option<Vec<Uuid>>,
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    firm: Uuid,
    #[diesel(sql_type = BigInt)]
    fencing_token: i64,
}

#[derive(QueryableByName)]
struct FirmRow {
    #[diesel(sql_type = SqlUuid)]
    firm: Uuid,
}

#[derive(QueryableByName)]
struct Released {
    #[diesel(sql_type = Integer)]
    released: i32,
}

/// Renews `node`'s lease; the live nodes, or `None` when the lease had lapsed and the
/// node must drop its firms and start over under a new id.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    node: Uuid,
    cluster: &str,
    lease_ms: i32,
    hostname: &str,
    pid: i32,
) -> Result<Option<Vec<Uuid>>, DomainError> {
    let row = crate::db::cached_query("SELECT cp_cluster_heartbeat($1, $2, $3, $4, $5) AS live")
        .bind::<SqlUuid, _>(node)
        .bind::<Text, _>(cluster)
        .bind::<Integer, _>(lease_ms)
        .bind::<Text, _>(hostname)
        .bind::<Integer, _>(pid)
        .get_result::<LiveNodes>(conn)
        .await?;
    Ok(row.live)
}

/// Claims the unowned or orphaned firms that belong on `node` (nothing unless its own
/// lease holds); each with its new token.
pub async fn claim(conn: &mut AsyncPgConnection, node: Uuid, cluster: &str) -> Result<Vec<(FirmId, i64)>, DomainError> {
    let rows = crate::db::cached_query("SELECT firm, fencing_token FROM cp_cluster_claim($1, $2)")
        .bind::<SqlUuid, _>(node)
        .bind::<Text, _>(cluster)
        .load::<Claimed>(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (FirmId(r.firm), r.fencing_token)).collect())
}

/// Every firm `node` holds, with its fencing token.
pub async fn held_by(
    conn: &mut AsyncPgConnection,
    node: Uuid,
    cluster: &str,
) -> Result<Vec<(FirmId, i64)>, DomainError> {
    let rows = crate::db::cached_query(
        "SELECT owned_firm_id AS firm, fencing_token FROM firm_ownership WHERE cluster = $1 AND node_id = $2",
    )
    .bind::<Text, _>(cluster)
    .bind::<SqlUuid, _>(node)
    .load::<Claimed>(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (FirmId(r.firm), r.fencing_token)).collect())
}

/// Firms `node` holds that now belong elsewhere.
pub async fn misplaced(conn: &mut AsyncPgConnection, node: Uuid, cluster: &str) -> Result<Vec<FirmId>, DomainError> {
    let rows = crate::db::cached_query("SELECT f AS firm FROM cp_cluster_misplaced($1, $2) AS f")
        .bind::<SqlUuid, _>(node)
        .bind::<Text, _>(cluster)
        .load::<FirmRow>(conn)
        .await?;
    Ok(rows.into_iter().map(|r| FirmId(r.firm)).collect())
}

/// Lets `firms` go (their owned children have stopped); wakes the other nodes.
pub async fn release(
    conn: &mut AsyncPgConnection,
    node: Uuid,
    cluster: &str,
    firms: &[FirmId],
) -> Result<usize, DomainError> {
    let ids: Vec<Uuid> = firms.iter().map(|f| f.into_uuid()).collect();
    let row = crate::db::cached_query("SELECT cp_cluster_release($1, $2, $3) AS released")
        .bind::<SqlUuid, _>(node)
        .bind::<Text, _>(cluster)
        .bind::<Array<SqlUuid>, _>(ids)
        .get_result::<Released>(conn)
        .await?;
    Ok(usize::try_from(row.released).unwrap_or(0))
}

/// Marks `node` as shutting down: it gets no new firms and its peers plan without it.
pub async fn mark_stopping(conn: &mut AsyncPgConnection, node: Uuid) -> Result<(), DomainError> {
    crate::db::cached_query("UPDATE cluster_nodes SET stopping = true WHERE id = $1")
        .bind::<SqlUuid, _>(node)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes `node` (after it let every firm go) and wakes its peers.
pub async fn depart(conn: &mut AsyncPgConnection, node: Uuid, cluster: &str) -> Result<(), DomainError> {
    crate::db::cached_query("DELETE FROM cluster_nodes WHERE id = $1").bind::<SqlUuid, _>(node).execute(conn).await?;
    crate::db::cached_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(WAKE_CHANNEL)
        .bind::<Text, _>(cluster)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores `node`'s owned children and their states, for `consultantpro status`.
pub async fn store_children(
    conn: &mut AsyncPgConnection,
    node: Uuid,
    children: &serde_json::Value,
) -> Result<(), DomainError> {
    crate::db::cached_query("UPDATE cluster_nodes SET children = $2, children_at = now() WHERE id = $1")
        .bind::<SqlUuid, _>(node)
        .bind::<Jsonb, _>(children)
        .execute(conn)
        .await?;
    Ok(())
}

/// From now on `firm` has once-only work in `cluster` (a mailbox, SLA timers, ...): the
/// node it belongs on claims it and starts its owned children. Idempotent; call it in the
/// transaction that creates the work, so the claim follows the commit.
pub async fn require_owner(conn: &mut AsyncPgConnection, cluster: &str, firm: FirmId) -> Result<(), DomainError> {
    crate::db::cached_query("SELECT cp_cluster_require_owner($1, $2)")
        .bind::<Text, _>(cluster)
        .bind::<SqlUuid, _>(firm.into_uuid())
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Holds {
    #[diesel(sql_type = Bool)]
    holds: bool,
}

/// Whether `fencing_token` is still the firm's current ownership. An owned child checks it
/// inside the transaction that does its work: the row lock it takes makes a concurrent
/// take-over wait for that transaction, and a take-over that came first makes it false.
pub async fn holds(
    conn: &mut AsyncPgConnection,
    cluster: &str,
    firm: FirmId,
    fencing_token: i64,
) -> Result<bool, DomainError> {
    let rows = crate::db::cached_query(
        "SELECT true AS holds FROM firm_ownership
          WHERE cluster = $1 AND owned_firm_id = $2 AND fencing_token = $3 AND node_id IS NOT NULL
          FOR SHARE",
    )
    .bind::<Text, _>(cluster)
    .bind::<SqlUuid, _>(firm.into_uuid())
    .bind::<BigInt, _>(fencing_token)
    .load::<Holds>(conn)
    .await?;
    Ok(rows.iter().any(|r| r.holds))
}

/// Asks the node that owns `firm` (whichever it is) to look again at the owned children the
/// firm needs: call it in the transaction that adds or removes such work; the notice goes
/// out on commit.
pub async fn request_refresh(conn: &mut AsyncPgConnection, cluster: &str, firm: FirmId) -> Result<(), DomainError> {
    crate::db::cached_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(REFRESH_CHANNEL)
        .bind::<Text, _>(format!("{cluster} {firm}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells the firm's owned children of `kind`, on whichever node runs them, that `what`
/// changed: call it in the transaction that changes it; the notice goes out on commit, and
/// identical notices of one transaction go out once.
pub async fn notify_children(
    conn: &mut AsyncPgConnection,
    kind: &str,
    firm: FirmId,
    what: &str,
) -> Result<(), DomainError> {
    crate::db::cached_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(NOTICE_CHANNEL)
        .bind::<Text, _>(format!("{kind} {firm} {what}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// A notice as [`notify_children`] sent it: kind, firm and what changed.
pub fn parse_notice(payload: &str) -> Option<(&str, FirmId, &str)> {
    let mut parts = payload.splitn(3, ' ');
    let kind = parts.next()?;
    let firm = parts.next()?.parse::<Uuid>().ok()?;
    Some((kind, FirmId(firm), parts.next().unwrap_or("")))
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct NodeRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub hostname: String,
    #[diesel(sql_type = Integer)]
    pub pid: i32,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub heartbeat_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub lease_until: DateTime<Utc>,
    /// The lease holds now (by the database's clock).
    #[diesel(sql_type = Bool)]
    pub live: bool,
    #[diesel(sql_type = Bool)]
    pub stopping: bool,
    #[diesel(sql_type = BigInt)]
    pub firms_owned: i64,
    #[diesel(sql_type = Jsonb)]
    pub children: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct OwnershipRow {
    #[diesel(sql_type = SqlUuid)]
    pub firm_id: Uuid,
    #[diesel(sql_type = Text)]
    pub firm_slug: String,
    #[diesel(sql_type = Text)]
    pub firm_status: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub node_id: Option<Uuid>,
    #[diesel(sql_type = BigInt)]
    pub fencing_token: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub claimed_at: Option<DateTime<Utc>>,
}

/// The cluster as the database sees it: nodes (newest first) and who owns which firm.
pub async fn status(
    conn: &mut AsyncPgConnection,
    cluster: &str,
) -> Result<(Vec<NodeRow>, Vec<OwnershipRow>), DomainError> {
    let nodes = crate::db::cached_query(
        "SELECT n.id, n.hostname, n.pid, n.started_at, n.heartbeat_at, n.lease_until,
                n.lease_until > now() AS live, n.stopping,
                (SELECT count(*) FROM firm_ownership o WHERE o.cluster = n.cluster AND o.node_id = n.id) AS firms_owned,
                n.children
           FROM cluster_nodes n
          WHERE n.cluster = $1
          ORDER BY n.started_at DESC, n.id",
    )
    .bind::<Text, _>(cluster)
    .load::<NodeRow>(conn)
    .await?;
    let owners = crate::db::cached_query(
        "SELECT o.owned_firm_id AS firm_id, f.slug AS firm_slug, f.status AS firm_status, o.node_id,
                o.fencing_token, o.claimed_at
           FROM firm_ownership o
           JOIN firms f ON f.id = o.owned_firm_id
          WHERE o.cluster = $1
          ORDER BY f.slug",
    )
    .bind::<Text, _>(cluster)
    .load::<OwnershipRow>(conn)
    .await?;
    Ok((nodes, owners))
}
