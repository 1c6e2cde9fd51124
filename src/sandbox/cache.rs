//! The on-disk cache of compiled tool code. An entry is keyed by the SHA-256
//! of the package's wasm and a fingerprint of the engine (wasmtime version
//! and compilation settings), so a node restart loads native code instead of
//! recompiling, and an engine upgrade never loads stale code. Counters show
//! which happened.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// The wasmtime version the node is built with (the exact pin in Cargo.toml).
pub const WASMTIME_VERSION: &str = "34.0.2";

/// A wasm binary's kind, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A WASI preview 2 component.
    Component,
    /// A core module (WASI preview 1).
    Module,
}

impl WasmKind {
    /// Reads the kind from the 8-byte wasm header.
    pub fn detect(wasm: &[u8]) -> Option<Self> {
        match wasm.get(..8)? {
            [0, b'a', b's', b'm', 0x0d, 0, 1, 0] => Some(Self::Component),
            [0, b'a', b's', b'm', 1, 0, 0, 0] => Some(Self::Module),
            _ => None,
        }
    }
}

/// Compiled code, ready to link.
pub(crate) enum Compiled {
    Component(Component),
    Module(Module),
}

/// Counts of compilations and cache loads since the cache was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Packages compiled from wasm (cache miss).
    pub compiled: u64,
    /// Packages loaded as native code from the cache (hit).
    pub loaded: u64,
}

/// Why compiled code could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the package is not a wasm component or module (bad header)")]
    NotWasm,
    #[error("compiling the package failed: {0:#}")]
    Compile(anyhow::Error),
    #[error("cannot write the compiled-code cache at {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The compiled-code cache directory of one engine.
#[derive(Debug)]
pub(crate) struct CompiledCache {
    dir: PathBuf,
    engine_fingerprint: String,
    compiled: AtomicU64,
    loaded: AtomicU64,
}

impl CompiledCache {
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        // DefaultHasher::new() has fixed keys: stable for one build of the node.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_fingerprint = format!("w{WASMTIME_VERSION}-{:016x}", hasher.finish());
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_fingerprint,
            compiled: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
        }
    }

    /// The cache file of a package.
    pub(crate) fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        let package = hex::encode(Sha256::digest(wasm));
        self.dir
            .join(format!("{package}-{}.cwasm", self.engine_fingerprint))
    }

    /// Loads the package's native code from the cache, or compiles and
    /// stores it.
    pub(crate) fn get(&self, engine: &Engine, wasm: &[u8]) -> Result<Compiled, CacheError> {
        let kind = WasmKind::detect(wasm).ok_or(CacheError::NotWasm)?;
        let path = self.entry_path(wasm);
        if path.is_file() {
            // SAFETY: the file is in the node's own cache directory, written
            // by `precompile_*` of an engine with the same fingerprint (both
            // are in its name); wasmtime also checks the header and engine
            // compatibility before using it. A corrupt or foreign entry fails
            // here and is recompiled below.
            let loaded = unsafe {
                match kind {
                    WasmKind::Component => {
                        Component::deserialize_file(engine, &path).map(Compiled::Component)
                    }
                    WasmKind::Module => {
                        Module::deserialize_file(engine, &path).map(Compiled::Module)
                    }
                }
            };
            if let Ok(compiled) = loaded {
                self.loaded.fetch_add(1, Ordering::Relaxed);
                return Ok(compiled);
            }
        }
        let native = match kind {
            WasmKind::Component => engine.precompile_component(wasm),
            WasmKind::Module => engine.precompile_module(wasm),
        }
        .map_err(CacheError::Compile)?;
        write_atomically(&path, &native)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `native` was produced just above by this engine.
        unsafe {
            match kind {
                WasmKind::Component => {
                    Component::deserialize(engine, &native).map(Compiled::Component)
                }
                WasmKind::Module => Module::deserialize(engine, &native).map(Compiled::Module),
            }
        }
        .map_err(CacheError::Compile)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let err = |source| CacheError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_from_the_header() {
        assert_eq!(
            WasmKind::detect(b"\0asm\x0d\0\x01\0rest"),
            Some(WasmKind::Component)
        );
        assert_eq!(
            WasmKind::detect(b"\0asm\x01\0\0\0rest"),
            Some(WasmKind::Module)
        );
        assert_eq!(WasmKind::detect(b"\0asm"), None);
        assert_eq!(WasmKind::detect(b"#!/bin/sh\nexit 0"), None);
    }
}
