//! The one grammar of `dsm-client`'s commands, for a REPL line and for the words of a one-shot
//! command line alike: what each command takes, the REPL's quoting, and the usage messages.
//! Keys and values are bytes throughout: nothing here assumes UTF-8 except command names and
//! slave ids (ids are strings on the wire).

/// One command, parsed from a REPL line ([`parse_line`]) or from command-line words
/// ([`from_words`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Write {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Read {
        key: Vec<u8>,
    },
    /// READ with the version: prints `VERSION VALUE`.
    VRead {
        key: Vec<u8>,
    },
    /// A write answered with its version; with `expected`, compare-and-set.
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        expected: Option<u64>,
    },
    Delete {
        key: Vec<u8>,
        expected: Option<u64>,
    },
    Incr {
        key: Vec<u8>,
        delta: i64,
    },
    Scan {
        prefix: Vec<u8>,
    },
    Status {
        json: bool,
    },
    Ping,
    Forget {
        id: String,
    },
    Help,
    Quit,
}

/// The REPL's `HELP`: every command, and how to quote.
pub const HELP: &str = "\
Commands (case-insensitive, one per line):
  WRITE key value...   store value: the rest of the line after the key, inner and
                       trailing spaces kept (WRITE key \"\" stores an empty value)
  READ key             print the value (NOT_FOUND if there is none)
  VREAD key            print the version and the value: VERSION VALUE
  CAS key version value...  write only if the key is still at that version (0: only if
                       it does not exist); prints OK VERSION, or ERROR CONFLICT with
                       the current version
  DELETE key           delete the key; prints OK VERSION (NOT_FOUND if there was none)
  INCR key [delta]     add delta (default 1) to the integer in key (missing: 0);
                       prints the new value
  SCAN [prefix]        every key (under prefix), one per line
  STATUS [--json]      which master answered, its role, the primary, the backup,
                       the live and the absent slaves
  PING                 one round trip to the master
  FORGET-SLAVE id      slave id is gone for good: its copies no longer count
  HELP                 this list
  QUIT                 leave (so do EXIT, Ctrl-D and the end of piped input)
Quoting: a key, or a whole value, in \"double\" or 'single' quotes may hold spaces;
inside double quotes \\\" \\\\ \\n \\r \\t \\0 and \\xHH (any byte) are escapes, inside
single quotes only \\'. Values are printed the same way on a terminal (--quoted),
so a printed value can be typed back.";

const WRITE_USAGE: &str = "usage: WRITE key value (WRITE key \"\" for an empty value)";
const READ_USAGE: &str = "usage: READ key";
const STATUS_USAGE: &str = "usage: STATUS [--json]";
const FORGET_USAGE: &str = "usage: FORGET-SLAVE id";
const VREAD_USAGE: &str = "usage: VREAD key";
const CAS_USAGE: &str = "usage: CAS key version value";
const DELETE_USAGE: &str = "usage: DELETE key";
const INCR_USAGE: &str = "usage: INCR key [delta]";
const SCAN_USAGE: &str = "usage: SCAN [prefix]";

fn number<T: std::str::FromStr>(word: &[u8], what: &str) -> Result<T, String> {
    let text = String::from_utf8_lossy(word);
    if let Ok(n) = text.parse() {
        return Ok(n);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} '{text}' is out of range"));
    }
    Err(format!("{what} '{text}' is not a number"))
}

/// The command a name stands for, if any (`write`, `READ`, `forget-slave`, ...).
fn name_of(word: &[u8]) -> Option<&'static str> {
    const NAMES: [&str; 14] = [
        "write",
        "read",
        "vread",
        "cas",
        "delete",
        "incr",
        "scan",
        "status",
        "ping",
        "forget-slave",
        "help",
        "quit",
        "exit",
        "bench",
    ];
    if word == b"?" {
        return Some("help");
    }
    NAMES
        .into_iter()
        .find(|n| n.as_bytes().eq_ignore_ascii_case(word))
}

/// Every command name, for completion in the interactive REPL.
pub const NAMES: [&str; 13] = [
    "WRITE",
    "READ",
    "VREAD",
    "CAS",
    "DELETE",
    "INCR",
    "SCAN",
    "STATUS",
    "PING",
    "FORGET-SLAVE",
    "HELP",
    "QUIT",
    "EXIT",
];

fn unknown(word: &[u8]) -> String {
    format!(
        "unknown command '{}'; HELP lists the commands",
        String::from_utf8_lossy(word)
    )
}

