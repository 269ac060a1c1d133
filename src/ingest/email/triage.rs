//! What becomes of a message before it may touch a conversation: the hub's own mail come
//! back (a loop), a bounce, or automatic mail (RFC 3834 and the common vendor headers) are
//! kept for review instead, so an auto-reply never opens a ticket and two auto-responders
//! never talk to each other through the hub.

use super::parse::ParsedEmail;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    /// Mail the hub sent, come back: our Message-ID domain, or our X-Loop mark.
    Loop(String),
    Bounce,
    /// Automatic mail: auto-replies, lists, bulk.
    Automatic(String),
}

impl Triage {
    pub fn kind(&self) -> &'static str {
        match self {
            Triage::Loop(_) => "loop",
            Triage::Bounce => "bounce",
            Triage::Automatic(_) => "automatic",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Triage::Loop(reason) | Triage::Automatic(reason) => reason.clone(),
            Triage::Bounce => "delivery-status report".into(),
        }
    }
}

/// The X-Loop value the hub writes on everything it sends from `mailbox_address`.
pub fn loop_mark(mailbox_address: &str) -> String {
    format!("consultantpro {mailbox_address}")
}

/// Classifies a parsed message. `own_domain` is the hub's Message-ID domain;
/// `own_addresses` the firm's mailbox addresses.
pub fn classify(email: &ParsedEmail, own_domain: &str, own_addresses: &[String]) -> Option<Triage> {
    if let Some(id) = &email.message_id
        && id.rsplit_once('@').is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(own_domain))
    {
        return Some(Triage::Loop(format!("Message-ID is the hub's own ({own_domain})")));
    }
    for (name, value) in &email.headers {
        if name.eq_ignore_ascii_case("X-Loop")
            && own_addresses.iter().any(|a| value.trim().eq_ignore_ascii_case(&loop_mark(a)))
        {
            return Some(Triage::Loop("X-Loop carries the hub's mark".into()));
        }
    }
    if email.bounce.is_some() {
        return Some(Triage::Bounce);
    }
    automatic(email).map(Triage::Automatic)
}

/// RFC 3834 `Auto-Submitted` other than `no`, the vendor auto-reply headers, bulk and list
/// precedence, and list headers. `X-Auto-Response-Suppress` alone says what the sender
/// wants back, not that the message is automatic.
fn automatic(email: &ParsedEmail) -> Option<String> {
    for (name, value) in &email.headers {
        let value_word = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "auto-submitted" if value_word != "no" && !value_word.is_empty() => {
                return Some(format!("Auto-Submitted: {value_word}"));
            }
            "x-autoreply" | "x-autorespond" | "x-autoresponder" => return Some(format!("{name} header")),
            "precedence" if matches!(value_word.as_str(), "bulk" | "junk" | "list") => {
                return Some(format!("Precedence: {value_word}"));
            }
            "list-id" | "list-unsubscribe" => return Some(format!("{name} header (mailing list)")),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::email::parse::parse;

    fn with_headers(headers: &str) -> ParsedEmail {
        parse(
            format!("From: a@example.com\r\nSubject: s\r\nMessage-ID: <m1@example.com>\r\n{headers}\r\nbody\r\n")
                .as_bytes(),
        )
    }

    #[test]
    fn rfc_3834_and_vendor_headers_mark_automatic_mail() {
        for headers in [
            "Auto-Submitted: auto-replied\r\n",
            "Auto-Submitted: auto-generated; owner\r\n",
            "X-Autoreply: yes\r\n",
            "X-Autorespond: x\r\n",
            "Precedence: bulk\r\n",
            "Precedence: junk\r\n",
            "Precedence: list\r\n",
            "List-Id: <news.example.com>\r\n",
            "List-Unsubscribe: <mailto:u@example.com>\r\n",
        ] {
            assert!(
                matches!(classify(&with_headers(headers), "hub.test", &[]), Some(Triage::Automatic(_))),
                "{headers}"
            );
        }
        for headers in
            ["Auto-Submitted: no\r\n", "X-Auto-Response-Suppress: All\r\n", "Precedence: first-class\r\n", ""]
        {
            assert_eq!(classify(&with_headers(headers), "hub.test", &[]), None, "{headers}");
        }
    }

    #[test]
    fn the_hubs_own_mail_is_a_loop() {
        let own = parse(b"From: a@example.com\r\nMessage-ID: <x.y@Hub.Test>\r\n\r\nbody\r\n");
        assert!(matches!(classify(&own, "hub.test", &[]), Some(Triage::Loop(_))));
        let marked = with_headers("X-Loop: consultantpro desk@firm.test\r\n");
        assert!(matches!(classify(&marked, "hub.test", &["desk@firm.test".into()]), Some(Triage::Loop(_))));
        assert_eq!(classify(&marked, "hub.test", &["other@firm.test".into()]), None);
    }
}
