//! Shared fixtures for the link and tunnel tests: a trust policy the test
//! controls, an observer that records events, and TCP targets on 127.0.0.1.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_crypto::{CompositePublicKey, SigningKey};
use vigil_transport::link::client_endpoint;
use vigil_transport::{
    Dialer, LinkConfig, LinkEvent, LinkIdentity, LinkObserver, LinkServer, PeerPolicy, PeerStatus,
    Recorded, ServerContext, Target,
};

/// A peer's status and allowed targets.
type PeerEntry = (PeerStatus, HashSet<Target>);

/// A trust store held in memory, keyed by composite public key bytes.
#[derive(Default)]
pub struct TestPolicy {
    peers: Mutex<HashMap<Vec<u8>, PeerEntry>>,
}

impl TestPolicy {
    pub fn trust(&self, key: &CompositePublicKey, name: &str, targets: &[&Target]) {
        self.peers.lock().unwrap().insert(
            key.as_bytes().to_vec(),
            (
                PeerStatus::Trusted { name: name.into() },
                targets.iter().map(|t| (*t).clone()).collect(),
            ),
        );
    }

    pub fn revoke(&self, key: &CompositePublicKey) {
        if let Some(entry) = self.peers.lock().unwrap().get_mut(key.as_bytes()) {
            entry.0 = PeerStatus::Revoked;
        }
    }
}

impl PeerPolicy for TestPolicy {
    fn peer_status(&self, key: &CompositePublicKey) -> PeerStatus {
        self.peers
            .lock()
            .unwrap()
            .get(key.as_bytes())
            .map_or(PeerStatus::Unknown, |(s, _)| s.clone())
    }

    fn target_allowed(&self, key: &CompositePublicKey, target: &Target) -> bool {
        self.peers
            .lock()
            .unwrap()
            .get(key.as_bytes())
            .is_some_and(|(_, t)| t.contains(target))
    }
}

/// Records every event; can be told to fail recording allow decisions, as
/// a node whose ledger is unavailable does.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<LinkEvent>>,
    pub fail_link_allows: std::sync::atomic::AtomicBool,
    pub fail_tunnel_allows: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// Waits up to 10 s for an event matching `want`.
    pub async fn wait_for(&self, want: impl Fn(&LinkEvent) -> bool) -> LinkEvent {
        for _ in 0..200 {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| want(e)) {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected event never came; got {:#?}",
            self.events.lock().unwrap()
        );
    }

    /// Waits up to 20 s until `n` events match `want`.
    pub async fn wait_count(&self, n: usize, want: impl Fn(&LinkEvent) -> bool) {
        let mut seen = 0;
        for _ in 0..400 {
            seen = self
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| want(e))
                .count();
            if seen >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} matching events, saw {seen}");
    }

    pub fn events(&self) -> Vec<LinkEvent> {
        self.events.lock().unwrap().clone()
    }
}

impl LinkObserver for Recorder {
    fn record(&self, event: LinkEvent) {
        self.events.lock().unwrap().push(event);
    }

    fn record_allow(&self, event: LinkEvent) -> Recorded {
        use std::sync::atomic::Ordering::SeqCst;
        let fail = match &event {
            LinkEvent::LinkOpened { .. } => self.fail_link_allows.load(SeqCst),
            LinkEvent::TunnelOpened { .. } => self.fail_tunnel_allows.load(SeqCst),
            _ => false,
        };
        if fail {
            return Box::pin(std::future::ready(Err("ledger unavailable (test)".into())));
        }
        self.record(event);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Short timeouts so that a dead peer is noticed quickly in tests.
pub fn test_config() -> LinkConfig {
    LinkConfig {
        handshake_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(3),
        keep_alive: Duration::from_millis(500),
        ..LinkConfig::default()
    }
}

pub fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A serving node with its own key, policy and recorder.
pub struct ServingNode {
    pub key: CompositePublicKey,
    pub identity: Arc<LinkIdentity>,
    pub policy: Arc<TestPolicy>,
    pub recorder: Arc<Recorder>,
}

impl ServingNode {
    pub fn new() -> Self {
        let identity = Arc::new(LinkIdentity::new(SigningKey::generate()).unwrap());
        Self {
            key: identity.public_key().clone(),
            identity,
            policy: Arc::new(TestPolicy::default()),
            recorder: Arc::new(Recorder::default()),
        }
    }

    pub fn context(&self) -> ServerContext {
        ServerContext {
            identity: self.identity.clone(),
            policy: self.policy.clone(),
            observer: self.recorder.clone(),
            config: test_config(),
        }
    }

    pub fn start(&self, addr: SocketAddr) -> LinkServer {
        LinkServer::start(addr, self.context()).unwrap()
    }
}

/// A dialling node with a fresh key.
pub fn dialer() -> Dialer {
    let identity = Arc::new(LinkIdentity::new(SigningKey::generate()).unwrap());
    Dialer::new(
        client_endpoint(localhost()).unwrap(),
        identity,
        test_config(),
    )
    .unwrap()
}

/// A TCP echo server: echoes until EOF, then half-closes.
pub async fn echo_target() -> Target {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    Target::parse(&addr.to_string()).unwrap()
}

/// A TCP target that reports how each connection's reading ended.
pub async fn reporting_target() -> (
    Target,
    tokio::sync::mpsc::UnboundedReceiver<std::io::Result<u64>>,
) {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut total = 0u64;
                let result = loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) => break Ok(total),
                        Ok(n) => total += n as u64,
                        Err(e) => break Err(e),
                    }
                };
                let _ = tx.send(result);
            });
        }
    });
    (Target::parse(&addr.to_string()).unwrap(), rx)
}
