//! Redis stopped for a few seconds while messages are posted on another node, and nothing
//! posted after it is back: every message still reaches the subscribed socket, once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{json, signed_in_owner, spawn_app_with};
use crate::ws;

/// A Redis of this test's own, so stopping it disturbs no other test.
struct Redis {
    port: u16,
    process: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Redis { port, process: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its port and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: connections cut, nothing flushed.
    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[actix_web::test]
async fn messages_posted_while_redis_is_down_still_reach_the_socket() {
    let _one_fault = crate::FAULTS.lock().await;
    let mut redis = Redis::start();
    let cluster = format!("faults-{}", uuid::Uuid::now_v7().simple());
    let url = redis.url();
    let (name, bus) = (cluster.clone(), url.clone());
    let listening = spawn_app_with(move |s| {
        s.cluster.name = name;
        s.redis.url = bus.into();
    })
    .await;
    let posting = spawn_app_with(move |s| {
        s.cluster.name = cluster;
        s.redis.url = url.into();
    })
    .await;
    let (_, _, _, token) = signed_in_owner(&listening).await;
    let created =
        json(listening.post_as(&token, "/api/v1/conversations", &json!({ "subject": "Bus down" })).await).await;
    let conversation = created["data"]["id"].as_str().unwrap().to_owned();
    let mut socket = ws::connect(&listening, &token).await;
    socket.subscribe(&conversation, None).await;

    let post = |n: usize| {
        let (posting, token, conversation) = (&posting, &token, &conversation);
        async move {
            let path = format!("/api/v1/conversations/{conversation}/messages");
            let answer = posting.post_as(token, &path, &json!({ "body": format!("message {n}") })).await;
            assert_eq!(answer.status(), 201, "message {n} while the bus is {}", if n <= 10 { "up" } else { "down" });
        }
    };
    for n in 1..=10 {
        post(n).await;
    }
    let before: Vec<i64> =
        socket.messages(&conversation, 10).await.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert_eq!(before, (1..=10).collect::<Vec<_>>(), "the positive control: live through Redis");

    redis.kill();
    for n in 11..=20 {
        post(n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    redis.restart();

    // Nothing more is posted: what was missed arrives on its own, each message once.
    let after: Vec<i64> = socket.messages(&conversation, 10).await.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert_eq!(after, (11..=20).collect::<Vec<_>>());
    assert!(socket.quiet("message", Duration::from_millis(500)).await, "a message arrived twice");
}
