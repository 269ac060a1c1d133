//! Creating firms and adding people to them: the CLI's `create-firm`, `create-user` and
//! `demo`, and later the API's member management, go through here.

use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use super::audit::{self, ActorType, NewAuditEvent, Outcome};
use super::firms::{self, Firm, NewFirm};
use super::memberships::{self, Membership, Role};
use super::users::{self, NewUser, User};
use super::{DomainError, FirmId};
use crate::db::Db;

/// Creates a firm and records it in the firm's own audit log, in one transaction.
pub async fn create_firm(db: &Db, slug: &str, name: &str) -> Result<Firm, DomainError> {
    let new = NewFirm::parse(slug, name)?;
    let firm_id = new.firm_id();
    db.firm_tx(firm_id, |conn| {
        async move {
            let firm = firms::insert(conn, &new).await?;
            let event = NewAuditEvent::new(firm_id, ActorType::System, None, "firm.created", Outcome::Success)
                .with_target("firm", firm.id)
                .with_metadata(serde_json::json!({ "slug": firm.slug }));
            audit::record(conn, &event).await?;
            Ok(firm)
        }
        .scope_boxed()
    })
    .await
}

pub async fn find_firm(db: &Db, slug: &str) -> Result<Firm, DomainError> {
    let slug = slug.to_owned();
    db.platform_tx(|conn| async move { firms::find_by_slug(conn, &slug).await }.scope_boxed())
        .await?
        .ok_or(DomainError::NotFound("firm"))
}

pub async fn find_user(db: &Db, email: &str) -> Result<Option<User>, DomainError> {
    let email = email.to_owned();
    db.platform_tx(|conn| async move { users::find_by_email(conn, &email).await }.scope_boxed()).await
}

/// Who is joining a firm: someone who already has a login, or a new identity.
pub enum Joiner {
    Existing(Uuid),
    New(NewUser),
}

/// Adds a member (creating the login when new) and audits it, in the firm's transaction.
pub async fn add_member(db: &Db, firm: FirmId, joiner: Joiner, role: Role) -> Result<Membership, DomainError> {
    db.firm_tx(firm, |conn| {
        async move {
            let user_id = match &joiner {
                Joiner::Existing(id) => *id,
                Joiner::New(new_user) => users::insert(conn, new_user).await?.id,
            };
            let membership = memberships::add(conn, firm, user_id, role, None).await?;
            let event = NewAuditEvent::new(firm, ActorType::System, None, "member.added", Outcome::Success)
                .with_target("user", user_id)
                .with_metadata(serde_json::json!({ "role": role.as_str() }));
            audit::record(conn, &event).await?;
            Ok(membership)
        }
        .scope_boxed()
    })
    .await
}
