//! Drawing the live view: a header (source, host figures, status), the table and the help
//! overlay. Only the terminal's own colours, with bold and reverse video for emphasis, so it
//! reads the same on light and dark backgrounds.

use std::time::Duration;

use ratatui::{
    layout::{Alignment, Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Cell, Clear, Paragraph, Row as TableRow, Table},
    Frame,
};

use super::{
    columns::{Column, ALL},
    format::cell,
    keys::ViewState,
    model::Row,
    services::{self, ServiceRow},
};

/// Lines above the table: title, two of host figures, status.
const HEADER_LINES: u16 = 4;

pub struct Screen<'a> {
    /// Where the figures come from.
    pub source: &'a str,
    pub interval: Duration,
    /// Live processes in the last sample.
    pub processes: usize,
    pub host: &'a [String; 2],
    /// Filtered and sorted, all of them (the table shows a window).
    pub rows: &'a [Row],
    /// Inbound services, busiest first (the `v` view).
    pub services: &'a [ServiceRow],
    pub state: &'a ViewState,
    /// The last sample's error, or the source's warning.
    pub status: Option<&'a str>,
    pub measured: bool,
    /// Only one sample so far: no rates yet.
    pub first: bool,
}

/// Table rows that fit a terminal of `height` lines.
pub fn page(height: u16) -> usize {
    usize::from(height.saturating_sub(HEADER_LINES + 1))
}

fn emphasis() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

fn title(s: &Screen<'_>) -> String {
    let st = s.state;
    let arrow = if st.sort.descending { "▼" } else { "▲" };
    let mut t = format!(
        "monitor top - {} - every {} - {} processes - sort {}{arrow}",
        s.source,
        humantime::format_duration(s.interval),
        s.processes,
        st.sort.column.header(st.grouped),
    );
    if st.grouped {
        t.push_str(" - grouped");
    }
    if !st.filter.is_empty() && st.editing.is_none() {
        t.push_str(&format!(" - filter \"{}\"", st.filter));
    }
    t
}

fn status(s: &Screen<'_>) -> Line<'static> {
    if let Some(buf) = &s.state.editing {
        return Line::from(format!("filter: {buf}_   (Enter keeps it, Esc cancels)"));
    }
    if let Some(e) = s.status {
        return Line::styled(e.to_string(), emphasis());
    }
    if s.state.paused {
        return Line::styled("PAUSED (space resumes)", emphasis());
    }
    if !s.measured {
        return Line::from(
            "kernel figures are off (the daemon's sched collector): CPU and wait read 0",
        );
    }
    if s.first {
        return Line::from("measuring: rates from the next refresh on");
    }
    Line::from("h help  q quit  / filter  g group  v services  space pause  < > sort  r reverse")
}

pub fn draw(f: &mut Frame<'_>, s: &Screen<'_>) {
    let [header, body] =
        Layout::vertical([Constraint::Length(HEADER_LINES), Constraint::Min(0)]).areas(f.area());
    let lines = vec![
        Line::from(title(s)),
        Line::from(s.host[0].clone()),
        Line::from(s.host[1].clone()),
        status(s),
    ];
    f.render_widget(Paragraph::new(lines), header);
    if s.state.services {
        draw_services(f, body, s);
    } else {
        draw_table(f, body, s);
    }
    if s.state.help {
        draw_help(f);
    }
}

fn align(c: Column) -> Alignment {
    if c.is_text() {
        Alignment::Left
    } else {
        Alignment::Right
    }
}

fn draw_table(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let st = s.state;
    let header = TableRow::new(ALL.iter().map(|&c| {
        let mut text = c.header(st.grouped).to_string();
        let mut style = Style::new();
        if c == st.sort.column {
            text.push(if st.sort.descending { '▼' } else { '▲' });
            style = style.add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        }
        Cell::from(Line::from(text).alignment(align(c))).style(style)
    }))
    .style(emphasis());
    let shown = page(f.area().height);
    let start = st.scroll.min(s.rows.len().saturating_sub(shown));
    let rows = s.rows.iter().skip(start).take(shown).map(|r| {
        TableRow::new(
            ALL.iter()
                .map(|&c| Cell::from(Line::from(cell(r, c)).alignment(align(c)))),
        )
    });
    let widths = ALL.map(|c| {
        if c == Column::Name {
            Constraint::Min(c.width())
        } else {
            Constraint::Length(c.width())
        }
    });
    f.render_widget(Table::new(rows, widths).header(header), area);
    if s.rows.is_empty() && area.height > 1 {
        let msg = if st.active_filter().is_empty() {
            "no processes".to_string()
        } else {
            format!("no process name contains \"{}\"", st.active_filter())
        };
        let line = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        f.render_widget(Paragraph::new(msg), line);
    }
}

fn draw_services(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let header = TableRow::new(services::HEADER.iter().enumerate().map(|(i, h)| {
        let a = if i == 1 {
            Alignment::Left
        } else {
            Alignment::Right
        };
        Cell::from(Line::from(*h).alignment(a))
    }))
    .style(emphasis());
    let shown = page(f.area().height);
    let start = s.state.scroll.min(s.services.len().saturating_sub(shown));
    let rows = s.services.iter().skip(start).take(shown).map(|r| {
        TableRow::new(services::cells(r).into_iter().enumerate().map(|(i, t)| {
            let a = if i == 1 {
                Alignment::Left
            } else {
                Alignment::Right
            };
            Cell::from(Line::from(t).alignment(a))
        }))
    });
    let widths = services::WIDTHS.map(|w| {
        if w == services::WIDTHS[1] {
            Constraint::Min(w)
        } else {
            Constraint::Length(w)
        }
    });
    f.render_widget(Table::new(rows, widths).header(header), area);
    if s.services.is_empty() && area.height > 1 {
        let line = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        let msg = "no services: the daemon's service collector is off, or nothing was accepted yet";
        f.render_widget(Paragraph::new(msg), line);
    }
}

fn help_lines() -> Vec<Line<'static>> {
    let mut l: Vec<Line<'static>> = [
        "q  Ctrl-C       quit",
        "h  ?            this help (any key closes it)",
        "/               filter by name as you type (Enter keeps, Esc cancels;",
        "                Esc again clears it)",
        "g               one row per group / per process",
        "v               the services (per port and group) / the processes",
        "space           pause / resume",
        "< >  Left Right sort by the previous / next column",
        "r               reverse the order",
        "Up Down PgUp PgDn Home End   scroll",
        "",
        "Sort keys (again: reverse), and what the columns show:",
    ]
    .into_iter()
    .map(Line::from)
    .collect();
    for c in ALL {
        l.push(Line::from(format!(
            "{}  {:<6} {}",
            c.key(),
            c.header(false),
            c.help()
        )));
    }
    l.push(Line::from(""));
    l.push(Line::from(
        "-: not measured (yet). Rates are over the last refresh.",
    ));
    l
}

