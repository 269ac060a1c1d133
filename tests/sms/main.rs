//! Two-way SMS against the local Twilio stand-in (the real service cannot be reached from
//! here): webhooks signed exactly as Twilio signs them, sends through the Messages API,
//! signed status callbacks, opt-outs, and firm isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/isolation.rs"]
mod isolation;
#[allow(dead_code)] // the socket helpers other suites use too
#[path = "../common/ws.rs"]
mod ws;

mod inbound;
mod outbound;
mod secrets;

use std::time::Duration;

use consultantpro::domain::FirmId;
use consultantpro::domain::firms::Firm;
use consultantpro::outbound::runner::{JobContext, JobRunner};
use consultantpro::standins::twilio::{StandinAccount, TwilioStandin, inbound_params, post_signed};
use rand::Rng;
use serde_json::{Value, json};

use helpers::{TestApp, signed_in_owner, spawn_app_with};

/// A test server whose Twilio is a stand-in of its own.
pub async fn sms_app() -> (TestApp, TwilioStandin) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let standin = TwilioStandin::start(listener, None).unwrap();
    let base = standin.base_url.clone();
    let app = spawn_app_with(move |settings| {
        settings.twilio.api_base_url = base.clone();
        settings.twilio.messaging_base_url = base;
    })
    .await;
    (app, standin)
}

/// A UK mobile number nobody else has used (numbers are unique across firms and the test
/// database outlives a run).
pub fn random_mobile() -> String {
    format!("+4474{:08}", rand::rng().random_range(0..100_000_000u32))
}

pub struct SmsFirm {
    pub firm: Firm,
    pub token: String,
    pub account: StandinAccount,
    /// The firm's sender.
    pub number: String,
    pub number_id: String,
}

impl SmsFirm {
    pub fn id(&self) -> FirmId {
        self.firm.firm_id()
    }
}

/// Puts a Twilio account into settings through the API.
pub async fn configure(app: &TestApp, token: &str, account: &StandinAccount, help: &str) -> reqwest::Response {
    let body = json!({
        "account_sid": account.sid,
        "auth_token": account.token,
        "public_base_url": app.address,
        "help_text": help,
    });
    app.client.put(app.url("/api/v1/sms/settings")).bearer_auth(token).json(&body).send().await.unwrap()
}

/// Registers a sender, picking another number if a past run took this one.
pub async fn register_number(
    app: &TestApp,
    standin: &TwilioStandin,
    token: &str,
    account: &mut StandinAccount,
    body: Value,
) -> Value {
    for _ in 0..5 {
        let mut body = body.clone();
        let number = random_mobile();
        account.numbers.push(number.clone());
        standin.add_account(account.clone());
        body["phone_number"] = number.into();
        let response = app.post_as(token, "/api/v1/sms/numbers", &body).await;
        let status = response.status();
        let answer = helpers::json(response).await;
        if status == 201 {
            return answer["data"].clone();
        }
        assert_eq!(status, 409, "{answer}");
    }
    panic!("no free number after five tries");
}

/// A firm with SMS set up: a stand-in account and one sender sending 1,000 per second.
pub async fn sms_firm(app: &TestApp, standin: &TwilioStandin) -> SmsFirm {
    let (firm, _, _, token) = signed_in_owner(app).await;
    let mut account = StandinAccount::generate(&random_mobile());
    account.numbers.clear();
    let response = configure(app, &token, &account, "Test Firm: reply STOP to opt out.").await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let number = register_number(app, standin, &token, &mut account, json!({ "per_second": 1000 })).await;
    SmsFirm {
        firm,
        token,
        number: number["phone_number"].as_str().unwrap().to_owned(),
        number_id: number["id"].as_str().unwrap().to_owned(),
        account,
    }
}

pub fn message_sid() -> String {
    format!("SM{}", uuid::Uuid::new_v4().simple())
}

/// Posts signed parameters to a webhook path of the app.
pub async fn webhook(app: &TestApp, path: &str, token: &str, params: &[(String, String)]) -> reqwest::Response {
    post_signed(&reqwest::Client::new(), &app.url(path), token, params).await.unwrap()
}

/// Someone texts the firm's number: (Twilio's answer, the MessageSid).
pub async fn text_in(app: &TestApp, firm: &SmsFirm, from: &str, body: &str) -> (reqwest::Response, String) {
    let sid = message_sid();
    let params = inbound_params(&firm.account.sid, &sid, from, &firm.number, body);
    (webhook(app, "/api/v1/twilio/sms", &firm.account.token, &params).await, sid)
}

/// The firm's SMS conversations, newest first.
pub async fn sms_conversations(app: &TestApp, token: &str) -> Vec<Value> {
    let list = helpers::json(app.get_as(token, "/api/v1/conversations?channel=sms").await).await;
    list["data"].as_array().unwrap().clone()
}

pub async fn messages(app: &TestApp, token: &str, conversation: &str) -> Vec<Value> {
    let list = helpers::json(app.get_as(token, &format!("/api/v1/conversations/{conversation}/messages")).await).await;
    list["data"].as_array().unwrap().clone()
}

/// Runs the firm's jobs (paced ones included, as they come due) until `done` holds or
/// ten seconds pass.
pub async fn run_jobs_until<F, Fut>(app: &TestApp, firm: FirmId, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let context =
        JobContext::new(app.db(), app.state.bus().clone(), std::sync::Arc::new(app.settings.clone())).unwrap();
    let runner = JobRunner::new(context, format!("test-{}", firm.into_uuid())).only_firm(firm);
    for _ in 0..200 {
        runner.run_once().await.unwrap();
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the jobs did not get there within ten seconds");
}

/// The firm's auth token as stored: sealed.
pub async fn sealed_token(app: &TestApp, firm: FirmId) -> String {
    app.db()
        .firm_tx(firm, |conn| {
            scoped_futures::ScopedFutureExt::scope_boxed(async move {
                consultantpro::domain::sms::settings(conn, firm).await
            })
        })
        .await
        .unwrap()
        .unwrap()
        .auth_token_sealed
}
