//! The OpenAPI description, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::{
    audit_log, business_calendars, conversations, crm, finance, health, identity, invitations, members, metrics,
    pipeline, platform, proposals, realtime, sms, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ConsultantPro API",
        description = "Real-time communications hub and API for consulting firms. Every success \
                       is `{\"data\", \"meta\"}`; every error is `{\"error\": {\"code\", \"message\", \
                       \"details\"}}`. Every response carries `X-Request-Id`. Authenticated endpoints \
                       take `Authorization: Bearer <access token>`."
    ),
    paths(
        health::health,
        health::ready,
        metrics::metrics_text,
        identity::login_handler,
        identity::refresh_handler,
        identity::logout_handler,
        identity::me_handler,
        identity::mfa_enroll,
        identity::mfa_confirm,
        identity::mfa_disable,
        identity::change_password,
        identity::forgot_password,
        identity::reset_password,
        members::list_members,
        members::add_member,
        members::resend_invitation,
        members::revoke_invitation,
        invitations::preview,
        invitations::accept,
        members::update_member,
        members::deactivate_member,
        audit_log::list_audit_events,
        platform::operator_login,
        platform::operator_logout,
        platform::list_firms,
        platform::request_grant,
        platform::list_grants,
        platform::approve_grant,
        platform::grant_token,
        platform::revoke_grant,
        platform::firm_grants,
        platform::owner_revoke_grant,
        webhooks::create_endpoint,
        webhooks::list_endpoints,
        webhooks::get_endpoint,
        webhooks::update_endpoint,
        webhooks::delete_endpoint,
        webhooks::rotate_secret,
        webhooks::ping,
        webhooks::list_deliveries,
        webhooks::redeliver,
        webhooks::list_dead_jobs,
        webhooks::retry_job,
        crm::create_client,
        crm::list_clients,
        crm::get_client,
        crm::update_client,
        crm::archive_client,
        crm::add_note,
        crm::timeline,
        crm::create_contact,
        crm::list_contacts,
        crm::get_contact,
        crm::update_contact,
        crm::archive_contact,
        pipeline::create_lead,
        pipeline::list_leads,
        pipeline::get_lead,
        pipeline::update_lead,
        pipeline::convert_lead,
        pipeline::create_prospect,
        pipeline::list_prospects,
        pipeline::get_prospect,
        pipeline::update_prospect,
        proposals::create_proposal,
        proposals::list_proposals,
        proposals::get_proposal,
        proposals::revise_proposal,
        proposals::transition_proposal,
        conversations::create_conversation,
        conversations::list_conversations,
        conversations::get_conversation,
        conversations::update_conversation,
        conversations::post_message,
        conversations::list_messages,
        conversations::mark_read,
        realtime::issue_ticket,
        realtime::open_socket,
        finance::create_invoice,
        finance::list_invoices,
        finance::get_invoice,
        finance::update_invoice,
        finance::send_invoice,
        finance::void_invoice,
        finance::record_payment,
        finance::list_payments,
        finance::issue_credit_note,
        finance::list_credit_notes,
        finance::create_payment_intent,
        finance::aging,
        finance::summary,
        finance::get_settings,
        finance::update_settings,
        finance::stripe_webhook,
        sms::get_settings,
        sms::put_settings,
        sms::list_numbers,
        sms::add_number,
        sms::remove_number,
        sms::inbound,
        sms::status_callback,
        business_calendars::create_calendar,
        business_calendars::list_calendars,
        business_calendars::get_calendar,
        business_calendars::update_calendar,
        business_calendars::delete_calendar,
        business_calendars::import_holidays,
        business_calendars::due,
        business_calendars::elapsed,
    ),
    // Schemas reached only through query parameters are not collected on their own.
    components(schemas(
        ErrorBody,
        ErrorDetail,
        crate::domain::clients::ClientSort,
        crate::domain::contacts::ContactSort,
        crate::domain::pipeline::CreatedSort,
        members::ListedStatus
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "auth", description = "Log-in, tokens, MFA"),
        (name = "members", description = "Who belongs to the firm"),
        (name = "audit", description = "The firm's audit log"),
        (name = "security", description = "The firm's view of break-glass access"),
        (name = "platform", description = "Platform operators: firm metadata and break-glass"),
        (name = "webhooks", description = "Signed outbound webhooks and their delivery log"),
        (name = "jobs", description = "The durable job queue's dead letters"),
        (name = "crm", description = "Clients, contacts, leads and prospects"),
        (name = "conversations", description = "Conversations with clients and in the team, and their messages"),
        (name = "realtime", description = "Live WebSocket: tickets and the socket itself"),
        (name = "finance", description = "Invoices, payments, credit notes, reports and card payments"),
        (name = "support", description = "Support: business calendars (tickets and SLA policies as they arrive)"),
        (name = "sms", description = "Two-way SMS through Twilio: settings, senders, and Twilio's signed webhooks"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