fn draw_help(f: &mut Frame<'_>) {
    let lines = help_lines();
    let area = f.area();
    let width = 76.min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" monitor top: keys ")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::{backend::TestBackend, Terminal};

    use super::*;
    use crate::top::columns::SortSpec;

    fn screen_text(state: &ViewState, rows: &[Row]) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 20)).unwrap();
        let host = ["CPU 1.0% busy".to_string(), "MEM -".to_string()];
        t.draw(|f| {
            draw(
                f,
                &Screen {
                    source: "daemon http://127.0.0.1:9957",
                    interval: Duration::from_secs(1),
                    processes: rows.len(),
                    host: &host,
                    rows,
                    services: &[ServiceRow {
                        port: "8080".into(),
                        group: "web".into(),
                        requests_per_second: Some(12.5),
                        p50: Some(0.021),
                        p99: Some(0.083),
                        errors_per_second: Some(0.5),
                    }],
                    state,
                    status: None,
                    measured: true,
                    first: false,
                },
            )
        })
        .unwrap();
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    fn row(pid: u32, name: &str, cpu: f64) -> Row {
        Row {
            pid,
            count: 1,
            user: "root".into(),
            name: name.into(),
            group: name.into(),
            index: Some(0),
            cpu_percent: Some(cpu),
            ..Default::default()
        }
    }

    #[test]
    fn draws_header_table_and_help() {
        let state = ViewState::new(SortSpec::natural(Column::Cpu), String::new(), false);
        let text = screen_text(&state, &[row(42, "spinner", 99.5), row(1, "init", 0.0)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("daemon http://127.0.0.1:9957"), "{text}");
        assert!(lines[0].contains("sort CPU%▼"), "{text}");
        assert!(lines[1].starts_with("CPU 1.0% busy"), "{text}");
        assert!(
            lines[4].contains("PID") && lines[4].contains("CPU%▼"),
            "{text}"
        );
        assert!(
            lines[5].contains("42") && lines[5].contains("99.5"),
            "{text}"
        );
        assert!(
            lines[5].contains("spinner") && lines[5].contains(" - "),
            "{text}"
        );
        let mut svc = state.clone();
        svc.services = true;
        let text = screen_text(&svc, &[]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[4].contains("PORT") && lines[4].contains("P99"),
            "{text}"
        );
        assert!(
            lines[5].contains("8080") && lines[5].contains("web") && lines[5].contains("83.0ms"),
            "{text}"
        );
        let mut help = state.clone();
        help.help = true;
        assert!(screen_text(&help, &[]).contains("monitor top: keys"));
        let mut filtered = state;
        filtered.filter = "zzz".into();
        assert!(screen_text(&filtered, &[]).contains("no process name contains \"zzz\""));
    }
}
