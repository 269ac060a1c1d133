//! The API keeps the contract its OpenAPI document states: schemathesis (pinned, in the
//! virtualenv `scripts/services.sh` makes) generates requests for every operation from
//! `/api/openapi.json` — examples, boundary values and fuzzed input, valid and not — as a
//! signed-in owner of a seeded firm, and fails on any server error, undocumented status,
//! wrong content type or response that does not match its schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/helpers.rs"]
mod helpers;

use helpers::{data_dir, json, signed_in_owner, spawn_app_with, unique_ip};

/// Examples per operation and phase: enough to reach every documented status, bounded so
/// the suite stays well inside CI's time (about half a minute here).
const EXAMPLES_PER_OPERATION: &str = "20";

#[actix_web::test]
async fn every_operation_keeps_the_documented_contract() {
    let app = spawn_app_with(|settings| {
        // Configured, so the webhook answers a bad signature with 400, not 503.
        settings.stripe.webhook_secret = "whsec_contract".to_owned().into();
    })
    .await;
    let (_, _, _, token) = signed_in_owner(&app).await;
    // Something to find, so reads and changes of existing records are exercised too.
    let seeds = [
        ("/api/v1/clients", serde_json::json!({ "name": "Contract Co" })),
        ("/api/v1/conversations", serde_json::json!({ "subject": "Contract" })),
    ];
    for (path, body) in seeds {
        let created = app.post_as(&token, path, &body).await;
        assert_eq!(created.status(), 201, "{}", json(created).await);
    }

    let schemathesis = data_dir().join("pyenv/bin/schemathesis");
    assert!(schemathesis.exists(), "{} is missing: run scripts/services.sh up", schemathesis.display());
    // Asynchronously: the server's Redis connection is driven by this test's runtime, which
    // a blocking wait would stall.
    let output = tokio::process::Command::new(&schemathesis)
        .args(["run", &app.url("/api/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // An address of its own: its failed sign-ins throttle nobody else.
        .args(["--header", &format!("X-Forwarded-For: {}", unique_ip())])
        .args(["--max-examples", EXAMPLES_PER_OPERATION, "--seed", "1", "--workers", "2"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // Signing out would end the token mid-run; MFA changes would lock the owner out.
        .args(["--exclude-path-regex", "/auth/(logout|mfa)"])
        // Twilio's form bodies have patterns hypothesis rarely meets; that is about the
        // generator, not the API.
        .args(["--suppress-health-check", "filter_too_much"])
        .args(["--no-color", "--output-truncate", "true"])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its run cache (`.schemathesis/`) goes with the project's other run data, not
        // into the checkout.
        .current_dir(data_dir())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found contract failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The positive control: it really ran every operation.
    let selected = report.lines().find(|l| l.trim_start().starts_with("Tested:")).unwrap_or_default();
    let tested: usize = selected.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(tested >= 150, "schemathesis tested only {tested} operations:\n{report}");
}
