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
    /// The tgids the map held at the last read.
    present: HashSet<u32>,
}

impl<V: Pod + Default> PerTaskMap<V> {
    pub fn take(ebpf: &mut Ebpf, name: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            map: take_map(ebpf, name)?,
            name,
            count: Default::default(),
            present: HashSet::new(),
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
        self.present.clear();
        self.present.extend(all.iter().map(|(t, _)| *t));
        crate::process::shrink::set(&mut self.present);
        let stale = family::merge(entries, all, live, knows, set);
        batch::delete(&mut self.map, &stale);
        Ok(())
    }

    /// Forgets the groups whose `TASK_STATS` entries were folded. Most never used this
    /// family: only those in the map at the last read are deleted (one made since is
    /// stale at the next read, which deletes it).
    pub fn remove(&mut self, tgids: &[u32]) {
        let here: Vec<u32> = tgids
            .iter()
            .copied()
            .filter(|t| self.present.remove(t))
            .collect();
        batch::delete(&mut self.map, &here);
    }

    /// Entries now, counted at most every `batch::COUNT_EVERY`.
    pub fn entries(&self) -> u64 {
        self.count.get(&self.map)
    }
}
