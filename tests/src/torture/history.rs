//! The history of a torture run: one record per client operation with its invocation and
//! completion times and its outcome, written as JSON lines so that an independent checker
//! (Knossos, Porcupine) can read it, and read back by `dsm-torture --check FILE`.
//!
//! One line per operation, in completion order:
//! `{"process":2,"key":"k3","op":"write","value":"2-17","invoke_ns":81234,"complete_ns":93411,"outcome":"ok"}`
//! - `process`: the client thread (the final reads use the process number after the last client);
//! - `op`: `read`, `write`, `delete`, `cas` or `incr`;
//! - `value`: read: the value read (`null` for NOT_FOUND, and for a read without an answer);
//!   write and cas: the value written (unique in the run); incr: the new value it answered
//!   (`null` without an answer); delete: always `null`;
//! - cas: `expected`, the version it expected (0: the key missing), and `expected_value`, the
//!   value that version holds as the client read it (`null`: missing);
//! - incr: `delta`, the signed amount added;
//! - delete: `found` on an `ok` one, whether the key existed (`false`: answered NOT_FOUND);
//! - `version`: the version an answer carried, where it carried one (a VREAD, a CAS's, a
//!   DELETE's tombstone with bit 63 set, an INCR's);
//! - `invoke_ns` / `complete_ns`: nanoseconds since the run started, taken just before the
//!   request was sent and just after the answer came (or the client gave up);
//! - `outcome`: `ok`; `fail` (certainly had no effect); `unknown` (may have taken effect at any
//!   time after `invoke_ns`, even after `complete_ns`); an optional `error` says why. A `fail`
//!   whose error begins `CONFLICT` (a cas), `NOT_AN_INTEGER` or `OVERFLOW` (an incr) is also
//!   an answer about the key's state, and is checked as one.

use std::fmt::Write as _;

// The same JSON string quoting as `dsm-client status --json`.
use dsm_client::json::quote;

use crate::torture::json::{parse_object, Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Kind {
    #[default]
    Read,
    Write,
    Delete,
    Cas,
    Incr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outcome {
    #[default]
    Ok,
    Fail,
    Unknown,
}

/// What a CAS expected: a version, and the value the client saw at that version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// 0: only if the key does not exist.
    pub version: u64,
    /// `None`: the key missing.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Op {
    pub process: u32,
    pub key: String,
    pub kind: Kind,
    /// Write and cas: the value written (unique in the run). Read: the value read; `None` for
    /// NOT_FOUND or when there was no answer. Incr: the value answered. Delete: `None`.
    pub value: Option<String>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Cas only.
    pub expected: Option<Expected>,
    /// Incr only.
    pub delta: Option<i64>,
    /// An `ok` delete: whether the key existed.
    pub found: Option<bool>,
    /// The version the answer carried, if it carried one.
    pub version: Option<u64>,
}

/// What a `fail`ed operation's answer says about the key, beyond "nothing happened".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A cas: the key is not at the expected version.
    Conflict,
    /// An incr: the value is not an integer.
    NotAnInteger,
    /// An incr: the value plus delta is outside the signed 64-bit range.
    Overflow,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Read, Kind::Write, Kind::Delete, Kind::Cas, Kind::Incr];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Delete => "delete",
            Kind::Cas => "cas",
            Kind::Incr => "incr",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

impl Op {
    /// For a `fail`ed cas or incr: what its answer says about the key (from the error's code).
    pub fn refusal(&self) -> Option<Refusal> {
        if self.outcome != Outcome::Fail {
            return None;
        }
        let error = self.error.as_deref()?;
        match self.kind {
            Kind::Cas if error.starts_with("CONFLICT") => Some(Refusal::Conflict),
            Kind::Incr if error.starts_with("NOT_AN_INTEGER") => Some(Refusal::NotAnInteger),
            Kind::Incr if error.starts_with("OVERFLOW") => Some(Refusal::Overflow),
            _ => None,
        }
    }

