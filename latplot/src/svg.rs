//! The drawing: a grid of panels, each with its series' percentile curves, HdrHistogram style.
//! x: percentile, log scale of 1/(1-p) (0%, 90%, 99%, 99.9%, ...); y: latency, log scale (tails
//! are 10 to 100 times the median, which a linear axis would flatten to the floor). Each
//! curve is a step: at percentile p, the least latency that p of the requests stayed within.
//! The last request of a series (p = 1) is drawn at 1/(1-p) = its request count.
//! Every curve is one `<path class="series">`; the document needs no outside asset.

use std::fmt::Write;

use crate::dist::Dist;
use crate::manifest::Manifest;

const PANEL_W: f64 = 500.0;
/// The plot area's height; below it the x labels, the axis title and a legend line per series.
const PLOT_H: f64 = 240.0;
/// Inside a panel: room for the y labels, the title, the x labels and axis title.
const LEFT: f64 = 62.0;
const RIGHT: f64 = 34.0;
const TOP: f64 = 30.0;
const AXIS: f64 = 42.0;
const LEGEND_LINE: f64 = 15.0;
const COLORS: [&str; 4] = ["#1f5fbf", "#d03a2f", "#2a9d3a", "#8a4fbf"];

/// Text for an SVG text node or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A latency for a label: "80 µs", "1.5 ms", "2 s".
pub fn latency_label(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    let text = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} {unit}")
}

/// The label of the x tick at 1/(1-p) = 10^k: 0%, 90%, 99%, 99.9%, ...
pub fn percentile_label(k: u32) -> String {
    if k == 0 {
        return "0%".into();
    }
    let p = 100.0 - 100.0 / 10f64.powi(k as i32);
    format!("{p:.*}%", k.saturating_sub(2) as usize)
}

/// One panel's axes: decades of 1/(1-p) across, decades of µs up.
struct Axes {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    decades: u32,
    lo: f64,
    hi: f64,
}

impl Axes {
    /// Horizontal position of percentile `p` for a series of `total` requests.
    fn x(&self, p: f64, total: u64) -> f64 {
        let cap = total.max(1) as f64;
        let inv = if p >= 1.0 {
            cap
        } else {
            (1.0 / (1.0 - p)).min(cap)
        };
        self.x0 + inv.log10() / f64::from(self.decades) * self.w
    }

    fn y(&self, us: f64) -> f64 {
        let t = (us.max(10f64.powf(self.lo)).log10() - self.lo) / (self.hi - self.lo);
        self.y0 + self.h - t * self.h
    }
}

/// The step curve of `d` as path data.
fn curve(a: &Axes, d: &Dist) -> String {
    let n = d.total as f64;
    let mut path = String::new();
    let mut prev_p = 0.0;
    let _ = write!(path, "M{:.1},{:.1}", a.x(0.0, d.total), a.y(d.min()));
    for &(v, c) in &d.points {
        let p = c as f64 / n;
        let y = a.y(v);
        let _ = write!(path, " L{:.1},{y:.1}", a.x(prev_p, d.total));
        let _ = write!(path, " L{:.1},{y:.1}", a.x(p, d.total));
        prev_p = p;
    }
    path
}

/// The whole document: `dists[i][j]` is series j of panel i, pooled.
pub fn render(m: &Manifest, dists: &[Vec<Dist>]) -> String {
    let cols = m.columns.min(m.panels.len()).max(1);
    let rows = m.panels.len().div_ceil(cols);
    let most_series = m.panels.iter().map(|p| p.series.len()).max().unwrap_or(0);
    let panel_h = TOP + PLOT_H + AXIS + LEGEND_LINE * most_series as f64 + 14.0;
    let head = 44.0 + 16.0 * m.notes.len() as f64;
    let width = cols as f64 * PANEL_W + 20.0;
    let height = head + rows as f64 * panel_h + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="16" font-weight="bold">{}</text>"#,
        escape(&m.title)
    );
    for (i, note) in m.notes.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="10" y="{:.0}" fill="#444">{}</text>"##,
            42.0 + 16.0 * i as f64,
            escape(note)
        );
    }
    for (i, (panel, series)) in m.panels.iter().zip(dists).enumerate() {
        let px = 10.0 + (i % cols) as f64 * PANEL_W;
        let py = head + (i / cols) as f64 * panel_h;
        draw_panel(&mut s, px, py, &panel.title, &panel_labels(m, i), series);
    }
    s.push_str("</svg>\n");
    s
}

fn panel_labels(m: &Manifest, i: usize) -> Vec<String> {
    m.panels[i].series.iter().map(|s| s.label.clone()).collect()
}

