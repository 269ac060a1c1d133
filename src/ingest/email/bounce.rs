//! Delivery-status reports (RFC 3464). Replaced by the full detector.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BouncedRecipient {
    pub address: String,
    pub permanent: bool,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bounce {
    pub format: &'static str,
    pub recipients: Vec<BouncedRecipient>,
}

pub fn detect(message: &mail_parser::Message<'_>) -> Option<Bounce> {
    let _ = message;
    None
}
