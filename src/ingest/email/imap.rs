//! IMAP sessions (async-imap over tokio, TLS by rustls with the webpki roots): connecting
//! step by step so a failure names its step, the UIDs above a position, fetching with
//! `BODY.PEEK[]` (which never sets `\Seen`), and IDLE.
//!
//! The hub reads by UID only. `\Seen`, `UNSEEN` and dates say nothing reliable about what
//! the hub has imported (another client may read or re-date mail at any time).

use std::sync::Arc;
use std::time::Duration;

use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::domain::mailboxes::TlsMode;
use crate::net::is_loopback_host;
use crate::outbound::guard::{OutboundPolicy, ResolveError};

/// Anything a session can run over: plain TCP on loopback, or TLS.
pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ImapIo for T {}

pub type ImapSession = Session<Box<dyn ImapIo>>;

/// Which step of reaching a mailbox failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Dns,
    Tcp,
    Tls,
    Authentication,
    Folder,
    /// The server said something the hub could not follow, or the connection dropped.
    Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step:?}: {message}")]
pub struct ImapFailure {
    pub step: Step,
    /// What went wrong, without credentials or message content.
    pub message: String,
}

fn fail(step: Step, message: impl Into<String>) -> ImapFailure {
    ImapFailure { step, message: message.into() }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: SecretString,
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(config) => tokio_rustls::TlsConnector::from(Arc::new(config)),
        // The ring provider always supports the default versions; an empty config would
        // refuse every handshake, which then fails at the TLS step with a clear message.
        Err(_) => tokio_rustls::TlsConnector::from(Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )),
    }
}

async fn tls_over<S>(stream: S, host: &str) -> Result<Box<dyn ImapIo>, ImapFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| fail(Step::Tls, format!("{host} is not a name a certificate can carry")))?;
    let tls = tls_connector()
        .connect(name, stream)
        .await
        .map_err(|e| fail(Step::Tls, format!("TLS handshake failed: {e}")))?;
    Ok(Box::new(tls))
}

async fn greeting(client: &mut Client<Box<dyn ImapIo>>) -> Result<(), ImapFailure> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(fail(Step::Protocol, "the server closed the connection before greeting")),
        Err(e) => Err(fail(Step::Protocol, format!("reading the greeting failed: {e}"))),
    }
}

/// Connects and logs in, each step within `timeout`.
pub async fn connect(
    endpoint: &Endpoint,
    policy: &OutboundPolicy,
    timeout: Duration,
) -> Result<ImapSession, ImapFailure> {
    let within = |step: Step| move |_| fail(step, format!("timed out after {} s", timeout.as_secs()));
    let addrs = tokio::time::timeout(timeout, policy.resolve(&endpoint.host, endpoint.port))
        .await
        .map_err(within(Step::Dns))?
        .map_err(|e| match e {
            ResolveError::Lookup(m) | ResolveError::Refused(m) => fail(Step::Dns, m),
        })?;
    if endpoint.tls == TlsMode::None
        && (!is_loopback_host(&endpoint.host) || addrs.iter().any(|a| !a.ip().is_loopback()))
    {
        return Err(fail(Step::Tls, "a connection without TLS is allowed only to a loopback host"));
    }
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(&addrs[..]))
        .await
        .map_err(within(Step::Tcp))?
        .map_err(|e| fail(Step::Tcp, format!("connecting to {}:{} failed: {e}", endpoint.host, endpoint.port)))?;
    let _ = tcp.set_nodelay(true);
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let client = match endpoint.tls {
        TlsMode::None => {
            let mut client = Client::new(Box::new(tcp) as Box<dyn ImapIo>);
            tokio::time::timeout(timeout, greeting(&mut client)).await.map_err(within(Step::Protocol))??;
            client
        }
        TlsMode::Tls => {
            let stream = tokio::time::timeout(timeout, tls_over(tcp, &host)).await.map_err(within(Step::Tls))??;
            let mut client = Client::new(stream);
            tokio::time::timeout(timeout, greeting(&mut client)).await.map_err(within(Step::Protocol))??;
            client
        }
        TlsMode::Starttls => {
            let mut plain = Client::new(Box::new(tcp) as Box<dyn ImapIo>);
            tokio::time::timeout(timeout, greeting(&mut plain)).await.map_err(within(Step::Protocol))??;
            tokio::time::timeout(timeout, plain.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(within(Step::Tls))?
                .map_err(|e| fail(Step::Tls, format!("STARTTLS refused: {e}")))?;
            let tls = tokio::time::timeout(timeout, tls_over(plain.into_inner(), &host))
                .await
                .map_err(within(Step::Tls))??;
            Client::new(tls)
        }
    };
    let session = tokio::time::timeout(timeout, client.login(&endpoint.username, endpoint.password.expose_secret()))
        .await
        .map_err(within(Step::Authentication))?
        .map_err(|(e, _)| fail(Step::Authentication, format!("login refused: {}", one_line(&e.to_string()))))?;
    Ok(session)
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect()
}

/// What SELECT says of a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    pub uidvalidity: u32,
    pub exists: u32,
}

