//! Link bench, one run, figures printed (not a timed test):
//!
//! 1. link setup: a vigil link (QUIC handshake with X25519MLKEM768, then the
//!    composite identity binding) next to a classical quinn handshake (X25519
//!    only, no binding), median over many dials, and their ratio; vigil both
//!    to a peer whose path MTU an earlier link measured (re-keys, redials:
//!    the link starts at that size, no probe), as a first link to a peer
//!    (the full MTU search runs during the binding), without path MTU
//!    discovery (what the binding costs with no probe beside it) and with
//!    the serving node making its `link.opened` entry durable in a real
//!    ledger before it accepts, as `vigil serve` does (the other lines
//!    record nothing); with the floor any exporter-signing binding has on
//!    this machine: a hybrid handshake plus one request/response round trip
//!    on a fresh connection (with its MTU search running, and without MTU
//!    probes) plus one composite sign and one verify. All dials, classical
//!    ones included, run in a task on the runtime's two workers, as the
//!    node's and `vigil tunnel`'s dials do;
//! 2. tunnel throughput with 1 and 8 concurrent streams next to plain TCP on
//!    loopback and next to `ssh -L` through a local sshd started here with
//!    throwaway keys (skipped with a message when sshd is not installed).
//!
//! Run: `cargo bench -p vigil-transport --bench link`. `VIGIL_BENCH_MIB`
//! sets the bytes pushed per configuration (default 256 MiB);
//! `VIGIL_BENCH_PART=setup|throughput` runs one half. Without `--bench`
//! (as under `cargo test --all-targets`) it makes a quick smoke run: 2 MiB,
//! 3 dials, no figures worth reading.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vigil_crypto::{CompositePublicKey, SigningKey};
use vigil_ledger::{Ledger, NewEntry};
use vigil_transport::link::{client_config, client_endpoint, server_endpoint};
use vigil_transport::mtu::BASE_MTU;
use vigil_transport::{
    Dialer, IgnoreEvents, KeyExchange, LinkConfig, LinkEvent, LinkIdentity, LinkObserver,
    LinkServer, PeerPolicy, PeerStatus, ReconnectPolicy, Recorded, ServerContext, Target,
    TunnelClient, TunnelSpec,
};

const FULL_SETUP_ROUNDS: usize = 200;
const SMOKE_SETUP_ROUNDS: usize = 3;
const WARMUP: usize = 3;
const FULL_THROUGHPUT_ROUNDS: usize = 5;
const CHUNK: usize = 256 * 1024;

/// Trusts every peer for every target: this bench measures speed, not policy.
struct TrustAll;

impl PeerPolicy for TrustAll {
    fn peer_status(&self, _key: &CompositePublicKey) -> PeerStatus {
        PeerStatus::Trusted {
            name: "bench".into(),
        }
    }

    fn target_allowed(&self, _key: &CompositePublicKey, _target: &Target) -> bool {
        true
    }
}

/// Makes each allow decision one durable entry in a real ledger before it
/// takes effect (as the node's recorder does), on a blocking thread.
struct LedgerObserver {
    ledger: Ledger,
}

impl LinkObserver for LedgerObserver {
    fn record(&self, _event: LinkEvent) {}

