//! Exactly-once writes (WRITE_ONCE, `wire/PROTOCOL.md` section 6) on the simulated network
//! (`common`): a primary, a standby and three slaves. A write sent again gets its first answer
//! and is not applied again: from the primary's records while it lives, from the slaves'
//! (RECALL) after a failover. A standby's NOT_PRIMARY names the primary's client address.

use std::time::Duration;

use dsm_wire::{primary_named, Body, ErrorCode, Frame, Opcode, ServerRole, WriteId};

mod common;
use common::{Msg, Net, NodeId};

const PATIENCE: Duration = Duration::from_millis(500);

struct Cluster {
    net: Net,
    p: NodeId,
    b: NodeId,
    slaves: [NodeId; 3],
    cp: NodeId,
    cb: NodeId,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with_backup(common::new_cluster())
    }

    /// With the standby configured so.
    fn with_backup(cfg: dsm_master::Config) -> Cluster {
        let mut net = Net::new();
        let p = net.add_master(common::new_cluster());
        let slaves = ["s0", "s1", "s2"].map(|id| net.add_slave(p, id));
        let b = net.add_backup(cfg, p);
        let cp = net.add_client(p);
        let cb = net.add_client(b);
        let mut c = Cluster {
            net,
            p,
            b,
            slaves,
            cp,
            cb,
        };
        c.run(Duration::from_millis(200));
        c
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

    /// Kill the primary and let the slaves elect the standby.
    fn fail_over(&mut self) {
        self.net.kill(self.p);
        self.run(Duration::from_millis(600));
        assert_eq!(self.net.master(self.b).status().role, ServerRole::Primary);
        self.net.stop_dropping();
    }

    /// STORE_ONCE frames the slaves received, all together.
    fn stores_once(&self) -> usize {
        let net = &self.net;
        self.slaves
            .iter()
            .map(|&s| net.peer(s).received(Opcode::StoreOnce))
            .sum()
    }
}

fn once(client: u64, seq: u64, acked: u64, resent_ms: u32, value: &str) -> Body {
    Body::WriteOnce {
        id: WriteId { client, seq, acked },
        resent_ms,
        key: b"k".to_vec(),
        value: value.into(),
    }
}

fn plain(value: &str) -> Body {
    Body::Write {
        key: b"k".to_vec(),
        value: value.into(),
    }
}

fn read(net: &mut Net, c: NodeId, req: u64) -> Vec<Frame> {
    net.request(c, req, Body::Read { key: b"k".to_vec() })
}

fn value(req: u64, v: &str) -> Vec<Frame> {
    vec![Frame::new(
        req,
        Body::Value {
            value: v.as_bytes().to_vec(),
        },
    )]
}

fn ok(req: u64) -> Vec<Frame> {
    vec![Frame::new(req, Body::Ok)]
}

fn error_code(frames: &[Frame]) -> Option<ErrorCode> {
    match frames {
        [Frame {
            body: Body::Error { code, .. },
            ..
        }] => Some(*code),
        _ => None,
    }
}

#[test]
fn a_write_sent_again_to_the_primary_gets_its_first_answer_and_is_not_applied_again() {
    let mut c = Cluster::new();
    let (cp, net) = (c.cp, &mut c.net);
    assert_eq!(net.request(cp, 1, once(7, 1, 1, 0, "a")), ok(1));
    assert_eq!(net.request(cp, 2, plain("b")), ok(2));
    let stores = c.stores_once();
    assert_eq!(stores, 2, "R = 2 copies of the first send");
    let net = &mut c.net;
    // Sent again (its answer was lost, say): the first answer, and nothing stored.
    assert_eq!(net.request(cp, 3, once(7, 1, 1, 150, "a")), ok(3));
    assert_eq!(read(net, cp, 4), value(4, "b"));
    assert_eq!(c.stores_once(), stores);
    let net = &mut c.net;
    assert_eq!(net.master(c.p).exactly_once_records(), (1, 1));
    // The next write says the first was answered: its record goes, and a late copy of the
    // first is refused rather than applied.
    assert_eq!(net.request(cp, 5, once(7, 2, 2, 0, "c")), ok(5));
    assert_eq!(net.master(c.p).exactly_once_records(), (1, 1));
    assert_eq!(
        error_code(&net.request(cp, 6, once(7, 1, 1, 300, "a"))),
        Some(ErrorCode::BadRequest)
    );
    assert_eq!(read(net, cp, 7), value(7, "c"));
}

