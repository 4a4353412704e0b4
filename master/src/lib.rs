//! dsm master.
