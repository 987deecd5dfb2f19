//! Entry points for the fuzz targets in `fuzz/`: each feeds arbitrary bytes to the parsers of
//! one kind of outside input, as the daemon would meet them. A parser may refuse the input
//! with an error; a panic, a hang or an overflow is the bug. The unit test at the end replays
//! every saved corpus file (`fuzz/corpus/<target>/`), so `cargo test` (and `cargo xtask
//! test`) keeps the findings fixed without nightly or libFuzzer.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use prometheus::proto::MetricType;

use crate::{
    alert, audit, block,
    bpf::tracefs::Format,
    collectors,
    history::{self, store::Store},
    metrics::{counter, family, gauge},
    net, process, sched, top, web,
};

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (the file under `fuzz/fuzz_targets/`) and its entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("rule_file", rule_file),
    ("alerting_config", alerting_config),
    ("web_config", web_config),
    ("promql", promql),
    ("proc_text", proc_text),
    ("proc_tree", proc_tree),
    ("sys_tree", sys_tree),
    ("tracefs_format", tracefs_format),
    ("kernel_record", kernel_record),
    ("query_params", query_params),
    ("top_input", top_input),
];

/// A rule file (`--alert.config`'s `rule_files`, `monitor check-config`).
pub fn rule_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = alert::rules::parse("fuzz.yml", text);
    }
}

/// The alerting config, read from a file as `--alert.config` reads it.
pub fn alerting_config(data: &[u8]) {
    let path = scratch_file("alerting.yml", data);
    let _ = alert::config::load(&path);
}

/// The exporter-toolkit web config (`--web.config.file`), read from a file.
pub fn web_config(data: &[u8]) {
    let path = scratch_file("web.yml", data);
    let _ = web::config::WebConfig::load(&path);
}

/// A PromQL expression: checked as a rule's and as a query's, then evaluated at an instant
/// and over a range of a small history.
pub fn promql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = alert::expr::check::check(text);
    if let Ok(q) = history::query::Query::parse(text) {
        let store = fixture_store();
        let _ = q.instant(store, 1020.0);
        let _ = q.range(store, 1000.0, 1030.0, 2.5);
    }
}

/// Single `/proc` files parsed from text: `stat`, `meminfo`, `pressure/*`, `net/dev`,
/// `mounts`, `diskstats`, and a process's `status`; every parser gets the same input.
pub fn proc_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = collectors::cpu::parse_stat(text);
    let _ = collectors::meminfo::parse(text);
    let _ = collectors::pressure::parse(text);
    let _ = net::netdev::parse(text);
    let _ = collectors::filesystem::mounts::parse(text);
    let _ = top::host::parse_meminfo(text);
    let _ = top::host::parse_diskstats(text, |d| !d.starts_with("loop"));
    let _ = top::host::parse_net_dev(text, |i| i != "lo");
    let _ = process::memory::parse(text);
    let _ = audit::scope::root_in(text);
}

/// A process's directory (`stat`, `status`, `cmdline`, `comm`), as the process table and
/// the running-slice lookup read it: the input's parts, split at NUL NUL, become the files.
pub fn proc_tree(data: &[u8]) {
    let root = scratch_dir("proc");
    let dir = root.join("4242");
    let _ = std::fs::create_dir_all(&dir);
    let mut parts = data.split_two_nuls();
    for name in ["stat", "status", "cmdline", "comm"] {
        let _ = std::fs::write(dir.join(name), parts.next().unwrap_or_default());
    }
    let _ = process::identity::IdentityReader::new(&root).read(4242);
    let _ = process::memory::read(&root, 4242);
    let _ = sched::running::tgid_of(&root, 4242);
}

/// `/sys/class/block`: a disk and its partition whose `dev` files hold the input's parts.
pub fn sys_tree(data: &[u8]) {
    let sys = scratch_dir("sys");
    let disk = sys.join("devices/vda");
    let part = disk.join("vda1");
    let class = sys.join("class/block");
    let _ = std::fs::create_dir_all(&part);
    let _ = std::fs::create_dir_all(&class);
    let _ = std::fs::write(part.join("partition"), "1\n");
    let mut parts = data.split_two_nuls();
    let _ = std::fs::write(disk.join("dev"), parts.next().unwrap_or_default());
    let _ = std::fs::write(part.join("dev"), parts.next().unwrap_or_default());
    let link = class.join("vda1");
    if std::fs::symlink_metadata(&link).is_err() {
        let _ = std::os::unix::fs::symlink(&part, &link);
    }
    let _ = block::kernel::partitions(&sys);
}

