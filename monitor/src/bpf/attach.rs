//! Attaching programs: each measure lists the hooks that can serve it, best first; the first
//! that loads and attaches wins, and which one did is reported.

use aya::{
    programs::{BtfTracePoint, TracePoint},
    Btf, Ebpf,
};

#[derive(Clone, Copy, Debug)]
pub enum Hook {
    /// `tp_btf/<name>`: typed arguments, the cheapest tracepoint hook (5.5+).
    Btf(&'static str),
    /// A classic tracepoint `category:name` (every kernel).
    Tracepoint(&'static str, &'static str),
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::Btf(name) => write!(f, "tp_btf/{name}"),
            Hook::Tracepoint(cat, name) => write!(f, "tracepoint/{cat}/{name}"),
        }
    }
}

/// One way to serve a measure: a program of the object and where to hook it.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    pub program: &'static str,
    pub hook: Hook,
}

/// What a collector needs attached, one entry per measure.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub measure: &'static str,
    pub choices: &'static [Choice],
}

/// Which hook now serves a measure.
#[derive(Clone, Debug)]
pub struct Attached {
    pub measure: &'static str,
    pub program: &'static str,
    pub hook: String,
}

/// Options that change how programs attach.
#[derive(Clone, Debug, Default)]
pub struct AttachOptions {
    /// Programs to attach to a tracepoint that does not exist, to exercise the failure path
    /// (`--debug.fail-attach`, for tests).
    pub fail: Vec<String>,
}

/// The hook name to use: a name no kernel has when `program` is listed in
/// `--debug.fail-attach`, so the real failure (and fallback) path runs. Naming a classic
/// program fails its typed twin (`<name>_btf`) too: a kernel without a tracepoint has
/// neither.
fn fault_or<'a>(opts: &AttachOptions, program: &str, name: &'a str) -> &'a str {
    let listed = |f: &String| f == program || program.strip_suffix("_btf") == Some(f.as_str());
    if opts.fail.iter().any(listed) {
        "monitor_fault_injected"
    } else {
        name
    }
}

/// Loads and attaches `c`; `Ok(false)` when another family's probe attached it already (a
/// program shared by families on one hook, which that family keeps).
fn attach_one(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    c: &Choice,
    opts: &AttachOptions,
) -> anyhow::Result<bool> {
    let prog = ebpf
        .program_mut(c.program)
        .ok_or_else(|| anyhow::anyhow!("program {} is not in the object", c.program))?;
    if prog.fd().is_ok() {
        return Ok(false);
    }
    match c.hook {
        Hook::Btf(name) => {
            let btf = btf.ok_or_else(|| anyhow::anyhow!("kernel BTF is not available"))?;
            let p: &mut BtfTracePoint = prog.try_into()?;
            p.load(fault_or(opts, c.program, name), btf)?;
            if let Err(e) = p.attach() {
                let _ = p.unload();
                return Err(e.into());
            }
        }
        Hook::Tracepoint(cat, name) => {
            let p: &mut TracePoint = prog.try_into()?;
            p.load()?;
            let name = fault_or(opts, c.program, name);
            if let Err(e) = p.attach(cat, name) {
                let _ = p.unload();
                return Err(anyhow::Error::new(e).context(format!("attaching to {cat}:{name}")));
            }
        }
    }
    Ok(true)
}

/// Attaches every probe, each through its first working choice. On the first probe that
/// cannot attach at all, unloads what this call attached and returns the error: a collector
/// is either whole or off.
pub fn attach_all(
    ebpf: &mut Ebpf,
    btf: Option<&Btf>,
    probes: &[Probe],
    opts: &AttachOptions,
) -> anyhow::Result<Vec<Attached>> {
    let mut done: Vec<Attached> = Vec::new();
    // What this call loaded itself: only that is undone on failure.
    let mut fresh: Vec<Attached> = Vec::new();
    for probe in probes {
        let mut errors = Vec::new();
        let mut ok = None;
        for c in probe.choices {
            match attach_one(ebpf, btf, c, opts) {
                Ok(new) => {
                    if new {
                        fresh.push(Attached {
                            measure: probe.measure,
                            program: c.program,
                            hook: c.hook.to_string(),
                        });
                    }
                    ok = Some(Attached {
                        measure: probe.measure,
                        program: c.program,
                        hook: c.hook.to_string(),
                    });
                    break;
                }
                Err(e) => {
                    tracing::debug!(program = c.program, hook = %c.hook, error = format!("{e:#}"), "hook unavailable, trying the next");
                    errors.push(e.context(format!("{} via {}", c.program, c.hook)));
                }
            }
        }
        match ok {
            Some(a) => done.push(a),
            None => {
                detach_all(ebpf, &fresh);
                let last = errors
                    .pop()
                    .unwrap_or_else(|| anyhow::anyhow!("no hook listed"));
                return Err(last.context(format!("measure {}", probe.measure)));
            }
        }
    }
    Ok(done)
}

/// Detaches and unloads what an earlier `attach_all` attached.
pub fn detach_all(ebpf: &mut Ebpf, attached: &[Attached]) {
    for a in attached {
        if let Some(p) = ebpf.program_mut(a.program) {
            let _ = unload(p);
        }
    }
}

fn unload(p: &mut aya::programs::Program) -> anyhow::Result<()> {
    match p {
        aya::programs::Program::BtfTracePoint(p) => p.unload()?,
        aya::programs::Program::TracePoint(p) => p.unload()?,
        _ => {}
    }
    Ok(())
}
