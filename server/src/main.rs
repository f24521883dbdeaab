//! The `crius` binary: parses the command line and hands off to the daemon.

use clap::Parser;

mod cli;
mod config;
mod cri;
mod daemon;
mod error;
mod image;
mod rpc;
mod runtime;

pub use cri::Cri;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match daemon::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crius: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
