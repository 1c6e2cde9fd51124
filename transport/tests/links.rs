//! Link admission on real QUIC sockets on 127.0.0.1: who gets a link and who
//! is refused, and why.

mod common;

use std::sync::Arc;

use common::{dialer, echo_target, localhost, test_config, ServingNode};
use vigil_crypto::SigningKey;
use vigil_transport::binding::{BindingStatement, Role};
use vigil_transport::link::{
    client_config, client_endpoint, exporter, peer_certificate, server_endpoint,
};
use vigil_transport::message::{LinkMessage, LinkRefusalCode, TunnelRefusalCode};
use vigil_transport::wire::{read_message, write_message};
use vigil_transport::{
    Dialer, KeyExchange, LinkConfig, LinkError, LinkEvent, LinkIdentity, LinkRefusal, LinkServer,
    PeerStatus, ServerContext, TunnelRefusal,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_peer_gets_a_link_and_an_allowed_tunnel() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let target = echo_target().await;
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "edge-1", &[&target]);

    let link = client
        .dial(server.local_addr().unwrap(), &node.key)
        .await
        .unwrap();
    assert_eq!(link.peer_key(), &node.key);
    let (mut send, mut recv) = link.open_tunnel(&target).await.unwrap();
    send.write_all(b"ping").await.unwrap();
    send.finish().unwrap();
    let echoed = recv.read_to_end(1024).await.unwrap();
    assert_eq!(echoed, b"ping");

    let opened = node
        .recorder
        .wait_for(|e| matches!(e, LinkEvent::LinkOpened { .. }))
        .await;
    let LinkEvent::LinkOpened { peer } = opened else {
        unreachable!()
    };
    assert_eq!(peer.key_id, client.identity().public_key().key_id());
    assert_eq!(peer.name.as_deref(), Some("edge-1"));
    let closed = node
        .recorder
        .wait_for(|e| matches!(e, LinkEvent::TunnelClosed { .. }))
        .await;
    let LinkEvent::TunnelClosed {
        stats, target: t, ..
    } = closed
    else {
        unreachable!()
    };
    assert_eq!(t, target);
    assert_eq!((stats.bytes_to_target, stats.bytes_from_target), (4, 4));
    assert!(stats.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_offering_only_x25519_is_refused() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let identity = Arc::new(LinkIdentity::new(SigningKey::generate()).unwrap());
    node.policy.trust(identity.public_key(), "classical", &[]);
    let classical = Dialer::with_key_exchange(
        client_endpoint(localhost()).unwrap(),
        identity,
        test_config(),
        KeyExchange::ClassicalOnly,
    )
    .unwrap();

    let err = classical
        .dial(server.local_addr().unwrap(), &node.key)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::Connection(_)), "{err}");
    node.recorder
        .wait_for(|e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::ClassicalOnlyOffer,
                    ..
                }
            )
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_composite_key_is_refused() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let client = dialer();

    let err = client
        .dial(server.local_addr().unwrap(), &node.key)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Refused {
                code: LinkRefusalCode::UnknownKey,
                ..
            }
        ),
        "{err}"
    );
    let key_id = client.identity().public_key().key_id();
    node.recorder
        .wait_for(|e| {
            matches!(e, LinkEvent::LinkRefused {
                refusal: LinkRefusal::UnknownKey { key_id: k }, ..
            } if *k == key_id)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_is_refused_and_its_open_link_gets_no_new_tunnels() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let target = echo_target().await;
    let client = dialer();
    let key = client.identity().public_key().clone();
    node.policy.trust(&key, "edge-2", &[&target]);
    let addr = server.local_addr().unwrap();
    let link = client.dial(addr, &node.key).await.unwrap();

    node.policy.revoke(&key);
    assert_eq!(
        vigil_transport::PeerPolicy::peer_status(node.policy.as_ref(), &key),
        PeerStatus::Revoked
    );
    let err = link.open_tunnel(&target).await.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::TunnelRefused {
                code: TunnelRefusalCode::PeerNotTrusted,
                ..
            }
        ),
        "{err}"
    );
    let err = client.dial(addr, &node.key).await.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::Refused {
                code: LinkRefusalCode::RevokedKey,
                ..
            }
        ),
        "{err}"
    );
    node.recorder
        .wait_for(|e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::RevokedKey { .. },
                    ..
                }
            )
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_allowed_that_the_node_cannot_record() {
    use std::sync::atomic::Ordering::SeqCst;
    let node = ServingNode::new();
    let server = node.start(localhost());
    let target = echo_target().await;
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "edge-9", &[&target]);

    // A trusted peer whose link.opened cannot be recorded gets no link.
    node.recorder.fail_link_allows.store(true, SeqCst);
    let err = client
        .dial(server.local_addr().unwrap(), &node.key)
        .await
        .unwrap_err();
    let refused = matches!(&err, LinkError::Refused { code, .. }
        if *code == LinkRefusalCode::AuditUnavailable);
    assert!(
        refused && err.to_string().contains("could not record"),
        "{err}"
    );
    node.recorder
        .wait_for(|e| matches!(e, LinkEvent::LinkRefused { refusal, .. } if is_audit(refusal)))
        .await;

    // With the ledger back, the link opens; an unrecordable tunnel is refused.
    node.recorder.fail_link_allows.store(false, SeqCst);
    node.recorder.fail_tunnel_allows.store(true, SeqCst);
    let link = client
        .dial(server.local_addr().unwrap(), &node.key)
        .await
        .unwrap();
    let err = link.open_tunnel(&target).await.unwrap_err();
    let refused = matches!(&err, LinkError::TunnelRefused { code, .. }
        if *code == TunnelRefusalCode::AuditUnavailable);
    assert!(refused, "{err}");
    node.recorder
        .wait_for(|e| {
            let audit = TunnelRefusal::AuditUnavailable {
                detail: "ledger unavailable (test)".into(),
            };
            matches!(e, LinkEvent::TargetRefused { refusal, .. } if *refusal == audit)
        })
        .await;
    let events = node.recorder.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, LinkEvent::LinkOpened { .. }))
            .count(),
        1,
        "only the recordable link opened: {events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, LinkEvent::TunnelOpened { .. })),
        "{events:#?}"
    );

    // And once tunnels can be recorded again, the same link carries one.
    node.recorder.fail_tunnel_allows.store(false, SeqCst);
    let (mut send, mut recv) = link.open_tunnel(&target).await.unwrap();
    send.write_all(b"ok").await.unwrap();
    send.finish().unwrap();
    assert_eq!(recv.read_to_end(16).await.unwrap(), b"ok");
}

