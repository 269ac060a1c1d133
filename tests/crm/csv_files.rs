//! CSV import and export through the command line.

use std::path::PathBuf;

use crate::helpers::{cli_command, json, signed_in_owner, spawn_app};

fn write_csv(contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("cp-import-{}.csv", uuid::Uuid::now_v7().simple()));
    std::fs::write(&path, contents).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const CONTACTS: &str = "first_name,last_name,title,emails,phones,client_id
Ada,Lovelace,CFO,ada@example.com;ada.l@example.com,(415) 555-2671,
Grace,Hopper,,not-an-email,,
\"Katherine, K.\",Johnson,,kj@example.com,+44 20 7946 0958,
";

#[actix_web::test]
async fn a_file_with_a_bad_row_imports_nothing_and_names_the_line() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let file = write_csv(CONTACTS);
    let output = cli_command().args(["import", "contacts"]).arg(&file).args(["--firm", &firm.slug]).output().unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("line 3: emails"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(json(app.get_as(&owner, "/api/v1/contacts").await).await["data"].as_array().unwrap().is_empty());

    let output = cli_command()
        .args(["import", "contacts"])
        .arg(&file)
        .args(["--firm", &firm.slug, "--skip-invalid"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("imported 2 of 3 rows"), "{}", text(&output.stdout));
    assert!(text(&output.stderr).contains("line 3"));
    let listed = json(app.get_as(&owner, "/api/v1/contacts?sort=name").await).await;
    let names: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|c| c["last_name"].as_str().unwrap()).collect();
    // Name order is first name, then last name.
    assert_eq!(names, ["Lovelace", "Johnson"]);
    assert_eq!(listed["data"][0]["phones"], serde_json::json!(["+14155552671"]));
    assert_eq!(listed["data"][0]["emails"], serde_json::json!(["ada@example.com", "ada.l@example.com"]));
    assert_eq!(listed["data"][1]["first_name"], "Katherine, K.");
    let _ = std::fs::remove_file(file);
}

#[actix_web::test]
async fn exported_contacts_import_into_another_firm() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    // A title a spreadsheet would run as a formula.
    let body = serde_json::json!({ "first_name": "Export", "last_name": "Me", "title": "=1+2", "emails": ["export@example.com"], "phones": ["+14155550123"] });
    assert_eq!(app.post_as(&owner, "/api/v1/contacts", &body).await.status(), 201);
    let output = cli_command().args(["export", "contacts", "--firm", &firm.slug]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let csv = text(&output.stdout);
    assert!(csv.starts_with("first_name,last_name,title,emails,phones,client_id"), "{csv}");
    // Cells a spreadsheet would read as formulas are marked as text with a leading quote.
    assert!(csv.contains("Export,Me,'=1+2,export@example.com,'+14155550123,"), "{csv}");

    let (other, _, _, other_owner) = signed_in_owner(&app).await;
    let file = write_csv(&csv);
    let output = cli_command().args(["import", "contacts"]).arg(&file).args(["--firm", &other.slug]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let imported = json(app.get_as(&other_owner, "/api/v1/contacts?email=export@example.com").await).await;
    assert_eq!(imported["data"].as_array().unwrap().len(), 1);
    // The mark comes off again on import: the same values, not quoted ones.
    assert_eq!(imported["data"][0]["title"], "=1+2");
    assert_eq!(imported["data"][0]["phones"], serde_json::json!(["+14155550123"]));
    let _ = std::fs::remove_file(file);
}

#[actix_web::test]
async fn leads_import_with_money_in_minor_units() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let file = write_csv(
        "first_name,last_name,company,email,phone,source,status,estimated_value_minor,currency
Lin,Ng,Ng Ventures,lin@ng.example,,web,qualified,250000,usd
,,Nameless,,,,,12.5,USD
",
    );
    let output = cli_command().args(["import", "leads"]).arg(&file).args(["--firm", &firm.slug]).output().unwrap();
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("line 3"), "{}", text(&output.stderr));
    let fixed = write_csv(
        "first_name,last_name,company,email,phone,source,status,estimated_value_minor,currency
Lin,Ng,Ng Ventures,lin@ng.example,,web,qualified,250000,usd
",
    );
    let output = cli_command().args(["import", "leads"]).arg(&fixed).args(["--firm", &firm.slug]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let leads = json(app.get_as(&owner, "/api/v1/leads").await).await;
    assert_eq!(leads["data"][0]["estimated_value_minor"], 250000);
    assert_eq!(leads["data"][0]["currency"], "USD");
    assert_eq!(leads["data"][0]["status"], "qualified");
    let missing = cli_command().args(["import", "leads", "/nonexistent.csv", "--firm", &firm.slug]).output().unwrap();
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("opening"), "{}", text(&missing.stderr));
    let _ = (std::fs::remove_file(file), std::fs::remove_file(fixed));
}

