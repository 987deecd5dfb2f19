//! Field types of the alerting config that check their value as it is read: durations,
//! regular expressions, label matchers.

use std::time::Duration;

use promql_parser::label::Matcher;
use regex::Regex;
use serde::Deserialize;

use crate::alert::rules;

/// A duration field: `30s`, `5m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        rules::parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A regular expression field.
#[derive(Debug, Clone)]
pub struct Re(pub Regex);

impl<'de> Deserialize<'de> for Re {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map(Re).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a regular expression: {e}"))
        })
    }
}

/// Label matchers as Alertmanager writes them: `severity="critical"`, `alertname=~"Host.*"`.
#[derive(Debug, Clone)]
pub struct Matchers(pub Vec<Matcher>);

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        let mut out = Vec::new();
        for m in list {
            let e = promql_parser::parser::parse(&format!("{{{m}}}")).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{m:?} is not a matcher such as severity=\"critical\" ({e})"
                ))
            })?;
            let promql_parser::parser::Expr::VectorSelector(vs) = e else {
                return Err(serde::de::Error::custom(format!("{m:?} is not a matcher")));
            };
            out.extend(vs.matchers.matchers);
        }
        Ok(Matchers(out))
    }
}

impl Matchers {
    pub fn matches(&self, labels: &crate::alert::expr::Labels) -> bool {
        self.0
            .iter()
            .all(|m| m.is_match(labels.get(&m.name).map_or("", String::as_str)))
    }
}
