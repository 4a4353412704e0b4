//! Memory limits for one process that it is not told about on its command line, as an
//! operator's container or shell would impose them: an address-space limit (`ulimit -v`), or a
//! memory cgroup of its own. Each is a wrapper for [`crate::SlaveLaunch::wrapper`] that sets
//! the limit and execs the program, so the process the cluster holds is the slave itself.
//!
//! A [`MemCgroup`] is created under the test process's own memory cgroup (cgroup v1's memory
//! controller, or v2 where the memory controller is delegated to it) and removed when dropped,
//! also when the test fails: drop it after the cluster whose processes it holds (declare it
//! first), and whatever is still inside is killed by pid first.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A wrapper that runs the program under `ulimit -v` of `bytes` (rounded down to KiB): its
/// whole address space, as `/proc/self/limits` shows it ("Max address space").
pub fn ulimit_v_wrapper(bytes: u64) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("ulimit -v {} && exec \"$0\" \"$@\"", bytes / 1024),
    ]
}

/// A memory cgroup of its own with a hard limit, removed on drop.
#[derive(Debug)]
pub struct MemCgroup {
    dir: PathBuf,
    v2: bool,
    limit: u64,
}

impl MemCgroup {
    /// Create a memory cgroup with a limit of `limit` bytes (v1 `memory.limit_in_bytes`, v2
    /// `memory.max`, no swap) under this process's own memory cgroup; `tag` goes in its name.
    /// `Err` says why it cannot be made here (not root, no memory controller, not delegated).
    pub fn create(tag: &str, limit: u64) -> Result<MemCgroup, String> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let read = |p: &str| fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"));
        let (parent, v2) =
            own_memory_cgroup(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)?;
        let name = format!(
            "dsm-test-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        if v2 {
            delegate_memory_v2(&parent)?;
        }
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on the cgroup exists: dropping it removes it.
        let cg = MemCgroup { dir, v2, limit };
        let files: &[(&str, String)] = if v2 {
            &[
                ("memory.max", limit.to_string()),
                ("memory.swap.max", "0".into()),
            ]
        } else {
            &[("memory.limit_in_bytes", limit.to_string())]
        };
        for (file, value) in files {
            let path = cg.dir.join(file);
            // v2 without swap accounting has no memory.swap.max: nothing to limit then.
            if *file == "memory.swap.max" && !path.exists() {
                continue;
            }
            fs::write(&path, value)
                .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))?;
        }
        Ok(cg)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// A wrapper that moves the program into this cgroup, then execs it.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo $$ > '{}' && exec \"$0\" \"$@\"",
                self.dir.join("cgroup.procs").display()
            ),
        ]
    }

    /// How often the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The most memory the cgroup has been charged (processes and their page cache), if the
    /// kernel says.
    pub fn peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Only processes this test started can be inside: kill any the cluster left.
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!(
                        "cannot remove the cgroup {} (processes {:?} in it): {e}",
                        self.dir.display(),
                        self.pids()
                    );
                    return;
                }
                // Busy until its last process has exited.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// The directory of this process's own memory cgroup, and whether it is cgroup v2: v1's
/// memory hierarchy if one is mounted, else v2's.
fn own_memory_cgroup(mountinfo: &str, cgroup: &str) -> Result<(PathBuf, bool), String> {
    let mut v2_dir = None;
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
        let under = |path: &str| {
            let rel = path.strip_prefix(root).unwrap_or(path).trim_matches('/');
            Path::new(mount).join(rel)
        };
        match r[0] {
            "cgroup"
                if r.get(2)
                    .is_some_and(|o| o.split(',').any(|o| o == "memory")) =>
            {
                let path = cgroup.lines().find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
                    ctrl.split(',').any(|c| c == "memory").then_some(path)
                });
                if let Some(path) = path {
                    return Ok((under(path), false));
                }
            }
            "cgroup2" => {
                if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
                    v2_dir = Some(under(path));
                }
            }
            _ => {}
        }
    }
    v2_dir.map(|d| (d, true)).ok_or_else(|| {
        "no cgroup v1 memory hierarchy and no cgroup v2 mount in /proc/self/mountinfo".into()
    })
}

/// Make sure children of `dir` (a v2 cgroup) get the memory controller.
fn delegate_memory_v2(dir: &Path) -> Result<(), String> {
    let control = dir.join("cgroup.subtree_control");
    let has = |p: &Path| {
        fs::read_to_string(p)
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "memory")
    };
    if has(&control) {
        return Ok(());
    }
    if !has(&dir.join("cgroup.controllers")) {
        return Err(format!(
            "cgroup v2's memory controller is not available in {} (not delegated to it)",
            dir.display()
        ));
    }
    fs::write(&control, "+memory").map_err(|e| {
        format!(
            "cannot enable the memory controller for the children of {} ({e}); a cgroup v2 \
             that holds processes itself cannot",
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_memory_cgroup_is_found_in_v1_and_v2() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let cgroup = "4:memory:/jobs/a\n1:cpu:/\n0::/\n";
        assert_eq!(
            own_memory_cgroup(hybrid, cgroup),
            Ok((PathBuf::from("/sys/fs/cgroup/memory/jobs/a"), false))
        );
        let unified = "50 31 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_memory_cgroup(unified, "0::/user.slice/test.scope\n"),
            Ok((PathBuf::from("/sys/fs/cgroup/user.slice/test.scope"), true))
        );
        // A cgroup namespace shows its own cgroup as the mount's root.
        let ns = "50 31 0:40 /ci/job /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_memory_cgroup(ns, "0::/ci/job\n"),
            Ok((PathBuf::from("/sys/fs/cgroup"), true))
        );
        assert!(own_memory_cgroup("", "").is_err());
    }

    #[test]
    fn the_wrappers_exec_the_program_with_its_arguments() {
        let out = Command::new("sh")
            .args(&ulimit_v_wrapper(1 << 30)[1..])
            .args([
                "sh",
                "-c",
                "grep 'Max address space' /proc/self/limits; echo \"$0\"",
                "arg",
            ])
            .output()
            .expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1073741824"), "{text}");
        assert!(text.trim_end().ends_with("arg"), "{text}");
    }
}
