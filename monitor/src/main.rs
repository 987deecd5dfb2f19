//! `monitor`: wiring only. See `run.rs` for the daemon.

mod bpf;
mod build_info;
mod cli;
mod collectors;
mod core;
mod http;
mod metrics;
mod process;
mod run;

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let parsed = cli::parse();
    let cli::Command::Run(args) = parsed.cli.command;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::new(format!("monitor={}", args.log_level)))
        .init();
    match run::run(args, parsed.collectors) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
