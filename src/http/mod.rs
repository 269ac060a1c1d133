//! HTTP: routing, extractor configuration, the envelope and error format, and one module
//! per resource group. Handlers stay thin: parse, authorise, call `domain`, render.

pub mod audit_log;
pub mod auth;
pub mod body;
pub mod bookings;
pub mod business_calendars;
pub mod calendar;
pub mod conversations;
pub mod crm;
pub mod ctx;
pub mod email;
pub mod envelope;
pub mod error;
pub mod finance;
pub mod health;
pub mod identity;
pub mod imports;
pub mod invitations;
pub mod members;
pub mod metrics;
pub mod once;
pub mod openapi;
pub mod pagination;
pub mod pipeline;
pub mod platform;
pub mod proposals;
pub mod realtime;
pub mod request_id;
pub mod sla_policies;
pub mod sms;
pub mod tickets;
pub mod web_app;
pub mod webhooks;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, ResponseError, web};
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::actors::{FirmRegistry, LiveContext};
use crate::bus::Bus;
use crate::config::Settings;
use crate::db::Db;
use error::ApiError;

/// Everything a handler may reach. Each HTTP worker has its own copy
/// ([`AppState::for_worker`]): the same bus, settings, supervisors and node-wide counters,
/// on a connection pool of its own.
#[derive(Clone)]
pub struct AppState {
    /// The database, the bus, the settings and the node's firm supervisors, shared with
    /// the live layer (sockets and supervised children).
    live: LiveContext,
    /// Renders `/metrics`.
    metrics: PrometheusHandle,
    /// Signs and verifies access tokens.
    tokens: std::sync::Arc<auth::TokenKeys>,
    /// When a scrape last refreshed the job-queue gauges.
    job_counts_refreshed: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// The firms running a CSV import on this node (`imports::ImportSlot`).
    pub(crate) importing: imports::Importing,
    /// Every HTTP worker's pool on this node, for `/metrics`; a worker that stopped (and
    /// was replaced) drops its pool, which then leaves this list.
    worker_pools: std::sync::Arc<std::sync::Mutex<Vec<crate::db::WeakDb>>>,
}

impl AppState {
    pub fn new(live: LiveContext, metrics: PrometheusHandle) -> Self {
        let tokens = std::sync::Arc::new(auth::TokenKeys::new(&live.settings().auth.jwt_secret));
        Self {
            live,
            metrics,
            tokens,
            job_counts_refreshed: Default::default(),
            importing: Default::default(),
            worker_pools: Default::default(),
        }
    }

    /// This state for one HTTP worker, on `db`: a pool whose connections are opened, and
    /// so driven, by that worker's own thread. A shared pool's connection answers on
    /// whichever thread opened it, so every round trip would wake a second thread twice.
    pub fn for_worker(&self, db: Db) -> Self {
        self.worker_pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(db.downgrade());
        Self { live: self.live.with_db(db), ..self.clone() }
    }

    /// The node's pools: `("background", ..)` for supervisors, sockets' hubs and jobs, then
    /// `("http", ..)` summed over the workers' own.
    pub fn pool_statuses(&self) -> [(&'static str, crate::db::PoolStatus); 2] {
        let background = self.registry().context().db().status();
        let mut workers = self.worker_pools.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open: Vec<crate::db::PoolStatus> = workers.iter().filter_map(crate::db::WeakDb::status).collect();
        workers.retain(|pool| pool.status().is_some());
        let http = open.iter().fold(crate::db::PoolStatus::default(), |sum, one| crate::db::PoolStatus {
            max_size: sum.max_size + one.max_size,
            size: sum.size + one.size,
            available: sum.available + one.available,
            waiting: sum.waiting + one.waiting,
        });
        [("background", background), ("http", if open.is_empty() { self.db().status() } else { http })]
    }

    /// The configured key ring for stored credentials; a server whose keys are
    /// misconfigured answers 503 and says why in its log.
    pub fn secret_box(&self) -> Result<crate::secret_box::SecretBox, ApiError> {
        crate::secret_box::SecretBox::from_settings(&self.settings().secrets).map_err(|err| {
            tracing::error!(error = %err, "secrets are misconfigured");
            ApiError::unavailable("stored credentials cannot be sealed or opened on this server")
        })
    }

    /// Attempts a queued job (a webhook delivery, an email) gets before the dead letters.
    pub fn job_attempts(&self) -> i32 {
        i32::try_from(self.settings().jobs.max_attempts).unwrap_or(8)
    }

    pub fn live(&self) -> &LiveContext {
        &self.live
    }

    pub fn registry(&self) -> &FirmRegistry {
        self.live.registry()
    }

    pub fn tokens(&self) -> &auth::TokenKeys {
        &self.tokens
    }

    /// Application-role pool; tenant data only through `firm_tx`.
    pub fn db(&self) -> &Db {
        self.live.db()
    }

    /// Pub/sub between sessions and nodes.
    pub fn bus(&self) -> &Bus {
        self.live.bus()
    }

    pub fn settings(&self) -> &Settings {
        self.live.settings()
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.metrics
    }
}

/// Routes and extractor settings; called once per worker.
pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body_bytes).error_handler(json_error))
        .app_data(web::PayloadConfig::default().limit(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(web::resource(["/health/", "/health"]).route(web::get().to(health::health)))
        .service(web::resource(["/ready/", "/ready"]).route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(metrics::metrics_text)))
        .service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", openapi::ApiDoc::openapi()))
        .service(api_v1());
}

