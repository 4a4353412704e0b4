//! A tiny GET-only HTTP/1.1 server for `--metrics`, run inside a server's own mio loop: the
//! request-head parser (no I/O), the response writer, and [`Endpoint`], which owns the
//! listening socket, knows which connections (slab keys of the caller's) are HTTP ones and
//! serves them one request at a time. Heads are bounded (`MAX_HEAD`), bodies are refused,
//! at most `MAX_CONNS` connections are kept (the oldest goes for a new one), and each
//! connection has at most one response queued: nothing here can grow without bound or block.

use std::io;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::{Conn, Io};

/// The longest request head taken (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// The `max_frame` an HTTP connection's `Conn` is made with: it sets the read size (64 KiB,
/// the frame limit itself does not apply), so a refused request (a head past `MAX_HEAD`, a
/// small body) usually arrives in one read, and is not left unread in the socket when the
/// connection is closed after the error response (the kernel would reset the connection,
/// and the client could lose the response).
pub const READ_SIZE: usize = 64 * 1024;
/// HTTP connections kept open at once; a new one closes the oldest.
pub const MAX_CONNS: usize = 16;

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without any `?query`.
    pub path: &'a str,
    /// The query string after `?`, or "".
    pub query: &'a str,
    /// The client asked to close after this response (or spoke HTTP/1.0).
    pub close: bool,
}

/// Why a request head is refused; the connection answers it and closes.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpError {
    /// No end of the head within `MAX_HEAD` bytes.
    HeadTooLarge,
    /// Not `METHOD TARGET HTTP/1.x`, or a header line without a colon.
    Malformed(&'static str),
    /// A request with a body (this server takes none).
    Body,
}

impl HttpError {
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            HttpError::HeadTooLarge => (431, "Request Header Fields Too Large"),
            HttpError::Malformed(_) => (400, "Bad Request"),
            HttpError::Body => (413, "Content Too Large"),
        }
    }

    pub fn text(&self) -> &'static str {
        match self {
            HttpError::HeadTooLarge => "request head over 8 KiB\n",
            HttpError::Malformed(why) => why,
            HttpError::Body => "this server takes no request bodies\n",
        }
    }
}

/// The request head at the front of `buf`: `Ok(None)` until it is all in; the `usize` is
/// how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Request<'_>, usize)>, HttpError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return match buf.len() >= MAX_HEAD {
            true => Err(HttpError::HeadTooLarge),
            false => Ok(None),
        };
    };
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| HttpError::Malformed("request head is not UTF-8\n"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("bad request line\n"));
    };
    if method.is_empty() || !target.starts_with('/') {
        return Err(HttpError::Malformed("bad request line\n"));
    }
    let mut close = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(HttpError::Malformed("only HTTP/1.0 and HTTP/1.1\n")),
    };
    for header in lines {
        let Some((name, value)) = header.split_once(':') else {
            return Err(HttpError::Malformed("header line without a colon\n"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") && value != "0" {
            return Err(HttpError::Body);
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Body);
        }
        if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method,
        path,
        query,
        close,
    };
    Ok(Some((request, end + 4)))
}

/// What a route answers.
pub struct Page {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Page {
    pub fn ok(content_type: &'static str, body: String) -> Page {
        Page {
            status: 200,
            reason: "OK",
            content_type,
            body,
        }
    }

    pub fn not_found(path: &str) -> Page {
        Page {
            status: 404,
            reason: "Not Found",
            content_type: "text/plain; charset=utf-8",
            body: format!("no page at {path}\n"),
        }
    }
}

/// Append a whole response to `out`.
pub fn write_response(page: &Page, head_only: bool, close: bool, allow: bool, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}{}\r\n",
        page.status,
        page.reason,
        page.content_type,
        page.body.len(),
        if allow { "Allow: GET, HEAD\r\n" } else { "" },
        if close { "Connection: close\r\n" } else { "" },
    );
    if !head_only {
        out.extend_from_slice(page.body.as_bytes());
    }
}

/// What the owner of the slab does with an HTTP connection after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Close,
}

/// The metrics listener and which of the owner's slab keys are its connections.
pub struct Endpoint {
    listener: TcpListener,
    token: Token,
    /// By slab key: `Some(serial)` for an HTTP connection (lower serial: older).
    slots: Vec<Option<Slot>>,
    open: usize,
    serial: u64,
    scratch: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Slot {
    serial: u64,
    /// Close once the queued response is written.
    closing: bool,
}

impl Endpoint {
    pub fn bind(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<Endpoint> {
        let mut listener = TcpListener::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (--metrics): {e}"),
            )
        })?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(Endpoint {
            listener,
            token,
            slots: Vec::new(),
            open: 0,
            serial: 0,
            scratch: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn token(&self) -> Token {
        self.token
    }

    /// HTTP connections open.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Whether slab key `key` is one of this endpoint's connections.
    #[inline]
    pub fn owns(&self, key: usize) -> bool {
        matches!(self.slots.get(key), Some(Some(_)))
    }

    /// The next connection waiting to be accepted.
    pub fn accept(&mut self) -> Option<TcpStream> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    return Some(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock, or EMFILE and friends: the rest wait in the backlog.
                Err(_) => return None,
            }
        }
    }

