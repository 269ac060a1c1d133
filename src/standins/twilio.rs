//! A stand-in for Twilio's Messaging APIs, for tests and `make run` (the real service
//! cannot be reached from here). It answers as Twilio does:
//!
//! - `POST /2010-04-01/Accounts/{sid}/Messages.json` (HTTP Basic with the account SID and
//!   auth token; form `To`, `From` or `MessagingServiceSid`, `Body`, `StatusCallback`):
//!   201 with a Message resource, or Twilio's error JSON (`code`, `message`, `more_info`,
//!   `status`) for bad credentials, a sender the account does not own, and Twilio's magic
//!   test numbers (+15005550001 invalid, 21211; +15005550009 not a mobile, 21614).
//!   Statuses then follow to `StatusCallback`, signed with `X-Twilio-Signature` exactly as
//!   Twilio signs them.
//! - `GET .../IncomingPhoneNumbers.json?PhoneNumber=` and `GET /v1/Services/{sid}`.
//! - `POST /standin/inbound {account_sid, from, to, body}`: delivers a signed inbound
//!   message to the hub, as if someone had texted the number (a demo convenience, not
//!   Twilio's).
//!
//! Tests can queue failures (e.g. 429 then 500) and read what was sent.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use uuid::Uuid;

use crate::domain::sms::segments;
use crate::ingest::twilio::{compute_signature, form_params, param};

/// An account the stand-in knows: its credentials and what it owns.
#[derive(Debug, Clone)]
pub struct StandinAccount {
    pub sid: String,
    pub token: String,
    pub numbers: Vec<String>,
    pub services: Vec<String>,
}

/// The account `make run` gives the demo firm: Twilio's documented test number as its
/// sender. Its token is a development value, known to the stand-in only.
pub fn demo_account() -> StandinAccount {
    StandinAccount {
        sid: "AC00000000000000000000000000000de0".into(),
        token: "demo-only-twilio-auth-token".into(),
        numbers: vec!["+15005550006".into()],
        services: vec!["MG00000000000000000000000000000de0".into()],
    }
}

impl StandinAccount {
    /// A fresh account with one number and one Messaging Service.
    pub fn generate(number: &str) -> Self {
        StandinAccount {
            sid: format!("AC{}", Uuid::new_v4().simple()),
            token: Uuid::new_v4().simple().to_string(),
            numbers: vec![number.to_owned()],
            services: vec![format!("MG{}", Uuid::new_v4().simple())],
        }
    }
}

/// A message the stand-in accepted.
#[derive(Debug, Clone)]
pub struct SentRecord {
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub status_callback: Option<String>,
    pub created: chrono::DateTime<chrono::Utc>,
    pub segments: i32,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<String, StandinAccount>,
    sent: Vec<SentRecord>,
    /// HTTP statuses to answer the next sends with, in order (429, 500, ...).
    failures: VecDeque<u16>,
    /// Requests to the Messages endpoint, failed ones included.
    attempts: usize,
    /// Statuses reported to each message's callback after acceptance.
    callback_statuses: Vec<String>,
    /// The next sends are taken, then answered only after this long (a lost answer).
    stalls: VecDeque<Duration>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    /// Where `/standin/inbound` delivers to: the hub's public base URL.
    hub_url: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running stand-in.
pub struct TwilioStandin {
    pub base_url: String,
    shared: Shared,
}

fn twilio_error(status: u16, code: i32, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default()).json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// The account whose HTTP Basic credentials the request carries, if they are right.
fn authenticated(shared: &Shared, req: &HttpRequest) -> Option<StandinAccount> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let decoded = STANDARD.decode(header.strip_prefix("Basic ")?).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?.to_owned();
    let account = shared.lock().accounts.get(user)?.clone();
    (account.token == password).then_some(account)
}

/// As [`authenticated`], and the account must be the one the path names.
fn authenticate(shared: &Shared, req: &HttpRequest, account_sid: &str) -> Option<StandinAccount> {
    authenticated(shared, req).filter(|account| account.sid == account_sid)
}

