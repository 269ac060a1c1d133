//! The `consultantpro` command: serve, migrate, and the operator's set-up commands.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use consultantpro::config::Settings;
use consultantpro::db::Db;
use consultantpro::domain::cluster;
use consultantpro::domain::memberships::Role;
use consultantpro::domain::onboarding::{self, Joiner};
use consultantpro::domain::operators::{self, NewOperator};
use consultantpro::domain::users::NewUser;
use consultantpro::domain::{FirmId, sms};
use consultantpro::ingest::csv as csv_io;
use consultantpro::secret_box::SecretBox;
use consultantpro::standins::twilio::{self as standin_twilio, TwilioStandin};
use consultantpro::{Application, db, telemetry};
use rand::Rng;
use rand::distr::Alphanumeric;
use scoped_futures::ScopedFutureExt;

/// mimalloc: the request path allocates and frees many small buffers across worker
/// threads; with it a page of contacts was served 20% faster than with glibc's malloc
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "consultantpro", version, about = "ConsultantPro communications hub and API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSockets until SIGINT/SIGTERM.
    Serve,
    /// Apply pending database migrations as the owner role.
    Migrate,
    /// Create a firm.
    CreateFirm {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Add a user to a firm, creating the login if it is new. The password comes from
    /// CP_PASSWORD, else the first line of stdin when stdin is not a terminal, else a prompt.
    CreateUser {
        /// The firm's slug.
        #[arg(long)]
        firm: String,
        #[arg(long)]
        email: String,
        /// owner, admin, staff, billing or readonly.
        #[arg(long)]
        role: String,
        /// Display name; defaults to the part of the email before the @.
        #[arg(long)]
        name: Option<String>,
    },
    /// Create a platform operator (platform staff). Operators see firm metadata only;
    /// content needs an approved break-glass grant. Password as for create-user.
    CreateOperator {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Give an operator a (new) TOTP second factor, required at platform sign-in. Prints the
    /// secret and its otpauth:// URI once, for the operator's authenticator app.
    EnrollOperatorTotp {
        #[arg(long)]
        email: String,
    },
    /// Switch an operator off: their tokens stop working at the next request.
    DeactivateOperator {
        #[arg(long)]
        email: String,
    },
    /// Create the demo firm `demo` with an owner, printing the credentials once.
    Demo,
    /// Print the OpenAPI document (as served at /api/openapi.json); the browser app's
    /// types are generated from it.
    Openapi,
    /// Import contacts or leads from a CSV file into a firm. By default a file with any bad
    /// row imports nothing; every bad row is reported with its line number.
    Import {
        kind: CsvKind,
        file: std::path::PathBuf,
        /// The firm's slug.
        #[arg(long)]
        firm: String,
        /// Import the good rows and report the bad ones instead of importing nothing.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// The cluster as the database sees it: live nodes, which node owns which firm, and
    /// each owned child's state and last error.
    Status {
        /// One JSON document instead of tables, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Serve the local stand-in for Twilio's Messaging APIs (the real service cannot be
    /// reached from here) until interrupted. Point `twilio.api_base_url` and
    /// `twilio.messaging_base_url` at it.
    TwilioStandin {
        #[arg(long, default_value = "127.0.0.1:58090")]
        listen: String,
        /// The hub's public base URL, where `POST /standin/inbound` delivers signed messages.
        #[arg(long)]
        hub_url: Option<String>,
        /// Know the demo firm's account (see `consultantpro demo`).
        #[arg(long)]
        demo: bool,
        /// Know another account: `AC...:TOKEN:+NUMBER` (the browser tests give their firm
        /// one of its own). Repeatable.
        #[arg(long = "account", value_parser = parse_standin_account)]
        accounts: Vec<standin_twilio::StandinAccount>,
    },
    /// Re-seal every stored credential under `secrets.active_key` (after adding a new key);
    /// the old key may be removed afterwards.
    ResealSecrets {
        /// Only this firm's (by slug); TOTP secrets, which belong to logins, only in a full run.
        #[arg(long)]
        firm: Option<String>,
    },
    /// Export a firm's contacts or leads as CSV (to stdout, or --output FILE).
    Export {
        kind: CsvKind,
        #[arg(long)]
        firm: String,
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CsvKind {
    Contacts,
    Leads,
}

/// `AC...:TOKEN:+NUMBER` -> a stand-in account with that one number and a Messaging Service.
fn parse_standin_account(text: &str) -> Result<standin_twilio::StandinAccount, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(sid), Some(token), Some(number)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected AC...:TOKEN:+NUMBER".into());
    };
    if !sid.starts_with("AC") || token.is_empty() || !number.starts_with('+') {
        return Err("expected AC...:TOKEN:+NUMBER".into());
    }
    let mut account = standin_twilio::StandinAccount::generate(number);
    account.sid = sid.to_owned();
    account.token = token.to_owned();
    Ok(account)
}

fn print_openapi() -> anyhow::Result<()> {
    use utoipa::OpenApi;
    println!("{}", consultantpro::http::openapi::ApiDoc::openapi().to_pretty_json()?);
    Ok(())
}

const DEMO_SLUG: &str = "demo";
const DEMO_OWNER_EMAIL: &str = "owner@demo.consultantpro.test";

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The document needs no configuration, database or secrets (the web build runs it).
    if matches!(cli.command, Command::Openapi) {
        return match print_openapi() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Lines are written by a thread of their own, several to a write(2) when they come
    // faster than one at a time: a write per request's line had cost a busy server a few
    // percent of its CPU. None is dropped (a full queue makes the logging thread wait), and
    // what is queued is written out when `flush_logs` drops, before `main` returns.
    let (log_writer, flush_logs) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    telemetry::init_subscriber(telemetry::get_subscriber(&settings.telemetry, log_writer));
    let outcome = run(cli.command, settings).await;
    // Written out before the last word, so the error comes after the lines that led to it.
    drop(flush_logs);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every socket is a file descriptor; the soft limit a shell hands out (often 1,024 or
/// 20,000) would cap a node long before its memory does. Raised to the hard limit, which
/// only the administrator can lift (README, "Running large nodes").
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            raise_open_file_limit();
            let app = Application::build(settings).await?;
            actix_web::rt::spawn(stop_gracefully_on_signal(app.handle(), app.cluster()));
            app.run_until_stopped().await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            let applied = db::migrate::run_migrations(&settings.database).await.context("migrating the database")?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for version in applied {
                println!("applied {version}");
            }
            // Secrets stored before they were sealed (TOTP and webhook signing secrets) are
            // sealed now, so an upgraded database holds none in the clear.
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let secret_box = SecretBox::from_settings(&settings.secrets)?;
            let sealed = consultantpro::domain::webhooks::seal_all(&db, &secret_box, None).await?
                + consultantpro::domain::mfa::seal_all(&db, &secret_box).await?;
            if sealed > 0 {
                println!("sealed {sealed} stored secrets under key `{}`", settings.secrets.active_key);
            }
        }
        Command::CreateFirm { slug, name } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let firm = onboarding::create_firm(&db, &slug, &name).await?;
            println!("created firm {} ({}) id {}", firm.slug, firm.name, firm.id);
        }
        Command::CreateUser { firm, email, role, name } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let role: Role = role.parse()?;
            let firm = onboarding::find_firm(&db, &firm).await.with_context(|| format!("firm `{firm}`"))?;
            let joiner = match onboarding::find_user(&db, &email).await? {
                Some(user) => {
                    println!("{} already has a login; adding it to {}", user.email, firm.slug);
                    Joiner::Existing(user.id)
                }
                None => {
                    let password = read_password()?;
                    let display_name = name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
                    Joiner::New(NewUser::parse(&email, &display_name, &password)?)
                }
            };
            let membership = onboarding::add_member(&db, firm.firm_id(), joiner, role).await?;
            println!("{email} is now {} of {}", membership.role, firm.slug);
        }
        Command::CreateOperator { email, name } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let password = read_password()?;
            let display_name = name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            let new = NewOperator::parse(&email, &display_name, &password)?;
            let operator =
                db.platform_tx(|conn| async move { operators::insert(conn, &new).await }.scope_boxed()).await?;
            println!("operator {} created (id {})", operator.email, operator.id);
        }
        Command::EnrollOperatorTotp { email } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let issuer = settings.auth.totp_issuer.clone();
            let secrets = SecretBox::from_settings(&settings.secrets)?;
            let enrollment = db
                .platform_tx(|conn| {
                    async move {
                        let operator = operators::find_by_email(conn, &email)
                            .await?
                            .ok_or(consultantpro::domain::DomainError::NotFound("operator"))?;
                        operators::enroll_totp(conn, operator.id, &issuer, &secrets).await
                    }
                    .scope_boxed()
                })
                .await?;
            println!("second factor enrolled; add it to the operator's authenticator (shown once):");
            println!("  secret: {}", enrollment.secret);
            println!("  uri:    {}", enrollment.otpauth_uri);
        }
        Command::DeactivateOperator { email } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let operator =
                db.platform_tx(|conn| async move { operators::deactivate(conn, &email).await }.scope_boxed()).await?;
            println!("operator {} deactivated; their tokens no longer work", operator.email);
        }
        Command::Demo => demo(&settings).await?,
        Command::Openapi => print_openapi()?,
        Command::TwilioStandin { listen, hub_url, demo, accounts } => {
            let listener = std::net::TcpListener::bind(&listen).with_context(|| format!("binding {listen}"))?;
            let standin = TwilioStandin::start(listener, hub_url)?;
            if demo {
                standin.add_account(standin_twilio::demo_account());
            }
            for account in accounts {
                standin.add_account(account);
            }
            println!("Twilio stand-in on {}", standin.base_url);
            tokio::signal::ctrl_c().await?;
        }
        Command::ResealSecrets { firm } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let secret_box = SecretBox::from_settings(&settings.secrets)?;
            let only = match firm {
                Some(slug) => {
                    Some(onboarding::find_firm(&db, &slug).await.with_context(|| format!("firm `{slug}`"))?.firm_id())
                }
                None => None,
            };
            let resealed = sms::reseal_all(&db, &secret_box, only).await?
                + consultantpro::domain::mailboxes::reseal_all(&db, &secret_box, only).await?
                + consultantpro::domain::webhooks::seal_all(&db, &secret_box, only).await?
                // TOTP secrets belong to logins, not firms: resealed by a run over every firm.
                + match only {
                    Some(_) => 0,
                    None => consultantpro::domain::mfa::seal_all(&db, &secret_box).await?,
                };
            println!("resealed {resealed} stored credentials under key `{}`", settings.secrets.active_key);
        }
        Command::Status { json } => status(&settings, json).await?,
        Command::Import { kind, file, firm, skip_invalid } => {
            import(&settings, kind, &file, &firm, skip_invalid).await?
        }
        Command::Export { kind, firm, output } => {
            let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
            let firm = onboarding::find_firm(&db, &firm).await.with_context(|| format!("firm `{firm}`"))?;
            let out: Box<dyn std::io::Write> = match &output {
                Some(path) => {
                    Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?)
                }
                None => Box::new(std::io::stdout().lock()),
            };
            let written = match kind {
                CsvKind::Contacts => {
                    csv_io::export_contacts(&db, firm.firm_id(), out, &settings.crm.default_phone_region).await?
                }
                CsvKind::Leads => csv_io::export_leads(&db, firm.firm_id(), out).await?,
            };
            eprintln!("exported {written} rows");
        }
    }
    Ok(())
}