/// A link refusal because the node could not record the link.
fn is_audit(refusal: &LinkRefusal) -> bool {
    matches!(refusal, LinkRefusal::AuditUnavailable { detail } if detail.contains("test"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_not_allowed_is_refused() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let allowed = echo_target().await;
    let other = echo_target().await;
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "edge-3", &[&allowed]);
    let link = client
        .dial(server.local_addr().unwrap(), &node.key)
        .await
        .unwrap();

    let err = link.open_tunnel(&other).await.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::TunnelRefused {
                code: TunnelRefusalCode::TargetNotAllowed,
                ..
            }
        ),
        "{err}"
    );
    node.recorder
        .wait_for(|e| {
            matches!(e, LinkEvent::TargetRefused {
                target: Some(t),
                refusal: TunnelRefusal::TargetNotAllowed,
                ..
            } if *t == other)
        })
        .await;
    // The link itself stays usable for allowed targets.
    link.open_tunnel(&allowed).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_expecting_another_server_key_gets_no_link() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "edge-4", &[]);
    let expected = SigningKey::generate();

    let err = client
        .dial(server.local_addr().unwrap(), expected.public_key())
        .await
        .unwrap_err();
    // The node's binding arrives with its real key, which is not the one
    // the client expects: the client refuses (and the client's statement,
    // naming the expected key, would fail on the serving side as well).
    assert!(matches!(err, LinkError::PeerKeyMismatch { .. }), "{err}");
}

