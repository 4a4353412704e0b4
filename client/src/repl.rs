//! Carrying out [`Command`]s for the REPL and the one-shot command line alike: one answer each
//! on stdout (OK, the value, the status), failures on stderr as `ERROR ...` naming the master,
//! and the exit status: the worst of every command's (0 success; 1 NOT_FOUND or an ERROR
//! answer; 2 a usage error, no master reachable, or the master refused the connection).
//!
//! The plain REPL reads lines as bytes (piped input need not be UTF-8); the interactive one,
//! with line editing, lives with the binary and feeds [`Shell::line`] the same way.

use std::io::{self, BufRead, Write};

use dsm_wire::ErrorCode;

use crate::client::Client;
use crate::command::{self, Command};
use crate::error::Error;
use crate::output::{quote, Style};

/// Exit statuses, worst last.
pub const EXIT_OK: i32 = 0;
pub const EXIT_ANSWER: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Whether to read on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    Quit,
}

/// Runs commands against one client, writing answers to `out` and failures to `err`.
pub struct Shell<'c, O: Write, E: Write> {
    client: &'c mut Client,
    out: O,
    err: E,
    style: Style,
    /// In a REPL every answer ends with a newline; a one-shot raw value is the bytes alone.
    repl: bool,
    status: i32,
}

impl<'c, O: Write, E: Write> Shell<'c, O, E> {
    pub fn new(client: &'c mut Client, out: O, err: E, style: Style, repl: bool) -> Self {
        Shell {
            client,
            out,
            err,
            style,
            repl,
            status: EXIT_OK,
        }
    }

    /// The exit status so far: the worst of every command's.
    pub fn status(&self) -> i32 {
        self.status
    }

    pub fn client(&self) -> &Client {
        self.client
    }

    /// One REPL line: parse it and run it, or say why it is not a command (status 2).
    /// `Err` only when `out` cannot be written (a closed pipe): stop then.
    pub fn line(&mut self, line: &[u8]) -> io::Result<Flow> {
        match command::parse_line(line) {
            Ok(None) => Ok(Flow::Go),
            Ok(Some(cmd)) => self.run(cmd),
            Err(usage) => {
                self.note(EXIT_USAGE, &format!("ERROR {usage}"));
                Ok(Flow::Go)
            }
        }
    }