pub async fn select(session: &mut ImapSession, folder: &str) -> Result<FolderStatus, ImapFailure> {
    let mailbox = session
        .select(folder)
        .await
        .map_err(|e| fail(Step::Folder, format!("cannot open folder {folder:?}: {}", one_line(&e.to_string()))))?;
    let uidvalidity = mailbox
        .uid_validity
        .ok_or_else(|| fail(Step::Folder, format!("the server gave folder {folder:?} no UIDVALIDITY")))?;
    Ok(FolderStatus { uidvalidity, exists: mailbox.exists })
}

/// As [`select`], read-only (EXAMINE): for checking a folder without touching it.
pub async fn examine(session: &mut ImapSession, folder: &str) -> Result<FolderStatus, ImapFailure> {
    let mailbox = session
        .examine(folder)
        .await
        .map_err(|e| fail(Step::Folder, format!("cannot open folder {folder:?}: {}", one_line(&e.to_string()))))?;
    Ok(FolderStatus { uidvalidity: mailbox.uid_validity.unwrap_or_default(), exists: mailbox.exists })
}

fn protocol(e: async_imap::error::Error) -> ImapFailure {
    fail(Step::Protocol, one_line(&e.to_string()))
}

/// The UIDs above `last_uid`, ascending. (`n:*` always names the highest message, even
/// below `n`; it is filtered out.)
pub async fn uids_after(session: &mut ImapSession, last_uid: u32) -> Result<Vec<u32>, ImapFailure> {
    let from = last_uid.saturating_add(1);
    let found = session.uid_search(format!("UID {from}:*")).await.map_err(protocol)?;
    let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid > last_uid).collect();
    uids.sort_unstable();
    Ok(uids)
}

/// A UID set in IMAP's compact form: `1:5,7,9:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.saturating_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The size of each message among `uids` (RFC822.SIZE), in UID order; a message the server
/// gives no size is counted as 1 MiB.
pub async fn sizes(session: &mut ImapSession, uids: &[u32]) -> Result<Vec<(u32, u64)>, ImapFailure> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let stream = session.uid_fetch(uid_set(uids), "(UID RFC822.SIZE)").await.map_err(protocol)?;
    let fetched: Vec<_> = stream.try_collect().await.map_err(protocol)?;
    let mut sizes: Vec<(u32, u64)> =
        fetched.iter().filter_map(|f| Some((f.uid?, f.size.map_or(1 << 20, u64::from)))).collect();
    sizes.retain(|(uid, _)| uids.binary_search(uid).is_ok());
    sizes.sort_unstable();
    sizes.dedup_by_key(|(uid, _)| *uid);
    Ok(sizes)
}

/// Splits UIDs into consecutive groups of at most `limit` bytes each (a larger message is
/// a group of its own).
pub fn groups_by_size(sizes: &[(u32, u64)], limit: u64) -> Vec<Vec<u32>> {
    let mut groups: Vec<Vec<u32>> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for (uid, size) in sizes {
        if !current.is_empty() && bytes.saturating_add(*size) > limit {
            groups.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(*uid);
        bytes = bytes.saturating_add(*size);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// One fetched message.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// Fetches whole messages without touching their flags, in UID order.
pub async fn fetch(session: &mut ImapSession, uids: &[u32]) -> Result<Vec<Fetched>, ImapFailure> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let stream = session.uid_fetch(uid_set(uids), "(UID BODY.PEEK[])").await.map_err(protocol)?;
    let fetched: Vec<_> = stream.try_collect().await.map_err(protocol)?;
    let mut messages: Vec<Fetched> = fetched
        .iter()
        .filter_map(|f| Some(Fetched { uid: f.uid?, raw: f.body().unwrap_or_default().to_vec() }))
        .filter(|f| uids.binary_search(&f.uid).is_ok())
        .collect();
    messages.sort_by_key(|f| f.uid);
    messages.dedup_by_key(|f| f.uid);
    Ok(messages)
}

/// Sets `\Seen` on imported messages (only when the firm turned that on).
pub async fn mark_seen(session: &mut ImapSession, uids: &[u32]) -> Result<(), ImapFailure> {
    if uids.is_empty() {
        return Ok(());
    }
    let stream = session.uid_store(uid_set(uids), "+FLAGS.SILENT (\\Seen)").await.map_err(protocol)?;
    let _: Vec<_> = stream.try_collect().await.map_err(protocol)?;
    Ok(())
}

pub async fn supports_idle(session: &mut ImapSession) -> Result<bool, ImapFailure> {
    Ok(session.capabilities().await.map_err(protocol)?.has_str("IDLE"))
}

/// Waits in IDLE until the server reports a change or `renew` passes; gives the session
/// back either way.
pub async fn idle(session: ImapSession, renew: Duration) -> Result<ImapSession, ImapFailure> {
    let mut handle = session.idle();
    handle.init().await.map_err(protocol)?;
    let (wait, _interrupt) = handle.wait_with_timeout(renew);
    wait.await.map_err(protocol)?;
    let session = handle.done().await.map_err(protocol)?;
    while session.unsolicited_responses.try_recv().is_ok() {}
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_are_grouped_by_size() {
        let sizes = [(1, 10), (2, 10), (3, 100), (4, 5), (5, 5)];
        assert_eq!(groups_by_size(&sizes, 25), vec![vec![1, 2], vec![3], vec![4, 5]]);
        assert_eq!(groups_by_size(&[], 25), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), format!("{}:{}", u32::MAX - 1, u32::MAX));
    }
}
