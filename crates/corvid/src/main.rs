//! The `corvid` binary; everything is in [`corvid::cli::main`].

fn main() -> std::process::ExitCode {
    corvid::cli::main()
}
