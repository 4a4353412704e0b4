//! dsm-client's command line, read as raw OS bytes (keys and values need not be UTF-8):
//! options anywhere before `--` (GNU style), the command's words, and `bench` followed by
//! everything after it as it is (its own options).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// What the command line asks for.
#[derive(Debug, Default)]
pub struct Args {
    pub master: Option<String>,
    pub timeout_ms: Option<String>,
    pub max_value: Option<String>,
    pub secret_file: Option<OsString>,
    pub value_file: Option<OsString>,
    pub raw: bool,
    pub quoted: bool,
    pub json: bool,
    pub log_level: Option<String>,
    pub verbose: usize,
    pub help: bool,
    pub version: bool,
    /// The command and its words (none: the REPL).
    pub words: Vec<Vec<u8>>,
    /// `bench` was the command: the arguments after it.
    pub bench: Option<Vec<OsString>>,
    /// `top` was the command: the arguments after it.
    pub top: Option<Vec<OsString>>,
}

/// One option: its short letter, long name, and whether it takes a value.
struct Opt {
    short: Option<char>,
    long: &'static str,
    takes_value: bool,
}

const OPTS: [Opt; 12] = [
    opt(Some('m'), "master", true),
    opt(Some('t'), "timeout-ms", true),
    opt(None, "max-value", true),
    opt(None, "secret-file", true),
    opt(None, "value-file", true),
    opt(None, "raw", false),
    opt(None, "quoted", false),
    opt(None, "json", false),
    opt(None, "log-level", true),
    opt(Some('v'), "verbose", false),
    opt(Some('h'), "help", false),
    opt(Some('V'), "version", false),
];

const fn opt(short: Option<char>, long: &'static str, takes_value: bool) -> Opt {
    Opt {
        short,
        long,
        takes_value,
    }
}

/// Parse the arguments after the program's name; `Err` is a usage error's message.
pub fn parse(argv: &[OsString]) -> Result<Args, String> {
    let mut args = Args::default();
    let mut rest = argv.iter();
    let mut operands_only = false;
    while let Some(a) = rest.next() {
        let b = a.as_bytes();
        // `incr KEY -5`: a negative delta is a word, not an option.
        let negative_delta = args
            .words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case(b"incr"))
            && std::str::from_utf8(b).is_ok_and(|s| s.parse::<i64>().is_ok());
        if operands_only || negative_delta || b == b"-" || !b.starts_with(b"-") {
            if args.words.is_empty() && !operands_only && b.eq_ignore_ascii_case(b"bench") {
                args.bench = Some(rest.cloned().collect());
                break;
            }
            if args.words.is_empty() && !operands_only && b.eq_ignore_ascii_case(b"top") {
                args.top = Some(rest.cloned().collect());
                break;
            }
            args.words.push(b.to_vec());
            continue;
        }
        if b == b"--" {
            operands_only = true;
            continue;
        }
        let Some(s) = a.to_str() else {
            return Err(format!(
                "unknown option '{}'{}",
                a.to_string_lossy(),
                DASH_HINT
            ));
        };
        if let Some(long) = s.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (long, None),
            };
            // After a command, its own options: `read --version`, `write --if-version N`,
            // `delete --if-version N`, `scan --prefix P` go to the command with their values.
            if let Some(takes_value) = command_option(&args.words, name) {
                args.words.push(format!("--{name}").into_bytes());
                if takes_value {
                    let v = match inline {
                        Some(v) => v,
                        None => rest
                            .next()
                            .cloned()
                            .ok_or_else(|| format!("option '--{name}' needs a value"))?,
                    };
                    args.words.push(v.as_bytes().to_vec());
                }
                continue;
            }
            let o = OPTS
                .iter()
                .find(|o| o.long == name)
                .ok_or_else(|| format!("unknown option '--{name}'{DASH_HINT}"))?;
            let value = match (o.takes_value, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => Some(
                    rest.next()
                        .cloned()
                        .ok_or_else(|| format!("option '--{name}' needs a value"))?,
                ),
                (false, Some(_)) => return Err(format!("option '--{name}' takes no value")),
                (false, None) => None,
            };
            set(&mut args, o, value)?;
            continue;
        }
        // Short options, perhaps several in one word (-vv), the last perhaps with its value
        // attached (-m127.0.0.1:7000) or in the next word.
        let cluster = &s[1..];
        for (i, c) in cluster.char_indices() {
            let o = OPTS
                .iter()
                .find(|o| o.short == Some(c))
                .ok_or_else(|| format!("unknown option '-{c}'{DASH_HINT}"))?;
            if !o.takes_value {
                set(&mut args, o, None)?;
                continue;
            }
            let attached = &cluster[i + c.len_utf8()..];
            let value = match attached.is_empty() {
                false => OsString::from(attached),
                true => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("option '-{c}' needs a value"))?,
            };
            set(&mut args, o, Some(value))?;
            break;
        }
    }
    Ok(args)
}

