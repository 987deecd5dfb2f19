//! The daemon's families as remote write series: one series per sample line of the text
//! exposition (a histogram as its `_bucket{le}`, `_sum` and `_count` series, a summary as
//! its quantiles, `_sum` and `_count`), with the same names, labels and `le` values a
//! scrape of `/metrics` gives, then each endpoint's external labels and relabelling.

use std::collections::HashSet;

use prometheus::proto::{Metric, MetricFamily, MetricType};

use super::{
    config::Endpoint,
    proto::{Label, Sample, TimeSeries, WriteRequest},
};

/// One sample line: its labels (`__name__` included, sorted by name) and value.
pub struct Line {
    pub labels: Vec<Label>,
    pub value: f64,
}

/// Every sample of `families`, each series once (the first, if a name repeats).
pub fn lines<'a>(families: impl IntoIterator<Item = &'a MetricFamily>) -> Vec<Line> {
    let mut out = Vec::new();
    for f in families {
        let name = f.name();
        for m in f.get_metric() {
            match f.get_field_type() {
                MetricType::COUNTER => {
                    push(&mut out, name, "", m, None, m.get_counter().get_value())
                }
                MetricType::GAUGE => push(&mut out, name, "", m, None, m.get_gauge().get_value()),
                // The daemon exports none (the text encoder cannot write them either).
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf = false;
                    for b in h.get_bucket() {
                        let le = bound(b.upper_bound());
                        inf |= b.upper_bound() == f64::INFINITY;
                        let n = b.cumulative_count() as f64;
                        push(&mut out, name, "_bucket", m, Some(("le", le)), n);
                    }
                    let count = h.get_sample_count() as f64;
                    if !inf {
                        push(
                            &mut out,
                            name,
                            "_bucket",
                            m,
                            Some(("le", "+Inf".into())),
                            count,
                        );
                    }
                    push(&mut out, name, "_sum", m, None, h.get_sample_sum());
                    push(&mut out, name, "_count", m, None, count);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let quantile = Some(("quantile", q.quantile().to_string()));
                        push(&mut out, name, "", m, quantile, q.value());
                    }
                    push(&mut out, name, "_sum", m, None, s.sample_sum());
                    push(&mut out, name, "_count", m, None, s.sample_count() as f64);
                }
            }
        }
    }
    out.sort_by(|a, b| a.labels.iter().map(key).cmp(b.labels.iter().map(key)));
    out.dedup_by(|b, a| a.labels == b.labels);
    out
}

fn key(l: &Label) -> (&str, &str) {
    (&l.name, &l.value)
}

/// An upper bound as the text encoder writes it.
fn bound(b: f64) -> String {
    if b == f64::INFINITY {
        "+Inf".to_string()
    } else {
        b.to_string()
    }
}

fn push(
    out: &mut Vec<Line>,
    name: &str,
    suffix: &str,
    m: &Metric,
    extra: Option<(&str, String)>,
    value: f64,
) {
    let mut labels = Vec::with_capacity(m.get_label().len() + 2);
    labels.push(Label {
        name: "__name__".to_string(),
        value: format!("{name}{suffix}"),
    });
    for l in m.get_label() {
        labels.push(Label {
            name: l.name().to_string(),
            value: l.value().to_string(),
        });
    }
    if let Some((n, v)) = extra {
        labels.push(Label {
            name: n.to_string(),
            value: v,
        });
    }
    // Empty values mean no label, as in a scrape.
    labels.retain(|l| !l.value.is_empty());
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    out.push(Line { labels, value });
}

