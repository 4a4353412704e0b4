//! The master's status page (`/` with `--metrics`), opened in headless Chromium: it renders,
//! names the test cluster's slaves, masters and key counts, and a screenshot is kept at
//! `target/status-page.png`. Skipped with a message when `chromium` is not installed (`make
//! test` installs it with apt-get where it can).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dsm_tests::metrics::get;
use dsm_tests::{run, Cluster, ClusterOpts, Finished, MasterId};

/// A Chromium run may take a while to start on a loaded 2-core machine.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);

fn target() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Headless Chromium with nothing that reaches outside, a fresh profile, and `args`.
fn chromium(profile: &Path, args: &[String]) -> Option<Finished> {
    if Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "SKIPPED status page check: chromium not installed (Debian's 'chromium' \
             package; make test installs it with apt-get where it can)"
        );
        return None;
    }
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    Some(run(&mut cmd, b"", CHROMIUM_DEADLINE))
}

#[test]
fn status_page_shows_the_cluster_in_chromium() {
    let cluster = Cluster::start(ClusterOpts {
        slaves: 3,
        replicas: 2,
        backup: true,
        master_args: vec!["--metrics".into(), "127.0.0.1:0".into()],
        ..Default::default()
    });
    let mut c = cluster.client();
    for i in 0..10 {
        c.write(format!("page{i}").as_bytes(), b"v").unwrap();
        c.read(format!("page{i}").as_bytes()).unwrap();
    }
    let addr = cluster.master_metrics(MasterId::PRIMARY);
    // The page as served: one document, nothing fetched from elsewhere.
    let page = get(addr, "/").unwrap();
    assert_eq!(page.status, 200);
    for outside in ["src=", "<link", "<script", "http://", "https://"] {
        let at = page.body.find(outside);
        assert!(
            at.is_none(),
            "the page refers outside ({outside}): {}",
            page.body
        );
    }
    assert!(
        page.body.contains("http-equiv=\"refresh\""),
        "refreshes itself"
    );

    let dir = target().join("status-page");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://{addr}/");
    let Some(dom) = chromium(
        &dir.join("profile-dom"),
        &["--dump-dom".into(), url.clone()],
    ) else {
        return;
    };
    assert_eq!(
        dom.code(),
        Some(0),
        "chromium --dump-dom failed: {}",
        dom.stderr()
    );
    let html = dom.stdout();
    for id in ["s0", "s1", "s2"] {
        let row = format!("<tr class=\"slave\"><td class=\"l\">{id}</td>");
        assert!(
            html.contains(&row),
            "no row for slave {id} in the DOM:\n{html}"
        );
    }
    assert!(html.contains("Slaves: 3 live of 3"), "{html}");
    assert!(html.contains("<b id=\"role\">primary</b>"), "{html}");
    assert!(html.contains("<b id=\"keys\">10</b>"), "{html}");
    let backup = cluster.master_heartbeat(MasterId::BACKUP).to_string();
    assert!(
        html.contains(&backup),
        "the backup {backup} is not named: {html}"
    );
    assert!(
        html.contains("<td>10</td></tr>"),
        "10 writes and 10 reads since start: {html}"
    );

    let shot = target().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let png = chromium(
        &dir.join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1100,800".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    )
    .expect("chromium ran a moment ago");
    assert_eq!(
        png.code(),
        Some(0),
        "chromium --screenshot failed: {}",
        png.stderr()
    );
    let bytes = std::fs::read(&shot).unwrap_or_default();
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "no PNG at {}",
        shot.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
