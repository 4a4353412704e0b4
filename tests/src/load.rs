//! What a fault must not lose, for tests that blink the whole cluster: sentinel keys written
//! once beforehand, and a steady load of writers (each overwriting a few keys of its own with
//! increasing sequence numbers) running through the fault. Afterwards every sentinel must read
//! back with its value, and every key of the load its last acknowledged value or a later one
//! its writer sent; reads are retried while the cluster says "not now" (UNAVAILABLE, TIMEOUT,
//! NOT_PRIMARY, a refused connection), up to a deadline, and never on NOT_FOUND.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dsm_client::{Client, Error, Op, Reply};
use dsm_wire::ErrorCode;

use crate::{poll_until, Cluster};

/// Sentinels are written this many to a batch.
const BATCH: usize = 100;
/// A client's own deadline for one call: above the master's request deadline (2 s), so a
/// READ that waits for a holder hears the master's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// Pause after a failed call before the next, so a refusing cluster is not hammered.
const BACKOFF: Duration = Duration::from_millis(20);
/// Pause between two calls of a writer or the watcher: a steady load, not a CPU burner (on 2
/// cores, clients at full speed starve the masters long enough for spurious takeovers).
const PACE: Duration = Duration::from_millis(2);

/// A name for what a call answered, to count retries by kind.
fn kind_of(e: &Error) -> String {
    match e {
        Error::Server { code, .. } => code.name().to_string(),
        Error::Timeout { .. } => "client timeout".into(),
        Error::Unreachable(_) => "unreachable".into(),
        Error::Unknown(_) => "unknown".into(),
        Error::Io(_) => "I/O error".into(),
        Error::Protocol(_) => "protocol error".into(),
        Error::ReplyTooLarge { .. } => "reply too large".into(),
        Error::Untrusted(_) => "untrusted".into(),
        Error::Invalid(_) => "invalid".into(),
        Error::Conflict { .. } => "conflict".into(),
    }
}

/// Whether a READ that got `e` may be asked again: the cluster said "not now", or could not be
/// reached. NOT_FOUND is an answer, not an error, and is never retried.
pub fn retryable(e: &Error) -> bool {
    match e {
        Error::Server { code, .. } => matches!(
            code,
            ErrorCode::Unavailable
                | ErrorCode::Timeout
                | ErrorCode::NotPrimary
                | ErrorCode::Busy
                | ErrorCode::NoSlaves
        ),
        Error::Timeout { .. } | Error::Unreachable(_) | Error::Io(_) | Error::Unknown(_) => true,
        Error::Protocol(_)
        | Error::ReplyTooLarge { .. }
        | Error::Untrusted(_)
        | Error::Invalid(_)
        | Error::Conflict { .. } => false,
    }
}

/// A client of every master of `cluster` with a [`CALL_TIMEOUT`] per call, retried until
/// `deadline` (a master may be restarting).
pub fn client_until(cluster: &Cluster, deadline: Instant) -> Result<Client, String> {
    let masters = cluster.masters();
    loop {
        match cluster.connect(&masters) {
            Ok(mut c) => {
                c.set_timeout(CALL_TIMEOUT);
                return Ok(c);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no client could connect to {masters:?}: {e}"))
            }
            Err(_) => thread::sleep(BACKOFF * 5),
        }
    }
}

/// What reading keys back found: what was retried, and what was wrong.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// Keys read back as they should.
    pub good: usize,
    /// Retries by what the cluster said.
    pub retries: BTreeMap<String, usize>,
    /// Keys that read NOT_FOUND or a wrong value, or never answered by the deadline.
    pub wrong: Vec<String>,
}

impl ReadBack {
    /// `Err` with every wrong key (the first 20 of them) and the retries, if any was wrong.
    pub fn ok(&self, what: &str) -> Result<(), String> {
        if self.wrong.is_empty() {
            return Ok(());
        }
        let mut text = format!(
            "{} of {} {what} wrong (retried: {:?}):",
            self.wrong.len(),
            self.wrong.len() + self.good,
            self.retries
        );
        for w in self.wrong.iter().take(20) {
            let _ = write!(text, "\n  {w}");
        }
        if self.wrong.len() > 20 {
            let _ = write!(text, "\n  ... and {} more", self.wrong.len() - 20);
        }
        Err(text)
    }
}

