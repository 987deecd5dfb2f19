//! `monitor_build_info`: which build is running.

use prometheus::proto::{MetricFamily, MetricType};

use crate::metrics::{self, gauge};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("MONITOR_REVISION");

pub fn family() -> MetricFamily {
    metrics::family(
        "monitor_build_info",
        "Build of the running daemon (always 1).",
        MetricType::GAUGE,
        vec![gauge(&[("version", VERSION), ("revision", REVISION)], 1.0)],
    )
}
