//! vigil-transport: post-quantum QUIC links between nodes (work in progress).