/// Read every key of `keys` until `deadline`, pipelined, retrying those whose answer was an
/// error worth retrying; each final answer goes to `judge` (`None`: NOT_FOUND), which says
/// what is wrong with it, if anything.
pub fn read_back(
    cluster: &Cluster,
    keys: &[Vec<u8>],
    deadline: Instant,
    mut judge: impl FnMut(usize, Option<&[u8]>) -> Option<String>,
) -> ReadBack {
    let mut out = ReadBack::default();
    let mut todo: Vec<usize> = (0..keys.len()).collect();
    let mut last_error: BTreeMap<usize, String> = BTreeMap::new();
    let mut client: Option<Client> = None;
    while !todo.is_empty() && Instant::now() < deadline {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match client_until(cluster, deadline) {
                Ok(c) => client.insert(c),
                Err(e) => {
                    for &i in &todo {
                        last_error.insert(i, e.clone());
                    }
                    break;
                }
            },
        };
        let mut again = Vec::new();
        for (n, chunk) in todo.chunks(BATCH).enumerate() {
            let ops: Vec<Op> = chunk
                .iter()
                .map(|&i| Op::Read {
                    key: keys[i].clone(),
                })
                .collect();
            let answers = match c.batch(&ops) {
                Ok(a) => a,
                Err(e) => {
                    // This chunk and the ones after it go again, on a new connection.
                    *out.retries.entry(kind_of(&e)).or_default() += 1;
                    for &i in &todo[n * BATCH..] {
                        last_error.insert(i, e.to_string());
                        again.push(i);
                    }
                    client = None;
                    break;
                }
            };
            for (&i, a) in chunk.iter().zip(answers) {
                let got = match a {
                    Ok(Reply::Value(v)) => Some(v),
                    Ok(Reply::NotFound) => None,
                    Ok(other) => {
                        out.wrong
                            .push(format!("{}: answered {other:?}", show(&keys[i])));
                        continue;
                    }
                    Err(e) if retryable(&e) => {
                        *out.retries.entry(kind_of(&e)).or_default() += 1;
                        last_error.insert(i, e.to_string());
                        again.push(i);
                        continue;
                    }
                    Err(e) => {
                        out.wrong.push(format!("{}: {e}", show(&keys[i])));
                        continue;
                    }
                };
                match judge(i, got.as_deref()) {
                    None => out.good += 1,
                    Some(why) => out.wrong.push(format!("{}: {why}", show(&keys[i]))),
                }
            }
        }
        todo = again;
        if !todo.is_empty() {
            thread::sleep(BACKOFF * 5);
        }
    }
    for i in todo {
        let why = last_error.remove(&i).unwrap_or_else(|| "no answer".into());
        out.wrong.push(format!(
            "{}: no answer by the deadline; last: {why}",
            show(&keys[i])
        ));
    }
    out
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Keys written once before a fault, each with a value of its own.
pub struct Sentinels {
    pub n: usize,
}

impl Sentinels {
    pub fn key(i: usize) -> Vec<u8> {
        format!("sentinel-{i}").into_bytes()
    }

    pub fn value(i: usize) -> Vec<u8> {
        format!("sentinel value {i}").into_bytes()
    }

    /// Write sentinels `0..n` through `cluster`'s masters; each must be acknowledged on R
    /// copies (the cluster is whole before a fault).
    pub fn write(cluster: &Cluster, n: usize) -> Sentinels {
        let mut c = cluster.ha_client();
        c.set_timeout(CALL_TIMEOUT);
        for start in (0..n).step_by(BATCH) {
            let ops: Vec<Op> = (start..n.min(start + BATCH))
                .map(|i| Op::Write {
                    key: Sentinels::key(i),
                    value: Sentinels::value(i),
                })
                .collect();
            let answers = c
                .batch(&ops)
                .unwrap_or_else(|e| panic!("writing sentinels from {start}: {e}"));
            for (i, a) in (start..).zip(answers) {
                match a {
                    Ok(Reply::Ok) => {}
                    other => panic!("WRITE sentinel-{i} before the fault: {other:?}"),
                }
            }
        }
        Sentinels { n }
    }

