//! One raw RFC 5322 message read into what the hub keeps of it (mail-parser does the MIME,
//! charsets and encoded words): addresses, threading headers, the bodies shown, and every
//! other MIME leaf with its bytes. Any input parses to something; nothing here panics.

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// Headers kept for rules and for reading a message whole: this many, values cut to
/// [`MAX_HEADER_VALUE`] characters.
const MAX_HEADERS: usize = 200;
const MAX_HEADER_VALUE: usize = 2000;
const MAX_ADDRESSES: usize = 100;
const MAX_REFERENCES: usize = 100;
/// Short of the column's 2,000 so a reply's `Re: ` still fits.
const MAX_SUBJECT: usize = 1990;
/// Message-IDs are at most 998 octets by RFC 5322; kept shorter so `mid:` plus one fits.
const MAX_ID: usize = 900;
/// Bodies shown: the text and the HTML are kept up to these many characters (the whole
/// message's parts are kept regardless).
const MAX_TEXT_CHARS: usize = 1_000_000;
const MAX_HTML_CHARS: usize = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub address: String,
    pub name: Option<String>,
}

/// A MIME leaf other than the bodies shown.
#[derive(Debug, Clone)]
pub struct Part {
    /// The part's index in the message (stable for one raw message).
    pub position: i32,
    pub filename: Option<String>,
    pub content_type: String,
    pub inline: bool,
    pub content_id: Option<String>,
    pub content: Vec<u8>,
}

impl Part {
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.content))
    }
}

#[derive(Debug, Clone)]
pub struct ParsedEmail {
    /// `mid:<Message-ID>`, or `sha256:<hash of the raw message>` when it has none: never a
    /// made-up id that another message could share.
    pub dedupe_key: String,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub thread_index: Option<String>,
    /// The thread Outlook's Thread-Index names: its first 22 bytes, hex.
    pub thread_root: Option<String>,
    pub subject: String,
    /// The subject without reply and forward prefixes, lowercased, for threading.
    pub subject_key: String,
    pub from: Option<Mailbox>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub size: usize,
    pub text: String,
    /// As sent; sanitise before showing (see [`super::html::sanitise`]).
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
    /// Set when the message is a delivery-status report or a recognised bounce.
    pub bounce: Option<super::bounce::Bounce>,
}

impl ParsedEmail {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every address the message was written to.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.to.iter().chain(self.cc.iter()).map(String::as_str)
    }

    /// The message's own Message-ID and the ones it answers, newest reference first.
    pub fn thread_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.in_reply_to.clone();
        ids.extend(self.references.iter().rev().cloned());
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        ids
    }
}