#[test]
fn a_copy_sent_while_the_first_still_runs_waits_for_it_and_gets_its_answer() {
    let mut c = Cluster::new();
    let cp = c.cp;
    // Both in one turn: the copy queues behind the first on the key.
    c.net.send(cp, Frame::new(1, once(9, 1, 1, 0, "a")));
    c.net.send(cp, Frame::new(2, once(9, 1, 1, 5, "a")));
    c.net.settle();
    assert_eq!(
        c.net.take(cp),
        vec![Frame::new(1, Body::Ok), Frame::new(2, Body::Ok)]
    );
    assert_eq!(c.stores_once(), 2, "applied once, on R = 2 slaves");
}

/// The primary stores the write on its slaves and dies before its OK leaves. The new primary
/// has no record of it; the client sends it again there after another client's write. The
/// slaves remember storing it (RECALL), so the answer is OK and the other write stays.
#[test]
fn a_write_the_dead_primary_applied_is_answered_ok_by_the_new_one_and_not_applied_again() {
    let mut c = Cluster::new();
    let (p, cp, cb) = (c.p, c.cp, c.cb);
    c.net.drop_if(move |m: &Msg| m.from == p && m.to == cp);
    c.net.send(cp, Frame::new(1, once(5, 1, 1, 0, "a")));
    c.net.settle();
    assert!(c.net.take(cp).is_empty(), "the answer was lost");
    assert_eq!(c.stores_once(), 2);
    c.fail_over();
    let net = &mut c.net;
    assert_eq!(net.request(cb, 2, plain("b")), ok(2));
    assert_eq!(net.request(cb, 3, once(5, 1, 1, 900, "a")), ok(3));
    assert_eq!(
        read(net, cb, 4),
        value(4, "b"),
        "the write was not applied twice"
    );
    assert_eq!(c.stores_once(), 2);
}

/// The primary takes a write and dies before any STORE leaves it. Sent again to the new
/// primary, no slave stored it: it is applied there, once; a third copy gets that answer.
#[test]
fn a_write_no_slave_stored_is_applied_once_by_the_new_primary() {
    let mut c = Cluster::new();
    let (p, cp, cb) = (c.p, c.cp, c.cb);
    c.net.drop_if(move |m: &Msg| {
        m.from == p && (m.to == cp || matches!(m.frame.body, Body::StoreOnce { .. }))
    });
    c.net.send(cp, Frame::new(1, once(6, 1, 1, 0, "a")));
    c.net.settle();
    assert_eq!(c.stores_once(), 0);
    c.fail_over();
    let net = &mut c.net;
    // (Its first send 300 ms ago: the slaves started longer ago than that, so they can say.)
    assert_eq!(net.request(cb, 2, once(6, 1, 1, 300, "a")), ok(2));
    assert_eq!(read(net, cb, 3), value(3, "a"));
    assert_eq!(c.stores_once(), 2);
    let net = &mut c.net;
    assert_eq!(net.request(cb, 4, plain("b")), ok(4));
    assert_eq!(net.request(cb, 5, once(6, 1, 1, 1000, "a")), ok(5));
    assert_eq!(read(net, cb, 6), value(6, "b"));
    assert_eq!(c.stores_once(), 2);
}

