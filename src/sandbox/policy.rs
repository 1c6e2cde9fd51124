//! The sandbox's allow/deny rules as plain functions, with no I/O: which
//! guest paths a tool may read or write, which host names it may look up,
//! which socket addresses it may connect to, which HTTP authorities it may
//! call and which environment variables it sees. The wasmtime glue asks these
//! questions; it never decides on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::capabilities::Capabilities;

/// A capability declaration the sandbox cannot enforce as written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "network grant `{entry}` is not a host name or address with an optional :PORT ({reason})"
    )]
    BadNetworkEntry { entry: String, reason: String },
    #[error("directory grant `{path}` must be an absolute path without `.` or `..` components")]
    BadDirectory { path: String },
    #[error("environment grant `{name}` is not a valid variable name")]
    BadEnvName { name: String },
}

/// How a directory is preopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirAccess {
    ReadOnly,
    ReadWrite,
}

/// What a tool wants to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    Read,
    Write,
}

/// One network grant, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkGrant {
    /// A host name the tool may look up (and connect to what it resolves to).
    Host { name: String, port: Option<u16> },
    /// A literal address the tool may connect to without a lookup.
    Address { ip: IpAddr, port: Option<u16> },
}

/// Why a connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// The address came from a granted name's lookup, but not on the granted port.
    WrongPort { granted: u16 },
    /// The address was neither granted literally nor returned by a lookup of a
    /// granted name during this call.
    NotGranted,
}

impl std::fmt::Display for ConnectRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongPort { granted } => {
                write!(f, "the grant allows only port {granted} on this host")
            }
            Self::NotGranted => f.write_str(
                "the address is not granted and did not come from a lookup of a granted host name",
            ),
        }
    }
}

/// The enforceable form of a package's [`Capabilities`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    read_dirs: Vec<String>,
    write_dirs: Vec<String>,
    env: BTreeSet<String>,
    network: Vec<NetworkGrant>,
}