/// Reads a raw message. Never fails: what cannot be parsed is kept as text.
pub fn parse(raw: &[u8]) -> ParsedEmail {
    let raw_hash = hex::encode(Sha256::digest(raw));
    // mail-parser (0.11.9) panics on some malformed nestings, e.g. message/rfc822 parts in a
    // multipart whose part reuses its parent's boundary ("Invalid part ID, could not find
    // multipart"). Such mail is kept as unparsable text: a panic here would stop the
    // mailbox's watcher on the same message at every restart, and no mail after it would
    // ever be read.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| MessageParser::default().parse(raw)));
    let Ok(Some(message)) = parsed else {
        return unparsable(raw, raw_hash);
    };
    let message_id = message.message_id().map(clean_id).filter(|id| !id.is_empty());
    let dedupe_key = match &message_id {
        Some(id) => format!("mid:{id}"),
        None => format!("sha256:{raw_hash}"),
    };
    let in_reply_to = id_list(message.in_reply_to());
    let references = id_list(message.references());
    let thread_index =
        message.header_raw("Thread-Index").map(|v| v.split_whitespace().collect::<String>()).filter(|v| {
            !v.is_empty()
                && v.len() <= 2000
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        });
    let thread_root = thread_index.as_deref().and_then(thread_root);
    let subject: String = one_line(message.subject().unwrap_or_default()).trim().chars().take(MAX_SUBJECT).collect();
    let from = message.from().and_then(first_mailbox);
    let to = addresses(message.to());
    let cc = addresses(message.cc());
    let reply_to = message.reply_to().and_then(first_mailbox).map(|m| m.address);
    let sent_at = message.date().and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));

    let body_ids: HashSet<u32> = message.text_body.iter().chain(message.html_body.iter()).copied().collect();
    let text = message
        .text_bodies()
        .filter(|p| !p.is_text_html())
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    let html = message.html_bodies().filter(|p| p.is_text_html()).filter_map(|p| p.text_contents()).next();
    let text = if text.trim().is_empty() { html.map(super::html::to_text).unwrap_or_default() } else { text };

    let mut parts = Vec::new();
    for (index, part) in message.parts.iter().enumerate() {
        let Ok(position) = i32::try_from(index) else { break };
        let is_attachment = part.content_disposition().is_some_and(|d| d.is_attachment());
        let content: Cow<'_, [u8]> = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Text(_) | PartType::Html(_) if body_ids.contains(&(index as u32)) && !is_attachment => continue,
            PartType::Text(text) | PartType::Html(text) => Cow::Borrowed(text.as_bytes()),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Cow::Borrowed(bytes.as_ref()),
            PartType::Message(_) => {
                let start = part.offset_body as usize;
                let end = (part.offset_end as usize).min(raw.len());
                Cow::Borrowed(raw.get(start..end).unwrap_or_default())
            }
        };
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            })
            .unwrap_or_else(|| match part.body {
                PartType::Message(_) => "message/rfc822".into(),
                PartType::Text(_) => "text/plain".into(),
                PartType::Html(_) => "text/html".into(),
                _ => "application/octet-stream".into(),
            })
            .to_ascii_lowercase()
            .chars()
            .take(255)
            .collect();
        let inline = !is_attachment
            && (part.content_disposition().is_some_and(|d| d.is_inline())
                || matches!(part.body, PartType::InlineBinary(_))
                || part.content_id().is_some());
        parts.push(Part {
            position,
            filename: part.attachment_name().map(|n| one_line(n).chars().take(500).collect()),
            content_type,
            inline,
            content_id: part.content_id().map(clean_id).filter(|c| !c.is_empty()),
            content: content.into_owned(),
        });
    }

    let bounce = super::bounce::detect(&message);
    let headers = message
        .headers_raw()
        .filter(|(name, _)| !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_graphic()))
        .take(MAX_HEADERS)
        .map(|(name, value)| (name.to_owned(), unfold(value)))
        .collect();

    ParsedEmail {
        dedupe_key,
        message_id,
        in_reply_to,
        references,
        thread_index,
        thread_root,
        subject_key: subject_key(&subject),
        subject,
        from,
        to,
        cc,
        reply_to,
        sent_at,
        size: raw.len(),
        text: strip_nul(&text).chars().take(MAX_TEXT_CHARS).collect(),
        html: html.map(|h| strip_nul(h).chars().take(MAX_HTML_CHARS).collect()),
        headers,
        parts,
        bounce,
    }
}

/// A message mail-parser could not read at all: kept as text, so nothing is lost.
fn unparsable(raw: &[u8], raw_hash: String) -> ParsedEmail {
    ParsedEmail {
        dedupe_key: format!("sha256:{raw_hash}"),
        message_id: None,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        thread_index: None,
        thread_root: None,
        subject: String::new(),
        subject_key: String::new(),
        from: None,
        to: Vec::new(),
        cc: Vec::new(),
        reply_to: None,
        sent_at: None,
        size: raw.len(),
        text: strip_nul(&String::from_utf8_lossy(raw)).chars().take(MAX_TEXT_CHARS).collect(),
        html: None,
        headers: Vec::new(),
        parts: Vec::new(),
        bounce: None,
    }
}

/// PostgreSQL text cannot hold NUL; a body carrying one keeps everything else.
fn strip_nul(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', "") } else { text.to_owned() }
}

/// Control characters (NUL, CR, LF, ...) become spaces: for one-line fields.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn unfold(value: &str) -> String {
    let unfolded: String = value.split(['\r', '\n']).map(str::trim_start).collect::<Vec<_>>().join(" ");
    strip_nul(unfolded.trim()).chars().take(MAX_HEADER_VALUE).collect()
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(MAX_ID)
        .collect()
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<String> = match value {
        HeaderValue::Text(id) => vec![clean_id(id)],
        HeaderValue::TextList(ids) => ids.iter().map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    };
    ids.into_iter().filter(|id| !id.is_empty()).take(MAX_REFERENCES).collect()
}

fn normalise_address(address: &str) -> Option<String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>').trim().to_lowercase();
    (address.contains('@') && address.len() <= 254 && !address.contains(|c: char| c.is_whitespace() || c.is_control()))
        .then_some(address)
}

fn first_mailbox(address: &Address<'_>) -> Option<Mailbox> {
    address.iter().find_map(|a| {
        let addr = normalise_address(a.address()?)?;
        let name = a
            .name()
            .map(|n| one_line(n).trim().to_owned())
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(300).collect());
        Some(Mailbox { address: addr, name })
    })
}

fn addresses(address: Option<&Address<'_>>) -> Vec<String> {
    let mut seen = HashSet::new();
    address
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| normalise_address(a.address()?))
        .filter(|a| seen.insert(a.clone()))
        .take(MAX_ADDRESSES)
        .collect()
}