/// POSTs `csv` to an import endpoint as `token`; the streamed lines, parsed.
async fn import_over_http(
    app: &crate::helpers::TestApp,
    token: &str,
    path: &str,
    csv: &str,
) -> (u16, Vec<serde_json::Value>) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "text/csv; charset=utf-8")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status != 200 {
        return (status, vec![serde_json::from_str(&text).unwrap()]);
    }
    (status, text.lines().map(|line| serde_json::from_str(line).unwrap()).collect())
}

#[actix_web::test]
async fn an_import_over_http_streams_its_progress_then_its_report() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;

    // A bad row: nothing is kept, the line is named.
    let (status, lines) = import_over_http(&app, &owner, "/api/v1/contacts/import", CONTACTS).await;
    assert_eq!(status, 200);
    let report = &lines.last().unwrap()["report"];
    assert_eq!(report["rolled_back"], true, "{lines:?}");
    assert_eq!(report["imported"], 0);
    assert_eq!(report["total"], 3);
    assert_eq!(report["rejected"][0]["line"], 3);
    assert!(report["rejected"][0]["problem"].as_str().unwrap().contains("emails"), "{report}");
    assert!(json(app.get_as(&owner, "/api/v1/contacts").await).await["data"].as_array().unwrap().is_empty());

    // Skipping bad rows keeps the rest.
    let (_, lines) = import_over_http(&app, &owner, "/api/v1/contacts/import?skip_invalid=true", CONTACTS).await;
    let report = &lines.last().unwrap()["report"];
    assert_eq!((report["imported"].as_u64(), report["rolled_back"].as_bool()), (Some(2), Some(false)), "{report}");
    assert_eq!(json(app.get_as(&owner, "/api/v1/contacts").await).await["data"].as_array().unwrap().len(), 2);

    // A larger file reports its progress on the way, in order, up to the whole.
    let mut leads = String::from("first_name,last_name,company,email\n");
    for i in 0..240 {
        leads.push_str(&format!("Lead{i},Person,Company {i},lead{i}@example.com\n"));
    }
    let (status, lines) = import_over_http(&app, &owner, "/api/v1/leads/import", &leads).await;
    assert_eq!(status, 200);
    let done: Vec<u64> = lines.iter().filter_map(|l| l["progress"]["done"].as_u64()).collect();
    assert!(done.len() >= 10, "progress lines: {done:?}");
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    assert_eq!(done.last(), Some(&240));
    assert!(lines.iter().all(|l| l["progress"].is_null() || l["progress"]["total"] == 240));
    assert_eq!(lines.last().unwrap()["report"]["imported"], 240);
    let listed = json(app.get_as(&owner, "/api/v1/leads?limit=100").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 100, "{listed}");
    let audit = json(app.get_as(&owner, "/api/v1/audit-events?action=leads.imported").await).await;
    assert_eq!(audit["data"][0]["metadata"]["imported"], 240, "{audit}");
}