    /// The operation as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(160);
        let text = |v: Option<&str>| v.map_or("null".into(), quote);
        let _ = write!(
            s,
            "{{\"process\":{},\"key\":{},\"op\":\"{}\",\"value\":{}",
            self.process,
            quote(&self.key),
            self.kind.name(),
            text(self.value.as_deref())
        );
        if let Some(e) = &self.expected {
            let _ = write!(
                s,
                ",\"expected\":{},\"expected_value\":{}",
                e.version,
                text(e.value.as_deref())
            );
        }
        if let Some(d) = self.delta {
            let _ = write!(s, ",\"delta\":{d}");
        }
        if let Some(f) = self.found {
            let _ = write!(s, ",\"found\":{f}");
        }
        if let Some(v) = self.version {
            let _ = write!(s, ",\"version\":{v}");
        }
        let _ = write!(
            s,
            ",\"invoke_ns\":{},\"complete_ns\":{},\"outcome\":\"{}\"",
            self.invoke_ns,
            self.complete_ns,
            self.outcome.name()
        );
        if let Some(e) = &self.error {
            let _ = write!(s, ",\"error\":{}", quote(e));
        }
        s.push('}');
        s
    }

    /// Parse one line written by [`Op::to_json`] (unknown fields are ignored).
    pub fn from_json(line: &str) -> Result<Op, String> {
        let fields = parse_object(line)?;
        let get = |name: &str| fields.get(name).ok_or_else(|| format!("no \"{name}\""));
        let int = |name: &str, min: i128, max: i128| match get(name)? {
            Json::Num(n) if (min..=max).contains(n) => Ok(*n),
            other => Err(format!("\"{name}\" is {other:?}, not a number in range")),
        };
        let u64_field = |name: &str| int(name, 0, u64::MAX.into()).map(|n| n as u64);
        let text = |name: &str| match get(name)? {
            Json::Str(s) => Ok(s.clone()),
            other => Err(format!("\"{name}\" is {other:?}, not a string")),
        };
        let text_or_null = |name: &str| match fields.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("\"{name}\" is {other:?}")),
        };
        let op = text("op")?;
        let kind = Kind::parse(&op).ok_or_else(|| format!("unknown op {op:?}"))?;
        let outcome = match text("outcome")?.as_str() {
            "ok" => Outcome::Ok,
            "fail" => Outcome::Fail,
            "unknown" | "info" => Outcome::Unknown,
            other => return Err(format!("unknown outcome {other:?}")),
        };
        let expected = match kind {
            Kind::Cas => Some(Expected {
                version: u64_field("expected")?,
                value: text_or_null("expected_value")?,
            }),
            _ => None,
        };
        let delta = match kind {
            Kind::Incr => Some(int("delta", i64::MIN.into(), i64::MAX.into())? as i64),
            _ => None,
        };
        let found = match (kind, outcome, fields.get("found")) {
            (Kind::Delete, Outcome::Ok, Some(Json::Bool(b))) => Some(*b),
            (Kind::Delete, Outcome::Ok, other) => {
                return Err(format!(
                    "an ok delete needs \"found\" true or false, not {other:?}"
                ))
            }
            _ => None,
        };
        let version = match fields.get("version") {
            None | Some(Json::Null) => None,
            Some(_) => Some(u64_field("version")?),
        };
        Ok(Op {
            process: u32::try_from(u64_field("process")?).map_err(|e| e.to_string())?,
            key: text("key")?,
            kind,
            value: text_or_null("value")?,
            invoke_ns: u64_field("invoke_ns")?,
            complete_ns: u64_field("complete_ns")?,
            outcome,
            error: text_or_null("error").ok().flatten(),
            expected,
            delta,
            found,
            version,
        })
    }
}

