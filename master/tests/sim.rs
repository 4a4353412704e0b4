//! The master's logic against an in-memory network: real slave stores, links that go silent or
//! get cut, and a fake clock. No sockets, no sleeps.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dsm_master::{Config, Master, Out};
use dsm_slave::Store;
use dsm_wire::{Body, ErrorCode, Frame, Role};

mod common;

struct SimSlave {
    store: Store,
    /// A silent slave receives nothing and answers nothing (a SIGSTOPped process).
    silent: bool,
    /// FETCHes this slave has answered.
    fetches: usize,
}

struct Sim {
    m: Master,
    now: Instant,
    slaves: HashMap<usize, SimSlave>,
    inbox: HashMap<usize, Vec<Frame>>,
    closed: HashSet<usize>,
    next_conn: usize,
}

impl Sim {
    fn new(cfg: Config, slaves: usize) -> Sim {
        let now = Instant::now();
        let mut sim = Sim {
            m: Master::new(cfg, now),
            now,
            slaves: HashMap::new(),
            inbox: HashMap::new(),
            closed: HashSet::new(),
            next_conn: 0,
        };
        for i in 0..slaves {
            sim.add_slave(&format!("s{i}"));
        }
        sim
    }

    fn cfg() -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            heartbeat: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        }
    }

    fn connect(&mut self) -> usize {
        let c = self.next_conn;
        self.next_conn += 1;
        self.m.on_connect(c, format!("sim:{c}"), self.now);
        c
    }

    fn add_slave(&mut self, id: &str) -> usize {
        let c = self.connect();
        self.slaves.insert(
            c,
            SimSlave {
                store: Store::default(),
                silent: false,
                fetches: 0,
            },
        );
        self.deliver(
            c,
            Body::Hello {
                role: Role::Slave,
                epoch: 0,
                id: id.into(),
                nonce: None,
            },
        );
        c
    }

    fn add_client(&mut self) -> usize {
        let c = self.connect();
        self.deliver(
            c,
            Body::Hello {
                role: Role::Client,
                epoch: 0,
                id: String::new(),
                nonce: None,
            },
        );
        let welcome = self.take(c);
        assert!(matches!(welcome[0].body, Body::Welcome { .. }));
        c
    }

    fn deliver(&mut self, conn: usize, body: Body) {
        self.send(conn, 0, body);
    }

    fn send(&mut self, conn: usize, req: u64, body: Body) {
        self.m.on_frame(conn, Frame::new(req, body), self.now);
        self.pump();
    }

    /// Carry frames until the network is quiet: slaves answer at once unless silent.
    fn pump(&mut self) {
        let (slaves, closed, inbox) = (&mut self.slaves, &mut self.closed, &mut self.inbox);
        common::pump(&mut self.m, self.now, |o| {
            if let Out::Close(conn) = o {
                closed.insert(conn);
                slaves.remove(&conn);
                return None;
            }
            let (conn, frame) = o.into_frame().expect("not a close");
            let Some(s) = slaves.get_mut(&conn) else {
                inbox.entry(conn).or_default().push(frame);
                return None;
            };
            if s.silent {
                return None;
            }
            if matches!(frame.body, Body::Fetch { .. }) {
                s.fetches += 1;
            }
            s.store.on_frame(frame).map(|reply| (conn, reply))
        });
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        // Step in 1 ms so timers fire in order, as the event loop would see them.
        while self.now < end {
            self.now += Duration::from_millis(1);
            self.m.on_tick(self.now);
            self.pump();
            self.m.end_turn();
        }
    }

    fn take(&mut self, conn: usize) -> Vec<Frame> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    fn write(&mut self, c: usize, req: u64, key: &str, value: &str) {
        self.send(
            c,
            req,
            Body::Write {
                key: key.into(),
                value: value.into(),
            },
        );
    }

    fn read(&mut self, c: usize, req: u64, key: &str) {
        self.send(c, req, Body::Read { key: key.into() });
    }

    /// Kill a slave: its connection closes.
    fn kill(&mut self, conn: usize) {
        self.slaves.remove(&conn);
        self.m.on_close(conn, self.now);
        self.pump();
    }

    fn holders_of(&self, key: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .slaves
            .iter()
            .filter(|(_, s)| s.store.version_of(key.as_bytes()).is_some())
            .map(|(&c, _)| c)
            .collect();
        v.sort();
        v
    }
}

