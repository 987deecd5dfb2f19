//! The daemon's own log (`--log.format`, `--log.level`) and the HTTP access log.

pub mod access;

use std::io::IsTerminal as _;

use clap::{Args, ValueEnum};
use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _, EnvFilter};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default; coloured on a terminal).
    Text,
    /// key=value pairs, for log shippers.
    Logfmt,
    /// One JSON object per line.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Daemon log format: text, logfmt or json.
    #[arg(long = "log.format", value_enum, default_value = "text")]
    pub format: LogFormat,

    /// Write an access log of the HTTP endpoints (JSON lines) to this file, or to stderr
    /// with "stderr". Off by default.
    #[arg(long = "web.access-log", value_name = "PATH|stderr")]
    pub access_log: Option<String>,
}

/// Installs the daemon's log: one event per line on stderr, in `format`, at `level` for
/// this program's events (including those forwarded from the kernel programs by aya-log).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::new(format!("monitor={level}"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .with_span_name(false)
                    .with_span_path(false)
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}
