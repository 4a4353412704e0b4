//! The shared secret and the HMAC-SHA256 proofs of the connection handshake: loading the secret
//! file, fresh nonces from `/dev/urandom`, and making and checking the two proofs.
//!
//! Both proofs cover one transcript: the HELLO's role, epoch and id and both sides' nonces.
//! Each side's own fresh nonce keeps a recorded proof from being replayed on another connection;
//! a label per direction keeps a master's proof from being reflected back as a peer's (or the
//! reverse). The master's proof also covers what its WELCOME says (epoch, inventory).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dsm_wire::{AuthBytes, Role, AUTH_LEN};
use hmac::{Hmac, KeyInit, Mac};
use log::warn;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PEER_LABEL: &[u8] = b"dsm-auth-v1 peer proof";
const MASTER_LABEL: &[u8] = b"dsm-auth-v1 master proof";
/// A secret shorter than this is guessable by brute force from one recorded handshake.
const SHORT_SECRET: usize = 16;
/// A secret file longer than this is a mistake (`--secret-file /dev/urandom` would otherwise
/// be read forever).
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// What a file that is not a regular file is, for the error.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The cluster's shared secret. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

/// Why a secret could not be loaded.
#[derive(Debug)]
pub enum SecretError {
    Read {
        path: PathBuf,
        err: io::Error,
    },
    Empty {
        path: PathBuf,
    },
    TooLarge {
        path: PathBuf,
    },
    /// A FIFO, a device, a directory: opening a FIFO would wait for a writer forever.
    NotRegular {
        path: PathBuf,
        kind: &'static str,
    },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Read { path, err } => {
                write!(f, "cannot read the secret file {}: {err}", path.display())
            }
            SecretError::Empty { path } => write!(
                f,
                "the secret file {} is empty (create one with: head -c 32 /dev/urandom | base64 > FILE)",
                path.display()
            ),
            SecretError::NotRegular { path, kind } => write!(
                f,
                "the secret file {} is {kind}, not a regular file",
                path.display()
            ),
            SecretError::TooLarge { path } => write!(
                f,
                "the secret file {} is over {MAX_SECRET_FILE} bytes: is it the right file?",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SecretError {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, not shown)", self.key.len())
    }
}

/// What both proofs cover: the HELLO's fields and both nonces.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    pub role: Role,
    pub epoch: u64,
    pub id: &'a str,
    pub boot: u64,
    pub peer_nonce: &'a AuthBytes,
    pub master_nonce: &'a AuthBytes,
}

impl Secret {
    /// Read a secret file: all its bytes but one trailing newline (`\n` or `\r\n`), so a file
    /// written by `echo` or an editor holds the same secret as one written by `printf`.
    /// Logs a warning when others than the owner may read it, or when it is short.
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let read_err = |err| SecretError::Read {
            path: path.to_path_buf(),
            err,
        };
        // Looked at before it is opened: opening a FIFO blocks until someone writes to it.
        let kind = std::fs::metadata(path).map_err(read_err)?.file_type();
        if !kind.is_file() {
            return Err(SecretError::NotRegular {
                path: path.to_path_buf(),
                kind: file_kind(&kind),
            });
        }
        let mut file = File::open(path).map_err(read_err)?;
        // Replaced between the look and the open: refuse what is there now too.
        if !file.metadata().map_err(read_err)?.is_file() {
            return Err(SecretError::NotRegular {
                path: path.to_path_buf(),
                kind: "not a regular file any more",
            });
        }
        let mode = file.metadata().map_err(read_err)?.permissions().mode();
        let mut key = Vec::new();
        (&mut file)
            .take(MAX_SECRET_FILE + 1)
            .read_to_end(&mut key)
            .map_err(read_err)?;
        if key.len() as u64 > MAX_SECRET_FILE {
            return Err(SecretError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        if key.ends_with(b"\n") {
            key.pop();
            if key.ends_with(b"\r") {
                key.pop();
            }
        }
        if key.is_empty() {
            return Err(SecretError::Empty {
                path: path.to_path_buf(),
            });
        }
        for w in file_warnings(mode, key.len()) {
            warn!("secret file {}: {w}", path.display());
        }
        Ok(Secret { key })
    }

    /// A secret from bytes (tests, embedding); `None` when empty.
    pub fn from_bytes(key: &[u8]) -> Option<Secret> {
        (!key.is_empty()).then(|| Secret { key: key.to_vec() })
    }

    /// The peer's proof, sent in AUTH.
    pub fn peer_proof(&self, t: &Transcript<'_>) -> AuthBytes {
        self.mac(PEER_LABEL, t, &[]).finalize().into_bytes().into()
    }

    /// Whether `proof` is the peer's proof for `t` (compared in constant time).
    pub fn check_peer_proof(&self, t: &Transcript<'_>, proof: &AuthBytes) -> bool {
        self.mac(PEER_LABEL, t, &[]).verify_slice(proof).is_ok()
    }

    /// The master's proof, sent in WELCOME: it also covers what the WELCOME says (its
    /// [`Terms`]), so a man in the middle cannot turn a WELCOME into one that asks a slave for
    /// its inventory, lends it to a standby, or changes the lease it promises.
    pub fn master_proof(&self, t: &Transcript<'_>, terms: &Terms) -> AuthBytes {
        self.mac(MASTER_LABEL, t, &terms.bytes())
            .finalize()
            .into_bytes()
            .into()
    }

    pub fn check_master_proof(&self, t: &Transcript<'_>, terms: &Terms, proof: &AuthBytes) -> bool {
        self.mac(MASTER_LABEL, t, &terms.bytes())
            .verify_slice(proof)
            .is_ok()
    }

    /// Whether the secret occurs anywhere in `bytes` (tests check captured traffic with it).
    pub fn occurs_in(&self, bytes: &[u8]) -> bool {
        bytes.windows(self.key.len()).any(|w| w == self.key)
    }

    /// Label, role, epoch, id (length first), boot, peer nonce, master nonce, then `tail`.
    fn mac(&self, label: &[u8], t: &Transcript<'_>, tail: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        m.update(&[label.len() as u8]);
        m.update(label);
        m.update(&[t.role as u8]);
        m.update(&t.epoch.to_be_bytes());
        m.update(&(t.id.len() as u32).to_be_bytes());
        m.update(t.id.as_bytes());
        m.update(&t.boot.to_be_bytes());
        m.update(t.peer_nonce);
        m.update(t.master_nonce);
        m.update(tail);
        m
    }
}

/// What a WELCOME says, all of it covered by the master's proof.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terms {
    pub epoch: u64,
    /// A slave must report what it holds (INVENTORY) before it is used.
    pub inventory: bool,
    /// The master is a standby: a slave stays as its supporter.
    pub standby: bool,
    /// After a PING from this master, a slave supports no other for this long.
    pub lease_ms: u32,
}

