//! dsm slave.
