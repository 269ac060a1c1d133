//! Outbound HTTP ignores proxy settings in the environment: a proxy resolves the host
//! itself, so it would carry a webhook delivery past the address guard. A binary of its
//! own, because it sets process-wide environment variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use consultantpro::outbound::guard::OutboundPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every connection with `status` and counts the connections.
async fn listener(status: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (address, connections)
}

#[tokio::test]
async fn the_guarded_client_ignores_proxy_variables() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (proxy, through_proxy) = listener("502 Bad Gateway").await;
    let (target, direct) = listener("204 No Content").await;
    // SAFETY: the only test of this binary, run before any client reads the environment.
    unsafe {
        for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::set_var(name, &proxy);
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }

    // The control: a client with reqwest's defaults goes through the proxy.
    let default_client = reqwest::Client::new();
    let answered = default_client.get(format!("{target}/hook")).send().await.unwrap();
    assert_eq!(answered.status(), 502);
    assert_eq!(through_proxy.load(Ordering::SeqCst), 1);

    let guarded = OutboundPolicy::new(&["127.0.0.1".to_owned()]).client(Duration::from_secs(5)).unwrap();
    let answered = guarded.get(format!("{target}/hook")).send().await.unwrap();
    assert_eq!(answered.status(), 204);
    assert_eq!(direct.load(Ordering::SeqCst), 1);
    assert_eq!(through_proxy.load(Ordering::SeqCst), 1, "the guarded client went through the proxy");
}
