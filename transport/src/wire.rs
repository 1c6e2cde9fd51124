//! Reading and writing link messages on QUIC streams: the thin I/O edge
//! around [`crate::message`]. The header is read and checked before the body
//! is allocated, so a peer cannot make us buffer more than a kind allows.

use quinn::{RecvStream, SendStream};

use crate::error::LinkError;
use crate::message::{Header, LinkMessage, HEADER_LEN};

/// Reads exactly one message from `recv`.
pub async fn read_message(recv: &mut RecvStream) -> Result<LinkMessage, LinkError> {
    let mut head = [0u8; HEADER_LEN];
    recv.read_exact(&mut head)
        .await
        .map_err(|e| LinkError::Stream(e.to_string()))?;
    let header = Header::decode(head)?;
    let mut body = vec![0u8; header.body_len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| LinkError::Stream(e.to_string()))?;
    Ok(LinkMessage::decode_body(header, &body)?)
}

/// Writes one message to `send`.
pub async fn write_message(send: &mut SendStream, message: &LinkMessage) -> Result<(), LinkError> {
    send.write_all(&message.encode())
        .await
        .map_err(|e| LinkError::Stream(e.to_string()))
}
