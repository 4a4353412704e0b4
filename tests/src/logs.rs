//! Where each test's process logs go (a fresh directory named after the test), and the end
//! of each shown when a test fails.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory for one test's logs, named after the test (libtest names the thread).
pub(crate) fn new_dir() -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test").replace("::", "-");
    let dir = std::env::temp_dir().join("dsm-tests").join(format!(
        "{test}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// On failure: where the logs are, and the end of each.
pub(crate) fn print_tails(dir: &Path) {
    eprintln!("cluster logs kept in {}", dir.display());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(f) = File::open(&path) else { continue };
        let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        eprintln!("--- last {} lines of {} ---", tail.len(), path.display());
        for l in tail {
            eprintln!("{l}");
        }
    }
}
