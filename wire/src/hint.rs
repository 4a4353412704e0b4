//! The primary's client address in the text of a NOT_PRIMARY answer (`primary=ADDR; why`):
//! written by masters that know it, read by clients to go straight there; no I/O.

use std::net::SocketAddr;

const PREFIX: &str = "primary=";
/// How the reason of a NOT_PRIMARY to a WRITE_ONCE begins when the master took the write and
/// can no longer vouch for it (after the `primary=ADDR; ` part, if any): the write may have been
/// applied, so it must be sent again marked as such (`resent_ms` > 0).
pub const TAKEN: &str = "taken; ";

/// How the text of an UNAVAILABLE begins when the master is recovering (it answers nothing
/// until it has heard what the slaves hold: after a restart, or elected without the whole
/// map, usually for well under a second). The request was not taken, so a client may send it
/// again, and the client library does until its deadline.
pub const RECOVERING: &str = "recovering; ";

/// How the text of the UNAVAILABLE a primary sends a slave it drops (an ACK or a PING not
/// answered in time) begins, just before it closes the connection: the master is alive and
/// takes the slave back as the same process, so the slave registers with it again at once
/// instead of looking for another master (where a standby would hold it for seconds).
pub const DROPPED: &str = "dropped; ";

/// Whether an UNAVAILABLE to a slave says its primary dropped it (see [`DROPPED`]).
pub fn says_dropped(text: &str) -> bool {
    text.starts_with(DROPPED)
}

/// Whether an UNAVAILABLE answer's text says the master is recovering (see [`RECOVERING`]).
pub fn says_recovering(text: &str) -> bool {
    text.starts_with(RECOVERING)
}

/// Whether a NOT_PRIMARY answer's text says the master took the write (see [`TAKEN`]).
pub fn says_taken(text: &str) -> bool {
    let reason = match text.strip_prefix(PREFIX) {
        Some(rest) => rest.split_once("; ").map_or("", |(_, why)| why),
        None => text,
    };
    reason.starts_with(TAKEN)
}

/// The text of a NOT_PRIMARY answer that names the primary at `primary` (its client address).
pub fn naming_primary(primary: SocketAddr, why: &str) -> String {
    format!("{PREFIX}{primary}; {why}")
}

/// The primary a NOT_PRIMARY answer's text names, if it names one.
pub fn primary_named(text: &str) -> Option<SocketAddr> {
    let rest = text.strip_prefix(PREFIX)?;
    let end = rest.find([';', ' ']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_primary_reads_back_and_anything_else_names_none() {
        let v4: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let v6: SocketAddr = "[::1]:7002".parse().unwrap();
        for addr in [v4, v6] {
            let text = naming_primary(addr, "this is a standby master");
            assert!(text.starts_with("primary="), "{text}");
            assert_eq!(primary_named(&text), Some(addr));
        }
        assert_eq!(primary_named("primary=127.0.0.1:7000"), Some(v4));
        assert_eq!(primary_named("this master stepped down"), None);
        assert_eq!(primary_named("primary=nonsense; x"), None);
        assert_eq!(primary_named(""), None);
    }

    #[test]
    fn a_taken_write_is_told_from_one_refused_before_it_was_taken() {
        let v4: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let taken = format!("{TAKEN}lease lost");
        assert!(says_taken(&taken));
        assert!(says_taken(&naming_primary(v4, &taken)));
        assert!(!says_taken("lease lost"));
        assert!(!says_taken(&naming_primary(v4, "this is a standby master")));
    }
}
