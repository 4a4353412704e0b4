//! The master's status page (`/` with `--metrics`): one self-contained HTML document (inline
//! style, no script, no outside asset) that reloads itself every 2 s: role, epoch, the other
//! masters, every slave, keys short of copies, and request rates and p50/p99 by op over the
//! last few seconds (from two samples of the counters `metrics.rs` keeps).

use std::fmt::Write as _;
use std::time::Duration;

use dsm_wire::Status;

use crate::metrics::{RequestStats, OPS};

/// What the page shows of the master besides the request counters.
pub(crate) struct PageView {
    pub status: Status,
    pub other_masters: Vec<String>,
    /// By slave id: how long since it was last heard from.
    pub heard: Vec<(String, Duration)>,
    pub uptime: Duration,
}

pub(crate) fn render(
    v: &PageView,
    now: &RequestStats,
    since: Option<(Duration, &RequestStats)>,
) -> String {
    let st = &v.status;
    let mut h = String::with_capacity(8 * 1024);
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\">\
         <meta name=\"viewport\" content=\"width=device-width\">",
    );
    let _ = write!(h, "<title>dsm master {}</title>", esc(&st.addr));
    h.push_str(
        "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
         table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:.25em .7em;text-align:right}\
         th{background:#eee}td.l,th.l{text-align:left}\
         .live{color:#080}.dead{color:#b00;font-weight:bold}\
         .kv span{display:inline-block;margin-right:2em}</style></head><body>",
    );
    let _ = write!(h, "<h1>dsm master {}</h1>", esc(&st.addr));
    let _ = write!(
        h,
        "<p class=\"kv\"><span>role: <b id=\"role\">{}</b></span><span>epoch: <b id=\"epoch\">{}</b></span>\
         <span>R: {}</span><span>keys: <b id=\"keys\">{}</b></span>\
         <span>under-replicated: <b id=\"under\">{}</b></span><span>re-replication copies: {}</span>\
         <span>backup: {}</span><span>up {} s</span></p>",
        st.role.name(),
        st.epoch,
        st.replicas,
        st.keys,
        st.under_replicated,
        st.copies_made,
        st.backup.name(),
        v.uptime.as_secs(),
    );
    h.push_str("<h2>Masters</h2><table id=\"masters\"><tr><th class=\"l\">address</th><th class=\"l\">role</th></tr>");
    let _ = write!(
        h,
        "<tr><td class=\"l\">{} (this one)</td><td class=\"l\">{}</td></tr>",
        esc(&st.addr),
        st.role.name()
    );
    if !st.primary.is_empty() && st.primary != st.addr {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">primary</td></tr>",
            esc(&st.primary)
        );
    }
    for m in &v.other_masters {
        let _ = write!(
            h,
            "<tr class=\"master\"><td class=\"l\">{} (heartbeat)</td><td class=\"l\">standby or peer</td></tr>",
            esc(m)
        );
    }
    h.push_str("</table>");
    let live = st.slaves.iter().filter(|s| s.live).count();
    let _ = write!(
        h,
        "<h2>Slaves: {live} live of {}</h2><table id=\"slaves\"><tr><th class=\"l\">id</th>\
         <th class=\"l\">address</th><th class=\"l\">state</th><th>keys</th><th>last heard</th></tr>",
        st.slaves.len()
    );
    for s in &st.slaves {
        let heard = v
            .heard
            .iter()
            .find(|(id, _)| *id == s.id)
            .map_or("-".to_string(), |(_, d)| {
                format!("{} ms ago", d.as_millis())
            });
        let _ = write!(
            h,
            "<tr class=\"slave\"><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l {}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.id),
            esc(&s.addr),
            if s.live { "live" } else { "dead" },
            if s.live { "live" } else { "dead" },
            s.keys,
            heard
        );
    }
    h.push_str("</table>");
    let window = match since {
        Some((age, _)) => format!("over the last {:.1} s", age.as_secs_f64()),
        None => "since start (reload for recent figures)".to_string(),
    };
    let _ = write!(
        h,
        "<h2>Requests {window}</h2><table id=\"requests\"><tr><th class=\"l\">op</th>\
         <th>per second</th><th>answered</th><th>errors</th><th>p50</th><th>p99</th>\
         <th>answered since start</th></tr>"
    );
    for (op, name) in OPS.iter().enumerate() {
        let (hist, answered, errors, secs) = match since {
            Some((age, then)) => (
                now.latency[op].since(&then.latency[op]),
                total(&now.answered[op]) - total(&then.answered[op]),
                errors(&now.answered[op]) - errors(&then.answered[op]),
                age.as_secs_f64(),
            ),
            None => (
                now.latency[op].clone(),
                total(&now.answered[op]),
                errors(&now.answered[op]),
                v.uptime.as_secs_f64(),
            ),
        };
        let rate = if secs > 0.0 {
            answered as f64 / secs
        } else {
            0.0
        };
        let _ = write!(
            h,
            "<tr><td class=\"l\">{name}</td><td>{rate:.1}</td><td>{answered}</td><td>{errors}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            show(hist.quantile(0.5)),
            show(hist.quantile(0.99)),
            total(&now.answered[op]),
        );
    }
    h.push_str(
        "</table><p>Percentiles are interpolated within fixed histogram buckets (as \
         Prometheus's histogram_quantile). Machine-readable: <a href=\"/metrics\">/metrics</a>. \
         This page reloads every 2 s.</p></body></html>\n",
    );
    h
}

fn total(by_result: &[u64]) -> u64 {
    by_result.iter().sum()
}

/// Answers other than OK, VALUE and NOT_FOUND.
fn errors(by_result: &[u64]) -> u64 {
    by_result.iter().skip(2).sum()
}

fn show(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d < Duration::from_millis(1) => format!("{} µs", d.as_micros()),
        Some(d) if d < Duration::from_secs(1) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
    }
}

/// HTML-escape text that came from the network or the command line.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slave_ids_are_escaped() {
        assert_eq!(esc("<b id=\"x\">&"), "&lt;b id=&quot;x&quot;&gt;&amp;");
    }
}