impl Terms {
    /// The WELCOME body that says these terms, with `proof`.
    pub fn welcome(&self, proof: Option<AuthBytes>) -> dsm_wire::Body {
        dsm_wire::Body::Welcome {
            epoch: self.epoch,
            inventory: self.inventory,
            standby: self.standby,
            lease_ms: self.lease_ms,
            proof,
        }
    }

    /// As the WELCOME encodes them: epoch, the two flags, the lease.
    fn bytes(&self) -> [u8; 14] {
        let mut b = [0; 14];
        b[..8].copy_from_slice(&self.epoch.to_be_bytes());
        b[8] = self.inventory as u8;
        b[9] = self.standby as u8;
        b[10..].copy_from_slice(&self.lease_ms.to_be_bytes());
        b
    }
}

/// What is wrong with a secret file of this mode and secret length, for the log.
pub fn file_warnings(mode: u32, len: usize) -> Vec<String> {
    let mut out = Vec::new();
    if mode & 0o077 != 0 {
        out.push(format!(
            "mode {:03o} lets others than its owner read it; chmod 600 it",
            mode & 0o777
        ));
    }
    if len < SHORT_SECRET {
        out.push(format!(
            "the secret is only {len} bytes; use at least {SHORT_SECRET} random bytes"
        ));
    }
    out
}

/// A fresh random nonce from the kernel.
pub fn fresh_nonce() -> io::Result<AuthBytes> {
    let mut nonce = [0; AUTH_LEN];
    File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(nonce)
}

