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