fn api_v1() -> actix_web::Scope {
    web::scope("/api/v1")
        .service(web::resource("/auth/login").route(web::post().to(identity::login_handler)))
        .service(web::resource("/auth/refresh").route(web::post().to(identity::refresh_handler)))
        .service(web::resource("/auth/logout").route(web::post().to(identity::logout_handler)))
        .service(web::resource("/auth/mfa/enroll").route(web::post().to(identity::mfa_enroll)))
        .service(web::resource("/auth/mfa/confirm").route(web::post().to(identity::mfa_confirm)))
        .service(web::resource("/auth/mfa/disable").route(web::post().to(identity::mfa_disable)))
        .service(web::resource("/auth/password").route(web::post().to(identity::change_password)))
        .service(web::resource("/auth/password/forgot").route(web::post().to(identity::forgot_password)))
        .service(web::resource("/auth/password/reset").route(web::post().to(identity::reset_password)))
        .service(web::resource("/invitations/accept").route(web::post().to(invitations::accept)))
        .service(web::resource("/invitations/preview").route(web::post().to(invitations::preview)))
        .service(web::resource("/me").route(web::get().to(identity::me_handler)))
        .service(
            web::resource("/members")
                .route(web::get().to(members::list_members))
                .route(web::post().to(members::add_member)),
        )
        .service(web::resource("/members/invitations/{id}/resend").route(web::post().to(members::resend_invitation)))
        .service(web::resource("/members/invitations/{id}").route(web::delete().to(members::revoke_invitation)))
        .service(
            web::resource("/members/{user_id}")
                .route(web::patch().to(members::update_member))
                .route(web::delete().to(members::deactivate_member)),
        )
        .service(
            web::resource("/clients").route(web::get().to(crm::list_clients)).route(web::post().to(crm::create_client)),
        )
        .service(
            web::resource("/clients/{id}")
                .route(web::get().to(crm::get_client))
                .route(web::patch().to(crm::update_client))
                .route(web::delete().to(crm::archive_client)),
        )
        .service(web::resource("/clients/{id}/notes").route(web::post().to(crm::add_note)))
        .service(web::resource("/clients/{id}/timeline").route(web::get().to(crm::timeline)))
        .service(
            web::resource("/contacts")
                .route(web::get().to(crm::list_contacts))
                .route(web::post().to(crm::create_contact)),
        )
        .service(web::resource("/contacts/import").route(web::post().to(imports::import_contacts)))
        .service(
            web::resource("/contacts/{id}")
                .route(web::get().to(crm::get_contact))
                .route(web::patch().to(crm::update_contact))
                .route(web::delete().to(crm::archive_contact)),
        )
        .service(
            web::resource("/leads")
                .route(web::get().to(pipeline::list_leads))
                .route(web::post().to(pipeline::create_lead)),
        )
        .service(web::resource("/leads/import").route(web::post().to(imports::import_leads)))
        .service(
            web::resource("/leads/{id}")
                .route(web::get().to(pipeline::get_lead))
                .route(web::patch().to(pipeline::update_lead)),
        )
        .service(web::resource("/leads/{id}/convert").route(web::post().to(pipeline::convert_lead)))
        .service(
            web::resource("/prospects")
                .route(web::get().to(pipeline::list_prospects))
                .route(web::post().to(pipeline::create_prospect)),
        )
        .service(
            web::resource("/prospects/{id}")
                .route(web::get().to(pipeline::get_prospect))
                .route(web::patch().to(pipeline::update_prospect)),
        )
        .service(
            web::resource("/prospects/{id}/proposals")
                .route(web::get().to(proposals::list_proposals))
                .route(web::post().to(proposals::create_proposal)),
        )
        .service(
            web::resource("/proposals/{id}")
                .route(web::get().to(proposals::get_proposal))
                .route(web::patch().to(proposals::revise_proposal)),
        )
        .service(web::resource("/proposals/{id}/transition").route(web::post().to(proposals::transition_proposal)))
        .service(
            web::resource("/conversations")
                .route(web::get().to(conversations::list_conversations))
                .route(web::post().to(conversations::create_conversation)),
        )
        .service(
            web::resource("/conversations/{id}")
                .route(web::get().to(conversations::get_conversation))
                .route(web::patch().to(conversations::update_conversation)),
        )
        .service(
            web::resource("/conversations/{id}/messages")
                .route(web::get().to(conversations::list_messages))
                .route(web::post().to(conversations::post_message)),
        )
        .service(web::resource("/conversations/{id}/read").route(web::post().to(conversations::mark_read)))
        .service(web::resource("/realtime/ticket").route(web::post().to(realtime::issue_ticket)))
        .service(web::resource("/ws").route(web::get().to(realtime::open_socket)))
        .service(
            web::resource("/invoices")
                .route(web::get().to(finance::list_invoices))
                .route(web::post().to(finance::create_invoice)),
        )
        .service(
            web::resource("/invoices/{id}")
                .route(web::get().to(finance::get_invoice))
                .route(web::patch().to(finance::update_invoice)),
        )
        .service(web::resource("/invoices/{id}/send").route(web::post().to(finance::send_invoice)))
        .service(web::resource("/invoices/{id}/void").route(web::post().to(finance::void_invoice)))
        .service(
            web::resource("/invoices/{id}/payments")
                .route(web::get().to(finance::list_payments))
                .route(web::post().to(finance::record_payment)),
        )
        .service(
            web::resource("/invoices/{id}/credit-notes")
                .route(web::get().to(finance::list_credit_notes))
                .route(web::post().to(finance::issue_credit_note)),
        )
        .service(web::resource("/invoices/{id}/payment-intent").route(web::post().to(finance::create_payment_intent)))
        .service(web::resource("/finance/aging").route(web::get().to(finance::aging)))
        .service(web::resource("/finance/summary").route(web::get().to(finance::summary)))
        .service(
            web::resource("/finance/settings")
                .route(web::get().to(finance::get_settings))
                .route(web::patch().to(finance::update_settings)),
        )
        .service(web::resource("/stripe/webhook").route(web::post().to(finance::stripe_webhook)))
        .service(
            web::resource("/mailboxes")
                .route(web::get().to(email::list_mailboxes))
                .route(web::post().to(email::create_mailbox)),
        )
        .service(
            web::resource("/mailboxes/{id}")
                .route(web::get().to(email::get_mailbox))
                .route(web::patch().to(email::update_mailbox))
                .route(web::delete().to(email::delete_mailbox)),
        )
        .service(web::resource("/mailboxes/{id}/test").route(web::post().to(email::test_mailbox)))
        .service(
            web::resource("/email/settings")
                .route(web::get().to(email::get_settings))
                .route(web::put().to(email::put_settings)),
        )
        // Before /email/rules/{id}, which would otherwise take the name.
        .service(web::resource("/email/rules/dry-run").route(web::post().to(email::dry_run)))
        .service(
            web::resource("/email/rules")
                .route(web::get().to(email::list_rules))
                .route(web::post().to(email::create_rule)),
        )
        .service(
            web::resource("/email/rules/{id}")
                .route(web::put().to(email::update_rule))
                .route(web::delete().to(email::delete_rule)),
        )
        .service(web::resource("/emails/triage").route(web::get().to(email::list_triage)))
        .service(web::resource("/emails/{id}").route(web::get().to(email::get_email)))
        .service(web::resource("/emails/{id}/parts/{position}").route(web::get().to(email::get_part)))
        .service(web::resource("/conversations/{id}/emails").route(web::get().to(email::conversation_emails)))
        .service(
            web::resource("/sms/settings")
                .route(web::get().to(sms::get_settings))
                .route(web::put().to(sms::put_settings)),
        )
        .service(
            web::resource("/sms/numbers")
                .route(web::get().to(sms::list_numbers))
                .route(web::post().to(sms::add_number)),
        )
        .service(web::resource("/sms/numbers/{id}").route(web::delete().to(sms::remove_number)))
        .service(
            web::resource("/business-calendars")
                .route(web::get().to(business_calendars::list_calendars))
                .route(web::post().to(business_calendars::create_calendar)),
        )
        .service(
            web::resource("/business-calendars/{id}")
                .route(web::get().to(business_calendars::get_calendar))
                .route(web::patch().to(business_calendars::update_calendar))
                .route(web::delete().to(business_calendars::delete_calendar)),
        )
        .service(
            web::resource("/business-calendars/{id}/holidays/import")
                .route(web::post().to(business_calendars::import_holidays)),
        )
        .service(web::resource("/business-calendars/{id}/due").route(web::get().to(business_calendars::due)))
        .service(web::resource("/business-calendars/{id}/elapsed").route(web::get().to(business_calendars::elapsed)))
        .service(
            web::resource("/tickets")
                .route(web::get().to(tickets::list_tickets))
                .route(web::post().to(tickets::create_ticket)),
        )
        .service(
            web::resource("/tickets/{id}")
                .route(web::get().to(tickets::get_ticket))
                .route(web::patch().to(tickets::update_ticket)),
        )
        .service(web::resource("/tickets/{id}/activity").route(web::get().to(tickets::ticket_activity)))
        .service(web::resource("/tickets/{id}/sla-policy").route(web::get().to(sla_policies::ticket_policy)))
        .service(web::resource("/tickets/{id}/sla").route(web::get().to(tickets::ticket_sla)))
        .service(web::resource("/sla/report").route(web::get().to(sla_policies::sla_report)))
        .service(
            web::resource("/sla-policies")
                .route(web::get().to(sla_policies::list_policies))
                .route(web::post().to(sla_policies::create_policy)),
        )
        .service(
            web::resource("/sla-policies/{id}")
                .route(web::get().to(sla_policies::get_policy))
                .route(web::patch().to(sla_policies::update_policy))
                .route(web::delete().to(sla_policies::delete_policy)),
        )
        .service(
            web::resource("/calendar/availability")
                .route(web::get().to(bookings::get_availability))
                .route(web::put().to(bookings::set_availability)),
        )
        .service(
            web::resource("/booking-links")
                .route(web::get().to(bookings::list_links))
                .route(web::post().to(bookings::create_link)),
        )
        .service(
            web::resource("/booking-links/{id}")
                .route(web::get().to(bookings::get_link))
                .route(web::patch().to(bookings::update_link)),
        )
        .service(
            web::resource("/calendar/events")
                .route(web::get().to(calendar::list_events))
                .route(web::post().to(calendar::create_event)),
        )
        .service(web::resource("/calendar/events/{id}").route(web::delete().to(calendar::delete_event)))
        .service(web::resource("/calendar/events/{id}/exceptions").route(web::post().to(calendar::add_exception)))
        .service(web::resource("/calendar/feed").route(web::post().to(calendar::rotate_feed)))
        .service(web::resource("/public/calendar-feeds/{token}").route(web::get().to(calendar::public_feed)))
        .service(web::resource("/bookings").route(web::get().to(bookings::list_bookings)))
        .service(web::resource("/bookings/{id}/cancel").route(web::post().to(bookings::cancel_booking)))
        .service(web::resource("/bookings/{id}/confirm").route(web::post().to(bookings::confirm_booking)))
        .service(web::resource("/public/booking-links/{slug}").route(web::get().to(bookings::public_page)))
        .service(web::resource("/public/booking-links/{slug}/slots").route(web::get().to(bookings::public_slots)))
        .service(web::resource("/public/booking-links/{slug}/bookings").route(web::post().to(bookings::public_book)))
        .service(web::resource("/public/bookings/lookup").route(web::post().to(bookings::public_lookup)))
        .service(web::resource("/public/bookings/cancel").route(web::post().to(bookings::public_cancel)))
        .service(web::resource("/public/bookings/reschedule").route(web::post().to(bookings::public_reschedule)))
        .service(web::resource("/twilio/sms").route(web::post().to(sms::inbound)))
        .service(web::resource("/twilio/status/{firm_id}").route(web::post().to(sms::status_callback)))
        .service(web::resource("/audit-events").route(web::get().to(audit_log::list_audit_events)))
        .service(web::resource("/security/break-glass").route(web::get().to(platform::firm_grants)))
        .service(web::resource("/security/break-glass/{id}/revoke").route(web::post().to(platform::owner_revoke_grant)))
        .service(
            web::resource("/webhooks")
                .route(web::get().to(webhooks::list_endpoints))
                .route(web::post().to(webhooks::create_endpoint)),
        )
        .service(
            web::resource("/webhooks/{id}")
                .route(web::get().to(webhooks::get_endpoint))
                .route(web::patch().to(webhooks::update_endpoint))
                .route(web::delete().to(webhooks::delete_endpoint)),
        )
        .service(web::resource("/webhooks/{id}/rotate-secret").route(web::post().to(webhooks::rotate_secret)))
        .service(web::resource("/webhooks/{id}/ping").route(web::post().to(webhooks::ping)))
        .service(web::resource("/webhooks/{id}/deliveries").route(web::get().to(webhooks::list_deliveries)))
        .service(
            web::resource("/webhooks/{id}/deliveries/{delivery_id}/redeliver")
                .route(web::post().to(webhooks::redeliver)),
        )
        .service(web::resource("/jobs/dead").route(web::get().to(webhooks::list_dead_jobs)))
        .service(web::resource("/jobs/{id}/retry").route(web::post().to(webhooks::retry_job)))
        .service(web::resource("/platform/auth/login").route(web::post().to(platform::operator_login)))
        .service(web::resource("/platform/auth/logout").route(web::post().to(platform::operator_logout)))
        .service(web::resource("/platform/firms").route(web::get().to(platform::list_firms)))
        .service(
            web::resource("/platform/break-glass")
                .route(web::get().to(platform::list_grants))
                .route(web::post().to(platform::request_grant)),
        )
        .service(web::resource("/platform/break-glass/{id}/approve").route(web::post().to(platform::approve_grant)))
        .service(web::resource("/platform/break-glass/{id}/token").route(web::post().to(platform::grant_token)))
        .service(web::resource("/platform/break-glass/{id}/revoke").route(web::post().to(platform::revoke_grant)))
}

