//! The primary's read cache (`master/src/cache.rs`) on the simulated network (`common`): a
//! READ after a committed write is answered without a FETCH reaching any slave, never with a
//! value older than the latest commit; DELETE, SET (compare-and-set) and INCR keep it right;
//! a new primary starts without one; `read_cache: 0` sends every READ to a slave; the bound
//! evicts; large values are kept only from writes and within a bound of their own.

use std::time::Duration;

use dsm_master::Config;
use dsm_wire::{Body, ErrorCode, Frame, Opcode, ServerRole};

mod common;
use common::{delete, read, value, write, Net, NodeId};

/// How long a slave waits for a silent master before it looks for another.
const PATIENCE: Duration = Duration::from_millis(500);

struct Sim {
    net: Net,
    m: NodeId,
    slaves: Vec<NodeId>,
    c: NodeId,
}

impl Sim {
    fn new(cfg: Config) -> Sim {
        let mut net = Net::new();
        let m = net.add_master(cfg);
        let slaves = (0..3).map(|i| net.add_slave(m, &format!("s{i}"))).collect();
        let c = net.add_client(m);
        Sim { net, m, slaves, c }
    }

    /// FETCHes that reached any slave so far.
    fn fetches(&self) -> usize {
        (self.slaves.iter())
            .map(|&s| self.net.peer(s).received(Opcode::Fetch))
            .sum()
    }

    /// One request, carried until quiet; its one answer.
    fn one(&mut self, req: u64, body: Body) -> Body {
        let frames = self.net.request(self.c, req, body);
        match <[Frame; 1]>::try_from(frames) {
            Ok([f]) => {
                assert_eq!(f.req_id, req);
                f.body
            }
            Err(frames) => panic!("expected one answer, got {frames:?}"),
        }
    }

    /// A READ's answer, and whether it took a FETCH.
    fn read(&mut self, req: u64, key: &str) -> (Body, bool) {
        let before = self.fetches();
        let got = self.one(req, read(key));
        (got, self.fetches() > before)
    }
}

fn with_cache(bytes: usize) -> Config {
    Config {
        read_cache: bytes,
        ..common::new_cluster()
    }
}

#[test]
fn a_read_after_a_committed_write_takes_no_fetch() {
    let mut s = Sim::new(common::new_cluster());
    assert_eq!(s.one(1, write("k", "v1")), Body::Ok);
    assert_eq!(s.read(2, "k"), (value("v1"), false));
    assert_eq!(s.one(3, write("k", "v2")), Body::Ok);
    assert_eq!(
        s.read(4, "k"),
        (value("v2"), false),
        "the commit replaced it"
    );
    let st = s.net.master(s.m).read_cache();
    assert_eq!((st.entries, st.hits), (1, 2));
    // A key never written is NOT_FOUND from the map, as before.
    assert_eq!(s.read(7, "nope"), (Body::NotFound, false));
    assert_eq!(s.fetches(), 0);
}

#[test]
fn a_large_written_value_is_kept_by_reference_a_fetched_one_is_not() {
    // Over the copied values' limit: the WRITE's own value is kept (no copy), its READ takes
    // no FETCH, and a second write replaces it.
    let mut s = Sim::new(common::new_cluster());
    let big = "x".repeat(64 << 10);
    assert_eq!(s.one(1, write("big", &big)), Body::Ok);
    assert_eq!(s.read(2, "big"), (value(&big), false));
    let bigger = "y".repeat(100 << 10);
    assert_eq!(s.one(3, write("big", &bigger)), Body::Ok);
    assert_eq!(s.read(4, "big"), (value(&bigger), false));
    let st = s.net.master(s.m).read_cache();
    assert_eq!(st.entries, 1);
    assert!(
        st.bytes as usize >= bigger.len(),
        "counted by its bytes: {st:?}"
    );
    assert_eq!(st.large_bytes, st.bytes, "all of it large: {st:?}");
    // A VREAD of it answers VERSIONED from the same buffer, at the version the map holds.
    let before = s.fetches();
    let Body::Versioned {
        version,
        value: got,
    } = s.one(5, Body::VRead { key: "big".into() })
    else {
        panic!("VREAD did not answer VERSIONED");
    };
    assert_eq!((got, s.fetches()), (bigger.clone().into_bytes(), before));
    assert!(version > 0);

    // A value over an eighth of the large bound is not kept, and a large value a FETCH
    // brought is never kept (it would be a copy): every READ of it asks a slave.
    let mut s2 = Sim::new(Config {
        read_cache_large: 256 << 10,
        ..common::new_cluster()
    });
    assert_eq!(s2.one(1, write("big", &big)), Body::Ok);
    assert_eq!(s2.read(2, "big"), (value(&big), true));
    assert_eq!(s2.read(3, "big"), (value(&big), true));
    assert_eq!(s2.net.master(s2.m).read_cache().entries, 0);
    // With the cache off, large values are not kept either.
    let mut s3 = Sim::new(with_cache(0));
    assert_eq!(s3.one(1, write("big", &big)), Body::Ok);
    assert_eq!(s3.read(2, "big"), (value(&big), true));
}