/// What `e` gets of `lines` at `timestamp_ms`: the external labels added where a series
/// lacks them (a series' own label wins, as in Prometheus), then the relabel rules.
pub fn request(lines: &[Line], e: &Endpoint, timestamp_ms: i64) -> WriteRequest {
    let mut timeseries = Vec::with_capacity(lines.len());
    for l in lines {
        let mut labels = l.labels.clone();
        let own = labels.len();
        for x in &e.external_labels {
            if !labels[..own].iter().any(|o| o.name == x.name) {
                labels.push(x.clone());
            }
        }
        if labels.len() > own {
            labels.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if !e.relabel.iter().all(|r| r.passes(&labels)) {
            continue;
        }
        timeseries.push(TimeSeries {
            labels,
            samples: vec![Sample {
                value: l.value,
                timestamp: timestamp_ms,
            }],
        });
    }
    WriteRequest { timeseries }
}

/// Prometheus's staleness marker: the NaN a scrape writes for a series that is gone, so
/// queries stop showing it at once instead of for the 5 minutes of lookback.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Adds to `w` a staleness marker at `timestamp_ms` for each series of `before` (the last
/// request's series) that `w` no longer has, as Prometheus does for a series a scrape
/// stops returning; returns `w`'s series, for the next call.
pub fn mark_stale(
    w: &mut WriteRequest,
    before: &HashSet<Vec<Label>>,
    timestamp_ms: i64,
) -> HashSet<Vec<Label>> {
    let now: HashSet<Vec<Label>> = w.timeseries.iter().map(|t| t.labels.clone()).collect();
    for gone in before.difference(&now) {
        w.timeseries.push(TimeSeries {
            labels: gone.clone(),
            samples: vec![Sample {
                value: f64::from_bits(STALE_NAN),
                timestamp: timestamp_ms,
            }],
        });
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{counter, family, gauge, histogram};

    fn text(w: &WriteRequest) -> Vec<String> {
        w.timeseries
            .iter()
            .map(|t| {
                let labels: Vec<String> = t
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                format!("{} {}", labels.join(","), t.samples[0].value)
            })
            .collect()
    }

    #[test]
    fn every_exposed_sample_with_the_endpoints_labels() {
        let families = vec![
            family(
                "monitor_disk_latency_seconds",
                "h",
                MetricType::HISTOGRAM,
                vec![histogram(
                    &[("device", "vda")],
                    &[(Some(0.5), 2), (Some(1.0), 1), (None, 4)],
                    3.25,
                )],
            ),
            family(
                "monitor_build_info",
                "b",
                MetricType::GAUGE,
                vec![gauge(&[("version", "0.1.0"), ("revision", "")], 1.0)],
            ),
            family(
                "monitor_x_total",
                "c",
                MetricType::COUNTER,
                vec![counter(&[("job", "mine")], 7.0)],
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rw.yml");
        std::fs::write(
            &p,
            "remote_write: [{url: 'http://x/', external_labels: {region: eu}, \
             write_relabel_configs: [{source_labels: [le], regex: '0.5', action: drop}]}]",
        )
        .unwrap();
        let defaults = super::super::config::Defaults {
            instance: "h:9957".into(),
            job: "monitor".into(),
        };
        let e = &super::super::config::load(Some(&p), &[], &defaults).unwrap()[0];
        let w = request(&lines(&families), e, 1234);
        assert_eq!(
            text(&w),
            [
                "__name__=monitor_build_info,instance=h:9957,job=monitor,region=eu,version=0.1.0 1",
                "__name__=monitor_disk_latency_seconds_bucket,device=vda,instance=h:9957,job=monitor,le=+Inf,region=eu 7",
                "__name__=monitor_disk_latency_seconds_bucket,device=vda,instance=h:9957,job=monitor,le=1,region=eu 3",
                "__name__=monitor_disk_latency_seconds_count,device=vda,instance=h:9957,job=monitor,region=eu 7",
                "__name__=monitor_disk_latency_seconds_sum,device=vda,instance=h:9957,job=monitor,region=eu 3.25",
                // The series' own job wins.
                "__name__=monitor_x_total,instance=h:9957,job=mine,region=eu 7",
            ]
        );
        assert!(w.timeseries.iter().all(|t| t.samples[0].timestamp == 1234));

        // The counter's series is gone at the next collection: marked stale, once.
        let mut first = w;
        let seen = mark_stale(&mut first, &HashSet::new(), 1234);
        assert_eq!(seen.len(), 6);
        let mut next = request(&lines(&families[..2]), e, 2234);
        let seen = mark_stale(&mut next, &seen, 2234);
        assert_eq!(seen.len(), 5);
        let stale: Vec<&TimeSeries> = next
            .timeseries
            .iter()
            .filter(|t| t.samples[0].value.to_bits() == STALE_NAN)
            .collect();
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].labels[0].value, "monitor_x_total");
        assert_eq!(stale[0].samples[0].timestamp, 2234);
        let mut after = request(&lines(&families[..2]), e, 3234);
        mark_stale(&mut after, &seen, 3234);
        assert_eq!(after.timeseries.len(), 5);
    }
}
