//! The simulated network the slave sims run on: one [`Slave`] and the master addresses it
//! dials, each refusing, hanging or accepting and played by a script; an injected clock; a
//! queue of deliveries with a one-way latency; connection ids handed out by the network; links
//! that can be cut or isolated. No sockets, no sleeps. Every frame to the slave is encoded
//! and decoded again, so it takes the borrowed path the event loop takes.

#![allow(dead_code)] // each sim file uses its own share

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use dsm_auth::{Secret, Transcript};
use dsm_slave::disk::{MemDisk, LOG};
use dsm_slave::{Config, Out, Slave, Store};
use dsm_wire::{Body, ErrorCode, Frame};

pub type ConnId = u64;

/// One master's side of a connection: what it sends back for each frame it receives.
pub type Script = Box<dyn FnMut(&Frame) -> Vec<Frame>>;

/// What happens at an address when the slave connects to it.
pub enum Listener {
    /// Nothing listens: the connect fails (after one latency).
    Refuse,
    /// The connect never completes (a host that drops SYNs).
    Hang,
    /// A master, played by the script (one script for every connection to the address).
    Accept(Script),
}

enum Event {
    Connected(ConnId),
    ConnectFailed(ConnId),
    /// The network broke the connection (`why` is what the event loop would report).
    Closed(ConnId, String),
    ToSlave(ConnId, Frame),
    ToMaster(ConnId, SocketAddr, Frame),
}

pub struct Net {
    pub now: Instant,
    pub slave: Slave,
    pub latency: Duration,
    listeners: HashMap<SocketAddr, Listener>,
    /// The slave's connection (it has one at a time): its id, address, and whether it is up.
    conn: Option<(ConnId, SocketAddr, bool)>,
    next_conn: ConnId,
    /// Deliveries by time, then order of sending.
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    /// Addresses whose frames are lost both ways, connection kept (a frozen master).
    isolated: HashSet<SocketAddr>,
    /// Every connect the slave started: when, and to where.
    pub connects: Vec<(Instant, SocketAddr)>,
    /// Every frame the slave sent, with the address it went to.
    pub sent: Vec<(SocketAddr, Frame)>,
    /// Times the slave closed its connection (or gave up a connect).
    pub closes: Vec<Instant>,
    /// Times the slave asked for the ready line.
    pub ready: usize,
    /// When and why the slave gave up (`Out::GiveUp`): the process would end there.
    pub gave_up: Option<(Instant, String)>,
    /// The slave's disk, if it has one (see [`Net::with_store`]).
    pub disk: Option<MemDisk>,
    /// For each frame in `sent`, how many syncs the disk had done when it was sent.
    pub syncs_at_send: Vec<usize>,
    /// For each frame in `sent`, how many bytes of the log were synced when it was sent.
    pub synced_at_send: Vec<usize>,
    /// Bytes read before each frame delivered, in the same buffer (earlier frames): a large
    /// STORE's record keeps them (48 unless a test says).
    pub read_before: usize,
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn config(masters: &[SocketAddr], secret: Option<Secret>) -> Config {
    Config {
        masters: masters.to_vec(),
        id: "s1".into(),
        boot: 42,
        max_frame: dsm_wire::DEFAULT_MAX_FRAME,
        limits: dsm_wire::Limits {
            max_key: dsm_wire::DEFAULT_MAX_KEY as u32,
            max_value: dsm_wire::DEFAULT_MAX_VALUE as u32,
            masters: 0,
        },
        master_timeout: Duration::from_millis(1500),
        secret,
        spin: Duration::ZERO,
        data_dir: None,
        disk: dsm_slave::disk::Settings {
            fsync: dsm_slave::disk::Fsync::Always,
            compact_min: dsm_slave::disk::COMPACT_MIN,
            compact_step: dsm_slave::disk::COMPACT_STEP,
            failpoint: None,
        },
        max_memory: u64::MAX,
        metrics: None,
    }
}

impl Net {
    pub fn new(cfg: Config) -> Net {
        let now = Instant::now();
        let slave = Slave::new(&cfg, now);
        Net::around(slave, None, now)
    }

    /// A slave serving `store`, which keeps its log on `disk`.
    pub fn with_store(cfg: Config, store: Store, disk: MemDisk) -> Net {
        let now = Instant::now();
        let slave = Slave::with_store(&cfg, store, now);
        Net::around(slave, Some(disk), now)
    }

    fn around(slave: Slave, disk: Option<MemDisk>, now: Instant) -> Net {
        capture_logs();
        Net {
            now,
            slave,
            latency: Duration::from_millis(1),
            listeners: HashMap::new(),
            conn: None,
            next_conn: 1,
            queue: BTreeMap::new(),
            seq: 0,
            isolated: HashSet::new(),
            connects: Vec::new(),
            sent: Vec::new(),
            closes: Vec::new(),
            ready: 0,
            gave_up: None,
            disk,
            syncs_at_send: Vec::new(),
            synced_at_send: Vec::new(),
            read_before: 48,
        }
    }

