//! The table's columns: their `--sort` names, the keys that sort by them, headers and natural
//! order. One table, so the flag, the keys, the help overlay and the batch formats agree.

use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Pid,
    User,
    Cpu,
    Wait,
    Rss,
    Read,
    Write,
    Latency,
    Rx,
    Tx,
    Name,
}

/// Columns in display order (`<` and `>` walk it). The name comes last, as in top, so it takes
/// whatever width is left.
pub const ALL: [Column; 11] = [
    Column::Pid,
    Column::User,
    Column::Cpu,
    Column::Wait,
    Column::Rss,
    Column::Read,
    Column::Write,
    Column::Latency,
    Column::Rx,
    Column::Tx,
    Column::Name,
];

impl Column {
    /// The name used by `--sort`.
    pub fn name(self) -> &'static str {
        match self {
            Column::Pid => "pid",
            Column::User => "user",
            Column::Cpu => "cpu",
            Column::Wait => "wait",
            Column::Rss => "rss",
            Column::Read => "read",
            Column::Write => "write",
            Column::Latency => "latency",
            Column::Rx => "rx",
            Column::Tx => "tx",
            Column::Name => "name",
        }
    }

    /// The key that sorts by this column in the live view.
    pub fn key(self) -> char {
        match self {
            Column::Pid => 'p',
            Column::User => 'u',
            Column::Cpu => 'c',
            Column::Wait => 'w',
            Column::Rss => 'm',
            Column::Read => 'i',
            Column::Write => 'o',
            Column::Latency => 'l',
            Column::Rx => 'x',
            Column::Tx => 't',
            Column::Name => 'n',
        }
    }

    pub fn from_key(c: char) -> Option<Self> {
        ALL.into_iter().find(|col| col.key() == c)
    }

    pub fn header(self, grouped: bool) -> &'static str {
        match self {
            Column::Pid if grouped => "PROCS",
            Column::Pid => "PID",
            Column::User => "USER",
            Column::Cpu => "CPU%",
            Column::Wait => "WAIT",
            Column::Rss => "RSS",
            Column::Read => "RD/s",
            Column::Write => "WR/s",
            Column::Latency => "LAT",
            Column::Rx => "RX/s",
            Column::Tx => "TX/s",
            Column::Name if grouped => "GROUP",
            Column::Name => "NAME",
        }
    }

    /// What the column shows, for the help overlay.
    pub fn help(self) -> &'static str {
        match self {
            Column::Pid => "process id (grouped: processes in the group)",
            Column::User => "owner",
            Column::Cpu => "CPU time, % of one core",
            Column::Wait => "run-queue wait: ms runnable but not running, per second",
            Column::Rss => "resident memory",
            Column::Read => "bytes read from disk per second",
            Column::Write => "bytes written to disk per second",
            Column::Latency => "average disk I/O latency, ms",
            Column::Rx => "network bytes received per second",
            Column::Tx => "network bytes sent per second",
            Column::Name => "process name (grouped: group)",
        }
    }

    /// Cells wide (room for the header and the sort arrow); the name takes the rest, so
    /// the figures fit an 80-column terminal.
    pub fn width(self) -> u16 {
        match self {
            Column::Pid => 7,
            Column::User => 8,
            Column::Name => 15,
            _ => 6,
        }
    }

    pub fn is_text(self) -> bool {
        matches!(self, Column::User | Column::Name)
    }

    /// Busiest first for figures; names and pids from the start.
    pub fn descending_by_default(self) -> bool {
        !self.is_text() && self != Column::Pid
    }

    /// The next (`step` 1) or previous (`step` -1) column in display order, wrapping around.
    pub fn step(self, step: isize) -> Self {
        let i = ALL.iter().position(|c| *c == self).unwrap_or(0) as isize;
        let n = ALL.len() as isize;
        ALL[(i + step).rem_euclid(n) as usize]
    }
}

/// A sort column and direction: `--sort cpu`, `--sort pid:desc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortSpec {
    pub column: Column,
    pub descending: bool,
}

impl SortSpec {
    pub fn natural(column: Column) -> Self {
        Self {
            column,
            descending: column.descending_by_default(),
        }
    }
}

impl FromStr for SortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, order) = match s.split_once(':') {
            Some((n, o)) => (n, Some(o)),
            None => (s, None),
        };
        let column = ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|c| c.name()).collect();
            format!(
                "{s:?}: unknown column (expected one of {}, optionally with :asc or :desc)",
                names.join(", ")
            )
        })?;
        let descending = match order {
            None => column.descending_by_default(),
            Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(format!("{s:?}: unknown order {o:?} (expected asc or desc)")),
        };
        Ok(Self { column, descending })
    }
}

impl fmt::Display for SortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = if self.descending { "desc" } else { "asc" };
        write!(f, "{}:{order}", self.column.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.key(), b.key());
                assert_ne!(a.name(), b.name());
            }
            assert_eq!(Column::from_key(a.key()), Some(*a));
        }
        // Keys taken by other actions.
        for k in ['q', 'r', 'g', 'h', '?', '/', ' '] {
            assert_eq!(Column::from_key(k), None, "{k}");
        }
    }

    #[test]
    fn parses_sort_specs() {
        assert_eq!(
            "cpu".parse::<SortSpec>().unwrap(),
            SortSpec {
                column: Column::Cpu,
                descending: true
            }
        );
        assert!(!"pid".parse::<SortSpec>().unwrap().descending);
        assert!("pid:desc".parse::<SortSpec>().unwrap().descending);
        assert!(!"rss:asc".parse::<SortSpec>().unwrap().descending);
        let e = "size".parse::<SortSpec>().unwrap_err();
        assert!(e.contains("unknown column") && e.contains("latency"), "{e}");
        let e = "cpu:up".parse::<SortSpec>().unwrap_err();
        assert!(e.contains("unknown order"), "{e}");
    }

    #[test]
    fn stepping_wraps() {
        assert_eq!(Column::Pid.step(-1), Column::Name);
        assert_eq!(Column::Name.step(1), Column::Pid);
        assert_eq!(Column::Cpu.step(1), Column::Wait);
    }
}
