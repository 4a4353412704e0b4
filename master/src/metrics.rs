//! The master's metrics: the counters and latency histograms the request path bumps (plain
//! fields owned by `Ops` and `Master`: no lock, no allocation per request), and the
//! `/metrics` text built from them and from the state at scrape time.

use std::time::{Duration, Instant};

use dsm_net::prom::{Exposition, Histogram};
use dsm_wire::{Body, ErrorCode, Status};

/// Request kinds, as the `op` label says them.
/// read: READ and VREAD; write: WRITE; update: SET (CAS), DELETE and INCR.
pub const OPS: [&str; 3] = ["read", "write", "update"];
pub const READ: usize = 0;
pub const WRITE: usize = 1;
pub const UPDATE: usize = 2;

/// Results: OK (and VALUE), NOT_FOUND, then each error code by its number, then any other.
const RESULTS: usize = 15;

fn result_index(reply: &Body) -> usize {
    match reply {
        Body::NotFound => 1,
        Body::Error { code, .. } => match code {
            ErrorCode::Other(_) => RESULTS - 1,
            code => (2 + code.to_u16() as usize).min(RESULTS - 1),
        },
        _ => 0,
    }
}

fn result_name(i: usize) -> String {
    match i {
        0 => "ok".into(),
        1 => "not_found".into(),
        2 => "unknown".into(),
        i if i == RESULTS - 1 => "other".into(),
        i => ErrorCode::from_u16(i as u16 - 2)
            .name()
            .to_ascii_lowercase(),
    }
}

/// What the request path records (owned by `Ops`).
#[derive(Default, Clone)]
pub(crate) struct RequestStats {
    /// By op, then by result.
    pub answered: [[u64; RESULTS]; OPS.len()],
    /// Arrival to answer, by op (requests that were queued: not those refused at once).
    pub latency: [Histogram; OPS.len()],
    /// Arrival to start: waiting behind earlier operations on the key.
    pub queued: Histogram,
    /// A WRITE's start (its STOREs go out) to its last ACK (not SET/DELETE/INCR: they read first).
    pub replication: Histogram,
    /// A STORE (0) or FETCH (1) sent to its answer: the slave's service time with the hops.
    pub service: [Histogram; 2],
    /// A write's last ACK to the backup confirming its intent (writes that had to wait).
    pub backup: Histogram,
}

impl RequestStats {
    #[inline]
    pub fn answered(&mut self, op: usize, reply: &Body, arrived: Option<Instant>, now: Instant) {
        self.answered[op][result_index(reply)] += 1;
        if let Some(t) = arrived {
            self.latency[op].record(now.saturating_duration_since(t));
        }
    }
}

/// What `Master` counts outside the request path.
#[derive(Default, Clone)]
pub(crate) struct EventStats {
    pub takeovers: u64,
    /// Slaves taken out of service, by [`DROP_REASONS`].
    pub dropped: [u64; DROP_REASONS.len()],
    /// Slaves suspected: a deadline missed while still talking (each spell counted once).
    pub suspected: u64,
}

pub const DROP_REASONS: [&str; 5] = [
    "connection_closed",
    "ack_timeout",
    "pings_unanswered",
    "reconnected",
    "other",
];

impl EventStats {
    /// Count a slave dropped for `why` (the text `Members::drop` logs).
    pub fn dropped(&mut self, why: &str) {
        let i = if why.contains("connection closed") {
            0
        } else if why.contains("ACK") {
            1
        } else if why.contains("PING") {
            2
        } else if why.contains("connected again") {
            3
        } else {
            4
        };
        self.dropped[i] += 1;
    }
}

/// The state read at scrape time besides the counters.
pub(crate) struct Snapshot<'a> {
    pub status: &'a Status,
    pub requests: &'a RequestStats,
    pub events: &'a EventStats,
    pub copy_bytes: u64,
    /// The read cache's counters (`cache.rs`).
    pub read_cache: crate::cache::CacheStats,
    /// Connections by peer kind name.
    pub conns: &'a [(&'static str, u64)],
    pub in_flight: (usize, usize),
    pub other_masters: usize,
    /// Set by the event loop: bytes queued for peers, HTTP connections.
    pub buffered: u64,
    pub http_conns: u64,
    pub uptime: Duration,
}

