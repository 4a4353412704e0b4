//! The heartbeat link under a shared secret, on the simulated network (`common`): a primary and
//! a backup master, the link opened (or refused) as the reactor opens it. A backup with the
//! secret follows and, after a takeover, fences the old primary through a fresh authenticated
//! link; one without it is refused, retries slowly and never takes over.

use std::time::Duration;

use dsm_auth::Secret;
use dsm_master::Config;
use dsm_wire::{Body, ErrorCode, Role, ServerRole};

mod common;
use common::{Net, NodeId};

const SECRET: &[u8] = b"the cluster's shared secret, 32B";
const OTHER: &[u8] = b"some other cluster's secret, 32B";

fn cfg(secret: Option<&[u8]>) -> Config {
    Config {
        secret: secret.map(|s| Secret::from_bytes(s).unwrap()),
        ..common::new_cluster()
    }
}

/// A primary and its backup, with these secrets; the backup's link opens at once.
fn pair(primary: Option<&[u8]>, backup: Option<&[u8]>) -> (Net, NodeId, NodeId) {
    let mut net = Net::new();
    let p = net.add_master(cfg(primary));
    let b = net.add_backup(cfg(backup), p);
    (net, p, b)
}

#[test]
fn a_backup_with_the_secret_follows_then_fences_the_old_primary_over_an_authenticated_link() {
    let (mut net, p, b) = pair(Some(SECRET), Some(SECRET));
    net.advance(Duration::from_millis(50));
    assert!(net.saw(p, b, |b| matches!(b, Body::Challenge { .. })));
    assert!(net.saw(b, p, |b| matches!(b, Body::Auth { .. })));
    assert!(net.saw(p, b, |b| matches!(b, Body::Welcome { proof: Some(_), .. })));
    assert!(
        net.saw(b, p, |b| matches!(b, Body::SyncAck)),
        "the backup never received the primary's state"
    );
    assert_eq!(net.master(b).role(), ServerRole::Backup);

    // Slaves with the secret, registered with the primary.
    let slaves = ["s0", "s1", "s2"].map(|id| net.join(p, Role::Slave, id, Some(SECRET)));
    net.advance(Duration::from_millis(200));
    // The primary vanishes: the links break as a crash would break them, the slaves come to
    // the standby (authenticated: it proves the secret too), and elect it.
    net.isolate(p);
    net.close(net.link_of(b).expect("the backup's link"));
    for s in slaves {
        net.connect(s, b);
    }
    net.settle();
    net.advance(Duration::from_millis(500));
    assert_eq!(net.master(b).role(), ServerRole::Primary);
    assert_eq!(net.master(b).status().epoch, 2);
    // It comes back (it was only cut off): without a majority it stepped down and follows the
    // new primary, over an authenticated link; the new primary's fencing HELLO with epoch 2
    // is answered NOT_PRIMARY.
    net.clear_log();
    net.heal();
    net.advance(Duration::from_millis(1100));
    assert!(net.saw(b, p, |b| matches!(b, Body::Challenge { .. })));
    assert_eq!(net.master(p).role(), ServerRole::Backup);
    assert!(net.saw(p, b, |b| matches!(
        b,
        Body::Error {
            code: ErrorCode::NotPrimary,
            ..
        }
    )));
}

/// The backup's heartbeat comes due while its link's handshake is under way (the primary's
/// CHALLENGE is slow to arrive): it waits for the WELCOME instead of sending a PING the
/// primary would take as an answer to its CHALLENGE and refuse the link for (every attach
/// began with a refusal and a second's pause).
#[test]
fn a_heartbeat_due_during_the_links_handshake_does_not_get_the_link_refused() {
    let (mut net, p, b) = pair(Some(SECRET), Some(SECRET));
    net.advance(Duration::from_millis(50));
    net.delay(p, b, Duration::from_millis(250));
    net.clear_log();
    net.close(net.link_of(b).expect("the backup's link"));
    net.settle();
    net.advance(Duration::from_millis(1000));
    assert!(net.saw(b, p, |b| matches!(b, Body::Auth { .. })));
    assert!(
        !net.saw(p, b, |b| matches!(b, Body::Error { .. })),
        "the primary refused the link"
    );
    assert!(net.saw(p, b, |b| matches!(b, Body::Welcome { proof: Some(_), .. })));
    assert_eq!(net.links_opened(b), 2, "the link was opened again");
}

#[test]
fn a_backup_without_the_secret_is_refused_retries_slowly_and_never_takes_over() {
    for backup_secret in [None, Some(OTHER)] {
        let (mut net, p, b) = pair(Some(SECRET), backup_secret);
        net.advance(Duration::from_millis(3500));
        assert!(
            net.saw(p, b, |b| matches!(
                b,
                Body::Error {
                    code: ErrorCode::Unauthorized,
                    ..
                }
            )),
            "{backup_secret:?}: {:?}",
            net.sent().iter().map(|s| s.frame()).collect::<Vec<_>>()
        );
        assert!(!net.saw(p, b, |b| matches!(b, Body::Sync { .. })));
        assert_eq!(
            net.master(b).role(),
            ServerRole::Backup,
            "{backup_secret:?}"
        );
        assert_eq!(
            net.master(p).role(),
            ServerRole::Primary,
            "{backup_secret:?}"
        );
        assert_eq!(net.master(p).status().epoch, 1);
        // One attempt a second, not one per heartbeat interval (or a tight loop).
        assert!(
            (3..=5).contains(&net.links_opened(b)),
            "{backup_secret:?}: {} links in 3.5 s",
            net.links_opened(b)
        );
    }
}

#[test]
fn a_backup_with_a_secret_refuses_a_primary_without_one() {
    let (mut net, p, b) = pair(None, Some(SECRET));
    net.advance(Duration::from_millis(1500));
    assert!(net.saw(p, b, |b| matches!(
        b,
        Body::Error {
            code: ErrorCode::Unauthorized,
            ..
        }
    )));
    assert!(!net.saw(p, b, |b| matches!(b, Body::Sync { .. })));
    assert_eq!(net.master(b).role(), ServerRole::Backup);
}