#[test]
fn large_values_keep_to_their_own_bound_and_push_out_no_small_one() {
    // Small values: room for one; large: 1 MiB, an eighth is 128 KiB, so at most ten 100 KiB
    // values.
    let mut s = Sim::new(Config {
        read_cache_large: 1 << 20,
        ..with_cache(dsm_master::cache::ENTRY_OVERHEAD + 1)
    });
    assert_eq!(s.one(1, write("small", "s")), Body::Ok);
    let vals: Vec<String> = (0..14u8)
        .map(|i| char::from(b'a' + i).to_string().repeat(100 << 10))
        .collect();
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(s.one(10 + i as u64, write(&format!("big{i}"), v)), Body::Ok);
    }
    let st = s.net.master(s.m).read_cache();
    assert!(
        st.entries <= 11,
        "ten large and the small one at most: {st:?}"
    );
    assert!(st.evictions >= 4, "{st:?}");
    assert!(st.bytes <= (1 << 20) + 65, "{st:?}");
    assert!(st.large_bytes <= 1 << 20, "{st:?}");
    assert_eq!(
        s.read(2, "small"),
        (value("s"), false),
        "the small one stayed"
    );
    // Every value reads right, from the cache or a slave; the last one written from the cache.
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(s.read(30 + i as u64, &format!("big{i}")).0, value(v));
    }
    assert_eq!(s.read(50, "big13"), (value(&vals[13]), false));
}

#[test]
fn with_the_cache_off_every_read_goes_to_a_slave() {
    let mut s = Sim::new(with_cache(0));
    assert_eq!(s.one(1, write("k", "v1")), Body::Ok);
    assert_eq!(s.read(2, "k"), (value("v1"), true));
    assert_eq!(s.read(3, "k"), (value("v1"), true));
    assert_eq!(s.net.master(s.m).read_cache().entries, 0);
}

#[test]
fn a_fetched_value_fills_the_cache() {
    let mut s = Sim::new(common::new_cluster());
    // A small cache that the second key's commit pushes the first out of.
    let mut s2 = Sim::new(with_cache(dsm_master::cache::ENTRY_OVERHEAD + 10));
    for s in [&mut s, &mut s2] {
        assert_eq!(s.one(1, write("a", "aaaaaaaa")), Body::Ok);
        assert_eq!(s.one(2, write("b", "bbbbbbbb")), Body::Ok);
    }
    // Evicted: the first READ asks a slave and keeps the answer; the second does not.
    assert_eq!(s2.read(3, "a"), (value("aaaaaaaa"), true));
    assert_eq!(s2.read(4, "a"), (value("aaaaaaaa"), false));
    assert_eq!(s2.read(5, "b"), (value("bbbbbbbb"), true));
    let st = s2.net.master(s2.m).read_cache();
    assert_eq!((st.entries, st.evictions), (1, 3));
    // A READ answered without an operation (a hit) and one that falls back to a FETCH (a
    // miss) each count once: the miss is not counted by the look that found it missing and
    // again by the FETCH path's own look.
    assert_eq!((st.hits, st.misses), (1, 2));
    assert_eq!(s.read(3, "a"), (value("aaaaaaaa"), false));
}

