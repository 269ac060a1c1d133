//! The OpenAPI description, generated from the handlers' annotations.

use utoipa::openapi::RefOr;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::{
    audit_log, bookings, business_calendars, calendar, conversations, crm, email, finance, health, identity, imports,
    invitations, members, metrics, pipeline, platform, proposals, realtime, sla_policies, sms, tickets, webhooks,
};
use crate::domain::value_sets;

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
        imports::import_contacts,
        imports::import_leads,
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
        email::list_mailboxes,
        email::create_mailbox,
        email::get_mailbox,
        email::update_mailbox,
        email::delete_mailbox,
        email::test_mailbox,
        email::get_settings,
        email::put_settings,
        email::list_rules,
        email::create_rule,
        email::update_rule,
        email::delete_rule,
        email::dry_run,
        email::list_triage,
        email::get_email,
        email::get_part,
        email::conversation_emails,
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
        tickets::create_ticket,
        tickets::list_tickets,
        tickets::get_ticket,
        tickets::update_ticket,
        tickets::ticket_activity,
        tickets::ticket_sla,
        sla_policies::create_policy,
        sla_policies::list_policies,
        sla_policies::get_policy,
        sla_policies::update_policy,
        sla_policies::delete_policy,
        sla_policies::ticket_policy,
        sla_policies::sla_report,
        bookings::get_availability,
        bookings::set_availability,
        bookings::create_link,
        bookings::list_links,
        bookings::get_link,
        bookings::update_link,
        bookings::list_bookings,
        bookings::cancel_booking,
        bookings::confirm_booking,
        bookings::public_page,
        bookings::public_slots,
        bookings::public_book,
        bookings::public_lookup,
        bookings::public_cancel,
        bookings::public_reschedule,
        calendar::list_events,
        calendar::create_event,
        calendar::delete_event,
        calendar::add_exception,
        calendar::rotate_feed,
        calendar::public_feed,
    ),
    // Schemas reached only through query parameters are not collected on their own.
    components(schemas(
        ErrorBody,
        ErrorDetail,
        crate::domain::clients::ClientSort,
        crate::domain::contacts::ContactSort,
        crate::domain::pipeline::CreatedSort,
        crate::domain::sla::ReportGroup,
        crate::domain::bookings::Assignment,
        members::ListedStatus,
        crate::domain::webhooks::EventType,
        crate::domain::webhooks::EventSelector,
        // Referenced by the import endpoints' shared answers (`imports::ImportAnswers`).
        imports::ImportLine,
        value_sets::LeadStatus,
        value_sets::ProspectStage,
        value_sets::ClientStatus,
        value_sets::ClosedReply,
        value_sets::TriageKind,
        value_sets::ReportFormat,
        value_sets::ProposalStatus,
        value_sets::DeliveryState,
        value_sets::JobState,
        value_sets::BookingStatus,
        value_sets::EmailDirection,
        value_sets::EmailStatus,
        value_sets::MailboxState,
        value_sets::FirmStatus,
        value_sets::TicketEventKind
    )),
    modifiers(&BearerAuth, &Contract),
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
        (name = "support", description = "Support: tickets, SLA policies and business calendars"),
        (name = "email", description = "Mailboxes watched over IMAP, replies by SMTP, triage, rules and stored emails"),
        (name = "sms", description = "Two-way SMS through Twilio: settings, senders, and Twilio's signed webhooks"),
        (name = "bookings", description = "Bookable hours, booking links, bookings and the public booking pages"),
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

/// What every operation can answer, decided here once instead of per handler: the
/// success envelope around each documented body, and the standard errors the extractors,
/// middleware and database mapping can return.
struct Contract;

/// Creations whose body type is shared with the update (where every field is optional):
/// the creation's document names the fields it needs, from the domain's own list.
const REQUIRED_ON_CREATE: [(&str, &[&str]); 3] = [
    ("/api/v1/booking-links", &crate::domain::bookings::LINK_REQUIRED_ON_CREATE),
    ("/api/v1/clients", &crate::domain::clients::REQUIRED_ON_CREATE),
    ("/api/v1/prospects", &crate::domain::pipeline::PROSPECT_REQUIRED_ON_CREATE),
];

/// Creations that need one field of a set (checked by the domain: a contact's first or last
/// name, a lead's name or company, a ticket's subject or conversation, a number or a
/// messaging service): documented as an `anyOf` of those requirements.
const ONE_OF_ON_CREATE: [(&str, &[&str]); 4] = [
    ("/api/v1/contacts", &["first_name", "last_name"]),
    ("/api/v1/leads", &["first_name", "last_name", "company"]),
    ("/api/v1/tickets", &["subject", "conversation_id"]),
    ("/api/v1/sms/numbers", &["phone_number", "messaging_service_sid"]),
];

/// Bodies answered as they are, not in the envelope (Stripe reads `{"received": true}`).
const UNENVELOPED: [&str; 1] = ["/api/v1/stripe/webhook"];