fn value(frame: &Frame) -> &[u8] {
    match &frame.body {
        Body::Value { value } => value,
        other => panic!("expected VALUE, got {other:?}"),
    }
}

fn error_code(frame: &Frame) -> ErrorCode {
    match &frame.body {
        Body::Error { code, .. } => *code,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

#[test]
fn write_goes_to_r_slaves_and_reads_back() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    sim.write(c, 1, "k", "v1");
    assert_eq!(sim.take(c), vec![Frame::new(1, Body::Ok)]);
    assert_eq!(sim.holders_of("k").len(), 2);
    sim.read(c, 2, "k");
    let got = sim.take(c);
    assert_eq!(got[0].req_id, 2);
    assert_eq!(value(&got[0]), b"v1");
    let st = sim.m.status();
    assert_eq!(st.keys, 1);
    assert_eq!(st.slaves.iter().map(|s| s.keys).sum::<u64>(), 2);
}

#[test]
fn missing_key_is_not_found() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    sim.read(c, 9, "nope");
    assert_eq!(sim.take(c), vec![Frame::new(9, Body::NotFound)]);
}

#[test]
fn pipelined_requests_to_one_key_are_answered_in_order() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    // Silence one holder so the first write cannot finish at once.
    let c = sim.add_client();
    sim.write(c, 1, "k", "old");
    sim.take(c);
    let holder = sim.holders_of("k")[0];
    sim.slaves.get_mut(&holder).unwrap().silent = true;
    sim.write(c, 2, "k", "new");
    sim.read(c, 3, "k");
    sim.write(c, 4, "other", "x");
    // The write to another key is not held up by "k".
    let early = sim.take(c);
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].req_id, 4);
    sim.advance(Duration::from_millis(300));
    let got = sim.take(c);
    assert_eq!(got.iter().map(|f| f.req_id).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(got[0].body, Body::Ok);
    assert_eq!(value(&got[1]), b"new", "a read after a write sees it");
}

#[test]
fn silent_slave_is_dropped_and_the_write_moves_on() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    let stopped = *sim.slaves.keys().min().unwrap();
    sim.slaves.get_mut(&stopped).unwrap().silent = true;
    let mut oks = 0;
    for i in 0..20 {
        sim.write(c, i, &format!("k{i}"), "v");
    }
    sim.advance(Duration::from_millis(250));
    for f in sim.take(c) {
        assert_eq!(f.body, Body::Ok);
        oks += 1;
    }
    assert_eq!(oks, 20);
    assert!(
        sim.closed.contains(&stopped),
        "the silent slave's connection is closed"
    );
    let st = sim.m.status();
    assert_eq!(st.slaves.iter().filter(|s| s.live).count(), 2);
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(
            sim.holders_of(&k).len(),
            2,
            "{k} has R copies on live slaves"
        );
        sim.read(c, 100 + i, &k);
        assert_eq!(value(&sim.take(c)[0]), b"v");
    }
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn reads_fail_over_to_another_holder() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    sim.write(c, 1, "k", "v");
    sim.take(c);
    let holders = sim.holders_of("k");
    // One holder stops answering: reads keep succeeding via retries to the other.
    sim.slaves.get_mut(&holders[0]).unwrap().silent = true;
    for i in 0..6 {
        sim.read(c, 10 + i, "k");
        sim.advance(Duration::from_millis(150));
        let got = sim.take(c);
        assert_eq!(got.len(), 1, "read {i} answered");
        assert_eq!(value(&got[0]), b"v");
    }
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn every_holder_dead_means_not_found_and_no_slaves_means_error() {
    let mut sim = Sim::new(Sim::cfg(), 2);
    let c = sim.add_client();
    sim.write(c, 1, "k", "v");
    sim.take(c);
    for h in sim.holders_of("k") {
        sim.kill(h);
    }
    sim.read(c, 2, "k");
    assert_eq!(sim.take(c), vec![Frame::new(2, Body::NotFound)]);
    sim.write(c, 3, "k2", "v");
    assert_eq!(error_code(&sim.take(c)[0]), ErrorCode::NoSlaves);
}

#[test]
fn killed_slave_mid_write_moves_to_replacement() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    let victim = *sim.slaves.keys().max().unwrap();
    sim.slaves.get_mut(&victim).unwrap().silent = true;
    for i in 0..10 {
        sim.write(c, i, &format!("k{i}"), "v");
    }
    sim.kill(victim);
    let got = sim.take(c);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|f| f.body == Body::Ok));
}

