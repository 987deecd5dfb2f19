//! `--once`, for scripts (like `top -b -n 1`): two samples one interval apart, printed once
//! as a table, JSON or CSV. JSON and CSV use the same field names; a JSON process carries
//! the daemon's `/api/v1/processes` fields as read, plus the rates.

use std::io::{BufWriter, ErrorKind, Write};

use anyhow::Context as _;
use serde_json::{json, Map, Value};

use super::{
    columns::{Column, ALL},
    format,
    model::{group_rows, host_view, process_rows, regroup, select, HostView, Row, Users},
    sample::Sample,
    services::{self, ServiceRow},
    source::Source,
};
use crate::cli::TopArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The live view's header and table as plain text.
    Table,
    /// One object: source, host figures and a list of processes (or groups).
    Json,
    /// A header line, then one line per process (or group).
    Csv,
}

/// The JSON and CSV name of a column's figure.
fn field(c: Column, grouped: bool) -> &'static str {
    match c {
        Column::Pid if grouped => "processes",
        Column::Pid => "pid",
        Column::User => "user",
        Column::Name if grouped => "group",
        Column::Name => "comm",
        Column::Cpu => "cpu_percent",
        Column::Wait => "runqueue_wait_ms_per_second",
        Column::Rss => "rss_bytes",
        Column::Read => "disk_read_bytes_per_second",
        Column::Write => "disk_write_bytes_per_second",
        Column::Latency => "disk_latency_ms",
        Column::Rx => "net_rx_bytes_per_second",
        Column::Tx => "net_tx_bytes_per_second",
    }
}

/// What is printed: everything a format needs.
struct Report<'a> {
    source: &'a Source,
    first: &'a Sample,
    second: &'a Sample,
    host: HostView,
    rows: Vec<Row>,
    grouped: bool,
    sort: String,
    services: Vec<ServiceRow>,
}

pub fn run(o: &TopArgs, source: &mut Source, first: Sample) -> anyhow::Result<()> {
    std::thread::sleep(o.interval);
    let second = source.sample()?;
    let users = Users::from_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
    let mut rows = process_rows(Some(&first), &second, &users);
    regroup(&mut rows, o.group_by);
    let rows = if o.group { group_rows(&rows) } else { rows };
    let report = Report {
        source,
        first: &first,
        second: &second,
        host: host_view(Some(&first), &second),
        rows: select(rows, &o.filter, o.sort, o.limit()),
        grouped: o.group,
        sort: o.sort.to_string(),
        services: services::rows(
            &first.host.services,
            &second.host.services,
            second.seconds_since(&first),
        ),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let written = match o.output.unwrap_or(OutputFormat::Table) {
        OutputFormat::Table => table(&mut out, &report),
        OutputFormat::Json => json(&mut out, &report),
        OutputFormat::Csv => csv(&mut out, &report),
    }
    .and_then(|()| out.flush());
    match written {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn table(out: &mut impl Write, r: &Report<'_>) -> std::io::Result<()> {
    writeln!(
        out,
        "monitor top - {} - {:.2} s interval - {} processes - sorted by {}",
        r.source.describe(),
        r.second.seconds_since(r.first),
        r.second.procs.len(),
        r.sort
    )?;
    for line in format::summary(&r.host) {
        writeln!(out, "{line}")?;
    }
    if let Some(w) = &r.second.warning {
        writeln!(out, "{w}")?;
    }
    writeln!(out)?;
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (c, text) in ALL.iter().zip(cells) {
            let w = usize::from(c.width());
            match c {
                Column::Name => s.push_str(&text),
                Column::User => s.push_str(&format!("{text:<w$.w$} ")),
                _ => s.push_str(&format!("{text:>w$} ")),
            }
        }
        s
    };
    writeln!(
        out,
        "{}",
        line(
            ALL.iter()
                .map(|c| c.header(r.grouped).to_string())
                .collect()
        )
    )?;
    for row in &r.rows {
        writeln!(
            out,
            "{}",
            line(ALL.iter().map(|&c| format::cell(row, c)).collect())
        )?;
    }
    if !r.services.is_empty() {
        writeln!(out)?;
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (text, w)) in cells.iter().zip(services::WIDTHS).enumerate() {
                let w = usize::from(w);
                if i == 1 {
                    s.push_str(&format!("{text:<w$} "));
                } else {
                    s.push_str(&format!("{text:>w$} "));
                }
            }
            s.trim_end().to_string()
        };
        writeln!(out, "{}", line(&services::HEADER.map(String::from)))?;
        for row in &r.services {
            writeln!(out, "{}", line(&services::cells(row)))?;
        }
    }
    Ok(())
}

