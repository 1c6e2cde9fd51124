//! Path MTU discovery on a path narrower than loopback: a UDP relay on
//! 127.0.0.1 that drops every datagram larger than a 1500-byte Ethernet
//! frame carries (1472 bytes of UDP payload over IPv4), as such a network
//! does. A link over it must still grow past QUIC's 1200-byte start.
//!
//! Also: a second link to a peer starts at the path MTU the first one
//! measured, without probing, and a remembered size the path no longer
//! carries is given up within the same dial and forgotten by both ends.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{dialer, localhost, test_config, ServingNode};
use tokio::net::UdpSocket;
use vigil_crypto::SigningKey;
use vigil_transport::link::{client_endpoint, MAX_UDP_PAYLOAD};
use vigil_transport::{
    Dialer, Link, LinkConfig, LinkEvent, LinkIdentity, LinkServer, ServerContext,
};

/// The largest UDP payload a 1500-byte IPv4 Ethernet path carries.
const ETHERNET_UDP_PAYLOAD: usize = 1472;

/// The sizes of the datagrams a relay passed on, in order: `true` for
/// client to server.
type Passed = Arc<Mutex<Vec<(bool, usize)>>>;

/// Relays datagrams between one client and `server`, dropping any larger
/// than `limit`. Returns the address clients send to and a log of what
/// was passed on.
async fn narrow_relay(server: SocketAddr, limit: usize) -> (SocketAddr, Passed) {
    let front = Arc::new(UdpSocket::bind(localhost()).await.unwrap());
    let back = Arc::new(UdpSocket::bind(localhost()).await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let passed = Passed::default();
    let (client_tx, mut client_rx) = tokio::sync::watch::channel(None::<SocketAddr>);
    {
        let (front, back, passed) = (front.clone(), back.clone(), passed.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                client_tx.send_replace(Some(from));
                if n <= limit {
                    passed.lock().unwrap().push((true, n));
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let passed = passed.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let Some(client) = *client_rx.borrow_and_update() else {
                    continue;
                };
                if n <= limit {
                    passed.lock().unwrap().push((false, n));
                    let _ = front.send_to(&buf[..n], client).await;
                }
            }
        });
    }
    (addr, passed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtu_discovery_grows_links_on_an_ethernet_sized_path() {
    let (node, server, client) = trusted_client();
    let (relay, _) = narrow_relay(server.local_addr().unwrap(), ETHERNET_UDP_PAYLOAD).await;

    let link = client.dial(relay, &node.key).await.unwrap();
    // Probes that are too large are lost and retried a few times each; give
    // the search time to finish.
    let mut mtu = 0;
    for _ in 0..100 {
        mtu = link.connection().stats().path.current_mtu;
        if mtu >= 1400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (1400..=ETHERNET_UDP_PAYLOAD as u16).contains(&mtu),
        "path MTU stuck at {mtu} bytes on a path that carries {ETHERNET_UDP_PAYLOAD}"
    );
}

/// Waits until `done` holds for the link's QUIC statistics (10 s at most)
/// and returns them.
async fn wait_for_stats(
    link: &Link,
    done: impl Fn(&quinn::ConnectionStats) -> bool,
) -> quinn::ConnectionStats {
    let mut stats = link.connection().stats();
    for _ in 0..200 {
        if done(&stats) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = link.connection().stats();
    }
    stats
}

/// A serving node on 127.0.0.1 and a client it trusts.
fn trusted_client() -> (ServingNode, LinkServer, Dialer) {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "edge-mtu", &[]);
    (node, server, client)
}

/// A link to `node` at `addr` once its path MTU search reached the largest
/// size links use (loopback carries it).
async fn link_at_full_size(client: &Dialer, addr: SocketAddr, node: &ServingNode) -> Link {
    let link = client.dial(addr, &node.key).await.unwrap();
    let stats = wait_for_stats(&link, |s| s.path.current_mtu == MAX_UDP_PAYLOAD).await;
    assert_eq!(stats.path.current_mtu, MAX_UDP_PAYLOAD);
    link
}

/// Waits until the serving node has seen `closed` links end (and so
/// remembered their paths).
async fn wait_for_closed_links(node: &ServingNode, closed: usize) {
    for _ in 0..200 {
        let seen = node
            .recorder
            .events()
            .iter()
            .filter(|e| matches!(e, LinkEvent::LinkClosed { .. }))
            .count();
        if seen >= closed {
            // The link is dropped (and its path remembered) right after.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the serving node never saw {closed} link(s) close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_link_to_a_peer_starts_at_the_remembered_size_without_probing() {
    let (node, server, client) = trusted_client();
    let addr = server.local_addr().unwrap();

    let first = link_at_full_size(&client, addr, &node).await;
    // Let the server's search towards us finish as well.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let searched = first.connection().stats();
    assert!(
        searched.path.sent_plpmtud_probes >= 3,
        "a first link searches: {} probes",
        searched.path.sent_plpmtud_probes
    );
    assert!(
        searched.frame_rx.immediate_ack >= 3,
        "the server searches too: {} probes received",
        searched.frame_rx.immediate_ack
    );
    drop(first);
    wait_for_closed_links(&node, 1).await;

    // The second link goes through a relay on the same address that lets
    // everything pass and notes each datagram's size.
    let (relay, passed) = narrow_relay(addr, usize::from(MAX_UDP_PAYLOAD)).await;
    let second = client.dial(relay, &node.key).await.unwrap();
    assert_eq!(
        second.connection().stats().path.current_mtu,
        MAX_UDP_PAYLOAD,
        "the link starts at the remembered size"
    );
    let first_from = |to_server: bool| {
        let passed = passed.lock().unwrap();
        passed
            .iter()
            .find(|(dir, _)| *dir == to_server)
            .map(|(_, n)| *n)
    };
    // At 1200 bytes the hybrid ClientHello and the server's first flight
    // each take two datagrams or more; at the remembered size one each.
    let hello = first_from(true).unwrap();
    let flight = first_from(false).unwrap();
    assert!(hello > 1200, "the client started at 1200 bytes: {hello}");
    assert!(flight > 1200, "the server started at 1200 bytes: {flight}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = second.connection().stats();
    assert_eq!(started.path.sent_plpmtud_probes, 0, "no probe is sent");
    assert_eq!(
        started.frame_rx.immediate_ack, 0,
        "the server sends no probe either"
    );
    assert_eq!(started.path.current_mtu, MAX_UDP_PAYLOAD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_path_mtu_the_path_no_longer_carries_is_forgotten() {
    // A 2 s handshake limit: the attempt at the remembered size is given
    // 0.5 s.
    let config = LinkConfig {
        handshake_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let node = ServingNode::new();
    let server = LinkServer::start(
        localhost(),
        ServerContext {
            config: config.clone(),
            ..node.context()
        },
    )
    .unwrap();
    let client = Dialer::new(
        client_endpoint(localhost()).unwrap(),
        Arc::new(LinkIdentity::new(SigningKey::generate()).unwrap()),
        config,
    )
    .unwrap();
    node.policy
        .trust(client.identity().public_key(), "edge-mtu", &[]);
    let addr = server.local_addr().unwrap();

    // Loopback carries jumbo datagrams: remembered for 127.0.0.1 by both.
    let direct = link_at_full_size(&client, addr, &node).await;
    drop(direct);
    wait_for_closed_links(&node, 1).await;

    // The same address now behind an Ethernet-sized hop: both ends start at
    // the remembered size and the server's handshake datagrams are lost.
    // The dialler gives up on the size after a quarter of its timeout and
    // dials again from 1200 bytes; the server, seeing that attempt while
    // the first is pending, answers at 1200 bytes too. One dial, one link.
    let (relay, _) = narrow_relay(addr, ETHERNET_UDP_PAYLOAD).await;
    let started = std::time::Instant::now();
    let link = client.dial(relay, &node.key).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fallback took {:?}",
        started.elapsed()
    );
    // Forgotten on both ends: the link searches and finds the Ethernet size.
    let stats = wait_for_stats(&link, |s| s.path.current_mtu >= 1400).await;
    assert!(
        (1400..=ETHERNET_UDP_PAYLOAD as u16).contains(&stats.path.current_mtu),
        "path MTU stuck at {} bytes after the memory was dropped",
        stats.path.current_mtu
    );
    assert!(stats.path.sent_plpmtud_probes >= 3, "{stats:?}");
}
