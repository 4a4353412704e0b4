//! Adding and removing nodes: masters (a primary, or the backup of another master in the
//! sim), slaves and clients that connect and say HELLO, raw peers; kill, close, reconnect.
//! And the heartbeat link, opened as the reactor opens it when `link_target` asks.

use std::net::SocketAddr;
use std::time::Duration;

use dsm_master::{Config, Master};
use dsm_wire::{encode, Frame, Role};

use super::conns::Conn;
use super::net::{Kind, MasterNode, Net, Node, NodeId};
use super::peer::Peer;

impl Net {
    /// A primary master. Its listen and heartbeat addresses are the network's to choose.
    pub fn add_master(&mut self, cfg: Config) -> NodeId {
        self.add_master_node(cfg, None)
    }

    /// A master that is the backup of `of`: its link opens at once, and the snapshot flows.
    pub fn add_backup(&mut self, cfg: Config, of: NodeId) -> NodeId {
        let primary = self.master_node(of).heartbeat;
        self.add_master_node(cfg, Some(primary))
    }

    fn add_master_node(&mut self, mut cfg: Config, backup_of: Option<SocketAddr>) -> NodeId {
        let n = NodeId(self.nodes.len());
        let port = 7000 + 2 * n.0 as u16;
        cfg.listen = SocketAddr::from(([127, 0, 0, 1], port));
        cfg.heartbeat = SocketAddr::from(([127, 0, 0, 1], port + 1));
        cfg.backup_of = backup_of;
        let mn = MasterNode {
            heartbeat: cfg.heartbeat,
            max_frame: cfg.max_frame(),
            m: Master::new(cfg, self.now),
            link: None,
            links_opened: 0,
        };
        self.push_node(format!("master{}", n.0), Kind::Master(Box::new(mn)));
        self.settle();
        n
    }

    /// A killed master starts again on its own addresses (dsm-master restarted): a new process
    /// with `cfg` (what its `--data-dir` kept goes in `cfg.persisted`), the backup of `of` if
    /// given. Its link, if it wants one, opens at once.
    pub fn restart_master(&mut self, n: NodeId, mut cfg: Config, of: Option<NodeId>) {
        assert!(!self.nodes[n.0].up, "only a killed master restarts");
        let port = 7000 + 2 * n.0 as u16;
        cfg.listen = SocketAddr::from(([127, 0, 0, 1], port));
        cfg.heartbeat = SocketAddr::from(([127, 0, 0, 1], port + 1));
        cfg.backup_of = of.map(|o| self.master_node(o).heartbeat);
        let mn = MasterNode {
            heartbeat: cfg.heartbeat,
            max_frame: cfg.max_frame(),
            m: Master::new(cfg, self.now),
            link: None,
            links_opened: 0,
        };
        let node = &mut self.nodes[n.0];
        node.kind = Kind::Master(Box::new(mn));
        node.up = true;
        node.frozen = false;
        node.slots.clear();
        self.settle();
    }

    fn push_node(&mut self, name: String, kind: Kind) -> NodeId {
        self.nodes.push(Node {
            name,
            kind,
            up: true,
            frozen: false,
            slots: Vec::new(),
        });
        NodeId(self.nodes.len() - 1)
    }

    /// A peer that connects to master `m` and runs its handshake as `role` (a slave gets a
    /// store), with `secret` if given; carried until the network is quiet.
    pub fn join(&mut self, m: NodeId, role: Role, id: &str, secret: Option<&[u8]>) -> NodeId {
        let name = match role {
            Role::Slave => id.to_string(),
            _ => format!("{}{}", role.name(), self.nodes.len()),
        };
        let mut peer = Peer::new(role, id, secret, false);
        peer.masters = self.slave_masters;
        let n = self.push_node(name, Kind::Peer(Box::new(peer)));
        self.connect(n, m);
        self.settle();
        n
    }

    pub fn add_slave(&mut self, m: NodeId, id: &str) -> NodeId {
        self.join(m, Role::Slave, id, None)
    }

    /// [`Net::add_slave`] with this store (one with a memory cap, say).
    pub fn add_slave_with(&mut self, m: NodeId, id: &str, store: dsm_slave::Store) -> NodeId {
        let mut peer = Peer::new(Role::Slave, id, None, false);
        peer.masters = self.slave_masters;
        peer.store = Some(store);
        let n = self.push_node(id.to_string(), Kind::Peer(Box::new(peer)));
        self.connect(n, m);
        self.settle();
        n
    }

    /// A client, WELCOMEd by `m`.
    pub fn add_client(&mut self, m: NodeId) -> NodeId {
        let c = self.join(m, Role::Client, "", None);
        assert!(self.peer(c).welcome.is_some(), "client not welcomed");
        c
    }

