//! Authentication and authorisation for handlers: bearer access tokens (HS256 JWT, the
//! algorithm pinned), the `FirmAuth` and `OperatorAuth` extractors, and `require`.
//!
//! A token's signature and expiry are only the first check. Every request also asks the
//! database whether the member is still active and the session still open (or whether a
//! break-glass grant still stands), so deactivation, log-out and revocation take effect at
//! the next request rather than at the token's expiry.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use scoped_futures::ScopedFutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::request_id::RequestId;
use crate::domain::audit::{self, ActorType, NewAuditEvent, Outcome};
use crate::domain::memberships::Role;
use crate::domain::permissions::Permission;
use crate::domain::{DomainError, FirmId, RequestMeta, break_glass, operators};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A member of a firm, from a log-in.
    User,
    /// A platform operator: platform endpoints only, never firm content.
    Operator,
    /// An operator inside one firm under an approved break-glass grant.
    BreakGlass,
}

/// Access-token claims. `firm_id`, `role` and `sid` (the session) are set for members;
/// `firm_id`, `role` and `bg` (the grant) for break-glass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub typ: TokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firm_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bg: Option<Uuid>,
    pub iat: i64,
    pub exp: i64,
}

/// Seconds past `exp` a token is still accepted (clock skew between nodes).
const EXPIRY_LEEWAY_SECS: i64 = 5;

/// Verified tokens remembered at most; the memory is emptied when full (a few MB at most).
const VERIFIED_TOKENS_KEPT: usize = 4096;

/// Signs and verifies access tokens with the configured secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The claims of tokens that verified, by the token's SHA-256. Verifying a token again
    /// (base64, the HMAC, two JSON parses) had cost a short request several percent of the
    /// server's CPU. A token's bytes cannot verify differently later (the key is fixed for
    /// the process), but time passes: the expiry is checked on every use. Keyed by digest,
    /// so how long a lookup takes says nothing about a remembered token's bytes, and only
    /// tokens that verified are kept, so a caller cannot fill it with its own.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Claims>>,
}

impl TokenKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        // Only HS256 is accepted: a token naming any other algorithm, `none` included, fails.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = EXPIRY_LEEWAY_SECS.unsigned_abs();
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            verified: std::sync::Mutex::default(),
        }
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(ApiError::internal)
    }

    /// The claims of a well-signed token that has not expired.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        {
            let mut remembered = self.remembered();
            if let Some(claims) = remembered.get(&digest) {
                if claims.exp.saturating_add(EXPIRY_LEEWAY_SECS) >= Utc::now().timestamp() {
                    return Some(claims.clone());
                }
                remembered.remove(&digest);
                return None;
            }
        }
        // Decoded outside the lock: other requests' lookups need not wait for it.
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?.claims;
        let mut remembered = self.remembered();
        if remembered.len() >= VERIFIED_TOKENS_KEPT {
            remembered.clear();
        }
        remembered.insert(digest, claims.clone());
        Some(claims)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], Claims>> {
        // A panic while holding the lock leaves the map as it was between statements.
        self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Claims for a new token of `typ` for `sub`, valid `ttl_secs` from now.
pub fn claims(sub: Uuid, typ: TokenType, ttl_secs: i64) -> Claims {
    let now = Utc::now().timestamp();
    Claims { sub, typ, firm_id: None, role: None, sid: None, bg: None, iat: now, exp: now + ttl_secs }
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))
}

/// The app state and the claims of a well-signed, unexpired bearer token.
fn verified_claims(req: &HttpRequest) -> Result<(web::Data<AppState>, Claims), ApiError> {
    let state = state(req)?;
    let claims = state.tokens().verify(bearer(req)?).ok_or_else(invalid_token)?;
    Ok((state, claims))
}

fn invalid_token() -> ApiError {
    ApiError::unauthorized("the access token is invalid or has expired")
}

/// The client's address: the peer, or — when configured to trust proxies in front — the
/// `X-Forwarded-For` entry `server.trusted_proxies` places from the right, which our own
/// nearest proxy wrote. Entries further left are the client's own claims and never used;
/// a header with fewer entries than proxies falls back to the peer. Logs, audit and
/// throttling all use this one answer.
pub fn client_ip(req: &HttpRequest, server: &crate::config::ServerSettings) -> Option<String> {
    let forwarded = server.trust_forwarded_for.then(|| forwarded_client(req, server.trusted_proxies.max(1))).flatten();
    forwarded.or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
}