/// Mallory runs a fake server. A trusted client dials it and sends its
/// binding, which Mallory relays on her own connection to the real node. The
/// signature covers the exporter of the client-to-Mallory connection, so the
/// real node refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_binding_is_refused() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let victim = dialer();
    node.policy
        .trust(victim.identity().public_key(), "victim", &[]);

    let mallory = Arc::new(LinkIdentity::new(SigningKey::generate()).unwrap());
    let fake = server_endpoint(
        localhost(),
        &mallory,
        KeyExchange::PostQuantum,
        &test_config(),
    )
    .unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let stolen = tokio::spawn(async move {
        let connection = fake.accept().await.unwrap().await.unwrap();
        let (_send, mut recv) = connection.accept_bi().await.unwrap();
        let identity = read_message(&mut recv).await.unwrap();
        let binding = read_message(&mut recv).await.unwrap();
        (identity, binding, connection)
    });
    // The victim believes it dials the real node; the dial fails (Mallory
    // cannot sign as the node), but the binding has been sent.
    let victim_dial = tokio::spawn(async move { victim.dial(fake_addr, &node_key_clone()).await });
    let (identity, binding, _hold) = stolen.await.unwrap();
    assert!(matches!(
        identity,
        LinkMessage::Identity {
            role: Role::Client,
            ..
        }
    ));
    assert!(matches!(
        binding,
        LinkMessage::Binding {
            role: Role::Client,
            ..
        }
    ));
    victim_dial.abort();

    // Mallory relays identity and binding on her own connection to the
    // real node.
    let mut relayed = identity.encode();
    relayed.extend_from_slice(&binding.encode());
    let answer = first_exchange(&mallory, server.local_addr().unwrap(), &relayed).await;
    assert!(
        matches!(
            answer,
            LinkMessage::LinkRefused {
                code: LinkRefusalCode::FailedBinding,
                ..
            }
        ),
        "{answer:?}"
    );
    node.recorder
        .wait_for(|e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::FailedBinding { .. },
                    ..
                }
            )
        })
        .await;
    assert!(!node
        .recorder
        .events()
        .iter()
        .any(|e| matches!(e, LinkEvent::LinkOpened { .. })));
}

/// Completes a PQ TLS handshake to `server` as `identity`, sends `bytes`
/// on the first stream and returns the server's answer to them (the
/// server's own binding, which it sends without waiting, is skipped).
async fn first_exchange(
    identity: &LinkIdentity,
    server: std::net::SocketAddr,
    bytes: &[u8],
) -> LinkMessage {
    let connection = hybrid_connection(identity, server).await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    loop {
        match read_message(&mut recv).await.unwrap() {
            LinkMessage::Binding {
                role: Role::Server, ..
            } => continue,
            other => return other,
        }
    }
}

/// A TLS-only connection to `server` (hybrid key exchange, `identity`'s
/// transport certificate): the binding is left to the caller.
async fn hybrid_connection(
    identity: &LinkIdentity,
    server: std::net::SocketAddr,
) -> quinn::Connection {
    let endpoint = client_endpoint(localhost()).unwrap();
    let config = client_config(identity, KeyExchange::PostQuantum, &test_config()).unwrap();
    endpoint
        .connect_with(config, server, "vigil-link")
        .unwrap()
        .await
        .unwrap()
}

