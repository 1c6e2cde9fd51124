//! The store data of one call and how it is set up from the policy: the
//! WASI context (argv, stdin, capped stdout and stderr, granted environment,
//! preopens, socket check), the wasi:http authority check, and the memory
//! cap. Nothing from the host is inherited.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p2::{
    IoView, OutputStream, Pollable, StdoutStream, StreamError, WasiCtx, WasiCtxBuilder, WasiView,
};
use wasmtime_wasi::{DirPerms, FilePerms, SocketAddrUse};
use wasmtime_wasi_http::body::HyperOutgoingBody;
use wasmtime_wasi_http::types::{
    default_send_request, HostFutureIncomingResponse, OutgoingRequestConfig,
};
use wasmtime_wasi_http::{HttpResult, WasiHttpCtx, WasiHttpView};

use super::policy::{DirAccess, Policy};
use super::report::{Resource, UseLog};

/// How much of a tool's stderr is kept for the audit.
pub const STDERR_KEPT_BYTES: usize = 8 * 1024;

/// Refuses linear memory growth past the tool's cap and remembers that it did.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    limit_bytes: usize,
    pub(crate) refused: Option<usize>,
}

impl MemoryCap {
    pub(crate) fn new(limit_mib: u32) -> Self {
        Self {
            limit_bytes: (limit_mib as usize).saturating_mul(1024 * 1024),
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        if desired > self.limit_bytes {
            self.refused = Some(desired);
            anyhow::bail!("memory cap of {} bytes reached", self.limit_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A stderr that keeps the first [`STDERR_KEPT_BYTES`] and silently drops
/// the rest, so a chatty tool is truncated rather than broken.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptStderr {
    kept: Arc<Mutex<(Vec<u8>, bool)>>,
}

impl KeptStderr {
    /// The kept bytes and whether anything was dropped.
    pub(crate) fn contents(&self) -> (String, bool) {
        let guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        (String::from_utf8_lossy(&guard.0).into_owned(), guard.1)
    }
}

impl OutputStream for KeptStderr {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let room = STDERR_KEPT_BYTES.saturating_sub(guard.0.len());
        let take = room.min(bytes.len());
        guard.0.extend_from_slice(&bytes[..take]);
        guard.1 |= take < bytes.len();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl Pollable for KeptStderr {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl StdoutStream for KeptStderr {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn isatty(&self) -> bool {
        false
    }
}

/// The captured output of one call.
pub(crate) struct Captured {
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: KeptStderr,
}

/// What one call's WASI context is made from.
pub(crate) struct CallSetup<'a> {
    pub(crate) program: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) stdin: Vec<u8>,
    pub(crate) max_output_bytes: u64,
    pub(crate) policy: &'a Arc<Policy>,
    pub(crate) log: &'a UseLog,
    /// The empty read-only directory preopened as `/`, so that paths outside
    /// every grant still reach the guard (and are reported) instead of being
    /// refused silently inside the guest's libc.
    pub(crate) decoy_root: &'a Path,
}

/// A preopen that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot preopen granted directory {dir}: {source}")]
pub(crate) struct PreopenError {
    dir: String,
    source: anyhow::Error,
}

/// Builds the WASI context of one call from its setup.
pub(crate) fn wasi_builder(
    setup: &CallSetup<'_>,
) -> Result<(WasiCtxBuilder, Captured), PreopenError> {
    // The pipe holds one byte more than the cap so that "over the cap" is
    // observable.
    let cap = usize::try_from(setup.max_output_bytes).unwrap_or(usize::MAX - 1);
    let captured = Captured {
        stdout: MemoryOutputPipe::new(cap + 1),
        stderr: KeptStderr::default(),
    };
    // `vars_os`, not `vars`: a variable that is not UTF-8 must not panic
    // the node; such a variable cannot be granted anyway.
    // Most tools are granted no variable: then the node's environment is
    // not copied for every call only to be filtered down to nothing.
    let env = if setup.policy.grants_env() {
        setup.policy.environment(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    } else {
        Vec::new()
    };
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&[setup.program, setup.tool])
        .stdin(MemoryInputPipe::new(setup.stdin.clone()))
        .stdout(captured.stdout.clone())
        .stderr(captured.stderr.clone())
        .envs(&env[..]);
    let preopen = |builder: &mut WasiCtxBuilder, host: &Path, guest: &str, access| {
        let (dir, file) = match access {
            DirAccess::ReadOnly => (DirPerms::READ, FilePerms::READ),
            DirAccess::ReadWrite => (DirPerms::all(), FilePerms::all()),
        };
        builder
            .preopened_dir(host, guest, dir, file)
            .map(|_| ())
            .map_err(|source| PreopenError {
                dir: guest.to_string(),
                source,
            })
    };
    preopen(&mut builder, setup.decoy_root, "/", DirAccess::ReadOnly)?;
    for (dir, access) in setup.policy.preopens() {
        preopen(&mut builder, Path::new(dir), dir, access)?;
    }
    let (policy, log) = (Arc::clone(setup.policy), setup.log.clone());
    builder
        .allow_ip_name_lookup(true)
        .allow_tcp(true)
        .allow_udp(true)
        .socket_addr_check(move |addr, used| {
            let allowed = check_socket(&policy, &log, addr, used);
            Box::pin(std::future::ready(allowed))
        });
    Ok((builder, captured))
}

/// The socket hook: connections (TCP connect, UDP send) follow the policy;
/// binding a local address is never granted.
fn check_socket(policy: &Policy, log: &UseLog, addr: SocketAddr, used: SocketAddrUse) -> bool {
    let target = addr.to_string();
    match used {
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
            log.denied(
                Resource::Connect,
                &target,
                "tools may not bind or listen on sockets",
            );
            false
        }
        SocketAddrUse::TcpConnect
        | SocketAddrUse::UdpConnect
        | SocketAddrUse::UdpOutgoingDatagram => {
            match log.with_lookups(|lookups| policy.check_connect(addr, lookups)) {
                Ok(()) => {
                    log.used_host(&target);
                    true
                }
                Err(refusal) => {
                    log.denied(Resource::Connect, &target, &refusal.to_string());
                    false
                }
            }
        }
    }
}

/// The store data of a component call.
pub(crate) struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) policy: Arc<Policy>,
    pub(crate) log: UseLog,
    /// Guest path of each open directory/file descriptor, by resource rep.
    pub(crate) descriptor_paths: HashMap<u32, String>,
    /// Host name of each pending lookup stream, by resource rep.
    pub(crate) lookups: HashMap<u32, String>,
    pub(crate) memory: MemoryCap,
    /// When the call's time limit passes: host waits give up then.
    pub(crate) deadline: std::time::Instant,
}

impl IoView for CallState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> &mut WasiCtx {
        &mut self.wasi
    }
}

impl WasiHttpView for CallState {
    fn ctx(&mut self) -> &mut WasiHttpCtx {
        &mut self.http
    }

    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        use wasmtime_wasi_http::bindings::http::types::ErrorCode;
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let default_port = if config.use_tls { 443 } else { 80 };
        match self.policy.check_http_authority(&authority, default_port) {
            Ok(()) => {
                self.log.used_host(&authority);
                Ok(default_send_request(request, config))
            }
            Err(reason) => {
                self.log.denied(Resource::Http, &authority, &reason);
                Err(ErrorCode::HttpRequestDenied.into())
            }
        }
    }
}

/// The store data of a WASI preview 1 module call (no sockets in p1).
pub(crate) struct ModuleState {
    pub(crate) wasi: wasmtime_wasi::preview1::WasiP1Ctx,
    pub(crate) memory: MemoryCap,
}
