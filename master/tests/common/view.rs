//! What a test reads of the network (masters through their read-only API, peers, stores,
//! connections), and a client's requests: send, carry, take the answers.

use dsm_master::Master;
use dsm_slave::Store;
use dsm_wire::{Body, Frame};

use super::conns::Conn;
use super::net::{Kind, Net, NodeId};
use super::peer::Peer;

impl Net {
    /// Whether node `n` runs (not killed).
    pub fn is_up(&self, n: NodeId) -> bool {
        self.nodes[n.0].up
    }

    pub fn master(&self, n: NodeId) -> &Master {
        &self.master_node(n).m
    }

    pub fn peer(&self, n: NodeId) -> &Peer {
        match &self.nodes[n.0].kind {
            Kind::Peer(p) => p,
            Kind::Master(_) => panic!("{} is a master", self.nodes[n.0].name),
        }
    }

    /// How many slaves master `m` counts as live (its STATUS).
    pub fn live_slaves(&self, m: NodeId) -> usize {
        let status = self.master(m).status();
        status.slaves.iter().filter(|s| s.live).count()
    }

    pub fn store(&self, n: NodeId) -> &Store {
        self.peer(n).store.as_ref().expect("a slave")
    }

    /// What peer `n` received since the last `take`.
    pub fn take(&mut self, n: NodeId) -> Vec<Frame> {
        std::mem::take(&mut self.peer_mut(n).inbox)
    }

    /// Send, carry until quiet, take the answers.
    pub fn request(&mut self, c: NodeId, req_id: u64, body: Body) -> Vec<Frame> {
        self.send(c, Frame::new(req_id, body));
        self.settle();
        self.take(c)
    }

    /// A WRITE, carried until quiet; the answer stays in `c`'s inbox.
    pub fn write(&mut self, c: NodeId, req_id: u64, key: &str, value: &str) {
        let body = Body::Write {
            key: key.into(),
            value: value.into(),
        };
        self.send(c, Frame::new(req_id, body));
        self.settle();
    }

    /// A READ, carried until quiet; the answer stays in `c`'s inbox.
    pub fn read(&mut self, c: NodeId, req_id: u64, key: &str) {
        self.send(c, Frame::new(req_id, Body::Read { key: key.into() }));
        self.settle();
    }

    /// Peer `n`'s current (or last) connection.
    pub fn conn_of(&self, n: NodeId) -> Conn {
        self.peer(n).conn.expect("connected")
    }

    /// The `ConnId` master-side of peer `n`'s connection (as the master knows it).
    pub fn id_at_master(&self, n: NodeId) -> usize {
        self.conns[self.conn_of(n).0].ends[1]
            .slot
            .expect("accepted")
    }

    /// The heartbeat link master `m` opened, while its end is open.
    pub fn link_of(&self, m: NodeId) -> Option<Conn> {
        self.master_node(m).link
    }

    pub fn links_opened(&self, m: NodeId) -> usize {
        self.master_node(m).links_opened
    }

    /// The node that closed `conn` first; `None` while it is open (or if the network broke it).
    pub fn closed_by(&self, conn: Conn) -> Option<NodeId> {
        self.conns[conn.0].closed_by
    }

    /// Slaves up and still connected as far as their master knows (not dropped), in the order
    /// they were added.
    pub fn connected_slaves(&self) -> Vec<NodeId> {
        (0..self.nodes.len())
            .map(NodeId)
            .filter(|&n| match &self.nodes[n.0].kind {
                Kind::Peer(p) if p.store.is_some() && self.nodes[n.0].up => {
                    p.conn.is_some_and(|c| self.conns[c.0].ends[1].open)
                }
                _ => false,
            })
            .collect()
    }

    /// The connected slaves (see [`Net::connected_slaves`]) whose store holds `key`.
    pub fn holders_of(&self, key: &str) -> Vec<NodeId> {
        self.connected_slaves()
            .into_iter()
            .filter(|&s| self.store(s).version_of(key.as_bytes()).is_some())
            .collect()
    }
}