/// Whether `--name` after the command words `words` is that command's own option, and if so
/// whether it takes a value.
fn command_option(words: &[Vec<u8>], name: &str) -> Option<bool> {
    let command = words.first()?.to_ascii_lowercase();
    match (&command[..], name) {
        (b"read", "version") => Some(false),
        (b"write" | b"delete", "if-version") | (b"scan", "prefix") => Some(true),
        _ => None,
    }
}

const DASH_HINT: &str = " (a key or value that starts with '-' goes after '--', as in \
                         'dsm-client write -- KEY VALUE')";

fn set(args: &mut Args, o: &Opt, value: Option<OsString>) -> Result<(), String> {
    let text = |v: OsString| {
        v.into_string()
            .map_err(|v| format!("--{}: '{}' is not UTF-8", o.long, v.to_string_lossy()))
    };
    match (o.long, value) {
        ("master", Some(v)) => args.master = Some(text(v)?),
        ("timeout-ms", Some(v)) => args.timeout_ms = Some(text(v)?),
        ("max-value", Some(v)) => args.max_value = Some(text(v)?),
        ("log-level", Some(v)) => args.log_level = Some(text(v)?),
        ("secret-file", v) => args.secret_file = v,
        ("value-file", v) => args.value_file = v,
        ("raw", _) => args.raw = true,
        ("quoted", _) => args.quoted = true,
        ("json", _) => args.json = true,
        ("verbose", _) => args.verbose += 1,
        ("help", _) => args.help = true,
        ("version", _) => args.version = true,
        (name, _) => unreachable!("option --{name} is in OPTS but not handled"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn argv(words: &[&[u8]]) -> Vec<OsString> {
        words
            .iter()
            .map(|w| OsStr::from_bytes(w).to_os_string())
            .collect()
    }

    #[test]
    fn options_go_anywhere_before_dash_dash_and_words_stay_bytes() {
        let a = parse(&argv(&[
            b"write",
            b"a",
            b"--secret-file",
            b"/tmp/\xff",
            b"-m127.0.0.1:1",
            b"v\xfe",
        ]))
        .unwrap();
        assert_eq!(
            a.words,
            vec![b"write".to_vec(), b"a".to_vec(), b"v\xfe".to_vec()]
        );
        assert_eq!(a.secret_file.unwrap().as_bytes(), b"/tmp/\xff");
        assert_eq!(a.master.as_deref(), Some("127.0.0.1:1"));

        let a = parse(&argv(&[b"write", b"--", b"-k", b"--raw"])).unwrap();
        assert_eq!(
            a.words,
            vec![b"write".to_vec(), b"-k".to_vec(), b"--raw".to_vec()]
        );
        assert!(!a.raw);
        let a = parse(&argv(&[b"read", b"--", b"-k"])).unwrap();
        assert_eq!(a.words, vec![b"read".to_vec(), b"-k".to_vec()]);
        let a = parse(&argv(&[b"write", b"k", b"-"])).unwrap();
        assert_eq!(a.words.last().unwrap(), b"-");
    }

    #[test]
    fn flags_values_and_mistakes() {
        let a = parse(&argv(&[b"-vv", b"--timeout-ms=300", b"status", b"--json"])).unwrap();
        assert_eq!((a.verbose, a.json), (2, true));
        assert_eq!(a.timeout_ms.as_deref(), Some("300"));
        assert!(parse(&argv(&[b"--bogus"]))
            .unwrap_err()
            .contains("'--bogus'"));
        assert!(parse(&argv(&[b"write", b"k", b"-5"]))
            .unwrap_err()
            .contains("after '--'"));
        assert!(parse(&argv(&[b"--master"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse(&argv(&[b"--raw=1"]))
            .unwrap_err()
            .contains("takes no value"));
        assert!(parse(&argv(&[b"--master", b"\xff"])).is_err());
        let a = parse(&argv(&[b"-V"])).unwrap();
        assert!(a.version);
    }

    #[test]
    fn bench_takes_the_rest_as_it_is() {
        let a = parse(&argv(&[
            b"-m",
            b"127.0.0.1:9",
            b"bench",
            b"--op",
            b"write",
            b"--",
        ]))
        .unwrap();
        assert!(a.words.is_empty());
        assert_eq!(a.bench.unwrap(), argv(&[b"--op", b"write", b"--"]));
    }
}
