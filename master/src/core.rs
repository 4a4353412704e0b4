//! The master as a state machine: frames and timer ticks in, frames and closes out (the outbox).
//! No sockets and no clock reads: `now` is passed in, so tests drive it with a fake clock.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use dsm_net::{TimerId, TimerWheel};
use dsm_wire::{Body, BodyRef, Decoded, ErrorCode, Frame, Role, ServerRole, SlaveStatus, Status};
use log::{info, warn};
use slab::Slab;

use crate::config::Config;
use crate::idmap::{ConnMap, IdMap};
use crate::key::Key;
use crate::keymap::{KeyIndex, SlaveIdx};
pub use crate::slaves::ConnId;
use crate::slaves::SlaveTable;

/// What the event loop must do on the master's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Send(ConnId, Frame),
    /// A STORE or FETCH whose key and value are shared with its operation (see [`Shared`]).
    SendShared(ConnId, Shared),
    /// Close the connection; the master has already forgotten it (no `on_close` follows).
    Close(ConnId),
}

impl Out {
    /// The frame to send, with a shared body copied out (for tests and tools that want one
    /// kind of frame); `None` for a close.
    pub fn into_frame(self) -> Option<(ConnId, Frame)> {
        match self {
            Out::Send(conn, frame) => Some((conn, frame)),
            Out::SendShared(conn, shared) => Some((conn, shared.to_frame())),
            Out::Close(_) => None,
        }
    }
}

/// A STORE or FETCH that borrows its key and value from the operation that sends it, so a
/// write to R replicas keeps one copy of each instead of R, and the event loop encodes it
/// straight into the connection's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    Store {
        req_id: u64,
        epoch: u64,
        version: u64,
        key: Key,
        value: Rc<[u8]>,
    },
    Fetch {
        req_id: u64,
        epoch: u64,
        key: Key,
    },
}

impl Shared {
    /// The request id and the borrowed body to encode.
    pub fn as_ref(&self) -> (u64, BodyRef<'_>) {
        match self {
            Shared::Store {
                req_id,
                epoch,
                version,
                key,
                value,
            } => (
                *req_id,
                BodyRef::Store {
                    epoch: *epoch,
                    version: *version,
                    key,
                    value,
                },
            ),
            Shared::Fetch { req_id, epoch, key } => {
                (*req_id, BodyRef::Fetch { epoch: *epoch, key })
            }
        }
    }

    pub fn to_frame(&self) -> Frame {
        let (req_id, body) = self.as_ref();
        Frame::new(req_id, body.to_body())
    }
}

pub(crate) type OpId = usize;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    /// Connected, HELLO not yet seen.
    New,
    /// Sent a HELLO with a nonce and got our CHALLENGE: its AUTH is due.
    Challenged,
    Client,
    Slave(SlaveIdx),
    Backup,
    /// The link this master opened to the primary's heartbeat socket.
    Primary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The STORE sent as this sub-request was not ACKed in time.
    Ack(u64),
    /// The READ has had no usable answer for `read_retry`: ask again.
    ReadRetry(OpId),
    /// The client request has reached its deadline.
    Deadline(OpId),
    /// Periodic: PING idle slaves, drop the silent ones.
    PingSweep,
    /// Periodic on a backup: poll the primary, take over when it is silent.
    Heartbeat,
    /// After a takeover: stop waiting for slaves known from the old primary.
    GraceEnd,
    /// The connection has not finished its HELLO in time (still `New` or `Challenged`).
    Hello(ConnId, u64),
}

pub(crate) struct PeerState {
    pub kind: Peer,
    pub serial: u64,
    pub addr: String,
    /// The handshake under way, until WELCOME is sent.
    pub auth: Option<Box<crate::handshake::Pending>>,
}

/// A request the master sent to a slave on behalf of a client operation.
#[derive(Debug)]
pub(crate) struct Sub {
    pub op: OpId,
    pub slave: SlaveIdx,
    pub timer: Option<TimerId>,
}

