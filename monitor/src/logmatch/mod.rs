//! Counting lines of application log files: each `--log-match.file` is followed like
//! `tail -F`, and each line is tested against every `--log-match.pattern`, so "errors in the
//! application's log go up" can alert like any other metric.

pub mod follow;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use clap::Args;
use prometheus::proto::{MetricFamily, MetricType};
use regex::bytes::Regex;

use self::follow::Follower;
use crate::{
    collectors::{Host, ScrapeCollector},
    metrics::{counter, family, gauge},
};

#[derive(Args, Debug, Clone)]
pub struct LogMatchArgs {
    /// A log file to follow (repeatable). Followed like `tail -F`: through rotation by
    /// rename and truncation, and picked up if it appears later. Lines already in the file
    /// at start-up are not counted.
    #[arg(long = "log-match.file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// A pattern NAME=REGEX counted in every followed file (repeatable); NAME is the
    /// `pattern` label.
    #[arg(long = "log-match.pattern", value_name = "NAME=REGEX", value_parser = parse_pattern)]
    pub patterns: Vec<Pattern>,

    /// How often the files are checked for new lines.
    #[arg(id = "log_match_interval", long = "log-match.interval", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

#[derive(Clone, Debug)]
pub struct Pattern {
    pub name: String,
    pub regex: Regex,
}

fn parse_pattern(s: &str) -> Result<Pattern, String> {
    let (name, re) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=REGEX"))?;
    let ok_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok_name {
        return Err(format!(
            "{s:?}: the name {name:?} must be letters, digits, - or _"
        ));
    }
    let regex = Regex::new(re).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(Pattern {
        name: name.to_string(),
        regex,
    })
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 1s, 500ms)"))?;
    if d < Duration::from_millis(10) {
        return Err(format!("{s:?} is below the 10ms minimum"));
    }
    Ok(d)
}

#[derive(Debug, Default, Clone)]
struct FileCounts {
    file: String,
    open: bool,
    lines: u64,
    rotations: u64,
    truncations: u64,
    matches: Vec<u64>,
}

#[derive(Debug, Default)]
struct Shared {
    patterns: Vec<String>,
    files: Vec<FileCounts>,
}

/// Exports the counts; the follower thread updates them.
pub struct LogMatchCollector(Arc<Mutex<Shared>>);

impl LogMatchArgs {
    /// Refuses patterns without a file to match them in.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.files.is_empty() && !self.patterns.is_empty() {
            anyhow::bail!("--log-match.pattern needs at least one --log-match.file");
        }
        Ok(())
    }

    /// Starts following the files; `None` when none is configured.
    pub fn start(&self) -> anyhow::Result<Option<LogMatchCollector>> {
        self.check()?;
        if self.files.is_empty() {
            return Ok(None);
        }
        let shared = Arc::new(Mutex::new(Shared {
            patterns: self.patterns.iter().map(|p| p.name.clone()).collect(),
            files: self
                .files
                .iter()
                .map(|f| FileCounts {
                    file: f.display().to_string(),
                    matches: vec![0; self.patterns.len()],
                    ..Default::default()
                })
                .collect(),
        }));
        let mut followers: Vec<Follower> =
            self.files.iter().map(|f| Follower::new(f, true)).collect();
        let patterns = self.patterns.clone();
        let interval = self.interval;
        let counts = shared.clone();
        std::thread::Builder::new()
            .name("log-match".into())
            .spawn(move || loop {
                for (i, f) in followers.iter_mut().enumerate() {
                    let mut lines = 0u64;
                    let mut matches = vec![0u64; patterns.len()];
                    let ev = f.poll(|line| {
                        lines += 1;
                        for (m, p) in matches.iter_mut().zip(&patterns) {
                            *m += u64::from(p.regex.is_match(line));
                        }
                    });
                    let mut s = counts.lock().unwrap_or_else(|p| p.into_inner());
                    let c = &mut s.files[i];
                    if c.open != f.is_open() {
                        tracing::info!(file = %f.path().display(), open = f.is_open(), "log-match file");
                    }
                    c.open = f.is_open();
                    c.lines += lines;
                    c.rotations += ev.rotations;
                    c.truncations += ev.truncations;
                    for (total, m) in c.matches.iter_mut().zip(matches) {
                        *total += m;
                    }
                }
                std::thread::sleep(interval);
            })
            .map_err(|e| anyhow::anyhow!("starting the log-match thread: {e}"))?;
        Ok(Some(LogMatchCollector(shared)))
    }
}

/// The families the matcher exports (for the alert rules' catalogue).
pub const FAMILIES: &[&str] = &[
    "monitor_log_lines_total",
    "monitor_log_matches_total",
    "monitor_log_file_rotations_total",
    "monitor_log_file_truncations_total",
    "monitor_log_file_open",
];

impl ScrapeCollector for LogMatchCollector {
    fn name(&self) -> &'static str {
        "log_match"
    }

    fn collect(&mut self, _host: &Host<'_>, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let per_file = |f: &dyn Fn(&FileCounts) -> f64| -> Vec<_> {
            s.files
                .iter()
                .map(|c| counter(&[("file", &c.file)], f(c)))
                .collect()
        };
        out.push(family(
            "monitor_log_lines_total",
            "Lines read from the followed log file.",
            MetricType::COUNTER,
            per_file(&|c| c.lines as f64),
        ));
        let mut matches = Vec::new();
        for c in &s.files {
            for (name, n) in s.patterns.iter().zip(&c.matches) {
                matches.push(counter(&[("file", &c.file), ("pattern", name)], *n as f64));
            }
        }
        out.push(family(
            "monitor_log_matches_total",
            "Lines of the followed log file matching the pattern.",
            MetricType::COUNTER,
            matches,
        ));
        out.push(family(
            "monitor_log_file_rotations_total",
            "Times the followed path was found naming a new file (rotation by rename).",
            MetricType::COUNTER,
            per_file(&|c| c.rotations as f64),
        ));
        out.push(family(
            "monitor_log_file_truncations_total",
            "Times the followed file was found shorter than what was read (truncated).",
            MetricType::COUNTER,
            per_file(&|c| c.truncations as f64),
        ));
        out.push(family(
            "monitor_log_file_open",
            "Whether the followed file exists and is open (0: missing or unreadable).",
            MetricType::GAUGE,
            s.files
                .iter()
                .map(|c| gauge(&[("file", &c.file)], f64::from(u8::from(c.open))))
                .collect(),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_or_say_why() {
        let p = parse_pattern("errors=(?i)error|fatal").unwrap();
        assert_eq!(p.name, "errors");
        assert!(p.regex.is_match(b"a FATAL thing"));
        assert!(parse_pattern("noequals").is_err());
        assert!(parse_pattern("bad name=x").is_err());
        assert!(parse_pattern("x=(").unwrap_err().contains("x=("));
    }
}
