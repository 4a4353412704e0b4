//! `dsm-latency-svg` on sample inputs from real runs (tests/data: a `dsm-client bench --hist`
//! file of 2,000 WRITEs and redis-benchmark's text output for SET and GET, 2,000 each): the
//! output parses as XML, is an SVG, and has one curve path per series; a bad input is refused
//! with its file named.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn out_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(manifest: &str, dir: &Path) -> std::process::Output {
    let m = dir.join("manifest");
    std::fs::write(&m, manifest).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dsm-latency-svg"))
        .arg(&m)
        .arg(dir.join("out.svg"))
        .output()
        .unwrap()
}

#[test]
fn sample_files_make_a_well_formed_svg_with_a_path_per_series() {
    let dir = out_dir("well_formed");
    let hist = data("dsm-write-1x1.hist");
    let redis = data("redis-benchmark-set-get.txt");
    let (h, r) = (hist.display(), redis.display());
    // Three panels, five series; one series pools the same file twice.
    let manifest = format!(
        "title dsm vs redis <&> test\nnote from latplot/tests/data\ncolumns 2\n\
         panel WRITE / SET, 1x1\nseries dsm hdr {h}\nseries redis redis:SET {r}\n\
         panel READ / GET\nseries redis redis:GET {r}\nseries dsm-twice hdr {h} {h}\n\
         panel one\nseries dsm hdr {h}\n"
    );
    let out = run(&manifest, &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("out.svg")).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let series: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("path") && n.attribute("class") == Some("series"))
        .collect();
    let labels: Vec<_> = series
        .iter()
        .map(|n| n.attribute("data-label").unwrap())
        .collect();
    assert_eq!(labels, ["dsm", "redis", "redis", "dsm-twice", "dsm"]);
    for p in &series {
        let d = p.attribute("d").unwrap();
        assert!(d.starts_with('M') && d.matches('L').count() >= 4, "{d}");
    }
    let panels = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("panel"))
        .count();
    assert_eq!(panels, 3);
    // The title's markup characters arrive as text, not as markup.
    assert!(doc
        .descendants()
        .any(|n| n.text() == Some("dsm vs redis <&> test")));
    // Pooling a file with itself changes no percentile: the two legends agree but for n.
    let legend = |label: &str| -> Vec<String> {
        doc.descendants()
            .filter_map(|n| n.text())
            .filter(|t| t.starts_with(&format!("{label} p50")))
            .map(|t| t.split(" (n=").next().unwrap().replacen(label, "", 1))
            .collect()
    };
    assert_eq!(legend("dsm")[0], legend("dsm-twice")[0]);
}

#[test]
fn a_bad_input_is_refused_with_its_file_named() {
    let dir = out_dir("bad_input");
    let redis = data("redis-benchmark-set-get.txt");
    // The redis output read as HdrHistogram text.
    let out = run(
        &format!("panel p\nseries x hdr {}\n", redis.display()),
        &dir,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("redis-benchmark-set-get.txt"), "{err}");
    assert!(!dir.join("out.svg").exists());
    // A test the output does not have.
    let out = run(
        &format!("panel p\nseries x redis:LPUSH {}\n", redis.display()),
        &dir,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LPUSH"));
}
