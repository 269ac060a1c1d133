//! Bounce (non-delivery report) detection for inbound mail.
//!
//! A help desk that ingests mail must not open tickets for, or reply to, delivery failures of its own
//! outbound mail; it should instead mark the failing addresses. [`detect`] tells whether a parsed message is
//! such a report and which recipients failed.
//!
//! # Order of detection
//!
//! Detectors run in a fixed order, most authoritative first, and the first one that finds any failed
//! address wins (later ones are not consulted). This is the order and the stop rule of
//! [flufl.bounce](https://gitlab.com/warsaw/flufl.bounce) 6.0.0, whose detectors this module ports and with
//! whose results it agrees on flufl's whole test corpus:
//!
//! 1. `dsn`: RFC 3464 delivery status notifications. Every `message/delivery-status` part anywhere in the
//!    message is read (flufl does not insist on the `multipart/report` wrapper, and neither do we, since
//!    some MTAs send the part inside `multipart/mixed`). Per-recipient blocks with `Action: failed` (or
//!    `error`, as opensmtpd writes) are permanent, `Action: delayed` temporary; `delivered`, `relayed` and
//!    `expanded` are not failures. The address comes from `Original-Recipient` when it carries an `rfc822`
//!    address, else from `Final-Recipient`. RFC 6533 `message/global-delivery-status` parts are read the
//!    same way (an addition to flufl, which ignores them).
//! 2. Provider formats identified by a header: `exim` (`X-Failed-Recipients`), `sina`.
//! 3. Provider heuristics: `yahoo`, `yale`, `smtp32`, `postfix`, `qmail`, `groupwise`, `microsoft`,
//!    `caiwireless`, `exchange`, `netscape`, `aol`.
//! 4. Generic heuristics: `simplematch` (start line, address lines, end line), `simplewarning` (the same for
//!    delay warnings, reported as temporary) and `llnl`.
//!
//! Only `dsn` and `simplewarning` can report temporary failures; the other non-standard formats cannot tell
//! and, like flufl, report permanent ones.
//!
//! # Fidelity to flufl.bounce
//!
//! The heuristics are only as good as their agreement with the corpus they were written against, so they
//! are ported literally, including the quirks of Python's `email` package that they depend on: lines come
//! from the undecoded payload of every leaf part (quoted-printable included, hence the `=XX` unquoting in
//! `simplematch`), some detectors read the transfer-decoded bytes of one part instead, line endings are
//! normalised to `\n` and kept on each line (several patterns need the trailing whitespace), Python's `$`
//! also matches before that final newline, and non-ASCII addresses are dropped where flufl drops them.
//! Python's MIME tree is rebuilt from `mail_parser`'s parts, with `message/delivery-status` split into its
//! header blocks by hand because `mail_parser` keeps it as an opaque body.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::LazyLock;

use mail_parser::{Message, PartType};
use regex::bytes::Regex as BytesRegex;
use regex::{Regex, RegexSet};

/// One recipient that the report says could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BouncedRecipient {
    /// As found, trimmed of `<>`; compare case-insensitively.
    pub address: String,
    /// False for delayed/warning reports (flufl's "temporary").
    pub permanent: bool,
    /// RFC 3463 status such as `5.1.1` when the report gives one.
    pub status: Option<String>,
    /// The remote server's text when present, on one line, at most 300 characters.
    pub diagnostic: Option<String>,
}

/// A recognised delivery failure report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bounce {
    /// `"dsn"` for RFC 3464 reports, otherwise the name of the non-standard family (flufl's detector name).
    pub format: &'static str,
    pub recipients: Vec<BouncedRecipient>,
}

/// Some when the message is a delivery-status report (RFC 3464) or a recognised non-standard bounce.
pub fn detect(message: &Message<'_>) -> Option<Bounce> {
    let pats = PATTERNS.as_ref()?;
    let root = build_part(message, 0, false, 0)?;
    let ctx = Ctx { root: &root, pats, lines: OnceCell::new() };
    for (format, detector) in DETECTORS {
        let found = detector(&ctx);
        if found.is_empty() {
            continue;
        }
        let recipients = found.into_recipients();
        // flufl stops at a detector that only produced unusable (empty) addresses; so do we, but such a
        // result tells the caller nothing.
        return if recipients.is_empty() { None } else { Some(Bounce { format, recipients }) };
    }
    None
}

type Detector = fn(&Ctx<'_, '_>) -> Found;

const DETECTORS: [(&str, Detector); 17] = [
    ("dsn", dsn),
    ("exim", exim),
    ("sina", sina),
    ("yahoo", yahoo),
    ("yale", yale),
    ("smtp32", smtp32),
    ("postfix", postfix),
    ("qmail", qmail),
    ("groupwise", groupwise),
    ("microsoft", microsoft),
    ("caiwireless", caiwireless),
    ("exchange", exchange),
    ("netscape", netscape),
    ("aol", aol),
    ("simplematch", simplematch),
    ("simplewarning", simplewarning),
    ("llnl", llnl),
];

const MAX_DIAGNOSTIC_CHARS: usize = 300;
/// mail_parser already bounds nesting; this only guards our own recursion against a malformed part table.
const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------------------

struct Hit {
    address: String,
    status: Option<String>,
    diagnostic: Option<String>,
}

impl Hit {
    fn plain(address: impl Into<String>) -> Self {
        Hit { address: address.into(), status: None, diagnostic: None }
    }
}

#[derive(Default)]
struct Found {
    temporary: Vec<Hit>,
    permanent: Vec<Hit>,
}

impl Found {
    fn permanent(addresses: impl IntoIterator<Item = String>) -> Self {
        Found { temporary: Vec::new(), permanent: addresses.into_iter().map(Hit::plain).collect() }
    }

    fn temporary(addresses: impl IntoIterator<Item = String>) -> Self {
        Found { temporary: addresses.into_iter().map(Hit::plain).collect(), permanent: Vec::new() }
    }

    fn is_empty(&self) -> bool {
        self.temporary.is_empty() && self.permanent.is_empty()
    }

    /// One entry per address (case-insensitive); an address that is both delayed and failed is permanent.
    fn into_recipients(self) -> Vec<BouncedRecipient> {
        let mut out: Vec<BouncedRecipient> = Vec::new();
        let hits = self.permanent.into_iter().map(|h| (h, true)).chain(self.temporary.into_iter().map(|h| (h, false)));
        for (hit, permanent) in hits {
            let address = clean_address(&hit.address);
            if address.is_empty() {
                continue;
            }
            if let Some(existing) = out.iter_mut().find(|r| r.address.eq_ignore_ascii_case(&address)) {
                if existing.permanent == permanent {
                    existing.status = existing.status.take().or(hit.status);
                    existing.diagnostic = existing.diagnostic.take().or(hit.diagnostic);
                }
                continue;
            }
            out.push(BouncedRecipient { address, permanent, status: hit.status, diagnostic: hit.diagnostic });
        }
        out
    }
}

fn clean_address(address: &str) -> String {
    let trimmed = address.trim();
    let inner = trimmed.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(trimmed);
    inner.trim().to_string()
}

// ---------------------------------------------------------------------------------------------------------
// A view of the message shaped like Python's email.message.Message tree
// ---------------------------------------------------------------------------------------------------------

struct Node<'m> {
    /// (lower-cased name, value as Python's compat32 policy returns it).
    headers: Vec<(String, String)>,
    /// Python's `get_content_type()`.
    ctype: String,
    /// Undecoded payload of a leaf, line endings as received.
    body: &'m [u8],
    /// Some exactly when Python's `is_multipart()` is true (multipart/*, message/*).
    children: Option<Vec<Node<'m>>>,
}

impl<'m> Node<'m> {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn is_multipart(&self) -> bool {
        self.children.is_some()
    }