/// Runs the client side of the binding by hand against `node`: sends
/// `Identity`, then its `Binding` either right away (in the same write) or
/// only after the server's `Binding` came. Returns the server's messages,
/// after checking that its binding verifies for this session.
async fn bind_by_hand(
    identity: &LinkIdentity,
    node: &ServingNode,
    server: std::net::SocketAddr,
    withhold_binding: bool,
) -> Vec<LinkMessage> {
    let connection = hybrid_connection(identity, server).await;
    let exporter = exporter(&connection).unwrap();
    let server_certificate = peer_certificate(&connection).unwrap();
    let statement = |role| BindingStatement {
        role,
        exporter,
        client_certificate: identity.transport().certificate(),
        server_certificate: &server_certificate,
        client_key: identity.public_key(),
        server_key: &node.key,
    };
    let announce = LinkMessage::Identity {
        role: Role::Client,
        key: Box::new(identity.public_key().clone()),
    };
    let ours = LinkMessage::Binding {
        role: Role::Client,
        key: Box::new(identity.public_key().clone()),
        signature: identity.sign(&statement(Role::Client)).unwrap(),
    };
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut received = Vec::new();
    if withhold_binding {
        write_message(&mut send, &announce).await.unwrap();
        received.push(read_message(&mut recv).await.unwrap());
        write_message(&mut send, &ours).await.unwrap();
    } else {
        let mut both = announce.encode();
        both.extend_from_slice(&ours.encode());
        send.write_all(&both).await.unwrap();
    }
    send.finish().unwrap();
    while let Ok(message) = read_message(&mut recv).await {
        received.push(message);
    }
    match &received[0] {
        LinkMessage::Binding {
            role: Role::Server,
            key,
            signature,
        } => {
            assert_eq!(key.as_ref(), &node.key);
            statement(Role::Server).verify(signature).unwrap();
        }
        other => panic!("expected the server's binding first, got {other:?}"),
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_binds_whether_the_clients_binding_is_late_or_already_there() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let addr = server.local_addr().unwrap();
    let identity = LinkIdentity::new(SigningKey::generate()).unwrap();
    node.policy.trust(identity.public_key(), "by-hand", &[]);

    // The server signs and sends its binding without waiting for ours:
    // this client sends its binding only once the server's has come.
    let late = bind_by_hand(&identity, &node, addr, true).await;
    assert!(
        matches!(late[..], [_, LinkMessage::LinkAccepted]),
        "{late:?}"
    );
    // A binding that arrived with the identity: the same messages come
    // back, in the same order.
    let there = bind_by_hand(&identity, &node, addr, false).await;
    assert!(
        matches!(there[..], [_, LinkMessage::LinkAccepted]),
        "{there:?}"
    );
    node.recorder
        .wait_count(2, |e| matches!(e, LinkEvent::LinkOpened { .. }))
        .await;
}

/// Any composite key: the victim's dial to Mallory fails whatever it expects.
fn node_key_clone() -> vigil_crypto::CompositePublicKey {
    SigningKey::generate().public_key().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_first_message_is_a_protocol_refusal() {
    let node = ServingNode::new();
    let server = node.start(localhost());
    let identity = LinkIdentity::new(SigningKey::generate()).unwrap();
    // Version 1, kind Binding, but a body length of 5 bytes.
    let bytes = [1, 1, 0, 5, 0, 0, 0, 0, 0];
    let answer = first_exchange(&identity, server.local_addr().unwrap(), &bytes).await;
    assert!(
        matches!(
            answer,
            LinkMessage::LinkRefused {
                code: LinkRefusalCode::ProtocolViolation,
                ..
            }
        ),
        "{answer:?}"
    );
    node.recorder
        .wait_for(|e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::Protocol { .. },
                    ..
                }
            )
        })
        .await;
}

