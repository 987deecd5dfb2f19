//! Remote write's `queue_config` with a receiver that decodes every request it takes and
//! answers 503 through an outage: a backlog arrives complete (every collection, each with
//! every series a scrape shows), in order, in requests of at most `max_samples_per_send`;
//! a collection bigger than that is split, and after the outage the backlog is merged into
//! full requests, so their number is bounded by the samples, not the collections.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime},
};

use monitor_tests::rw_receiver::pushing;

const DEADLINE: Duration = Duration::from_secs(90);

/// `prometheus.WriteRequest` as the receiver decodes it (prompb's field numbers).
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// One sample taken: its series (labels joined) and timestamp.
type Taken = (String, i64);

/// Requests taken, by path, in the order they came.
type Log = Arc<Mutex<BTreeMap<String, Vec<Vec<Taken>>>>>;

struct Counting {
    port: u16,
    server: Arc<tiny_http::Server>,
    down: Arc<AtomicBool>,
    taken: Log,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Counting {
    fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let taken: Log = Arc::default();
        let thread = {
            let (server, down, taken) = (server.clone(), down.clone(), taken.clone());
            std::thread::spawn(move || {
                for mut rq in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = rq.as_reader().read_to_end(&mut body);
                    if down.load(Ordering::SeqCst) {
                        let _ = rq.respond(tiny_http::Response::empty(503));
                        continue;
                    }
                    let raw = snap::raw::Decoder::new()
                        .decompress_vec(&body)
                        .expect("a snappy body");
                    let w = <WriteRequest as prost::Message>::decode(raw.as_slice())
                        .expect("a WriteRequest");
                    let samples: Vec<Taken> = w
                        .timeseries
                        .iter()
                        .flat_map(|t| {
                            let key: Vec<String> = t
                                .labels
                                .iter()
                                .map(|l| format!("{}={}", l.name, l.value))
                                .collect();
                            let key = key.join(",");
                            t.samples.iter().map(move |s| (key.clone(), s.timestamp))
                        })
                        .collect();
                    taken
                        .lock()
                        .unwrap()
                        .entry(rq.url().to_string())
                        .or_default()
                        .push(samples);
                    let _ = rq.respond(tiny_http::Response::empty(204));
                }
            })
        };
        Counting {
            port,
            server,
            down,
            taken,
            thread: Some(thread),
        }
    }

    fn requests(&self, path: &str) -> Vec<Vec<Taken>> {
        self.taken
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    fn newest(&self, path: &str) -> i64 {
        self.requests(path)
            .iter()
            .flatten()
            .map(|s| s.1)
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Collections smaller than a request split in two, and a request that holds several.
const SPLIT: usize = 7;
const MERGED: usize = 200;
/// A fixed set of series: one per collector, and the build's.
const KEEP: &str = "monitor_collector_success|monitor_build_info";

#[test]
fn a_backlog_arrives_complete_in_order_in_bounded_requests() {
    let r = Counting::start();
    let spool = tempfile::tempdir().unwrap();
    let file = spool.path().join("rw.yml");
    let keep = format!("{{source_labels: [__name__], regex: '{KEEP}', action: keep}}");
    std::fs::write(
        &file,
        format!(
            "remote_write:\n\
             \x20 - {{name: split, url: 'http://127.0.0.1:{p}/split', queue_config: \
             {{max_samples_per_send: {SPLIT}}}, write_relabel_configs: [{keep}]}}\n\
             \x20 - {{name: merged, url: 'http://127.0.0.1:{p}/merged', queue_config: \
             {{max_samples_per_send: {MERGED}, batch_send_deadline: 1s}}, \
             write_relabel_configs: [{keep}]}}\n",
            p = r.port
        ),
    )
    .unwrap();
    let d = pushing(&file, spool.path());
    // The truth: the series a scrape shows of the kept families.
    let (_, body) = d.get("/metrics");
    let series = body
        .lines()
        .filter(|l| {
            l.starts_with("monitor_collector_success{") || l.starts_with("monitor_build_info{")
        })
        .count();
    assert!(series > SPLIT && series * 2 < MERGED, "{series} series");

    let deadline = Instant::now() + DEADLINE;
    while ["/split", "/merged"]
        .iter()
        .any(|p| r.requests(p).len() < 3)
    {
        assert!(Instant::now() < deadline, "nothing arrived: {}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    r.down.store(true, Ordering::SeqCst);
    let down_at = now_ms();
    std::thread::sleep(Duration::from_secs(15));
    r.down.store(false, Ordering::SeqCst);
    let up_at = now_ms();
    let deadline = Instant::now() + DEADLINE;
    while ["/split", "/merged"]
        .iter()
        .any(|p| r.newest(p) < up_at + 3000)
    {
        assert!(Instant::now() < deadline, "the backlog never arrived");
        std::thread::sleep(Duration::from_millis(200));
    }

    for (path, max) in [("/split", SPLIT), ("/merged", MERGED)] {
        let requests = r.requests(path);
        let samples: Vec<&Taken> = requests.iter().flatten().collect();
        assert!(
            requests.iter().all(|q| !q.is_empty() && q.len() <= max),
            "{path}: request sizes {:?}",
            requests.iter().map(Vec::len).collect::<Vec<_>>()
        );
        // In order: no sample older than one before it.
        assert!(
            samples.windows(2).all(|w| w[0].1 <= w[1].1),
            "{path}: out of order"
        );
        // Complete: every collection (the newest may still be on its way) has each series
        // once, and no collection of the outage is missing.
        let mut by_time: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for s in &samples {
            by_time.entry(s.1).or_default().push(&s.0);
        }
        let newest = *by_time.keys().next_back().unwrap();
        for (t, names) in &by_time {
            if *t == newest {
                continue;
            }
            let distinct: BTreeSet<&&str> = names.iter().collect();
            assert_eq!(
                (names.len(), distinct.len()),
                (series, series),
                "{path}: the collection at {t}"
            );
        }
        let times: Vec<i64> = by_time
            .keys()
            .copied()
            .filter(|t| (down_at - 3000..up_at + 2000).contains(t))
            .collect();
        let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(
            gap < 1600 && times.len() as i64 >= (up_at - down_at) / 1000,
            "{path}: {} collections around an outage of {} ms, a gap of {gap} ms",
            times.len(),
            up_at - down_at
        );
    }

    // Split: a collection in ceil(series / 7) requests, none mixing two collections.
    for q in r.requests("/split") {
        assert!(
            q.iter().all(|s| s.1 == q[0].1),
            "a request of two collections"
        );
    }
    // Merged: the backlog (requests with a sample of the outage) in full requests of as
    // many whole collections as fit, but for the one in flight when it began and the one
    // that reached the newest collections.
    let per_request = MERGED / series;
    let backlog: Vec<Vec<Taken>> = r
        .requests("/merged")
        .into_iter()
        .filter(|q| q.iter().any(|s| (down_at..up_at).contains(&s.1)))
        .collect();
    let collections: BTreeSet<i64> = backlog.iter().flatten().map(|s| s.1).collect();
    assert!(
        backlog.len() <= collections.len().div_ceil(per_request) + 2,
        "{} requests for {} collections",
        backlog.len(),
        collections.len()
    );
    for q in backlog.iter().skip(1).take(backlog.len().saturating_sub(2)) {
        assert_eq!(q.len(), per_request * series, "a backlog request not full");
    }

    let m = d.metrics();
    for e in ["split", "merged"] {
        for family in [
            "monitor_remote_write_samples_failed_total",
            "monitor_remote_write_samples_dropped_total",
        ] {
            assert_eq!(
                m.value(&format!("{family}{{endpoint=\"{e}\"}}")),
                0.0,
                "{family} {e}"
            );
        }
        assert!(
            m.value(&format!(
                "monitor_remote_write_samples_retried_total{{endpoint=\"{e}\"}}"
            )) > 0.0
        );
    }
}
