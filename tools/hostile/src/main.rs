//! `hostile`: a tool that tries to escape its grant. The attack is chosen by
//! the tool name in argv[1]; arguments name the targets (paths, hosts,
//! ports). Each attack prints `{"attack", "outcome", "detail"}` where
//! `outcome` is `"blocked"` or `"escaped"`; the resource attacks (loop,
//! memory bomb, recursion, output flood) only end when the node stops them.

use std::hint::black_box;
use std::io::Write;

use serde_json::{json, Value};
use vigil_tool_abi::str_arg;
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;

fn main() {
    vigil_tool_abi::run(|attack, args| {
        let attempt = match attack {
            "read-passwd" => read_file("/etc/passwd"),
            "read-undeclared-dir" => read_dir(str_arg(&args, "path")?),
            "read-key-file" => read_file(str_arg(&args, "path")?),
            "write-dotdot" => write_file(&format!("{}/../escaped.txt", str_arg(&args, "dir")?)),
            "write-planted-symlink" => write_file(&format!(
                "{}/{}/escaped.txt",
                str_arg(&args, "dir")?,
                str_arg(&args, "link")?
            )),
            "write-own-symlink" => own_symlink(str_arg(&args, "dir")?, str_arg(&args, "target")?),
            "read-env" => read_env(str_arg(&args, "name")?),
            "lookup-undeclared" => {
                lookup(str_arg(&args, "host")?).map(|found| format!("resolved to {found:?}"))
            }
            "connect-undeclared-host" => lookup_and_connect(&args, 0),
            "connect-wrong-port" => lookup_and_connect(&args, 1),
            "connect-unlooked-address" => connect_literal(&args),
            "endless-loop" => endless_loop(),
            "sleep-forever" => sleep_forever(),
            "wait-on-silent-peer" => wait_on_silent_peer(&args),
            "memory-bomb" => memory_bomb(),
            "recursion" => Ok(format!("depth {}", recurse(black_box(u64::MAX)))),
            "output-flood" => output_flood(),
            other => return Err(format!("unknown attack `{other}`")),
        };
        Ok(match attempt {
            Ok(detail) => json!({ "attack": attack, "outcome": "escaped", "detail": detail }),
            Err(detail) => json!({ "attack": attack, "outcome": "blocked", "detail": detail }),
        })
    })
}

fn read_file(path: &str) -> Result<String, String> {
    std::fs::read(path)
        .map(|bytes| format!("read {} bytes of {path}", bytes.len()))
        .map_err(|e| format!("{path}: {e}"))
}

fn read_dir(path: &str) -> Result<String, String> {
    let names: Vec<String> = std::fs::read_dir(path)
        .map_err(|e| format!("{path}: {e}"))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(format!("listed {path}: {names:?}"))
}

fn write_file(path: &str) -> Result<String, String> {
    std::fs::write(path, b"escaped")
        .map(|()| format!("wrote {path}"))
        .map_err(|e| format!("{path}: {e}"))
}

/// Creates `escape -> target` inside the granted directory through the raw
/// WASI call (std has no stable symlink on WASI), then writes through it.
fn own_symlink(dir: &str, target: &str) -> Result<String, String> {
    let preopens = wasip2::filesystem::preopens::get_directories();
    let (descriptor, _) = preopens
        .iter()
        .find(|(_, path)| path == dir)
        .ok_or_else(|| format!("{dir} is not a preopened directory"))?;
    descriptor
        .symlink_at(target, "escape")
        .map_err(|e| format!("symlink {dir}/escape -> {target}: {e:?}"))?;
    write_file(&format!("{dir}/escape/escaped.txt"))
}

fn read_env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map(|v| format!("{name}={v}"))
        .map_err(|e| format!("{name}: {e}"))
}

fn lookup(host: &str) -> Result<Vec<IpAddress>, String> {
    let network = instance_network();
    let stream = resolve_addresses(&network, host).map_err(|e| format!("lookup {host}: {e:?}"))?;
    let mut found = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(address)) => found.push(address),
            Ok(None) => return Ok(found),
            Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return Err(format!("lookup {host}: {e:?}")),
        }
    }
}

