//! The master's table of slaves (replicas): where each stands (in service, reporting what it
//! holds, out of reach, or lost for good), where to reach it, when it was last heard, the grace
//! a new primary gives the slaves after a takeover, and the rendezvous ranking of live slaves
//! for a key.
//!
//! Every process of a slave gets an index of its own, never reused: a holder list names the
//! incarnation that holds a copy. A slave that is dropped stays in the table, out of reach,
//! with its copies counted as unreachable, not gone; the same process coming back (same boot
//! id) is in service again at once, a new process reports what it holds first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::idmap::ConnId;
use crate::keymap::SlaveIdx;
use crate::placement;

/// A slave that has not answered this many PINGs in a row is dropped.
const PINGS_UNANSWERED: u32 = 3;

/// A slave that missed a deadline while still talking is avoided by reads this long (each
/// miss starts it again): long enough to span a slow spell, short enough to forgive a hiccup.
pub const SUSPECT_FOR: Duration = Duration::from_secs(1);

/// Slaves in rendezvous order for one key ([`SlaveTable::ranked_live`]).
pub type Ranked = crate::few::Few<SlaveIdx, 4>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected and in service.
    Live,
    /// Connected, reporting what it holds (INVENTORY); not in service until that is done.
    Joining,
    /// Not connected since `since`: dropped, or known from the old primary (or from before
    /// this master restarted). Its copies are unreachable, not gone: it may come back.
    Absent { since: Instant },
    /// Gone for good: forgotten by the operator, absent too long, or superseded by a newer
    /// process of the same slave that reported what it holds. Its copies no longer count.
    Lost,
}

#[derive(Debug)]
pub struct Replica {
    pub id: String,
    pub addr: String,
    pub conn: ConnId,
    pub state: State,
    /// The boot id of the process (0: not known, as for a slave known only by id).
    pub boot: u64,
    /// The highest epoch this slave said it had seen (its HELLO).
    pub epoch_seen: u64,
    /// `stable_hash(id)`, cached for ranking.
    pub hash: u64,
    pub last_heard: Instant,
    pub unanswered_pings: u32,
    /// Missed a deadline while still talking: reads prefer other holders until then.
    pub suspect_until: Option<Instant>,
    /// It has been in service: it finished reporting what it holds (or is known from the
    /// primary's stream or the roster, which name only such slaves). Only such a slave is on
    /// the roster and votes; one that registered and left before the end of its report holds
    /// nothing the cluster counted on it for, and a stranger's registrations cannot tilt a
    /// majority that way.
    pub served: bool,
    /// On a standby: the primary has it in service (its stream said SlaveUp, and no
    /// SlaveDown or SlaveLost since). What STATUS and the status page of a standby report,
    /// which has no connection to the slaves of its own; never set on a primary.
    pub up_at_primary: bool,
}

impl Replica {
    pub fn live(&self) -> bool {
        self.state == State::Live
    }

    /// Whether STATUS reports it live: live here, or on a standby, in service at the primary
    /// it follows ([`Replica::up_at_primary`]).
    pub fn reported_live(&self) -> bool {
        self.live() || self.up_at_primary
    }
}

#[derive(Default)]
pub struct SlaveTable {
    list: Vec<Replica>,
    /// The latest `suspect_until` of any slave: before it, some slave may be suspected.
    suspects_until: Option<Instant>,
    /// After a takeover: until then, writes short of slaves wait for the ones known from the
    /// old primary to come back rather than go ahead with fewer copies.
    grace_until: Option<Instant>,
}

/// What a PING round decided ([`SlaveTable::ping_round`]).
#[derive(Default)]
pub struct PingRound {
    /// Slaves that left too many PINGs unanswered: to be dropped.
    pub silent: Vec<SlaveIdx>,
    /// Connections of idle slaves to PING now.
    pub ping: Vec<ConnId>,
}

impl SlaveTable {
    fn add(&mut self, id: &str, boot: u64, state: State, now: Instant) -> SlaveIdx {
        let served = !matches!(state, State::Joining);
        self.list.push(Replica {
            id: id.to_string(),
            addr: String::new(),
            conn: usize::MAX,
            state,
            boot,
            epoch_seen: 0,
            hash: placement::stable_hash(id.as_bytes()),
            last_heard: now,
            unanswered_pings: 0,
            suspect_until: None,
            served,
            up_at_primary: false,
        });
        (self.list.len() - 1) as SlaveIdx
    }