#[test]
fn the_bound_evicts_and_every_read_stays_right() {
    let each = dsm_master::cache::ENTRY_OVERHEAD + 16;
    let mut s = Sim::new(with_cache(each * 3));
    for i in 0..10u64 {
        let (k, v) = (format!("k{i}"), format!("value-{i:010}"));
        assert_eq!(s.one(i, write(&k, &v)), Body::Ok);
    }
    let st = s.net.master(s.m).read_cache();
    assert_eq!((st.entries, st.evictions), (3, 7));
    assert!(st.bytes as usize <= each * 3);
    let mut fetched = 0;
    for i in 0..10u64 {
        let (k, v) = (format!("k{i}"), format!("value-{i:010}"));
        let (got, f) = s.read(100 + i, &k);
        assert_eq!(got, value(&v));
        fetched += usize::from(f);
    }
    assert!(fetched >= 7, "only {fetched} READs went to a slave");
    assert!(s.net.master(s.m).read_cache().bytes as usize <= each * 3);
}

/// Pipelined: a READ ahead of a WRITE is answered from the cache at once; the READ behind it
/// waits for the commit and gets the new value, never the cached old one.
#[test]
fn a_read_behind_a_write_waits_and_sees_the_new_value() {
    let mut s = Sim::new(common::new_cluster());
    assert_eq!(s.one(1, write("k", "old")), Body::Ok);
    // One holder silent: the next write cannot finish until it is replaced.
    let holder = s.net.holders_of("k")[0];
    s.net.freeze(holder);
    let c = s.c;
    s.net.send(c, Frame::new(2, read("k")));
    s.net.send(c, Frame::new(3, write("k", "new")));
    s.net.send(c, Frame::new(4, read("k")));
    s.net.settle();
    assert_eq!(s.net.take(c), vec![Frame::new(2, value("old"))]);
    s.net.advance(Duration::from_millis(300));
    assert_eq!(
        s.net.take(c),
        vec![Frame::new(3, Body::Ok), Frame::new(4, value("new"))]
    );
    assert_eq!(s.read(5, "k"), (value("new"), false));
}

#[test]
fn a_delete_drops_the_value_and_reads_not_found() {
    let mut s = Sim::new(common::new_cluster());
    assert_eq!(s.one(1, write("k", "v")), Body::Ok);
    assert_eq!(s.net.master(s.m).read_cache().entries, 1);
    // A slave away (it may come back with an older copy): the tombstone is kept, not
    // collected, so what drops the value is the tombstone's commit itself.
    let holders = s.net.holders_of("k");
    let away = *s
        .slaves
        .iter()
        .find(|n| !holders.contains(n))
        .expect("a non-holder");
    s.net.kill(away);
    assert!(matches!(s.one(2, delete("k")), Body::Written { .. }));
    assert_eq!(s.net.master(s.m).status().keys, 1, "the tombstone is kept");
    assert_eq!(
        s.net.master(s.m).read_cache().entries,
        0,
        "the tombstone drops it"
    );
    assert_eq!(s.read(3, "k"), (Body::NotFound, false));
}

/// Every slave in service: the tombstone is collected and the map forgets the key; a new key
/// takes its place in the index (a key's position is what the cache is keyed by) and reads
/// its own value, the old key NOT_FOUND.
#[test]
fn a_collected_key_leaves_nothing_for_the_key_in_its_place() {
    let mut s = Sim::new(common::new_cluster());
    assert_eq!(s.one(1, write("k", "v")), Body::Ok);
    assert!(matches!(s.one(2, delete("k")), Body::Written { .. }));
    s.net.advance(Duration::from_millis(100));
    assert_eq!(s.net.master(s.m).status().keys, 0);
    assert_eq!(s.net.master(s.m).read_cache().entries, 0);
    assert_eq!(s.read(3, "k"), (Body::NotFound, false));
    assert_eq!(s.one(4, write("k2", "other")), Body::Ok);
    assert_eq!(s.read(5, "k2"), (value("other"), false));
    assert_eq!(s.read(6, "k"), (Body::NotFound, false));
}

