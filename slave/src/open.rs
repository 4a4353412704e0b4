//! What a slave does before its event loop starts: load its data directory (or say that it
//! has none), with a log line for everything replay found.

use std::io;
use std::time::Instant;

use log::{info, warn};

use crate::config::Config;
use crate::disk::{FsDisk, Fsync, Wake, COMPACTING, PREALLOCATE, SET_ASIDE};
use crate::memory;
use crate::store::Store;

/// The store the slave starts with: what `--data-dir` holds, or an empty one in memory.
/// `wake` wakes the event loop when a sync on the syncer thread is done.
pub fn open_store(cfg: &Config, wake: Wake) -> io::Result<Store> {
    let Some(dir) = &cfg.data_dir else {
        warn!(
            "no --data-dir: this slave keeps its data in memory only; a restart loses every \
             copy it holds"
        );
        return Ok(Store::in_memory(cfg.max_memory));
    };
    let start = Instant::now();
    let mut disk = FsDisk::open(dir, Some(wake))
        .map_err(|e| io::Error::new(e.kind(), format!("data dir {}: {e}", dir.display())))?;
    if cfg.disk.fsync == Fsync::Always {
        // Syncs the ACKs wait for then have no metadata to commit.
        disk.preallocate(PREALLOCATE);
    }
    let (store, r) = Store::open(Box::new(disk), cfg.disk, cfg.max_memory, start)
        .map_err(|e| io::Error::new(e.kind(), format!("data dir {}: {e}", dir.display())))?;
    let path = store.durable().map(|d| d.path()).unwrap_or_default();
    if r.removed_temp {
        info!("removed {COMPACTING}, left by a compaction that did not finish: the log is whole");
    }
    if r.set_aside {
        warn!("{path} did not start with the log header: moved to {SET_ASIDE}, starting empty");
    }
    if let Some(cut) = &r.cut {
        warn!("{path} had a torn or corrupt tail: {cut}");
    }
    info!(
        "data dir {}: loaded {} keys from {} records ({} bytes of log) in {} ms; epoch {}; \
         --fsync {}",
        dir.display(),
        store.len(),
        r.records,
        r.len,
        start.elapsed().as_millis(),
        store.epoch(),
        cfg.disk.fsync.name()
    );
    if store.memory_used() > store.max_memory() {
        warn!(
            "the data loaded takes {}, over --max-memory {}: STOREs that need more memory are \
             refused until some is freed",
            memory::show(store.memory_used() as u64),
            memory::show(store.max_memory() as u64)
        );
    }
    Ok(store)
}
