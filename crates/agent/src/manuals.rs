//! The plant's manuals and SOPs as a full-text index (tantivy, BM25), split into passages that
//! answers cite by document and section. Chinese has no spaces between words, so text is cut
//! into Latin words and overlapping pairs of Han characters (the bigram method of CJK search
//! engines), which finds Chinese terms without a dictionary.

use serde::Serialize;
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{Index, TantivyDocument, Term, doc};

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
    #[error("the manuals index: {0}")]
    Index(String),
}

fn index_error(e: tantivy::TantivyError) -> ManualsError {
    ManualsError::Index(e.to_string())
}

/// Latin words (lower-cased letters and digits, with `_`, `-` and `.` inside) and Han bigrams.
#[derive(Debug, Clone, Default)]
pub struct BigramTokenizer;

/// Tokens cut in advance; passages are short.
#[derive(Debug)]
pub struct Tokens {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

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

impl Tokenizer for BigramTokenizer {
    type TokenStream<'a> = Tokens;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens {
        let tokens = terms(text)
            .into_iter()
            .enumerate()
            .map(|(position, (from, to, text))| Token {
                offset_from: from,
                offset_to: to,
                position,
                text,
                position_length: 1,
            })
            .collect();
        Tokens { tokens, next: 0 }
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

/// The index over one set of documents, in memory.
pub struct Manuals {
    index: Index,
    reader: tantivy::IndexReader,
    text: tantivy::schema::Field,
    number: tantivy::schema::Field,
    passages: Vec<Passage>,
}

impl std::fmt::Debug for Manuals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manuals")
            .field("passages", &self.passages.len())
            .finish_non_exhaustive()
    }
}

const ANALYZER: &str = "aifactory_bigram";

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
        let mut schema = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let text = schema.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(indexing),
        );
        let number = schema.add_u64_field("number", NumericOptions::default().set_stored());
        let index = Index::create_in_ram(schema.build());
        index
            .tokenizers()
            .register(ANALYZER, TextAnalyzer::from(BigramTokenizer));
        let passages: Vec<Passage> = documents
            .iter()
            .flat_map(|(name, body)| passages(name, body))
            .collect();
        let mut writer: tantivy::IndexWriter = index
            .writer_with_num_threads(1, 15_000_000)
            .map_err(index_error)?;
        for (n, p) in passages.iter().enumerate() {
            // Title and section count as words of the passage: they name its subject.
            let all = format!("{}\n{}\n{}", p.title, p.section, p.text);
            writer
                .add_document(doc!(text => all, number => n as u64))
                .map_err(index_error)?;
        }
        writer.commit().map_err(index_error)?;
        let reader = index.reader().map_err(index_error)?;
        Ok(Manuals {
            index,
            reader,
            text,
            number,
            passages,
        })
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The `limit` best passages for `query` (any of its terms; BM25).
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, ManualsError> {
        let mut seen = std::collections::BTreeSet::new();
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms(query)
            .into_iter()
            .filter(|(_, _, t)| seen.insert(t.clone()))
            .map(|(_, _, t)| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, &t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        if clauses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let _ = &self.index;
        let searcher = self.reader.searcher();
        let top = searcher
            .search(
                &BooleanQuery::new(clauses),
                &TopDocs::with_limit(limit).order_by_score(),
            )
            .map_err(index_error)?;
        let mut hits = Vec::new();
        for (score, address) in top {
            let found: TantivyDocument = searcher.doc(address).map_err(index_error)?;
            let n = found
                .get_first(self.number)
                .and_then(|v| v.as_u64())
                .and_then(|n| usize::try_from(n).ok());
            if let Some(p) = n.and_then(|n| self.passages.get(n)) {
                hits.push(Hit {
                    passage: p.clone(),
                    score,
                });
            }
        }
        Ok(hits)
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