/// A slave that started after the write could have reached it cannot say it never stored it:
/// the new primary answers TIMEOUT (unknown) rather than risk applying it twice.
#[test]
fn a_slave_too_young_to_know_makes_the_answer_unknown_not_a_second_application() {
    let mut c = Cluster::new();
    let cb = c.cb;
    // No primary ever saw this write; it claims a first send an hour ago, before any slave
    // process here started.
    c.fail_over();
    let reply = c.net.request(cb, 1, once(8, 1, 1, 3_600_000, "a"));
    assert_eq!(error_code(&reply), Some(ErrorCode::Timeout), "{reply:?}");
    assert_eq!(c.stores_once(), 0);
}

#[test]
fn a_standby_names_the_primarys_client_address_in_not_primary() {
    let mut c = Cluster::new();
    let (p, cb) = (c.p, c.cb);
    let reply = c.net.request(cb, 1, once(4, 1, 1, 0, "a"));
    let [Frame {
        body: Body::Error { code, text },
        ..
    }] = reply.as_slice()
    else {
        panic!("{reply:?}")
    };
    assert_eq!(*code, ErrorCode::NotPrimary);
    let primary = c.net.master(p).status().addr;
    assert_eq!(
        primary_named(text).map(|a| a.to_string()),
        Some(primary),
        "{text}"
    );
}

// SET, DELETE and INCR sent exactly-once (ONCE): the slaves keep who wrote them (STORE_ONCE,
// STORE_KEEP for an INCR's value), and a new primary answers a copy sent again with the first
// answer, which deciding the change again would not give.

fn change_once(seq: u64, resent_ms: u32, inner: Body) -> Body {
    Body::Once {
        id: WriteId {
            client: 11,
            seq,
            acked: 1,
        },
        resent_ms,
        inner: Box::new(inner),
    }
}

fn incr(delta: i64) -> Body {
    Body::Incr {
        key: b"k".to_vec(),
        delta,
    }
}

fn vread(net: &mut Net, c: NodeId, req: u64) -> Vec<Frame> {
    net.request(c, req, Body::VRead { key: b"k".to_vec() })
}

impl Cluster {
    /// Frames of `op` the slaves received, all together.
    fn received(&self, op: Opcode) -> usize {
        let net = &self.net;
        self.slaves.iter().map(|&s| net.peer(s).received(op)).sum()
    }

    /// Send `body` from the primary's client and lose the answer; then the failover.
    fn answer_lost_then_fail_over(&mut self, body: Body) {
        let (p, cp) = (self.p, self.cp);
        self.net.drop_if(move |m: &Msg| m.from == p && m.to == cp);
        self.net.send(cp, Frame::new(100, body));
        self.net.settle();
        assert!(self.net.take(cp).is_empty(), "the answer was lost");
        self.fail_over();
    }
}

/// An INCR the dead primary applied, sent again after another client's INCR on the new
/// primary: the first answer (the value it made, at its version), and it is not added twice.
#[test]
fn an_incr_sent_again_after_a_takeover_gets_its_first_value_and_is_applied_once() {
    let mut c = Cluster::new();
    let (cp, cb) = (c.cp, c.cb);
    assert_eq!(c.net.request(cp, 1, plain("10")), ok(1));
    c.answer_lost_then_fail_over(change_once(1, 0, incr(5)));
    assert_eq!(
        c.received(Opcode::StoreKeep),
        2,
        "R = 2 copies keep the value"
    );
    let net = &mut c.net;
    let first = vread(net, cb, 2);
    let [Frame {
        body: Body::Versioned { version, value: v },
        ..
    }] = first.as_slice()
    else {
        panic!("{first:?}")
    };
    assert_eq!(v, b"15", "the dead primary's INCR took effect");
    let version = *version;
    let later = net.request(cb, 3, incr(100));
    assert!(
        matches!(&later[..], [Frame { body: Body::Versioned { value, .. }, .. }] if value == b"115"),
        "{later:?}"
    );
    let again = net.request(cb, 4, change_once(1, 900, incr(5)));
    let first_answer = Body::Versioned {
        version,
        value: b"15".to_vec(),
    };
    assert_eq!(again, vec![Frame::new(4, first_answer.clone())]);
    assert_eq!(read(net, cb, 5), value(5, "115"), "not added twice");
    assert_eq!(c.received(Opcode::StoreKeep), 2);
    // The new primary keeps the answer: a third copy gets it from its records, no RECALL.
    let recalls = c.received(Opcode::Recall);
    let third = c.net.request(cb, 6, change_once(1, 1500, incr(5)));
    assert_eq!(third, vec![Frame::new(6, first_answer)]);
    assert_eq!(c.received(Opcode::Recall), recalls);
}

