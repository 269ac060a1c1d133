//! What becomes of a message before it may touch a conversation: the hub's own mail come
//! back (a loop), a bounce, or automatic mail (RFC 3834 and the common vendor headers) are
//! kept for review instead, so an auto-reply never opens a ticket and two auto-responders
//! never talk to each other through the hub.

use super::parse::ParsedEmail;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Triage {
    /// Mail the hub sent, come back (its Message-ID, the firm's own address, the X-Loop
    /// mark).
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

/// Classifies a parsed message. `sent_by_hub` says whether its Message-ID is one of the
/// firm's own outgoing emails; `own_addresses` are the firm's mailbox addresses.
pub fn classify(email: &ParsedEmail, sent_by_hub: bool, own_addresses: &[String]) -> Option<Triage> {
    if sent_by_hub {
        return Some(Triage::Loop("the firm's own email, come back".into()));
    }
    if let Some(from) = &email.from
        && own_addresses.iter().any(|a| a.eq_ignore_ascii_case(&from.address))
    {
        // Either a loop, or mail forged to look like the firm's (which could otherwise
        // steer replies): set aside either way.
        return Some(Triage::Loop("sent from one of the firm's own mailbox addresses".into()));
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
            assert!(matches!(classify(&with_headers(headers), false, &[]), Some(Triage::Automatic(_))), "{headers}");
        }
        for headers in
            ["Auto-Submitted: no\r\n", "X-Auto-Response-Suppress: All\r\n", "Precedence: first-class\r\n", ""]
        {
            assert_eq!(classify(&with_headers(headers), false, &[]), None, "{headers}");
        }
    }

    #[test]
    fn the_hubs_own_mail_is_a_loop() {
        assert!(matches!(classify(&with_headers(""), true, &[]), Some(Triage::Loop(_))));
        let marked = with_headers("X-Loop: consultantpro desk@firm.test\r\n");
        assert!(matches!(classify(&marked, false, &["desk@firm.test".into()]), Some(Triage::Loop(_))));
        assert_eq!(classify(&marked, false, &["other@firm.test".into()]), None);
        let forged = parse(b"From: Desk@Firm.Test\r\nSubject: Re: tax\r\nReply-To: evil@x.test\r\n\r\nbody\r\n");
        assert!(matches!(classify(&forged, false, &["desk@firm.test".into()]), Some(Triage::Loop(_))));
    }
}