fn forwarded_client(req: &HttpRequest, trusted_proxies: usize) -> Option<String> {
    // Split as bytes: a client may put anything in its own (left-hand) entries, and that
    // must not make the whole header unreadable.
    let mut hops: Vec<&[u8]> = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        hops.extend(value.as_bytes().split(|b| *b == b','));
    }
    let index = hops.len().checked_sub(trusted_proxies)?;
    let hop = std::str::from_utf8(hops.get(index)?).ok()?.trim();
    hop.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

impl FromRequest for RequestMeta {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let ip = match req.app_data::<web::Data<AppState>>() {
            Some(state) => client_ip(req, &state.settings().server),
            None => req.peer_addr().map(|a| a.ip().to_string()),
        };
        std::future::ready(Ok(RequestMeta { request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()), ip }))
    }
}

/// Who acts inside a firm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Member { user_id: Uuid, session_id: Uuid },
    BreakGlass { operator_id: Uuid, grant_id: Uuid },
}

/// An authenticated request inside one firm: a member, or an operator under break-glass.
#[derive(Debug, Clone)]
pub struct FirmAuth {
    pub firm: FirmId,
    pub role: Role,
    pub actor: Actor,
}

impl FirmAuth {
    /// The one authorisation check handlers make.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.can(permission) { Ok(()) } else { Err(self.refusal()) }
    }

    pub(super) fn refusal(&self) -> ApiError {
        ApiError::Forbidden(format!("your role ({}) does not allow this", self.role))
    }

    /// The member behind the request; break-glass access has no personal settings.
    pub fn member(&self) -> Result<(Uuid, Uuid), ApiError> {
        match self.actor {
            Actor::Member { user_id, session_id } => Ok((user_id, session_id)),
            Actor::BreakGlass { .. } => Err(ApiError::Forbidden("not available under break-glass access".into())),
        }
    }
}

/// An audit event in `firm` by `actor`.
pub(super) fn audit_event(
    firm: FirmId,
    actor: Actor,
    action: &str,
    outcome: Outcome,
    meta: &RequestMeta,
) -> NewAuditEvent {
    let (actor_type, actor_id) = match actor {
        Actor::Member { user_id, .. } => (ActorType::User, user_id),
        Actor::BreakGlass { operator_id, .. } => (ActorType::Operator, operator_id),
    };
    NewAuditEvent::new(firm, actor_type, Some(actor_id), action, outcome).with_request(meta)
}

/// Writes a read-only login may still make: to its own session and sign-in (log out, a
/// socket ticket, its second factor, its password) and its own read position.
pub(super) fn self_service(path: &str) -> bool {
    const OWN: [&str; 6] = [
        "/api/v1/auth/logout",
        "/api/v1/realtime/ticket",
        "/api/v1/auth/mfa/enroll",
        "/api/v1/auth/mfa/confirm",
        "/api/v1/auth/mfa/disable",
        "/api/v1/auth/password",
    ];
    if OWN.contains(&path.trim_end_matches('/')) {
        return true;
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["", "api", "v1", "conversations", id, "read"] if id.parse::<Uuid>().is_ok())
}

/// The read-only guard, ahead of every handler: a break-glass token, or a member whose
/// token names the `readonly` role, is refused on every method but GET and HEAD (a
/// read-only member's own session and read position excepted), whatever the handler would
/// have checked. It asks nothing of the database: a member whose role has become
/// `readonly` since the token was issued is refused the same way by [`FirmCtx`]
/// (super::ctx::FirmCtx) when it reads the member's standing, which every handler does
/// before it touches data. A request without a valid token passes on to fail (or not)
/// where authentication is asked.
pub async fn read_only_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if !writes(req.method()) {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    }
    let refused = match verified_claims(req.request()) {
        Ok((_, claims)) if claims.typ == TokenType::BreakGlass => {
            if let (Some(firm), Some(grant_id)) = (claims.firm_id, claims.bg) {
                // Audited as a denied request under the grant, like any other.
                req.extensions_mut().insert(BreakGlassUse { firm: FirmId(firm), operator_id: claims.sub, grant_id });
            }
            Some(ApiError::Forbidden("break-glass access is read-only".into()))
        }
        Ok((_, claims)) if claims.typ == TokenType::User && claims.role == Some(Role::Readonly) => {
            (!self_service(req.path())).then(read_only_refusal)
        }
        _ => None,
    };
    match refused {
        Some(refusal) => {
            let response = actix_web::ResponseError::error_response(&refusal);
            Ok(req.into_response(response))
        }
        None => next.call(req).await.map(ServiceResponse::map_into_boxed_body),
    }
}