/// One REPL line (its line end included or not). `Ok(None)` for a blank line.
///
/// Words are separated by spaces or tabs; a word that starts with a quote runs to the matching
/// quote (see [`HELP`]). The value of WRITE is the rest of the line after the key (from its
/// first non-blank byte, trailing blanks kept), unless it starts with a quote: then the quoted
/// word is the value and nothing may follow it.
pub fn parse_line(line: &[u8]) -> Result<Option<Command>, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = blank_start(line);
    if rest.is_empty() {
        return Ok(None);
    }
    let (word, rest) = bare_word(rest);
    let name = name_of(word).ok_or_else(|| unknown(word))?;
    let cmd = match name {
        "write" => {
            let (key, rest) = next_word(rest)?.ok_or(WRITE_USAGE)?;
            let rest = blank_start(rest);
            if rest.is_empty() {
                return Err(WRITE_USAGE.into());
            }
            let value = if is_quote(rest[0]) {
                let (value, tail) = quoted(rest)?;
                if !blank_start(tail).is_empty() {
                    return Err(
                        "a quoted value must be the whole rest of the line (put quotes \
                                inside it as \\\")"
                            .into(),
                    );
                }
                value
            } else {
                rest.to_vec()
            };
            Command::Write { key, value }
        }
        "read" => Command::Read {
            key: only_word(rest, READ_USAGE)?,
        },
        "vread" => Command::VRead {
            key: only_word(rest, VREAD_USAGE)?,
        },
        "cas" => {
            let (key, rest) = next_word(rest)?.ok_or(CAS_USAGE)?;
            let (version, rest) = next_word(rest)?.ok_or(CAS_USAGE)?;
            let expected = Some(number(&version, "version")?);
            let rest = blank_start(rest);
            if rest.is_empty() {
                return Err(CAS_USAGE.into());
            }
            let value = if is_quote(rest[0]) {
                let (value, tail) = quoted(rest)?;
                if !blank_start(tail).is_empty() {
                    return Err("a quoted value must be the whole rest of the line".into());
                }
                value
            } else {
                rest.to_vec()
            };
            Command::Set {
                key,
                value,
                expected,
            }
        }
        "delete" => Command::Delete {
            key: only_word(rest, DELETE_USAGE)?,
            expected: None,
        },
        "incr" => match words(rest)?.as_slice() {
            [key] => Command::Incr {
                key: key.clone(),
                delta: 1,
            },
            [key, delta] => Command::Incr {
                key: key.clone(),
                delta: number(delta, "delta")?,
            },
            _ => return Err(INCR_USAGE.into()),
        },
        "scan" => match words(rest)?.as_slice() {
            [] => Command::Scan { prefix: Vec::new() },
            [p] => Command::Scan { prefix: p.clone() },
            _ => return Err(SCAN_USAGE.into()),
        },
        "status" => match words(rest)?.as_slice() {
            [] => Command::Status { json: false },
            [w] if w == b"--json" => Command::Status { json: true },
            _ => return Err(STATUS_USAGE.into()),
        },
        "ping" => no_words(rest, Command::Ping, "usage: PING")?,
        "forget-slave" => Command::Forget {
            id: slave_id(only_word(rest, FORGET_USAGE)?)?,
        },
        "help" => Command::Help,
        "quit" | "exit" => Command::Quit,
        _ => return Err("bench runs as a command of its own: dsm-client bench --help".into()),
    };
    Ok(Some(cmd))
}

