//! Text fields whose values are a fixed set the domain holds, documented in the OpenAPI
//! document as enums built from the same constants the domain validates against, so the
//! document and the checks cannot disagree.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

fn one_of(values: &[&str], description: &str) -> RefOr<Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .into()
}

macro_rules! value_set {
    ($name:ident, $values:expr, $description:literal) => {
        #[doc = $description]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                one_of(&$values, $description)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

value_set!(LeadStatus, super::pipeline::LEAD_STATUSES, "A lead's status (`converted` comes from converting it).");
value_set!(ProspectStage, super::pipeline::STAGES, "A prospect's stage in the pipeline.");
value_set!(ClientStatus, super::clients::CLIENT_STATUSES, "A client's status.");
value_set!(
    ClosedReply,
    super::mailboxes::CLOSED_REPLIES,
    "What a reply to a closed conversation does: reopen it, or start a new one."
);
value_set!(TriageKind, super::email::TRIAGE_KINDS, "Why triage kept an email out of the conversations.");
value_set!(ReportFormat, super::sla::REPORT_FORMATS, "How a report is answered: JSON (default) or CSV.");
value_set!(ProposalStatus, super::proposals::PROPOSAL_STATUSES, "A proposal's status.");

/// A webhook delivery's state (`webhook_deliveries.state`).
pub const DELIVERY_STATES: [&str; 3] = ["pending", "succeeded", "failed"];
/// A queued job's state (`jobs.state`).
pub const JOB_STATES: [&str; 4] = ["queued", "running", "succeeded", "dead"];
/// A booking's status (`bookings.status`).
pub const BOOKING_STATUSES: [&str; 3] = ["pending", "confirmed", "cancelled"];
/// Which way an email went (`email_messages.direction`).
pub const EMAIL_DIRECTIONS: [&str; 2] = ["inbound", "outbound"];
/// An email's delivery status (`email_messages.status`).
pub const EMAIL_STATUSES: [&str; 5] = ["received", "queued", "sent", "failed", "failed_permanently"];
/// What a mailbox's watcher is doing (`mailboxes.state`).
pub const MAILBOX_STATES: [&str; 7] =
    ["starting", "connecting", "catching_up", "idle", "polling", "failing", "disabled"];
/// A firm's standing (`firms.status`).
pub const FIRM_STATUSES: [&str; 2] = ["active", "suspended"];
/// What happened to a ticket (`ticket_events.kind`).
pub const TICKET_EVENT_KINDS: [&str; 7] =
    ["created", "changed", "customer_message", "agent_response", "reopened", "sla_warning", "sla_breached"];

value_set!(DeliveryState, DELIVERY_STATES, "A webhook delivery's state.");
value_set!(JobState, JOB_STATES, "A queued job's state (`dead`: out of attempts, in the dead-letter list).");
value_set!(BookingStatus, BOOKING_STATUSES, "A booking's status (`pending` awaits a member's confirmation).");
value_set!(EmailDirection, EMAIL_DIRECTIONS, "Which way an email went.");
value_set!(EmailStatus, EMAIL_STATUSES, "An email's status: received, or an outgoing one's delivery.");
value_set!(MailboxState, MAILBOX_STATES, "What a mailbox's watcher is doing (`failing` with a reason).");
value_set!(FirmStatus, FIRM_STATUSES, "A firm's standing.");
value_set!(TicketEventKind, TICKET_EVENT_KINDS, "What happened to a ticket.");

/// Each fixed value set stored in a column, with that column: a test holds every one equal
/// to the column's CHECK constraint.
pub const STORED: [(&str, &str, &[&str]); 14] = [
    ("clients", "status", &super::clients::CLIENT_STATUSES),
    ("leads", "status", &super::pipeline::LEAD_STATUSES),
    ("prospects", "stage", &super::pipeline::STAGES),
    ("proposals", "status", &super::proposals::PROPOSAL_STATUSES),
    ("email_settings", "closed_reply", &super::mailboxes::CLOSED_REPLIES),
    ("webhook_deliveries", "state", &DELIVERY_STATES),
    ("jobs", "state", &JOB_STATES),
    ("bookings", "status", &BOOKING_STATUSES),
    ("email_messages", "direction", &EMAIL_DIRECTIONS),
    ("email_messages", "status", &EMAIL_STATUSES),
    ("mailboxes", "state", &MAILBOX_STATES),
    ("firms", "status", &FIRM_STATUSES),
    ("ticket_events", "kind", &TICKET_EVENT_KINDS),
    ("email_messages", "triage", &super::email::TRIAGE_KINDS),
];
