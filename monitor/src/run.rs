//! `monitor run`: wires the kernel programs, the process table, the collectors and the HTTP
//! server together, then serves until SIGINT or SIGTERM.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    bpf::attach::AttachOptions,
    cli::RunArgs,
    collectors,
    core::{build_collectors, Core, Kernel, KernelOptions},
    http,
    process::{group::Grouper, identity::IdentityReader, table::ProcessTable},
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
    // Bind first: a port in use should fail before the slower kernel setup.
    let listener = tokio::net::TcpListener::bind(args.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen_address))?;

    let needs_bpf = enabled
        .iter()
        .any(|n| collectors::spec(n).is_some_and(|s| s.needs_bpf));
    let kernel = Kernel::load(&KernelOptions {
        load: needs_bpf,
        sched: enabled.contains(&"sched"),
        bpf_stats: args.bpf_stats,
        attach: AttachOptions {
            fail: args.fail_attach.clone(),
        },
    })?;
    // Parsing the kernel's BTF and the object peaks at tens of MiB that glibc keeps after
    // they are freed; hand them back so the resident size is what the daemon really uses.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let table = ProcessTable::new(
        IdentityReader::new(&args.procfs),
        Grouper::new(args.group_by, args.group_rules.clone(), &passwd),
        args.max_groups as usize,
    );
    let core: http::Shared = Arc::new(Mutex::new(Core::new(
        args.procfs.clone(),
        kernel,
        table,
        build_collectors(&enabled),
        REQUEST_REFRESH_AGE.min(args.refresh_interval),
    )));

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
    axum::serve(listener, http::router(core, &args.telemetry_path))
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