fn figures(row: &Row, object: &mut Map<String, Value>) {
    for c in ALL {
        if c.is_text() || c == Column::Pid {
            continue;
        }
        let name = field(c, false);
        // A figure the source reported stays as it was reported.
        if !object.contains_key(name) {
            object.insert(name.to_string(), json!(row.value(c)));
        }
    }
}

fn json(out: &mut impl Write, r: &Report<'_>) -> std::io::Result<()> {
    let h = &r.host;
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            let mut o = match row.index.and_then(|i| r.second.procs.get(i)) {
                Some(p) => match serde_json::to_value(p) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                },
                None => {
                    let mut m = Map::new();
                    m.insert("group".into(), json!(row.name));
                    m.insert("processes".into(), json!(row.count));
                    m
                }
            };
            o.insert("user".into(), json!(row.user));
            figures(row, &mut o);
            Value::Object(o)
        })
        .collect();
    let (kind, url) = match r.source {
        Source::Daemon(d) => ("daemon", Some(d.base())),
        Source::Standalone(_) => ("standalone", None),
    };
    let mut doc = json!({
        "source": kind,
        "url": url,
        "measured": r.second.measured,
        "interval_seconds": r.second.seconds_since(r.first),
        "sort": r.sort,
        "host": {
            "cpu_busy_percent": h.cpu_busy_percent,
            "cpus": h.cpus,
            "memory_total_bytes": h.memory_total,
            "memory_used_bytes": h.memory_used,
            "disk_read_bytes_per_second": h.disk_read,
            "disk_write_bytes_per_second": h.disk_write,
            "net_rx_bytes_per_second": h.net_rx,
            "net_tx_bytes_per_second": h.net_tx,
            "runqueue_latency_p50_seconds": h.runq_p50,
            "runqueue_latency_p99_seconds": h.runq_p99,
            "runqueue_waits_per_second": h.runq_waits_per_second,
        },
    });
    doc[if r.grouped { "groups" } else { "processes" }] = Value::Array(rows);
    doc["services"] = r.services.iter().map(services::json).collect();
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

/// A CSV field, quoted when it has to be (RFC 4180).
fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.trim() != s {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Three decimals at most, no trailing zeros; empty when not measured.
fn csv_number(v: Option<f64>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn csv(out: &mut impl Write, r: &Report<'_>) -> std::io::Result<()> {
    let mut header: Vec<&str> = ALL.iter().map(|&c| field(c, r.grouped)).collect();
    if !r.grouped {
        header.push("group");
    }
    writeln!(out, "{}", header.join(","))?;
    for row in &r.rows {
        let mut cells: Vec<String> = ALL
            .iter()
            .map(|&c| match c {
                Column::User => csv_text(&row.user),
                Column::Name => csv_text(&row.name),
                c => csv_number(row.value(c)),
            })
            .collect();
        if !r.grouped {
            cells.push(csv_text(&row.group));
        }
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields() {
        assert_eq!(csv_text("dash"), "dash");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text(" x"), "\" x\"");
        assert_eq!(csv_number(None), "");
        assert_eq!(csv_number(Some(12.5)), "12.5");
        assert_eq!(csv_number(Some(4096.0)), "4096");
        assert_eq!(csv_number(Some(0.0)), "0");
        assert_eq!(csv_number(Some(1.0 / 3.0)), "0.333");
    }

    #[test]
    fn field_names_are_unique() {
        for grouped in [false, true] {
            let mut names: Vec<&str> = ALL.iter().map(|&c| field(c, grouped)).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), ALL.len());
        }
    }
}
