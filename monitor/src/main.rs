//! `monitor`: wiring only. See `run.rs` for the daemon, `top/` for the live view.

mod alert;
mod assemble;
mod bpf;
mod build_info;
mod cli;
mod collectors;
mod core;
mod http;
mod metrics;
mod process;
mod run;
mod top;

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let parsed = cli::parse();
    let result = match parsed.cli.command {
        cli::Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(EnvFilter::new(format!("monitor={}", args.log_level)))
                .init();
            run::run(*args, parsed.collectors)
        }
        // No log subscriber: log lines would tear the live view (top reports in its header).
        cli::Command::Top(args) => top::run(args),
        cli::Command::CheckConfig(args) => alert::cli::check_config(&args),
        cli::Command::Alert(cmd) => alert::cli::command(&cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