impl Policy {
    /// Parses and checks a capability declaration.
    pub fn new(caps: &Capabilities) -> Result<Self, PolicyError> {
        let dir = |path: &String| -> Result<String, PolicyError> {
            let bad = || PolicyError::BadDirectory { path: path.clone() };
            if !path.starts_with('/') {
                return Err(bad());
            }
            let normal = normalize("/", path).ok_or_else(bad)?;
            if path.split('/').any(|c| c == "." || c == "..") {
                return Err(bad());
            }
            Ok(normal)
        };
        let write_dirs: Vec<String> = caps
            .filesystem
            .write
            .iter()
            .map(dir)
            .collect::<Result<_, _>>()?;
        let read_dirs: Vec<String> = caps
            .filesystem
            .read
            .iter()
            .map(dir)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|d| !write_dirs.contains(d))
            .collect();
        for name in &caps.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(PolicyError::BadEnvName { name: name.clone() });
            }
        }
        let network = caps
            .network
            .iter()
            .map(|e| parse_network_grant(e))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            read_dirs,
            write_dirs,
            env: caps.env.iter().cloned().collect(),
            network,
        })
    }

    /// The directories to preopen, each with the access it was granted. A
    /// directory granted both ways is preopened read-write once.
    pub fn preopens(&self) -> impl Iterator<Item = (&str, DirAccess)> {
        let ro = self
            .read_dirs
            .iter()
            .map(|d| (d.as_str(), DirAccess::ReadOnly));
        let rw = self
            .write_dirs
            .iter()
            .map(|d| (d.as_str(), DirAccess::ReadWrite));
        ro.chain(rw)
    }

    /// True when the tool may open any socket or HTTP connection at all.
    pub fn has_network(&self) -> bool {
        !self.network.is_empty()
    }

    /// True when the tool is granted any environment variable.
    pub fn grants_env(&self) -> bool {
        !self.env.is_empty()
    }

    /// The environment the tool sees: the granted names that the host has,
    /// and nothing else.
    pub fn environment<I, K, V>(&self, host: I) -> Vec<(String, String)>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        host.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| self.env.contains(k))
            .collect()
    }

    /// The names among `host` (the node's environment variable names) that
    /// the tool is not granted: what was withheld when it read its
    /// environment. WASI hands the environment over as one list, so the
    /// name a tool was looking for never reaches the host; this is what the
    /// report can truthfully say instead.
    pub fn withheld_env<I, K>(&self, host: I) -> Vec<String>
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        let mut names: Vec<String> = host
            .into_iter()
            .map(Into::into)
            .filter(|k| !self.env.contains(k))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Decides a path use. `path` is the guest's absolute path after lexical
    /// normalization (see [`normalize`]); symlinks are resolved later by the
    /// directory capability itself, which refuses to leave the preopen.
    pub fn check_path(&self, path: &str, want: PathUse) -> Result<(), String> {
        let under =
            |dir: &String| path == dir || dir == "/" || path.starts_with(&format!("{dir}/"));
        if self.write_dirs.iter().any(under) {
            return Ok(());
        }
        if self.read_dirs.iter().any(under) {
            return match want {
                PathUse::Read => Ok(()),
                PathUse::Write => Err(format!("{path} is in a directory granted read-only")),
            };
        }
        Err(format!("{path} is outside every granted directory"))
    }

    /// True when the tool may look `name` up.
    pub fn check_lookup(&self, name: &str) -> bool {
        let name = canonical_host(name);
        self.network
            .iter()
            .any(|g| matches!(g, NetworkGrant::Host { name: n, .. } if *n == name))
    }

    /// Decides a socket connection. `looked_up` maps each address that a
    /// lookup of a granted name returned during this call to those names.
    pub fn check_connect(
        &self,
        addr: SocketAddr,
        looked_up: &LookupLog,
    ) -> Result<(), ConnectRefusal> {
        let port_ok = |granted: &Option<u16>| granted.is_none_or(|p| p == addr.port());
        let mut wrong_port = None;
        for grant in &self.network {
            let (matches, port) = match grant {
                NetworkGrant::Address { ip, port } => (*ip == addr.ip(), port),
                NetworkGrant::Host { name, port } => (looked_up.returned(name, addr.ip()), port),
            };
            if matches {
                if port_ok(port) {
                    return Ok(());
                }
                wrong_port = *port;
            }
        }
        match wrong_port {
            Some(granted) => Err(ConnectRefusal::WrongPort { granted }),
            None => Err(ConnectRefusal::NotGranted),
        }
    }

    /// Decides a wasi:http outgoing request by its authority (`host[:port]`);
    /// `default_port` is the scheme's (80 or 443).
    pub fn check_http_authority(&self, authority: &str, default_port: u16) -> Result<(), String> {
        let (host, port) = split_host_port(authority)
            .map_err(|reason| format!("authority `{authority}` is malformed: {reason}"))?;
        let port = port.unwrap_or(default_port);
        let host = canonical_host(&host);
        let literal: Option<IpAddr> = host.parse().ok();
        for grant in &self.network {
            let (matches, granted_port) = match grant {
                NetworkGrant::Host { name, port } => (*name == host, port),
                NetworkGrant::Address { ip, port } => (Some(*ip) == literal, port),
            };
            if matches {
                return match granted_port {
                    Some(p) if *p != port => Err(format!(
                        "{host}:{port} is refused: the grant allows only port {p}"
                    )),
                    _ => Ok(()),
                };
            }
        }
        Err(format!("{host}:{port} is not a granted host"))
    }
}

/// Addresses returned by lookups of granted names during one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupLog {
    by_name: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl LookupLog {
    /// Records that a lookup of `name` returned `ip`.
    pub fn record(&mut self, name: &str, ip: IpAddr) {
        self.by_name
            .entry(canonical_host(name))
            .or_default()
            .insert(ip);
    }

    /// True when a lookup of `name` returned `ip`.
    pub fn returned(&self, name: &str, ip: IpAddr) -> bool {
        self.by_name.get(name).is_some_and(|ips| ips.contains(&ip))
    }
}