#[test]
fn deadline_gives_timeout_with_unknown_outcome() {
    let mut cfg = Sim::cfg();
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.request_timeout = Duration::from_millis(500);
    let mut sim = Sim::new(cfg, 2);
    let c = sim.add_client();
    for s in sim.slaves.values_mut() {
        s.silent = true;
    }
    sim.write(c, 1, "k", "v");
    sim.advance(Duration::from_millis(499));
    assert!(sim.take(c).is_empty(), "no answer before the deadline");
    sim.advance(Duration::from_millis(2));
    assert_eq!(error_code(&sim.take(c)[0]), ErrorCode::Timeout);
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn a_read_no_holder_answers_times_out_at_its_deadline_not_at_a_retry() {
    // A started READ keeps its deadline in its retry timer: 550 ms is not a multiple of the
    // 100 ms retry, so a retry timer not capped at the deadline would answer late.
    let mut cfg = Sim::cfg();
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.read_retry = Duration::from_millis(100);
    cfg.request_timeout = Duration::from_millis(550);
    let mut sim = Sim::new(cfg, 2);
    let c = sim.add_client();
    sim.write(c, 1, "k", "v");
    assert_eq!(sim.take(c)[0].body, Body::Ok);
    for s in sim.slaves.values_mut() {
        s.silent = true;
    }
    sim.read(c, 2, "k");
    sim.advance(Duration::from_millis(549));
    assert!(sim.take(c).is_empty(), "no answer before the deadline");
    sim.advance(Duration::from_millis(2));
    let got = sim.take(c);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].req_id, error_code(&got[0])),
        (2, ErrorCode::Timeout)
    );
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn silent_slave_is_dropped_by_pings() {
    let mut sim = Sim::new(Sim::cfg(), 2);
    let quiet = *sim.slaves.keys().min().unwrap();
    sim.slaves.get_mut(&quiet).unwrap().silent = true;
    sim.advance(Duration::from_millis(1500));
    assert!(
        !sim.closed.contains(&quiet),
        "not dropped before 3 unanswered pings"
    );
    sim.advance(Duration::from_millis(1100));
    assert!(
        sim.closed.contains(&quiet),
        "dropped after 3 unanswered pings"
    );
    assert_eq!(sim.m.status().slaves.iter().filter(|s| s.live).count(), 1);
}

#[test]
fn bad_first_frame_closes_and_oversize_value_is_refused_politely() {
    let mut cfg = Sim::cfg();
    cfg.max_value = 10;
    let mut sim = Sim::new(cfg, 2);
    let rogue = sim.connect();
    sim.send(rogue, 5, Body::Read { key: b"k".to_vec() });
    assert_eq!(error_code(&sim.take(rogue)[0]), ErrorCode::BadRequest);
    assert!(sim.closed.contains(&rogue));

    let c = sim.add_client();
    sim.write(c, 1, "k", "01234567890");
    assert_eq!(error_code(&sim.take(c)[0]), ErrorCode::TooLarge);
    sim.write(c, 2, "k", "0123456789");
    assert_eq!(sim.take(c), vec![Frame::new(2, Body::Ok)]);
    assert!(!sim.closed.contains(&c));
}

#[test]
fn rejoining_slave_starts_empty_and_is_not_read_for_old_data() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    sim.write(c, 1, "k", "v1");
    sim.take(c);
    let h = sim.holders_of("k")[0];
    sim.kill(h);
    // The same id comes back; the master tells it to start fresh.
    let back = sim.add_slave(&format!("s{h}"));
    assert!(sim.slaves[&back].store.is_empty());
    for i in 0..10 {
        sim.read(c, 10 + i, "k");
        assert_eq!(value(&sim.take(c)[0]), b"v1");
    }
}

#[test]
fn connection_without_hello_is_closed_after_the_deadline() {
    let mut sim = Sim::new(Sim::cfg(), 1);
    let idle = sim.connect();
    sim.advance(Duration::from_millis(4990));
    assert!(!sim.closed.contains(&idle));
    sim.advance(Duration::from_millis(20));
    assert!(sim.closed.contains(&idle));
}

