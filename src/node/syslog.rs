//! The SIEM stream's syslog sink (docs/siem.md): each ledger entry as one
//! RFC 5424 message whose MSG is the ECS JSON line, sent to a collector over
//! TCP with RFC 6587 octet counting, or over TLS (RFC 5425, rustls, the
//! collector's certificate checked against `syslog_ca_file`).
//!
//! TCP has no application acknowledgement, so delivery is at least once:
//! the next index to send is kept in `siem/syslog.cursor` (written after
//! each batch is flushed), and after a crash the last batch may be sent
//! again; `event.sequence` in each message lets the collector drop repeats.
//! An unreachable collector is retried with a growing pause (up to 30 s);
//! nothing is skipped.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vigil_ledger::Entry;

use crate::control::protocol::EntryView;
use crate::node::audit::Auditor;
use crate::node::home::Home;
use crate::node::siem::{ecs_line, SiemConfig};

/// Facility `log audit` (13) of RFC 5424.
const FACILITY: u8 = 13;
const BATCH: u64 = 500;
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// One RFC 5424 message (with its octet-counting frame) for entry `e` of
/// the log `origin`.
pub fn frame(e: &EntryView, origin: &str) -> String {
    let severity = match e.decision.as_str() {
        "deny" => 4,  // warning
        "allow" => 6, // informational
        _ => 5,       // notice
    };
    let pri = u16::from(FACILITY) * 8 + severity;
    // TIME-SECFRAC allows at most six digits.
    let stamp = vigil_ledger::report::rfc3339(e.timestamp_ns);
    let stamp = format!("{}Z", &stamp[..26]);
    let host: String = origin
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let msgid: String = e
        .kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let message = format!(
        "<{pri}>1 {stamp} {} vigil - {} - {}",
        if host.is_empty() { "-" } else { &host },
        if msgid.is_empty() { "-" } else { &msgid },
        ecs_line(e, origin)
    );
    format!("{} {message}", message.len())
}

enum Connection {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Connection {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Self::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }
}

/// The configured collector. See the module documentation.
pub struct Sink {
    address: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    cursor_path: PathBuf,
}

impl Sink {
    /// The sink of `[siem] syslog`, or `None` when unset. Bad TLS settings
    /// are an error at once.
    pub fn open(home: &Home, config: &SiemConfig) -> anyhow::Result<Option<Self>> {
        let Some(address) = &config.syslog else {
            return Ok(None);
        };
        let host = address
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .ok_or_else(|| anyhow::anyhow!("[siem] syslog = {address:?} is not host:port"))?;
        let tls = if config.syslog_tls {
            let ca = config.syslog_ca_file.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "[siem] syslog_tls needs syslog_ca_file (the CA certificates of the collector)"
                )
            })?;
            let ca = home.root().join(ca);
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject as _;
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca)
                .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?
            {
                roots.add(cert.map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?)?;
            }
            if roots.is_empty() {
                anyhow::bail!("{}: no certificate", ca.display());
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = config
                .syslog_server_name
                .clone()
                .unwrap_or_else(|| host.to_string());
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                anyhow::anyhow!("[siem] syslog server name {name:?} is not a DNS name or address")
            })?;
            Some((Arc::new(tls), name))
        } else {
            None
        };
        let dir = home.root().join("siem");
        std::fs::create_dir_all(&dir)?;
        Ok(Some(Self {
            address: address.clone(),
            tls,
            cursor_path: dir.join("syslog.cursor"),
        }))
    }

    fn connect(&self) -> anyhow::Result<Connection> {
        let addr = self
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} resolves to no address", self.address))?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            None => Connection::Tcp(tcp),
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())?;
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                // Complete the handshake now, so that a bad certificate is
                // reported as such rather than as a failed write.
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock)?;
                }
                Connection::Tls(Box::new(stream))
            }
        })
    }

    /// Sends entries from the cursor on as they are recorded, until `stop`
    /// (then it sends what is recorded, unless the collector is down).
    pub fn run(self, auditor: &Auditor, stop: &AtomicBool) {
        let origin = auditor.origin().to_string();
        let mut cursor = read_cursor(&self.cursor_path);
        let mut connection: Option<Connection> = None;
        let mut pause = Duration::from_millis(250);
        loop {
            let size = auditor.ledger().size();
            if cursor >= size {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                auditor.wait_for_growth(size, Duration::from_millis(200));
                continue;
            }
            let sent = (|| -> anyhow::Result<u64> {
                if connection.is_none() {
                    connection = Some(self.connect()?);
                }
                let end = size.min(cursor + BATCH);
                let mut bytes = String::new();
                for raw in auditor.ledger().raw_entries(cursor..end) {
                    let e = Entry::decode(&raw?)?;
                    bytes.push_str(&frame(&EntryView::of(&e), &origin));
                }
                if let Some(c) = connection.as_mut() {
                    c.send(bytes.as_bytes())?;
                }
                write_cursor(&self.cursor_path, end)?;
                Ok(end)
            })();
            match sent {
                Ok(end) => {
                    cursor = end;
                    pause = Duration::from_millis(250);
                }
                Err(e) => {
                    connection = None;
                    tracing::warn!(collector = %self.address, error = %e, "syslog delivery failed; retrying");
                    eprintln!(
                        "warning: syslog delivery to {} failed ({e}); retrying in {} ms",
                        self.address,
                        pause.as_millis()
                    );
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}

fn read_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn write_cursor(path: &Path, next: u64) -> std::io::Result<()> {
    crate::trust::file::write_atomic(path, format!("{next}\n").as_bytes())
}
