//! Project automation: `cargo xtask <command>`. One module per subcommand.

mod bench;
mod cmd;
mod fuzz;
mod run;
mod setup;
mod soak;
mod test;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Build, run, test and benchmark monitor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building the kernel programs needs (rust-src for nightly, LLVM 22,
    /// bpf-linker); fast when already there.
    Setup,
    /// Set up, build the daemon in release mode and run it (arguments go to `monitor run`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up and run the whole test suite: lints, unit tests, privileged integration tests.
    Test {
        /// Only integration tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Benchmark the kernel programs and the daemon against peers (prints figures).
    Bench(bench::Options),
    /// Run every fuzz target for --seconds at nice 19, then minimize its corpus.
    Fuzz(fuzz::Options),
    /// Run the release daemon under a fork storm, disk and network load for --minutes and
    /// print its RSS growth, descriptors, map fill, misses and lost exits.
    Soak(soak::Options),
    /// Boot Debian kernels under QEMU and check the kernel programs and daemon on each.
    VmTest(vm::Options),
    /// Rewrite the golden test's checked-in exposition and process list from this build
    /// (after a deliberate change; review the diff like code).
    Bless,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Setup => setup::ensure(),
        Command::Run { args } => run::run(&args),
        Command::Test { filter } => test::run(filter.as_deref()),
        Command::Bench(o) => bench::run(&o),
        Command::Fuzz(o) => fuzz::run(&o),
        Command::Soak(o) => soak::run(&o),
        Command::VmTest(o) => vm::run(&o),
        Command::Bless => cmd::run(
            cmd::new("cargo")
                .args(["test", "-p", "monitor", "golden"])
                .env("MONITOR_BLESS", "1")
                .env("AYA_BUILD_SKIP", "1"),
        ),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
