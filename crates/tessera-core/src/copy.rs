//! COPY text format: how one row is written for `COPY ... FROM STDIN` on a shard.
//!
//! Fields are separated by a tab and rows end with a newline; NULL is `\N`; backslash, tab,
//! newline and carriage return inside a value are escaped with a backslash.

/// Appends one field's text (or NULL) to `out`.
pub fn push_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"\\N"),
        Some(v) => {
            for &b in v {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
    }
}

/// Appends one row to `out`.
pub fn push_row<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = Option<&'a [u8]>>) {
    let mut first = true;
    for f in fields {
        if !first {
            out.push(b'\t');
        }
        first = false;
        push_field(out, f);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_specials_and_nulls() {
        let mut out = Vec::new();
        push_row(
            &mut out,
            [
                Some(&b"a\tb"[..]),
                None,
                Some(&b"back\\slash\nnew\rline"[..]),
                Some(&b""[..]),
            ],
        );
        assert_eq!(out, b"a\\tb\t\\N\tback\\\\slash\\nnew\\rline\t\n".to_vec());
    }

    #[test]
    fn a_literal_backslash_n_is_not_null() {
        let mut out = Vec::new();
        push_row(&mut out, [Some(&b"\\N"[..])]);
        assert_eq!(out, b"\\\\N\n".to_vec());
    }
}
