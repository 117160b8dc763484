//! Human output helpers: aligned plain-text tables and humanized ages and times.
//!
//! Read commands print either one of these tables or, with `--json`, serde values; nothing
//! here is used for machine output. Columns are padded to the widest cell (counted in
//! characters) and separated by two spaces; the last column is not padded, so lines carry
//! no trailing blanks.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A table with a header row.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(headers: [&str; N]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells print empty, extra cells are kept.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                if i + 1 < columns {
                    text.push_str(&" ".repeat(width - cell.chars().count()));
                }
            }
            writeln!(f, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

/// A duration for people: milliseconds below a second, whole seconds below an hour, whole
/// minutes above (`450ms`, `12s`, `3m 5s`, `2h 10m`).
pub fn human_duration(duration: Duration) -> String {
    let rounded = if duration < Duration::from_secs(1) {
        Duration::from_millis(duration.as_millis() as u64)
    } else if duration < Duration::from_secs(3600) {
        Duration::from_secs(duration.as_secs())
    } else {
        Duration::from_secs(duration.as_secs() / 60 * 60)
    };
    if rounded.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(rounded).to_string()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long ago `ts_ms` was, for people (`12s ago`); a time in the future (clock skew
/// between hosts) reads `just now`.
pub fn human_age(ts_ms: u64, now_ms: u64) -> String {
    match now_ms.checked_sub(ts_ms) {
        Some(ms) if ms >= 1000 => format!("{} ago", human_duration(Duration::from_millis(ms))),
        _ => "just now".to_string(),
    }
}

/// A Unix time in milliseconds as RFC 3339 UTC with seconds (`2026-11-25T18:40:32Z`).
pub fn human_time(ts_ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ts_ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Shortens `text` to `max` characters for a table cell, marking the cut with `…`, and
/// flattens control characters so that hostile text cannot break the table's lines.
pub fn cell(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_blanks() {
        let mut table = Table::new(["WORKER", "ROLE", "STATE"]);
        table.row(vec!["devbox/%3".into(), "reviewer".into(), "idle".into()]);
        table.row(vec!["devbox/%12".into(), "w".into(), "busy".into()]);
        let text = table.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "WORKER      ROLE      STATE");
        assert_eq!(lines[1], "devbox/%3   reviewer  idle");
        assert_eq!(lines[2], "devbox/%12  w         busy");
    }

    #[test]
    fn tables_tolerate_short_rows() {
        let mut table = Table::new(["A", "B"]);
        table.row(vec!["x".into()]);
        assert_eq!(table.to_string(), "A  B\nx\n");
    }

    #[test]
    fn durations_round_for_people() {
        assert_eq!(human_duration(Duration::from_millis(450)), "450ms");
        assert_eq!(human_duration(Duration::from_millis(12_345)), "12s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m 5s");
        assert_eq!(human_duration(Duration::from_secs(7_830)), "2h 10m");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn ages_count_back_from_now() {
        assert_eq!(human_age(1_000, 13_500), "12s ago");
        assert_eq!(human_age(13_000, 13_500), "just now");
        assert_eq!(human_age(20_000, 13_500), "just now");
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(human_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(human_time(1_764_096_032_123), "2025-11-25T18:40:32Z");
    }

    #[test]
    fn cells_are_cut_and_flattened() {
        assert_eq!(cell("short", 10), "short");
        assert_eq!(cell("a\nb;$(rm)", 20), "a b;$(rm)");
        assert_eq!(cell("abcdefgh", 5), "abcd…");
    }
}
