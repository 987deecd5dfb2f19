//! Command line, in the Prometheus exporters' style (`--web.listen-address`,
//! `--collector.<name>` / `--no-collector.<name>`). Collector flags are generated from the
//! collector table, so a new collector gets its flags and help by being registered.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    time::Duration,
};

use clap::{Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use regex::Regex;

use url::Url;

use crate::{
    collectors,
    process::group::{GroupBy, GroupRule},
    top::{OutputFormat, SortSpec},
};

#[derive(Parser, Debug)]
#[command(
    name = "monitor",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MONITOR_REVISION"), ")"),
    about = "eBPF host monitor: per-process CPU, run-queue wait and context switches seen from \
             the kernel, exported for Prometheus",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: load the kernel programs, serve /metrics and /api/v1/processes.
    Run(Box<RunArgs>),
    /// A live per-process view (CPU, run-queue wait, memory, disk, network) from the daemon,
    /// or standalone when no daemon runs.
    Top(TopArgs),
    /// Check the alerting config and its rule files, and a remote write config and a web
    /// config if given (exit 1 with the first error).
    CheckConfig(crate::alert::cli::CheckConfigArgs),
    /// Alerting tools.
    #[command(subcommand)]
    Alert(crate::alert::cli::AlertCommand),
    /// Dashboards for this version.
    #[command(subcommand)]
    Dashboard(crate::dashboard::DashboardCommand),
    /// Diagnostics of the kernel programs.
    #[command(subcommand)]
    Bpf(BpfCommand),
}

