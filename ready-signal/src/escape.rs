//! The escape and cut rule of PROTOCOL.md, "States", in one place: a record's reason and host
//! are stored with it, and every error that quotes untrusted text (a name, a field, an event)
//! shows the text with it, so all of them stay one short line. A leaf: it uses nothing of the
//! crate, so the record, the names and the errors can all use it.

/// A reason or host as stored (PROTOCOL.md, "States"): every control character escaped (`\n` as
/// the two characters `\` and `n`), so a record's text stays one line in every probe verdict and
/// log, then cut to `max` bytes without splitting a character or an escape sequence.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    escape_bytes(s.as_bytes(), max)
}

/// The escaping of PROTOCOL.md, "States", applied to any bytes: a control character (Unicode
/// category Cc) becomes `\0`, `\t`, `\n`, `\r` or `\u{hex}`; a byte that is not part of valid
/// UTF-8 becomes `\x` and two lowercase hex digits; everything else is kept. The result is cut
/// to at most `max` bytes, only ever between two such units.
pub(crate) fn escape_bytes(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max
        && let Ok(text) = std::str::from_utf8(bytes)
        && !text.chars().any(char::is_control)
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(bytes.len().min(max));
    let fits = |out: &String, unit: &str| out.len() + unit.len() <= max;
    let mut buf = [0u8; 4];
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let escaped;
            let unit: &str = match c {
                '\0' => "\\0",
                '\t' => "\\t",
                '\n' => "\\n",
                '\r' => "\\r",
                c if c.is_control() => {
                    escaped = format!("\\u{{{:x}}}", u32::from(c));
                    &escaped
                }
                c => c.encode_utf8(&mut buf),
            };
            if !fits(&out, unit) {
                return out;
            }
            out.push_str(unit);
        }
        for b in chunk.invalid() {
            let unit = format!("\\x{b:02x}");
            if !fits(&out, &unit) {
                return out;
            }
            out.push_str(&unit);
        }
    }
    out
}

/// Untrusted text quoted in an error: escaped as a reason is (PROTOCOL.md, "States") and cut to
/// `max` bytes, so an error stays one short line (a record or an event can hold anything; found
/// by fuzzing).
pub(crate) fn shown(s: &str, max: usize) -> String {
    escape_bytes(s.as_bytes(), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `MAX_REASON_LEN`, the cut PROTOCOL.md's examples use.
    const REASON_LEN: usize = 200;

    /// The escape rule of PROTOCOL.md, "States", with its examples: control characters and
    /// bytes that are not UTF-8 are escaped, and the cut never splits a character or an escape.
    #[test]
    fn the_documented_escape_rule_and_cut() {
        for (raw, stored) in [
            (&b"queue down\nretrying"[..], "queue down\\nretrying"),
            (b"tab\there\r", "tab\\there\\r"),
            (b"nul\0", "nul\\0"),
            (b"esc\x1b[31m", "esc\\u{1b}[31m"),
            (b"del\x7f", "del\\u{7f}"),
            ("nel\u{85}".as_bytes(), "nel\\u{85}"),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}"),
            (b"bad \xff\xfe byte", "bad \\xff\\xfe byte"),
            (b"cut \xe2\x82", "cut \\xe2\\x82"),
        ] {
            assert_eq!(escape_bytes(raw, REASON_LEN), stored, "{raw:?}");
        }
        assert_eq!(one_line("ééé", 3), "é");
        assert_eq!(one_line("abc", 10), "abc");
        // 199 bytes, then a newline: its escape (2 bytes) does not fit, and is not split.
        let reason = format!("{}\n", "x".repeat(199));
        assert_eq!(one_line(&reason, REASON_LEN), "x".repeat(199));
        let reason = format!("{}\u{1b}", "x".repeat(195));
        assert_eq!(one_line(&reason, REASON_LEN), "x".repeat(195));
        assert_eq!(
            escape_bytes(
                &[b'x'; 198]
                    .iter()
                    .copied()
                    .chain([0xff])
                    .collect::<Vec<_>>(),
                200
            ),
            "x".repeat(198)
        );
    }
}
