//! The primary's client address in the text of a NOT_PRIMARY answer (`primary=ADDR; why`):
//! written by masters that know it, read by clients to go straight there; no I/O.

use std::net::SocketAddr;

const PREFIX: &str = "primary=";

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
}
