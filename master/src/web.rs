//! `--metrics ADDR` on the master: the HTTP endpoint's connections live in the event loop's
//! slab beside the others (`server.rs` hands their events here), and three routes:
//! `/metrics` (Prometheus text), `/` (the status page, `page.rs`) and `/status.json` is not
//! served: the page is the human view, `/metrics` the machine one. Anything else is a 404.
//! Both pages need the key map counted (`census.rs`): a request for them waits, unanswered,
//! until a census pass that started after it ends; the loop walks a slice a turn meanwhile.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dsm_net::http::{Endpoint, Page, Request, Verdict};
use dsm_net::Conn;
use log::{debug, info};
use mio::{Registry, Token};
use slab::Slab;

use crate::master::Master;
use crate::metrics::RequestStats;

/// The listening socket's token (the slab's keys stay below the fixed tokens).
pub(crate) const METRICS: Token = Token(usize::MAX - 3);

pub(crate) struct Web {
    endpoint: Endpoint,
    /// The request counters as of an earlier page, for the rates and recent percentiles.
    window: Option<(Instant, RequestStats)>,
    /// The one before it: the page compares with whichever is at least a second old.
    older: Option<(Instant, RequestStats)>,
    /// Bytes queued for all peers, and when they were counted (see [`Web::buffered`]).
    buffered: (u64, Option<Instant>),
    /// Connections whose request waits for the master's census pass of this id.
    waiting: Vec<(usize, u64)>,
}

impl Web {
    pub fn bind(addr: SocketAddr, registry: &Registry) -> io::Result<Web> {
        let endpoint = Endpoint::bind(addr, registry, METRICS)?;
        info!(
            "metrics on http://{}/metrics, status page on http://{}/",
            endpoint.local_addr()?,
            endpoint.local_addr()?
        );
        Ok(Web {
            endpoint,
            window: None,
            older: None,
            buffered: (0, None),
            waiting: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    #[inline]
    pub fn owns(&self, key: usize) -> bool {
        self.endpoint.owns(key)
    }

    /// The next waiting connection, to go into the slab; with the key of an old one to close
    /// first when the endpoint is full.
    pub fn accept(&mut self) -> Option<(mio::net::TcpStream, Option<usize>)> {
        let stream = self.endpoint.accept()?;
        Some((stream, self.endpoint.to_evict()))
    }

    pub fn adopt(&mut self, key: usize) {
        self.endpoint.adopt(key);
    }

    pub fn forget(&mut self, key: usize) {
        self.endpoint.forget(key);
        self.waiting.retain(|&(k, _)| k != key);
    }

    /// A census pass of the master's ended: the connections whose requests it answers (the
    /// loop serves them again).
    pub fn census_done(&self, master: &Master) -> Vec<usize> {
        (self.waiting.iter())
            .filter(|&&(_, id)| master.census_result(id).is_some())
            .map(|&(k, _)| k)
            .collect()
    }

    /// The bytes queued for peers, counted by `count` (a walk over the connections) at most
    /// every 100 ms.
    pub fn buffered(&mut self, count: impl FnOnce() -> u64) -> u64 {
        let now = Instant::now();
        let fresh = (self.buffered.1)
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(100));
        if !fresh {
            self.buffered = (count(), Some(now));
        }
        self.buffered.0
    }

    /// An event on HTTP connection `key`; `buffered` is what the loop has queued for peers.
    pub fn on_event(
        &mut self,
        key: usize,
        conn: &mut Conn,
        registry: &Registry,
        master: &mut Master,
        buffered: u64,
    ) -> Verdict {
        let now = Instant::now();
        let http_conns = self.endpoint.open() as u64;
        let Web {
            endpoint,
            window,
            older,
            waiting,
            ..
        } = self;
        endpoint.on_event(key, Token(key), conn, registry, |req: &Request| {
            debug!("http {} {}", req.method, req.path);
            if !matches!(req.path, "/metrics" | "/") {
                return Some(Page::not_found(req.path));
            }
            // The counts of a pass that started after this request came, else wait for one.
            let at = waiting.iter().position(|&(k, _)| k == key);
            let id = match at {
                Some(i) => waiting[i].1,
                None => master.census_ask(),
            };
            let Some(counts) = master.census_result(id).cloned() else {
                if at.is_none() {
                    waiting.push((key, id));
                }
                return None;
            };
            if let Some(i) = at {
                waiting.swap_remove(i);
            }
            Some(match req.path {
                "/metrics" => Page::ok(
                    "text/plain; version=0.0.4; charset=utf-8",
                    master.metrics(&counts, buffered, http_conns, now),
                ),
                _ => {
                    let stats = master.request_stats().clone();
                    let since = pick_window(window, older, now);
                    let view = master.page_view(&counts, now);
                    let html = crate::page::render(&view, &stats, since);
                    slide(window, older, now, stats);
                    Page::ok("text/html; charset=utf-8", html)
                }
            })
        })
    }
}

/// The earlier sample to compare with: the newest one at least a second old.
fn pick_window<'a>(
    window: &'a Option<(Instant, RequestStats)>,
    older: &'a Option<(Instant, RequestStats)>,
    now: Instant,
) -> Option<(Duration, &'a RequestStats)> {
    [window, older]
        .into_iter()
        .flatten()
        .map(|(t, s)| (now.saturating_duration_since(*t), s))
        .find(|(age, _)| *age >= Duration::from_secs(1))
}

/// Keep this page's sample; the previous one stays as the older, unless it is too young to
/// compare with yet.
fn slide(
    window: &mut Option<(Instant, RequestStats)>,
    older: &mut Option<(Instant, RequestStats)>,
    now: Instant,
    stats: RequestStats,
) {
    let young = window
        .as_ref()
        .is_some_and(|(t, _)| now.saturating_duration_since(*t) < Duration::from_secs(1));
    if young {
        return;
    }
    *older = window.take();
    *window = Some((now, stats));
}

/// Accept every waiting HTTP connection into `conns` (the loop's slab); returns the keys of
/// old connections to close to make room.
pub(crate) fn accept_all(
    web: &mut Web,
    conns: &mut Slab<Conn>,
    registry: &Registry,
    evicted: &mut Vec<usize>,
) {
    while let Some((mut stream, evict)) = web.accept() {
        if let Some(old) = evict {
            // Forgotten now so the next accept sees room; the loop closes it.
            web.forget(old);
            evicted.push(old);
        }
        let entry = conns.vacant_entry();
        let key = entry.key();
        if registry
            .register(&mut stream, Token(key), mio::Interest::READABLE)
            .is_err()
        {
            continue;
        }
        entry.insert(Conn::new(stream, dsm_net::http::READ_SIZE));
        web.adopt(key);
    }
}
