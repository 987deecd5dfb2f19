//! Which group a process belongs to: by default its name, or by executable or user, with
//! optional rules (`NAME=FIELD:REGEX`, first match wins) in front.

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc};

use regex::Regex;

use super::identity::Identity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// The process name (`comm`, 15 characters at most).
    Comm,
    /// The executable's file name (kernel threads fall back to their name).
    Exe,
    /// The user name of the process's owner (its uid where the name is unknown).
    User,
    /// The service the process runs in, from its cgroup: a systemd unit (`nginx.service`),
    /// a container (`docker:0123456789ab`), a pod (`pod:UID`), or the cgroup path;
    /// `unknown` where neither the kernel's cgroup id nor /proc told.
    Unit,
}

/// The group of a process whose service is not known, under `--process.group-by unit`.
pub const UNKNOWN_UNIT: &str = "unknown";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Comm,
    Exe,
    Cmdline,
    User,
    Unit,
}

/// One `--process.group` rule.
#[derive(Clone, Debug)]
pub struct GroupRule {
    pub name: String,
    pub field: Field,
    pub pattern: Regex,
}

impl FromStr for GroupRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("rule {s:?}: expected NAME=FIELD:REGEX"))?;
        let (field, pattern) = rest
            .split_once(':')
            .ok_or_else(|| format!("rule {s:?}: expected NAME=FIELD:REGEX"))?;
        if name.is_empty() {
            return Err(format!("rule {s:?}: the group name is empty"));
        }
        let field = match field {
            "comm" => Field::Comm,
            "exe" => Field::Exe,
            "cmdline" => Field::Cmdline,
            "user" => Field::User,
            "unit" => Field::Unit,
            other => {
                return Err(format!(
                "rule {s:?}: unknown field {other:?} (expected comm, exe, cmdline, user or unit)"
            ))
            }
        };
        let pattern = Regex::new(pattern).map_err(|e| {
            // The regex crate's message spans lines (it draws a caret); keep one line.
            let e = e.to_string();
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("rule {s:?}: bad regular expression: {e}")
        })?;
        Ok(Self {
            name: name.to_string(),
            field,
            pattern,
        })
    }
}

impl fmt::Display for GroupRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}:{}", self.name, self.field, self.pattern)
    }
}

pub struct Grouper {
    by: GroupBy,
    rules: Vec<GroupRule>,
    users: HashMap<u32, String>,
    interned: HashMap<String, Arc<str>>,
}

impl Grouper {
    /// `passwd` is the content of /etc/passwd (for user names), empty if unreadable.
    pub fn new(by: GroupBy, rules: Vec<GroupRule>, passwd: &str) -> Self {
        Self {
            by,
            rules,
            users: users_from_passwd(passwd),
            interned: HashMap::new(),
        }
    }

    fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.interned.get(name) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(name);
        self.interned.insert(name.to_string(), a.clone());
        a
    }

    /// Forgets interned names no one else holds (groups that were compacted away).
    pub fn trim(&mut self) {
        self.interned.retain(|_, a| Arc::strong_count(a) > 1);
    }

    pub fn group(&mut self, id: &Identity) -> Arc<str> {
        for r in &self.rules {
            let hit = match r.field {
                Field::Comm => r.pattern.is_match(&id.comm),
                Field::Exe => r.pattern.is_match(&id.exe),
                Field::Cmdline => r.pattern.is_match(&id.cmdline),
                Field::User => r.pattern.is_match(&self.user(id.uid)),
                Field::Unit => r.pattern.is_match(&id.place.unit),
            };
            if hit {
                let name = r.name.clone();
                return self.intern(&name);
            }
        }
        if is_kernel_thread(id) {
            // "kworker/1:2-events", "ksoftirqd/0", "irq/24-ACPI:Ged": per-CPU and per-work
            // suffixes would make a group per thread, and a new one whenever they change.
            let base = id.comm.split('/').next().unwrap_or(&id.comm).to_string();
            return self.intern(&base);
        }
        let name = match self.by {
            GroupBy::Comm => id.comm.to_string(),
            GroupBy::Exe if !id.exe.is_empty() => {
                let exe = id.exe.trim_end_matches(" (deleted)");
                exe.rsplit('/').next().unwrap_or(exe).to_string()
            }
            GroupBy::Exe => id.comm.to_string(),
            GroupBy::User => self.user(id.uid),
            GroupBy::Unit => return self.unit(&id.place.unit),
        };
        self.intern(&name)
    }

    fn unit(&mut self, unit: &str) -> Arc<str> {
        self.intern(if unit.is_empty() { UNKNOWN_UNIT } else { unit })
    }

    /// The group of a process known only by its kernel name and cgroup (it was gone before
    /// procfs could be read): rules on other fields cannot apply.
    pub fn group_of_gone(&mut self, comm: &str, unit: &str) -> Arc<str> {
        for r in &self.rules {
            let hit = match r.field {
                Field::Comm => r.pattern.is_match(comm),
                Field::Unit => r.pattern.is_match(unit),
                _ => false,
            };
            if hit {
                let name = r.name.clone();
                return self.intern(&name);
            }
        }
        match self.by {
            GroupBy::Unit => self.unit(unit),
            _ => self.intern(comm),
        }
    }
}

