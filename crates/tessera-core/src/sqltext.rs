//! Reading SQL text at a position the PostgreSQL parser reported.
//!
//! The parser tells where a table reference starts (`RangeVar.location`), not where it ends.
//! [`qualified_name_end`] scans the (possibly schema- and catalog-qualified, possibly quoted)
//! name from there, so the reference can be replaced by a shard's name without any string
//! search over the rest of the statement.

/// The byte offset just past the qualified name that starts at `start` in `sql`:
/// `ident ( . ident ){0,2}`, where an identifier is unquoted (letters, digits, `_`, `$`, and any
/// non-ASCII character) or double-quoted (with `""` for a quote). White space may surround the
/// dots, as PostgreSQL allows. Returns `None` if no identifier starts at `start`.
pub fn qualified_name_end(sql: &str, start: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut pos = ident_end(bytes, start)?;
    for _ in 0..2 {
        let mut p = skip_ws(bytes, pos);
        if bytes.get(p) != Some(&b'.') {
            break;
        }
        p = skip_ws(bytes, p + 1);
        match ident_end(bytes, p) {
            Some(e) => pos = e,
            None => break,
        }
    }
    Some(pos)
}

fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && b[p].is_ascii_whitespace() {
        p += 1;
    }
    p
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

fn ident_end(b: &[u8], start: usize) -> Option<usize> {
    let c = *b.get(start)?;
    if c == b'"' {
        let mut p = start + 1;
        while p < b.len() {
            if b[p] == b'"' {
                if b.get(p + 1) == Some(&b'"') {
                    p += 2;
                    continue;
                }
                return Some(p + 1);
            }
            p += 1;
        }
        None
    } else if is_ident_start(c) {
        let mut p = start + 1;
        while p < b.len() && is_ident_cont(b[p]) {
            p += 1;
        }
        Some(p)
    } else {
        None
    }
}

/// Replaces non-overlapping byte ranges of `sql` with new text; ranges may come in any order.
pub fn splice(sql: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(sql.len() + 16 * edits.len());
    let mut last = 0;
    for (start, end, text) in edits {
        assert!(
            start >= last && end >= start,
            "edits overlap or are reversed"
        );
        out.push_str(&sql[last..start]);
        out.push_str(&text);
        last = end;
    }
    out.push_str(&sql[last..]);
    out
}

/// `sql` on one line: every run of white space that holds a line break, outside string
/// literals and quoted identifiers, becomes one space. (PostgreSQL's deparser breaks lines;
/// worker SQL reads better in EXPLAIN and logs without them.)
pub fn one_line(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // Skip the quoted text ('' or "" inside is an escaped quote; E'' strings may
                // also escape with a backslash).
                let escaped_backslash =
                    q == b'\'' && i > 0 && (b[i - 1] == b'E' || b[i - 1] == b'e');
                i += 1;
                while i < b.len() {
                    if escaped_backslash && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_whitespace() => {
                let start = i;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if b[start..i].contains(&b'\n') {
                    out.push_str(&sql[last..start]);
                    out.push(' ');
                    last = i;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last.min(sql.len())..]);
    out.trim().to_string()
}

/// A JSON string literal for `s` (quotes, backslashes and control characters escaped).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An array literal (`{"a",NULL,"b"}`) of element texts, each quoted, with the element type's
/// delimiter: the text form of an array value.
pub fn array_literal(values: &[Option<String>], delim: char) -> String {
    let mut s = String::from("{");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(delim);
        }
        match v {
            None => s.push_str("NULL"),
            Some(t) => {
                s.push('"');
                for ch in t.chars() {
                    if ch == '"' || ch == '\\' {
                        s.push('\\');
                    }
                    s.push(ch);
                }
                s.push('"');
            }
        }
    }
    s.push('}');
    s
}