    /// A connection to `m` that says nothing unless the test makes it; all it gets is kept.
    pub fn add_raw(&mut self, m: NodeId) -> NodeId {
        let peer = Peer::new(Role::Client, "", None, true);
        let n = self.push_node(
            format!("peer{}", self.nodes.len()),
            Kind::Peer(Box::new(peer)),
        );
        let conn = self.open_conn(n, m);
        self.peer_mut(n).conn = Some(conn);
        self.settle();
        n
    }

    /// Peer `p` (a slave that lost its master, say) leaves its connection, if any, opens one to
    /// `m` and says HELLO. Only queued: the next `settle` carries it.
    pub fn connect(&mut self, p: NodeId, m: NodeId) {
        if let Some(old) = self.peer(p).conn {
            self.close_end(old, self.end_of(old, p), false);
        }
        let conn = self.open_conn(p, m);
        let hello = self.peer_mut(p).start(conn);
        self.send(p, hello);
    }

    /// What the test makes peer `p` send (also for a frozen one). Only queued.
    pub fn send(&mut self, p: NodeId, frame: Frame) {
        let conn = self.conn_of(p);
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes);
        self.send_bytes(conn, self.end_of(conn, p), bytes);
    }

    /// kill -9: `n` stops; each connection's other end sees it close, after the frames
    /// already on their way.
    pub fn kill(&mut self, n: NodeId) {
        self.nodes[n.0].up = false;
        for i in 0..self.conns.len() {
            for e in 0..2 {
                if self.conns[i].ends[e].node == n {
                    self.close_end(Conn(i), e, false);
                }
            }
        }
        self.settle();
    }

    /// A killed peer starts again (dsm-slave restarted): a new process, with its store if it
    /// has a data dir (`keep_data`). It says nothing until the test connects it.
    pub fn restart(&mut self, p: NodeId, keep_data: bool) {
        self.nodes[p.0].up = true;
        let peer = self.peer_mut(p);
        peer.conn = None;
        peer.restart(keep_data);
    }

    /// What dsm-slave does when it loses its master (its connection closed, or silent for
    /// `patience`, the slave's `--master-timeout-ms` and at least its lease plus a quarter):
    /// each of `slaves` that has, or has none yet, connects to the first of `masters`, in
    /// order after the one it had, that is up and reachable. Carried before it returns.
    pub fn redial(&mut self, slaves: &[NodeId], masters: &[NodeId], patience: Duration) {
        for &s in slaves {
            let peer = self.peer(s);
            let current = peer.conn.map(|c| self.other_end(c, s));
            let silent = peer
                .last_heard
                .is_some_and(|t| self.now.saturating_duration_since(t) >= patience);
            if peer.conn.is_some() && !peer.closed && !silent {
                continue;
            }
            let start = current
                .and_then(|m| masters.iter().position(|&x| x == m))
                .map_or(0, |i| i + 1);
            let next = (0..masters.len())
                .map(|k| masters[(start + k) % masters.len()])
                .find(|&m| self.nodes[m.0].up && !self.faults.severed(s, m));
            if let Some(m) = next {
                self.connect(s, m);
            }
        }
        self.settle();
    }

    /// The connection breaks: both ends are told at once.
    pub fn close(&mut self, conn: Conn) {
        let shut: Vec<_> = (0..2).filter_map(|e| self.shut_end(conn, e)).collect();
        for (node, slot) in shut {
            self.tell_closed(node, slot);
        }
        self.settle();
    }

    /// The reactor's `maybe_open_link` for every running master: connect it to the master
    /// whose heartbeat address `link_target` names, or tell it the attempt failed when that
    /// master is down or cut off. A failure can make it want another at once (a takeover
    /// that must fence the old primary), so this asks again while anything happened.
    pub(super) fn open_links(&mut self) {
        for _ in 0..4 {
            let mut asked = false;
            for n in self.running_masters() {
                asked |= self.open_link(n);
            }
            if !asked {
                return;
            }
        }
    }

    fn open_link(&mut self, n: NodeId) -> bool {
        let now = self.now;
        let mn = self.master_node(n);
        let Some(addr) = mn.link.is_none().then(|| mn.m.link_target(now)).flatten() else {
            return false;
        };
        let target = (0..self.nodes.len()).map(NodeId).find(|&t| {
            matches!(&self.nodes[t.0].kind, Kind::Master(mt) if mt.heartbeat == addr)
                && self.nodes[t.0].up
                && !self.faults.severed(n, t)
        });
        match target {
            Some(t) => {
                let conn = self.open_conn(n, t);
                let slot = self.conns[conn.0].ends[0].slot.expect("a slot");
                let name = self.nodes[t.0].name.clone();
                let mn = self.master_node_mut(n);
                mn.link = Some(conn);
                mn.links_opened += 1;
                mn.m.on_link_up(slot, name, now);
            }
            None => self
                .master_node_mut(n)
                .m
                .on_link_failed("connection refused", now),
        }
        self.drain(n);
        true
    }
}
