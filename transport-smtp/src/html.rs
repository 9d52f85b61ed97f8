//! Small, careful edits of a rendered HTML body: rewrite the `href` of `<a>` tags and add
//! an open pixel. Everything else in the body is copied byte for byte: the engine has
//! already rendered and escaped it, and escaping it again would show `&amp;amp;` to the
//! reader.

/// Decode the HTML character references that can appear in an attribute value's URL:
/// `&amp;`, `&quot;`, `&apos;`, `&lt;`, `&gt;` and numeric ones. Others are kept as
/// written.
pub(crate) fn decode_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escape a value for a double-quoted attribute.
pub(crate) fn escape_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The end (exclusive) of the tag that starts at `start` (`<`), skipping `>` inside
/// quoted attribute values; `None` if the tag never closes.
fn tag_end(html: &str, start: usize) -> Option<usize> {
    let bytes = html.as_bytes();
    let mut quote = None;
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i + 1),
            None => {}
        }
        i += 1;
    }
    None
}

/// The `href` value of the tag `tag` (`<a ...>`): its byte range inside `tag`, with the
/// quotes, and the raw value.
fn find_href(tag: &str) -> Option<(usize, usize, &str)> {
    let bytes = tag.as_bytes();
    // Skip "<a".
    let mut i = 2;
    while i < bytes.len() {
        // Skip white space and stray slashes between attributes.
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'>' {
            return None;
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let name = &tag[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            continue; // An attribute without a value.
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value_start, value_end, raw) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = tag[i + 1..].find(q as char).map(|e| i + 1 + e)?;
                (i, end + 1, &tag[i + 1..end])
            }
            Some(_) => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                (start, i, &tag[start..i])
            }
            None => return None,
        };
        if name.eq_ignore_ascii_case("href") {
            return Some((value_start, value_end, raw));
        }
        i = value_end;
    }
    None
}

/// Whether the tag starting at `at` (`<`) is an `<a>` start tag.
fn is_anchor(html: &str, at: usize) -> bool {
    let bytes = html.as_bytes();
    matches!(bytes.get(at + 1), Some(b'a' | b'A'))
        && matches!(bytes.get(at + 2), Some(b) if b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
}

/// Rewrite the `href` of each `<a>` tag: `rewrite` gets the decoded URL and returns the new
/// one, or `None` to leave the link as it is. Comments are copied untouched.
pub(crate) fn rewrite_links(html: &str, mut rewrite: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 2);
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = html[at..].find('<') {
        let start = at + found;
        if html[start..].starts_with("<!--") {
            match html[start + 4..].find("-->") {
                Some(end) => {
                    at = start + 4 + end + 3;
                    continue;
                }
                None => break,
            }
        }
        let Some(end) = tag_end(html, start) else {
            break;
        };
        if is_anchor(html, start) {
            let tag = &html[start..end];
            if let Some((value_start, value_end, raw)) = find_href(tag) {
                if let Some(new) = rewrite(decode_attribute(raw).trim()) {
                    out.push_str(&html[copied..start + value_start]);
                    out.push('"');
                    out.push_str(&escape_attribute(&new));
                    out.push('"');
                    copied = start + value_end;
                }
            }
        }
        at = end;
    }
    out.push_str(&html[copied..]);
    out
}

/// Add a 1x1 image loading `url` just before `</body>`, or at the end if there is none.
pub(crate) fn add_open_pixel(html: &str, url: &str) -> String {
    let pixel = format!(
        r#"<img src="{}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0" />"#,
        escape_attribute(url)
    );
    let lower = html.to_ascii_lowercase();
    match lower.rfind("</body") {
        Some(at) => format!("{}{pixel}{}", &html[..at], &html[at..]),
        None => format!("{html}{pixel}"),
    }
}

/// Whether `url` is an absolute http or https URL.
pub(crate) fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("https://") && url.len() > 8)
        || (lower.starts_with("http://") && url.len() > 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(url: &str) -> Option<String> {
        is_web_url(url).then(|| format!("https://t/c?{url}"))
    }

    #[test]
    fn rewrites_only_anchor_hrefs() {
        let html = r#"<p>Tom &amp; Jerry &lt;3</p><a href="https://a.example/x?y=1&amp;z=2">A</a> <A class=b HREF='http://b.example/'>B</A> <area href="https://c.example/"> <a name=top>top</a> <a href="mailto:x@y.example">m</a> <abbr title="x">t</abbr>"#;
        let out = rewrite_links(html, mark);
        assert_eq!(
            out,
            r#"<p>Tom &amp; Jerry &lt;3</p><a href="https://t/c?https://a.example/x?y=1&amp;z=2">A</a> <A class=b HREF="https://t/c?http://b.example/">B</A> <area href="https://c.example/"> <a name=top>top</a> <a href="mailto:x@y.example">m</a> <abbr title="x">t</abbr>"#
        );
    }

    #[test]
    fn handles_unquoted_odd_and_broken_markup() {
        assert_eq!(
            rewrite_links("<a href=https://a.example/>x</a>", mark),
            r#"<a href="https://t/c?https://a.example/">x</a>"#
        );
        assert_eq!(
            rewrite_links(r#"<a title="a>b" href = "https://a.example/">x</a>"#, mark),
            r#"<a title="a>b" href = "https://t/c?https://a.example/">x</a>"#
        );
        assert_eq!(
            rewrite_links(
                r##"<!-- <a href="https://a.example/"> --><a href="#top">x</a>"##,
                mark
            ),
            r##"<!-- <a href="https://a.example/"> --><a href="#top">x</a>"##
        );
        for broken in [
            "<a href=\"https://a.example/",
            "<a",
            "<",
            "<!-- <a href=x>",
            "plain",
        ] {
            assert_eq!(rewrite_links(broken, mark), broken);
        }
        let unicode = "<p>Olá — ünïcödé</p><a href=\"https://a.example/ç\">ç</a>";
        assert!(rewrite_links(unicode, mark).contains("https://t/c?https://a.example/ç"));
    }

    #[test]
    fn decodes_and_escapes_attributes() {
        assert_eq!(
            decode_attribute("a&amp;b&#38;c&#x26;d&quot;&lt;&gt;&apos;&copy;&"),
            "a&b&c&d\"<>'&copy;&"
        );
        assert_eq!(escape_attribute(r#"a&b"<>"#), "a&amp;b&quot;&lt;&gt;");
    }

    #[test]
    fn adds_pixel_before_body_end() {
        assert_eq!(
            add_open_pixel("<html><body>Hi</BODY></html>", "https://t/o/x"),
            r#"<html><body>Hi<img src="https://t/o/x" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0" /></BODY></html>"#
        );
        assert!(add_open_pixel("<p>Hi</p>", "https://t/o/x").starts_with("<p>Hi</p><img "));
    }
}
