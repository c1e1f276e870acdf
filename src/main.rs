//! The `aifactory` binary: glue only. Everything lives in `crates/cli` and below.

fn main() -> std::process::ExitCode {
    aifactory_cli::main()
}
