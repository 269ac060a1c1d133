//! Email: the firm's mailboxes (owners and admins; passwords sealed and never returned), a
//! step-by-step connection test, email settings and rules with a dry run, and reading
//! stored emails, their parts and what triage kept out of the conversations.

use super::body::JsonObject;
use std::time::Duration;

use actix_web::{HttpResponse, http::header, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::ctx::{Audit, FirmCtx};
use super::envelope;
use super::error::{ApiError, ErrorBody};
use crate::domain::cluster;
use crate::domain::email::{self, Email, EmailWithParts, ThreadedBy};
use crate::domain::email_rules::{self, Actions, Condition, Rule, RuleInput, RuleOutcome};
use crate::domain::mailboxes::{self, EmailSettings, Mailbox, MailboxInput, SmtpInput, TlsMode};
use crate::domain::permissions::Permission;
use crate::ingest::email::imap::{self, Endpoint, Step};
use crate::ingest::email::{parse, triage};
use crate::outbound::guard::OutboundPolicy;
use crate::tenant::FirmId;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImapBody {
    pub host: String,
    /// Default 993 for `tls`, 143 otherwise.
    pub port: Option<i32>,
    pub tls: TlsMode,
    pub username: String,
    /// Required when creating; omitted on an update, the stored one stays. Sealed at rest.
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

/// The document's shape of a new mailbox's IMAP settings: `ImapBody` with the password
/// required (creation refuses a mailbox without one; an update may leave it out).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // never built: it describes what `ImapBody` accepts on creation
pub struct NewImapBody {
    host: String,
    /// Default 993 for `tls`, 143 otherwise.
    port: Option<i32>,
    tls: TlsMode,
    username: String,
    /// Sealed at rest.
    password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpBody {
    pub host: String,
    /// Default 465 for `tls`, 587 for `starttls`, 25 for `none`.
    pub port: Option<i32>,
    pub tls: TlsMode,
    pub username: Option<String>,
    /// Omitted on an update, the stored one stays. Sealed at rest.
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxBody {
    pub name: String,
    /// The address clients write to; replies go from it.
    pub address: String,
    #[schema(value_type = NewImapBody)]
    pub imap: ImapBody,
    /// Where replies go out; without it the mailbox only receives.
    pub smtp: Option<SmtpBody>,
    /// Default `["INBOX"]`.
    pub folders: Option<Vec<String>>,
    /// For servers without IDLE (default 60).
    pub poll_interval_secs: Option<i32>,
    /// Set `\Seen` on imported messages (default false: the hub changes nothing on the server).
    pub mark_seen: Option<bool>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Sent once per period to the sender of a message that starts a conversation.
    pub auto_acknowledge: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxPatch {
    pub name: Option<String>,
    pub address: Option<String>,
    pub imap: Option<ImapBody>,
    /// `null` removes the SMTP settings; absent keeps them.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<SmtpBody>)]
    pub smtp: Option<Option<SmtpBody>>,
    pub folders: Option<Vec<String>>,
    pub poll_interval_secs: Option<i32>,
    pub mark_seen: Option<bool>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub auto_acknowledge: Option<Option<String>>,
}

fn default_port(tls: TlsMode, smtp: bool) -> i32 {
    match (tls, smtp) {
        (TlsMode::Tls, false) => 993,
        (_, false) => 143,
        (TlsMode::Tls, true) => 465,
        (TlsMode::Starttls, true) => 587,
        (TlsMode::None, true) => 25,
    }
}

/// `kind` is `imap` or `smtp`: the password's field in the body (`imap.password`) and the
/// context it is sealed under.
fn seal(
    state: &AppState,
    password: Option<&SecretString>,
    kind: &str,
    context: &str,
) -> Result<Option<String>, ApiError> {
    match password {
        Some(p) if p.expose_secret().is_empty() || p.expose_secret().len() > 1000 => Err(ApiError::from(
            crate::domain::DomainError::invalid_field(&format!("{kind}.password"), "must be 1 to 1000 characters"),
        )),
        Some(p) => Ok(Some(
            state.secret_box()?.seal(p.expose_secret(), context).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?,
        )),
        None => Ok(None),
    }
}

fn smtp_input(state: &AppState, firm: FirmId, id: Uuid, body: SmtpBody) -> Result<SmtpInput, ApiError> {
    Ok(SmtpInput {
        port: body.port.unwrap_or(default_port(body.tls, true)),
        host: body.host,
        tls: body.tls,
        username: body.username.filter(|u| !u.is_empty()),
        password_sealed: seal(state, body.password.as_ref(), "smtp", &mailboxes::password_context(firm, id, "smtp"))?,
    })
}

/// A stored password is only ever sent to the server and user it was given for.
fn password_again(field: &str) -> ApiError {
    ApiError::from(crate::domain::DomainError::invalid_field(
        field,
        "is required again when the server, port, security or user changes",
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxList {
    pub data: Vec<Mailbox>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The firm's mailboxes with what each watcher is doing.
#[utoipa::path(
    get, path = "/api/v1/mailboxes", tag = "email", security(("bearer" = [])),
    responses(
        (status = 200, description = "Mailboxes (passwords are never returned)", body = MailboxList),
    )
)]
pub async fn list_mailboxes(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let list = ctx.tx(Permission::IntegrationsManage, async |conn, firm| mailboxes::list(conn, firm).await).await?;
    Ok(envelope::whole_list(list))
}

/// Connects a mailbox. Its watcher starts on the node that owns the firm.
#[utoipa::path(
    post, path = "/api/v1/mailboxes", tag = "email", security(("bearer" = [])),
    request_body = MailboxBody,
    responses(
        (status = 201, description = "Created", body = Mailbox),
        (status = 400, description = "Invalid field (an internal host, plaintext to a remote host, ...)", body = ErrorBody),
        (status = 503, description = "No secrets key configured on the server", body = ErrorBody),
    )
)]
pub async fn create_mailbox(ctx: FirmCtx, body: JsonObject<MailboxBody>) -> Result<HttpResponse, ApiError> {
    ctx.require(Permission::IntegrationsManage).await?;
    let (state, firm) = (ctx.state().await?, ctx.firm());
    let id = Uuid::now_v7();
    let body = body.into_inner();
    let mut input = MailboxInput {
        name: body.name,
        address: body.address,
        imap_port: body.imap.port.unwrap_or(default_port(body.imap.tls, false)),
        imap_host: body.imap.host,
        imap_tls: Some(body.imap.tls),
        imap_username: body.imap.username,
        imap_password_sealed: seal(
            state,
            body.imap.password.as_ref(),
            "imap",
            &mailboxes::password_context(firm, id, "imap"),
        )?,
        folders: body.folders.unwrap_or_else(|| vec!["INBOX".into()]),
        smtp: body.smtp.map(|s| smtp_input(state, firm, id, s)).transpose()?,
        poll_interval_secs: body.poll_interval_secs.unwrap_or(60),
        mark_seen: body.mark_seen.unwrap_or(false),
        enabled: body.enabled.unwrap_or(true),
        auto_acknowledge: body.auto_acknowledge,
    };
    mailboxes::check(&mut input, true, &state.settings().mail.allow_private_hosts)?;
    let audit = Audit::new("mailbox.created")
        .target("mailbox", id)
        .metadata(serde_json::json!({ "address": input.address, "imap_host": input.imap_host }));
    let cluster_name = &state.settings().cluster.name;
    let mailbox = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            let mailbox = mailboxes::create(conn, firm, id, input.clone()).await?;
            // The firm now has once-only work: a node of the cluster owns it from now on.
            cluster::require_owner(conn, cluster_name, firm).await?;
            cluster::request_refresh(conn, cluster_name, firm).await?;
            Ok(mailbox)
        })
        .await?;
    Ok(envelope::created(mailbox))
}

/// One mailbox.
#[utoipa::path(
    get, path = "/api/v1/mailboxes/{id}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses(
        (status = 200, description = "The mailbox", body = Mailbox),
        (status = 404, description = "No such mailbox in this firm", body = ErrorBody),
    )
)]
pub async fn get_mailbox(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let mailbox = ctx
        .tx(Permission::IntegrationsManage, async |conn, firm| mailboxes::find(conn, firm, id).await.map(Mailbox::from))
        .await?;
    Ok(envelope::ok(mailbox))
}