/// Whether a request's method can change anything.
pub(super) fn writes(method: &actix_web::http::Method) -> bool {
    !matches!(*method, actix_web::http::Method::GET | actix_web::http::Method::HEAD)
}

pub(super) fn read_only_refusal() -> ApiError {
    ApiError::Forbidden("your role (readonly) allows reading only".into())
}

/// Marks a request made under break-glass, so its outcome is audited in the firm.
#[derive(Debug, Clone, Copy)]
struct BreakGlassUse {
    firm: FirmId,
    operator_id: Uuid,
    grant_id: Uuid,
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// What a firm request's token establishes: the firm and who acts, and — for break-glass,
/// whose grant is checked here — the standing. A member's standing is asked by [`FirmCtx`]
/// (super::ctx::FirmCtx) at its first need, in the round trip that opens the request's
/// transaction.
pub(super) struct FirmBearer {
    pub state: web::Data<AppState>,
    pub firm: FirmId,
    pub actor: Actor,
    pub checked: Option<FirmAuth>,
}

pub(super) async fn firm_bearer(req: &HttpRequest) -> Result<FirmBearer, ApiError> {
    let (state, claims) = verified_claims(req)?;
    if claims.typ == TokenType::Operator {
        // Operators see no firm content without a grant; the firm's resources do not
        // exist for them.
        return Err(ApiError::NotFound("no such resource".into()));
    }
    let firm = claims.firm_id.map(FirmId).ok_or_else(invalid_token)?;
    tracing::Span::current().record("firm_id", tracing::field::display(firm));
    match claims.typ {
        TokenType::User => {
            let session_id = claims.sid.ok_or_else(invalid_token)?;
            let user_id = claims.sub;
            Ok(FirmBearer { state, firm, actor: Actor::Member { user_id, session_id }, checked: None })
        }
        TokenType::BreakGlass => {
            let grant_id = claims.bg.ok_or_else(invalid_token)?;
            let operator_id = claims.sub;
            req.extensions_mut().insert(BreakGlassUse { firm, operator_id, grant_id });
            let admitted = state
                .db()
                .platform_tx(|conn| {
                    async move {
                        let grant = break_glass::admits(conn, grant_id, operator_id, firm).await?;
                        let operator = operators::find_active(conn, operator_id).await?;
                        // Signed out (or switched off) since the token was issued: over.
                        let current = operator.is_some_and(|o| Some(o.session_key) == claims.sid);
                        Ok::<_, DomainError>(grant.is_some() && current)
                    }
                    .scope_boxed()
                })
                .await?;
            if !admitted {
                return Err(ApiError::unauthorized("the break-glass grant has ended"));
            }
            let actor = Actor::BreakGlass { operator_id, grant_id };
            Ok(FirmBearer { state, firm, actor, checked: Some(FirmAuth { firm, role: Role::Readonly, actor }) })
        }
        TokenType::Operator => Err(ApiError::NotFound("no such resource".into())),
    }
}

/// A member's standing asked on a connection of its own, for work outside a transaction.
pub(super) async fn check_session(
    state: &AppState,
    firm: FirmId,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<FirmAuth, ApiError> {
    let role = state.db().session_role(firm, user_id, session_id).await?;
    let role = role.and_then(|r| r.parse::<Role>().ok()).ok_or_else(session_ended)?;
    Ok(FirmAuth { firm, role, actor: Actor::Member { user_id, session_id } })
}

pub(super) fn session_ended() -> ApiError {
    ApiError::unauthorized("the session has ended or the membership is inactive")
}

/// An authenticated platform operator (platform endpoints only).
#[derive(Debug, Clone, Copy)]
pub struct OperatorAuth {
    pub operator_id: Uuid,
    /// The session key the token was issued under (tokens issued on its behalf carry it).
    pub session_key: Uuid,
}

impl FromRequest for OperatorAuth {
    type Error = ApiError;
    type Future = LocalFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (state, claims) = verified_claims(&req)?;
            if claims.typ != TokenType::Operator {
                // The platform surface does not exist for firm members.
                return Err(ApiError::NotFound("no such resource".into()));
            }
            let operator_id = claims.sub;
            let active = state
                .db()
                .platform_tx(|conn| async move { operators::find_active(conn, operator_id).await }.scope_boxed())
                .await?;
            // Inactive, or signed out since this token was issued.
            let session_key = active.map(|o| o.session_key).filter(|key| Some(*key) == claims.sid);
            let Some(session_key) = session_key else {
                return Err(ApiError::unauthorized("the operator is signed out or inactive"));
            };
            Ok(OperatorAuth { operator_id, session_key })
        })
    }
}

