//! Splicing a TCP connection onto a QUIC stream pair so that it behaves like
//! TCP end to end: a FIN on one side becomes a FIN on the other (half-close),
//! a reset becomes a reset, and flow control on both transports gives
//! backpressure (a pump only reads when its previous write completed).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// QUIC stream error code: the TCP side was reset or failed.
pub const RESET_TCP: VarInt = VarInt::from_u32(1);

/// Most bytes one TCP read takes. Reads go into a fresh buffer that is
/// handed to QUIC without a copy ([`SendStream::write_chunk`]); a read
/// rarely fills it, and the unused tail is given back.
const CHUNK: usize = 256 * 1024;
/// How long a finished stream waits for the peer to read everything.
const DRAIN: Duration = Duration::from_secs(10);

/// Bytes moved in each direction and whether both ends closed cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpliceStats {
    /// Bytes read from TCP and written to QUIC.
    pub tcp_to_quic: u64,
    /// Bytes read from QUIC and written to TCP.
    pub quic_to_tcp: u64,
    /// False when either side was reset or failed.
    pub clean: bool,
    pub duration: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broken {
    Tcp,
    Quic,
}

/// Copies both ways until both directions are closed, or until one side
/// breaks, in which case the other side is reset too.
pub async fn splice(tcp: TcpStream, mut send: SendStream, mut recv: RecvStream) -> SpliceStats {
    let started = Instant::now();
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let (mut up_bytes, mut down_bytes) = (0u64, 0u64);
    let broken = {
        let up = tcp_to_quic(&mut tcp_read, &mut send, &mut up_bytes);
        let down = quic_to_tcp(&mut recv, &mut tcp_write, &mut down_bytes);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => match r {
                    Ok(()) => up_done = true,
                    Err(b) => break Some(b),
                },
                r = &mut down, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(b) => break Some(b),
                },
            }
            if up_done && down_done {
                break None;
            }
        }
    };
    match broken {
        None => {
            // Everything was sent and finished; let the peer read it all
            // before the stream (and maybe the last handle on the link) goes.
            let _ = tokio::time::timeout(DRAIN, send.stopped()).await;
        }
        Some(side) => {
            let _ = send.reset(RESET_TCP);
            let _ = recv.stop(RESET_TCP);
            if side == Broken::Quic {
                if let Ok(tcp) = tcp_read.reunite(tcp_write) {
                    // Zero linger turns the close into a TCP reset.
                    let _ = tcp.set_zero_linger();
                }
            }
        }
    }
    SpliceStats {
        tcp_to_quic: up_bytes,
        quic_to_tcp: down_bytes,
        clean: broken.is_none(),
        duration: started.elapsed(),
    }
}

async fn tcp_to_quic(
    tcp: &mut OwnedReadHalf,
    send: &mut SendStream,
    count: &mut u64,
) -> Result<(), Broken> {
    let mut buf = BytesMut::new();
    loop {
        if buf.capacity() < CHUNK / 4 {
            buf = BytesMut::with_capacity(CHUNK);
        }
        let n = tcp.read_buf(&mut buf).await.map_err(|_| Broken::Tcp)?;
        if n == 0 {
            return send.finish().map_err(|_| Broken::Quic);
        }
        // The filled part goes to QUIC as it is; the rest of the allocation
        // takes the next read.
        send.write_chunk(buf.split().freeze())
            .await
            .map_err(|_| Broken::Quic)?;
        *count += n as u64;
    }
}

async fn quic_to_tcp(
    recv: &mut RecvStream,
    tcp: &mut OwnedWriteHalf,
    count: &mut u64,
) -> Result<(), Broken> {
    loop {
        match recv.read_chunk(CHUNK, true).await {
            Ok(Some(chunk)) => {
                tcp.write_all(&chunk.bytes).await.map_err(|_| Broken::Tcp)?;
                *count += chunk.bytes.len() as u64;
            }
            Ok(None) => return tcp.shutdown().await.map_err(|_| Broken::Tcp),
            Err(_) => return Err(Broken::Quic),
        }
    }
}
