//! The `vigil` binary: parses the command line and runs the command.

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
