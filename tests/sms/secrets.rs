//! Stored Twilio tokens are sealed at rest and survive a key rotation.

use base64::Engine;
use secrecy::ExposeSecret;

use crate::helpers::{cli_command, spawn_app_with};
use crate::{random_mobile, sealed_token, sms_app, sms_firm, text_in};

#[actix_web::test]
async fn a_new_key_reseals_stored_tokens_and_the_old_key_can_go() {
    let (app, standin) = sms_app().await;
    let firm = sms_firm(&app, &standin).await;
    assert!(sealed_token(&app, firm.id()).await.starts_with("v1:dev-1:"));

    let new_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let both = format!("{},k2:{new_key}", app.settings.secrets.keys.expose_secret());
    let run = || {
        cli_command()
            .env("CP__SECRETS__KEYS", &both)
            .env("CP__SECRETS__ACTIVE_KEY", "k2")
            .args(["reseal-secrets", "--firm", &firm.firm.slug])
            .output()
            .unwrap()
    };
    let output = run();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("resealed 1 "), "{printed}");
    assert!(sealed_token(&app, firm.id()).await.starts_with("v1:k2:"));
    // Again: nothing left to reseal.
    assert!(String::from_utf8_lossy(&run().stdout).contains("resealed 0 "));

    // A server that knows only the new key opens it and checks the firm's webhooks with it.
    let base = standin.base_url.clone();
    let only_new = format!("k2:{new_key}");
    let rotated = spawn_app_with(move |settings| {
        settings.secrets.keys = only_new.into();
        settings.secrets.active_key = "k2".into();
        settings.twilio.api_base_url = base.clone();
        settings.twilio.messaging_base_url = base;
    })
    .await;
    // Twilio signs for the URL it was given, which is the first server's.
    let (answer, _) = text_in(&app, &firm, &random_mobile(), "After the rotation").await;
    assert_eq!(answer.status(), 503, "the first server no longer holds the key that sealed the token");
    let sid = crate::message_sid();
    let params =
        consultantpro::standins::twilio::inbound_params(&firm.account.sid, &sid, &random_mobile(), &firm.number, "Hi");
    let url = format!("{}/api/v1/twilio/sms", app.address);
    let signature = consultantpro::ingest::twilio::compute_signature(&firm.account.token, &url, &params);
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        form.append_pair(k, v);
    }
    let answer = reqwest::Client::new()
        .post(rotated.url("/api/v1/twilio/sms"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(form.finish())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}