#[actix_web::test]
async fn an_import_refuses_what_is_not_a_csv_file_and_who_may_not_write() {
    let app = spawn_app().await;
    let (firm, _, _, owner) = signed_in_owner(&app).await;
    let path = "/api/v1/contacts/import";
    let sent_as = |content_type: &'static str, body: &'static str| {
        app.client.post(app.url(path)).bearer_auth(&owner).header("content-type", content_type).body(body).send()
    };
    let wrong_type = sent_as("application/json", "{}").await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(json(wrong_type).await["error"]["code"], "unsupported_media_type");
    let (status, lines) = import_over_http(&app, &owner, path, "first_name,last_name\n").await;
    assert_eq!((status, lines[0]["error"]["code"].as_str()), (400, Some("validation_error")), "{lines:?}");
    let (status, lines) = import_over_http(&app, &owner, path, "first_name,last_name\nA,B,C,D\n\"open").await;
    assert_eq!(status, 400, "{lines:?}");
    assert!(lines[0]["error"]["message"].as_str().unwrap().starts_with("line "), "{lines:?}");
    let (status, _) = import_over_http(&app, &owner, "/api/v1/contacts/import?skip_invalid=perhaps", CONTACTS).await;
    assert_eq!(status, 400);

    let (reader_email, _) =
        crate::helpers::add_member(&app.db(), &firm, consultantpro::domain::memberships::Role::Readonly).await;
    let reader = app.login_ok(&firm.slug, &reader_email, crate::helpers::PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = import_over_http(&app, &reader, path, CONTACTS).await;
    assert_eq!(status, 403);
    let (_, _, _, other_firm) = signed_in_owner(&app).await;
    let (status, _) = import_over_http(&app, &other_firm, &format!("{path}?skip_invalid=true"), CONTACTS).await;
    assert_eq!(status, 200);
    // Nothing was kept from the refused attempts; the other firm's import is its own.
    assert!(json(app.get_as(&owner, "/api/v1/contacts").await).await["data"].as_array().unwrap().is_empty());
    assert_eq!(json(app.get_as(&other_firm, "/api/v1/contacts").await).await["data"].as_array().unwrap().len(), 2);
}

/// Imports are rationed (each holds a connection for its whole transaction): one at a time
/// per firm, files within their limits, a NUL refused by its line before anything runs.
#[actix_web::test]
async fn imports_are_rationed_and_refuse_what_the_database_cannot_store() {
    let app = spawn_app().await;
    let (_, _, _, owner) = signed_in_owner(&app).await;
    let mut big = String::from("first_name,last_name,company\n");
    for i in 0..3000 {
        big.push_str(&format!("Queued{i},Lead,Company {i}\n"));
    }
    let first = app
        .client
        .post(app.url("/api/v1/leads/import"))
        .bearer_auth(&owner)
        .header("content-type", "text/csv")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200, "the first import has begun");
    let (status, lines) = import_over_http(&app, &owner, "/api/v1/contacts/import", CONTACTS).await;
    assert_eq!(status, 409, "one import at a time per firm: {lines:?}");
    let report: serde_json::Value = serde_json::from_str(first.text().await.unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(report["report"]["imported"], 3000, "{report}");
    // Its turn ended with it: the next import runs.
    let (status, _) = import_over_http(&app, &owner, "/api/v1/contacts/import?skip_invalid=true", CONTACTS).await;
    assert_eq!(status, 200);

    let with_nul = "first_name,last_name,title,emails,phones,client_id\nAda,Lovelace,,,,\nNul\u{0},Row,,,,\n";
    let (status, lines) = import_over_http(&app, &owner, "/api/v1/contacts/import", with_nul).await;
    assert_eq!(status, 400);
    assert!(lines[0]["error"]["message"].as_str().unwrap().starts_with("line 3:"), "{lines:?}");
    let too_many = format!("first_name,last_name\n{}", "A,B\n".repeat(50_001));
    let (status, lines) = import_over_http(&app, &owner, "/api/v1/contacts/import", &too_many).await;
    assert_eq!(status, 400, "{lines:?}");
    assert!(lines[0]["error"]["details"]["fields"]["body"].as_str().unwrap().contains("50000"), "{lines:?}");
    let oversized = "A,B\n".repeat(10 * 1024 * 1024 / 4 + 1);
    let (status, lines) = import_over_http(&app, &owner, "/api/v1/contacts/import", &oversized).await;
    assert_eq!(status, 413);
    assert_eq!(lines[0]["error"]["code"], "payload_too_large", "{lines:?}");
    // The refused files kept nothing: only the two good rows of the run that went through.
    assert_eq!(json(app.get_as(&owner, "/api/v1/contacts").await).await["data"].as_array().unwrap().len(), 2);
}
