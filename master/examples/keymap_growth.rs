//! How long one insert into the master's key map can take while it grows: N new keys
//! (default 10M) committed one at a time, each timed, then N lookups of them. Prints the
//! longest single inserts, the mean insert and the mean lookup. Not part of `make test`.
//!
//! `cargo run --release -p dsm-master --example keymap_growth [N]`

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use dsm_master::keymap::KeyIndex;

fn key(buf: &mut Vec<u8>, i: u64) {
    buf.clear();
    write!(buf, "key:{i:012}").unwrap();
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of keys"))
        .unwrap_or(10_000_000);
    let mut k = KeyIndex::default();
    let mut buf = Vec::new();
    let mut worst: Vec<(Duration, u64)> = Vec::new();
    let mut over_1ms = 0u64;
    let all = Instant::now();
    for i in 0..n {
        key(&mut buf, i);
        let t = Instant::now();
        k.commit(&buf, i + 1, &[1, 2]);
        let d = t.elapsed();
        if d > Duration::from_millis(1) {
            over_1ms += 1;
        }
        if worst.len() < 5 || d > worst[worst.len() - 1].0 {
            worst.push((d, i));
            worst.sort_by_key(|w| std::cmp::Reverse(w.0));
            worst.truncate(5);
        }
    }
    let insert = all.elapsed();
    let t = Instant::now();
    let mut sink = 0u64;
    for i in 0..n {
        key(&mut buf, i);
        sink ^= k.get(&buf).expect("inserted").version;
    }
    let lookup = t.elapsed();
    // Misses: keys never inserted.
    let t = Instant::now();
    for i in n..2 * n {
        key(&mut buf, i);
        sink ^= u64::from(k.get(&buf).is_none());
    }
    let miss = t.elapsed();
    black_box(sink);
    println!("keys: {n}");
    for (d, i) in &worst {
        println!("slow insert: {:>10.3} ms at key {i}", d.as_secs_f64() * 1e3);
    }
    println!("inserts over 1 ms: {over_1ms}");
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!("mean insert (with a clock read): {:.1} ns", per(insert));
    println!("mean lookup, hit: {:.1} ns", per(lookup));
    println!("mean lookup, miss: {:.1} ns", per(miss));
}
