//! A testbed of network namespaces for the long torture run, the blink and the election tests:
//! every master and slave a host of its own on one private bridge (10.213.N.0/24, in a hub
//! namespace), this process joined to it by one veth pair, and partitions made of blackhole
//! routes in the hosts' namespaces (packets vanish, connections stay open, as in a real
//! partition): the link between the two masters only, every link between one master and the
//! slaves, or every link between one node and the other nodes ([`Testbed::isolate`]). A node
//! can also *vanish* ([`Testbed::vanish`]): its port on the bridge goes down, so nothing
//! reaches it or leaves it, this process's clients included, and no FIN or RST is ever sent,
//! as when a machine loses power or its cable. Several testbeds may exist at once (one per
//! test). Everything is removed on drop, also after a panic; namespaces left by a run that was
//! killed are removed by the next one.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Host, Hosts};

/// Every namespace and interface this module makes starts with this.
const PREFIX: &str = "dsmt";

pub struct Testbed {
    /// `dsmt-<pid>-<n>`: this testbed's namespaces are `<tag>-hub`, `<tag>-m0`, `<tag>-s3`...
    tag: String,
    namespaces: Vec<String>,
    /// This process's end of the veth pair into the hub (removed with the hub).
    root_if: String,
    pub hosts: Hosts,
    cut: bool,
    /// Blackhole routes in place for [`Testbed::isolate_from_slaves`] and
    /// [`Testbed::isolate`]: (namespace, address).
    cut_off: Vec<(String, String)>,
    /// The hub namespace, where each host's port on the bridge is `v<name>`.
    hub: String,
    /// Hosts whose port is down ([`Testbed::vanish`]).
    vanished: Vec<Node>,
}

/// A node of the testbed, by where it runs: `Master(0)` is the host the cluster's first
/// primary was started on (`Hosts::masters[0]`), whatever its role now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Master(usize),
    Slave(usize),
}

impl Node {
    /// The host's name in its namespace's and its port's names (`m0`, `s3`).
    fn name(self) -> String {
        match self {
            Node::Master(i) => format!("m{i}"),
            Node::Slave(i) => format!("s{i}"),
        }
    }
}

/// Whether the testbed can be built here; `Err` says why not (not root, no `ip`, no netns).
pub fn available() -> Result<(), String> {
    let probe = format!("{PREFIX}-probe-{}", std::process::id());
    ip(&["netns", "add", &probe]).map_err(|e| format!("cannot create a network namespace: {e}"))?;
    ip(&["netns", "del", &probe])
}

impl Testbed {
    /// Namespaces for 2 masters and `slaves` slaves.
    pub fn create(slaves: usize) -> Result<Testbed, String> {
        remove_stale();
        // Tests of one process may each build a testbed at the same time.
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 100;
        let pid = std::process::id();
        let tag = format!("{PREFIX}-{pid}-{seq}");
        // One /24 per testbed, so two at once do not collide.
        let net = 10 + ((pid + 37 * seq) % 240) as u8;
        let addr = |host: u8| Ipv4Addr::new(10, 213, net, host);
        let mut bed = Testbed {
            root_if: format!("{PREFIX}{}x{seq}", pid % 10_000_000),
            tag: tag.clone(),
            namespaces: Vec::new(),
            hosts: Hosts::default(),
            cut: false,
            cut_off: Vec::new(),
            hub: String::new(),
            vanished: Vec::new(),
        };
        let hub = bed.add_ns("hub")?;
        bed.hub = hub.clone();
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        let root_if = bed.root_if.clone();
        ip(&[
            "link", "add", &root_if, "type", "veth", "peer", "name", "up0", "netns", &hub,
        ])?;
        ip(&["-n", &hub, "link", "set", "up0", "master", "br0", "up"])?;
        ip(&["addr", "add", &format!("{}/24", addr(1)), "dev", &root_if])?;
        ip(&["link", "set", &root_if, "up"])?;
        for m in 0..2 {
            let h = bed.add_host(&hub, &format!("m{m}"), addr(2 + m as u8))?;
            bed.hosts.masters.push(h);
        }
        for s in 0..slaves {
            let h = bed.add_host(&hub, &format!("s{s}"), addr(10 + s as u8))?;
            bed.hosts.slaves.push(h);
        }
        Ok(bed)
    }

