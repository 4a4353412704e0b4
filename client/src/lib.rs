//! dsm client.
