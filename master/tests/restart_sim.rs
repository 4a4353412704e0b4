//! Masters restarted over a cluster they served (`--data-dir`: an epoch and a roster kept),
//! on the simulated network (`common`), in the orders where the process tests
//! (`tests/tests/blinks.rs`) found two primaries at one epoch, a master that sent clients
//! nowhere, or copies made for nothing.

use std::time::Duration;

use dsm_master::disk::MasterState;
use dsm_master::Config;
use dsm_wire::{Body, ErrorCode, Frame, ServerRole};

mod common;
use common::{write, Msg, Net, NodeId};

/// What a master's `--data-dir` holds, as its configuration at start.
fn kept(epoch: u64, roster: &[&str]) -> Config {
    Config {
        persisted: Some(MasterState {
            epoch,
            roster: roster.iter().map(|s| s.to_string()).collect(),
        }),
        ..Config::default()
    }
}

/// A primary with slaves s0..s2 and a client, and `k = v` written.
fn cluster() -> (Net, NodeId, [NodeId; 3], NodeId) {
    let mut net = Net::new();
    let p = net.add_master(common::new_cluster());
    let slaves = ["s0", "s1", "s2"].map(|id| net.add_slave(p, id));
    let c = net.add_client(p);
    assert_eq!(
        net.request(c, 1, write("k", "v")),
        vec![Frame::new(1, Body::Ok)]
    );
    (net, p, slaves, c)
}

fn role_epoch(net: &Net, m: NodeId) -> (ServerRole, u64) {
    let s = net.master(m).status();
    (s.role, s.epoch)
}

/// A backup that attached while its primary waited for its roster would follow the epoch the
/// primary had before it recovered; the primary then takes a new one (above any a slave has
/// seen), and if the backup takes over before a SYNC with that epoch reaches it (the primary
/// stalls right after recovering), both are primary at one epoch. So a recovering primary
/// refuses backups (UNAVAILABLE, retried) until its epoch is settled.
#[test]
fn a_backup_attaches_only_once_the_primary_has_recovered() {
    let (mut net, p, slaves, _) = cluster();
    net.kill(p);
    net.restart_master(p, kept(1, &["s0", "s1", "s2"]), None);
    let b = net.add_backup(kept(1, &["s0", "s1", "s2"]), p);
    assert!(
        net.saw(p, b, |body| matches!(
            body,
            Body::Error {
                code: ErrorCode::Unavailable,
                ..
            }
        )),
        "the recovering primary took a backup on"
    );
    // The primary stalls right after it recovers: nothing of its stream reaches the backup.
    net.drop_if(move |m: &Msg| {
        m.from == p && m.to == b && matches!(m.frame.body, Body::Sync { .. })
    });
    for s in slaves {
        net.connect(s, p);
    }
    net.settle();
    let (role, epoch) = role_epoch(&net, p);
    assert_eq!((role, epoch), (ServerRole::Primary, 2), "recovered");
    net.freeze(p);
    net.advance(Duration::from_secs(2));
    let (b_role, b_epoch) = role_epoch(&net, b);
    assert!(
        b_role != ServerRole::Primary || b_epoch > epoch,
        "the backup took over at epoch {b_epoch}, the frozen primary's epoch is {epoch}"
    );
    net.stop_dropping();
    net.thaw(p);
    net.advance(Duration::from_secs(3));
    let primaries: Vec<(ServerRole, u64)> = [p, b]
        .iter()
        .map(|&m| role_epoch(&net, m))
        .filter(|(r, _)| *r == ServerRole::Primary)
        .collect();
    assert_eq!(primaries.len(), 1, "primaries: {primaries:?}");
    // Once the primary runs again, the backup follows it at its epoch.
    assert_eq!(role_epoch(&net, p), (ServerRole::Primary, 2));
    assert_eq!(role_epoch(&net, b), (ServerRole::Backup, 2));
}

