//! One watcher per mailbox, owned: it runs only on the node holding the firm, and every
//! batch it imports commits only while that node's fencing token still holds, so two
//! nodes never both import from one mailbox.
//!
//! Each watched folder has its own IMAP session. A round connects, reads the folder's
//! UIDVALIDITY, imports every UID above the stored position in batches (the position moves
//! in the batch's transaction), then waits in IDLE (re-issued every `mail.idle_renew_secs`)
//! or, on a server without IDLE, polls. Any failure is recorded on the mailbox (`failing`
//! and which step) and the round starts again after a backoff; nothing is lost, since the
//! next round starts from the stored position.

use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{BoxFuture, join_all};
use scoped_futures::ScopedFutureExt;
use secrecy::SecretString;
use tracing::{info, warn};
use uuid::Uuid;

use super::LiveContext;
use super::child::{ChildContext, ChildHandle, ChildKey, ChildKind, Placement, StopChild, spawn_child};
use crate::bus::live;
use crate::domain::email::{self, ImportContext, Imported};
use crate::domain::mailboxes::{self, FolderPosition, StoredMailbox, TlsMode};
use diesel_async::AsyncConnection;

use crate::domain::{DomainError, cluster, email_rules};
use crate::ingest::email::imap::{self, Endpoint, ImapFailure, Step};
use crate::ingest::email::parse::{self, ParsedEmail};
use crate::outbound::guard::OutboundPolicy;
use crate::secret_box::SecretBox;
use crate::tenant::FirmId;

pub const MAILBOX_KIND: &str = "mailbox";
/// The most message bytes fetched at once per folder.
const FETCH_BYTES: u64 = 64 * 1024 * 1024;

pub struct MailboxKind;

impl ChildKind for MailboxKind {
    fn name(&self) -> &'static str {
        MAILBOX_KIND
    }

    fn placement(&self) -> Placement {
        Placement::Owned
    }

    fn discover(&self, live: LiveContext, firm: FirmId) -> BoxFuture<'static, anyhow::Result<Vec<ChildKey>>> {
        Box::pin(async move {
            let ids = live
                .db()
                .firm_tx(firm, |conn| async move { mailboxes::enabled_ids(conn, firm).await }.scope_boxed())
                .await?;
            Ok(ids.into_iter().map(|id| id.to_string()).collect())
        })
    }

    fn start(&self, ctx: ChildContext) -> Box<dyn ChildHandle> {
        let span = ctx.span();
        Box::new(spawn_child(MailboxWatcher { ctx, running: None }, span))
    }

    fn on_notice(&self, address: &(dyn std::any::Any + Send), _what: Option<&str>) {
        if let Some(watcher) = address.downcast_ref::<Addr<MailboxWatcher>>() {
            watcher.do_send(Reload);
        }
    }
}

/// The mailbox's settings changed: start its folder sessions again with them.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reload;

pub struct MailboxWatcher {
    ctx: ChildContext,
    running: Option<SpawnHandle>,
}

impl MailboxWatcher {
    fn run(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.running.take() {
            ctx.cancel_future(handle);
        }
        let Ok(mailbox) = self.ctx.key.parse::<Uuid>() else {
            self.ctx.fail("the mailbox key is not an id");
            ctx.stop();
            return;
        };
        let watch =
            Watch { live: self.ctx.live.clone(), firm: self.ctx.firm, mailbox, fencing_token: self.ctx.fencing_token };
        let handle = ctx.spawn(watch.run().into_actor(self).map(|ended, watcher, ctx| match ended {
            Ended::Gone => {
                watcher.ctx.finish();
                ctx.stop();
            }
            Ended::Failed(reason) => {
                watcher.ctx.fail(reason);
                ctx.stop();
            }
        }));
        self.running = Some(handle);
    }
}

impl Actor for MailboxWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.run(ctx);
    }
}

impl Handler<StopChild> for MailboxWatcher {
    type Result = ();

