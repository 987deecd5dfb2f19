//! `cargo xtask fuzz --seconds N [--target T]`: runs each fuzz target in `fuzz/` (cargo-fuzz,
//! libFuzzer, nightly) for N seconds at nice 19, so other work on the machine keeps its share,
//! then minimizes its corpus (`cargo fuzz cmin`). It prints, per target, how long it ran,
//! the corpus before and after, and any crash (libFuzzer leaves the input in
//! `fuzz/artifacts/<target>/`). `cargo xtask test` never runs this: it replays the saved
//! corpora through the same entry points in a plain unit test (`monitor/src/fuzzing.rs`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context as _};

use crate::cmd;

#[derive(clap::Args)]
pub struct Options {
    /// Seconds each target runs.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
    /// Only these targets (repeatable); all by default.
    #[arg(long)]
    pub target: Vec<String>,
    /// Targets run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub jobs: u32,
    /// Keep the corpus as the run left it (no `cargo fuzz cmin`).
    #[arg(long)]
    pub no_cmin: bool,
}

struct Outcome {
    target: String,
    secs: f64,
    before: usize,
    after: usize,
    crashed: bool,
    /// Inputs run, from libFuzzer's closing `Done N runs in S second(s)`.
    runs: Option<u64>,
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    let root = cmd::root();
    let fuzz = root.join("fuzz");
    let all = targets(&fuzz)?;
    let chosen: Vec<String> = if o.target.is_empty() {
        all
    } else {
        for t in &o.target {
            if !all.contains(t) {
                bail!("no fuzz target {t:?} (there are: {})", all.join(", "));
            }
        }
        o.target.clone()
    };
    if !cmd::succeeds(cargo_fuzz(&root).arg("--version")) {
        bail!("cargo-fuzz is missing for the nightly toolchain: cargo install cargo-fuzz");
    }
    // One build for every target, before any clock starts.
    cmd::run(cargo_fuzz(&root).args(["build", "--target-dir", "target/fuzz"]))?;
    let mut outcomes = Vec::new();
    for batch in chosen.chunks(o.jobs as usize) {
        let handles: Vec<_> = batch
            .iter()
            .map(|t| {
                let (t, root, secs) = (t.clone(), root.clone(), o.seconds);
                std::thread::spawn(move || fuzz_one(&root, &t, secs))
            })
            .collect();
        for h in handles {
            let r = h
                .join()
                .map_err(|_| anyhow::anyhow!("a fuzz thread panicked"))??;
            outcomes.push(r);
        }
    }
    if !o.no_cmin {
        for out in &mut outcomes {
            cmd::run(cargo_fuzz(&root).args(["cmin", "--target-dir", "target/fuzz", &out.target]))?;
            out.after = corpus_len(&root, &out.target);
        }
    }
    println!("\nfuzz: {} s per target", o.seconds);
    for out in &outcomes {
        println!(
            "  {:<16} ran {:>5.0} s, {} inputs run, corpus {} -> {} inputs, {}",
            out.target,
            out.secs,
            out.runs.map_or_else(|| "?".to_string(), |r| r.to_string()),
            out.before,
            out.after,
            if out.crashed {
                "CRASHED (see fuzz/artifacts/)"
            } else {
                "no crash"
            }
        );
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!("crashes in {}", crashed.join(", "));
    }
    Ok(())
}

fn fuzz_one(root: &Path, target: &str, secs: u64) -> anyhow::Result<Outcome> {
    let before = corpus_len(root, target);
    let log = root.join(format!("target/fuzz/{target}.log"));
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    eprintln!("fuzz: {target} for {secs} s (log {})", log.display());
    let start = Instant::now();
    let status = cargo_fuzz(root)
        .args(["run", "--target-dir", "target/fuzz", target, "--"])
        .arg(format!("-max_total_time={secs}"))
        // Hangs are bugs too: a single input may take at most 10 s.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("running the fuzz target {target}"))?;
    Ok(Outcome {
        target: target.to_string(),
        secs: start.elapsed().as_secs_f64(),
        before,
        after: corpus_len(root, target),
        crashed: !status.success(),
        runs: runs_done(&std::fs::read_to_string(&log).unwrap_or_default()),
    })
}

/// `nice -n 19 rustup run nightly cargo fuzz`, without the eBPF build (the parsers need no
/// kernel object).
fn cargo_fuzz(root: &Path) -> Command {
    let mut c = Command::new("nice");
    c.args(["-n", "19", "rustup", "run", "nightly", "cargo", "fuzz"])
        .current_dir(root)
        .env("AYA_BUILD_SKIP", "1")
        .env("CARGO_INCREMENTAL", "0");
    c
}

/// The targets: the files in `fuzz/fuzz_targets/`.
fn targets(fuzz: &Path) -> anyhow::Result<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let p: PathBuf = e.path();
            (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    out.sort();
    Ok(out)
}

fn corpus_len(root: &Path, target: &str) -> usize {
    std::fs::read_dir(root.join("fuzz/corpus").join(target)).map_or(0, |d| d.count())
}

fn runs_done(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        l.strip_prefix("Done ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_libfuzzers_closing_count() {
        let log = "#1000 pulse cov: 10\nDone 123456 runs in 301 second(s)\n";
        assert_eq!(super::runs_done(log), Some(123_456));
        assert_eq!(super::runs_done("==1== ERROR: AddressSanitizer"), None);
    }
}