    /// Read every sentinel back by `deadline`.
    pub fn check(&self, cluster: &Cluster, deadline: Instant) -> ReadBack {
        let keys: Vec<Vec<u8>> = (0..self.n).map(Sentinels::key).collect();
        read_back(cluster, &keys, deadline, |i, got| match got {
            Some(v) if v == Sentinels::value(i).as_slice() => None,
            Some(v) => Some(format!("reads {:?}", String::from_utf8_lossy(v))),
            None => Some("NOT_FOUND".into()),
        })
    }
}

/// A thread reading the sentinels over and over while a fault happens: a READ may be refused
/// ("not now") at any moment, but must never answer NOT_FOUND or a wrong value, not even for
/// an instant. Dropping it stops it.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Watched>>,
}

/// What a [`Watcher`] saw.
#[derive(Debug, Default)]
pub struct Watched {
    pub reads: usize,
    /// Refusals and errors by kind (retried).
    pub refused: BTreeMap<String, usize>,
    /// Wrong answers: when (since the watcher started), which master, what.
    pub wrong: Vec<String>,
}

impl Watched {
    /// Err naming the first 10 wrong answers, if there was any, seen `during` (the fault).
    pub fn ok(&self, during: &str) -> Result<(), String> {
        if self.wrong.is_empty() {
            return Ok(());
        }
        let first: Vec<&String> = self.wrong.iter().take(10).collect();
        Err(format!(
            "{} READs of sentinels during {during} answered wrong (first {}): {first:#?}",
            self.wrong.len(),
            first.len()
        ))
    }
}

