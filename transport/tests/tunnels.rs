//! TCP tunnels over links on real sockets on 127.0.0.1: bulk integrity,
//! half-close, reset, backpressure, re-keying, and a serving node killed
//! mid-transfer.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{dialer, echo_target, localhost, reporting_target, ServingNode};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_transport::{
    IgnoreEvents, LinkEvent, LinkServer, ReconnectPolicy, Target, TunnelClient, TunnelSpec,
};

const MIB: usize = 1024 * 1024;

fn spec(node: &ServingNode, server: SocketAddr, target: &Target) -> TunnelSpec {
    TunnelSpec {
        listen: localhost(),
        peer_addr: server,
        peer_key: node.key.clone(),
        target: target.clone(),
        reconnect: ReconnectPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
            link_lifetime: None,
            wait_for_link: Duration::from_secs(15),
        },
    }
}

async fn start_tunnel(node: &ServingNode, server: SocketAddr, target: &Target) -> TunnelClient {
    start_tunnel_with(node, spec(node, server, target)).await
}

async fn start_tunnel_with(node: &ServingNode, spec: TunnelSpec) -> TunnelClient {
    let dialer = dialer();
    let targets = [&spec.target];
    node.policy
        .trust(dialer.identity().public_key(), "edge", &targets);
    TunnelClient::start(dialer, spec, Arc::new(IgnoreEvents))
        .await
        .unwrap()
}

