//! A family's own per-thread-group map (`NET_STATS`, `BLOCK_TASKS`: keyed by tgid like
//! `TASK_STATS`), read into the scheduler's entries at each refresh and cleaned with them.

use std::collections::HashSet;

use aya::{
    maps::{HashMap, MapData},
    Ebpf, Pod,
};

use super::{batch, take_map};
use crate::process::{counters::Counters, family, table::KernelEntry};

pub struct PerTaskMap<V> {
    map: HashMap<MapData, u32, V>,
    name: &'static str,
    count: batch::CachedCount,
}

impl<V: Pod + Default> PerTaskMap<V> {
    pub fn take(ebpf: &mut Ebpf, name: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            map: take_map(ebpf, name)?,
            name,
            count: Default::default(),
        })
    }

    /// Sets each group's counters of this family on its entry (`set`; see
    /// `process::family::merge`), and removes the stale entries (of processes gone and
    /// folded, or never known).
    pub fn merge(
        &mut self,
        entries: &mut Vec<KernelEntry>,
        live: &HashSet<u32>,
        knows: impl Fn(u32) -> bool,
        set: impl Fn(&mut Counters, V),
    ) -> anyhow::Result<()> {
        let all = batch::entries(&self.map, self.name)?;
        for t in family::merge(entries, all, live, knows, set) {
            let _ = self.map.remove(&t);
        }
        Ok(())
    }

    /// Forgets the groups whose `TASK_STATS` entries were folded.
    pub fn remove(&mut self, tgids: &[u32]) {
        for t in tgids {
            // Most groups never used this family: not found is the usual answer.
            let _ = self.map.remove(t);
        }
    }

    /// Entries now, counted at most every `batch::COUNT_EVERY`.
    pub fn entries(&self) -> u64 {
        self.count.get(&self.map)
    }
}
