//! A results file's sections that separate runs write (`netbench cross-node|policy|dns
//! --markdown`): each sits between its own opening and closing comment, and is found, replaced or
//! appended without touching the rest of the file.

/// A section's markers.
#[derive(Clone, Copy, Debug)]
pub struct Markers {
    /// What marks the opening line, whatever follows on it.
    pub begin_prefix: &'static str,
    /// The closing line.
    pub end: &'static str,
}

impl Markers {
    /// `text`'s section, markers included, if it has one.
    pub fn section_of(self, text: &str) -> Option<&str> {
        let start = text.find(self.begin_prefix)?;
        let end = start + text[start..].find(self.end)? + self.end.len();
        Some(&text[start..end])
    }

    /// `existing` with its section replaced by `section` (appended when it has none); just
    /// `section` when there is no file yet.
    pub fn splice(self, existing: Option<&str>, section: &str) -> String {
        let Some(existing) = existing.filter(|t| !t.trim().is_empty()) else {
            return format!("{section}\n");
        };
        match self.section_of(existing) {
            Some(old) => existing.replacen(old, section, 1),
            None => format!("{}\n\n{section}\n", existing.trim_end()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKERS: Markers = Markers {
        begin_prefix: "<!-- x:begin",
        end: "<!-- x:end -->",
    };

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let section = "<!-- x:begin (new) -->\nnew\n<!-- x:end -->";
        assert_eq!(MARKERS.splice(None, section), format!("{section}\n"));
        assert_eq!(
            MARKERS.splice(Some("# Results\n"), section),
            format!("# Results\n\n{section}\n")
        );
        let old = "# R\n\n<!-- x:begin -->\nold\n<!-- x:end -->\n\n## After\n";
        assert_eq!(
            MARKERS.splice(Some(old), section),
            format!("# R\n\n{section}\n\n## After\n")
        );
        assert_eq!(MARKERS.section_of("no section"), None);
    }
}