async fn import(
    settings: &Settings,
    kind: CsvKind,
    file: &std::path::Path,
    firm: &str,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let firm = onboarding::find_firm(&db, firm).await.with_context(|| format!("firm `{firm}`"))?;
    let reader = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let region = &settings.crm.default_phone_region;
    let (report, total) = match kind {
        CsvKind::Contacts => {
            let rows = csv_io::read_contacts(reader)?;
            let bar = progress_bar(rows.len());
            let total = rows.len();
            (csv_io::import_contacts(&db, firm.firm_id(), rows, skip_invalid, region, &|n| bar.inc(n)).await?, total)
        }
        CsvKind::Leads => {
            let rows = csv_io::read_leads(reader)?;
            let bar = progress_bar(rows.len());
            let total = rows.len();
            (csv_io::import_leads(&db, firm.firm_id(), rows, skip_invalid, region, &|n| bar.inc(n)).await?, total)
        }
    };
    for (line, problem) in &report.rejected {
        eprintln!("line {line}: {problem}");
    }
    if report.rolled_back {
        bail!(
            "{} of {total} rows are invalid; nothing was imported (fix them, or use --skip-invalid)",
            report.rejected.len()
        );
    }
    println!("imported {} of {total} rows into {}; {} skipped", report.imported, firm.slug, report.rejected.len());
    Ok(())
}

