//! Connections: two ends, each a node and the slot it knows the connection by (for a master,
//! its `ConnId`), handed out as the reactor's slab hands out keys: the lowest free slot.

use std::time::Instant;

use super::net::{Kind, Net, NodeId};

/// One connection of the simulation (never reused, unlike the slots at its ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conn(pub(super) usize);

pub(super) struct End {
    pub node: NodeId,
    /// The slot at this end; `None` on the accepting end until its OPEN arrives.
    pub slot: Option<usize>,
    pub open: bool,
}

/// `ends[0]` connected to `ends[1]` (which accepted).
pub(super) struct Wire {
    pub ends: [End; 2],
    /// The end that closed it first: `None` while open, and after [`Net::close`].
    pub closed_by: Option<NodeId>,
    /// Per receiving end, the latest due time queued towards it: frames on one direction
    /// never overtake each other, whatever their delays (TCP).
    pub last_due: [Instant; 2],
}

/// What travels towards one end of a connection.
pub(super) struct Packet {
    pub conn: Conn,
    pub to: usize,
    pub carry: Carry,
}

pub(super) enum Carry {
    /// The connection reaches the accepting master (`on_connect`).
    Open,
    /// One encoded frame.
    Bytes(Vec<u8>),
    /// The other end closed (FIN or RST).
    Close,
}

impl Net {
    /// A new connection from `from` to `to`: a slot at `from` now, `to` accepts when the OPEN
    /// arrives (queued like any frame, so a cut or a frozen node holds it).
    pub(super) fn open_conn(&mut self, from: NodeId, to: NodeId) -> Conn {
        let conn = Conn(self.conns.len());
        let end = |node| End {
            node,
            slot: None,
            open: true,
        };
        self.conns.push(Wire {
            ends: [end(from), end(to)],
            closed_by: None,
            last_due: [self.now; 2],
        });
        let slot = self.take_slot(from, conn);
        self.conns[conn.0].ends[0].slot = Some(slot);
        self.enqueue(conn, 0, Carry::Open);
        conn
    }

    pub(super) fn take_slot(&mut self, node: NodeId, conn: Conn) -> usize {
        let slots = &mut self.nodes[node.0].slots;
        match slots.iter().position(Option::is_none) {
            Some(free) => {
                slots[free] = Some(conn);
                free
            }
            None => {
                slots.push(Some(conn));
                slots.len() - 1
            }
        }
    }

    /// The connection in `node`'s `slot`, if that slot is in use.
    pub(super) fn at_slot(&self, node: NodeId, slot: usize) -> Option<Conn> {
        self.nodes[node.0].slots.get(slot).copied().flatten()
    }

    /// The node at the other end of `conn` from `node`.
    pub(super) fn other_end(&self, conn: Conn, node: NodeId) -> NodeId {
        self.conns[conn.0].ends[1 - self.end_of(conn, node)].node
    }

    /// Which end of `conn` is `node`'s.
    pub(super) fn end_of(&self, conn: Conn, node: NodeId) -> usize {
        usize::from(self.conns[conn.0].ends[0].node != node)
    }

    /// Close end `e` of `conn`, as its node does: the slot is freed, the other end hears of it
    /// after the frames already on their way. `tell`: the node did not ask for it (a bad frame,
    /// the other end's close), so a master gets `on_close` (a peer notes it).
    pub(super) fn close_end(&mut self, conn: Conn, e: usize, tell: bool) {
        let Some((node, slot)) = self.shut_end(conn, e) else {
            return;
        };
        let w = &mut self.conns[conn.0];
        w.closed_by.get_or_insert(node);
        if w.ends[1 - e].open {
            self.enqueue(conn, e, Carry::Close);
        }
        if tell {
            self.tell_closed(node, slot);
        }
    }

    /// Mark end `e` closed and free its slot; what it was, if it was open.
    pub(super) fn shut_end(&mut self, conn: Conn, e: usize) -> Option<(NodeId, Option<usize>)> {
        let end = &mut self.conns[conn.0].ends[e];
        if !end.open {
            return None;
        }
        end.open = false;
        let (node, slot) = (end.node, end.slot);
        if let Some(s) = slot {
            self.nodes[node.0].slots[s] = None;
        }
        if let Kind::Master(mn) = &mut self.nodes[node.0].kind {
            if mn.link == Some(conn) {
                mn.link = None;
            }
        }
        Some((node, slot))
    }

    /// The node learns that its connection in `slot` is gone.
    pub(super) fn tell_closed(&mut self, node: NodeId, slot: Option<usize>) {
        let now = self.now;
        match &mut self.nodes[node.0].kind {
            Kind::Master(mn) => {
                if let Some(slot) = slot {
                    mn.m.on_close(slot, now);
                    self.drain(node);
                }
            }
            Kind::Peer(peer) => peer.closed = true,
        }
    }
}
