//! The master's logic on the simulated network (`common`): real slave stores, slaves that go
//! silent (frozen) or get killed, and a fake clock. No sockets, no sleeps.

use std::time::Duration;

use dsm_master::Config;
use dsm_wire::{Body, ErrorCode, Frame, Opcode, ServerRole};

mod common;
use common::{Net, NodeId};

fn cfg() -> Config {
    common::new_cluster()
}

/// A master with `slaves` slaves, s0, s1, ..., registered in that order.
fn sim(cfg: Config, slaves: usize) -> (Net, NodeId) {
    let mut net = Net::new();
    let m = net.add_master(cfg);
    for i in 0..slaves {
        net.add_slave(m, &format!("s{i}"));
    }
    (net, m)
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
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    net.write(c, 1, "k", "v1");
    assert_eq!(net.take(c), vec![Frame::new(1, Body::Ok)]);
    assert_eq!(net.holders_of("k").len(), 2);
    net.read(c, 2, "k");
    let got = net.take(c);
    assert_eq!(got[0].req_id, 2);
    assert_eq!(value(&got[0]), b"v1");
    let st = net.master(m).status();
    assert_eq!(st.keys, 1);
    assert_eq!(st.slaves.iter().map(|s| s.keys).sum::<u64>(), 2);
}

#[test]
fn missing_key_is_not_found() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    net.read(c, 9, "nope");
    assert_eq!(net.take(c), vec![Frame::new(9, Body::NotFound)]);
}

#[test]
fn pipelined_requests_to_one_key_are_answered_in_order() {
    let (mut net, m) = sim(cfg(), 3);
    // Silence one holder so the first write cannot finish at once.
    let c = net.add_client(m);
    net.write(c, 1, "k", "old");
    net.take(c);
    let holder = net.holders_of("k")[0];
    net.freeze(holder);
    net.write(c, 2, "k", "new");
    net.read(c, 3, "k");
    net.write(c, 4, "other", "x");
    // The write to another key is not held up by "k".
    let early = net.take(c);
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].req_id, 4);
    net.advance(Duration::from_millis(300));
    let got = net.take(c);
    assert_eq!(got.iter().map(|f| f.req_id).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(got[0].body, Body::Ok);
    assert_eq!(value(&got[1]), b"new", "a read after a write sees it");
}

#[test]
fn silent_slave_is_dropped_and_the_write_moves_on() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    let stopped = net.connected_slaves()[0];
    net.freeze(stopped);
    let mut oks = 0;
    for i in 0..20 {
        net.write(c, i, &format!("k{i}"), "v");
    }
    net.advance(Duration::from_millis(250));
    for f in net.take(c) {
        assert_eq!(f.body, Body::Ok);
        oks += 1;
    }
    assert_eq!(oks, 20);
    assert_eq!(
        net.closed_by(net.conn_of(stopped)),
        Some(m),
        "the silent slave's connection is closed"
    );
    assert_eq!(net.live_slaves(m), 2);
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(
            net.holders_of(&k).len(),
            2,
            "{k} has R copies on live slaves"
        );
        net.read(c, 100 + i, &k);
        assert_eq!(value(&net.take(c)[0]), b"v");
    }
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn reads_fail_over_to_another_holder() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    net.write(c, 1, "k", "v");
    net.take(c);
    let holders = net.holders_of("k");
    // One holder stops answering: reads keep succeeding via retries to the other.
    net.freeze(holders[0]);
    for i in 0..6 {
        net.read(c, 10 + i, "k");
        net.advance(Duration::from_millis(150));
        let got = net.take(c);
        assert_eq!(got.len(), 1, "read {i} answered");
        assert_eq!(value(&got[0]), b"v");
    }
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn holders_out_of_reach_mean_unavailable_lost_ones_not_found_and_no_slaves_an_error() {
    let (mut net, m) = sim(cfg(), 2);
    let c = net.add_client(m);
    net.write(c, 1, "k", "v");
    net.take(c);
    for h in net.holders_of("k") {
        net.kill(h);
    }
    // Out of reach is not gone: the read waits for a holder, and says so at its deadline.
    net.read(c, 2, "k");
    assert!(net.take(c).is_empty());
    net.advance(Duration::from_millis(2000));
    let got = net.take(c);
    assert_eq!(
        (got[0].req_id, error_code(&got[0])),
        (2, ErrorCode::Unavailable)
    );
    // The operator says both are gone for good: then the key's every copy is known lost.
    for (req, id) in [(3, "s0"), (4, "s1")] {
        let forget = Body::Forget { id: id.into() };
        assert_eq!(net.request(c, req, forget), vec![Frame::new(req, Body::Ok)]);
    }
    net.read(c, 5, "k");
    assert_eq!(net.take(c), vec![Frame::new(5, Body::NotFound)]);
    net.write(c, 6, "k2", "v");
    assert_eq!(error_code(&net.take(c)[0]), ErrorCode::NoSlaves);
    // A connected slave cannot be forgotten, nor an unknown one.
    let forget = Body::Forget {
        id: "nobody".into(),
    };
    assert_eq!(
        error_code(&net.request(c, 7, forget)[0]),
        ErrorCode::BadRequest
    );
}

