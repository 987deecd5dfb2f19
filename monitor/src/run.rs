//! `monitor run`: wires the kernel programs, the process table, the collectors and the HTTP
//! server together, then serves until SIGINT or SIGTERM.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    alert,
    assemble::{self, CoreOptions},
    cli::RunArgs,
    collectors, http,
};

/// Requests refresh the figures when the last refresh is older than this.
const REQUEST_REFRESH_AGE: Duration = Duration::from_millis(100);

pub fn run(args: RunArgs, enabled: Vec<&'static str>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args, enabled))
}

async fn serve(args: RunArgs, enabled: Vec<&'static str>) -> anyhow::Result<()> {
    // Checked before anything starts: a bad rule file is a start-up error.
    let alerting = alert::load(args.alert.config.as_deref())?;
    // Bind first: a port in use should fail before the slower kernel setup.
    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen_address))?;

    let core: http::Shared = Arc::new(Mutex::new(assemble::core(&CoreOptions {
        procfs: args.procfs.clone(),
        group_by: args.group_by,
        group_rules: args.group_rules.clone(),
        max_groups: args.max_groups as usize,
        enabled: enabled.clone(),
        collectors: collectors::Config {
            filesystem: args.filesystem.options(),
            sysfs: args.sysfs.clone(),
        },
        bpf_stats: args.bpf_stats,
        fail_attach: args.fail_attach.clone(),
        min_age: REQUEST_REFRESH_AGE.min(args.refresh_interval),
    })?));

    let alerts = alert::start(
        alerting,
        alert::Options {
            state_dir: args.alert.state_dir.clone(),
            interval: args.alert.interval,
            port: args.listen_address.port(),
        },
        core.clone(),
    )?;

    let refresher = core.clone();
    let every = args.refresh_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            refresher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .refresh_if_stale();
        }
    });

    tracing::info!(
        address = %args.listen_address,
        telemetry_path = %args.telemetry_path,
        collectors = ?enabled,
        "listening"
    );
    let app = http::router(core, &args.telemetry_path).merge(alerts.router());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