    /// Slave `idx` missed a deadline while still talking: avoid it for reads until
    /// `now + SUSPECT_FOR`. Returns whether it was not suspected already.
    pub fn suspect(&mut self, idx: SlaveIdx, now: Instant) -> bool {
        let s = self.get_mut(idx);
        let fresh = s.suspect_until.is_none_or(|u| u <= now);
        s.suspect_until = Some(now + SUSPECT_FOR);
        self.suspects_until = Some(now + SUSPECT_FOR);
        fresh
    }

    /// Whether any slave may be suspected at `now` (the hot paths skip the checks if not).
    #[inline]
    pub fn any_suspected(&self, now: Instant) -> bool {
        self.suspects_until.is_some_and(|u| now < u)
    }

    /// Whether reads should prefer other holders to slave `idx` at `now`.
    #[inline]
    pub fn is_suspected(&self, idx: SlaveIdx, now: Instant) -> bool {
        self.get(idx).suspect_until.is_some_and(|u| now < u)
    }

    /// The current incarnation of `id` (the newest entry that is not lost).
    pub fn by_id(&self, id: &str) -> Option<SlaveIdx> {
        self.list
            .iter()
            .rposition(|s| s.id == id && s.state != State::Lost)
            .map(|i| i as SlaveIdx)
    }

    /// A slave known to hold data but not connected (from the primary's stream, or from
    /// before a restart): absent since `now`. Returns its index; an entry for the same id and
    /// boot is kept, one with another boot is superseded (lost).
    pub fn expect(&mut self, id: &str, boot: u64, now: Instant) -> SlaveIdx {
        if let Some(idx) = self.by_id(id) {
            let s = self.get(idx);
            if s.boot == boot || boot == 0 {
                return idx;
            }
            self.get_mut(idx).state = State::Lost;
        }
        self.add(id, boot, State::Absent { since: now }, now)
    }

    /// The same process (same boot) comes back: the index it had, if it may be taken back
    /// into service without reporting what it holds.
    pub fn returning(&self, id: &str, boot: u64) -> Option<SlaveIdx> {
        let idx = self.by_id(id)?;
        let s = self.get(idx);
        let back = boot != 0 && s.boot == boot && s.served;
        (back && matches!(s.state, State::Absent { .. })).then_some(idx)
    }

    /// Take a returning slave back into service on `conn`.
    pub fn resume(&mut self, idx: SlaveIdx, conn: ConnId, addr: String, now: Instant) {
        let s = self.get_mut(idx);
        s.state = State::Live;
        s.conn = conn;
        s.addr = addr;
        s.last_heard = now;
        s.unanswered_pings = 0;
    }

    /// A new process of slave `id` (or a new slave) on `conn`: it must report what it holds
    /// before it is in service. Any earlier incarnation stays as it was until then.
    pub fn join(
        &mut self,
        id: &str,
        boot: u64,
        conn: ConnId,
        addr: String,
        now: Instant,
    ) -> SlaveIdx {
        let idx = self.add(id, boot, State::Joining, now);
        let s = self.get_mut(idx);
        s.conn = conn;
        s.addr = addr;
        idx
    }

    /// The joining slave `idx` has reported everything: it is in service, and an earlier
    /// incarnation of it is lost (what it held and was not reported again is gone). Returns
    /// that earlier incarnation, if there was one.
    pub fn joined(&mut self, idx: SlaveIdx) -> Option<SlaveIdx> {
        self.get_mut(idx).state = State::Live;
        self.get_mut(idx).served = true;
        let id = self.get(idx).id.clone();
        let older = self.list[..idx as usize]
            .iter()
            .rposition(|s| s.id == id && s.state != State::Lost)?;
        self.list[older].state = State::Lost;
        Some(older as SlaveIdx)
    }

    /// Give slave `idx` up for good.
    pub fn lose(&mut self, idx: SlaveIdx) {
        self.get_mut(idx).state = State::Lost;
    }

