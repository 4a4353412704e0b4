//! Authentication with the cluster's shared secret: the secret file, nonces and HMAC-SHA256
//! proofs ([`secret`]), and the connecting side of the handshake as a state machine
//! ([`handshake`]). No I/O beyond reading the secret file and `/dev/urandom`.

pub mod handshake;
pub mod secret;
pub use handshake::{Handshake, RefusalLog, Step};
pub use secret::{boot_id, fresh_nonce, Secret, SecretError, Terms, Transcript};
