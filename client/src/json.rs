//! The master's STATUS reply for people (`status`) and for programs (`status --json`, one JSON
//! object, hand-written: no serde at run time for one small shape).

use dsm_wire::{BackupLink, ServerRole, Status};

/// `{"addr":"127.0.0.1:7000","role":"primary","epoch":1,"primary":"127.0.0.1:7000",
/// "backup":"in_step","replicas":2,"keys":N,"under_replicated":N,"copies_made":N,"slaves":[...]}`
pub fn status_json(s: &Status) -> String {
    let slaves: Vec<String> = s
        .slaves
        .iter()
        .map(|x| {
            format!(
                "{{\"id\":{},\"addr\":{},\"live\":{},\"keys\":{}}}",
                quote(&x.id),
                quote(&x.addr),
                x.live,
                x.keys
            )
        })
        .collect();
    format!(
        "{{\"addr\":{},\"role\":{},\"epoch\":{},\"primary\":{},\"backup\":{},\"replicas\":{},\"keys\":{},\"under_replicated\":{},\"copies_made\":{},\"slaves\":[{}]}}",
        quote(&s.addr),
        quote(s.role.name()),
        s.epoch,
        quote(&s.primary),
        quote(s.backup.name()),
        s.replicas,
        s.keys,
        s.under_replicated,
        s.copies_made,
        slaves.join(",")
    )
}

/// A JSON string literal for `s`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// STATUS for a person: which master answered and what it is, where the primary is, the
/// backup, then the live slaves apart from the others.
pub fn status_text(s: &Status) -> String {
    let mut out = format!(
        "master {}: role {}, epoch {}\n",
        or_unknown(&s.addr),
        s.role.name(),
        s.epoch
    );
    let primary = match s.role {
        ServerRole::Primary | ServerRole::Recovering => format!("{} (this master)", s.primary),
        _ if s.primary.is_empty() => "unknown to this master".into(),
        _ => s.primary.clone(),
    };
    out.push_str(&format!("primary: {primary}\n"));
    let backup = match (s.role, s.backup) {
        (ServerRole::Backup, BackupLink::None) => "this master; not connected to the primary",
        (ServerRole::Backup, BackupLink::CatchingUp) => {
            "this master; receiving the primary's snapshot"
        }
        (ServerRole::Backup, BackupLink::InStep) => "this master; in step with the primary",
        (_, BackupLink::None) => "none attached",
        (_, BackupLink::CatchingUp) => "attached, receiving the snapshot (not in step yet)",
        (_, BackupLink::InStep) => "attached, in step",
    };
    out.push_str(&format!("backup: {backup}\n"));
    let (live, absent): (Vec<_>, Vec<_>) = s.slaves.iter().partition(|x| x.live);
    if s.role == ServerRole::Backup {
        // A backup serves no slave: they are the primary's, as it streamed them, live where
        // the primary has them in service, and copies counted as the primary counts them.
        out.push_str(&format!(
            "keys {}  replicas {}  under-replicated {} (as the primary has its slaves)\n",
            s.keys, s.replicas, s.under_replicated
        ));
        out.push_str(&format!(
            "slaves in service at the primary ({}; none serves a backup until it takes over):\n",
            live.len()
        ));
        for x in &live {
            out.push_str(&format!("  {}\n", x.id));
        }
        if !absent.is_empty() {
            out.push_str(&format!(
                "slaves out of the primary's reach ({}):\n",
                absent.len()
            ));
            for x in &absent {
                out.push_str(&format!("  {}\n", x.id));
            }
        }
        return out;
    }
    out.push_str(&format!(
        "keys {}  replicas {}  under-replicated {}  copies made {}\n",
        s.keys, s.replicas, s.under_replicated, s.copies_made
    ));
    out.push_str(&format!("live slaves ({}):\n", live.len()));
    for x in &live {
        out.push_str(&format!("  {:<20} {:<22} {} keys\n", x.id, x.addr, x.keys));
    }
    if !absent.is_empty() {
        out.push_str(&format!(
            "absent slaves ({}; not live here: out of reach, or given up):\n",
            absent.len()
        ));
        for x in &absent {
            out.push_str(&format!(
                "  {:<20} last from {}\n",
                x.id,
                or_unknown(&x.addr)
            ));
        }
    }
    out
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "(unknown)"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsm_wire::SlaveStatus;

    #[test]
    fn renders_the_documented_shape_and_escapes() {
        let s = Status {
            role: ServerRole::Primary,
            epoch: 1,
            replicas: 2,
            keys: 3,
            under_replicated: 0,
            copies_made: 7,
            addr: "127.0.0.1:7000".into(),
            primary: "127.0.0.1:7000".into(),
            backup: BackupLink::InStep,
            slaves: vec![
                SlaveStatus {
                    id: "a\"b".into(),
                    addr: "127.0.0.1:1".into(),
                    live: true,
                    keys: 3,
                },
                SlaveStatus {
                    id: "gone".into(),
                    addr: "127.0.0.1:2".into(),
                    live: false,
                    keys: 0,
                },
            ],
        };
        assert_eq!(
            status_json(&s),
            r#"{"addr":"127.0.0.1:7000","role":"primary","epoch":1,"primary":"127.0.0.1:7000","backup":"in_step","replicas":2,"keys":3,"under_replicated":0,"copies_made":7,"slaves":[{"id":"a\"b","addr":"127.0.0.1:1","live":true,"keys":3},{"id":"gone","addr":"127.0.0.1:2","live":false,"keys":0}]}"#
        );
        let text = status_text(&s);
        assert!(
            text.starts_with("master 127.0.0.1:7000: role primary, epoch 1\n"),
            "{text}"
        );
        assert!(
            text.contains("primary: 127.0.0.1:7000 (this master)\n"),
            "{text}"
        );
        assert!(text.contains("backup: attached, in step\n"), "{text}");
        let live = text.find("live slaves (1):").expect("live section");
        let absent = text.find("absent slaves (1;").expect("absent section");
        assert!(live < text.find("a\"b").unwrap() && text.find("a\"b").unwrap() < absent);
        assert!(text[absent..].contains("gone"), "{text}");
        let backup = Status {
            role: ServerRole::Backup,
            primary: String::new(),
            backup: BackupLink::None,
            ..s
        };
        let text = status_text(&backup);
        assert!(text.contains("primary: unknown to this master\n"), "{text}");
        assert!(
            text.contains("backup: this master; not connected"),
            "{text}"
        );
        assert_eq!(quote("\u{1}\n"), "\"\\u0001\\n\"");
    }
}
