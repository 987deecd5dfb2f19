//! The terminal while the live view runs: raw mode and the alternate screen, always given
//! back: on return (a guard's drop), on a panic (a hook that restores before the message is
//! printed), and on SIGTERM, SIGINT or SIGHUP (a flag the loop checks). Also: noticing that
//! the terminal itself is gone.

use std::{
    io::{stdout, Stdout},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Once,
    },
    time::Duration,
};

use anyhow::Context as _;
use ratatui::{
    backend::CrosstermBackend,
    crossterm::{
        cursor::{Hide, Show},
        execute,
        terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen},
    },
    Terminal,
};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Raw mode and the alternate screen while it lives.
pub struct Tui {
    pub terminal: Term,
}

/// Whether the terminal is taken (raw mode, alternate screen) and not yet given back.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Gives the terminal back, once: a panic restores in its hook and again while unwinding
/// through the guard, and a second "leave the alternate screen" would move the cursor back
/// above the panic message, for the shell to write over it.
fn restore() {
    if TAKEN.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), Show, LeaveAlternateScreen);
    }
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Restore first, or the message lands on the alternate screen, which is gone a
            // moment later, and the shell is left in raw mode.
            restore();
            previous(info);
        }));
    });
}

impl Tui {
    pub fn enter() -> anyhow::Result<Self> {
        install_panic_hook();
        enable_raw_mode().context("putting the terminal in raw mode")?;
        TAKEN.store(true, Ordering::SeqCst);
        // From here on, an error restores through the guard's drop.
        let mut tui = Self {
            terminal: Terminal::new(CrosstermBackend::new(stdout()))
                .context("setting up the terminal")?,
        };
        execute!(tui.terminal.backend_mut(), EnterAlternateScreen, Hide)
            .context("switching to the alternate screen")?;
        tui.terminal.clear().context("clearing the screen")?;
        Ok(tui)
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// A flag raised by SIGTERM, SIGINT (sent with kill: in raw mode Ctrl-C is a key) or SIGHUP
/// (the terminal went away), so the loop ends and the guard restores the terminal.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, flag.clone())
            .with_context(|| format!("handling signal {sig}"))?;
    }
    Ok(flag)
}

pub fn stopped(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// Keys (or other bytes) are waiting.
    Ready,
    /// Nothing came within the timeout, or a signal interrupted the wait.
    Idle,
    /// The terminal hung up (its window closed, its tmux pane killed).
    Gone,
}

/// Waits up to `timeout` for input on stdin, the terminal.
///
/// Crossterm's own wait cannot be used alone: once the terminal is gone, stdin stays
/// readable and reads return end-of-file, which its event loop retries forever at full
/// CPU without returning (crossterm-rs/crossterm#793). So the wait is done here, and
/// crossterm is asked for events only when there is input.
pub fn wait_for_input(timeout: Duration) -> Input {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    if n <= 0 {
        // Timeout, or EINTR from a signal the caller checks for.
        return Input::Idle;
    }
    if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        Input::Gone
    } else {
        Input::Ready
    }
}