    /// What connects to `at` meet from now on (addresses never set refuse).
    pub fn listen(&mut self, at: SocketAddr, listener: Listener) {
        self.listeners.insert(at, listener);
    }

    /// Run the clock forward by `d`, delivering what falls due and ticking the slave at each
    /// of its deadlines.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            let due = self.queue.keys().next().map(|k| k.0);
            let next = due.map_or(self.slave.next_deadline(), |t| {
                t.min(self.slave.next_deadline())
            });
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let event = entry.remove();
                self.deliver(event);
            }
            self.slave.on_tick(self.now);
            // The end of the event loop's turn: the STOREs delivered are written to the log
            // (if any) and ACKed.
            self.slave.end_turn(self.now);
            // As the event loop does while the connection has room: the whole report goes
            // out now.
            while self.slave.reporting() {
                self.slave.pump_inventory(4);
                self.carry_out();
            }
            self.carry_out();
        }
        panic!("the clock does not move: the slave's deadline stays in the past");
    }

    /// One loop turn with nothing read, as when the syncer thread's waker ends a wait.
    pub fn wake(&mut self) {
        self.slave.on_tick(self.now);
        self.slave.end_turn(self.now);
        self.carry_out();
    }

    /// Run until `done` holds, at most `limit`; whether it did.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.run_for(Duration::from_millis(1));
        }
        done(self)
    }

    /// Send a frame to the slave on its connection, as its master.
    pub fn send(&mut self, frame: Frame) {
        let (id, _, true) = self.conn.expect("a connection") else {
            panic!("the connection is not up");
        };
        self.push(self.latency, Event::ToSlave(id, frame));
    }

    /// Send `frame` and run until the slave answers it; the answer (`None`: none in 100 ms).
    pub fn ask(&mut self, frame: Frame) -> Option<Frame> {
        let before = self.sent.len();
        self.send(frame);
        self.run_until(Duration::from_millis(100), |n| n.sent.len() > before);
        self.sent.get(before).map(|(_, f)| f.clone())
    }

    /// Break the slave's connection; it hears after one latency.
    pub fn cut(&mut self) {
        if let Some((id, _, _)) = self.conn {
            self.push(
                self.latency,
                Event::Closed(id, "connection inventory".into()),
            );
        }
    }

    /// Lose every frame to and from `at`, keeping its connections open.
    pub fn isolate(&mut self, at: SocketAddr) {
        self.isolated.insert(at);
    }

    /// The address the slave is connected to (or connecting to).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.conn.map(|(_, at, _)| at)
    }

    /// Whether the slave has a connection that is up.
    pub fn connected(&self) -> bool {
        matches!(self.conn, Some((_, _, true)))
    }

    fn push(&mut self, after: Duration, event: Event) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), event);
    }

    fn current(&self, id: ConnId) -> bool {
        matches!(self.conn, Some((current, _, _)) if current == id)
    }

    fn deliver(&mut self, event: Event) {
        match event {
            Event::Connected(id) if self.current(id) => {
                self.conn.as_mut().expect("current").2 = true;
                self.slave.on_connected(self.now);
            }
            Event::ConnectFailed(id) if self.current(id) => {
                self.conn = None;
                self.slave
                    .on_connect_failed("Connection refused (os error 111)", self.now);
            }
            Event::Closed(id, why) if self.current(id) => {
                self.conn = None;
                self.slave.on_closed(&why, self.now);
            }
            Event::ToSlave(id, frame) if self.current(id) => self.deliver_to_slave(id, frame),
            Event::ToMaster(id, at, frame) if !self.isolated.contains(&at) => {
                let Some(Listener::Accept(script)) = self.listeners.get_mut(&at) else {
                    return;
                };
                for reply in script(&frame) {
                    self.push(self.latency, Event::ToSlave(id, reply));
                }
            }
            _ => {} // for a connection already gone, or lost
        }
        self.carry_out();
    }

    fn deliver_to_slave(&mut self, id: ConnId, frame: Frame) {
        let at = self.peer().expect("current");
        if self.isolated.contains(&at) {
            return;
        }
        // As the event loop reads: after other frames (`read_before` bytes of them).
        let mut bytes = vec![0xEE; self.read_before];
        dsm_wire::encode(&frame, &mut bytes);
        let whole = self.read_before..bytes.len();
        let op = frame.body.opcode() as u8;
        let reply = if dsm_slave::node::takes_frame(op, whole.len()) {
            // A large STORE: taken out of the connection with its buffer, as `node.rs` does.
            self.slave
                .on_taken(bytes, whole, self.now)
                .expect("a valid frame")
                .map(|r| r.into_frame())
        } else {
            let (decoded, used) =
                dsm_wire::decode_borrowed(&bytes[whole.clone()], dsm_wire::DEFAULT_MAX_FRAME)
                    .expect("a valid frame")
                    .expect("a whole frame");
            assert_eq!(used, whole.len());
            self.slave
                .on_decoded(decoded, self.now)
                .map(|r| r.into_frame())
        };
        if let Some(reply) = reply {
            self.sent_by_slave(id, at, reply);
        }
    }

    fn sent_by_slave(&mut self, id: ConnId, at: SocketAddr, frame: Frame) {
        self.sent.push((at, frame.clone()));
        let syncs = self.disk.as_ref().map_or(0, MemDisk::syncs);
        self.syncs_at_send.push(syncs);
        let synced = self.disk.as_ref().map_or(0, |d| d.synced_len(LOG));
        self.synced_at_send.push(synced);
        self.push(self.latency, Event::ToMaster(id, at, frame));
    }

    /// Carry out what the slave asked for, as the event loop would.
    fn carry_out(&mut self) {
        let mut outs = Vec::new();
        while self.slave.has_out() {
            self.slave.drain_out(&mut outs);
            for out in outs.drain(..) {
                self.apply(out);
            }
        }
    }

    fn apply(&mut self, out: Out) {
        match out {
            Out::Connect(at) => {
                assert!(self.conn.is_none(), "a second connection at once");
                let id = self.next_conn;
                self.next_conn += 1;
                self.connects.push((self.now, at));
                self.conn = Some((id, at, false));
                match self.listeners.get(&at).unwrap_or(&Listener::Refuse) {
                    Listener::Refuse => self.push(self.latency, Event::ConnectFailed(id)),
                    Listener::Hang => {}
                    Listener::Accept(_) => self.push(self.latency, Event::Connected(id)),
                }
            }
            Out::Send(frame) => match self.conn {
                Some((id, at, true)) => self.sent_by_slave(id, at, frame),
                _ => panic!("the slave sent {frame:?} with no connection up"),
            },
            Out::Close => {
                assert!(self.conn.is_some(), "a close with no connection");
                self.conn = None;
                self.closes.push(self.now);
            }
            Out::Ready => self.ready += 1,
            Out::GiveUp(why) => self.gave_up = Some((self.now, why)),
        }
    }
}

