//! The hash-chained decision ledger: an append-only list of records (decisions, their measured
//! outcomes, model updates), each entry carrying the SHA-256 of its own content and of the
//! entry before it, so that editing, removing or reordering any entry breaks every hash after
//! it and [`verify_chain`] names the first entry that no longer fits.
//!
//! Hashes are over a canonical JSON form (object keys sorted, no whitespace), so the chain does
//! not depend on how a map happened to be ordered when it was written.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What one ledger entry records (defined in core, so skills can queue outcomes and model
/// updates without depending on the ledger).
pub use aifactory_core::LedgerRecord as Record;

/// One entry of the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position, from 1.
    pub seq: u64,
    pub record: Record,
    /// Hash of the entry before (hex), [`GENESIS`] for the first.
    pub prev: String,
    /// SHA-256 (hex) of `seq`, `prev` and the record's canonical JSON.
    pub hash: String,
}

/// Why a chain does not verify; `row` is the 1-based position in the list given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "ledger row {row}: sequence number {found}, expected {expected} (a row was removed, inserted or moved)"
    )]
    Sequence {
        row: usize,
        expected: u64,
        found: u64,
    },
    #[error("ledger row {row}: does not follow the row before it (its `prev` hash differs)")]
    Broken { row: usize },
    #[error("ledger row {row} ({what}): its content does not match its hash (the row was edited)")]
    Edited { row: usize, what: String },
    #[error("ledger row {row}: {reason}")]
    Malformed { row: usize, reason: String },
}

/// Writes `value` as JSON with object keys sorted and no whitespace.
pub fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical JSON of anything serialisable.
pub fn canonical<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = String::new();
    canonical_json(&value, &mut out);
    Ok(out)
}