/// A serving node with `config`, its server and address, and a dialler it
/// trusts.
fn configured_node(config: LinkConfig) -> (ServingNode, LinkServer, std::net::SocketAddr, Dialer) {
    let node = ServingNode::new();
    let server = LinkServer::start(
        localhost(),
        ServerContext {
            config,
            ..node.context()
        },
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let client = dialer();
    node.policy
        .trust(client.identity().public_key(), "client", &[]);
    (node, server, addr, client)
}

/// A serving node setting up at most `cap` links at once ([`configured_node`]).
fn capped_node(cap: usize) -> (ServingNode, LinkServer, std::net::SocketAddr, Dialer) {
    configured_node(LinkConfig {
        max_pending_links: cap,
        ..test_config()
    })
}

/// `n` clients that finish TLS with `addr` and then send nothing.
async fn stalled_sessions(addr: std::net::SocketAddr, n: usize) -> Vec<quinn::Connection> {
    let stalling = LinkIdentity::new(SigningKey::generate()).unwrap();
    let endpoint = client_endpoint(localhost()).unwrap();
    let config = client_config(&stalling, KeyExchange::PostQuantum, &test_config()).unwrap();
    let mut stalled = Vec::new();
    for _ in 0..n {
        let connecting = endpoint.connect_with(config.clone(), addr, "vigil-link");
        stalled.push(connecting.unwrap().await.unwrap());
    }
    stalled
}

/// A serving node sets up at most `max_pending_links` links at once: with
/// two TLS sessions stalled before their binding, a third attempt is
/// refused before its handshake (and reported as busy); once the stalled
/// ones are gone, a trusted peer gets its link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_beyond_the_setup_limit_are_refused_before_their_handshake() {
    let (node, server, addr, client) = capped_node(2);

    let stalled = stalled_sessions(addr, 2).await;
    let started = std::time::Instant::now();
    let err = client.dial(addr, &node.key).await.unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refused at once, not after a timeout: {err}"
    );
    assert!(
        err.to_string()
            .contains("the server refused to accept a new connection"),
        "refused by the server: {err}"
    );
    node.recorder
        .wait_for(|e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::Busy { limit: 2 },
                    ..
                }
            )
        })
        .await;
    // The second stalled session and the refused dial each proved their
    // address first (half the slots were taken).
    assert_eq!(server.address_validations(), 2);

    for connection in &stalled {
        connection.close(0u32.into(), b"gone");
    }
    node.recorder
        .wait_count(2, |e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::Protocol { .. },
                    ..
                }
            )
        })
        .await;
    let link = client.dial(addr, &node.key).await.unwrap();
    assert_eq!(link.peer_key(), &node.key);
}

/// Once half the setup slots are taken, a new attempt proves its address
/// with a QUIC Retry first; a trusted peer still gets its link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_peer_proves_its_address_and_still_gets_its_link() {
    let (node, server, addr, client) = capped_node(4);

    let _stalled = stalled_sessions(addr, 2).await;
    assert_eq!(server.address_validations(), 0, "below half: no Retry");
    let link = client.dial(addr, &node.key).await.unwrap();
    assert_eq!(link.peer_key(), &node.key);
    assert_eq!(server.address_validations(), 1);
}

/// After a burst of refused setups (here two classical-only offers) every
/// new attempt proves its address first; a trusted peer still gets its link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_burst_of_refusals_new_attempts_prove_their_address() {
    let (node, server, addr, client) = configured_node(LinkConfig {
        refusals_before_validation: 2,
        ..test_config()
    });
    let classical = Dialer::with_key_exchange(
        client_endpoint(localhost()).unwrap(),
        Arc::new(LinkIdentity::new(SigningKey::generate()).unwrap()),
        test_config(),
        KeyExchange::ClassicalOnly,
    )
    .unwrap();
    for _ in 0..2 {
        classical.dial(addr, &node.key).await.unwrap_err();
    }
    node.recorder
        .wait_count(2, |e| {
            matches!(
                e,
                LinkEvent::LinkRefused {
                    refusal: LinkRefusal::ClassicalOnlyOffer,
                    ..
                }
            )
        })
        .await;
    assert_eq!(server.address_validations(), 0, "below the limit: no Retry");
    let link = client.dial(addr, &node.key).await.unwrap();
    assert_eq!(link.peer_key(), &node.key);
    assert_eq!(server.address_validations(), 1);
}
