//! Where the dsm binaries live, and building them once per test process so tests never run a
//! stale or missing binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binaries the process-level tests start.
pub const BINARIES: [&str; 3] = ["dsm-master", "dsm-slave", "dsm-client"];

/// A cold debug build on a 2-core CI machine fits in this with room to spare.
const BUILD_DEADLINE: Duration = Duration::from_secs(600);

/// The directory cargo puts the binaries in: `$DSM_BIN_DIR` when set, otherwise the profile
/// directory of the running program (`target/debug/deps/basic-…` → `target/debug` for a test,
/// `target/release/dsm-torture` → `target/release` for a binary beside the others).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DSM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("a program knows its own path");
    let dir = exe
        .parent()
        .unwrap_or_else(|| panic!("{} has no parent directory", exe.display()));
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// The path of `name` (one of [`BINARIES`]), built up to date first.
///
/// `cargo test -p dsm-tests` builds only this package's dependencies as libraries, so the
/// binaries could be missing; the first call in each test process then runs `cargo build
/// --bins` for the three crates. `make test` builds them first, so they are never stale there.
/// Set `DSM_TEST_NO_BUILD=1` to use whatever is in [`bin_dir`] as is.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = bin_dir();
    if let Err(e) = BUILT.get_or_init(|| build(&dir)) {
        panic!("{e}");
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} does not exist after building",
        path.display()
    );
    path
}

fn build(dir: &Path) -> Result<(), String> {
    let missing: Vec<&str> = BINARIES
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    // `make test` builds the binaries before the tests. Building here as well, from inside
    // `cargo test`, rebuilds library crates under the doctests' feet (E0460), so only a
    // missing binary is built.
    if missing.is_empty() {
        return Ok(());
    }
    if std::env::var_os("DSM_TEST_NO_BUILD").is_some() {
        return match missing.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "DSM_TEST_NO_BUILD is set but {missing:?} are missing from {}",
                dir.display()
            )),
        };
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root).args(["build", "--bins", "--quiet"]);
    for b in BINARIES {
        cmd.args(["-p", b]);
    }
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let what = format!("`{cargo} build --bins` in {}", root.display());
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stderr = crate::process::drain(child.stderr.take().expect("piped"));
    let status = crate::process::wait_child(&mut child, Instant::now() + BUILD_DEADLINE)
        .ok_or_else(|| format!("{what} did not finish within {BUILD_DEADLINE:?}"))?;
    let output = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{what} failed ({status}):\n{}",
            String::from_utf8_lossy(&output)
        ));
    }
    Ok(())
}
