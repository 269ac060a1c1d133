// A webhook receiver for tests: records every request and answers with scripted statuses.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub event: String,
    pub delivery_id: String,
    pub signature: String,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Script {
    requests: Vec<ReceivedRequest>,
    next_statuses: VecDeque<u16>,
    default_status: u16,
    /// How long to wait before answering.
    delay: Duration,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

async fn record(req: HttpRequest, body: web::Bytes, script: web::Data<Arc<Mutex<Script>>>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (status, delay) = {
        let mut script = script.lock().unwrap();
        script.requests.push(ReceivedRequest {
            event: header("x-cp-event"),
            delivery_id: header("x-cp-delivery-id"),
            signature: header("x-cp-signature"),
            body: body.to_vec(),
        });
        (script.next_statuses.pop_front().unwrap_or(script.default_status), script.delay)
    };
    tokio::time::sleep(delay).await;
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("ok")
}

impl Receiver {
    /// Starts on 127.0.0.1 with an ephemeral port; answers `first` statuses in order, then `then`.
    pub fn start(first: &[u16], then: u16) -> Self {
        let script = Arc::new(Mutex::new(Script {
            requests: Vec::new(),
            next_statuses: first.iter().copied().collect(),
            default_status: then,
            delay: Duration::ZERO,
        }));
        let data = web::Data::new(Arc::clone(&script));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(record)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        actix_web::rt::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}/hooks"), script }
    }

    pub fn set_delay(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }

    pub fn set_default_status(&self, status: u16) {
        self.script.lock().unwrap().default_status = status;
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.script.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests arrived, or fails the test after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(started.elapsed() < timeout, "expected {n} requests, got {}", requests.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
