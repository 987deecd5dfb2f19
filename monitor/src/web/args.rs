//! The web server's flags: the exporter-toolkit config file, and the limits that keep
//! clients that open connections and stall from taking the daemon's file descriptors.

use std::{path::PathBuf, time::Duration};

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct WebArgs {
    /// A Prometheus exporter-toolkit web configuration file: TLS (tls_server_config, with
    /// client certificates), response headers and HTTP/2 (http_server_config), rate_limit
    /// and basic_auth_users (bcrypt hashes), as node_exporter reads it.
    #[arg(id = "web_config_file", long = "web.config.file", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Connections open at once; one more is closed as soon as it is accepted (counted in
    /// monitor_http_connections_refused_total).
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// How long a client has to send a request's head (and, with TLS, to finish the
    /// handshake) before its connection is closed.
    #[arg(long = "web.header-timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub header_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request.
    #[arg(long = "web.idle-timeout", value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub idle_timeout: Duration,

    /// The largest request head (request line and headers); a larger one is refused.
    #[arg(long = "web.max-header-bytes", value_name = "SIZE", default_value = "64KiB", value_parser = parse_header_size)]
    pub max_header_bytes: u64,

    /// The largest request body (the query API's POST forms); a larger one gets 413.
    #[arg(long = "web.max-request-bytes", value_name = "SIZE", default_value = "1MiB", value_parser = parse_body_size)]
    pub max_request_bytes: u64,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 10s, 2m)"))?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s:?} is below the 100ms minimum"));
    }
    Ok(d)
}

fn parse_size(s: &str, min: u64) -> Result<u64, String> {
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e| format!("{s:?} is not a size ({e}), e.g. 64KiB"))?;
    if b.as_u64() < min {
        return Err(format!(
            "{s:?} is below the {} minimum",
            bytesize::ByteSize(min)
        ));
    }
    Ok(b.as_u64())
}

/// hyper reads a head into a buffer of at least 8 KiB.
fn parse_header_size(s: &str) -> Result<u64, String> {
    parse_size(s, 8192)
}

fn parse_body_size(s: &str) -> Result<u64, String> {
    parse_size(s, 1024)
}