    pub fn get(&self, idx: SlaveIdx) -> &Replica {
        &self.list[idx as usize]
    }

    pub fn get_mut(&mut self, idx: SlaveIdx) -> &mut Replica {
        &mut self.list[idx as usize]
    }

    pub fn state(&self, idx: SlaveIdx) -> Option<State> {
        self.list.get(idx as usize).map(|s| s.state)
    }

    pub fn is_live(&self, idx: SlaveIdx) -> bool {
        self.list.get(idx as usize).is_some_and(Replica::live)
    }

    /// Whether STATUS counts slave `idx` live ([`Replica::reported_live`]).
    pub fn reported_live(&self, idx: SlaveIdx) -> bool {
        self.list
            .get(idx as usize)
            .is_some_and(Replica::reported_live)
    }

    /// A standby's view of its primary's slaves: slave `id` (known) is in service there, or
    /// not.
    pub fn set_up_at_primary(&mut self, id: &str, up: bool) {
        if let Some(idx) = self.by_id(id) {
            self.get_mut(idx).up_at_primary = up;
        }
    }

    /// No primary's view any more (this master takes over, or follows another primary,
    /// whose snapshot says it again).
    pub fn forget_primary_view(&mut self) {
        for s in &mut self.list {
            s.up_at_primary = false;
        }
    }

    /// Whether slave `idx` is out of reach but may come back with its copies.
    pub fn may_come_back(&self, idx: SlaveIdx) -> bool {
        matches!(self.state(idx), Some(State::Absent { .. } | State::Joining))
    }

    /// Whether a copy on `idx` counts toward a key's R copies for re-replication: live, or
    /// out of reach for less than `patience` (it is likely back soon, with its copies).
    pub fn counts_as_copy(&self, idx: SlaveIdx, now: Instant, patience: Duration) -> bool {
        match self.state(idx) {
            Some(State::Live) => true,
            Some(State::Absent { since }) => now.saturating_duration_since(since) < patience,
            _ => false,
        }
    }

    /// A takeover, or every slave dropped at once: writes short of slaves wait for them until
    /// `until` (a grace under way that ends later is kept).
    pub fn start_grace(&mut self, until: Instant) {
        self.grace_until = Some(self.grace_until.map_or(until, |t| t.max(until)));
    }

    /// End the grace, unless one that ends after `now` was started since.
    pub fn end_grace(&mut self, now: Instant) -> bool {
        if self.grace_until.is_some_and(|t| t > now) {
            return false;
        }
        self.grace_until = None;
        true
    }

    /// Whether a write short of live slaves should wait for slaves to come back: during the
    /// grace after a takeover, while some may.
    pub fn may_return(&self, now: Instant) -> bool {
        self.grace_until.is_some_and(|t| now < t) && self.any_may_come_back()
    }

    /// Whether any slave may still come back with copies (absent or reporting).
    pub fn any_may_come_back(&self) -> bool {
        self.list
            .iter()
            .any(|s| matches!(s.state, State::Absent { .. } | State::Joining))
    }

    /// Whether a slave out of reach now may have been sent something at or after `t`: one
    /// absent since then (dropped, or known only from an old primary), or one reporting what
    /// it holds. It may hold a STORE sent after `t` that nobody can ask it about now.
    pub fn any_out_of_reach_since(&self, t: Instant) -> bool {
        self.list.iter().any(|s| match s.state {
            State::Absent { since } => since >= t,
            State::Joining => true,
            _ => false,
        })
    }

    /// Whether one of `holders` may still come back with its copy.
    pub fn holder_may_return(&self, holders: &[SlaveIdx]) -> bool {
        holders.iter().any(|&h| self.may_come_back(h))
    }

    /// The slave said something: it is alive, whatever PINGs it left unanswered.
    pub fn heard(&mut self, idx: SlaveIdx, now: Instant) {
        let s = self.get_mut(idx);
        s.last_heard = now;
        s.unanswered_pings = 0;
    }

