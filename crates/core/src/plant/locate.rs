//! Turning field paths into `line:col` and error spans into field paths, so that every plant-file
//! problem names where it is and what it is.

use super::Diagnostic;
use std::fmt;
use toml::de::{DeTable, DeValue};

/// A path into a plant file, e.g. `products[2].routing[0].times.TURN-09`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    /// This path with an array index appended.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(index));
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(file)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// Where the deepest existing part of `path` starts in `text`: a missing field points at its table.
fn span_of(text: &str, path: &FieldPath) -> usize {
    let Ok(root) = DeTable::parse(text) else {
        return 0;
    };
    let mut start = 0;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for seg in &path.0 {
        let next = match (seg, table, array) {
            (Segment::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(key, value)| (key.span().start, value)),
            (Segment::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((at, value)) = next else { break };
        start = at;
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    start
}

/// The deepest field path whose value contains `offset`.
fn path_at(text: &str, offset: usize) -> FieldPath {
    let Ok(root) = DeTable::parse(text) else {
        return FieldPath::root();
    };
    let mut path = FieldPath::root();
    let mut current: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    loop {
        let mut found = None;
        if let Some(t) = table {
            for (key, value) in t.iter() {
                let span = value.span();
                let key_span = key.span();
                if span.contains(&offset) || key_span.contains(&offset) {
                    found = Some((Segment::Key(key.get_ref().to_string()), value.get_ref()));
                    break;
                }
            }
        } else if let Some(DeValue::Array(a)) = current {
            for (i, value) in a.iter().enumerate() {
                if value.span().contains(&offset) {
                    found = Some((Segment::Index(i), value.get_ref()));
                    break;
                }
            }
        }
        let Some((seg, value)) = found else { break };
        path.0.push(seg);
        current = Some(value);
        table = match value {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    path
}

/// For text that does not parse at all: the enclosing `[table]` header and the key on the line.
fn textual_path(text: &str, offset: usize) -> FieldPath {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    let mut path = FieldPath::root();
    let header = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    if let Some(header) = header {
        for part in header.split('.') {
            path = path.key(part.trim());
        }
    }
    if let Some((key, _)) = line.split_once('=') {
        let key = key.trim();
        if !key.is_empty() && !key.starts_with('[') {
            path = path.key(key);
        }
    }
    path
}

pub(super) fn path_diagnostic(text: &str, path: &FieldPath, reason: String) -> Diagnostic {
    let (line, col) = line_col(text, span_of(text, path));
    Diagnostic {
        line,
        col,
        field: path.to_string(),
        reason,
    }
}

pub(super) fn serde_diagnostic(text: &str, err: &toml::de::Error) -> Diagnostic {
    let offset = err.span().map_or(0, |s| s.start);
    let (line, col) = line_col(text, offset);
    let mut field = path_at(text, offset);
    if field.0.is_empty() {
        field = textual_path(text, offset);
    }
    let message = err.message().trim().to_owned();
    // serde names a missing key only in its message (its span is the enclosing table).
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        field = field.key(name);
    }
    Diagnostic {
        line,
        col,
        field: field.to_string(),
        reason: message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nb = \"é\"\nc = 3";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let c = text.find('c').unwrap_or(0);
        assert_eq!(line_col(text, c), (3, 1));
    }

    #[test]
    fn paths_find_nested_array_entries() {
        let text = "[[products]]\nid = \"a\"\n[[products]]\nid = \"b\"\n[[products.routing]]\nname = \"x\"\ntimes = { M1 = 2.0 }\n";
        let p = FieldPath::root()
            .key("products")
            .index(1)
            .key("routing")
            .index(0)
            .key("times")
            .key("M1");
        let d = path_diagnostic(text, &p, "bad".into());
        assert_eq!((d.line, d.col), (7, 11), "{d}");
        assert_eq!(d.field, "products[1].routing[0].times.M1");
    }
}
