//! The UDP socket under a link endpoint: quinn's own socket, with one fix
//! that large packets need.
//!
//! quinn 0.11 batches up to 10 packets of the current path MTU into one
//! segmentation-offload (GSO) send. The kernel refuses a send whose total
//! exceeds the largest UDP payload (65,507 bytes over IPv4) with `EMSGSIZE`,
//! which quinn-udp treats as a lost MTU probe and drops silently. With the
//! default 1452-byte MTU a batch stays well below that; once MTU discovery
//! finds a larger path MTU (loopback, jumbo frames) whole batches would be
//! lost. [`SplitGso`] cuts such a batch into as few sends as fit.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The most UDP payload bytes one send may carry (IPv4: 65,535 minus the IP
/// and UDP headers; IPv6 allows 20 more, this is the smaller of the two).
pub const MAX_SEND_PAYLOAD: usize = 65_507;

/// How many segments of `segment_size` bytes fit into one send.
pub fn segments_per_send(segment_size: usize) -> usize {
    (MAX_SEND_PAYLOAD / segment_size.max(1)).max(1)
}

/// Wraps a quinn UDP socket and splits segmentation-offload batches that
/// one send could not carry.
pub struct SplitGso {
    inner: Arc<dyn AsyncUdpSocket>,
}

impl SplitGso {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>) -> Self {
        Self { inner }
    }
}

impl fmt::Debug for SplitGso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SplitGso").field(&self.inner).finish()
    }
}

impl AsyncUdpSocket for SplitGso {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let Some(segment) = transmit.segment_size.filter(|s| *s > 0) else {
            return self.inner.try_send(transmit);
        };
        if transmit.contents.len() <= MAX_SEND_PAYLOAD {
            return self.inner.try_send(transmit);
        }
        // If a later part would block, the error makes quinn retry the whole
        // batch; the parts already sent then arrive twice, and QUIC
        // receivers discard duplicate packets.
        for part in transmit
            .contents
            .chunks(segments_per_send(segment) * segment)
        {
            self.inner.try_send(&Transmit {
                destination: transmit.destination,
                ecn: transmit.ecn,
                contents: part,
                segment_size: (part.len() > segment).then_some(segment),
                src_ip: transmit.src_ip,
            })?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_to_what_one_send_carries() {
        assert_eq!(segments_per_send(1452), 45);
        assert_eq!(segments_per_send(6500), 10);
        assert_eq!(segments_per_send(9000), 7);
        assert_eq!(segments_per_send(65_495), 1);
        assert_eq!(segments_per_send(65_527), 1);
    }
}