    fn record_allow(&self, event: LinkEvent) -> Recorded {
        let ledger = self.ledger.clone();
        Box::pin(async move {
            let actor = match &event {
                LinkEvent::LinkOpened { peer } => format!("peer:{}", peer.key_id),
                _ => "peer:bench".to_string(),
            };
            let entry = NewEntry::new("link.opened", actor, "link:bench", "allow");
            tokio::task::spawn_blocking(move || ledger.append(entry))
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// `cargo bench` passes `--bench`; anything else is a smoke run.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn setup_rounds() -> usize {
    if full_run() {
        FULL_SETUP_ROUNDS
    } else {
        SMOKE_SETUP_ROUNDS
    }
}

fn throughput_rounds() -> usize {
    if full_run() {
        FULL_THROUGHPUT_ROUNDS
    } else {
        1
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let mib: usize = std::env::var("VIGIL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full_run() { 256 } else { 2 });

    let node = Arc::new(LinkIdentity::new(SigningKey::generate()).expect("identity"));
    let context = ServerContext {
        identity: node.clone(),
        policy: Arc::new(TrustAll),
        observer: Arc::new(IgnoreEvents),
        config: LinkConfig::default(),
    };
    let server = LinkServer::start(localhost(), context.clone()).expect("link server");
    let server_addr = server.local_addr().expect("server address");
    let dialer = Dialer::new(
        client_endpoint(localhost()).expect("endpoint"),
        Arc::new(LinkIdentity::new(SigningKey::generate()).expect("identity")),
        LinkConfig::default(),
    )
    .expect("dialer");

    let part = std::env::var("VIGIL_BENCH_PART").unwrap_or_default();
    if part != "throughput" {
        // The same node and client, but every link searches its path MTU
        // from scratch, as a first link to a peer does.
        let cold = Pair::start(
            &context,
            &dialer,
            LinkConfig {
                remember_path_mtu: false,
                ..LinkConfig::default()
            },
        );
        // The same again without path MTU discovery: what the binding costs
        // when no probe shares the two cores with it.
        let flat = Pair::start(
            &context,
            &dialer,
            LinkConfig {
                mtu_upper_bound: BASE_MTU,
                ..LinkConfig::default()
            },
        );
        // The same node recording each link durably before it accepts it.
        let ledger_dir = tempfile::tempdir().expect("ledger directory");
        let audited = Pair::start(
            &ServerContext {
                observer: Arc::new(LedgerObserver {
                    ledger: Ledger::open(ledger_dir.path()).expect("ledger"),
                }),
                ..context.clone()
            },
            &dialer,
            LinkConfig::default(),
        );
        // Dialled from a task on the runtime's workers, as the node and
        // `vigil tunnel` dial (never from a thread blocked in `block_on`),
        // classical and hybrid handshakes alike.
        let (setup_dialer, node_key) = (dialer.clone(), node.public_key().clone());
        let (cold, flat, audited) = tokio::spawn(async move {
            let pairs = Pairs {
                cold: &cold,
                flat: &flat,
                audited: &audited,
            };
            setup_figures(&setup_dialer, server_addr, &node_key, pairs).await;
            (cold, flat, audited)
        })
        .await
        .expect("setup task");
        cold.server.shutdown().await;
        flat.server.shutdown().await;
        audited.server.shutdown().await;
    }
    if part != "setup" {
        throughput_figures(&dialer, server_addr, node.public_key(), mib).await;
    }
    server.shutdown().await;
}

/// A server of the bench's node and a dialer of its client, both with
/// another link configuration.
struct Pair {
    server: LinkServer,
    addr: SocketAddr,
    dialer: Dialer,
}

impl Pair {
    fn start(context: &ServerContext, dialer: &Dialer, config: LinkConfig) -> Self {
        let server = LinkServer::start(
            localhost(),
            ServerContext {
                config: config.clone(),
                ..context.clone()
            },
        )
        .expect("link server");
        let addr = server.local_addr().expect("server address");
        let dialer = Dialer::new(
            client_endpoint(localhost()).expect("endpoint"),
            dialer.identity().clone(),
            config,
        )
        .expect("dialer");
        Self {
            server,
            addr,
            dialer,
        }
    }

    async fn dial(&self, node_key: &CompositePublicKey) -> Duration {
        let started = Instant::now();
        let link = self
            .dialer
            .dial(self.addr, node_key)
            .await
            .expect("vigil link");
        let elapsed = started.elapsed();
        link.connection().close(0u32.into(), b"bench");
        elapsed
    }
}

/// The comparison pairs: `cold` does not remember path MTUs (every link is
/// a first link to its peer), `flat` does not search them at all,
/// `audited` records each link durably before accepting it.
struct Pairs<'a> {
    cold: &'a Pair,
    flat: &'a Pair,
    audited: &'a Pair,
}

async fn setup_figures(
    dialer: &Dialer,
    server_addr: SocketAddr,
    node_key: &CompositePublicKey,
    pairs: Pairs<'_>,
) {
    println!(
        "== link setup ({} dials each, loopback, median) ==",
        setup_rounds()
    );
    let samples = link_setup(dialer, server_addr, node_key, &pairs).await;
    let (pq, bare, classical) = (&samples.vigil, &samples.hybrid, &samples.classical);
    println!(
        "vigil link (X25519MLKEM768 + composite binding): {:>8.3} ms  (mean {:.3} ms)",
        ms(median(pq)),
        ms(mean(pq))
    );
    let against_classical = |label: &str, dials: &[Duration]| {
        println!(
            "  {label:<50} {:>7.3} ms  (mean {:.3} ms) = {:.2}x classical",
            ms(median(dials)),
            ms(mean(dials)),
            median(dials).as_secs_f64() / median(classical).as_secs_f64()
        );
    };
    against_classical(
        "first link to a peer (full path MTU search):",
        &samples.first,
    );
    against_classical(
        "without path MTU discovery (1200-byte packets):",
        &samples.flat,
    );
    against_classical(
        "with link.opened made durable first (vigil serve):",
        &samples.audited,
    );
    println!(
        "  quinn X25519MLKEM768 handshake alone:          {:>8.3} ms  (mean {:.3} ms)",
        ms(median(bare)),
        ms(mean(bare))
    );
    println!(
        "classical quinn (X25519 only, no binding):       {:>8.3} ms  (mean {:.3} ms)",
        ms(median(classical)),
        ms(mean(classical))
    );
    let (sign, verify) = composite_costs();
    println!(
        "  of which one composite sign {:.3} ms, one composite verify {:.3} ms (each side does one of each)",
        ms(sign),
        ms(verify)
    );
    // What no binding that signs the TLS exporter can beat: the server has
    // the exporter only once the client's Finished arrived, so its signature
    // reaches the client at the earliest one round trip after the client's
    // handshake ends, and the client must verify it.
    let floor = median(bare) + median(&samples.round_trip) + sign + verify;
    println!(
        "protocol floor (hybrid handshake + one round trip {:.3} ms + one sign + one verify): {:.3} ms = {:.2}x classical",
        ms(median(&samples.round_trip)),
        ms(floor),
        floor.as_secs_f64() / median(classical).as_secs_f64()
    );
    let flat_floor = median(bare) + median(&samples.flat_round_trip) + sign + verify;
    println!(
        "  the same floor without MTU probes (round trip {:.3} ms): {:.3} ms = {:.2}x classical (compare: vigil to a known peer, and without path MTU discovery, above: neither probes)",
        ms(median(&samples.flat_round_trip)),
        ms(flat_floor),
        flat_floor.as_secs_f64() / median(classical).as_secs_f64()
    );
    let ratio = median(pq).as_secs_f64() / median(classical).as_secs_f64();
    let verdict = match (full_run(), ratio <= 2.0) {
        (false, _) => "(smoke run: not judged)",
        (true, true) => "MET",
        (true, false) => "NOT MET",
    };
    println!("ratio vigil (peer known) / classical: {ratio:.2}x (target: at most 2x) {verdict}");
}

async fn throughput_figures(
    dialer: &Dialer,
    server_addr: SocketAddr,
    node_key: &CompositePublicKey,
    mib: usize,
) {
    let total = mib * 1024 * 1024;
    println!();
    println!(
        "== throughput ({mib} MiB per run, upload through the path to a sink, MB/s = 10^6 B/s, median of {} interleaved rounds) ==",
        throughput_rounds()
    );
    let sink = sink().await;
    let sink_target = Target::parse(&sink.to_string()).expect("target");
    let tunnel = TunnelClient::start(
        dialer.clone(),
        TunnelSpec {
            listen: localhost(),
            peer_addr: server_addr,
            peer_key: node_key.clone(),
            target: sink_target,
            reconnect: ReconnectPolicy::default(),
        },
        Arc::new(IgnoreEvents),
    )
    .await
    .expect("tunnel");
    let link = tunnel
        .wait_for_link(Duration::from_secs(10))
        .await
        .expect("link up");
    let ssh = if full_run() {
        SshForward::start(sink)
    } else {
        Err("smoke run (use cargo bench for figures)".to_string())
    };
    if let Err(why) = &ssh {
        println!("ssh -L column skipped: {why}");
    }

    // Rounds interleave the three paths so that load from elsewhere on the
    // machine hits them alike; each figure is the median over the rounds.
    let mut rows = Vec::new();
    for streams in [1usize, 8] {
        let (mut tcp, mut vigil, mut ssh_rates) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..throughput_rounds() {
            tcp.push(push(sink, streams, total).await);
            vigil.push(push(tunnel.local_addr(), streams, total).await);
            if let Ok(s) = &ssh {
                ssh_rates.push(push(s.local, streams, total).await);
            }
        }
        let ssh_rate = (!ssh_rates.is_empty()).then(|| median_f64(&ssh_rates));
        rows.push((streams, median_f64(&tcp), median_f64(&vigil), ssh_rate));
    }
    println!(
        "{:<8} {:>12} {:>14} {:>12} {:>14} {:>14}",
        "streams", "plain TCP", "vigil tunnel", "ssh -L", "vigil/TCP", "vigil/ssh"
    );
    for (streams, tcp, vigil, ssh_rate) in rows {
        let ssh_col = ssh_rate.map_or("skipped".to_string(), |r| format!("{r:.0}"));
        let vs_ssh = ssh_rate.map_or("-".to_string(), |r| format!("{:.2}x", vigil / r));
        println!(
            "{streams:<8} {tcp:>12.0} {vigil:>14.0} {ssh_col:>12} {:>14} {vs_ssh:>14}",
            format!("{:.2}x", vigil / tcp)
        );
    }
    if ssh.is_ok() {
        println!("(target: vigil tunnel at least as fast as ssh -L, i.e. vigil/ssh >= 1.00x)");
    }
    let stats = link.connection().stats();
    println!(
        "link: {} UDP datagrams sent in {} I/O calls, {} packets lost, {} congestion events, {} lost bytes, rtt {:?}, cwnd {}, mtu {} ({} probes, {} lost, {} black holes)",
        stats.udp_tx.datagrams,
        stats.udp_tx.ios,
        stats.path.lost_packets,
        stats.path.congestion_events,
        stats.path.lost_bytes,
        stats.path.rtt,
        stats.path.cwnd,
        stats.path.current_mtu,
        stats.path.sent_plpmtud_probes,
        stats.path.lost_plpmtud_probes,
        stats.path.black_holes_detected
    );
}

/// Dials in turn a vigil link to a known peer, a first vigil link, one
/// without path MTU discovery, one the server records durably, a classical
/// and a bare hybrid handshake.
async fn link_setup(
    dialer: &Dialer,
    server: SocketAddr,
    node_key: &CompositePublicKey,
    pairs: &Pairs<'_>,
) -> SetupSamples {
    let classical = BareHandshake::start(KeyExchange::ClassicalOnly);
    let hybrid = BareHandshake::start(KeyExchange::PostQuantum);
    let hybrid_flat = BareHandshake::start_with(
        KeyExchange::PostQuantum,
        LinkConfig {
            mtu_upper_bound: BASE_MTU,
            ..LinkConfig::default()
        },
    );
    let mut flat_trips = Vec::new();
    let (mut pq, mut first, mut flat, mut audited, mut bare, mut classic, mut trips) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for round in 0..setup_rounds() + WARMUP {
        let started = Instant::now();
        let link = dialer.dial(server, node_key).await.expect("vigil link");
        let pq_time = started.elapsed();
        link.connection().close(0u32.into(), b"bench");

        let first_time = pairs.cold.dial(node_key).await;
        let flat_time = pairs.flat.dial(node_key).await;
        let audited_time = pairs.audited.dial(node_key).await;

        let (classical_time, _) = classical.handshake().await;
        let (hybrid_time, round_trip) = hybrid.handshake().await;
        let (_, flat_round_trip) = hybrid_flat.handshake().await;
        if round >= WARMUP {
            pq.push(pq_time);
            first.push(first_time);
            flat.push(flat_time);
            audited.push(audited_time);
            classic.push(classical_time);
            bare.push(hybrid_time);
            trips.push(round_trip);
            flat_trips.push(flat_round_trip);
        }
    }
    SetupSamples {
        vigil: pq,
        first,
        flat,
        audited,
        hybrid: bare,
        classical: classic,
        round_trip: trips,
        flat_round_trip: flat_trips,
    }
}

/// Link setup samples, one per dial.
struct SetupSamples {
    /// vigil links to a peer whose path MTU is remembered: handshake plus
    /// identity binding.
    vigil: Vec<Duration>,
    /// vigil links that search their path MTU from scratch.
    first: Vec<Duration>,
    /// vigil links without path MTU discovery.
    flat: Vec<Duration>,
    /// vigil links whose `link.opened` entry is made durable before the
    /// server accepts them.
    audited: Vec<Duration>,
    /// Bare X25519MLKEM768 handshakes.
    hybrid: Vec<Duration>,
    /// Bare X25519-only handshakes.
    classical: Vec<Duration>,
    /// One request/response round trip on a fresh hybrid connection.
    round_trip: Vec<Duration>,
    /// The same without path MTU discovery (no probe beside it).
    flat_round_trip: Vec<Duration>,
}

/// A plain quinn server and client with one key exchange group and the
/// same Ed25519 mutual TLS, but no identity binding.
struct BareHandshake {
    server: quinn::Endpoint,
    client: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl BareHandshake {
    fn start(kx: KeyExchange) -> Self {
        Self::start_with(kx, LinkConfig::default())
    }

    fn start_with(kx: KeyExchange, config: LinkConfig) -> Self {
        let identity = LinkIdentity::new(SigningKey::generate()).expect("identity");
        let server = server_endpoint(localhost(), &identity, kx, &config).expect("server");
        let acceptor = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = acceptor.accept().await {
                tokio::spawn(async move {
                    if let Ok(connecting) = incoming.accept() {
                        if let Ok(connection) = connecting.await {
                            // Echo one request per stream (the round-trip probe).
                            while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                                if let Ok(request) = recv.read_to_end(64).await {
                                    let _ = send.write_all(&request).await;
                                    let _ = send.finish();
                                }
                            }
                        }
                    }
                });
            }
        });
        Self {
            server,
            client: client_endpoint(localhost()).expect("endpoint"),
            config: client_config(&identity, kx, &config).expect("config"),
        }
    }

    /// One handshake, then one request/response round trip on the fresh
    /// connection (while its MTU probes run, as a binding's do): the time of
    /// each.
    async fn handshake(&self) -> (Duration, Duration) {
        let addr = self.server.local_addr().expect("address");
        let started = Instant::now();
        let connection = self
            .client
            .connect_with(self.config.clone(), addr, "vigil-link")
            .expect("connect")
            .await
            .expect("handshake");
        let elapsed = started.elapsed();
        let started = Instant::now();
        let (mut send, mut recv) = connection.open_bi().await.expect("stream");
        send.write_all(b"ping").await.expect("request");
        send.finish().expect("finish");
        let answer = recv.read_to_end(64).await.expect("answer");
        let round_trip = started.elapsed();
        assert_eq!(answer, b"ping");
        connection.close(0u32.into(), b"bench");
        (elapsed, round_trip)
    }
}

/// Median cost of one composite signature and one verification.
fn composite_costs() -> (Duration, Duration) {
    let key = SigningKey::generate();
    let message = [7u8; 4200];
    let (mut signs, mut verifies) = (Vec::new(), Vec::new());
    for _ in 0..setup_rounds() {
        let started = Instant::now();
        let signature = key.sign(&message, b"bench").expect("sign");
        signs.push(started.elapsed());
        let started = Instant::now();
        key.public_key()
            .verify(&message, b"bench", &signature)
            .expect("verify");
        verifies.push(started.elapsed());
    }
    (median(&signs), median(&verifies))
}

/// Accepts connections, reads each to EOF, then closes it.
async fn sink() -> SocketAddr {
    let listener = TcpListener::bind(localhost()).await.expect("sink");
    let addr = listener.local_addr().expect("sink address");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// Pushes `total` bytes split over `streams` connections to `addr`; each
/// connection half-closes and waits for the far end to close (so every byte
/// has arrived). Returns MB/s.
async fn push(addr: SocketAddr, streams: usize, total: usize) -> f64 {
    let per_stream = total / streams;
    let started = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                let chunk = vec![0x5au8; CHUNK];
                let mut left = per_stream;
                while left > 0 {
                    let n = left.min(CHUNK);
                    tcp.write_all(&chunk[..n]).await.expect("write");
                    left -= n;
                }
                tcp.shutdown().await.expect("shutdown");
                let mut rest = Vec::new();
                tcp.read_to_end(&mut rest).await.expect("read to end");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("stream task");
    }
    (per_stream * streams) as f64 / started.elapsed().as_secs_f64() / 1e6
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn median_f64(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len() as u32
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A local sshd with throwaway keys and an `ssh -L` forward through it.
struct SshForward {
    sshd: Child,
    ssh: Child,
    local: SocketAddr,
    _dir: tempfile::TempDir,
}

impl SshForward {
    fn start(target: SocketAddr) -> Result<Self, String> {
        let sshd_bin = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(
                "sshd is not installed; on Debian/Ubuntu: apt-get install openssh-server \
                 openssh-client (the bench starts its own sshd with throwaway keys on a \
                 free port; no system service is needed)",
            )?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let host_key = dir.path().join("host_key");
        let user_key = dir.path().join("user_key");
        keygen(&host_key)?;
        keygen(&user_key)?;
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(user_key.with_extension("pub"), &authorized).map_err(|e| e.to_string())?;
        let user = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-un")
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .trim()
        .to_string();
        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nAllowUsers {user}\n",
                host_key.display(),
                authorized.display(),
                dir.path().join("sshd.pid").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let sshd = Command::new(&sshd_bin)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start sshd: {e}"))?;
        let mut this = Self {
            sshd,
            ssh: Command::new("true").spawn().map_err(|e| e.to_string())?,
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: dir,
        };
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)))?;
        let local_port = free_port()?;
        this.ssh = Command::new("ssh")
            .args([
                "-N",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ExitOnForwardFailure=yes",
                "-o",
                "LogLevel=ERROR",
                "-i",
            ])
            .arg(&user_key)
            .args(["-p", &port.to_string(), "-L"])
            .arg(format!("{local_port}:127.0.0.1:{}", target.port()))
            .arg(format!("{user}@127.0.0.1"))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start ssh: {e}"))?;
        this.local = SocketAddr::from(([127, 0, 0, 1], local_port));
        wait_for_port(this.local)?;
        Ok(this)
    }
}

impl Drop for SshForward {
    fn drop(&mut self) {
        let _ = self.ssh.kill();
        let _ = self.ssh.wait();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "ssh-keygen failed".to_string())
}

fn free_port() -> Result<u16, String> {
    let listener = StdListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_for_port(addr: SocketAddr) -> Result<(), String> {
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listens on {addr} after 10 s"))
}