/// Changes a mailbox; fields left out stay. The watcher reconnects with the new settings.
#[utoipa::path(
    patch, path = "/api/v1/mailboxes/{id}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body = MailboxPatch,
    responses(
        (status = 200, description = "Changed", body = Mailbox),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such mailbox in this firm", body = ErrorBody),
        (status = 503, description = "No secrets key configured on the server", body = ErrorBody),
    )
)]
pub async fn update_mailbox(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<MailboxPatch>,
) -> Result<HttpResponse, ApiError> {
    let (state, firm, id) = (ctx.state().await?, ctx.firm(), path.into_inner());
    let patch = body.into_inner();
    let current =
        ctx.tx(Permission::IntegrationsManage, async |conn, firm| mailboxes::find(conn, firm, id).await).await?;
    let mut input = MailboxInput {
        name: patch.name.unwrap_or(current.name),
        address: patch.address.unwrap_or(current.address),
        imap_host: current.imap_host,
        imap_port: current.imap_port,
        imap_tls: TlsMode::parse(&current.imap_tls),
        imap_username: current.imap_username,
        imap_password_sealed: None,
        folders: patch.folders.unwrap_or(current.folders),
        smtp: match (&current.smtp_host, current.smtp_port, current.smtp_tls.as_deref().and_then(TlsMode::parse)) {
            (Some(host), Some(port), Some(tls)) => Some(SmtpInput {
                host: host.clone(),
                port,
                tls,
                username: current.smtp_username.clone(),
                password_sealed: None,
            }),
            _ => None,
        },
        poll_interval_secs: patch.poll_interval_secs.unwrap_or(current.poll_interval_secs),
        mark_seen: patch.mark_seen.unwrap_or(current.mark_seen),
        enabled: patch.enabled.unwrap_or(current.enabled),
        auto_acknowledge: patch.auto_acknowledge.unwrap_or(current.auto_acknowledge),
    };
    if let Some(imap) = &patch.imap {
        let port = imap.port.unwrap_or(default_port(imap.tls, false));
        let moved = imap.host.trim() != input.imap_host
            || port != input.imap_port
            || Some(imap.tls) != input.imap_tls
            || imap.username != input.imap_username;
        if moved && imap.password.is_none() {
            return Err(password_again("imap.password"));
        }
    }
    if let Some(Some(smtp)) = &patch.smtp {
        let port = smtp.port.unwrap_or(default_port(smtp.tls, true));
        let unchanged = input.smtp.as_ref().is_some_and(|current| {
            current.host == smtp.host.trim()
                && current.port == port
                && current.tls == smtp.tls
                && current.username == smtp.username.clone().filter(|u| !u.is_empty())
        });
        if !unchanged && smtp.password.is_none() && smtp.username.as_deref().is_some_and(|u| !u.is_empty()) {
            return Err(password_again("smtp.password"));
        }
    }
    if let Some(imap) = patch.imap {
        input.imap_port = imap.port.unwrap_or(default_port(imap.tls, false));
        input.imap_host = imap.host;
        input.imap_tls = Some(imap.tls);
        input.imap_username = imap.username;
        input.imap_password_sealed =
            seal(state, imap.password.as_ref(), "imap", &mailboxes::password_context(firm, id, "imap"))?;
    }
    if let Some(smtp) = patch.smtp {
        input.smtp = smtp.map(|s| smtp_input(state, firm, id, s)).transpose()?;
    }
    mailboxes::check(&mut input, false, &state.settings().mail.allow_private_hosts)?;
    let audit = Audit::new("mailbox.updated").target("mailbox", id).metadata(
        serde_json::json!({ "address": input.address, "password_changed": input.imap_password_sealed.is_some() }),
    );
    let cluster_name = &state.settings().cluster.name;
    let mailbox = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            let mailbox = mailboxes::update(conn, firm, id, input.clone()).await?;
            cluster::require_owner(conn, cluster_name, firm).await?;
            cluster::notify_children(conn, crate::actors::mailbox::MAILBOX_KIND, firm, &id.to_string()).await?;
            cluster::request_refresh(conn, cluster_name, firm).await?;
            Ok(mailbox)
        })
        .await?;
    Ok(envelope::ok(mailbox))
}