/// A compare-and-set that created the key on the dead primary, sent again after another
/// client wrote the key: decided again it would conflict; it gets its first WRITTEN.
#[test]
fn a_cas_sent_again_after_a_takeover_gets_its_first_written_not_a_conflict() {
    let mut c = Cluster::new();
    let cb = c.cb;
    let cas = Body::Set {
        key: b"k".to_vec(),
        expected: Some(0),
        value: b"a".to_vec(),
    };
    c.answer_lost_then_fail_over(change_once(1, 0, cas.clone()));
    assert_eq!(c.received(Opcode::StoreOnce), 2);
    let net = &mut c.net;
    let Body::Versioned { version, .. } = vread(net, cb, 1).remove(0).body else {
        panic!("the CAS took effect")
    };
    assert_eq!(net.request(cb, 2, plain("b")), ok(2));
    let again = net.request(cb, 3, change_once(1, 900, cas.clone()));
    assert_eq!(again, vec![Frame::new(3, Body::Written { version })]);
    assert_eq!(read(net, cb, 4), value(4, "b"));
    // A CAS that conflicts is answered CONFLICT again from the records, even once the key
    // has the version it expected: the first answer stands.
    let stale = Body::Set {
        key: b"k".to_vec(),
        expected: Some(version),
        value: b"c".to_vec(),
    };
    let conflict = net.request(cb, 5, change_once(2, 0, stale.clone()));
    let [Frame {
        body: Body::Conflict { version: now },
        ..
    }] = conflict.as_slice()
    else {
        panic!("{conflict:?}")
    };
    assert!(*now > version);
    let again = net.request(cb, 6, change_once(2, 100, stale));
    assert_eq!(
        again,
        conflict
            .iter()
            .map(|f| Frame::new(6, f.body.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(read(net, cb, 7), value(7, "b"));
}

/// A DELETE the dead primary applied, sent again after another client wrote the key anew:
/// its first WRITTEN (the tombstone's version), and the new value is not deleted.
#[test]
fn a_delete_sent_again_after_a_takeover_gets_its_first_answer_and_deletes_nothing_new() {
    let mut c = Cluster::new();
    let (cp, cb) = (c.cp, c.cb);
    assert_eq!(c.net.request(cp, 1, plain("a")), ok(1));
    let delete = Body::Delete {
        key: b"k".to_vec(),
        expected: None,
    };
    c.answer_lost_then_fail_over(change_once(1, 0, delete.clone()));
    let net = &mut c.net;
    assert_eq!(read(net, cb, 2), vec![Frame::new(2, Body::NotFound)]);
    assert_eq!(net.request(cb, 3, plain("b")), ok(3));
    let again = net.request(cb, 4, change_once(1, 900, delete));
    let [Frame {
        body: Body::Written { version },
        ..
    }] = again.as_slice()
    else {
        panic!("{again:?}")
    };
    assert!(
        !dsm_wire::is_tombstone(*version),
        "WRITTEN carries the plain version"
    );
    assert_eq!(
        read(net, cb, 5),
        value(5, "b"),
        "the new value was not deleted"
    );
}

/// An INCR the dead primary took but never stored: sent again, no slave has it, so the new
/// primary applies it, once, and STOREs it with its writer.
#[test]
fn an_incr_no_slave_stored_is_applied_once_by_the_new_primary() {
    let mut c = Cluster::new();
    let (p, cp, cb) = (c.p, c.cp, c.cb);
    assert_eq!(c.net.request(cp, 1, plain("1")), ok(1));
    c.net.drop_if(move |m: &Msg| {
        m.from == p && (m.to == cp || matches!(m.frame.body, Body::StoreOnce { .. }))
    });
    c.net.send(cp, Frame::new(2, change_once(1, 0, incr(2))));
    c.net.settle();
    assert_eq!(c.received(Opcode::StoreKeep), 0);
    c.fail_over();
    let net = &mut c.net;
    let again = net.request(cb, 3, change_once(1, 300, incr(2)));
    assert!(
        matches!(&again[..], [Frame { body: Body::Versioned { value, .. }, .. }] if value == b"3"),
        "{again:?}"
    );
    assert_eq!(read(net, cb, 4), value(4, "3"));
    assert_eq!(c.received(Opcode::StoreKeep), 2);
}

/// A deferred request that times out leaves its id in the deferred list; a resent INCR that
/// takes its slot (the slab reuses the slot freed last) and is deferred too is in that list
/// twice. When the grace ends, the first start asks the slaves (RECALL); the second must not
/// start it again as if it were still waiting (it has no version while it asks): that sent a
/// STORE of the probe's empty value, and the INCR waited for an ACK its phase ignored, until
/// TIMEOUT. (A WRITE_ONCE sent again shares the RECALL, and the fix.)
#[test]
fn a_resent_change_deferred_twice_after_a_takeover_is_started_once() {
    // Three copies wanted: with one slave gone, writes wait for it while the takeover's grace
    // lasts (1.8 s from the election, a few hundred ms into `fail_over`). The first request
    // times out within it; the grace ends within the second's deadline. No redial: the dead
    // slave stays out.
    let mut c = Cluster::with_backup(dsm_master::Config {
        replicas: 3,
        request_timeout: Duration::from_millis(1000),
        takeover_grace: Duration::from_millis(1800),
        repair_after: Duration::from_secs(3600),
        ..common::new_cluster()
    });
    c.fail_over();
    let (b, cb) = (c.b, c.cb);
    c.net.kill(c.slaves[2]);
    c.net.advance(Duration::from_millis(50));
    assert_eq!(c.net.live_slaves(b), 2);
    let first = Body::Write {
        key: b"j".to_vec(),
        value: "v".into(),
    };
    c.net.send(cb, Frame::new(1, first));
    c.net.advance(Duration::from_millis(1100));
    let answered = c.net.take(cb);
    assert_eq!(
        error_code(&answered),
        Some(ErrorCode::Timeout),
        "{answered:?}"
    );
    c.net.send(cb, Frame::new(2, change_once(1, 900, incr(5))));
    c.net.advance(Duration::from_millis(100));
    let early = c.net.take(cb);
    assert!(
        early.is_empty(),
        "deferred while the grace lasts: {early:?}"
    );
    c.net.advance(Duration::from_millis(1500));
    let answered = c.net.take(cb);
    assert!(
        matches!(&answered[..], [Frame { req_id: 2, body: Body::Versioned { value, .. } }] if value == b"5"),
        "{answered:?}"
    );
    let s0 = c.slaves[0];
    assert_eq!(
        c.net.store(s0).version_of(b"k").map(|_| ()),
        Some(()),
        "the INCR is stored"
    );
    assert_eq!(read(&mut c.net, cb, 3), value(3, "5"));
}

/// A write sent again while a slave that stored its first send is out of reach: the slaves
/// asked say "not stored", and applied again every one of them refuses it for want of room.
/// OUT_OF_MEMORY would say it did not happen, yet the first copy comes back with its slave
/// (its INVENTORY after a restart) and reads. The answer must be TIMEOUT (unknown) instead.
/// (Seen in `tests/tests/memory.rs` under load: "big-0-7 was refused OUT_OF_MEMORY, yet reads
/// 1048576 bytes".)
#[test]
fn a_write_sent_again_while_a_slave_that_may_hold_it_is_away_is_not_answered_did_not_happen() {
    let mut net = Net::new();
    let p = net.add_master(common::new_cluster());
    let s0 = net.add_slave(p, "s0");
    // s1 and s2 have no room for the value: they refuse it with OUT_OF_MEMORY.
    let _s1 = net.add_slave_with(p, "s1", dsm_slave::Store::in_memory(64));
    let _s2 = net.add_slave_with(p, "s2", dsm_slave::Store::in_memory(64));
    let cp = net.add_client(p);
    net.advance(Duration::from_millis(300));
    let big = "a".repeat(1000);

    // The first send: s1 and s2 refuse it, s0 stores it but its ACK is lost with its
    // connection. The outcome is unknown (NO_SLAVES).
    net.drop_if(move |m: &Msg| m.from == s0 && matches!(m.frame.body, Body::Ack { .. }));
    net.send(cp, Frame::new(1, once(3, 1, 1, 0, &big)));
    net.settle();
    assert!(net.take(cp).is_empty(), "waits for s0's ACK");
    assert_eq!(net.store(s0).version_of(b"k").map(|_| ()), Some(()));
    let conn = net.conn_of(s0);
    net.close(conn);
    net.stop_dropping();
    let first = net.take(cp);
    assert_eq!(error_code(&first), Some(ErrorCode::NoSlaves), "{first:?}");

    // Sent again while s0 is away.
    let again = net.request(cp, 2, once(3, 1, 1, 50, &big));
    let refused = error_code(&again) == Some(ErrorCode::OutOfMemory);

    // s0 restarts on its data and reports what it holds.
    net.kill(s0);
    net.restart(s0, true);
    net.connect(s0, p);
    net.settle();
    net.advance(Duration::from_millis(100));
    let read = read(&mut net, cp, 3);
    assert!(
        !refused || read == vec![Frame::new(3, Body::NotFound)],
        "answered OUT_OF_MEMORY (did not happen), yet it reads: {:?}",
        read.iter().map(|f| f.body.opcode()).collect::<Vec<_>>()
    );
    assert_eq!(error_code(&again), Some(ErrorCode::Timeout), "{again:?}");
    assert_eq!(read, value(3, &big));
}

/// An exactly-once write in flight when the primary is cut from every slave: its STOREs get no
/// ACK, every slave is dropped, and by then the primary has lost its lease. It must not answer
/// NO_SLAVES ("every slave chosen for the write died": the client cannot tell whether it
/// happened), but say it cannot vouch for it (NOT_PRIMARY, `taken; `), so the client sends it
/// again to the primary the slaves elect, which finds out and applies it once.
#[test]
fn a_write_in_flight_when_the_primary_is_cut_from_every_slave_is_sent_on_not_failed() {
    let mut c = Cluster::new();
    let (p, b, cp, cb) = (c.p, c.b, c.cp, c.cb);
    for s in c.slaves {
        c.net.cut(p, s);
    }
    c.net.send(cp, Frame::new(1, once(6, 1, 1, 0, "a")));
    let mut answer = Vec::new();
    for _ in 0..150 {
        c.run(Duration::from_millis(10));
        answer = c.net.take(cp);
        if !answer.is_empty() {
            break;
        }
    }
    match &answer[..] {
        [Frame {
            req_id: 1,
            body:
                Body::Error {
                    code: ErrorCode::NotPrimary,
                    text,
                },
        }] => assert!(dsm_wire::says_taken(text), "{text}"),
        other => panic!("not a NOT_PRIMARY saying taken: {other:?}"),
    }
    c.run(Duration::from_millis(1000));
    assert_eq!(c.net.master(b).status().role, ServerRole::Primary);
    let net = &mut c.net;
    assert_eq!(net.request(cb, 2, once(6, 1, 1, 1500, "a")), ok(2));
    assert_eq!(read(net, cb, 3), value(3, "a"));
}
