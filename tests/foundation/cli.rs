//! The `consultantpro` command as an operator uses it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{json, test_db};

fn cli() -> Command {
    crate::helpers::cli_command()
}

fn run_with_stdin(mut command: Command, stdin: &str) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn unique_slug() -> String {
    format!("cli-{}", uuid::Uuid::now_v7().simple())
}

#[actix_web::test]
async fn create_firm_then_user_with_password_from_stdin() {
    test_db().await; // migrated
    let slug = unique_slug();
    let output = cli().args(["create-firm", "--slug", &slug, "--name", "Acme Advisory"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains(&slug));

    let email = format!("lead-{}@example.com", uuid::Uuid::now_v7().simple());
    let mut command = cli();
    command.args(["create-user", "--firm", &slug, "--email", &email, "--role", "admin"]);
    let output = run_with_stdin(command, "a sufficiently long password\n");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("admin"));
    assert!(!text(&output.stdout).contains("sufficiently"), "password echoed");

    // The same person again is refused, with a reason and a failing exit code.
    let mut command = cli();
    command.args(["create-user", "--firm", &slug, "--email", &email, "--role", "staff"]);
    let output = run_with_stdin(command, "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("already a member"), "{}", text(&output.stderr));
}

#[actix_web::test]
async fn bad_input_exits_non_zero_with_a_clear_message() {
    test_db().await;
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (vec!["create-firm".into(), "--slug".into(), "Bad Slug".into(), "--name".into(), "X".into()], "", "slug"),
        (
            vec![
                "create-user".into(),
                "--firm".into(),
                unique_slug(),
                "--email".into(),
                "a@example.com".into(),
                "--role".into(),
                "staff".into(),
            ],
            "a long enough password\n",
            "firm not found",
        ),
        (
            vec![
                "create-user".into(),
                "--firm".into(),
                "demo".into(),
                "--email".into(),
                "x@example.com".into(),
                "--role".into(),
                "emperor".into(),
            ],
            "",
            "role",
        ),
    ];
    for (args, stdin, expected) in cases {
        let mut command = cli();
        command.args(&args);
        let output = run_with_stdin(command, stdin);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    let slug = unique_slug();
    assert!(cli().args(["create-firm", "--slug", &slug, "--name", "Short Pw"]).output().unwrap().status.success());
    let mut command = cli();
    command.args(["create-user", "--firm", &slug, "--email", "short@example.com", "--role", "staff"]);
    let output = run_with_stdin(command, "short\n");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("at least 12 characters"), "{}", text(&output.stderr));
}

#[actix_web::test]
async fn create_operator_reads_the_password_from_stdin_and_refuses_duplicates() {
    test_db().await;
    let email = format!("ops-{}@platform.example.com", uuid::Uuid::now_v7().simple());
    let mut command = cli();
    command.args(["create-operator", "--email", &email]);
    let output = run_with_stdin(command, "operator password long enough\n");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains(&email));
    let mut command = cli();
    command.args(["create-operator", "--email", &email]);
    let output = run_with_stdin(command, "operator password long enough\n");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("already exists"), "{}", text(&output.stderr));
}

#[actix_web::test]
async fn demo_is_idempotent() {
    test_db().await;
    let first = cli().env("CP_DEMO_PASSWORD", "demo password for tests").arg("demo").output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = cli().arg("demo").output().unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("created earlier"), "{}", text(&second.stdout));
    assert!(!text(&second.stdout).contains("password:"), "credentials are printed only once");
}

#[test]
fn production_refuses_development_secrets() {
    let output = cli().env("CP_ENV", "production").arg("serve").output().unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("development secrets") && stderr.contains("auth.jwt_secret"), "{stderr}");
    assert!(!stderr.contains("development-only-jwt-secret"), "secret printed: {stderr}");
}

#[test]
fn an_unset_environment_counts_as_production() {
    for environment in [None, Some(""), Some("  ")] {
        let mut command = cli();
        match environment {
            None => command.env_remove("CP_ENV"),
            Some(value) => command.env("CP_ENV", value),
        };
        let output = command.arg("serve").output().unwrap();
        assert!(!output.status.success(), "served with CP_ENV {environment:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("environment `production`") && stderr.contains("auth.jwt_secret"), "{stderr}");
    }
    // The positive control: the same command with an explicit development profile gets
    // past the check (it then stops at `status`, which needs nothing but the database).
    let output = cli().env("CP_ENV", "test").arg("status").output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[actix_web::test]
async fn serve_stops_cleanly_on_sigint() {
    test_db().await;
    let mut served = crate::helpers::serve(&[]);
    assert_eq!(served.listening["bus"], "redis");
    let port = served.port;
    let client = reqwest::Client::new();
    let ready = client.get(format!("http://127.0.0.1:{port}/ready/")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(json(ready).await["data"]["status"], "ready");

    let started = Instant::now();
    let status = Command::new("kill").args(["-INT", &served.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = served.child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "server did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
    let rest: Vec<String> = served.log.take().unwrap().map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "no clean-stop log line in {rest:?}");
}