/// `DO $tag$<body>$tag$` with a dollar quote that occurs nowhere in `body`, so no name or value
/// inside it can end the block early.
pub fn do_block(body: &str) -> String {
    let mut n = 0;
    let tag = loop {
        let t = format!("$tessera{n}$");
        if !body.contains(&t) {
            break t;
        }
        n += 1;
    };
    format!("DO {tag}{body}{tag}")
}

/// `s` without the parentheses around the whole of it (an index expression is printed in one
/// pair more than the same expression elsewhere).
pub fn unparenthesized(s: &str) -> &str {
    let mut s = s.trim();
    while s.starts_with('(') && s.ends_with(')') && closes_at_end(s) {
        s = s[1..s.len() - 1].trim();
    }
    s
}

/// Whether the parenthesis that opens `s` is the one that closes it.
fn closes_at_end(s: &str) -> bool {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == s.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn do_block_quote_is_not_in_the_body() {
        assert_eq!(
            do_block("BEGIN NULL; END"),
            "DO $tessera0$BEGIN NULL; END$tessera0$"
        );
        let body = "BEGIN RAISE NOTICE '$tessera0$'; END";
        assert_eq!(do_block(body), format!("DO $tessera1${body}$tessera1$"));
    }

    #[test]
    fn one_line_keeps_literals() {
        assert_eq!(
            one_line(" SELECT a,\n    b\n   FROM t\n  WHERE (x = 'a\n  b''\n c')"),
            "SELECT a, b FROM t WHERE (x = 'a\n  b''\n c')"
        );
        assert_eq!(
            one_line("SELECT \"x\n  y\"\n FROM t"),
            "SELECT \"x\n  y\" FROM t"
        );
        assert_eq!(one_line("SELECT E'\\'\n  x'\n"), "SELECT E'\\'\n  x'");
    }

    fn name_at(sql: &str, start: usize) -> Option<&str> {
        qualified_name_end(sql, start).map(|e| &sql[start..e])
    }

    #[test]
    fn plain_and_qualified_names() {
        assert_eq!(name_at("ALTER TABLE t ADD x int", 12), Some("t"));
        assert_eq!(
            name_at("CREATE INDEX i ON public.events USING btree (a)", 18),
            Some("public.events")
        );
        assert_eq!(name_at("x db . s . t y", 2), Some("db . s . t"));
        assert_eq!(name_at("a.b.c.d", 0), Some("a.b.c"), "at most three parts");
    }

    #[test]
    fn quoted_names_with_quotes_spaces_and_unicode() {
        let sql = r#"ON "my schema"."tab""le ü" USING"#;
        assert_eq!(name_at(sql, 3), Some(r#""my schema"."tab""le ü""#));
        assert_eq!(name_at("ON ünïcode_t WHERE", 3), Some("ünïcode_t"));
        assert_eq!(name_at(r#"ON "unterminated"#, 3), None);
        assert_eq!(name_at("ON (x)", 3), None);
    }

    #[test]
    fn json_strings_escape() {
        assert_eq!(
            json_string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }

    #[test]
    fn splice_replaces_ranges() {
        let sql = "SELECT * FROM a JOIN b ON true";
        let out = splice(sql, vec![(21, 22, "b_2".into()), (14, 15, "a_1".into())]);
        assert_eq!(out, "SELECT * FROM a_1 JOIN b_2 ON true");
    }

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(
            array_literal(
                &[
                    Some("a".into()),
                    None,
                    Some("x\"y\\z".into()),
                    Some("".into()),
                    Some("NULL".into())
                ],
                ','
            ),
            r#"{"a",NULL,"x\"y\\z","","NULL"}"#
        );
        assert_eq!(array_literal(&[], ','), "{}");
    }

    #[test]
    fn outer_parentheses_go() {
        assert_eq!(
            unparenthesized("((embedding)::halfvec(3))"),
            "(embedding)::halfvec(3)"
        );
        assert_eq!(unparenthesized("(a) + (b)"), "(a) + (b)");
        assert_eq!(unparenthesized(" ((x)) "), "x");
    }
}
