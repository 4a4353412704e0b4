//! The history of a torture run: one record per client operation with its invocation and
//! completion times and its outcome, written as JSON lines so that an independent checker
//! (Knossos, Porcupine) can read it, and read back by `dsm-torture --check FILE`.
//!
//! One line per operation, in completion order:
//! `{"process":2,"key":"k3","op":"write","value":"2-17","invoke_ns":81234,"complete_ns":93411,"outcome":"ok"}`
//! - `process`: the client thread (the final reads use the process number after the last client);
//! - `op`: `read` or `write`; `value`: the value written, or the value read (`null` for
//!   NOT_FOUND, and for a read without an answer);
//! - `invoke_ns` / `complete_ns`: nanoseconds since the run started, taken just before the
//!   request was sent and just after the answer came (or the client gave up);
//! - `outcome`: `ok`; `fail` (certainly had no effect); `unknown` (may have taken effect at any
//!   time after `invoke_ns`, even after `complete_ns`); an optional `error` says why.

use std::collections::HashMap;
use std::fmt::Write as _;

// The same JSON string quoting as `dsm-client status --json`.
use dsm_client::json::quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub process: u32,
    pub key: String,
    pub kind: Kind,
    /// Write: the value written (unique in the run). Read: the value read; `None` for
    /// NOT_FOUND or when there was no answer.
    pub value: Option<String>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
    pub error: Option<String>,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
        }
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
    /// The operation as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(128);
        let value = self.value.as_deref().map_or("null".into(), quote);
        let _ = write!(
            s,
            "{{\"process\":{},\"key\":{},\"op\":\"{}\",\"value\":{value},\"invoke_ns\":{},\"complete_ns\":{},\"outcome\":\"{}\"",
            self.process,
            quote(&self.key),
            self.kind.name(),
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
        let num = |name: &str| match get(name)? {
            Json::Num(n) => Ok(*n),
            other => Err(format!("\"{name}\" is {other:?}, not a number")),
        };
        let text = |name: &str| match get(name)? {
            Json::Str(s) => Ok(s.clone()),
            other => Err(format!("\"{name}\" is {other:?}, not a string")),
        };
        let kind = match text("op")?.as_str() {
            "read" => Kind::Read,
            "write" => Kind::Write,
            other => return Err(format!("unknown op {other:?}")),
        };
        let outcome = match text("outcome")?.as_str() {
            "ok" => Outcome::Ok,
            "fail" => Outcome::Fail,
            "unknown" | "info" => Outcome::Unknown,
            other => return Err(format!("unknown outcome {other:?}")),
        };
        let value = match fields.get("value") {
            None | Some(Json::Null) => None,
            Some(Json::Str(s)) => Some(s.clone()),
            Some(other) => return Err(format!("\"value\" is {other:?}")),
        };
        let error = match fields.get("error") {
            Some(Json::Str(s)) => Some(s.clone()),
            _ => None,
        };
        Ok(Op {
            process: u32::try_from(num("process")?).map_err(|e| e.to_string())?,
            key: text("key")?,
            kind,
            value,
            invoke_ns: num("invoke_ns")?,
            complete_ns: num("complete_ns")?,
            outcome,
            error,
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

/// The JSON values a history line uses.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Str(String),
    Num(u64),
    Null,
    Bool(bool),
}

/// A flat JSON object of strings, non-negative integers, booleans and nulls: all a history
/// line holds (a hand-written parser rather than serde for one small shape).
fn parse_object(line: &str) -> Result<HashMap<String, Json>, String> {
    let mut p = Parser {
        s: line.as_bytes(),
        at: 0,
    };
    let mut fields = HashMap::new();
    p.expect(b'{')?;
    if p.peek() == Some(b'}') {
        p.at += 1;
    } else {
        loop {
            let name = p.string()?;
            p.expect(b':')?;
            let value = p.value()?;
            fields.insert(name, value);
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                other => return Err(p.unexpected(other, "',' or '}'")),
            }
        }
    }
    p.skip_ws();
    if p.at != p.s.len() {
        return Err(format!("trailing text at byte {}", p.at));
    }
    Ok(fields)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.at += b.is_some() as usize;
        b
    }

    fn unexpected(&self, got: Option<u8>, want: &str) -> String {
        match got {
            Some(b) => format!("expected {want} at byte {}, got {:?}", self.at, b as char),
            None => format!("expected {want}, got the end of the line"),
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        match self.next() {
            Some(b) if b == want => Ok(()),
            other => Err(self.unexpected(other, &format!("'{}'", want as char))),
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Json::Str),
            Some(b'0'..=b'9') => {
                let start = self.at;
                while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.at]).expect("ASCII digits");
                digits.parse().map(Json::Num).map_err(|e| e.to_string())
            }
            _ => {
                for (word, v) in [
                    ("null", Json::Null),
                    ("true", Json::Bool(true)),
                    ("false", Json::Bool(false)),
                ] {
                    if self.s[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(v);
                    }
                }
                Err(self.unexpected(self.s.get(self.at).copied(), "a value"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                return Err("unterminated string".into());
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err("unterminated escape".into());
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' | b'\\' | b'/' => e as char,
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self
                                .s
                                .get(self.at..self.at + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or("bad \\u escape")?;
                            self.at += 4;
                            char::from_u32(hex).unwrap_or('\u{fffd}')
                        }
                        other => return Err(format!("bad escape \\{}", other as char)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
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
        }
    }

    #[test]
    fn every_kind_of_line_round_trips() {
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
        ] {
            let line = o.to_json();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(Op::from_json(&line), Ok(o), "{line}");
        }
    }

    #[test]
    fn the_documented_example_parses_and_bad_lines_are_refused() {
        let line = r#"{"process":2,"key":"k3","op":"write","value":"2-17","invoke_ns":81234,"complete_ns":93411,"outcome":"ok","extra":true}"#;
        let o = Op::from_json(line).unwrap();
        assert_eq!(
            (o.process, o.kind, o.outcome),
            (2, Kind::Write, Outcome::Ok)
        );
        assert_eq!(o.value.as_deref(), Some("2-17"));
        for bad in [
            "",
            "{",
            r#"{"process":1}"#,
            r#"{"process":"1","key":"k","op":"read","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"cas","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"}"#,
            r#"{"process":1,"key":"k","op":"read","value":null,"invoke_ns":1,"complete_ns":2,"outcome":"ok"} x"#,
        ] {
            assert!(Op::from_json(bad).is_err(), "{bad:?} parsed");
        }
        let err = parse_history("\n{}\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
