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
    audit::stats::AuditCollector,
    cli::RunArgs,
    collectors, http,
    log::access::{self, AccessLog},
    webconfig::{self, BasicAuth},
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

    // Opened before the slow kernel setup too: a bad path fails at once.
    let access_log = args
        .logs
        .access_log
        .as_deref()
        .map(AccessLog::open)
        .transpose()?;
    let basic_auth = match &args.logs.web_config {
        Some(p) => BasicAuth::load(p)?,
        None => None,
    };
    let audit_out = args.audit.open()?;
    let log_match = args.log_match.start()?;

    let mut core = assemble::core(&CoreOptions {
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
        audit: args.audit.kernel_setup(),
    })?;
    if let Some(c) = log_match {
        core.add_collector(Box::new(c));
    }
    if let (Some(maps), Some(out)) = (core.take_audit_maps(), audit_out) {
        let stats = args.audit.start(maps, out)?;
        core.add_collector(Box::new(AuditCollector(stats)));
    }
    let core: http::Shared = Arc::new(Mutex::new(core));

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
    let mut app = http::router(core, &args.telemetry_path).merge(alerts.router());
    // Inside the access log, so it sees who authenticated (and the 401s).
    if let Some(auth) = basic_auth {
        app = app.layer(axum::middleware::from_fn_with_state(auth, webconfig::layer));
    }
    if let Some(log) = access_log {
        app = app.layer(axum::middleware::from_fn_with_state(log, access::layer));
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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