/// The hash of the entry at `seq` holding `record` after the entry whose hash is `prev`: the
/// one definition the in-memory ledger and the store's chain both use.
pub fn entry_hash(seq: u64, prev: &str, record: &Record) -> Result<String, serde_json::Error> {
    let mut hasher = Sha256::new();
    hasher.update(seq.to_be_bytes());
    hasher.update(prev.as_bytes());
    hasher.update(canonical(record)?.as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

/// A record as a person names it in an error ("decision D-3", "outcome of D-3").
pub fn describe(record: &Record) -> String {
    match record {
        Record::Decision(d) => format!("decision {}", d.id),
        Record::Outcome { decision, .. } => format!("outcome of {decision}"),
        Record::ModelUpdate { skill, .. } => format!("model update of {skill}"),
    }
}

/// An append-only ledger being written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Appends a record and returns its entry. A decision's `outcome`, if set, becomes an
    /// outcome entry of its own right after it.
    pub fn append(&mut self, record: Record) -> Result<&LedgerEntry, serde_json::Error> {
        let record = match record {
            Record::Decision(mut d) => match d.outcome.take() {
                Some(outcome) => {
                    let id = d.id.clone();
                    self.push(Record::Decision(d))?;
                    Record::Outcome {
                        decision: id,
                        outcome,
                    }
                }
                None => Record::Decision(d),
            },
            other => other,
        };
        self.push(record)
    }

    fn push(&mut self, record: Record) -> Result<&LedgerEntry, serde_json::Error> {
        let seq = self.entries.len() as u64 + 1;
        let prev = self
            .entries
            .last()
            .map_or_else(|| GENESIS.to_owned(), |e| e.hash.clone());
        let hash = entry_hash(seq, &prev, &record)?;
        self.entries.push(LedgerEntry {
            seq,
            record,
            prev,
            hash,
        });
        Ok(&self.entries[self.entries.len() - 1])
    }

    /// A ledger read back from where it was kept (a store's chain), if its entries form one
    /// unbroken chain; the error names the first entry that does not fit.
    pub fn from_entries(entries: Vec<LedgerEntry>) -> Result<Self, ChainError> {
        verify_chain(&entries)?;
        Ok(Ledger { entries })
    }

    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    pub fn into_entries(self) -> Vec<LedgerEntry> {
        self.entries
    }

    /// The hash of the last entry: it commits to the whole ledger.
    pub fn head(&self) -> &str {
        self.entries.last().map_or(GENESIS, |e| e.hash.as_str())
    }
}

/// Checks that `entries` form one unbroken chain from [`GENESIS`]; the error names the first
/// row that does not fit and why.
pub fn verify_chain(entries: &[LedgerEntry]) -> Result<(), ChainError> {
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        let row = i + 1;
        if entry.seq != row as u64 {
            return Err(ChainError::Sequence {
                row,
                expected: row as u64,
                found: entry.seq,
            });
        }
        if entry.prev != prev {
            return Err(ChainError::Broken { row });
        }
        let hash = entry_hash(entry.seq, &entry.prev, &entry.record).map_err(|e| {
            ChainError::Malformed {
                row,
                reason: e.to_string(),
            }
        })?;
        if hash != entry.hash {
            return Err(ChainError::Edited {
                row,
                what: describe(&entry.record),
            });
        }
        prev = hash;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Outcome, Timestamp};
    use serde_json::json;

    pub(crate) fn decision(id: &str, at: i64) -> Decision {
        Decision {
            id: id.to_owned(),
            at: Timestamp(at),
            skill: "scheduling".into(),
            stage: LifecycleStage::Production,
            inputs_ref: "floor@0".into(),
            model: "aps".into(),
            model_version: "1".into(),
            output: json!({"b": 1, "a": [1.5, {"z": null, "y": "x"}]}),
            confidence: Some(0.9),
            executed_by: ExecutedBy::Auto,
            outcome: None,
        }
    }

    fn ledger(n: usize) -> Ledger {
        let mut ledger = Ledger::new();
        for i in 0..n {
            ledger
                .append(Record::Decision(decision(&format!("D-{i}"), i as i64)))
                .unwrap();
        }
        ledger
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let mut out = String::new();
        canonical_json(&json!({"b": 1, "a": [{"d": 2, "c": "é\""}]}), &mut out);
        assert_eq!(out, r#"{"a":[{"c":"é\"","d":2}],"b":1}"#);
    }

    #[test]
    fn a_clean_chain_verifies_and_survives_a_json_round_trip() {
        let ledger = ledger(5);
        verify_chain(ledger.entries()).unwrap();
        let text = serde_json::to_string_pretty(ledger.entries()).unwrap();
        let back: Vec<LedgerEntry> = serde_json::from_str(&text).unwrap();
        verify_chain(&back).unwrap();
        assert_eq!(ledger.head(), back[4].hash);
        assert_eq!(Ledger::new().head(), GENESIS);
    }

    #[test]
    fn an_outcome_given_with_a_decision_becomes_its_own_entry() {
        let mut ledger = Ledger::new();
        let mut d = decision("D-1", 0);
        d.outcome = Some(Outcome {
            measured_at: Timestamp(10),
            measured: json!({"tardiness_h": 0.0}),
            success: Some(true),
        });
        ledger.append(Record::Decision(d)).unwrap();
        let entries = ledger.entries();
        assert_eq!(entries.len(), 2);
        assert!(matches!(&entries[0].record, Record::Decision(d) if d.outcome.is_none()));
        assert!(
            matches!(&entries[1].record, Record::Outcome { decision, .. } if decision == "D-1")
        );
    }

    #[test]
    fn editing_removing_or_reordering_a_row_is_detected_at_that_row() {
        let clean = ledger(6).into_entries();
        let mut edited = clean.clone();
        if let Record::Decision(d) = &mut edited[3].record {
            d.output = json!({"b": 2});
        }
        assert_eq!(
            verify_chain(&edited),
            Err(ChainError::Edited {
                row: 4,
                what: "decision D-3".into()
            })
        );
        let mut removed = clean.clone();
        removed.remove(2);
        assert_eq!(
            verify_chain(&removed),
            Err(ChainError::Sequence {
                row: 3,
                expected: 3,
                found: 4
            })
        );
        // Re-hashing an edited row does not help: the next row no longer follows it.
        let mut rehashed = edited.clone();
        rehashed[3].hash = entry_hash(4, &rehashed[3].prev, &rehashed[3].record).unwrap();
        assert_eq!(verify_chain(&rehashed), Err(ChainError::Broken { row: 5 }));
        let mut swapped = clean;
        swapped.swap(1, 2);
        assert!(matches!(
            verify_chain(&swapped),
            Err(ChainError::Sequence { row: 2, .. })
        ));
        let e = verify_chain(&edited).unwrap_err().to_string();
        assert!(e.contains("row 4") && e.contains("D-3"), "{e}");
    }
}
