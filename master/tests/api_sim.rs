//! DELETE, CAS and INCR on the simulated network (`common`), a primary, a standby following
//! it, and three or four slaves with real stores: a tombstone collected everywhere (the standby
//! told), a tombstone kept while a slave is away and honoured by the standby after a takeover,
//! a slave back with an older copy that is told to drop it, a kept tombstone re-replicated as
//! a tombstone when a holder is lost, and a PURGE that a slave dies before ACKing.

use std::time::Duration;

use dsm_wire::{is_tombstone, Body, Frame, ServerRole, TOMBSTONE};

mod common;
use common::{delete, Net, NodeId};

const PATIENCE: Duration = Duration::from_millis(500);

struct Ha {
    net: Net,
    p: NodeId,
    b: NodeId,
    slaves: Vec<NodeId>,
    cp: NodeId,
    cb: NodeId,
}

impl Ha {
    fn new() -> Ha {
        Ha::with_slaves(3)
    }

    fn with_slaves(n: usize) -> Ha {
        let mut net = Net::new();
        let p = net.add_master(common::new_cluster());
        let slaves = (0..n).map(|i| net.add_slave(p, &format!("s{i}"))).collect();
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
            let masters = [self.p, self.b];
            self.net.redial(&self.slaves, &masters, PATIENCE);
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
    for &s in &ha.slaves {
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
        .clone()
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

/// The slaves holding anything for `key`, and those not.
fn split_by_holding(ha: &Ha, key: &[u8]) -> (Vec<NodeId>, Vec<NodeId>) {
    ha.slaves.iter().partition(|&&s| ha.holds(s, key).is_some())
}

#[test]
fn a_kept_tombstone_whose_holder_is_lost_is_copied_as_a_tombstone() {
    let mut ha = Ha::with_slaves(4);
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    let Body::Written { version: v1 } = ha.one(cp, 1, set("k", "old", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    let (holders, others) = split_by_holding(&ha, b"k");
    assert_eq!((holders.len(), others.len()), (2, 2));
    // A slave that held nothing goes away with its data dir: it may come back, so the
    // tombstone must be kept.
    let away = others[0];
    ha.net.kill(away);
    ha.run(Duration::from_millis(50));
    let Body::Written { version: tomb } = ha.one(cp, 2, delete("k")) else {
        panic!("DELETE did not answer WRITTEN");
    };
    ha.run(Duration::from_millis(100));
    assert_eq!(
        ha.net.master(p).status().keys,
        1,
        "the tombstone was collected"
    );
    // DELETE answers the plain version; the stores keep it with the tombstone bit.
    let stored = tomb | TOMBSTONE;
    for &h in &holders {
        assert_eq!(ha.holds(h, b"k"), Some(stored), "holder {h:?}");
    }
    // One holder of the tombstone is lost for good (killed, its disk gone: forget-slave): the
    // master makes another copy of the key, and the only slave it can use is the one that
    // never held it.
    let lost = holders[0];
    ha.net.kill(lost);
    let index = ha.slaves.iter().position(|&s| s == lost).unwrap();
    let forget = Body::Forget {
        id: format!("s{index}"),
    };
    assert_eq!(ha.one(cp, 10, forget), Body::Ok);
    ha.run(Duration::from_millis(600));
    let spare = others[1];
    let copied = ha.holds(spare, b"k");
    assert_eq!(copied, Some(stored), "the copy is not the tombstone");
    assert!(copied.is_some_and(is_tombstone));
    assert!(ha.net.master(p).status().copies_made >= 1);
    assert_eq!(ha.net.master(p).status().under_replicated, 0);
    // Now the other original holder goes too: the copy alone keeps the key deleted, on the
    // primary and, after a takeover, on the standby; the old value never comes back.
    ha.net.kill(holders[1]);
    ha.run(Duration::from_millis(100));
    assert_eq!(ha.one(cp, 3, vread("k")), Body::NotFound);
    assert_eq!(
        ha.one(cp, 4, set("k", "x", Some(v1))),
        Body::Conflict { version: 0 }
    );
    // The slave that was away returns (it held nothing), so the slaves can elect the standby.
    ha.net.restart(away, true);
    ha.run(Duration::from_millis(300));
    ha.net.kill(p);
    ha.run(Duration::from_millis(1200));
    assert_eq!(ha.net.master(b).status().role, ServerRole::Primary);
    let cb = ha.cb;
    assert_eq!(ha.one(cb, 5, vread("k")), Body::NotFound);
    assert_eq!(ha.one(cb, 6, delete("k")), Body::NotFound);
}

#[test]
fn a_purge_a_slave_dies_before_acking_leaves_the_tombstone_in_place() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    let Body::Written { version: v1 } = ha.one(cp, 1, set("k", "old", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    let (holders, _) = split_by_holding(&ha, b"k");
    // The PURGE to one holder is lost (its process dies before it reads it); the others ACK.
    let dying = holders[0];
    ha.net
        .drop_if(move |m| m.to == dying && matches!(m.frame.body, Body::Purge { .. }));
    let Body::Written { version: tomb } = ha.one(cp, 2, delete("k")) else {
        panic!("DELETE did not answer WRITTEN");
    };
    ha.run(Duration::from_millis(20));
    assert_eq!(
        ha.holds(dying, b"k"),
        Some(tomb | TOMBSTONE),
        "the DELETE's STORE arrived"
    );
    ha.net.kill(dying);
    ha.net.stop_dropping();
    ha.run(Duration::from_millis(300));
    // Not every live slave confirmed: the key stays a tombstone on both masters.
    assert_eq!(
        ha.net.master(p).status().keys,
        1,
        "collected without every ACK"
    );
    assert_eq!(ha.net.master(b).status().keys, 1, "the standby forgot it");
    assert_eq!(ha.one(cp, 3, vread("k")), Body::NotFound);
    // The slave comes back with the tombstone on its disk: still NOT_FOUND, CAS still sees
    // the key missing, and nothing of the old value anywhere.
    ha.net.restart(dying, true);
    ha.run(Duration::from_millis(600));
    assert_eq!(ha.one(cp, 4, vread("k")), Body::NotFound);
    assert_eq!(
        ha.one(cp, 5, set("k", "x", Some(v1))),
        Body::Conflict { version: 0 }
    );
    for &s in &ha.slaves {
        assert_ne!(ha.holds(s, b"k"), Some(v1), "slave {s:?} has the old value");
    }
    // The next DELETE of the key finds nothing, and a write after it is the key's value.
    assert_eq!(ha.one(cp, 6, delete("k")), Body::NotFound);
    let Body::Written { version: v2 } = ha.one(cp, 7, set("k", "new", Some(0))) else {
        panic!("SET if absent did not answer WRITTEN");
    };
    assert!(v2 > tomb);
    assert!(
        matches!(ha.one(cp, 8, vread("k")), Body::Versioned { version, value } if version == v2 && value == b"new")
    );
}

#[test]
fn a_purge_left_unanswered_by_a_live_slave_leaves_the_tombstone_in_place() {
    let mut ha = Ha::new();
    let (p, b, cp) = (ha.p, ha.b, ha.cp);
    let Body::Written { .. } = ha.one(cp, 1, set("k", "old", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    // Every PURGE to one slave is lost while it stays up and answers everything else: its
    // ACK never comes, and the PURGE's deadline passes.
    let silent = ha.slaves[2];
    ha.net
        .drop_if(move |m| m.to == silent && matches!(m.frame.body, Body::Purge { .. }));
    let Body::Written { .. } = ha.one(cp, 2, delete("k")) else {
        panic!("DELETE did not answer WRITTEN");
    };
    ha.run(Duration::from_millis(1500));
    assert_eq!(
        ha.net.master(p).status().keys,
        1,
        "collected without every ACK"
    );
    assert_eq!(ha.net.master(b).status().keys, 1, "the standby forgot it");
    assert_eq!(ha.one(cp, 3, vread("k")), Body::NotFound);
    // Once PURGEs arrive again, the key's next DELETE collects it.
    ha.net.stop_dropping();
    ha.run(Duration::from_millis(1000));
    let Body::Written { .. } = ha.one(cp, 4, set("k", "again", Some(0))) else {
        panic!("SET if absent did not answer WRITTEN");
    };
    let Body::Written { .. } = ha.one(cp, 5, delete("k")) else {
        panic!("DELETE did not answer WRITTEN");
    };
    ha.run(Duration::from_millis(300));
    assert_eq!(ha.net.master(p).status().keys, 0);
    assert_eq!(ha.net.master(b).status().keys, 0);
}

#[test]
fn an_incr_whose_holders_answer_late_still_counts_right() {
    // Both holders answer past the read retry, so the INCR's read phase asks both and decides
    // on the first answer; the write and the next INCR must still count from it. (The torture
    // run found a master that panicked on a late answer to such a read phase, once the op was
    // gone; this sim does not reach that timing, `dsm-torture --seed 4242` did.)
    let mut ha = Ha::new();
    let (p, cp) = (ha.p, ha.cp);
    let Body::Written { .. } = ha.one(cp, 1, set("n", "5", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    let (holders, _) = split_by_holding(&ha, b"n");
    // Both holders answer late, past the read retry, one later than the other.
    ha.net.delay(holders[0], p, Duration::from_millis(120));
    ha.net.delay(holders[1], p, Duration::from_millis(400));
    let incr = |delta| Body::Incr {
        key: b"n".to_vec(),
        delta,
    };
    let frames = ha.net.request(cp, 2, incr(1));
    assert!(frames.is_empty(), "answered before any FETCH came back");
    ha.run(Duration::from_millis(1000));
    let answers = ha.net.take(cp);
    assert!(
        matches!(&answers[..], [Frame { body: Body::Versioned { value, .. }, .. }] if value == b"6"),
        "{answers:?}"
    );
    // Every late answer has arrived; the master still serves the key, and others.
    ha.run(Duration::from_millis(500));
    let mut answers = ha.net.request(cp, 3, incr(2));
    ha.run(Duration::from_millis(1000));
    answers.extend(ha.net.take(cp));
    assert!(
        matches!(&answers[..], [Frame { body: Body::Versioned { value, .. }, .. }] if value == b"8"),
        "{answers:?}"
    );
    assert_eq!(ha.net.master(p).status().role, ServerRole::Primary);
}
