//! Issue 20: the command line as a new user meets it, replayed on real processes. Keys and
//! values as bytes end to end, no panic on odd input or a closed pipe, one grammar for the REPL
//! and one-shot, the interactive REPL on a pseudo-terminal, what `status` says, `--version` and
//! `--help`, and errors that name the address or file they are about.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dsm_tests::{bin, run, Cluster, ClusterOpts, MasterId, STARTUP};
use dsm_wire::ServerRole;

/// A one-shot `dsm-client` run is generously bounded: the CI machine is small and noisy.
const CLI_DEADLINE: Duration = Duration::from_secs(30);

fn cluster() -> Cluster {
    Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        ..Default::default()
    })
}

/// A scratch directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("dsm-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn assert_no_panic(what: &str, done: &dsm_tests::Finished) {
    assert!(
        !done.stderr().contains("panicked") && done.code() != Some(101),
        "{what} panicked: {done:?}"
    );
}

// Items 1, 4 and 7: keys and values are bytes, from arguments, files and stdin alike, printed
// raw into a pipe and quoted on request; NOT_FOUND never looks like a value.
#[test]
fn keys_and_values_are_bytes_end_to_end() {
    let cluster = cluster();
    let client = || cluster.client_command();
    let mut lib = cluster.client();

    let done = run(
        client().args([os(b"write"), os(b"bin"), os(b"\xff\xfe\x01")]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(
        (done.code(), done.stdout().as_str()),
        (Some(0), "OK\n"),
        "{done:?}"
    );
    let done = run(client().args(["read", "bin"]), b"", CLI_DEADLINE);
    assert_eq!(
        done.output.stdout, b"\xff\xfe\x01",
        "raw output is the bytes exactly"
    );
    let done = run(
        client().args(["--quoted", "read", "bin"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.stdout(), "\"\\xff\\xfe\\x01\"\n");

    let done = run(
        client().args([os(b"write"), os(b"latin1"), os(b"caf\xe9")]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert_eq!(
        lib.read(b"latin1").unwrap().as_deref(),
        Some(&b"caf\xe9"[..])
    );
    let done = run(client().args([os(b"read"), os(b"\xff")]), b"", CLI_DEADLINE);
    assert_eq!(
        (done.code(), done.stdout().as_str(), done.stderr().trim()),
        (Some(1), "", "NOT_FOUND"),
        "a missing non-UTF-8 key: {done:?}"
    );

    // A value "NOT_FOUND" and a missing key differ in every style.
    lib.write(b"nf", b"NOT_FOUND").unwrap();
    let done = run(client().args(["read", "nf"]), b"", CLI_DEADLINE);
    assert_eq!(
        (done.code(), done.stdout().as_str()),
        (Some(0), "NOT_FOUND")
    );
    let done = run(client().args(["--quoted", "read", "nf"]), b"", CLI_DEADLINE);
    assert_eq!(
        (done.code(), done.stdout().as_str()),
        (Some(0), "\"NOT_FOUND\"\n")
    );
    let done = run(
        client().args(["--quoted", "read", "none"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(
        (done.code(), done.stdout().as_str()),
        (Some(1), "NOT_FOUND\n")
    );
    // A value with a newline is one line when quoted.
    lib.write(b"nl", b"two\nlines").unwrap();
    let done = run(client().args(["--quoted", "read", "nl"]), b"", CLI_DEADLINE);
    assert_eq!(done.stdout(), "\"two\\nlines\"\n");

    // --value-file: 131,072 bytes (too many for an argument list) and every byte value; '-'
    // reads stdin; a missing file is named.
    let scratch = Scratch::new("bytes");
    let big: Vec<u8> = (0..131_072u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(scratch.path("big"), &big).unwrap();
    let done = run(
        client()
            .args(["write", "big", "--value-file"])
            .arg(scratch.path("big")),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert_eq!(lib.read(b"big").unwrap(), Some(big.clone()));
    let done = run(client().args(["read", "big"]), b"", CLI_DEADLINE);
    assert!(done.output.stdout == big, "read big gave other bytes");
    let all: Vec<u8> = (0..=255u8).cycle().take(600_000).collect();
    let done = run(
        client().args(["write", "all", "--value-file", "-"]),
        &all,
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert!(
        lib.read(b"all").unwrap() == Some(all),
        "stdin value differs"
    );
    let missing = scratch.path("no-such-file");
    let done = run(
        client().args(["write", "k", "--value-file"]).arg(&missing),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(
        done.stderr().contains(&missing.display().to_string()),
        "the error names the file: {}",
        done.stderr()
    );
    let done = run(
        client()
            .args(["write", "k", "--value-file"])
            .arg(&scratch.0),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(
        done.stderr().contains(&scratch.0.display().to_string()),
        "{done:?}"
    );

    // A piped REPL with lines that are not UTF-8 reads on to the end.
    let done = run(
        &mut client(),
        b"WRITE \xff\xfe caf\xe9\nREAD \xff\xfe\nWRITE after ok\nREAD after\n",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert_eq!(done.output.stdout, b"OK\ncaf\xe9\nOK\nok\n");
    assert_no_panic("REPL with non-UTF-8 lines", &done);
}

// Item 2: a reader that goes away ends the client quietly, with the status it had earned.
#[test]
fn a_closed_pipe_ends_quietly() {
    let cluster = cluster();
    let mut lib = cluster.client();
    lib.write(b"big", &vec![b'x'; 1_000_000]).unwrap();
    let client = bin("dsm-client").display().to_string();
    let master = cluster.master_addr().to_string();
    for (what, input) in [
        ("read big | head -c 3", "read big"),
        ("a piped REPL | head -c 3", ""),
    ] {
        let script = format!(
            "set -o pipefail; {input_pipe}'{client}' --master {master} {input} | head -c 3 >/dev/null",
            input_pipe = if input.is_empty() {
                "printf 'READ big\\nREAD big\\nREAD big\\n' | "
            } else {
                ""
            }
        );
        let done = run(
            Command::new("bash").args(["-c", &script]),
            b"",
            CLI_DEADLINE,
        );
        assert_eq!(done.code(), Some(0), "{what}: {done:?}");
        assert_eq!(done.stderr(), "", "{what} said something on stderr");
    }
}

// Item 3: a value over the master's limit is TOO_LARGE however large, and the REPL goes on.
#[test]
fn oversize_values_are_too_large_through_the_piped_repl() {
    let cluster = cluster();
    let mut input = b"WRITE big ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2_000_000));
    input.extend_from_slice(b"\nWRITE big2 ");
    input.extend(std::iter::repeat_n(b'y', 1024 * 1024 + 1));
    input.extend_from_slice(b"\nWRITE small fine\nREAD small\n");
    let done = run(&mut cluster.client_command(), &input, CLI_DEADLINE);
    assert_eq!(done.code(), Some(1), "{done:?}");
    assert_eq!(done.stdout(), "OK\nfine\n");
    let errors: Vec<_> = done.stderr().lines().map(String::from).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.starts_with("ERROR TOO_LARGE") && e.contains(&cluster.master_addr().to_string()),
            "{e}"
        );
    }
}

// Item 5: a refused connection fails at once (well inside a 60 s --timeout-ms: the run's
// deadline would end the test otherwise), naming the address.
#[test]
fn refused_connections_fail_fast_and_name_the_address() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let done = run(
        Command::new(bin("dsm-client")).args([
            "--master",
            &addr,
            "--timeout-ms",
            "60000",
            "read",
            "a",
        ]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(
        done.stderr().contains(&addr) && done.stderr().contains("refused"),
        "{}",
        done.stderr()
    );
}

// Items 6 and 8: the REPL and one-shot agree on commands, output and exit statuses; options
// after the command are options, '--' ends them.
#[test]
fn one_grammar_for_the_repl_and_one_shot() {
    let cluster = cluster();
    let client = || cluster.client_command();
    let mut lib = cluster.client();

    // WRITE without a value: a usage error in both, nothing stored.
    let done = run(&mut client(), b"WRITE onlykey\n", CLI_DEADLINE);
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(done.stderr().starts_with("ERROR usage: WRITE"), "{done:?}");
    assert_eq!(done.stdout(), "");
    let done = run(client().args(["write", "onlykey"]), b"", CLI_DEADLINE);
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert_eq!(lib.read(b"onlykey").unwrap(), None);

    // Quoting in the REPL; an unquoted value is the rest of the line.
    let done = run(
        &mut client(),
        b"write \"quoted key\" a value  with spaces \nread 'quoted key'\nWRITE k \"x\\ny\"\n",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert_eq!(
        lib.read(b"quoted key").unwrap().as_deref(),
        Some(&b"a value  with spaces "[..])
    );
    assert_eq!(lib.read(b"k").unwrap().as_deref(), Some(&b"x\ny"[..]));

    // STATUS: the same text either way.
    let repl = run(&mut client(), b"STATUS\n", CLI_DEADLINE);
    let one = run(client().arg("status"), b"", CLI_DEADLINE);
    let head = |s: &str| s.lines().take(3).collect::<Vec<_>>().join("\n");
    assert_eq!(head(&repl.stdout()), head(&one.stdout()));
    assert!(one.stdout().starts_with("master "), "{one:?}");

    // Exit statuses: 0 when all went well, 1 with a NOT_FOUND, 2 with a usage error; ERROR
    // lines on stderr.
    assert_eq!(
        run(&mut client(), b"WRITE a 1\nREAD a\n", CLI_DEADLINE).code(),
        Some(0)
    );
    let done = run(&mut client(), b"READ nothing\nREAD a\n", CLI_DEADLINE);
    assert_eq!(
        (done.code(), done.stdout().as_str()),
        (Some(1), "1\n"),
        "{done:?}"
    );
    let done = run(
        &mut client(),
        b"READ a b\nREAD nothing\nREAD a\n",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(done.stderr().starts_with("ERROR usage: READ"), "{done:?}");

    // An option after the command is the option, not the value.
    let done = run(
        client().args(["write", "a", "--secret-file", "/nonexistent/secret"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(done.stderr().contains("/nonexistent/secret"), "{done:?}");
    assert_eq!(lib.read(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    // '--' ends the options for write and read alike.
    let done = run(
        client().args(["write", "--", "-k", "-v"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert_eq!(lib.read(b"-k").unwrap().as_deref(), Some(&b"-v"[..]));
    assert_eq!(lib.read(b"--").unwrap(), None);
    let done = run(client().args(["read", "--", "-k"]), b"", CLI_DEADLINE);
    assert_eq!(
        (done.code(), done.stdout().as_str()),
        (Some(0), "-v"),
        "{done:?}"
    );
    let done = run(client().args(["write", "t", "-5"]), b"", CLI_DEADLINE);
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(done.stderr().contains("'--'"), "the hint: {done:?}");
}

/// Everything a child writes to its pseudo-terminal, gathered by a thread.
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn watch(mut from: impl Read + Send + 'static) -> Screen {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Screen(seen)
    }

    fn count(&self, needle: &str) -> usize {
        let seen = self.0.lock().unwrap();
        let text = String::from_utf8_lossy(&seen);
        text.matches(needle).count()
    }

    /// Wait until `needle` has appeared `n` times.
    fn wait_for(&self, needle: &str, n: usize) {
        self.wait_for_within(needle, n, STARTUP)
    }

    fn wait_for_within(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(needle) < n {
            if Instant::now() > deadline {
                let seen = self.0.lock().unwrap();
                panic!(
                    "the terminal never showed {needle:?} {n} times:\n{}",
                    String::from_utf8_lossy(&seen)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

// Item 9: on a terminal (a pseudo-terminal from util-linux `script`), line editing, history
// and completion of command names; a long paste arrives whole.
#[test]
fn the_interactive_repl_edits_lines_and_keeps_history() {
    let cluster = cluster();
    let scratch = Scratch::new("tty");
    let history = scratch.path("history");
    let command = format!(
        "'{}' --master {}",
        bin("dsm-client").display(),
        cluster.master_addr()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("DSM_HISTORY", &history)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run util-linux script (a pseudo-terminal)");
    let screen = Screen::watch(child.stdout.take().unwrap());
    let mut keys = child.stdin.take().unwrap();
    let mut type_line = |text: &[u8], answer: &str, n: usize| {
        keys.write_all(text).unwrap();
        keys.flush().unwrap();
        screen.wait_for(answer, n);
    };
    let prompt = format!("dsm {}> ", cluster.master_addr());
    screen.wait_for(&prompt, 1);
    // Left arrow moves the cursor: X goes before the c.
    type_line(b"WRITE k abc\x1b[DX\r", "OK", 1);
    // 6,000 characters pasted at once (past the 4,096 a cooked terminal line holds).
    let mut paste = b"WRITE paste ".to_vec();
    paste.extend(std::iter::repeat_n(b'p', 6000));
    paste.push(b'\r');
    type_line(&paste, "OK", 2);
    // Tab completes the command name.
    type_line(b"wri\tc done\r", "OK", 3);
    // Up recalls the last line, which is edited.
    type_line(b"\x1b[A\x7f\x7f\x7f\x7fagain\r", "OK", 4);
    type_line(b"READ k\r", "\"abXc\"", 1);
    keys.write_all(b"QUIT\r").unwrap();
    keys.flush().unwrap();
    let status = dsm_tests::process::wait_child(&mut child, Instant::now() + CLI_DEADLINE)
        .expect("the REPL ends at QUIT");
    assert!(status.success(), "{status:?}");

    let mut lib = cluster.client();
    assert_eq!(lib.read(b"k").unwrap().as_deref(), Some(&b"abXc"[..]));
    assert_eq!(lib.read(b"paste").unwrap(), Some(vec![b'p'; 6000]));
    assert_eq!(lib.read(b"c").unwrap().as_deref(), Some(&b"again"[..]));
    let kept = std::fs::read_to_string(&history).expect("the history file");
    assert!(
        kept.contains("WRITE k abXc") && kept.contains("write c again"),
        "{kept}"
    );
}

// Item 10: status names the master that answered, its role, the primary, the backup, and
// shows absent slaves apart from live ones; on the backup too, and after a failover.
#[test]
fn status_says_who_answered_where_the_primary_is_and_the_backup() {
    // Three slaves: with one of them and the primary killed, the backup and the other two are
    // still a majority of the five voters, and elect it.
    let mut cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        ..Default::default()
    });
    let primary = cluster.master_listen(MasterId::PRIMARY).to_string();
    let backup = cluster.master_listen(MasterId::BACKUP).to_string();
    let status_of = |addr: &str| {
        let done = run(
            Command::new(bin("dsm-client")).args(["--master", addr, "status"]),
            b"",
            CLI_DEADLINE,
        );
        assert_eq!(done.code(), Some(0), "{done:?}");
        done.stdout()
    };

    let text = status_of(&primary);
    assert!(
        text.starts_with(&format!("master {primary}: role primary, epoch 1\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("primary: {primary} (this master)\n")),
        "{text}"
    );
    assert!(text.contains("backup: attached, in step\n"), "{text}");
    assert!(text.contains("live slaves (3):"), "{text}");

    // The backup learns the primary's client address over the heartbeat link.
    dsm_tests::wait_until(STARTUP, "the backup to name the primary", || {
        status_of(&backup).contains(&format!("primary: {primary}\n"))
    });
    let text = status_of(&backup);
    assert!(
        text.starts_with(&format!("master {backup}: role backup")),
        "{text}"
    );
    assert!(
        text.contains("backup: this master; in step with the primary"),
        "{text}"
    );
    assert!(
        text.contains("under-replicated 0 (as the primary has its slaves)")
            && text.contains("slaves in service at the primary (3;"),
        "a backup reports the primary's slaves as the primary has them: {text}"
    );

    cluster.kill_slave(1);
    cluster.wait_slave_live(1, false, STARTUP);
    let text = status_of(&primary);
    let live = text.find("live slaves (2):").expect(&text);
    let absent = text.find("absent slaves (1;").expect(&text);
    assert!(live < absent && text[absent..].contains("s1"), "{text}");
    let done = run(
        Command::new(bin("dsm-client")).args(["--master", &primary, "status", "--json"]),
        b"",
        CLI_DEADLINE,
    );
    let json = done.stdout();
    assert!(
        json.contains(&format!("\"addr\":\"{primary}\""))
            && json.contains("\"backup\":\"in_step\"")
            && json.contains("\"live\":false"),
        "{json}"
    );

    cluster.kill_primary();
    cluster.wait_role(MasterId::BACKUP, ServerRole::Primary, STARTUP);
    let text = status_of(&backup);
    assert!(
        text.starts_with(&format!("master {backup}: role primary, epoch 2")),
        "{text}"
    );
    assert!(text.contains("backup: none attached"), "{text}");
}

// Item 11: --version on every binary; --help complete, once, and in line with the README.
#[test]
fn every_binary_has_version_and_a_complete_help() {
    for name in ["dsm-master", "dsm-slave", "dsm-client", "dsm-torture"] {
        let done = run(Command::new(bin(name)).arg("--version"), b"", CLI_DEADLINE);
        assert_eq!(done.code(), Some(0), "{name} --version: {done:?}");
        assert!(done.stdout().starts_with(&format!("{name} ")), "{done:?}");
        let done = run(Command::new(bin(name)).arg("--help"), b"", CLI_DEADLINE);
        assert_eq!(done.code(), Some(0), "{name} --help: {done:?}");
        let help = done.stdout();
        let headings = help.lines().filter(|l| l.trim() == "Options:").count();
        assert_eq!(headings, 1, "{name} --help:\n{help}");
        assert!(help.contains("--version"), "{name} --help:\n{help}");
        // A closed pipe is no error.
        let done = run(
            Command::new("bash").args([
                "-c",
                &format!(
                    "set -o pipefail; '{}' --help | head -c 1 >/dev/null",
                    bin(name).display()
                ),
            ]),
            b"",
            CLI_DEADLINE,
        );
        assert_eq!(
            (done.code(), done.stderr().as_str()),
            (Some(0), ""),
            "{name}"
        );
    }
    let done = run(
        Command::new(bin("dsm-client")).args(["bench", "--version"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "dsm-client bench --version: {done:?}");
    assert!(done.stdout().starts_with("dsm-client bench "), "{done:?}");
    let help = run(
        Command::new(bin("dsm-client")).arg("--help"),
        b"",
        CLI_DEADLINE,
    )
    .stdout();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for word in [
        "write KEY VALUE",
        "--value-file",
        "read KEY",
        "status",
        "ping",
        "forget-slave",
        "bench",
        "STATUS",
        "HELP",
        "QUIT",
        "--raw",
        "--quoted",
        "--json",
        "--secret-file",
        "--timeout-ms",
    ] {
        assert!(
            help.contains(word),
            "dsm-client --help does not name {word}:\n{help}"
        );
        assert!(readme.contains(word), "README does not name {word}");
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Four ports the OS had free a moment ago.
fn free_ports() -> Vec<String> {
    let held: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

// Item 12: make run-cluster on a terminal, with a secret: clients need it; Ctrl-C (twice)
// stops every process, removes the temporary log folder, and make exits 0.
#[test]
fn run_cluster_requires_the_secret_and_stops_cleanly_on_ctrl_c() {
    let scratch = Scratch::new("run-cluster");
    let secret = scratch.path("secret");
    std::fs::write(&secret, "a secret of more than sixteen bytes\n").unwrap();
    let mut perms = std::fs::metadata(&secret).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&secret, perms).unwrap();
    let ports = free_ports();
    let debug = bin("dsm-master").parent().unwrap().to_path_buf();
    let tmp = scratch.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // `-o build`: the debug binaries, as they are; the rest is what `make run-cluster` runs.
    let make = format!(
        "make -s -C '{}' -o build run-cluster RELEASE='{}'; echo make-status=$?",
        repo().display(),
        debug.display()
    );
    let mut child = Command::new("script")
        .args(["-qfc", &make, "/dev/null"])
        .env("TERM", "xterm")
        .env("TMPDIR", &tmp)
        .env("DSM_LISTEN", &ports[0])
        .env("DSM_HEARTBEAT", &ports[1])
        .env("DSM_BACKUP", &ports[2])
        .env("DSM_BACKUP_HEARTBEAT", &ports[3])
        .env("DSM_SLAVES", "2")
        .env("DSM_DATA", scratch.path("data"))
        .env("DSM_SECRET_FILE", &secret)
        .env("DSM_MASTER_ARGS", "--discover-ms 0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run util-linux script (a pseudo-terminal)");
    let screen = Screen::watch(child.stdout.take().unwrap());
    let mut keys = child.stdin.take().unwrap();
    // The script waits up to 60 s for the primary to serve; so does this.
    screen.wait_for_within("Ctrl-C stops the cluster", 1, Duration::from_secs(70));

    let masters = format!("{},{}", ports[0], ports[2]);
    let done = run(
        Command::new(bin("dsm-client")).args(["--master", &masters, "write", "k", "v"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "without the secret: {done:?}");
    assert!(
        done.stderr().contains("UNAUTHORIZED")
            && done
                .stderr()
                .contains(&format!("(masters {}, {})", ports[0], ports[2])),
        "the refusal names both masters: {done:?}"
    );
    let done = run(
        Command::new(bin("dsm-client"))
            .args(["--master", &masters, "--secret-file"])
            .arg(&secret)
            .args(["write", "k", "v"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(0), "with the secret: {done:?}");

    keys.write_all(b"\x03").unwrap();
    keys.flush().unwrap();
    thread::sleep(Duration::from_millis(100));
    let _ = keys.write_all(b"\x03");
    let _ = keys.flush();
    screen.wait_for("make-status=", 1);
    assert_eq!(screen.count("make-status=0"), 1, "make's exit status");
    assert_eq!(screen.count("cluster stopped"), 1);
    let _ = dsm_tests::process::wait_child(&mut child, Instant::now() + CLI_DEADLINE);
    // Every process is gone: nothing answers on the cluster's ports.
    for addr in &ports {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "something still listens on {addr}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(
        left.is_empty(),
        "the temporary log folder is left: {left:?}"
    );
    assert!(scratch.path("data/slave-1").is_dir(), "the data is kept");
}

// Item 13: make install puts the binaries on a PATH; README names no file a clone lacks, and
// its bare `dsm-...` commands come after it says how to get them on PATH.
#[test]
fn make_install_and_readme_commands_work_from_a_clone() {
    let scratch = Scratch::new("install");
    let debug = bin("dsm-master").parent().unwrap().to_path_buf();
    let done = run(
        Command::new("make")
            .args(["-s", "-C"])
            .arg(repo())
            .args(["-o", "build", "install"])
            .arg(format!("PREFIX={}", scratch.path("prefix").display()))
            .arg(format!("RELEASE={}", debug.display())),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(done.code(), Some(0), "{done:?}");
    for name in ["dsm-master", "dsm-slave", "dsm-client", "dsm-torture"] {
        let installed = scratch.path("prefix/bin").join(name);
        let v = run(Command::new(&installed).arg("--version"), b"", CLI_DEADLINE);
        assert_eq!(v.code(), Some(0), "{}: {v:?}", installed.display());
    }

    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        !readme.contains("../shared"),
        "README points outside the repository"
    );

    // Item 12: every variable run-cluster reads is in make help and the README, and make
    // help says a backup is started.
    let script = std::fs::read_to_string(repo().join("scripts/run-cluster.sh")).unwrap();
    let help = run(
        Command::new("make")
            .args(["-s", "-C"])
            .arg(repo())
            .arg("help"),
        b"",
        CLI_DEADLINE,
    )
    .stdout();
    assert!(help.contains("a backup master"), "{help}");
    let vars: std::collections::BTreeSet<&str> = script
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("DSM_") && w.len() > 4)
        .collect();
    assert!(vars.len() >= 10, "{vars:?}");
    for v in vars {
        assert!(help.contains(v), "make help does not name {v}:\n{help}");
        assert!(readme.contains(v), "README does not name {v}");
    }
    let install = readme
        .find("make install")
        .expect("README says make install");
    let bare = readme
        .lines()
        .scan(0, |at, l| {
            let here = *at;
            *at += l.len() + 1;
            Some((here, l))
        })
        .filter(|(_, l)| {
            let l = l.trim_start();
            ["dsm-master ", "dsm-slave ", "dsm-client "]
                .iter()
                .any(|b| l.starts_with(b))
        })
        .map(|(at, _)| at)
        .min();
    if let Some(first) = bare {
        assert!(
            install < first,
            "README runs a bare dsm-... before it says make install"
        );
    }
}

// Item 14: errors name the address and the flag; flags are checked as --help says.
#[test]
fn master_errors_name_the_address_and_flags_match_help() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for flag in ["--listen", "--heartbeat"] {
        let other = if flag == "--listen" {
            "--heartbeat"
        } else {
            "--listen"
        };
        let done = run(
            Command::new(bin("dsm-master")).args([flag, &addr, other, "127.0.0.1:0"]),
            b"",
            CLI_DEADLINE,
        );
        assert_eq!(done.code(), Some(1), "{done:?}");
        assert!(
            done.stderr()
                .contains(&format!("cannot listen on {addr} ({flag})")),
            "{}",
            done.stderr()
        );
    }
    let help = run(
        Command::new(bin("dsm-master")).arg("--help"),
        b"",
        CLI_DEADLINE,
    )
    .stdout();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("intervals, at least 3 (default 3)"), "{help}");
    let done = run(
        Command::new(bin("dsm-master")).args(["--heartbeat-misses", "2"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert!(done.stderr().contains("--heartbeat-misses"), "{done:?}");
    // An argument that is not UTF-8 is a usage error, not a panic.
    let done = run(
        Command::new(bin("dsm-slave")).arg(os(b"--id=\xff")),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(done.code(), Some(2), "{done:?}");
    assert_no_panic("dsm-slave with a non-UTF-8 argument", &done);
}
