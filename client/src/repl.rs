//! The line-oriented REPL: `WRITE key value...`, `READ key`, one answer line each. Works the
//! same piped as typed; the prompt appears only on a terminal.

use std::io::{BufRead, Write};

use crate::client::Client;
use crate::error::Error;

/// A parsed REPL line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Write { key: &'a str, value: &'a str },
    Read { key: &'a str },
    Status,
    Help,
    Quit,
    Empty,
}

pub const HELP: &str = "commands: WRITE key value...  |  READ key  |  STATUS  |  HELP  |  QUIT";

/// Parse one line. Command words are case-insensitive; the value is the rest of the line after
/// the key, inner spaces kept.
pub fn parse(line: &str) -> Result<Command<'_>, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim_start();
    if trimmed.is_empty() {
        return Ok(Command::Empty);
    }
    let (word, rest) = split_word(trimmed);
    match word.to_ascii_uppercase().as_str() {
        "WRITE" => {
            let (key, value) = split_word(rest.trim_start());
            if key.is_empty() {
                return Err("usage: WRITE key value".into());
            }
            // One separator after the key; the rest, spaces and all, is the value.
            let value = value.strip_prefix([' ', '\t']).unwrap_or(value);
            Ok(Command::Write { key, value })
        }
        "READ" => {
            let (key, extra) = split_word(rest.trim_start());
            if key.is_empty() || !extra.trim().is_empty() {
                return Err("usage: READ key".into());
            }
            Ok(Command::Read { key })
        }
        "STATUS" if rest.trim().is_empty() => Ok(Command::Status),
        "HELP" | "?" => Ok(Command::Help),
        "QUIT" | "EXIT" => Ok(Command::Quit),
        _ => Err(format!("unknown command '{word}'; {HELP}")),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Run the REPL until end of input or QUIT. Returns how many lines were answered with ERROR.
pub fn run(
    client: &mut Client,
    input: impl BufRead,
    mut out: impl Write,
    prompt: bool,
) -> std::io::Result<usize> {
    let mut errors = 0;
    let mut lines = input.lines();
    loop {
        if prompt {
            write!(out, "dsm> ")?;
            out.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let answer = match parse(&line) {
            Ok(Command::Empty) => continue,
            Ok(Command::Quit) => break,
            Ok(Command::Help) => HELP.to_string(),
            Ok(Command::Write { key, value }) => {
                match client.write(key.as_bytes(), value.as_bytes()) {
                    Ok(written) => crate::written(written),
                    Err(e) => error_line(&e),
                }
            }
            Ok(Command::Read { key }) => match client.read(key.as_bytes()) {
                Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                Ok(None) => "NOT_FOUND".into(),
                Err(e) => error_line(&e),
            },
            Ok(Command::Status) => match client.status() {
                Ok(s) => crate::json::status_json(&s),
                Err(e) => error_line(&e),
            },
            Err(usage) => format!("ERROR {usage}"),
        };
        if answer.starts_with("ERROR") {
            errors += 1;
        }
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(errors)
}

fn error_line(e: &Error) -> String {
    format!("ERROR {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_case_insensitively_with_spaced_values() {
        assert_eq!(
            parse("write k hello  big world\n"),
            Ok(Command::Write {
                key: "k",
                value: "hello  big world"
            })
        );
        assert_eq!(parse("  READ k"), Ok(Command::Read { key: "k" }));
        assert_eq!(
            parse("Write k"),
            Ok(Command::Write {
                key: "k",
                value: ""
            })
        );
        assert_eq!(parse(""), Ok(Command::Empty));
        assert_eq!(parse("quit"), Ok(Command::Quit));
        assert!(parse("READ").is_err());
        assert!(parse("READ a b").is_err());
        assert!(parse("WRITE").is_err());
        assert!(parse("DELETE k").unwrap_err().contains("unknown command"));
    }
}