    /// At the cap: the key of the oldest connection, which the owner closes to make room.
    pub fn to_evict(&self) -> Option<usize> {
        if self.open < MAX_CONNS {
            return None;
        }
        (self.slots.iter().enumerate())
            .filter_map(|(k, s)| s.map(|s| (s.serial, k)))
            .min()
            .map(|(_, k)| k)
    }

    /// The owner put an accepted connection in its slab at `key`.
    pub fn adopt(&mut self, key: usize) {
        if self.slots.len() <= key {
            self.slots.resize(key + 1, None);
        }
        self.serial += 1;
        if self.slots[key].is_none() {
            self.open += 1;
        }
        self.slots[key] = Some(Slot {
            serial: self.serial,
            closing: false,
        });
    }

    /// The owner removed the connection at `key`.
    pub fn forget(&mut self, key: usize) {
        if let Some(slot) = self.slots.get_mut(key) {
            if slot.take().is_some() {
                self.open -= 1;
            }
        }
    }

    /// Readable or writable: write what is queued, then answer buffered requests one at a
    /// time, reading more while the socket has it. Never waits: a response not written
    /// whole waits for WRITABLE, and no request is read meanwhile. A route that answers
    /// `None` is not ready: the request stays buffered, and the owner calls again when it is
    /// (an event on the connection also calls the route again).
    pub fn on_event(
        &mut self,
        key: usize,
        token: Token,
        conn: &mut Conn,
        registry: &Registry,
        mut route: impl FnMut(&Request) -> Option<Page>,
    ) -> Verdict {
        let Some(mut slot) = self.slots.get(key).copied().flatten() else {
            return Verdict::Close;
        };
        let verdict = loop {
            match conn.flush_and_rearm(registry, token) {
                Io::Closed => break Verdict::Close,
                _ if conn.pending() > 0 => break Verdict::Keep,
                _ if slot.closing => break Verdict::Close,
                _ => {}
            }
            match parse(conn.received()) {
                Ok(Some((req, used))) => {
                    let head_only = req.method == "HEAD";
                    let (page, allow) = match req.method {
                        "GET" | "HEAD" => match route(&req) {
                            Some(page) => (page, false),
                            // Not ready: the request stays buffered until the owner calls
                            // again (and nothing after it is read meanwhile).
                            None => break Verdict::Keep,
                        },
                        _ => (
                            Page {
                                status: 405,
                                reason: "Method Not Allowed",
                                content_type: "text/plain; charset=utf-8",
                                body: format!("{} is not served here: GET only\n", req.method),
                            },
                            true,
                        ),
                    };
                    slot.closing = req.close || page.status == 405;
                    self.scratch.clear();
                    write_response(&page, head_only, slot.closing, allow, &mut self.scratch);
                    conn.consume(used);
                    conn.queue_bytes(&self.scratch);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    let (status, reason) = e.status();
                    let page = Page {
                        status,
                        reason,
                        content_type: "text/plain; charset=utf-8",
                        body: e.text().to_string(),
                    };
                    self.scratch.clear();
                    write_response(&page, false, true, false, &mut self.scratch);
                    conn.discard_buffered();
                    conn.queue_bytes(&self.scratch);
                    slot.closing = true;
                    continue;
                }
            }
            match conn.read_some() {
                Io::Done(_) => continue,
                Io::WouldBlock => break Verdict::Keep,
                Io::Closed => break Verdict::Close,
            }
        };
        if let Some(Some(s)) = self.slots.get_mut(key) {
            s.closing = slot.closing;
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_get_and_what_it_took() {
        let raw = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /";
        let (req, used) = parse(raw).unwrap().unwrap();
        assert_eq!(
            req,
            Request {
                method: "GET",
                path: "/metrics",
                query: "x=1",
                close: false
            }
        );
        assert_eq!(&raw[used..], b"GET /");
    }

    #[test]
    fn every_prefix_of_a_head_waits_for_more() {
        let raw = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        for n in 0..raw.len() {
            assert_eq!(parse(&raw[..n]), Ok(None), "prefix {n}");
        }
        let (req, _) = parse(raw).unwrap().unwrap();
        assert!(!req.close, "keep-alive asked for");
        let (req, _) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(req.close, "HTTP/1.0 closes by default");
    }

    #[test]
    fn refuses_bodies_garbage_and_endless_heads() {
        let body = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(body).unwrap_err(), HttpError::Body);
        let chunked = b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked).unwrap_err(), HttpError::Body);
        for bad in [
            &b"\x16\x03\x01 garbage\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HttpError::Malformed(_))),
                "{bad:?}"
            );
        }
        let endless = vec![b'a'; MAX_HEAD];
        assert_eq!(parse(&endless).unwrap_err(), HttpError::HeadTooLarge);
    }

    #[test]
    fn responses_carry_their_length() {
        let mut out = Vec::new();
        write_response(&Page::not_found("/x"), false, true, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 14\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nno page at /x\n"), "{text}");
    }
}