#[test]
fn dropped_slave_keys_are_copied_back_to_r_and_a_second_failure_loses_nothing() {
    let mut sim = Sim::new(Sim::cfg(), 4);
    let c = sim.add_client();
    for i in 0..200 {
        sim.write(c, i, &format!("k{i}"), &format!("v{i}"));
    }
    assert_eq!(sim.take(c).len(), 200);
    let first = *sim.slaves.keys().min().unwrap();
    sim.kill(first);
    let under_before = sim.m.status().under_replicated;
    sim.advance(Duration::from_millis(20));
    for i in 0..200 {
        let k = format!("k{i}");
        assert_eq!(
            sim.holders_of(&k).len(),
            2,
            "{k} is back to R=2 live copies"
        );
    }
    assert_eq!(sim.m.status().under_replicated, 0);
    assert_eq!(
        sim.m.status().slaves.iter().map(|s| s.keys).sum::<u64>(),
        400,
        "per-slave counts follow the copies"
    );
    assert_eq!(sim.m.in_flight(), (0, 0));
    // At most 32 copies run at once, so right after the kill STATUS shows the rest waiting.
    assert!(
        under_before > 0 && under_before < 200,
        "under-replicated right after the kill: {under_before}"
    );

    let second = *sim.slaves.keys().min().unwrap();
    sim.kill(second);
    sim.advance(Duration::from_millis(20));
    for i in 0..200 {
        sim.read(c, 1000 + i, &format!("k{i}"));
        let got = sim.take(c);
        assert_eq!(value(&got[0]), format!("v{i}").as_bytes());
    }
}

#[test]
fn copies_wait_for_a_silent_target_and_client_writes_are_not_lost() {
    let mut sim = Sim::new(Sim::cfg(), 4);
    let c = sim.add_client();
    for i in 0..100 {
        sim.write(c, i, &format!("k{i}"), "old");
    }
    sim.take(c);
    let conns: Vec<usize> = {
        let mut v: Vec<usize> = sim.slaves.keys().copied().collect();
        v.sort();
        v
    };
    // One slave dies, another stops answering: copies to it time out and move on.
    sim.slaves.get_mut(&conns[1]).unwrap().silent = true;
    sim.kill(conns[0]);
    for i in 0..100 {
        sim.write(c, 200 + i, &format!("k{i}"), "new");
    }
    sim.advance(Duration::from_millis(2500));
    let answers = sim.take(c);
    assert_eq!(answers.len(), 100);
    assert!(answers.iter().all(|f| f.body == Body::Ok), "{answers:?}");
    assert_eq!(sim.m.status().slaves.iter().filter(|s| s.live).count(), 2);
    for i in 0..100 {
        let k = format!("k{i}");
        sim.read(c, 400 + i, &k);
        assert_eq!(value(&sim.take(c)[0]), b"new");
        assert_eq!(sim.holders_of(&k).len(), 2, "{k}");
    }
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn reads_queued_behind_a_write_whose_only_holder_died_are_answered_once() {
    // Found while reworking `advance`: a READ that is answered while it starts (every holder
    // dead) advances the queue from inside the start loop, and the outer loop then started the
    // next READ a second time after the nested pass had already answered and forgotten it.
    let mut cfg = Sim::cfg();
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.request_timeout = Duration::from_millis(500);
    let mut sim = Sim::new(cfg, 2);
    let c = sim.add_client();
    let mut conns: Vec<usize> = sim.slaves.keys().copied().collect();
    conns.sort();
    sim.slaves.get_mut(&conns[1]).unwrap().silent = true;
    sim.write(c, 1, "k", "v"); // the first slave ACKs, the second never does
    sim.kill(conns[0]); // the only copy dies after its ACK
    sim.advance(Duration::from_millis(100));
    sim.read(c, 2, "k");
    sim.read(c, 3, "k");
    sim.read(c, 4, "k");
    sim.advance(Duration::from_millis(450));
    let got = sim.take(c);
    let ids: Vec<u64> = got.iter().map(|f| f.req_id).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4],
        "each request answered once, in order"
    );
    assert_eq!(error_code(&got[0]), ErrorCode::Timeout);
    for f in &got[1..] {
        assert_eq!(f.body, Body::NotFound, "no live holder is left");
    }
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn a_slave_that_is_still_answering_is_waited_for_not_dropped() {
    let mut sim = Sim::new(Sim::cfg(), 2); // ACK timeout 200 ms, R=2
    let c = sim.add_client();
    let mut conns: Vec<usize> = sim.slaves.keys().copied().collect();
    conns.sort();
    let slow = conns[1];
    sim.slaves.get_mut(&slow).unwrap().silent = true;
    sim.write(c, 1, "k", "v");
    sim.advance(Duration::from_millis(150));
    // The slow slave answers something else (a PONG): it is behind, not dead.
    sim.m.on_frame(slow, Frame::new(0, Body::Pong), sim.now);
    sim.advance(Duration::from_millis(150)); // 300 ms: past the ACK timeout of the STORE
    assert!(
        !sim.closed.contains(&slow),
        "a slave heard 150 ms ago is not dropped"
    );
    assert!(
        sim.take(c).is_empty(),
        "the write still waits for its second copy"
    );
    sim.advance(Duration::from_millis(60)); // 360 ms: 210 ms of silence
    assert!(
        sim.closed.contains(&slow),
        "then silence for the ACK timeout drops it"
    );
    let got = sim.take(c);
    assert_eq!(got, vec![Frame::new(1, Body::Ok)]);
}

