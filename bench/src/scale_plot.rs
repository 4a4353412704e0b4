//! The scale curves of `make scale` as one SVG, written by hand (no plotting crate): a panel per
//! sweep (connections, value size, key count) and metric (ops/s, p99), log scales on both
//! axes, a line per system and op. Pure: table text in, SVG text out.
//!
//! Input, one point per line, tab-separated (what `scripts/scale.sh` writes):
//! `sweep x series ops_per_sec p99_us errors`, with `sweep` one of `connections`, `value`,
//! `keys`; `series` such as `dsm WRITE` or `redis GET`; `-` for a metric a failed run lacks.
//! Lines starting with `#` are comments.

use std::fmt::Write as _;

/// One measured point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub sweep: String,
    pub x: f64,
    pub series: String,
    pub ops: Option<f64>,
    pub p99_us: Option<f64>,
    pub errors: u64,
}

/// The points of `text`, or the first line that is not one.
pub fn parse(text: &str) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if f.len() != 6 {
            return Err(bad("expected 6 tab-separated fields"));
        }
        let num = |s: &str| -> Result<Option<f64>, String> {
            match s {
                "-" => Ok(None),
                s => s
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(Some)
                    .ok_or_else(|| bad("not a positive number or '-'")),
            }
        };
        points.push(Point {
            sweep: f[0].to_string(),
            x: num(f[1])?.ok_or_else(|| bad("x missing"))?,
            series: f[2].to_string(),
            ops: num(f[3])?,
            p99_us: num(f[4])?,
            errors: f[5].parse().map_err(|_| bad("errors not a count"))?,
        });
    }
    Ok(points)
}

/// The sweeps in panel order, with their axis titles.
const SWEEPS: [(&str, &str); 3] = [
    ("connections", "connections (1 request in flight each)"),
    ("value", "value size (4 connections x 8 in flight)"),
    ("keys", "keys stored (4 x 32; 64-byte values)"),
];
const METRICS: [&str; 2] = ["ops/s", "p99 latency (µs)"];

const PANEL_W: f64 = 360.0;
const PANEL_H: f64 = 240.0;
const MARGIN_L: f64 = 70.0;
const MARGIN_T: f64 = 60.0;
const GAP_X: f64 = 90.0;
const GAP_Y: f64 = 80.0;

/// Colour and dash of a series: write/SET blue, read/GET green; redis dashed.
fn style(series: &str) -> (&'static str, &'static str) {
    let colour = if series.contains("WRITE") || series.contains("SET") {
        "#1f77b4"
    } else if series.contains("READ") || series.contains("GET") {
        "#2ca02c"
    } else {
        "#7f7f7f"
    };
    let dash = if series.starts_with("redis") {
        "6,4"
    } else {
        "none"
    };
    (colour, dash)
}

/// `x` as an axis label: bytes for value sizes, as is for connections, 1k/1M for the rest.
fn label(sweep: &str, x: f64) -> String {
    if sweep == "connections" {
        return format!("{x}");
    }
    let (units, base): (&[&str], f64) = if sweep == "value" {
        (&[" B", " KiB", " MiB", " GiB"], 1024.0)
    } else {
        (&["", "k", "M", "G"], 1000.0)
    };
    let mut v = x;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}{}", v.round(), units[i])
    } else {
        format!("{v:.1}{}", units[i])
    }
}

/// Decade bounds covering `values` (at least one decade).
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let (a, b) = (lo.log10().floor(), hi.log10().ceil());
    (a, if b > a { b } else { a + 1.0 })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG of `points` under `title`.
