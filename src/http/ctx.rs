//! [`FirmCtx`]: the one way a handler reaches a firm's data.
//!
//! The extractor carries the application state, the signed-in member (or break-glass
//! operator) and the request's metadata. [`FirmCtx::tx`] checks the permission and then
//! opens the firm's transaction through [`Db::firm_tx_retried`](crate::db::Db::firm_tx_retried),
//! so the tenant door stays one function, visible by name; [`FirmCtx::audited`] does the
//! same and records the audit event in that transaction, so a change and its audit commit
//! together or not at all. A transaction that loses a serialization race or a deadlock runs
//! again, which is why the work is an `AsyncFnMut`: it borrows its inputs (or clones them)
//! rather than moving them.
//!
//! Surfaces with no signed-in member (the public booking pages, a calendar feed or socket
//! ticket's token, Twilio's and Stripe's webhooks, invitation acceptance, password reset)
//! learn their firm from what they were given and open `Db::firm_tx` themselves.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};
use serde_json::Value;
use uuid::Uuid;

use super::AppState;
use super::auth::{
    Actor, FirmAuth, audit_event, check_session, firm_bearer, read_only_refusal, self_service, session_ended, writes,
};
use super::error::ApiError;
use crate::db::{Connection, Planning, SessionKey};
use crate::domain::audit::{self, NewAuditEvent, Outcome};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, FirmId, RequestMeta};

/// A signed-in request inside one firm.
pub struct FirmCtx {
    state: web::Data<AppState>,
    firm: FirmId,
    actor: Actor,
    meta: RequestMeta,
    /// The actor's standing (role) as the database gave it during this request. A member's
    /// is asked for at the first need: by [`FirmCtx::tx`] in the round trip that opens the
    /// transaction, or on its own by [`FirmCtx::auth`] for work outside one.
    standing: OnceCell<FirmAuth>,
    /// A write other than to the member's own sign-in or read position: refused to a
    /// `readonly` standing.
    writes_beyond_self: bool,
}

impl FromRequest for FirmCtx {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let meta = RequestMeta::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let bearer = firm_bearer(&req).await?;
            let standing = OnceCell::new();
            if let Some(checked) = bearer.checked {
                let _ = standing.set(checked);
            }
            let writes_beyond_self = writes(req.method()) && !self_service(req.path());
            Ok(FirmCtx {
                state: bearer.state,
                firm: bearer.firm,
                actor: bearer.actor,
                meta: meta.await?,
                standing,
                writes_beyond_self,
            })
        })
    }
}

impl FirmCtx {
    pub fn firm(&self) -> FirmId {
        self.firm
    }

    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The member behind the request (user, session); break-glass access has no personal
    /// settings.
    pub fn member(&self) -> Result<(Uuid, Uuid), ApiError> {
        match self.actor {
            Actor::Member { user_id, session_id } => Ok((user_id, session_id)),
            Actor::BreakGlass { .. } => Err(ApiError::Forbidden("not available under break-glass access".into())),
        }
    }

    /// The application state, once the actor's standing has been checked in this request:
    /// whatever is done with it (the database, the bus, secrets) is done for someone still
    /// signed in, whatever the handler did or did not ask before.
    pub async fn state(&self) -> Result<&AppState, ApiError> {
        self.auth().await?;
        Ok(&self.state)
    }

    /// The cluster this node belongs to (names the firm's supervisor to tell of a change).
    pub fn cluster_name(&self) -> &str {
        &self.state.settings().cluster.name
    }

    /// The region phone numbers without a country code are read in.
    pub fn phone_region(&self) -> &str {
        &self.state.settings().crm.default_phone_region
    }

    /// Where links the hub hands out (calendar feeds) point.
    pub fn link_base_url(&self) -> &str {
        &self.state.settings().mail.link_base_url
    }

    pub fn meta(&self) -> &RequestMeta {
        &self.meta
    }

    /// The actor's standing, asking the database if this request has not yet: a session
    /// ended or a membership switched off is a 401 here.
    pub async fn auth(&self) -> Result<&FirmAuth, ApiError> {
        if let Some(auth) = self.standing.get() {
            self.admissible(auth)?;
            return Ok(auth);
        }
        let (user_id, session_id) = self.member()?;
        let checked = check_session(&self.state, self.firm, user_id, session_id).await?;
        self.admissible(&checked)?;
        Ok(self.standing.get_or_init(|| checked))
    }

    /// Whether the standing may go on with this request at all: a `readonly` member (one
    /// made so after the token was issued included) writes only to its own sign-in and
    /// read position.
    fn admissible(&self, auth: &FirmAuth) -> Result<(), ApiError> {
        if self.writes_beyond_self && auth.role == Role::Readonly { Err(read_only_refusal()) } else { Ok(()) }
    }

    /// Whether `auth` may do what needs `permission` in this request.
    fn permits(&self, auth: &FirmAuth, permission: Permission) -> Result<(), ApiError> {
        self.admissible(auth)?;
        auth.require(permission)
    }

    /// The standing inside work run by [`FirmCtx::tx`] or [`FirmCtx::audited`], which
    /// established it before the work began.
    pub fn checked(&self) -> Result<&FirmAuth, DomainError> {
        self.standing.get().ok_or_else(|| DomainError::Internal("standing read before it was checked".into()))
    }

