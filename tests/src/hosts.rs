//! Nodes as separate hosts: each process of a test cluster in a network namespace of its own
//! (set up by the caller, such as the torture suite's testbed), started through
//! `ip netns exec` on an address of that namespace.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

/// Masters listen on these ports of their own address (every namespace has its own ports).
pub const LISTEN_PORT: u16 = 7000;
pub const HEARTBEAT_PORT: u16 = 7001;

/// A network namespace and the address a node has in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub netns: String,
    pub ip: IpAddr,
}

/// Where each node of a cluster runs: `masters[0]` the primary, `masters[1]` the backup,
/// `slaves[i]` slave `s{i}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    pub masters: Vec<Host>,
    pub slaves: Vec<Host>,
}

impl Host {
    /// `bin` to be run inside this host's namespace (`ip netns exec` execs it: same pid).
    pub fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(bin);
        cmd
    }

    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.ip, LISTEN_PORT)
    }

    pub fn heartbeat(&self) -> SocketAddr {
        SocketAddr::new(self.ip, HEARTBEAT_PORT)
    }
}
