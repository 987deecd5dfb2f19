//! Builds the daemon's state from options: the kernel programs, the process table and the
//! collectors. `monitor run` serves it over HTTP; `monitor top` drives it in-process when no
//! daemon runs, so both report figures from one implementation.

use std::path::PathBuf;

use crate::{
    audit::kernel::KernelSetup,
    bpf::attach::AttachOptions,
    collectors,
    core::{build_collectors, Core, Kernel, KernelOptions},
    process::{
        group::{GroupBy, GroupRule, Grouper},
        identity::IdentityReader,
        table::ProcessTable,
    },
    scrape::Scrape,
};

pub struct CoreOptions {
    pub procfs: PathBuf,
    pub group_by: GroupBy,
    pub group_rules: Vec<GroupRule>,
    pub max_groups: usize,
    /// Names of the enabled collectors.
    pub enabled: Vec<&'static str>,
    /// Their settings.
    pub collectors: collectors::Config,
    pub bpf_stats: bool,
    pub fail_attach: Vec<String>,
    /// Attach the audit programs (the daemon's `--audit.file`).
    pub audit: Option<KernelSetup>,
}

/// Loads and attaches the kernel programs the enabled collectors need and builds the state
/// around them: the refresher's (`Core`, with the collectors of the kernel and process
/// figures) and the scrapes' (the collectors of host files). Fails only where nothing could
/// work (missing privileges, no object).
pub fn core(o: &CoreOptions) -> anyhow::Result<(Core, Scrape)> {
    let needs_bpf = o
        .enabled
        .iter()
        .any(|n| collectors::spec(n).is_some_and(|s| s.needs_bpf));
    let kernel = Kernel::load(&KernelOptions {
        load: needs_bpf || o.audit.is_some(),
        sched: o.enabled.contains(&"sched"),
        block: o.enabled.contains(&"block"),
        net: o.enabled.contains(&"network"),
        sysfs: o.collectors.sysfs.clone(),
        bpf_stats: o.bpf_stats,
        attach: AttachOptions {
            fail: o.fail_attach.clone(),
        },
        audit: o.audit.clone(),
    })?;
    // Parsing the kernel's BTF and the object peaks at tens of MiB that glibc keeps after
    // they are freed; hand them back so the resident size is what the process really uses.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let table = ProcessTable::new(
        IdentityReader::new(&o.procfs),
        Grouper::new(o.group_by, o.group_rules.clone(), &passwd),
        o.max_groups,
    );
    let (mut at_scrape, mut refreshed) = (Vec::new(), Vec::new());
    for mut c in build_collectors(&o.enabled, &o.collectors) {
        if c.at_scrape().is_some() {
            at_scrape.push(c);
        } else {
            refreshed.push(c);
        }
    }
    let core = Core::new(
        o.procfs.clone(),
        o.collectors.sysfs.clone(),
        kernel,
        table,
        refreshed,
    );
    Ok((core, Scrape::new(o.procfs.clone(), at_scrape)))
}
