//! The fuzz targets' inputs replayed on stable Rust through the same harnesses
//! (`dsm_tests::fuzzing`): every input a fuzzer found a bug with (`fuzz/regressions/TARGET/`),
//! the checked-in corpus (`fuzz/corpus-min/TARGET/`), and seeds made from a real exchange.
//! `make fuzz` runs the fuzzers themselves (nightly; see fuzz/README.md).

use std::fs;
use std::path::{Path, PathBuf};

use dsm_tests::fuzzing::{seeds::seeds, Harness, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn harness(target: &str) -> Harness {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no harness for {target}"))
        .1
}

/// Replay every file under `dir/TARGET/` for each target; the number replayed.
fn replay_dir(dir: &Path) -> usize {
    let mut n = 0;
    for (target, run) in TARGETS {
        let Ok(entries) = fs::read_dir(dir.join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let data = fs::read(&path).unwrap();
            eprintln!("{target}: {}", path.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn every_regression_input_passes() {
    let n = replay_dir(&fuzz_dir().join("regressions"));
    assert!(n > 0, "no regression inputs found under fuzz/regressions");
}

#[test]
fn the_checked_in_corpus_passes() {
    let n = replay_dir(&fuzz_dir().join("corpus-min"));
    assert!(n > 0, "no corpus found under fuzz/corpus-min");
}

#[test]
fn the_seeds_pass_and_cover_every_target() {
    let seeds = seeds();
    for (target, _) in TARGETS {
        assert!(
            seeds.iter().any(|(t, _)| t == target),
            "no seed for {target}"
        );
    }
    for (target, data) in &seeds {
        harness(target)(data);
    }
}

/// `make fuzz` calls this to put the seeds in each target's corpus before it runs.
#[test]
#[ignore = "writes files: make fuzz runs it"]
fn write_seeds() {
    let corpus = fuzz_dir().join("corpus");
    for (i, (target, data)) in seeds().iter().enumerate() {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{i:03}")), data).unwrap();
    }
}
