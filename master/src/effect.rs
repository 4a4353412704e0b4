//! What a component cannot do itself and leaves for `Master` to route to the components that
//! own it: the operations, the slave table, the connections.

use crate::idmap::ConnId;
use crate::keymap::SlaveIdx;

#[derive(Debug)]
pub(crate) enum Effect {
    /// Take the slave out of service (it is silent, or its connection closed).
    DropSlave { slave: SlaveIdx, why: String },
    /// The slave missed a deadline (an ACK, a READ's answer) while still talking: reads go to
    /// other holders for a while. It stays in service; nothing it holds is lost.
    Suspect { slave: SlaveIdx, why: &'static str },
    /// The slave was taken out of service: what was sent to it fails over, and its keys may
    /// need copies.
    Dropped(SlaveIdx),
    /// A slave came into service, or one was given up, or a takeover's grace ended: copies
    /// may start, and writes that waited for slaves may go ahead.
    Membership,
    /// This master was elected primary: the slaves it knows are out of reach from now, but
    /// for `supporters` that voted for it (the others redial); `stale`: one of them said its
    /// map is out of step, so it recovers from the slaves.
    TookOver {
        supporters: Vec<(ConnId, crate::supporter::Supporter)>,
        stale: bool,
    },
    /// This master stepped down (why): let go of the slaves and answer the open operations.
    SteppedDown(String),
    /// The backup confirmed SYNCs, or went away: writes waiting for it may commit.
    Synced,
    /// The backup asks for STATUS: answer request `req` on `conn`.
    Status { conn: ConnId, req: u64 },
}
