//! Frame and message types: what each opcode carries. No encoding logic lives here.

/// One message: the request id pairs a reply with its request on the same connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub req_id: u64,
    pub body: Body,
}

impl Frame {
    pub fn new(req_id: u64, body: Body) -> Frame {
        Frame { req_id, body }
    }
}

/// A nonce or an HMAC-SHA256 proof in the handshake: always [`AUTH_LEN`] bytes.
pub type AuthBytes = [u8; AUTH_LEN];

/// Bytes in a handshake nonce and in a proof (the output of HMAC-SHA256).
pub const AUTH_LEN: usize = 32;

/// What a slave tells of itself in its HELLO: the largest key and value it accepts (its
/// `--max-key` and `--max-value`), so that a master with larger limits refuses it rather than
/// send it STOREs it must refuse; and how many master addresses it dials (`--master`), so that
/// a master that knows of no other master learns that a standby may exist, one this slave
/// could support and elect, and holds its lease from a majority (`master/src/ha/lease.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key: u32,
    pub max_value: u32,
    pub masters: u16,
}

/// Who opened a connection, as told by its HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    Client = 1,
    Slave = 2,
    Backup = 3,
}

impl Role {
    pub fn from_u8(b: u8) -> Option<Role> {
        match b {
            1 => Some(Role::Client),
            2 => Some(Role::Slave),
            3 => Some(Role::Backup),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Slave => "slave",
            Role::Backup => "backup",
        }
    }
}

/// What a master is at the moment it answers STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ServerRole {
    Primary = 1,
    Backup = 2,
    /// A former primary that learnt of a higher epoch: serves nothing.
    Fenced = 3,
    /// A primary that has not yet heard what its slaves hold (after a restart, or while it
    /// discovers them): answers READ and WRITE with UNAVAILABLE.
    Recovering = 4,
}

impl ServerRole {
    pub fn from_u8(b: u8) -> Option<ServerRole> {
        match b {
            1 => Some(ServerRole::Primary),
            2 => Some(ServerRole::Backup),
            3 => Some(ServerRole::Fenced),
            4 => Some(ServerRole::Recovering),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ServerRole::Primary => "primary",
            ServerRole::Backup => "backup",
            ServerRole::Fenced => "fenced",
            ServerRole::Recovering => "recovering",
        }
    }
}

/// The link between the primary and its backup, as the master answering STATUS sees it: on a
/// primary (or a recovering one), its attached backup; on a backup, its own link to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BackupLink {
    /// No backup attached (on a backup: not connected to the primary).
    None = 0,
    /// Attached, but the snapshot of the primary's state is not yet all confirmed.
    CatchingUp = 1,
    /// Attached, the snapshot confirmed: it follows every change.
    InStep = 2,
}

impl BackupLink {
    pub fn from_u8(b: u8) -> Option<BackupLink> {
        match b {
            0 => Some(BackupLink::None),
            1 => Some(BackupLink::CatchingUp),
            2 => Some(BackupLink::InStep),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            BackupLink::None => "none",
            BackupLink::CatchingUp => "catching_up",
            BackupLink::InStep => "in_step",
        }
    }
}

/// The reason carried by an ERROR frame. Unknown codes from a newer peer survive as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is not valid here (wrong role, HELLO twice, request before HELLO).
    BadRequest,
    /// A key or value is over the server's limit.
    TooLarge,
    /// No live slave can take the write.
    NoSlaves,
    /// The deadline passed before the outcome was known: the write may or may not have happened.
    Timeout,
    /// This master is not the primary; the text names the primary when known.
    NotPrimary,
    /// The sender's epoch is older than one the receiver has seen.
    StaleEpoch,
    /// Authentication is required or failed.
    Unauthorized,
    /// The server is at a limit (connections, buffers) and refuses this request.
    Busy,
    /// A slave has no room for the value under its `--max-memory`; from the master, no slave
    /// had room: the write did not happen.
    OutOfMemory,
    /// The request cannot be answered now, but may be later (every holder of the key is
    /// unreachable, or the master is recovering): retry.
    Unavailable,
    /// A slave could not write the value to its disk (full, or an I/O error).
    Disk,
    /// INCR of a key whose value is not a signed 64-bit decimal integer.
    NotAnInteger,
    /// INCR would take the counter past the signed 64-bit range.
    Overflow,
    Other(u16),
}

