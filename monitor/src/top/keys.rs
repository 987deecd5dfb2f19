//! The live view's state and what each key does to it.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::columns::{Column, SortSpec};

#[derive(Clone, Debug, PartialEq)]
pub struct ViewState {
    pub sort: SortSpec,
    pub filter: String,
    /// The filter being typed after `/`: it applies as it is typed.
    pub editing: Option<String>,
    pub grouped: bool,
    /// The services table instead of the processes'.
    pub services: bool,
    pub paused: bool,
    pub help: bool,
    /// Index of the first row shown.
    pub scroll: usize,
    pub quit: bool,
}

impl ViewState {
    pub fn new(sort: SortSpec, filter: String, grouped: bool) -> Self {
        Self {
            sort,
            filter,
            editing: None,
            grouped,
            services: false,
            paused: false,
            help: false,
            scroll: 0,
            quit: false,
        }
    }

    pub fn active_filter(&self) -> &str {
        self.editing.as_deref().unwrap_or(&self.filter)
    }
}

/// What the loop should do after a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Nothing,
    Redraw,
    /// Unpaused: take a fresh sample to measure the next interval from.
    Resume,
}

/// Applies `key` to `s`; `page` is the number of table rows on screen (for PgUp/PgDn).
pub fn handle(s: &mut ViewState, key: KeyEvent, page: usize) -> Effect {
    // Raw mode delivers Ctrl-C as a key, not a signal.
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        if key.code == KeyCode::Char('c') {
            s.quit = true;
            return Effect::Redraw;
        }
        // Other control keys are not letters: Ctrl-L must not sort by latency.
        return Effect::Nothing;
    }
    if let Some(buf) = &mut s.editing {
        match key.code {
            KeyCode::Enter => {
                s.filter = buf.trim().to_string();
                s.editing = None;
            }
            KeyCode::Esc => s.editing = None,
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Char(c) => buf.push(c),
            _ => return Effect::Nothing,
        }
        s.scroll = 0;
        return Effect::Redraw;
    }
    if s.help {
        // Any key closes the help; q still quits.
        s.help = false;
        s.quit = key.code == KeyCode::Char('q');
        return Effect::Redraw;
    }
    match key.code {
        KeyCode::Char('q') => s.quit = true,
        KeyCode::Char('h' | '?') => s.help = true,
        KeyCode::Char('/') => s.editing = Some(s.filter.clone()),
        KeyCode::Esc => s.filter.clear(),
        KeyCode::Char('g') => {
            s.grouped = !s.grouped;
            s.scroll = 0;
        }
        KeyCode::Char('v') => {
            s.services = !s.services;
            s.scroll = 0;
        }
        KeyCode::Char(' ') => {
            s.paused = !s.paused;
            if !s.paused {
                return Effect::Resume;
            }
        }
        KeyCode::Char('r') => s.sort.descending = !s.sort.descending,
        KeyCode::Char('<') | KeyCode::Left => s.sort = SortSpec::natural(s.sort.column.step(-1)),
        KeyCode::Char('>') | KeyCode::Right => s.sort = SortSpec::natural(s.sort.column.step(1)),
        KeyCode::Char(c) => match Column::from_key(c.to_ascii_lowercase()) {
            // The column already sorted by: reverse it.
            Some(col) if col == s.sort.column => s.sort.descending = !s.sort.descending,
            Some(col) => s.sort = SortSpec::natural(col),
            None => return Effect::Nothing,
        },
        KeyCode::Up => s.scroll = s.scroll.saturating_sub(1),
        KeyCode::Down => s.scroll = s.scroll.saturating_add(1),
        KeyCode::PageUp => s.scroll = s.scroll.saturating_sub(page.max(1)),
        KeyCode::PageDown => s.scroll = s.scroll.saturating_add(page.max(1)),
        KeyCode::Home => s.scroll = 0,
        // Clamped to the last page when drawn.
        KeyCode::End => s.scroll = usize::MAX,
        _ => return Effect::Nothing,
    }
    Effect::Redraw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn state() -> ViewState {
        ViewState::new(SortSpec::natural(Column::Cpu), String::new(), false)
    }

    #[test]
    fn sort_keys() {
        let mut s = state();
        assert_eq!(handle(&mut s, key('p'), 10), Effect::Redraw);
        assert_eq!(s.sort, SortSpec::natural(Column::Pid));
        assert!(!s.sort.descending);
        handle(&mut s, key('p'), 10);
        assert!(s.sort.descending, "same key again reverses");
        handle(&mut s, key('M'), 10);
        assert_eq!(s.sort, SortSpec::natural(Column::Rss));
        handle(&mut s, key('r'), 10);
        assert!(!s.sort.descending);
        handle(&mut s, key('>'), 10);
        assert_eq!(s.sort.column, Column::Read);
        handle(&mut s, KeyEvent::new(KeyCode::Left, KeyModifiers::NONE), 10);
        assert_eq!(s.sort.column, Column::Rss);
        assert_eq!(handle(&mut s, key('z'), 10), Effect::Nothing);
    }

    #[test]
    fn filter_is_typed_live_and_kept_on_enter() {
        let mut s = state();
        handle(&mut s, key('/'), 10);
        for c in "spin".chars() {
            handle(&mut s, key(c), 10);
        }
        // Letters go to the filter, not to sorting.
        assert_eq!(s.sort.column, Column::Cpu);
        assert_eq!(s.active_filter(), "spin");
        handle(
            &mut s,
            KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE),
            10,
        );
        handle(
            &mut s,
            KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
            10,
        );
        assert_eq!(s.filter, "spi");
        assert_eq!(s.editing, None);
        handle(&mut s, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE), 10);
        assert_eq!(s.active_filter(), "");
    }

    #[test]
    fn quit_pause_group_help() {
        let mut s = state();
        handle(&mut s, key('g'), 10);
        assert!(s.grouped);
        handle(&mut s, key(' '), 10);
        assert!(s.paused);
        assert_eq!(handle(&mut s, key(' '), 10), Effect::Resume);
        handle(&mut s, key('?'), 10);
        assert!(s.help);
        handle(&mut s, key('c'), 10);
        assert!(!s.help, "any key closes the help");
        assert_eq!(s.sort.column, Column::Cpu, "without acting on it");
        let before = s.clone();
        handle(
            &mut s,
            KeyEvent::new(KeyCode::Char('l'), KeyModifiers::CONTROL),
            10,
        );
        assert_eq!(s, before, "Ctrl-L is not l");
        handle(
            &mut s,
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            10,
        );
        assert!(s.quit);
        let mut s = state();
        handle(&mut s, key('/'), 10);
        handle(&mut s, key('q'), 10);
        assert!(!s.quit, "q is text while typing a filter");
        handle(&mut s, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE), 10);
        handle(&mut s, key('q'), 10);
        assert!(s.quit);
    }

    #[test]
    fn scrolling() {
        let mut s = state();
        handle(
            &mut s,
            KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE),
            20,
        );
        assert_eq!(s.scroll, 20);
        handle(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE), 20);
        assert_eq!(s.scroll, 19);
        handle(&mut s, KeyEvent::new(KeyCode::Home, KeyModifiers::NONE), 20);
        assert_eq!(s.scroll, 0);
        handle(&mut s, KeyEvent::new(KeyCode::Up, KeyModifiers::NONE), 20);
        assert_eq!(s.scroll, 0);
    }
}
