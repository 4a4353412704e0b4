//! `--max-memory`: the size syntax, and the default derived from the machine. The cap itself
//! is applied by the store, against what the table counts ([`crate::table::Table::heap_bytes`]).
//!
//! The default: three quarters of the memory this process may use, if something limits it
//! (a cgroup's `memory.max` or `memory.limit_in_bytes`, `ulimit -v` or `ulimit -d`), less a
//! reserve for what the cap does not count (the connection's buffers, the log's, the program);
//! else half the machine's `MemTotal` less the reserve, because a slave then shares the machine
//! with the kernel's page cache (its own log's dirty pages included) and often a master. The
//! quarter left under a limit covers the allocator's fragmentation and the moment a `Vec`
//! grows, which the count cannot see.

use std::fs;

/// Where the default cap comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    /// Says what it is, for the log and `--help`.
    pub source: String,
    /// `MemTotal`: the whole machine, not a limit on this process.
    pub whole_machine: bool,
    /// `ulimit -v`: it counts address space, reserved or not (a thread's malloc arena takes
    /// 64 MiB of it).
    pub address_space: bool,
}

/// The smallest memory budget this process is given, or the machine's memory if nothing limits
/// it; `None` if not even `/proc/meminfo` can be read.
pub fn machine_budget() -> Option<Budget> {
    let read = |p: &str| fs::read_to_string(p).ok();
    let mut limits = Vec::new();
    if let (Some(mountinfo), Some(cgroup)) =
        (read("/proc/self/mountinfo"), read("/proc/self/cgroup"))
    {
        limits.extend(cgroup_limits(&mountinfo, &cgroup, read));
    }
    if let Some(text) = read("/proc/self/limits") {
        limits.extend(rlimits(&text));
    }
    let smallest = limits.into_iter().min_by_key(|b| b.bytes);
    let total = read("/proc/meminfo").and_then(|t| mem_total(&t));
    match (smallest, total) {
        (Some(l), Some(t)) if t.bytes < l.bytes => Some(t),
        (Some(l), _) => Some(l),
        (None, t) => t,
    }
}

/// The default `--max-memory` for `budget`, keeping `reserve` bytes aside for buffers.
pub fn default_cap(budget: &Budget, reserve: u64) -> u64 {
    let left = budget.bytes.saturating_sub(reserve);
    let cap = if budget.whole_machine {
        left / 2
    } else {
        left / 4 * 3
    };
    cap.max(1 << 20)
}

/// `N`, or `N` followed by K, M, G or T (with or without `iB` or `B`, any case): powers of
/// 1024, as `ulimit`, cgroups and Docker read them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let bad = || format!("'{s}' is not a size (N, or N with K, M, G, T, KiB, MiB, GiB, TiB)");
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// `bytes` for people: "512 KiB", "1.5 GiB".
pub fn show(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Limits at or above this mean "none" (cgroup v1 writes 2^63 rounded down to a page).
const UNLIMITED: u64 = 1 << 60;

/// The memory limits of this process's cgroups, v2 and v1, from the leaf up to the mount:
/// every ancestor's limit applies too.
fn cgroup_limits(
    mountinfo: &str,
    cgroup: &str,
    read: impl Fn(&str) -> Option<String>,
) -> Vec<Budget> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent dev root mountpoint options [optional...] - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 5 || r.is_empty() {
            continue;
        }
        let (root, mount) = (f[3], f[4]);
        let (path, file) = match r[0] {
            "cgroup2" => match cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
                Some(p) => (p, "memory.max"),
                None => continue,
            },
            "cgroup"
                if r.get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "memory")) =>
            {
                let v1 = cgroup.lines().find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
                    ctrl.split(',').any(|c| c == "memory").then_some(path)
                });
                match v1 {
                    Some(p) => (p, "memory.limit_in_bytes"),
                    None => continue,
                }
            }
            _ => continue,
        };
        // The cgroup path is from the hierarchy's root; the mount shows it from `root` down.
        let rel = path.strip_prefix(root).unwrap_or(path).trim_matches('/');
        let mut dir = rel.to_string();
        loop {
            let p = format!("{}/{}/{}", mount.trim_end_matches('/'), dir, file).replace("//", "/");
            let limit = read(&p).and_then(|t| t.trim().parse::<u64>().ok());
            if let Some(bytes) = limit.filter(|&b| b < UNLIMITED) {
                out.push(Budget {
                    bytes,
                    source: format!("the cgroup limit {p}"),
                    whole_machine: false,
                    address_space: false,
                });
            }
            match dir.rfind('/') {
                Some(i) => dir.truncate(i),
                None if !dir.is_empty() => dir.clear(),
                None => break,
            }
        }
    }
    out
}

