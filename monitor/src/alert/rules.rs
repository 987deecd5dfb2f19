//! Alert rule files, in Prometheus's format (`groups:` of `rules:` with `alert`, `expr`,
//! `for`, `keep_firing_for`, `labels`, `annotations`), checked as they load: every error
//! names the file, the group, the rule and the field.

use std::{collections::BTreeMap, path::Path, time::Duration};

use promql_parser::parser::Expr;
use serde::Deserialize;

use super::{
    expr::{check::Needs, Labels},
    template::Template,
};

/// The default rules, compiled in; `default_rules` in the alerting config turns them off
/// or disables some, and a user rule with the same name replaces one.
pub const DEFAULT_RULES: &str = include_str!("default_rules.yml");
pub const DEFAULT_RULES_NAME: &str = "default rules";

pub const SEVERITIES: &[&str] = &["critical", "warning", "info"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    groups: Vec<GroupYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupYaml {
    name: String,
    #[serde(default)]
    rules: Vec<RuleYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleYaml {
    alert: Option<String>,
    record: Option<String>,
    expr: Option<serde_norway::Value>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// Where it came from, for logs and the API: the file and the group.
    pub file: String,
    pub group: String,
    pub expr_text: String,
    pub expr: Expr,
    pub needs: Needs,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    /// Added to every alert, `alertname` and `severity` included.
    pub labels: Labels,
    pub annotations: Vec<(String, Template)>,
}

impl Rule {
    pub fn severity(&self) -> &str {
        self.labels.get("severity").map_or("", String::as_str)
    }
}

/// A rule file's text checked into rules; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> anyhow::Result<Vec<Rule>> {
    let doc: FileYaml = serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let mut out = Vec::new();
    for (gi, g) in doc.groups.iter().enumerate() {
        if g.name.trim().is_empty() {
            anyhow::bail!("{file}: group {}: name is empty", gi + 1);
        }
        if doc.groups[..gi].iter().any(|o| o.name == g.name) {
            anyhow::bail!("{file}: group {:?}: the name is used twice", g.name);
        }
        for (ri, r) in g.rules.iter().enumerate() {
            let at = |rule: &str, field: &str, msg: String| {
                anyhow::anyhow!("{file}: group {:?}, rule {rule}: {field}: {msg}", g.name)
            };
            let Some(name) = &r.alert else {
                let what = if r.record.is_some() {
                    "recording rules are not supported, only alerting rules"
                } else {
                    "missing: every rule needs an alert name"
                };
                return Err(at(&format!("{}", ri + 1), "alert", what.to_string()));
            };
            let rule = format!("{name:?}");
            if !is_name(name) {
                return Err(at(
                    &rule,
                    "alert",
                    format!("{name:?} is not a valid name ([A-Za-z_][A-Za-z0-9_]*)"),
                ));
            }
            let expr_text = match &r.expr {
                Some(serde_norway::Value::String(s)) => s.clone(),
                Some(serde_norway::Value::Number(n)) => n.to_string(),
                Some(_) => {
                    return Err(at(
                        &rule,
                        "expr",
                        "must be a PromQL expression (text)".to_string(),
                    ))
                }
                None => return Err(at(&rule, "expr", "missing".to_string())),
            };
            let (expr, needs) = super::expr::check::check(&expr_text)
                .map_err(|e| at(&rule, "expr", format!("{}: {e}", expr_text.trim())))?;
            let dur = |field: &str, v: &Option<String>| -> anyhow::Result<Duration> {
                v.as_deref().map_or(Ok(Duration::ZERO), |s| {
                    parse_duration(s).map_err(|e| at(&rule, field, e))
                })
            };
            let for_ = dur("for", &r.for_)?;
            let keep_firing_for = dur("keep_firing_for", &r.keep_firing_for)?;
            let mut labels = Labels::new();
            for (k, v) in &r.labels {
                if !is_label_name(k) {
                    return Err(at(
                        &rule,
                        "labels",
                        format!("{k:?} is not a valid label name"),
                    ));
                }
                if k == "alertname" {
                    return Err(at(
                        &rule,
                        "labels",
                        "alertname is set by `alert`".to_string(),
                    ));
                }
                Template::parse(v).map_err(|e| at(&rule, &format!("labels.{k}"), e))?;
                labels.insert(k.clone(), v.clone());
            }
            match labels.get("severity") {
                Some(s) if !SEVERITIES.contains(&s.as_str()) => {
                    return Err(at(
                        &rule,
                        "labels.severity",
                        format!("{s:?} is not one of {}", SEVERITIES.join(", ")),
                    ))
                }
                Some(_) => {}
                None => {
                    labels.insert("severity".to_string(), "warning".to_string());
                }
            }
            labels.insert("alertname".to_string(), name.clone());
            let annotations = r
                .annotations
                .iter()
                .map(|(k, v)| {
                    if !is_label_name(k) {
                        return Err(at(
                            &rule,
                            "annotations",
                            format!("{k:?} is not a valid name"),
                        ));
                    }
                    Template::parse(v)
                        .map(|t| (k.clone(), t))
                        .map_err(|e| at(&rule, &format!("annotations.{k}"), e))
                })
                .collect::<anyhow::Result<_>>()?;
            out.push(Rule {
                name: name.clone(),
                file: file.to_string(),
                group: g.name.clone(),
                expr_text: expr_text.trim().to_string(),
                expr,
                needs,
                for_,
                keep_firing_for,
                labels,
                annotations,
            });
        }
    }
    Ok(out)
}

/// Parses YAML; an error names the file and the field's full path (`groups[0].rules[1].for`).
pub fn from_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> anyhow::Result<T> {
    serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // One line (some messages, such as regex errors, span several), without the
        // shorter path the inner error may start with: the full one is ours.
        let mut msg = inner
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        while let Some((head, rest)) = msg.split_once(": ") {
            if head.is_empty() || head.contains(' ') || !path.starts_with(head) {
                break;
            }
            msg = rest.to_string();
        }
        if path == "." {
            anyhow::anyhow!("{file}: {msg}")
        } else {
            anyhow::anyhow!("{file}: {path}: {msg}")
        }
    })
}