#[test]
fn keys_short_of_r_copies_are_copied_to_a_slave_that_registers() {
    let mut sim = Sim::new(Sim::cfg(), 2);
    let c = sim.add_client();
    for i in 0..20 {
        sim.write(c, i, &format!("k{i}"), "v");
    }
    sim.take(c);
    let victim = *sim.slaves.keys().max().unwrap();
    sim.kill(victim);
    // One live slave: nowhere to copy to, so every key has one copy.
    assert_eq!(sim.m.status().under_replicated, 20);
    sim.add_slave("newcomer");
    sim.advance(Duration::from_millis(10));
    assert_eq!(sim.m.status().under_replicated, 0);
    for i in 0..20 {
        assert_eq!(
            sim.holders_of(&format!("k{i}")).len(),
            2,
            "k{i} has R copies again"
        );
    }
    assert_eq!(sim.m.in_flight(), (0, 0));
}

#[test]
fn reads_in_one_turn_go_to_slaves_already_sent_to_and_turns_spread_them() {
    let mut sim = Sim::new(Sim::cfg(), 3); // R=2 over 3 slaves: any 2 slaves cover every key
    let c = sim.add_client();
    for i in 0..60 {
        sim.write(c, i, &format!("k{i}"), "v");
    }
    sim.take(c);
    // 60 reads in one turn (no tick between them): they wake at most two slaves.
    for i in 0..60 {
        sim.read(c, 100 + i, &format!("k{i}"));
    }
    assert_eq!(sim.take(c).len(), 60);
    let busy = sim.slaves.values().filter(|s| s.fetches > 0).count();
    assert!(busy <= 2, "one turn's reads woke {busy} slaves");
    // Over many turns every copy is read from.
    for round in 0..30u64 {
        sim.advance(Duration::from_millis(1));
        for i in 0..6u64 {
            sim.read(
                c,
                1000 + round * 10 + i,
                &format!("k{}", (round * 7 + i) % 60),
            );
        }
    }
    let fetches: Vec<usize> = sim.slaves.values().map(|s| s.fetches).collect();
    assert!(
        fetches.iter().all(|&f| f >= 20),
        "reads spread over turns: {fetches:?}"
    );
}

#[test]
fn a_client_is_owed_replies_exactly_while_its_requests_are_in_progress() {
    let mut sim = Sim::new(Sim::cfg(), 3);
    let c = sim.add_client();
    assert!(!sim.m.owes(c), "the WELCOME is not a request in progress");
    sim.write(c, 1, "k", "v1");
    assert_eq!(sim.take(c).len(), 1);
    assert!(!sim.m.owes(c), "answered at once");
    let holder = sim.holders_of("k")[0];
    sim.slaves.get_mut(&holder).unwrap().silent = true;
    sim.write(c, 2, "k", "v2");
    sim.write(c, 3, "other", "x");
    // The write to "other" is answered; the one to "k" waits on the silent slave.
    assert_eq!(sim.take(c).len(), 1);
    assert!(sim.m.owes(c));
    sim.advance(Duration::from_millis(300));
    assert_eq!(sim.take(c).len(), 1);
    assert!(!sim.m.owes(c));
    // A client that goes away with a request in progress is owed nothing.
    let d = sim.add_client();
    let holder = sim.holders_of("k")[0];
    sim.slaves.get_mut(&holder).unwrap().silent = true;
    sim.write(d, 1, "k", "v3");
    assert!(sim.m.owes(d));
    sim.m.on_close(d, sim.now);
    assert!(!sim.m.owes(d));
    sim.advance(Duration::from_millis(300));
    assert_eq!(sim.m.in_flight(), (0, 0));
}
