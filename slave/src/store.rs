//! The slave's key store: each key's newest version, epoch fencing, and the answer to each
//! frame from the master once registered. No sockets and no connection state: [`crate::Slave`]
//! decides when frames reach it.

use dsm_wire::{Body, BodyRef, Decoded, ErrorCode, Frame};
use log::{debug, info, warn};

use crate::table::Table;

/// The answer to one frame: most are owned frames; a FETCHED borrows the value from the store
/// so it is copied once, into the socket buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    Frame(Frame),
    Borrowed(u64, BodyRef<'a>),
}

impl Reply<'_> {
    pub fn into_frame(self) -> Frame {
        match self {
            Reply::Frame(f) => f,
            Reply::Borrowed(req, body) => Frame::new(req, body.to_body()),
        }
    }
}

/// Bytes of keys per INVENTORY frame: far below any frame limit.
const INVENTORY_FRAME_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub struct Store {
    map: Table,
    /// The highest master epoch seen; commands from older epochs are refused (fencing).
    epoch: u64,
    /// A report of what is held (INVENTORY) under way.
    inventory: Option<Inventory>,
}

/// Where a report of what is held stands.
struct Inventory {
    /// The next table position to report.
    from: usize,
    /// DROPs that came while reporting: dropping moves the table's last record into the hole,
    /// which could put a record not yet reported behind the cursor; so they wait for the end.
    drops: Vec<(Vec<u8>, u64)>,
}

impl Store {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The version held for `key`, if any.
    pub fn version_of(&self, key: &[u8]) -> Option<u64> {
        self.map.get(key).map(|(version, _)| version)
    }

    /// The master registered us: take its epoch, and, if it asks (`inventory`), report every
    /// key held. Nothing is ever dropped because a master lost sight of us: it reconciles
    /// by version, and sends DROP for a copy that is stale.
    pub fn on_welcome(&mut self, epoch: u64, inventory: bool) {
        self.see_epoch(epoch);
        self.inventory = None;
        if inventory {
            info!(
                "master asked what we hold: reporting {} keys",
                self.map.len()
            );
            self.inventory = Some(Inventory {
                from: 0,
                drops: Vec::new(),
            });
        }
    }

    /// Whether a report of what is held is under way ([`Store::next_inventory`]).
    pub fn reporting(&self) -> bool {
        self.inventory.is_some()
    }

    /// The next INVENTORY frame of the report under way (`None` if there is none); the last
    /// says `done`, and then the DROPs that came meanwhile are applied.
    pub fn next_inventory(&mut self) -> Option<Frame> {
        let inv = self.inventory.as_mut()?;
        let (entries, next) = self.map.versions_from(inv.from, INVENTORY_FRAME_BYTES);
        let done = next.is_none();
        match next {
            Some(from) => inv.from = from,
            None => {
                let drops = std::mem::take(&mut inv.drops);
                self.inventory = None;
                for (key, version) in drops {
                    self.drop_stale(&key, version);
                }
            }
        }
        Some(Frame::new(0, Body::Inventory { done, entries }))
    }

    /// The master found our copy of `key` stale: drop it unless what we hold is newer.
    fn drop_stale(&mut self, key: &[u8], version: u64) {
        match self.inventory.as_mut() {
            Some(inv) => inv.drops.push((key.to_vec(), version)),
            None => {
                if self.map.drop_stale(key, version).is_some() {
                    debug!("dropped a stale copy (version {version} or older)");
                }
            }
        }
    }

    /// Answer one frame from the master; `None` when nothing is owed.
    pub fn on_frame(&mut self, frame: Frame) -> Option<Frame> {
        self.respond(frame).map(Reply::into_frame)
    }