impl Watcher {
    pub fn start(cluster: &Cluster, sentinels: &Sentinels) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let masters = cluster.masters();
        let mut c = cluster.ha_client();
        c.set_timeout(CALL_TIMEOUT);
        let (n, flag) = (sentinels.n, stop.clone());
        let thread = thread::spawn(move || {
            let started = Instant::now();
            let mut seen = Watched::default();
            let mut client = Some(c);
            let mut i = 0;
            while !flag.load(Ordering::SeqCst) {
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match Client::connect(&masters) {
                        Ok(mut c) => {
                            c.set_timeout(CALL_TIMEOUT);
                            client.insert(c)
                        }
                        Err(e) => {
                            *seen.refused.entry(kind_of(&e)).or_default() += 1;
                            thread::sleep(BACKOFF);
                            continue;
                        }
                    },
                };
                seen.reads += 1;
                let sent = started.elapsed().as_secs_f64();
                match c.read(&Sentinels::key(i)) {
                    Ok(Some(v)) if v == Sentinels::value(i) => {}
                    Ok(got) => seen.wrong.push(format!(
                        "sentinel-{i} read {:?} from {} (sent +{sent:.3} s, answered +{:.3} s)",
                        got.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        c.master(),
                        started.elapsed().as_secs_f64()
                    )),
                    Err(e) => {
                        *seen.refused.entry(kind_of(&e)).or_default() += 1;
                        if !retryable(&e) {
                            client = None;
                        }
                        thread::sleep(BACKOFF);
                        continue;
                    }
                }
                i = (i + 1) % n;
                thread::sleep(PACE);
            }
            seen
        });
        Watcher {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> Watched {
        self.stop.store(true, Ordering::SeqCst);
        let t = self.thread.take().expect("stopped once");
        t.join().expect("the watcher thread panicked")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Keys each writer of a [`Load`] overwrites, round and round.
pub const SLOTS: usize = 20;

/// What a writer of the load did, per slot: the last sequence number acknowledged and the
/// last one sent (a write that failed may still have happened); and when each of its writes
/// was acknowledged, and when each failed write was sent and answered, with why.
#[derive(Debug, Clone)]
struct Slots {
    acked: Vec<Option<u64>>,
    sent: Vec<Option<u64>>,
    /// Each acknowledged write: when it was sent and when it was answered.
    acked_at: Vec<(Instant, Instant)>,
    failed: Vec<Failed>,
    /// When a call ended on another master than the one before: when, and which.
    moves: Vec<(Instant, std::net::SocketAddr)>,
}

/// A write of the load that was not acknowledged.
#[derive(Debug, Clone)]
pub struct Failed {
    pub writer: usize,
    pub sent: Instant,
    pub answered: Instant,
    /// What the call returned, by kind (as in [`LoadReport::errors`]).
    pub kind: String,
    /// The outcome is unknown: the write may have taken effect (anything but a refusal the
    /// torture workload counts as certain, `torture::workload::classify_write`).
    pub unknown: bool,
}

/// How the writers of a [`Load`] behave.
#[derive(Debug, Clone, Copy)]
pub struct LoadOpts {
    pub writers: usize,
    /// Each call's deadline (the client library's, reconnects and resends included).
    pub call_timeout: Duration,
    /// After a call that ran out its deadline, drop the client and connect a new one (which
    /// tries the masters in order) instead of sending the next write on the same connection:
    /// what an application that gives up on a silent master does. Without it a writer stays
    /// on its connection as the client library does (a frozen master holds it until it
    /// resumes).
    pub fresh_client_after_timeout: bool,
    /// Write through this master alone (a probe of one master), not through every master of
    /// the cluster.
    pub only: Option<std::net::SocketAddr>,
}

impl Default for LoadOpts {
    fn default() -> LoadOpts {
        LoadOpts {
            writers: 2,
            call_timeout: CALL_TIMEOUT,
            fresh_client_after_timeout: false,
            only: None,
        }
    }
}

struct Shared {
    stop: AtomicBool,
    acked: AtomicUsize,
    /// Writes acknowledged on fewer than R copies (DEGRADED).
    short: AtomicUsize,
    errors: Mutex<BTreeMap<String, usize>>,
}

/// Writer threads writing `<t>:<seq>` to key `blink-load-<t>-<seq % SLOTS>` until stopped.
/// Dropping it stops and joins them (also when a test panics).
pub struct Load {
    shared: Arc<Shared>,
    writers: Vec<JoinHandle<Slots>>,
    /// The number of the first writer.
    first: usize,
}

/// What the load did, once stopped.
pub struct LoadReport {
    writers: Vec<Slots>,
    /// The number of the first writer.
    first: usize,
    pub acked: usize,
    pub short: usize,
    pub errors: BTreeMap<String, usize>,
}

impl Load {
    /// Start `n` writers, each with a client of every master of `cluster`.
    pub fn start(cluster: &Cluster, n: usize) -> Load {
        Load::start_with(
            cluster,
            LoadOpts {
                writers: n,
                ..LoadOpts::default()
            },
        )
    }

    /// Start the writers `opts` says, each with a client of every master of `cluster`.
    pub fn start_with(cluster: &Cluster, opts: LoadOpts) -> Load {
        Load::start_numbered(cluster, opts, 0)
    }

    /// [`Load::start_with`], the writers numbered from `first` (so that two loads on one
    /// cluster write keys of their own).
    pub fn start_numbered(cluster: &Cluster, opts: LoadOpts, first: usize) -> Load {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            acked: AtomicUsize::new(0),
            short: AtomicUsize::new(0),
            errors: Mutex::new(BTreeMap::new()),
        });
        let writers = (first..first + opts.writers)
            .map(|t| {
                let masters = match opts.only {
                    Some(m) => vec![m],
                    None => cluster.masters(),
                };
                let mut c = cluster
                    .connect(&masters)
                    .unwrap_or_else(|e| panic!("cannot connect a client to {masters:?}: {e}"));
                c.set_timeout(opts.call_timeout);
                let shared = shared.clone();
                let secret = cluster.secret().cloned();
                let connect = move || {
                    let timeout = opts.call_timeout;
                    let mut c = Client::connect_with_secret(&masters, timeout, secret.clone());
                    if let Ok(c) = c.as_mut() {
                        c.set_timeout(timeout);
                    }
                    c.ok()
                };
                let fresh = opts.fresh_client_after_timeout.then_some(connect);
                thread::spawn(move || write_until_stopped(t, c, fresh, &shared))
            })
            .collect();
        Load {
            shared,
            writers,
            first,
        }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> usize {
        self.shared.acked.load(Ordering::SeqCst)
    }

    /// Wait until `more` writes beyond those acknowledged now are acknowledged; `Err` with
    /// the errors seen if `timeout` passes first.
    pub fn wait_progress(&self, more: usize, timeout: Duration) -> Result<(), String> {
        let target = self.acked() + more;
        if poll_until(timeout, || self.acked() >= target) {
            return Ok(());
        }
        Err(format!(
            "the load got {} of {more} more writes acknowledged in {timeout:?}; errors so far: {:?}",
            more - (target - self.acked().min(target)),
            self.shared.errors.lock().unwrap()
        ))
    }

    /// Stop the writers and collect what they did.
    pub fn stop(mut self) -> LoadReport {
        self.shared.stop.store(true, Ordering::SeqCst);
        let writers = std::mem::take(&mut self.writers)
            .into_iter()
            .map(|h| h.join().expect("a writer thread panicked"))
            .collect();
        LoadReport {
            writers,
            first: self.first,
            acked: self.acked(),
            short: self.shared.short.load(Ordering::SeqCst),
            errors: self.shared.errors.lock().unwrap().clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in self.writers.drain(..) {
            let _ = h.join();
        }
    }
}

/// The longest time between `from` and `to` without an acknowledged write of any writer of
/// any of `loads`.
pub fn longest_gap(loads: &[&LoadReport], from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = loads
        .iter()
        .flat_map(|l| l.acks().map(|(_, a)| a))
        .filter(|&t| t > from && t < to)
        .collect();
    times.sort_unstable();
    longest_between(from, &times, to)
}

/// The longest of the times between `from`, each of `times` (sorted, all between the two)
/// and `to`.
fn longest_between(from: Instant, times: &[Instant], to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &t in times.iter().chain(std::iter::once(&to)) {
        longest = longest.max(t.saturating_duration_since(last));
        last = t;
    }
    longest
}

fn load_key(t: usize, slot: usize) -> Vec<u8> {
    format!("blink-load-{t}-{slot}").into_bytes()
}

fn write_until_stopped(
    t: usize,
    c: Client,
    fresh: Option<impl Fn() -> Option<Client>>,
    shared: &Shared,
) -> Slots {
    let mut slots = Slots {
        acked: vec![None; SLOTS],
        sent: vec![None; SLOTS],
        acked_at: Vec::new(),
        failed: Vec::new(),
        moves: Vec::new(),
    };
    let mut client = Some(c);
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_mut() else {
            // A fresh client after a timeout: connecting is part of the writer's gap.
            client = fresh.as_ref().and_then(|f| f());
            if client.is_none() {
                thread::sleep(BACKOFF);
            }
            continue;
        };
        let slot = seq as usize % SLOTS;
        let sent = Instant::now();
        let result = c.write(&load_key(t, slot), format!("{t}:{seq}").as_bytes());
        let answered = Instant::now();
        if slots.moves.last().map(|&(_, m)| m) != Some(c.master()) {
            slots.moves.push((answered, c.master()));
        }
        let unknown = crate::torture::workload::classify_write(&result).0
            == crate::torture::history::Outcome::Unknown;
        slots.sent[slot] = Some(seq);
        thread::sleep(PACE);
        match result {
            Ok(w) => {
                slots.acked[slot] = Some(seq);
                slots.acked_at.push((sent, answered));
                shared.acked.fetch_add(1, Ordering::SeqCst);
                if w != dsm_client::Written::Full {
                    shared.short.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e) => {
                let kind = kind_of(&e);
                *shared
                    .errors
                    .lock()
                    .unwrap()
                    .entry(kind.clone())
                    .or_default() += 1;
                slots.failed.push(Failed {
                    writer: t,
                    sent,
                    answered,
                    kind,
                    unknown,
                });
                if fresh.is_some() && matches!(e, Error::Timeout { .. }) {
                    client = None;
                }
                thread::sleep(BACKOFF);
            }
        }
        seq += 1;
    }
    slots
}

impl LoadReport {
    /// Every key of the load reads its last acknowledged value or a later one its writer
    /// sent (never an older one, nor NOT_FOUND once acknowledged), by `deadline`.
    pub fn check(&self, cluster: &Cluster, deadline: Instant) -> ReadBack {
        let mut keys = Vec::new();
        let mut want = Vec::new();
        for (n, w) in self.writers.iter().enumerate() {
            let t = self.first + n;
            for slot in 0..SLOTS {
                keys.push(load_key(t, slot));
                want.push((t, w.acked[slot], w.sent[slot]));
            }
        }
        read_back(cluster, &keys, deadline, |i, got| {
            let (t, acked, sent) = want[i];
            let seq = match got {
                None if acked.is_some() => {
                    return Some(format!("NOT_FOUND, acknowledged as {t}:{}", acked.unwrap()))
                }
                None => return None,
                Some(v) => {
                    let v = String::from_utf8_lossy(v);
                    match v
                        .split_once(':')
                        .map(|(w, s)| (w.parse::<usize>(), s.parse::<u64>()))
                    {
                        Some((Ok(w), Ok(seq))) if w == t => seq,
                        _ => return Some(format!("reads {v:?}, not written by writer {t}")),
                    }
                }
            };
            if acked.is_some_and(|a| seq < a) {
                return Some(format!(
                    "reads {t}:{seq}, older than the acknowledged {t}:{}",
                    acked.unwrap()
                ));
            }
            if sent.is_none_or(|s| seq > s) {
                return Some(format!("reads {t}:{seq}, never sent"));
            }
            None
        })
    }

    /// The longest time between `from` and `to` without an acknowledged write of any writer
    /// (the time from `from` to the first, and from the last to `to`, count too).
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        longest_gap(&[self], from, to)
    }

    /// The longest time between `from` and `to` that one writer went without an acknowledged
    /// write, the longest of any writer.
    pub fn longest_writer_gap(&self, from: Instant, to: Instant) -> Duration {
        self.writers
            .iter()
            .map(|w| {
                let times: Vec<Instant> = w
                    .acked_at
                    .iter()
                    .map(|&(_, a)| a)
                    .filter(|&t| t > from && t < to)
                    .collect();
                longest_between(from, &times, to)
            })
            .max()
            .unwrap_or_default()
    }

    /// How long after `t` the first write sent after `t` was acknowledged.
    pub fn first_ack_after(&self, t: Instant) -> Option<Duration> {
        self.acks()
            .filter(|&(sent, _)| sent >= t)
            .map(|(_, a)| a)
            .min()
            .map(|a| a - t)
    }

    /// Every acknowledged write: when it was sent and when it was answered.
    pub fn acks(&self) -> impl Iterator<Item = (Instant, Instant)> + '_ {
        self.writers.iter().flat_map(|w| w.acked_at.iter().copied())
    }

    /// Every write that was not acknowledged, by writer, in the order sent.
    pub fn failed(&self) -> impl Iterator<Item = &Failed> {
        self.writers.iter().flat_map(|w| w.failed.iter())
    }

    /// For each writer, when its calls began to end on another master, and which.
    pub fn moves(&self) -> Vec<Vec<(Instant, std::net::SocketAddr)>> {
        self.writers.iter().map(|w| w.moves.clone()).collect()
    }

    /// Writes whose outcome the client could not know (the write may have happened).
    pub fn unknown(&self) -> usize {
        self.failed().filter(|f| f.unknown).count()
    }

    /// Keys of the load with an acknowledged write.
    pub fn acked_keys(&self) -> usize {
        self.writers
            .iter()
            .map(|w| w.acked.iter().flatten().count())
            .sum()
    }
}
