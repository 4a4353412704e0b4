//! Issue 19 from the command line, as a new user meets it: `dsm-client` one-shot `delete`,
//! `read --version`, `write --if-version`, `delete --if-version`, `incr`, `scan [--prefix]`,
//! and the piped REPL's DELETE, VREAD, CAS, INCR and SCAN, with their exit statuses.

use std::time::Duration;

use dsm_tests::{run, Cluster, ClusterOpts};

const CLI_DEADLINE: Duration = Duration::from_secs(30);

fn version_of(line: &str) -> u64 {
    let word = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no version in {line:?}"));
    word.parse()
        .unwrap_or_else(|_| panic!("'{word}' is not a version"))
}

#[test]
fn one_shot_commands_delete_version_cas_incr_and_scan() {
    let cluster = Cluster::start(ClusterOpts {
        slaves: 2,
        replicas: 2,
        ..Default::default()
    });
    let client = || cluster.client_command();
    let ok = |args: &[&str]| {
        let done = run(client().args(args), b"", CLI_DEADLINE);
        assert_eq!(done.code(), Some(0), "{args:?}: {done:?}");
        done.stdout()
    };
    ok(&["write", "k", "hello", "world"]);
    let line = ok(&["read", "--version", "k"]);
    let v1 = line
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(line, format!("{v1} hello world\n"));

    // CAS: a win prints OK and the new version; a loss is exit 1 with the current version.
    let v2 = version_of(&ok(&[
        "write",
        "--if-version",
        &v1.to_string(),
        "k",
        "second",
    ]));
    assert!(v2 > v1);
    let lost = run(
        client().args(["write", "--if-version", &v1.to_string(), "k", "third"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(lost.code(), Some(1), "{lost:?}");
    assert!(
        lost.stderr()
            .contains(&format!("CONFLICT: current version {v2}")),
        "{lost:?}"
    );
    assert_eq!(ok(&["read", "k"]), "second");

    // DELETE, conditional and not; then READ is NOT_FOUND (exit 1), as is a second DELETE.
    let refused = run(
        client().args(["delete", "--if-version", &v1.to_string(), "k"]),
        b"",
        CLI_DEADLINE,
    );
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    let tomb = version_of(&ok(&["delete", "--if-version", &v2.to_string(), "k"]));
    assert!(tomb > v2);
    for args in [
        &["read", "k"][..],
        &["read", "--version", "k"],
        &["delete", "k"],
    ] {
        let done = run(client().args(args), b"", CLI_DEADLINE);
        assert_eq!(done.code(), Some(1), "{args:?}: {done:?}");
        assert!(done.stderr().contains("NOT_FOUND"), "{args:?}: {done:?}");
    }
    // Only if absent.
    ok(&["write", "--if-version", "0", "k", "back"]);

    // INCR: a missing key counts as 0; a text value is an error (exit 1).
    assert_eq!(ok(&["incr", "hits"]), "1\n");
    assert_eq!(ok(&["incr", "hits", "41"]), "42\n");
    assert_eq!(ok(&["incr", "hits", "-2"]), "40\n");
    let bad = run(client().args(["incr", "k"]), b"", CLI_DEADLINE);
    assert_eq!(bad.code(), Some(1), "{bad:?}");
    assert!(bad.stderr().contains("NOT_AN_INTEGER"), "{bad:?}");
    let usage = run(client().args(["incr", "hits", "many"]), b"", CLI_DEADLINE);
    assert_eq!(usage.code(), Some(2), "{usage:?}");

    // SCAN: one key per line.
    for i in 0..5 {
        ok(&["write", &format!("user:{i}"), "x"]);
    }
    ok(&["delete", "user:3"]);
    let mut listed: Vec<String> = ok(&["scan", "--prefix", "user:"])
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(listed, ["user:0", "user:1", "user:2", "user:4"]);
    let all = ok(&["scan"]);
    for key in ["k", "hits", "user:0"] {
        assert!(all.lines().any(|l| l == key), "{key} not in {all:?}");
    }

    // The piped REPL: the same commands, one a line.
    let done = run(
        &mut client(),
        b"DELETE user:0\nVREAD user:0\nCAS c 0 first\nINCR n 5\nINCR n\nSCAN user:\nVREAD c\n",
        CLI_DEADLINE,
    );
    // VREAD of the deleted key is a NOT_FOUND: exit 1, the other lines answered.
    assert_eq!(done.code(), Some(1), "{done:?}");
    let out = done.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("OK "), "{done:?}");
    assert!(lines[1].starts_with("OK "), "{done:?}");
    let cas = version_of(lines[1]);
    assert_eq!(&lines[2..4], ["5", "6"], "{done:?}");
    let mut scanned: Vec<&str> = lines[4..7].to_vec();
    scanned.sort();
    assert_eq!(scanned, ["user:1", "user:2", "user:4"], "{done:?}");
    assert_eq!(lines[7], format!("{cas} first"), "{done:?}");
    assert!(done.stderr().contains("NOT_FOUND"), "{done:?}");
    let conflict = run(&mut client(), b"CAS c 0 again\n", CLI_DEADLINE);
    assert_eq!(conflict.code(), Some(1), "{conflict:?}");
    assert!(
        conflict
            .stderr()
            .contains(&format!("CONFLICT: current version {cas}")),
        "{conflict:?}"
    );
}