/// Disconnects and removes a mailbox. Mail already imported stays in its conversations.
#[utoipa::path(
    delete, path = "/api/v1/mailboxes/{id}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such mailbox in this firm", body = ErrorBody),
    )
)]
pub async fn delete_mailbox(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("mailbox.deleted").target("mailbox", id);
    let cluster_name = ctx.cluster_name();
    ctx.audited(Permission::IntegrationsManage, audit, async |conn, firm| {
        mailboxes::delete(conn, firm, id).await?;
        cluster::request_refresh(conn, cluster_name, firm).await?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxTest {
    pub ok: bool,
    /// The step that failed: `dns`, `tcp`, `tls`, `authentication`, `folder` or `protocol`.
    pub failed_step: Option<Step>,
    pub message: String,
    /// Folders checked, with their message counts, when every step passed.
    pub folders: Vec<FolderCheck>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FolderCheck {
    pub folder: String,
    pub messages: u32,
}

/// Tries the stored settings now and says which step failed: DNS, TCP, TLS,
/// authentication or a folder. Reads nothing and changes nothing on the server.
#[utoipa::path(
    post, path = "/api/v1/mailboxes/{id}/test", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses(
        (status = 200, description = "The outcome, passed or with the failed step", body = MailboxTest),
        (status = 404, description = "No such mailbox in this firm", body = ErrorBody),
        (status = 503, description = "The stored password cannot be opened on this server", body = ErrorBody),
    )
)]
pub async fn test_mailbox(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (state, firm, id) = (ctx.state().await?, ctx.firm(), path.into_inner());
    let stored =
        ctx.tx(Permission::IntegrationsManage, async |conn, firm| mailboxes::find(conn, firm, id).await).await?;
    let password = state
        .secret_box()?
        .open(&stored.imap_password_sealed, &mailboxes::password_context(firm, id, "imap"))
        .map_err(|err| {
            tracing::error!(error = %err, "a stored mailbox password does not open");
            ApiError::unavailable("the stored mailbox password cannot be opened on this server")
        })?;
    let endpoint = Endpoint {
        host: stored.imap_host.clone(),
        port: u16::try_from(stored.imap_port).unwrap_or(993),
        tls: TlsMode::parse(&stored.imap_tls).unwrap_or(TlsMode::Tls),
        username: stored.imap_username.clone(),
        password,
    };
    let settings = state.settings();
    let policy = OutboundPolicy::new(&settings.mail.allow_private_hosts);
    let timeout = Duration::from_secs(settings.mail.timeout_secs.max(1));
    let checks = async {
        let mut session = imap::connect(&endpoint, &policy, timeout).await?;
        let mut folders = Vec::new();
        for folder in &stored.folders {
            let status = imap::examine(&mut session, folder).await?;
            folders.push(FolderCheck { folder: folder.clone(), messages: status.exists });
        }
        let _ = session.logout().await;
        Ok::<_, imap::ImapFailure>(folders)
    };
    // Every step has its own timeout; this bounds a server that answers each one slowly.
    let outcome = tokio::time::timeout(timeout * 4, checks).await.unwrap_or_else(|_| {
        Err(imap::ImapFailure { step: Step::Protocol, message: "the server answered too slowly".into() })
    });
    let result = match outcome {
        Ok(folders) => MailboxTest { ok: true, failed_step: None, message: "connected".into(), folders },
        Err(failure) => {
            MailboxTest { ok: false, failed_step: Some(failure.step), message: failure.message, folders: Vec::new() }
        }
    };
    Ok(envelope::ok(result))
}

/// The firm's email settings.
#[utoipa::path(
    get, path = "/api/v1/email/settings", operation_id = "get_email_settings", tag = "email", security(("bearer" = [])),
    responses(
        (status = 200, description = "Settings (defaults until saved)", body = EmailSettings),
    )
)]
pub async fn get_settings(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let settings =
        ctx.tx(Permission::IntegrationsManage, async |conn, firm| mailboxes::settings(conn, firm).await).await?;
    Ok(envelope::ok(settings))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettingsBody {
    /// `reopen` (default) or `new_conversation`.
    #[schema(value_type = crate::domain::value_sets::ClosedReply)]
    pub closed_reply: String,
    pub subject_window_hours: i32,
    pub auto_reply_period_hours: i32,
}

/// Saves the firm's email settings.
#[utoipa::path(
    put, path = "/api/v1/email/settings", operation_id = "put_email_settings", tag = "email", security(("bearer" = [])),
    request_body = EmailSettingsBody,
    responses(
        (status = 200, description = "Saved", body = EmailSettings),
        (status = 400, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn put_settings(ctx: FirmCtx, body: JsonObject<EmailSettingsBody>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = EmailSettings {
        closed_reply: body.closed_reply,
        subject_window_hours: body.subject_window_hours,
        auto_reply_period_hours: body.auto_reply_period_hours,
    };
    let saved = ctx
        .audited(Permission::IntegrationsManage, Audit::new("email.settings_changed"), async |conn, firm| {
            mailboxes::save_settings(conn, firm, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(saved))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub data: Vec<Rule>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// The firm's email rules in the order they run.
#[utoipa::path(
    get, path = "/api/v1/email/rules", tag = "email", security(("bearer" = [])),
    responses(
        (status = 200, description = "Rules", body = RuleList),
    )
)]
pub async fn list_rules(ctx: FirmCtx) -> Result<HttpResponse, ApiError> {
    let rules = ctx.tx(Permission::IntegrationsManage, async |conn, firm| email_rules::list(conn, firm).await).await?;
    Ok(envelope::whole_list(rules))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    pub name: String,
    /// Lower runs first (default 100).
    pub position: Option<i32>,
    pub enabled: Option<bool>,
    /// All must hold.
    pub conditions: Vec<Condition>,
    pub actions: Actions,
    /// End the run after this rule when it matches.
    pub stop: Option<bool>,
}

impl From<RuleBody> for RuleInput {
    fn from(body: RuleBody) -> Self {
        RuleInput {
            position: body.position.unwrap_or(100),
            name: body.name,
            enabled: body.enabled.unwrap_or(true),
            conditions: body.conditions,
            actions: body.actions,
            stop: body.stop.unwrap_or(false),
        }
    }
}

/// Adds a rule.
#[utoipa::path(
    post, path = "/api/v1/email/rules", tag = "email", security(("bearer" = [])),
    request_body = RuleBody,
    responses(
        (status = 201, description = "Created", body = Rule),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "The firm has the most rules allowed", body = ErrorBody),
    )
)]
pub async fn create_rule(ctx: FirmCtx, body: JsonObject<RuleBody>) -> Result<HttpResponse, ApiError> {
    let input = RuleInput::from(body.into_inner());
    let audit = Audit::new("email.rule_created").target_of("email_rule", |r: &Rule| r.id);
    let rule = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            email_rules::create(conn, firm, input.clone()).await
        })
        .await?;
    Ok(envelope::created(rule))
}

