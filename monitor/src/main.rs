//! `monitor`: wiring only. See `run.rs` for the daemon, `top/` for the live view.

use monitor::{alert, bpf, cli, dashboard, log, run, top};
use std::process::ExitCode;

fn main() -> ExitCode {
    let parsed = cli::parse();
    let result = match parsed.cli.command {
        cli::Command::Run(args) => {
            log::init(&args.log_level, args.logs.format);
            run::run(*args, parsed.collectors)
        }
        // No log subscriber: log lines would tear the live view (top reports in its header).
        cli::Command::Top(args) => top::run(args),
        cli::Command::CheckConfig(args) => alert::cli::check_config(&args),
        cli::Command::Alert(cmd) => alert::cli::command(&cmd),
        cli::Command::Dashboard(cmd) => dashboard::command(&cmd),
        cli::Command::Bpf(cli::BpfCommand::Verify(args)) => {
            log::init("warn", log::LogFormat::Text);
            bpf::verify::run(&args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
