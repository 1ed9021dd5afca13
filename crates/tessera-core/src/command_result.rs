//! How the outcome of one command on one node is shown by `run_command_on_workers` and
//! `run_command_on_all_nodes`: a `success` flag and one `result` text.
//!
//! As in Citus: a command that returns no rows shows its command tag (`CREATE TABLE`); a query
//! shows its single value (NULL as an empty string), and fails when it returns more than one row
//! or column; an error shows the first line of the error message.

/// What came back from a node, reduced to what the result depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A command without rows, with its tag.
    Command { tag: String },
    /// A query: its column count and the rows' first values (only the first two are needed).
    Rows {
        columns: usize,
        rows: usize,
        first: Option<Option<String>>,
    },
    /// The node could not be reached or the command failed.
    Error { message: String },
}

/// `(success, result)` for one node.
pub fn summarize(outcome: &Outcome) -> (bool, String) {
    match outcome {
        Outcome::Command { tag } => (true, tag.clone()),
        Outcome::Rows { columns, .. } if *columns != 1 => {
            (false, "expected a single column in query target".into())
        }
        Outcome::Rows { rows, .. } if *rows > 1 => {
            (false, "expected a single row in query result".into())
        }
        Outcome::Rows { first, .. } => (true, first.clone().flatten().unwrap_or_default()),
        Outcome::Error { message } => {
            let line = message.lines().next().unwrap_or("").trim_end();
            let line = line.strip_prefix("ERROR:  ").unwrap_or(line);
            if line.is_empty() {
                (false, "command failed without an error message".into())
            } else {
                (false, line.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tag() {
        assert_eq!(
            summarize(&Outcome::Command {
                tag: "CREATE TABLE".into()
            }),
            (true, "CREATE TABLE".into())
        );
    }

    #[test]
    fn single_value() {
        let o = Outcome::Rows {
            columns: 1,
            rows: 1,
            first: Some(Some("42".into())),
        };
        assert_eq!(summarize(&o), (true, "42".into()));
        let null = Outcome::Rows {
            columns: 1,
            rows: 1,
            first: Some(None),
        };
        assert_eq!(summarize(&null), (true, String::new()));
        let empty = Outcome::Rows {
            columns: 1,
            rows: 0,
            first: None,
        };
        assert_eq!(summarize(&empty), (true, String::new()));
    }

    #[test]
    fn shape_errors() {
        let two_cols = Outcome::Rows {
            columns: 2,
            rows: 1,
            first: None,
        };
        assert!(!summarize(&two_cols).0);
        let two_rows = Outcome::Rows {
            columns: 1,
            rows: 2,
            first: None,
        };
        assert_eq!(
            summarize(&two_rows),
            (false, "expected a single row in query result".into())
        );
    }

    #[test]
    fn error_first_line() {
        let e = Outcome::Error {
            message: "ERROR:  relation \"x\" does not exist\nLINE 1: select * from x".into(),
        };
        assert_eq!(
            summarize(&e),
            (false, "relation \"x\" does not exist".into())
        );
        assert!(
            !summarize(&Outcome::Error {
                message: String::new()
            })
            .0
        );
    }
}
