//! Master settings, with the defaults the `--help` text documents.

use std::net::SocketAddr;
use std::time::Duration;

use dsm_auth::Secret;
use dsm_wire::{ErrorCode, Limits};

/// Default of `--spin-us`.
pub const SPIN_US: u64 = 200;
/// Default of `--client-spin-us`.
pub const CLIENT_SPIN_US: u64 = 200;
/// Default of `--coalesce-us`.
pub const COALESCE_US: u64 = 300;
/// Default of `--repair-after-ms`.
pub const REPAIR_AFTER_MS: u64 = 10_000;
/// Default of `--slave-lost-after-ms` (an hour).
pub const SLAVE_LOST_AFTER_MS: u64 = 3_600_000;
/// A master started without a roster takes what registering slaves hold this long before
/// it serves (slaves redial at least once a second).
pub const DISCOVER_MS: u64 = 3_000;
/// Default of `--peer-slots`.
pub const PEER_SLOTS: usize = 64;
/// Default of `--max-client-memory`.
pub const MAX_CLIENT_MEMORY: usize = 4 * 1024 * 1024;
/// Default of `--max-buffer-memory`.
pub const MAX_BUFFER_MEMORY: usize = 16 * 1024 * 1024;
/// Default of `--stalled-client-ms`.
pub const STALLED_CLIENT_MS: u64 = 10_000;
/// Largest frame taken from a connection that has not passed HELLO (and authentication): a
/// HELLO with a peer id of 128 bytes is about 200.
pub const UNAUTHENTICATED_MAX_FRAME: usize = 4096;
/// Default of `--lease-ms`.
pub const LEASE_MS: u64 = 400;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub heartbeat: SocketAddr,
    /// Copies of each write (R).
    pub replicas: usize,
    pub max_key: usize,
    pub max_value: usize,
    /// A slave that has not ACKed a STORE by then is declared dead.
    pub ack_timeout: Duration,
    /// No client request waits longer than this for its outcome.
    pub request_timeout: Duration,
    /// A READ asks another holder (or the same again) when no answer came by then.
    pub read_retry: Duration,
    /// Idle slaves are PINGed this often and dropped after 3 unanswered.
    pub ping_interval: Duration,
    /// A connection that has not said HELLO by then is closed.
    pub hello_timeout: Duration,
    /// Stop accepting at this many connections; resume below 90% of it.
    pub max_conns: usize,
    /// A peer whose unsent replies exceed this is disconnected.
    pub max_write_buffer: usize,
    /// Connections beyond `max_conns` kept for slaves and backups (and for connections that
    /// have not said who they are yet): clients never take them.
    pub peer_slots: usize,
    /// A client's share: replies queued for it plus what its requests in flight may bring
    /// back (a READ counts the last size seen of its value, a WRITE its value). Over it, the
    /// master reads no more of its requests until it drains.
    pub max_client_memory: usize,
    /// The same for every connection together: queued bytes (to clients, slaves and backups)
    /// plus the clients' requests in flight and the frames they have begun to send. Over it,
    /// only clients with nothing in flight are read, one request at a time, and only while the total stays within two largest
    /// frames more (`share.rs`).
    pub max_buffer_memory: usize,
    /// While `max_buffer_memory` is spent, a client whose queued replies have not moved for
    /// this long (its socket full, nothing read off it), or that has sent nothing more of a
    /// frame it began for this long, is disconnected (`stalls.rs`).
    pub stalled_client: Duration,
    /// Serve on a non-loopback address without a secret (otherwise refused at start).
    pub insecure: bool,
    /// Run as the backup of the primary whose heartbeat socket is here.
    pub backup_of: Option<SocketAddr>,
    /// The other masters of the cluster, by heartbeat address (`--peers`, and `backup_of`).
    /// With any, this master starts as a standby and serves only once elected.
    pub peers: Vec<SocketAddr>,
    /// A voter (slave or standby) that answers a PING of the primary promises to support no
    /// other master for this long; the primary serves only while a majority's promises hold.
    pub lease: Duration,
    /// The backup polls the primary this often. The primary acknowledges nothing once it has
    /// not heard its backup for 2 intervals, and the backup takes over after
    /// `heartbeat_misses` (at least 3), so a cut-off primary stops before the backup starts.
    pub heartbeat_interval: Duration,
    pub heartbeat_misses: u32,
    /// After a takeover, how long writes short of slaves wait for the old primary's slaves to
    /// re-register before they go ahead with fewer copies.
    pub takeover_grace: Duration,
    /// A slave out of reach this long no longer counts as a copy: what it held is copied to
    /// other slaves (until then it is likely a blink, and it comes back with its copies).
    pub repair_after: Duration,
    /// A slave out of reach this long is lost for good: its copies no longer count, and a key
    /// only it held reads NOT_FOUND. (`dsm-client forget-slave ID` does the same at once.)
    pub slave_lost_after: Duration,
    /// Started without a roster (no `data_dir`, or a new one), take what registering slaves
    /// hold this long before serving: the cluster may have existed before (`recovery.rs`).
    pub discover: Duration,
    /// Where this master keeps its epoch and the cluster's roster of slaves, so that after a
    /// restart it knows whom to wait for. `None`: memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// What was in `data_dir` at start (see `disk.rs`).
    pub persisted: Option<crate::disk::MasterState>,
    /// With requests waiting on slaves and nothing to read, poll without sleeping this long
    /// before blocking (zero: always block). See `server.rs`.
    pub spin: Duration,
    /// After a client's request, poll without sleeping this long before blocking, for its
    /// next one (zero: block at once). See `server.rs`.
    pub client_spin: Duration,
    /// Hold replies to a client that is owed more for at most this long while the master is
    /// busy or spinning (zero: write every turn). See `server.rs`.
    pub coalesce: Duration,
    /// The shared secret: slaves and backups must prove they hold it (and so must this master,
    /// on its own link to a primary). `None`: nobody authenticates.
    pub secret: Option<Secret>,
    /// Clients must prove they hold the secret too (needs `secret`).
    pub require_client_auth: bool,
    /// `--metrics`: where to serve `/metrics` and the status page over HTTP (`None`: nowhere).
    pub metrics: Option<SocketAddr>,
    /// `--read-cache-mb`, in bytes: the primary answers READs of small values it holds the
    /// committed value of without asking a slave (`cache.rs`). 0: every READ goes to a slave.
    pub read_cache: usize,
    /// `--read-cache-large-mb`, in bytes: of the values over `cache::MAX_VALUE`, what WRITEs
    /// carried is kept by reference (no copy) up to this many bytes, beside `read_cache`.
    pub read_cache_large: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:7000".parse().expect("literal address"),
            heartbeat: "127.0.0.1:7001".parse().expect("literal address"),
            replicas: 2,
            max_key: dsm_wire::DEFAULT_MAX_KEY,
            max_value: dsm_wire::DEFAULT_MAX_VALUE,
            ack_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_millis(2000),
            read_retry: Duration::from_millis(100),
            ping_interval: Duration::from_millis(500),
            hello_timeout: Duration::from_millis(5000),
            max_conns: 10_000,
            max_write_buffer: 64 * 1024 * 1024,
            peer_slots: PEER_SLOTS,
            max_client_memory: MAX_CLIENT_MEMORY,
            max_buffer_memory: MAX_BUFFER_MEMORY,
            stalled_client: Duration::from_millis(STALLED_CLIENT_MS),
            insecure: false,
            backup_of: None,
            peers: Vec::new(),
            lease: Duration::from_millis(LEASE_MS),
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_misses: 3,
            takeover_grace: Duration::from_millis(3000),
            repair_after: Duration::from_millis(REPAIR_AFTER_MS),
            slave_lost_after: Duration::from_millis(SLAVE_LOST_AFTER_MS),
            discover: Duration::from_millis(DISCOVER_MS),
            data_dir: None,
            persisted: None,
            spin: Duration::from_micros(SPIN_US),
            client_spin: Duration::from_micros(CLIENT_SPIN_US),
            coalesce: Duration::from_micros(COALESCE_US),
            secret: None,
            require_client_auth: false,
            metrics: None,
            read_cache: crate::cache::READ_CACHE_MB << 20,
            read_cache_large: crate::cache::READ_CACHE_LARGE_MB << 20,
        }
    }
}

