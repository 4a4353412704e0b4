//! What to draw, one directive a line (`scripts/bench.sh` writes it):
//!
//! ```text
//! title dsm vs redis: latency by percentile
//! note  one line under the title (any number of them)
//! columns 3
//! panel WRITE / SET, 1x1
//! series dsm hdr run1.hist run2.hist run3.hist
//! series redis redis:SET run1.txt run2.txt run3.txt
//! ```
//!
//! A series is a label, a format (`hdr`: `dsm-client bench --hist` files; `redis:TEST`: that
//! test of redis-benchmark's text output) and the files of its runs, pooled. Paths hold no
//! spaces; `#` starts a comment line.

use std::path::PathBuf;

/// How a series' files are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Hdr,
    Redis(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub label: String,
    pub format: Format,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub title: String,
    pub notes: Vec<String>,
    pub columns: usize,
    pub panels: Vec<Panel>,
}

/// Parse a manifest; the error names the line.
pub fn parse(text: &str) -> Result<Manifest, String> {
    let mut m = Manifest {
        title: String::new(),
        notes: Vec::new(),
        columns: 3,
        panels: Vec::new(),
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("manifest line {}: {why}: {line:?}", n + 1);
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match word {
            "title" => m.title = rest.to_string(),
            "note" => m.notes.push(rest.to_string()),
            "columns" => {
                m.columns = rest
                    .parse()
                    .ok()
                    .filter(|&c| (1..=8).contains(&c))
                    .ok_or_else(|| bad("columns must be 1 to 8"))?
            }
            "panel" => m.panels.push(Panel {
                title: rest.to_string(),
                series: Vec::new(),
            }),
            "series" => {
                let panel = m
                    .panels
                    .last_mut()
                    .ok_or_else(|| bad("a series before any panel"))?;
                let f: Vec<&str> = rest.split_whitespace().collect();
                let [label, format, files @ ..] = f.as_slice() else {
                    return Err(bad("want: series LABEL FORMAT FILE..."));
                };
                if files.is_empty() {
                    return Err(bad("a series needs at least one file"));
                }
                let format = match *format {
                    "hdr" => Format::Hdr,
                    other => match other.strip_prefix("redis:") {
                        Some(test) if !test.is_empty() => Format::Redis(test.to_string()),
                        _ => return Err(bad("format must be hdr or redis:TEST")),
                    },
                };
                panel.series.push(Series {
                    label: label.to_string(),
                    format,
                    files: files.iter().map(PathBuf::from).collect(),
                });
            }
            _ => return Err(bad("unknown directive")),
        }
    }
    if m.panels.is_empty() {
        return Err("manifest: no panel".into());
    }
    if let Some(p) = m.panels.iter().find(|p| p.series.is_empty()) {
        return Err(format!("manifest: panel {:?} has no series", p.title));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_build_panels_in_order() {
        let m = parse(
            "# made by bench.sh\ntitle T\nnote a\nnote b\ncolumns 2\npanel WRITE / SET, 1x1\n\
             series dsm hdr a.hist b.hist\nseries redis redis:SET r1.txt\npanel P2\nseries x hdr c\n",
        )
        .unwrap();
        assert_eq!(m.title, "T");
        assert_eq!(m.notes, vec!["a", "b"]);
        assert_eq!(m.columns, 2);
        assert_eq!(m.panels.len(), 2);
        assert_eq!(m.panels[0].title, "WRITE / SET, 1x1");
        assert_eq!(m.panels[0].series[1].format, Format::Redis("SET".into()));
        assert_eq!(m.panels[0].series[0].files.len(), 2);
    }

    #[test]
    fn mistakes_name_their_line() {
        assert!(parse("series a hdr f\n").unwrap_err().contains("line 1"));
        assert!(parse("panel p\nseries a png f\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(parse("panel p\nseries a hdr\n").is_err());
        assert!(parse("panel p\n").unwrap_err().contains("no series"));
        assert!(parse("title only\n").is_err());
        assert!(parse("columns 0\npanel p\nseries a hdr f\n").is_err());
        assert!(parse("plot x\n").unwrap_err().contains("unknown"));
    }
}