/// Writes every request made under break-glass (method, path, status) to the firm's audit
/// log before the response leaves. If that write fails, the response is withheld (503):
/// access under break-glass is never unaudited.
pub async fn audit_break_glass_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let response = next.call(req).await?.map_into_boxed_body();
    let Some(usage) = response.request().extensions().get::<BreakGlassUse>().copied() else {
        return Ok(response);
    };
    let state = state(response.request())?;
    let status = response.status().as_u16();
    let meta = RequestMeta {
        request_id: response.request().extensions().get::<RequestId>().map(|r| r.0.clone()),
        ip: client_ip(response.request(), &state.settings().server),
    };
    let outcome = if response.status().is_success() { Outcome::Success } else { Outcome::Denied };
    let event =
        NewAuditEvent::new(usage.firm, ActorType::Operator, Some(usage.operator_id), "break_glass.request", outcome)
            .with_target("break_glass_grant", usage.grant_id)
            .with_request(&meta)
            .with_metadata(serde_json::json!({
                "method": response.request().method().as_str(),
                "path": response.request().path(),
                "status": status,
            }));
    let firm = usage.firm;
    let written = state.db().firm_tx(firm, |conn| async move { audit::record(conn, &event).await }.scope_boxed()).await;
    match written {
        Ok(()) => Ok(response),
        Err(err) => {
            tracing::error!(error = %err, "break-glass request could not be audited; response withheld");
            let (request, _) = response.into_parts();
            let unavailable = ApiError::unavailable("the request could not be audited");
            Ok(ServiceResponse::new(request, actix_web::ResponseError::error_response(&unavailable)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&SecretString::from("a test secret of at least thirty-two bytes".to_owned()))
    }

    fn member_claims(exp: i64) -> Claims {
        let mut claims = claims(Uuid::now_v7(), TokenType::User, 0);
        claims.exp = exp;
        claims
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let keys = keys();
        // Inside the leeway now, past it after two seconds.
        let token = keys.issue(&member_claims(Utc::now().timestamp() - EXPIRY_LEEWAY_SECS + 1)).expect("issued");
        assert!(keys.verify(&token).is_some(), "verifies while inside the leeway");
        assert!(keys.verify(&token).is_some(), "and again, remembered");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(keys.verify(&token).is_none(), "a remembered token is refused once expired");
        assert!(keys.remembered().is_empty(), "and forgotten");
    }

    #[test]
    fn only_tokens_that_verify_are_remembered() {
        let keys = keys();
        let token = keys.issue(&member_claims(Utc::now().timestamp() + 60)).expect("issued");
        let other = TokenKeys::new(&SecretString::from("another secret, also thirty-two bytes long".to_owned()));
        assert!(other.verify(&token).is_none(), "another key's token is refused");
        assert!(other.remembered().is_empty());
        let (body, signature) = token.rsplit_once('.').expect("three parts");
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{body}.{flipped}{}", &signature[1..]);
        assert!(keys.verify(&forged).is_none(), "an altered signature is refused");
        assert!(keys.remembered().is_empty());
        let verified = keys.verify(&token).expect("verifies");
        assert_eq!(keys.verify(&token).map(|c| c.sub), Some(verified.sub));
        assert_eq!(keys.remembered().len(), 1);
    }

    #[test]
    fn remembered_tokens_are_bounded() {
        let keys = keys();
        let exp = Utc::now().timestamp() + 60;
        for _ in 0..=VERIFIED_TOKENS_KEPT {
            let token = keys.issue(&member_claims(exp)).expect("issued");
            assert!(keys.verify(&token).is_some());
        }
        assert!(keys.remembered().len() <= VERIFIED_TOKENS_KEPT);
    }
}
