//! DELETE, CAS and INCR on the simulated network (`common`), a primary, a standby following
//! it, and three slaves with real stores: a tombstone collected everywhere (the standby told),
//! a tombstone kept while a slave is away and honoured by the standby after a takeover, and a
//! slave back with an older copy that is told to drop it.

use std::time::Duration;

use dsm_wire::{Body, Frame, ServerRole};

mod common;
use common::{Net, NodeId};

const PATIENCE: Duration = Duration::from_millis(500);

struct Ha {
    net: Net,
    p: NodeId,
    b: NodeId,
    slaves: [NodeId; 3],
    cp: NodeId,
    cb: NodeId,
}

impl Ha {
    fn new() -> Ha {
        let mut net = Net::new();
        let p = net.add_master(common::new_cluster());
        let slaves = ["s0", "s1", "s2"].map(|id| net.add_slave(p, id));
        let b = net.add_backup(common::new_cluster(), p);
        let cp = net.add_client(p);
        let cb = net.add_client(b);
        let mut ha = Ha {
            net,
            p,
            b,
            slaves,
            cp,
            cb,
        };
        ha.run(Duration::from_millis(200));
        ha
    }

    fn run(&mut self, d: Duration) {
        let step = Duration::from_millis(10);
        let mut left = d;
        while !left.is_zero() {
            let s = step.min(left);
            self.net.advance(s);
            left -= s;
            let (slaves, masters) = (self.slaves, [self.p, self.b]);
            self.net.redial(&slaves, &masters, PATIENCE);
        }
    }

    fn one(&mut self, c: NodeId, req: u64, body: Body) -> Body {
        let frames = self.net.request(c, req, body);
        match <[Frame; 1]>::try_from(frames) {
            Ok([f]) => f.body,
            Err(frames) => panic!("expected one answer, got {frames:?}"),
        }
    }

    /// Whether slave `s`'s store holds anything (a value or a tombstone) for `key`.
    fn holds(&self, s: NodeId, key: &[u8]) -> Option<u64> {
        let store = self.net.peer(s).store.as_ref().expect("a slave");
        store.version_of(key)
    }
}

fn set(key: &str, value: &str, expected: Option<u64>) -> Body {
    Body::Set {
        key: key.into(),
        expected,
        value: value.into(),
    }
}

fn delete(key: &str) -> Body {
    Body::Delete {
        key: key.into(),
        expected: None,
    }
}

fn vread(key: &str) -> Body {
    Body::VRead { key: key.into() }
}

#[test]
fn a_delete_with_every_slave_in_service_is_collected_everywhere() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    let Body::Written { version: v1 } = ha.one(cp, 1, set("k", "v", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    assert_eq!(ha.net.master(b).status().keys, 1);
    let Body::Written { version: tomb } = ha.one(cp, 2, delete("k")) else {
        panic!("DELETE did not answer WRITTEN");
    };
    assert!(tomb > v1);
    ha.run(Duration::from_millis(100));
    // Every slave ACKed the PURGE: nothing left on them, in either master's map.
    for s in ha.slaves {
        assert_eq!(ha.holds(s, b"k"), None, "slave {s:?} still holds k");
    }
    assert_eq!(ha.net.master(p).status().keys, 0);
    assert_eq!(
        ha.net.master(b).status().keys,
        0,
        "the standby was not told"
    );
    assert_eq!(ha.one(cp, 3, vread("k")), Body::NotFound);
    assert_eq!(ha.one(cp, 4, delete("k")), Body::NotFound);
    let Body::Written { version: v2 } = ha.one(cp, 5, set("k", "again", Some(0))) else {
        panic!("SET if absent did not answer WRITTEN");
    };
    assert!(v2 > tomb);
}

#[test]
fn a_tombstone_kept_while_a_slave_is_away_outlives_a_takeover_and_its_old_copy() {
    let mut ha = Ha::new();
    let (p, b, cp, cb) = (ha.p, ha.b, ha.cp, ha.cb);
    let Body::Written { version: v1 } = ha.one(cp, 1, set("k", "old", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    let old_holders: Vec<NodeId> = ha
        .slaves
        .into_iter()
        .filter(|&s| ha.holds(s, b"k").is_some())
        .collect();
    assert_eq!(old_holders.len(), 2);
    // One holder of the old value goes away (kept data); the DELETE reaches the others.
    let away = old_holders[0];
    ha.net.kill(away);
    ha.run(Duration::from_millis(50));
    let Body::Written { version: tomb } = ha.one(cp, 2, delete("k")) else {
        panic!("DELETE did not answer WRITTEN");
    };
    ha.run(Duration::from_millis(100));
    assert_eq!(
        ha.holds(away, b"k"),
        Some(v1),
        "the away slave kept its old copy"
    );
    assert_eq!(
        ha.net.master(p).status().keys,
        1,
        "collected with a slave away"
    );
    // The primary dies; the standby is elected and must answer from the tombstone.
    ha.net.kill(p);
    ha.net.restart(away, true);
    ha.run(Duration::from_millis(1200));
    assert_eq!(ha.net.master(b).status().role, ServerRole::Primary);
    assert_eq!(ha.one(cb, 3, vread("k")), Body::NotFound);
    assert_eq!(
        ha.one(cb, 4, Body::Read { key: b"k".to_vec() }),
        Body::NotFound
    );
    // The slave back with its old copy was told to drop it.
    ha.run(Duration::from_millis(100));
    assert_ne!(
        ha.holds(away, b"k"),
        Some(v1),
        "the old copy is still there"
    );
    // CAS against the deleted key: only "absent" wins; INCR starts from 0.
    assert_eq!(
        ha.one(cb, 5, set("k", "x", Some(v1))),
        Body::Conflict { version: 0 }
    );
    let Body::Written { version: v2 } = ha.one(cb, 6, set("k", "new", Some(0))) else {
        panic!("SET if absent did not answer WRITTEN");
    };
    assert!(v2 > tomb);
    let incr = Body::Incr {
        key: b"n".to_vec(),
        delta: 7,
    };
    assert!(matches!(ha.one(cb, 7, incr), Body::Versioned { value, .. } if value == b"7"));
}
