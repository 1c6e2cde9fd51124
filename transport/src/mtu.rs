//! Path MTU memory: the largest UDP payload the last link to a peer's
//! address carried, so that the next link there (a re-key, a redial after a
//! drop, the next tunnel) starts at that size instead of searching for it
//! again. Sans I/O: callers pass the time.
//!
//! quinn starts every connection at QUIC's safe 1200 bytes and, once the
//! handshake is done, binary-searches up to the configured bound with
//! probes padded to the size tried: six probes each way between 1200 and
//! 8952 bytes. Those probes run while the identity binding is exchanged and
//! compete with it for the CPU, and the binding's 5 KB messages go out in
//! 1200-byte packets meanwhile. A link to a remembered peer starts at the
//! remembered size instead (handshake included) and sends no probe.
//!
//! If the path no longer carries that size:
//! - a handshake whose large datagrams are lost does not finish; the
//!   dialler gives up on the size after a quarter of its handshake timeout,
//!   forgets it ([`PathMtuMemory::forget`]) and dials again at 1200 bytes
//!   within the same call; the serving node, seeing that second attempt
//!   while the first is pending ([`PendingTrials`]), forgets it too (as it
//!   does when an attempt that started there fails without an answer);
//! - after the handshake, quinn's black hole detection drops the link to
//!   1200 bytes once large packets keep being lost, and the 1200 the link
//!   reports when it ends erases the memory.
//!
//! Like the kernel's own path MTU cache, an entry is trusted for
//! [`REMEMBER_FOR`] only.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// QUIC's minimum datagram size, where every connection starts (RFC 9000
/// section 14). Nothing at or below it is worth remembering.
pub const BASE_MTU: u16 = 1200;

/// How long a measured path MTU is trusted (the Linux default for its own
/// path MTU cache, `net.ipv4.route.mtu_expires`).
pub const REMEMBER_FOR: Duration = Duration::from_secs(600);

/// At most this many peers are remembered; past it, expired entries are
/// dropped and, if that is not enough, new peers are not remembered.
pub const MAX_PEERS: usize = 4096;

/// Path MTUs measured by earlier links, keyed by the peer's IP address.
#[derive(Debug, Default)]
pub struct PathMtuMemory {
    paths: Mutex<HashMap<IpAddr, Measured>>,
}

#[derive(Clone, Copy, Debug)]
struct Measured {
    mtu: u16,
    at: Instant,
}

impl PathMtuMemory {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path MTU last measured to `peer`, if it is larger than the base
    /// and younger than [`REMEMBER_FOR`] at `now`.
    pub fn recall(&self, peer: IpAddr, now: Instant) -> Option<u16> {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        let measured = *paths.get(&peer)?;
        if now.saturating_duration_since(measured.at) >= REMEMBER_FOR {
            paths.remove(&peer);
            return None;
        }
        Some(measured.mtu)
    }

    /// Records what a link to `peer` carried when it ended (or when it was
    /// replaced). A size at or below [`BASE_MTU`] (the search failed, or the
    /// link ended before any probe came back) erases what was known. A
    /// smaller size than the one remembered does not replace it: a link
    /// that ended before its search finished says nothing about the path's
    /// limit, and a path that shrank shows as a lost probe, so as 1200.
    pub fn remember(&self, peer: IpAddr, mtu: u16, now: Instant) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if mtu <= BASE_MTU {
            paths.remove(&peer);
            return;
        }
        let live = |m: &Measured| now.saturating_duration_since(m.at) < REMEMBER_FOR;
        let mtu = match paths.get(&peer) {
            Some(known) if live(known) => mtu.max(known.mtu),
            _ => mtu,
        };
        if paths.len() >= MAX_PEERS && !paths.contains_key(&peer) {
            paths.retain(|_, m| live(m));
            if paths.len() >= MAX_PEERS {
                return;
            }
        }
        paths.insert(peer, Measured { mtu, at: now });
    }

    /// Drops what is known about `peer`: a link that started at the
    /// remembered size failed, so the next one starts at [`BASE_MTU`] and
    /// searches.
    pub fn forget(&self, peer: IpAddr) {
        let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.remove(&peer);
    }

    /// How many peers are remembered (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serving side: the addresses with a link attempt that started at the
