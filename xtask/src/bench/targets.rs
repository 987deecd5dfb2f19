//! The project's targets beside the figures measured: each phase turns its figures into
//! [`Check`]s, and the report prints them all at the end with PASS or MISS. They are there to
//! be read, never enforced: the command's exit status does not depend on them.

use std::fmt;

/// What a figure must stay within.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// `value <= limit`.
    AtMost(f64),
    /// `value < limit`.
    Below(f64),
    /// A figure printed beside the targets for reference, with no target of its own.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// The figure could not be measured (no events, a phase that did not run its peer).
    NoData,
    /// Nothing to compare with.
    Info,
    /// The figure's spread from run to run straddles the limit: this run cannot tell.
    Unresolved,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::NoData => "NO DATA",
            Verdict::Info => "",
            Verdict::Unresolved => "UNRESOLVED",
        })
    }
}

/// Whether `value` meets `target`; a value that is missing or not a number is no data.
pub fn verdict(value: Option<f64>, target: Target) -> Verdict {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return if target == Target::None {
            Verdict::Info
        } else {
            Verdict::NoData
        };
    };
    match target {
        Target::AtMost(l) if v <= l => Verdict::Pass,
        Target::Below(l) if v < l => Verdict::Pass,
        Target::AtMost(_) | Target::Below(_) => Verdict::Miss,
        Target::None => Verdict::Info,
    }
}

/// One line of the report: a figure, how it was obtained, and its target.
pub struct Check {
    /// What is measured, e.g. "sched ns/switch, 400 procs, together".
    pub label: String,
    /// The figure and where it comes from, e.g. "ours 812.0 / runqlat 1010.0 = 0.80×".
    pub detail: String,
    /// The figure compared with the target, in the target's unit.
    pub value: Option<f64>,
    pub target: Target,
    /// How the target prints, e.g. "≤ 0.80×".
    pub target_text: String,
    /// Where the figure lies from run to run (its quartiles), when it has a spread: the
    /// verdict is PASS or MISS only when the whole range is on one side of the limit.
    pub range: Option<(f64, f64)>,
}

impl Check {
    pub fn verdict(&self) -> Verdict {
        let v = verdict(self.value, self.target);
        match (v, self.range) {
            (Verdict::Pass | Verdict::Miss, Some((lo, hi))) => {
                match (
                    verdict(Some(lo), self.target),
                    verdict(Some(hi), self.target),
                ) {
                    (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
                    (Verdict::Miss, Verdict::Miss) => Verdict::Miss,
                    _ => Verdict::Unresolved,
                }
            }
            _ => v,
        }
    }

    /// A workload's loss under a tool, from rounds that ran the baseline and the tool one
    /// after the other: the median of each round's own loss, with its quartiles. Pairing
    /// the runs of a round leaves out the drift between rounds (a noisy neighbour, a host
    /// busy for minutes), and the quartiles say how far a single round can be trusted.
    pub fn paired_loss(
        label: impl Into<String>,
        base: &[f64],
        value: &[f64],
        target: Target,
    ) -> Self {
        let losses: Vec<f64> = base
            .iter()
            .zip(value)
            .filter_map(|(b, v)| loss_pct(*b, *v))
            .collect();
        let mid = percentile(&losses, 50.0);
        let range = percentile(&losses, 25.0).zip(percentile(&losses, 75.0));
        let mut c = Self::figure(label, mid, "%", 1, target);
        if let (Some(m), Some((lo, hi))) = (mid, range) {
            c.detail = format!(
                "{m:.1} % (quartiles {lo:.1} to {hi:.1} %, {} rounds)",
                losses.len()
            );
            c.range = Some((lo, hi));
        }
        c
    }

    /// A ratio of two figures of ours and a peer's, e.g. "ours 812.0 / runqlat 1010.0 = 0.80×".
    pub fn ratio(
        label: impl Into<String>,
        peer: &str,
        ours: Option<f64>,
        theirs: Option<f64>,
        unit: &str,
        target: Target,
    ) -> Self {
        let r = ratio(ours, theirs);
        let detail = format!(
            "ours {} / {peer} {} = {}",
            num(ours, unit),
            num(theirs, unit),
            fmt_ratio(r)
        );
        Self {
            label: label.into(),
            detail,
            value: r,
            target,
            target_text: target_text(target, "×", 2),
            range: None,
        }
    }

    /// A figure against a limit in its own unit, e.g. "0.43 %" against "< 0.5 %".
    pub fn figure(
        label: impl Into<String>,
        value: Option<f64>,
        unit: &str,
        decimals: usize,
        target: Target,
    ) -> Self {
        let detail = value
            .filter(|v| v.is_finite())
            .map_or("-".into(), |v| format!("{v:.decimals$}{}", spaced(unit)));
        Self {
            label: label.into(),
            detail,
            value,
            target,
            target_text: target_text(target, unit, decimals),
            range: None,
        }
    }

    /// The same with the detail written by the caller.
    pub fn with_detail(mut self, detail: String) -> Self {
        self.detail = detail;
        self
    }
}

/// `a / b`, where both exist and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b != 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// "0.80×", or "-" when there is no ratio.
pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}×"))
}

