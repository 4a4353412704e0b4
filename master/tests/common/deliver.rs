//! Carrying frames as the reactor does: a master's outbox encoded (`encode`, or `encode_ref` for
//! a shared body) and handed back to `recycle`; bytes decoded at the receiving end with
//! `decode_borrowed` and given to `on_decoded` or to the peer; opens and closes in line.

use std::time::Instant;

use dsm_master::Out;
use dsm_wire::{decode_borrowed, encode, encode_ref};

use super::conns::{Carry, Conn, Packet};
use super::net::{Kind, Net, NodeId};

impl Net {
    /// Hand `packet` to its end, or hold it while a cut or a freeze is in its way.
    pub(super) fn deliver(&mut self, key: (Instant, u64), packet: Packet) {
        if self.blocked(&packet) {
            self.held.push((key, packet));
            return;
        }
        let Packet { conn, to, carry } = packet;
        let end = &self.conns[conn.0].ends[to];
        // Gone at this end (closed, or its node killed): nobody reads it.
        if !end.open {
            return;
        }
        // A connection opened to a node already dead: refused (RST).
        if !self.nodes[end.node.0].up {
            return self.close_end(conn, to, false);
        }
        match carry {
            Carry::Open => self.accept(conn, to),
            Carry::Bytes(bytes) => self.receive(conn, to, &bytes),
            Carry::Close => self.close_end(conn, to, true),
        }
    }

    fn accept(&mut self, conn: Conn, to: usize) {
        let w = &self.conns[conn.0];
        let (node, from) = (w.ends[to].node, w.ends[1 - to].node);
        let slot = self.take_slot(node, conn);
        self.conns[conn.0].ends[to].slot = Some(slot);
        let (addr, now) = (self.nodes[from.0].name.clone(), self.now);
        self.master_node_mut(node).m.on_connect(slot, addr, now);
        self.drain(node);
    }

    fn receive(&mut self, conn: Conn, to: usize, bytes: &[u8]) {
        let end = &self.conns[conn.0].ends[to];
        let (node, slot) = (end.node, end.slot.expect("accepted before any frame"));
        let now = self.now;
        let reply = match &mut self.nodes[node.0].kind {
            Kind::Master(mn) => match decode_borrowed(bytes, mn.max_frame) {
                Ok(Some((decoded, used))) => {
                    assert_eq!(used, bytes.len(), "one frame per packet");
                    mn.m.on_decoded(slot, decoded, now);
                    self.drain(node);
                    Vec::new()
                }
                Ok(None) => panic!("a packet holds a whole frame"),
                // As the reactor: a bad frame closes the connection, and the master is told.
                Err(_) => return self.close_end(conn, to, true),
            },
            Kind::Peer(peer) => peer.receive(bytes, now),
        };
        for packet in reply {
            self.send_bytes(conn, to, packet);
        }
    }

    /// Queue a frame from end `from` of `conn`, if that end is still open.
    pub(super) fn send_bytes(&mut self, conn: Conn, from: usize, bytes: Vec<u8>) {
        if self.conns[conn.0].ends[from].open {
            self.enqueue(conn, from, Carry::Bytes(bytes));
        }
    }

    /// Everything master `n` wants sent or closed, carried out as the reactor's `apply_out`.
    pub(super) fn drain(&mut self, n: NodeId) {
        let mut outs = std::mem::take(&mut self.outs);
        self.master_node_mut(n).m.drain_out(&mut outs);
        for out in outs.drain(..) {
            self.write_out(n, out);
        }
        self.outs = outs;
    }

    fn write_out(&mut self, n: NodeId, out: Out) {
        let slot = match &out {
            Out::Send(slot, _) | Out::SendShared(slot, _) => *slot,
            Out::Close(slot) => {
                if let Some(conn) = self.at_slot(n, *slot) {
                    self.close_end(conn, self.end_of(conn, n), false);
                }
                return;
            }
            // A master's `--data-dir`: the sims keep nothing on disk.
            Out::Persist(_) => return,
        };
        // As the reactor: a frame for a connection already gone is neither written nor
        // recycled.
        let Some(conn) = self.at_slot(n, slot) else {
            return;
        };
        let mut bytes = Vec::new();
        match &out {
            Out::Send(_, frame) => encode(frame, &mut bytes),
            Out::SendShared(_, shared) => {
                let (req_id, body) = shared.as_ref();
                encode_ref(req_id, &body, &mut bytes);
            }
            Out::Close(_) | Out::Persist(_) => unreachable!("handled above"),
        }
        self.master_node_mut(n).m.recycle(out);
        self.send_bytes(conn, self.end_of(conn, n), bytes);
    }
}