async fn status(settings: &Settings, as_json: bool) -> anyhow::Result<()> {
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let name = settings.cluster.name.clone();
    let (nodes, firms) = db
        .platform_tx(|conn| async move { cluster::status(conn, &name).await }.scope_boxed())
        .await
        .context("reading the cluster's state")?;
    if as_json {
        let document = serde_json::json!({ "cluster": settings.cluster.name, "nodes": nodes, "firms": firms });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    let live = nodes.iter().filter(|n| n.live && !n.stopping).count();
    println!("cluster `{}`: {live} live node(s), {} firm(s) with owned work", settings.cluster.name, firms.len());
    println!();
    println!("{:<36}  {:<20}  {:>7}  {:<8}  {:>6}  STARTED", "NODE", "HOST", "PID", "STATE", "FIRMS");
    for node in &nodes {
        let state = match (node.live, node.stopping) {
            (true, false) => "live",
            (true, true) => "stopping",
            (false, _) => "lapsed",
        };
        println!(
            "{:<36}  {:<20}  {:>7}  {:<8}  {:>6}  {}",
            node.id,
            node.hostname,
            node.pid,
            state,
            node.firms_owned,
            node.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    println!();
    println!("{:<36}  {:<24}  {:<36}  {:>5}", "FIRM", "SLUG", "OWNER", "TOKEN");
    for firm in &firms {
        let owner = firm.node_id.map_or_else(|| "(none)".to_owned(), |n| n.to_string());
        println!("{:<36}  {:<24}  {:<36}  {:>5}", firm.firm_id, firm.firm_slug, owner, firm.fencing_token);
    }
    println!();
    println!(
        "{:<36}  {:<36}  {:<18}  {:<16}  {:<10}  {:>8}  LAST ERROR",
        "NODE", "FIRM", "KIND", "ID", "STATE", "RESTARTS"
    );
    for node in nodes.iter().filter(|n| n.live) {
        for child in node.children.as_array().into_iter().flatten() {
            let text = |key: &str| child.get(key).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            println!(
                "{:<36}  {:<36}  {:<18}  {:<16}  {:<10}  {:>8}  {}",
                node.id,
                text("firm_id"),
                text("kind"),
                text("key"),
                text("state"),
                child.get("restarts").and_then(|v| v.as_u64()).unwrap_or(0),
                text("last_error")
            );
        }
    }
    Ok(())
}

fn progress_bar(len: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// Idempotent: a second run finds the firm and owner and changes nothing.
async fn demo(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::new(&settings.database, settings.jobs.max_attempts)?;
    let firm = match onboarding::find_firm(&db, DEMO_SLUG).await {
        Ok(firm) => firm,
        Err(consultantpro::domain::DomainError::NotFound(_)) => {
            onboarding::create_firm(&db, DEMO_SLUG, "Demo Consulting").await?
        }
        Err(other) => return Err(other.into()),
    };
    if let Some(number) = demo_sms(settings, &db, firm.firm_id()).await? {
        println!("demo SMS on {number}, through the Twilio stand-in (see the README)");
    }
    demo_support(settings, &db, firm.firm_id()).await?;
    if let Some(address) = demo_mailbox(settings, &db, firm.firm_id()).await? {
        println!("demo mailbox {address}, read from the project's Dovecot as {DEMO_IMAP_USER} (see the README)");
    }
    if let Some(owner) = onboarding::find_user(&db, DEMO_OWNER_EMAIL).await? {
        demo_booking_page(&db, firm.firm_id(), owner.id).await?;
        println!("demo firm `{DEMO_SLUG}` is ready; its owner {DEMO_OWNER_EMAIL} was created earlier");
        return Ok(());
    }
    let password = std::env::var("CP_DEMO_PASSWORD").unwrap_or_else(|_| generate_password());
    let owner = NewUser::parse(DEMO_OWNER_EMAIL, "Demo Owner", &password)
        .context("CP_DEMO_PASSWORD is not an acceptable password")?;
    let member = onboarding::add_member(&db, firm.firm_id(), Joiner::New(owner), Role::Owner).await?;
    demo_booking_page(&db, firm.firm_id(), member.user_id).await?;
    println!("demo firm `{DEMO_SLUG}` created. Sign in with (shown once):");
    println!("  firm:     {DEMO_SLUG}");
    println!("  email:    {DEMO_OWNER_EMAIL}");
    println!("  password: {password}");
    Ok(())
}

/// Gives the demo firm the stand-in's demo Twilio account and number, once, when Twilio is
/// the local stand-in (a real account is never touched).
async fn demo_sms(settings: &Settings, db: &Db, firm: FirmId) -> anyhow::Result<Option<String>> {
    let api = url::Url::parse(&settings.twilio.api_base_url).context("twilio.api_base_url")?;
    let local = api
        .host_str()
        .is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()));
    if !local {
        return Ok(None);
    }
    let account = standin_twilio::demo_account();
    let secret_box = SecretBox::from_settings(&settings.secrets)?;
    let sealed = secret_box.seal(&account.token, &sms::token_context(firm))?;
    let public = format!("http://{}:{}", settings.server.host, settings.server.port);
    let number = account.numbers[0].clone();
    let added = number.clone();
    db.firm_tx(firm, |conn| {
        async move {
            if sms::settings(conn, firm).await?.is_some() {
                return Ok(());
            }
            let input = sms::SettingsInput {
                account_sid: account.sid.clone(),
                auth_token_sealed: Some(sealed),
                public_base_url: public,
                help_text: "Demo Consulting: reply STOP to stop, START to start again.".into(),
            };
            sms::save_settings(conn, firm, input).await?;
            let sender =
                sms::NumberInput { phone_number: Some(added), label: Some("Demo line".into()), ..Default::default() };
            sms::add_number(conn, firm, sender).await.map(|_| ())
        }
        .scope_boxed()
    })
    .await?;
    Ok(Some(number))
}

const DEMO_IMAP_USER: &str = "demo@mail.test";

/// Gives the demo firm a mailbox on the project's own Dovecot, once, when there is one
/// (`mail.local_imap_port`, development only).
async fn demo_mailbox(settings: &Settings, db: &Db, firm: FirmId) -> anyhow::Result<Option<String>> {
    use consultantpro::domain::mailboxes::{self, MailboxInput, SmtpInput, TlsMode};
    let (Some(port), Some(password)) = (settings.mail.local_imap_port, settings.mail.local_imap_password.as_ref())
    else {
        return Ok(None);
    };
    let id = uuid::Uuid::now_v7();
    let secret_box = SecretBox::from_settings(&settings.secrets)?;
    let sealed = secret_box
        .seal(secrecy::ExposeSecret::expose_secret(password), &mailboxes::password_context(firm, id, "imap"))?;
    let mut input = MailboxInput {
        name: "Support".into(),
        address: "support@demo.consultantpro.test".into(),
        imap_host: "127.0.0.1".into(),
        imap_port: i32::from(port),
        imap_tls: Some(TlsMode::None),
        imap_username: DEMO_IMAP_USER.into(),
        imap_password_sealed: Some(sealed),
        folders: vec!["INBOX".into()],
        smtp: Some(SmtpInput {
            host: settings.mail.smtp_host.clone(),
            port: i32::from(settings.mail.smtp_port),
            tls: TlsMode::parse(&settings.mail.smtp_tls).unwrap_or(TlsMode::None),
            username: None,
            password_sealed: None,
        }),
        poll_interval_secs: 60,
        mark_seen: false,
        enabled: true,
        auto_acknowledge: None,
    };
    mailboxes::check(&mut input, true, &settings.mail.allow_private_hosts)?;
    let address = input.address.clone();
    let cluster_name = settings.cluster.name.clone();
    db.firm_tx(firm, |conn| {
        async move {
            if !mailboxes::list(conn, firm).await?.is_empty() {
                return Ok(());
            }
            mailboxes::create(conn, firm, id, input).await?;
            cluster::require_owner(conn, &cluster_name, firm).await
        }
        .scope_boxed()
    })
    .await?;
    Ok(Some(address))
}

/// Gives the demo firm office hours and a support policy counted in them, once.
async fn demo_support(settings: &Settings, db: &Db, firm: FirmId) -> anyhow::Result<()> {
    use consultantpro::domain::business_calendars::{self, CalendarInput, Weekday, WindowSpec};
    use consultantpro::domain::sla_policies::{self, PolicyInput, Target, Targets};
    let cluster_name = settings.cluster.name.clone();
    db.firm_tx(firm, |conn| {
        async move {
            // Once: a firm that has set up its own support rules keeps them.
            let configured = !sla_policies::list(conn, firm).await?.is_empty()
                || !business_calendars::list(conn, firm).await?.is_empty();
            if configured {
                return Ok(());
            }
            let weekdays = [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday];
            let windows = weekdays
                .into_iter()
                .map(|weekday| WindowSpec { weekday, start: "09:00".into(), end: "17:00".into() })
                .collect();
            let office = CalendarInput {
                name: Some("Office hours".into()),
                time_zone: Some("America/New_York".into()),
                always_open: Some(false),
                windows: Some(windows),
                holidays: Some(Vec::new()),
            };
            let calendar = business_calendars::create(conn, firm, office).await?;
            let target = |first, resolution| Target {
                first_response_minutes: Some(first),
                next_response_minutes: Some(first),
                resolution_minutes: Some(resolution),
            };
            let targets = Targets {
                low: Some(target(480, 4800)),
                normal: Some(target(240, 2400)),
                high: Some(target(120, 960)),
                urgent: Some(target(60, 480)),
            };
            let policy = PolicyInput {
                name: Some("Standard support".into()),
                targets: Some(targets),
                business_calendar_id: Some(Some(calendar.id)),
                notice_calendar_id: Some(Some(calendar.id)),
                ..PolicyInput::default()
            };
            sla_policies::create(conn, firm, policy).await?;
            cluster::require_owner(conn, &cluster_name, firm).await
        }
        .scope_boxed()
    })
    .await?;
    Ok(())
}

/// Gives the demo owner weekday hours and a public booking page,
/// `/api/v1/public/booking-links/demo-intro-call` (when that slug is free), once: a firm
/// with booking links keeps its own.
async fn demo_booking_page(db: &Db, firm: FirmId, owner: uuid::Uuid) -> anyhow::Result<()> {
    use consultantpro::domain::bookings::{self, AvailabilityInput, LinkInput};
    use consultantpro::domain::business_calendars::{Weekday, WindowSpec};
    db.firm_tx(firm, |conn| {
        async move {
            if !bookings::list_links(conn, firm).await?.is_empty() {
                return Ok(());
            }
            let days = [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday];
            let windows = days
                .into_iter()
                .map(|weekday| WindowSpec { weekday, start: "09:00".into(), end: "17:00".into() })
                .collect();
            let hours = AvailabilityInput { time_zone: "America/New_York".into(), windows, overrides: Vec::new() };
            bookings::set_availability(conn, firm, owner, hours).await?;
            let page = LinkInput {
                slug: Some("demo-intro-call".into()),
                title: Some("Introductory call".into()),
                member_ids: Some(vec![owner]),
                duration_minutes: Some(30),
                buffer_after_minutes: Some(10),
                min_notice_minutes: Some(120),
                ..LinkInput::default()
            };
            match bookings::create_link(conn, firm, owner, page).await {
                Ok(_) | Err(consultantpro::domain::DomainError::Conflict(_)) => Ok(()),
                Err(other) => Err(other),
            }
        }
        .scope_boxed()
    })
    .await?;
    Ok(())
}

fn generate_password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect()
}

/// Never from an argument: arguments show up in `ps` and shell history.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("CP_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on stdin (pipe it as the first line, or set CP_PASSWORD)");
        }
        return Ok(password);
    }
    let password = rpassword::prompt_password("Password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
    if password != again {
        bail!("the passwords do not match");
    }
    Ok(password)
}

/// SIGINT (Ctrl-C) and SIGTERM both hand the node's firms to the other nodes at once,
/// stop accepting, let in-flight requests finish (up to `server.shutdown_timeout_secs`),
/// then end `run_until_stopped`.
async fn stop_gracefully_on_signal(
    handle: actix_web::dev::ServerHandle,
    cluster: std::sync::Arc<consultantpro::actors::cluster::ClusterHandle>,
) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received; finishing in-flight requests"),
        () = terminate => tracing::info!("SIGTERM received; finishing in-flight requests"),
    }
    cluster.shutdown().await;
    handle.stop(true).await;
}
