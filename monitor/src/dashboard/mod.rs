//! Dashboards: the panel catalogue (`catalogue.rs`, the one list of panels) and the Grafana
//! dashboard generated from it (`grafana.rs`, `monitor dashboard grafana`).

pub mod catalogue;
pub mod grafana;
#[cfg(test)]
mod lint;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DashboardCommand {
    /// Print the Grafana dashboard (classic JSON model) for this version; the same file is
    /// monitor/dist/grafana/monitor.json.
    Grafana,
}

pub fn command(c: &DashboardCommand) -> anyhow::Result<()> {
    match c {
        DashboardCommand::Grafana => {
            use std::io::Write as _;
            std::io::stdout().write_all(grafana::text().as_bytes())?;
            Ok(())
        }
    }
}