/// Answers framework-made errors (no route, wrong method, ...) in the error format; our
/// own errors are JSON already and pass through untouched.
pub fn error_envelopes<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(envelope_bare_error)
}

fn envelope_bare_error<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let (request, bare) = response.into_parts();
    let mut enveloped = ApiError::from_status(bare.status()).error_response();
    // Keep headers such as Allow and the request id that the bare response carried.
    for (name, value) in bare.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            enveloped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(request, enveloped).map_into_right_body()))
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api_error = match &err {
        JsonPayloadError::OverflowKnownLength { length, limit } => {
            ApiError::PayloadTooLarge(format!("request body of {length} bytes exceeds the limit of {limit} bytes"))
        }
        JsonPayloadError::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("request body exceeds the limit of {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("expected a JSON body with Content-Type: application/json".into())
        }
        JsonPayloadError::Deserialize(cause) => deserialize_error(cause),
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::PayloadTooLarge("request body too large".into())
        }
        other => ApiError::validation(format!("unreadable request body: {other}"), serde_json::json!({})),
    };
    api_error.into()
}

/// A body that is not JSON, or JSON of the wrong shape, with where serde stopped.
fn deserialize_error(cause: &serde_json::Error) -> ApiError {
    let kind = match cause.classify() {
        serde_json::error::Category::Data => "wrong_shape",
        serde_json::error::Category::Eof => "truncated",
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => "malformed",
    };
    ApiError::validation(
        format!("invalid JSON body: {cause}"),
        serde_json::json!({ "kind": kind, "line": cause.line(), "column": cause.column() }),
    )
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("invalid query string: {err}"), serde_json::json!({ "in": "query" })).into()
}

fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("invalid path parameter: {err}"), serde_json::json!({ "in": "path" })).into()
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    Ok(Some(Option::<T>::deserialize(deserializer)?))
}