    fn add_ns(&mut self, name: &str) -> Result<String, String> {
        let ns = format!("{}-{name}", self.tag);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace with `eth0` at `addr` on the hub's bridge.
    fn add_host(&mut self, hub: &str, name: &str, addr: Ipv4Addr) -> Result<Host, String> {
        let ns = self.add_ns(name)?;
        let port = format!("v{name}");
        ip(&[
            "-n", hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", hub, "link", "set", &port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(Host {
            netns: ns,
            ip: IpAddr::V4(addr),
        })
    }

    /// Cut (`true`) or restore the link between the two masters, in both directions.
    pub fn partition(&mut self, cut: bool) -> Result<(), String> {
        if cut == self.cut {
            return Ok(());
        }
        let verb = if cut { "add" } else { "del" };
        let [a, b] = [&self.hosts.masters[0], &self.hosts.masters[1]];
        for (from, to) in [(a, b), (b, a)] {
            let dest = format!("{}/32", to.ip);
            ip(&["-n", &from.netns, "route", verb, "blackhole", &dest])?;
        }
        self.cut = cut;
        Ok(())
    }
}

impl Testbed {
    /// Cut (`true`) or restore every link between master `m` (0: the primary's host) and the
    /// slaves, in both directions, with blackhole routes: packets vanish, connections stay
    /// open. The masters' link and this process's links to every node are left alone.
    pub fn isolate_from_slaves(&mut self, m: usize, cut: bool) -> Result<(), String> {
        if !cut {
            for (ns, dest) in std::mem::take(&mut self.cut_off) {
                ip(&["-n", &ns, "route", "del", "blackhole", &dest])?;
            }
            return Ok(());
        }
        let master = self.hosts.masters[m].clone();
        for slave in self.hosts.slaves.clone() {
            for (from, to) in [(&master, &slave), (&slave, &master)] {
                let dest = format!("{}/32", to.ip);
                ip(&["-n", &from.netns, "route", "add", "blackhole", &dest])?;
                self.cut_off.push((from.netns.clone(), dest));
            }
        }
        Ok(())
    }
}

impl Testbed {
    /// The host `node` runs on.
    pub fn host(&self, node: Node) -> &Host {
        match node {
            Node::Master(i) => &self.hosts.masters[i],
            Node::Slave(i) => &self.hosts.slaves[i],
        }
    }

    /// Every node of the testbed.
    pub fn nodes(&self) -> Vec<Node> {
        let masters = (0..self.hosts.masters.len()).map(Node::Master);
        masters
            .chain((0..self.hosts.slaves.len()).map(Node::Slave))
            .collect()
    }

    /// Cut every link between `node` and every other node (masters and slaves), in both
    /// directions, with blackhole routes: packets vanish, connections stay open. This
    /// process (the clients) still reaches it. With `cut` false, restore every link cut by
    /// this or [`Testbed::isolate_from_slaves`].
    pub fn isolate(&mut self, node: Node, cut: bool) -> Result<(), String> {
        if !cut {
            return self.isolate_from_slaves(0, false);
        }
        let me = self.host(node).clone();
        for other in self.nodes().into_iter().filter(|&n| n != node) {
            let other = self.host(other).clone();
            for (from, to) in [(&me, &other), (&other, &me)] {
                let dest = format!("{}/32", to.ip);
                ip(&["-n", &from.netns, "route", "add", "blackhole", &dest])?;
                self.cut_off.push((from.netns.clone(), dest));
            }
        }
        Ok(())
    }

    /// Cut every link between `a` and `b`, in both directions, with blackhole routes
    /// (restored by [`Testbed::heal`]).
    pub fn cut(&mut self, a: Node, b: Node) -> Result<(), String> {
        let (a, b) = (self.host(a).clone(), self.host(b).clone());
        for (from, to) in [(&a, &b), (&b, &a)] {
            let dest = format!("{}/32", to.ip);
            ip(&["-n", &from.netns, "route", "add", "blackhole", &dest])?;
            self.cut_off.push((from.netns.clone(), dest));
        }
        Ok(())
    }

    /// Make `node` vanish (`true`: its port on the bridge goes down, so every packet to or
    /// from it is dropped, this process's included, and it can send no FIN or RST to anyone)
    /// or come back (`false`). Its processes run on, their connections open.
    pub fn vanish(&mut self, node: Node, gone: bool) -> Result<(), String> {
        if self.vanished.contains(&node) == gone {
            return Ok(());
        }
        let port = format!("v{}", node.name());
        let state = if gone { "down" } else { "up" };
        ip(&["-n", &self.hub, "link", "set", &port, state])?;
        match gone {
            true => self.vanished.push(node),
            false => self.vanished.retain(|&n| n != node),
        }
        Ok(())
    }

    /// Undo every cut and bring back every vanished node.
    pub fn heal(&mut self) -> Result<(), String> {
        self.partition(false)?;
        self.isolate_from_slaves(0, false)?;
        for node in self.vanished.clone() {
            self.vanish(node, false)?;
        }
        Ok(())
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        // Gone with the hub's end already; this only matters if the hub was never made.
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_if])
            .stderr(Stdio::null())
            .status();
    }
}

/// Remove namespaces of earlier runs whose process is gone (killed before its drop ran).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Run `ip ARGS`; `Err` with its stderr if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