/// The soft `ulimit -v` (address space) and `ulimit -d` (data) from `/proc/self/limits`.
fn rlimits(text: &str) -> Vec<Budget> {
    let mut out = Vec::new();
    for (name, what, address_space) in [
        ("Max address space", "ulimit -v (address space)", true),
        ("Max data size", "ulimit -d (data size)", false),
    ] {
        let soft = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(bytes) = soft.filter(|&b| b < UNLIMITED) {
            out.push(Budget {
                bytes,
                source: what.to_string(),
                whole_machine: false,
                address_space,
            });
        }
    }
    out
}

fn mem_total(meminfo: &str) -> Option<Budget> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Budget {
        bytes: kib * 1024,
        source: "MemTotal: no cgroup or ulimit limits this process".to_string(),
        whole_machine: true,
        address_space: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        for (s, want) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("64KiB", 64 << 10),
            ("64kb", 64 << 10),
            ("2M", 2 << 20),
            ("2 MiB", 2 << 20),
            ("3G", 3 << 30),
            ("3GiB", 3 << 30),
            ("1T", 1 << 40),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "M",
            "1.5G",
            "-1",
            "2X",
            "12 apples",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        assert_eq!(show(512), "512 B");
        assert_eq!(show(2 << 20), "2 MiB");
        assert_eq!(show(3 << 29), "1.5 GiB");
    }

    const MOUNTINFO: &str = "\
24 1 0:22 / / rw - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn cgroup_limits_are_read_from_the_leaf_up_in_both_versions() {
        let cgroup = "4:memory:/jobs/slave\n1:cpu:/\n0::/svc/slave\n";
        let files = [
            (
                "/sys/fs/cgroup/memory/jobs/slave/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "/sys/fs/cgroup/memory/jobs/memory.limit_in_bytes",
                "2147483648\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("/sys/fs/cgroup/unified/svc/slave/memory.max", "max\n"),
            ("/sys/fs/cgroup/unified/svc/memory.max", "1073741824\n"),
        ];
        let read = |p: &str| files.iter().find(|f| f.0 == p).map(|f| f.1.to_string());
        let got = cgroup_limits(MOUNTINFO, cgroup, read);
        let bytes: Vec<u64> = got.iter().map(|b| b.bytes).collect();
        assert_eq!(bytes, [2 << 30, 1 << 30], "{got:?}");
        assert!(got[1]
            .source
            .contains("/sys/fs/cgroup/unified/svc/memory.max"));
        // A cgroup namespace mounts the process's own cgroup as the root.
        let ns = "50 31 0:40 /svc/slave /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let read = |p: &str| (p == "/sys/fs/cgroup/memory.max").then(|| "536870912".to_string());
        let got = cgroup_limits(ns, "0::/svc/slave\n", read);
        assert_eq!(got.iter().map(|b| b.bytes).collect::<Vec<_>>(), [512 << 20]);
    }

    #[test]
    fn ulimits_and_mem_total() {
        let limits = "\
Limit                     Soft Limit           Hard Limit           Units
Max data size             unlimited            unlimited            bytes
Max stack size            8388608              unlimited            bytes
Max address space         1073741824           unlimited            bytes
";
        let got = rlimits(limits);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, 1 << 30);
        assert!(got[0].source.contains("ulimit -v"));
        assert!(got[0].address_space);
        let t = mem_total("MemTotal:       24683664 kB\nMemFree: 1 kB\n").unwrap();
        assert_eq!(t.bytes, 24683664 * 1024);
        assert!(t.whole_machine);
    }

    #[test]
    fn the_default_leaves_room() {
        let limit = Budget {
            bytes: 1 << 30,
            source: "test".into(),
            whole_machine: false,
            address_space: false,
        };
        assert_eq!(
            default_cap(&limit, 24 << 20),
            ((1 << 30) - (24 << 20)) / 4 * 3
        );
        let machine = Budget {
            whole_machine: true,
            ..limit.clone()
        };
        assert_eq!(
            default_cap(&machine, 24 << 20),
            ((1 << 30) - (24 << 20)) / 2
        );
        let tiny = Budget {
            bytes: 1 << 20,
            ..limit
        };
        assert_eq!(default_cap(&tiny, 24 << 20), 1 << 20, "never below 1 MiB");
    }
}