#[derive(Subcommand, Debug)]
pub enum BpfCommand {
    /// Load each kernel program as the daemon does and print how many instructions the
    /// verifier processed for it (from its statistics, on any kernel; beside the kernel's
    /// own count from 5.16), or why this kernel cannot load it. Needs root.
    Verify(crate::bpf::verify::VerifyArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Address to listen on for HTTP (`:PORT` listens on every interface).
    #[arg(long = "web.listen-address", default_value = ":9957", value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", default_value = "/metrics", value_parser = parse_telemetry_path)]
    pub telemetry_path: String,

    /// procfs mount point.
    #[arg(long = "path.procfs", default_value = "/proc")]
    pub procfs: PathBuf,

    /// sysfs mount point (where disks get their names, and the cgroup2 mount is found).
    #[arg(long = "path.sysfs", default_value = "/sys")]
    pub sysfs: PathBuf,

    /// How often the kernel maps are read and exited processes folded into their groups
    /// (a request that finds the figures older than 100ms asks for a refresh too).
    #[arg(long = "refresh.interval", default_value = "1s", value_parser = parse_interval)]
    pub refresh_interval: Duration,

    /// What names a process's group by default.
    #[arg(long = "process.group-by", value_enum, default_value = "comm")]
    pub group_by: GroupBy,

    /// A grouping rule NAME=FIELD:REGEX, FIELD one of comm, exe, cmdline, user; rules are
    /// tried in order before --process.group-by. Repeatable.
    #[arg(long = "process.group", value_name = "NAME=FIELD:REGEX")]
    pub group_rules: Vec<GroupRule>,

    /// Series budget: at most this many groups get their own series; the rest are summed
    /// into group="other".
    #[arg(long = "process.max-groups", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_groups: u32,

    /// Service series budget: the first this many ports seen in each direction get their own
    /// series; later ones are summed into port="other".
    #[arg(long = "service.max-ports", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub service_max_ports: u32,

    /// Turn on kernel.bpf_stats_enabled while running, so per-program run counts and run
    /// time are counted (costs about 20ns per program run).
    #[arg(long = "bpf.stats")]
    pub bpf_stats: bool,

    /// Capabilities to keep once the kernel programs are attached: `needed` (reading every
    /// process's /proc files, and CAP_BPF where this kernel checks it on every bpf call),
    /// `all`, `none`, or a list such as cap_sys_ptrace,cap_dac_read_search. The rest are
    /// dropped; the log says what was kept.
    #[arg(long = "capabilities.keep", default_value = "needed", value_parser = crate::privilege::parse_keep)]
    pub capabilities_keep: crate::privilege::Keep,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long = "log.level", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,

    /// Disable every collector that is on by default; turn some back on with
    /// --collector.<name>.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,

    /// Testing aid: attach the named program to a tracepoint that does not exist, so its
    /// collector's failure path runs for real.
    #[arg(long = "debug.fail-attach", hide = true)]
    pub fail_attach: Vec<String>,

    /// Testing aid: read no kernel BTF, as on a kernel built without it, so every family's
    /// fallback for that case runs for real.
    #[arg(long = "debug.no-btf", hide = true)]
    pub no_btf: bool,

    /// Testing aid: each refresh sleeps this long halfway through, so requests meet a refresh
    /// in progress.
    #[arg(long = "debug.refresh-delay", hide = true, default_value = "0s", value_parser = parse_duration)]
    pub refresh_delay: Duration,

    #[command(flatten)]
    pub filesystem: FilesystemArgs,

    #[command(flatten)]
    pub alert: crate::alert::cli::AlertArgs,

    #[command(flatten)]
    pub logs: crate::log::LogArgs,

    #[command(flatten)]
    pub web: crate::web::args::WebArgs,

    #[command(flatten)]
    pub audit: crate::audit::AuditArgs,

    #[command(flatten)]
    pub log_match: crate::logmatch::LogMatchArgs,

    #[command(flatten)]
    pub history: crate::history::HistoryArgs,

    #[command(flatten)]
    pub remote_write: crate::remote_write::RemoteWriteArgs,
}

/// Settings of the filesystem collector.
#[derive(Args, Debug)]
pub struct FilesystemArgs {
    /// Report only mount points matching this regular expression.
    #[arg(
        long = "collector.filesystem.mount-points-include",
        value_name = "REGEX"
    )]
    pub mount_points_include: Option<Regex>,

    /// Skip mount points matching this regular expression.
    #[arg(long = "collector.filesystem.mount-points-exclude", value_name = "REGEX",
          default_value = collectors::filesystem::DEFAULT_MOUNT_POINTS_EXCLUDE)]
    pub mount_points_exclude: Regex,

    /// Report only filesystem types matching this regular expression.
    #[arg(long = "collector.filesystem.fs-types-include", value_name = "REGEX")]
    pub fs_types_include: Option<Regex>,

    /// Skip filesystem types matching this regular expression (pseudo filesystems).
    #[arg(long = "collector.filesystem.fs-types-exclude", value_name = "REGEX",
          default_value = collectors::filesystem::DEFAULT_FS_TYPES_EXCLUDE)]
    pub fs_types_exclude: Regex,

    /// How long a scrape waits for a mount's statvfs before marking it stuck and skipping it
    /// until the call returns.
    #[arg(long = "collector.filesystem.stat-timeout", default_value = "1s", value_parser = parse_stat_timeout)]
    pub stat_timeout: Duration,
}

impl FilesystemArgs {
    pub fn options(&self) -> collectors::filesystem::Options {
        collectors::filesystem::Options {
            filter: collectors::filesystem::Filter {
                mount_points_include: self.mount_points_include.clone(),
                mount_points_exclude: self.mount_points_exclude.clone(),
                fs_types_include: self.fs_types_include.clone(),
                fs_types_exclude: self.fs_types_exclude.clone(),
            },
            stat_timeout: self.stat_timeout,
        }
    }
}