    /// The one authorisation check, for work that opens no transaction of its own.
    pub async fn require(&self, permission: Permission) -> Result<(), ApiError> {
        let auth = self.auth().await?;
        self.permits(auth, permission)
    }

    /// An audit event by whoever is signed in, for handlers that shape their own (a
    /// refusal recorded as such, several events in one change).
    pub fn event(&self, action: &str, outcome: Outcome) -> NewAuditEvent {
        audit_event(self.firm, self.actor, action, outcome, &self.meta)
    }

    /// Attempts a queued job (a webhook delivery) gets, from the configuration.
    pub fn job_attempts(&self) -> i32 {
        self.state.job_attempts()
    }

    /// Checks `permission`, then runs `work` in the firm's transaction (retried whole when
    /// it loses a serialization race or a deadlock).
    pub async fn tx<R>(
        &self,
        permission: Permission,
        work: impl AsyncFnMut(&mut Connection, FirmId) -> Result<R, DomainError>,
    ) -> Result<R, ApiError> {
        self.run(permission, Planning::Auto, work).await
    }

    /// [`FirmCtx::tx`] for reading a page of a list: its statements get one generic plan
    /// per connection rather than a fresh plan per request (see [`Planning::Generic`]).
    pub async fn page<R>(
        &self,
        permission: Permission,
        work: impl AsyncFnMut(&mut Connection, FirmId) -> Result<R, DomainError>,
    ) -> Result<R, ApiError> {
        self.run(permission, Planning::Generic, work).await
    }

    async fn run<R>(
        &self,
        permission: Permission,
        planning: Planning,
        mut work: impl AsyncFnMut(&mut Connection, FirmId) -> Result<R, DomainError>,
    ) -> Result<R, ApiError> {
        let firm = self.firm;
        let db = self.state.db();
        if let Some(auth) = self.standing.get() {
            self.permits(auth, permission)?;
            return Ok(db.firm_tx_planned(firm, planning, async |conn| work(conn, firm).await).await?);
        }
        // A member not yet checked in this request: the check rides with BEGIN.
        let (user_id, session_id) = self.member()?;
        let admit = |role: Option<&str>| {
            if let Some(role) = role.and_then(|r| r.parse::<Role>().ok()) {
                let _ = self.standing.set(FirmAuth { firm, role, actor: self.actor });
            }
            self.standing.get().is_some_and(|auth| self.permits(auth, permission).is_ok())
        };
        let session = SessionKey { user_id, session_id };
        match db.firm_tx_for_session(firm, session, planning, admit, async |conn| work(conn, firm).await).await? {
            Some(value) => Ok(value),
            None => Err(match self.standing.get() {
                None => session_ended(),
                Some(auth) => self.permits(auth, permission).err().unwrap_or_else(|| auth.refusal()),
            }),
        }
    }

    /// As [`FirmCtx::tx`], recording `audit` (as a success, by the signed-in actor) in the
    /// same transaction once `work` has succeeded.
    pub async fn audited<R>(
        &self,
        permission: Permission,
        audit: Audit<R>,
        mut work: impl AsyncFnMut(&mut Connection, FirmId) -> Result<R, DomainError>,
    ) -> Result<R, ApiError> {
        let template = self.event(audit.action, Outcome::Success);
        self.tx(permission, async |conn, firm| {
            let value = work(conn, firm).await?;
            audit::record(conn, &audit.event(template.clone(), &value)).await?;
            Ok(value)
        })
        .await
    }
}

/// What [`FirmCtx::audited`] records: the action, and the target and metadata either
/// known before the work or read from what it returns (a created record's id).
pub struct Audit<R> {
    action: &'static str,
    target: Option<(&'static str, Known<R, Uuid>)>,
    metadata: Option<Known<R, Value>>,
}

enum Known<R, T> {
    Before(T),
    After(fn(&R) -> T),
}

impl<R, T: Clone> Known<R, T> {
    fn value(&self, result: &R) -> T {
        match self {
            Known::Before(value) => value.clone(),
            Known::After(read) => read(result),
        }
    }
}

impl<R> Audit<R> {
    pub fn new(action: &'static str) -> Self {
        Audit { action, target: None, metadata: None }
    }

    /// The record acted on, known from the request (a path id).
    pub fn target(mut self, kind: &'static str, id: Uuid) -> Self {
        self.target = Some((kind, Known::Before(id)));
        self
    }

    /// The record acted on, read from the result (a created record).
    pub fn target_of(mut self, kind: &'static str, id: fn(&R) -> Uuid) -> Self {
        self.target = Some((kind, Known::After(id)));
        self
    }

    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(Known::Before(metadata));
        self
    }

    pub fn metadata_of(mut self, metadata: fn(&R) -> Value) -> Self {
        self.metadata = Some(Known::After(metadata));
        self
    }

    fn event(&self, mut event: NewAuditEvent, result: &R) -> NewAuditEvent {
        if let Some((kind, id)) = &self.target {
            event = event.with_target(kind, id.value(result));
        }
        if let Some(metadata) = &self.metadata {
            event = event.with_metadata(metadata.value(result));
        }
        event
    }
}