impl Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        let schemas = openapi.components.as_ref().map(|c| c.schemas.clone()).unwrap_or_default();
        let is_envelope = |schema: &RefOr<Schema>| -> bool {
            let resolved = match schema {
                RefOr::Ref(reference) => {
                    let name = reference.ref_location.rsplit('/').next().unwrap_or_default();
                    match schemas.get(name) {
                        Some(found) => found,
                        None => return false,
                    }
                }
                inline => inline,
            };
            matches!(resolved, RefOr::T(Schema::Object(object)) if object.properties.contains_key("data"))
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if let Some(fields) = REQUIRED_ON_CREATE.iter().find(|(p, _)| p == path).map(|(_, fields)| *fields)
                && let Some(create) = item.post.as_mut()
            {
                require_on_create(create, fields, &schemas);
            }
            if let Some(fields) = ONE_OF_ON_CREATE.iter().find(|(p, _)| p == path).map(|(_, fields)| *fields)
                && let Some(create) = item.post.as_mut()
            {
                require_one_of_on_create(create, fields, &schemas);
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
            ];
            for operation in operations.into_iter().flatten() {
                if !UNENVELOPED.contains(&path.as_str()) {
                    envelope_successes(operation, &is_envelope);
                }
                standard_errors(path, operation);
            }
        }
    }
}

/// Wraps each JSON 2xx body that is not already an envelope in `{"data": ..., "meta": {}}`.
fn envelope_successes(
    operation: &mut utoipa::openapi::path::Operation,
    is_envelope: &dyn Fn(&RefOr<utoipa::openapi::schema::Schema>) -> bool,
) {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        if !status.starts_with('2') {
            continue;
        }
        let Some(RefOr::T(content)) = response.content.get_mut("application/json") else { continue };
        let Some(body) = content.schema.take() else { continue };
        content.schema = Some(if is_envelope(&body) {
            body
        } else {
            ObjectBuilder::new()
                .property("data", body)
                .required("data")
                .property("meta", ObjectBuilder::new().schema_type(Type::Object))
                .required("meta")
                .into()
        });
    }
}

/// Adds the errors any operation of its shape can answer, where the handler did not
/// document them itself.
fn standard_errors(path: &str, operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::ParameterIn;
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_path_id = parameters.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
    let has_input = !parameters.is_empty() || operation.request_body.is_some();
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    // The platform surface answers a firm member's token as if it did not exist.
    let platform = path.starts_with("/api/v1/platform/") && secured;
    let standard: [(bool, &str, &str); 8] = [
        (has_input, "400", "A malformed path id, query parameter or body (`details` says where)"),
        (secured, "401", "Not signed in, or the token expired or was revoked"),
        (secured, "403", "The signed-in role may not do this"),
        (has_path_id, "404", "No such resource in this firm"),
        (platform, "404", "Not an operator's token: the platform surface does not exist for firm members"),
        (has_body, "413", "The body is larger than server.max_body_bytes"),
        (has_body, "415", "The body is not sent as application/json"),
        (true, "503", "The database or another dependency is down or busy; retry later"),
    ];
    for (applies, status, description) in standard {
        if applies && !operation.responses.responses.contains_key(status) {
            let response = utoipa::openapi::ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::content::Content::new(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))),
                )
                .build();
            operation.responses.responses.insert(status.to_owned(), RefOr::T(response));
        }
    }
}

/// The creation's JSON body as its shared schema and an `anyOf`: one of `fields` present,
/// not null, and (for text) not empty.
fn require_one_of_on_create(
    operation: &mut utoipa::openapi::path::Operation,
    fields: &[&str],
    schemas: &std::collections::BTreeMap<String, RefOr<utoipa::openapi::schema::Schema>>,
) {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else { return };
    let Some(RefOr::T(content)) = body.content.get_mut("application/json") else { return };
    let Some(RefOr::Ref(reference)) = content.schema.clone() else { return };
    let name = reference.ref_location.rsplit('/').next().unwrap_or_default();
    let Some(RefOr::T(Schema::Object(shared))) = schemas.get(name) else { return };
    let mut alternatives = AnyOfBuilder::new();
    for field in fields {
        let Some(RefOr::T(Schema::Object(property))) = shared.properties.get(*field) else { continue };
        let mut present = property.clone();
        if let SchemaType::Array(types) = &present.schema_type {
            let kept: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
            present.schema_type = match kept.as_slice() {
                [single] => SchemaType::Type(single.clone()),
                _ => SchemaType::Array(kept),
            };
        }
        if present.schema_type == SchemaType::Type(Type::String) && present.format.is_none() {
            present.min_length = Some(1);
        }
        alternatives = alternatives.item(ObjectBuilder::new().property(*field, present).required(*field));
    }
    let combined = AllOfBuilder::new().item(RefOr::Ref(reference)).item(alternatives);
    content.schema = Some(RefOr::T(Schema::AllOf(combined.build())));
}

/// Inlines the creation's JSON body schema with `fields` required and not nullable.
fn require_on_create(
    operation: &mut utoipa::openapi::path::Operation,
    fields: &[&str],
    schemas: &std::collections::BTreeMap<String, RefOr<utoipa::openapi::schema::Schema>>,
) {
    use utoipa::openapi::schema::{Schema, SchemaType, Type};
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else { return };
    let Some(RefOr::T(content)) = body.content.get_mut("application/json") else { return };
    let Some(RefOr::Ref(reference)) = content.schema.as_ref() else { return };
    let name = reference.ref_location.rsplit('/').next().unwrap_or_default();
    let Some(RefOr::T(Schema::Object(shared))) = schemas.get(name) else { return };
    let mut creation = shared.clone();
    for field in fields {
        if !creation.required.iter().any(|r| r == field) {
            creation.required.push((*field).to_owned());
        }
        if let Some(RefOr::T(Schema::Object(property))) = creation.properties.get_mut(*field)
            && let SchemaType::Array(types) = &property.schema_type
        {
            let present: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
            property.schema_type = match present.as_slice() {
                [single] => SchemaType::Type(single.clone()),
                _ => SchemaType::Array(present),
            };
        }
    }
    content.schema = Some(RefOr::T(Schema::Object(creation)));
}
