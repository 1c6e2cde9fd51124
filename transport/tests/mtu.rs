//! Path MTU discovery on a path narrower than loopback: a UDP relay on
//! 127.0.0.1 that drops every datagram larger than a 1500-byte Ethernet
//! frame carries (1472 bytes of UDP payload over IPv4), as such a network
//! does. A link over it must still grow past QUIC's 1200-byte start.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{dialer, localhost, ServingNode};
use tokio::net::UdpSocket;

/// The largest UDP payload a 1500-byte IPv4 Ethernet path carries.
const ETHERNET_UDP_PAYLOAD: usize = 1472;

/// Relays datagrams between one client and `server`, dropping any larger
/// than `limit`. Returns the address clients send to.
async fn narrow_relay(server: SocketAddr, limit: usize) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind(localhost()).await.unwrap());
    let back = Arc::new(UdpSocket::bind(localhost()).await.unwrap());
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let (client_tx, mut client_rx) = tokio::sync::watch::channel(None::<SocketAddr>);
    {
        let (front, back) = (front.clone(), back.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                client_tx.send_replace(Some(from));
                if n <= limit {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            let Some(client) = *client_rx.borrow_and_update() else {
                continue;
            };
            if n <= limit {
                let _ = front.send_to(&buf[..n], client).await;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtu_discovery_grows_links_on_an_ethernet_sized_path() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "edge-mtu", &[]);
    let relay = narrow_relay(server.local_addr().unwrap(), ETHERNET_UDP_PAYLOAD).await;

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
