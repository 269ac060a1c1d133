//! Break-glass: an operator's time-limited access to one firm's content. A grant needs a
//! reason and a time limit, is approved by a second operator, is used only by the operator
//! who asked, ends by itself, and can be revoked by any operator or the firm's owners.
//! Grants are a platform table (`target_firm_id`, never `firm_id`).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::{DomainError, FieldErrors, FirmId};
use crate::db::schema::break_glass_grants;

pub const MAX_MINUTES: i32 = 240;
/// A request nobody approves within this long lapses.
pub const PENDING_LIFETIME_MINUTES: i64 = 60;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = break_glass_grants)]
pub struct Grant {
    pub id: Uuid,
    #[serde(rename = "firm_id")]
    pub target_firm_id: Uuid,
    pub requested_by: Uuid,
    pub reason: String,
    pub minutes: i32,
    pub created_at: DateTime<Utc>,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub first_activated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by_operator: Option<Uuid>,
    pub revoked_by_user: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    Pending,
    Active,
    Expired,
    Revoked,
}

impl Grant {
    pub fn state(&self, now: DateTime<Utc>) -> GrantState {
        if self.revoked_at.is_some() {
            return GrantState::Revoked;
        }
        match self.expires_at {
            Some(expires) if expires > now => GrantState::Active,
            Some(_) => GrantState::Expired,
            None if self.created_at + Duration::minutes(PENDING_LIFETIME_MINUTES) > now => GrantState::Pending,
            None => GrantState::Expired,
        }
    }
}

/// A grant as shown to operators and to the firm's owners.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    #[serde(flatten)]
    pub grant: Grant,
    pub state: GrantState,
}

impl From<Grant> for GrantView {
    fn from(grant: Grant) -> Self {
        let state = grant.state(Utc::now());
        Self { grant, state }
    }
}

pub async fn request(
    conn: &mut AsyncPgConnection,
    operator_id: Uuid,
    firm: FirmId,
    reason: &str,
    minutes: i32,
) -> Result<Grant, DomainError> {
    let reason = reason.trim();
    let mut fields = FieldErrors::new();
    if reason.chars().count() < 10 || reason.chars().count() > 2000 {
        fields.insert("reason".into(), "must explain the need in 10 to 2000 characters".into());
    }
    if !(1..=MAX_MINUTES).contains(&minutes) {
        fields.insert("minutes".into(), format!("must be 1 to {MAX_MINUTES}"));
    }
    DomainError::check(fields)?;
    Ok(diesel::insert_into(break_glass_grants::table)
        .values((
            break_glass_grants::id.eq(Uuid::now_v7()),
            break_glass_grants::target_firm_id.eq(firm.into_uuid()),
            break_glass_grants::requested_by.eq(operator_id),
            break_glass_grants::reason.eq(reason),
            break_glass_grants::minutes.eq(minutes),
        ))
        .returning(Grant::as_returning())
        .get_result(conn)
        .await?)
}

async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Grant, DomainError> {
    break_glass_grants::table
        .find(id)
        .select(Grant::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("break-glass grant"))
}

/// A second operator approves; the clock starts now.
pub async fn approve(conn: &mut AsyncPgConnection, id: Uuid, approver: Uuid) -> Result<Grant, DomainError> {
    let grant = lock(conn, id).await?;
    if grant.requested_by == approver {
        return Err(DomainError::Forbidden("a grant must be approved by a different operator".into()));
    }
    if grant.state(Utc::now()) != GrantState::Pending {
        return Err(DomainError::Conflict("only a pending grant can be approved".into()));
    }
    let now = Utc::now();
    Ok(diesel::update(break_glass_grants::table.find(id))
        .set((
            break_glass_grants::approved_by.eq(approver),
            break_glass_grants::approved_at.eq(now),
            break_glass_grants::expires_at.eq(now + Duration::minutes(i64::from(grant.minutes))),
        ))
        .returning(Grant::as_returning())
        .get_result(conn)
        .await?)
}

/// The requester takes up an approved grant; returns it with its first use recorded.
pub async fn activate(conn: &mut AsyncPgConnection, id: Uuid, operator_id: Uuid) -> Result<Grant, DomainError> {
    let grant = lock(conn, id).await?;
    if grant.requested_by != operator_id {
        return Err(DomainError::Forbidden("only the operator who asked may use a grant".into()));
    }
    match grant.state(Utc::now()) {
        GrantState::Active => {}
        GrantState::Pending => return Err(DomainError::Conflict("the grant is not approved yet".into())),
        GrantState::Expired => return Err(DomainError::Conflict("the grant has expired".into())),
        GrantState::Revoked => return Err(DomainError::Conflict("the grant was revoked".into())),
    }
    Ok(diesel::update(break_glass_grants::table.find(id))
        .set(break_glass_grants::first_activated_at.eq(grant.first_activated_at.unwrap_or_else(Utc::now)))
        .returning(Grant::as_returning())
        .get_result(conn)
        .await?)
}

pub enum Revoker {
    Operator(Uuid),
    /// An owner of the grant's firm.
    Owner {
        firm: FirmId,
        user_id: Uuid,
    },
}

pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid, by: Revoker) -> Result<Grant, DomainError> {
    let grant = lock(conn, id).await?;
    if let Revoker::Owner { firm, .. } = by {
        if grant.target_firm_id != firm.into_uuid() {
            return Err(DomainError::NotFound("break-glass grant"));
        }
    }
    if matches!(grant.state(Utc::now()), GrantState::Revoked | GrantState::Expired) {
        return Err(DomainError::Conflict("the grant has already ended".into()));
    }
    let (operator, user) = match by {
        Revoker::Operator(id) => (Some(id), None),
        Revoker::Owner { user_id, .. } => (None, Some(user_id)),
    };
    Ok(diesel::update(break_glass_grants::table.find(id))
        .set((
            break_glass_grants::revoked_at.eq(Utc::now()),
            break_glass_grants::revoked_by_operator.eq(operator),
            break_glass_grants::revoked_by_user.eq(user),
        ))
        .returning(Grant::as_returning())
        .get_result(conn)
        .await?)
}

/// Grants, newest first; on one firm when `firm` is given.
pub async fn list(conn: &mut AsyncPgConnection, firm: Option<FirmId>, limit: i64) -> Result<Vec<Grant>, DomainError> {
    let mut query = break_glass_grants::table.select(Grant::as_select()).into_boxed();
    if let Some(firm) = firm {
        query = query.filter(break_glass_grants::target_firm_id.eq(firm.into_uuid()));
    }
    Ok(query
        .order((break_glass_grants::created_at.desc(), break_glass_grants::id.desc()))
        .limit(limit)
        .load(conn)
        .await?)
}

/// The grant behind a break-glass token, if it still admits this operator to this firm.
/// Checked on every request, so a revoked or expired grant stops working at once.
pub async fn admits(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    operator_id: Uuid,
    firm: FirmId,
) -> Result<Option<Grant>, DomainError> {
    let grant: Option<Grant> =
        break_glass_grants::table.find(id).select(Grant::as_select()).first(conn).await.optional()?;
    Ok(grant.filter(|g| {
        g.requested_by == operator_id
            && g.target_firm_id == firm.into_uuid()
            && g.state(Utc::now()) == GrantState::Active
    }))
}