/// A duration as Prometheus writes them (`5m`, `1h30m`, `500ms`, `1d`), or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}; e.g. 30s, 5m, 1h30m)"))
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_label_name(s: &str) -> bool {
    is_name(s) && !s.starts_with("__")
}

/// Reads and checks one rule file.
pub fn load(path: &Path) -> anyhow::Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the rule file: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_load() {
        let rules = parse(DEFAULT_RULES_NAME, DEFAULT_RULES).unwrap();
        assert!(rules.len() >= 9);
        assert!(rules.iter().all(|r| !r.severity().is_empty()));
    }

    fn err(rule: &str) -> String {
        let text = format!("groups:\n  - name: g\n    rules:\n      - alert: A\n{rule}");
        format!("{:#}", parse("f.yml", &text).unwrap_err())
    }

    #[test]
    fn errors_name_file_group_rule_and_field() {
        let e = err("        expr: monitor_nope > 1\n");
        assert!(
            e.starts_with("f.yml: group \"g\", rule \"A\": expr: "),
            "{e}"
        );
        assert!(e.contains("unknown metric monitor_nope"), "{e}");
        let e = err("        expr: monitor_processes > 1\n        for: soon\n");
        assert!(
            e.contains("rule \"A\": for: \"soon\" is not a duration"),
            "{e}"
        );
        let e = err("        expr: monitor_processes > 1\n        labels: {severity: loud}\n");
        assert!(e.contains("labels.severity"), "{e}");
        let e = err("        expr: monitor_processes > 1\n        annotations: {summary: \"{{ $nope }}\"}\n");
        assert!(e.contains("annotations.summary"), "{e}");
        let e = err("        expr: monitor_processes{group=~\"[\"} > 1\n");
        assert!(e.contains("expr: "), "{e}");
        let e = err("        expr: monitor_processes > 1\n        forr: 5m\n");
        assert!(e.contains("unknown field `forr`"), "{e}");
        assert!(e.starts_with("f.yml: "), "{e}");
    }
}
