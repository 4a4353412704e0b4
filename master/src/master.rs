//! The master as a state machine: connections, frames and timer ticks in, frames and closes out
//! (the outbox). No sockets and no clock reads: `now` is passed in, so tests drive it with a
//! fake clock. [`Master`] owns the components and only dispatches: each event goes to the
//! component that owns what it is about, effects come back and are routed, and once per event
//! the operations settle (answer what is ready, start what may start).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use dsm_auth::Terms;
use dsm_wire::{Body, BodyRef, Decoded, ErrorCode, Frame, Role, ServerRole, Status};

use crate::census::Census;
use crate::config::Config;
use crate::core::Core;
use crate::ctx::Ctx;
use crate::effect::Effect;
use crate::ha::{Ha, Roles};
use crate::handshake::Hello;
use crate::keymap::SlaveIdx;
use crate::members::Members;
use crate::metrics::EventStats;
use crate::ops::{Ops, Request, Sent};
use crate::outbox::{ConnId, Out};
use crate::peers::Peer;
use crate::slaves::State;
use crate::timer::Timer;

/// The request id of a backup's STATUS to its primary (its PINGs use 0, SYNC_ACKs the SYNC's).
const ASK_PRIMARY_REQ: u64 = u64::MAX;
/// The most keys one SCAN page returns.
pub const SCAN_MAX_KEYS: usize = 1000;
/// The most key-map positions one SCAN page looks at: the bound on its work.
pub const SCAN_BUDGET: usize = 16 * 1024;

pub struct Master {
    core: Core,
    ha: Ha,
    ops: Ops,
    /// On a backup: the primary's client address, from its answer to the STATUS this master
    /// sends once its link is WELCOMEd (for STATUS), and the link it was asked on.
    primary_addr: String,
    asked_on: Option<ConnId>,
    /// Takeovers and dropped slaves, for `/metrics`.
    events: EventStats,
    started: Instant,
    /// The key map counted a slice per turn (`census.rs`): STATUS, `/metrics` and the status
    /// page wait for a pass instead of walking a million keys in one turn.
    census: Census,
    /// STATUS requests (connection, request id) waiting for the census pass of this id.
    status_waiting: Vec<(ConnId, u64, u64)>,
    /// Supporters asked for their vote whose VOTE had not come when this master was elected
    /// (it is often in the same read as the vote that decided): kept until it comes, and then
    /// taken as slaves like the others, instead of being let go to support a standby for
    /// seconds.
    late_voters: HashMap<ConnId, crate::supporter::Supporter>,
}

impl Master {
    pub fn new(cfg: Config, now: Instant) -> Master {
        let mut core = Core::new(cfg, now);
        let ha = Ha::new(&core.cfg, &mut core.timers, &mut core.doubts, now);
        core.restore(now);
        Master {
            core,
            ha,
            ops: Ops::default(),
            primary_addr: String::new(),
            asked_on: None,
            events: EventStats::default(),
            started: now,
            census: Census::default(),
            status_waiting: Vec::new(),
            late_voters: HashMap::new(),
        }
    }

    /// Everything the master wants sent or closed since the last call (the backup's changes
    /// of this turn go out as one SYNC).
    pub fn drain_out(&mut self, into: &mut Vec<Out>) {
        if let Some(stream) = self.ha.stream_mut() {
            stream.flush(
                &self.core.term,
                !self.core.doubts.incomplete,
                &mut self.core.out,
            );
        }
        if let Some(state) = self.core.state_to_keep() {
            self.core.out.persist(state);
        }
        self.core.out.drain_into(into);
    }

    /// Bytes of large values answered from the read cache waiting in the outbox (see
    /// `Outbox::cached_replies`): the event loop drains them before reading on.
    pub fn cached_replies(&self) -> usize {
        self.core.out.cached_replies
    }

    /// The event loop is closing `conn`: nothing queued for it may go out, since its slab
    /// key can be given to the next connection accepted.
    pub fn forget_out(&mut self, conn: ConnId) {
        self.core.out.forget(conn);
        self.status_waiting.retain(|&(c, _, _)| c != conn);
    }

    /// Take back an entry the event loop has written: a VALUE reply's buffer becomes the
    /// buffer of a later FETCHED answer.
    pub fn recycle(&mut self, out: Out) {
        self.core.pool.give_back(out);
    }

    /// The event loop has written out everything it was handed: a FETCH from now on goes out
    /// in a new write, so no slave counts as already woken by this turn's sends.
    pub fn end_turn(&mut self) {
        self.ops.end_turn();
    }

    /// Whether the connection has requests in progress here whose replies are still to come:
    /// the event loop may then hold the replies it has, to write them together (`server.rs`).
    pub fn owes(&self, conn: ConnId) -> bool {
        self.ops.owes(conn)
    }