pub struct Master {
    pub(crate) cfg: Config,
    pub(crate) role: ServerRole,
    pub(crate) ha: crate::ha::Ha,
    pub(crate) epoch: u64,
    pub(crate) next_version: u64,
    pub(crate) next_sub: u64,
    pub(crate) peers: ConnMap<PeerState>,
    /// Distinguishes successive connections that reuse one `ConnId` (for HELLO deadlines).
    pub(crate) conn_serial: u64,
    pub(crate) slaves: SlaveTable,
    pub(crate) keys: KeyIndex,
    pub(crate) ops: Slab<crate::ops::Op>,
    /// Per key, the client operations not yet answered, in arrival order.
    pub(crate) queues: IdMap<crate::ops::QueueKey, crate::ops::KeyQueue>,
    pub(crate) subs: IdMap<u64, Sub>,
    pub(crate) timers: TimerWheel<Timer>,
    pub(crate) out: Vec<Out>,
    pub(crate) read_rr: usize,
    /// Keys waiting for a re-replication copy.
    pub(crate) repair_queue: VecDeque<Key>,
    pub(crate) repairs_active: usize,
    pub(crate) repair_bytes: usize,
    pub(crate) repairs_done: usize,
    /// Scratch lists for `advance`, kept to save two allocations per request.
    pub(crate) scratch_finished: Vec<OpId>,
    pub(crate) scratch_start: Vec<OpId>,
    /// Buffers of VALUE replies already written, for the next FETCHED answers to reuse (see
    /// [`Master::recycle`]).
    value_pool: Vec<Vec<u8>>,
    /// Slaves sent a FETCH since the event loop last wrote its buffers ([`Master::end_turn`]).
    pub(crate) turn_targets: Vec<SlaveIdx>,
    /// Per connection id: client operations taken and not yet answered (see [`Master::owes`]).
    pub(crate) owed: Vec<u32>,
}

impl Master {
    pub fn new(cfg: Config, now: Instant) -> Master {
        let mut timers = TimerWheel::new(now, std::time::Duration::from_millis(1), 4096);
        timers.insert(now + cfg.ping_interval, Timer::PingSweep);
        let mut m = Master {
            cfg,
            role: ServerRole::Primary,
            ha: crate::ha::Ha::default(),
            epoch: 1,
            next_version: crate::ha::first_version(1),
            next_sub: 1,
            peers: ConnMap::default(),
            conn_serial: 0,
            slaves: SlaveTable::default(),
            keys: KeyIndex::default(),
            ops: Slab::new(),
            queues: IdMap::default(),
            subs: IdMap::default(),
            timers,
            out: Vec::new(),
            read_rr: 0,
            repair_queue: VecDeque::new(),
            repairs_active: 0,
            repair_bytes: 0,
            repairs_done: 0,
            scratch_finished: Vec::new(),
            scratch_start: Vec::new(),
            value_pool: Vec::new(),
            turn_targets: Vec::new(),
            owed: Vec::new(),
        };
        m.init_ha(now);
        m
    }

    /// Everything the master wants sent or closed since the last call.
    pub fn drain_out(&mut self, into: &mut Vec<Out>) {
        self.flush_sync();
        into.append(&mut self.out);
    }

    /// Whether the connection has requests in progress here whose replies are still to come:
    /// the event loop may then hold the replies it has, to write them together (`server.rs`).
    pub fn owes(&self, conn: ConnId) -> bool {
        self.owed.get(conn).is_some_and(|&n| n > 0)
    }

    /// When `on_tick` next has work; feeds the poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// A connection was accepted from `addr`; it has `hello_timeout` to say HELLO.
    pub fn on_connect(&mut self, conn: ConnId, addr: String, now: Instant) {
        if self.owed.len() <= conn {
            self.owed.resize(conn + 1, 0);
        }
        self.owed[conn] = 0;
        self.conn_serial += 1;
        let serial = self.conn_serial;
        self.peers.insert(
            conn,
            PeerState {
                kind: Peer::New,
                serial,
                addr,
                auth: None,
            },
        );
        self.timers
            .insert(now + self.cfg.hello_timeout, Timer::Hello(conn, serial));
    }

