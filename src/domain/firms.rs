//! The firm directory (a platform table). Only identity and status live here; a firm's
//! content lives in tenant tables.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use serde::Serialize;
use uuid::Uuid;

use super::{DomainError, FieldErrors, FirmId};
use crate::db::schema::firms;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = firms)]
pub struct Firm {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Firm {
    pub fn firm_id(&self) -> FirmId {
        FirmId(self.id)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = firms)]
pub struct NewFirm {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

impl NewFirm {
    /// Validates and normalises a new firm; the id is chosen here so the caller can open
    /// the firm's own transaction before the row exists.
    pub fn parse(slug: &str, name: &str) -> Result<Self, DomainError> {
        let slug = slug.trim().to_ascii_lowercase();
        let name = name.trim().to_owned();
        let mut fields = FieldErrors::new();
        if let Err(problem) = validate_slug(&slug) {
            fields.insert("slug".into(), problem.into());
        }
        if name.is_empty() || name.chars().count() > 200 {
            fields.insert("name".into(), "must be 1 to 200 characters".into());
        }
        DomainError::check(fields)?;
        Ok(Self { id: Uuid::now_v7(), slug, name })
    }

    pub fn firm_id(&self) -> FirmId {
        FirmId(self.id)
    }
}

/// Slugs appear in URLs and log-in forms: lowercase letters, digits and inner hyphens.
pub fn validate_slug(slug: &str) -> Result<(), &'static str> {
    let bytes = slug.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    if bytes.is_empty() || bytes.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !bytes.iter().all(allowed) {
        return Err("may contain only lowercase letters, digits and hyphens");
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err("must not start or end with a hyphen");
    }
    Ok(())
}

pub async fn insert(conn: &mut AsyncPgConnection, new: &NewFirm) -> Result<Firm, DomainError> {
    diesel::insert_into(firms::table)
        .values(new)
        .returning(Firm::as_returning())
        .get_result(conn)
        .await
        .map_err(DomainError::conflict_on_unique(format!("a firm with slug `{}` already exists", new.slug)))
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Firm, DomainError> {
    firms::table
        .find(firm.into_uuid())
        .select(Firm::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("firm"))
}

pub async fn find_by_slug(conn: &mut AsyncPgConnection, slug: &str) -> Result<Option<Firm>, DomainError> {
    Ok(firms::table
        .filter(firms::slug.eq(slug.trim().to_ascii_lowercase()))
        .select(Firm::as_select())
        .first(conn)
        .await
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(validate_slug("acme-consulting").is_ok());
        assert!(validate_slug("a").is_ok());
        assert!(validate_slug("-acme").is_err());
        assert!(validate_slug("acme-").is_err());
        assert!(validate_slug("Acme").is_err());
        assert!(validate_slug("ac me").is_err());
        assert!(validate_slug("").is_err());
        assert!(validate_slug(&"a".repeat(64)).is_err());
    }

    #[test]
    fn new_firm_reports_every_bad_field() {
        let Err(DomainError::Validation { fields, .. }) = NewFirm::parse("-x", "  ") else {
            panic!("expected a validation error");
        };
        assert!(fields.contains_key("slug"));
        assert!(fields.contains_key("name"));
    }
}

/// Which firms hold rows a platform-wide pass (sealing secrets) must visit: `only`, or
/// those a SECURITY DEFINER lister names (`cp_firms_with_*`), since tenant tables read
/// empty without a firm.
#[derive(Debug, Clone, Copy)]
pub enum FirmLister {
    Mailboxes,
    SmsSettings,
    WebhookEndpoints,
}

pub async fn holding(db: &crate::db::Db, lister: FirmLister, only: Option<FirmId>) -> Result<Vec<FirmId>, DomainError> {
    #[derive(QueryableByName)]
    struct FirmRow {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        firm_id: Uuid,
    }
    if let Some(firm) = only {
        return Ok(vec![firm]);
    }
    let query = match lister {
        FirmLister::Mailboxes => "SELECT cp_firms_with_mailboxes() AS firm_id",
        FirmLister::SmsSettings => "SELECT cp_firms_with_sms_settings() AS firm_id",
        FirmLister::WebhookEndpoints => "SELECT cp_firms_with_webhook_endpoints() AS firm_id",
    };
    db.platform_tx(|conn| {
        async move {
            let rows = diesel::sql_query(query).load::<FirmRow>(conn).await?;
            Ok::<_, DomainError>(rows.into_iter().map(|r| FirmId(r.firm_id)).collect())
        }
        .scope_boxed()
    })
    .await
}