    /// When `on_tick` next has work; feeds the poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let acks = self.ops.next_ack_deadline();
        match self.core.timers.next_deadline() {
            Some(t) => Some(acks.map_or(t, |a| a.min(t))),
            None => acks,
        }
    }

    pub fn key_count(&self) -> usize {
        self.core.keys.len()
    }

    pub fn role(&self) -> ServerRole {
        self.ha.role()
    }

    /// Whether this master answers clients at `now`: a primary whose lease holds.
    pub fn serving(&self, now: Instant) -> bool {
        self.ha.lease_ok(now)
    }

    /// STATUS counted in one walk over the key map now (tests and sims; the event loop answers
    /// STATUS from a census pass instead, a slice per turn).
    pub fn status(&self) -> Status {
        crate::status::status(self.status_head(), &self.core.keys, &self.core.slaves)
    }

    /// STATUS from the counts of a census pass (`census.rs`) instead of a walk now.
    pub(crate) fn status_from(&self, counts: &crate::status::Counts) -> Status {
        let keys = self.core.keys.len();
        crate::status::assemble(self.status_head(), keys, &self.core.slaves, counts)
    }

    /// Whether a census pass is wanted or under way: the event loop must not sleep, and
    /// calls [`Master::census_step`] each turn.
    pub fn census_busy(&self) -> bool {
        self.census.busy()
    }

    /// Walk the next slice of the key map; when a pass ends, answer the STATUS requests it
    /// counted for (into the outbox). True when a pass ended.
    pub fn census_step(&mut self) -> bool {
        let census = &mut self.census;
        if !census.step(&self.core.keys, &self.core.slaves, self.core.cfg.replicas) {
            return false;
        }
        let waiting = std::mem::take(&mut self.status_waiting);
        for (conn, req, id) in waiting {
            match self.census.result(id).cloned() {
                Some(counts) => {
                    let status = self.status_from(&counts);
                    self.core.out.send(conn, req, Body::StatusReply(status));
                }
                None => self.status_waiting.push((conn, req, id)),
            }
        }
        true
    }

    /// The id of a census pass that starts from now on (see [`Census::ask`]).
    pub(crate) fn census_ask(&mut self) -> u64 {
        self.census.ask()
    }

    /// The counts of census pass `id` or a later one, once it is over.
    pub(crate) fn census_result(&self, id: u64) -> Option<&crate::status::Counts> {
        self.census.result(id)
    }

    /// STATUS asked on `conn`: answered once a census pass that starts now is over.
    fn ask_status(&mut self, conn: ConnId, req: u64) {
        let id = self.census.ask();
        self.status_waiting.push((conn, req, id));
    }

    fn status_head(&self) -> crate::status::Head {
        let role = match self.ha.role() {
            ServerRole::Primary if self.core.recovery.is_some() => ServerRole::Recovering,
            role => role,
        };
        let primary = match role {
            ServerRole::Primary | ServerRole::Recovering => self.core.cfg.listen.to_string(),
            ServerRole::Backup => self.primary_addr.clone(),
            ServerRole::Fenced => String::new(),
        };
        crate::status::Head {
            role,
            epoch: self.core.term.epoch,
            replicas: self.core.cfg.replicas,
            copies_made: self.core.repairs.copies_made(),
            addr: self.core.cfg.listen.to_string(),
            primary,
            backup: self.ha.backup_link(&self.core.doubts),
        }
    }

    /// Slaves taken out of service, and slaves suspected (late but talking), since start.
    pub fn slave_troubles(&self) -> (u64, u64) {
        (self.events.dropped.iter().sum(), self.events.suspected)
    }

    /// Count a slave about to be dropped (one already out of service is not dropped again).
    fn count_drop(&mut self, idx: SlaveIdx, why: &str) {
        if matches!(
            self.core.slaves.state(idx),
            Some(State::Live | State::Joining)
        ) {
            self.events.dropped(why);
        }
    }

    /// The `/metrics` text; the event loop adds what only it knows: bytes queued for peers
    /// and its HTTP connections.
    pub(crate) fn metrics(
        &self,
        counts: &crate::status::Counts,
        buffered: u64,
        http_conns: u64,
        now: Instant,
    ) -> String {
        let status = self.status_from(counts);
        let conns = self.core.peers.count_by_kind();
        crate::metrics::render(&crate::metrics::Snapshot {
            status: &status,
            requests: &self.ops.stats,
            events: &self.events,
            copy_bytes: self.core.repairs.bytes_read(),
            read_cache: self.core.keys.cache_stats(),
            conns: &conns,
            in_flight: self.in_flight(),
            other_masters: self.core.cfg.other_masters().len(),
            buffered,
            http_conns,
            uptime: now.saturating_duration_since(self.started),
        })
    }

    pub(crate) fn request_stats(&self) -> &crate::metrics::RequestStats {
        &self.ops.stats
    }

    /// What the status page shows besides the request counters.
    pub(crate) fn page_view(
        &self,
        counts: &crate::status::Counts,
        now: Instant,
    ) -> crate::page::PageView {
        let heard = (self
            .core
            .slaves
            .listed(crate::status::MAX_LISTED)
            .into_iter())
        .map(|(_, s)| (s.id.clone(), now.saturating_duration_since(s.last_heard)))
        .collect();
        // Those configured, and on a primary the standbys it has heard from.
        let mut others = self.core.cfg.other_masters();
        for a in self.ha.standbys() {
            if !others.contains(a) {
                others.push(*a);
            }
        }
        crate::page::PageView {
            status: self.status_from(counts),
            other_masters: others.iter().map(|a| a.to_string()).collect(),
            heard,
            uptime: now.saturating_duration_since(self.started),
        }
    }

    /// Whether the connection has passed its HELLO (and any authentication): its frames may
    /// be as large as the limits allow.
    pub fn identified(&self, conn: ConnId) -> bool {
        !matches!(
            self.core.peers.kind(conn),
            Some(Peer::New | Peer::Challenged) | None
        )
    }

    /// Close the oldest connection still in its HELLO, to make room for a new one when every
    /// slot is taken; whether there was one.
    pub fn evict_unidentified(&mut self) -> bool {
        let Some(conn) = self.core.peers.oldest_unidentified() else {
            return false;
        };
        log::warn!(
            "every connection slot taken: closing connection {conn} from {}, still without a \
             HELLO, to make room",
            self.core.peers.addr(conn)
        );
        self.core.peers.close(conn, &mut self.core.out);
        true
    }

    /// The peer read bytes we had queued off a full socket: a slave doing so is alive and
    /// taking what it is sent, however late its answers (see `SubTable::ack_timeout`).
    pub fn on_progress(&mut self, conn: ConnId, now: Instant) {
        if let Some(Peer::Slave(idx)) = self.core.peers.kind(conn) {
            self.core.slaves.heard(idx, now);
        }
    }

    /// Bytes of the client's requests in flight ([`crate::ops::Ops::reserved`]), and of
    /// every client's.
    pub fn reserved(&self, conn: ConnId) -> (usize, usize) {
        self.ops.reserved(conn)
    }

    /// Bytes reserved by every client's requests in flight.
    pub fn reserved_total(&self) -> usize {
        self.ops.reserved_total()
    }

    /// What reading a client's next request, `frame` (`len` bytes, opcode `op`), would
    /// reserve at most: a READ the last size seen of its key's value (`key`, if the frame is
    /// whole), any other request no more than its frame (a WRITE's or SET's value), and at
    /// least a small value's [`crate::ops::SMALL_RESERVE`]. A frame over the limit is refused
    /// without reserving anything.
    pub fn request_cost(&self, op: u8, len: usize, key: Option<&[u8]>) -> usize {
        let small = crate::ops::SMALL_RESERVE as usize;
        if len > self.core.cfg.max_frame() {
            return small;
        }
        match key {
            Some(key) if op == dsm_wire::Opcode::Read as u8 => {
                self.ops.read_reserve(self.core.keys.hash(key))
            }
            _ => len.max(small),
        }
    }

    /// The address a connection came from (empty if unknown).
    pub fn peer_addr(&self, conn: ConnId) -> &str {
        self.core.peers.addr(conn)
    }

    /// Whether the connection is an admitted client (past HELLO and any authentication).
    pub fn is_client(&self, conn: ConnId) -> bool {
        matches!(self.core.peers.kind(conn), Some(Peer::Client))
    }

    /// A client's READ, WRITE or WRITE_ONCE (`op`) of `len` bytes, over the frame limit: answer
    /// TOO_LARGE, as for a key or value over its limit within it (the event loop skips the
    /// frame's bytes, so the connection goes on).
    pub fn refuse_oversize(&mut self, conn: ConnId, req: u64, op: u8, len: usize) {
        let cfg = &self.core.cfg;
        // Said as a user would: WRITE_ONCE is how dsm-client sends every write.
        let what = if op == dsm_wire::Opcode::Write as u8 || op == dsm_wire::Opcode::WriteOnce as u8
        {
            "write"
        } else {
            "request"
        };
        let text = format!(
            "a {what} of {len} bytes is over this master's frame limit of {} bytes: values \
             may have at most {} bytes (--max-value), keys {} (--max-key)",
            cfg.max_frame(),
            cfg.max_value,
            cfg.max_key
        );
        log::debug!("connection {conn}: {text}");
        self.core
            .out
            .send(conn, req, Body::error(ErrorCode::TooLarge, text));
    }

    /// Client operations and slave sub-requests still open: both are 0 on a quiet master,
    /// whatever failed on the way (tests check nothing leaks).
    /// Exactly-once answers kept (`once.rs`), and the clients they belong to.
    pub fn exactly_once_records(&self) -> (usize, usize) {
        self.ops.records()
    }

    /// The read cache's counters (`cache.rs`).
    pub fn read_cache(&self) -> crate::cache::CacheStats {
        self.core.keys.cache_stats()
    }

    pub fn in_flight(&self) -> (usize, usize) {
        self.ops.in_flight()
    }

    /// A connection was accepted from `addr`; it has `hello_timeout` to say HELLO.
    pub fn on_connect(&mut self, conn: ConnId, addr: String, now: Instant) {
        self.ops.on_connect(conn);
        self.core.handshakes.forget(conn);
        let serial = self.core.peers.add(conn, addr, Peer::New);
        self.core.timers.insert(
            now + self.core.cfg.hello_timeout,
            Timer::Hello(conn, serial),
        );
    }

    /// The connection closed (or the event loop closed it for a transport reason).
    pub fn on_close(&mut self, conn: ConnId, now: Instant) {
        match self.core.peers.closed(conn) {
            Some(Peer::Client) => self.ops.orphan(conn),
            Some(Peer::Slave(idx)) => {
                self.count_drop(idx, "its connection closed");
                self.members(now).drop(idx, "its connection closed")
            }
            Some(Peer::Backup) => self.ha.backup_closed(conn, &mut self.core.effects),
            Some(Peer::Supporter) => {
                self.late_voters.remove(&conn);
                self.ha.supporter_closed(conn)
            }
            Some(Peer::Primary) => self.ha.link_closed(now),
            Some(Peer::New | Peer::Challenged) | None => {}
        }
        self.settle(now);
    }

    /// [`Master::on_decoded`] of a frame the event loop took out of its connection with the
    /// buffer it was read into (`Conn::take_frame`): `decoded` borrows from `frame`, and a
    /// WRITE keeps its value there, shared with every STORE of it, instead of a copy.
    pub fn on_decoded_in(
        &mut self,
        conn: ConnId,
        decoded: Decoded<'_>,
        frame: &std::rc::Rc<Vec<u8>>,
        now: Instant,
    ) {
        self.core.frame = Some(std::rc::Rc::clone(frame));
        self.on_decoded(conn, decoded, now);
        self.core.frame = None;
    }

    /// A frame from the connection, decoded by [`dsm_wire::decode_borrowed`]: a client's READ
    /// or WRITE is taken straight from the read buffer (its key and value are copied once, into
    /// the operation), a slave's FETCHED value into a pooled buffer.
    pub fn on_decoded(&mut self, conn: ConnId, decoded: Decoded<'_>, now: Instant) {
        let Some(kind) = self.core.peers.kind(conn) else {
            return;
        };
        match (kind, decoded) {
            (
                Peer::Client,
                Decoded::Ref(
                    req,
                    body @ (BodyRef::Read { .. }
                    | BodyRef::Write { .. }
                    | BodyRef::WriteOnce { .. }),
                ),
            ) => self.on_client_op(conn, req, Request::of(body), now),
            (Peer::Slave(idx), Decoded::Ref(req, BodyRef::Fetched { version, value })) => {
                self.core.slaves.heard(idx, now);
                let value = self.core.pool.copy_of(value);
                let (ops, mut ctx) = self.parts(now);
                ops.on_fetched(&mut ctx, req, idx, Some((version, value)));
            }
            (kind, decoded) => self.dispatch(conn, kind, decoded.into_frame(), now),
        }
        self.settle(now);
    }

    pub fn on_tick(&mut self, now: Instant) {
        // The wheel's timers and the STOREs' ACK deadlines (kept apart from the wheel,
        // `ops/subs.rs`), together in deadline order as if they were one wheel.
        let mut fired = Vec::new();
        self.core.timers.expired_at(now, &mut fired);
        let wheel = fired.len();
        self.ops.acks_due(now, &mut fired);
        if fired.len() > wheel && fired.len() > 1 {
            // Stable: ties keep the wheel's first, and each slave's in the order sent.
            fired.sort_by_key(|&(at, _)| at);
        }
        for (_, t) in fired {
            match t {
                Timer::Ack(_) | Timer::ReadRetry(_) | Timer::Deadline(_) => {
                    let (ops, mut ctx) = self.parts(now);
                    ops.on_timer(&mut ctx, t)
                }
                Timer::PingSweep => self.members(now).ping_sweep(),
                Timer::Heartbeat => {
                    let (ha, roles) = self.roles(now);
                    ha.heartbeat(roles)
                }
                Timer::GraceEnd => self.members(now).end_grace(),
                Timer::Absent(idx) => self.members(now).absent_for_long(idx),
                Timer::Discovered => self.members(now).end_recovery(),
                Timer::Renew => self.renew(now),
                Timer::Hello(conn, serial) => {
                    self.core
                        .peers
                        .hello_deadline(conn, serial, &mut self.core.out)
                }
            }
            self.route_effects(now);
        }
        self.route_effects(now);
        let (ops, mut ctx) = self.parts(now);
        ops.pump_copies(&mut ctx);
        self.settle(now);
    }

    /// Renew the lease (on a primary) and come back in a quarter of it.
    fn renew(&mut self, now: Instant) {
        let (voters, told) = self.core.voters(self.ha.standbys());
        let (ha, roles) = self.roles(now);
        ha.renew(voters, told, roles);
        let next = now + self.core.cfg.lease / 4;
        self.core.timers.insert(next, Timer::Renew);
    }

    /// Where the event loop should open a link now, if anywhere: the primary (on a backup), or
    /// the old primary (on a new primary, to fence it).
    pub fn link_target(&self, now: Instant) -> Option<SocketAddr> {
        self.ha.link_target(now)
    }

    /// The link opened by the event loop is connected.
    pub fn on_link_up(&mut self, conn: ConnId, addr: String, now: Instant) {
        let (ha, roles) = self.roles(now);
        ha.link_up(conn, addr, roles);
        self.settle(now);
    }

    /// Opening the link failed (refused, unreachable, or reset while connecting).
    pub fn on_link_failed(&mut self, why: &str, now: Instant) {
        let (ha, roles) = self.roles(now);
        ha.link_failed(why, roles);
        self.settle(now);
    }

    /// The operations, and the request path's view of the rest.
    fn parts(&mut self, now: Instant) -> (&mut Ops, Ctx<'_>) {
        let settled = self.ha.stale_settled();
        (
            &mut self.ops,
            self.core.ctx(self.ha.stream_mut(), settled, now),
        )
    }

    fn roles(&mut self, now: Instant) -> (&mut Ha, Roles<'_>) {
        (&mut self.ha, self.core.roles(now))
    }

    fn members(&mut self, now: Instant) -> Members<'_> {
        self.core.members(self.ha.stream_mut(), now)
    }

    /// A slave's frame: its report of what it holds, or an answer to a sub-request (or a
    /// PONG). It is alive, whatever it says.
    fn on_slave_frame(&mut self, idx: SlaveIdx, req: u64, body: Body, now: Instant) {
        self.core.slaves.heard(idx, now);
        match body {
            Body::Inventory { done, entries } => {
                return self.members(now).report(idx, done, entries)
            }
            // An answer to the lease's PING (or STALE): the slave's promise.
            Body::Pong => {
                let lease = self.core.cfg.lease;
                if self.ha.slave_pong(idx, req, lease) {
                    self.core.effects.push(Effect::Synced);
                    self.settle(now);
                }
                return;
            }
            // PING goes either way (PROTOCOL.md): a slave may check that its master is alive.
            Body::Ping => {
                let conn = self.core.slaves.get(idx).conn;
                return self.core.out.send(conn, req, Body::Pong);
            }
            _ => {}
        }
        let (ops, mut ctx) = self.parts(now);
        ops.on_reply(&mut ctx, idx, req, body);
    }

    /// The end of every event: route what the components left, then answer what is ready.
    #[inline]
    fn settle(&mut self, now: Instant) {
        if !self.core.effects.is_empty() || self.ops.has_ready() {
            self.settle_all(now);
        }
    }

    fn settle_all(&mut self, now: Instant) {
        while !self.core.effects.is_empty() || self.ops.has_ready() {
            self.route_effects(now);
            if !self.ops.has_ready() {
                return;
            }
            let refusal = self.ha.refusal(&self.core.cfg, now);
            let (ops, mut ctx) = self.parts(now);
            ops.settle(&mut ctx, refusal.as_deref());
        }
    }

    fn route_effects(&mut self, now: Instant) {
        while !self.core.effects.is_empty() {
            for effect in std::mem::take(&mut self.core.effects) {
                self.route(effect, now);
            }
        }
    }

    fn route(&mut self, effect: Effect, now: Instant) {
        match effect {
            Effect::DropSlave { slave, why } => {
                self.count_drop(slave, &why);
                self.members(now).drop(slave, &why)
            }
            Effect::Suspect { slave, why } => {
                if !self.core.slaves.is_suspected(slave, now) {
                    self.events.suspected += 1;
                }
                self.members(now).suspect(slave, why)
            }
            Effect::Dropped(slave) => {
                let (ops, mut ctx) = self.parts(now);
                ops.on_slave_dropped(&mut ctx, slave);
                self.members(now).schedule_repairs();
                let (ops, mut ctx) = self.parts(now);
                ops.pump_copies(&mut ctx);
            }
            Effect::Membership => {
                let (ops, mut ctx) = self.parts(now);
                ops.pump_copies(&mut ctx);
                ops.restart_deferred(&mut ctx);
            }
            Effect::TookOver { supporters, stale } => {
                self.events.takeovers += 1;
                // The map may be behind the slaves until probes settle it: no cached answer.
                self.core.keys.clear_values();
                for idx in self.core.slaves.absent_from(now) {
                    self.members(now).wait_for(idx);
                }
                // Recovering, every slave reports what it holds (counted by the recovery).
                if self.core.doubts.incomplete || stale {
                    let ids: Vec<String> = (supporters.iter())
                        .filter(|(_, s)| s.voted == Some(true) && !s.master)
                        .map(|(_, s)| s.id.clone())
                        .collect();
                    self.core.recover_after_takeover(now, &ids);
                }
                // Recovering, the recovery waits for every slave's report (see take_supporters).
                let recovering = self.core.recovery.is_some();
                self.take_supporters(supporters, recovering, now);
                // Count the voters now: the votes just taken are its lease until renewals.
                // The voters hear the count and the word on stale masters at once: the first
                // write waits for a majority to have it.
                let (voters, told) = self.core.voters(self.ha.standbys());
                let (ha, roles) = self.roles(now);
                ha.announce_voters(voters, told, roles);
                self.core.changed = true;
            }
            // Stopped being primary: answer no client, keep no slave.
            Effect::SteppedDown(why) => {
                // Whatever it held, a newer primary may have changed since.
                self.core.keys.clear_values();
                // A recovery under way ends here, unfinished: its end would serve (and mark
                // the map whole, at the epoch it recovered) on a master that follows another
                // now, whose snapshot alone can make its map whole again.
                self.core.recovery = None;
                for conn in self.core.slaves.mark_all_absent(now) {
                    self.core.peers.close(conn, &mut self.core.out);
                }
                for (conn, _) in self.late_voters.drain() {
                    self.core.peers.close(conn, &mut self.core.out);
                }
                let why = format!("stepped down ({why})");
                self.ops.fail_all(&mut self.core.timers, &why);
            }
            Effect::Synced => {
                let (ops, mut ctx) = self.parts(now);
                ops.release_sync_waiters(&mut ctx);
            }
            Effect::Status { conn, req } => self.ask_status(conn, req),
        }
    }

    /// Elected: the supporters that voted for this master become its slaves (with what they
    /// sent since, their INVENTORY); the others are let go, to register again.
    fn take_supporters(
        &mut self,
        supporters: Vec<(ConnId, crate::supporter::Supporter)>,
        recovering: bool,
        now: Instant,
    ) {
        for (conn, s) in supporters {
            if s.voted.is_none() && s.asked.is_some() && !s.master {
                self.late_voters.insert(conn, s);
                continue;
            }
            self.take_supporter(conn, s, recovering, now);
        }
    }

    /// One supporter of [`Master::take_supporters`], or a late voter's.
    fn take_supporter(
        &mut self,
        conn: ConnId,
        s: crate::supporter::Supporter,
        recovering: bool,
        now: Instant,
    ) {
        // A standby that voted attaches to us as a standby again: it redials.
        if s.voted != Some(true) || s.master {
            self.core.peers.close(conn, &mut self.core.out);
            return;
        }
        // One that says we are out of step reports what it holds whatever we asked.
        let mut reports = s.inventory || s.stale;
        if recovering && !reports {
            // Recovering (another voter said we are out of step), the recovery waits for
            // its report too, which its TAKEOVER did not ask for: a WELCOME asks for it
            // (a registered slave's store takes one as a request to report).
            reports = true;
            let welcome = Body::Welcome {
                epoch: self.core.term.epoch,
                inventory: true,
                standby: false,
                lease_ms: self.core.cfg.lease.as_millis() as u32,
                proof: None,
            };
            self.core.out.send(conn, 0, welcome);
        }
        let idx = self
            .members(now)
            .adopt(conn, &s.id, s.boot, s.seen, reports);
        if let Some(asked) = s.asked {
            self.ha.voted(idx, asked, self.core.cfg.lease);
        }
        for body in s.held {
            if let Body::Inventory { done, entries } = body {
                self.members(now).report(idx, done, entries);
            }
        }
    }

    /// A frame from a supporter whose vote came after this master was elected (see
    /// `late_voters`): a granted VOTE makes it a slave as if it had come in time; a refusal,
    /// or anything but a PING or PONG before the vote, lets it go.
    fn late_vote(&mut self, conn: ConnId, body: Body, now: Instant) {
        let Some(mut s) = self.late_voters.remove(&conn) else {
            return;
        };
        match body {
            Body::Vote {
                granted: true,
                stale,
                ..
            } if self.ha.role() == ServerRole::Primary => {
                log::info!(
                    "supporter '{}' voted after the election: taking it as a slave",
                    s.id
                );
                s.voted = Some(true);
                s.stale |= stale;
                let recovering = self.core.recovery.is_some();
                self.take_supporter(conn, s, recovering, now);
                self.settle(now);
            }
            Body::Ping | Body::Pong => {
                self.late_voters.insert(conn, s);
            }
            _ => {
                self.core.peers.close(conn, &mut self.core.out);
            }
        }
    }

    /// Step down (a peer has seen a higher epoch), and follow `to` (a heartbeat address) or
    /// the other masters.
    fn step_down(&mut self, why: &str, to: Option<SocketAddr>, now: Instant) {
        let (ha, roles) = self.roles(now);
        ha.step_down(why, to, roles);
        self.route_effects(now);
    }

    fn dispatch(&mut self, conn: ConnId, kind: Peer, frame: Frame, now: Instant) {
        match kind {
            Peer::New => {
                if let Some(hello) = self.core.gate().first_frame(conn, frame) {
                    self.on_hello(conn, hello, now);
                }
            }
            Peer::Challenged => {
                if let Some(hello) = self.core.gate().auth(conn, frame) {
                    self.on_hello(conn, hello, now);
                }
            }
            Peer::Client => self.on_client_frame(conn, frame, now),
            Peer::Slave(idx) => self.on_slave_frame(idx, frame.req_id, frame.body, now),
            Peer::Supporter if self.late_voters.contains_key(&conn) => {
                self.late_vote(conn, frame.body, now)
            }
            Peer::Supporter => {
                let (ha, roles) = self.roles(now);
                ha.supporter_frame(conn, frame.body, roles);
                self.route_effects(now);
            }
            Peer::Backup => {
                let (ha, roles) = self.roles(now);
                ha.backup_frame(conn, frame.req_id, frame.body, roles);
            }
            Peer::Primary => {
                // The primary's answer to our STATUS: where it serves clients.
                if let Body::StatusReply(s) = frame.body {
                    self.primary_addr = s.addr;
                    return;
                }
                let (ha, roles) = self.roles(now);
                ha.link_frame(conn, frame.req_id, frame.body, roles);
                // A SYNC may have named new slaves or a new epoch: keep them.
                self.core.changed = true;
                self.ask_primary_addr();
            }
        }
    }

    /// Once per WELCOMEd link, a backup asks its primary for STATUS, to learn the primary's
    /// client address (its own STATUS names it; `--backup-of` is the heartbeat address). Only
    /// once the snapshot is in: the answer costs the primary a pass over its keys, which should
    /// not compete with the snapshot and the heartbeats.
    fn ask_primary_addr(&mut self) {
        let Some(link) = self.ha.following() else {
            return;
        };
        if self.core.doubts.incomplete {
            return;
        }
        if self.asked_on != Some(link) {
            self.asked_on = Some(link);
            // A new link may lead to another primary: name none until it says where it serves.
            self.primary_addr.clear();
            self.core.out.send(link, ASK_PRIMARY_REQ, Body::Status);
        }
    }

    /// `None` while this master may answer clients, else the text of its NOT_PRIMARY.
    fn client_refusal(&self, now: Instant) -> Option<String> {
        let text = self.ha.refusal(&self.core.cfg, now)?;
        Some(self.naming_primary(text))
    }

    /// `text` beginning `primary=ADDR; ` when this master is a standby that knows where its
    /// primary serves clients (its STATUS said), so that a client goes straight there. Not
    /// once it has lost that primary: a client sent to a dead master, whose standby sends it
    /// back, would go round the two and never find the master elected meanwhile.
    fn naming_primary(&self, text: String) -> String {
        let addr = match self.ha.follows_a_live_primary() {
            true => self.primary_addr.parse::<SocketAddr>().ok(),
            false => None,
        };
        match addr.filter(|&a| a != self.core.cfg.listen) {
            Some(addr) => dsm_wire::naming_primary(addr, &text),
            None => text,
        }
    }

    /// A client's request on one key.
    fn on_client_op(&mut self, conn: ConnId, req: u64, body: Request<'_>, now: Instant) {
        // A master that stepped down while recovering is no primary: NOT_PRIMARY (from
        // `refusal`) sends the client on, UNAVAILABLE would keep it here for good.
        let refusal = self.client_refusal(now);
        if let Some(r) = self.core.recovery.as_ref().filter(|_| refusal.is_none()) {
            let reply = Body::error(ErrorCode::Unavailable, r.why(now));
            return self.core.out.send(conn, req, reply);
        }
        let (ops, mut ctx) = self.parts(now);
        ops.on_request(&mut ctx, conn, req, body, refusal);
    }

    /// One page of SCAN, straight from the key map: at most [`SCAN_BUDGET`] positions looked
    /// at, so a page never holds the loop long, whatever the prefix.
    fn scan(&mut self, prefix: &[u8], cursor: u64, limit: u32, now: Instant) -> Body {
        if let Some(text) = self.ha.refusal(&self.core.cfg, now) {
            return Body::error(ErrorCode::NotPrimary, text);
        }
        if let Some(r) = self.core.recovery.as_ref() {
            return Body::error(ErrorCode::Unavailable, r.why(now));
        }
        if self.core.doubts.incomplete {
            let text = "this master took over without its whole map; SCAN waits for it: retry";
            return Body::error(ErrorCode::Unavailable, text);
        }
        let cfg = &self.core.cfg;
        if prefix.len() > cfg.max_key {
            let text = format!("a prefix of {} bytes is over --max-key", prefix.len());
            return Body::error(ErrorCode::TooLarge, text);
        }
        // Keys of up to --max-key bytes each: a page stays inside the frame maximum
        // (--max-value + --max-key + 64 KiB).
        let fits = ((cfg.max_value + 32 * 1024) / (cfg.max_key + 4)).max(1);
        let limit = (limit as usize).clamp(1, SCAN_MAX_KEYS).min(fits);
        let page = self.core.keys.scan(prefix, cursor, limit, SCAN_BUDGET);
        Body::Keys {
            next: page.next,
            keys: page.keys,
        }
    }

    /// A SET, DELETE or INCR; `once`: sent exactly-once (ONCE), by this writer.
    fn on_change(&mut self, conn: ConnId, req: u64, body: Body, once: Option<Sent>, now: Instant) {
        let request = match &body {
            Body::Set {
                key,
                expected,
                value,
            } => Request::Set {
                key,
                expected: *expected,
                value,
                once,
            },
            Body::Delete { key, expected } => Request::Delete {
                key,
                expected: *expected,
                once,
            },
            Body::Incr { key, delta } => Request::Incr {
                key,
                delta: *delta,
                once,
            },
            other => unreachable!("a change of {:?}", other.opcode()),
        };
        self.on_client_op(conn, req, request, now)
    }

    fn on_client_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        let req = frame.req_id;
        match frame.body {
            Body::Write { key, value } => {
                let body = Request::Write {
                    key: &key,
                    value: &value,
                };
                self.on_client_op(conn, req, body, now)
            }
            Body::Read { key } => self.on_client_op(conn, req, Request::Read { key: &key }, now),
            Body::WriteOnce {
                id,
                resent_ms,
                key,
                value,
            } => {
                let body = Request::WriteOnce {
                    id,
                    resent_ms,
                    key: &key,
                    value: &value,
                };
                self.on_client_op(conn, req, body, now)
            }
            Body::VRead { key } => self.on_client_op(conn, req, Request::VRead { key: &key }, now),
            body @ (Body::Set { .. } | Body::Delete { .. } | Body::Incr { .. }) => {
                self.on_change(conn, req, body, None, now)
            }
            Body::Once {
                id,
                resent_ms,
                inner,
            } => self.on_change(conn, req, *inner, Some(Sent { id, resent_ms }), now),
            Body::Scan {
                prefix,
                cursor,
                limit,
            } => {
                let reply = self.scan(&prefix, cursor, limit, now);
                self.core.out.send(conn, req, reply);
            }
            Body::Ping => self.core.out.send(conn, req, Body::Pong),
            Body::Forget { id } => {
                let reply = match (self.ha.is_primary(), self.members(now).forget(&id)) {
                    (false, _) => {
                        let text = self.ha.not_primary_text(&self.core.cfg);
                        Body::error(ErrorCode::NotPrimary, self.naming_primary(text))
                    }
                    (true, Ok(())) => Body::Ok,
                    (true, Err(text)) => Body::error(ErrorCode::BadRequest, text),
                };
                self.core.out.send(conn, req, reply);
            }
            Body::Status => self.ask_status(conn, req),
            other => {
                let text = format!("a client may not send {:?}", other.opcode());
                self.core
                    .out
                    .send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
    }

    /// A HELLO that passed the handshake: register the sender.
    fn on_hello(&mut self, conn: ConnId, hello: Hello, now: Instant) {
        match hello.role {
            Role::Client => {
                let cap = self.core.cfg.max_conns;
                if self.core.peers.clients() >= cap {
                    let text = format!(
                        "too many clients: this master serves at most {cap} at once \
                         (--max-conns); try again later"
                    );
                    return self.core.peers.refuse(
                        conn,
                        hello.req,
                        ErrorCode::Busy,
                        text,
                        &mut self.core.out,
                    );
                }
                self.core.peers.set_kind(conn, Peer::Client);
                let terms = Terms {
                    epoch: self.core.term.epoch,
                    ..Terms::default()
                };
                self.core.gate().welcome(conn, hello.req, terms);
            }
            Role::Slave => self.register_slave(conn, hello, now),
            Role::Backup => self.attach_backup(conn, hello, now),
        }
    }

    fn register_slave(&mut self, conn: ConnId, hello: Hello, now: Instant) {
        // A slave that has seen a higher epoch knows of a newer primary, unless this master
        // restarted and is finding out which epochs were used before (recovery).
        let newer = hello.epoch > self.core.term.epoch && self.core.recovery.is_none();
        if newer && self.ha.is_primary() {
            self.step_down(
                &format!("a slave has seen epoch {}", hello.epoch),
                None,
                now,
            );
        }
        // Limits below ours: it would refuse a STORE we accept, and be dropped over it. A
        // standby refuses it too (it would be its slave after a takeover).
        if let Some(why) = self.core.cfg.slave_limits_refusal(hello.limits) {
            let addr = self.core.peers.addr(conn);
            log::warn!(
                "refusing slave '{}' from {addr}: {why}",
                hello.id.escape_debug()
            );
            let core = &mut self.core;
            let text = format!("refused: {why}");
            return core
                .peers
                .refuse(conn, hello.req, ErrorCode::BadRequest, text, &mut core.out);
        }
        // A standby takes the slave as its supporter: it lost its primary.
        if !hello.id.is_empty() && self.ha.support(conn, &hello.id, hello.boot, hello.epoch) {
            self.core.peers.set_kind(conn, Peer::Supporter);
            let terms = Terms {
                epoch: self.core.term.epoch,
                standby: true,
                ..Terms::default()
            };
            return self.core.gate().welcome(conn, hello.req, terms);
        }
        if let Some((code, text)) = self.slave_refusal(&hello, now) {
            let core = &mut self.core;
            return core
                .peers
                .refuse(conn, hello.req, code, text, &mut core.out);
        }
        if hello.limits.is_some_and(|l| l.masters > 1) && !self.core.unknown_masters {
            log::info!(
                "slave '{}' dials more than one master: counting the slaves as voters from now \
                 on (a standby this master does not know of could be elected by them)",
                hello.id.escape_debug()
            );
            self.core.unknown_masters = true;
        }
        self.members(now)
            .join(conn, hello.req, &hello.id, hello.boot, hello.epoch);
        // A new connection, maybe a new process: it is told the voter count again.
        if let Some(idx) = self.core.slaves.by_id(&hello.id) {
            self.ha.untold(idx);
        }
    }

    /// Why this slave's HELLO is refused, if it is: this master is not the primary, or
    /// another process with the id is connected (the id itself was checked with the HELLO). The same process reconnecting
    /// (same boot) replaces its old connection.
    fn slave_refusal(&mut self, hello: &Hello, now: Instant) -> Option<(ErrorCode, String)> {
        if !self.ha.is_primary() {
            let text = self.ha.not_primary_text(&self.core.cfg);
            return Some((ErrorCode::NotPrimary, text));
        }
        let idx = self.core.slaves.by_id(&hello.id)?;
        let s = self.core.slaves.get(idx);
        match s.state {
            State::Live | State::Joining if s.boot == hello.boot => {
                let why = "it connected again (the old connection is given up)".to_string();
                self.core
                    .effects
                    .push(Effect::DropSlave { slave: idx, why });
                self.route_effects(now);
                None
            }
            State::Live | State::Joining => {
                let text = format!(
                    "a slave with id '{}' is already connected from {} (another process): \
                     give each slave its own --id",
                    hello.id.escape_debug(),
                    s.addr
                );
                log::warn!("refusing a slave HELLO: {text}");
                Some((ErrorCode::BadRequest, text))
            }
            _ => None,
        }
    }

    /// A backup said HELLO on our heartbeat socket.
    fn attach_backup(&mut self, conn: ConnId, hello: Hello, now: Instant) {
        // While recovering, this master's epoch is not settled: a backup that followed it now
        // would take over at the old epoch + 1, which may be the one recovery picks.
        if let Some(r) = self
            .core
            .recovery
            .as_ref()
            .filter(|_| hello.epoch <= self.core.term.epoch)
        {
            let text = r.why(now);
            let (peers, out) = (&mut self.core.peers, &mut self.core.out);
            return peers.refuse(conn, hello.req, ErrorCode::Unavailable, text, out);
        }
        if hello.epoch > self.core.term.epoch {
            let why = format!("master {} has epoch {}", hello.id, hello.epoch);
            let to = crate::ha::heartbeat_of(&hello.id);
            self.step_down(&why, to, now);
        }
        // Another standby that lost the primary, as this one did: its supporter (it votes).
        let (id, boot) = (&hello.id, hello.boot);
        if hello.epoch <= self.core.term.epoch
            && self.ha.support_standby(conn, id, boot, hello.epoch)
        {
            self.core.peers.set_kind(conn, Peer::Supporter);
            let terms = Terms {
                epoch: self.core.term.epoch,
                standby: true,
                ..Terms::default()
            };
            return self.core.gate().welcome(conn, hello.req, terms);
        }
        if !self.ha.is_primary() {
            let text = format!("this master is {}, not a primary", self.ha.role().name());
            let (peers, out) = (&mut self.core.peers, &mut self.core.out);
            return peers.refuse(conn, hello.req, ErrorCode::NotPrimary, text, out);
        }
        if let Some(text) = self.ha.attach_refusal(&hello.id) {
            let addr = self.core.peers.addr(conn);
            log::warn!(
                "refusing backup {} from {addr}: {text}",
                hello.id.escape_debug()
            );
            let (peers, out) = (&mut self.core.peers, &mut self.core.out);
            return peers.refuse(conn, hello.req, ErrorCode::Busy, text, out);
        }
        let terms = Terms {
            epoch: self.core.term.epoch,
            lease_ms: self.core.cfg.lease.as_millis() as u32,
            ..Terms::default()
        };
        self.core.gate().welcome(conn, hello.req, terms);
        let changing: Vec<Box<[u8]>> = self.ops.changing_keys().map(Box::from).collect();
        let (ha, roles) = self.roles(now);
        ha.attach(conn, hello.id, &changing, roles);
        // The standby is a voter from now on: the slaves hear the new count at once, not at the
        // next renewal (a slave that still thinks its primary alone refuses every vote).
        let (voters, told) = self.core.voters(self.ha.standbys());
        let (ha, roles) = self.roles(now);
        ha.announce_voters(voters, told, roles);
    }
}
