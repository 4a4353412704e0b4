//! What the operation kinds (`write.rs`, `read.rs`, `copy.rs`) share with the queue that runs
//! them: the fixed part of an operation they read ([`OpRef`]) and what one step of their logic
//! decided ([`Step`]). A kind never answers or queues anything itself; it says so here.

use std::time::Instant;

use dsm_wire::Body;

use crate::idmap::OpId;
use crate::key::Key;

/// The fixed part of an operation, as its kind's logic sees it.
pub(crate) struct OpRef<'a> {
    pub id: OpId,
    pub key: &'a Key,
    /// `keys.hash(key)`.
    pub hash: u64,
    pub req_id: u64,
    /// When the operation is answered TIMEOUT at the latest.
    pub deadline_at: Instant,
    /// Bytes its answer is expected to bring back (a READ: the last value size seen).
    pub answer: usize,
}

/// What a step of an operation's logic decided.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing more until an answer or a timer.
    Wait,
    /// The outcome is known: this is the reply.
    Done(Body),
    /// A write short of slaves just after a takeover: start it again when one registers.
    Defer,
    /// A write ACKed by its slaves waits for the backup to confirm its intent.
    AwaitBackup,
}