fn draw_panel(s: &mut String, px: f64, py: f64, title: &str, labels: &[String], ds: &[Dist]) {
    let most = ds.iter().map(|d| d.total).max().unwrap_or(1).max(1);
    let decades = ((most as f64).log10().ceil() as u32).clamp(2, 7);
    let min = ds
        .iter()
        .map(Dist::min)
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    let max = ds.iter().map(Dist::max).fold(0.0, f64::max).max(min);
    let lo = min.log10().floor();
    let hi = (max.log10().ceil()).max(lo + 1.0);
    let a = Axes {
        x0: px + LEFT,
        y0: py + TOP,
        w: PANEL_W - LEFT - RIGHT,
        h: PLOT_H,
        decades,
        lo,
        hi,
    };
    let _ = writeln!(s, r#"<g class="panel">"#);
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
        a.x0,
        py + 18.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#888"/>"##,
        a.x0, a.y0, a.w, a.h
    );
    // Latency grid: 1, 2, 5 of each decade; the 2s and 5s labelled only when there is room.
    let room = a.h / (hi - lo) >= 60.0;
    let mut e = lo as i32;
    while f64::from(e) < hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if v.log10() > hi + 1e-9 {
                break;
            }
            let y = a.y(v);
            let grid = if m == 1.0 { "#ccc" } else { "#eee" };
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{grid}"/>"#,
                a.x0,
                a.x0 + a.w,
            );
            if m == 1.0 || room {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    a.x0 - 4.0,
                    y + 4.0,
                    escape(&latency_label(v))
                );
            }
        }
        e += 1;
    }
    let top = a.y(10f64.powf(hi));
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
        a.x0 - 4.0,
        top + 4.0,
        escape(&latency_label(10f64.powf(hi)))
    );
    for k in 0..=decades {
        let x = a.x0 + f64::from(k) / f64::from(decades) * a.w;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            a.y0,
            a.y0 + a.h,
            a.y0 + a.h + 14.0,
            percentile_label(k)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">percentile (log scale of 1/(1-p))</text>"##,
        a.x0 + a.w / 2.0,
        a.y0 + a.h + 32.0
    );
    for (j, (d, label)) in ds.iter().zip(labels).enumerate() {
        let color = COLORS[j % COLORS.len()];
        let _ = writeln!(
            s,
            r#"<path class="series" data-label="{}" d="{}" fill="none" stroke="{color}" stroke-width="1.6"/>"#,
            escape(label),
            curve(&a, d)
        );
        let ly = a.y0 + a.h + AXIS + 4.0 + LEGEND_LINE * j as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">{} p50 {} · p99 {} · p99.9 {} · max {} (n={})</text>"#,
            a.x0 - 40.0,
            ly - 4.0,
            a.x0 - 26.0,
            ly - 4.0,
            a.x0 - 22.0,
            ly,
            escape(label),
            escape(&latency_label(d.quantile(0.5))),
            escape(&latency_label(d.quantile(0.99))),
            escape(&latency_label(d.quantile(0.999))),
            escape(&latency_label(d.max())),
            d.total
        );
    }
    let _ = writeln!(s, "</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_people_write_them() {
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(1), "90%");
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(3), "99.9%");
        assert_eq!(percentile_label(5), "99.999%");
        assert_eq!(latency_label(50.0), "50 µs");
        assert_eq!(latency_label(2000.0), "2 ms");
        assert_eq!(latency_label(1500.0), "1.5 ms");
        assert_eq!(latency_label(96.4), "96.4 µs");
        assert_eq!(latency_label(3_000_000.0), "3 s");
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }

    #[test]
    fn curves_rise_left_to_right_and_end_at_the_request_count() {
        let a = Axes {
            x0: 0.0,
            y0: 0.0,
            w: 300.0,
            h: 100.0,
            decades: 3,
            lo: 1.0,
            hi: 3.0,
        };
        let d = Dist {
            points: vec![(20.0, 500), (100.0, 990), (1000.0, 1000)],
            total: 1000,
        };
        let path = curve(&a, &d);
        let pts: Vec<(f64, f64)> = path
            .split(['M', 'L'])
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                let (x, y) = t.trim().split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        // x never goes back, y never goes down the page's way up (screen y falls as latency rises).
        assert!(pts.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 <= w[0].1));
        // p50 is at 1/(1-p) = 2; p99 at 100 (two of three decades); the max at 1000.
        assert!(pts.contains(&(300.0 * 2f64.log10() / 3.0, a.y(20.0)).round1()));
        assert!(pts.contains(&(200.0, a.y(100.0)).round1()));
        assert_eq!(pts.last().unwrap().0, 300.0);
        assert_eq!(pts.last().unwrap().1, 0.0);
    }

    trait Round1 {
        fn round1(self) -> Self;
    }
    impl Round1 for (f64, f64) {
        fn round1(self) -> Self {
            let r = |v: f64| (v * 10.0).round() / 10.0;
            (r(self.0), r(self.1))
        }
    }
}
