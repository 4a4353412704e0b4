//! Faults: links cut and nodes isolated (nothing crosses; what was sent waits, as TCP would
//! retransmit it, and arrives in order after `heal`), nodes frozen (SIGSTOP), frames dropped
//! for good by a predicate, and delays per direction.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dsm_wire::{decode_with_max, Frame};

use super::conns::Packet;
use super::net::{Net, NodeId};

/// A frame about to be sent, for [`Net::drop_if`].
pub struct Msg<'a> {
    pub from: NodeId,
    pub to: NodeId,
    pub frame: &'a Frame,
}

type DropRule = Box<dyn Fn(&Msg) -> bool>;

#[derive(Default)]
pub(super) struct Faults {
    cuts: HashSet<(NodeId, NodeId)>,
    isolated: HashSet<NodeId>,
    drops: Vec<DropRule>,
    delays: HashMap<(NodeId, NodeId), Duration>,
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Faults {
    /// Whether nothing crosses between `a` and `b`.
    pub fn severed(&self, a: NodeId, b: NodeId) -> bool {
        self.cuts.contains(&pair(a, b)) || self.isolated.contains(&a) || self.isolated.contains(&b)
    }

    /// Whether a rule drops this frame.
    pub fn drops(&self, from: NodeId, to: NodeId, bytes: &[u8]) -> bool {
        if self.drops.is_empty() {
            return false;
        }
        let (frame, _) = decode_with_max(bytes, u32::MAX as usize)
            .expect("a valid frame")
            .expect("a whole frame");
        let msg = Msg {
            from,
            to,
            frame: &frame,
        };
        self.drops.iter().any(|rule| rule(&msg))
    }

    pub fn delay(&self, from: NodeId, to: NodeId) -> Duration {
        self.delays.get(&(from, to)).copied().unwrap_or_default()
    }
}

impl Net {
    /// Nothing crosses between `a` and `b`, either way, until [`Net::heal`]; neither is told.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.faults.cuts.insert(pair(a, b));
    }

    /// Cut `n` from every other node.
    pub fn isolate(&mut self, n: NodeId) {
        self.faults.isolated.insert(n);
    }

    /// End every cut and isolation; what waited is delivered, in order.
    pub fn heal(&mut self) {
        self.faults.cuts.clear();
        self.faults.isolated.clear();
        self.release();
    }

    /// SIGSTOP: `n` is not ticked, and what is sent to it waits (its socket buffers).
    pub fn freeze(&mut self, n: NodeId) {
        self.nodes[n.0].frozen = true;
    }

    /// SIGCONT: `n` reads what waited for it (with no timer fired first) and runs again.
    pub fn thaw(&mut self, n: NodeId) {
        self.nodes[n.0].frozen = false;
        self.release();
    }

    /// Frames for which `rule` holds are lost for good, from now until [`Net::stop_dropping`]
    /// (the sender dies before they leave: TCP loses nothing else).
    pub fn drop_if(&mut self, rule: impl Fn(&Msg) -> bool + 'static) {
        self.faults.drops.push(Box::new(rule));
    }

    pub fn stop_dropping(&mut self) {
        self.faults.drops.clear();
    }

    /// Frames from `from` to `to` sent from now on arrive `d` later (and in order).
    pub fn delay(&mut self, from: NodeId, to: NodeId, d: Duration) {
        self.faults.delays.insert((from, to), d);
    }

    /// Whether `packet` must wait: its ends are cut apart, or its receiver is frozen.
    pub(super) fn blocked(&self, packet: &Packet) -> bool {
        let ends = &self.conns[packet.conn.0].ends;
        let (from, to) = (ends[1 - packet.to].node, ends[packet.to].node);
        self.nodes[to.0].frozen || self.faults.severed(from, to)
    }

    /// Put what no longer waits back in line, due now and in its original order, then carry it.
    fn release(&mut self) {
        for (key, packet) in std::mem::take(&mut self.held) {
            if self.blocked(&packet) {
                self.held.push((key, packet));
            } else {
                let (_, seq) = key;
                self.queue.insert((self.now, seq), packet);
            }
        }
        self.settle();
    }
}
