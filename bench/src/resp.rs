//! RESP, the Redis protocol, as much as `bench --redis` needs: PING, SET and GET encoded as
//! arrays of bulk strings, and replies parsed one at a time from a buffer. No sockets here.
//!
//! Replies are turned into the dsm reply they stand for ([`as_decoded`]: `+OK` is OK, a bulk
//! string is a VALUE borrowed from the buffer, a nil bulk is NOT_FOUND), so the bench's tally
//! counts and checks a Redis run exactly as it does a dsm one.

use dsm_wire::{Body, BodyRef, Decoded, ErrorCode, Frame};

/// One reply, borrowed from the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+text`
    Simple(&'a [u8]),
    /// `-text`
    Error(&'a [u8]),
    /// `:n`
    Integer(i64),
    /// `$n` and n bytes; `None` for the nil bulk `$-1`. (No command the bench sends is
    /// answered by an array, so [`parse`] refuses one.)
    Bulk(Option<&'a [u8]>),
}

/// `*n\r\n` then each argument as `$len\r\n<bytes>\r\n`.
fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    let len: usize = args.iter().map(|a| a.len() + 16).sum();
    out.reserve(len + 16);
    push_header(b'*', args.len(), out);
    for a in args {
        push_header(b'$', a.len(), out);
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(kind: u8, n: usize, out: &mut Vec<u8>) {
    out.push(kind);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

pub fn encode_ping(out: &mut Vec<u8>) {
    encode_command(&[b"PING"], out);
}

pub fn encode_set(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    encode_command(&[b"SET", key, value], out);
}

pub fn encode_get(key: &[u8], out: &mut Vec<u8>) {
    encode_command(&[b"GET", key], out);
}

/// The request `body` stands for (a dsm WRITE is a SET, a READ a GET; `None` is a PING),
/// appended to `out`.
pub fn encode_body(body: Option<&BodyRef<'_>>, out: &mut Vec<u8>) {
    match body {
        None => encode_ping(out),
        Some(BodyRef::Write { key, value }) => encode_set(key, value, out),
        Some(BodyRef::Read { key }) => encode_get(key, out),
        Some(other) => unreachable!("the bench plans no {:?}", other.opcode()),
    }
}

/// Position of the `\r\n` ending the line that starts at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

fn integer(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("not a number: {:?}", String::from_utf8_lossy(line)))
}

/// The first whole reply in `buf` and how many bytes it took; `Ok(None)` until it has all
/// arrived. A bulk string longer than `max_bulk`, an array, or a line that is no RESP is an
/// error: the stream cannot be trusted past it.
pub fn parse(buf: &[u8], max_bulk: usize) -> Result<Option<(Reply<'_>, usize)>, String> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(end) = line_end(buf, 1) else {
        // A header line is short; a long one without its end is garbage, not a slow peer.
        return if buf.len() > 64 && kind != b'+' && kind != b'-' {
            Err("RESP header line without an end".into())
        } else {
            Ok(None)
        };
    };
    let line = &buf[1..end];
    let after = end + 2;
    let reply = match kind {
        b'+' => Reply::Simple(line),
        b'-' => Reply::Error(line),
        b':' => Reply::Integer(integer(line)?),
        b'$' => {
            let n = integer(line)?;
            if n == -1 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let n = usize::try_from(n).map_err(|_| format!("bulk length {n}"))?;
            if n > max_bulk {
                return Err(format!("bulk string of {n} bytes, over {max_bulk}"));
            }
            if buf.len() < after + n + 2 {
                return Ok(None);
            }
            if &buf[after + n..after + n + 2] != b"\r\n" {
                return Err("bulk string not ended by CRLF".into());
            }
            return Ok(Some((
                Reply::Bulk(Some(&buf[after..after + n])),
                after + n + 2,
            )));
        }
        b'*' => return Err(format!("unexpected array reply of {}", integer(line)?)),
        other => return Err(format!("not a RESP reply: first byte {other:#04x}")),
    };
    Ok(Some((reply, after)))
}

/// The dsm reply `reply` stands for, so the tally can count and check it: `+OK` is OK,
/// `+PONG` is PONG, a bulk string a VALUE (borrowed), nil NOT_FOUND, and anything else an
/// ERROR that says what came.
pub fn as_decoded<'a>(reply: &Reply<'a>) -> Decoded<'a> {
    let body = match *reply {
        Reply::Simple(b"OK") => Body::Ok,
        Reply::Simple(b"PONG") => Body::Pong,
        Reply::Bulk(Some(value)) => return Decoded::Ref(0, BodyRef::Value { value }),
        Reply::Bulk(None) => Body::NotFound,
        Reply::Error(text) => Body::error(
            ErrorCode::Other(0),
            format!("redis: -{}", String::from_utf8_lossy(text)),
        ),
        Reply::Simple(text) => Body::error(
            ErrorCode::Other(0),
            format!("redis: unexpected +{}", String::from_utf8_lossy(text)),
        ),
        Reply::Integer(n) => Body::error(ErrorCode::Other(0), format!("redis: unexpected :{n}")),
    };
    Decoded::Owned(Frame::new(0, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_set(b"bench:7", b"hello world", &mut out);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$7\r\nbench:7\r\n$11\r\nhello world\r\n"
        );
        out.clear();
        encode_get(b"k", &mut out);
        encode_ping(&mut out);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n");
        out.clear();
        encode_set(b"", &vec![b'x'; 1_048_576], &mut out);
        assert!(out.starts_with(b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$1048576\r\n"));
        assert!(out.ends_with(b"xx\r\n"));
        out.clear();
        encode_body(
            Some(&BodyRef::Write {
                key: b"a",
                value: b"",
            }),
            &mut out,
        );
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\n");
    }

    #[test]
    fn each_reply_kind_parses_once_whole() {
        let max = 1 << 20;
        assert_eq!(parse(b"+OK\r\n", max), Ok(Some((Reply::Simple(b"OK"), 5))));
        assert_eq!(
            parse(b"-ERR no\r\n+OK\r\n", max),
            Ok(Some((Reply::Error(b"ERR no"), 9)))
        );
        assert_eq!(parse(b":-12\r\n", max), Ok(Some((Reply::Integer(-12), 6))));
        assert_eq!(parse(b"$-1\r\n", max), Ok(Some((Reply::Bulk(None), 5))));
        assert_eq!(
            parse(b"$0\r\n\r\n", max),
            Ok(Some((Reply::Bulk(Some(b"")), 6)))
        );
        // A value holding CRLF itself is taken by its length, not its content.
        let whole = b"$4\r\na\r\nb\r\n:1\r\n";
        assert_eq!(
            parse(whole, max),
            Ok(Some((Reply::Bulk(Some(b"a\r\nb")), 10)))
        );
        // Every proper prefix is incomplete, never an error or a different reply.
        for stream in [
            &b"$4\r\na\r\nb\r\n"[..],
            b"+PONG\r\n",
            b":5\r\n",
            b"$-1\r\n",
        ] {
            for cut in 0..stream.len() {
                assert_eq!(parse(&stream[..cut], max), Ok(None), "{cut} of {stream:?}");
            }
        }
    }

    #[test]
    fn malformed_or_oversize_replies_are_errors() {
        assert!(parse(b"$5\r\nabcdeXX", 10).unwrap_err().contains("CRLF"));
        assert!(parse(b"$11\r\n", 10).unwrap_err().contains("over 10"));
        assert!(parse(b"$-2\r\n", 10).is_err());
        assert!(parse(b"$x\r\n", 10).unwrap_err().contains("not a number"));
        assert!(parse(b"*2\r\n$1\r\na\r\n", 10)
            .unwrap_err()
            .contains("array"));
        assert!(parse(b"hello\r\n", 10).unwrap_err().contains("0x68"));
        assert!(parse(&[b'$'; 100], 10).is_err(), "an endless header line");
    }

    #[test]
    fn replies_stand_for_the_dsm_replies_the_tally_knows() {
        let ok = as_decoded(&Reply::Simple(b"OK"));
        assert!(matches!(ok, Decoded::Owned(Frame { body: Body::Ok, .. })));
        let pong = as_decoded(&Reply::Simple(b"PONG"));
        assert!(matches!(
            pong,
            Decoded::Owned(Frame {
                body: Body::Pong,
                ..
            })
        ));
        match as_decoded(&Reply::Bulk(Some(b"v"))) {
            Decoded::Ref(_, BodyRef::Value { value }) => assert_eq!(value, b"v"),
            other => panic!("{other:?}"),
        }
        let nil = as_decoded(&Reply::Bulk(None));
        assert!(matches!(
            nil,
            Decoded::Owned(Frame {
                body: Body::NotFound,
                ..
            })
        ));
        for (reply, text) in [
            (Reply::Error(b"OOM command not allowed"), "-OOM command"),
            (Reply::Simple(b"QUEUED"), "+QUEUED"),
            (Reply::Integer(3), ":3"),
        ] {
            match as_decoded(&reply) {
                Decoded::Owned(Frame {
                    body: Body::Error { text: t, .. },
                    ..
                }) => assert!(t.contains(text), "{t}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
