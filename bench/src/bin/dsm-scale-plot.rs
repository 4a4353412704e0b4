//! `dsm-scale-plot TABLE.tsv OUT.svg [TITLE]`: the scale curves of `make scale` as an SVG (see
//! `dsm_bench::scale_plot` for the table format). A bench tool, not installed.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 || args[0].starts_with('-') {
        eprintln!("usage: dsm-scale-plot TABLE.tsv OUT.svg [TITLE]");
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(&args[0]) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dsm-scale-plot: {}: {e}", args[0]);
            return ExitCode::from(2);
        }
    };
    let points = match dsm_bench::scale_plot::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("dsm-scale-plot: {}: {e}", args[0]);
            return ExitCode::from(1);
        }
    };
    let title = args.get(2).map_or("dsm beside redis: scale curves", |t| t);
    if let Err(e) = std::fs::write(&args[1], dsm_bench::scale_plot::render(&points, title)) {
        eprintln!("dsm-scale-plot: {}: {e}", args[1]);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
