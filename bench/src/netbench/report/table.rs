//! A table the report renders twice, as fixed-width text for a terminal and as Markdown, so both show
//! the same content.

/// A table both renderers share, so the terminal and Markdown show the same content.
pub(super) struct Table {
    headers: Vec<String>,
    /// Per column: right-aligned (numbers) or left-aligned (names).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(headers: &[&str], right: &[bool]) -> Self {
        debug_assert_eq!(headers.len(), right.len());
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            right: right.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.headers[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn line(cells: &[String], widths: &[usize], right: &[bool]) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((cell, &w), &r)| {
                if r {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    }

    pub(super) fn terminal(&self, out: &mut String) {
        let widths = self.widths();
        out.push_str(&Self::line(&self.headers, &widths, &self.right));
        out.push('\n');
        let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&Self::line(row, &widths, &self.right));
            out.push('\n');
        }
    }

    pub(super) fn markdown(&self, out: &mut String) {
        let escape = |s: &String| s.replace('|', "\\|");
        out.push_str("| ");
        out.push_str(
            &self
                .headers
                .iter()
                .map(escape)
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push_str(" |\n|");
        for &r in &self.right {
            out.push_str(if r { " ---: |" } else { " :--- |" });
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str("| ");
            out.push_str(&row.iter().map(escape).collect::<Vec<_>>().join(" | "));
            out.push_str(" |\n");
        }
    }
}
