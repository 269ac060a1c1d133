//! HTML bodies made safe to show (ammonia: no scripts, handlers, forms or styles that
//! escape the message) and plain text made from HTML when a message has no text part.

use std::collections::{HashMap, HashSet};

/// Sanitises an HTML body. `cid:` references to the message's own inline parts become
/// `part_url(position)`; a `cid:` naming no part is dropped.
pub fn sanitise(html: &str, content_ids: &HashMap<String, i32>, part_url: impl Fn(i32) -> String) -> String {
    let lookup: HashMap<String, String> =
        content_ids.iter().map(|(cid, position)| (cid.to_ascii_lowercase(), part_url(*position))).collect();
    let mut schemes: HashSet<&str> = ["http", "https", "mailto", "tel", "cid"].into_iter().collect();
    schemes.shrink_to_fit();
    ammonia::Builder::default()
        .url_schemes(schemes)
        .link_rel(Some("noopener noreferrer nofollow"))
        .attribute_filter(move |_element, attribute, value| {
            let Some(cid) = value.strip_prefix("cid:").or_else(|| value.strip_prefix("CID:")) else {
                return Some(value.into());
            };
            match (attribute, lookup.get(&cid.to_ascii_lowercase())) {
                ("src" | "href", Some(url)) => Some(url.clone().into()),
                _ => None,
            }
        })
        .clean(html)
        .to_string()
}

/// The readable text of an HTML body: tags, scripts and styles removed, entities decoded,
/// blank runs collapsed.
pub fn to_text(html: impl AsRef<str>) -> String {
    let stripped = ammonia::Builder::empty()
        .clean_content_tags(["script", "style", "head", "title"].into_iter().collect())
        .clean(&html.as_ref().replace("<br", "\n<br").replace("</p>", "</p>\n").replace("</div>", "</div>\n"))
        .to_string();
    let decoded = stripped
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut lines: Vec<&str> = Vec::new();
    for line in decoded.lines().map(str::trim) {
        if !(line.is_empty() && lines.last().is_some_and(|l| l.is_empty())) {
            lines.push(line);
        }
    }
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_handlers_go_inline_images_point_at_the_hub() {
        let cids = HashMap::from([("logo@x".to_owned(), 3)]);
        let clean = sanitise(
            "<p onclick=\"steal()\">Hi<script>alert(1)</script><img src=\"cid:logo@x\"><img src=\"cid:unknown\">\
             <a href=\"javascript:alert(1)\">x</a><a href=\"https://example.com\">ok</a></p>",
            &cids,
            |p| format!("/parts/{p}"),
        );
        assert!(!clean.contains("script") && !clean.contains("onclick") && !clean.contains("javascript"), "{clean}");
        assert!(clean.contains("src=\"/parts/3\""), "{clean}");
        assert!(!clean.contains("cid:"), "{clean}");
        assert!(clean.contains("href=\"https://example.com\""), "{clean}");
    }

    #[test]
    fn html_reads_as_text() {
        let text = to_text(
            "<html><head><title>T</title><style>p{}</style></head><body><p>Dear &amp; dear</p><p>Line&nbsp;2<br>3</p></body></html>",
        );
        assert_eq!(text, "Dear & dear\nLine 2\n3");
    }
}
