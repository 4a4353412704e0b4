//! The master's timers: what each one is for. They live in one wheel (`dsm_net::TimerWheel`);
//! `Master::on_tick` hands each expired one to the component that set it.

use dsm_net::TimerWheel;

use crate::idmap::{ConnId, OpId};
use crate::keymap::SlaveIdx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The STORE sent as this sub-request was not ACKed in time.
    Ack(u64),
    /// The READ has had no usable answer for `read_retry`: ask again.
    ReadRetry(OpId),
    /// The request has reached its deadline.
    Deadline(OpId),
    /// Periodic: PING idle slaves, drop the silent ones.
    PingSweep,
    /// Periodic on a backup: poll the primary, take over when it is silent.
    Heartbeat,
    /// After a takeover: stop waiting for slaves known from the old primary.
    GraceEnd,
    /// The connection has not finished its HELLO in time (still `New` or `Challenged`).
    Hello(ConnId, u64),
    /// A slave went out of reach a while ago: copy what it held elsewhere, or give it up.
    Absent(SlaveIdx),
    /// The discovery window of a master started without a roster has passed.
    Discovered,
    /// Periodic (`--lease-ms` / 4): a primary renews its lease (`ha/lease.rs`).
    Renew,
}

pub(crate) type Timers = TimerWheel<Timer>;
