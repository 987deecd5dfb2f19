//! What one request carries: consecutive spool records, oldest first, up to the endpoint's
//! `max_samples_per_send`. A request that could take more waits for later records until its
//! oldest sample is `batch_send_deadline` old, as Prometheus's queue does; a backlog (after an
//! outage, or a restart) is past its deadline and goes at once, in full requests, in order.
//! Records are merged without decoding: a protobuf message's repeated field may be split
//! across concatenated encodings, so the concatenated requests are one request with every
//! series of each.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::spool::{Record, Spool};

pub struct Batch {
    /// In spool order.
    pub records: Vec<Record>,
    /// The request body (snappy-compressed protobuf).
    pub body: Vec<u8>,
    pub samples: u64,
}

/// The next request from `spool`, waiting up to `idle` for a first record. A record
/// bigger than `max_samples` (spooled by a run with a larger setting) goes alone.
pub fn gather(
    spool: &Spool,
    max_samples: usize,
    deadline: Duration,
    idle: Duration,
) -> Option<Batch> {
    let (first, body) = spool.oldest(idle)?;
    let due = UNIX_EPOCH
        + Duration::from_millis(u64::try_from(first.timestamp_ms).unwrap_or(0))
        + deadline;
    let max = max_samples as u64;
    let mut samples = first.samples;
    let mut records = vec![first];
    let mut bodies = vec![body];
    while samples < max {
        let last = records[records.len() - 1].seq;
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        match spool.next(Some(last), wait) {
            Some((r, b)) if samples + r.samples <= max => {
                samples += r.samples;
                records.push(r);
                bodies.push(b);
            }
            // Full, or past its deadline.
            _ => break,
        }
    }
    let body = if bodies.len() == 1 {
        bodies.pop().unwrap_or_default()
    } else {
        match merge(&bodies) {
            Ok(b) => b,
            Err(e) => {
                // Not a body this daemon wrote: sent alone, for the endpoint to judge.
                tracing::error!(error = %e, "cannot merge remote write requests; sending them one by one");
                records.truncate(1);
                samples = records[0].samples;
                bodies.swap_remove(0)
            }
        }
    };
    Some(Batch {
        records,
        body,
        samples,
    })
}

/// One body with the series of every one of `bodies`, in order.
pub fn merge(bodies: &[Vec<u8>]) -> Result<Vec<u8>, snap::Error> {
    let mut raw = Vec::new();
    for b in bodies {
        raw.extend(snap::raw::Decoder::new().decompress_vec(b)?);
    }
    snap::raw::Encoder::new().compress_vec(&raw)
}

#[cfg(test)]
mod tests {
    use super::super::proto::{decode, encode, Label, Sample, TimeSeries, WriteRequest};
    use super::*;

    fn request(name: &str, n: usize, ts: i64) -> WriteRequest {
        WriteRequest {
            timeseries: (0..n)
                .map(|i| TimeSeries {
                    labels: vec![Label {
                        name: "__name__".into(),
                        value: format!("{name}{i}"),
                    }],
                    samples: vec![Sample {
                        value: i as f64,
                        timestamp: ts,
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn merged_bodies_hold_every_series_in_order() {
        let (a, b) = (request("a", 2, 1), request("b", 3, 2));
        let merged = merge(&[encode(&a).unwrap(), encode(&b).unwrap()]).unwrap();
        let got = decode(&merged).unwrap();
        assert_eq!(got.timeseries, [a.timeseries, b.timeseries].concat());
    }

    #[test]
    fn a_backlog_goes_in_full_requests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 1 << 20).unwrap();
        // Long past their deadline; 3 samples each.
        for ts in 1..=7 {
            s.push(&encode(&request("x", 3, ts)).unwrap(), 3, ts)
                .unwrap();
        }
        let mut got = Vec::new();
        while let Some(b) = gather(&s, 7, Duration::from_secs(5), Duration::ZERO) {
            assert!(b.samples <= 7);
            let w = decode(&b.body).unwrap();
            assert_eq!(w.timeseries.len() as u64, b.samples);
            got.push(
                w.timeseries
                    .iter()
                    .map(|t| t.samples[0].timestamp)
                    .collect::<Vec<_>>(),
            );
            for r in &b.records {
                assert!(s.remove(r));
            }
        }
        // Two records (6 samples) a request: a third would pass 7.
        assert_eq!(
            got,
            [
                vec![1, 1, 1, 2, 2, 2],
                vec![3, 3, 3, 4, 4, 4],
                vec![5, 5, 5, 6, 6, 6],
                vec![7, 7, 7]
            ]
        );
    }

    #[test]
    fn a_fresh_request_waits_for_later_records_until_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Spool::open(dir.path(), 1 << 20).unwrap());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        s.push(&encode(&request("x", 1, now)).unwrap(), 1, now)
            .unwrap();
        let pusher = {
            let s = s.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                s.push(&encode(&request("y", 1, now + 100)).unwrap(), 1, now + 100)
                    .unwrap();
            })
        };
        // Room for more and a deadline far off: the record pushed meanwhile joins it; the
        // request is then full.
        let b = gather(&s, 2, Duration::from_secs(60), Duration::ZERO).unwrap();
        pusher.join().unwrap();
        assert_eq!(b.records.len(), 2);
        for r in &b.records {
            assert!(s.remove(r));
        }
        // Room for more, but nothing comes before its deadline: sent as it is.
        s.push(&encode(&request("z", 1, now + 200)).unwrap(), 1, now + 200)
            .unwrap();
        let b = gather(&s, 10, Duration::from_millis(50), Duration::ZERO).unwrap();
        assert_eq!((b.records.len(), b.samples), (1, 1));
    }
}
