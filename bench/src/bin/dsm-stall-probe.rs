//! `dsm-stall-probe`: how long this machine stops a running process, with nothing else to
//! blame. It reads the clock in a loop for a while and prints every gap between two reads
//! longer than a threshold: time the process was not running (an interrupt, a kernel thread,
//! or, on a virtual machine, the host taking the CPU away). Pin it to a CPU with `taskset` to
//! look at that CPU. A benchmark's tail can be no better than these gaps, and a server near
//! its capacity turns each one into a backlog (bench-results/open-loop-stalls-2026-12-04.md).
//!
//! Usage: dsm-stall-probe [SECONDS (default 3)] [GAP_US (default 150)]

use std::io::Write as _;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "Usage: dsm-stall-probe [SECONDS] [GAP_US]\n\
             Reads the clock in a loop for SECONDS (default 3) and prints each gap between two \n\
             reads longer than GAP_US microseconds (default 150): when (ms from the start) and \n\
             how long (µs). Pin it with taskset to probe one CPU."
        );
        return;
    }
    let number = |i: usize, default: f64, what: &str| -> f64 {
        match args.get(i).map(|s| s.parse::<f64>()) {
            None => default,
            Some(Ok(v)) if v > 0.0 && v.is_finite() => v,
            Some(_) => {
                eprintln!(
                    "dsm-stall-probe: {what} takes a positive number, not '{}'",
                    args[i]
                );
                std::process::exit(2);
            }
        }
    };
    let seconds = number(0, 3.0, "SECONDS");
    let gap = Duration::from_secs_f64(number(1, 150.0, "GAP_US") / 1e6);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut gaps = Vec::new();
    let mut prev = start;
    loop {
        let now = Instant::now();
        if now - prev > gap {
            gaps.push((prev - start, now - prev));
        }
        prev = now;
        if now >= end {
            break;
        }
    }
    let mut out = std::io::stdout().lock();
    let total: Duration = gaps.iter().map(|g| g.1).sum();
    let _ = writeln!(
        out,
        "# {} gaps over {} µs in {seconds} s, {} µs in all",
        gaps.len(),
        gap.as_micros(),
        total.as_micros()
    );
    for (at, len) in gaps {
        let _ = writeln!(
            out,
            "{:.1} ms {} µs",
            at.as_secs_f64() * 1e3,
            len.as_micros()
        );
    }
}
