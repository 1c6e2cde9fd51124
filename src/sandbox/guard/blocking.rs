//! Waits on the host that end at the call's deadline. Epoch interruption
//! stops a tool only while it runs wasm code; a tool blocked in a host call
//! (sleeping, waiting on a socket, an HTTP response or a stream) would wait
//! past its time limit. Every blocking entry of `wasi:io` (`poll`,
//! `pollable.block` and the `blocking-*` stream methods) is shadowed here by
//! one that gives up at the deadline with [`HostWaitTimedOut`], which ends
//! the call as a timeout. The non-blocking methods delegate unchanged.

use std::future::Future;
use std::time::Instant;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::runtime::in_tokio;

use super::Guarded;

/// The call's time limit passed while the tool was blocked in a host call.
#[derive(Debug, thiserror::Error)]
#[error("the call's time limit passed while the tool was waiting on the host")]
pub(crate) struct HostWaitTimedOut;

/// Runs `wait` on wasmtime-wasi's runtime until it finishes or `deadline`.
fn until<T>(deadline: Instant, wait: impl Future<Output = T>) -> Option<T> {
    in_tokio(async {
        tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), wait)
            .await
            .ok()
    })
}

impl Guarded<'_> {
    fn io(&mut self) -> wasmtime_wasi::p2::IoImpl<&mut super::CallState> {
        wasmtime_wasi::p2::IoImpl(&mut *self.state)
    }

    /// A blocking stream operation bounded by the deadline.
    fn stream_wait<'s, T, F>(&'s mut self, wait: impl FnOnce(Guarded<'s>) -> F) -> StreamResult<T>
    where
        F: Future<Output = StreamResult<T>>,
    {
        let deadline = self.state.deadline;
        until(deadline, wait(Guarded { state: self.state }))
            .unwrap_or_else(|| Err(StreamError::Trap(anyhow::Error::new(HostWaitTimedOut))))
    }
}

impl poll::Host for Guarded<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> anyhow::Result<Vec<u32>> {
        let deadline = self.state.deadline;
        let mut io = self.io();
        until(deadline, async_poll::Host::poll(&mut io, pollables))
            .unwrap_or_else(|| Err(anyhow::Error::new(HostWaitTimedOut)))
    }
}

impl poll::HostPollable for Guarded<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> anyhow::Result<bool> {
        in_tokio(async_poll::HostPollable::ready(&mut self.io(), pollable))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> anyhow::Result<()> {
        let deadline = self.state.deadline;
        let mut io = self.io();
        until(deadline, async_poll::HostPollable::block(&mut io, pollable))
            .unwrap_or_else(|| Err(anyhow::Error::new(HostWaitTimedOut)))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> anyhow::Result<()> {
        async_poll::HostPollable::drop(&mut self.io(), pollable)
    }
}

impl streams::Host for Guarded<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> anyhow::Result<streams::StreamError> {
        streams::Host::convert_stream_error(&mut self.io(), err)
    }
}

impl streams::HostOutputStream for Guarded<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> anyhow::Result<()> {
        streams::HostOutputStream::drop(&mut self.io(), stream)
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(&mut self.io(), stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(&mut self.io(), stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        self.stream_wait(|mut g| async move {
            async_streams::HostOutputStream::blocking_write_and_flush(&mut g.io(), stream, bytes)
                .await
        })
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        self.stream_wait(|mut g| async move {
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(
                &mut g.io(),
                stream,
                len,
            )
            .await
        })
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> anyhow::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(&mut self.io(), stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(&mut self.io(), stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(&mut self.io(), stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        self.stream_wait(|mut g| async move {
            async_streams::HostOutputStream::blocking_flush(&mut g.io(), stream).await
        })
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(&mut self.io(), dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        self.stream_wait(|mut g| async move {
            async_streams::HostOutputStream::blocking_splice(&mut g.io(), dst, src, len).await
        })
    }
}

impl streams::HostInputStream for Guarded<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> anyhow::Result<()> {
        streams::HostInputStream::drop(&mut self.io(), stream)
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(&mut self.io(), stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        self.stream_wait(|mut g| async move {
            async_streams::HostInputStream::blocking_read(&mut g.io(), stream, len).await
        })
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(&mut self.io(), stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        self.stream_wait(|mut g| async move {
            async_streams::HostInputStream::blocking_skip(&mut g.io(), stream, len).await
        })
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> anyhow::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(&mut self.io(), stream)
    }
}
