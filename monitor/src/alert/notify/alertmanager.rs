//! The `alertmanager` receiver: `POST /api/v2/alerts` to one Alertmanager, or to every
//! Alertmanager of a highly available cluster at once, as Prometheus sends to each of its
//! Alertmanagers; the cluster's gossip then makes one notification of them. The alerts are
//! delivered once one Alertmanager took them (a peer that was down hears of firing alerts
//! again at the next resend); they are retried while none did.

use std::time::Duration;

use serde_json::json;

use super::{
    payload::{Notification, ZERO_TIME},
    post, redact, Outcome,
};

pub fn send(urls: &[&str], n: &Notification, timeout: Duration) -> Outcome {
    let alerts: Vec<_> = n
        .alerts
        .iter()
        .map(|a| {
            let mut v = json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "generatorURL": a.generator_url,
            });
            if a.ends_at != ZERO_TIME {
                v["endsAt"] = json!(a.ends_at);
            }
            v
        })
        .collect();
    let body = json!(alerts);
    let one = |url: &str| {
        post(
            &format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            &body,
            timeout,
        )
    };
    let outcomes: Vec<Outcome> = match urls {
        [url] => vec![one(url)],
        // Side by side: one Alertmanager that does not answer must not hold up the others.
        _ => std::thread::scope(|s| {
            let handles: Vec<_> = urls.iter().map(|u| s.spawn(|| one(u))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Outcome::Failed("the sender panicked".to_string()))
                })
                .collect()
        }),
    };
    combine(urls, outcomes)
}

/// Delivered if one took them; else retried if one may take them later; else refused.
fn combine(urls: &[&str], outcomes: Vec<Outcome>) -> Outcome {
    if outcomes.len() == 1 {
        return outcomes.into_iter().next().unwrap_or(Outcome::Delivered);
    }
    if outcomes.contains(&Outcome::Delivered) {
        for (url, o) in urls.iter().zip(&outcomes) {
            if let Outcome::Refused(w) | Outcome::Failed(w) | Outcome::Throttled(w, _) = o {
                tracing::warn!(alertmanager = %redact(url), error = %w, "an Alertmanager of the cluster did not take the alerts; another did");
            }
        }
        return Outcome::Delivered;
    }
    let mut why = Vec::new();
    let mut retry = false;
    let mut wait: Option<Duration> = None;
    for o in outcomes {
        match o {
            Outcome::Delivered => {}
            Outcome::Refused(w) => why.push(w),
            Outcome::Failed(w) => {
                retry = true;
                why.push(w);
            }
            Outcome::Throttled(w, d) => {
                retry = true;
                wait = Some(wait.map_or(d, |x| x.min(d)));
                why.push(w);
            }
        }
    }
    let why = why.join("; ");
    match (retry, wait) {
        (true, Some(d)) => Outcome::Throttled(why, d),
        (true, None) => Outcome::Failed(why),
        (false, _) => Outcome::Refused(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_alertmanager_that_took_them_is_enough() {
        let urls = ["http://a", "http://b"];
        let failed = || Outcome::Failed("down".into());
        let refused = || Outcome::Refused("400".into());
        assert_eq!(
            combine(&urls, vec![failed(), Outcome::Delivered]),
            Outcome::Delivered
        );
        assert_eq!(
            combine(&urls, vec![failed(), refused()]),
            Outcome::Failed("down; 400".into())
        );
        assert_eq!(
            combine(&urls, vec![refused(), refused()]),
            Outcome::Refused("400; 400".into())
        );
        assert_eq!(
            combine(
                &urls,
                vec![
                    Outcome::Throttled("slow".into(), Duration::from_secs(3)),
                    failed()
                ]
            ),
            Outcome::Throttled("slow; down".into(), Duration::from_secs(3))
        );
        assert_eq!(combine(&urls[..1], vec![refused()]), refused());
    }

    #[test]
    fn every_alertmanager_is_tried() {
        // Nothing listens on port 1 or 2: both fail, both named.
        let n = Notification::new("am", "k".into(), Default::default(), "http://x", vec![]);
        match send(
            &["http://127.0.0.1:1", "http://127.0.0.1:2/"],
            &n,
            Duration::from_secs(5),
        ) {
            Outcome::Failed(why) => {
                assert!(
                    why.contains("127.0.0.1:1") && why.contains("127.0.0.1:2"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
