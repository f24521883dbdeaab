//! The `crius` binary: parses the command line and hands off to the daemon.

use clap::Parser;

mod cli;
mod config;
mod cri;
mod daemon;
mod deadline;
mod error;
mod events;
mod exec_wait;
mod image;
mod metrics;
mod rpc;
mod runtime;
mod streaming_backend;

pub use cri::Cri;

fn main() -> std::process::ExitCode {
    // Every pod with its own PID namespace keeps one `crius pause` alive for
    // its whole life; dispatching before the command-line parser keeps the
    // pages it touches (its memory) to a minimum. `--id`/`--ns-dir` are only
    // tags for ps and for recovery.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "pause") {
        pod_sandbox::infra::pause_main();
    }
    let cli = cli::Cli::parse();
    match daemon::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crius: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
