//! Tunnel targets: the `HOST:PORT` a peer asks the serving node to connect
//! to. Parsing is strict and produces one canonical spelling (host in lower
//! case, IPv6 in brackets) so that policy decisions compare like with like.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The longest host name accepted (RFC 1035 limit).
pub const MAX_HOST_LEN: usize = 253;
/// The longest `HOST:PORT` spelling accepted on the wire.
pub const MAX_TARGET_LEN: usize = MAX_HOST_LEN + 2 + 1 + 5;

/// A tunnel target: a host (DNS name, IPv4 or IPv6 address) and a TCP port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    host: String,
    port: u16,
}

/// Why a `HOST:PORT` spelling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target {0:?} is not HOST:PORT")]
    MissingPort(String),
    #[error("target {0:?} has an invalid port: use a number from 1 to 65535")]
    BadPort(String),
    #[error("target {0:?} has an invalid host: use a DNS name, an IPv4 address or [IPv6]")]
    BadHost(String),
    #[error("target is {0} bytes long; at most {MAX_TARGET_LEN} are allowed")]
    TooLong(usize),
}

impl Target {
    /// Parses `HOST:PORT` (`[IPv6]:PORT` for IPv6).
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        if text.len() > MAX_TARGET_LEN {
            return Err(TargetError::TooLong(text.len()));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| TargetError::MissingPort(text.to_string()))?;
        let port = parse_port(port).ok_or_else(|| TargetError::BadPort(text.to_string()))?;
        let host = canonical_host(host).ok_or_else(|| TargetError::BadHost(text.to_string()))?;
        Ok(Self { host, port })
    }

    /// The host part as it is used to connect (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

fn canonical_host(host: &str) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        return inner.parse::<Ipv6Addr>().ok().map(|a| a.to_string());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Some(host.to_string());
    }
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // A name made only of digits and dots would read as a mangled IPv4 address.
    let all_numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    (labels_ok && !all_numeric).then(|| host.to_ascii_lowercase())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            Target::parse("Example.COM:443").unwrap().to_string(),
            "example.com:443"
        );
        assert_eq!(
            Target::parse("127.0.0.1:22").unwrap().to_string(),
            "127.0.0.1:22"
        );
        let v6 = Target::parse("[0:0::1]:8080").unwrap();
        assert_eq!(v6.to_string(), "[::1]:8080");
        assert_eq!(v6.host(), "::1");
        assert_eq!(v6.port(), 8080);
        assert_eq!(Target::parse("db.:5432").unwrap().to_string(), "db:5432");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "host",
            "host:",
            ":80",
            "host:0",
            "host:65536",
            "host:+80",
            "host:080000",
            "ho st:80",
            "-host:80",
            "a..b:80",
            "::1:80",
            "[::1:80",
            "[example.com]:80",
            "1.2.3:80",
            "host:80\n",
            "ümlaut:80",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let long = format!("{}:1", "a".repeat(300));
        assert!(matches!(Target::parse(&long), Err(TargetError::TooLong(_))));
    }
}