async fn create_message(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let account_sid = path.into_inner();
    let (forced, stall) = {
        let mut inner = shared.lock();
        inner.attempts += 1;
        (inner.failures.pop_front(), inner.stalls.pop_front())
    };
    let Some(account) = authenticate(&shared, &req, &account_sid) else {
        return twilio_error(401, 20003, "Authenticate");
    };
    if let Some(status) = forced {
        return twilio_error(status, 20000 + i32::from(status), "stand-in failure, as asked");
    }
    let params = form_params(&body);
    let field = |name: &str| param(&params, name).map(str::to_owned);
    let (Some(to), Some(text)) = (field("To"), field("Body")) else {
        return twilio_error(400, 21604, "A 'To' phone number and a 'Body' are required.");
    };
    match to.as_str() {
        "+15005550001" => {
            return twilio_error(400, 21211, &format!("The 'To' number {to} is not a valid phone number."));
        }
        "+15005550009" => return twilio_error(400, 21614, &format!("'To' number {to} is not a valid mobile number")),
        _ => {}
    }
    let from = field("From");
    let service = field("MessagingServiceSid");
    let owned = match (&service, &from) {
        (Some(service), _) => account.services.contains(service),
        (None, Some(from)) => account.numbers.contains(from),
        (None, None) => false,
    };
    if !owned {
        return twilio_error(
            400,
            21606,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number for this account.",
        );
    }
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let sender = from.clone().or_else(|| account.numbers.first().cloned());
    let record = SentRecord {
        sid: sid.clone(),
        account_sid: account.sid.clone(),
        to: to.clone(),
        from: from.clone(),
        messaging_service_sid: service.clone(),
        body: text.clone(),
        status_callback: field("StatusCallback"),
        created: chrono::Utc::now(),
        segments: segments(&text),
    };
    let statuses = {
        let mut inner = shared.lock();
        inner.sent.push(record.clone());
        inner.callback_statuses.clone()
    };
    let status = if service.is_some() { "accepted" } else { "queued" };
    if let Some(callback) = record.status_callback.clone().filter(|url| is_loopback_url(url)) {
        let shared = shared.get_ref().clone();
        let (token, sender) = (account.token.clone(), sender.clone());
        actix_web::rt::spawn(async move {
            for next in statuses {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                let mut params = vec![
                    ("AccountSid".to_owned(), record.account_sid.clone()),
                    ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
                    ("MessageSid".to_owned(), record.sid.clone()),
                    ("SmsSid".to_owned(), record.sid.clone()),
                    ("MessageStatus".to_owned(), next.clone()),
                    ("SmsStatus".to_owned(), next.clone()),
                    ("To".to_owned(), record.to.clone()),
                    ("From".to_owned(), sender.clone().unwrap_or_default()),
                ];
                if let Some(service) = &record.messaging_service_sid {
                    params.push(("MessagingServiceSid".to_owned(), service.clone()));
                }
                if next == "undelivered" || next == "failed" {
                    params.push(("ErrorCode".to_owned(), "30003".to_owned()));
                }
                let _ = post_signed(&shared.http, &callback, &token, &params).await;
            }
        });
    }
    if let Some(stall) = stall {
        actix_web::rt::time::sleep(stall).await;
    }
    HttpResponse::Created().json(json!({
        "sid": sid,
        "account_sid": account.sid,
        "messaging_service_sid": service,
        "from": from,
        "to": to,
        "body": text,
        "status": status,
        "num_segments": segments(&text).to_string(),
        "num_media": "0",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": null,
        "error_message": null,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{sid}.json", account.sid),
    }))
}

/// The stand-in calls back only to this machine: it serves development and tests, and a
/// callback URL comes from a firm's settings.
fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).ok().and_then(|u| u.host().map(|h| h.to_owned())).is_some_and(|host| match host {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    })
}

/// `GET .../Messages.json?To=`: the account's messages to a number, newest first.
async fn list_messages(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(account) = authenticate(&shared, &req, &path.into_inner()) else {
        return twilio_error(401, 20003, "Authenticate");
    };
    let to = query.get("To");
    let mut messages: Vec<_> = shared
        .lock()
        .sent
        .iter()
        .filter(|m| m.account_sid == account.sid && to.is_none_or(|t| *t == m.to))
        .map(|m| {
            json!({
                "sid": m.sid, "to": m.to, "from": m.from, "body": m.body, "status": "sent",
                "direction": "outbound-api", "num_segments": m.segments.to_string(),
                "date_created": m.created.to_rfc2822(),
            })
        })
        .collect();
    messages.reverse();
    HttpResponse::Ok().json(json!({ "messages": messages, "page": 0 }))
}

/// Posts a form to `url` signed as Twilio signs webhooks.
pub async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    params: &[(String, String)],
) -> Result<reqwest::Response, reqwest::Error> {
    let signature = compute_signature(token, url, params);
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            form.append_pair(name, value);
        }
        form.finish()
    };
    http.post(url)
        .header("X-Twilio-Signature", signature)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("I-Twilio-Idempotency-Token", Uuid::new_v4().to_string())
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
}