#[test]
fn compare_and_set_and_incr_keep_the_cache_right() {
    let mut s = Sim::new(common::new_cluster());
    let set = |value: &str, expected| Body::Set {
        key: "k".into(),
        expected,
        value: value.into(),
    };
    let Body::Written { version: v1 } = s.one(1, set("a", None)) else {
        panic!("SET did not answer WRITTEN");
    };
    let vread = Body::VRead { key: "k".into() };
    assert_eq!(
        s.one(2, vread.clone()),
        Body::Versioned {
            version: v1,
            value: b"a".to_vec()
        }
    );
    assert_eq!(
        s.one(3, set("lost", Some(v1 + 100))),
        Body::Conflict { version: v1 }
    );
    assert_eq!(s.read(4, "k"), (value("a"), false));
    let Body::Written { version: v2 } = s.one(5, set("b", Some(v1))) else {
        panic!("CAS did not answer WRITTEN");
    };
    assert_eq!(s.read(6, "k"), (value("b"), false));
    // INCR reads the committed value from the cache (no FETCH) and caches its result.
    assert_eq!(s.one(7, write("n", "5")), Body::Ok);
    let incr = Body::Incr {
        key: "n".into(),
        delta: 2,
    };
    let before = s.fetches();
    assert!(matches!(s.one(8, incr), Body::Versioned { value, .. } if value == b"7"));
    assert_eq!(s.read(9, "n"), (value("7"), false));
    assert_eq!(
        s.fetches(),
        before,
        "neither the INCR nor the READ asked a slave"
    );
    assert_eq!(s.fetches(), 0);
    assert!(v2 > v1);
}

/// The primary freezes with a value cached; the standby is elected and the key is written
/// there. The old primary, thawed, never answers its cached value; the new one starts with
/// an empty cache and reads from the slaves, then keeps what they answered.
#[test]
fn after_a_takeover_nobody_answers_from_an_old_cache() {
    let mut net = Net::new();
    let p = net.add_master(common::new_cluster());
    let slaves: Vec<NodeId> = ["s0", "s1", "s2"]
        .iter()
        .map(|id| net.add_slave(p, id))
        .collect();
    let b = net.add_backup(common::new_cluster(), p);
    let (cp, cb) = (net.add_client(p), net.add_client(b));
    let run = |net: &mut Net, d: Duration| {
        for _ in 0..d.as_millis() / 10 {
            net.advance(Duration::from_millis(10));
            net.redial(&slaves, &[p, b], PATIENCE);
        }
    };
    run(&mut net, Duration::from_millis(200));
    let fetches = |net: &Net| -> usize {
        (slaves.iter())
            .map(|&s| net.peer(s).received(Opcode::Fetch))
            .sum()
    };
    assert_eq!(
        net.request(cp, 1, write("k", "v1")),
        [Frame::new(1, Body::Ok)]
    );
    assert_eq!(net.request(cp, 2, read("k")), [Frame::new(2, value("v1"))]);
    assert_eq!(fetches(&net), 0);
    assert_eq!(net.master(p).read_cache().entries, 1);
    net.freeze(p);
    run(&mut net, Duration::from_millis(800));
    assert_eq!(net.master(b).status().role, ServerRole::Primary);
    assert_eq!(net.master(b).read_cache().entries, 0);
    // The new primary asks the slaves (the key may be in doubt: every live slave), then
    // answers the next READ itself.
    assert_eq!(net.request(cb, 3, read("k")), [Frame::new(3, value("v1"))]);
    let asked = fetches(&net);
    assert!(asked > 0);
    assert_eq!(net.request(cb, 4, read("k")), [Frame::new(4, value("v1"))]);
    assert_eq!(fetches(&net), asked);
    assert_eq!(
        net.request(cb, 5, write("k", "v2")),
        [Frame::new(5, Body::Ok)]
    );
    // Thawed, the old primary reads its sockets with its lease long gone: it answers
    // NOT_PRIMARY, not its cached v1.
    net.send(cp, Frame::new(6, read("k")));
    net.thaw(p);
    net.settle();
    let got = net.take(cp);
    assert!(
        matches!(
            &got[..],
            [Frame {
                body: Body::Error {
                    code: ErrorCode::NotPrimary,
                    ..
                },
                ..
            }]
        ),
        "{got:?}"
    );
    run(&mut net, Duration::from_millis(500));
    assert_eq!(
        net.master(p).read_cache().entries,
        0,
        "stepping down empties it"
    );
    assert_eq!(net.request(cb, 7, read("k")), [Frame::new(7, value("v2"))]);
}
