//! The interactive REPL (stdin and stdout both terminals): line editing, history and
//! completion of command names through rustyline, each line then run by the same
//! [`Shell`] as piped input. History is kept in `$DSM_HISTORY`, by default
//! `~/.dsm_client_history` (empty: none).

use std::io;
use std::path::PathBuf;

use dsm_client::command::NAMES;
use dsm_client::output::Style;
use dsm_client::repl::{Flow, Shell, EXIT_USAGE};
use dsm_client::Client;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

/// Completes the command word, in the case it was begun in.
struct CommandNames;

impl Completer for CommandNames {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.len() - before.trim_start().len();
        let word = &before[start..];
        if word.contains([' ', '\t']) {
            return Ok((pos, Vec::new()));
        }
        let lower = word.chars().any(|c| c.is_ascii_lowercase());
        let found = NAMES
            .iter()
            .filter(|n| {
                n.len() >= word.len()
                    && n.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            })
            .map(|n| {
                let n = if lower {
                    n.to_ascii_lowercase()
                } else {
                    n.to_string()
                };
                n + " "
            })
            .collect();
        Ok((start, found))
    }
}

impl Hinter for CommandNames {
    type Hint = String;
}
impl Highlighter for CommandNames {}
impl Validator for CommandNames {}
impl Helper for CommandNames {}

/// Where the history is kept, if anywhere.
fn history_file() -> Option<PathBuf> {
    match std::env::var_os("DSM_HISTORY") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dsm_client_history")),
    }
}

/// Run the REPL on the terminal until QUIT or Ctrl-D; Ctrl-C drops the line being typed.
/// Returns the exit status (the worst of every command's), or `None` when the terminal
/// cannot be driven (the caller reads plain lines instead).
pub fn run(client: &mut Client, style: Style) -> Option<i32> {
    let config = Config::builder()
        .max_history_size(1000)
        .ok()?
        .history_ignore_dups(true)
        .ok()?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<CommandNames, FileHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            log::warn!("no line editing on this terminal ({e}): reading plain lines");
            return None;
        }
    };
    editor.set_helper(Some(CommandNames));
    let history = history_file();
    if let Some(path) = &history {
        // A missing file is the first session; another problem only costs the history.
        if let Err(e) = editor.load_history(path) {
            if path.exists() {
                log::warn!("cannot load the history from {}: {e}", path.display());
            }
        }
    }
    let mut shell = Shell::new(client, io::stdout(), io::stderr(), style, true);
    let mut status = None;
    loop {
        let prompt = format!("dsm {}> ", shell.client().master());
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                match shell.line(line.as_bytes()) {
                    Ok(Flow::Go) => {}
                    Ok(Flow::Quit) => break,
                    Err(e) => {
                        status = Some(crate::output_failed(shell.status(), &e));
                        break;
                    }
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln_quiet(&format!("dsm-client: cannot read the terminal: {e}"));
                status = Some(shell.status().max(EXIT_USAGE));
                break;
            }
        }
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            log::warn!("cannot save the history to {}: {e}", path.display());
        }
    }
    Some(status.unwrap_or(shell.status()))
}

fn eprintln_quiet(line: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "{line}");
}