/// The subject threading compares: reply and forward prefixes in the common languages
/// (`Re:`, `Fwd:`, `AW:`, `SV:`, `Antw:`, `RIF:`, with counters like `Re[2]:`) and list
/// tags in brackets removed, whitespace collapsed, lowercased.
pub fn subject_key(subject: &str) -> String {
    const PREFIXES: &[&str] =
        &["re", "fw", "fwd", "aw", "wg", "sv", "vs", "antw", "doorst", "rif", "r", "tr", "ref", "res", "enc", "odp"];
    let mut rest = subject.trim();
    loop {
        let before = rest;
        if let Some(stripped) = rest.strip_prefix('[').and_then(|r| r.split_once(']')).map(|(_, r)| r.trim_start()) {
            rest = stripped;
        }
        if let Some((head, tail)) = rest.split_once(':') {
            let word = head.trim();
            let word = word.split_once('[').map_or(word, |(w, n)| {
                if n.trim_end_matches(']').chars().all(|c| c.is_ascii_digit()) { w } else { word }
            });
            if PREFIXES.iter().any(|p| word.eq_ignore_ascii_case(p)) {
                rest = tail.trim_start();
            }
        }
        if rest == before {
            break;
        }
    }
    rest.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The thread a Thread-Index names (MS-OXOMSG 2.2.1.3): its 22-byte header, hex.
pub fn thread_root(thread_index: &str) -> Option<String> {
    let bytes = STANDARD.decode(thread_index).ok()?;
    (bytes.len() >= 22 && (bytes.len() - 22) % 5 == 0).then(|| hex::encode(&bytes[..22]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_prefixes_in_many_languages_reduce_to_one_key() {
        for subject in [
            "Quarterly review",
            "Re: Quarterly review",
            "RE: Fwd: quarterly  review",
            "AW: SV: Quarterly review",
            "Re[2]: Quarterly review",
            "[client-list] Re: Quarterly review",
            "Antw: Quarterly review",
        ] {
            assert_eq!(subject_key(subject), "quarterly review", "{subject}");
        }
        assert_eq!(subject_key("Regarding: the plan"), "regarding: the plan");
        assert_eq!(subject_key(""), "");
    }

    #[test]
    fn headers_addresses_and_threading_ids_are_read() {
        let raw = b"From: \"Ann Lee\" <Ann.Lee@Example.COM>\r\nTo: desk@firm.test, Bob <bob@example.com>\r\n\
Cc: carol@example.com\r\nSubject: =?UTF-8?B?w4RwZmVs?= question\r\nMessage-ID: <abc@example.com>\r\n\
In-Reply-To: <one@firm.test>\r\nReferences: <zero@firm.test> <one@firm.test>\r\n\
Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\nHello\r\n";
        let parsed = parse(raw);
        assert_eq!(parsed.dedupe_key, "mid:abc@example.com");
        assert_eq!(parsed.from, Some(Mailbox { address: "ann.lee@example.com".into(), name: Some("Ann Lee".into()) }));
        assert_eq!(parsed.to, vec!["desk@firm.test", "bob@example.com"]);
        assert_eq!(parsed.cc, vec!["carol@example.com"]);
        assert_eq!(parsed.subject, "Äpfel question");
        assert_eq!(parsed.thread_ids(), vec!["one@firm.test", "zero@firm.test"]);
        assert_eq!(parsed.text.trim(), "Hello");
        assert!(parsed.sent_at.is_some());
    }

    #[test]
    fn a_message_without_message_id_is_keyed_by_its_content() {
        let a = parse(b"From: a@b.test\r\nSubject: x\r\n\r\none\r\n");
        let b = parse(b"From: a@b.test\r\nSubject: x\r\n\r\ntwo\r\n");
        assert!(a.dedupe_key.starts_with("sha256:"));
        assert_ne!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.dedupe_key, parse(b"From: a@b.test\r\nSubject: x\r\n\r\none\r\n").dedupe_key);
    }

    #[test]
    fn attachments_and_inline_images_are_kept_with_their_bytes() {
        let raw = b"From: a@b.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=OUT\r\n\r\n--OUT\r\nContent-Type: multipart/related; boundary=REL\r\n\r\n\
--REL\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See <img src=\"cid:logo@x\"></p>\r\n\
--REL\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--REL--\r\n\
--OUT\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--OUT--\r\n";
        let parsed = parse(raw);
        assert_eq!(parsed.parts.len(), 2, "{:?}", parsed.parts);
        let image = &parsed.parts[0];
        assert_eq!(image.content_type, "image/png");
        assert!(image.inline);
        assert_eq!(image.content_id.as_deref(), Some("logo@x"));
        assert_eq!(image.content, STANDARD.decode("iVBORw0KGgo=").unwrap());
        let pdf = &parsed.parts[1];
        assert_eq!(pdf.filename.as_deref(), Some("report.pdf"));
        assert!(!pdf.inline);
        assert_eq!(pdf.content, b"%PDF-1.4\n");
        assert!(parsed.html.as_deref().unwrap().contains("cid:logo@x"));
        assert!(parsed.text.contains("See"), "{}", parsed.text);
    }

    #[test]
    fn thread_index_names_its_thread_by_the_first_22_bytes() {
        let root = [7u8; 22];
        let mut reply = root.to_vec();
        reply.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(thread_root(&STANDARD.encode(root)), Some(hex::encode(root)));
        assert_eq!(thread_root(&STANDARD.encode(&reply)), Some(hex::encode(root)));
        assert_eq!(thread_root("not base64!"), None);
        assert_eq!(thread_root(&STANDARD.encode([1u8; 23])), None);
    }

    #[test]
    fn hostile_header_fields_are_cut_to_what_the_store_takes() {
        let long_id = "x".repeat(2000);
        let raw = format!(
            "From: \"A\0B\" <a@b.test>\r\nSubject: {}\0\r\nMessage-ID: <{long_id}@b.test>\r\nX-Bad\0Name: v\r\n\r\nx\r\n",
            "s".repeat(5000)
        );
        let parsed = parse(raw.as_bytes());
        assert!(parsed.dedupe_key.len() <= 4 + MAX_ID, "{}", parsed.dedupe_key.len());
        assert!(parsed.subject.chars().count() <= MAX_SUBJECT);
        assert!(!parsed.subject.contains('\0'));
        assert!(parsed.from.as_ref().unwrap().name.as_ref().is_none_or(|n| !n.contains('\0')));
        assert!(parsed.headers.iter().all(|(n, v)| !n.contains('\0') && !v.contains('\0')));
    }

    #[test]
    fn nul_bytes_and_garbage_parse_without_panicking() {
        let parsed = parse(b"Subject: a\0b\r\n\r\nbody\0with nul\r\n");
        assert!(!parsed.text.contains('\0'));
        for raw in
            [&b""[..], b"\r\n\r\n", b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n", &[0xff, 0xfe, 0x00][..]]
        {
            let _ = parse(raw);
        }
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::parse;

        fn mime_fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("Content-Type: multipart/mixed; boundary=\"B\"\r\n".to_owned()),
                Just("Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n".to_owned()),
                Just("Content-Type: message/rfc822\r\n".to_owned()),
                Just("Content-Transfer-Encoding: base64\r\n".to_owned()),
                Just("Content-Transfer-Encoding: quoted-printable\r\n".to_owned()),
                Just("Subject: =?utf-8?B?w4Q=?= =?x-bad?Q?=FF?=\r\n".to_owned()),
                Just("--B\r\n".to_owned()),
                Just("--B--\r\n".to_owned()),
                Just("\r\n".to_owned()),
                "[ -~]{0,40}\r\n",
                any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
        }

        /// The input the fuzzer found that makes mail-parser panic: kept as text, not a crash.
        #[test]
        fn a_nesting_that_panics_the_parser_is_kept_as_text() {
            let raw = concat!(
                "From: a@b.test\r\nMIME-Version: 1.0\r\n",
                "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n\0",
                "Content-Type: multipart/mixed; boundary=\"B\"\r\n",
                "Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n\r\n--B--\r\n",
            );
            let parsed = parse(raw.as_bytes());
            assert!(parsed.dedupe_key.starts_with("sha256:"), "{}", parsed.dedupe_key);
            assert!(parsed.parts.is_empty());
            assert!(!parsed.text.contains('\0'));
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes at all parse, and what comes out fits the store.
            #[test]
            fn arbitrary_bytes_parse_into_storable_fields(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
                let parsed = parse(&raw);
                prop_assert!(parsed.dedupe_key.len() <= 1000);
                prop_assert!(!parsed.subject.contains('\0') && !parsed.text.contains('\0'));
            }

            /// Message-shaped input: nested multiparts, encodings and reports stitched at random.
            #[test]
            fn mime_shaped_input_never_panics(parts in proptest::collection::vec(mime_fragment(), 0..60)) {
                let raw = format!("From: a@b.test\r\nMIME-Version: 1.0\r\n{}", parts.concat());
                let parsed = parse(raw.as_bytes());
                prop_assert!(parsed.dedupe_key.len() <= 1000);
                prop_assert!(parsed.parts.iter().all(|p| p.content_type.len() <= 255));
            }
        }
    }
}
