//! Host figures read on this machine: CPU (`/proc/stat`), memory (`/proc/meminfo`), disk
//! (`/proc/diskstats`) and network (`/proc/net/dev`) byte counters. Roots are parameters, so
//! tests run on fixture trees.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::sample::{CpuTimes, HostSample, Io, Memory};
use crate::collectors::cpu::parse_stat;

/// `/proc/diskstats` counts sectors of 512 bytes, whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

#[derive(Clone, Debug)]
pub struct HostReader {
    procfs: PathBuf,
    sysfs: PathBuf,
    ticks_per_second: f64,
}

impl Default for HostReader {
    fn default() -> Self {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self::new("/proc", "/sys", if t > 0 { t as f64 } else { 100.0 })
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl HostReader {
    pub fn new(procfs: impl Into<PathBuf>, sysfs: impl Into<PathBuf>, ticks: f64) -> Self {
        Self {
            procfs: procfs.into(),
            sysfs: sysfs.into(),
            ticks_per_second: ticks,
        }
    }

    pub fn cpu(&self) -> anyhow::Result<CpuTimes> {
        let path = self.procfs.join("stat");
        let lines =
            parse_stat(&read(&path)?).with_context(|| format!("parsing {}", path.display()))?;
        let mut busy = 0u64;
        let mut total = 0u64;
        for l in &lines {
            let all: u64 = l.ticks.iter().sum();
            // Columns: user nice system idle iowait ...
            let idle = l.ticks[3] + l.ticks.get(4).copied().unwrap_or(0);
            total += all;
            busy += all.saturating_sub(idle);
        }
        Ok(CpuTimes {
            busy: busy as f64 / self.ticks_per_second,
            total: total as f64 / self.ticks_per_second,
            cpus: lines.len(),
        })
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        let path = self.procfs.join("meminfo");
        parse_meminfo(&read(&path)?).with_context(|| format!("parsing {}", path.display()))
    }

    /// Bytes read and written by physical disks: partitions and stacked or virtual devices
    /// (loop, zram, device mapper, md) are left out, as their I/O is counted on the disks
    /// below or never reaches one. A physical disk is one with a `device` in sysfs.
    pub fn disk(&self) -> anyhow::Result<Io> {
        let path = self.procfs.join("diskstats");
        parse_diskstats(&read(&path)?, |name| {
            self.sysfs.join("block").join(name).join("device").exists()
        })
        .with_context(|| format!("parsing {}", path.display()))
    }

    /// Bytes received and sent by network devices backed by hardware (a `device` in sysfs):
    /// loopback, bridges, veth pairs and tunnels would count the same traffic again.
    pub fn net(&self) -> anyhow::Result<Io> {
        let path = self.procfs.join("net/dev");
        parse_net_dev(&read(&path)?, |name| {
            self.sysfs
                .join("class/net")
                .join(name)
                .join("device")
                .exists()
        })
        .with_context(|| format!("parsing {}", path.display()))
    }

    /// Memory, disk and network; CPU too when `with_cpu`. What cannot be read stays empty.
    pub fn fill(&self, host: &mut HostSample, with_cpu: bool) {
        if with_cpu {
            host.cpu = self.cpu().ok();
        }
        host.memory = self.memory().ok();
        host.disk = self.disk().ok();
        host.net = self.net().ok();
    }
}

pub fn parse_meminfo(text: &str) -> anyhow::Result<Memory> {
    let kib = |key: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|v| v * 1024.0)
            .with_context(|| format!("no {key} line"))
    };
    Ok(Memory {
        total_bytes: kib("MemTotal")?,
        available_bytes: kib("MemAvailable")?,
    })
}

pub fn parse_diskstats(text: &str, is_disk: impl Fn(&str) -> bool) -> anyhow::Result<Io> {
    let mut io = Io {
        read: 0.0,
        write: 0.0,
    };
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            anyhow::bail!("line {}: only {} columns", n + 1, f.len());
        }
        if !is_disk(f[2]) {
            continue;
        }
        let num = |i: usize| {
            f[i].parse::<f64>()
                .with_context(|| format!("line {}: bad number {:?}", n + 1, f[i]))
        };
        // Sectors read is column 6, sectors written column 10 (1-based).
        io.read += num(5)? * SECTOR_BYTES;
        io.write += num(9)? * SECTOR_BYTES;
    }
    Ok(io)
}

pub fn parse_net_dev(text: &str, is_physical: impl Fn(&str) -> bool) -> anyhow::Result<Io> {
    let mut io = Io {
        read: 0.0,
        write: 0.0,
    };
    for i in crate::net::netdev::parse(text)? {
        if is_physical(&i.name) {
            io.read += i.bytes.0 as f64;
            io.write += i.bytes.1 as f64;
        }
    }
    Ok(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_busy_leaves_out_idle_and_iowait() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu  30 0 30 500 40 0 0 0 0 0\ncpu0 10 0 10 200 20 0 0 0 0 0\n\
             cpu1 20 0 20 300 20 0 0 0 0 0\nintr 1\n",
        )
        .unwrap();
        let c = HostReader::new(dir.path(), dir.path(), 100.0)
            .cpu()
            .unwrap();
        assert_eq!(c.cpus, 2);
        assert!((c.total - 6.0).abs() < 1e-9, "{c:?}");
        assert!((c.busy - 0.6).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn reads_meminfo() {
        let m =
            parse_meminfo("MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:  250 kB\n").unwrap();
        assert_eq!(m.total_bytes, 1_024_000.0);
        assert_eq!(m.available_bytes, 256_000.0);
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_err());
    }

    #[test]
    fn disk_counts_only_physical_disks() {
        let text = "   7       0 loop0 5 0 80 0 0 0 0 0 0 0 0\n\
                    254       0 vda 296 18 100 486 30 55 20 66 0 38 55\n\
                    254       1 vda1 290 18 90 486 30 55 20 66 0 38 55\n";
        let io = parse_diskstats(text, |n| n == "vda").unwrap();
        assert_eq!(io.read, 100.0 * 512.0);
        assert_eq!(io.write, 20.0 * 512.0);
        assert!(parse_diskstats("1 2 vda x\n", |_| true).is_err());
        assert!(parse_diskstats("1 2 vda 1 2 x 4 5 6 7 8\n", |_| true).is_err());
    }

    #[test]
    fn net_counts_only_hardware_devices() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n\
                    lo: 500 8 0 0 0 0 0 0 500 8 0 0 0 0 0 0\n\
                    eth0: 4373 139 0 0 0 0 0 0 7225 80 0 0 0 0 0 0\n";
        let io = parse_net_dev(text, |n| n == "eth0").unwrap();
        assert_eq!((io.read, io.write), (4373.0, 7225.0));
        assert!(parse_net_dev("a\nb\neth0 1 2\n", |_| true).is_err());
    }
}