    /// [`Store::on_frame`], with a FETCHED borrowing its value from the store.
    pub fn respond(&mut self, frame: Frame) -> Option<Reply<'_>> {
        let req = frame.req_id;
        let reply = match frame.body {
            Body::Welcome {
                epoch, inventory, ..
            } => {
                self.on_welcome(epoch, inventory);
                return None;
            }
            Body::Drop { version, key } => {
                self.drop_stale(&key, version);
                return None;
            }
            Body::Store {
                epoch,
                version,
                key,
                value,
            } => return Some(self.store(req, epoch, version, &key, &value)),
            Body::Fetch { epoch, key } => return Some(self.fetch(req, epoch, &key)),
            Body::Ping => Body::Pong,
            Body::Pong | Body::Ok => return None,
            Body::Error { code, text } => {
                warn!("master says {}: {text}", code.name());
                return None;
            }
            other => Body::error(
                ErrorCode::BadRequest,
                format!("a slave does not take {:?}", other.opcode()),
            ),
        };
        Some(Reply::Frame(Frame::new(req, reply)))
    }

    /// [`Store::respond`] for a frame decoded by [`dsm_wire::decode_borrowed`]: a STORE or
    /// FETCH is answered from the bytes in the read buffer, with no copy of its key or value
    /// but the one a STORE makes into the table.
    pub fn respond_decoded(&mut self, decoded: Decoded<'_>) -> Option<Reply<'_>> {
        match decoded {
            Decoded::Ref(
                req,
                BodyRef::Store {
                    epoch,
                    version,
                    key,
                    value,
                },
            ) => Some(self.store(req, epoch, version, key, value)),
            Decoded::Ref(req, BodyRef::Fetch { epoch, key }) => Some(self.fetch(req, epoch, key)),
            other => self.respond(other.into_frame()),
        }
    }

    fn store(&mut self, req: u64, epoch: u64, version: u64, key: &[u8], value: &[u8]) -> Reply<'_> {
        let body = match self.fence(epoch) {
            Some(stale) => stale,
            None => Body::Ack {
                version: self.map.put(key, version, value),
            },
        };
        Reply::Frame(Frame::new(req, body))
    }

    fn fetch(&mut self, req: u64, epoch: u64, key: &[u8]) -> Reply<'_> {
        if let Some(stale) = self.fence(epoch) {
            return Reply::Frame(Frame::new(req, stale));
        }
        match self.map.get(key) {
            Some((version, value)) => Reply::Borrowed(req, BodyRef::Fetched { version, value }),
            None => Reply::Frame(Frame::new(req, Body::NotFound)),
        }
    }

    fn see_epoch(&mut self, epoch: u64) {
        if epoch > self.epoch {
            self.epoch = epoch;
        }
    }

    /// `Some(error)` when `epoch` is older than one already seen.
    fn fence(&mut self, epoch: u64) -> Option<Body> {
        if epoch < self.epoch {
            return Some(Body::error(
                ErrorCode::StaleEpoch,
                format!("epoch {epoch} is older than {}", self.epoch),
            ));
        }
        self.see_epoch(epoch);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(req: u64, version: u64, key: &str, value: &str) -> Frame {
        Frame::new(
            req,
            Body::Store {
                epoch: 1,
                version,
                key: key.into(),
                value: value.into(),
            },
        )
    }

    fn fetch(req: u64, key: &str) -> Frame {
        Frame::new(
            req,
            Body::Fetch {
                epoch: 1,
                key: key.into(),
            },
        )
    }

    #[test]
    fn stores_acks_and_fetches() {
        let mut s = Store::default();
        assert_eq!(
            s.on_frame(store(1, 5, "k", "v")),
            Some(Frame::new(1, Body::Ack { version: 5 }))
        );
        assert_eq!(
            s.on_frame(fetch(2, "k")),
            Some(Frame::new(
                2,
                Body::Fetched {
                    version: 5,
                    value: b"v".to_vec()
                }
            ))
        );
        assert_eq!(
            s.on_frame(fetch(3, "nope")),
            Some(Frame::new(3, Body::NotFound))
        );
    }

    #[test]
    fn borrowed_frames_get_the_answers_owned_ones_do() {
        let frames = [
            store(1, 5, "k", "v"),
            fetch(2, "k"),
            fetch(3, "nope"),
            store(4, 3, "k", "old"),
            Frame::new(5, Body::Ping),
            Frame::new(
                6,
                Body::Fetch {
                    epoch: 0,
                    key: b"k".to_vec(),
                },
            ),
            Frame::new(7, Body::Read { key: b"k".to_vec() }),
        ];
        let (mut owned, mut borrowed) = (Store::default(), Store::default());
        for frame in frames {
            let mut buf = Vec::new();
            dsm_wire::encode(&frame, &mut buf);
            let (decoded, _) = dsm_wire::decode_borrowed(&buf, dsm_wire::DEFAULT_MAX_FRAME)
                .unwrap()
                .unwrap();
            let got = borrowed.respond_decoded(decoded).map(Reply::into_frame);
            assert_eq!(got, owned.on_frame(frame.clone()), "{frame:?}");
        }
        assert_eq!(borrowed.version_of(b"k"), Some(5));
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let mut s = Store::default();
        s.on_frame(store(1, 9, "k", "new"));
        // The ACK reports the version held, so the master can tell.
        assert_eq!(
            s.on_frame(store(2, 3, "k", "old")),
            Some(Frame::new(2, Body::Ack { version: 9 }))
        );
        assert_eq!(s.version_of(b"k"), Some(9));
        let Some(Frame {
            body: Body::Fetched { value, .. },
            ..
        }) = s.on_frame(fetch(3, "k"))
        else {
            panic!("expected FETCHED");
        };
        assert_eq!(value, b"new");
    }

    fn welcome(epoch: u64, inventory: bool) -> Frame {
        Frame::new(
            0,
            Body::Welcome {
                epoch,
                inventory,
                proof: None,
            },
        )
    }

    /// Reads the whole report of what is held, frame by frame.
    fn report(s: &mut Store) -> Vec<(Vec<u8>, u64)> {
        let mut all = Vec::new();
        while let Some(frame) = s.next_inventory() {
            let Body::Inventory { done, entries } = frame.body else {
                panic!("expected INVENTORY, got {frame:?}");
            };
            all.extend(entries);
            if done {
                assert!(!s.reporting());
                break;
            }
        }
        all.sort();
        all
    }

    #[test]
    fn a_welcome_keeps_the_data_and_old_epochs_are_refused() {
        let mut s = Store::default();
        s.on_frame(store(1, 1, "a", "1"));
        s.on_frame(welcome(2, false));
        assert_eq!(s.version_of(b"a"), Some(1), "a WELCOME never drops data");
        assert!(!s.reporting());
        let reply = s.on_frame(store(2, 2, "a", "x")).unwrap();
        assert!(matches!(
            reply.body,
            Body::Error {
                code: ErrorCode::StaleEpoch,
                ..
            }
        ));
        assert_eq!(
            s.version_of(b"a"),
            Some(1),
            "a fenced STORE must not be applied"
        );
    }

    #[test]
    fn the_inventory_reports_everything_and_drops_wait_for_its_end() {
        let mut s = Store::default();
        for i in 0..5000u64 {
            s.on_frame(store(i, i + 1, &format!("key-{i}"), "v"));
        }
        s.on_frame(welcome(1, true));
        assert!(s.reporting());
        // A DROP in the middle of the report must not make any key go unreported.
        let first = s.next_inventory().unwrap();
        let Body::Inventory { done: false, .. } = first.body else {
            panic!("5000 keys fit in one frame? {first:?}");
        };
        s.on_frame(Frame::new(
            0,
            Body::Drop {
                version: 1,
                key: b"key-0".to_vec(),
            },
        ));
        assert_eq!(s.version_of(b"key-0"), Some(1), "the drop waits");
        let mut rest = report(&mut s);
        let Body::Inventory { entries, .. } = first.body else {
            unreachable!()
        };
        rest.extend(entries);
        rest.sort();
        let mut want: Vec<(Vec<u8>, u64)> = (0..5000u64)
            .map(|i| (format!("key-{i}").into_bytes(), i + 1))
            .collect();
        want.sort();
        assert_eq!(rest, want);
        assert_eq!(s.version_of(b"key-0"), None, "applied after the last frame");
        // A DROP of an older version than held leaves the copy.
        s.on_frame(Frame::new(
            0,
            Body::Drop {
                version: 5,
                key: b"key-9".to_vec(),
            },
        ));
        assert_eq!(s.version_of(b"key-9"), Some(10));
        assert_eq!(s.next_inventory(), None, "no report under way");
    }

    #[test]
    fn pings_are_answered_and_client_opcodes_refused() {
        let mut s = Store::default();
        assert_eq!(
            s.on_frame(Frame::new(4, Body::Ping)),
            Some(Frame::new(4, Body::Pong))
        );
        let reply = s
            .on_frame(Frame::new(5, Body::Read { key: b"k".to_vec() }))
            .unwrap();
        assert!(matches!(
            reply.body,
            Body::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ));
    }
}
