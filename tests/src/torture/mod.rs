//! A Jepsen-style torture suite: concurrent clients on a small key set record every operation
//! ([`history`], [`workload`]) while a seeded [`nemesis`] kills and freezes slaves and masters;
//! then the [`checker`] decides, key by key, whether the history is linearizable and whether
//! every acknowledged write survived. [`run`] ties it together, on loopback or with every node
//! in a network namespace of its own ([`netns`]), where the primary can also be cut off from
//! its backup; `dsm-torture` and `tests/tests/torture.rs` drive it.

pub mod checker;
pub mod history;
pub mod json;
pub mod nemesis;
pub mod netns;
pub mod report;
pub mod rng;
pub mod run;
pub mod workload;
