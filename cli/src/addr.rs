//! Parsing of the `ADDR[,ADDR...]` lists the binaries take on the command line.

use std::net::{SocketAddr, ToSocketAddrs};

/// Parse one `host:port`, resolving names such as `localhost`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    s.to_socket_addrs()
        .map_err(|e| format!("bad address '{s}': {e}"))?
        .next()
        .ok_or_else(|| format!("address '{s}' resolves to nothing"))
}

/// Parse a comma-separated list of addresses; at least one is required.
pub fn parse_addr_list(s: &str) -> Result<Vec<SocketAddr>, String> {
    let addrs = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_addr)
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(format!("no address in '{s}'"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_garbage() {
        let v = parse_addr_list("127.0.0.1:7000, 127.0.0.1:7002").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].port(), 7002);
        assert!(parse_addr_list("").is_err());
        assert!(parse_addr_list("127.0.0.1").is_err());
        assert!(parse_addr("nonsense:port").is_err());
    }
}
