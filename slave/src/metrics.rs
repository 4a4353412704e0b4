//! The slave's `/metrics`: what its store holds and has done, read at scrape time from the
//! plain counters the store and its log keep (no lock, no allocation per request).

use dsm_net::prom::Exposition;

use crate::slave::Slave;

/// The `/metrics` text for `slave` (`id` labels nothing: Prometheus adds the target).
pub fn render(slave: &Slave, uptime_s: f64) -> String {
    let store = slave.store();
    let mut e = Exposition::default();
    e.single("dsm_slave_keys", "gauge", "Keys held.", store.len() as f64);
    e.single(
        "dsm_slave_bytes",
        "gauge",
        "Heap bytes the key table holds (what --max-memory caps).",
        store.memory_used() as f64,
    );
    e.single(
        "dsm_slave_memory_cap_bytes",
        "gauge",
        "--max-memory.",
        store.max_memory() as f64,
    );
    let cap = store.max_memory().max(1) as f64;
    e.single(
        "dsm_slave_memory_cap_ratio",
        "gauge",
        "Share of --max-memory in use (0 to 1).",
        store.memory_used() as f64 / cap,
    );
    e.family(
        "dsm_slave_requests_total",
        "counter",
        "STOREs and FETCHes taken from a master.",
    );
    e.sample(
        "dsm_slave_requests_total",
        &[("request", "store")],
        store.stores as f64,
    );
    e.sample(
        "dsm_slave_requests_total",
        &[("request", "fetch")],
        store.fetches as f64,
    );
    e.single(
        "dsm_slave_registered",
        "gauge",
        "1 while registered with a master.",
        slave.registered() as u8 as f64,
    );
    e.single(
        "dsm_slave_epoch",
        "gauge",
        "The highest master epoch seen.",
        store.epoch() as f64,
    );
    e.single(
        "dsm_slave_uptime_seconds",
        "gauge",
        "Seconds since start.",
        uptime_s,
    );
    if let Some(d) = store.durable() {
        e.single(
            "dsm_slave_log_bytes",
            "gauge",
            "Length of the log file.",
            d.log_len() as f64,
        );
        e.single(
            "dsm_slave_compactions_total",
            "counter",
            "Compactions that replaced the log.",
            d.compactions() as f64,
        );
        e.family(
            "dsm_slave_fsync_duration_seconds",
            "histogram",
            "Log syncs: an in-place fdatasync, or one on the syncer thread from its start to \
             the loop taking its outcome.",
        );
        e.histogram("dsm_slave_fsync_duration_seconds", &[], d.sync_latency());
    }
    e.finish()
}