/// Joins `rel` onto the absolute guest directory `base` and resolves `.` and
/// `..` lexically. `None` when the result would climb above `/`. An absolute
/// `rel` replaces `base`.
pub fn normalize(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    let start = if rel.starts_with('/') { "" } else { base };
    for part in start.split('/').chain(rel.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn canonical_host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Splits `host[:port]`, `[v6]:port` or a bare IPv6 address.
fn split_host_port(entry: &str) -> Result<(String, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number"))
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing `]`")?;
        return match after {
            "" => Ok((host.to_string(), None)),
            _ => Ok((
                host.to_string(),
                Some(port(
                    after
                        .strip_prefix(':')
                        .ok_or("expected `:PORT` after `]`")?,
                )?),
            )),
        };
    }
    if entry.parse::<IpAddr>().is_ok() {
        return Ok((entry.to_string(), None));
    }
    match entry.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_string(), Some(port(p)?))),
        None => Ok((entry.to_string(), None)),
    }
}

fn parse_network_grant(entry: &str) -> Result<NetworkGrant, PolicyError> {
    let bad = |reason: &str| PolicyError::BadNetworkEntry {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = split_host_port(entry).map_err(|r| bad(&r))?;
    if port == Some(0) {
        return Err(bad("port 0 is not a port"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(NetworkGrant::Address { ip, port });
    }
    let name = canonical_host(&host);
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(bad("not a valid host name"));
    }
    Ok(NetworkGrant::Host { name, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::capabilities::FilesystemGrant;

    fn policy(read: &[&str], write: &[&str], net: &[&str], env: &[&str]) -> Policy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Policy::new(&Capabilities {
            network: s(net),
            filesystem: FilesystemGrant {
                read: s(read),
                write: s(write),
            },
            env: s(env),
        })
        .unwrap()
    }

    #[test]
    fn normalize_resolves_dots_and_refuses_climbing_out() {
        assert_eq!(
            normalize("/data", "a/./b/../c").as_deref(),
            Some("/data/a/c")
        );
        assert_eq!(
            normalize("/data", "../etc/passwd").as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(normalize("/", "../../x"), None);
        assert_eq!(
            normalize("/data", "/etc/passwd").as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(normalize("/", "").as_deref(), Some("/"));
    }

    #[test]
    fn paths_follow_the_grant() {
        let p = policy(&["/data"], &["/notes"], &[], &[]);
        assert!(p.check_path("/data/a.txt", PathUse::Read).is_ok());
        assert!(p.check_path("/data", PathUse::Read).is_ok());
        assert!(p
            .check_path("/data/a.txt", PathUse::Write)
            .unwrap_err()
            .contains("read-only"));
        assert!(p.check_path("/notes/n.md", PathUse::Write).is_ok());
        assert!(p.check_path("/notes/n.md", PathUse::Read).is_ok());
        assert!(p.check_path("/database/x", PathUse::Read).is_err());
        assert!(p
            .check_path("/etc/passwd", PathUse::Read)
            .unwrap_err()
            .contains("outside"));
        assert!(p.check_path("/", PathUse::Read).is_err());
    }

    #[test]
    fn directory_grants_must_be_plain_absolute_paths() {
        let caps = |d: &str| Capabilities {
            filesystem: FilesystemGrant {
                read: vec![d.into()],
                write: vec![],
            },
            ..Default::default()
        };
        assert!(Policy::new(&caps("relative/dir")).is_err());
        assert!(Policy::new(&caps("/data/../etc")).is_err());
        assert!(Policy::new(&caps("/data/")).is_ok());
    }

    #[test]
    fn a_dir_granted_both_ways_is_preopened_once_read_write() {
        let p = policy(&["/a", "/b"], &["/b"], &[], &[]);
        let pre: Vec<_> = p.preopens().collect();
        assert_eq!(
            pre,
            vec![("/a", DirAccess::ReadOnly), ("/b", DirAccess::ReadWrite)]
        );
    }

    #[test]
    fn withheld_env_names_everything_not_granted() {
        let p = policy(&[], &[], &[], &["LANG"]);
        assert_eq!(
            p.withheld_env(["SECRET", "LANG", "HOME", "SECRET"]),
            vec!["HOME".to_string(), "SECRET".to_string()]
        );
        assert!(p.withheld_env(["LANG"]).is_empty());
    }

    #[test]
    fn environment_keeps_only_granted_names() {
        let p = policy(&[], &[], &[], &["LANG"]);
        let env = p.environment([("LANG", "C"), ("HOME", "/root"), ("SECRET", "x")]);
        assert_eq!(env, vec![("LANG".to_string(), "C".to_string())]);
    }

    #[test]
    fn lookups_only_for_granted_names() {
        let p = policy(&[], &[], &["Api.Example.com:443", "10.0.0.1"], &[]);
        assert!(p.check_lookup("api.example.com"));
        assert!(p.check_lookup("API.example.com."));
        assert!(!p.check_lookup("example.com"));
        assert!(!p.check_lookup("10.0.0.1"));
    }

    #[test]
    fn connects_need_a_lookup_of_a_granted_name_and_its_port() {
        let p = policy(&[], &[], &["localhost:8080", "10.0.0.1", "[::1]:9"], &[]);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mut log = LookupLog::default();
        let at = |ip: &str, port| SocketAddr::new(ip.parse().unwrap(), port);
        // Not looked up yet: refused.
        assert_eq!(
            p.check_connect(at("127.0.0.1", 8080), &log),
            Err(ConnectRefusal::NotGranted)
        );
        log.record("localhost", lo);
        assert_eq!(p.check_connect(at("127.0.0.1", 8080), &log), Ok(()));
        assert_eq!(
            p.check_connect(at("127.0.0.1", 8081), &log),
            Err(ConnectRefusal::WrongPort { granted: 8080 })
        );
        assert_eq!(
            p.check_connect(at("127.0.0.2", 8080), &log),
            Err(ConnectRefusal::NotGranted)
        );
        // Literal grants need no lookup, any port when none is given.
        assert_eq!(p.check_connect(at("10.0.0.1", 22), &log), Ok(()));
        assert_eq!(p.check_connect(at("::1", 9), &log), Ok(()));
        assert!(p.check_connect(at("::1", 10), &log).is_err());
    }

    #[test]
    fn lookups_of_other_names_do_not_open_addresses() {
        let p = policy(&[], &[], &["localhost:80"], &[]);
        let mut log = LookupLog::default();
        log.record("evil.example", "127.0.0.1".parse().unwrap());
        let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), 80);
        assert_eq!(p.check_connect(addr, &log), Err(ConnectRefusal::NotGranted));
    }

    #[test]
    fn http_authorities_follow_the_grant() {
        let p = policy(
            &[],
            &[],
            &["localhost:8080", "api.example.com", "10.1.2.3:80"],
            &[],
        );
        assert!(p.check_http_authority("localhost:8080", 80).is_ok());
        assert!(p
            .check_http_authority("localhost:8081", 80)
            .unwrap_err()
            .contains("only port 8080"));
        assert!(p.check_http_authority("localhost", 80).is_err());
        assert!(p.check_http_authority("api.example.com", 443).is_ok());
        assert!(p.check_http_authority("api.example.com:8443", 443).is_ok());
        assert!(p.check_http_authority("10.1.2.3", 80).is_ok());
        assert!(p
            .check_http_authority("evil.example", 80)
            .unwrap_err()
            .contains("not a granted"));
    }

    #[test]
    fn malformed_network_grants_are_refused() {
        let caps = |e: &str| Capabilities {
            network: vec![e.into()],
            ..Default::default()
        };
        for bad in ["host:notaport", "host:0", "bad host", "[::1", "a..b", ""] {
            assert!(Policy::new(&caps(bad)).is_err(), "{bad} should be refused");
        }
        assert!(Policy::new(&caps("::1")).is_ok());
        assert!(Policy::new(&caps("[::1]:443")).is_ok());
    }
}
