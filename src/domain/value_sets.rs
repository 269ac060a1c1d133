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