    /// Pre-order, like Python's `Message.walk()`.
    fn walk<'s>(&'s self, out: &mut Vec<&'s Node<'m>>) {
        out.push(self);
        for child in self.children.iter().flatten() {
            child.walk(out);
        }
    }

    fn leaves(&self) -> Vec<&Node<'m>> {
        let mut all = Vec::new();
        self.walk(&mut all);
        all.retain(|n| !n.is_multipart());
        all
    }

    fn charset(&self) -> Option<String> {
        let value = self.get("content-type")?;
        param_list(value).into_iter().find_map(|(k, v)| (k.eq_ignore_ascii_case("charset")).then(|| unquote(&v)))
    }

    /// Python's `get_payload(decode=False)` of a leaf as text: line endings normalised, non-ASCII bytes
    /// decoded with the part's charset.
    fn text(&self) -> String {
        if self.is_multipart() {
            return String::new();
        }
        let raw = normalize_newlines(self.body);
        decode_charset(&raw, self.charset().as_deref())
    }

    /// Python's `get_payload(decode=True)`: transfer-decoded bytes.
    fn decoded(&self) -> Vec<u8> {
        if self.is_multipart() {
            return Vec::new();
        }
        let raw = normalize_newlines(self.body);
        let cte = self.get("content-transfer-encoding").unwrap_or("").to_lowercase();
        match cte.as_str() {
            "quoted-printable" => qp_decode(&raw),
            "base64" => base64_decode(&raw),
            _ => raw.into_owned(),
        }
    }
}

fn build_part<'m>(msg: &'m Message<'_>, id: usize, in_digest: bool, depth: usize) -> Option<Node<'m>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let part = msg.parts.get(id)?;
    let raw: &'m [u8] = msg.raw_message.as_ref();
    let headers: Vec<(String, String)> = part
        .headers
        .iter()
        .map(|h| {
            let value = raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
            (h.name.as_str().to_ascii_lowercase(), header_value(value))
        })
        .collect();
    let is_message = matches!(part.body, PartType::Message(_));
    let ctype = content_type(&headers, in_digest || (is_message && !headers.iter().any(|(n, _)| n == "content-type")));
    let body = raw.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default();
    // Checked before the body kind: whether mail_parser keeps the report as opaque bytes or parses it as a
    // nested message, its raw text is the header blocks.
    let children = match &part.body {
        _ if is_delivery_status(&ctype) => Some(delivery_status_blocks(body)),
        PartType::Multipart(ids) => {
            let digest = ctype == "multipart/digest";
            Some(
                ids.iter()
                    .map(|&c| c as usize)
                    // Children always follow their parent in the part table; anything else is corrupt.
                    .filter(|&c| c > id)
                    .filter_map(|c| build_part(msg, c, digest, depth + 1))
                    .collect(),
            )
        }
        PartType::Message(nested) => Some(build_part(nested, 0, false, depth + 1).into_iter().collect()),
        // Python parses every other message/* body as a message too; mail_parser leaves these opaque.
        _ if ctype.starts_with("message/") => Some(vec![headers_and_body(body)]),
        _ => None,
    };
    Some(Node { headers, ctype, body, children })
}

/// RFC 6533 global reports share the RFC 3464 layout; flufl does not know them.
fn is_delivery_status(ctype: &str) -> bool {
    matches!(ctype, "message/delivery-status" | "message/global-delivery-status")
}

/// compat32 value: leading blanks dropped, folding kept, trailing line break dropped.
fn header_value(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.trim_start_matches([' ', '\t']).trim_end_matches(['\r', '\n']).to_string()
}

fn content_type(headers: &[(String, String)], default_message: bool) -> String {
    match headers.iter().find(|(n, _)| n == "content-type") {
        None if default_message => "message/rfc822".to_string(),
        None => "text/plain".to_string(),
        Some((_, value)) => {
            let main = value.split(';').next().unwrap_or("").trim().to_lowercase();
            if main.matches('/').count() == 1 { main } else { "text/plain".to_string() }
        }
    }
}

/// Reads a header block the way Python's feedparser does, starting at `lines[0]`. Returns the headers and
/// how many lines they took; the block ends at a blank line or at the first line that is not a header.
fn parse_header_lines(lines: &[&str]) -> (Vec<(String, String)>, usize) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut used = 0;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push('\n');
                value.push_str(line);
            }
            used += 1;
            continue;
        }
        let Some((name, value)) = line.split_once(':') else { break };
        if !name.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            break;
        }
        if !name.is_empty() {
            headers.push((name.to_ascii_lowercase(), value.trim_start_matches([' ', '\t']).to_string()));
        }
        used += 1;
    }
    (headers, used)
}

/// Python represents message/delivery-status as one header-only message per blank-line separated block.
fn delivery_status_blocks(body: &[u8]) -> Vec<Node<'_>> {
    let text = normalize_newlines(body);
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    loop {
        let (headers, used) = parse_header_lines(lines.get(i..).unwrap_or_default());
        i += used;
        // Anything after a non-header line is that block's body, up to the next blank line.
        while lines.get(i).is_some_and(|l| !l.is_empty()) {
            i += 1;
        }
        blocks.push(Node { headers, ctype: "text/plain".to_string(), body: &[], children: None });
        // Skip the separating blank line; stop at the end of the part.
        i += 1;
        if i >= lines.len() {
            break;
        }
    }
    blocks
}

/// A message/* body that mail_parser did not parse: headers, then the rest as an undecoded leaf.
fn headers_and_body(body: &[u8]) -> Node<'_> {
    let text = normalize_newlines(body);
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let (headers, mut used) = parse_header_lines(&lines);
    if lines.get(used).is_some_and(|l| l.is_empty()) {
        used += 1;
    }
    let ctype = content_type(&headers, false);
    Node { headers, ctype, body: body.get(nth_line_start(body, used)..).unwrap_or_default(), children: None }
}

