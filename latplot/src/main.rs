//! `dsm-latency-svg MANIFEST OUT.svg`: read the manifest (see `dsm_latplot::manifest`), read
//! and pool every series' files, write the SVG. Exit 1 with the reason on a bad input.

use std::process::ExitCode;

use dsm_latplot::dist::Dist;
use dsm_latplot::manifest::{self, Format};
use dsm_latplot::svg;

const USAGE: &str = "usage: dsm-latency-svg MANIFEST OUT.svg

Draws latency percentile distributions (dsm-client bench --hist files, redis-benchmark text
output) as one SVG, a panel per manifest 'panel', a curve per 'series'. scripts/bench.sh
writes the manifest; its format is in latplot/src/manifest.rs.";

fn run(manifest_path: &str, out: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|e| format!("cannot read {manifest_path}: {e}"))?;
    let m = manifest::parse(&text)?;
    let mut dists = Vec::with_capacity(m.panels.len());
    for panel in &m.panels {
        let mut pooled = Vec::with_capacity(panel.series.len());
        for series in &panel.series {
            let mut runs = Vec::with_capacity(series.files.len());
            for f in &series.files {
                let body = std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                let d = match &series.format {
                    Format::Hdr => Dist::from_hdr(&body),
                    Format::Redis(test) => Dist::from_redis_benchmark(&body, test),
                };
                runs.push(d.map_err(|e| format!("{}: {e}", f.display()))?);
            }
            pooled.push(Dist::pool(&runs));
        }
        dists.push(pooled);
    }
    std::fs::write(out, svg::render(&m, &dists)).map_err(|e| format!("cannot write {out}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [h] if h == "-h" || h == "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        [manifest, out] => match run(manifest, out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dsm-latency-svg: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
