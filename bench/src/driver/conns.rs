//! The bench's connections: each one's framed stream and handshake, and its requests in flight,
//! found again from a reply's id without hashing.

use std::collections::VecDeque;
use std::io;
use std::net::TcpStream as StdStream;
use std::time::Instant;

use dsm_auth::Handshake;
use dsm_net::Conn;
use dsm_wire::Decoded;
use log::warn;
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::tally::{Request, Tally};
use crate::BenchError;

/// Failed requests described in the log before the rest are only counted.
const LOGGED_FAILURES: u64 = 5;

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) req_id: u64,
    pub(super) request: Request,
    /// Latency runs from here: the send time, or in open loop the scheduled time (nanoseconds
    /// on the driver's clock, see [`super::Driver::nanos`]).
    pub(super) since: u64,
    pub(super) timed: bool,
}

pub(super) struct BenchConn {
    pub(super) conn: Conn,
    pub(super) welcomed: bool,
    /// In the driver's list of connections to flush.
    pub(super) queued: bool,
    pub(super) hello: Option<Handshake>,
    /// Sequence number of the next request; its id is `seq << 32 | slot in inflight`.
    pub(super) next_req: u64,
    pub(super) inflight: Slab<Pending>,
    /// Open loop: requests that are due but wait for a free slot, with their due times.
    pub(super) backlog: VecDeque<(u64, Instant)>,
    /// Next key this connection preloads, or reads back after the timed run (it owns the
    /// keys equal to its index modulo N).
    pub(super) preload_next: usize,
    pub(super) rng: u64,
}

impl BenchConn {
    /// Connection `idx` over `std`, registered for reading as `Token(idx)`, with room for
    /// `depth` requests in flight; `rng` seeds its choice of keys.
    pub(super) fn open(
        std: StdStream,
        idx: usize,
        registry: &Registry,
        max_frame: usize,
        depth: usize,
        rng: u64,
    ) -> io::Result<BenchConn> {
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let mut stream = mio::net::TcpStream::from_std(std);
        registry.register(&mut stream, Token(idx), Interest::READABLE)?;
        let mut conn = Conn::new(stream, max_frame);
        // Large values reuse the buffers (no page faults per request in the load generator).
        conn.keep_buffers(true);
        Ok(BenchConn {
            conn,
            welcomed: false,
            queued: false,
            hello: None,
            next_req: 1,
            inflight: Slab::with_capacity(depth),
            backlog: VecDeque::new(),
            preload_next: idx,
            rng,
        })
    }
}

impl Pending {
    /// Count `reply`, the answer to this request, in `tally`: a preload write must get OK, a
    /// read-back is checked, a timed request has its latency (to `now`, on the driver's clock)
    /// recorded and its reply checked. Failures of timed requests and read-backs are counted,
    /// and the first few timed ones logged.
    #[inline]
    pub(super) fn settle(
        self,
        tally: &mut Tally,
        reply: &Decoded<'_>,
        now: u64,
    ) -> Result<(), BenchError> {
        if !self.timed {
            return tally
                .on_untimed_reply(self.request, reply)
                .map_err(BenchError::Preload);
        }
        let latency = now.saturating_sub(self.since);
        tally.note_slow(now, latency);
        if let Some(why) = tally.on_reply(self.request, reply, latency) {
            if tally.failures() <= LOGGED_FAILURES {
                warn!("bench: {why}");
            }
        }
        Ok(())
    }
}

/// Remove and return the request `req_id` names, if it is still in flight: the low half of
/// the id is its slot, and the whole id must match (the slot may have been reused).
#[inline]
pub(super) fn take_pending(inflight: &mut Slab<Pending>, req_id: u64) -> Option<Pending> {
    let slot = (req_id & u64::from(u32::MAX)) as usize;
    match inflight.get(slot) {
        Some(p) if p.req_id == req_id => Some(inflight.remove(slot)),
        _ => None,
    }
}
