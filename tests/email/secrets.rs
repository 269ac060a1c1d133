//! Mailbox passwords are sealed at rest and survive a key rotation.

use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{cli_command, json, signed_in_owner, spawn_app, spawn_app_with};
use crate::{connect_mailbox, count, imap_password, imap_user};

async fn sealed_with(app: &crate::helpers::TestApp, firm: consultantpro::domain::FirmId, id: &str, key: &str) -> i64 {
    let sql = match key {
        "dev-1" => {
            "SELECT count(*) AS n FROM mailboxes WHERE id = $1::uuid AND imap_password_sealed LIKE 'v1:dev-1:%' \
                      AND smtp_password_sealed LIKE 'v1:dev-1:%'"
        }
        _ => {
            "SELECT count(*) AS n FROM mailboxes WHERE id = $1::uuid AND imap_password_sealed LIKE 'v1:k2:%' \
                AND smtp_password_sealed LIKE 'v1:k2:%'"
        }
    };
    count(app, firm, sql, id).await
}

#[actix_web::test]
async fn a_new_key_reseals_mailbox_passwords_and_the_old_key_can_go() {
    let app = spawn_app().await;
    let (firm, _, _, token) = signed_in_owner(&app).await;
    let smtp = json!({ "host": "127.0.0.1", "port": app.settings.mail.smtp_port, "tls": "none",
                       "username": "relay-user", "password": "relay-password" });
    let mailbox = connect_mailbox(&app, &token, &imap_user(), json!({ "enabled": false, "smtp": smtp })).await;
    let id = mailbox["id"].as_str().unwrap().to_owned();
    assert_eq!(mailbox["smtp"]["password_set"], true);
    assert_eq!(sealed_with(&app, firm.firm_id(), &id, "dev-1").await, 1);

    let new_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let both = format!("{},k2:{new_key}", app.settings.secrets.keys.expose_secret());
    let run = || {
        cli_command()
            .env("CP__SECRETS__KEYS", &both)
            .env("CP__SECRETS__ACTIVE_KEY", "k2")
            .args(["reseal-secrets", "--firm", &firm.slug])
            .output()
            .unwrap()
    };
    let output = run();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("resealed 2 "), "{printed}");
    assert_eq!(sealed_with(&app, firm.firm_id(), &id, "k2").await, 1);
    assert!(String::from_utf8_lossy(&run().stdout).contains("resealed 0 "), "nothing left to reseal");

    // The first server no longer holds the key; a server with only the new key logs in.
    let answer = app.post_as(&token, &format!("/api/v1/mailboxes/{id}/test"), &json!({})).await;
    assert_eq!(answer.status(), 503);
    let only_new = format!("k2:{new_key}");
    let rotated = spawn_app_with(move |settings| {
        settings.secrets.keys = only_new.into();
        settings.secrets.active_key = "k2".into();
    })
    .await;
    let answer = json(rotated.post_as(&token, &format!("/api/v1/mailboxes/{id}/test"), &json!({})).await).await;
    assert_eq!(answer["data"]["ok"], true, "{answer}");
    assert!(!answer.to_string().contains(&imap_password(&app)));
}
