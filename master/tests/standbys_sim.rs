//! A primary with two standbys on the simulated network (`common`): both get the stream; when
//! the primary dies exactly one standby is elected (the standbys vote for each other, as slaves
//! do), the other follows it by itself; a split vote between the two ends with one primary; a
//! standby frozen through the failover rejoins as a standby. The design is in
//! `master/src/ha/mod.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use dsm_master::Config;
use dsm_wire::{BackupLink, Body, Frame, ServerRole};

mod common;
use common::{read, value, write, Net, NodeId};

/// A slave's patience with a silent master (dsm-slave's `--master-timeout-ms`).
const PATIENCE: Duration = Duration::from_millis(500);

/// The heartbeat address the network gives node `n` (`common/nodes.rs`).
fn heartbeat(n: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7001 + 2 * n as u16))
}

/// Three masters (nodes 0, 1, 2: the primary, then two standbys of it, each told of the other
/// with `--peers`, or with `peers` false, only of the primary: they learn of each other from
/// its stream), `slaves` slaves, and a client on each master.
struct Three {
    net: Net,
    m: [NodeId; 3],
    slaves: Vec<NodeId>,
    clients: [NodeId; 3],
}

impl Three {
    fn new(slaves: usize) -> Three {
        Three::with(slaves, true)
    }

    fn with(slaves: usize, peers: bool) -> Three {
        let mut net = Net::new();
        let p = net.add_master(common::new_cluster());
        let standby = |other: usize| Config {
            peers: peers.then(|| heartbeat(other)).into_iter().collect(),
            ..common::new_cluster()
        };
        let b1 = net.add_backup(standby(2), p);
        let b2 = net.add_backup(standby(1), p);
        let slaves = (0..slaves)
            .map(|i| net.add_slave(p, &format!("s{i}")))
            .collect();
        let clients = [p, b1, b2].map(|m| net.add_client(m));
        let mut t = Three {
            net,
            m: [p, b1, b2],
            slaves,
            clients,
        };
        t.run(Duration::from_millis(300), None);
        t
    }

    /// Let `d` pass, 10 ms at a time; the slaves redial as dsm-slave does, over `order` if
    /// given (a list per slave), else over the three masters. Checks at every step that no
    /// two masters serve at once.
    fn run(&mut self, d: Duration, order: Option<&[Vec<NodeId>]>) {
        let step = Duration::from_millis(10);
        let mut left = d;
        while !left.is_zero() {
            let s = step.min(left);
            self.net.advance(s);
            left -= s;
            for (i, &slave) in self.slaves.clone().iter().enumerate() {
                let masters = order.map_or(self.m.to_vec(), |o| o[i].clone());
                self.net.redial(&[slave], &masters, PATIENCE);
            }
            let serving = (self.m.iter())
                .filter(|&&m| self.net.is_up(m) && self.net.master(m).serving(self.net.now()))
                .count();
            assert!(serving <= 1, "{serving} masters serve at once");
        }
    }

    fn role_epoch(&self, m: NodeId) -> (ServerRole, u64) {
        let s = self.net.master(m).status();
        (s.role, s.epoch)
    }

    fn primaries(&self, among: &[NodeId]) -> Vec<NodeId> {
        (among.iter().copied())
            .filter(|&m| self.role_epoch(m).0 == ServerRole::Primary)
            .collect()
    }

    fn client_of(&self, m: NodeId) -> NodeId {
        self.clients[self.m.iter().position(|&x| x == m).expect("a master")]
    }
}

