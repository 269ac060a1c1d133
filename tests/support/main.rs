//! Support: business calendars, tickets and SLA policies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/receiver.rs"]
mod receiver;
#[path = "../common/ws.rs"]
#[allow(dead_code)]
mod ws;

mod calendars;
mod clocks;
mod policies;
mod tickets;
mod timers;

/// A contact of the firm with portal access under `email`, and a portal conversation with
/// them about `subject`: (contact id, conversation id).
pub async fn portal_conversation(app: &helpers::TestApp, token: &str, email: &str, subject: &str) -> (String, String) {
    use serde_json::json;
    let body = json!({ "first_name": "Cleo", "last_name": "Client", "emails": [email], "portal_access": true });
    let contact = helpers::json(app.post_as(token, "/api/v1/contacts", &body).await).await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({ "subject": subject, "channel": "portal", "participants": { "contacts": [contact] } });
    let conversation = helpers::json(app.post_as(token, "/api/v1/conversations", &body).await).await["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (contact, conversation)
}