    /// Take a connected slave out of service (out of reach since `now`). Returns its
    /// connection and id, or `None` if it was not connected.
    pub fn mark_absent(&mut self, idx: SlaveIdx, now: Instant) -> Option<(ConnId, String)> {
        let s = self.get_mut(idx);
        if !matches!(s.state, State::Live | State::Joining) {
            return None;
        }
        s.state = State::Absent { since: now };
        Some((s.conn, s.id.clone()))
    }

    /// A takeover: the slaves known from the old primary are out of reach from now (not from
    /// when the stream first named them). Returns them.
    pub fn absent_from(&mut self, now: Instant) -> Vec<SlaveIdx> {
        let mut out = Vec::new();
        for (i, s) in self.list.iter_mut().enumerate() {
            if let State::Absent { since } = &mut s.state {
                *since = now;
                out.push(i as SlaveIdx);
            }
        }
        out
    }

    /// This master no longer serves: every connected slave is out of reach; returns their
    /// connections.
    pub fn mark_all_absent(&mut self, now: Instant) -> Vec<ConnId> {
        let mut conns = Vec::new();
        for s in self.list.iter_mut() {
            if matches!(s.state, State::Live | State::Joining) {
                s.state = State::Absent { since: now };
                conns.push(s.conn);
            }
        }
        conns
    }

    /// One round of the PING sweep: slaves silent for `interval` are PINGed (and counted),
    /// those that left too many PINGs unanswered are to be dropped.
    pub fn ping_round(&mut self, now: Instant, interval: Duration) -> PingRound {
        let mut round = PingRound::default();
        for (i, s) in self.list.iter_mut().enumerate().filter(|(_, s)| s.live()) {
            if s.unanswered_pings >= PINGS_UNANSWERED {
                round.silent.push(i as SlaveIdx);
            } else if now.saturating_duration_since(s.last_heard) >= interval {
                s.unanswered_pings += 1;
                round.ping.push(s.conn);
            }
        }
        round
    }

    pub fn live_count(&self) -> usize {
        self.list.iter().filter(|s| s.live()).count()
    }

    pub fn live(&self) -> impl Iterator<Item = (SlaveIdx, &Replica)> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live())
            .map(|(i, s)| (i as SlaveIdx, s))
    }

    /// Slaves connected to this master: in service, or reporting what they hold.
    pub fn connected(&self) -> impl Iterator<Item = (SlaveIdx, &Replica)> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.state, State::Live | State::Joining))
            .map(|(i, s)| (i as SlaveIdx, s))
    }

    /// Every slave not lost that has been in service: the cluster's roster (what a backup
    /// must know, what a restarted master waits for, who votes).
    pub fn known(&self) -> impl Iterator<Item = (SlaveIdx, &Replica)> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state != State::Lost && s.served)
            .map(|(i, s)| (i as SlaveIdx, s))
    }

    /// Live slaves in rendezvous order for a key: the first R are its home. (Inline up to 4
    /// slaves: every write ranks them, and the allocation cost as much as the ranking.)
    pub fn ranked_live(&self, key_hash: u64) -> Ranked {
        let mut order: Ranked = self.live().map(|(i, _)| i).collect();
        placement::rank_in_place(key_hash, &mut order, |i| self.list[i as usize].hash);
        order
    }

    /// What STATUS lists: the newest incarnation of each id that is not lost (a lost slave is
    /// forgotten), connected ones first, then the absent ones most recently seen first; at
    /// most `cap` of them. One pass over the table and a sort: linear in its size (up to the
    /// sort), whatever ids it holds.
    pub fn listed(&self, cap: usize) -> Vec<(SlaveIdx, &Replica)> {
        let mut newest: HashMap<&str, usize> = HashMap::new();
        for (i, s) in self.list.iter().enumerate() {
            if s.state != State::Lost {
                newest.insert(s.id.as_str(), i);
            }
        }
        let mut out: Vec<(SlaveIdx, &Replica)> = newest
            .into_values()
            .map(|i| (i as SlaveIdx, &self.list[i]))
            .collect();
        // Connected first (in order of registration), then absent, most recent first.
        out.sort_by_key(|&(i, s)| match s.state {
            State::Live | State::Joining => (0, i as i64),
            _ => (1, -(i as i64)),
        });
        out.truncate(cap);
        out
    }
}