#[test]
fn killed_slave_mid_write_moves_to_replacement() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    let victim = *net.connected_slaves().last().unwrap();
    net.freeze(victim);
    for i in 0..10 {
        net.write(c, i, &format!("k{i}"), "v");
    }
    net.kill(victim);
    let got = net.take(c);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|f| f.body == Body::Ok));
}

#[test]
fn deadline_gives_timeout_with_unknown_outcome() {
    let mut cfg = cfg();
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.request_timeout = Duration::from_millis(500);
    let (mut net, m) = sim(cfg, 2);
    let c = net.add_client(m);
    for s in net.connected_slaves() {
        net.freeze(s);
    }
    net.write(c, 1, "k", "v");
    net.advance(Duration::from_millis(499));
    assert!(net.take(c).is_empty(), "no answer before the deadline");
    net.advance(Duration::from_millis(2));
    assert_eq!(error_code(&net.take(c)[0]), ErrorCode::Timeout);
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn a_read_no_holder_answers_times_out_at_its_deadline_not_at_a_retry() {
    // A started READ keeps its deadline in its retry timer: 550 ms is not a multiple of the
    // 100 ms retry, so a retry timer not capped at the deadline would answer late.
    let mut cfg = cfg();
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.read_retry = Duration::from_millis(100);
    cfg.request_timeout = Duration::from_millis(550);
    // The READ must go to the (frozen) slaves, not be answered from the read cache.
    cfg.read_cache = 0;
    let (mut net, m) = sim(cfg, 2);
    let c = net.add_client(m);
    net.write(c, 1, "k", "v");
    assert_eq!(net.take(c)[0].body, Body::Ok);
    for s in net.connected_slaves() {
        net.freeze(s);
    }
    net.read(c, 2, "k");
    net.advance(Duration::from_millis(549));
    assert!(net.take(c).is_empty(), "no answer before the deadline");
    net.advance(Duration::from_millis(2));
    let got = net.take(c);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].req_id, error_code(&got[0])),
        (2, ErrorCode::Timeout)
    );
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn silent_slave_is_dropped_by_pings() {
    let (mut net, m) = sim(cfg(), 2);
    let quiet = net.connected_slaves()[0];
    net.freeze(quiet);
    net.advance(Duration::from_millis(1500));
    assert_eq!(
        net.closed_by(net.conn_of(quiet)),
        None,
        "not dropped before 3 unanswered pings"
    );
    net.advance(Duration::from_millis(1100));
    assert_eq!(
        net.closed_by(net.conn_of(quiet)),
        Some(m),
        "dropped after 3 unanswered pings"
    );
    assert_eq!(net.live_slaves(m), 1);
}

#[test]
fn bad_first_frame_closes_and_oversize_value_is_refused_politely() {
    let mut cfg = cfg();
    cfg.max_value = 10;
    let (mut net, m) = sim(cfg, 2);
    let rogue = net.add_raw(m);
    let got = net.request(rogue, 5, Body::Read { key: b"k".to_vec() });
    assert_eq!(error_code(&got[0]), ErrorCode::BadRequest);
    assert_eq!(net.closed_by(net.conn_of(rogue)), Some(m));

    let c = net.add_client(m);
    net.write(c, 1, "k", "01234567890");
    assert_eq!(error_code(&net.take(c)[0]), ErrorCode::TooLarge);
    net.write(c, 2, "k", "0123456789");
    assert_eq!(net.take(c), vec![Frame::new(2, Body::Ok)]);
    assert_eq!(net.closed_by(net.conn_of(c)), None);
}

