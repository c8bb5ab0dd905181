//! The `corvid` program under another name, built with the test kit so multi-process tests can
//! start real server processes (`CARGO_BIN_EXE_corvid-test-node`).

fn main() -> std::process::ExitCode {
    corvid::cli::main()
}