impl Config {
    /// The other masters, by heartbeat address: `--backup-of` first, then `--peers`, once
    /// each, never this master itself.
    pub fn other_masters(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for a in self.backup_of.iter().chain(self.peers.iter()) {
            if *a != self.heartbeat && !out.contains(a) {
                out.push(*a);
            }
        }
        out
    }

    /// This master's id among masters: its heartbeat address, then its client address.
    pub fn master_id(&self) -> String {
        format!("{} {}", self.heartbeat, self.listen)
    }

    /// Why a client's key or value cannot be taken, with the error code to answer.
    pub fn check_request(&self, key: &[u8], value: Option<&[u8]>) -> Option<(ErrorCode, String)> {
        if key.is_empty() {
            return Some((ErrorCode::BadRequest, "the key is empty".into()));
        }
        if key.len() > self.max_key {
            let text = format!(
                "key of {} bytes is over the limit of {} bytes",
                key.len(),
                self.max_key
            );
            return Some((ErrorCode::TooLarge, text));
        }
        match value {
            Some(v) if v.len() > self.max_value => {
                let text = format!(
                    "value of {} bytes is over the limit of {} bytes",
                    v.len(),
                    self.max_value
                );
                Some((ErrorCode::TooLarge, text))
            }
            _ => None,
        }
    }

