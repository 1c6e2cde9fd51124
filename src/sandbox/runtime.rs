//! The sandbox runtime: one wasmtime engine (pooling allocator, epoch
//! interruption driven by a ticker thread), the compiled-code cache, the
//! linkers, and `LoadedTool::call`, which runs one call in a fresh store and
//! instance made from the tool's pre-instantiated component. Code enters
//! only as a [`VerifiedPackage`], which only the gatekeeper makes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, PoolingAllocationConfig, Store, Trap,
};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi_http::WasiHttpCtx;

use super::cache::{CacheError, CacheStats, Compiled, CompiledCache};
use super::capabilities::Limits;
use super::guard;
use super::outcome::{classify, CallOutcome, CallResult, RunEnd, RunFacts, TrapKind};
use super::policy::{Policy, PolicyError};
use super::report::UseLog;
use super::slots::CallSlots;
use super::state::{wasi_builder, CallSetup, CallState, MemoryCap, ModuleState};
use crate::gatekeeper::VerifiedPackage;

/// How often the epoch ticks: the resolution of call timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of a sandbox (one per node).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Directory of the compiled-code cache.
    pub cache_dir: PathBuf,
    /// Largest memory cap any tool may ask for, in MiB (the pool's slot size).
    pub max_memory_mib: u32,
    /// How many calls may run at once (pool slots).
    pub max_concurrent_calls: u32,
}

impl SandboxConfig {
    /// Defaults with the cache in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            max_memory_mib: 1024,
            max_concurrent_calls: 32,
        }
    }
}

/// A failure of the sandbox itself (not of a tool call).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot configure the wasm engine: {0:#}")]
    Engine(anyhow::Error),
    #[error("cannot set up the sandbox directory {path}: {source}")]
    Setup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("the package's capabilities cannot be enforced: {0}")]
    Policy(#[from] PolicyError),
    #[error("the package's memory cap of {asked} MiB is over the node's ceiling of {ceiling} MiB")]
    MemoryCeiling { asked: u32, ceiling: u32 },
    #[error("the package is a WASI preview 1 module that imports `poll_oneoff`: its waits could not be stopped at the time limit; build the tool for wasm32-wasip2 instead")]
    UnboundedWait,
    #[error("the package cannot be linked against WASI (does it import something the node does not offer?): {0:#}")]
    Link(anyhow::Error),
}

