//! `stackctl`, the command-line tool: see `stackctl --help` and docs/CLI.md.

mod cmd;

fn main() -> std::process::ExitCode {
    cmd::main()
}
