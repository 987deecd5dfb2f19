//! A cgroup path's service: what `--process.group-by unit` groups by and the process API's
//! `unit` field shows.
//!
//! - a Kubernetes pod: `pod:<uid>`, with its container as `pod:<uid>/<runtime>:<id12>`
//!   (cgroupfs `kubepods/burstable/pod<uid>/<id>` and systemd
//!   `kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope` layouts);
//! - a container: `<runtime>:<id12>`, the runtime `docker`, `containerd`, `crio` or `podman`
//!   when the path says it, `container` when it does not (a bare 64-digit id);
//! - a systemd unit: the deepest `.service` or `.scope` of the path (`nginx.service`,
//!   `session-3.scope`, a user's own `app.service`), else its deepest `.slice`, with
//!   systemd's `\xNN` escapes undone (`\x2d` is `-`);
//! - the root: `/`; anything else: the path itself.

/// Container runtimes by the prefix of their systemd scopes (`docker-<id>.scope`) or
/// cgroupfs directories (`libpod-<id>`).
const RUNTIMES: &[(&str, &str)] = &[
    ("docker-", "docker"),
    ("cri-containerd-", "containerd"),
    ("crio-", "crio"),
    ("libpod-", "podman"),
];

/// Runtimes by the parent directory of a bare container id (cgroupfs drivers).
const PARENTS: &[(&str, &str)] = &[("docker", "docker"), ("libpod_parent", "podman")];

const ID_LEN: usize = 64;
const SHORT_ID: usize = 12;

pub fn classify(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.is_empty() {
        return "/".to_string();
    }
    let container = (0..segs.len()).rev().find_map(|i| {
        let parent = i.checked_sub(1).map(|p| segs[p]);
        container(segs[i], parent)
    });
    if segs.iter().any(|s| s.starts_with("kubepods")) {
        if let Some(pod) = segs.iter().find_map(|s| pod_uid(s)) {
            return match container {
                Some((runtime, id)) => format!("pod:{pod}/{runtime}:{id}"),
                None => format!("pod:{pod}"),
            };
        }
    }
    if let Some((runtime, id)) = container {
        return format!("{runtime}:{id}");
    }
    let deepest = |suffixes: &[&str]| {
        segs.iter()
            .rev()
            .find(|s| suffixes.iter().any(|x| s.ends_with(x)))
            .map(|s| unescape(s))
    };
    deepest(&[".service", ".scope"])
        .or_else(|| deepest(&[".slice"]))
        .unwrap_or_else(|| path.to_string())
}

/// A container id in path segment `seg` (under `parent`): its runtime and short id.
fn container(seg: &str, parent: Option<&str>) -> Option<(&'static str, String)> {
    let short = |id: &str| is_hex_id(id).then(|| id[..SHORT_ID].to_string());
    for (prefix, runtime) in RUNTIMES {
        if let Some(rest) = seg.strip_prefix(prefix) {
            let id = rest.strip_suffix(".scope").unwrap_or(rest);
            if let Some(s) = short(id) {
                return Some((runtime, s));
            }
        }
    }
    let s = short(seg)?;
    let runtime = PARENTS
        .iter()
        .find(|(p, _)| parent == Some(*p))
        .map_or("container", |(_, r)| *r);
    Some((runtime, s))
}

fn is_hex_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The pod uid in a segment: `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid>.slice`
/// (systemd, the uid's dashes written as underscores).
fn pod_uid(seg: &str) -> Option<String> {
    let raw = match seg.strip_suffix(".slice") {
        Some(s) => s.rsplit_once("-pod")?.1,
        None => seg.strip_prefix("pod")?,
    };
    let uid = raw.replace('_', "-");
    let is_uid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    is_uid.then_some(uid)
}

/// Undoes systemd's `\xNN` escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], b.get(i + 1), hex) {
            (b'\\', Some(b'x'), Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "8b3e0c52-9c3e-4c6a-8f1e-6d2b5a7c9e01";

    #[test]
    fn systemd_units_scopes_and_slices() {
        assert_eq!(classify("/system.slice/nginx.service"), "nginx.service");
        assert_eq!(
            classify("/system.slice/monitor\\x2dtest\\x2dx.service"),
            "monitor-test-x.service"
        );
        assert_eq!(
            classify("/system.slice/system-getty.slice/getty@tty1.service"),
            "getty@tty1.service"
        );
        // A unit's own sub-cgroups (delegation) are the unit.
        assert_eq!(classify("/system.slice/app.service/worker"), "app.service");
        assert_eq!(
            classify("/user.slice/user-1000.slice/session-3.scope"),
            "session-3.scope"
        );
        assert_eq!(
            classify("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"),
            "foo.service"
        );
        assert_eq!(classify("/user.slice/user-1000.slice"), "user-1000.slice");
        assert_eq!(classify("/init.scope"), "init.scope");
    }

    #[test]
    fn containers_by_runtime() {
        assert_eq!(
            classify(&format!("/system.slice/docker-{ID}.scope")),
            "docker:0123456789ab"
        );
        assert_eq!(classify(&format!("/docker/{ID}")), "docker:0123456789ab");
        assert_eq!(
            classify(&format!("/machine.slice/libpod-{ID}.scope/container")),
            "podman:0123456789ab"
        );
        assert_eq!(
            classify(&format!("/libpod_parent/libpod-{ID}")),
            "podman:0123456789ab"
        );
        assert_eq!(
            classify(&format!("/system.slice/crio-{ID}.scope")),
            "crio:0123456789ab"
        );
        assert_eq!(classify(&format!("/lxc/{ID}")), "container:0123456789ab");
    }

    #[test]
    fn kubernetes_pods_and_their_containers() {
        let underscored = UID.replace('-', "_");
        assert_eq!(
            classify(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/cri-containerd-{ID}.scope"
            )),
            format!("pod:{UID}/containerd:0123456789ab")
        );
        assert_eq!(
            classify(&format!("/kubepods.slice/kubepods-pod{underscored}.slice")),
            format!("pod:{UID}")
        );
        assert_eq!(
            classify(&format!("/kubepods/besteffort/pod{UID}/{ID}")),
            format!("pod:{UID}/container:0123456789ab")
        );
        // Not a pod outside kubepods, nor without a uid.
        assert_eq!(classify("/kubepods.slice"), "kubepods.slice");
        assert_eq!(classify("/x/podcast"), "/x/podcast");
    }

    #[test]
    fn root_and_other_paths() {
        assert_eq!(classify("/"), "/");
        assert_eq!(classify(""), "/");
        assert_eq!(classify("/process_api"), "/process_api");
        assert_eq!(classify("/a\\x2"), "/a\\x2");
        assert_eq!(unescape("a\\x2db\\xzz\\"), "a-b\\xzz\\");
    }
}
