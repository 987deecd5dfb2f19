//! Annotation templates in the subset of Prometheus's that alert texts use:
//! `{{ $value }}`, `{{ $labels.name }}` (also `.Value`, `.Labels.name`), piped through
//! `humanize`, `humanize1024`, `humanizePercentage`, `humanizeDuration` or
//! `printf "%.2f"`. Parsed when the rule is loaded, so a bad template is a load error.

use super::expr::Labels;

#[derive(Debug, Clone)]
enum Var {
    Value,
    Label(String),
}

#[derive(Debug, Clone)]
enum Filter {
    Humanize,
    Humanize1024,
    Percentage,
    Duration,
    Printf(String),
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Var, Vec<Filter>),
}

#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!("{{{{ at {} is never closed", text.len() - rest.len() + open)
            })?;
            parts.push(action(
                after[..close].trim_matches(|c: char| c == '-' || c.is_whitespace()),
            )?);
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err("}} without {{".to_string());
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self(parts))
    }

    pub fn render(&self, labels: &Labels, value: f64) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(var, filters) => {
                    let mut s = match var {
                        Var::Value => Val::Num(value),
                        Var::Label(l) => Val::Str(labels.get(l).cloned().unwrap_or_default()),
                    };
                    for f in filters {
                        s = Val::Str(apply(f, &s));
                    }
                    out.push_str(&s.to_string());
                }
            }
        }
        out
    }
}

enum Val {
    Num(f64),
    Str(String),
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Num(v) => write!(f, "{v}"),
            Val::Str(s) => f.write_str(s),
        }
    }
}

fn action(body: &str) -> Result<Part, String> {
    let mut stages = body.split('|').map(str::trim);
    let var = match stages.next().unwrap_or_default() {
        "$value" | ".Value" => Var::Value,
        v => match v
            .strip_prefix("$labels.")
            .or_else(|| v.strip_prefix(".Labels."))
        {
            Some(l)
                if !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Var::Label(l.to_string())
            }
            _ => {
                return Err(format!(
                    "{{{{ {body} }}}}: {v:?} is not $value or $labels.NAME"
                ))
            }
        },
    };
    let filters = stages
        .map(|s| {
            Ok(match s {
                "humanize" => Filter::Humanize,
                "humanize1024" => Filter::Humanize1024,
                "humanizePercentage" => Filter::Percentage,
                "humanizeDuration" => Filter::Duration,
                s if s.starts_with("printf ") => {
                    let f = s["printf ".len()..].trim();
                    let f = f
                        .strip_prefix('"')
                        .and_then(|f| f.strip_suffix('"'))
                        .ok_or_else(|| format!("{{{{ {body} }}}}: printf takes a quoted format"))?;
                    printf_check(f).map_err(|e| format!("{{{{ {body} }}}}: {e}"))?;
                    Filter::Printf(f.to_string())
                }
                other => {
                    return Err(format!(
                        "{{{{ {body} }}}}: unknown function {other:?} (humanize, humanize1024, \
                         humanizePercentage, humanizeDuration, printf)"
                    ))
                }
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Part::Action(var, filters))
}

fn number(v: &Val) -> f64 {
    match v {
        Val::Num(n) => *n,
        Val::Str(s) => s.parse().unwrap_or(f64::NAN),
    }
}

fn apply(f: &Filter, v: &Val) -> String {
    let n = number(v);
    match f {
        Filter::Humanize => humanize(n, 1000.0, &["k", "M", "G", "T", "P", "E", "Z", "Y"], true),
        Filter::Humanize1024 => humanize(
            n,
            1024.0,
            &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"],
            false,
        ),
        Filter::Percentage => format!("{}%", g4(n * 100.0)),
        Filter::Duration => duration(n),
        Filter::Printf(fmt) => printf(fmt, v),
    }
}

/// Go's `%.4g`: four significant digits, trailing zeros dropped, an exponent when the
/// number is very large or small.
fn g4(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    // The exponent after rounding to four digits (9999.5 is 1e+04).
    let sci = format!("{v:.3e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..4).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = (3 - exp).max(0) as usize;
    trim(&format!("{v:.decimals$}"))
}

/// Prometheus's `humanize` (SI prefixes, also below 1 when `small`) and `humanize1024`.
fn humanize(mut v: f64, base: f64, big: &[&str], small: bool) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 || !small {
        for p in big {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanizeDuration`.
fn duration(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let total = v.abs() as i64;
        let (d, h, m, s) = (
            total / 86400,
            total / 3600 % 24,
            total / 60 % 60,
            total % 60,
        );
        return if d != 0 {
            format!("{sign}{d}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", g4(v.abs()))
        };
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// The one verb of a printf format: `%f`, `%.Nf`, `%g`, `%d`, `%s`, `%v`, and `%%`.
fn printf_check(f: &str) -> Result<(), String> {
    let verbs = f.matches('%').count() - 2 * f.matches("%%").count();
    if verbs != 1 {
        return Err(format!("printf {f:?} must have exactly one verb"));
    }
    let i = f.replace("%%", "").find('%').unwrap_or(0);
    let spec = &f.replace("%%", "")[i + 1..];
    let ok = ["f", "g", "d", "s", "v"]
        .iter()
        .any(|v| spec.starts_with(v))
        || (spec.starts_with('.')
            && spec[1..]
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with('f'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "printf {f:?}: only %f, %.Nf, %g, %d, %s, %v are supported"
        ))
    }
}

fn printf(fmt: &str, v: &Val) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('f') => out.push_str(&format!("{:.6}", number(v))),
            Some('g') | Some('v') => out.push_str(&v.to_string()),
            Some('d') => out.push_str(&format!("{}", number(v).trunc() as i64)),
            Some('s') => out.push_str(&v.to_string()),
            Some('.') => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                chars.next(); // the f
                let p: usize = digits.parse().unwrap_or(6);
                out.push_str(&format!("{:.*}", p, number(v)));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let labels = Labels::from([("group".to_string(), "web".to_string())]);
        let t = Template::parse("{{ $labels.group }} at {{ $value | humanizePercentage }}, {{ .Value | printf \"%.1f\" }}").unwrap();
        assert_eq!(t.render(&labels, 0.935), "web at 93.5%, 0.9");
        let t = Template::parse("{{$value|humanize}} {{ $value | humanizeDuration }}").unwrap();
        assert_eq!(t.render(&labels, 3725.0), "3.725k 1h 2m 5s");
        assert_eq!(
            Template::parse("{{ $value | humanizeDuration }}")
                .unwrap()
                .render(&labels, 0.05),
            "50ms"
        );
    }

    #[test]
    fn rejects() {
        for bad in [
            "{{ $value",
            "{{ $nope }}",
            "{{ $value | shout }}",
            "{{ $labels. }}",
            "x }}",
            "{{ $value | printf \"%x\" }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
