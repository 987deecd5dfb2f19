//! Which audit events are written: include and exclude lists by event kind, uid and process
//! name. Within a dimension an event must match an include (when any is given) and no
//! exclude; all three dimensions must pass.

use regex::Regex;

use super::record::Event;

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub include_kinds: Vec<String>,
    pub exclude_kinds: Vec<String>,
    pub include_uids: Vec<u32>,
    pub exclude_uids: Vec<u32>,
    pub include_comm: Option<Regex>,
    pub exclude_comm: Option<Regex>,
}

impl Filter {
    pub fn passes(&self, ev: &Event) -> bool {
        let kind_ok = (self.include_kinds.is_empty()
            || self.include_kinds.iter().any(|k| k == ev.kind))
            && !self.exclude_kinds.iter().any(|k| k == ev.kind);
        let uid_ok = (self.include_uids.is_empty() || self.include_uids.contains(&ev.uid))
            && !self.exclude_uids.contains(&ev.uid);
        let comm_ok = self
            .include_comm
            .as_ref()
            .is_none_or(|r| r.is_match(&ev.comm))
            && !self
                .exclude_comm
                .as_ref()
                .is_some_and(|r| r.is_match(&ev.comm));
        kind_ok && uid_ok && comm_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::Detail;

    fn ev(kind: &'static str, uid: u32, comm: &str) -> Event {
        Event {
            time: String::new(),
            kind,
            pid: 1,
            uid,
            gid: None,
            comm: comm.into(),
            cgroup_id: None,
            detail: Detail::Exit {
                ppid: None,
                exit_code: None,
                signal: None,
                core_dumped: false,
                lifetime_seconds: None,
                cpu_seconds: None,
            },
        }
    }

    #[test]
    fn every_dimension_must_pass() {
        let f = Filter {
            include_kinds: vec!["exec".into(), "exit".into()],
            exclude_uids: vec![0],
            exclude_comm: Some(Regex::new("^cron$").unwrap()),
            ..Default::default()
        };
        assert!(f.passes(&ev("exec", 1000, "bash")));
        assert!(!f.passes(&ev("tcp_connect", 1000, "bash")));
        assert!(!f.passes(&ev("exec", 0, "bash")));
        assert!(!f.passes(&ev("exit", 1000, "cron")));
        assert!(Filter::default().passes(&ev("oom_kill", 0, "")));
        let f = Filter {
            include_uids: vec![1000],
            include_comm: Some(Regex::new("^ba").unwrap()),
            exclude_kinds: vec!["exit".into()],
            ..Default::default()
        };
        assert!(f.passes(&ev("exec", 1000, "bash")));
        assert!(!f.passes(&ev("exec", 1001, "bash")));
        assert!(!f.passes(&ev("exec", 1000, "sh")));
        assert!(!f.passes(&ev("exit", 1000, "bash")));
    }
}