/// How much of `base` was lost in `value`, in % (negative: `value` came out higher).
pub fn loss_pct(base: f64, value: f64) -> Option<f64> {
    (base > 0.0 && base.is_finite() && value.is_finite()).then(|| 100.0 * (1.0 - value / base))
}

/// The `p`th percentile (0–100) of `v` by nearest rank: the smallest value at or above which
/// `p` % of the values lie. `None` for no values.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0 * s.len() as f64).ceil() as usize;
    Some(s[rank.saturating_sub(1).min(s.len() - 1)])
}

fn spaced(unit: &str) -> String {
    match unit {
        "" | "×" => unit.to_string(),
        u => format!(" {u}"),
    }
}

fn num(v: Option<f64>, unit: &str) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".into(), |v| format!("{v:.1}{}", spaced(unit)))
}

fn target_text(t: Target, unit: &str, decimals: usize) -> String {
    match t {
        Target::AtMost(l) => format!("≤ {l:.decimals$}{}", spaced(unit)),
        Target::Below(l) => format!("< {l:.decimals$}{}", spaced(unit)),
        Target::None => "none".into(),
    }
}

/// The report's last section: every target beside its figure.
pub fn print(checks: &[Check]) {
    println!();
    println!("== Targets (read, not enforced)");
    let width = checks
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or(0);
    let mut missed = 0;
    let mut no_data = 0;
    let mut unresolved = 0;
    for c in checks {
        let v = c.verdict();
        missed += usize::from(v == Verdict::Miss);
        no_data += usize::from(v == Verdict::NoData);
        unresolved += usize::from(v == Verdict::Unresolved);
        let target = if c.target == Target::None {
            "(reference, no target)".to_string()
        } else {
            format!("(target {})", c.target_text)
        };
        let line = format!("{:<width$}  {} {target} {v}", c.label, c.detail);
        println!("{}", line.trim_end());
    }
    let targets = checks.iter().filter(|c| c.target != Target::None).count();
    println!(
        "figures with a target: {targets}; PASS {}, MISS {missed}, UNRESOLVED (spread across \
         the limit) {unresolved}, without data {no_data}",
        targets - missed - no_data - unresolved
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_compare_with_the_limit_and_say_when_there_is_nothing() {
        assert_eq!(verdict(Some(0.80), Target::AtMost(0.80)), Verdict::Pass);
        assert_eq!(verdict(Some(0.81), Target::AtMost(0.80)), Verdict::Miss);
        assert_eq!(verdict(Some(10.0), Target::Below(10.0)), Verdict::Miss);
        assert_eq!(verdict(Some(9.99), Target::Below(10.0)), Verdict::Pass);
        assert_eq!(verdict(None, Target::Below(10.0)), Verdict::NoData);
        assert_eq!(
            verdict(Some(f64::NAN), Target::AtMost(1.0)),
            Verdict::NoData
        );
        assert_eq!(verdict(Some(1.0), Target::None), Verdict::Info);
        assert_eq!(verdict(None, Target::None), Verdict::Info);
    }

    /// Round by round: a loss whose quartiles straddle the limit is unresolved, whatever
    /// its median; a run whose baseline came out slow shows as a negative loss, not a pass
    /// hidden in a median of medians.
    #[test]
    fn paired_losses_judge_by_their_quartiles() {
        let base = [100.0, 100.0, 100.0, 100.0];
        let c = Check::paired_loss("x", &base, &[99.0, 98.5, 99.5, 98.0], Target::AtMost(3.0));
        assert_eq!(c.verdict(), Verdict::Pass);
        assert_eq!(c.detail, "1.0 % (quartiles 0.5 to 1.5 %, 4 rounds)");
        let c = Check::paired_loss("x", &base, &[90.0, 91.0, 89.0, 92.0], Target::AtMost(3.0));
        assert_eq!(c.verdict(), Verdict::Miss);
        let c = Check::paired_loss("x", &base, &[99.0, 95.0, 101.0, 90.0], Target::AtMost(3.0));
        assert_eq!(c.verdict(), Verdict::Unresolved);
        // Pairs, not medians: round 2's baseline ran slow, its loss is negative.
        let c = Check::paired_loss(
            "x",
            &[100.0, 50.0, 100.0],
            &[90.0, 90.0, 90.0],
            Target::AtMost(3.0),
        );
        assert!((c.value.unwrap() - 10.0).abs() < 1e-9, "{:?}", c.value);
        let c = Check::paired_loss("x", &[], &[], Target::AtMost(3.0));
        assert_eq!(c.verdict(), Verdict::NoData);
    }

    #[test]
    fn ratios_need_both_sides_and_a_divisor() {
        assert_eq!(ratio(Some(812.0), Some(1015.0)), Some(0.8));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(f64::NAN), Some(1.0)), None);
        assert_eq!(fmt_ratio(Some(0.8)), "0.80×");
        assert_eq!(fmt_ratio(Some(1.355)), "1.35×");
        assert_eq!(fmt_ratio(None), "-");
    }

    #[test]
    fn a_ratio_check_prints_both_figures_and_the_target() {
        let c = Check::ratio(
            "sched ns/switch, 400 procs, together",
            "runqlat",
            Some(812.0),
            Some(1015.0),
            "ns",
            Target::AtMost(0.8),
        );
        assert_eq!(c.detail, "ours 812.0 ns / runqlat 1015.0 ns = 0.80×");
        assert_eq!(c.target_text, "≤ 0.80×");
        assert_eq!(c.verdict(), Verdict::Pass);
        let c = Check::ratio("x", "runqlat", None, Some(1.0), "ns", Target::AtMost(0.8));
        assert_eq!(c.detail, "ours - / runqlat 1.0 ns = -");
        assert_eq!(c.verdict(), Verdict::NoData);
    }

    #[test]
    fn a_figure_check_prints_in_its_unit() {
        let c = Check::figure("daemon CPU", Some(0.434), "%", 2, Target::Below(0.5));
        assert_eq!(c.detail, "0.43 %");
        assert_eq!(c.target_text, "< 0.50 %");
        assert_eq!(c.verdict(), Verdict::Pass);
        let c = Check::figure("RSS", Some(20.0), "MiB", 1, Target::Below(20.0));
        assert_eq!(c.verdict(), Verdict::Miss);
        assert_eq!(
            Check::figure("x", None, "ms", 1, Target::None).detail,
            "-".to_string()
        );
    }

    #[test]
    fn loss_is_positive_when_slower() {
        assert_eq!(loss_pct(100.0, 97.0).map(|v| v.round()), Some(3.0));
        assert_eq!(loss_pct(100.0, 103.0).map(|v| v.round()), Some(-3.0));
        assert_eq!(loss_pct(0.0, 1.0), None);
        assert_eq!(loss_pct(f64::NAN, 1.0), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        // Unsorted input, few values: p99 of 3 values is the largest.
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
