//! The mailboxes a firm connects: where to read (IMAP) and send (SMTP), with passwords
//! sealed at rest and never returned, and where each watched folder has been read to.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DomainError, FieldErrors};
use crate::db::schema::{email_settings, mailbox_folders, mailboxes};
use crate::net::{is_internal, is_loopback_host};
use crate::tenant::FirmId;

pub const MAX_FOLDERS: usize = 20;

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain, then STARTTLS before anything else is said (IMAP 143, SMTP 587).
    Starttls,
    /// No encryption: refused for anything but a loopback host.
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Tls => "tls",
            TlsMode::Starttls => "starttls",
            TlsMode::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "tls" => Some(TlsMode::Tls),
            "starttls" => Some(TlsMode::Starttls),
            "none" => Some(TlsMode::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mailboxes)]
pub struct StoredMailbox {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub imap_host: String,
    pub imap_port: i32,
    pub imap_tls: String,
    pub imap_username: String,
    pub imap_password_sealed: String,
    pub folders: Vec<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password_sealed: Option<String>,
    pub poll_interval_secs: i32,
    pub mark_seen: bool,
    pub enabled: bool,
    pub auto_acknowledge: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub state_changed_at: DateTime<Utc>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A mailbox as the API shows it: no password, only whether one is set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Mailbox {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub imap: ImapView,
    pub smtp: Option<SmtpView>,
    pub folders: Vec<String>,
    pub poll_interval_secs: i32,
    pub mark_seen: bool,
    pub enabled: bool,
    pub auto_acknowledge: Option<String>,
    /// `starting`, `connecting`, `catching_up`, `idle`, `polling`, `failing` (with
    /// `state_reason`) or `disabled`.
    #[schema(value_type = super::value_sets::MailboxState)]
    pub state: String,
    pub state_reason: Option<String>,
    pub state_changed_at: DateTime<Utc>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImapView {
    pub host: String,
    pub port: i32,
    pub tls: TlsMode,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SmtpView {
    pub host: String,
    pub port: i32,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password_set: bool,
}

impl From<StoredMailbox> for Mailbox {
    fn from(m: StoredMailbox) -> Self {
        let smtp = match (m.smtp_host, m.smtp_port, m.smtp_tls.as_deref().and_then(TlsMode::parse)) {
            (Some(host), Some(port), Some(tls)) => Some(SmtpView {
                host,
                port,
                tls,
                username: m.smtp_username,
                password_set: m.smtp_password_sealed.is_some(),
            }),
            _ => None,
        };
        Mailbox {
            id: m.id,
            name: m.name,
            address: m.address,
            imap: ImapView {
                host: m.imap_host,
                port: m.imap_port,
                tls: TlsMode::parse(&m.imap_tls).unwrap_or(TlsMode::Tls),
                username: m.imap_username,
            },
            smtp,
            folders: m.folders,
            poll_interval_secs: m.poll_interval_secs,
            mark_seen: m.mark_seen,
            enabled: m.enabled,
            auto_acknowledge: m.auto_acknowledge,
            state: m.state,
            state_reason: m.state_reason,
            state_changed_at: m.state_changed_at,
            last_sync_at: m.last_sync_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Where a mailbox's password is sealed for: it opens only in this firm's mailbox row.
pub fn password_context(firm: FirmId, mailbox: Uuid, protocol: &str) -> String {
    format!("mailbox:{}:{mailbox}:{protocol}", firm.into_uuid())
}

/// A mailbox's settings, checked. Passwords arrive sealed by the caller (None: keep).
#[derive(Debug, Clone, Default)]
pub struct MailboxInput {
    pub name: String,
    pub address: String,
    pub imap_host: String,
    pub imap_port: i32,
    pub imap_tls: Option<TlsMode>,
    pub imap_username: String,
    pub imap_password_sealed: Option<String>,
    pub folders: Vec<String>,
    pub smtp: Option<SmtpInput>,
    pub poll_interval_secs: i32,
    pub mark_seen: bool,
    pub enabled: bool,
    pub auto_acknowledge: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SmtpInput {
    pub host: String,
    pub port: i32,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password_sealed: Option<String>,
}

fn check_host(field: &str, host: &str, tls: Option<TlsMode>, allowed: &[String], errors: &mut FieldErrors) {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host.len() > 253
        || !bare.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        errors.insert(field.into(), "must be a host name or IP address".into());
        return;
    }
    let allow_listed = allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(bare));
    if let Ok(ip) = bare.parse::<std::net::IpAddr>()
        && is_internal(ip)
        && !allow_listed
    {
        errors.insert(field.into(), format!("{ip} is an internal address"));
        return;
    }
    if bare.eq_ignore_ascii_case("localhost") && !allow_listed {
        errors.insert(field.into(), "localhost is an internal address".into());
        return;
    }
    if tls == Some(TlsMode::None) && !is_loopback_host(host) {
        errors.insert(field.into(), "a connection without TLS is allowed only to a loopback host".into());
    }
}

fn is_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.') | domain.eq_ignore_ascii_case("localhost")
        && address.len() <= 254
        && !address.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"'))
}

/// Checks a mailbox's settings. `allowed` is the configured allow-list of internal hosts.
pub fn check(input: &mut MailboxInput, creating: bool, allowed: &[String]) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    input.name = input.name.trim().to_owned();
    if input.name.is_empty() || input.name.chars().count() > 100 {
        errors.insert("name".into(), "must be 1 to 100 characters".into());
    }
    input.address = input.address.trim().to_lowercase();
    if !is_address(&input.address) {
        errors.insert("address".into(), "must be an email address".into());
    }
    input.imap_host = input.imap_host.trim().to_owned();
    check_host("imap.host", &input.imap_host, input.imap_tls, allowed, &mut errors);
    if !(1..=65535).contains(&input.imap_port) {
        errors.insert("imap.port".into(), "must be 1 to 65535".into());
    }
    if input.imap_tls.is_none() {
        errors.insert("imap.tls".into(), "must be tls, starttls or none".into());
    }
    if input.imap_username.is_empty()
        || input.imap_username.len() > 254
        || input.imap_username.contains(['\r', '\n', '\0'])
    {
        errors.insert("imap.username".into(), "must be 1 to 254 characters on one line".into());
    }
    if creating && input.imap_password_sealed.is_none() {
        errors.insert("imap.password".into(), "is required".into());
    }
    let mut seen = std::collections::HashSet::new();
    input.folders.retain(|f| seen.insert(f.clone()));
    if input.folders.is_empty() || input.folders.len() > MAX_FOLDERS {
        errors.insert("folders".into(), format!("must name 1 to {MAX_FOLDERS} folders"));
    }
    if input.folders.iter().any(|f| f.is_empty() || f.len() > 500 || f.chars().any(|c| c.is_control())) {
        errors.insert("folders".into(), "each folder name must be 1 to 500 characters on one line".into());
    }
    if let Some(smtp) = &mut input.smtp {
        smtp.host = smtp.host.trim().to_owned();
        check_host("smtp.host", &smtp.host, Some(smtp.tls), allowed, &mut errors);
        if !(1..=65535).contains(&smtp.port) {
            errors.insert("smtp.port".into(), "must be 1 to 65535".into());
        }
        if smtp.username.as_deref().is_some_and(|u| u.len() > 254 || u.contains(['\r', '\n', '\0'])) {
            errors.insert("smtp.username".into(), "must be at most 254 characters on one line".into());
        }
    }
    if !(5..=3600).contains(&input.poll_interval_secs) {
        errors.insert("poll_interval_secs".into(), "must be 5 to 3600".into());
    }
    if let Some(text) = &input.auto_acknowledge
        && (text.trim().is_empty() || text.chars().count() > 5000)
    {
        errors.insert("auto_acknowledge".into(), "must be 1 to 5000 characters, or null for none".into());
    }
    DomainError::check(errors)
}

pub async fn list(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<Mailbox>, DomainError> {
    let rows = mailboxes::table
        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
        .order((mailboxes::created_at, mailboxes::id))
        .select(StoredMailbox::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(Mailbox::from).collect())
}

pub async fn find(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<StoredMailbox, DomainError> {
    mailboxes::table
        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
        .filter(mailboxes::id.eq(id))
        .select(StoredMailbox::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("mailbox"))
}

/// The mailboxes the hub should be watching, for the firm's supervisor.
pub async fn enabled_ids(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<Uuid>, DomainError> {
    Ok(mailboxes::table
        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
        .filter(mailboxes::enabled.eq(true))
        .order(mailboxes::id)
        .select(mailboxes::id)
        .load(conn)
        .await?)
}

/// The firm's mailbox addresses (their own mail coming back is a loop).
pub async fn addresses(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<Vec<String>, DomainError> {
    Ok(mailboxes::table.filter(mailboxes::firm_id.eq(firm.into_uuid())).select(mailboxes::address).load(conn).await?)
}

fn unique_address(err: diesel::result::Error) -> DomainError {
    match err {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            DomainError::invalid_field("address", "the firm has a mailbox with this address already")
        }
        other => other.into(),
    }
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: MailboxInput,
) -> Result<Mailbox, DomainError> {
    let (Some(tls), Some(password)) = (input.imap_tls, input.imap_password_sealed.clone()) else {
        return Err(DomainError::invalid_field("imap", "tls and password are required"));
    };
    let smtp = input.smtp.as_ref();
    let row = diesel::insert_into(mailboxes::table)
        .values((
            mailboxes::firm_id.eq(firm.into_uuid()),
            mailboxes::id.eq(id),
            mailboxes::name.eq(&input.name),
            mailboxes::address.eq(&input.address),
            mailboxes::imap_host.eq(&input.imap_host),
            mailboxes::imap_port.eq(input.imap_port),
            mailboxes::imap_tls.eq(tls.as_str()),
            mailboxes::imap_username.eq(&input.imap_username),
            mailboxes::imap_password_sealed.eq(password),
            mailboxes::folders.eq(&input.folders),
            mailboxes::smtp_host.eq(smtp.map(|s| s.host.clone())),
            mailboxes::smtp_port.eq(smtp.map(|s| s.port)),
            mailboxes::smtp_tls.eq(smtp.map(|s| s.tls.as_str())),
            mailboxes::smtp_username.eq(smtp.and_then(|s| s.username.clone())),
            mailboxes::smtp_password_sealed.eq(smtp.and_then(|s| s.password_sealed.clone())),
            mailboxes::poll_interval_secs.eq(input.poll_interval_secs),
            mailboxes::mark_seen.eq(input.mark_seen),
            mailboxes::enabled.eq(input.enabled),
            mailboxes::auto_acknowledge.eq(&input.auto_acknowledge),
            mailboxes::state.eq(if input.enabled { "starting" } else { "disabled" }),
        ))
        .returning(StoredMailbox::as_returning())
        .get_result(conn)
        .await
        .map_err(unique_address)?;
    Ok(row.into())
}

/// Replaces a mailbox's settings; a password left out keeps the stored one (and an SMTP
/// block without a password keeps the stored SMTP password).
pub async fn update(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    input: MailboxInput,
) -> Result<Mailbox, DomainError> {
    let current = find(conn, firm, id).await?;
    let tls = input.imap_tls.map_or(current.imap_tls.clone(), |t| t.as_str().to_owned());
    let password = input.imap_password_sealed.clone().unwrap_or(current.imap_password_sealed);
    let smtp = input.smtp.as_ref();
    let smtp_password = smtp.and_then(|s| s.password_sealed.clone().or(current.smtp_password_sealed.clone()));
    let state = match (input.enabled, current.enabled) {
        (false, _) => "disabled",
        (true, false) => "starting",
        (true, true) => current.state.as_str(),
    };
    let row = diesel::update(mailboxes::table)
        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
        .filter(mailboxes::id.eq(id))
        .set((
            mailboxes::name.eq(&input.name),
            mailboxes::address.eq(&input.address),
            mailboxes::imap_host.eq(&input.imap_host),
            mailboxes::imap_port.eq(input.imap_port),
            mailboxes::imap_tls.eq(tls),
            mailboxes::imap_username.eq(&input.imap_username),
            mailboxes::imap_password_sealed.eq(password),
            mailboxes::folders.eq(&input.folders),
            mailboxes::smtp_host.eq(smtp.map(|s| s.host.clone())),
            mailboxes::smtp_port.eq(smtp.map(|s| s.port)),
            mailboxes::smtp_tls.eq(smtp.map(|s| s.tls.as_str())),
            mailboxes::smtp_username.eq(smtp.and_then(|s| s.username.clone())),
            mailboxes::smtp_password_sealed.eq(smtp_password),
            mailboxes::poll_interval_secs.eq(input.poll_interval_secs),
            mailboxes::mark_seen.eq(input.mark_seen),
            mailboxes::enabled.eq(input.enabled),
            mailboxes::auto_acknowledge.eq(&input.auto_acknowledge),
            mailboxes::state.eq(state),
            mailboxes::updated_at.eq(Utc::now()),
        ))
        .returning(StoredMailbox::as_returning())
        .get_result(conn)
        .await
        .map_err(unique_address)?;
    Ok(row.into())
}

/// Removes a mailbox. Its imported mail stays in the conversations it joined.
pub async fn delete(conn: &mut AsyncPgConnection, firm: FirmId, id: Uuid) -> Result<Mailbox, DomainError> {
    let row = diesel::delete(mailboxes::table)
        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
        .filter(mailboxes::id.eq(id))
        .returning(StoredMailbox::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(DomainError::NotFound("mailbox"))?;
    Ok(row.into())
}

/// Records what the watcher is doing. True when the state changed (worth telling sockets).
pub async fn set_state(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    id: Uuid,
    state: &str,
    reason: Option<&str>,
    synced: bool,
) -> Result<bool, DomainError> {
    let now = Utc::now();
    let reason: Option<String> = reason.map(|r| r.chars().filter(|c| !c.is_control()).take(300).collect());
    let changed = diesel::update(mailboxes::table)
        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
        .filter(mailboxes::id.eq(id))
        .filter(mailboxes::state.ne(state).or(mailboxes::state_reason.is_distinct_from(reason.clone())))
        .set((mailboxes::state.eq(state), mailboxes::state_reason.eq(&reason), mailboxes::state_changed_at.eq(now)))
        .execute(conn)
        .await?;
    if synced {
        diesel::update(mailboxes::table)
            .filter(mailboxes::firm_id.eq(firm.into_uuid()))
            .filter(mailboxes::id.eq(id))
            .set(mailboxes::last_sync_at.eq(now))
            .execute(conn)
            .await?;
    }
    Ok(changed > 0)
}

/// Where a folder has been imported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct FolderPosition {
    pub uidvalidity: i64,
    pub last_uid: i64,
}

pub async fn folder_position(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    mailbox: Uuid,
    folder: &str,
) -> Result<Option<FolderPosition>, DomainError> {
    Ok(mailbox_folders::table
        .filter(mailbox_folders::firm_id.eq(firm.into_uuid()))
        .filter(mailbox_folders::mailbox_id.eq(mailbox))
        .filter(mailbox_folders::folder.eq(folder))
        .select((mailbox_folders::uidvalidity, mailbox_folders::last_uid))
        .first::<(i64, i64)>(conn)
        .await
        .optional()?
        .map(|(uidvalidity, last_uid)| FolderPosition { uidvalidity, last_uid }))
}

/// Moves a folder's position forward (never back) in the caller's transaction; a new
/// UIDVALIDITY starts it again from `last_uid`.
pub async fn advance_folder(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    mailbox: Uuid,
    folder: &str,
    position: FolderPosition,
) -> Result<(), DomainError> {
    crate::db::cached_query(
        "INSERT INTO mailbox_folders (firm_id, mailbox_id, folder, uidvalidity, last_uid, synced_at) \
         VALUES ($1, $2, $3, $4, $5, now()) \
         ON CONFLICT (firm_id, mailbox_id, folder) DO UPDATE \
            SET last_uid = CASE WHEN mailbox_folders.uidvalidity = excluded.uidvalidity \
                                THEN GREATEST(mailbox_folders.last_uid, excluded.last_uid) \
                                ELSE excluded.last_uid END, \
                uidvalidity = excluded.uidvalidity, synced_at = now()",
    )
    .bind::<diesel::sql_types::Uuid, _>(firm.into_uuid())
    .bind::<diesel::sql_types::Uuid, _>(mailbox)
    .bind::<diesel::sql_types::Text, _>(folder)
    .bind::<diesel::sql_types::BigInt, _>(position.uidvalidity)
    .bind::<diesel::sql_types::BigInt, _>(position.last_uid)
    .execute(conn)
    .await?;
    Ok(())
}

/// Seals every stored mailbox password (IMAP and SMTP) again under the active key, for a
/// key rotation: all firms, or one. Returns how many passwords were resealed.
pub async fn reseal_all(
    db: &crate::db::Db,
    secret_box: &crate::secret_box::SecretBox,
    only: Option<FirmId>,
) -> Result<usize, DomainError> {
    use scoped_futures::ScopedFutureExt;
    use secrecy::ExposeSecret;
    let firms = super::firms::holding(db, super::firms::FirmLister::Mailboxes, only).await?;
    let mut resealed = 0;
    for firm in firms {
        resealed += db
            .firm_tx(firm, |conn| {
                async move {
                    let mut changed = 0;
                    for mailbox in mailboxes::table
                        .filter(mailboxes::firm_id.eq(firm.into_uuid()))
                        .select(StoredMailbox::as_select())
                        .load(conn)
                        .await?
                    {
                        let reseal = |sealed: &str, protocol: &str| -> Result<Option<String>, DomainError> {
                            if !secret_box.needs_reseal(sealed) {
                                return Ok(None);
                            }
                            let context = password_context(firm, mailbox.id, protocol);
                            let failed = |e: crate::secret_box::SecretBoxError| {
                                DomainError::Internal(format!("firm {} mailbox {}: {e}", firm.into_uuid(), mailbox.id))
                            };
                            let plain = secret_box.open(sealed, &context).map_err(failed)?;
                            Ok(Some(secret_box.seal(plain.expose_secret(), &context).map_err(failed)?))
                        };
                        let imap = reseal(&mailbox.imap_password_sealed, "imap")?;
                        let smtp = match &mailbox.smtp_password_sealed {
                            Some(sealed) => reseal(sealed, "smtp")?,
                            None => None,
                        };
                        changed += usize::from(imap.is_some()) + usize::from(smtp.is_some());
                        if imap.is_some() || smtp.is_some() {
                            diesel::update(mailboxes::table)
                                .filter(mailboxes::firm_id.eq(firm.into_uuid()))
                                .filter(mailboxes::id.eq(mailbox.id))
                                .set((
                                    mailboxes::imap_password_sealed.eq(imap.unwrap_or(mailbox.imap_password_sealed)),
                                    mailboxes::smtp_password_sealed.eq(smtp.or(mailbox.smtp_password_sealed)),
                                ))
                                .execute(conn)
                                .await?;
                        }
                    }
                    Ok::<_, DomainError>(changed)
                }
                .scope_boxed()
            })
            .await?;
    }
    Ok(resealed)
}

/// What a reply to a closed conversation does.
pub const CLOSED_REPLIES: [&str; 2] = ["reopen", "new_conversation"];

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = email_settings)]
pub struct EmailSettings {
    /// `reopen` or `new_conversation`: what a reply to a closed conversation does.
    #[schema(value_type = super::value_sets::ClosedReply)]
    pub closed_reply: String,
    /// Threading by subject and participants looks this far back.
    pub subject_window_hours: i32,
    /// At most one automatic message (acknowledgement) to one address per period.
    pub auto_reply_period_hours: i32,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings { closed_reply: "reopen".into(), subject_window_hours: 168, auto_reply_period_hours: 24 }
    }
}

pub async fn settings(conn: &mut AsyncPgConnection, firm: FirmId) -> Result<EmailSettings, DomainError> {
    Ok(email_settings::table
        .filter(email_settings::firm_id.eq(firm.into_uuid()))
        .select(EmailSettings::as_select())
        .first(conn)
        .await
        .optional()?
        .unwrap_or_default())
}

pub async fn save_settings(
    conn: &mut AsyncPgConnection,
    firm: FirmId,
    input: EmailSettings,
) -> Result<EmailSettings, DomainError> {
    let mut errors = FieldErrors::default();
    if !CLOSED_REPLIES.contains(&input.closed_reply.as_str()) {
        errors.insert("closed_reply".into(), "must be reopen or new_conversation".into());
    }
    if !(0..=8760).contains(&input.subject_window_hours) {
        errors.insert("subject_window_hours".into(), "must be 0 to 8760".into());
    }
    if !(1..=8760).contains(&input.auto_reply_period_hours) {
        errors.insert("auto_reply_period_hours".into(), "must be 1 to 8760".into());
    }
    DomainError::check(errors)?;
    let values = (
        email_settings::firm_id.eq(firm.into_uuid()),
        email_settings::closed_reply.eq(&input.closed_reply),
        email_settings::subject_window_hours.eq(input.subject_window_hours),
        email_settings::auto_reply_period_hours.eq(input.auto_reply_period_hours),
        email_settings::updated_at.eq(Utc::now()),
    );
    Ok(diesel::insert_into(email_settings::table)
        .values(values)
        .on_conflict(email_settings::firm_id)
        .do_update()
        .set((
            email_settings::closed_reply.eq(&input.closed_reply),
            email_settings::subject_window_hours.eq(input.subject_window_hours),
            email_settings::auto_reply_period_hours.eq(input.auto_reply_period_hours),
            email_settings::updated_at.eq(Utc::now()),
        ))
        .returning(EmailSettings::as_returning())
        .get_result(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MailboxInput {
        MailboxInput {
            name: "Support".into(),
            address: "Support@Firm.Example".into(),
            imap_host: "imap.firm.example".into(),
            imap_port: 993,
            imap_tls: Some(TlsMode::Tls),
            imap_username: "support".into(),
            imap_password_sealed: Some("sealed".into()),
            folders: vec!["INBOX".into()],
            poll_interval_secs: 60,
            enabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn internal_hosts_and_plaintext_to_remote_hosts_are_refused() {
        let mut ok = input();
        assert!(check(&mut ok, true, &[]).is_ok());
        assert_eq!(ok.address, "support@firm.example");
        for (host, tls) in [
            ("127.0.0.1", TlsMode::Tls),
            ("10.0.0.5", TlsMode::Tls),
            ("169.254.169.254", TlsMode::Tls),
            ("localhost", TlsMode::Tls),
        ] {
            let mut bad = MailboxInput { imap_host: host.into(), imap_tls: Some(tls), ..input() };
            assert!(check(&mut bad, true, &[]).is_err(), "{host}");
        }
        let mut plain_remote = MailboxInput { imap_tls: Some(TlsMode::None), ..input() };
        assert!(check(&mut plain_remote, true, &[]).is_err());
        let mut plain_local = MailboxInput { imap_host: "127.0.0.1".into(), imap_tls: Some(TlsMode::None), ..input() };
        assert!(check(&mut plain_local, true, &["127.0.0.1".into()]).is_ok());
        let mut no_password = MailboxInput { imap_password_sealed: None, ..input() };
        assert!(check(&mut no_password, true, &[]).is_err());
        assert!(check(&mut input(), false, &[]).is_ok());
    }
}
