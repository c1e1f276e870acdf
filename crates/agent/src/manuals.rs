//! The plant's manuals and SOPs as a full-text index (BM25, in memory, with the `bm25` crate),
//! split into passages that answers cite by document and section. Chinese has no spaces
//! between words, so text is cut into Latin words and overlapping pairs of Han characters (the
//! bigram method of CJK search engines), which finds Chinese terms without a dictionary.
//!
//! A plant's manuals are tens to hundreds of passages: an in-memory BM25 index answers in
//! microseconds, where a search engine library (tantivy, used before) cost a tenth of the clean
//! build (issue 25).

use bm25::{Document, SearchEngine, SearchEngineBuilder};
use serde::Serialize;
use std::path::Path;

/// The sample set for the reference plant, built into the binary.
pub const SAMPLE: &[(&str, &str)] = &[
    (
        "SOP-MNT-01-spindle-vibration.en.md",
        include_str!("../manuals/SOP-MNT-01-spindle-vibration.en.md"),
    ),
    (
        "SOP-MNT-01-spindle-vibration.zh.md",
        include_str!("../manuals/SOP-MNT-01-spindle-vibration.zh.md"),
    ),
    (
        "SOP-MNT-02-preventive-service.en.md",
        include_str!("../manuals/SOP-MNT-02-preventive-service.en.md"),
    ),
    (
        "SOP-MNT-02-preventive-service.zh.md",
        include_str!("../manuals/SOP-MNT-02-preventive-service.zh.md"),
    ),
    (
        "SOP-PRC-03-set-point-change.en.md",
        include_str!("../manuals/SOP-PRC-03-set-point-change.en.md"),
    ),
    (
        "SOP-PRC-03-set-point-change.zh.md",
        include_str!("../manuals/SOP-PRC-03-set-point-change.zh.md"),
    ),
    (
        "SOP-QA-04-out-of-control.en.md",
        include_str!("../manuals/SOP-QA-04-out-of-control.en.md"),
    ),
    (
        "SOP-QA-04-out-of-control.zh.md",
        include_str!("../manuals/SOP-QA-04-out-of-control.zh.md"),
    ),
    (
        "SOP-HT-05-furnace.en.md",
        include_str!("../manuals/SOP-HT-05-furnace.en.md"),
    ),
    (
        "SOP-HT-05-furnace.zh.md",
        include_str!("../manuals/SOP-HT-05-furnace.zh.md"),
    ),
    (
        "SOP-OPS-06-shift-handover.en.md",
        include_str!("../manuals/SOP-OPS-06-shift-handover.en.md"),
    ),
    (
        "SOP-OPS-06-shift-handover.zh.md",
        include_str!("../manuals/SOP-OPS-06-shift-handover.zh.md"),
    ),
];

/// One passage: a section of a document, or a part of a long one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// `file#n`, stable for a given document set.
    pub id: String,
    pub document: String,
    /// The document's title (its first heading).
    pub title: String,
    pub section: String,
    pub text: String,
}

/// A passage found for a query, with its BM25 score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    #[serde(flatten)]
    pub passage: Passage,
    pub score: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum ManualsError {
    #[error("manuals folder {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("manuals folder {0} has no .md or .txt documents")]
    Empty(String),
}

/// Latin words (lower-cased letters and digits, with `_`, `-` and `.` inside) and Han bigrams.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigramTokenizer;

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