/// A master that welcomes every HELLO (with no proof: it holds no secret).
pub fn welcoming(epoch: u64, inventory: bool) -> Listener {
    Listener::Accept(Box::new(move |f| match f.body {
        Body::Hello { .. } => vec![welcome(f.req_id, epoch, inventory, None)],
        _ => vec![],
    }))
}

/// A master that answers every HELLO with this ERROR.
pub fn refusing(code: ErrorCode, text: &'static str) -> Listener {
    Listener::Accept(Box::new(move |f| match f.body {
        Body::Hello { .. } => vec![Frame::new(f.req_id, Body::error(code, text))],
        _ => vec![],
    }))
}

/// A master that takes the connection and never says a word.
pub fn silent() -> Listener {
    Listener::Accept(Box::new(|_| vec![]))
}

/// A master with a secret: CHALLENGE for a HELLO, then for the AUTH a WELCOME carrying its
/// proof made with `key` (it does not check the slave's proof: the master's own sims do).
pub fn proving(key: Secret, epoch: u64, inventory: bool) -> Listener {
    let mut hello = None;
    Listener::Accept(Box::new(move |f| match &f.body {
        Body::Hello { .. } => {
            hello = Some(f.body.clone());
            vec![Frame::new(f.req_id, Body::Challenge { nonce: NONCE })]
        }
        Body::Auth { .. } => {
            let Some(Body::Hello {
                role,
                epoch: peer_epoch,
                id,
                boot,
                nonce: Some(peer_nonce),
                ..
            }) = &hello
            else {
                return vec![];
            };
            let t = Transcript {
                role: *role,
                epoch: *peer_epoch,
                id,
                boot: *boot,
                peer_nonce,
                master_nonce: &NONCE,
            };
            let terms = dsm_auth::Terms {
                epoch,
                inventory,
                ..Default::default()
            };
            let proof = key.master_proof(&t, &terms);
            vec![welcome(f.req_id, epoch, inventory, Some(proof))]
        }
        _ => vec![],
    }))
}

const NONCE: [u8; 32] = [7; 32];

pub fn welcome(req: u64, epoch: u64, inventory: bool, proof: Option<[u8; 32]>) -> Frame {
    Frame::new(
        req,
        Body::Welcome {
            epoch,
            inventory,
            standby: false,
            lease_ms: 0,
            proof,
        },
    )
}

thread_local! {
    /// What this thread (one sim) logged.
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LINES.with(|l| l.borrow_mut().push(line));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_boxed_logger(Box::new(Capture)).expect("no other logger");
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// The lines this sim logged that contain `word`.
pub fn logged(word: &str) -> Vec<String> {
    LINES.with(|l| {
        l.borrow()
            .iter()
            .filter(|s| s.contains(word))
            .cloned()
            .collect()
    })
}