    fn handle(&mut self, _: StopChild, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Reload> for MailboxWatcher {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Context<Self>) {
        info!("mailbox settings changed; reconnecting");
        self.run(ctx);
    }
}

/// Why a watch ended (it otherwise runs until stopped).
enum Ended {
    /// The mailbox was removed or disabled.
    Gone,
    Failed(String),
}

#[derive(Debug)]
enum WatchError {
    Imap(ImapFailure),
    Store(String),
    /// This node no longer holds the firm.
    Fenced,
}

impl From<ImapFailure> for WatchError {
    fn from(failure: ImapFailure) -> Self {
        WatchError::Imap(failure)
    }
}

impl From<DomainError> for WatchError {
    fn from(err: DomainError) -> Self {
        WatchError::Store(err.to_string())
    }
}

#[derive(Clone)]
struct Watch {
    live: LiveContext,
    firm: FirmId,
    mailbox: Uuid,
    fencing_token: Option<i64>,
}

/// What one folder's session needs, read once per watch.
#[derive(Clone)]
struct FolderWatch {
    watch: Watch,
    stored: StoredMailbox,
    endpoint: Endpoint,
    policy: OutboundPolicy,
    folder: String,
}

impl Watch {
    async fn run(self) -> Ended {
        let (live, firm, mailbox) = (self.live.clone(), self.firm, self.mailbox);
        let loaded = live
            .db()
            .firm_tx(firm, |conn| async move { mailboxes::find(conn, firm, mailbox).await.map(Some) }.scope_boxed())
            .await;
        let stored = match loaded {
            Ok(Some(stored)) if stored.enabled => stored,
            Ok(_) | Err(DomainError::NotFound(_)) => return Ended::Gone,
            Err(err) => return Ended::Failed(format!("reading the mailbox failed: {err}")),
        };
        let settings = live.settings();
        let password = match SecretBox::from_settings(&settings.secrets)
            .and_then(|b| b.open(&stored.imap_password_sealed, &mailboxes::password_context(firm, mailbox, "imap")))
        {
            Ok(password) => password,
            Err(err) => {
                self.report("failing", Some(&format!("the stored password does not open: {err}")), false).await;
                return Ended::Failed("the stored IMAP password does not open".into());
            }
        };
        let endpoint = Endpoint {
            host: stored.imap_host.clone(),
            port: u16::try_from(stored.imap_port).unwrap_or(993),
            tls: TlsMode::parse(&stored.imap_tls).unwrap_or(TlsMode::Tls),
            username: stored.imap_username.clone(),
            password: SecretString::from(secrecy::ExposeSecret::expose_secret(&password).to_owned()),
        };
        let policy = OutboundPolicy::new(&settings.mail.allow_private_hosts);
        let folders = stored.folders.clone();
        let watches = folders.into_iter().map(|folder| {
            FolderWatch {
                watch: self.clone(),
                stored: stored.clone(),
                endpoint: endpoint.clone(),
                policy: policy.clone(),
                folder,
            }
            .run()
        });
        join_all(watches).await;
        Ended::Failed("this node no longer holds the firm".into())
    }

    /// Records the watcher's state, and tells the firm's sockets when it changed.
    async fn report(&self, state: &'static str, reason: Option<&str>, synced: bool) {
        let (firm, mailbox) = (self.firm, self.mailbox);
        let reason_owned = reason.map(str::to_owned);
        let changed = self
            .live
            .db()
            .firm_tx(firm, |conn| {
                async move { mailboxes::set_state(conn, firm, mailbox, state, reason_owned.as_deref(), synced).await }
                    .scope_boxed()
            })
            .await;
        match changed {
            Ok(true) => {
                live::publish_event(
                    self.live.bus(),
                    firm,
                    "mailbox.state",
                    serde_json::json!({ "mailbox_id": mailbox, "state": state, "reason": reason }),
                )
                .await;
            }
            Ok(false) => {}
            Err(err) => warn!(error = %err, "recording the mailbox state failed"),
        }
    }
}

impl FolderWatch {
    /// Runs rounds until this node loses the firm.
    async fn run(self) {
        let mut failures: u32 = 0;
        loop {
            let error = self.round(&mut failures).await;
            match error {
                WatchError::Fenced => return,
                WatchError::Imap(failure) => {
                    let reason = format!("{}: {}", step_name(failure.step), failure.message);
                    warn!(folder = %self.folder, %reason, "mailbox session failed");
                    self.watch.report("failing", Some(&reason), false).await;
                }
                WatchError::Store(reason) => {
                    warn!(folder = %self.folder, %reason, "storing mail failed");
                    self.watch.report("failing", Some("storing mail failed; retrying"), false).await;
                }
            }
            failures = failures.saturating_add(1);
            let backoff = Duration::from_secs(2u64.saturating_pow(failures.min(8)).min(300));
            tokio::time::sleep(backoff).await;
        }
    }

    /// One session: connect, catch up, then wait for more, until something fails.
    async fn round(&self, failures: &mut u32) -> WatchError {
        match self.session(failures).await {
            Ok(never) => match never {},
            Err(err) => err,
        }
    }

