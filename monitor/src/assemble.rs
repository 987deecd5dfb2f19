//! Builds the daemon's state from options: the kernel programs, the process table and the
//! collectors. `monitor run` serves it over HTTP; `monitor top` drives it in-process when no
//! daemon runs, so both report figures from one implementation.

use std::path::PathBuf;

use crate::{
    audit::kernel::{self as audit_kernel, AuditMaps, KernelSetup},
    bpf::attach::AttachOptions,
    collectors,
    core::{Core, Kernel, LoadOptions},
    process::{
        cgroup::Cgroups,
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
    /// Read no kernel BTF (`--debug.no-btf`).
    pub no_btf: bool,
    /// Attach the audit programs (the daemon's `--audit.file`).
    pub audit: Option<KernelSetup>,
}

/// The daemon's state as assembled.
pub struct Assembled {
    pub core: Core,
    pub scrape: Scrape,
    /// The audit programs' maps, for the audit log's reader (with `CoreOptions::audit`).
    pub audit: Option<AuditMaps>,
}

/// Loads and attaches the kernel programs the enabled collectors need and builds the state
/// around them: the refresher's (`Core`, with the kernel families and the collectors of the
/// kernel and process figures) and the scrapes' (the collectors of host files). Fails only
/// where nothing could work (missing privileges, no object).
pub fn core(o: &CoreOptions) -> anyhow::Result<Assembled> {
    let needs_bpf = o
        .enabled
        .iter()
        .any(|n| collectors::spec(n).is_some_and(|s| s.needs_bpf));
    let collectors::Built {
        collectors: built,
        mut families,
    } = collectors::build(&o.enabled, &o.collectors);
    let audit = o.audit.clone().map(|setup| {
        let (family, maps) = audit_kernel::Audit::new(setup);
        families.push(Box::new(family));
        maps
    });
    let (kernel, families) = Kernel::load(
        families,
        &LoadOptions {
            load: needs_bpf,
            bpf_stats: o.bpf_stats,
            no_btf: o.no_btf,
            attach: AttachOptions {
                fail: o.fail_attach.clone(),
            },
        },
    )?;
    // Parsing the kernel's BTF and the object peaks at tens of MiB that glibc keeps after
    // they are freed; hand them back so the resident size is what the process really uses.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    // The loader has made its own copies of the embedded object (1.5 MB, BTF and debug
    // info included) and is done with its code: their pages go now, before the first walk
    // of every process, and the rest of start-up's after a few refreshes.
    crate::startup_pages::release();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let table = ProcessTable::new(
        IdentityReader::new(&o.procfs),
        Cgroups::new(&o.procfs, &o.collectors.sysfs),
        Grouper::new(o.group_by, o.group_rules.clone(), &passwd),
        o.max_groups,
    );
    let (mut at_scrape, mut refreshed) = (Vec::new(), Vec::new());
    for mut c in built {
        if c.at_scrape().is_some() {
            at_scrape.push(c);
        } else {
            refreshed.push(c);
        }
    }
    let core = Core::new(o.procfs.clone(), kernel, families, table, refreshed);
    Ok(Assembled {
        core,
        scrape: Scrape::new(o.procfs.clone(), at_scrape),
        audit: audit.and_then(|m| m.take()),
    })
}