pub fn render(points: &[Point], title: &str) -> String {
    let width = MARGIN_L + 3.0 * PANEL_W + 2.0 * GAP_X + 40.0;
    let height = MARGIN_T + 2.0 * PANEL_H + GAP_Y + 110.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{MARGIN_L}\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    let mut series: Vec<&str> = Vec::new();
    for p in points {
        if !series.contains(&p.series.as_str()) {
            series.push(&p.series);
        }
    }
    for (col, (sweep, xtitle)) in SWEEPS.iter().enumerate() {
        let pts: Vec<&Point> = points.iter().filter(|p| p.sweep == *sweep).collect();
        let (x0, x1) = decades(pts.iter().map(|p| p.x));
        let mut xs: Vec<f64> = pts.iter().map(|p| p.x).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for (row, metric) in METRICS.iter().enumerate() {
            let value = |p: &Point| if row == 0 { p.ops } else { p.p99_us };
            let (y0, y1) = decades(pts.iter().filter_map(|p| value(p)));
            let left = MARGIN_L + col as f64 * (PANEL_W + GAP_X);
            let top = MARGIN_T + row as f64 * (PANEL_H + GAP_Y);
            let px = |x: f64| left + (x.log10() - x0) / (x1 - x0) * PANEL_W;
            let py = |y: f64| top + PANEL_H - (y.log10() - y0) / (y1 - y0) * PANEL_H;
            let _ = writeln!(
                s,
                "<rect x=\"{left}\" y=\"{top}\" width=\"{PANEL_W}\" height=\"{PANEL_H}\" \
                 fill=\"none\" stroke=\"#444\"/>"
            );
            // Decade grid and labels on y.
            let mut d = y0;
            while d <= y1 + 1e-9 {
                let y = py(10f64.powf(d));
                let _ = writeln!(
                    s,
                    "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                     <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                    left + PANEL_W,
                    left - 6.0,
                    y + 4.0,
                    label("", 10f64.powf(d))
                );
                d += 1.0;
            }
            // A tick at each measured x.
            for &x in &xs {
                let _ = writeln!(
                    s,
                    "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#ddd\"/>\
                     <text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>",
                    px(x),
                    top,
                    top + PANEL_H,
                    top + PANEL_H + 16.0,
                    label(sweep, x)
                );
            }
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>",
                left + PANEL_W / 2.0,
                top + PANEL_H + 34.0,
                esc(xtitle),
                left,
                top - 8.0,
                esc(metric)
            );
            for name in &series {
                let (colour, dash) = style(name);
                let mut line: Vec<&Point> = pts
                    .iter()
                    .copied()
                    .filter(|p| p.series == *name && value(p).is_some())
                    .collect();
                line.sort_by(|a, b| a.x.total_cmp(&b.x));
                if line.len() > 1 {
                    let path: Vec<String> = line
                        .iter()
                        .map(|p| format!("{:.1},{:.1}", px(p.x), py(value(p).unwrap())))
                        .collect();
                    let _ = writeln!(
                        s,
                        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" \
                         stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
                        path.join(" ")
                    );
                }
                for p in &line {
                    let (cx, cy) = (px(p.x), py(value(p).unwrap()));
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{colour}\"/>"
                    );
                    if p.errors > 0 {
                        let _ = writeln!(
                            s,
                            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"none\" \
                             stroke=\"#d62728\" stroke-width=\"2\"><title>{} errors</title>\
                             </circle>",
                            p.errors
                        );
                    }
                }
                // A run with no figure at all (it failed) is marked on the axis.
                for p in pts
                    .iter()
                    .filter(|p| p.series == *name && value(p).is_none())
                {
                    let _ = writeln!(
                        s,
                        "<text x=\"{:.1}\" y=\"{}\" fill=\"#d62728\" text-anchor=\"middle\" \
                         font-weight=\"bold\">✕<title>{name}: no figure (the run failed)\
                         </title></text>",
                        px(p.x),
                        top + PANEL_H - 4.0
                    );
                }
            }
        }
    }
    // Legend.
    let ly = MARGIN_T + 2.0 * PANEL_H + GAP_Y + 60.0;
    for (i, name) in series.iter().enumerate() {
        let (colour, dash) = style(name);
        let lx = MARGIN_L + i as f64 * 170.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{colour}\" \
             stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            lx + 30.0,
            lx + 36.0,
            ly + 4.0,
            esc(name)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{MARGIN_L}\" y=\"{}\">red ring: a run with errors (hover for the count); \
         ✕ on the axis: a run that gave no figure. Medians of the runs; log scales.</text>\n\
         </svg>",
        ly + 28.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "# sweep x series ops p99 errors\n\
        connections\t1\tdsm WRITE\t9000\t150\t0\n\
        connections\t16\tdsm WRITE\t60000\t400\t0\n\
        connections\t1\tredis SET\t12000\t90\t0\n\
        connections\t16\tredis SET\t80000\t300\t0\n\
        value\t1048576\tdsm WRITE\t280\t90000\t32\n\
        value\t16\tdsm WRITE\t100000\t500\t0\n\
        keys\t10000000\tdsm READ\t-\t-\t0\n";

    #[test]
    fn table_lines_parse_and_bad_ones_are_named() {
        let p = parse(TABLE).unwrap();
        assert_eq!(p.len(), 7);
        assert_eq!(p[4].x, 1_048_576.0);
        assert_eq!((p[4].errors, p[6].ops, p[6].p99_us), (32, None, None));
        assert!(parse("connections\t1\tdsm\t5\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(parse("keys\t0\tdsm\t1\t1\t0\n")
            .unwrap_err()
            .contains("positive"));
        assert!(parse("keys\t1\tdsm\t1\t1\tmany\n")
            .unwrap_err()
            .contains("errors"));
    }

    #[test]
    fn every_series_point_error_and_failure_is_drawn() {
        let svg = render(&parse(TABLE).unwrap(), "scale <test>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("scale &lt;test&gt;"));
        // One polyline per series with two or more points in a panel, in both metric rows:
        // connections: dsm WRITE and redis SET; value: dsm WRITE.
        assert_eq!(svg.matches("<polyline").count(), 3 * 2);
        // redis is dashed, dsm solid.
        assert!(svg.contains("stroke-dasharray=\"6,4\""));
        // The 1 MiB run with 32 errors is ringed in both rows; the failed run is marked twice.
        assert_eq!(svg.matches("32 errors").count(), 2);
        assert_eq!(svg.matches("no figure (the run failed)").count(), 2);
        for l in ["1 MiB", "16 B", "10M", "16"] {
            assert!(svg.contains(&format!(">{l}</text>")), "{l}");
        }
    }

    #[test]
    fn labels_and_decades() {
        assert_eq!(label("value", 65536.0), "64 KiB");
        assert_eq!(label("keys", 1000.0), "1k");
        assert_eq!(label("keys", 1500.0), "1.5k");
        assert_eq!(label("connections", 1024.0), "1024");
        assert_eq!(decades([150.0, 90000.0].into_iter()), (2.0, 5.0));
        assert_eq!(decades([100.0].into_iter()), (2.0, 3.0));
    }
}