impl ErrorCode {
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::TooLarge => 2,
            ErrorCode::NoSlaves => 3,
            ErrorCode::Timeout => 4,
            ErrorCode::NotPrimary => 5,
            ErrorCode::StaleEpoch => 6,
            ErrorCode::Unauthorized => 7,
            ErrorCode::Busy => 8,
            ErrorCode::OutOfMemory => 9,
            ErrorCode::Unavailable => 10,
            ErrorCode::Disk => 11,
            ErrorCode::NotAnInteger => 64,
            ErrorCode::Overflow => 65,
            ErrorCode::Other(c) => c,
        }
    }
    pub fn from_u16(c: u16) -> ErrorCode {
        match c {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::TooLarge,
            3 => ErrorCode::NoSlaves,
            4 => ErrorCode::Timeout,
            5 => ErrorCode::NotPrimary,
            6 => ErrorCode::StaleEpoch,
            7 => ErrorCode::Unauthorized,
            8 => ErrorCode::Busy,
            9 => ErrorCode::OutOfMemory,
            10 => ErrorCode::Unavailable,
            11 => ErrorCode::Disk,
            64 => ErrorCode::NotAnInteger,
            65 => ErrorCode::Overflow,
            c => ErrorCode::Other(c),
        }
    }
    /// A short upper-case name for logs and the REPL (`ERROR TIMEOUT: ...`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::NoSlaves => "NO_SLAVES",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::NotPrimary => "NOT_PRIMARY",
            ErrorCode::StaleEpoch => "STALE_EPOCH",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Busy => "BUSY",
            ErrorCode::OutOfMemory => "OUT_OF_MEMORY",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Disk => "DISK",
            ErrorCode::NotAnInteger => "NOT_AN_INTEGER",
            ErrorCode::Overflow => "OVERFLOW",
            ErrorCode::Other(_) => "ERROR",
        }
    }
}

/// One slave as the master sees it, in a STATUS reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveStatus {
    pub id: String,
    pub addr: String,
    pub live: bool,
    /// Keys whose latest version the master has placed on this slave.
    pub keys: u64,
}

/// The body of STATUS_REPLY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub role: ServerRole,
    pub epoch: u64,
    pub replicas: u16,
    pub keys: u64,
    /// Keys with fewer live holders than `replicas` (while enough live slaves exist).
    pub under_replicated: u64,
    /// Re-replication copies this master has made since it started (each new holder of a
    /// key's latest version counts one): how much repair work faults have cost.
    pub copies_made: u64,
    /// The client address (`--listen`) of the master that answered.
    pub addr: String,
    /// The client address of the primary as the answering master knows it (its own on a
    /// primary); empty when it does not know.
    pub primary: String,
    /// The primary–backup link as the answering master sees it.
    pub backup: BackupLink,
    pub slaves: Vec<SlaveStatus>,
}

/// Who sent a write, for exactly-once writes (RIFL): the client's id (random, one per client
/// process or connection object), the write's sequence number among that client's writes, and
/// `acked`, the lowest sequence number the client still waits for: every write below it has
/// had its final answer and will never be sent again, so its record may be forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteId {
    pub client: u64,
    pub seq: u64,
    pub acked: u64,
}

/// What a slave's RECALLED says about the write it was asked about.
pub const RECALL_NONE: u64 = 0;
/// RECALLED `stored`: this slave cannot say (it started after the write could have reached
/// it, or it forgot the client's records without the client's word).
pub const RECALL_UNSURE: u64 = u64::MAX;