    /// The connection closed (or the event loop closed it for a transport reason).
    pub fn on_close(&mut self, conn: ConnId, now: Instant) {
        match self.peers.remove(&conn).map(|p| p.kind) {
            Some(Peer::Client) => self.orphan_ops(conn),
            Some(Peer::Slave(idx)) => self.drop_slave(idx, "its connection closed", now),
            Some(Peer::Backup) => self.on_backup_closed(conn, now),
            Some(Peer::Primary) => self.on_link_closed(now),
            Some(Peer::New | Peer::Challenged) | None => {}
        }
    }

    pub fn on_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        match peer.kind {
            Peer::New => self.on_first_frame(conn, frame, now),
            Peer::Challenged => self.on_auth(conn, frame, now),
            Peer::Client => self.on_client_frame(conn, frame, now),
            Peer::Slave(idx) => self.on_slave_frame(idx, frame, now),
            Peer::Backup => self.on_backup_frame(conn, frame.req_id, frame.body, now),
            Peer::Primary => self.on_primary_frame(conn, frame.req_id, frame.body, now),
        }
    }

    /// The event loop has written out everything the master handed it: a FETCH from now on
    /// goes out in a new write, so no slave counts as already woken by this turn's sends.
    pub fn end_turn(&mut self) {
        self.turn_targets.clear();
    }

    pub fn on_tick(&mut self, now: Instant) {
        let mut fired = Vec::new();
        self.timers.expired(now, &mut fired);
        for t in fired {
            match t {
                Timer::Ack(sub) => self.on_ack_timeout(sub, now),
                Timer::ReadRetry(op) => self.on_read_retry(op, now),
                Timer::Deadline(op) => self.on_deadline(op, now),
                Timer::PingSweep => self.ping_sweep(now),
                Timer::Heartbeat => self.on_heartbeat_timer(now),
                Timer::GraceEnd => self.on_grace_end(now),
                Timer::Hello(conn, serial) => {
                    let waiting = self.peers.get(&conn).is_some_and(|p| {
                        p.serial == serial && matches!(p.kind, Peer::New | Peer::Challenged)
                    });
                    if waiting {
                        warn!("connection {conn} did not finish its HELLO in time; closing it");
                        self.peers.remove(&conn);
                        self.out.push(Out::Close(conn));
                    }
                }
            }
        }
        self.check_backup_silence(now);
        self.pump_repairs(now);
    }

    /// Open a sub-request of op `id` to `slave`; `ack_deadline` drops the slave if no ACK comes
    /// by then. Returns the request id to send it with.
    pub(crate) fn new_sub(
        &mut self,
        id: OpId,
        slave: SlaveIdx,
        ack_deadline: Option<Instant>,
    ) -> u64 {
        let sub = self.next_sub;
        self.next_sub += 1;
        let timer = ack_deadline.map(|at| self.timers.insert(at, Timer::Ack(sub)));
        self.subs.insert(
            sub,
            Sub {
                op: id,
                slave,
                timer,
            },
        );
        sub
    }

    pub(crate) fn send(&mut self, conn: ConnId, req_id: u64, body: Body) {
        self.out.push(Out::Send(conn, Frame::new(req_id, body)));
    }

    pub(crate) fn refuse_conn(&mut self, conn: ConnId, req_id: u64, code: ErrorCode, text: String) {
        warn!("closing connection {conn}: {text}");
        self.send(conn, req_id, Body::error(code, text));
        self.peers.remove(&conn);
        self.out.push(Out::Close(conn));
    }

    pub(crate) fn set_peer_kind(&mut self, conn: ConnId, kind: Peer) {
        if let Some(p) = self.peers.get_mut(&conn) {
            p.kind = kind;
        }
    }

    /// A HELLO that passed the handshake (see `handshake.rs`): register the sender.
    pub(crate) fn on_hello(
        &mut self,
        conn: ConnId,
        req: u64,
        role: Role,
        epoch: u64,
        id: String,
        now: Instant,
    ) {
        match role {
            Role::Client => {
                self.set_peer_kind(conn, Peer::Client);
                self.welcome(conn, req, false);
            }
            Role::Slave => {
                if epoch > self.epoch {
                    self.fence_self(&format!("a slave has seen epoch {epoch}"), now);
                }
                if self.role != ServerRole::Primary {
                    let text = self.not_primary_text();
                    return self.refuse_conn(conn, req, ErrorCode::NotPrimary, text);
                }
                if id.is_empty() {
                    let text = "a slave HELLO needs a non-empty id".to_string();
                    return self.refuse_conn(conn, req, ErrorCode::BadRequest, text);
                }
                if let Some(old) = self.slaves.live_by_id(&id) {
                    self.drop_slave(old, "the same id registered again", now);
                }
                let addr = self
                    .peers
                    .get(&conn)
                    .map(|p| p.addr.clone())
                    .unwrap_or_default();
                // A slave the old primary used keeps its data; any other starts empty.
                let (idx, reset) = match self.slaves.awaiting_by_id(&id) {
                    Some(idx) => {
                        self.slaves.activate(idx, conn, addr.clone(), now);
                        (idx, false)
                    }
                    None => (self.slaves.register(&id, addr.clone(), conn, now), true),
                };
                self.sync_event(dsm_wire::SyncEvent::SlaveUp { id: id.clone() });
                self.set_peer_kind(conn, Peer::Slave(idx));
                info!(
                    "slave '{id}' registered from {addr} ({} live)",
                    self.slaves.live_count()
                );
                // WELCOME first: a slave takes nothing from the master before it, and the
                // copies and restarted writes below may send this very slave a FETCH or STORE.
                self.welcome(conn, req, reset);
                // Keys left with fewer than R copies while slaves were missing get them now.
                self.schedule_repairs();
                self.pump_repairs(now);
                if !reset {
                    self.restart_deferred(now);
                }
            }
            Role::Backup => self.attach_backup(conn, req, epoch, now),
        }
    }

    /// [`Master::on_frame`] for a frame decoded by [`dsm_wire::decode_borrowed`]: a client's
    /// READ or WRITE is taken straight from the read buffer (its key and value are copied once,
    /// into the operation); everything else goes the owned way.
    pub fn on_decoded(&mut self, conn: ConnId, decoded: Decoded<'_>, now: Instant) {
        match (decoded, self.peers.get(&conn).map(|p| p.kind)) {
            (
                Decoded::Ref(req, body @ (BodyRef::Read { .. } | BodyRef::Write { .. })),
                Some(Peer::Client),
            ) => self.on_client_op(conn, req, body, now),
            // A slave's answer to a READ: its value goes into a reused buffer, which the VALUE
            // reply carries to the client and `recycle` gives back.
            (Decoded::Ref(req, BodyRef::Fetched { version, value }), Some(Peer::Slave(idx))) => {
                let mut buf = self.value_pool.pop().unwrap_or_default();
                buf.extend_from_slice(value);
                let body = Body::Fetched {
                    version,
                    value: buf,
                };
                self.on_slave_frame(idx, Frame::new(req, body), now)
            }
            (decoded, _) => self.on_frame(conn, decoded.into_frame(), now),
        }
    }

    /// Take back a frame's buffer once the event loop has written it: a VALUE reply's value
    /// becomes the buffer of a later FETCHED answer. In a burst of reads the allocator's
    /// per-size cache overflows, and an allocation and a free per READ cost the master more
    /// than the copy into the reused buffer.
    pub fn recycle(&mut self, out: Out) {
        const MAX_POOLED: usize = 1024;
        const MAX_POOLED_BYTES: usize = 4096;
        if let Out::Send(
            _,
            Frame {
                body: Body::Value { mut value },
                ..
            },
        ) = out
        {
            if self.value_pool.len() < MAX_POOLED && value.capacity() <= MAX_POOLED_BYTES {
                value.clear();
                self.value_pool.push(value);
            }
        }
    }

    /// A client's READ or WRITE (`body` is one of the two).
    fn on_client_op(&mut self, conn: ConnId, req: u64, body: BodyRef<'_>, now: Instant) {
        // Not the primary, or a primary that has lost its lease (its backup may be taking
        // over): refuse at once so the client moves on instead of waiting for a deadline.
        if !self.lease_ok(now) {
            let text = self.not_primary_text();
            return self.send(conn, req, Body::error(ErrorCode::NotPrimary, text));
        }
        let (key, value) = match body {
            BodyRef::Read { key } => (key, None),
            BodyRef::Write { key, value } => (key, Some(value)),
            other => unreachable!("on_client_op with {:?}", other.opcode()),
        };
        if let Some((code, text)) = self.check_sizes(key, value) {
            return self.send(conn, req, Body::error(code, text));
        }
        self.submit(conn, req, key, value, now);
    }

    fn on_client_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        let req = frame.req_id;
        match frame.body {
            Body::Write { key, value } => self.on_client_op(
                conn,
                req,
                BodyRef::Write {
                    key: &key,
                    value: &value,
                },
                now,
            ),
            Body::Read { key } => self.on_client_op(conn, req, BodyRef::Read { key: &key }, now),
            Body::Ping => self.send(conn, req, Body::Pong),
            Body::Status => {
                let status = self.status();
                self.send(conn, req, Body::StatusReply(status));
            }
            other => {
                let text = format!("a client may not send {:?}", other.opcode());
                self.send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
    }

    /// Why a key or value cannot be taken, with the error code to answer.
    fn check_sizes(&self, key: &[u8], value: Option<&[u8]>) -> Option<(ErrorCode, String)> {
        if key.is_empty() {
            return Some((ErrorCode::BadRequest, "the key is empty".into()));
        }
        if key.len() > self.cfg.max_key {
            let text = format!(
                "key of {} bytes is over the limit of {} bytes",
                key.len(),
                self.cfg.max_key
            );
            return Some((ErrorCode::TooLarge, text));
        }
        match value {
            Some(v) if v.len() > self.cfg.max_value => {
                let text = format!(
                    "value of {} bytes is over the limit of {} bytes",
                    v.len(),
                    self.cfg.max_value
                );
                Some((ErrorCode::TooLarge, text))
            }
            _ => None,
        }
    }

    fn on_slave_frame(&mut self, idx: SlaveIdx, frame: Frame, now: Instant) {
        {
            let s = self.slaves.get_mut(idx);
            s.last_heard = now;
            s.unanswered_pings = 0;
        }
        let req = frame.req_id;
        match frame.body {
            Body::Ack { version } => self.on_ack(req, idx, version, now),
            Body::Fetched { version, value } => {
                self.on_fetched(req, idx, Some((version, value)), now)
            }
            Body::NotFound => self.on_fetched(req, idx, None, now),
            Body::Pong => {}
            Body::Error { code, text } => {
                warn!(
                    "slave '{}' answered request {req} with {}: {text}",
                    self.slaves.get(idx).id,
                    code.name()
                );
                self.on_sub_failed(req, now);
            }
            other => {
                let text = format!("a slave may not send {:?}", other.opcode());
                let conn = self.slaves.get(idx).conn;
                self.send(conn, req, Body::error(ErrorCode::BadRequest, text));
            }
        }
    }

    /// Declare a slave dead: close it, forget it as a holder, and re-route its pending work.
    pub(crate) fn drop_slave(&mut self, idx: SlaveIdx, why: &str, now: Instant) {
        if !self.slaves.is_live(idx) {
            return;
        }
        let (conn, id) = {
            let s = self.slaves.get_mut(idx);
            s.live = false;
            (s.conn, s.id.clone())
        };
        self.sync_event(dsm_wire::SyncEvent::SlaveDown { id: id.clone() });
        warn!(
            "slave '{id}' dropped: {why} ({} live left)",
            self.slaves.live_count()
        );
        if self.peers.remove(&conn).is_some() {
            self.out.push(Out::Close(conn));
        }
        let mut failed: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| s.slave == idx)
            .map(|(&id, _)| id)
            .collect();
        failed.sort_unstable();
        for sub in failed {
            self.on_sub_failed(sub, now);
        }
        self.schedule_repairs();
        self.pump_repairs(now);
    }

    fn on_ack_timeout(&mut self, sub: u64, now: Instant) {
        let Some(s) = self.subs.get_mut(&sub) else {
            return;
        };
        s.timer = None;
        let slave = s.slave;
        // A slave answers in order, so one still answering is behind, not dead: give it until
        // `ack_timeout` after the last thing it said (the request's deadline still bounds the
        // write). Dropping slow slaves under load only made the remaining ones slower.
        let quiet_until = self.slaves.get(slave).last_heard + self.cfg.ack_timeout;
        if now < quiet_until {
            let t = self.timers.insert(quiet_until, Timer::Ack(sub));
            if let Some(s) = self.subs.get_mut(&sub) {
                s.timer = Some(t);
            }
            return;
        }
        let why = format!(
            "no ACK within {} ms and nothing heard since",
            self.cfg.ack_timeout.as_millis()
        );
        self.drop_slave(slave, &why, now);
    }

    fn ping_sweep(&mut self, now: Instant) {
        let interval = self.cfg.ping_interval;
        let mut silent = Vec::new();
        let mut to_ping = Vec::new();
        for (idx, s) in self.slaves.live() {
            if s.unanswered_pings >= 3 {
                silent.push(idx);
            } else if now.saturating_duration_since(s.last_heard) >= interval {
                to_ping.push(idx);
            }
        }
        for idx in silent {
            self.drop_slave(idx, "3 PINGs unanswered", now);
        }
        for idx in to_ping {
            let conn = {
                let s = self.slaves.get_mut(idx);
                s.unanswered_pings += 1;
                s.conn
            };
            self.send(conn, 0, Body::Ping);
        }
        self.timers.insert(now + interval, Timer::PingSweep);
    }

    pub fn status(&self) -> Status {
        // One pass over the key map: per-slave counts and under-replication are derived here
        // rather than kept up to date on every write.
        // Short of R live copies, also when fewer than R slaves are live to hold them.
        let want = self.cfg.replicas;
        let mut per_slave: HashMap<SlaveIdx, u64> = HashMap::new();
        let mut under = 0;
        for (_, e) in self.keys.iter() {
            let mut live = 0;
            for &h in e.holders.iter().filter(|&&h| self.slaves.is_live(h)) {
                live += 1;
                *per_slave.entry(h).or_default() += 1;
            }
            if live < want {
                under += 1;
            }
        }
        Status {
            role: self.role,
            epoch: self.epoch,
            replicas: self.cfg.replicas as u16,
            keys: self.keys.len() as u64,
            under_replicated: under as u64,
            slaves: self
                .slaves
                .latest_per_id()
                .into_iter()
                .map(|(idx, s)| SlaveStatus {
                    id: s.id.clone(),
                    addr: s.addr.clone(),
                    live: s.live,
                    keys: per_slave.get(&idx).copied().unwrap_or(0),
                })
                .collect(),
        }
    }

    /// Client operations and slave sub-requests still open: both are 0 on a quiet master,
    /// whatever failed on the way (tests check nothing leaks).
    pub fn in_flight(&self) -> (usize, usize) {
        (self.ops.len(), self.subs.len())
    }
}
