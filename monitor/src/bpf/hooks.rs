//! The shared socket hooks' load-time layout (`monitor-ebpf`'s `hooks`): which families
//! their programs serve, as the families said when prepared, and the socket members every
//! family reads, from the kernel's BTF.

use monitor_common::hooks::{HookLayout, GLOBAL_LAYOUT};

use super::family::Setup;
use crate::audit::layout::offset_of;

/// Sets the global once every family is prepared. Without BTF the offsets stay unknown:
/// the typed programs cannot attach then anyway.
pub fn set(btf: &anyhow::Result<btf_rs::Btf>, setup: &mut Setup) {
    let mut l = HookLayout {
        families: setup.hook_families,
        ..HookLayout::default()
    };
    if let Ok(btf) = btf {
        l.sk_family = offset_of(btf, "sock", "__sk_common.skc_family").unwrap_or(0);
        l.sk_protocol = offset_of(btf, "sock", "sk_protocol").unwrap_or(0);
    }
    setup.global(GLOBAL_LAYOUT, &l);
}
