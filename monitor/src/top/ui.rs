//! The live view's loop: a sample every interval, a redraw when something changed, keys in
//! between. The terminal is given back however the loop ends.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};

use super::{
    format,
    keys::{self, Effect, ViewState},
    model::{group_rows, host_view, process_rows, regroup, select, Row, Users},
    render::{self, Screen},
    sample::Sample,
    services,
    source::Source,
    terminal::{self, Input, Tui},
};
use crate::cli::TopArgs;

/// The longest wait for a key: how soon a stop signal or a resize is noticed.
const POLL: Duration = Duration::from_millis(250);

fn shown_rows(base: &[Row], state: &ViewState, limit: Option<usize>) -> Vec<Row> {
    let rows = if state.grouped {
        group_rows(base)
    } else {
        base.to_vec()
    };
    select(rows, state.active_filter(), state.sort, limit)
}

pub fn run(o: &TopArgs, source: &mut Source, first: Sample) -> anyhow::Result<()> {
    let stop = terminal::stop_flag()?;
    let users = Users::from_passwd(&std::fs::read_to_string("/etc/passwd").unwrap_or_default());
    let describe = source.describe();
    let mut state = ViewState::new(o.sort, o.filter.clone(), o.group);
    let mut base = process_rows(None, &first, &users);
    regroup(&mut base, o.group_by);
    let mut host = format::summary(&host_view(None, &first));
    let mut service_rows = services::rows(&[], &first.host.services, 0.0);
    let mut cur = first;
    let mut have_rates = false;
    let mut error: Option<String> = None;
    let mut tui = Tui::enter()?;
    let mut next = Instant::now() + o.interval;
    let mut dirty = true;
    let mut page = 0;
    let mut last_size = tui.terminal.size()?;
    while !state.quit && !terminal::stopped(&stop) {
        if dirty {
            let rows = shown_rows(&base, &state, o.limit());
            page = render::page(tui.terminal.size()?.height);
            state.scroll = state.scroll.min(rows.len().saturating_sub(page));
            tui.terminal.draw(|f| {
                render::draw(
                    f,
                    &Screen {
                        source: &describe,
                        interval: o.interval,
                        processes: cur.procs.len(),
                        host: &host,
                        rows: &rows,
                        services: &service_rows,
                        state: &state,
                        status: error.as_deref().or(cur.warning.as_deref()),
                        measured: cur.measured,
                        first: !have_rates,
                    },
                )
            })?;
            dirty = false;
            if o.debug_panic {
                panic!("--debug.panic: panicking on purpose after the first screen");
            }
        }
        let now = Instant::now();
        if now >= next {
            next = now + o.interval;
            if !state.paused {
                match source.sample() {
                    Ok(s) => {
                        base = process_rows(Some(&cur), &s, &users);
                        regroup(&mut base, o.group_by);
                        host = format::summary(&host_view(Some(&cur), &s));
                        service_rows = services::rows(
                            &cur.host.services,
                            &s.host.services,
                            s.seconds_since(&cur),
                        );
                        cur = s;
                        have_rates = true;
                        error = None;
                    }
                    // Shown in the header; the last figures stay until a sample succeeds.
                    Err(e) => error = Some(format!("{e:#}")),
                }
                dirty = true;
            }
            continue;
        }
        match terminal::wait_for_input((next - now).min(POLL)) {
            Input::Gone => break,
            Input::Idle => {
                // Resizes are noticed here: crossterm reports them only while it is asked
                // for input, which happens only when there is some.
                let size = tui.terminal.size()?;
                if size != last_size {
                    last_size = size;
                    dirty = true;
                }
            }
            Input::Ready => {
                while event::poll(Duration::ZERO)? {
                    let Event::Key(k) = event::read()? else {
                        continue;
                    };
                    if k.kind != KeyEventKind::Press {
                        continue;
                    }
                    match keys::handle(&mut state, k, page) {
                        Effect::Nothing => {}
                        Effect::Redraw => dirty = true,
                        Effect::Resume => {
                            // The next rates start from now, not from before the pause.
                            if let Ok(s) = source.sample() {
                                cur = s;
                            }
                            next = Instant::now() + o.interval;
                            dirty = true;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