/// Stops the epoch ticker when the last user is gone.
#[derive(Debug)]
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("vigil-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("warning: no epoch ticker, timeouts disabled: {e}"));
        Self { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Parts shared by the sandbox and every tool loaded from it.
struct Shared {
    engine: Engine,
    slots: CallSlots,
    decoy_root: PathBuf,
    _ticker: Ticker,
}

/// The node's wasm sandbox.
pub struct Sandbox {
    shared: Arc<Shared>,
    cache: CompiledCache,
    component_linker: wasmtime::component::Linker<CallState>,
    module_linker: wasmtime::Linker<ModuleState>,
    ceiling_mib: u32,
}

impl Sandbox {
    /// Creates the engine, opens the compiled-code cache and builds the linkers.
    pub fn new(config: &SandboxConfig) -> Result<Self, SandboxError> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.max_concurrent_calls.max(1);
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .max_memories_per_component(2)
            .max_core_instances_per_component(16)
            .max_tables_per_component(8)
            .max_memory_size((config.max_memory_mib as usize) << 20)
            // A freed table is zeroed with `memset` up to this size instead
            // of `madvise`: the tables a tool uses are a few KiB, and each
            // `madvise` costs a TLB shootdown on every core running the node.
            // Either way the next call starts from a zeroed table.
            .table_keep_resident(64 << 10);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(SandboxError::Engine)?;
        let cache = CompiledCache::open(&config.cache_dir, &engine)?;
        let decoy_root = config.cache_dir.join("empty-root");
        std::fs::create_dir_all(&decoy_root).map_err(|source| SandboxError::Setup {
            path: decoy_root.clone(),
            source,
        })?;
        let component_linker = guard::component_linker(&engine).map_err(SandboxError::Link)?;
        let mut module_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::preview1::add_to_linker_sync(&mut module_linker, |s: &mut ModuleState| {
            &mut s.wasi
        })
        .map_err(SandboxError::Link)?;
        let shared = Arc::new(Shared {
            slots: CallSlots::new(slots),
            _ticker: Ticker::start(&engine),
            engine,
            decoy_root,
        });
        Ok(Self {
            shared,
            cache,
            component_linker,
            module_linker,
            ceiling_mib: config.max_memory_mib,
        })
    }

    /// Compilations and cache loads so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Compiles (or loads from the cache) and pre-instantiates a package
    /// the gatekeeper verified: its module bytes exactly as verified, under
    /// its manifest's capabilities and limits, with the package name as
    /// the program name (argv[0]). Nothing else reaches wasmtime.
    pub fn load(&self, package: &VerifiedPackage) -> Result<LoadedTool, SandboxError> {
        let manifest = package.manifest();
        let limits = manifest.limits;
        if limits.memory_mib > self.ceiling_mib {
            return Err(SandboxError::MemoryCeiling {
                asked: limits.memory_mib,
                ceiling: self.ceiling_mib,
            });
        }
        let policy = Arc::new(Policy::new(&manifest.capabilities)?);
        let pre = match self.cache.get(&self.shared.engine, package.module())? {
            Compiled::Component(component) => {
                let pre = self
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(SandboxError::Link)?;
                Pre::Component(CommandPre::new(pre).map_err(SandboxError::Link)?)
            }
            Compiled::Module(module) => {
                // A preview 1 module blocked in `poll_oneoff` (a sleep) could
                // not be stopped at its time limit: refuse such modules.
                if module
                    .imports()
                    .any(|i| i.module() == "wasi_snapshot_preview1" && i.name() == "poll_oneoff")
                {
                    return Err(SandboxError::UnboundedWait);
                }
                Pre::Module(
                    self.module_linker
                        .instantiate_pre(&module)
                        .map_err(SandboxError::Link)?,
                )
            }
        };
        Ok(LoadedTool {
            shared: Arc::clone(&self.shared),
            pre,
            policy,
            limits,
            program: package.summary().name.clone(),
        })
    }
}

enum Pre {
    Component(CommandPre<CallState>),
    Module(InstancePre<ModuleState>),
}

/// A package ready to be called: compiled, linked and pre-instantiated.
pub struct LoadedTool {
    shared: Arc<Shared>,
    pre: Pre,
    policy: Arc<Policy>,
    limits: Limits,
    program: String,
}

impl LoadedTool {
    /// Runs one call: `tool` goes to argv[1], `args` (JSON) to stdin. Always
    /// returns an outcome; a failing or stopped tool never harms the node.
    pub fn call(&self, tool: &str, args: &serde_json::Value) -> CallOutcome {
        let started = Instant::now();
        let log = UseLog::default();
        // Wait for a pool slot at most as long as the call itself may run.
        let patience = Duration::from_millis(self.limits.timeout_ms);
        let Some(_slot) = self.shared.slots.acquire(patience) else {
            return CallOutcome {
                tool: tool.to_string(),
                result: CallResult::NotRun {
                    message: format!(
                        "the node is running its maximum of {} concurrent tool calls and none \
                         finished within {} ms; retry later or raise the limit",
                        self.shared.slots.capacity(),
                        self.limits.timeout_ms
                    ),
                },
                report: log.report(),
                stderr: String::new(),
                stderr_truncated: false,
                elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            };
        };
        let setup = CallSetup {
            program: &self.program,
            tool,
            stdin: args.to_string().into_bytes(),
            max_output_bytes: self.limits.max_output_bytes,
            policy: &self.policy,
            log: &log,
            decoy_root: &self.shared.decoy_root,
        };
        let (result, stderr) = match wasi_builder(&setup) {
            Err(e) => (
                CallResult::NotRun {
                    message: e.to_string(),
                },
                (String::new(), false),
            ),
            Ok((mut builder, captured)) => {
                let (end, memory_refused) = match &self.pre {
                    Pre::Component(pre) => self.run_component(pre, builder.build(), &log),
                    Pre::Module(pre) => self.run_module(pre, builder.build_p1()),
                };
                let stdout = captured.stdout.contents();
                let facts = RunFacts {
                    end,
                    stdout: &stdout,
                    memory_refused,
                    limits: self.limits,
                };
                (classify(&facts), captured.stderr.contents())
            }
        };
        CallOutcome {
            tool: tool.to_string(),
            result,
            report: log.report(),
            stderr: stderr.0,
            stderr_truncated: stderr.1,
            elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1) as u64;
        self.limits.timeout_ms.div_ceil(tick) + 1
    }

    fn run_component(
        &self,
        pre: &CommandPre<CallState>,
        wasi: wasmtime_wasi::p2::WasiCtx,
        log: &UseLog,
    ) -> (RunEnd, Option<usize>) {
        let state = CallState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            policy: Arc::clone(&self.policy),
            log: log.clone(),
            descriptor_paths: Default::default(),
            lookups: Default::default(),
            memory: MemoryCap::new(self.limits.memory_mib),
            deadline: Instant::now() + Duration::from_millis(self.limits.timeout_ms),
        };
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(self.deadline_ticks());
        let ran = pre
            .instantiate(&mut store)
            .and_then(|command| command.wasi_cli_run().call_run(&mut store));
        let end = match ran {
            Ok(Ok(())) => RunEnd::Exited(0),
            Ok(Err(())) => RunEnd::Exited(1),
            Err(e) => run_end_of(&e),
        };
        (end, store.data().memory.refused)
    }

    fn run_module(
        &self,
        pre: &InstancePre<ModuleState>,
        wasi: wasmtime_wasi::preview1::WasiP1Ctx,
    ) -> (RunEnd, Option<usize>) {
        let state = ModuleState {
            wasi,
            memory: MemoryCap::new(self.limits.memory_mib),
        };
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(self.deadline_ticks());
        let ran = pre.instantiate(&mut store).and_then(|instance| {
            instance
                .get_typed_func::<(), ()>(&mut store, "_start")?
                .call(&mut store, ())
        });
        let end = match ran {
            Ok(()) => RunEnd::Exited(0),
            Err(e) => run_end_of(&e),
        };
        (end, store.data().memory.refused)
    }
}

/// Reads how a run ended from wasmtime's error.
fn run_end_of(err: &anyhow::Error) -> RunEnd {
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return RunEnd::Exited(exit.0);
    }
    if err.downcast_ref::<guard::HostWaitTimedOut>().is_some() {
        return RunEnd::Trapped {
            kind: TrapKind::Interrupted,
            message: format!("{err:#}"),
        };
    }
    let kind = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => TrapKind::Interrupted,
        Some(Trap::StackOverflow) => TrapKind::StackOverflow,
        _ => TrapKind::Other,
    };
    RunEnd::Trapped {
        kind,
        message: format!("{err:#}"),
    }
}