/// Replaces a rule.
#[utoipa::path(
    put, path = "/api/v1/email/rules/{id}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Rule id")),
    request_body = RuleBody,
    responses(
        (status = 200, description = "Saved", body = Rule),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such rule in this firm", body = ErrorBody),
    )
)]
pub async fn update_rule(
    ctx: FirmCtx,
    path: web::Path<Uuid>,
    body: JsonObject<RuleBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, input) = (path.into_inner(), RuleInput::from(body.into_inner()));
    let audit = Audit::new("email.rule_updated").target("email_rule", id);
    let rule = ctx
        .audited(Permission::IntegrationsManage, audit, async |conn, firm| {
            email_rules::update(conn, firm, id, input.clone()).await
        })
        .await?;
    Ok(envelope::ok(rule))
}

/// Removes a rule.
#[utoipa::path(
    delete, path = "/api/v1/email/rules/{id}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Rule id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such rule in this firm", body = ErrorBody),
    )
)]
pub async fn delete_rule(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let audit = Audit::new("email.rule_deleted").target("email_rule", id);
    ctx.audited(Permission::IntegrationsManage, audit, async |conn, firm| email_rules::delete(conn, firm, id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    /// The raw message (RFC 5322 text, headers and body), at most 1 MiB.
    pub raw: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRun {
    /// `loop`, `bounce`, `automatic`, `ignored` (by a rule) or null: it would be filed.
    pub triage: Option<String>,
    pub triage_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub bounce: Option<serde_json::Value>,
    pub rules: RuleOutcome,
    /// The conversation it would join, and how it was found; null starts a new one.
    pub conversation_id: Option<Uuid>,
    pub threaded_by: Option<ThreadedBy>,
    pub from: Option<String>,
    pub subject: String,
    pub attachments: usize,
}

/// What a raw message would do if it arrived now: triage, the rules that match and what
/// they ask for, and the conversation it would join. Stores nothing.
#[utoipa::path(
    post, path = "/api/v1/email/rules/dry-run", tag = "email", security(("bearer" = [])),
    request_body = DryRunBody,
    responses(
        (status = 200, description = "What would happen", body = DryRun),
        (status = 400, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn dry_run(ctx: FirmCtx, body: JsonObject<DryRunBody>) -> Result<HttpResponse, ApiError> {
    // Parsing a megabyte of MIME is work: only for someone still entitled to it.
    ctx.require(Permission::IntegrationsManage).await?;
    let raw = body.into_inner().raw;
    if raw.trim().is_empty() || raw.len() > 1 << 20 {
        return Err(crate::domain::DomainError::invalid_field("raw", "must be a message of 1 byte to 1 MiB").into());
    }
    let parsed = parse::parse(raw.as_bytes());
    let outcome = ctx
        .tx(Permission::IntegrationsManage, async |conn, firm| {
            let own = mailboxes::addresses(conn, firm).await?;
            let ours = match &parsed.message_id {
                Some(id) => email::sent_by_hub(conn, firm, id).await?,
                None => false,
            };
            let triaged = triage::classify(&parsed, ours, &own);
            let rules = email_rules::evaluate(&email_rules::list(conn, firm).await?, &parsed);
            let email_settings = mailboxes::settings(conn, firm).await?;
            let thread = email::find_thread(conn, firm, &parsed, &email_settings).await?;
            let (triage, triage_reason) = match (&triaged, rules.ignore) {
                (Some(t), _) => (Some(t.kind().to_owned()), Some(t.reason())),
                (None, true) => (Some("ignored".to_owned()), Some(format!("rule: {}", rules.matched.join(", ")))),
                (None, false) => (None, None),
            };
            Ok(DryRun {
                triage,
                triage_reason,
                bounce: parsed.bounce.as_ref().map(crate::domain::to_json).transpose()?,
                rules,
                conversation_id: thread.as_ref().map(|t| t.0),
                threaded_by: thread.map(|t| t.2),
                from: parsed.from.as_ref().map(|f| f.address.clone()),
                subject: parsed.subject.clone(),
                attachments: parsed.parts.len(),
            })
        })
        .await?;
    Ok(envelope::ok(outcome))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TriageQuery {
    /// `automatic`, `bounce`, `loop` or `ignored`.
    #[param(value_type = Option<crate::domain::value_sets::TriageKind>)]
    pub kind: Option<String>,
    /// At most this many, newest first (default 50, at most 200).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailList {
    pub data: Vec<Email>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// What triage kept out of the conversations, newest first.
#[utoipa::path(
    get, path = "/api/v1/emails/triage", tag = "email", security(("bearer" = [])),
    params(TriageQuery),
    responses(
        (status = 200, description = "Triaged emails", body = EmailList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    )
)]
pub async fn list_triage(ctx: FirmCtx, query: web::Query<TriageQuery>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    if let Some(kind) = &query.kind
        && !email::TRIAGE_KINDS.contains(&kind.as_str())
    {
        return Err(
            crate::domain::DomainError::invalid_field("kind", "must be automatic, bounce, loop or ignored").into()
        );
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let list = ctx
        .page(Permission::ContentRead, async |conn, firm| {
            email::list_triaged(conn, firm, query.kind.as_deref(), limit).await
        })
        .await?;
    Ok(envelope::whole_list(list))
}

/// One email with its parts.
#[utoipa::path(
    get, path = "/api/v1/emails/{id}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Email id")),
    responses(
        (status = 200, description = "The email", body = EmailWithParts),
        (status = 404, description = "No such email in this firm", body = ErrorBody),
    )
)]
pub async fn get_email(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let email = ctx.tx(Permission::ContentRead, async |conn, firm| email::find_email(conn, firm, id).await).await?;
    Ok(envelope::ok(email))
}

/// A part's content, as stored (byte for byte what the message carried). Served as a
/// download unless it is an image, with the type the message gave it and no sniffing.
#[utoipa::path(
    get, path = "/api/v1/emails/{id}/parts/{position}", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Email id"), ("position" = i32, Path, description = "Part position")),
    responses(
        (status = 200, description = "The content", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such part", body = ErrorBody),
        (status = 409, description = "The part was over the size limit; only its metadata was kept", body = ErrorBody),
    )
)]
pub async fn get_part(ctx: FirmCtx, path: web::Path<(Uuid, i32)>) -> Result<HttpResponse, ApiError> {
    let (id, position) = path.into_inner();
    let (part, content) =
        ctx.tx(Permission::ContentRead, async |conn, firm| email::part_content(conn, firm, id, position).await).await?;
    let Some(content) = content else {
        return Err(ApiError::Conflict("the part was over the size limit; only its metadata was kept".into()));
    };
    let image = part.content_type.starts_with("image/") && part.content_type != "image/svg+xml";
    let filename: String = part
        .filename
        .unwrap_or_else(|| format!("part-{position}"))
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    let content_type = if part.content_type.contains(['\r', '\n']) || !part.content_type.contains('/') {
        "application/octet-stream".to_owned()
    } else {
        part.content_type
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("{}; filename=\"{filename}\"", if image { "inline" } else { "attachment" }),
        ))
        .body(content))
}

/// The emails of a conversation, oldest first (the whole text and HTML of each, its
/// addresses and delivery).
#[utoipa::path(
    get, path = "/api/v1/conversations/{id}/emails", tag = "email", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Emails", body = EmailList),
        (status = 404, description = "No such conversation in this firm", body = ErrorBody),
    )
)]
pub async fn conversation_emails(ctx: FirmCtx, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let conversation = path.into_inner();
    let list = ctx
        .tx(Permission::ContentRead, async |conn, firm| email::list_for_conversation(conn, firm, conversation).await)
        .await?;
    Ok(envelope::whole_list(list))
}