    /// Lines from `input` until it ends or says QUIT; `prompt` is called before each. A line
    /// that cannot be read ends the loop with status 2.
    pub fn lines(&mut self, mut input: impl BufRead, mut prompt: impl FnMut()) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            prompt();
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.note(EXIT_USAGE, &format!("dsm-client: cannot read stdin: {e}"));
                    return Ok(());
                }
            }
            if self.line(&line)? == Flow::Quit {
                return Ok(());
            }
        }
    }

    /// Run one command. `Err` only when `out` cannot be written.
    pub fn run(&mut self, cmd: Command) -> io::Result<Flow> {
        match cmd {
            Command::Write { key, value } => match self.client.write(&key, &value) {
                Ok(w) => self.say(crate::written(w).as_bytes())?,
                Err(e) => self.fail(&e),
            },
            Command::Read { key } => match self.client.read(&key) {
                Ok(Some(v)) => self.value(&v)?,
                // Quoted, it cannot be mistaken for a value; raw, stdout keeps to values.
                Ok(None) => match self.style {
                    Style::Quoted => {
                        self.status = self.status.max(EXIT_ANSWER);
                        self.say(b"NOT_FOUND")?
                    }
                    Style::Raw => self.note(EXIT_ANSWER, "NOT_FOUND"),
                },
                Err(e) => self.fail(&e),
            },
            Command::VRead { key } => match self.client.read_versioned(&key) {
                Ok(Some((version, v))) => self.versioned(version, &v)?,
                Ok(None) => self.not_found()?,
                Err(e) => self.fail(&e),
            },
            Command::Set {
                key,
                value,
                expected,
            } => match self.client.set(&key, &value, expected) {
                Ok(version) => self.say(format!("OK {version}").as_bytes())?,
                Err(e) => self.fail(&e),
            },
            Command::Delete { key, expected } => match self.client.delete(&key, expected) {
                Ok(Some(version)) => self.say(format!("OK {version}").as_bytes())?,
                Ok(None) => self.not_found()?,
                Err(e) => self.fail(&e),
            },
            Command::Incr { key, delta } => match self.client.incr(&key, delta) {
                Ok((n, _)) => self.say(n.to_string().as_bytes())?,
                Err(e) => self.fail(&e),
            },
            Command::Scan { prefix } => match self.client.scan(&prefix) {
                Ok(keys) => {
                    for k in keys {
                        match self.style {
                            Style::Quoted => self.say(quote(&k).as_bytes())?,
                            Style::Raw => self.say(&k)?,
                        }
                    }
                }
                Err(e) => self.fail(&e),
            },
            Command::Status { json } => match self.client.status() {
                Ok(s) if json => self.say(crate::json::status_json(&s).as_bytes())?,
                Ok(s) => {
                    let text = crate::json::status_text(&s);
                    self.say(text.trim_end().as_bytes())?
                }
                Err(e) => self.fail(&e),
            },
            Command::Ping => {
                let start = std::time::Instant::now();
                match self.client.ping() {
                    Ok(()) => {
                        let line = format!(
                            "PONG from {} in {} us",
                            self.client.last_master(),
                            start.elapsed().as_micros()
                        );
                        self.say(line.as_bytes())?
                    }
                    Err(e) => self.fail(&e),
                }
            }
            Command::Forget { id } => match self.client.forget_slave(&id) {
                Ok(()) => self.say(b"OK")?,
                Err(e) => self.fail(&e),
            },
            Command::Help => self.say(command::HELP.as_bytes())?,
            Command::Quit => return Ok(Flow::Quit),
        }
        Ok(Flow::Go)
    }

    /// NOT_FOUND: on stdout when quoted (it cannot be mistaken for a value), else on stderr.
    fn not_found(&mut self) -> io::Result<()> {
        match self.style {
            Style::Quoted => {
                self.status = self.status.max(EXIT_ANSWER);
                self.say(b"NOT_FOUND")
            }
            Style::Raw => {
                self.note(EXIT_ANSWER, "NOT_FOUND");
                Ok(())
            }
        }
    }

    /// `VERSION VALUE`, the value raw or quoted as the style says.
    fn versioned(&mut self, version: u64, v: &[u8]) -> io::Result<()> {
        let mut line = format!("{version} ").into_bytes();
        match self.style {
            Style::Quoted => line.extend_from_slice(quote(v).as_bytes()),
            Style::Raw => line.extend_from_slice(v),
        }
        self.say(&line)
    }

    /// A value read: raw bytes or quoted, as the style says.
    fn value(&mut self, v: &[u8]) -> io::Result<()> {
        match self.style {
            Style::Quoted => self.say(quote(v).as_bytes()),
            Style::Raw if self.repl => self.say(v),
            Style::Raw => {
                self.out.write_all(v)?;
                self.out.flush()
            }
        }
    }

    /// One answer on `out`, ended by a newline.
    fn say(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// A line on `err` (which may be closed too: nothing more to do then) and the status.
    fn note(&mut self, code: i32, line: &str) {
        self.status = self.status.max(code);
        let _ = writeln!(self.err, "{line}");
        let _ = self.err.flush();
    }

    fn fail(&mut self, e: &Error) {
        let code = match e {
            Error::Unreachable(_) | Error::Io(_) | Error::Untrusted(_) => EXIT_USAGE,
            Error::Server {
                code: ErrorCode::Unauthorized,
                ..
            } => EXIT_USAGE,
            _ => EXIT_ANSWER,
        };
        let line = match e {
            // These name every address already.
            Error::Unreachable(_) | Error::Unknown(_) => format!("ERROR {e}"),
            _ => format!("ERROR {e} (master {})", self.client.last_master()),
        };
        self.note(code, &line);
    }
}
