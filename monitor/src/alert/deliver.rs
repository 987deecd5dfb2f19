//! One sender thread per receiver: takes that receiver's oldest queued notification, sends
//! it, and deletes it once delivered; on failure waits (exponential backoff, capped) and
//! tries again, so a notification is delivered at least once and a receiver's
//! notifications arrive in order. A rate limit makes notifications wait, never drops them;
//! so does a service's own (a 429 that says how long to wait is retried after that wait).

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    config::{Delivery, Receiver},
    metrics::Metrics,
    notify::{self, Outcome},
    queue::Queue,
};

pub fn spawn(
    receiver: Receiver,
    queue: Arc<Queue>,
    metrics: Metrics,
    delivery: &Delivery,
    host: String,
) -> anyhow::Result<()> {
    let initial = delivery.initial_backoff.0;
    let max = delivery.max_backoff.0;
    let name = receiver.name.clone();
    std::thread::Builder::new()
        .name(format!("alert-{name}"))
        .spawn(move || run(&receiver, &queue, &metrics, initial, max, &host))
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("starting the sender for receiver {name}: {e}"))
}

fn run(r: &Receiver, q: &Queue, m: &Metrics, initial: Duration, max: Duration, host: &str) {
    let mut sent_at: VecDeque<Instant> = VecDeque::new();
    loop {
        let Some((seq, entry)) = q.next_for(&r.name, Duration::from_secs(5)) else {
            continue;
        };
        if let Some(limit) = r.rate_limit {
            while sent_at.len() >= limit.count as usize {
                let oldest = sent_at[0];
                let free_at = oldest + limit.per.0;
                let now = Instant::now();
                if free_at <= now {
                    sent_at.pop_front();
                } else {
                    std::thread::sleep(free_at - now);
                }
            }
        }
        let mut backoff = initial;
        loop {
            if !q.contains(seq) {
                break; // dropped by the bounded queue meanwhile
            }
            let outcome = notify::send(r, &entry.notification, host);
            match outcome {
                Outcome::Delivered => {
                    q.remove(seq);
                    m.delivered(&r.name);
                    tracing::info!(receiver = %r.name, kind = r.kind.kind(), status = %entry.notification.status, alerts = entry.notification.alerts.len(), "notification delivered");
                    break;
                }
                Outcome::Refused(why) => {
                    q.remove(seq);
                    m.failed(&r.name);
                    tracing::error!(receiver = %r.name, error = %why, "notification refused; not retried");
                    break;
                }
                Outcome::Failed(why) => {
                    m.failed(&r.name);
                    tracing::warn!(receiver = %r.name, error = %why, retry_in = ?backoff, "notification failed; will retry");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(max);
                }
                Outcome::Throttled(why, asked) => {
                    // The service said how long: sooner would only be refused again.
                    let wait = backoff.max(asked);
                    m.failed(&r.name);
                    tracing::warn!(receiver = %r.name, error = %why, retry_in = ?wait, "notification rate limited; will retry");
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(max);
                }
            }
        }
        if r.rate_limit.is_some() {
            sent_at.push_back(Instant::now());
        }
    }
}
