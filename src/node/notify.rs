//! Readiness notifications to a service manager (systemd's `sd_notify`
//! protocol): when `$NOTIFY_SOCKET` is set, a node under a `Type=notify`
//! unit sends `READY=1` once it serves and `STOPPING=1` when it begins to
//! shut down, as one datagram each to that Unix socket (a path, or an
//! abstract socket when it starts with `@`). Without `$NOTIFY_SOCKET` every
//! notification is a no-op. This module owns only the protocol; the node
//! decides when to notify.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixDatagram;

/// The environment variable a service manager sets to its socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// A notification that could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{NOTIFY_SOCKET_ENV}={0:?} is neither an absolute socket path nor an abstract socket (@NAME)")]
    BadAddress(String),
    #[error("cannot notify the service manager at {NOTIFY_SOCKET_ENV}={addr:?}: {source}")]
    Send {
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// Tells the service manager that the node is ready (`READY=1`).
pub fn notify_ready() -> Result<(), NotifyError> {
    notify("READY=1\n")
}

/// Tells the service manager that the node is stopping (`STOPPING=1`).
pub fn notify_stopping() -> Result<(), NotifyError> {
    notify("STOPPING=1\n")
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the socket
/// named by `$NOTIFY_SOCKET`; does nothing when it is unset or empty.
pub fn notify(state: &str) -> Result<(), NotifyError> {
    notify_at(std::env::var_os(NOTIFY_SOCKET_ENV).as_deref(), state)
}

/// [`notify`] with the value of `$NOTIFY_SOCKET` given.
fn notify_at(addr: Option<&OsStr>, state: &str) -> Result<(), NotifyError> {
    match addr {
        Some(addr) if !addr.is_empty() => send_to(addr, state),
        _ => Ok(()),
    }
}

/// Sends `state` as one datagram to the notification socket `addr` (a path,
/// or `@NAME` for an abstract socket).
pub fn send_to(addr: &OsStr, state: &str) -> Result<(), NotifyError> {
    let shown = addr.to_string_lossy().into_owned();
    let failed = |source| NotifyError::Send {
        addr: shown.clone(),
        source,
    };
    let socket = UnixDatagram::unbound().map_err(failed)?;
    let bytes = addr.as_bytes();
    let sent = match bytes.first() {
        Some(b'/') => socket.send_to(state.as_bytes(), addr),
        Some(b'@') => send_abstract(&socket, &bytes[1..], state.as_bytes()),
        _ => return Err(NotifyError::BadAddress(shown)),
    };
    match sent {
        Ok(n) if n == state.len() => Ok(()),
        Ok(n) => Err(failed(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {n} of {} bytes", state.len()),
        ))),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], data: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(data, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_and_stopping_arrive_on_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind");
        send_to(path.as_os_str(), "READY=1\n").expect("send");
        assert_eq!(receive(&socket), "READY=1\n");
        send_to(path.as_os_str(), "STOPPING=1\n").expect("send");
        assert_eq!(receive(&socket), "STOPPING=1\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("vigil-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        send_to(OsStr::new(&format!("@{name}")), "READY=1\n").expect("send");
        assert_eq!(receive(&socket), "READY=1\n");
    }

    #[test]
    fn without_a_socket_notifying_does_nothing() {
        notify_at(None, "READY=1\n").expect("unset: no-op");
        notify_at(Some(OsStr::new("")), "READY=1\n").expect("empty: no-op");
    }

    #[test]
    fn a_relative_address_is_refused_and_a_missing_socket_is_an_error() {
        let err = send_to(OsStr::new("notify.sock"), "READY=1\n").expect_err("relative");
        assert!(matches!(err, NotifyError::BadAddress(_)), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent.sock");
        let err = send_to(missing.as_os_str(), "READY=1\n").expect_err("no socket");
        assert!(matches!(err, NotifyError::Send { .. }), "{err}");
    }
}