/// A one-shot command from its words (the first names it), as the shell split them: the same
/// commands and counts as [`parse_line`]; WRITE joins its value words with one space each.
/// `value` is the content of `--value-file`, which replaces the value words.
pub fn from_words(words: &[Vec<u8>], value: Option<Vec<u8>>) -> Result<Command, String> {
    let Some((first, args)) = words.split_first() else {
        return Err("no command".into());
    };
    let name = name_of(first).ok_or_else(|| unknown(first))?;
    if value.is_some() && name != "write" {
        return Err("--value-file goes with write only".into());
    }
    let cmd = match (name, args) {
        ("write", [flag, n, key, first, more @ ..]) if flag == b"--if-version" => {
            let mut value = first.clone();
            for w in more {
                value.push(b' ');
                value.extend_from_slice(w);
            }
            Command::Set {
                key: key.clone(),
                value,
                expected: Some(number(n, "--if-version")?),
            }
        }
        ("write", [key]) if value.is_some() => Command::Write {
            key: key.clone(),
            value: value.unwrap_or_default(),
        },
        ("write", [_, ..]) if value.is_some() => {
            return Err("write KEY --value-file PATH takes no value words".into())
        }
        ("write", [key, first, more @ ..]) => {
            let mut value = first.clone();
            for w in more {
                value.push(b' ');
                value.extend_from_slice(w);
            }
            Command::Write {
                key: key.clone(),
                value,
            }
        }
        ("write", _) => {
            return Err("usage: dsm-client write KEY VALUE... (or KEY --value-file PATH)".into())
        }
        ("read", [flag, key]) if flag == b"--version" => Command::VRead { key: key.clone() },
        ("read", [key]) => Command::Read { key: key.clone() },
        ("read", _) => return Err("usage: dsm-client read [--version] KEY".into()),
        ("vread", [key]) => Command::VRead { key: key.clone() },
        ("vread", _) => return Err("usage: dsm-client vread KEY".into()),
        ("cas", [key, n, first, more @ ..]) => {
            let mut value = first.clone();
            for w in more {
                value.push(b' ');
                value.extend_from_slice(w);
            }
            Command::Set {
                key: key.clone(),
                value,
                expected: Some(number(n, "version")?),
            }
        }
        ("cas", _) => return Err("usage: dsm-client cas KEY VERSION VALUE...".into()),
        ("delete", [key]) => Command::Delete {
            key: key.clone(),
            expected: None,
        },
        ("delete", [flag, n, key]) if flag == b"--if-version" => Command::Delete {
            key: key.clone(),
            expected: Some(number(n, "--if-version")?),
        },
        ("delete", _) => return Err("usage: dsm-client delete [--if-version N] KEY".into()),
        ("incr", [key]) => Command::Incr {
            key: key.clone(),
            delta: 1,
        },
        ("incr", [key, delta]) => Command::Incr {
            key: key.clone(),
            delta: number(delta, "delta")?,
        },
        ("incr", _) => return Err("usage: dsm-client incr KEY [DELTA]".into()),
        ("scan", []) => Command::Scan { prefix: Vec::new() },
        ("scan", [flag, p]) if flag == b"--prefix" => Command::Scan { prefix: p.clone() },
        ("scan", _) => return Err("usage: dsm-client scan [--prefix P]".into()),
        ("status", []) => Command::Status { json: false },
        ("status", _) => return Err("usage: dsm-client status [--json]".into()),
        ("ping", []) => Command::Ping,
        ("ping", _) => return Err("usage: dsm-client ping".into()),
        ("forget-slave", [id]) => Command::Forget {
            id: slave_id(id.clone())?,
        },
        ("forget-slave", _) => return Err("usage: dsm-client forget-slave ID".into()),
        ("help", _) => Command::Help,
        ("quit" | "exit", _) => return Err("QUIT ends the REPL; there is nothing to quit".into()),
        _ => return Err("dsm-client bench takes its options after 'bench'".into()),
    };
    Ok(cmd)
}

fn slave_id(id: Vec<u8>) -> Result<String, String> {
    String::from_utf8(id).map_err(|_| "a slave id is UTF-8 text".into())
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_quote(b: u8) -> bool {
    b == b'"' || b == b'\''
}

fn blank_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_blank(b)).count();
    &s[n..]
}

/// The bytes up to the next blank, and what follows them.
fn bare_word(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|&&b| !is_blank(b)).count();
    (&s[..n], &s[n..])
}

/// The next word after any blanks, quoted or bare; `None` at the end of the line.
/// A word's bytes and the rest of the line after it.
type Word<'a> = (Vec<u8>, &'a [u8]);

fn next_word(s: &[u8]) -> Result<Option<Word<'_>>, String> {
    let s = blank_start(s);
    match s.first() {
        None => Ok(None),
        Some(&q) if is_quote(q) => quoted(s).map(Some),
        Some(_) => {
            let (w, rest) = bare_word(s);
            Ok(Some((w.to_vec(), rest)))
        }
    }
}

fn words(mut s: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while let Some((w, rest)) = next_word(s)? {
        out.push(w);
        s = rest;
    }
    Ok(out)
}

fn only_word(s: &[u8], usage: &str) -> Result<Vec<u8>, String> {
    let mut all = words(s)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        _ => Err(usage.into()),
    }
}

fn no_words(s: &[u8], cmd: Command, usage: &str) -> Result<Command, String> {
    match blank_start(s).is_empty() {
        true => Ok(cmd),
        false => Err(usage.into()),
    }
}