#[test]
fn a_slave_back_from_a_blink_keeps_its_data_and_is_a_holder_at_once() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    net.write(c, 1, "k", "v1");
    net.take(c);
    let holders = net.holders_of("k");
    let h = holders[0];
    // Its connection dies; the same process comes back with what it held: no report is
    // asked, and nothing is copied to it.
    assert!(net.store(h).version_of(b"k").is_some());
    net.close(net.conn_of(h));
    net.settle();
    assert_eq!(net.live_slaves(m), 2);
    let stores = net.peer(h).received(Opcode::Store);
    net.connect(h, m);
    net.settle();
    assert_eq!(net.peer(h).welcome, Some((1, false)));
    assert_eq!(net.live_slaves(m), 3);
    // The other holder dies: reads go to the one that came back.
    net.kill(holders[1]);
    for i in 0..10 {
        net.read(c, 10 + i, "k");
        assert_eq!(value(&net.take(c)[0]), b"v1");
    }
    net.advance(Duration::from_millis(100));
    assert_eq!(
        net.peer(h).received(Opcode::Store),
        stores,
        "no copy was made to it"
    );
}

#[test]
fn a_restarted_slave_reports_what_it_holds_and_no_copy_is_made() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    for i in 0..30 {
        net.write(c, i, &format!("k{i}"), "v");
    }
    assert_eq!(net.take(c).len(), 30);
    let s = net.connected_slaves()[0];
    let held = net.store(s).len();
    assert!(held > 0);
    // Restarted with its data dir: a new process, so it reports what it holds, and is a
    // holder again of every key it reported at the committed version.
    net.kill(s);
    net.restart(s, true);
    let stores = net.peer(s).received(Opcode::Store);
    net.connect(s, m);
    net.settle();
    assert_eq!(net.peer(s).welcome, Some((1, true)));
    assert_eq!(net.live_slaves(m), 3);
    assert_eq!(net.master(m).status().under_replicated, 0);
    let counted: u64 = net.master(m).status().slaves.iter().map(|x| x.keys).sum();
    assert_eq!(counted, 60, "every key on 2 slaves again");
    net.advance(Duration::from_millis(100));
    assert_eq!(
        net.peer(s).received(Opcode::Store),
        stores,
        "no copy was made to it"
    );
    // Restarted without its data: it reports nothing, and what the old process held no
    // longer counts; copies are made.
    net.kill(s);
    net.restart(s, false);
    assert_eq!(net.store(s).len(), 0);
    let stores = net.peer(s).received(Opcode::Store);
    net.connect(s, m);
    net.settle();
    assert_eq!(net.peer(s).welcome, Some((1, true)));
    net.advance(Duration::from_millis(100));
    assert_eq!(net.master(m).status().under_replicated, 0);
    assert!(
        net.peer(s).received(Opcode::Store) > stores,
        "what it lost was copied again (some of it to it)"
    );
    for i in 0..30 {
        net.read(c, 100 + i, &format!("k{i}"));
        assert_eq!(value(&net.take(c)[0]), b"v");
    }
}

/// A master that lost its disk (started without a roster, default `--discover-ms`) cannot
/// know which slaves exist: it takes what registering slaves hold for the window, answering
/// UNAVAILABLE, then finds every key, at an epoch above any a slave saw. Twice over, so the
/// second new master meets slaves that saw the first one's higher epoch and is not fenced.
#[test]
fn a_master_without_a_roster_discovers_what_the_slaves_hold_before_serving() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    for i in 0..20 {
        net.write(c, i, &format!("k{i}"), &format!("v{i}"));
    }
    assert_eq!(net.take(c).len(), 20);
    let slaves = net.connected_slaves();
    let mut master = m;
    for (round, epoch) in [(1u64, 2u64), (2, 3)] {
        net.kill(master);
        let window = Config::default().discover;
        master = net.add_master(Config::default());
        for &s in &slaves {
            net.connect(s, master);
        }
        net.settle();
        assert_eq!(net.master(master).status().role, ServerRole::Recovering);
        let c = net.add_client(master);
        net.read(c, 1, "k0");
        net.write(c, 2, "new", "x");
        let got = net.take(c);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|f| error_code(f) == ErrorCode::Unavailable));
        net.advance(window);
        assert_eq!(
            net.master(master).status().role,
            ServerRole::Primary,
            "round {round}"
        );
        assert_eq!(net.master(master).status().epoch, epoch);
        assert_eq!(net.master(master).status().under_replicated, 0);
        for i in 0..20 {
            net.read(c, 100 + i, &format!("k{i}"));
            let got = net.take(c);
            let want = match (round, i) {
                (2, 0) => "newer".to_string(), // written in round 1: the newest version wins
                _ => format!("v{i}"),
            };
            assert_eq!(value(&got[0]), want.as_bytes(), "round {round}");
        }
        net.write(c, 200, "k0", "newer");
        assert_eq!(net.take(c), vec![Frame::new(200, Body::Ok)]);
    }
}

