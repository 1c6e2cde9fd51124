//! The guarded `wasi:sockets/ip-name-lookup`: only granted names are looked
//! up, and every address a lookup returns is remembered so the socket check
//! can tell addresses that came from a granted lookup from made-up ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};

use super::Guarded;
use crate::sandbox::report::Resource as Used;

/// A WASI address as a std one.
pub(crate) fn to_ip(address: &IpAddress) -> IpAddr {
    match *address {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
        }
    }
}

/// Needed by the lookup bindings for their error conversions.
impl network::Host for Guarded<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> anyhow::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.wasi(), error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<anyhow::Error>,
    ) -> anyhow::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.wasi(), err)
    }
}

impl network::HostNetwork for Guarded<'_> {
    fn drop(&mut self, this: Resource<Network>) -> anyhow::Result<()> {
        network::HostNetwork::drop(&mut self.wasi(), this)
    }
}

impl Host for Guarded<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.state.policy.check_lookup(&name) {
            self.state
                .log
                .denied(Used::Lookup, &name, "the host name is not granted");
            return Err(ErrorCode::PermanentResolverFailure.into());
        }
        let stream = Host::resolve_addresses(&mut self.wasi(), network, name.clone())?;
        self.state.log.used_host(&name);
        self.state.lookups.insert(stream.rep(), name);
        Ok(stream)
    }
}

impl HostResolveAddressStream for Guarded<'_> {
    fn resolve_next_address(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let rep = resource.rep();
        let next = HostResolveAddressStream::resolve_next_address(&mut self.wasi(), resource)?;
        if let (Some(address), Some(name)) = (&next, self.state.lookups.get(&rep)) {
            self.state.log.looked_up(name, to_ip(address));
        }
        Ok(next)
    }

    fn subscribe(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> anyhow::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.wasi(), resource)
    }

    fn drop(&mut self, resource: Resource<ResolveAddressStream>) -> anyhow::Result<()> {
        self.state.lookups.remove(&resource.rep());
        HostResolveAddressStream::drop(&mut self.wasi(), resource)
    }
}
