//! Arithmetic on `NetCounters` (a kernel type, so free functions rather than methods).

use monitor_common::net::NetCounters;

/// Applies `f` to each pair of fields.
fn zip(a: &NetCounters, b: &NetCounters, f: impl Fn(u64, u64) -> u64) -> NetCounters {
    let pair = |x: &[u64], y: &[u64], out: &mut [u64]| {
        for ((o, x), y) in out.iter_mut().zip(x).zip(y) {
            *o = f(*x, *y);
        }
    };
    let mut o = NetCounters::default();
    pair(&a.tx_bytes, &b.tx_bytes, &mut o.tx_bytes);
    pair(&a.rx_bytes, &b.rx_bytes, &mut o.rx_bytes);
    pair(&a.tx_packets, &b.tx_packets, &mut o.tx_packets);
    pair(&a.rx_packets, &b.rx_packets, &mut o.rx_packets);
    pair(&a.tcp_connect, &b.tcp_connect, &mut o.tcp_connect);
    o.tcp_retransmits = f(a.tcp_retransmits, b.tcp_retransmits);
    o.tcp_resets_sent = f(a.tcp_resets_sent, b.tcp_resets_sent);
    o.tcp_resets_received = f(a.tcp_resets_received, b.tcp_resets_received);
    o.tcp_active_opens = f(a.tcp_active_opens, b.tcp_active_opens);
    o.tcp_passive_opens = f(a.tcp_passive_opens, b.tcp_passive_opens);
    o.tcp_closes = f(a.tcp_closes, b.tcp_closes);
    o.tcp_connect_ns = f(a.tcp_connect_ns, b.tcp_connect_ns);
    o
}

pub fn add(a: &NetCounters, b: &NetCounters) -> NetCounters {
    zip(a, b, |x, y| x + y)
}

/// `a - b`, clamped at zero field by field (as `Counters::since`).
pub fn since(a: &NetCounters, b: &NetCounters) -> NetCounters {
    zip(a, b, u64::saturating_sub)
}

pub fn max(a: &NetCounters, b: &NetCounters) -> NetCounters {
    zip(a, b, u64::max)
}

/// Payload bytes over both protocols, (tx, rx).
pub fn bytes(c: &NetCounters) -> (u64, u64) {
    (c.tx_bytes.iter().sum(), c.rx_bytes.iter().sum())
}

/// Packets over both protocols, (tx, rx).
pub fn packets(c: &NetCounters) -> (u64, u64) {
    (c.tx_packets.iter().sum(), c.rx_packets.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_by_field() {
        let mut a = NetCounters {
            tx_bytes: [10, 5],
            tcp_closes: 1,
            ..Default::default()
        };
        a.tcp_connect[3] = 2;
        let mut b = NetCounters {
            tx_bytes: [4, 9],
            ..Default::default()
        };
        b.tcp_connect[3] = 1;
        assert_eq!(add(&a, &b).tx_bytes, [14, 14]);
        assert_eq!(add(&a, &b).tcp_connect[3], 3);
        assert_eq!(since(&a, &b).tx_bytes, [6, 0]);
        assert_eq!(since(&a, &b).tcp_closes, 1);
        assert_eq!(max(&a, &b).tx_bytes, [10, 9]);
        assert_eq!(bytes(&a), (15, 0));
    }
}
