//! How the command line answers: an aligned table for people, JSON for programs (`--json`),
//! and a progress line on long work when standard error is a terminal (nothing when not).

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Rows of text printed as aligned columns under a header.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&'static str]) -> Table {
        Table { header: header.to_vec(), rows: Vec::new() }
    }

    /// Adds one row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: every column as wide as its widest cell, two spaces apart, the
    /// last column unpadded.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                out.push_str(cell);
                if i < last {
                    out.push_str(&" ".repeat(w - cell.chars().count() + 2));
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(self.header.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &impl Serialize) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A `done/total` line on standard error, redrawn in place, when it is a terminal.
pub struct Progress {
    label: &'static str,
    total: u64,
    shown: bool,
}

impl Progress {
    /// Progress through `total` steps of `label`.
    pub fn new(label: &'static str, total: u64) -> Progress {
        Progress { label, total, shown: std::io::stderr().is_terminal() }
    }

    /// Shows that `done` steps are done.
    pub fn update(&self, done: u64) {
        self.update_of(done, self.total);
    }

    /// Shows that `done` of `total` steps are done, for work whose size is learnt on the way.
    pub fn update_of(&self, done: u64, total: u64) {
        if self.shown {
            eprint!("\r{}", bar(self.label, done, total));
        }
    }

    /// Ends the line.
    pub fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// One progress line: `label [####------] done/total`.
fn bar(label: &str, done: u64, total: u64) -> String {
    let width = 30u64;
    let filled = (done.min(total) * width).checked_div(total).unwrap_or(width);
    let bar = format!("{}{}", "#".repeat(filled as usize), "-".repeat((width - filled) as usize));
    format!("{label} [{bar}] {done}/{total}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_fill_in_proportion() {
        assert_eq!(bar("x", 0, 10), format!("x [{}] 0/10", "-".repeat(30)));
        assert_eq!(bar("x", 5, 10), format!("x [{}{}] 5/10", "#".repeat(15), "-".repeat(15)));
        assert_eq!(bar("x", 12, 10), format!("x [{}] 12/10", "#".repeat(30)));
    }

    #[test]
    fn tables_align_every_column_but_the_last() {
        let mut t = Table::new(&["ID", "TITLE"]);
        t.row(vec!["7".into(), "a".into()]);
        t.row(vec!["1234".into(), "b c".into()]);
        assert_eq!(t.render(), "ID    TITLE\n7     a\n1234  b c\n");
    }
}
