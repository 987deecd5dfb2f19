//! `monitor run`: wires the kernel programs, the process table, the collectors, the refresher
//! and the HTTP server together, then serves until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;

use crate::{
    alert,
    assemble::{self, CoreOptions},
    audit::stats::AuditCollector,
    cli::RunArgs,
    collectors, history, http,
    log::access::{self, AccessLog},
    page, privilege, remote_write,
    scrape::Reader,
    snapshot, web,
};

/// Requests that read (`/metrics`, `/api/v1/processes`) at once, each on a thread of its own
/// beside the one that accepts connections and answers `/healthz`; more wait their turn.
const READING_THREADS: usize = 4;

pub fn run(args: RunArgs, enabled: Vec<&'static str>) -> anyhow::Result<()> {
    tune_allocator();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(READING_THREADS)
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args, enabled))
}

async fn serve(args: RunArgs, enabled: Vec<&'static str>) -> anyhow::Result<()> {
    // Checked before anything starts: a bad rule file is a start-up error.
    let alerting = alert::load(args.alert.config.as_deref())?;
    let remote_write = remote_write::load(&args.remote_write, args.listen_address)?;
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
    let web = web::Web::load(&args.web)?;
    let audit_out = args.audit.open()?;
    // Its thread starts after the capability drop (below); its flags are checked now.
    args.log_match.check()?;

    let assemble::Assembled {
        mut core,
        mut scrape,
        audit: audit_maps,
    } = assemble::core(&CoreOptions {
        procfs: args.procfs.clone(),
        group_by: args.group_by,
        group_rules: args.group_rules.clone(),
        max_groups: args.max_groups as usize,
        enabled: enabled.clone(),
        collectors: collectors::Config {
            filesystem: args.filesystem.options(),
            sysfs: args.sysfs.clone(),
            service_max_ports: args.service_max_ports as usize,
        },
        bpf_stats: args.bpf_stats,
        fail_attach: args.fail_attach.clone(),
        no_btf: args.no_btf,
        audit: args.audit.kernel_setup(),
    })?;
    scrape.add_collector(web.collector());
    // The programs are attached: what follows runs with only what it still needs. Threads
    // started from here on inherit the reduced set, so the log followers start after it.
    privilege::drop_after_attach(&args.capabilities_keep)?;
    if let Some(c) = args.log_match.start()? {
        scrape.add_collector(Box::new(c));
    }
    if let (Some(maps), Some(out)) = (audit_maps, audit_out) {
        let stats = args.audit.start(maps, out)?;
        scrape.add_collector(Box::new(AuditCollector(stats)));
    }

    let alerts = alert::start(
        alerting,
        alert::Options {
            state_dir: args.alert.state_dir.clone(),
            interval: args.alert.interval,
            scheme: web.scheme(),
            port: args.listen_address.port(),
        },
        &mut core,
        &mut scrape,
    )?;

    let history = history::History::new(
        &args.history,
        args.refresh_interval,
        vec![
            ("instance".into(), history::instance(args.listen_address)),
            ("job".into(), "monitor".into()),
        ],
    );
    if let Some(h) = &history {
        h.add_source(&mut scrape);
    }
    let remote_write = remote_write::setup(&args.remote_write, remote_write, &mut scrape)?;

    let snapshots = snapshot::start(core, args.refresh_interval, args.refresh_delay)?;
    let reader: http::Shared = Arc::new(Reader::new(snapshots, scrape, snapshot::REQUEST));
    let alerts = alerts.run(reader.clone())?;
    if let Some(h) = &history {
        h.start(reader.clone())?;
    }
    if let Some(rw) = remote_write {
        rw.run(reader.clone(), args.refresh_interval)?;
    }

    tracing::info!(
        address = %args.listen_address,
        scheme = web.scheme(),
        telemetry_path = %args.telemetry_path,
        collectors = ?enabled,
        "listening"
    );
    let mut app = http::router(reader.clone(), &args.telemetry_path).merge(alerts.router());
    if let Some(h) = &history {
        app = app.merge(h.router(reader));
    }
    app = app.merge(page::router(&page::Settings {
        telemetry_path: args.telemetry_path.clone(),
        interval: args.refresh_interval,
        retention: history.is_some().then_some(args.history.retention),
    }));
    // Inside the access log, so it sees who authenticated (and the 401s, 413s and 429s).
    app = web.wrap(app);
    if let Some(log) = access_log {
        app = app.layer(axum::middleware::from_fn_with_state(log, access::layer));
    }
    web::server::serve(
        listener,
        app,
        web.settings.clone(),
        web.metrics.clone(),
        shutdown(),
    )
    .await;
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

/// glibc's allocator gives each thread that allocates its own arena and keeps freed memory
/// up to a threshold that grows with the largest block freed (the kernel BTF's parse at
/// start-up): with a dozen threads that allocate little, that is most of a steady RSS of 24
/// MiB at 1,000 processes. One arena and a fixed trim threshold hold it under 19 MiB
/// (BENCHMARKS.md); the threads allocate rarely, so they do not contend. Must run before any
/// thread starts.
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called before other threads
    // exist, as glibc asks.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}