fn socket_address(ip: IpAddress, port: u16) -> IpSocketAddress {
    match ip {
        IpAddress::Ipv4(address) => IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
        IpAddress::Ipv6(address) => IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port,
            address,
            flow_info: 0,
            scope_id: 0,
        }),
    }
}

fn connect(address: IpSocketAddress) -> Result<String, String> {
    let (socket, input, output) = open_connection(address)?;
    // Streams are children of the socket: they go first.
    drop((input, output));
    drop(socket);
    Ok(format!("connected to {address:?}"))
}

/// Connects and returns the socket with its input and output streams.
fn open_connection(
    address: IpSocketAddress,
) -> Result<
    (
        wasip2::sockets::tcp::TcpSocket,
        wasip2::io::streams::InputStream,
        wasip2::io::streams::OutputStream,
    ),
    String,
> {
    let family = match address {
        IpSocketAddress::Ipv4(_) => IpAddressFamily::Ipv4,
        IpSocketAddress::Ipv6(_) => IpAddressFamily::Ipv6,
    };
    let network = instance_network();
    let socket = create_tcp_socket(family).map_err(|e| format!("socket: {e:?}"))?;
    socket
        .start_connect(&network, address)
        .map_err(|e| format!("connect {address:?}: {e:?}"))?;
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => return Ok((socket, input, output)),
            Err(ErrorCode::WouldBlock) => socket.subscribe().block(),
            Err(e) => return Err(format!("connect {address:?}: {e:?}")),
        }
    }
}

/// Looks `host` up (the grant may allow it) and connects to every answer on
/// `port + port_offset`.
fn lookup_and_connect(args: &Value, port_offset: u16) -> Result<String, String> {
    let host = str_arg(args, "host")?;
    let port = port_arg(args)?.wrapping_add(port_offset);
    let mut refusals = Vec::new();
    for ip in lookup(host)? {
        match connect(socket_address(ip, port)) {
            Ok(done) => return Ok(done),
            Err(refused) => refusals.push(refused),
        }
    }
    Err(format!("no connection to {host}:{port}: {refusals:?}"))
}

/// Connects to a literal address it never looked up.
fn connect_literal(args: &Value) -> Result<String, String> {
    let addr = str_arg(args, "addr")?;
    let ip: std::net::Ipv4Addr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let [a, b, c, d] = ip.octets();
    connect(socket_address(
        IpAddress::Ipv4((a, b, c, d)),
        port_arg(args)?,
    ))
}

fn port_arg(args: &Value) -> Result<u16, String> {
    args.get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| "missing port argument `port`".to_string())
}

fn endless_loop() -> Result<String, String> {
    let mut spins = 0u64;
    loop {
        spins = black_box(spins.wrapping_add(1));
    }
}

/// Blocks in the host (a clock wait), where no wasm code runs to interrupt.
fn sleep_forever() -> Result<String, String> {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Connects to a declared peer that accepts and then never sends, and
/// blocks reading from it.
fn wait_on_silent_peer(args: &Value) -> Result<String, String> {
    let host = str_arg(args, "host")?;
    let port = port_arg(args)?;
    let ip = lookup(host)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let (_socket, input, _output) = open_connection(socket_address(ip, port))?;
    loop {
        match input.blocking_read(4096) {
            Ok(bytes) if bytes.is_empty() => continue,
            Ok(bytes) => return Ok(format!("the peer sent {} bytes", bytes.len())),
            Err(e) => return Err(format!("read: {e:?}")),
        }
    }
}

fn memory_bomb() -> Result<String, String> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 16 * 1024 * 1024];
        block[0] = 1;
        hoard.push(black_box(block));
        black_box(&hoard);
    }
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let below = recurse(black_box(n - 1));
    below.wrapping_mul(31) ^ n
}

fn output_flood() -> Result<String, String> {
    let chunk = vec![b'A'; 64 * 1024];
    let mut out = std::io::stdout().lock();
    loop {
        out.write_all(&chunk)
            .map_err(|e| format!("stdout refused more output: {e}"))?;
    }
}
