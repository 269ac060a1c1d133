//! Platform operators (created by the CLI only) and their audit log. Operators see firm
//! metadata; content only through a break-glass grant.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::audit::Outcome;
use super::users::{hash_password, normalize_email, validate_password};
use super::{DomainError, FieldErrors, FirmId, RequestMeta};
use crate::db::schema::{firms, operators, platform_audit_events};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = operators)]
pub struct Operator {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub mfa_secret: Option<String>,
    #[serde(skip)]
    pub mfa_last_step: Option<i64>,
    /// Tokens carry it; signing out replaces it, ending them all.
    #[serde(skip)]
    pub session_key: Uuid,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = operators)]
pub struct NewOperator {
    id: Uuid,
    email: String,
    display_name: String,
    password_hash: String,
}

impl NewOperator {
    pub fn parse(email: &str, display_name: &str, password: &str) -> Result<Self, DomainError> {
        let mut fields = FieldErrors::new();
        let email = normalize_email(email).map_err(|p| fields.insert("email".into(), p.into())).ok();
        if let Err(problem) = validate_password(password) {
            fields.insert("password".into(), problem);
        }
        DomainError::check(fields)?;
        Ok(Self {
            id: Uuid::now_v7(),
            email: email.unwrap_or_default(),
            display_name: display_name.trim().to_owned(),
            password_hash: hash_password(password)?,
        })
    }
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewOperator) -> Result<Operator, DomainError> {
    diesel::insert_into(operators::table)
        .values(new)
        .returning(Operator::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique(format!("an operator with email `{}` already exists", new.email)))
}

/// Where an operator's TOTP secret is sealed.
pub fn totp_context(operator_id: Uuid) -> String {
    format!("operators.mfa:{operator_id}")
}

/// Gives the operator a new TOTP secret (replacing any earlier one); returns it with its
/// `otpauth://` URI, to be shown once.
pub async fn enroll_totp(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    issuer: &str,
    secrets: &crate::secret_box::SecretBox,
) -> Result<super::mfa::Enrollment, DomainError> {
    let operator = operators::table.find(id).select(Operator::as_select()).first(conn).await?;
    let enrollment = super::mfa::new_secret(issuer, &operator.email)?;
    let sealed = secrets.seal(&enrollment.secret, &totp_context(operator.id))?;
    diesel::update(operators::table.find(id))
        .set((operators::mfa_secret.eq(&sealed), operators::mfa_last_step.eq(None::<i64>)))
        .execute(conn)
        .await?;
    Ok(enrollment)
}

/// Accepts a TOTP code once (a later step than the last accepted; recorded conditionally).
pub async fn accept_totp(
    conn: &mut AsyncPgConnection,
    operator: &Operator,
    code: &str,
    secrets: &crate::secret_box::SecretBox,
) -> Result<bool, DomainError> {
    use secrecy::ExposeSecret;
    let Some(stored) = operator.mfa_secret.as_deref() else {
        return Ok(false);
    };
    let secret = secrets.open_stored(stored, &totp_context(operator.id))?;
    let Some(step) = super::mfa::current_step(secret.expose_secret(), code) else {
        return Ok(false);
    };
    let accepted = diesel::update(operators::table.find(operator.id))
        .filter(operators::mfa_last_step.is_null().or(operators::mfa_last_step.lt(step)))
        .set(operators::mfa_last_step.eq(step))
        .execute(conn)
        .await?;
    Ok(accepted == 1)
}

/// Ends every token the operator holds (platform and break-glass alike).
pub async fn sign_out(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), DomainError> {
    diesel::update(operators::table.find(id)).set(operators::session_key.eq(Uuid::now_v7())).execute(conn).await?;
    Ok(())
}

/// Switches an operator off (the CLI): their tokens stop working at the next request.
pub async fn deactivate(conn: &mut AsyncPgConnection, email: &str) -> Result<Operator, DomainError> {
    let email = normalize_email(email).map_err(|p| DomainError::invalid_field("email", p))?;
    diesel::update(operators::table.filter(operators::email.eq(email)))
        .set((operators::active.eq(false), operators::session_key.eq(Uuid::now_v7())))
        .returning(Operator::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("operator"))
}

pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> Result<Option<Operator>, DomainError> {
    let Ok(email) = normalize_email(email) else {
        return Ok(None);
    };
    Ok(operators::table
        .filter(operators::email.eq(email))
        .select(Operator::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn find_active(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<Operator>, DomainError> {
    Ok(operators::table
        .find(id)
        .filter(operators::active.eq(true))
        .select(Operator::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One row of the operators' firm list: metadata only.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FirmSummary {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    #[schema(value_type = super::value_sets::FirmStatus)]
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub member_count: i64,
}

#[derive(QueryableByName)]
struct MemberCount {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    firm_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    active_members: i64,
}

/// Every firm with its active member count, oldest first. Counts come from a
/// SECURITY DEFINER function that returns numbers, never rows.
pub async fn firm_summaries(conn: &mut AsyncPgConnection) -> Result<Vec<FirmSummary>, DomainError> {
    let firms: Vec<(Uuid, String, String, String, DateTime<Utc>)> = firms::table
        .select((firms::id, firms::slug, firms::name, firms::status, firms::created_at))
        .order((firms::created_at.asc(), firms::id.asc()))
        .load(conn)
        .await?;
    let counts: std::collections::HashMap<Uuid, i64> =
        crate::db::cached_query("SELECT firm_id, active_members FROM cp_firm_member_counts()")
            .load::<MemberCount>(conn)
            .await?
            .into_iter()
            .map(|c| (c.firm_id, c.active_members))
            .collect();
    Ok(firms
        .into_iter()
        .map(|(id, slug, name, status, created_at)| FirmSummary {
            member_count: counts.get(&id).copied().unwrap_or(0),
            id,
            slug,
            name,
            status,
            created_at,
        })
        .collect())
}

/// An operator's action, for `platform_audit_events`. Metadata only.
pub struct PlatformEvent<'a> {
    pub operator_id: Option<Uuid>,
    pub action: &'a str,
    pub target_firm: Option<FirmId>,
    pub target: Option<(&'a str, String)>,
    pub result: Outcome,
    pub meta: &'a RequestMeta,
    pub metadata: serde_json::Value,
}

pub async fn record(conn: &mut AsyncPgConnection, event: PlatformEvent<'_>) -> Result<(), DomainError> {
    diesel::insert_into(platform_audit_events::table)
        .values((
            platform_audit_events::id.eq(Uuid::now_v7()),
            platform_audit_events::operator_id.eq(event.operator_id),
            platform_audit_events::action.eq(event.action),
            platform_audit_events::target_firm_id.eq(event.target_firm.map(FirmId::into_uuid)),
            platform_audit_events::target_type.eq(event.target.as_ref().map(|(kind, _)| *kind)),
            platform_audit_events::target_id.eq(event.target.as_ref().map(|(_, id)| id.clone())),
            platform_audit_events::result.eq(event.result.as_str()),
            platform_audit_events::request_id.eq(event.meta.request_id.clone()),
            platform_audit_events::ip.eq(event.meta.ip.clone()),
            platform_audit_events::metadata.eq(event.metadata),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