/// Parse a whole history file's text; line numbers (from 1) in errors.
pub fn parse_history(text: &str) -> Result<Vec<Op>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Op::from_json(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, value: Option<&str>, outcome: Outcome, error: Option<&str>) -> Op {
        Op {
            process: 3,
            key: "k\"1\\".into(),
            kind,
            value: value.map(String::from),
            invoke_ns: 12,
            complete_ns: 9_000_000_000,
            outcome,
            error: error.map(String::from),
            ..Op::default()
        }
    }

    #[test]
    fn every_kind_of_line_round_trips() {
        let cas = |expected: Option<&str>, outcome, error| Op {
            expected: Some(Expected {
                version: 41,
                value: expected.map(String::from),
            }),
            version: Some(44),
            ..op(Kind::Cas, Some("3-19"), outcome, error)
        };
        let incr = |delta, value, outcome, error| Op {
            delta: Some(delta),
            ..op(Kind::Incr, value, outcome, error)
        };
        let delete = |found| Op {
            found,
            version: found.map(|_| u64::MAX),
            ..op(Kind::Delete, None, Outcome::Ok, None)
        };
        for o in [
            op(Kind::Write, Some("3-17"), Outcome::Ok, None),
            op(Kind::Read, None, Outcome::Ok, None),
            op(Kind::Read, Some("va\nl"), Outcome::Ok, None),
            op(
                Kind::Write,
                Some("3-18"),
                Outcome::Unknown,
                Some("TIMEOUT: x"),
            ),
            op(Kind::Read, None, Outcome::Fail, Some("\u{1}")),
            Op {
                version: Some(7),
                ..op(Kind::Read, Some("1-1"), Outcome::Ok, None)
            },
            cas(Some("1-1"), Outcome::Ok, None),
            cas(None, Outcome::Fail, Some("CONFLICT: current version 9")),
            incr(-5, Some("-2"), Outcome::Ok, None),
            incr(i64::MIN, None, Outcome::Unknown, Some("TIMEOUT: y")),
            delete(Some(true)),
            delete(Some(false)),
            Op {
                outcome: Outcome::Unknown,
                ..delete(None)
            },
        ] {
            let line = o.to_json();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Op::from_json(&line), Ok(o), "{line}");
        }
    }

    #[test]
    fn refusals_are_read_from_the_error_code() {
        let conflict = Op {
            expected: Some(Expected {
                version: 0,
                value: None,
            }),
            ..op(
                Kind::Cas,
                Some("1-2"),
                Outcome::Fail,
                Some("CONFLICT: current version 3"),
            )
        };
        assert_eq!(conflict.refusal(), Some(Refusal::Conflict));
        let not_int = op(Kind::Incr, None, Outcome::Fail, Some("NOT_AN_INTEGER: x"));
        assert_eq!(not_int.refusal(), Some(Refusal::NotAnInteger));
        let overflow = op(Kind::Incr, None, Outcome::Fail, Some("OVERFLOW: x"));
        assert_eq!(overflow.refusal(), Some(Refusal::Overflow));
        // The same words on another op, or a refusal of another kind, say nothing.
        assert_eq!(
            op(Kind::Write, None, Outcome::Fail, Some("CONFLICT")).refusal(),
            None
        );
        assert_eq!(
            op(Kind::Incr, None, Outcome::Fail, Some("UNAVAILABLE: x")).refusal(),
            None
        );
        assert_eq!(
            op(Kind::Cas, None, Outcome::Unknown, Some("CONFLICT")).refusal(),
            None
        );
    }

    #[test]
    fn the_documented_examples_parse_and_bad_lines_are_refused() {
        let line = r#"{"process":2,"key":"k3","op":"write","value":"2-17","invoke_ns":81234,"complete_ns":93411,"outcome":"ok","extra":true}"#;
        let o = Op::from_json(line).unwrap();
        assert_eq!(
            (o.process, o.kind, o.outcome),
            (2, Kind::Write, Outcome::Ok)
        );
        assert_eq!(o.value.as_deref(), Some("2-17"));
        let cas = r#"{"process":0,"key":"k1","op":"cas","value":"0-9","expected":12,"expected_value":"3-4","version":15,"invoke_ns":5,"complete_ns":9,"outcome":"ok"}"#;
        let o = Op::from_json(cas).unwrap();
        assert_eq!(o.expected.unwrap().value.as_deref(), Some("3-4"));
        let incr = r#"{"process":1,"key":"k2","op":"incr","value":"-1","delta":-3,"invoke_ns":5,"complete_ns":9,"outcome":"ok"}"#;
        assert_eq!(Op::from_json(incr).unwrap().delta, Some(-3));
        let delete = r#"{"process":1,"key":"k2","op":"delete","value":null,"found":false,"invoke_ns":5,"complete_ns":9,"outcome":"ok"}"#;
        assert_eq!(Op::from_json(delete).unwrap().found, Some(false));
        for bad in [
            "",
            "{",
            r#"{"process":1}"#,
            r#"{"process":"1","key":"k","op":"read","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"swap","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"read","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"} x"#,
            // A cas without its expected version, an incr without a delta, an ok delete
            // that does not say whether the key was there.
            r#"{"process":1,"key":"k","op":"cas","value":"v","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"incr","value":"1","invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"delete","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":-1,"key":"k","op":"read","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"incr","value":"1","delta":9223372036854775808,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
        ] {
            assert!(Op::from_json(bad).is_err(), "{bad:?} parsed");
        }
        let err = parse_history("\n{}\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