    async fn session(&self, failures: &mut u32) -> Result<std::convert::Infallible, WatchError> {
        let settings = self.watch.live.settings();
        let timeout = Duration::from_secs(settings.mail.timeout_secs.max(1));
        self.watch.report("connecting", None, false).await;
        let mut session = imap::connect(&self.endpoint, &self.policy, timeout).await?;
        let slow = |what: &str| ImapFailure { step: Step::Protocol, message: format!("{what} timed out") };
        let status = tokio::time::timeout(timeout, imap::select(&mut session, &self.folder))
            .await
            .map_err(|_| slow("SELECT"))??;
        let idle = tokio::time::timeout(timeout, imap::supports_idle(&mut session))
            .await
            .map_err(|_| slow("CAPABILITY"))??;
        let renew = Duration::from_secs(settings.mail.idle_renew_secs.clamp(10, 29 * 60));
        let poll = Duration::from_secs(u64::try_from(self.stored.poll_interval_secs).unwrap_or(60).max(5));
        let uidvalidity = i64::from(status.uidvalidity);
        // A server that stops answering mid-command would hold the watcher forever.
        let command = Duration::from_secs(settings.mail.timeout_secs.max(1) * 20);
        let stalled = |what: &str| ImapFailure { step: Step::Protocol, message: format!("{what} timed out") };
        loop {
            let position = self.position(uidvalidity).await?;
            let last = u32::try_from(position.last_uid).unwrap_or(u32::MAX);
            let uids = tokio::time::timeout(command, imap::uids_after(&mut session, last))
                .await
                .map_err(|_| stalled("UID SEARCH"))??;
            let batch = settings.mail.import_batch.max(1);
            if uids.len() > batch {
                self.watch.report("catching_up", None, false).await;
            }
            for chunk in uids.chunks(batch) {
                // Fetched in groups of bounded size: a batch of large messages never holds
                // more than FETCH_BYTES in memory at once (one larger message goes alone).
                let sizes = tokio::time::timeout(command, imap::sizes(&mut session, chunk))
                    .await
                    .map_err(|_| stalled("FETCH RFC822.SIZE"))??;
                for group in imap::groups_by_size(&sizes, FETCH_BYTES) {
                    let fetched = tokio::time::timeout(command, imap::fetch(&mut session, &group))
                        .await
                        .map_err(|_| stalled("FETCH"))??;
                    let last = group.last().copied().unwrap_or_default();
                    let imported = self.import(uidvalidity, fetched, last).await?;
                    if self.stored.mark_seen {
                        tokio::time::timeout(command, imap::mark_seen(&mut session, &imported))
                            .await
                            .map_err(|_| stalled("STORE"))??;
                    }
                }
            }
            *failures = 0;
            self.watch.report(if idle { "idle" } else { "polling" }, None, true).await;
            if idle {
                session = imap::idle(session, renew).await?;
            } else {
                tokio::time::sleep(poll).await;
                tokio::time::timeout(timeout, session.noop())
                    .await
                    .map_err(|_| stalled("NOOP"))?
                    .map_err(|e| ImapFailure { step: Step::Protocol, message: e.to_string() })?;
            }
        }
    }

    /// The folder's stored position; a folder seen for the first time, or with a new
    /// UIDVALIDITY, starts from the beginning (what was imported before is recognised by
    /// its Message-ID or content and not imported twice).
    async fn position(&self, uidvalidity: i64) -> Result<FolderPosition, WatchError> {
        let (firm, mailbox, folder) = (self.watch.firm, self.watch.mailbox, self.folder.clone());
        let position = self
            .watch
            .live
            .db()
            .firm_tx(firm, |conn| {
                async move {
                    let stored = mailboxes::folder_position(conn, firm, mailbox, &folder).await?;
                    match stored {
                        Some(p) if p.uidvalidity == uidvalidity => Ok(p),
                        other => {
                            if other.is_some() {
                                warn!(folder = %folder, "UIDVALIDITY changed; reading the folder again");
                            }
                            let fresh = FolderPosition { uidvalidity, last_uid: 0 };
                            mailboxes::advance_folder(conn, firm, mailbox, &folder, fresh).await?;
                            Ok::<_, DomainError>(fresh)
                        }
                    }
                }
                .scope_boxed()
            })
            .await?;
        Ok(position)
    }