/// One change to the primary's state, streamed to the backup master in SYNC frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// A slave is in service with the primary; `boot` names its process, so that a new
    /// primary can tell the same process coming back (its copies as they were) from a restart.
    SlaveUp { id: String, boot: u64 },
    /// A slave went out of service: its copies count as unreachable, not gone; it may return.
    SlaveDown { id: String },
    /// A slave is gone for good (forgotten, or absent too long): its copies no longer count.
    SlaveLost { id: String },
    /// The latest acknowledged version of `key` and the ids of the slaves holding it (live or
    /// out of service, not lost).
    Key {
        key: Vec<u8>,
        version: u64,
        holders: Vec<String>,
    },
    /// A write to `key` has started: until its `Key` event arrives, the backup cannot trust
    /// what it knows of the key.
    Intent { key: Vec<u8> },
    /// The key's tombstone was collected: the key is forgotten (see DELETE).
    Gone { key: Vec<u8> },
    /// A standby of this primary (by its id: heartbeat address, then client address): the
    /// standbys learn of each other, to vote for each other when the primary is gone.
    Standby { id: String },
}

/// Every message the system exchanges. The opcode byte of each is [`Body::opcode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// First frame on every connection: who the sender is and the highest epoch it has seen.
    /// `nonce`: a sender that holds the shared secret offers a fresh nonce to authenticate
    /// with; `None` from a sender without one.
    /// `boot`: a random number the sender's process chose when it started (0 if it has none).
    /// `limits`: a slave's key and value limits (`None` from clients and backups).
    Hello {
        role: Role,
        epoch: u64,
        id: String,
        boot: u64,
        nonce: Option<Box<AuthBytes>>,
        limits: Option<Limits>,
    },
    /// Master's answer to HELLO. `inventory`: a slave must report every key it holds (INVENTORY)
    /// before it is used; without it the master still counts on what this very process held.
    /// `proof`: after an authenticated HELLO, the master's proof that it knows the secret too.
    /// `standby`: this master is not the primary; a slave stays connected as its supporter
    /// (a witness in an election) until TAKEOVER or until it leaves. `lease_ms`: how long after
    /// a PING from this master (as primary) a slave must not support another (its promise;
    /// 0 for none).
    Welcome {
        epoch: u64,
        inventory: bool,
        standby: bool,
        lease_ms: u32,
        proof: Option<AuthBytes>,
    },
    /// Master → peer, the answer to a HELLO that carried a nonce: the master's own fresh nonce.
    Challenge {
        nonce: AuthBytes,
    },
    /// Peer → master, the answer to CHALLENGE: the peer's proof that it knows the secret.
    Auth {
        proof: AuthBytes,
    },
    Write {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Client → master: a WRITE with its writer's id, applied at most once however often it is
    /// sent. `resent_ms`: 0 on the first send; else the milliseconds since the first (at least
    /// 1): the write may have reached another master, which the master must find out first.
    WriteOnce {
        id: WriteId,
        resent_ms: u32,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Client → master (ONCE `0x18`): a SET, DELETE or INCR (`inner`) with its writer's id,
    /// applied at most once however often it is sent, as WRITE_ONCE is; `resent_ms` as there.
    Once {
        id: WriteId,
        resent_ms: u32,
        inner: Box<Body>,
    },
    Read {
        key: Vec<u8>,
    },
    Ok,
    Value {
        value: Vec<u8>,
    },
    NotFound,
    Error {
        code: ErrorCode,
        text: String,
    },
    /// Master → client, the answer to a WRITE that took effect on fewer than the R copies the
    /// master keeps (`copies` of `wanted`): the write happened, but with less redundancy.
    Degraded {
        copies: u16,
        wanted: u16,
    },
    /// Master → slave: keep `value` as `key` at `version` unless a newer version is held.
    Store {
        epoch: u64,
        version: u64,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Master → slave: a STORE of the write `id`; the slave remembers that it stored it (for
    /// RECALL) until the client's `acked` passes it.
    StoreOnce {
        epoch: u64,
        version: u64,
        id: WriteId,
        key: Vec<u8>,
        value: Vec<u8>,
        /// STORE_KEEP (`0x2c`) rather than STORE_ONCE: the slave also keeps `value` with its
        /// record, as the answer a RECALL gives back (an INCR's new value).
        keep: bool,
    },
    /// Master → slave: what version of `key` is held, and was the write `(client, seq)` stored
    /// here? `age_ms`: how long ago the write may first have been sent. Answered RECALLED.
    Recall {
        epoch: u64,
        client: u64,
        seq: u64,
        age_ms: u32,
        key: Vec<u8>,
    },
    /// Slave → master, the answer to RECALL: `held`, the version of the key held (0: none);
    /// `stored`, the version at which that write was stored ([`RECALL_NONE`]: it was not;
    /// [`RECALL_UNSURE`]: this slave cannot say).
    Recalled {
        held: u64,
        stored: u64,
        /// RECALLED_KEPT (`0x2d`) rather than RECALLED: the value the write was stored with by
        /// a STORE_KEEP, which the slave kept.
        kept: Option<Vec<u8>>,
    },
    /// Slave → master: the STORE with this request id is held (at `version` or newer).
    Ack {
        version: u64,
    },
    /// Master → slave: send back what you hold for `key`.
    Fetch {
        epoch: u64,
        key: Vec<u8>,
    },
    /// Slave → master: the value held for a FETCHed key (NOT_FOUND when none is held).
    Fetched {
        version: u64,
        value: Vec<u8>,
    },
    /// Slave → master, after a WELCOME that asks for it: the keys it holds and their versions,
    /// in as many frames as it takes; `done` on the last.
    Inventory {
        done: bool,
        entries: Vec<(Vec<u8>, u64)>,
    },
    /// Master → slave: the copy of `key` is stale; drop it if the version held is `version` or
    /// older. No answer.
    Drop {
        version: u64,
        key: Vec<u8>,
    },
    /// Master → a slave or standby supporting it: this master takes over as primary at
    /// `epoch` (the supporter's vote is asked); `inventory` and `lease_ms` as in WELCOME.
    /// Answered VOTE.
    Takeover {
        epoch: u64,
        inventory: bool,
        lease_ms: u32,
        /// The master's heartbeat address, as STALE names masters.
        id: String,
        /// The cluster's voters as this master counts them (the masters and the slaves of the
        /// roster): a slave told of more by its primary (STALE) refuses its vote.
        voters: u16,
    },
    /// Slave → master, the answer to TAKEOVER. `granted`: the slave now serves this master at
    /// its epoch (and refuses every older one). `stale`: the slave was told (STALE) that this
    /// master is out of step with the primary it follows, so its map cannot be trusted.
    /// `voters`: the cluster's voters as the slave's last primary counted them (STALE); 0
    /// if it was never told.
    Vote {
        granted: bool,
        stale: bool,
        voters: u16,
    },
    /// Primary → slave: the standby masters (ids) that are out of step as of generation `gen`
    /// (an empty list: none), and the cluster's voters as the primary counts them. Answered
    /// PONG, like a PING.
    Stale {
        gen: u64,
        voters: u16,
        ids: Vec<String>,
    },
    /// Standby → primary: this standby has withdrawn its support (it stopped answering the
    /// primary's PINGs) and asks to be released from the promises it gave, so that it may
    /// campaign or vote without waiting for them to run out. Answered RELEASED.
    Release,
    /// Primary → standby, the answer to RELEASE: the primary no longer counts the standby's
    /// answers to any of its requests (PING, STALE) on this connection with an id below
    /// `below`; the standby may drop those promises. A primary that holds its lease releases
    /// nothing: `below` is 0.
    Released {
        below: u64,
    },
    Ping,
    Pong,
    Status,
    StatusReply(Status),
    /// Client → master: the slave `id` is gone for good (its disk is lost): its copies no longer
    /// count, and keys only it held read NOT_FOUND. Answered OK or ERROR.
    Forget {
        id: String,
    },
    /// Primary → backup: state changes. `complete` is false while the first snapshot is still
    /// arriving. The backup answers each with SYNC_ACK carrying the same request id.
    Sync {
        epoch: u64,
        next_version: u64,
        complete: bool,
        events: Vec<SyncEvent>,
    },
    SyncAck,
    /// Client → master: a WRITE answered WRITTEN with the new version; with `expected`, only
    /// if the key's committed version is still that one (0: only if the key does not exist),
    /// else CONFLICT and nothing is written.
    Set {
        key: Vec<u8>,
        expected: Option<u64>,
        value: Vec<u8>,
    },
    /// Client → master: delete `key` (a versioned tombstone), answered WRITTEN with the
    /// tombstone's version, NOT_FOUND if there was no key, or CONFLICT as for SET.
    Delete {
        key: Vec<u8>,
        expected: Option<u64>,
    },
    /// Client → master: add `delta` to the decimal integer held in `key` (missing: 0);
    /// answered VERSIONED with the new value.
    Incr {
        key: Vec<u8>,
        delta: i64,
    },
    /// Client → master: a READ answered VERSIONED (or NOT_FOUND).
    VRead {
        key: Vec<u8>,
    },
    /// Client → master: the keys under `prefix`, from `cursor` (0 to begin), at most `limit`
    /// of them; answered KEYS.
    Scan {
        prefix: Vec<u8>,
        cursor: u64,
        limit: u32,
    },
    /// Master → client: the change took effect as `version`.
    Written {
        version: u64,
    },
    /// Master → client: the value of a key and its version (VREAD, INCR).
    Versioned {
        version: u64,
        value: Vec<u8>,
    },
    /// Master → client: the compare-and-set failed; the key's committed version is `version`
    /// (0: it does not exist). Nothing was written.
    Conflict {
        version: u64,
    },
    /// Master → client: a page of SCAN; `next` is the cursor of the next page (0: done).
    Keys {
        next: u64,
        keys: Vec<Vec<u8>>,
    },
    /// Master → slave: forget `key` if held at `version` or older (a collected tombstone);
    /// answered ACK once done (and, with a log, on disk).
    Purge {
        epoch: u64,
        version: u64,
        key: Vec<u8>,
    },
}

/// The top bit of a version in STORE, FETCHED, INVENTORY and SYNC KEY events marks a tombstone (a DELETE): the key does not exist as of that version. Versions
/// compare without it ([`plain_version`]).
pub const TOMBSTONE: u64 = 1 << 63;

/// A version without its tombstone bit: what versions are compared by.
#[inline]
pub fn plain_version(v: u64) -> u64 {
    v & !TOMBSTONE
}

/// Whether a version marks a tombstone.
#[inline]
pub fn is_tombstone(v: u64) -> bool {
    v & TOMBSTONE != 0
}

/// Opcode bytes. Gaps leave room for related messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Hello = 0x01,
    Welcome = 0x02,
    Challenge = 0x03,
    Auth = 0x04,
    Write = 0x10,
    Read = 0x11,
    Ok = 0x12,
    Value = 0x13,
    NotFound = 0x14,
    Error = 0x15,
    Degraded = 0x16,
    WriteOnce = 0x17,
    Once = 0x18,
    Store = 0x20,
    Ack = 0x21,
    Fetch = 0x22,
    Fetched = 0x23,
    Inventory = 0x24,
    Drop = 0x25,
    Takeover = 0x26,
    Vote = 0x27,
    Stale = 0x28,
    StoreOnce = 0x29,
    Recall = 0x2a,
    Recalled = 0x2b,
    StoreKeep = 0x2c,
    RecalledKept = 0x2d,
    Release = 0x2e,
    Released = 0x2f,
    Ping = 0x30,
    Pong = 0x31,
    Status = 0x32,
    StatusReply = 0x33,
    Forget = 0x34,
    Sync = 0x40,
    SyncAck = 0x41,
    Set = 0x42,
    Delete = 0x43,
    Incr = 0x44,
    VRead = 0x45,
    Scan = 0x46,
    Written = 0x47,
    Versioned = 0x48,
    Conflict = 0x49,
    Keys = 0x4a,
    Purge = 0x4b,
}

impl Opcode {
    pub const ALL: [Opcode; 46] = [
        Opcode::Hello,
        Opcode::Welcome,
        Opcode::Challenge,
        Opcode::Auth,
        Opcode::Write,
        Opcode::Read,
        Opcode::Ok,
        Opcode::Value,
        Opcode::NotFound,
        Opcode::Error,
        Opcode::Degraded,
        Opcode::Store,
        Opcode::Ack,
        Opcode::Fetch,
        Opcode::Fetched,
        Opcode::Inventory,
        Opcode::Drop,
        Opcode::Takeover,
        Opcode::Vote,
        Opcode::Stale,
        Opcode::Ping,
        Opcode::Pong,
        Opcode::Status,
        Opcode::StatusReply,
        Opcode::Forget,
        Opcode::Sync,
        Opcode::SyncAck,
        Opcode::Set,
        Opcode::Delete,
        Opcode::Incr,
        Opcode::VRead,
        Opcode::Scan,
        Opcode::Written,
        Opcode::Versioned,
        Opcode::Conflict,
        Opcode::Keys,
        Opcode::Purge,
        // Protocol version 2 (exactly-once writes).
        Opcode::WriteOnce,
        Opcode::StoreOnce,
        Opcode::Recall,
        Opcode::Recalled,
        // Exactly-once SET, DELETE and INCR.
        Opcode::Once,
        Opcode::StoreKeep,
        Opcode::RecalledKept,
        // A standby released from its promises by a primary without its lease.
        Opcode::Release,
        Opcode::Released,
    ];

    pub fn from_u8(b: u8) -> Option<Opcode> {
        Opcode::ALL.iter().copied().find(|op| *op as u8 == b)
    }
}

impl Body {
    pub fn opcode(&self) -> Opcode {
        match self {
            Body::Hello { .. } => Opcode::Hello,
            Body::Welcome { .. } => Opcode::Welcome,
            Body::Challenge { .. } => Opcode::Challenge,
            Body::Auth { .. } => Opcode::Auth,
            Body::Write { .. } => Opcode::Write,
            Body::WriteOnce { .. } => Opcode::WriteOnce,
            Body::Read { .. } => Opcode::Read,
            Body::Ok => Opcode::Ok,
            Body::Value { .. } => Opcode::Value,
            Body::NotFound => Opcode::NotFound,
            Body::Error { .. } => Opcode::Error,
            Body::Degraded { .. } => Opcode::Degraded,
            Body::Store { .. } => Opcode::Store,
            Body::StoreOnce { keep: false, .. } => Opcode::StoreOnce,
            Body::StoreOnce { keep: true, .. } => Opcode::StoreKeep,
            Body::Recall { .. } => Opcode::Recall,
            Body::Recalled { kept: None, .. } => Opcode::Recalled,
            Body::Recalled { kept: Some(_), .. } => Opcode::RecalledKept,
            Body::Once { .. } => Opcode::Once,
            Body::Ack { .. } => Opcode::Ack,
            Body::Fetch { .. } => Opcode::Fetch,
            Body::Fetched { .. } => Opcode::Fetched,
            Body::Inventory { .. } => Opcode::Inventory,
            Body::Drop { .. } => Opcode::Drop,
            Body::Takeover { .. } => Opcode::Takeover,
            Body::Vote { .. } => Opcode::Vote,
            Body::Stale { .. } => Opcode::Stale,
            Body::Release => Opcode::Release,
            Body::Released { .. } => Opcode::Released,
            Body::Ping => Opcode::Ping,
            Body::Pong => Opcode::Pong,
            Body::Status => Opcode::Status,
            Body::StatusReply(_) => Opcode::StatusReply,
            Body::Forget { .. } => Opcode::Forget,
            Body::Sync { .. } => Opcode::Sync,
            Body::SyncAck => Opcode::SyncAck,
            Body::Set { .. } => Opcode::Set,
            Body::Delete { .. } => Opcode::Delete,
            Body::Incr { .. } => Opcode::Incr,
            Body::VRead { .. } => Opcode::VRead,
            Body::Scan { .. } => Opcode::Scan,
            Body::Written { .. } => Opcode::Written,
            Body::Versioned { .. } => Opcode::Versioned,
            Body::Conflict { .. } => Opcode::Conflict,
            Body::Keys { .. } => Opcode::Keys,
            Body::Purge { .. } => Opcode::Purge,
        }
    }

    /// An ERROR body; the text is cut to fit the wire's 16-bit string length.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Body {
        Body::Error {
            code,
            text: text.into(),
        }
    }
}
