//! `/proc/net/dev`: the kernel's own per-interface counters.

use std::path::Path;

use anyhow::{bail, Context as _};

/// One interface's counters, each (receive, transmit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub bytes: (u64, u64),
    pub packets: (u64, u64),
    pub errors: (u64, u64),
    pub drops: (u64, u64),
}

/// Parses the file: two header lines, then `name: 8 receive fields 8 transmit fields`.
pub fn parse(text: &str) -> anyhow::Result<Vec<Interface>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            bail!("line {}: no interface name: {line:?}", i + 1);
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("line {}: a field is not a number: {line:?}", i + 1))?;
        if f.len() < 16 {
            bail!("line {}: {} fields, expected 16: {line:?}", i + 1, f.len());
        }
        out.push(Interface {
            name: name.trim().to_string(),
            bytes: (f[0], f[8]),
            packets: (f[1], f[9]),
            errors: (f[2], f[10]),
            drops: (f[3], f[11]),
        });
    }
    Ok(out)
}

pub fn read(procfs: &Path) -> anyhow::Result<Vec<Interface>> {
    let path = procfs.join("net/dev");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/collectors/testdata/net-dev"
        ))
        .unwrap();
        let all = parse(&text).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].name, "lo");
        assert_eq!(all[0].bytes, (133314696, 133314696));
        assert_eq!(all[2].name, "eth0");
        assert_eq!(all[2].bytes, (1446506232, 2444042));
        assert_eq!(all[2].packets, (45860, 28095));
        assert_eq!(all[2].errors, (3, 5));
        assert_eq!(all[2].drops, (4, 6));
        assert!(parse("a\nb\n  x: 1 2 3\n").is_err());
        assert!(parse("a\nb\n  x 1 2 3\n").is_err());
    }
}