/// Both masters killed; the backup restarts first and finds its primary down: without the
/// slaves' votes it cannot take over, so it waits, a standby (before elections it took over
/// at its kept epoch + 1 and the primary, restarted next, recovered at that same epoch: two
/// primaries). The primary restarts over its roster, its slaves come back to it, it recovers
/// at epoch 2, and the standby follows it.
#[test]
fn a_standby_restarted_before_its_primary_waits_for_it() {
    let (mut net, p, slaves, c) = cluster();
    let b = net.add_backup(common::new_cluster(), p);
    net.kill(b);
    net.kill(p);
    net.restart_master(b, kept(1, &["s0", "s1", "s2"]), Some(p));
    net.advance(Duration::from_millis(500));
    assert_eq!(
        role_epoch(&net, b).0,
        ServerRole::Backup,
        "no votes, no takeover"
    );
    net.restart_master(p, kept(1, &["s0", "s1", "s2"]), None);
    for s in slaves {
        net.connect(s, p);
    }
    net.settle();
    assert_eq!(role_epoch(&net, p), (ServerRole::Primary, 2), "recovered");
    // The standby's link is retried every second.
    net.advance(Duration::from_secs(2));
    assert_eq!(role_epoch(&net, p), (ServerRole::Primary, 2));
    assert_eq!(role_epoch(&net, b), (ServerRole::Backup, 2));
    net.connect(c, p);
    net.settle();
    assert_eq!(
        net.request(c, 2, Body::Read { key: "k".into() }),
        vec![Frame::new(2, Body::Value { value: "v".into() })]
    );
}

/// A restarted master waits for its roster and answers UNAVAILABLE meanwhile; once it has
/// stepped down (a master with a higher epoch exists), it is no primary at all and must say
/// so (NOT_PRIMARY, which sends clients to the other master), not UNAVAILABLE forever.
#[test]
fn a_master_fenced_while_it_recovers_sends_clients_to_the_other() {
    let (mut net, p, _slaves, _) = cluster();
    net.kill(p);
    net.restart_master(p, kept(1, &["s0", "s1", "s2"]), None);
    let c = net.add_client(p);
    match &net.request(c, 1, Body::Read { key: "k".into() })[..] {
        [Frame {
            body:
                Body::Error {
                    code: ErrorCode::Unavailable,
                    ..
                },
            ..
        }] => {}
        other => panic!("a recovering master answered {other:?}"),
    }
    let b = net.add_backup(kept(5, &[]), p);
    // It stepped down, and follows the master that has the higher epoch.
    assert_eq!(role_epoch(&net, p).0, ServerRole::Backup);
    let _ = b;
    match &net.request(c, 2, Body::Read { key: "k".into() })[..] {
        [Frame {
            body:
                Body::Error {
                    code: ErrorCode::NotPrimary,
                    ..
                },
            ..
        }] => {}
        other => panic!("a fenced master answered {other:?}"),
    }
}

/// A restarted master hears its roster report one slave at a time. While it waits for the
/// rest, a key reported by one holder is not short of copies: its other holder has not
/// reported yet. Copying it then is work for nothing (every key of the data set, in the worst
/// order), so nothing is copied before the roster is in.
#[test]
fn a_recovering_master_copies_nothing_its_roster_still_holds() {
    let (mut net, p, slaves, c) = cluster();
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(
            net.request(c, 10 + i, write(&key, "v")),
            vec![Frame::new(10 + i, Body::Ok)]
        );
    }
    net.kill(p);
    net.restart_master(p, kept(1, &["s0", "s1", "s2"]), None);
    net.clear_log();
    for s in slaves {
        net.connect(s, p);
        net.settle();
    }
    net.advance(Duration::from_millis(100));
    let s = net.master(p).status();
    assert_eq!((s.role, s.epoch, s.keys), (ServerRole::Primary, 2, 21));
    assert_eq!(s.under_replicated, 0, "{s:?}");
    for slave in slaves {
        assert!(
            !net.saw(p, slave, |b| matches!(b, Body::Store { .. })),
            "a copy was made while the roster was reporting"
        );
    }
}