/// remembered path MTU and has not finished its handshake yet. A dialler
/// whose attempt at a remembered size does not come through dials again at
/// 1200 bytes; when that second attempt arrives while the first is still
/// pending here, the serving node forgets the size too, or its own large
/// handshake datagrams would be lost again.
#[derive(Debug, Default)]
pub struct PendingTrials {
    open: Mutex<HashSet<IpAddr>>,
}

impl PendingTrials {
    /// Whether an attempt from `peer` may start at the remembered size:
    /// only if no other attempt from there that did is still pending. A
    /// `true` must be followed by [`PendingTrials::end`].
    pub fn begin(&self, peer: IpAddr) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.insert(peer)
    }

    /// The attempt from `peer` that began at the remembered size finished
    /// its handshake, or failed.
    pub fn end(&self, peer: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn peer(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn a_measured_path_is_recalled_until_it_expires() {
        let memory = PathMtuMemory::new();
        let t0 = Instant::now();
        assert_eq!(memory.recall(peer(1), t0), None);
        memory.remember(peer(1), 8952, t0);
        assert_eq!(memory.recall(peer(1), t0 + REMEMBER_FOR / 2), Some(8952));
        assert_eq!(memory.recall(peer(2), t0), None, "keyed by peer address");
        assert_eq!(memory.recall(peer(1), t0 + REMEMBER_FOR), None);
        assert!(memory.is_empty(), "an expired entry is dropped when read");
    }

    #[test]
    fn a_link_that_ended_at_the_base_size_erases_the_memory() {
        let memory = PathMtuMemory::new();
        let t0 = Instant::now();
        memory.remember(peer(1), 8952, t0);
        memory.remember(peer(1), BASE_MTU, t0);
        assert_eq!(memory.recall(peer(1), t0), None);
        memory.remember(peer(1), 1000, t0);
        assert!(memory.is_empty());
    }

    #[test]
    fn a_forgotten_peer_is_no_longer_recalled() {
        let memory = PathMtuMemory::new();
        let t0 = Instant::now();
        memory.remember(peer(1), 8952, t0);
        memory.remember(peer(2), 1500, t0);
        memory.forget(peer(1));
        assert_eq!(memory.recall(peer(1), t0), None);
        assert_eq!(memory.recall(peer(2), t0), Some(1500), "other peers stay");
    }

    #[test]
    fn one_attempt_per_address_starts_at_the_remembered_size_at_a_time() {
        let trials = PendingTrials::default();
        assert!(trials.begin(peer(1)));
        assert!(
            !trials.begin(peer(1)),
            "a second attempt while one is pending"
        );
        assert!(trials.begin(peer(2)), "other addresses are independent");
        trials.end(peer(1));
        assert!(trials.begin(peer(1)), "after the first ended");
    }

    #[test]
    fn a_link_cut_short_does_not_lower_what_is_known() {
        let memory = PathMtuMemory::new();
        let t0 = Instant::now();
        memory.remember(peer(1), 8467, t0);
        memory.remember(peer(1), 8952, t0);
        memory.remember(peer(1), 5076, t0 + Duration::from_secs(1));
        let soon = t0 + Duration::from_secs(2);
        assert_eq!(memory.recall(peer(1), soon), Some(8952));
        // Once expired, a new measurement stands on its own.
        let later = soon + REMEMBER_FOR;
        memory.remember(peer(1), 1441, later);
        assert_eq!(memory.recall(peer(1), later), Some(1441));
    }

    #[test]
    fn the_memory_is_bounded_and_makes_room_from_expired_entries() {
        let memory = PathMtuMemory::new();
        let t0 = Instant::now();
        for n in 0..MAX_PEERS as u32 {
            memory.remember(peer(n), 1500, t0);
        }
        let later = t0 + Duration::from_secs(1);
        memory.remember(peer(u32::MAX / 2), 1500, later);
        assert_eq!(memory.len(), MAX_PEERS, "full of live entries: not added");
        assert_eq!(memory.recall(peer(u32::MAX / 2), later), None);

        let expired = t0 + REMEMBER_FOR;
        memory.remember(peer(u32::MAX / 2), 1500, expired);
        assert_eq!(memory.len(), 1, "expired entries made room");
        assert_eq!(memory.recall(peer(u32::MAX / 2), expired), Some(1500));
    }
}
