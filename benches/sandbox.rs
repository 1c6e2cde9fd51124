//! Sandbox call latency: `echo` cold (first call after a start with the
//! compiled cache present), warm p50/p99, calls/s on 2 threads, next to the
//! bare wasmtime floor (same engine, same component, plain WASI with only
//! stdin/stdout, no capability setup or guard) and a native process spawn of
//! the same echo program, all measured in the same run. Prints figures.
//! vigil's side loads echo as the node does: a signed package admitted by
//! the gatekeeper (signed and admitted in memory before timing starts).
//!
//! Run: `bash tools/build.sh && cargo bench --bench sandbox`

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::sandbox::{LoadedTool, Sandbox, SandboxConfig};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p2::{IoView, WasiCtx, WasiCtxBuilder, WasiView};
use wasmtime_wasi::I32Exit;

#[path = "../tests/signed_support/mod.rs"]
mod signed;

const WARM_CALLS: usize = 2000;
const SPAWNS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summarize(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    println!(
        "{name:<28} p50 {:>9.1} us   p99 {:>9.1} us   ({} calls)",
        p50.as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len()
    );
    p50
}

fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn vigil_call(tool: &LoadedTool) {
    let outcome = tool.call("echo", &json!({"text": "hello"}));
    assert!(outcome.result.is_ok(), "{outcome:?}");
}

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl IoView for Bare {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> &mut WasiCtx {
        &mut self.wasi
    }
}

/// The floor: the same component run with plain wasmtime-wasi.
fn bare_floor(wasm: &[u8]) -> (Engine, CommandPre<Bare>) {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(32)
        .total_core_instances(256)
        .total_memories(64)
        .total_tables(256);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).expect("engine");
    let component = Component::new(&engine, wasm).expect("compile");
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("link");
    let pre = CommandPre::new(linker.instantiate_pre(&component).expect("pre")).expect("command");
    (engine, pre)
}

fn bare_call(engine: &Engine, pre: &CommandPre<Bare>) {
    let stdout = MemoryOutputPipe::new(1 << 20);
    let wasi = WasiCtxBuilder::new()
        .args(&["echo", "echo"])
        .stdin(MemoryInputPipe::new(br#"{"text":"hello"}"#.to_vec()))
        .stdout(stdout.clone())
        .build();
    let mut store = Store::new(
        engine,
        Bare {
            wasi,
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    let command = pre.instantiate(&mut store).expect("instantiate");
    // The tool ends with exit(0), which wasmtime reports as an I32Exit error.
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(ran) => ran.expect("exit 0"),
        Err(e) => assert_eq!(e.downcast_ref::<I32Exit>().map(|x| x.0), Some(0), "{e:?}"),
    }
    assert!(!stdout.contents().is_empty());
}

fn native_echo(root: &Path) -> std::path::PathBuf {
    let target = root.join("tools/target");
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "vigil-tool-echo",
            "--manifest-path",
        ])
        .arg(root.join("tools/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo build native echo");
    assert!(status.success());
    target.join("release/echo")
}

fn spawn_call(program: &Path) {
    let mut child = Command::new(program)
        .arg("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(br#"{"text":"hello"}"#).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success() && !out.stdout.is_empty());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm_path = root.join("tools/out/echo.wasm");
    let wasm = std::fs::read(&wasm_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `bash tools/build.sh` first)",
            wasm_path.display()
        )
    });
    let cache = tempfile::tempdir().expect("tempdir");
    let config = SandboxConfig::new(cache.path().join("compiled"));
    let package = signed::verified("echo", &wasm, &Capabilities::default(), Limits::default());

    // Fill the cache, then "restart": the cold call is the first after start.
    drop(
        Sandbox::new(&config)
            .expect("sandbox")
            .load(&package)
            .expect("load"),
    );
    let t = Instant::now();
    let sandbox = Sandbox::new(&config).expect("sandbox");
    let tool = sandbox.load(&package).expect("load");
    let start = t.elapsed();
    let t = Instant::now();
    vigil_call(&tool);
    let cold = t.elapsed();
    assert_eq!(sandbox.cache_stats().compiled, 0);
    println!("vigil sandbox bench (echo, {} warm calls)", WARM_CALLS);
    println!(
        "{:<28} start+load {:.1} ms, first call {:.1} us",
        "cold (cache present)",
        start.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e6
    );

    let _ = time(200, || vigil_call(&tool));
    let vigil_p50 = summarize("vigil warm", time(WARM_CALLS, || vigil_call(&tool)));

    let (engine, pre) = bare_floor(&wasm);
    let _ = time(200, || bare_call(&engine, &pre));
    let floor_p50 = summarize(
        "bare wasmtime floor",
        time(WARM_CALLS, || bare_call(&engine, &pre)),
    );

    let native = native_echo(root);
    summarize("native process spawn", time(SPAWNS, || spawn_call(&native)));

    let per_thread = WARM_CALLS;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| (0..per_thread).for_each(|_| vigil_call(&tool)));
        }
    });
    let rate = (2 * per_thread) as f64 / t.elapsed().as_secs_f64();
    println!("{:<28} {rate:.0} calls/s", "vigil, 2 threads");
    let ratio = vigil_p50.as_secs_f64() / floor_p50.as_secs_f64();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // smoke test of an unoptimized build, whose figures judge nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("(smoke run: `cargo bench --bench sandbox` checks the targets)");
        return;
    }
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "target: warm p50 / floor p50 = {ratio:.2}x (at most 1.5x) -> {}",
        verdict(ratio <= 1.5)
    );
    println!(
        "target: warm p50 = {:.1} us (at most 100 us) -> {}",
        vigil_p50.as_secs_f64() * 1e6,
        verdict(vigil_p50 <= Duration::from_micros(100))
    );
}
