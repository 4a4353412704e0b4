//! `--metrics ADDR` on the slave: the HTTP endpoint and its connections, in a slab of their
//! own (the slave's loop has one other connection, its master's): tokens from
//! [`FIRST_TOKEN`] up are theirs. One route, `/metrics`; anything else is a 404.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use dsm_net::http::{Endpoint, Page, Verdict};
use dsm_net::Conn;
use log::info;
use mio::event::Event;
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::slave::Slave;

const LISTENER: Token = Token(usize::MAX);
/// The HTTP connection at slab key `k` has token `FIRST_TOKEN + k`.
pub const FIRST_TOKEN: usize = 2;

pub struct Web {
    endpoint: Endpoint,
    conns: Slab<Conn>,
    started: Instant,
}

impl Web {
    pub fn bind(addr: SocketAddr, registry: &Registry) -> io::Result<Web> {
        let endpoint = Endpoint::bind(addr, registry, LISTENER)?;
        info!("metrics on http://{}/metrics", endpoint.local_addr()?);
        Ok(Web {
            endpoint,
            conns: Slab::new(),
            started: Instant::now(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Handle `event` if it is the endpoint's; whether it was.
    pub fn on_event(&mut self, event: &Event, registry: &Registry, slave: &Slave) -> bool {
        match event.token() {
            LISTENER => self.accept(registry),
            Token(t) if t >= FIRST_TOKEN && self.endpoint.owns(t - FIRST_TOKEN) => {
                self.serve(t - FIRST_TOKEN, registry, slave)
            }
            _ => return false,
        }
        true
    }

    fn accept(&mut self, registry: &Registry) {
        while let Some(mut stream) = self.endpoint.accept() {
            if let Some(old) = self.endpoint.to_evict() {
                self.close(old, registry);
            }
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            let token = Token(FIRST_TOKEN + key);
            if registry
                .register(&mut stream, token, Interest::READABLE)
                .is_err()
            {
                continue;
            }
            entry.insert(Conn::new(stream, dsm_net::http::READ_SIZE));
            self.endpoint.adopt(key);
        }
    }

    fn serve(&mut self, key: usize, registry: &Registry, slave: &Slave) {
        let uptime = self.started.elapsed().as_secs_f64();
        let conn = &mut self.conns[key];
        let token = Token(FIRST_TOKEN + key);
        let verdict = self.endpoint.on_event(key, token, conn, registry, |req| {
            Some(match req.path {
                "/metrics" => Page::ok(
                    "text/plain; version=0.0.4; charset=utf-8",
                    crate::metrics::render(slave, uptime),
                ),
                path => Page::not_found(path),
            })
        });
        if verdict == Verdict::Close {
            self.close(key, registry);
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        self.endpoint.forget(key);
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = registry.deregister(conn.stream_mut());
        }
    }
}
