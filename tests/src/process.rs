//! Child-process plumbing with a deadline on every wait: one-shot commands, ready lines read off
//! a child's stdout, and signals sent with the system `kill` command.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often a wait on a child re-checks it.
const POLL: Duration = Duration::from_millis(10);

/// Read `r` to the end on a thread of its own (so a full pipe never blocks the child).
pub fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Wait for `child` to exit until `deadline`; past it, kill it, reap it and return `None`.
pub fn wait_child(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A finished one-shot command, and how long it ran.
#[derive(Debug)]
pub struct Finished {
    pub output: Output,
    pub elapsed: Duration,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// Run `cmd` with `stdin` as its whole input; panic (after killing it) if it has not exited
/// within `timeout`.
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Finished {
    let start = Instant::now();
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut input = child.stdin.take().expect("piped");
    let stdin = stdin.to_vec();
    // A separate writer: the child may answer (and fill its stdout pipe) before reading it all.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let Some(status) = wait_child(&mut child, start + timeout) else {
        panic!("{what} did not exit within {timeout:?} (killed)");
    };
    let _ = writer.join();
    Finished {
        output: Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        },
        elapsed: start.elapsed(),
    }
}

/// Copy a child's stdout lines into `log`, and hand the first one that starts with `prefix`
/// to the returned channel.
pub fn watch_stdout(out: ChildStdout, mut log: File, prefix: &'static str) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "[stdout] {line}");
            if line.starts_with(prefix) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    rx
}

/// Wait for the ready line from [`watch_stdout`]; panic if `child` exits or `timeout` passes
/// first (killing it then).
pub fn wait_ready(
    child: &mut Child,
    ready: &Receiver<String>,
    what: &str,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match ready.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => return line,
            Err(RecvTimeoutError::Timeout) => {}
            // The stdout reader ended: the child closed stdout, most likely by exiting.
            Err(RecvTimeoutError::Disconnected) => thread::sleep(POLL),
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before printing its ready line");
        }
        if Instant::now() >= deadline {
            // Nothing owns the child yet, so nothing else would stop it.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} printed no ready line within {timeout:?} (killed)");
        }
    }
}

/// Send `signal` (a name such as `STOP`, `CONT`) to `pid` with the system `kill` command.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill -{signal} {pid}`: {e}"));
    assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
}

/// A whole number field of `dsm-client bench --json`'s one-line object (panics, naming it,
/// when the field is missing or not a count).
pub fn bench_count(json: &str, name: &str) -> u64 {
    let at = json
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    let rest = &json[at + name.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a count in {json}"))
}
