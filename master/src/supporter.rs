//! A voter that lost its primary and came to this standby (a slave, or another standby on
//! our heartbeat socket): what the standby knows of it until an election decides (see
//! `ha/election.rs`). Its own file because the election hands
//! supporters to `Master` in an [`crate::effect::Effect`].

use std::time::Instant;

use dsm_wire::Body;

/// A slave or a standby supporting this standby.
#[derive(Debug, Clone)]
pub(crate) struct Supporter {
    pub id: String,
    /// Another standby master (by its HELLO's id), not a slave: once we are elected it
    /// attaches to us as a standby instead of serving as a slave.
    pub master: bool,
    pub boot: u64,
    /// The highest epoch it said (in its HELLO) it had seen.
    pub seen: u64,
    /// It was sent our TAKEOVER (and has not refused it since), at this time: a granted vote
    /// is its promise from then.
    pub asked: Option<Instant>,
    /// Its answer to our TAKEOVER, once it came: granted?
    pub voted: Option<bool>,
    /// It was told this standby is out of step with the primary.
    pub stale: bool,
    /// TAKEOVER asked it to report what it holds.
    pub inventory: bool,
    /// What it sent after granting its vote (its INVENTORY), kept until this standby is
    /// elected and takes it as a slave.
    pub held: Vec<Body>,
}
