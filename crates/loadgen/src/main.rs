//! `corvid-loadgen`: see the library's documentation and `corvid-loadgen --help`.

use clap::Parser as _;
use corvid_loadgen::args::Args;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corvid-loadgen: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(corvid_loadgen::run(&args)) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corvid-loadgen: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