    /// Stores parsed messages and moves the position to `last`, in one transaction that
    /// first checks this node still holds the firm (None when it does not). `careful` files
    /// each message in a savepoint and sets aside one the store refuses.
    async fn store(
        &self,
        uidvalidity: i64,
        parsed: &[(u32, ParsedEmail)],
        last: u32,
        careful: bool,
    ) -> Result<Option<Vec<(u32, Imported)>>, DomainError> {
        let settings = self.watch.live.shared_settings();
        let (firm, mailbox, fencing_token) = (self.watch.firm, self.watch.mailbox, self.watch.fencing_token);
        let folder = self.folder.clone();
        let stored = self.stored.clone();
        self.watch
            .live
            .db()
            .firm_tx(firm, |conn| {
                async move {
                    if let Some(token) = fencing_token
                        && !cluster::holds(conn, &settings.cluster.name, firm, token).await?
                    {
                        return Ok(None);
                    }
                    let ctx = ImportContext {
                        mailbox,
                        mailbox_address: stored.address.clone(),
                        folder: folder.clone(),
                        uidvalidity,
                        own_domain: settings.mail.message_id_domain.clone(),
                        own_addresses: mailboxes::addresses(conn, firm).await?,
                        max_part_bytes: settings.mail.max_part_bytes,
                        auto_acknowledge: stored.auto_acknowledge.clone(),
                        settings: mailboxes::settings(conn, firm).await?,
                        rules: email_rules::list(conn, firm).await?,
                    };
                    let mut results = Vec::with_capacity(parsed.len());
                    for (uid, email) in parsed {
                        if !careful {
                            results.push((*uid, email::import(conn, firm, &ctx, *uid, email).await?));
                            continue;
                        }
                        let ctx_ref = &ctx;
                        let filed = conn
                            .transaction::<_, DomainError, _>(async move |conn| {
                                email::import(conn, firm, ctx_ref, *uid, email).await
                            })
                            .await;
                        let imported = match filed {
                            Ok(imported) => imported,
                            Err(err) => {
                                warn!(uid = *uid, error = %err, "a message could not be filed; set aside");
                                email::set_aside(conn, firm, &ctx, *uid, email, &err.to_string()).await?
                            }
                        };
                        results.push((*uid, imported));
                    }
                    mailboxes::advance_folder(
                        conn,
                        firm,
                        mailbox,
                        &folder,
                        FolderPosition { uidvalidity, last_uid: i64::from(last) },
                    )
                    .await?;
                    Ok::<_, DomainError>(Some(results))
                }
                .scope_boxed()
            })
            .await
    }

    /// Parses and stores one batch, moving the position to `last` in the same
    /// transaction; tells sockets after commit. Returns the UIDs stored.
    async fn import(&self, uidvalidity: i64, fetched: Vec<imap::Fetched>, last: u32) -> Result<Vec<u32>, WatchError> {
        let parsed: Vec<(u32, ParsedEmail)> = tokio::task::spawn_blocking(move || {
            fetched.into_iter().map(|f| (f.uid, parse::parse(&f.raw))).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| WatchError::Store(format!("parsing stopped: {e}")))?;
        // The whole batch in one go; only if the store refuses something is it done again
        // message by message in savepoints, so the one bad message is set aside.
        let outcome = match self.store(uidvalidity, &parsed, last, false).await {
            Ok(outcome) => outcome,
            Err(err) => {
                warn!(error = %err, "a batch could not be stored whole; storing it message by message");
                self.store(uidvalidity, &parsed, last, true).await?
            }
        };
        let Some(results) = outcome else { return Err(WatchError::Fenced) };
        let (firm, mailbox) = (self.watch.firm, self.watch.mailbox);
        let bus = self.watch.live.bus();
        let mut uids = Vec::with_capacity(results.len());
        for (uid, imported) in results {
            uids.push(uid);
            match imported {
                Imported::Filed(filed) => {
                    live::publish_message(bus, firm, &filed.message).await;
                    live::publish_conversation_event(
                        bus,
                        firm,
                        filed.message.conversation_id,
                        "email.received",
                        serde_json::json!({
                            "conversation_id": filed.message.conversation_id,
                            "message_id": filed.message.id,
                            "email_id": filed.email_id,
                            "contact_id": filed.contact_id,
                            "new_conversation": filed.new_conversation,
                        }),
                    )
                    .await;
                    if let Some(ack) = &filed.acknowledgement {
                        live::publish_message(bus, firm, ack).await;
                    }
                }
                Imported::Triaged { email_id, kind } => {
                    live::publish_event(
                        bus,
                        firm,
                        "email.triaged",
                        serde_json::json!({ "email_id": email_id, "mailbox_id": mailbox, "triage": kind }),
                    )
                    .await;
                }
                Imported::Duplicate => {}
            }
        }
        Ok(uids)
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Dns => "dns",
        Step::Tcp => "tcp",
        Step::Tls => "tls",
        Step::Authentication => "authentication",
        Step::Folder => "folder",
        Step::Protocol => "protocol",
    }
}