async fn incoming_numbers(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(account) = authenticate(&shared, &req, &path.into_inner()) else {
        return twilio_error(401, 20003, "Authenticate");
    };
    let wanted = query.get("PhoneNumber");
    let numbers: Vec<_> = account
        .numbers
        .iter()
        // Twilio's filter matches numbers that contain the one asked for, not only equal ones.
        .filter(|n| wanted.is_none_or(|w| n.contains(w.as_str())))
        .map(|n| json!({ "sid": format!("PN{}", Uuid::new_v4().simple()), "phone_number": n }))
        .collect();
    HttpResponse::Ok().json(json!({ "incoming_phone_numbers": numbers, "page": 0 }))
}

async fn service(shared: web::Data<Shared>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(account) = authenticated(&shared, &req) else {
        return twilio_error(401, 20003, "Authenticate");
    };
    let sid = path.into_inner();
    if account.services.contains(&sid) {
        HttpResponse::Ok().json(json!({ "sid": sid, "account_sid": account.sid }))
    } else {
        twilio_error(404, 20404, &format!("The requested resource /Services/{sid} was not found"))
    }
}

#[derive(serde::Deserialize)]
struct InboundRequest {
    account_sid: String,
    from: String,
    to: String,
    body: String,
}

async fn deliver_inbound(shared: web::Data<Shared>, request: web::Json<InboundRequest>) -> HttpResponse {
    let Some(hub) = shared.hub_url.clone() else {
        return HttpResponse::BadRequest().json(json!({ "message": "started without --hub-url" }));
    };
    let Some(account) = shared.lock().accounts.get(&request.account_sid).cloned() else {
        return HttpResponse::NotFound().json(json!({ "message": "no such account" }));
    };
    let sid = format!("SM{}", Uuid::new_v4().simple());
    let params = inbound_params(&account.sid, &sid, &request.from, &request.to, &request.body);
    let url = format!("{}/api/v1/twilio/sms", hub.trim_end_matches('/'));
    match post_signed(&shared.http, &url, &account.token, &params).await {
        Ok(answer) => HttpResponse::Ok().json(json!({ "message_sid": sid, "hub_status": answer.status().as_u16() })),
        Err(err) => HttpResponse::BadGateway().json(json!({ "message": err.to_string() })),
    }
}

/// The parameters Twilio posts for an inbound SMS.
pub fn inbound_params(account_sid: &str, message_sid: &str, from: &str, to: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", message_sid),
        ("NumMedia", "0"),
        ("SmsSid", message_sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", to),
        ("NumSegments", &segments(body).to_string()),
        ("MessageSid", message_sid),
        ("AccountSid", account_sid),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

impl TwilioStandin {
    /// Serves on `listener` (port 0 for any), on the current actix runtime. `hub_url` is
    /// where `/standin/inbound` delivers.
    pub fn start(listener: TcpListener, hub_url: Option<String>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the Twilio stand-in listens on loopback only (it signs whatever it is asked to)",
            ));
        }
        let port = local.port();
        // reqwest is built without a default TLS provider; pick ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                callback_statuses: vec!["sent".into(), "delivered".into()],
                ..Inner::default()
            })),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default(),
            hub_url,
        };
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/2010-04-01/Accounts/{sid}/Messages.json", web::post().to(create_message))
                .route("/2010-04-01/Accounts/{sid}/Messages.json", web::get().to(list_messages))
                .route("/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", web::get().to(incoming_numbers))
                .route("/v1/Services/{sid}", web::get().to(service))
                .route("/standin/inbound", web::post().to(deliver_inbound))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        actix_web::rt::spawn(server);
        Ok(TwilioStandin { base_url: format!("http://127.0.0.1:{port}"), shared })
    }

    pub fn add_account(&self, account: StandinAccount) {
        self.shared.lock().accounts.insert(account.sid.clone(), account);
    }

    /// The next sends are answered with these HTTP statuses, one each, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.shared.lock().failures.extend(statuses.iter().copied());
    }

    /// The statuses each accepted message then reports to its callback (default `sent`,
    /// `delivered`).
    pub fn report_statuses(&self, statuses: &[&str]) {
        self.shared.lock().callback_statuses = statuses.iter().map(|s| (*s).to_owned()).collect();
    }

    /// The next sends are taken but answered only after `delay` each (longer than the hub
    /// waits: the answer is lost, the message sent).
    pub fn stall_next(&self, count: usize, delay: Duration) {
        self.shared.lock().stalls.extend(std::iter::repeat_n(delay, count));
    }

    /// Messages accepted so far.
    pub fn sent(&self) -> Vec<SentRecord> {
        self.shared.lock().sent.clone()
    }

    /// Requests to the Messages endpoint so far, refused ones included.
    pub fn attempts(&self) -> usize {
        self.shared.lock().attempts
    }
}
