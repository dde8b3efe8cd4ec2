//! `stackctl`, the command-line tool.

fn main() {
    eprintln!("stackctl: not built yet");
    std::process::exit(3);
}
