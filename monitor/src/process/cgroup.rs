//! Which cgroup a process is in, and so which service (`unit`): from the cgroup id the kernel
//! programs took (`TaskStats::cgroup_id`, `ProcEvent::cgroup_id`), resolved by walking the
//! cgroup2 mount, or from `/proc/<pid>/cgroup` where the id cannot serve.
//!
//! The id is the inode number of the cgroup's directory in the cgroup2 hierarchy, which is
//! mounted at `/sys/fs/cgroup` on a pure v2 host and at `/sys/fs/cgroup/unified` on a hybrid
//! one (systemd keeps its unit tree there too). On a pure v1 host every task reports the v2
//! root: the id says nothing and the v1 `name=systemd` path is read instead.
//!
//! Both roots are parameters (`procfs`, `sysfs`), so this runs on fixture trees.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use procfs::FromRead as _;

use super::unit::classify;

/// The shortest gap between two walks: a burst of ids of cgroups already removed (short
/// containers) must not walk the tree once each.
const WALK_GAP: Duration = Duration::from_millis(200);
/// Ids a walk did not find are remembered (not walked for again) up to this many.
const GONE_MAX: usize = 4096;
/// Paths kept by id; past this the cache starts afresh at the next walk.
const PATHS_MAX: usize = 65_536;

/// A cgroup as the process API and the grouper show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// Its path in the cgroup2 hierarchy (the v1 `name=systemd` one on a pure v1 host),
    /// starting with `/`; empty when not known.
    pub path: Arc<str>,
    /// Its service: see `unit::classify`.
    pub unit: Arc<str>,
}

impl Place {
    fn of(path: &str) -> Self {
        Self {
            path: path.into(),
            unit: classify(path).into(),
        }
    }
}

/// The cgroup2 mount: its directory (under the sysfs root given) and the hierarchy path of
/// its root (not `/` inside a cgroup namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dir: PathBuf,
    pub root: String,
}

impl Mount {
    /// The cgroup2 mount in `<procfs>/self/mountinfo`, its mount point taken under `sysfs`
    /// (`/sys/fs/cgroup/unified` is `<sysfs>/fs/cgroup/unified`). The one under
    /// `/sys/fs/cgroup` wins where there are several.
    pub fn find(procfs: &Path, sysfs: &Path) -> Option<Self> {
        let path = procfs.join("self/mountinfo");
        let mounts = match procfs::process::MountInfos::from_file(&path) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the mounts; services come from /proc/<pid>/cgroup");
                return None;
            }
        };
        let mut v2: Vec<_> = mounts
            .0
            .into_iter()
            .filter(|m| m.fs_type == "cgroup2")
            .collect();
        v2.sort_by_key(|m| !m.mount_point.starts_with("/sys/fs/cgroup"));
        let m = v2.into_iter().next()?;
        let dir = match m.mount_point.strip_prefix("/sys") {
            Ok(rest) => sysfs.join(rest),
            Err(_) => m.mount_point.clone(),
        };
        Some(Self { dir, root: m.root })
    }
}

/// Resolves cgroup ids to places, with a cache filled by walking the mount.
pub struct Cgroups {
    procfs: PathBuf,
    mount: Option<Mount>,
    paths: HashMap<u64, Place>,
    /// Ids a walk made after they were asked for did not find: removed cgroups.
    gone: HashSet<u64>,
    walked: Option<Instant>,
    /// Walks made (exported for the tests of the bound).
    pub walks: u64,
    walk_gap: Duration,
}

impl Cgroups {
    /// Detects the cgroup2 mount from `<procfs>/self/mountinfo`.
    pub fn new(procfs: &Path, sysfs: &Path) -> Self {
        let mount = Mount::find(procfs, sysfs);
        match &mount {
            Some(m) => {
                tracing::debug!(mount = %m.dir.display(), "cgroup2 found; services from cgroup ids")
            }
            None => tracing::info!("no cgroup2 mount; services come from /proc/<pid>/cgroup"),
        }
        Self::with_mount(procfs, mount)
    }

    pub fn with_mount(procfs: &Path, mount: Option<Mount>) -> Self {
        Self {
            procfs: procfs.to_path_buf(),
            mount,
            paths: HashMap::new(),
            gone: HashSet::new(),
            walked: None,
            walks: 0,
            walk_gap: WALK_GAP,
        }
    }