/// A quoted word at the start of `s` (which begins with its quote), and what follows it: a
/// closing quote must end the line or be followed by a blank.
fn quoted(s: &[u8]) -> Result<Word<'_>, String> {
    let q = s[0];
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        let Some(&b) = s.get(i) else {
            return Err(format!("no closing {} quote", q as char));
        };
        i += 1;
        match b {
            _ if b == q => break,
            b'\\' if q == b'\'' => {
                if s.get(i) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 1;
                } else {
                    out.push(b'\\');
                }
            }
            b'\\' => {
                let Some(&e) = s.get(i) else {
                    return Err("a line cannot end in a \\ escape".into());
                };
                i += 1;
                out.push(match e {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'0' => 0,
                    b'\\' | b'"' | b'\'' => e,
                    b'x' => {
                        let hex = s.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                        let Some(byte) = byte else {
                            return Err("\\x takes two hex digits (\\x00 to \\xff)".into());
                        };
                        i += 2;
                        byte
                    }
                    other => {
                        return Err(format!(
                            "unknown escape \\{} (known: \\\" \\\\ \\n \\r \\t \\0 \\xHH)",
                            String::from_utf8_lossy(&[other])
                        ))
                    }
                });
            }
            b => out.push(b),
        }
    }
    let rest = &s[i..];
    if rest.first().is_some_and(|&b| !is_blank(b)) {
        return Err(format!(
            "a closing {} quote must end the word (a blank after it)",
            q as char
        ));
    }
    Ok((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Result<Option<Command>, String> {
        parse_line(s.as_bytes())
    }

    fn write(key: &[u8], value: &[u8]) -> Option<Command> {
        Some(Command::Write {
            key: key.to_vec(),
            value: value.to_vec(),
        })
    }

    #[test]
    fn a_number_too_big_is_out_of_range_not_a_word() {
        let e = line("incr k 99999999999999999999").unwrap_err();
        assert!(e.contains("'99999999999999999999' is out of range"), "{e}");
        let e = line("incr k 12x").unwrap_err();
        assert!(e.contains("'12x' is not a number"), "{e}");
        assert!(matches!(
            line("incr k -3"),
            Ok(Some(Command::Incr { delta: -3, .. }))
        ));
    }

    #[test]
    fn an_unquoted_value_is_the_rest_of_the_line() {
        assert_eq!(
            line("write k hello  big world \n"),
            Ok(write(b"k", b"hello  big world "))
        );
        assert_eq!(line("WRITE k    x"), Ok(write(b"k", b"x")));
        assert_eq!(line("Write k a \"b\" c\r\n"), Ok(write(b"k", b"a \"b\" c")));
        // The REPL reads what one-shot options would be as part of the value.
        assert_eq!(
            line("WRITE a --secret-file /tmp/s"),
            Ok(write(b"a", b"--secret-file /tmp/s"))
        );
        assert_eq!(line(""), Ok(None));
        assert_eq!(line(" \t \r\n"), Ok(None));
    }

    #[test]
    fn a_write_without_a_value_is_a_usage_error_in_both_forms() {
        assert!(line("WRITE onlykey")
            .unwrap_err()
            .starts_with("usage: WRITE"));
        assert!(line("WRITE onlykey   ")
            .unwrap_err()
            .starts_with("usage: WRITE"));
        assert!(line("WRITE").is_err());
        assert_eq!(line("WRITE k \"\""), Ok(write(b"k", b"")));
        assert!(from_words(&[b"write".to_vec(), b"onlykey".to_vec()], None).is_err());
        assert_eq!(
            from_words(&[b"write".to_vec(), b"k".to_vec(), Vec::new()], None),
            Ok(write(b"k", b"").unwrap())
        );
    }

    #[test]
    fn quoted_keys_and_values_with_escapes() {
        assert_eq!(
            line("write \"quoted key\" v"),
            Ok(write(b"quoted key", b"v"))
        );
        assert_eq!(
            line("write 'it''s' v").unwrap_err(),
            "a closing ' quote must end the word (a blank after it)"
        );
        assert_eq!(line(r"write 'it\'s' v"), Ok(write(b"it's", b"v")));
        assert_eq!(
            line(r#"WRITE k "a\nb\t\"\\\x00\xff\xFE""#),
            Ok(write(b"k", b"a\nb\t\"\\\x00\xff\xfe"))
        );
        assert_eq!(
            line("READ \"a key\""),
            Ok(Some(Command::Read {
                key: b"a key".to_vec()
            }))
        );
        assert!(line("READ \"open").unwrap_err().contains("no closing"));
        assert!(line(r#"WRITE k "a" b"#)
            .unwrap_err()
            .contains("whole rest of the line"));
        assert!(line(r#"WRITE k "\q""#)
            .unwrap_err()
            .contains("unknown escape"));
        assert!(line(r#"WRITE k "\x4""#)
            .unwrap_err()
            .contains("two hex digits"));
        assert!(line(r#"WRITE "k"x v"#).is_err());
    }

    #[test]
    fn bytes_that_are_not_utf8_pass_through() {
        assert_eq!(
            parse_line(b"WRITE \xff\xfe caf\xe9\n"),
            Ok(write(b"\xff\xfe", b"caf\xe9"))
        );
        assert_eq!(
            parse_line(b"read \xff"),
            Ok(Some(Command::Read {
                key: b"\xff".to_vec()
            }))
        );
    }

    #[test]
    fn every_command_and_its_usage() {
        assert_eq!(line("status"), Ok(Some(Command::Status { json: false })));
        assert_eq!(
            line("STATUS --json"),
            Ok(Some(Command::Status { json: true }))
        );
        assert!(line("STATUS x").is_err());
        assert_eq!(line("ping"), Ok(Some(Command::Ping)));
        assert!(line("ping x").is_err());
        assert_eq!(
            line("forget-slave s1"),
            Ok(Some(Command::Forget { id: "s1".into() }))
        );
        assert!(parse_line(b"forget-slave \xff").is_err());
        assert_eq!(line("help"), Ok(Some(Command::Help)));
        assert_eq!(line("?"), Ok(Some(Command::Help)));
        assert_eq!(line("QUIT"), Ok(Some(Command::Quit)));
        assert_eq!(line("exit"), Ok(Some(Command::Quit)));
        assert!(line("READ").is_err());
        assert!(line("READ a b").is_err());
        assert!(line("FLUSH k")
            .unwrap_err()
            .contains("unknown command 'FLUSH'"));
        assert_eq!(
            line("DELETE k"),
            Ok(Some(Command::Delete {
                key: b"k".to_vec(),
                expected: None
            }))
        );
        assert_eq!(
            line("cas k 7 a  b "),
            Ok(Some(Command::Set {
                key: b"k".to_vec(),
                value: b"a  b ".to_vec(),
                expected: Some(7)
            }))
        );
        assert!(line("CAS k x v").is_err());
        assert!(line("CAS k 7").is_err());
        assert_eq!(
            line("INCR n -3"),
            Ok(Some(Command::Incr {
                key: b"n".to_vec(),
                delta: -3
            }))
        );
        assert!(line("INCR n 1 2").is_err());
        assert_eq!(line("SCAN"), Ok(Some(Command::Scan { prefix: Vec::new() })));
        assert_eq!(
            line("VREAD k"),
            Ok(Some(Command::VRead { key: b"k".to_vec() }))
        );
        assert!(line("bench --op write")
            .unwrap_err()
            .contains("dsm-client bench"));
    }

    #[test]
    fn one_shot_words_follow_the_same_rules() {
        let w = |s: &[&[u8]]| s.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            from_words(&w(&[b"WRITE", b"k", b"v", b"w"]), None),
            Ok(write(b"k", b"v w").unwrap())
        );
        assert_eq!(
            from_words(&w(&[b"write", b"k"]), Some(b"\x00file".to_vec())),
            Ok(write(b"k", b"\x00file").unwrap())
        );
        assert!(from_words(&w(&[b"write", b"k", b"v"]), Some(Vec::new())).is_err());
        assert!(from_words(&w(&[b"read", b"k"]), Some(Vec::new())).is_err());
        assert_eq!(
            from_words(&w(&[b"read", b"\xff"]), None),
            Ok(Command::Read {
                key: b"\xff".to_vec()
            })
        );
        assert!(from_words(&w(&[b"read"]), None).is_err());
        assert!(from_words(&w(&[b"read", b"a", b"b"]), None).is_err());
        assert_eq!(
            from_words(&w(&[b"status"]), None),
            Ok(Command::Status { json: false })
        );
        assert_eq!(from_words(&w(&[b"ping"]), None), Ok(Command::Ping));
        assert!(from_words(&w(&[b"quit"]), None).is_err());
        assert!(from_words(&w(&[b"nope"]), None).is_err());
    }
}
