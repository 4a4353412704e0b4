//! `status --json`: the master's STATUS reply as one JSON object (hand-written: no serde at run
//! time for one small shape).

use dsm_wire::Status;

/// `{"role":"primary","epoch":1,"replicas":2,"keys":N,"under_replicated":N,"copies_made":N,"slaves":[...]}`
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
        "{{\"role\":{},\"epoch\":{},\"replicas\":{},\"keys\":{},\"under_replicated\":{},\"copies_made\":{},\"slaves\":[{}]}}",
        quote(s.role.name()),
        s.epoch,
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

/// Human-readable STATUS for a terminal.
pub fn status_text(s: &Status) -> String {
    let mut out = format!(
        "role {}  epoch {}  replicas {}  keys {}  under-replicated {}  copies made {}\n",
        s.role.name(),
        s.epoch,
        s.replicas,
        s.keys,
        s.under_replicated,
        s.copies_made
    );
    for x in &s.slaves {
        out.push_str(&format!(
            "  {:<20} {:<22} {:<5} {} keys\n",
            x.id,
            x.addr,
            if x.live { "live" } else { "dead" },
            x.keys
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsm_wire::{ServerRole, SlaveStatus};

    #[test]
    fn renders_the_documented_shape_and_escapes() {
        let s = Status {
            role: ServerRole::Primary,
            epoch: 1,
            replicas: 2,
            keys: 3,
            under_replicated: 0,
            copies_made: 7,
            slaves: vec![SlaveStatus {
                id: "a\"b".into(),
                addr: "127.0.0.1:1".into(),
                live: true,
                keys: 3,
            }],
        };
        assert_eq!(
            status_json(&s),
            r#"{"role":"primary","epoch":1,"replicas":2,"keys":3,"under_replicated":0,"copies_made":7,"slaves":[{"id":"a\"b","addr":"127.0.0.1:1","live":true,"keys":3}]}"#
        );
        assert_eq!(quote("\u{1}\n"), "\"\\u0001\\n\"");
    }
}