/// A backup started while its primary is down never gets the primary's state. Elected by the
/// slaves, it knows too little to serve, so it recovers like a restarted master: it takes what
/// the slaves hold (and waits for others to register) before answering, and serves every key
/// at a new epoch.
#[test]
fn a_backup_that_takes_over_without_a_snapshot_recovers_what_the_slaves_hold() {
    let (mut net, p) = sim(cfg(), 3);
    let c = net.add_client(p);
    for i in 0..20 {
        net.write(c, i, &format!("k{i}"), &format!("v{i}"));
    }
    assert_eq!(net.take(c).len(), 20);
    let slaves = net.connected_slaves();
    net.kill(p);
    let b = net.add_backup(Config::default(), p);
    net.advance(Duration::from_millis(500));
    assert_eq!(
        net.master(b).role(),
        ServerRole::Backup,
        "no votes: no takeover"
    );
    // The slaves lost their primary: they come to the standby and elect it.
    for &s in &slaves {
        net.connect(s, b);
    }
    net.settle();
    net.advance(Duration::from_millis(200));
    assert_eq!(net.master(b).role(), ServerRole::Primary, "took over");
    assert_eq!(net.master(b).status().role, ServerRole::Recovering);
    let c = net.add_client(b);
    net.read(c, 1, "k3");
    assert_eq!(error_code(&net.take(c)[0]), ErrorCode::Unavailable);
    net.advance(Config::default().discover);
    assert_eq!(net.master(b).status().role, ServerRole::Primary);
    for i in 0..20 {
        net.read(c, 100 + i, &format!("k{i}"));
        assert_eq!(value(&net.take(c)[0]), format!("v{i}").as_bytes());
    }
    assert!(net.master(b).status().epoch > 1);
}

#[test]
fn connection_without_hello_is_closed_after_the_deadline() {
    let (mut net, m) = sim(cfg(), 1);
    let idle = net.add_raw(m);
    net.advance(Duration::from_millis(4990));
    assert_eq!(net.closed_by(net.conn_of(idle)), None);
    net.advance(Duration::from_millis(20));
    assert_eq!(net.closed_by(net.conn_of(idle)), Some(m));
}

#[test]
fn dropped_slave_keys_are_copied_back_to_r_and_a_second_failure_loses_nothing() {
    // Copies at once, not after the default 10 s of patience for a slave that blinks.
    let cfg = Config {
        repair_after: Duration::ZERO,
        ..cfg()
    };
    let (mut net, m) = sim(cfg, 4);
    let c = net.add_client(m);
    for i in 0..200 {
        net.write(c, i, &format!("k{i}"), &format!("v{i}"));
    }
    assert_eq!(net.take(c).len(), 200);
    let first = net.connected_slaves()[0];
    net.kill(first);
    let under_before = net.master(m).status().under_replicated;
    net.advance(Duration::from_millis(20));
    for i in 0..200 {
        let k = format!("k{i}");
        assert_eq!(
            net.holders_of(&k).len(),
            2,
            "{k} is back to R=2 live copies"
        );
    }
    assert_eq!(net.master(m).status().under_replicated, 0);
    assert_eq!(
        net.master(m)
            .status()
            .slaves
            .iter()
            .map(|s| s.keys)
            .sum::<u64>(),
        400,
        "per-slave counts follow the copies"
    );
    assert_eq!(net.master(m).in_flight(), (0, 0));
    // At most 32 copies run at once, so right after the kill STATUS shows the rest waiting.
    assert!(
        under_before > 0 && under_before < 200,
        "under-replicated right after the kill: {under_before}"
    );

    let second = net.connected_slaves()[0];
    net.kill(second);
    net.advance(Duration::from_millis(20));
    for i in 0..200 {
        net.read(c, 1000 + i, &format!("k{i}"));
        let got = net.take(c);
        assert_eq!(value(&got[0]), format!("v{i}").as_bytes());
    }
}