/// The terms of `text`, as the index and the queries both cut it.
pub fn terms(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if is_han(c) {
            let mut j = i;
            while j < chars.len() && is_han(chars[j].1) {
                j += 1;
            }
            if j - i == 1 {
                let end = start + c.len_utf8();
                out.push((start, end, c.to_string()));
            }
            for k in i..j.saturating_sub(1) {
                let (s, a) = chars[k];
                let (t, b) = chars[k + 1];
                out.push((s, t + b.len_utf8(), format!("{a}{b}")));
            }
            i = j;
        } else if c.is_alphanumeric() {
            let mut j = i;
            let mut word = String::new();
            while j < chars.len() {
                let ch = chars[j].1;
                let inner = matches!(ch, '_' | '-' | '.')
                    && j + 1 < chars.len()
                    && chars[j + 1].1.is_alphanumeric()
                    && !is_han(chars[j + 1].1);
                if (ch.is_alphanumeric() && !is_han(ch)) || inner {
                    word.extend(ch.to_lowercase());
                    j += 1;
                } else {
                    break;
                }
            }
            let end = chars.get(j).map_or(text.len(), |(p, _)| *p);
            out.push((start, end, word));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

impl bm25::Tokenizer for BigramTokenizer {
    fn tokenize(&self, text: &str) -> Vec<String> {
        terms(text).into_iter().map(|(_, _, term)| term).collect()
    }
}

/// Cuts a Markdown document into passages at its headings; very long sections at paragraphs.
pub fn passages(document: &str, text: &str) -> Vec<Passage> {
    let mut title = String::new();
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    let mut body = String::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim().to_owned();
            if title.is_empty() {
                title = heading.clone();
            }
            if !body.trim().is_empty() {
                sections.push((section.clone(), body.trim().to_owned()));
            }
            body.clear();
            section = heading;
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    if !body.trim().is_empty() {
        sections.push((section, body.trim().to_owned()));
    }
    if title.is_empty() {
        title = document.to_owned();
    }
    const LONG: usize = 1_500;
    let mut out = Vec::new();
    for (section, body) in sections {
        let mut part = String::new();
        for para in body.split("\n\n") {
            if !part.is_empty() && part.len() + para.len() > LONG {
                out.push((section.clone(), std::mem::take(&mut part)));
            }
            if !part.is_empty() {
                part.push_str("\n\n");
            }
            part.push_str(para.trim());
        }
        if !part.is_empty() {
            out.push((section.clone(), part));
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(n, (section, text))| Passage {
            id: format!("{document}#{}", n + 1),
            document: document.to_owned(),
            title: title.clone(),
            section,
            text,
        })
        .collect()
}

/// The index over one set of documents, in memory. Terms are embedded as 64-bit hashes.
pub struct Manuals {
    engine: SearchEngine<usize, u64, BigramTokenizer>,
    passages: Vec<Passage>,
}

impl std::fmt::Debug for Manuals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manuals")
            .field("passages", &self.passages.len())
            .finish_non_exhaustive()
    }
}

impl Manuals {
    /// The sample set shipped for the reference plant.
    pub fn sample() -> Result<Manuals, ManualsError> {
        Manuals::build(
            SAMPLE
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        )
    }

    /// Every `.md` and `.txt` file directly in `dir`, by name.
    pub fn from_dir(dir: &Path) -> Result<Manuals, ManualsError> {
        let read = |e: std::io::Error| ManualsError::Read {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let mut docs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read)? {
            let path = entry.map_err(read)?.path();
            let wanted = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "md" || e == "txt");
            if !wanted {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| ManualsError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            docs.push((name, text));
        }
        if docs.is_empty() {
            return Err(ManualsError::Empty(dir.display().to_string()));
        }
        docs.sort();
        Manuals::build(docs)
    }

    /// Indexes `(file name, text)` documents.
    pub fn build(documents: Vec<(String, String)>) -> Result<Manuals, ManualsError> {
        let passages: Vec<Passage> = documents
            .iter()
            .flat_map(|(name, body)| passages(name, body))
            .collect();
        // Title and section count as words of the passage: they name its subject.
        let indexed = passages
            .iter()
            .enumerate()
            .map(|(n, p)| Document::new(n, format!("{}\n{}\n{}", p.title, p.section, p.text)));
        let engine =
            SearchEngineBuilder::<usize, u64, BigramTokenizer>::with_tokenizer_and_documents(
                BigramTokenizer,
                indexed,
            )
            .build();
        Ok(Manuals { engine, passages })
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The `limit` best passages for `query` (any of its terms; BM25, k1 = 1.2, b = 0.75).
    /// Equal scores go in passage order, so the same question always gets the same answer.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, ManualsError> {
        // Each term once: a word said twice in a question is not twice as relevant.
        let mut seen = std::collections::BTreeSet::new();
        let unique: Vec<String> = terms(query)
            .into_iter()
            .map(|(_, _, t)| t)
            .filter(|t| seen.insert(t.clone()))
            .collect();
        if unique.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // Terms are Latin words or Han runs, so spaces between them cut them back the same.
        let mut found = self.engine.search(&unique.join(" "), None);
        found.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.document.id.cmp(&b.document.id))
        });
        Ok(found
            .into_iter()
            .take(limit)
            .filter_map(|r| {
                self.passages.get(r.document.id).map(|p| Hit {
                    passage: p.clone(),
                    score: r.score,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_text_is_cut_into_bigrams_and_latin_into_words() {
        let t: Vec<String> = terms("主轴振动 TURN-01 vibration_mm_s 超标!")
            .into_iter()
            .map(|t| t.2)
            .collect();
        assert_eq!(
            t,
            ["主轴", "轴振", "振动", "turn-01", "vibration_mm_s", "超标"]
        );
        let single: Vec<String> = terms("轴 a").into_iter().map(|t| t.2).collect();
        assert_eq!(single, ["轴", "a"]);
    }

    #[test]
    fn the_sample_set_answers_in_both_languages_with_the_right_document() {
        let m = Manuals::sample().expect("indexes");
        assert!(m.len() >= 24, "{} passages", m.len());
        let en = m
            .search("spindle vibration too high bearing", 3)
            .expect("search");
        assert!(
            en[0].passage.document.starts_with("SOP-MNT-01"),
            "{:?}",
            en[0].passage.id
        );
        let zh = m.search("主轴振动过大怎么办", 3).expect("search");
        assert!(
            zh[0].passage.document.starts_with("SOP-MNT-01")
                && zh[0].passage.document.contains(".zh."),
            "{:?}",
            zh[0].passage.id
        );
        let furnace = m.search("渗碳炉 碳势", 3).expect("search");
        assert!(
            furnace[0].passage.document.starts_with("SOP-HT-05"),
            "{:?}",
            furnace[0].passage.id
        );
        assert!(m.search("", 3).expect("search").is_empty());
        assert!(m.search("zzqx", 3).expect("search").is_empty());
    }

    #[test]
    fn equal_scores_keep_passage_order_and_a_repeated_word_counts_once() {
        let same = "# Coolant\nCheck the coolant level every shift.";
        let m = Manuals::build(vec![
            ("b.md".to_owned(), same.to_owned()),
            ("a.md".to_owned(), same.to_owned()),
            ("c.md".to_owned(), "# Other\nNothing about it.".to_owned()),
        ])
        .expect("indexes");
        for _ in 0..5 {
            let hits = m.search("coolant", 5).expect("search");
            let ids: Vec<&str> = hits.iter().map(|h| h.passage.id.as_str()).collect();
            assert_eq!(ids, ["b.md#1", "a.md#1"]);
            assert_eq!(hits[0].score, hits[1].score);
        }
        let once = m.search("coolant", 1).expect("search")[0].score;
        let thrice = m.search("coolant Coolant COOLANT", 1).expect("search")[0].score;
        assert_eq!(once, thrice);
        assert!(m.search("coolant", 0).expect("search").is_empty());
    }

    #[test]
    fn documents_split_at_headings_and_an_empty_folder_is_an_error() {
        let p = passages(
            "a.md",
            "# Title\nintro\n## Steps\n1. do\n\n2. done\n## Empty\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].section, "Steps");
        assert_eq!(p[1].title, "Title");
        assert_eq!(p[1].id, "a.md#2");
        let dir =
            std::env::temp_dir().join(format!("aifactory-manuals-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert!(matches!(
            Manuals::from_dir(&dir),
            Err(ManualsError::Empty(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            Manuals::from_dir(Path::new("/no/such/dir")),
            Err(ManualsError::Read { .. })
        ));
    }
}
