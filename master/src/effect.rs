//! What a component cannot do itself and leaves for `Master` to route to the components that
//! own it: the operations, the slave table, the connections.

use crate::idmap::ConnId;
use crate::keymap::SlaveIdx;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Declare the slave dead: close it and re-route everything it had.
    DropSlave { slave: SlaveIdx, why: String },
    /// This master stepped down (why): let go of the slaves and answer the open operations.
    SteppedDown(String),
    /// The backup confirmed SYNCs, or went away: writes waiting for it may commit.
    Synced,
    /// The backup asks for STATUS: answer request `req` on `conn`.
    Status { conn: ConnId, req: u64 },
}