/// The `/metrics` text.
pub(crate) fn render(s: &Snapshot) -> String {
    let mut e = Exposition::default();
    let st = s.status;
    e.family(
        "dsm_master_role",
        "gauge",
        "1 for the role this master has now.",
    );
    for role in ["primary", "backup", "fenced", "recovering"] {
        let on = (st.role.name() == role) as u8 as f64;
        e.sample("dsm_master_role", &[("role", role)], on);
    }
    e.single(
        "dsm_master_epoch",
        "gauge",
        "The epoch this master is at.",
        st.epoch as f64,
    );
    e.single(
        "dsm_master_takeovers_total",
        "counter",
        "Elections this master won.",
        s.events.takeovers as f64,
    );
    e.single(
        "dsm_master_other_masters",
        "gauge",
        "Other masters configured (--backup-of / --peers).",
        s.other_masters as f64,
    );
    e.single(
        "dsm_master_uptime_seconds",
        "gauge",
        "Seconds since start.",
        s.uptime.as_secs_f64(),
    );
    e.family(
        "dsm_master_requests_total",
        "counter",
        "Client READs and WRITEs answered, by op and result.",
    );
    for (op, name) in OPS.iter().enumerate() {
        for (r, &n) in s.requests.answered[op].iter().enumerate() {
            if n > 0 || r == 0 {
                let result = result_name(r);
                e.sample(
                    "dsm_master_requests_total",
                    &[("op", name), ("result", &result)],
                    n as f64,
                );
            }
        }
    }
    e.family(
        "dsm_master_request_duration_seconds",
        "histogram",
        "Arrival to answer of the client requests that were queued, by op.",
    );
    for (op, name) in OPS.iter().enumerate() {
        e.histogram(
            "dsm_master_request_duration_seconds",
            &[("op", name)],
            &s.requests.latency[op],
        );
    }
    e.family(
        "dsm_master_stage_duration_seconds",
        "histogram",
        "Stages of a request: queue (behind earlier ops on its key), replication (a write's \
         first STORE to its last ACK), backup (last ACK to the backup's confirmation, writes \
         that waited).",
    );
    let r = s.requests;
    for (stage, h) in [
        ("queue", &r.queued),
        ("replication", &r.replication),
        ("backup", &r.backup),
    ] {
        e.histogram("dsm_master_stage_duration_seconds", &[("stage", stage)], h);
    }
    e.family(
        "dsm_master_slave_service_seconds",
        "histogram",
        "A STORE or FETCH sent to a slave to its answer, by request.",
    );
    for (i, req) in ["store", "fetch"].iter().enumerate() {
        e.histogram(
            "dsm_master_slave_service_seconds",
            &[("request", req)],
            &r.service[i],
        );
    }
    e.family(
        "dsm_master_slaves",
        "gauge",
        "Slaves known, by whether they are live.",
    );
    let live = st.slaves.iter().filter(|s| s.live).count();
    e.sample("dsm_master_slaves", &[("state", "live")], live as f64);
    e.sample(
        "dsm_master_slaves",
        &[("state", "dead")],
        (st.slaves.len() - live) as f64,
    );
    e.family(
        "dsm_master_slave_keys",
        "gauge",
        "Keys placed on each slave (live copies).",
    );
    for sl in &st.slaves {
        e.sample(
            "dsm_master_slave_keys",
            &[("slave", &sl.id)],
            sl.keys as f64,
        );
    }
    e.single(
        "dsm_master_keys",
        "gauge",
        "Keys in the key map.",
        st.keys as f64,
    );
    e.single(
        "dsm_master_under_replicated_keys",
        "gauge",
        "Keys with fewer than R live copies.",
        st.under_replicated as f64,
    );
    e.single(
        "dsm_master_rereplication_copies_total",
        "counter",
        "Copies made by re-replication.",
        st.copies_made as f64,
    );
    e.single(
        "dsm_master_rereplication_bytes_total",
        "counter",
        "Value bytes read from holders for re-replication copies.",
        s.copy_bytes as f64,
    );
    let rc = &s.read_cache;
    e.single(
        "dsm_master_read_cache_entries",
        "gauge",
        "Keys whose committed value the read cache holds (--read-cache-mb, --read-cache-large-mb).",
        rc.entries as f64,
    );
    e.single(
        "dsm_master_read_cache_bytes",
        "gauge",
        "Bytes the read cache counts against its bounds (values, the buffers large values keep alive, per-entry overhead).",
        rc.bytes as f64,
    );
    e.single(
        "dsm_master_read_cache_large_bytes",
        "gauge",
        "Of dsm_master_read_cache_bytes, what large values count against --read-cache-large-mb.",
        rc.large_bytes as f64,
    );
    e.single(
        "dsm_master_read_cache_hits_total",
        "counter",
        "READs answered from the read cache, without a FETCH.",
        rc.hits as f64,
    );
    e.single(
        "dsm_master_read_cache_misses_total",
        "counter",
        "READs of an existing key that found no cached value of its committed version.",
        rc.misses as f64,
    );
    e.single(
        "dsm_master_read_cache_evictions_total",
        "counter",
        "Values the read cache evicted to stay within its bounds.",
        rc.evictions as f64,
    );
    e.family(
        "dsm_master_slaves_dropped_total",
        "counter",
        "Slaves taken out of service, by reason.",
    );
    for (i, why) in DROP_REASONS.iter().enumerate() {
        e.sample(
            "dsm_master_slaves_dropped_total",
            &[("reason", why)],
            s.events.dropped[i] as f64,
        );
    }
    e.single(
        "dsm_master_slaves_suspected_total",
        "counter",
        "Slaves suspected: late but still talking, kept in service and avoided for a while.",
        s.events.suspected as f64,
    );
    e.family(
        "dsm_master_connections",
        "gauge",
        "Open connections, by kind of peer.",
    );
    for (kind, n) in s.conns {
        e.sample("dsm_master_connections", &[("kind", kind)], *n as f64);
    }
    e.sample(
        "dsm_master_connections",
        &[("kind", "http")],
        s.http_conns as f64,
    );
    e.single(
        "dsm_master_buffered_bytes",
        "gauge",
        "Bytes queued for peers and not yet written.",
        s.buffered as f64,
    );
    e.family(
        "dsm_master_in_flight",
        "gauge",
        "Operations and slave sub-requests open.",
    );
    e.sample(
        "dsm_master_in_flight",
        &[("kind", "operations")],
        s.in_flight.0 as f64,
    );
    e.sample(
        "dsm_master_in_flight",
        &[("kind", "subrequests")],
        s.in_flight.1 as f64,
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_index_has_a_distinct_name() {
        let mut names: Vec<String> = (0..RESULTS).map(result_name).collect();
        assert_eq!(names[2 + ErrorCode::Timeout.to_u16() as usize], "timeout");
        assert_eq!(result_index(&Body::error(ErrorCode::Timeout, "t")), 6);
        assert_eq!(
            result_index(&Body::error(ErrorCode::Other(999), "t")),
            RESULTS - 1
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RESULTS);
    }

    #[test]
    fn drop_reasons_are_told_apart() {
        let mut ev = EventStats::default();
        ev.dropped("its connection closed");
        ev.dropped("no ACK within 500 ms and nothing heard since");
        ev.dropped("3 PINGs unanswered");
        ev.dropped("it connected again (the old connection is given up)");
        ev.dropped("forgotten");
        assert_eq!(ev.dropped, [1, 1, 1, 1, 1]);
    }
}
