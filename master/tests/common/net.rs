//! The simulated network's state and its clock: nodes, connections, what is in flight, and the
//! turns that carry it (`settle` at the current instant, `advance` 1 ms at a time).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_master::{Master, Out};

use super::conns::{Carry, Conn, Packet, Wire};
use super::faults::Faults;
use super::log::Sent;
use super::peer::Peer;

const STEP: Duration = Duration::from_millis(1);
/// Turns at one instant before `settle` gives up: frames that never stop moving are a bug.
const MAX_TURNS: usize = 100_000;

/// A node of the simulation: a master, or a peer a test plays (slave, client, stranger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub(super) usize);

pub(super) struct MasterNode {
    pub m: Master,
    pub heartbeat: SocketAddr,
    pub max_frame: usize,
    /// The link this master opened to another's heartbeat socket (the reactor's `link`).
    pub link: Option<Conn>,
    pub links_opened: usize,
}

pub(super) enum Kind {
    Master(Box<MasterNode>),
    Peer(Box<Peer>),
}

pub(super) struct Node {
    pub name: String,
    pub kind: Kind,
    /// False once killed.
    pub up: bool,
    /// SIGSTOPped: not ticked, and what is sent to it waits until it resumes.
    pub frozen: bool,
    /// The connection in each slot: a master's `ConnId` is its slot (the reactor's slab key).
    pub slots: Vec<Option<Conn>>,
}

/// Masters, slaves and test-played peers on connections that carry encoded frames, with an
/// injected clock. Frames are delivered in send order with no delay unless a test sets one.
pub struct Net {
    pub(super) now: Instant,
    pub(super) nodes: Vec<Node>,
    pub(super) conns: Vec<Wire>,
    /// In flight, by (due, send order).
    pub(super) queue: BTreeMap<(Instant, u64), Packet>,
    /// Came due across a cut or to a frozen node: delivered, in order, once that ends.
    pub(super) held: Vec<((Instant, u64), Packet)>,
    pub(super) seq: u64,
    pub(super) faults: Faults,
    pub(super) log: Vec<Sent>,
    /// The masters' outboxes are drained into this (kept for its allocation, as the reactor).
    pub(super) outs: Vec<Out>,
    /// The master addresses the slaves added from now on say they dial (HELLO), 1 unless a
    /// test says otherwise.
    pub slave_masters: u16,
}

impl Default for Net {
    fn default() -> Net {
        Net::new()
    }
}

impl Net {
    pub fn new() -> Net {
        Net {
            now: Instant::now(),
            nodes: Vec::new(),
            conns: Vec::new(),
            queue: BTreeMap::new(),
            held: Vec::new(),
            seq: 0,
            faults: Faults::default(),
            log: Vec::new(),
            outs: Vec::new(),
            slave_masters: 1,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Let `d` pass, 1 ms at a time, so timers fire in order. Each step is a turn of every
    /// running node as the reactor takes it (open a wanted link, deliver what is due, tick,
    /// end the turn), then the turns that carry the answers at that instant.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += STEP;
            self.open_links();
            self.turn(true);
            self.settle();
        }
    }

    /// Carry frames at the current instant, turn by turn, until none is due. No timer fires.
    pub fn settle(&mut self) {
        for _ in 0..MAX_TURNS {
            self.open_links();
            if !self.has_due() {
                return;
            }
            self.turn(false);
        }
        panic!("frames still moving after {MAX_TURNS} turns at one instant");
    }

    /// Frames due now, or a master walking its key map (a census pass goes on turn by turn,
    /// as the event loop does not sleep during one).
    fn has_due(&self) -> bool {
        self.queue
            .first_key_value()
            .is_some_and(|(k, _)| k.0 <= self.now)
            || (self.running_masters().into_iter()).any(|n| self.master_node(n).m.census_busy())
    }

    /// Deliver everything due now, in send order (what a delivery sends is due in the next
    /// turn); tick the running masters if asked; end their turns.
    fn turn(&mut self, tick: bool) {
        let later = self
            .queue
            .split_off(&(self.now + Duration::from_nanos(1), 0));
        let due = std::mem::replace(&mut self.queue, later);
        for (key, packet) in due {
            self.deliver(key, packet);
        }
        let now = self.now;
        for n in self.running_masters() {
            if tick {
                self.master_node_mut(n).m.on_tick(now);
                self.drain(n);
            }
            // A slice of the key map per turn, as the event loop walks it: STATUS waits for
            // a pass.
            if self.master_node_mut(n).m.census_step() {
                self.drain(n);
            }
            self.master_node_mut(n).m.end_turn();
        }
    }

    /// Queue `carry` from end `from` of `conn` to the other end.
    pub(super) fn enqueue(&mut self, conn: Conn, from: usize, carry: Carry) {
        let to = 1 - from;
        let (src, dst) = {
            let ends = &self.conns[conn.0].ends;
            (ends[from].node, ends[to].node)
        };
        if let Carry::Bytes(bytes) = &carry {
            if self.faults.drops(src, dst, bytes) {
                return;
            }
            self.log.push(Sent {
                from: src,
                to: dst,
                bytes: bytes.clone(),
            });
        }
        let w = &mut self.conns[conn.0];
        let due = (self.now + self.faults.delay(src, dst)).max(w.last_due[to]);
        w.last_due[to] = due;
        self.seq += 1;
        self.queue
            .insert((due, self.seq), Packet { conn, to, carry });
    }

    /// Masters that run: up and not frozen.
    pub(super) fn running_masters(&self) -> Vec<NodeId> {
        (0..self.nodes.len())
            .map(NodeId)
            .filter(|&n| {
                let node = &self.nodes[n.0];
                node.up && !node.frozen && matches!(node.kind, Kind::Master(_))
            })
            .collect()
    }

    pub(super) fn master_node(&self, n: NodeId) -> &MasterNode {
        match &self.nodes[n.0].kind {
            Kind::Master(mn) => mn,
            Kind::Peer(_) => panic!("{} is not a master", self.nodes[n.0].name),
        }
    }

    pub(super) fn master_node_mut(&mut self, n: NodeId) -> &mut MasterNode {
        let node = &mut self.nodes[n.0];
        match &mut node.kind {
            Kind::Master(mn) => mn,
            Kind::Peer(_) => panic!("{} is not a master", node.name),
        }
    }

    pub(super) fn peer_mut(&mut self, n: NodeId) -> &mut Peer {
        let node = &mut self.nodes[n.0];
        match &mut node.kind {
            Kind::Peer(p) => p,
            Kind::Master(_) => panic!("{} is a master", node.name),
        }
    }
}
