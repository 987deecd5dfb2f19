//! `monitor top`: a live per-process view of what the kernel sees (CPU, run-queue wait,
//! memory, disk and network per process), read from the daemon's `/api/v1/processes`, or
//! from the daemon's own code in this process when no daemon runs.
//!
//! Raw samples (`sample`, read by `source`, `host`, `exposition`) are kept apart from the
//! computed model (`rates`, `model`); `render`, `keys`, `terminal` and `ui` make the live
//! view, `batch` the `--once` output.

mod batch;
mod columns;
pub(crate) mod exposition;
mod format;
pub(crate) mod host;
mod keys;
mod model;
mod rates;
mod render;
pub(crate) mod sample;
mod services;
mod source;
mod terminal;
mod ui;

use std::io::IsTerminal as _;

use anyhow::bail;

pub use batch::OutputFormat;
pub use columns::SortSpec;
pub use model::GroupKey;

use crate::cli::TopArgs;

pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if !args.once && !terminal {
        bail!("the live view needs a terminal (stdin and stdout): use --once (with --output table, json or csv) for batch output");
    }
    let (mut source, first) = source::Source::open(&args.url)?;
    if args.once {
        batch::run(&args, &mut source, first)
    } else {
        ui::run(&args, &mut source, first)
    }
}
