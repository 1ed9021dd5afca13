//! Connection strings for worker connections.
//!
//! A connection to a node is described by keyword/value pairs handed to libpq's
//! `PQconnectStartParams`, never by a concatenated string, so a host or database name can hold
//! any character. The `citus.node_conninfo` setting adds keywords every connection uses
//! (`sslmode`, `sslrootcert`, ...); the keywords that name the target (`host`, `port`, `dbname`,
//! `user`) always come from the node catalog and the session and cannot be overridden by it.

use std::fmt;

/// Keywords that `citus.node_conninfo` may not set: they are decided per node and per session.
const RESERVED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "replication",
    "client_encoding",
    "fallback_application_name",
    "application_name",
];

/// Keywords whose values are secrets and are never shown.
const SECRET: &[&str] = &["password", "sslpassword"];

/// An error in the `citus.node_conninfo` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConninfoError(pub String);

impl fmt::Display for ConninfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConninfoError {}

/// Checks the keywords of the `citus.node_conninfo` setting (as libpq's `PQconninfoParse` read
/// them): none may be one that Tessera sets itself per node.
pub fn validate_extra(
    pairs: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, ConninfoError> {
    for (k, _) in &pairs {
        if RESERVED.contains(&k.as_str()) {
            return Err(ConninfoError(format!(
                "citus.node_conninfo may not set \"{k}\": it is taken from pg_dist_node and the session"
            )));
        }
    }
    Ok(pairs)
}

/// The full set of libpq keywords for one connection to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    pairs: Vec<(String, String)>,
}

impl ConnParams {
    /// Keywords for a connection to `host:port`, database `dbname` as `user`, with the extra
    /// keywords of `citus.node_conninfo` and a connect timeout in milliseconds (libpq takes whole
    /// seconds, at least 2; Tessera enforces the exact deadline itself).
    pub fn new(
        host: &str,
        port: i32,
        dbname: &str,
        user: &str,
        extra: &[(String, String)],
        connect_timeout_ms: i32,
    ) -> ConnParams {
        let secs = (connect_timeout_ms.max(0) as i64 + 999) / 1000;
        let mut pairs: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("port".into(), port.to_string()),
            ("dbname".into(), dbname.into()),
            ("user".into(), user.into()),
            ("connect_timeout".into(), secs.max(2).to_string()),
            ("fallback_application_name".into(), "tessera".into()),
            ("client_encoding".into(), "UTF8".into()),
        ];
        for (k, v) in extra {
            if k == "connect_timeout" {
                pairs.retain(|(pk, _)| pk != "connect_timeout");
            }
            pairs.push((k.clone(), v.clone()));
        }
        ConnParams { pairs }
    }

    /// The same with `application_name` set (in place of the fallback "tessera").
    pub fn with_application_name(mut self, name: &str) -> ConnParams {
        self.pairs.retain(|(k, _)| k != "fallback_application_name");
        self.pairs
            .push(("application_name".to_string(), name.to_string()));
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for ConnParams {
    /// The conninfo as a string, for logs: secrets are replaced by `********`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.pairs {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if SECRET.contains(&k.as_str()) {
                write!(f, "{k}=********")?;
            } else {
                write!(f, "{k}={}", quote_value(v))?;
            }
        }
        Ok(())
    }
}

/// Quotes a conninfo value when it needs it (empty, or holds spaces, quotes or backslashes).
pub fn quote_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// Removes anything that looks like a password from a libpq error message, so that a message
/// that echoes a conninfo cannot leak one.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(pos) = find_secret(rest) {
        let (before, after) = rest.split_at(pos.0);
        out.push_str(before);
        out.push_str(&after[..pos.1]);
        out.push_str("********");
        let after = &after[pos.1..];
        let end = if let Some(stripped) = after.strip_prefix('\'') {
            stripped.find('\'').map(|i| i + 2).unwrap_or(after.len())
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Finds `password=` (or `sslpassword=`) in `s`: the offset of the keyword and its length with `=`.
fn find_secret(s: &str) -> Option<(usize, usize)> {
    SECRET
        .iter()
        .filter_map(|k| {
            let pat = format!("{k}=");
            s.find(&pat).map(|i| (i, pat.len()))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_conninfo_may_not_choose_the_target() {
        let kv = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(validate_extra(kv(&[("sslmode", "prefer")])).is_ok());
        let e = validate_extra(kv(&[("sslmode", "prefer"), ("host", "evil")])).unwrap_err();
        assert!(e.0.contains("\"host\""), "{e}");
        assert!(validate_extra(kv(&[("dbname", "x")])).is_err());
    }

    #[test]
    fn params_put_target_first_and_take_extra_keywords() {
        let extra = validate_extra(vec![
            ("sslmode".into(), "disable".into()),
            ("connect_timeout".into(), "7".into()),
        ])
        .unwrap();
        let p = ConnParams::new("10.0.0.1", 5433, "my db", "alice", &extra, 5000);
        assert_eq!(p.get("host"), Some("10.0.0.1"));
        assert_eq!(p.get("port"), Some("5433"));
        assert_eq!(p.get("dbname"), Some("my db"));
        assert_eq!(p.get("sslmode"), Some("disable"));
        assert_eq!(p.get("connect_timeout"), Some("7"));
        let p = ConnParams::new("h", 1, "d", "u", &[], 500);
        assert_eq!(
            p.get("connect_timeout"),
            Some("2"),
            "libpq's minimum is 2 seconds"
        );
        let p = ConnParams::new("h", 1, "d", "u", &[], 30_001);
        assert_eq!(p.get("connect_timeout"), Some("31"));
    }

    #[test]
    fn display_hides_passwords_and_quotes() {
        let extra = vec![("password".to_string(), "s3cret".to_string())];
        let p = ConnParams::new("h", 1, "my db", "u", &extra, 1000);
        let s = p.to_string();
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("password=********"));
        assert!(s.contains("dbname='my db'"));
    }

    #[test]
    fn redact_removes_passwords_from_messages() {
        assert_eq!(
            redact("bad conninfo host=x password=hunter2 port=1"),
            "bad conninfo host=x password=******** port=1"
        );
        assert_eq!(
            redact("password='a b' sslpassword=zz"),
            "password=******** sslpassword=********"
        );
        assert_eq!(redact("no secrets here"), "no secrets here");
    }
}