/// Byte offset of the start of line `n` (0-based) in a raw body whose lines may end in CRLF, LF or CR.
fn nth_line_start(raw: &[u8], n: usize) -> usize {
    let mut seen = 0;
    let mut i = 0;
    while seen < n {
        match raw.get(i) {
            None => return raw.len(),
            Some(b'\r') if raw.get(i + 1) == Some(&b'\n') => i += 2,
            Some(b'\r' | b'\n') => i += 1,
            Some(_) => {
                i += 1;
                continue;
            }
        }
        seen += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------------------
// Text helpers mirroring Python semantics
// ---------------------------------------------------------------------------------------------------------

/// Python reads messages with universal newlines, so `\r\n` and lone `\r` are both just `\n`.
fn normalize_newlines(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\r') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut iter = raw.iter().copied().peekable();
    while let Some(b) = iter.next() {
        if b == b'\r' {
            iter.next_if_eq(&b'\n');
            out.push(b'\n');
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

fn decode_charset(raw: &[u8], charset: Option<&str>) -> String {
    if raw.is_ascii() {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let charset = charset.unwrap_or("us-ascii").to_ascii_lowercase();
    match charset.as_str() {
        "us-ascii" | "ascii" => raw.iter().map(|&b| if b.is_ascii() { b as char } else { '\u{fffd}' }).collect(),
        "utf-8" | "utf8" => String::from_utf8_lossy(raw).into_owned(),
        _ => match mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()) {
            Some(decoder) => decoder(raw),
            None => raw.iter().map(|&b| if b.is_ascii() { b as char } else { '\u{fffd}' }).collect(),
        },
    }
}

/// Lines with their `\n` kept, like iterating a StringIO/BytesIO.
fn split_keep<T: AsRef<[u8]> + ?Sized>(data: &T) -> impl Iterator<Item = &[u8]> {
    data.as_ref().split_inclusive(|&b| b == b'\n')
}

fn str_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
}

/// Python's `bytes.strip()`: ASCII whitespace including vertical tab.
fn bstrip(b: &[u8]) -> &[u8] {
    brstrip(blstrip(b))
}

fn blstrip(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !is_py_space(*c)).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

fn brstrip(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|c| !is_py_space(*c)).map_or(0, |i| i + 1);
    b.get(..end).unwrap_or_default()
}

fn is_py_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn bytes_to_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// flufl drops addresses that are not ASCII (the email package has already mangled them).
fn ascii(s: &str) -> Option<String> {
    s.is_ascii().then(|| s.to_string())
}

fn qp_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'=' {
            match (raw.get(i + 1), raw.get(i + 2)) {
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&h), Some(&l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                    out.push(hex_val(h) << 4 | hex_val(l));
                    i += 3;
                    continue;
                }
                _ => {
                    // A soft break followed by trailing blanks is still a soft break.
                    let rest = raw.get(i + 1..).unwrap_or_default();
                    let blanks = rest.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
                    if rest.get(blanks) == Some(&b'\n') {
                        i += blanks + 2;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Lenient, like Python's decoder: characters outside the alphabet are skipped and decoding stops at
/// padding.
fn base64_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in raw {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Python's `email.message._parseparam` followed by the key/value split of `_get_params_preserve`.
fn param_list(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let joined = format!(";{value}");
    let mut s = joined.as_str();
    while let Some(rest) = s.strip_prefix(';') {
        s = rest;
        let mut end = s.find(';');
        // A ';' inside a quoted string does not end the parameter.
        while let Some(e) = end {
            let head = s.get(..e).unwrap_or("");
            let quotes = head.matches('"').count().saturating_sub(head.matches("\\\"").count());
            if e > 0 && quotes % 2 == 1 {
                end = s.get(e + 1..).and_then(|r| r.find(';')).map(|x| x + e + 1);
            } else {
                break;
            }
        }
        let e = end.unwrap_or(s.len());
        let field = s.get(..e).unwrap_or("");
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), v.trim().to_string()),
            None => (field.trim().to_string(), String::new()),
        };
        out.push((key, val));
        s = s.get(e..).unwrap_or("");
    }
    out
}

fn unquote(v: &str) -> String {
    let inner = v.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
    match inner {
        Some(s) => s.replace("\\\\", "\\").replace("\\\"", "\""),
        None => v.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Address parsing, a reduced port of Python's email.utils (strict mode, as in the oracle's Python 3.11)
// ---------------------------------------------------------------------------------------------------------

/// Splits on commas outside quotes, comments and angle brackets.
fn split_address_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth_paren, mut depth_angle, mut in_quote, mut escaped) = (0usize, 0usize, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' if depth_paren == 0 => in_quote = !in_quote,
            '(' if !in_quote => depth_paren += 1,
            ')' if !in_quote => depth_paren = depth_paren.saturating_sub(1),
            '<' if !in_quote && depth_paren == 0 => depth_angle += 1,
            '>' if !in_quote && depth_paren == 0 => depth_angle = depth_angle.saturating_sub(1),
            ',' if !in_quote && depth_paren == 0 && depth_angle == 0 => {
                out.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut in_quote, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn addr_spec(segment: &str) -> String {
    let s = strip_comments(segment);
    let s = s.trim();
    let addr = if let Some(open) = s.find('<') {
        let inner = s.get(open + 1..).unwrap_or("");
        let inner = inner.split('>').next().unwrap_or("").trim();
        // Python's strict parser gives up on obsolete source routes ("<@a,@b:user@host>").
        if inner.starts_with('@') { "" } else { inner }.to_string()
    } else if s.contains('>') {
        // A stray '>' makes Python see a second, empty address.
        String::new()
    } else if s.contains('@') {
        s.to_string()
    } else {
        // A bare phrase: Python returns its first word.
        s.split_whitespace().next().unwrap_or("").to_string()
    };
    // Python treats a '[' left after parsing as a parse failure.
    if addr.contains('[') { String::new() } else { addr }
}

/// The addresses Python's `_AddressList` yields: an empty entry for each empty comma-separated slot,
/// except nothing for an empty final slot.
fn address_entries(s: &str) -> Vec<String> {
    let segments = split_address_list(s);
    let last = segments.len().saturating_sub(1);
    segments
        .into_iter()
        .enumerate()
        .filter(|(i, seg)| *i < last || !seg.is_empty())
        .map(|(_, seg)| addr_spec(seg))
        .collect()
}

/// `email.utils.parseaddr(s)[1]`: strict mode wants exactly one address.
fn parseaddr(s: &str) -> String {
    let mut entries = address_entries(s);
    match entries.len() {
        1 => entries.pop().unwrap_or_default(),
        _ => String::new(),
    }
}

/// `[addr for _, addr in email.utils.getaddresses(values)]`.
fn getaddresses<'s>(values: impl IntoIterator<Item = &'s str>) -> Vec<String> {
    let values: Vec<&str> = values.into_iter().collect();
    let expected: usize = values.iter().map(|v| 1 + strip_quoted(v).matches(',').count()).sum();
    let result = address_entries(&values.join(", "));
    // Python's strict mode rejects the whole list when the comma count and the parse disagree.
    if result.len() != expected {
        return vec![String::new()];
    }
    result
}

fn strip_quoted(s: &str) -> String {
    let mut out = String::new();
    let (mut in_quote, mut escaped) = (false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            _ if !in_quote => out.push(c),
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------------------

/// A simplematch pattern; its start regex lives in the owning `RegexSet`.
struct Triple {
    end: Regex,
    addr: Regex,
}

struct Patterns {
    valid: BytesRegex,
    status: Regex,
    quopri: Regex,
    ws: BytesRegex,
    sina_addr: Regex,
    yahoo_tags: Vec<Regex>,
    yahoo_addr: Regex,
    yahoo_ends: Vec<Regex>,
    yale_start: BytesRegex,
    yale_end: BytesRegex,
    yale_addr: BytesRegex,
    smtp32_end: Regex,
    smtp32_addr: Regex,
    postfix_salutation: BytesRegex,
    postfix_reason: BytesRegex,
    postfix_addr: BytesRegex,
    qmail_addr: Regex,
    groupwise_addr: BytesRegex,
    microsoft_start: BytesRegex,
    caiwireless_tag: Regex,
    caiwireless_addr: Regex,
    exchange_start: Regex,
    exchange_end: Regex,
    exchange_smtp: Regex,
    exchange_on: Regex,
    netscape_start: BytesRegex,
    netscape_addr: BytesRegex,
    aol_start: BytesRegex,
    llnl_addr: Regex,
    simple: Vec<Triple>,
    simple_starts: RegexSet,
    warning: Vec<Triple>,
    warning_starts: RegexSet,
}

fn triples(specs: &[(&str, &str, &str)]) -> Option<(Vec<Triple>, RegexSet)> {
    let ci = |p: &str| Regex::new(&format!("(?i){p}")).ok();
    let triples =
        specs.iter().map(|(_, e, a)| Some(Triple { end: ci(e)?, addr: ci(a)? })).collect::<Option<Vec<_>>>()?;
    let set = RegexSet::new(specs.iter().map(|(s, _, _)| format!("(?i){s}"))).ok()?;
    Some((triples, set))
}

/// flufl's `simplematch.PATTERNS`: (start line, end line, address), case-insensitive. `$` is written as
/// `\n?\z` to keep Python's meaning on lines that still end in a newline.
const SIMPLE: &[(&str, &str, &str)] = &[
    // sdm.de
    (r"here is your list of failed recipients", r"here is your returned mail", r"<(?P<addr>[^>]*)>"),
    // sz-sb.de, corridor.com, nfg.nl
    (
        r"the following addresses had",
        r"transcript of session follows",
        r"^ *(\(expanded from: )?<?(?P<addr>[^\s@]+@[^\s@>]+?)>?\)?\s*\n?\z",
    ),
    // robanal.demon.co.uk
    (
        r"this message was created automatically by mail delivery software",
        r"original message follows",
        r"rcpt to:\s*<(?P<addr>[^>]*)>",
    ),
    // s1.com (InterScan E-Mail VirusWall NT ???)
    (r"message from interscan e-mail viruswall nt", r"end of message", r"rcpt to:\s*<(?P<addr>[^>]*)>"),
    // Smail
    (r"failed addresses follow:", r"message text follows:", r"\s*(?P<addr>\S+@\S+)"),
    // newmail.ru
    (
        r"This is the machine generated message from mail service.",
        r"--- Below the next line is a copy of the message.",
        r"<(?P<addr>[^>]*)>",
    ),
    // turbosport.com runs something called `MDaemon 3.5.2' ???
    (
        r"The following addresses did NOT receive a copy of your message:",
        r"--- Session Transcript ---",
        r"[>]\s*(?P<addr>.*)\n?\z",
    ),
    // usa.net
    (
        r"Intended recipient:\s*(?P<addr>.*)\n?\z",
        r"--------RETURNED MAIL FOLLOWS--------",
        r"Intended recipient:\s*(?P<addr>.*)\n?\z",
    ),
    // hotpop.com
    (
        r"Undeliverable Address:\s*(?P<addr>.*)\n?\z",
        r"Original message attached",
        r"Undeliverable Address:\s*(?P<addr>.*)\n?\z",
    ),
    // Another demon.co.uk format
    (
        r"This message was created automatically by mail delivery",
        r"^---- START OF RETURNED MESSAGE ----",
        r"addressed to '(?P<addr>[^']*)'",
    ),
    // Prodigy.net full mailbox
    (r"User's mailbox is full:", r"Unable to deliver mail.", r"User's mailbox is full:\s*<(?P<addr>[^>]*)>"),
    // Microsoft SMTPSVC
    (r"The email below could not be delivered to the following user:", r"Old message:", r"<(?P<addr>[^>]*)>"),
    // Yahoo on behalf of other domains like sbcglobal.net
    (
        r"Unable to deliver message to the following address\(es\)\.",
        r"--- Original message follows\.",
        r"<(?P<addr>[^>]*)>:",
    ),
    // googlemail.com
    (
        r"Delivery to the following recipient failed",
        r"----- Original message -----",
        r"^\s*(?P<addr>[^\s@]+@[^\s@]+)\s*\n?\z",
    ),
    // kundenserver.de
    (r"A message that you sent could not be delivered", r"^---", r"<(?P<addr>[^>]*)>"),
    // another kundenserver.de
    (r"A message that you sent could not be delivered", r"^---", r"^(?P<addr>[^\s@]+@[^\s@:]+):"),
    // thehartford.com / songbird; no unique end line, so stop at the first line of 3+ characters that
    // neither starts with 'D' nor has an '@'.
    (
        r"Del(i|e)very to the following recipients (failed|was aborted)",
        r"^[^D][^@]{2,}\n?\z",
        r"^[\s*]*(?P<addr>[^\s@]+@[^\s@]+)\s*\n?\z",
    ),
    // and another thehartfod.com/hartfordlife.com
    (r"^Your message\s*\n?\z", r"^because:", r"^\s*(?P<addr>[^\s@]+@[^\s@]+)\s*\n?\z"),
    // kviv.be (InterScan NT)
    (r"^Unable to deliver message to", r"\*+\s+End of message\s+\*+", r"<(?P<addr>[^>]*)>"),
    // earthlink.net supported domains
    (
        r"^Sorry, unable to deliver your message to",
        r"^A copy of the original message",
        r"\s*(?P<addr>[^\s@]+@[^\s@]+)\s+",
    ),
    // ademe.fr
    (r"^A message could not be delivered to:", r"^Subject:", r"^\s*(?P<addr>[^\s@]+@[^\s@]+)\s*\n?\z"),
    // andrew.ac.jp
    (r"^Invalid final delivery userid:", r"^Original message follows.", r"\s*(?P<addr>[^\s@]+@[^\s@]+)\s*\n?\z"),
    // E500_SMTP_Mail_Service@lerctr.org
    (r"------ Failed Recipients ------", r"-------- Returned Mail --------", r"<(?P<addr>[^>]*)>"),
    // cynergycom.net
    (r"A message that you sent could not be delivered", r"^---", r"(?P<addr>[^\s@]+@[^\s@)]+)"),
    // LSMTP for Windows
    (r"^--> Error description:\s*\n?\z", r"^Error-End:", r"^Error-for:\s+(?P<addr>[^\s@]+@[^\s@]+)"),
    // Qmail with a tri-language intro beginning in spanish
    (r"Your message could not be delivered", r"^-", r"<(?P<addr>[^>]*)>:"),
    // socgen.com
    (r"Your message could not be delivered to", r"^\s*\n?\z", r"(?P<addr>[^\s@]+@[^\s@]+)"),
    // dadoservice.it
    (
        r"Your message has encountered delivery problems",
        r"Your message reads",
        r"addressed to\s*(?P<addr>[^\s@]+@[^\s@)]+)",
    ),
    // gomaps.com
    (r"Did not reach the following recipient", r"^\s*\n?\z", r"\s(?P<addr>[^\s@]+@[^\s@]+)"),
    // EYOU MTA SYSTEM
    (r"This is the deliver program at", r"^-", r"^(?P<addr>[^\s@]+@[^\s@<>]+)"),
    // A non-standard qmail at ieo.it
    (r"this is the email server at", r"^-", r"\s(?P<addr>[^\s@]+@[^\s@]+)[\s,]"),
    // pla.net.py (MDaemon.PRO ?)
    (r"- no such user here", r"There is no user", r"^(?P<addr>[^\s@]+@[^\s@]+)\s"),
    // mxlogic.net
    (r"The following address failed:", r"Included is a copy of the message header", r"<(?P<addr>[^>]+)>"),
    // fastdnsservers.com
    (r"The following recipient\(s\) could not be reached", r"\s*Error Type", r"^(?P<addr>[^\s@]+@[^\s@<>]+)"),
    // Domain xxx.com (simple_36.txt)
    (
        r"Could not deliver message to the following recipient",
        r"\s*-- The header",
        r"Failed Recipient: (?P<addr>[^\s@]+@[^\s@<>]+)",
    ),
    // mta1.service.uci.edu
    (r"Message not delivered to the following addresses", r"Error detail", r"\s*(?P<addr>[^\s@]+@[^\s@)]+)"),
    // Dovecot LDA Over quota MDN (bogus - should be DSN).
    (r"^Your message", r"^Reporting", r"Your message to <?(?P<addr>[^\s<@]+@[^\s@>]+)>? was automatically rejected"),
    // mail.ru
    (r"A message that you sent was rejected", r"This is a copy of your message", r"\s(?P<addr>[^\s@]+@[^\s@]+)"),
    // MailEnable
    (
        r"Message could not be delivered to some recipients.",
        r"Message headers follow",
        r"Recipient: \[SMTP:(?P<addr>[^\s@]+@[^\s@]+)\]",
    ),
    // This one is from Yahoo but dosen't fit the yahoo recognizer format
    (
        r"wasn't able to deliver the following message",
        r"---Below this line is a copy of the message.",
        r"To: (?P<addr>[^\s@]+@[^\s@]+)",
    ),
    // From some unknown MTA
    (r"This is a delivery failure notification message", r"The problem appears to be", r"-- (?P<addr>[^\s@]+@[^\s@]+)"),
    // Overquota from earthling.net
    (r"Delivery has failed", r"Original message details:", r"\[(?P<addr>[^\s@]+@[^\s@]+)\]"),
];

/// flufl's `simplewarning.PATTERNS`.
const WARNING: &[(&str, &str, &str)] = &[
    // pop3.pta.lia.net
    (
        r"The address to which the message has not yet been delivered is",
        r"No action is required on your part",
        r"\s*(?P<addr>\S+@\S+)\s*",
    ),
    // MessageSwitch
    (r"Your message to:", r"This is just a warning, you do not need to take any action", r"\s*(?P<addr>\S+@\S+)\s*"),
    // Symantec_AntiVirus_for_SMTP_Gateways
    (r"Your message with Subject:", r"Delivery attempts will continue to be made", r"\s*(?P<addr>\S+@\S+)\s*"),
    // googlemail.com warning
    (r"Delivery to the following recipient has been delayed", r"Message will be retried", r"\s*(?P<addr>\S+@\S+)\s*"),
    // Exchange warning message.
    (r"This is an advisory-only email", r"has been postponed", r#""(?P<addr>[^"]+)""#),
    // kundenserver.de
    (r"not yet been delivered", r"No action is required on your part", r"\s*<?(?P<addr>\S+@[^>\s]+)>?\s*"),
];

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(build_patterns);

fn build_patterns() -> Option<Patterns> {
    let re = |p: &str| Regex::new(p).ok();
    let bre = |p: &str| BytesRegex::new(&format!("(?-u){p}")).ok();
    let (simple, simple_starts) = triples(SIMPLE)?;
    let (warning, warning_starts) = triples(WARNING)?;
    Some(Patterns {
        valid: bre(r"(?i)^[\x21-\x3d\x3f\x41-\x7e]+@[a-z0-9._]+\n?\z")?,
        status: re(r"\b([245]\.\d{1,3}\.\d{1,3})\b")?,
        quopri: re(r"=[a-fA-F0-9]{2}")?,
        ws: bre(r"\s")?,
        sina_addr: re(r"^<(?P<addr>[^>]*)>")?,
        yahoo_tags: vec![
            re(r"(?i)^message\s+from\s+yahoo\.\S+")?,
            re(r"(?i)^Sorry, we were unable to deliver your message to the following address(\(es\))?\.")?,
        ],
        yahoo_addr: re(r"^<(?P<addr>[^>]*)>:")?,
        yahoo_ends: vec![
            re(r"^--- Original message follows")?,
            re(r"^--- Below this line is a copy of the message")?,
            re(r"^---------- Forwarded message ----------")?,
        ],
        yale_start: bre(r"(?i)Message not delivered to the following")?,
        yale_end: bre(r"(?i)Error Detail")?,
        yale_addr: bre(r"\s+(?P<addr>\S+)\s+")?,
        smtp32_end: re(r"(?i)original message follows")?,
        smtp32_addr: re(
            r"(?i)(user mailbox[^:]*:|delivery failed[^:]*:|unknown user[^:]*:|undeliverable +to|delivery userid[^:]*:)\s*(?P<addr>[^\s]+)",
        )?,
        postfix_salutation: bre(r"(?i)^[ \t]*the\s*(bns)?\s*(postfix|keftamail|smtp_gateway)")?,
        postfix_reason: bre(r"(?i)^failure reason:\n?\z")?,
        postfix_addr: bre(r"<(?P<addr>[^>]*)>:")?,
        qmail_addr: re(r"^<(?P<addr>[^>]*)>:")?,
        groupwise_addr: bre(r"<(?P<addr>[^>]*)>")?,
        microsoft_start: bre(r"(?i)transcript of session follows")?,
        caiwireless_tag: re(r"(?i)^the following recipients did not receive this message:")?,
        caiwireless_addr: re(r"^<(?P<addr>[^>]*)>")?,
        exchange_start: re(r"did not reach the following recipient")?,
        exchange_end: re(r"MSEXCH:")?,
        exchange_smtp: re(r"SMTP=(?P<addr>[^;]+); on ")?,
        exchange_on: re(r"(?P<addr>[^\s@]+@[^\s@]+) on ")?,
        netscape_start: bre(r"(?i)This Message was undeliverable due to the following reason:")?,
        netscape_addr: bre(r"(?i)(?P<reply>please reply to)?.*<(?P<addr>[^>]*)>")?,
        aol_start: bre(r"mail to the following recipients could not be delivered")?,
        llnl_addr: re(r"(?i),\s*(?P<addr>\S+@[^,]+),")?,
        simple,
        simple_starts,
        warning,
        warning_starts,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Detectors
// ---------------------------------------------------------------------------------------------------------

struct Ctx<'a, 'm> {
    root: &'a Node<'m>,
    pats: &'static Patterns,
    lines: OnceCell<Vec<String>>,
}

impl Ctx<'_, '_> {
    /// Python's `body_line_iterator(msg)` over the whole message, computed once.
    fn lines(&self) -> &[String] {
        self.lines.get_or_init(|| body_lines(self.root))
    }
}

fn body_lines(node: &Node<'_>) -> Vec<String> {
    node.leaves().into_iter().flat_map(|leaf| str_lines(&leaf.text()).map(str::to_string).collect::<Vec<_>>()).collect()
}

fn capture<'t>(re: &Regex, line: &'t str) -> Option<&'t str> {
    re.captures(line).and_then(|c| c.name("addr")).map(|m| m.as_str())
}

fn bcapture<'t>(re: &BytesRegex, line: &'t [u8]) -> Option<&'t [u8]> {
    re.captures(line).and_then(|c| c.name("addr")).map(|m| m.as_bytes())
}

fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX_DIAGNOSTIC_CHARS) {
        Some((cut, _)) => joined.get(..cut).unwrap_or("").to_string(),
        None => joined,
    }
}

fn dsn(ctx: &Ctx<'_, '_>) -> Found {
    let mut found = Found::default();
    let mut nodes = Vec::new();
    ctx.root.walk(&mut nodes);
    for part in nodes.into_iter().filter(|n| is_delivery_status(&n.ctype)) {
        // Global reports may carry UTF-8 addresses legitimately, so neither their address type nor their
        // non-ASCII addresses are refused the way flufl refuses them in plain reports.
        let global = part.ctype == "message/global-delivery-status";
        for block in part.children.iter().flatten() {
            let action = block.get("action").unwrap_or("").to_lowercase();
            // Some MTAs put comments after the action, hence prefixes.
            let permanent = if action.starts_with("delayed") {
                false
            } else if action.starts_with("fail") || action.starts_with("error") {
                true
            } else {
                continue;
            };
            // Ported as flufl has it: non-`rfc822` parameters accumulate across both headers, and a bare
            // angle-addr without an address type is accepted as a last resort.
            let mut params: Vec<String> = Vec::new();
            let mut addresses: Vec<String> = Vec::new();
            for header in ["original-recipient", "final-recipient"] {
                let mut typed = false;
                for (key, _) in block.get(header).map(param_list).unwrap_or_default() {
                    if key.eq_ignore_ascii_case("rfc822") || (global && key.eq_ignore_ascii_case("utf-8")) {
                        typed = true;
                    } else {
                        params.push(key);
                    }
                }
                if typed {
                    addresses.append(&mut params);
                    break;
                }
                for p in &params {
                    if let Some(inner) = p.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                        addresses.push(inner.to_string());
                    }
                }
            }
            let status = block.get("status").and_then(|s| ctx.pats.status.captures(s)).and_then(|c| c.get(1));
            let status = status.map(|m| m.as_str().to_string());
            let diagnostic = block.get("diagnostic-code").map(|d| {
                // Drop the diagnostic-type ("smtp;") that precedes the server's own words.
                let text = d.split_once(';').map_or(d, |(_, rest)| rest);
                one_line(text)
            });
            let diagnostic = diagnostic.filter(|d| !d.is_empty());
            for address in addresses {
                let address = parseaddr(&address);
                let Some(address) = (if global { Some(address) } else { ascii(&address) }) else { continue };
                let hit = Hit { address, status: status.clone(), diagnostic: diagnostic.clone() };
                if permanent { found.permanent.push(hit) } else { found.temporary.push(hit) }
            }
        }
    }
    found
}

fn exim(ctx: &Ctx<'_, '_>) -> Found {
    let values: Vec<&str> = ctx.root.get_all("x-failed-recipients").collect();
    if values.is_empty() {
        return Found::default();
    }
    Found::permanent(getaddresses(values).iter().filter_map(|a| ascii(a)))
}

fn sina(ctx: &Ctx<'_, '_>) -> Found {
    if ctx.root.get("from").unwrap_or("").to_lowercase() != "mailer-daemon@sina.com" {
        return Found::default();
    }
    let Some(first) = ctx.root.children.as_ref().and_then(|c| c.first()) else { return Found::default() };
    let lines = body_lines(first);
    Found::permanent(lines.iter().filter_map(|l| capture(&ctx.pats.sina_addr, l)).filter_map(ascii))
}

fn yahoo(ctx: &Ctx<'_, '_>) -> Found {
    let pats = ctx.pats;
    let sender = parseaddr(&ctx.root.get("from").unwrap_or("").to_lowercase());
    if !sender.starts_with("mailer-daemon@yahoo") {
        return Found::default();
    }
    let mut addresses = Vec::new();
    let mut tag_seen = false;
    for line in ctx.lines() {
        let line = line.trim();
        if !tag_seen {
            tag_seen = pats.yahoo_tags.iter().any(|re| re.is_match(line));
        } else if let Some(addr) = capture(&pats.yahoo_addr, line) {
            addresses.extend(ascii(addr));
        } else if pats.yahoo_ends.iter().any(|re| re.is_match(line)) {
            break;
        }
    }
    Found::permanent(addresses)
}

fn yale(ctx: &Ctx<'_, '_>) -> Found {
    let pats = ctx.pats;
    let root = ctx.root;
    if root.is_multipart() {
        return Found::default();
    }
    let from = getaddresses([root.get("from").unwrap_or("")]).into_iter().next().unwrap_or_default();
    let Some((user, domain)) = from.split_once('@') else { return Found::default() };
    let domain = domain.to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    if !user.eq_ignore_ascii_case("mailer-daemon") || !labels.ends_with(&["yale", "edu"]) {
        return Found::default();
    }
    let body = root.decoded();
    let mut names: Vec<&[u8]> = Vec::new();
    let mut intro = false;
    for line in split_keep(&body) {
        if !intro && pats.yale_start.is_match(line) {
            intro = true;
        } else if intro && pats.yale_end.is_match(line) {
            break;
        } else if let Some(name) = bcapture(&pats.yale_addr, line).filter(|_| intro) {
            names.push(name);
        }
    }
    // The report gives only the user name; flufl guesses both Yale domains.
    let addresses = names.iter().flat_map(|n| {
        let n = bytes_to_string(n);
        [format!("{n}@yale.edu"), format!("{n}@cs.yale.edu")]
    });
    Found::permanent(addresses)
}

fn smtp32(ctx: &Ctx<'_, '_>) -> Found {
    if !ctx.root.get("x-mailer").unwrap_or("").starts_with("<SMTP32 v") {
        return Found::default();
    }
    let mut addresses = Vec::new();
    for line in ctx.lines() {
        if ctx.pats.smtp32_end.is_match(line) {
            break;
        }
        addresses.extend(capture(&ctx.pats.smtp32_addr, line).and_then(ascii));
    }
    Found::permanent(addresses)
}

fn postfix(ctx: &Ctx<'_, '_>) -> Found {
    let pats = ctx.pats;
    if !matches!(ctx.root.ctype.as_str(), "multipart/mixed" | "multipart/report") {
        return Found::default();
    }
    let notification = ctx.root.leaves().into_iter().find(|leaf| {
        leaf.ctype == "text/plain" && leaf.get("content-description").unwrap_or("").to_lowercase() == "notification"
    });
    let Some(part) = notification else { return Found::default() };
    let body = part.decoded();
    let mut addresses = Vec::new();
    let mut salutation = false;
    for line in split_keep(&body) {
        let line = brstrip(line);
        if !salutation && (pats.postfix_salutation.is_match(line) || pats.postfix_reason.is_match(line)) {
            salutation = true;
        } else if salutation && !line.is_empty() {
            addresses.extend(bcapture(&pats.postfix_addr, line).map(bytes_to_string));
        }
    }
    Found::permanent(addresses)
}

const QMAIL_INTROS: [&str; 7] = [
    "We're sorry. There's a problem",
    "Check your send e-mail address.",
    "Hi. The MTA program at",
    "Hi. This is the",
    "This is the mail delivery agent at",
    "Unfortunately, your mail was not delivered",
    "Your mail message to the following",
];

/// QSBMF (<http://cr.yp.to/proto/qsbmf.txt>) plus intros seen in the wild.
fn qmail(ctx: &Ctx<'_, '_>) -> Found {
    enum State {
        Start,
        Intro,
        Recipients,
    }
    let mut state = State::Start;
    let mut addresses = Vec::new();
    for line in ctx.lines() {
        let line = line.trim();
        match state {
            State::Start => {
                if QMAIL_INTROS.iter().any(|tag| line.starts_with(tag)) {
                    state = State::Intro;
                }
            }
            State::Intro if line.is_empty() => state = State::Recipients,
            State::Intro => {}
            State::Recipients => {
                if line.starts_with('-') {
                    break;
                }
                addresses.extend(capture(&ctx.pats.qmail_addr, line).and_then(ascii));
            }
        }
    }
    Found::permanent(addresses)
}

fn find_text_plain<'a, 'm>(node: &'a Node<'m>) -> Option<&'a Node<'m>> {
    if node.ctype == "text/plain" {
        return Some(node);
    }
    node.children.iter().flatten().find_map(find_text_plain)
}

/// Novell GroupWise and NTMail (X-Mailer: Novell GroupWise / NTMail / Internet Mail Service).
fn groupwise(ctx: &Ctx<'_, '_>) -> Found {
    let pats = ctx.pats;
    let mailer = ctx.root.get("x-mailer").unwrap_or("");
    let prefix = mailer.chars().take(3).collect::<String>().to_lowercase();
    if ctx.root.ctype != "multipart/mixed" || mailer.is_empty() || !matches!(prefix.as_str(), "nov" | "ntm" | "int") {
        return Found::default();
    }
    let Some(part) = find_text_plain(ctx.root) else { return Found::default() };
    let body = part.decoded();
    let mut addresses = Vec::new();
    for line in split_keep(&body) {
        let line = brstrip(line);
        if let Some(addr) = bcapture(&pats.groupwise_addr, line) {
            addresses.push(bytes_to_string(addr));
        } else if line.contains(&b'@') {
            let candidate = match line.iter().position(|&b| b == b' ') {
                Some(0) => continue,
                Some(i) => line.get(..i).unwrap_or_default(),
                None => line,
            };
            if pats.valid.is_match(candidate) {
                addresses.push(bytes_to_string(candidate));
            }
        }
    }
    Found::permanent(addresses)
}

/// Microsoft SMTPSVC.
fn microsoft(ctx: &Ctx<'_, '_>) -> Found {
    if ctx.root.ctype != "multipart/mixed" {
        return Found::default();
    }
    let Some(first) = ctx.root.children.as_ref().and_then(|c| c.first()) else { return Found::default() };
    if first.is_multipart() {
        return Found::default();
    }
    let body = first.decoded();
    let mut addresses = Vec::new();
    let mut tag_seen = false;
    for line in split_keep(&body) {
        if !tag_seen {
            tag_seen = ctx.pats.microsoft_start.is_match(line);
        } else if ctx.pats.valid.is_match(bstrip(line)) {
            addresses.push(bytes_to_string(bstrip(line)));
        }
    }
    Found::permanent(addresses)
}

fn caiwireless(ctx: &Ctx<'_, '_>) -> Found {
    if ctx.root.ctype != "multipart/mixed" {
        return Found::default();
    }
    let mut tag_seen = false;
    for line in ctx.lines() {
        let line = line.trim();
        if !tag_seen && ctx.pats.caiwireless_tag.is_match(line) {
            tag_seen = true;
        } else if tag_seen && !line.is_empty() {
            // Only the first line after the tag is considered.
            return Found::permanent(capture(&ctx.pats.caiwireless_addr, line).and_then(ascii));
        }
    }
    Found::default()
}

fn exchange(ctx: &Ctx<'_, '_>) -> Found {
    let pats = ctx.pats;
    let mut lines = ctx.lines().iter();
    if !lines.any(|l| pats.exchange_start.is_match(l)) {
        return Found::default();
    }
    let mut addresses = Vec::new();
    for line in lines {
        if pats.exchange_end.is_match(line) {
            break;
        }
        let addr = capture(&pats.exchange_smtp, line).or_else(|| capture(&pats.exchange_on, line));
        addresses.extend(addr.and_then(ascii));
    }
    Found::permanent(addresses)
}

/// Netscape Messaging Server: DSN-shaped but without recipient fields, so the text part is read.
fn netscape(ctx: &Ctx<'_, '_>) -> Found {
    if !ctx.root.is_multipart() {
        return Found::default();
    }
    let leaves = ctx.root.leaves();
    // The text must come before the delivery-status part, so the last leaf never qualifies.
    let candidates = leaves.split_last().map_or(&[][..], |(_, rest)| rest);
    let Some(plain) = candidates.iter().find(|l| l.ctype == "text/plain") else { return Found::default() };
    let body = plain.decoded();
    let mut lines = split_keep(&body);
    if !lines.any(|l| ctx.pats.netscape_start.is_match(l)) {
        return Found::default();
    }
    let mut addresses = Vec::new();
    for line in lines {
        if let Some(caps) = ctx.pats.netscape_addr.captures(line)
            && caps.name("reply").is_none()
            && let Some(addr) = caps.name("addr")
        {
            addresses.push(bytes_to_string(addr.as_bytes()));
        }
    }
    Found::permanent(addresses)
}

/// AOL reports only the screen name for its own users.
fn aol(ctx: &Ctx<'_, '_>) -> Found {
    if ctx.root.ctype != "text/plain" {
        return Found::default();
    }
    if !parseaddr(ctx.root.get("from").unwrap_or("")).to_lowercase().ends_with("@aol.com") {
        return Found::default();
    }
    let body = normalize_newlines(&ctx.root.decoded()).into_owned();
    let mut addresses = Vec::new();
    let mut found = false;
    for line in body.split(|&b| b == b'\n') {
        if ctx.pats.aol_start.is_match(line) {
            found = true;
            continue;
        }
        if found {
            let local = bstrip(line);
            if local.is_empty() {
                continue;
            }
            if ctx.pats.ws.is_match(local) {
                break;
            }
            let local = bytes_to_string(local);
            addresses.push(if local.contains('@') { local } else { format!("{local}@aol.com") });
        }
    }
    Found::permanent(addresses)
}

/// flufl's `SimpleMatch.process`: the first pattern whose block yields any address wins; addresses must
/// then look valid.
fn simple_addresses(ctx: &Ctx<'_, '_>, triples: &[Triple], starts: &RegexSet) -> Vec<String> {
    let lines = ctx.lines();
    // One pass finds where each pattern's block can begin; scanning every pattern over every line would
    // make large non-bounce messages costly.
    let mut first_start: Vec<Option<usize>> = vec![None; triples.len()];
    let mut pending = triples.len();
    for (i, line) in lines.iter().enumerate() {
        if pending == 0 {
            break;
        }
        for idx in starts.matches(line).iter() {
            if let Some(slot @ None) = first_start.get_mut(idx) {
                *slot = Some(i);
                pending -= 1;
            }
        }
    }
    let mut addresses: Vec<String> = Vec::new();
    for (triple, start) in triples.iter().zip(first_start) {
        let Some(start) = start else { continue };
        for line in lines.iter().skip(start) {
            if let Some(caps) = triple.addr.captures(line) {
                if let Some(addr) = caps.name("addr").filter(|m| !m.as_str().is_empty()) {
                    addresses.push(quopri_unquote(&ctx.pats.quopri, addr.as_str()));
                }
            } else if triple.end.is_match(line) {
                break;
            }
        }
        if !addresses.is_empty() {
            break;
        }
    }
    addresses.retain(|a| ctx.pats.valid.is_match(a.as_bytes()));
    addresses
}

/// Some addresses come back with quoted-printable escapes; flufl unquotes `=XX` only (not `_`).
fn quopri_unquote(re: &Regex, address: &str) -> String {
    let unquoted = re.replace_all(address, |c: &regex::Captures<'_>| {
        let hex = c.get(0).map_or("", |m| m.as_str()).trim_start_matches('=');
        u8::from_str_radix(hex, 16).map(|b| char::from(b).to_string()).unwrap_or_default()
    });
    if unquoted.is_ascii() { unquoted.trim_matches(|c: char| is_py_space(c as u8)).to_string() } else { String::new() }
}

fn simplematch(ctx: &Ctx<'_, '_>) -> Found {
    Found::permanent(simple_addresses(ctx, &ctx.pats.simple, &ctx.pats.simple_starts))
}

fn simplewarning(ctx: &Ctx<'_, '_>) -> Found {
    Found::temporary(simple_addresses(ctx, &ctx.pats.warning, &ctx.pats.warning_starts))
}

/// LLNL's customised Sendmail.
fn llnl(ctx: &Ctx<'_, '_>) -> Found {
    // A non-ASCII match is skipped rather than ending the search, as in flufl.
    Found::permanent(ctx.lines().iter().find_map(|l| capture(&ctx.pats.llnl_addr, l).and_then(ascii)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    fn parse(raw: &[u8]) -> Option<Bounce> {
        let msg = MessageParser::default().parse(raw)?;
        detect(&msg)
    }

    #[test]
    fn patterns_compile() {
        assert!(PATTERNS.is_some());
    }

    /// Compares with flufl.bounce on its corpus. The expectations JSON is produced by `scripts/bounce_oracle.py`
    /// (`python oracle.py CORPUS_DIR OUT.json`); the corpus directory defaults to the JSON's own directory.
    #[test]
    fn agrees_with_flufl_corpus() {
        // scripts/services.sh downloads the corpus and runs the oracle (scripts/bounce_oracle.py).
        let data_dir = std::env::var_os("CP_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.data")));
        let json_path = std::env::var_os("BOUNCE_CORPUS_EXPECTATIONS")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("bounce-corpus/expectations.json"));
        let corpus = std::env::var_os("BOUNCE_CORPUS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| json_path.parent().expect("json has a parent").to_path_buf());
        let text = std::fs::read_to_string(&json_path)
            .unwrap_or_else(|e| panic!("cannot read expectations {}: {e}", json_path.display()));
        let expected: BTreeMap<String, BTreeMap<String, Vec<String>>> =
            serde_json::from_str(&text).expect("expectations JSON");
        let lower = |v: Option<&Vec<String>>| -> BTreeSet<String> {
            v.into_iter().flatten().map(|a| a.to_lowercase()).filter(|a| !a.is_empty()).collect()
        };
        let (mut with_failures, mut agreeing) = (0, 0);
        let mut problems = Vec::new();
        let mut quiet_disagreements = Vec::new();
        for (file, sets) in &expected {
            let raw = std::fs::read(corpus.join(file)).expect("corpus file");
            let got = parse(&raw);
            let permanent = lower(sets.get("permanent"));
            let all: BTreeSet<String> = lower(sets.get("temporary")).union(&permanent).cloned().collect();
            if all.is_empty() {
                if let Some(b) = got {
                    quiet_disagreements.push(format!("{file}: oracle none, got {b:?}"));
                }
                continue;
            }
            with_failures += 1;
            let Some(bounce) = got else {
                problems.push(format!("{file}: expected {all:?}, got None"));
                continue;
            };
            let got_all: BTreeSet<String> = bounce.recipients.iter().map(|r| r.address.to_lowercase()).collect();
            let perm_ok =
                bounce.recipients.iter().all(|r| r.permanent == permanent.contains(&r.address.to_lowercase()));
            if got_all == all && perm_ok {
                agreeing += 1;
            } else {
                problems.push(format!("{file}: expected {all:?} (permanent {permanent:?}), got {bounce:?}"));
            }
        }
        eprintln!("corpus: {agreeing}/{with_failures} files with oracle failures agree");
        for q in &quiet_disagreements {
            eprintln!("  {q}");
        }
        assert!(with_failures > 0, "no corpus file had failures; wrong expectations file?");
        assert!(problems.is_empty(), "disagreements:\n{}", problems.join("\n"));
        assert!(
            quiet_disagreements.is_empty(),
            "detected where flufl finds nothing:\n{}",
            quiet_disagreements.join("\n")
        );
    }

    /// Expected values computed with email.utils of the oracle's Python 3.11 (strict mode).
    #[test]
    fn address_parsing_matches_python() {
        let parseaddr_cases: &[(&str, &str)] = &[
            ("a@b", "a@b"),
            ("<a@b>", "a@b"),
            ("Foo <a@b>", "a@b"),
            ("a@b (comment)", "a@b"),
            ("(c) a@b", "a@b"),
            ("\"x, y\" <a@b>", "a@b"),
            ("a@b,", "a@b"),
            ("a@b, ", ""),
            (",a@b", ""),
            ("", ""),
            ("  ", ""),
            ("foo bar", "foo"),
            ("foo bar@baz", "foo bar@baz"),
            ("<@route,@r2:a@b>", ""),
            ("a@[1.2.3.4]", ""),
            ("a@b, c@d", ""),
            ("MAILER-DAEMON@yale.edu (Mail Delivery Subsystem)", "MAILER-DAEMON@yale.edu"),
            ("Mail Delivery Subsystem <MAILER-DAEMON@aol.com>", "MAILER-DAEMON@aol.com"),
            ("mailer-daemon@yahoo.com", "mailer-daemon@yahoo.com"),
            ("<joem@example.com>", "joem@example.com"),
            ("userx@example.com", "userx@example.com"),
            ("a (x, y) <b@c>", "b@c"),
            ("<a@b", "a@b"),
            ("a@b>", ""),
            ("\"quoted\"@b", "\"quoted\"@b"),
            ("Foo Bar <a b@c>", "a b@c"),
        ];
        for (input, want) in parseaddr_cases {
            assert_eq!(parseaddr(input), *want, "parseaddr({input:?})");
        }
        let getaddresses_cases: &[(&[&str], &[&str])] = &[
            (&["a@b, c@d"][..], &["a@b", "c@d"][..]),
            (&["a@b,"][..], &[""][..]),
            (&["a@b", "c@d"][..], &["a@b", "c@d"][..]),
            (&["a (x, y) <b@c>"][..], &[""][..]),
            (&["\"x, y\" <a@b>, c@d"][..], &["a@b", "c@d"][..]),
            (&[""][..], &[""][..]),
            (&["a@b, "][..], &["a@b", ""][..]),
            (&["a@b,,c@d"][..], &["a@b", "", "c@d"][..]),
        ];
        for (input, want) in getaddresses_cases {
            assert_eq!(getaddresses(input.iter().copied()), *want, "getaddresses({input:?})");
        }
    }

    const DSN_TWO: &str = "From: MAILER-DAEMON@mx.example.net\r\n\
To: helpdesk@example.com\r\n\
Subject: Delivery Status Notification\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Some recipients could not be reached.\r\n\
--b1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Original-Recipient: rfc822; Alice@Example.org\r\n\
Final-Recipient: rfc822; alice.smith@example.org\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <alice.smith@example.org>:\r\n\
\x20   Recipient address rejected: User unknown\r\n\
\r\n\
Final-Recipient: rfc822;<bob@example.org>\r\n\
Action: delayed (will retry)\r\n\
Status: 4.4.7\r\n\
\r\n\
Final-Recipient: rfc822; carol@example.org\r\n\
Action: relayed\r\n\
Status: 2.0.0\r\n\
\r\n\
--b1\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Subject: hello\r\n\
--b1--\r\n";

    #[test]
    fn dsn_with_failed_and_delayed_recipients() {
        let bounce = parse(DSN_TWO.as_bytes()).expect("a bounce");
        assert_eq!(bounce.format, "dsn");
        assert_eq!(
            bounce.recipients,
            vec![
                BouncedRecipient {
                    address: "Alice@Example.org".into(),
                    permanent: true,
                    status: Some("5.1.1".into()),
                    diagnostic: Some(
                        "550 5.1.1 <alice.smith@example.org>: Recipient address rejected: User unknown".into()
                    ),
                },
                BouncedRecipient {
                    address: "bob@example.org".into(),
                    permanent: false,
                    status: Some("4.4.7".into()),
                    diagnostic: None,
                },
            ]
        );
    }

    #[test]
    fn global_dsn_keeps_utf8_address() {
        let raw = "From: postmaster@example.net\r\nContent-Type: multipart/report; report-type=global-delivery-status;\r\n\
\tboundary=g\r\n\r\n--g\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--g\r\n\
Content-Type: message/global-delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
Final-Recipient: utf-8; j\u{f6}rg@example.de\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--g--\r\n";
        let bounce = parse(raw.as_bytes()).expect("a bounce");
        assert_eq!(bounce.format, "dsn");
        assert_eq!(bounce.recipients.len(), 1);
        assert_eq!(bounce.recipients[0].address, "j\u{f6}rg@example.de");
        assert!(bounce.recipients[0].permanent);
    }

    /// Every heuristic scans every line of every part, as flufl does; this keeps a multi-megabyte ordinary
    /// message honest and prints its cost for `--nocapture` runs.
    #[test]
    fn large_ordinary_message_is_not_a_bounce() {
        let mut raw = String::from(
            "From: a@example.org\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\
Content-Type: text/plain\r\n\r\n",
        );
        for i in 0..20_000 {
            raw.push_str(&format!(
                "Line {i} of a long, chatty message, with commas, and user{i}@example.org in it.\r\n"
            ));
        }
        raw.push_str("--z\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        for _ in 0..40_000 {
            raw.push_str("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZUR\r\n");
        }
        raw.push_str("--z--\r\n");
        let start = std::time::Instant::now();
        let got = parse(raw.as_bytes());
        eprintln!("{} bytes in {:?}", raw.len(), start.elapsed());
        assert_eq!(got, None);
    }

    #[test]
    fn ordinary_message_is_not_a_bounce() {
        let raw = "From: Customer <customer@example.org>\r\nTo: support@example.com\r\nSubject: Printer broken\r\n\
\r\nHi, my printer does not print. Could you help?\r\nThanks, customer@example.org\r\n";
        assert_eq!(parse(raw.as_bytes()), None);
    }

    #[test]
    fn out_of_office_is_not_a_bounce() {
        let raw = "From: Agent <agent@example.org>\r\nTo: support@example.com\r\nSubject: Out of office: Re: Ticket 42\r\n\
Auto-Submitted: auto-replied\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
I am out of the office until Monday and will not be able to read your message.\r\n\
For urgent matters contact backup@example.org.\r\n";
        assert_eq!(parse(raw.as_bytes()), None);
    }

    #[test]
    fn malformed_reports_do_not_panic() {
        let cases: &[&[u8]] = &[
            b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary at all\r\n",
            b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n\
Action: failed\r\nFinal-Recipient: rfc822;\r\n\r\n\r\n\r\nAction\r\n:\r\n --x",
            b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\
Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n--x--",
            b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; \"a;b\"@x.org\r\nAction: failed\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=4",
            b"X-Failed-Recipients: ,,,<\r\n\r\n",
            b"From: MAILER-DAEMON@yale.edu\r\nContent-Transfer-Encoding: base64\r\n\r\n====\xff\xfe",
            b"\r\n\r\n",
            b"",
        ];
        for case in cases {
            let _ = parse(case);
        }
        let bounce = parse(cases[3]).expect("a bounce");
        assert_eq!(bounce.recipients.len(), 1);
    }
}
