//! How `dsm-client` prints keys and values: raw bytes (for pipes and files), or quoted with
//! escapes (redis-cli style, for terminals), in the REPL's own quoting so that a printed value
//! can be typed back.

/// How values are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The value's bytes exactly; a missing key prints nothing on stdout (NOT_FOUND goes to
    /// stderr), so stdout holds only stored bytes.
    Raw,
    /// `"..."` with escapes; a missing key is `NOT_FOUND`, unquoted, on stdout.
    Quoted,
}

/// `bytes` in double quotes: printable UTF-8 as it is, `"` and `\` escaped, `\n` `\r` `\t`
/// `\0`, and every other control character or byte that is not UTF-8 as `\xHH`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{parse_line, Command};

    #[test]
    fn quotes_like_the_repl_reads() {
        assert_eq!(quote(b"hello world"), "\"hello world\"");
        assert_eq!(quote(b"NOT_FOUND"), "\"NOT_FOUND\"");
        assert_eq!(quote(b"a\nb"), "\"a\\nb\"");
        assert_eq!(quote(b"\xff\xfe\x01"), "\"\\xff\\xfe\\x01\"");
        assert_eq!(quote("café".as_bytes()), "\"café\"");
        assert_eq!(quote(b"caf\xe9"), "\"caf\\xe9\"");
        assert_eq!(quote(b"\"\\\t\r\0\x7f"), "\"\\\"\\\\\\t\\r\\0\\x7f\"");
        assert_eq!(quote("\u{85}".as_bytes()), "\"\\xc2\\x85\"");
    }

    #[test]
    fn every_byte_string_quoted_reads_back_as_itself() {
        let mut samples: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b, b'x', b]).collect();
        samples.push((0..=255u8).collect());
        samples.push("ünïcödé \u{2028} 日本".as_bytes().to_vec());
        for v in samples {
            let line = format!("WRITE k {}", quote(&v));
            assert_eq!(
                parse_line(line.as_bytes()),
                Ok(Some(Command::Write {
                    key: b"k".to_vec(),
                    value: v.clone()
                })),
                "{line}"
            );
        }
    }
}