/// A tracefs `format` file.
pub fn tracefs_format(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let f = Format::parse(text);
        let _ = f.offset("common_pid");
    }
}

/// A record from the audit log's ring buffer, decoded and written as a JSON line.
pub fn kernel_record(data: &[u8]) {
    let _ = audit::record::kind_of(data);
    if let Ok(event) = audit::record::decode(data, &audit::record::Clock::now()) {
        let _ = serde_json::to_string(&event);
    }
}

/// The query API's parameters: the first byte picks the endpoint and the method (GET with
/// the rest as the URL's query, or a form POST with it as the body).
pub fn query_params(data: &[u8]) {
    const PATHS: [&str; 5] = [
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/label/g/values",
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let path = PATHS[usize::from(pick) % PATHS.len()];
    let post = pick & 0x80 != 0;
    let req = if post {
        axum::http::Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(rest.to_vec()))
    } else {
        // Only bytes a URL can carry; the rest the HTTP layer refuses before the API.
        let q: String = rest
            .iter()
            .map(|&b| char::from(b))
            .filter(|c| c.is_ascii_graphic())
            .collect();
        axum::http::Request::get(format!("{path}?{q}")).body(axum::body::Body::empty())
    };
    let Ok(req) = req else {
        return;
    };
    let store = fixture_store().clone();
    runtime().block_on(async {
        use tower::ServiceExt as _;
        let Ok(r) = history::api::router(store).oneshot(req).await;
        let _ = axum::body::to_bytes(r.into_body(), 1 << 24).await;
    });
}

/// What `monitor top` reads from a daemon over HTTP: the process list (JSON) and the
/// exposition.
pub fn top_input(data: &[u8]) {
    let _ = top::sample::parse_processes(data, std::time::Instant::now());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = top::exposition::parse(text);
    }
}

trait SplitTwoNuls {
    fn split_two_nuls(&self) -> std::vec::IntoIter<&[u8]>;
}

impl SplitTwoNuls for [u8] {
    /// The parts between `\0\0` separators.
    fn split_two_nuls(&self) -> std::vec::IntoIter<&[u8]> {
        let mut out = Vec::new();
        let mut rest = self;
        while let Some(i) = rest.windows(2).position(|w| w == b"\0\0") {
            out.push(&rest[..i]);
            rest = &rest[i + 2..];
        }
        out.push(rest);
        out.into_iter()
    }
}

/// A directory of this process's own for files the parsers read.
fn scratch_dir(name: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT
        .get_or_init(|| std::env::temp_dir().join(format!("monitor-fuzz-{}", std::process::id())));
    let dir = root.join(name);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir("files").join(name);
    let _ = std::fs::write(&path, data);
    path
}

/// Thirty seconds of a counter, a gauge and a histogram in two groups.
fn fixture_store() -> &'static Arc<Mutex<Store>> {
    static STORE: OnceLock<Arc<Mutex<Store>>> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut s = Store::new(1000.0, 1 << 24, vec![("job".into(), "monitor".into())]);
        for i in 0..30 {
            let t = f64::from(i);
            let mut buckets = Vec::new();
            for le in ["0.1", "1", "+Inf"] {
                buckets.push(counter(&[("g", "a"), ("le", le)], t * 2.0));
            }
            s.push(
                1000.0 + t,
                &[
                    family(
                        "c_total",
                        "c",
                        MetricType::COUNTER,
                        vec![counter(&[("g", "a")], t), counter(&[("g", "b")], 3.0 * t)],
                    ),
                    family("u", "u", MetricType::GAUGE, vec![gauge(&[("g", "a")], -t)]),
                    family("h_bucket", "h", MetricType::COUNTER, buckets),
                ],
            );
        }
        Arc::new(Mutex::new(s))
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the query API")
    })
}

/// The corpus directory of a target.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every saved input of every target, through the same entry point the fuzzer calls.
    #[test]
    fn every_corpus_file_replays() {
        let mut replayed = 0;
        for (name, entry) in TARGETS {
            let dir = corpus_dir(name);
            let files =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for f in files.flatten() {
                // A fuzzer running meanwhile may remove a file it reduced.
                let Ok(data) = std::fs::read(f.path()) else {
                    continue;
                };
                entry(&data);
                replayed += 1;
            }
        }
        assert!(replayed >= TARGETS.len(), "{replayed} corpus files");
    }

    #[test]
    fn parts_between_double_nuls() {
        let v: Vec<&[u8]> = b"a\0\0b\0c\0\0".split_two_nuls().collect();
        assert_eq!(v, [&b"a"[..], b"b\0c", b""]);
    }
}
