//! Keeps outbound requests away from the inside of the network (SSRF): loopback, private,
//! link-local (cloud metadata lives there), unique-local and other special addresses are
//! refused unless their host is on the configured allow-list. Names are checked after DNS
//! resolution by the client's own resolver, so the address checked is the address dialled;
//! redirects are not followed at all; response bodies are read up to a cap.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub use crate::net::is_internal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Lookup(String),
    #[error("{0}")]
    Refused(String),
}

#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed_hosts: Arc<Vec<String>>,
}

impl OutboundPolicy {
    pub fn new(allowed_hosts: &[String]) -> Self {
        Self { allowed_hosts: Arc::new(allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect()) }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed_hosts.contains(&host)
    }

    /// Refuses a URL whose host is an internal IP literal (names are checked at resolution).
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        let Some(host) = url.host() else {
            return Err("the URL names no host".into());
        };
        let ip = match host {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return Ok(()),
        };
        if is_internal(ip) && !self.host_allowed(&ip.to_string()) {
            return Err(format!("refused: {ip} is an internal address"));
        }
        Ok(())
    }

    /// The addresses `host` resolves to that this policy lets a connection reach (for
    /// clients that dial themselves: IMAP, SMTP). An error says which step refused.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ResolveError::Lookup(format!("{host} does not resolve: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(ResolveError::Lookup(format!("{host} has no address")));
        }
        let allowed = self.host_allowed(host);
        let usable: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| allowed || self.host_allowed(&a.ip().to_string()) || !is_internal(a.ip()))
            .collect();
        if usable.is_empty() {
            return Err(ResolveError::Refused(format!("refused: {host} resolves only to internal addresses")));
        }
        Ok(usable)
    }

    /// An HTTP client that resolves through this policy, follows no redirects and gives up
    /// after `timeout`. It ignores `HTTP(S)_PROXY` and `ALL_PROXY`: a proxy would resolve
    /// the host itself and carry a delivery past the guard to an internal address.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: self.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("ConsultantPro-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

struct GuardedResolver {
    policy: OutboundPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.host_allowed(&host);
            let usable: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allowed || policy.host_allowed(&a.ip().to_string()) || !is_internal(a.ip()))
                .collect();
            if usable.is_empty() {
                return Err(format!("refused: {host} resolves only to internal addresses").into());
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// Reads at most `cap` bytes of a response body and drops the rest.
pub async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_urls_are_checked_against_the_allow_list() {
        let strict = OutboundPolicy::new(&[]);
        let url = |s: &str| url::Url::parse(s).expect("url");
        assert!(strict.check_url(&url("http://127.0.0.1:8080/")).is_err());
        assert!(strict.check_url(&url("http://[::1]/")).is_err());
        assert!(strict.check_url(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(strict.check_url(&url("https://hooks.example.com/")).is_ok());
        let local = OutboundPolicy::new(&["127.0.0.1".into()]);
        assert!(local.check_url(&url("http://127.0.0.1:8080/")).is_ok());
        assert!(local.check_url(&url("http://10.0.0.1/")).is_err());
    }
}
