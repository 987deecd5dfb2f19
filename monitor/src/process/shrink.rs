//! Tables that follow the host's processes grow with a burst (a build forking 20,000
//! processes) and a hash table never gives its room back by itself: the daemon's resident
//! size would stay at the burst's peak for good. Each refresh hands back room a table no
//! longer needs (a buffer kept between refreshes too).

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

/// Below this many slots a table is left as it is: shrinking it saves nothing worth a
/// rehash.
const MIN_CAPACITY: usize = 1024;

/// Whether a table of `len` entries in `capacity` slots holds much more room than it needs.
fn oversized(len: usize, capacity: usize) -> bool {
    capacity > MIN_CAPACITY && capacity > 4 * len
}

pub fn map<K: Eq + Hash, V>(m: &mut HashMap<K, V>) {
    if oversized(m.len(), m.capacity()) {
        m.shrink_to(2 * m.len());
    }
}

pub fn set<K: Eq + Hash>(s: &mut HashSet<K>) {
    if oversized(s.len(), s.capacity()) {
        s.shrink_to(2 * s.len());
    }
}

/// A buffer kept between refreshes that last held `used` items.
pub fn vec<T>(v: &mut Vec<T>, used: usize) {
    if oversized(used, v.capacity()) {
        v.shrink_to(2 * used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_emptied_after_a_burst_gives_its_room_back() {
        let mut m: HashMap<u32, u64> = (0..20_000).map(|i| (i, 0)).collect();
        m.retain(|k, _| *k < 100);
        let before = m.capacity();
        map(&mut m);
        assert!(m.capacity() < before / 10, "{} of {before}", m.capacity());
        assert_eq!(m.len(), 100);
        // A table in use at its size is left alone.
        let cap = m.capacity();
        map(&mut m);
        assert_eq!(m.capacity(), cap);
        let mut s: HashSet<u32> = (0..500).collect();
        let cap = s.capacity();
        s.clear();
        set(&mut s);
        assert_eq!(s.capacity(), cap, "small tables are not rehashed");
    }
}