    /// No cgroups at all: every process's place is unknown (tests of other parts).
    #[cfg(test)]
    pub fn none() -> Self {
        Self::with_mount(Path::new("/nonexistent"), None)
    }

    #[cfg(test)]
    fn without_walk_gap(mut self) -> Self {
        self.walk_gap = Duration::ZERO;
        self
    }

    /// Where process `pid` is: from the kernel's `id` (0: not known) while there is a
    /// cgroup2 mount, else (or when the id cannot be found) from `/proc/<pid>/cgroup`.
    /// Unknown (empty) for a process gone from procfs whose cgroup is gone too.
    pub fn place(&mut self, pid: u32, id: u64) -> Place {
        if id != 0 && self.mount.is_some() {
            if let Some(p) = self.by_id(id) {
                return p;
            }
        }
        self.by_pid(pid).unwrap_or_default()
    }

    /// The cached place of `id`, walking the mount again on a miss (at most once per
    /// `walk_gap`, and never again for an id an earlier walk did not find).
    fn by_id(&mut self, id: u64) -> Option<Place> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        if self.gone.contains(&id) {
            return None;
        }
        let now = Instant::now();
        if self
            .walked
            .is_some_and(|t| now.duration_since(t) < self.walk_gap)
        {
            return None;
        }
        self.walk(now);
        let found = self.paths.get(&id).cloned();
        if found.is_none() {
            if self.gone.len() >= GONE_MAX {
                self.gone.clear();
            }
            self.gone.insert(id);
        }
        found
    }

    /// Reads every cgroup's id (its directory's inode number) and path into the cache.
    fn walk(&mut self, now: Instant) {
        let Some(mount) = &self.mount else { return };
        self.walked = Some(now);
        self.walks += 1;
        if self.paths.len() >= PATHS_MAX {
            self.paths.clear();
        }
        let root = mount.root.trim_end_matches('/').to_string();
        let mut stack = vec![(mount.dir.clone(), root)];
        while let Some((dir, path)) = stack.pop() {
            // Gone while walked: a cgroup that ended.
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let shown = if path.is_empty() { "/" } else { &path };
            self.paths
                .entry(meta.ino())
                .or_insert_with(|| Place::of(shown));
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot list a cgroup");
                    continue;
                }
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    stack.push((e.path(), format!("{path}/{name}")));
                }
            }
        }
    }

    /// From `<procfs>/<pid>/cgroup`: the v2 line where there is a cgroup2 mount (or no v1
    /// line), else the v1 `name=systemd` one, else the first.
    fn by_pid(&self, pid: u32) -> Option<Place> {
        let path = self.procfs.join(pid.to_string()).join("cgroup");
        let groups = procfs::ProcessCGroups::from_file(path).ok()?.0;
        let v2 = groups.iter().find(|g| g.hierarchy == 0);
        let systemd = groups
            .iter()
            .find(|g| g.controllers.iter().any(|c| c == "name=systemd"));
        let line = match (self.mount.is_some(), v2, systemd) {
            (true, Some(v2), _) => v2,
            (_, _, Some(s)) => s,
            (_, Some(v2), None) => v2,
            (_, None, None) => groups.first()?,
        };
        Some(Place::of(&line.pathname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A procfs root whose self/mountinfo has the given cgroup mounts.
    fn procfs(lines: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/mountinfo"), lines.join("\n") + "\n").unwrap();
        dir
    }

    const ROOT: &str = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw";
    const HYBRID: &[&str] = &[
        ROOT,
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
    ];
    const PURE_V2: &[&str] = &[
        ROOT,
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate",
    ];

    fn mkdirs(root: &Path, paths: &[&str]) {
        for p in paths {
            std::fs::create_dir_all(root.join(p.trim_start_matches('/'))).unwrap();
        }
    }

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn finds_the_unified_mount_of_a_hybrid_host() {
        let proc = procfs(HYBRID);
        let m = Mount::find(proc.path(), Path::new("/x/sys")).unwrap();
        assert_eq!(m.dir, Path::new("/x/sys/fs/cgroup/unified"));
        assert_eq!(m.root, "/");
        let proc = procfs(PURE_V2);
        let m = Mount::find(proc.path(), Path::new("/x/sys")).unwrap();
        assert_eq!(m.dir, Path::new("/x/sys/fs/cgroup"));
        let proc = procfs(&[ROOT, HYBRID[2], HYBRID[3]]);
        assert_eq!(Mount::find(proc.path(), Path::new("/sys")), None);
    }

    /// Ids are the directories' inode numbers, as the kernel's are: resolved by a walk,
    /// a new cgroup by another, a removed one not walked for twice.
    fn resolves_ids(mountinfo: &[&str], mount_dir: &str) {
        let proc = procfs(mountinfo);
        let sys = tempfile::tempdir().unwrap();
        let base = sys.path().join(mount_dir);
        mkdirs(
            &base,
            &[
                "system.slice/nginx.service",
                "user.slice/user-1000.slice/session-3.scope",
                "system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
            ],
        );
        let mut c = Cgroups::new(proc.path(), sys.path()).without_walk_gap();
        let nginx = c.place(1, ino(&base.join("system.slice/nginx.service")));
        assert_eq!(&*nginx.path, "/system.slice/nginx.service");
        assert_eq!(&*nginx.unit, "nginx.service");
        let session = c.place(
            1,
            ino(&base.join("user.slice/user-1000.slice/session-3.scope")),
        );
        assert_eq!(&*session.unit, "session-3.scope");
        assert_eq!(&*c.place(1, ino(&base)).path, "/");
        let docker = c.place(
            1,
            ino(&base.join("system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope")),
        );
        assert_eq!(&*docker.unit, "docker:0123456789ab");
        assert_eq!(c.walks, 1);

        mkdirs(&base, &["system.slice/monitor-test\\x2dx.service"]);
        let new = c.place(
            1,
            ino(&base.join("system.slice/monitor-test\\x2dx.service")),
        );
        assert_eq!(&*new.unit, "monitor-test-x.service");
        assert_eq!(c.walks, 2);

        // Not a cgroup of this tree (a removed one): one walk, then it is known gone, and the
        // process (not in this procfs) has no place.
        assert_eq!(c.place(1, 999_999_999), Place::default());
        assert_eq!(c.place(1, 999_999_999), Place::default());
        assert_eq!(c.walks, 3);
    }

    #[test]
    fn resolves_ids_on_a_hybrid_host() {
        resolves_ids(HYBRID, "fs/cgroup/unified");
    }

    #[test]
    fn resolves_ids_on_pure_v2() {
        resolves_ids(PURE_V2, "fs/cgroup");
    }

    #[test]
    fn walks_are_bounded() {
        let proc = procfs(PURE_V2);
        let sys = tempfile::tempdir().unwrap();
        mkdirs(&sys.path().join("fs/cgroup"), &["a.slice"]);
        let mut c = Cgroups::new(proc.path(), sys.path());
        c.walk_gap = Duration::from_secs(3600);
        for id in 1_000_000_000..1_000_000_100 {
            c.place(1, id);
        }
        assert_eq!(c.walks, 1);
    }

    fn write_cgroup(proc: &Path, pid: u32, text: &str) {
        std::fs::create_dir_all(proc.join(pid.to_string())).unwrap();
        std::fs::write(proc.join(format!("{pid}/cgroup")), text).unwrap();
    }

    #[test]
    fn falls_back_to_proc_pid_cgroup() {
        // Pure v1: the kernel's id is the v2 root for every task; name=systemd tells.
        let proc = procfs(&[ROOT, HYBRID[1], HYBRID[2], HYBRID[3]]);
        write_cgroup(
            proc.path(),
            7,
            "4:memory:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n",
        );
        let mut c = Cgroups::new(proc.path(), Path::new("/nonexistent"));
        assert_eq!(&*c.place(7, 1).unit, "cron.service");
        assert_eq!(c.walks, 0);

        // Hybrid, id not known (a process seen only in procfs): the v2 line.
        let proc = procfs(HYBRID);
        write_cgroup(
            proc.path(),
            8,
            "1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n",
        );
        let mut c = Cgroups::new(proc.path(), Path::new("/nonexistent"));
        assert_eq!(&*c.place(8, 0).path, "/system.slice/b.service");
        assert_eq!(c.place(9, 0), Place::default());
    }
}