fn parse_stat_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be above zero"));
    }
    Ok(d)
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The daemon to read (/api/v1/processes, /metrics). If nothing listens there and it is
    /// a loopback address, top loads the kernel programs itself (needs root).
    #[arg(long, default_value = "http://127.0.0.1:9957", value_parser = parse_url)]
    pub url: Url,

    /// Refresh interval: 1s, 500ms, or seconds as in top's -d (2, 0.5).
    #[arg(short = 'd', long, default_value = "1s", value_parser = parse_top_interval)]
    pub interval: Duration,

    /// Batch mode: sample twice, one interval apart, print once and exit.
    #[arg(long)]
    pub once: bool,

    /// Batch output format (with --once; default table).
    #[arg(long, value_enum, requires = "once")]
    pub output: Option<OutputFormat>,

    /// Sort column: pid, user, name, cpu, wait, rss, read, write, latency, rx, tx; add :asc
    /// or :desc to choose the order (figures default to highest first).
    #[arg(long, default_value = "cpu", value_parser = clap::value_parser!(SortSpec))]
    pub sort: SortSpec,

    /// Show at most this many rows.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,

    /// Show only the processes (or groups) whose name contains this, ignoring case.
    #[arg(long, default_value = "")]
    pub filter: String,

    /// One row per group (the daemon's --process.group-by) instead of per process.
    #[arg(long)]
    pub group: bool,

    /// What rows are grouped by (with --group, or the g key): the daemon's groups, or each
    /// process's service (unit) whatever the daemon groups by.
    #[arg(long = "group-by", value_enum, default_value = "daemon")]
    pub group_by: crate::top::GroupKey,

    /// Testing aid: panic after the first screen, to show the terminal is given back.
    #[arg(long = "debug.panic", hide = true)]
    pub debug_panic: bool,
}

impl TopArgs {
    pub fn limit(&self) -> Option<usize> {
        self.limit.map(|n| n as usize)
    }
}

fn parse_url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s)
        .map_err(|e| format!("{s:?} is not a URL ({e}), e.g. http://127.0.0.1:9957"))?;
    if u.scheme() != "http" {
        return Err(format!("{s:?}: only http:// URLs are supported"));
    }
    if u.host().is_none() {
        return Err(format!("{s:?} names no host"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("{s:?}: give the daemon's base URL, without ? or #"));
    }
    Ok(u)
}

fn parse_top_interval(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) if (0.0..=3600.0).contains(&secs) => Duration::from_secs_f64(secs),
        Ok(_) => return Err(format!("{s:?} is out of range (0.1 to 3600 seconds)")),
        Err(_) => {
            humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 1s, 500ms, 2)"))?
        }
    };
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("{s:?} is out of range (100ms to 1h)"));
    }
    Ok(d)
}

fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not HOST:PORT or :PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

fn parse_telemetry_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.len() < 2 {
        return Err(format!("{s:?} must start with / and name a path"));
    }
    if s == "/healthz" || s.starts_with("/api/") || s.starts_with("/page/") {
        return Err(format!("{s:?} is taken by another endpoint"));
    }
    Ok(s.to_string())
}

/// A duration flag's value ("1s", "500ms"); each flag checks its own bounds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 1s, 500ms)"))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s:?} is below the 100ms minimum"));
    }
    Ok(d)
}

fn command() -> clap::Command {
    Cli::command().mut_subcommand("run", |mut sc| {
        for s in collectors::ALL {
            let on = format!("collector.{}", s.name);
            let off = format!("no-collector.{}", s.name);
            let default = if s.default_enabled { "on" } else { "off" };
            sc = sc
                .arg(
                    Arg::new(on.clone())
                        .long(on.clone())
                        .action(ArgAction::SetTrue)
                        .overrides_with(off.clone())
                        .help(format!(
                            "Enable the {} collector: {} (default {default})",
                            s.name, s.help
                        )),
                )
                .arg(
                    Arg::new(off.clone())
                        .long(off)
                        .action(ArgAction::SetTrue)
                        .overrides_with(on)
                        .help(format!("Disable the {} collector", s.name)),
                );
        }
        sc
    })
}

/// The enabled collectors' names, from the collector flags.
fn enabled(m: &ArgMatches, disable_defaults: bool) -> Vec<&'static str> {
    collectors::ALL
        .iter()
        .filter(|s| {
            if m.get_flag(&format!("no-collector.{}", s.name)) {
                false
            } else if m.get_flag(&format!("collector.{}", s.name)) {
                true
            } else {
                s.default_enabled && !disable_defaults
            }
        })
        .map(|s| s.name)
        .collect()
}

