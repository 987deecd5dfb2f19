//! The struct members the service programs read, from the kernel's BTF, handed over as the
//! `SVC_LAYOUT` global before the object is loaded.

use std::path::Path;

use anyhow::Context as _;
use monitor_common::service::{ServiceLayout, GLOBAL_LAYOUT};

use crate::audit::layout::offset_of;

pub struct Layout(ServiceLayout);

impl Layout {
    /// Fails without BTF or without the socket members (the typed programs need them); the
    /// registers are optional: without them status codes and DNS are not read (one
    /// warning says so).
    pub fn read(vmlinux: &Path, btf: &anyhow::Result<btf_rs::Btf>) -> anyhow::Result<Self> {
        let btf = btf
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("kernel BTF {}", vmlinux.display()))?;
        let sock = |path: &str| {
            offset_of(btf, "sock", path).with_context(|| format!("struct sock member {path}"))
        };
        let mut l = ServiceLayout {
            sk_family: sock("__sk_common.skc_family")?,
            sk_protocol: sock("sk_protocol")?,
            sk_num: sock("__sk_common.skc_num")?,
            sk_dport: sock("__sk_common.skc_dport")?,
            ..ServiceLayout::default()
        };
        match (
            offset_of(btf, "pt_regs", "orig_ax"),
            offset_of(btf, "pt_regs", "si"),
        ) {
            (Ok(nr), Ok(si)) if cfg!(target_arch = "x86_64") => {
                l.regs_orig_ax = nr;
                l.regs_si = si;
            }
            _ => tracing::warn!(
                btf = %vmlinux.display(),
                "no x86_64 pt_regs in the kernel BTF: HTTP status codes and DNS are not measured"
            ),
        }
        Ok(Self(l))
    }

    pub fn set(&self, setup: &mut crate::bpf::family::Setup) {
        setup.global(GLOBAL_LAYOUT, &self.0);
    }
}