    /// Why a slave that told `limits` in its HELLO cannot serve this master: it would refuse
    /// (and be dropped over) a STORE of a key or value this master accepts from clients.
    pub fn slave_limits_refusal(&self, limits: Option<Limits>) -> Option<String> {
        let Some(l) = limits else {
            return Some(
                "a slave must state its --max-key and --max-value in HELLO (a dsm-slave older \
                 than this master?)"
                    .into(),
            );
        };
        let (key, value) = (l.max_key as usize, l.max_value as usize);
        if key >= self.max_key && value >= self.max_value {
            return None;
        }
        Some(format!(
            "this slave's limits (--max-key {key}, --max-value {value}) are below this \
             master's (--max-key {}, --max-value {}): it would refuse writes the master \
             accepts; give every slave limits at least the masters'",
            self.max_key, self.max_value
        ))
    }

    pub fn max_frame(&self) -> usize {
        dsm_wire::max_frame_for(self.max_key, self.max_value)
    }

    /// What is wrong at start: a socket others can reach with no secret to check. Refused
    /// unless `insecure` (then only warned about).
    pub fn exposure_warnings(&self) -> Vec<String> {
        if self.secret.is_some() {
            return Vec::new();
        }
        [("--listen", self.listen), ("--heartbeat", self.heartbeat)]
            .into_iter()
            .filter(|(_, addr)| !addr.ip().is_loopback())
            .map(|(flag, addr)| {
                format!(
                    "{flag} {addr} is not a loopback address and there is no --secret-file: \
                     anyone who can reach it can register as a slave or a backup, read and \
                     write every key, and fence this master (give every node --secret-file, \
                     or --insecure to run so anyway)"
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reachable_sockets_without_a_secret_are_warned_about() {
        let mut cfg = Config::default();
        assert!(cfg.exposure_warnings().is_empty());
        cfg.listen = "0.0.0.0:7000".parse().unwrap();
        cfg.heartbeat = "[::1]:7001".parse().unwrap();
        let w = cfg.exposure_warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("--listen 0.0.0.0:7000"), "{w:?}");
        cfg.heartbeat = "192.0.2.1:7001".parse().unwrap();
        assert_eq!(cfg.exposure_warnings().len(), 2);
        cfg.secret = Secret::from_bytes(b"0123456789abcdef");
        assert!(cfg.exposure_warnings().is_empty());
    }
}
