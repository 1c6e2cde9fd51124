//! The `vigil` binary: parses the command line and runs the command.

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
