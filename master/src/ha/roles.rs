//! The borrowed context through which high availability acts: what a change of role, the
//! backup's stream and the link to a primary touch besides the role itself.

use std::time::Instant;

use crate::config::Config;
use crate::doubts::Doubts;
use crate::effect::Effect;
use crate::keymap::KeyIndex;
use crate::outbox::Outbox;
use crate::peers::Peers;
use crate::slaves::SlaveTable;
use crate::term::Term;
use crate::timer::Timers;

pub(crate) struct Roles<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub term: &'a mut Term,
    pub slaves: &'a mut SlaveTable,
    pub keys: &'a mut KeyIndex,
    pub doubts: &'a mut Doubts,
    pub timers: &'a mut Timers,
    pub peers: &'a mut Peers,
    pub out: &'a mut Outbox,
    pub effects: &'a mut Vec<Effect>,
}
