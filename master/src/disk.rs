//! What a master keeps on disk (`--data-dir`): the highest epoch it has seen and the roster,
//! the ids of the slaves the cluster counts on. After a restart it waits for every slave of
//! the roster to report what it holds before it answers anything (see `recovery.rs`), so
//! that a key whose holders are not back yet reads UNAVAILABLE, not NOT_FOUND.
//!
//! One small file, `master.state`, rewritten whole: written to a temporary file, synced,
//! renamed over the old one, and the directory synced, so a crash leaves the old state or the
//! new one, never a mix. Layout: `DSMMASTER1\n`, `epoch N\n`, then `slave ID\n` per slave,
//! with `\`, newline and carriage return in ids escaped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

const FILE: &str = "master.state";
const MAGIC: &str = "DSMMASTER1";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterState {
    pub epoch: u64,
    /// Slave ids, sorted.
    pub roster: Vec<String>,
}

impl MasterState {
    /// The state kept in `dir`, or `None` if there is none yet (a new master). A file that
    /// does not parse is an error: a master must not start as if new over a cluster it served.
    pub fn load(dir: &Path) -> io::Result<Option<MasterState>> {
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad("not a dsm master state file"));
        }
        let mut state = MasterState::default();
        for line in lines {
            if let Some(n) = line.strip_prefix("epoch ") {
                state.epoch = n.parse().map_err(|_| bad("bad epoch"))?;
            } else if let Some(id) = line.strip_prefix("slave ") {
                state
                    .roster
                    .push(unescape(id).ok_or_else(|| bad("bad slave id"))?);
            } else {
                return Err(bad("unknown line"));
            }
        }
        state.roster.sort();
        Ok(Some(state))
    }

    /// Replace the state kept in `dir` (created if missing) with this one, durably.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut text = format!("{MAGIC}\nepoch {}\n", self.epoch);
        for id in &self.roster {
            text.push_str("slave ");
            text.push_str(&escape(id));
            text.push('\n');
        }
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(FILE))?;
        File::open(dir)?.sync_all()
    }
}

fn escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_save_and_a_load() {
        let dir = std::env::temp_dir().join(format!("dsm-master-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            MasterState::load(&dir).unwrap(),
            None,
            "a new master has none"
        );
        let state = MasterState {
            epoch: 7,
            roster: vec!["a\\b".into(), "s1".into(), "two\nlines\r".into()],
        };
        state.save(&dir).unwrap();
        assert_eq!(MasterState::load(&dir).unwrap(), Some(state.clone()));
        let newer = MasterState {
            epoch: 8,
            roster: vec!["s1".into()],
        };
        newer.save(&dir).unwrap();
        assert_eq!(MasterState::load(&dir).unwrap(), Some(newer));
        fs::write(dir.join(FILE), "something else\n").unwrap();
        assert!(
            MasterState::load(&dir).is_err(),
            "a foreign file is an error"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