/// Sends `len` pseudo-random bytes through the tunnel to an echo target,
/// half-closes, reads the echo to EOF; returns (sent hash, echoed hash, echoed length).
async fn echo_through(addr: SocketAddr, seed: u64, len: usize) -> ([u8; 32], [u8; 32], usize) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut hash = Sha256::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            rng.fill_bytes(&mut chunk[..n]);
            hash.update(&chunk[..n]);
            w.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        w.shutdown().await.unwrap();
        <[u8; 32]>::from(hash.finalize())
    });
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        got += n;
    }
    (writer.await.unwrap(), hash.finalize().into(), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tunnels_of_16_mib_arrive_byte_identical() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let target = echo_target().await;
    let tunnel = start_tunnel(&node, server.local_addr().unwrap(), &target).await;
    let addr = tunnel.local_addr();

    let transfers: Vec<_> = (0..32u64)
        .map(|i| tokio::spawn(echo_through(addr, i, 16 * MIB)))
        .collect();
    for (i, t) in transfers.into_iter().enumerate() {
        let (sent, echoed, len) = t.await.unwrap();
        assert_eq!(len, 16 * MIB, "connection {i} lost bytes");
        assert_eq!(sent, echoed, "connection {i} corrupted bytes");
    }
    assert_eq!(tunnel.links_established(), 1, "all tunnels share one link");
    // The serving node recorded 32 clean tunnels with their byte counts.
    node.recorder
        .wait_count(32, |e| {
            matches!(e, LinkEvent::TunnelClosed { stats, .. }
                if stats.clean && stats.bytes_to_target == (16 * MIB) as u64
                    && stats.bytes_from_target == (16 * MIB) as u64)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_keeps_the_other_direction_open() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let target = echo_target().await;
    let tunnel = start_tunnel(&node, server.local_addr().unwrap(), &target).await;

    let mut tcp = TcpStream::connect(tunnel.local_addr()).await.unwrap();
    tcp.write_all(b"first half").await.unwrap();
    tcp.shutdown().await.unwrap();
    // Our write side is closed; the echo still arrives, then EOF.
    let mut echoed = Vec::new();
    tcp.read_to_end(&mut echoed).await.unwrap();
    assert_eq!(echoed, b"first half");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_reaches_the_target_as_a_reset() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let (target, mut outcomes) = reporting_target().await;
    let tunnel = start_tunnel(&node, server.local_addr().unwrap(), &target).await;

    // A clean close arrives as EOF with every byte.
    let mut tcp = TcpStream::connect(tunnel.local_addr()).await.unwrap();
    tcp.write_all(&[7u8; 1000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let clean = tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(clean.unwrap(), 1000);

    // An abortive close arrives as a reset.
    let tcp = TcpStream::connect(tunnel.local_addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tcp = tcp;
    tcp.write_all(b"partial").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tcp.set_zero_linger().unwrap();
    drop(tcp);
    let reset = tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
        .await
        .unwrap()
        .unwrap();
    let err = reset.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_rekeyed_after_their_lifetime_without_breaking_tunnels() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let target = echo_target().await;
    let mut spec = spec(&node, server.local_addr().unwrap(), &target);
    spec.reconnect.link_lifetime = Some(Duration::from_millis(700));
    let tunnel = start_tunnel_with(&node, spec).await;

    let mut tcp = TcpStream::connect(tunnel.local_addr()).await.unwrap();
    let mut buf = [0u8; 5];
    tcp.write_all(b"early").await.unwrap();
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"early");

    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        tunnel.links_established() >= 2,
        "expected a re-key, got {} links",
        tunnel.links_established()
    );
    // The tunnel opened on the first link still works...
    tcp.write_all(b"later").await.unwrap();
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"later");
    // ...and new tunnels use the new link.
    let (sent, echoed, len) = echo_through(tunnel.local_addr(), 99, 100_000).await;
    assert_eq!((sent, len), (echoed, 100_000));
}

/// A serving node on its own runtime, so that it can be killed without any
/// goodbye: no CONNECTION_CLOSE, the socket simply disappears.
struct KillableNode(Option<tokio::runtime::Runtime>);

impl KillableNode {
    fn kill(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for KillableNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_node(node: &ServingNode, addr: SocketAddr) -> (KillableNode, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server: LinkServer = {
        let _guard = runtime.enter();
        LinkServer::start(addr, node.context()).unwrap()
    };
    let bound = server.local_addr().unwrap();
    // The server lives as long as its runtime.
    runtime.spawn(async move {
        let _server = server;
        std::future::pending::<()>().await;
    });
    (KillableNode(Some(runtime)), bound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_gives_a_clean_error_and_the_tunnel_recovers_after_restart() {
    let node = ServingNode::new();
    let (mut runtime, server_addr) = spawn_node(&node, localhost());
    let target = echo_target().await;
    let tunnel = start_tunnel(&node, server_addr, &target).await;

    // A long upload is under way when the node dies (nobody reads the echo,
    // so backpressure soon stalls the writer, as it would over TCP).
    let mut tcp = TcpStream::connect(tunnel.local_addr()).await.unwrap();
    let chunk = vec![1u8; 256 * 1024];
    for _ in 0..4 {
        tcp.write_all(&chunk).await.unwrap();
    }
    runtime.kill();
    let failure = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Err(e) = tcp.write_all(&chunk).await {
                return e;
            }
        }
    })
    .await
    .expect("the client must see an error, not hang");
    assert!(
        matches!(
            failure.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{failure}"
    );

    // The node comes back on the same address with the same identity; the
    // tunnel client redials on its own and carries bytes intact again.
    let (_runtime, again) = spawn_node(&node, server_addr);
    assert_eq!(again, server_addr);
    // The echo target is reached only through a live serving node, and the
    // first one is dead: these bytes went over a redialled link.
    let (sent, echoed, len) = echo_through(tunnel.local_addr(), 7, 2 * MIB).await;
    assert_eq!((sent, len), (echoed, 2 * MIB));
}

/// A target that accepts one connection, reads nothing until `go` is
/// notified, then reads to EOF and sends back the SHA-256 of what it got.
async fn paused_target(
    go: Arc<tokio::sync::Notify>,
) -> (Target, tokio::sync::oneshot::Receiver<([u8; 32], usize)>) {
    let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
    let target = Target::parse(&listener.local_addr().unwrap().to_string()).unwrap();
    let (done, result) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        go.notified().await;
        let (mut hash, mut got, mut buf) = (Sha256::new(), 0, vec![0u8; 256 * 1024]);
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            got += n;
        }
        let _ = done.send((hash.finalize().into(), got));
    });
    (target, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_reading_stalls_the_sender_and_loses_nothing() {
    const TOTAL: usize = 512 * MIB;
    // What may sit in buffers while the target reads nothing: the four TCP
    // sockets' buffers (a few MiB each at most), the stream's 4 MiB flow
    // control window and the splice buffers. About 13 MiB was seen here.
    const BOUND: usize = 48 * MIB;
    let node = ServingNode::new();
    let server = node.start(localhost());
    let go = Arc::new(tokio::sync::Notify::new());
    let (target, result) = paused_target(go.clone()).await;
    let tunnel = start_tunnel(&node, server.local_addr().unwrap(), &target).await;

    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tcp = TcpStream::connect(tunnel.local_addr()).await.unwrap();
    let writer = {
        let written = written.clone();
        tokio::spawn(async move {
            let (_r, mut w) = tcp.into_split();
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let (mut hash, mut chunk) = (Sha256::new(), vec![0u8; 256 * 1024]);
            while written.load(std::sync::atomic::Ordering::SeqCst) < TOTAL {
                rng.fill_bytes(&mut chunk);
                hash.update(&chunk);
                w.write_all(&chunk).await.unwrap();
                written.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
            }
            w.shutdown().await.unwrap();
            <[u8; 32]>::from(hash.finalize())
        })
    };

    // The writer fills the buffers, then stalls: the amount accepted stops
    // growing, well short of everything.
    let mut stalled_at = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = written.load(std::sync::atomic::Ordering::SeqCst);
        if now == stalled_at && now > 0 {
            break;
        }
        stalled_at = now;
    }
    assert!(
        stalled_at > 0 && stalled_at <= BOUND,
        "the sender got {} MiB accepted while the target read nothing",
        stalled_at / MIB
    );
    assert!(!writer.is_finished());

    // Once the target reads, every byte arrives, in order.
    go.notify_one();
    let sent = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer finishes once the target reads")
        .unwrap();
    let (received, len) = result.await.unwrap();
    assert_eq!((received, len), (sent, TOTAL));
}
