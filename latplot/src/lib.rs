//! `dsm-latency-svg`, the picture `make bench` draws: the latency percentile distributions of
//! dsm and redis, one panel per op and setting, HdrHistogram style (x: percentile on a log
//! scale of 1/(1-p); y: latency). Bench-only: nothing in the servers or the client uses it.
//!
//! - [`dist`]: reading a distribution (a `dsm-client bench --hist` file or one test of
//!   redis-benchmark's text output) and pooling the runs of one series.
//! - [`manifest`]: what to draw, as `scripts/bench.sh` writes it.
//! - [`svg`]: the drawing, hand-written SVG with no outside assets.

pub mod dist;
pub mod manifest;
pub mod svg;