/// A random number naming this process, the same for its whole life (a HELLO's `boot`): a peer
/// that sees it again knows it is the same process, with what it held in memory. Never 0.
pub fn boot_id() -> u64 {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let mut b = [0u8; 8];
        let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
        let n = match random {
            Ok(()) => u64::from_be_bytes(b),
            // No /dev/urandom: the clock and the pid still differ between two processes.
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            }
        };
        n.max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonces() -> (AuthBytes, AuthBytes) {
        (
            std::array::from_fn(|i| i as u8),
            std::array::from_fn(|i| 0x20 + i as u8),
        )
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The worked example in wire/PROTOCOL.md: these bytes are what another implementation
    /// must produce from the same inputs (they were also checked with Python's `hmac`).
    #[test]
    fn the_documented_example_proofs() {
        let secret = Secret::from_bytes(b"correct horse battery staple").unwrap();
        let (p, m) = nonces();
        let t = Transcript {
            role: Role::Slave,
            epoch: 0,
            id: "s1",
            boot: 42,
            peer_nonce: &p,
            master_nonce: &m,
        };
        assert_eq!(
            hex(&secret.peer_proof(&t)),
            "9d13cdc2b9c1c5fa8ffedf162db33853354aa899443b89f13fab3c6efa06cbf7",
            "peer proof of the PROTOCOL.md example"
        );
        assert_eq!(
            hex(&secret.master_proof(
                &t,
                &Terms {
                    epoch: 1,
                    inventory: true,
                    standby: false,
                    lease_ms: 400,
                }
            )),
            "40444388158e416acf8109ee14adb599aedd2f643fc290d6a40c4858a183d354",
            "master proof of the PROTOCOL.md example"
        );
    }

    #[test]
    fn proofs_verify_only_for_their_own_transcript_direction_and_secret() {
        let secret = Secret::from_bytes(b"a shared secret of some length").unwrap();
        let other = Secret::from_bytes(b"another secret of some length").unwrap();
        let (p, m) = nonces();
        let t = Transcript {
            role: Role::Slave,
            epoch: 3,
            id: "s1",
            boot: 0,
            peer_nonce: &p,
            master_nonce: &m,
        };
        let peer = secret.peer_proof(&t);
        let terms = Terms {
            epoch: 3,
            lease_ms: 400,
            ..Terms::default()
        };
        let master = secret.master_proof(&t, &terms);
        assert!(secret.check_peer_proof(&t, &peer));
        assert!(secret.check_master_proof(&t, &terms, &master));
        // Wrong secret.
        assert!(!other.check_peer_proof(&t, &peer));
        assert!(!other.check_master_proof(&t, &terms, &master));
        // Reflection: a proof made for one direction never passes for the other.
        assert!(!secret.check_peer_proof(&t, &master));
        assert!(!secret.check_master_proof(&t, &terms, &peer));
        // Every field counts: another nonce (a replay), role, epoch, id, or WELCOME content.
        let fresh: AuthBytes = [9; AUTH_LEN];
        let variants = [
            Transcript {
                master_nonce: &fresh,
                ..t
            },
            Transcript {
                peer_nonce: &fresh,
                ..t
            },
            Transcript {
                role: Role::Backup,
                ..t
            },
            Transcript { epoch: 4, ..t },
            Transcript { id: "s2", ..t },
            Transcript { boot: 7, ..t },
        ];
        for v in &variants {
            assert!(!secret.check_peer_proof(v, &peer), "{v:?}");
            assert!(!secret.check_master_proof(v, &terms, &master), "{v:?}");
        }
        // Every term of the WELCOME counts too.
        for changed in [
            Terms { epoch: 4, ..terms },
            Terms {
                inventory: true,
                ..terms
            },
            Terms {
                standby: true,
                ..terms
            },
            Terms {
                lease_ms: 401,
                ..terms
            },
        ] {
            assert!(
                !secret.check_master_proof(&t, &changed, &master),
                "{changed:?}"
            );
        }
        // The id's length is part of the input, so moving bytes between fields changes it.
        let a = Transcript { id: "s1", ..t };
        let b = Transcript { id: "s", ..t };
        assert_ne!(secret.peer_proof(&a), secret.peer_proof(&b));
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline_and_must_not_be_empty() {
        let dir = std::env::temp_dir().join(format!("dsm-auth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, body: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path
        };
        let plain = Secret::load(&write("plain", b"s3cret-s3cret-s3cret")).unwrap();
        let nl = Secret::load(&write("nl", b"s3cret-s3cret-s3cret\n")).unwrap();
        let crlf = Secret::load(&write("crlf", b"s3cret-s3cret-s3cret\r\n")).unwrap();
        assert_eq!(plain, nl);
        assert_eq!(plain, crlf);
        // Only one newline goes: a second one is part of the secret.
        let two = Secret::load(&write("two", b"s3cret-s3cret-s3cret\n\n")).unwrap();
        assert_ne!(plain, two);
        for empty in [&b""[..], b"\n", b"\r\n"] {
            let err = Secret::load(&write("empty", empty)).unwrap_err();
            assert!(matches!(err, SecretError::Empty { .. }), "{err}");
        }
        let big = write("big", &vec![b'x'; MAX_SECRET_FILE as usize + 1]);
        let err = Secret::load(&big).unwrap_err();
        assert!(matches!(err, SecretError::TooLarge { .. }), "{err}");
        // Devices, directories and FIFOs are refused at once, before any open (a FIFO's
        // would wait for a writer forever).
        let err = Secret::load(Path::new("/dev/zero")).unwrap_err();
        assert!(
            err.to_string().contains("is a device, not a regular file"),
            "{err}"
        );
        let err = Secret::load(&dir).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = Secret::load(&fifo).unwrap_err();
            assert!(
                err.to_string().contains("is a FIFO, not a regular file"),
                "{err}"
            );
        }
        let err = Secret::load(&dir.join("missing")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read the secret file"),
            "{err}"
        );
        assert!(format!("{plain:?}").contains("not shown"));
        assert!(!format!("{plain:?}").contains("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loose_modes_and_short_secrets_are_warned_about() {
        assert!(file_warnings(0o100600, 32).is_empty());
        assert!(file_warnings(0o100400, 32).is_empty());
        assert!(file_warnings(0o100640, 32)[0].contains("chmod 600"));
        assert!(file_warnings(0o100604, 32)[0].contains("mode 604"));
        assert!(file_warnings(0o100600, 8)[0].contains("only 8 bytes"));
    }

    #[test]
    fn the_boot_id_is_one_per_process() {
        assert_eq!(boot_id(), boot_id());
        assert_ne!(boot_id(), 0);
    }

    #[test]
    fn nonces_differ() {
        let a = fresh_nonce().unwrap();
        let b = fresh_nonce().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; AUTH_LEN]);
    }
}