pub struct Parsed {
    pub cli: Cli,
    pub collectors: Vec<&'static str>,
}

/// Prints help or version as clap does, and any usage error as one line; exits 2 on errors.
fn exit_with(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    eprintln!(
        "monitor: {} (see monitor --help)",
        one_line(&e.render().to_string())
    );
    std::process::exit(2)
}

/// A clap error on one line: its first line, and the lines that continue it up to the
/// first blank one (the arguments "not provided:", the "[possible values: ...]").
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim);
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let rest: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    match (rest.is_empty(), first.ends_with(':')) {
        (true, _) => first.to_string(),
        (false, true) => format!("{first} {}", rest.join(", ")),
        (false, false) => format!("{first} {}", rest.join(" ")),
    }
}

/// Parses the process arguments; exits with one line and status 2 on bad input.
pub fn parse() -> Parsed {
    let matches = command().try_get_matches().unwrap_or_else(|e| exit_with(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_with(e));
    let collectors = match (&cli.command, matches.subcommand()) {
        (Command::Run(a), Some(("run", m))) => enabled(m, a.disable_defaults),
        _ => Vec::new(),
    };
    Parsed { cli, collectors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Vec<&'static str>, clap::Error> {
        let mut argv = vec!["monitor", "run"];
        argv.extend_from_slice(args);
        let m = command().try_get_matches_from(argv)?;
        let cli = Cli::from_arg_matches(&m)?;
        let Command::Run(a) = cli.command else {
            panic!("not the run command")
        };
        Ok(enabled(
            m.subcommand_matches("run").unwrap(),
            a.disable_defaults,
        ))
    }

    #[test]
    fn collector_flags() {
        assert_eq!(
            run(&[]).unwrap(),
            vec![
                "cpu",
                "meminfo",
                "pressure",
                "filesystem",
                "sched",
                "block",
                "network",
                "service",
                "netdev",
                "bpf"
            ]
        );
        assert_eq!(
            run(&["--no-collector.sched"]).unwrap(),
            vec![
                "cpu",
                "meminfo",
                "pressure",
                "filesystem",
                "block",
                "network",
                "service",
                "netdev",
                "bpf"
            ]
        );
        assert_eq!(
            run(&["--no-collector.cpu", "--collector.cpu"]).unwrap(),
            vec![
                "cpu",
                "meminfo",
                "pressure",
                "filesystem",
                "sched",
                "block",
                "network",
                "service",
                "netdev",
                "bpf"
            ]
        );
        assert_eq!(
            run(&["--collector.disable-defaults", "--collector.cpu"]).unwrap(),
            vec!["cpu"]
        );
        assert!(run(&["--collector.nope"]).is_err());
    }

    #[test]
    fn addresses_and_paths() {
        assert_eq!(
            parse_listen_address(":9957").unwrap(),
            "0.0.0.0:9957".parse().unwrap()
        );
        assert!(parse_listen_address("127.0.0.1:99999").is_err());
        assert!(parse_listen_address("nonsense").is_err());
        assert!(parse_telemetry_path("metrics").is_err());
        assert!(parse_telemetry_path("/api/v1/x").is_err());
        assert!(parse_telemetry_path("/page/page.js").is_err());
        assert!(parse_interval("10ms").is_err());
        assert_eq!(parse_interval("2s").unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn remote_write_flags() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["monitor", "run"];
            argv.extend_from_slice(args);
            let m = command().try_get_matches_from(argv)?;
            match Cli::from_arg_matches(&m)?.command {
                Command::Run(a) => Ok::<_, clap::Error>(a.remote_write),
                _ => panic!("not the run command"),
            }
        };
        let a = parse(&[]).unwrap();
        assert!(a.urls.is_empty() && a.config.is_none());
        assert_eq!(a.interval, Duration::from_secs(15));
        assert_eq!(a.spool_size, 256 * 1024 * 1024);
        let a = parse(&[
            "--remote-write.url",
            "http://a:9090/api/v1/write",
            "--remote-write.url",
            "http://b:9090/api/v1/write",
            "--remote-write.interval",
            "1s",
            "--remote-write.spool-size",
            "1MiB",
            "--remote-write.config",
            "rw.yml",
        ])
        .unwrap();
        assert_eq!(a.urls.len(), 2);
        assert_eq!(a.spool_size, 1024 * 1024);
        assert_eq!(a.interval, Duration::from_secs(1));
        assert!(parse(&["--remote-write.interval", "1ms"]).is_err());
        assert!(parse(&["--remote-write.spool-size", "12"]).is_err());
        assert!(parse(&["--remote-write.spool-size", "lots"]).is_err());
    }

    fn top(args: &[&str]) -> Result<TopArgs, clap::Error> {
        let mut argv = vec!["monitor", "top"];
        argv.extend_from_slice(args);
        let m = command().try_get_matches_from(argv)?;
        match Cli::from_arg_matches(&m)?.command {
            Command::Top(a) => Ok(a),
            _ => panic!("not the top command"),
        }
    }

    #[test]
    fn bpf_verify_flags() {
        let verify = |args: &[&str]| {
            let mut argv = vec!["monitor", "bpf", "verify"];
            argv.extend_from_slice(args);
            let m = command().try_get_matches_from(argv)?;
            match Cli::from_arg_matches(&m)?.command {
                Command::Bpf(BpfCommand::Verify(a)) => Ok::<_, clap::Error>(a),
                _ => panic!("not bpf verify"),
            }
        };
        let a = verify(&[]).unwrap();
        assert!(!a.audit && a.audit_cgroup.is_none());
        assert_eq!(a.output, crate::bpf::verify::Format::Table);
        let a = verify(&[
            "--audit",
            "--audit.cgroup",
            "/sys/fs/cgroup/x",
            "--output",
            "json",
        ])
        .unwrap();
        assert!(a.audit);
        assert_eq!(a.output, crate::bpf::verify::Format::Json);
        assert!(verify(&["--audit.cgroup", "/sys/fs/cgroup/x"]).is_err());
        assert!(verify(&["--output", "csv"]).is_err());
    }

    #[test]
    fn errors_fit_one_line() {
        let e = top(&["--output", "json"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(line.contains("not provided: --once"), "{line}");
        let e = top(&["--once", "--output", "xml"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(
            line.ends_with("[possible values: table, json, csv]"),
            "{line}"
        );
        let e = top(&["--sort", "size"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(
            line.starts_with("invalid value 'size' for '--sort"),
            "{line}"
        );
    }

    #[test]
    fn top_flags() {
        let a = top(&[]).unwrap();
        assert_eq!(a.url.as_str(), "http://127.0.0.1:9957/");
        assert_eq!(a.interval, Duration::from_secs(1));
        assert!(!a.once && a.output.is_none() && a.limit.is_none());
        assert_eq!(a.sort.to_string(), "cpu:desc");
        let a = top(&[
            "--once", "--output", "csv", "-d", "0.5", "--sort", "pid", "--limit", "5", "--filter",
            "dash", "--group",
        ])
        .unwrap();
        assert_eq!(a.output, Some(OutputFormat::Csv));
        assert_eq!(a.interval, Duration::from_millis(500));
        assert_eq!(a.sort.to_string(), "pid:asc");
        assert_eq!(a.limit(), Some(5));
        assert!(a.group);
        assert_eq!(
            top(&["--interval", "250ms"]).unwrap().interval,
            Duration::from_millis(250)
        );
        for bad in [
            &["--output", "json"][..],
            &["--once", "--output", "xml"],
            &["--interval", "soon"],
            &["--interval", "0.01"],
            &["--interval", "2h"],
            &["-d", "-1"],
            &["--sort", "size"],
            &["--limit", "0"],
            &["--url", "ftp://x"],
            &["--url", "nonsense"],
            &["--url", "http://127.0.0.1:9957/?x=1"],
        ] {
            assert!(top(bad).is_err(), "{bad:?} accepted");
        }
    }
}
