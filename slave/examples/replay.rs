//! Load a slave's data dir as `dsm-slave` does at start, and say how long it took and what
//! it holds; then build the whole INVENTORY report a master would ask for, and time that too.
//! For measuring replay without a master: `cargo run --release -p dsm-slave --example replay
//! -- DIR [ROUNDS]` (under `perf stat` for CPU time, which a busy machine disturbs less than
//! wall time). The log is only cut if it has a torn tail, as at a real start.

use std::path::PathBuf;
use std::time::Instant;

use dsm_slave::disk::{FsDisk, Fsync, Settings, COMPACT_STEP};
use dsm_slave::Store;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: replay DIR [ROUNDS]"));
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("ROUNDS"));
    let settings = Settings {
        fsync: Fsync::Never,
        compact_min: u64::MAX,
        compact_step: COMPACT_STEP,
        failpoint: None,
    };
    for _ in 0..rounds {
        let start = Instant::now();
        let disk = FsDisk::open(&dir, None).expect("data dir");
        let (mut store, r) = Store::open(Box::new(disk), settings, u64::MAX, start).expect("open");
        let loaded = start.elapsed();
        let inv = Instant::now();
        store.on_welcome(1, true);
        let (mut frames, mut entries) = (0, 0);
        while let Some(f) = store.next_inventory() {
            frames += 1;
            if let dsm_wire::Body::Inventory { entries: e, .. } = &f.body {
                entries += e.len();
            }
            let mut buf = Vec::new();
            dsm_wire::encode(&f, &mut buf);
        }
        println!(
            "{} keys from {} records in {} ms; inventory of {entries} keys in {frames} frames, \
             encoded, in {} ms",
            store.len(),
            r.records,
            loaded.as_millis(),
            inv.elapsed().as_millis()
        );
    }
}