/// Both standbys get the snapshot and the stream, and a write waits for both.
#[test]
fn a_primary_streams_to_two_standbys_and_a_write_waits_for_both() {
    let mut t = Three::new(3);
    let [p, b1, b2] = t.m;
    let cp = t.client_of(p);
    assert_eq!(
        t.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    assert_eq!(t.net.master(p).status().backup, BackupLink::InStep);
    for b in [b1, b2] {
        assert_eq!(t.role_epoch(b), (ServerRole::Backup, 1));
        assert_eq!(t.net.master(b).status().keys, 1, "the stream reached {b:?}");
    }
    // One standby stops confirming: the write waits (it is in step and may be elected)
    // until the primary lets it go as out of step.
    t.net.freeze(b2);
    t.net.send(cp, Frame::new(2, write("k", "v2")));
    t.net.settle();
    assert!(t.net.take(cp).is_empty(), "answered before b2 confirmed");
    t.run(Duration::from_secs(1), None);
    assert_eq!(t.net.take(cp), vec![Frame::new(2, Body::Ok)]);
    assert_eq!(t.role_epoch(p), (ServerRole::Primary, 1));
}

/// kill -9 of the primary: the slaves and the standbys elect exactly one standby; the other
/// follows it by itself and takes its stream; every acknowledged write reads back. With
/// `--peers`, and with only `--backup-of` (the standbys learn of each other from the stream).
#[test]
fn the_primary_dies_one_standby_takes_over_and_the_other_follows_it() {
    for peers in [true, false] {
        the_primary_dies(peers);
    }
}

fn the_primary_dies(peers: bool) {
    let mut t = Three::with(3, peers);
    let [p, b1, b2] = t.m;
    let cp = t.client_of(p);
    for i in 0..5 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(
            t.net.request(cp, i, write(&k, &v)),
            vec![Frame::new(i, Body::Ok)]
        );
    }
    t.net.kill(p);
    t.run(Duration::from_secs(3), None);
    let winners = t.primaries(&[b1, b2]);
    assert_eq!(winners.len(), 1, "exactly one standby took over");
    let (new, other) = match winners[0] == b1 {
        true => (b1, b2),
        false => (b2, b1),
    };
    let (_, epoch) = t.role_epoch(new);
    assert!(epoch >= 2);
    assert_eq!(t.role_epoch(other).0, ServerRole::Backup);
    assert_eq!(t.net.master(other).status().backup, BackupLink::InStep);
    assert_eq!(t.net.master(new).status().backup, BackupLink::InStep);
    let c = t.client_of(new);
    for i in 0..5 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(
            t.net.request(c, 10 + i, read(&k)),
            vec![Frame::new(10 + i, value(&v))]
        );
    }
    assert_eq!(
        t.net.request(c, 20, write("k0", "w")),
        vec![Frame::new(20, Body::Ok)]
    );
    // The follower has the new primary's writes too.
    t.run(Duration::from_millis(100), None);
    assert_eq!(t.net.master(other).status().epoch, epoch);
}

