//! How results are printed: `-o table` (aligned columns for people),
//! `-o json` (pretty JSON) or `-o yaml`. Every command builds one
//! [`Report`]: the data (printed as is for json and yaml) and a table.

use std::io::Write;

use clap::ValueEnum;
use serde_json::Value;

use crate::error::Result;

/// The output format, `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Rows under a header, printed with aligned columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Lines printed before the table (a summary).
    pub notes: Vec<String>,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, one vector per row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names and no rows.
    pub fn new(header: &[&str]) -> Self {
        Table { notes: Vec::new(), header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a line before the table.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// The table as text: notes, then the header and rows with columns
    /// padded to their widest cell, two spaces apart.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
        }
        if self.header.is_empty() {
            return out;
        }
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                if i + 1 < columns {
                    text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                } else {
                    text.push_str(cell);
                }
            }
            text.trim_end().to_owned() + "\n"
        };
        out.push_str(&line(&self.header));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// What a command prints: its data and the table form of it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The data, printed as JSON or YAML.
    pub data: Value,
    /// The table form.
    pub table: Table,
}

impl Report {
    /// Prints the report in `format`.
    pub fn print(&self, format: Format, out: &mut dyn Write) -> Result<()> {
        match format {
            Format::Table => out.write_all(self.table.render().as_bytes())?,
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&self.data).unwrap_or_default())?,
            Format::Yaml => out.write_all(yaml(&self.data).as_bytes())?,
        }
        Ok(())
    }
}

/// `value` as YAML text.
pub fn yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// A JSON value as one table cell: strings bare, `null` as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let mut t = Table::new(&["NAME", "COUNT"]);
        t.note("2 services");
        t.row(vec!["orders".into(), "10".into()]);
        t.row(vec!["a".into(), "2".into()]);
        assert_eq!(t.render(), "2 services\nNAME    COUNT\norders  10\na       2\n");
    }

    #[test]
    fn cells_show_missing_values_as_a_dash() {
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&Value::String(String::new())), "-");
        assert_eq!(cell(&serde_json::json!(3)), "3");
        assert_eq!(cell(&serde_json::json!("x")), "x");
    }

    #[test]
    fn reports_print_in_every_format() {
        let report = Report { data: serde_json::json!({"a": 1}), table: Table::new(&["A"]) };
        let mut out = Vec::new();
        report.print(Format::Yaml, &mut out).expect("yaml");
        assert_eq!(String::from_utf8_lossy(&out), "a: 1\n");
        out.clear();
        report.print(Format::Json, &mut out).expect("json");
        assert_eq!(String::from_utf8_lossy(&out), "{\n  \"a\": 1\n}\n");
    }
}
