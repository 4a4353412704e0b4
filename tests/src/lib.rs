//! Helpers for process-level tests.