/// Four slaves split two and two between the standbys (each reaches only its own): both
/// campaign at the same epoch, each refuses the other, neither has a majority of the seven
/// voters. A campaign not won in time gives up after a delay drawn per master and tries a
/// higher epoch, which the other standby grants: exactly one primary, and never two at once.
#[test]
fn a_split_vote_between_two_standbys_ends_with_one_primary() {
    let mut t = Three::new(4);
    let [p, b1, b2] = t.m;
    let cp = t.client_of(p);
    assert_eq!(
        t.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    t.net.kill(p);
    let order = vec![vec![b1], vec![b1], vec![b2], vec![b2]];
    for _ in 0..80 {
        t.run(Duration::from_millis(100), Some(&order));
        if !t.primaries(&[b1, b2]).is_empty() {
            break;
        }
    }
    let winners = t.primaries(&[b1, b2]);
    assert_eq!(winners.len(), 1, "exactly one standby took over");
    let new = winners[0];
    // Both campaigned: the split happened.
    let epoch = t.role_epoch(new).1;
    assert!(epoch >= 3, "elected at {epoch}: no split vote was tested");
    // Every slave may reach both standbys again: one primary, the other standby follows it.
    t.run(Duration::from_secs(8), None);
    let winners = t.primaries(&[b1, b2]);
    assert_eq!(winners.len(), 1, "exactly one primary");
    let new = winners[0];
    let other = if new == b1 { b2 } else { b1 };
    assert_eq!(t.net.master(other).status().backup, BackupLink::InStep);
    let c = t.client_of(new);
    assert_eq!(
        t.net.request(c, 2, read("k")),
        vec![Frame::new(2, value("v1"))]
    );
    assert_eq!(
        t.net.request(c, 3, write("k", "v2")),
        vec![Frame::new(3, Body::Ok)]
    );
}

/// One standby is frozen while the primary dies: the other is elected by the slaves (four of
/// six voters) without it; thawed, the frozen one finds the new primary and follows it.
#[test]
fn a_standby_frozen_through_the_failover_follows_the_new_primary_when_thawed() {
    let mut t = Three::new(3);
    let [p, b1, b2] = t.m;
    let cp = t.client_of(p);
    assert_eq!(
        t.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    t.net.freeze(b2);
    t.net.kill(p);
    t.run(Duration::from_secs(2), None);
    assert_eq!(t.role_epoch(b1).0, ServerRole::Primary);
    let c1 = t.client_of(b1);
    assert_eq!(
        t.net.request(c1, 2, write("k", "v2")),
        vec![Frame::new(2, Body::Ok)]
    );
    t.net.thaw(b2);
    t.run(Duration::from_secs(4), None);
    assert_eq!(t.role_epoch(b1).0, ServerRole::Primary);
    assert_eq!(t.role_epoch(b2).0, ServerRole::Backup);
    assert_eq!(t.net.master(b2).status().backup, BackupLink::InStep);
    assert_eq!(t.net.master(b2).status().epoch, t.role_epoch(b1).1);
    assert_eq!(
        t.net.request(c1, 3, read("k")),
        vec![Frame::new(3, value("v2"))]
    );
}

/// A standby let go as out of step by one primary keeps the whole map that primary streamed
/// it. The next primary (the other standby) names every master out of step until it has
/// attached, so when it dies too and the stale standby is elected, the slaves tell it, and it
/// recovers what they hold instead of trusting its map: the key written in the middle term
/// reads back.
#[test]
fn a_standby_stale_since_an_older_primary_recovers_when_elected_later() {
    let mut t = Three::new(3);
    let [p, b1, b2] = t.m;
    let cp = t.client_of(p);
    assert_eq!(
        t.net.request(cp, 1, write("k", "v1")),
        vec![Frame::new(1, Body::Ok)]
    );
    // b2 stops confirming: the primary lets it go. Its map says k=v1, complete.
    t.net.freeze(b2);
    t.run(Duration::from_secs(1), None);
    t.net.kill(p);
    t.run(Duration::from_secs(2), None);
    assert_eq!(t.role_epoch(b1).0, ServerRole::Primary);
    let c1 = t.client_of(b1);
    assert_eq!(
        t.net.request(c1, 2, write("k2", "v2")),
        vec![Frame::new(2, Body::Ok)]
    );
    // b1 dies before b2 has attached to it; b2 resumes and is elected by the slaves.
    t.net.kill(b1);
    t.net.thaw(b2);
    t.run(Duration::from_secs(3), None);
    assert_eq!(t.role_epoch(b2).0, ServerRole::Primary);
    let c2 = t.client_of(b2);
    assert_eq!(
        t.net.request(c2, 3, read("k2")),
        vec![Frame::new(3, value("v2"))],
        "its own map does not have the key"
    );
}

/// A primary started without `--peers` (a lone primary), slaves s0, s1 and s2 that say in
/// HELLO they dial `masters` masters, a standby of a typo (`--peers` names no master; the
/// primary never hears of it), and a client of the primary, a second into their life.
struct Lone {
    net: Net,
    p: NodeId,
    slaves: Vec<NodeId>,
    typo: NodeId,
    cp: NodeId,
}

impl Lone {
    fn start(masters: u16) -> Lone {
        let mut net = Net::new();
        net.slave_masters = masters;
        let p = net.add_master(common::new_cluster());
        let slaves: Vec<NodeId> = ["s0", "s1", "s2"]
            .iter()
            .map(|id| net.add_slave(p, id))
            .collect();
        let typo = net.add_master(Config {
            peers: vec!["127.0.0.1:1".parse().unwrap()],
            ..common::new_cluster()
        });
        let cp = net.add_client(p);
        for _ in 0..100 {
            net.advance(Duration::from_millis(10));
        }
        Lone {
            net,
            p,
            slaves,
            typo,
            cp,
        }
    }
}

/// A primary started without `--peers` and no standby attached (a lone primary: it needs no
/// lease while no slave dials another master) and a standby of a typo: one slave that lost the
/// primary dials the standby, which counts two masters and its one supporter. The lone primary
/// told its slaves it counts itself, a master it may not know of and its three slaves (STALE):
/// the slave refuses its vote, and the standby is never a second primary.
/// `tests/tests/elections.rs` has the same with real processes.
#[test]
fn a_standby_of_a_typo_is_not_elected_beside_a_lone_primary() {
    let Lone {
        mut net,
        p,
        slaves,
        typo,
        cp,
    } = Lone::start(1);
    let step = Duration::from_millis(10);
    assert_eq!(net.peer(slaves[0]).voters, 5, "told by the lone primary");
    let conn = net.conn_of(slaves[0]);
    net.close(conn);
    for _ in 0..300 {
        net.advance(step);
        net.redial(&slaves[..1], &[typo], PATIENCE);
        net.redial(&slaves[1..], &[p], PATIENCE);
        let now = net.now();
        let serving = [p, typo]
            .iter()
            .filter(|&&m| net.master(m).serving(now))
            .count();
        assert!(serving <= 1, "two primaries");
    }
    let votes = &net.peer(slaves[0]).votes;
    assert!(
        !votes.is_empty(),
        "the standby never asked: nothing was tested"
    );
    assert!(votes.iter().all(|&(_, granted)| !granted), "{votes:?}");
    assert_eq!(net.master(typo).role(), ServerRole::Backup);
    assert_eq!(net.master(p).role(), ServerRole::Primary);
    assert_eq!(
        net.request(cp, 1, write("k", "v")),
        vec![Frame::new(1, Body::Ok)]
    );
}

/// A lone primary (no `--peers`, no standby attached) whose slaves dial two masters (HELLO
/// says so), and a standby of a typo that two of the three slaves reach when they lose the
/// primary; the third stays with it. The standby may be elected by those two (the primary told
/// them it counts five voters: itself, a master it does not know of, three slaves), so the
/// primary must hold a lease from a majority of itself and its slaves, and stop answering once
/// two of three are gone. Never two primaries at once; the side with the majority serves.
#[test]
fn a_lone_primary_whose_slaves_dial_another_master_serves_only_under_their_lease() {
    let Lone {
        mut net,
        p,
        slaves,
        typo,
        cp,
    } = Lone::start(2);
    let step = Duration::from_millis(10);
    assert_eq!(net.peer(slaves[0]).voters, 5, "told by the lone primary");
    assert_eq!(
        net.request(cp, 1, write("k", "v")),
        vec![Frame::new(1, Body::Ok)],
        "the primary serves under its slaves' lease"
    );
    for &s in &slaves[..2] {
        let conn = net.conn_of(s);
        net.close(conn);
    }
    let (mut p_stopped, mut typo_served) = (false, false);
    for _ in 0..400 {
        net.advance(step);
        net.redial(&slaves[..2], &[typo], PATIENCE);
        net.redial(&slaves[2..], &[p], PATIENCE);
        let now = net.now();
        let (p_serves, typo_serves) = (net.master(p).serving(now), net.master(typo).serving(now));
        assert!(!(p_serves && typo_serves), "two primaries");
        p_stopped |= !p_serves;
        typo_served |= typo_serves;
    }
    assert!(
        p_stopped,
        "the primary kept serving with one slave of three"
    );
    assert!(typo_served, "the side with the majority never served");
    assert_eq!(net.master(typo).role(), ServerRole::Primary);
}

/// The same lone primary, every slave gone for five leases (a restart of them all): it stops
/// answering, but it has no master to follow, so it does not step down (that would leave it
/// fenced for good); once they are back it serves again, with its data.
#[test]
fn a_lone_primary_that_lost_every_slave_serves_again_when_they_return() {
    let Lone {
        mut net,
        p,
        slaves,
        cp,
        ..
    } = Lone::start(2);
    let step = Duration::from_millis(10);
    assert_eq!(
        net.request(cp, 1, write("k", "v")),
        vec![Frame::new(1, Body::Ok)]
    );
    for &s in &slaves {
        let conn = net.conn_of(s);
        net.close(conn);
    }
    let lease = common::new_cluster().lease;
    let (mut stopped, until) = (false, net.now() + lease * 5);
    while net.now() < until && !stopped {
        net.advance(step);
        stopped = !net.master(p).serving(net.now());
    }
    assert!(stopped, "a lone primary with no slave kept its lease");
    for _ in 0..(lease * 5).as_millis() / 10 {
        net.advance(step);
    }
    assert_eq!(net.master(p).role(), ServerRole::Primary, "it stepped down");
    assert!(!net.master(p).serving(net.now()));
    for _ in 0..100 {
        net.advance(step);
        net.redial(&slaves, &[p], PATIENCE);
    }
    assert!(net.master(p).serving(net.now()), "its slaves came back");
    assert_eq!(
        net.request(cp, 2, read("k")),
        vec![Frame::new(2, value("v"))]
    );
}
