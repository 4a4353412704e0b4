//! The flat JSON objects a history line is: strings, integers (signed, up to 64 bits of
//! magnitude), booleans and nulls, read by a small hand-written parser rather than serde.

use std::collections::HashMap;

/// The JSON values a history line uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    Num(i128),
    Null,
    Bool(bool),
}

/// One line's object, by field name (a later duplicate field wins).
pub fn parse_object(line: &str) -> Result<HashMap<String, Json>, String> {
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
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                self.at += (self.s[self.at] == b'-') as usize;
                while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.at]).expect("ASCII digits");
                match digits.parse::<i128>() {
                    Ok(n) if (-(1i128 << 64)..(1i128 << 64)).contains(&n) => Ok(Json::Num(n)),
                    _ => Err(format!("{digits:?} is not a 64-bit integer")),
                }
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