#[test]
fn copies_wait_for_a_silent_target_and_client_writes_are_not_lost() {
    let (mut net, m) = sim(cfg(), 4);
    let c = net.add_client(m);
    for i in 0..100 {
        net.write(c, i, &format!("k{i}"), "old");
    }
    net.take(c);
    let slaves = net.connected_slaves();
    // One slave dies, another stops answering: copies to it time out and move on.
    net.freeze(slaves[1]);
    net.kill(slaves[0]);
    for i in 0..100 {
        net.write(c, 200 + i, &format!("k{i}"), "new");
    }
    net.advance(Duration::from_millis(2500));
    let answers = net.take(c);
    assert_eq!(answers.len(), 100);
    assert!(answers.iter().all(|f| f.body == Body::Ok), "{answers:?}");
    assert_eq!(net.live_slaves(m), 2);
    for i in 0..100 {
        let k = format!("k{i}");
        net.read(c, 400 + i, &k);
        assert_eq!(value(&net.take(c)[0]), b"new");
        assert_eq!(net.holders_of(&k).len(), 2, "{k}");
    }
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn reads_queued_behind_a_write_whose_only_holder_died_are_answered_once() {
    // Found while reworking `advance`: a READ that is answered while it starts (every holder
    // dead) advances the queue from inside the start loop, and the outer loop then started the
    // next READ a second time after the nested pass had already answered and forgotten it.
    let mut cfg = cfg();
    cfg.ack_timeout = Duration::from_secs(60);
    cfg.request_timeout = Duration::from_millis(500);
    // The killed slave is lost for good at once, so its key reads NOT_FOUND (not UNAVAILABLE).
    cfg.slave_lost_after = Duration::from_millis(50);
    let (mut net, m) = sim(cfg, 2);
    let c = net.add_client(m);
    let slaves = net.connected_slaves();
    net.freeze(slaves[1]);
    net.write(c, 1, "k", "v"); // the first slave ACKs, the second never does
    net.kill(slaves[0]); // the only copy dies after its ACK
    net.advance(Duration::from_millis(100));
    net.read(c, 2, "k");
    net.read(c, 3, "k");
    net.read(c, 4, "k");
    net.advance(Duration::from_millis(450));
    let got = net.take(c);
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
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn a_slave_that_is_still_answering_is_waited_for_not_dropped() {
    let (mut net, m) = sim(cfg(), 2); // ACK timeout 200 ms, R=2
    let c = net.add_client(m);
    let slow = net.connected_slaves()[1];
    net.freeze(slow);
    net.write(c, 1, "k", "v");
    net.advance(Duration::from_millis(150));
    // The slow slave answers something else (a PONG): it is behind, not dead.
    net.send(slow, Frame::new(0, Body::Pong));
    net.settle();
    net.advance(Duration::from_millis(150)); // 300 ms: past the ACK timeout of the STORE
    assert_eq!(
        net.closed_by(net.conn_of(slow)),
        None,
        "a slave heard 150 ms ago is not dropped"
    );
    assert!(
        net.take(c).is_empty(),
        "the write still waits for its second copy"
    );
    net.advance(Duration::from_millis(60)); // 360 ms: 210 ms of silence
    assert_eq!(
        net.closed_by(net.conn_of(slow)),
        Some(m),
        "then silence for the ACK timeout drops it"
    );
    // Committed with the one copy it has, and the client is told it is short of R.
    let got = net.take(c);
    let short = Body::Degraded {
        copies: 1,
        wanted: 2,
    };
    assert_eq!(got, vec![Frame::new(1, short)]);
}

/// A slave that is slow but still talking is suspected, not dropped: a write whose STORE it
/// has not ACKed by the ACK timeout moves to a replacement, new writes and reads go to other
/// slaves while it is suspected, and it keeps everything it holds.
#[test]
fn a_slow_slave_is_replaced_within_the_ack_timeout_and_avoided_but_stays_in_service() {
    let (mut net, m) = sim(cfg(), 3); // ACK timeout 200 ms, R=2
    let c = net.add_client(m);
    for i in 0..30 {
        net.write(c, i, &format!("k{i}"), "v");
    }
    assert_eq!(net.take(c).len(), 30);
    let slow = net.connected_slaves()[0];
    let held = net.store(slow).len();
    // A key it holds, so that the next write of it goes to it first.
    let key = (0..30)
        .map(|i| format!("k{i}"))
        .find(|k| net.holders_of(k).contains(&slow))
        .expect("the slave holds some key");
    net.freeze(slow);
    net.write(c, 100, &key, "v2");
    net.advance(Duration::from_millis(150));
    net.send(slow, Frame::new(0, Body::Pong)); // behind, not dead
    net.settle();
    net.advance(Duration::from_millis(60)); // 210 ms: its ACK is late
    assert_eq!(
        net.take(c),
        vec![Frame::new(100, Body::Ok)],
        "the write moved to a replacement within the ACK timeout"
    );
    assert_eq!(net.closed_by(net.conn_of(slow)), None, "not dropped");
    // The two copies of the new version are on the others (the frozen one has not even
    // read its STORE yet).
    let version = |n| net.store(n).version_of(key.as_bytes()).unwrap_or(0);
    let newest = net
        .connected_slaves()
        .into_iter()
        .map(version)
        .max()
        .unwrap();
    let on_newest: Vec<_> = (net.connected_slaves().into_iter())
        .filter(|&n| version(n) == newest)
        .collect();
    assert_eq!(on_newest.len(), 2);
    assert!(!on_newest.contains(&slow));
    // While it is suspected, writes and reads of its keys go to the others at once.
    for i in 0..30 {
        net.write(c, 200 + i, &format!("k{i}"), "v3");
        net.read(c, 300 + i, &format!("k{i}"));
    }
    let got = net.take(c);
    assert_eq!(got.len(), 60, "{got:?}");
    assert!(got.iter().all(|f| f.body == Body::Ok
        || f.body
            == Body::Value {
                value: b"v3".to_vec()
            }));
    net.thaw(slow);
    net.settle();
    assert_eq!(net.live_slaves(m), 3, "in service throughout");
    assert!(net.store(slow).len() >= held, "it kept what it held");
}

#[test]
fn keys_short_of_r_copies_are_copied_to_a_slave_that_registers() {
    // Copies at once, not after the default 10 s of patience for a slave that blinks.
    let cfg = Config {
        repair_after: Duration::ZERO,
        ..cfg()
    };
    let (mut net, m) = sim(cfg, 2);
    let c = net.add_client(m);
    for i in 0..20 {
        net.write(c, i, &format!("k{i}"), "v");
    }
    net.take(c);
    let victim = *net.connected_slaves().last().unwrap();
    net.kill(victim);
    // One live slave: nowhere to copy to, so every key has one copy.
    assert_eq!(net.master(m).status().under_replicated, 20);
    assert_eq!(net.master(m).status().copies_made, 0);
    net.add_slave(m, "newcomer");
    net.advance(Duration::from_millis(10));
    assert_eq!(net.master(m).status().under_replicated, 0);
    // STATUS counts the copies: one per key.
    assert_eq!(net.master(m).status().copies_made, 20);
    for i in 0..20 {
        assert_eq!(
            net.holders_of(&format!("k{i}")).len(),
            2,
            "k{i} has R copies again"
        );
    }
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

#[test]
fn reads_in_one_turn_go_to_slaves_already_sent_to_and_turns_spread_them() {
    // Without the read cache, so that every READ goes to a slave.
    let no_cache = Config {
        read_cache: 0,
        ..cfg()
    };
    let (mut net, m) = sim(no_cache, 3); // R=2 over 3 slaves: any 2 slaves cover every key
    let c = net.add_client(m);
    for i in 0..60 {
        net.write(c, i, &format!("k{i}"), "v");
    }
    net.take(c);
    let fetches = |net: &Net| -> Vec<usize> {
        net.connected_slaves()
            .into_iter()
            .map(|s| net.peer(s).received(Opcode::Fetch))
            .collect()
    };
    // 60 reads in one turn (they reach the master together, no tick between them): they
    // wake at most two slaves.
    for i in 0..60 {
        net.send(
            c,
            Frame::new(
                100 + i,
                Body::Read {
                    key: format!("k{i}").into(),
                },
            ),
        );
    }
    net.settle();
    assert_eq!(net.take(c).len(), 60);
    let busy = fetches(&net).iter().filter(|&&f| f > 0).count();
    assert!(busy <= 2, "one turn's reads woke {busy} slaves");
    // Over many turns every copy is read from.
    for round in 0..30u64 {
        net.advance(Duration::from_millis(1));
        for i in 0..6u64 {
            let key = format!("k{}", (round * 7 + i) % 60).into();
            net.send(c, Frame::new(1000 + round * 10 + i, Body::Read { key }));
        }
        net.settle();
    }
    let fetches = fetches(&net);
    assert!(
        fetches.iter().all(|&f| f >= 20),
        "reads spread over turns: {fetches:?}"
    );
}

#[test]
fn a_client_is_owed_replies_exactly_while_its_requests_are_in_progress() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    let owes = |net: &Net, c| net.master(m).owes(net.id_at_master(c));
    assert!(!owes(&net, c), "the WELCOME is not a request in progress");
    net.write(c, 1, "k", "v1");
    assert_eq!(net.take(c).len(), 1);
    assert!(!owes(&net, c), "answered at once");
    let holder = net.holders_of("k")[0];
    net.freeze(holder);
    net.write(c, 2, "k", "v2");
    net.write(c, 3, "other", "x");
    // The write to "other" is answered; the one to "k" waits on the silent slave.
    assert_eq!(net.take(c).len(), 1);
    assert!(owes(&net, c));
    net.advance(Duration::from_millis(300));
    assert_eq!(net.take(c).len(), 1);
    assert!(!owes(&net, c));
    // A client that goes away with a request in progress is owed nothing.
    let d = net.add_client(m);
    let holder = net.holders_of("k")[0];
    net.freeze(holder);
    net.write(d, 1, "k", "v3");
    assert!(owes(&net, d));
    let d_at_master = net.id_at_master(d);
    net.close(net.conn_of(d));
    assert!(!net.master(m).owes(d_at_master));
    net.advance(Duration::from_millis(300));
    assert_eq!(net.master(m).in_flight(), (0, 0));
}

/// PING goes either way (PROTOCOL.md): a slave that PINGs its master gets a PONG, not an
/// error.
#[test]
fn a_slave_that_pings_its_master_gets_a_pong() {
    let (mut net, _m) = sim(cfg(), 1);
    let s = net.connected_slaves()[0];
    let (pongs, errors) = (
        net.peer(s).received(Opcode::Pong),
        net.peer(s).received(Opcode::Error),
    );
    net.send(s, Frame::new(77, Body::Ping));
    net.settle();
    assert_eq!(net.peer(s).received(Opcode::Pong), pongs + 1);
    assert_eq!(net.peer(s).received(Opcode::Error), errors);
}

#[test]
fn status_counts_a_big_key_map_a_slice_per_turn_and_the_loop_answers_others_meanwhile() {
    let (mut net, m) = sim(cfg(), 3);
    let c = net.add_client(m);
    // Three census slices' worth of keys (4,096 positions a turn), written pipelined.
    let n = 9_000u64;
    for i in 0..n {
        let body = Body::Write {
            key: format!("k{i}").into_bytes(),
            value: b"v".to_vec(),
        };
        net.send(c, Frame::new(i, body));
    }
    net.settle();
    assert_eq!(net.take(c).len(), n as usize);
    // STATUS first, then a PING on the same connection: the PING is answered while the
    // STATUS waits for its pass over the key map, which then counts every key.
    net.send(c, Frame::new(1, Body::Status));
    net.send(c, Frame::new(2, Body::Ping));
    net.settle();
    let answers = net.take(c);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0], Frame::new(2, Body::Pong), "{answers:?}");
    let Body::StatusReply(status) = &answers[1].body else {
        panic!("not a STATUS reply: {:?}", answers[1]);
    };
    assert_eq!(status.keys, n);
    assert_eq!(status.under_replicated, 0);
    let placed: u64 = status.slaves.iter().map(|s| s.keys).sum();
    assert_eq!(placed, 2 * n, "every key on R = 2 slaves");
    assert_eq!(
        status,
        &net.master(m).status(),
        "the same as one walk at once"
    );
}
