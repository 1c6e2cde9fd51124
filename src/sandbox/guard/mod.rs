//! The wasmtime edge of the policy: the WASI interfaces whose every use must
//! be checked and recorded (filesystem paths, name lookups, the environment)
//! are replaced in the linker by `Guarded` implementations that ask the
//! [`Policy`](crate::sandbox::policy::Policy), record into the call's
//! [`UseLog`](crate::sandbox::report::UseLog), and then delegate to
//! wasmtime-wasi. The blocking `wasi:io` calls are shadowed too, so that a
//! tool waiting on the host still stops at its deadline. Socket connections and wasi:http requests are checked by
//! the hooks wasmtime-wasi offers for them (see `state`).

mod blocking;
mod filesystem;
mod sockets;

pub(crate) use blocking::HostWaitTimedOut;

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::p2::bindings::cli::environment;
use wasmtime_wasi::p2::{IoImpl, WasiImpl};

use super::report::Resource;
use super::state::CallState;

/// A call's store data seen through the guard.
pub(crate) struct Guarded<'a> {
    state: &'a mut CallState,
}

impl Guarded<'_> {
    /// The unguarded wasmtime-wasi implementation to delegate to.
    fn wasi(&mut self) -> WasiImpl<&mut CallState> {
        WasiImpl(IoImpl(&mut *self.state))
    }
}

struct HasGuard;

impl HasData for HasGuard {
    type Data<'a> = Guarded<'a>;
}

fn guarded(state: &mut CallState) -> Guarded<'_> {
    Guarded { state }
}

impl environment::Host for Guarded<'_> {
    fn get_environment(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        let env = environment::Host::get_environment(&mut self.wasi())?;
        self.state
            .log
            .exposed_env(env.iter().map(|(k, _)| k.as_str()));
        let host_names = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned());
        for name in self.state.policy.withheld_env(host_names) {
            self.state.log.denied(
                Resource::Env,
                &name,
                "not in the manifest's env grant: withheld when the tool read its environment",
            );
        }
        Ok(env)
    }

    fn get_arguments(&mut self) -> anyhow::Result<Vec<String>> {
        environment::Host::get_arguments(&mut self.wasi())
    }

    fn initial_cwd(&mut self) -> anyhow::Result<Option<String>> {
        environment::Host::initial_cwd(&mut self.wasi())
    }
}

/// Builds the component linker: all of WASI p2 and wasi:http, with the
/// guarded interfaces shadowing wasmtime-wasi's.
pub(crate) fn component_linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CallState>> {
    use wasmtime_wasi::p2::bindings as p2;
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::add_only_http_to_linker_sync(&mut linker)?;
    linker.allow_shadowing(true);
    p2::sync::filesystem::types::add_to_linker::<CallState, HasGuard>(&mut linker, guarded)?;
    p2::filesystem::preopens::add_to_linker::<CallState, HasGuard>(&mut linker, guarded)?;
    p2::sockets::ip_name_lookup::add_to_linker::<CallState, HasGuard>(&mut linker, guarded)?;
    p2::cli::environment::add_to_linker::<CallState, HasGuard>(&mut linker, guarded)?;
    p2::sync::io::poll::add_to_linker::<CallState, HasGuard>(&mut linker, guarded)?;
    p2::sync::io::streams::add_to_linker::<CallState, HasGuard>(&mut linker, guarded)?;
    linker.allow_shadowing(false);
    Ok(linker)
}