/// User names by uid, from the content of /etc/passwd (lines that do not parse are skipped).
pub fn users_from_passwd(passwd: &str) -> HashMap<u32, String> {
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// Kernel threads are kthreadd (pid 2) and its children; they have no executable.
fn is_kernel_thread(id: &Identity) -> bool {
    id.exe.is_empty() && (id.pid == 2 || id.ppid == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(comm: &str, exe: &str, cmdline: &str, uid: u32) -> Identity {
        Identity {
            comm: comm.into(),
            exe: exe.into(),
            cmdline: cmdline.into(),
            uid,
            ..Default::default()
        }
    }

    #[test]
    fn default_is_comm_and_rules_come_first() {
        let rules = vec![
            "web=exe:^/usr/sbin/nginx$".parse().unwrap(),
            "py-app=cmdline:app\\.py".parse().unwrap(),
        ];
        let mut g = Grouper::new(GroupBy::Comm, rules, "root:x:0:0::/root:/bin/sh\n");
        assert_eq!(&*g.group(&id("nginx", "/usr/sbin/nginx", "", 0)), "web");
        assert_eq!(
            &*g.group(&id("python3", "/usr/bin/python3", "python3 app.py", 0)),
            "py-app"
        );
        assert_eq!(&*g.group(&id("bash", "/bin/bash", "bash", 0)), "bash");
        assert_eq!(&*g.group_of_gone("nginx", "nginx.service"), "nginx");
    }

    #[test]
    fn kernel_threads_group_by_their_base_name() {
        let mut g = Grouper::new(GroupBy::Comm, vec![], "");
        let k = |comm: &str| Identity {
            pid: 100,
            ppid: 2,
            comm: comm.into(),
            ..Default::default()
        };
        assert_eq!(&*g.group(&k("kworker/1:2-events")), "kworker");
        assert_eq!(&*g.group(&k("ksoftirqd/0")), "ksoftirqd");
        assert_eq!(&*g.group(&k("kswapd0")), "kswapd0");
    }

    #[test]
    fn by_exe_and_user() {
        let mut g = Grouper::new(GroupBy::Exe, vec![], "");
        assert_eq!(&*g.group(&id("x", "/opt/a/b (deleted)", "", 0)), "b");
        assert_eq!(&*g.group(&id("kworker/0:1", "", "", 0)), "kworker/0:1");
        let mut g = Grouper::new(
            GroupBy::User,
            vec![],
            "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/:/bin/sh",
        );
        assert_eq!(&*g.group(&id("x", "", "", 1000)), "bob");
        assert_eq!(&*g.group(&id("x", "", "", 4321)), "4321");
    }

    #[test]
    fn by_unit_and_unit_rules() {
        let placed = |comm: &str, unit: &str| Identity {
            comm: comm.into(),
            exe: "/bin/x".into(),
            place: crate::process::cgroup::Place {
                path: "/p".into(),
                unit: unit.into(),
            },
            ..Default::default()
        };
        let rules = vec!["web=unit:^nginx\\.".parse().unwrap()];
        let mut g = Grouper::new(GroupBy::Unit, rules, "");
        assert_eq!(&*g.group(&placed("nginx", "nginx.service")), "web");
        assert_eq!(&*g.group(&placed("sh", "cron.service")), "cron.service");
        assert_eq!(&*g.group(&placed("sh", "")), UNKNOWN_UNIT);
        assert_eq!(&*g.group_of_gone("sh", "cron.service"), "cron.service");
        assert_eq!(&*g.group_of_gone("sh", "nginx.service"), "web");
        assert_eq!(&*g.group_of_gone("sh", ""), UNKNOWN_UNIT);
        // Other groupings name a gone process by its name.
        let mut g = Grouper::new(GroupBy::Exe, vec![], "");
        assert_eq!(&*g.group_of_gone("sh", "cron.service"), "sh");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let e = "nofield".parse::<GroupRule>().unwrap_err();
        assert!(e.contains("NAME=FIELD:REGEX"), "{e}");
        let e = "a=size:x".parse::<GroupRule>().unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let e = "a=comm:(".parse::<GroupRule>().unwrap_err();
        assert!(e.contains("bad regular expression"), "{e}");
        let e = "=comm:x".parse::<GroupRule>().unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }
}
